"""Configuration parsing, validation messages and the packaged demo config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cityflux.cli import main
from cityflux.config import ConfigError, check_inputs, config_hash, demo_config_path, load_config

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _demo_dict() -> dict:
    return yaml.safe_load(demo_config_path().read_text(encoding="utf-8"))


def test_example_and_packaged_demo_are_identical():
    assert (ROOT / "examples" / "demo.yaml").read_bytes() == demo_config_path().read_bytes()


def test_demo_config_loads_frozen_and_hash_is_stable():
    cfg = load_config(demo_config_path())
    assert (cfg.domain.nx, cfg.domain.ny, cfg.period.step) == (40, 40, "1D")
    with pytest.raises(Exception, match="frozen"):
        cfg.domain.nx = 3
    assert config_hash(cfg) == config_hash(load_config(demo_config_path()))
    other = cfg.model_copy(update={"synthetic": cfg.synthetic.model_copy(update={"seed": 1})})
    assert config_hash(other) != config_hash(cfg)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d["inversion"].update(spatial_lenght_km=3), "inversion.spatial_lenght_km"),
        (lambda d: d["domain"].update(nx="many"), "domain.nx"),
        (lambda d: d["synthetic"].update(n_towers=-1), "synthetic.n_towers"),
        (lambda d: d["period"].pop("start"), "period.start"),
        (
            lambda d: d.update(observations=[{"path": "x.nc", "fromat": "obspack"}]),
            "observations[0].fromat",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path, edit, key):
    data = _demo_dict()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in str(info.value)
    assert key in [k for k, _ in info.value.problems]


def test_bad_config_cli_exit_code_2(tmp_path, capsys):
    data = _demo_dict()
    data["inversion"]["methd"] = "dense"
    code = main(["validate", str(_write(tmp_path, data))])
    out = capsys.readouterr().out
    assert code == 2
    assert "inversion.methd" in out and "unknown key" in out
    assert "Traceback" not in out


def _real_dict(tmp_path: Path) -> dict:
    data = _demo_dict()
    del data["synthetic"]
    data["transport"]["met"] = {"wind_speed": 4.0, "wind_direction": 270.0,
                                "boundary_layer_height": 800.0, "stability": "D"}  # fmt: skip
    inv = tmp_path / "inventory.nc"
    inv.write_bytes(b"")
    data["prior"]["inventories"] = [{"path": str(inv), "format": "edgar"}]
    return data


def test_missing_observation_file_names_the_key(tmp_path, capsys):
    data = _real_dict(tmp_path)
    data["observations"] = [{"path": "missing_tower.nc", "format": None}]
    path = _write(tmp_path, data)
    cfg = load_config(path)
    assert cfg.observations[0].path == tmp_path / "missing_tower.nc"  # relative to the config
    problems = check_inputs(cfg)
    assert [k for k, _ in problems] == ["observations[0].path"]
    for cmd in ("validate", "run"):
        assert main([cmd, str(path)]) == 2
        out = capsys.readouterr().out
        assert "observations[0].path" in out and "missing_tower.nc" in out


def test_synthetic_case_refuses_observations_and_a_background_method(tmp_path):
    data = _demo_dict()
    data["observations"] = [{"path": "x.nc"}]
    with pytest.raises(ConfigError, match="generates its own observations"):
        load_config(_write(tmp_path, data))
    data = _demo_dict()
    data["background"]["method"] = "quantile"
    with pytest.raises(ConfigError, match=r"background\.method"):
        load_config(_write(tmp_path, data))


def test_set_overrides_any_dotted_key_and_validates_like_the_file(tmp_path):
    path = _write(tmp_path, _demo_dict())
    cfg = load_config(
        path,
        [
            "inversion.spatial_length_km=7.5",
            "synthetic.truth.site_bias_ppm={T01: 1.0}",
            "synthetic.truth.transport.wind_direction_std_deg=20",
            "synthetic.obs_hours_local=[13, 12]",
            "regions.path=districts.geojson",
            "regions.by_day=true",
        ],
    )
    assert cfg.inversion.spatial_length_km == 7.5
    assert cfg.synthetic.truth.site_bias_ppm == {"T01": 1.0}
    assert cfg.synthetic.truth.transport.wind_direction_std_deg == 20
    assert cfg.synthetic.obs_hours_local == (12, 13)
    assert cfg.regions.path == tmp_path / "districts.geojson"  # relative to the config
    assert cfg.regions.by_day is True
    # the same key written in the file gives the same configuration
    data = _demo_dict()
    data["inversion"]["spatial_length_km"] = 7.5
    (tmp_path / "b").mkdir()
    same = load_config(_write(tmp_path / "b", data))
    assert config_hash(same) == config_hash(load_config(path, ["inversion.spatial_length_km=7.5"]))
    assert config_hash(same) != config_hash(load_config(path))


@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        ("inversion.spatial_length_km=-1", "inversion.spatial_length_km", "greater than 0"),
        ("inversion.spatial_lenght_km=3", "inversion.spatial_lenght_km", "unknown key"),
        ("inversion.method=gmres", "inversion.method", "gmres"),
        ("observations[2].path=x.nc", "observations[2].path", "out of range"),
        ("inversion", "inversion", "KEY=VALUE"),
        ("inversion.method.kind=cg", "inversion.method.kind", "not a section"),
        ("synthetic.seed=[1", "synthetic.seed", "not valid YAML"),
        ("domain..nx=3", "domain..nx", "not a key"),
        ("background.window=0h", "background.window", "a window must be > 0"),
        ("background.window=soon", "background.window", "could not parse 'soon' as a window"),
    ],
)
def test_bad_set_names_the_key(tmp_path, capsys, override, key, fragment):
    path = _write(tmp_path, _demo_dict())
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    assert key in str(info.value) and fragment in str(info.value)
    for cmd in (["validate", str(path)], ["run", str(path)], ["demo"]):
        assert main([*cmd, "--set", override]) == 2
        out = capsys.readouterr().out
        assert key in out and "Traceback" not in out


def test_verbose_flag_before_or_after_the_subcommand(tmp_path, capsys):
    path = _write(tmp_path, _demo_dict())
    assert main(["-v", "validate", str(path)]) == 0
    assert main(["validate", "-v", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_ok_and_config_not_rewritten(tmp_path, capsys):
    path = _write(tmp_path, _demo_dict())
    before = path.read_bytes()
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out
    assert path.read_bytes() == before


def test_missing_config_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().out


def test_period_must_be_whole_steps(tmp_path):
    data = _demo_dict()
    data["period"]["step"] = "5D"
    with pytest.raises(ConfigError, match="period"):
        load_config(_write(tmp_path, data))
