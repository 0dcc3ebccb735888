"""Real-data runs of `cityflux run` on the shared fixtures (ICOS tower, STILT footprint, EDGAR,
Salt Lake City neighbourhoods), `cityflux inventory summarize` and `cityflux validate`.

Reference values are computed here directly from the fixture files (xarray / netCDF4), not from
the code under test.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xarray as xr
import yaml

from cityflux.cli import main

HTM = "insitu/co2_htm_tower-insitu_424_allvalid-150magl_small.nc"
EDGAR = "inventories/edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc"
STILT = "stilt/pystilt_r_foot_201512100000_-112_40.5_5.nc"
SLC = "boundaries/clickthathood_salt-lake-city.geojson"
HTM_LON, HTM_LAT = 13.4189, 56.0976  # Hyltemossa, from the file's site_longitude/latitude
M_CO2 = 44.0095  # g mol-1
UMOL_TO_T = 1e-12 * M_CO2  # µmol -> t CO2


def _write(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


def _edgar_umol(fixtures_dir, lon, lat) -> float:
    """EDGAR flux [µmol m-2 s-1] of the (nearest-coordinate) cell holding (lon, lat)."""
    with xr.open_dataset(fixtures_dir / EDGAR) as ds:
        kg = float(ds["emi_co2"].sel(lat=lat, lon=lon % 360, method="nearest"))
    return kg * 1e9 / M_CO2  # kg CO2 m-2 s-1 -> µmol m-2 s-1


def tower_config(fixtures_dir, out) -> dict:
    return {
        "name": "hyltemossa",
        "domain": {"center_lon": HTM_LON, "center_lat": HTM_LAT, "nx": 15, "ny": 15,
                   "resolution_m": 2000.0},
        "period": {"start": "2016-12-13T00:00:00", "end": "2016-12-17T00:00:00", "step": "6h"},
        "prior": {
            "inventories": [{"path": str(fixtures_dir / EDGAR), "format": "edgar"}],
            "relative_std": 0.5,
            "floor_std": 0.01,
            "temporal": {"timezone": "Europe/Stockholm", "profile_for": {"total": "road"},
                         "normalize_over_period": True},
        },
        "observations": [{"path": str(fixtures_dir / HTM), "format": "obspack",
                          "options": {"hours": [10, 18]}, "error_ppm": 2.0}],
        "background": {"method": "quantile", "quantile": 0.1, "window": "1D", "min_count": 3,
                       "error_ppm": 1.0, "offsets": {"by": "site", "std_ppm": 2.0}},
        "transport": {"model": "plume", "met": {"wind_speed": 5.0, "wind_direction": 250.0,
                      "boundary_layer_height": 800.0, "stability": "D"}},
        "inversion": {"method": "obs-space", "spatial_length_km": 6.0, "temporal_length_h": 24.0},
        "output": {"dir": str(out), "figures": False},
    }  # fmt: skip


@pytest.fixture(scope="module")
def tower_run(fixtures_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tower")
    cfg = _write(tmp, "tower.yaml", tower_config(fixtures_dir, tmp / "out"))
    assert main(["run", cfg]) == 0
    return tmp / "out"


def test_tower_plume_run_outputs_and_qc(tower_run, fixtures_dir):
    for name in ("posterior.nc", "totals.csv", "diagnostics.json", "observations.csv"):
        assert (tower_run / name).stat().st_size > 0
    diag = json.loads((tower_run / "diagnostics.json").read_text())
    # independent read of the file: every record is hourly, stamped at the hour start
    with xr.open_dataset(fixtures_dir / HTM) as raw:
        t = raw["time"].values + np.timedelta64(30, "m")
        flags = raw["qc_flag"].values.astype(str)
    n_records = t.size
    lst = (t - t.astype("datetime64[D]")) / np.timedelta64(1, "h") + HTM_LON / 15.0
    lst = np.mod(lst, 24.0)
    in_hours = (lst >= 10) & (lst < 18) & np.isin(flags, ["O", "U"])
    in_period = (t >= np.datetime64("2016-12-13")) & (t < np.datetime64("2016-12-17"))
    reader = diag["qc"]["sources"][0]
    assert reader["read"] == n_records == 100
    assert reader["dropped"] == {"outside local solar hours [10, 18)": int((~in_hours).sum())}
    assert reader["kept"] == int(in_hours.sum())
    n_expected = int((in_hours & in_period).sum())
    assert diag["n_obs"] == n_expected == len(pd.read_csv(tower_run / "observations.csv"))
    assert np.isfinite(diag["chi2"]) and diag["chi2"] > 0
    assert set(diag["error_budget"]["tower"]) >= {"transport", "background", "total_rms_ppm"}
    shares = [
        diag["error_budget"]["tower"][c]
        for c in ("instrument", "calibration", "transport", "representation", "background")
    ]
    assert sum(shares) == pytest.approx(1.0, rel=1e-12)


def test_tower_prior_total_matches_edgar(tower_run, fixtures_dir):
    totals = pd.read_csv(tower_run / "totals.csv")
    dom = totals[(totals.region == "domain") & (totals.sector == "all")].iloc[0]
    with xr.open_dataset(tower_run / "posterior.nc") as ds:
        f = ds["flux_prior"].values  # (sector, time, y, x) [µmol m-2 s-1]
        dt = (ds["time_bnds"].values[:, 1] - ds["time_bnds"].values[:, 0]) / np.timedelta64(1, "s")
        area = ds["cell_area"].values
    from_nc = float(np.einsum("styx,t,yx->", f, dt, area)) * UMOL_TO_T
    assert dom["prior"] == pytest.approx(from_nc, rel=1e-9)
    # EDGAR cell value x domain area (30 km x 30 km) x 4 days; the domain lies in one EDGAR cell.
    # rel 1e-3: priors.regrid scales a flux by (geodesic / projected) area of the 5 deg source
    # cell (4e-4 here), see the report.
    hand = _edgar_umol(fixtures_dir, HTM_LON, HTM_LAT) * 30e3 * 30e3 * 4 * 86400 * UMOL_TO_T
    assert dom["prior"] == pytest.approx(hand, rel=1e-3)
    assert dom["posterior_std"] <= dom["prior_std"] * (1 + 1e-9)


def test_tower_run_posterior_passes_the_cf_compliance_checker(tower_run):
    """A real run (ICOS tower, EDGAR, plume): CF-1.10 with no error and no other finding;
    the tower's calibration scale (WMO CO2 X2019, from the file) is recorded."""
    from tests.cityflux._checks import cf_failures

    assert cf_failures(tower_run / "posterior.nc") == ([], [])
    with xr.open_dataset(tower_run / "posterior.nc") as ds:
        scales = json.loads(ds.attrs["calibration_scales"])
    assert [(s["scale"], s["original_scale"]) for s in scales] == [("WMO CO2 X2019",) * 2]
    obs = pd.read_csv(tower_run / "observations.csv")
    assert (obs["calibration_scale"] == "WMO CO2 X2019").all()
    assert (obs["err_calibration_ppm"] == 0.069).all()  # the scale's stated uncertainty
    diag = json.loads((tower_run / "diagnostics.json").read_text())
    assert diag["calibration_scales"]["target"] == "WMO CO2 X2019"


