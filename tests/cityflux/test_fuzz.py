"""Hypothesis fuzzing of the configuration schema and of the inputs the readers are given: every
outcome is a valid result or a cityflux error that names the key or the file — never another
exception, never a non-finite or implausible value passed on."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityflux.config import (
    CityfluxConfig,
    ConfigError,
    ObservationErrorsConfig,
    PeriodConfig,
    PriorConfig,
    QCConfig,
    apply_overrides,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8"))
EDGAR = "inventories/edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix


KEYS = sorted(
    set(_leaves(BASE))
    | {"batch.window", "batch.overlap", "batch.cluster.kind", "batch.cluster.workers",
       "qc.bounds_ppm", "qc.max_error_ppm", "observation_errors.transport", "nonsense.key"}
)  # fmt: skip
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=4),
    st.dictionaries(st.sampled_from(["tower", "column", "x"]), st.floats(-1e3, 1e3), max_size=2),
)  # fmt: skip


def _set(data: dict, key: str, value) -> dict:
    out = copy.deepcopy(data)
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value
    return out


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
def test_config_schema_fuzz(edits):
    data = BASE
    for key, value in edits:
        data = _set(data, key, value)
    try:
        cfg = parse_config(data, source="fuzz")
    except ConfigError as err:
        assert err.problems and all(k for k, _ in err.problems)
        assert str(err).startswith("invalid configuration fuzz")
        return
    assert isinstance(cfg, CityfluxConfig)


@FUZZ
@given(st.text(max_size=40))
def test_set_override_fuzz(item):
    try:
        apply_overrides(BASE, [item])
    except ConfigError as err:
        assert "--set" in str(err)


# ------------------------------------------------------------------- tower CSV through the stage
CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "abc", "1e30", "-0", "NaN", "inf", "2015-12-10T00:00:00Z"]),
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.fixed_dictionaries({"value": CELL, "value_unc": CELL, "lat": CELL, "lon": CELL,
                               "intake_height": CELL}),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_tower_csv_fuzz_through_the_observation_stage(tmp_path, rows):
    from cityflux import stages
    from cityflux.config import ObservationSource

    path = tmp_path / f"obs_{uuid.uuid4().hex[:6]}.csv"
    lines = ["time,site,lat,lon,intake_height,value,value_unc"]
    for r in rows:
        lines.append(f"2015-12-10T00:00:00Z,RCP,{r['lat']},{r['lon']},{r['intake_height']},"
                     f"{r['value']},{r['value_unc']}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    grid = stages.build_grid(
        CityfluxConfig.model_fields["domain"].annotation.model_validate(
            {"bounds": [-113.0, 40.0, -111.0, 41.0], "resolution_deg": 0.1}
        )
    )
    period = PeriodConfig(start="2015-12-09T12:00:00", end="2015-12-10T06:00:00", step="6h")
    src = ObservationSource(path=path, format="tower_csv", crop=True)
    qc = QCConfig()
    try:
        ds = stages.read_observations([src], period, grid, ObservationErrorsConfig(), qc)
    except (ValueError, KeyError, OSError) as err:
        assert path.name in str(err) or "obs" in str(err), err
        return
    v = ds["value"].values
    lo, hi = qc.bounds("tower")
    assert np.isfinite(v).all() and (v >= lo).all() and (v <= hi).all()
    for c in ("err_instrument", "err_transport", "err_representation"):
        assert np.isfinite(ds[c].values).all() and (ds[c].values >= 0).all()


# ------------------------------------------------------------------- inventories through the stage
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.integers(0, 35 * 71 - 1),
                       st.floats(allow_nan=True, allow_infinity=True, width=32)), max_size=3),
    st.sampled_from([1.0, 1.0, 2.0, -1.0]),
)  # fmt: skip
def test_inventory_fuzz_through_the_prior_stage(tmp_path, fixtures_dir, cells, lat_scale):
    from cityflux import stages
    from inversion import TimeAxis

    with xr.open_dataset(fixtures_dir / EDGAR) as ds:
        ds = ds.load()
    arr = ds["emi_co2"].values.copy()
    for i, v in cells:
        arr.reshape(-1)[i] = v
    ds["emi_co2"] = (ds["emi_co2"].dims, arr, ds["emi_co2"].attrs)
    ds = ds.assign_coords(lat=("lat", ds["lat"].values * lat_scale, ds["lat"].attrs))
    path = tmp_path / f"edgar_{uuid.uuid4().hex[:6]}.nc"
    ds.to_netcdf(path)
    prior = PriorConfig(inventories=[{"path": path, "format": "edgar"}])
    grid = stages.build_grid(
        CityfluxConfig.model_fields["domain"].annotation.model_validate(
            {"center_lon": 13.4, "center_lat": 56.1, "nx": 4, "ny": 4, "resolution_m": 4000.0}
        )
    )
    tax = TimeAxis.regular("2016-12-13", "2016-12-14", "1D")
    try:
        flux, _ = stages.prior_flux(prior, grid, tax)
    except (ValueError, KeyError, OSError) as err:
        assert path.name in str(err), err
        return
    assert np.isfinite(flux.values).all() and np.abs(flux.values).max() < 1e7


def test_fuzz_module_uses_real_fixtures(fixtures_dir):
    assert (fixtures_dir / EDGAR).is_file()
    pytest.importorskip("hypothesis")
