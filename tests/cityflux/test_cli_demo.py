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
        "totals_covariance.csv",
        "observations.csv",
        "diagnostics.json",
        "config.yaml",
        "config.resolved.yaml",
        "maps.png",
        "uncertainty_reduction.png",
        "totals.png",
        "obs_fit.png",
        "budget.csv",
        "budget.png",
        "verification.csv",
        "verification.png",
        "report.html",
        "run.log",
        "flux_posterior_mean_traffic.tif",
        "flux_posterior_std_buildings.tif",
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
    cloudy = [s["dropped"].get("cloudy sounding", 0) for s in d["qc"]["sources"]]
    assert sum(cloudy) > 0 and d["qc"]["n_kept"] == d["n_obs"]
    assert {"inputs", "transport", "solve", "posterior"} <= set(d["timings_s"])
    assert d["synthetic_truth"]["as_assumed"] is True
    assert set(d["background_offsets_posterior_ppm"]) == set(d["n_obs_by_kind"])
    combined = d["by_kind"][-1]
    assert all(combined["posterior_std_t"] <= r["posterior_std_t"] for r in d["by_kind"])


def test_totals_covariance_matches_the_totals(demo_out):
    t = pd.read_csv(demo_out / "totals.csv")
    cov = pd.read_csv(demo_out / "totals_covariance.csv", index_col="row")
    assert list(cov.index) == list(t["row"]) == list(range(len(t)))
    c = cov.to_numpy()
    np.testing.assert_allclose(c, c.T, rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.diag(c)), t["posterior_std"], rtol=1e-8)
    # the daily city totals add up to the weekly one: so must their (co)variances
    days = t.index[(t.region == "city") & (t.period.str.len() == 10)].to_numpy()
    week = int(t.index[(t.region == "city") & (t.sector == "all")][0])
    assert days.size == 7
    np.testing.assert_allclose(c[np.ix_(days, days)].sum(), c[week, week], rtol=1e-7)
    corr = c[days[0], days[1]] / np.sqrt(c[days[0], days[0]] * c[days[1], days[1]])
    assert 0.05 < corr < 0.95  # neighbouring days correlate through B's time correlation


def test_observation_table_matches_the_posterior(demo_out):
    o = pd.read_csv(demo_out / "observations.csv")
    d = json.loads((demo_out / "diagnostics.json").read_text())
    assert len(o) == d["n_obs"]
    for kind, rms in d["residual_rms_ppm"].items():
        sel = o["kind"] == kind
        res = o.loc[sel, "observed_ppm"] - o.loc[sel, "posterior_modelled_ppm"]
        assert np.sqrt(np.mean(res**2)) == pytest.approx(rms, rel=1e-6)


def test_posterior_passes_the_cf_compliance_checker(demo_out):
    """IOOS compliance-checker, CF-1.10: no error, and no warning or failed check either."""
    from tests.cityflux._checks import cf_failures

    errors, others = cf_failures(demo_out / "posterior.nc")
    assert errors == []
    assert others == []
    with xr.open_dataset(demo_out / "posterior.nc") as ds:
        flux = ds["flux_posterior"]
        assert flux.attrs["standard_name"] == "surface_upward_mole_flux_of_carbon_dioxide"
        assert flux.attrs["cell_measures"] == "area: cell_area"
        assert ds["flux_posterior_std"].attrs["standard_name"].endswith(" standard_error")
        assert ds["city_mask"].attrs["flag_values"].dtype == np.int8
        assert (
            ds["background_posterior_std"].attrs["long_name"]
            != (ds["background_posterior"].attrs["long_name"])
        )
        assert ds.attrs["calibration_scale"] == "WMO CO2 X2019"
        assert list(ds["sector_name"].values) == ["traffic", "buildings"]