def test_gridded_inventory_totals_equal_the_prior_stage(fixtures_dir, tmp_path):
    """A gridded inventory is put on the grid by the prior stage and aggregated with the
    weights of totals.csv: the EDGAR file used as the prior gives the prior's totals."""
    from cityflux.config import parse_config
    from cityflux.metrology import verify_totals
    from cityflux.pipeline import run

    data = tower_config(fixtures_dir, tmp_path / "out")
    edgar = data["prior"]["inventories"][0]["path"]
    data["verification"] = {
        "inventories": [{"name": "edgar", "path": edgar, "format": "edgar",
                         "relative_uncertainty": 0.3}],
    }  # fmt: skip
    cfg = parse_config(data)
    res = run(cfg)
    ver = verify_totals(res)
    ed = ver.table[ver.table.inventory == "edgar"].reset_index(drop=True)
    t = res.totals.reset_index(drop=True)
    np.testing.assert_allclose(ed.inventory_t, t.prior, rtol=1e-9)
    assert not ed.independent.any()  # detected: it is the prior's file
    ud = np.sqrt(t.prior_std**2 - t.posterior_std**2)
    np.testing.assert_allclose(ed.zeta, (t.posterior - t.prior) / ud, rtol=1e-9)


def footprint_config(fixtures_dir, tmp_path) -> dict:
    csv = tmp_path / "rcp_tower.csv"
    csv.write_text(
        "# test tower at the STILT receptor\n"
        "time,site,lat,lon,intake_height,value,value_unc\n"
        "2015-12-10T00:00:00Z,RCP,40.5,-112.0,5,415.3,0.2\n",
        encoding="utf-8",
    )
    return {
        "name": "salt-lake-city",
        "domain": {"bounds": [-112.2, 40.4, -111.7, 40.9], "resolution_deg": 0.02},
        "period": {"start": "2015-12-09T12:00:00", "end": "2015-12-10T06:00:00", "step": "6h"},
        "prior": {
            "inventories": [{"path": str(fixtures_dir / EDGAR), "format": "edgar",
                             "options": {"bbox": [-113.0, 40.0, -111.0, 41.0]}}],
            "temporal": {"profile_for": {"total": "flat"}},
        },
        "observations": [{"path": str(csv), "format": "tower_csv", "error_ppm": 2.0}],
        "background": {"method": "constant", "value_ppm": 410.0, "error_ppm": 1.0},
        "transport": {"model": "footprints", "footprints": str(tmp_path / "footprints"),
                      "threshold": 0.0, "time_tolerance": "30min"},
        "regions": {"path": str(fixtures_dir / SLC), "name_column": "name"},
        "output": {"dir": str(tmp_path / "out"), "figures": True},
    }  # fmt: skip


