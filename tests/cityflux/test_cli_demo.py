"""End to end: `cityflux demo` writes every documented output with the documented content."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cityflux.cli import main


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--seed", "3"]) == 0
    return out


def test_all_outputs_written(demo_out):
    for name in (
        "posterior.nc",
        "totals.csv",
        "diagnostics.json",
        "config.yaml",
        "config.resolved.yaml",
        "maps.png",
        "uncertainty_reduction.png",
        "totals.png",
        "obs_fit.png",
    ):
        assert (demo_out / name).stat().st_size > 0, name
    assert not list(demo_out.glob(".*.tmp")), "temporary files left behind"


def test_posterior_netcdf_is_cf(demo_out):
    with xr.open_dataset(demo_out / "posterior.nc") as ds:
        assert ds.attrs["Conventions"] == "CF-1.10"
        for v in ("flux_prior", "flux_posterior", "flux_posterior_std", "flux_truth"):
            assert ds[v].dims == ("sector", "time", "y", "x")
            assert ds[v].attrs["units"] == "umol m-2 s-1"
            assert ds[v].attrs["grid_mapping"] == "crs"
            assert np.isfinite(ds[v].values).all()
        assert "grid_mapping_name" in ds["crs"].attrs
        assert ds["time_bnds"].shape == (ds.sizes["time"], 2)
        assert len(ds.attrs["config_hash"]) == 64
        assert "synthetic_truth_sha256" in json.loads(ds.attrs["input_checksums"])
        assert (ds["flux_posterior_std"] <= ds["flux_prior_std"] * (1 + 1e-9)).all()


def test_totals_truth_within_3_std(demo_out):
    t = pd.read_csv(demo_out / "totals.csv")
    for col in (
        "region",
        "period",
        "prior",
        "posterior",
        "posterior_std",
        "truth",
        "posterior_expanded_uncertainty_k2",
    ):
        assert col in t.columns
    np.testing.assert_allclose(
        t["posterior_expanded_uncertainty_k2"], 2 * t["posterior_std"], rtol=1e-5
    )
    city = t[t.region == "city"].iloc[0]
    assert abs(city["posterior"] - city["truth"]) <= 3 * city["posterior_std"]
    assert city["posterior_std"] < city["prior_std"]


def test_diagnostics(demo_out):
    d = json.loads((demo_out / "diagnostics.json").read_text())
    assert set(d["n_obs_by_kind"]) == {"tower", "column", "lidar_path"}
    assert sum(d["n_obs_by_kind"].values()) == d["n_obs"]
    assert 0.7 < d["chi2"] < 1.3  # innovation chi2/n of a consistent OSSE is ~1
    assert d["solver_method"] == "obs-space" and d["std_method"].startswith("exact")
    assert d["qc_dropped"]["column_cloudy"] > 0
    assert {"build", "solve"} <= set(d["timings_s"])
    combined = d["by_kind"][-1]
    assert all(combined["posterior_std_t"] <= r["posterior_std_t"] for r in d["by_kind"])
