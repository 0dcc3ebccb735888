"""Run folders: staged outputs, manifest.json written last, refusals before the solve, leftovers
removed, and a config hash that covers the science only."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from cityflux import _runfolder
from cityflux._files import sha256_file
from cityflux._runfolder import OutputFolderError, check_out_dir, read_manifest, verify
from cityflux.cli import main
from cityflux.config import config_hash, load_config
from cityflux.outputs import RUN_FILES, write_outputs
from cityflux.pipeline import run

TINY = ("domain.nx=8", "domain.ny=8", "domain.resolution_m=2000", "period.end=2024-06-05T00:00:00")


@pytest.fixture(scope="module")
def tiny_result(make_small_config):
    return run(make_small_config(*TINY))


def test_manifest_lists_every_output_with_its_sha256(tiny_result, tmp_path):
    paths = write_outputs(tiny_result, tmp_path / "out", config_text="x: 1\n", figures=False)
    m = read_manifest(tmp_path / "out")
    assert m["status"] == "complete" and m["kind"] == "run"
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert (
        files == sorted([*m["outputs"], "manifest.json"]) == sorted(p.name for p in paths.values())
    )
    for name, info in m["outputs"].items():
        assert info["sha256"] == sha256_file(tmp_path / "out" / name)
    assert m["config_hash"] == config_hash(tiny_result.config)
    assert "synthetic_truth_sha256" in m["input_checksums"]
    assert {"cityflux", "numpy", "scipy", "xarray", "dask", "distributed"} <= set(m["versions"])
    assert verify(tmp_path / "out", config_hash(tiny_result.config)) is not None
    assert verify(tmp_path / "out", "0" * 64) is None  # another configuration: stale


def test_altered_output_fails_verification(tiny_result, tmp_path):
    write_outputs(tiny_result, tmp_path, figures=False)
    with open(tmp_path / "totals.csv", "a", encoding="utf-8") as fh:
        fh.write("\n")
    assert verify(tmp_path) is None


def test_commit_killed_midway_leaves_an_incomplete_manifest_then_recovers(
    tiny_result, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    write_outputs(tiny_result, out, figures=False)
    calls = {"n": 0}
    real_replace = os.replace

    def dying_replace(src, dst):
        # killed while the staged files move into place (after the incomplete manifest)
        moving_out = ".cityflux-staging-" in str(src) and ".cityflux-staging-" not in str(dst)
        if moving_out and str(dst).endswith(".csv"):
            calls["n"] += 1
            raise KeyboardInterrupt("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(_runfolder.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(tiny_result, out, figures=False)
    monkeypatch.setattr(_runfolder.os, "replace", real_replace)
    assert read_manifest(out)["status"] == "incomplete"
    assert verify(out) is None  # never presented as a result
    check_out_dir(out, RUN_FILES)  # the next run may write there
    (out / ".posterior.nc.abc.tmp").write_text("half", encoding="utf-8")
    write_outputs(tiny_result, out, figures=False)
    assert verify(out) is not None
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "leftovers not removed"


def test_stale_outputs_of_the_previous_run_are_removed(tiny_result, tmp_path):
    out = tmp_path / "out"
    write_outputs(tiny_result, out, config_text="a: 1\n", figures=False)
    assert (out / "config.yaml").is_file()
    write_outputs(tiny_result, out, config_text=None, figures=False)
    assert not (out / "config.yaml").exists()
    assert "config.yaml" not in read_manifest(out)["outputs"]


def test_out_dir_refusals(tmp_path):
    f = tmp_path / "file"
    f.write_text("x", encoding="utf-8")
    with pytest.raises(OutputFolderError, match="not a folder"):
        check_out_dir(f)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputFolderError, match=r"notes\.txt"):
        check_out_dir(tmp_path / "d", RUN_FILES)
    check_out_dir(tmp_path / "new")  # absent: fine
    (tmp_path / "e").mkdir()
    check_out_dir(tmp_path / "e")  # empty: fine
    (tmp_path / "e" / "posterior.nc").write_text("old run", encoding="utf-8")
    check_out_dir(tmp_path / "e", RUN_FILES)  # a run folder written before manifests


def test_cli_refuses_a_bad_output_folder_before_the_solve(tmp_path, capsys, monkeypatch):
    import cityflux.pipeline as pipeline

    def no_solve(*a, **k):
        raise AssertionError("the solve started")

    monkeypatch.setattr(pipeline, "run", no_solve)
    cfg = tmp_path / "c.yaml"
    shutil.copy(_osse_small(), cfg)
    (tmp_path / "out").write_text("x", encoding="utf-8")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().out
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("x", encoding="utf-8")
    assert main(["batch", str(cfg), "--out", str(tmp_path / "busy")]) == 2
    assert "thesis.tex" in capsys.readouterr().out


def _osse_small():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "examples" / "osse_small.yaml"


def test_osse_folder_has_a_manifest(tmp_path):
    sets = [a for kv in TINY for a in ("--set", kv)]
    assert (
        main(["osse", str(_osse_small()), "--draws", "2", "--out", str(tmp_path / "o"), *sets]) == 0
    )
    m = verify(tmp_path / "o")
    assert m is not None and m["kind"] == "osse" and "osse.csv" in m["outputs"]


# ------------------------------------------------------------------------- config hash
def _real_config(tmp_path, fixtures_dir, inv_dir, out, name="a"):
    inv = inv_dir / "edgar.nc"
    if not inv.exists():
        inv_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(
            fixtures_dir
            / "inventories/edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc",
            inv,
        )
    data = {
        "name": name,
        "domain": {"center_lon": 13.4, "center_lat": 56.1, "nx": 4, "ny": 4},
        "period": {"start": "2016-12-13", "end": "2016-12-14", "step": "1D"},
        "prior": {"inventories": [{"path": str(inv), "format": "edgar"}]},
        "observations": [{"path": str(fixtures_dir / "insitu/co2_htm_tower-insitu_424_allvalid-150magl_small.nc")}],
        "transport": {"met": {"wind_speed": 5, "wind_direction": 250,
                              "boundary_layer_height": 800, "stability": "D"}},
        "output": {"dir": str(out)},
        "batch": {"window": "1D"},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def test_config_hash_covers_the_science_only(tmp_path, fixtures_dir):
    a = _real_config(tmp_path, fixtures_dir, tmp_path / "inv1", tmp_path / "out1", "a")
    # same contents elsewhere, another output folder, name and batch settings: same science
    b = _real_config(tmp_path, fixtures_dir, tmp_path / "inv2", tmp_path / "out2", "b")
    b = b.model_copy(update={"batch": b.batch.model_copy(update={"window": "2D"})})
    assert config_hash(a) == config_hash(b)
    # an input's contents change: another science
    inv = tmp_path / "inv2" / "edgar.nc"
    blob = bytearray(inv.read_bytes())
    blob[-10] ^= 0xFF
    inv.write_bytes(bytes(blob))
    os.utime(inv, ns=(1, 1))
    c = _real_config(tmp_path, fixtures_dir, tmp_path / "inv2", tmp_path / "out2", "c")
    assert config_hash(c) != config_hash(a)
    # a science setting changes
    d = a.model_copy(update={"prior": a.prior.model_copy(update={"relative_std": 0.3})})
    assert config_hash(d) != config_hash(a)
    assert json.dumps(config_hash(a))  # plain hex string