@pytest.fixture(scope="module")
def footprint_run(fixtures_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stilt")
    (tmp / "footprints").mkdir()
    (tmp / "footprints" / "201512100000_-112_40.5_5_foot.nc").write_bytes(
        (fixtures_dir / STILT).read_bytes()
    )
    cfg = _write(tmp, "stilt.yaml", footprint_config(fixtures_dir, tmp))
    assert main(["run", cfg]) == 0
    return tmp / "out"


def test_footprint_prior_enhancement_equals_hand_sum(footprint_run, fixtures_dir):
    flux = _edgar_umol(fixtures_dir, -111.95, 40.65)  # one EDGAR cell covers the domain
    with xr.open_dataset(footprint_run / "posterior.nc") as ds:
        prior = ds["flux_prior"].values
    np.testing.assert_allclose(prior, flux, rtol=1e-6)  # flat profile: the EDGAR value
    with xr.open_dataset(fixtures_dir / STILT) as fp:
        foot = fp["foot"].astype("float64")
        inside = foot.sel(lon=slice(-112.2, -111.7), lat=slice(40.4, 40.9))
        in_sum, all_sum = float(inside.sum()), float(foot.sum())
    assert inside.shape == (6, 50, 50)
    obs = pd.read_csv(footprint_run / "observations.csv")
    assert len(obs) == 1
    assert obs["prior_flux_enhancement_ppm"].iloc[0] == pytest.approx(in_sum * flux, rel=1e-6)
    assert obs["observed_ppm"].iloc[0] == pytest.approx(415.3 - 410.0, rel=1e-12)
    rep = json.loads((footprint_run / "diagnostics.json").read_text())["transport"]
    assert rep["n_receptors"] == 1 and rep["dropped_threshold"] == 0.0
    assert rep["total_sensitivity"] == pytest.approx(all_sum, rel=1e-6)
    assert rep["outside_domain"] == pytest.approx(all_sum - in_sum, rel=1e-5)


def test_footprint_region_totals(footprint_run, fixtures_dir):
    import geopandas as gpd

    t = pd.read_csv(footprint_run / "totals.csv")
    dom = t[(t.region == "domain") & (t.sector == "all")].iloc[0]
    reg = t[(t.region != "domain") & (t.sector == "all")]
    names = set(gpd.read_file(fixtures_dir / SLC)["name"])
    assert set(reg.region) == names
    assert (reg.prior > 0).all()
    assert reg.prior.sum() <= dom.prior
    assert (reg.posterior_std <= reg.prior_std * (1 + 1e-9)).all()
    assert (footprint_run / "maps.png").stat().st_size > 0


def test_design_with_footprint_candidates(fixtures_dir, tmp_path):
    """A candidate read from a file, its H row from its own footprint files (the STILT
    receptor again, a second instrument): the design's std equals the dense re-solve."""
    from cityflux.config import parse_config
    from cityflux.metrology import run_design
    from inversion import LinearProblem, solve
    from inversion.covariance import BlockDiagonalCovariance, DenseCovariance

    (tmp_path / "footprints").mkdir()
    (tmp_path / "footprints" / "201512100000_-112_40.5_5_foot.nc").write_bytes(
        (fixtures_dir / STILT).read_bytes()
    )
    data = footprint_config(fixtures_dir, tmp_path)
    data["design"] = {"candidates": [{
        "name": "RCP-2", "path": data["observations"][0]["path"], "format": "tower_csv",
        "footprints": str(tmp_path / "footprints")}]}  # fmt: skip
    result, res, cands = run_design(parse_config(data))
    case, c = result.case, cands[0]
    assert c.H.shape == case.H.shape and res.target["region"] != "domain"
    np.testing.assert_allclose(c.H.toarray()[:, : case.state.n_flux],
                               case.H.toarray()[:, : case.state.n_flux], rtol=1e-12)  # fmt: skip
    H = sp.vstack([case.H, c.H], format="csr")
    R = BlockDiagonalCovariance([case.R, DenseCovariance(c.R)])
    post = solve(LinearProblem(H=H, x_prior=case.x_prior, y=np.zeros(2), B=case.B, R=R), "dense")
    w = case.weights[[res.target["row"]]].toarray()[0]
    assert res.table["std_after_t"].iloc[0] == pytest.approx(post.aggregate(w)[1], rel=1e-9)
    assert res.table["std_after_t"].iloc[0] < res.current_std


def _band_area(lat0, lat1, dlon_deg):
    """Area [m²] between two parallels on the WGS84 ellipsoid (authalic formula), per cell."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    e = np.sqrt(e2)

    def q(lat):
        s = np.sin(np.radians(lat))
        return s / (1 - e2 * s * s) + np.arctanh(e * s) / e

    return 0.5 * (a * (1 - f)) ** 2 * np.radians(dlon_deg) * (q(lat1) - q(lat0))


def test_inventory_summarize_matches_hand_total(fixtures_dir, tmp_path, capsys):
    bbox = (5.0, 45.0, 15.0, 55.0)
    out_csv = tmp_path / "summary.csv"
    code = main(["inventory", "summarize", str(fixtures_dir / EDGAR), "--format", "edgar",
                 "--bbox", *map(str, bbox), "--csv", str(out_csv)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    with xr.open_dataset(fixtures_dir / EDGAR) as ds:
        lat = ds["lat"].values.astype(float)
        lon = ds["lon"].values.astype(float)
        v = ds["emi_co2"].values.astype(float)  # kg m-2 s-1
    # cells: midpoint edges between the coordinates (lon already in 0..360, bbox east of 0)
    lat_e = np.concatenate([[-90.0], 0.5 * (lat[1:] + lat[:-1]), [90.0]])
    lon_e = np.concatenate([[lon[0] - 0.5 * (lon[1] - lon[0])], 0.5 * (lon[1:] + lon[:-1]),
                            [lon[-1] + 0.5 * (lon[-1] - lon[-2])]])  # fmt: skip
    iy = np.flatnonzero((lat_e[1:] > bbox[1]) & (lat_e[:-1] < bbox[3]))
    ix = np.flatnonzero((lon_e[1:] > bbox[0]) & (lon_e[:-1] < bbox[2]))
    area = _band_area(lat_e[iy][:, None], lat_e[iy + 1][:, None], np.diff(lon_e)[ix][None, :])
    seconds_2015 = 365 * 86400.0
    hand_t = float((v[np.ix_(iy, ix)] * area).sum() * seconds_2015 / 1000.0)  # kg -> t
    table = pd.read_csv(out_csv)
    assert table["emission_t_CO2"].sum() == pytest.approx(hand_t, rel=1e-6)
    assert table["month"].nunique() == 12 and table["duration_s"].sum() == seconds_2015
    cells = [[c.strip() for c in ln.split("│")[1:-1]] for ln in printed.splitlines() if "│" in ln]
    total_row = next(c for c in cells if c[0] == "all" and c[2] == "total")
    printed_total = float(total_row[-1])
    assert printed_total == pytest.approx(hand_t, rel=1e-6)
    assert "t CO2" in printed


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d, fx: d["observations"][0].update(path="/nonexistent/tower.nc"),
         "observations[0].path"),
        (lambda d, fx: d["observations"][0].update(format="no_such_format"),
         "observations[0].format"),
        (lambda d, fx: d["prior"]["inventories"][0].update(path="/nonexistent/edgar.nc"),
         "prior.inventories[0].path"),
        (lambda d, fx: d["prior"]["inventories"][0].update(format="no_such_inventory"),
         "prior.inventories[0].format"),
        (lambda d, fx: d.update(transport={"model": "footprints", "footprints": "/nonexistent"}),
         "transport.footprints"),
        (lambda d, fx: d.update(transport={"model": "footprints", "footprints": str(fx / STILT),
                                           "footprint_format": "bogus"}),
         "transport.footprint_format"),
        (lambda d, fx: d["transport"].update(met={"path": "/nonexistent/met.csv"}),
         "transport.met.path"),
        (lambda d, fx: d.update(regions={"path": "/nonexistent/regions.geojson"}),
         "regions.path"),
    ],
)  # fmt: skip
def test_validate_names_the_key(fixtures_dir, tmp_path, capsys, edit, key):
    data = tower_config(fixtures_dir, tmp_path / "out")
    edit(data, fixtures_dir)
    cfg = _write(tmp_path, "bad.yaml", data)
    assert main(["validate", cfg]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert key in out


def test_validate_real_config_ok_and_undetectable_format(fixtures_dir, tmp_path, capsys):
    cfg = _write(tmp_path, "ok.yaml", tower_config(fixtures_dir, tmp_path / "out"))
    assert main(["validate", cfg]) == 0
    junk = tmp_path / "junk.dat"
    junk.write_text("not an observation file\n")
    data = tower_config(fixtures_dir, tmp_path / "out")
    data["observations"][0].update(path=str(junk), format=None)
    assert main(["validate", _write(tmp_path, "junk.yaml", data)]) == 2
    assert "observations[0].format" in " ".join(capsys.readouterr().out.split())


def test_run_that_stops_on_its_inputs_exits_3_with_the_reason(fixtures_dir, tmp_path, capsys):
    # the tower file has no record in this period: the run stops on its inputs (exit 3, not
    # the configuration code 2), names the error, and -v adds the traceback
    data = tower_config(fixtures_dir, tmp_path / "out")
    data["period"] = {"start": "2030-01-01T00:00:00", "end": "2030-01-03T00:00:00", "step": "6h"}
    cfg = _write(tmp_path, "late.yaml", data)
    assert main(["run", cfg]) == 3
    out = capsys.readouterr().out
    assert "error (EmptyAfterQCError)" in out and "run with -v for the traceback" in out
    # every observation is counted as outside the period (none outside the domain)
    assert re.search(r"none of the (\d+) observations is kept: \1 lie outside the period "
                     r".*, 0 outside the domain", " ".join(out.split()))  # fmt: skip
    assert main(["-v", "run", cfg]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().out
    assert not (tmp_path / "out" / "posterior.nc").exists()


def test_config_errors_apply_before_records_without_uncertainty_are_dropped(fixtures_dir, tmp_path):
    """A file whose records carry no uncertainty runs when the config gives error_ppm."""
    from cityflux import stages
    from cityflux.config import parse_config
    from tests.observations.nc_edit import rewrite

    def no_std(nc):
        v = nc["value_std_dev"][:]
        v[:10] = -9.99e-6  # a sentinel: these ten records have no uncertainty at all
        nc["value_std_dev"][:] = v

    bare = rewrite(fixtures_dir / HTM, tmp_path / "bare.nc", drop=["icos_LTR", "icos_SMR"],
                   edit=no_std)  # fmt: skip
    data = tower_config(fixtures_dir, tmp_path / "out")
    data["observations"][0].update(path=str(bare), options={}, error_ppm=2.0)
    data["period"] = {"start": "2016-01-01T00:00:00", "end": "2018-01-01T00:00:00", "step": "1D"}
    cfg = parse_config(data)
    grid = stages.build_grid(cfg.domain)
    obs = stages.read_observations(cfg.observations, cfg.period, grid, cfg.observation_errors)
    assert obs.sizes["obs"] == 100  # none dropped for want of an uncertainty
    np.testing.assert_allclose(obs["err_transport"].values, 2.0)
    # observation_errors.transport (one number) replaces, error_ppm adds in quadrature
    data["observation_errors"] = {"transport": 1.5}
    cfg = parse_config(data)
    obs = stages.read_observations(cfg.observations, cfg.period, grid, cfg.observation_errors)
    np.testing.assert_allclose(obs["err_transport"].values, np.hypot(1.5, 2.0))


def _broken_tower_cases(fixtures_dir, tmp):
    """(name, config dict) of real configurations broken in their inputs."""
    from tests.observations.nc_edit import rewrite

    def cfg(**edits):
        data = tower_config(fixtures_dir, tmp / "out")
        for key, value in edits.items():
            section, _, name = key.partition("__")
            if name:
                target = data[section][0] if isinstance(data[section], list) else data[section]
                target[name] = value
            else:
                data[section] = value
        return data

    units = rewrite(fixtures_dir / HTM, tmp / "units.nc", attrs={"value": {"units": "furlongs"}})
    trunc = tmp / "truncated_edgar.nc"
    trunc.write_bytes((fixtures_dir / EDGAR).read_bytes()[:2000])
    folder = tmp / "a_folder.nc"
    folder.mkdir(exist_ok=True)
    inv = [{"path": str(trunc), "format": "edgar"}]
    return [
        ("wrong units", cfg(observations__path=str(units))),
        ("outside the period", cfg(period={"start": "2030-01-01T00:00:00",
                                           "end": "2030-01-02T00:00:00", "step": "6h"})),
        ("unknown reader option", cfg(observations__options={"hourz": [10, 18]})),
        ("truncated inventory", cfg(prior={**tower_config(fixtures_dir, tmp)["prior"],
                                           "inventories": inv})),
        ("directory as observation file", cfg(observations__path=str(folder))),
    ]  # fmt: skip


def test_validate_refuses_what_run_refuses_with_the_same_message(fixtures_dir, tmp_path, capsys):
    for name, data in _broken_tower_cases(fixtures_dir, tmp_path):
        path = _write(tmp_path, f"{name.replace(' ', '_')}.yaml", data)
        code_v = main(["validate", path])
        out_v = capsys.readouterr().out
        code_r = main(["run", path])
        out_r = capsys.readouterr().out
        assert code_v == code_r and code_v in (2, 3), (name, code_v, code_r, out_v)
        first = lambda out: " ".join(out.split("error", 1)[1].split())  # noqa: E731
        assert first(out_v)[:200] == first(out_r)[:200], name
        assert "Traceback" not in out_v + out_r
        assert not (tmp_path / "out" / "posterior.nc").exists(), name
