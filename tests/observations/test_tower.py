"""Tower readers on the real fixtures: values, times and flags checked against netCDF4 / by hand."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest

import observations as obs

HTM = "insitu/co2_htm_tower-insitu_424_allvalid-150magl_small.nc"
BAO = "insitu/ch4_bao_tower-insitu_1_ccgg_all.nc"
GAT = "insitu/icos_atc_nrt_GAT_realatc.CO2"


def test_icos_obspack_values_times(fixtures_dir):
    path = fixtures_dir / HTM
    ds = obs.read(path)
    assert obs.detect_format(path) == "obspack"
    with netCDF4.Dataset(path) as nc:
        raw = np.ma.filled(nc["value"][:].astype("f8"), np.nan)
        t = nc["time"][:].astype("int64")
        flags = nc["qc_flag"][:].astype(str)
        std = nc["value_std_dev"][:].astype("f8")
    assert set(flags) <= {"O", "U"}
    assert ds.sizes["obs"] == raw.size  # hourly file, one record per hour, none flagged
    for i in (0, 17, 99):
        np.testing.assert_allclose(ds["value"].values[i], raw[i] * 1e6, rtol=1e-12)
        # interval-start stamp + 30 min = representative midpoint
        assert ds["time"].values[i] == np.datetime64(int(t[i]), "s") + np.timedelta64(30, "m")
        np.testing.assert_allclose(ds["std"].values[i], std[i] * 1e6, rtol=1e-6)
    assert ds["alt"].attrs["reference"] == "agl"
    np.testing.assert_allclose(ds["alt"].values, 150.0)
    assert set(ds["scale"].values) == {"WMO CO2 X2019"}
    rep = obs.qc_report(ds)
    assert rep.sources[0].read == 100 and rep.sources[0].kept == 100


def test_noaa_ch4_units_and_species(fixtures_dir):
    path = fixtures_dir / BAO
    with pytest.raises(ValueError, match="ch4"):
        obs.read(path)  # species co2 by default: must fail clearly
    ds = obs.read(path, species="ch4", intake_height=300.0)
    with netCDF4.Dataset(path) as nc:
        v = nc["value"][:].astype("f8")
        h = nc["intake_height"][:].astype("f8")
        tc = nc["time_components"][:]
        unc = nc["value_unc"][:].astype("f8")
    sel = np.flatnonzero(h == 300.0)
    assert ds.sizes["obs"] == sel.size
    for j in (0, 5, sel.size - 1):
        i = sel[j]
        np.testing.assert_allclose(ds["value"].values[j], v[i] * 1e-3, rtol=1e-12)  # nmol->ppm
        np.testing.assert_allclose(ds["err_instrument"].values[j], unc[i] * 1e-3, rtol=1e-12)
        y, mo, d, hh, mi, s = (int(x) for x in tc[i])
        expect = np.datetime64(f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mi:02d}:{s:02d}")
        assert ds["time"].values[j] == expect + np.timedelta64(30, "m")
    rep = obs.qc_report(ds).sources[0]
    assert rep.read == v.size and rep.dropped == {"other intake height": v.size - sel.size}
    generic = obs.read(path, species=None)
    assert generic.attrs["species"] == "ch4"
    np.testing.assert_allclose(generic["alt"].values, 300.0)  # "highest" intake by default


def test_noaa_hours_selection_local_solar(fixtures_dir):
    ds = obs.read(fixtures_dir / BAO, species="ch4", hours=(12, 17))
    lst = (ds["time"].values.astype("datetime64[ns]").astype("int64") / 3.6e12 - 105.004 / 15) % 24
    assert ((lst >= 12) & (lst < 17)).all()
    assert np.unique(np.floor(lst)).tolist() == [12, 13, 14, 15, 16]
    rep = obs.qc_report(ds).sources[0]
    assert rep.dropped["outside local solar hours [12, 17)"] > 0
    # one group per site-day
    days = np.floor((ds["time"].values.astype("int64") / 3.6e12 - 105.004 / 15) / 24)
    assert np.unique(ds["group"].values).size == np.unique(days).size


def test_icos_atc_text(fixtures_dir):
    path = fixtures_dir / GAT
    ds = obs.read(path)
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("GAT;")]
    f = lines[12].split(";")  # parse one line by hand
    hour, value, stdev, npts = int(f[5]), float(f[8]), float(f[9]), int(f[10])
    assert ds.sizes["obs"] == len(lines) == 24
    assert ds["time"].values[12] == np.datetime64(f"2018-04-12T{hour:02d}:30")
    assert ds["value"].values[12] == pytest.approx(value, abs=1e-12)
    assert ds["err_representation"].values[12] == pytest.approx(stdev / np.sqrt(npts), rel=1e-12)
    assert ds["lat"].values[0] == pytest.approx(53.0657) and ds["lon"].values[0] == 11.4429
    assert ds["scale"].values[0] == "WMO CO2 X2007"
    np.testing.assert_allclose(ds["alt"].values, 341.0)


def test_tower_csv_hourly_average(data_dir):
    ds = obs.read(data_dir / "tower_small.csv", interval="15min", err_transport=2.0)
    # hour 12: 410..413 (mean 411.5, sample std 1.29099); hour 13: 420 x3, 999 flagged
    np.testing.assert_allclose(ds["value"].values, [411.5, 420.0])
    np.testing.assert_array_equal(ds["count"].values, [4, 3])
    sd = np.std([410, 411, 412, 413], ddof=1)
    np.testing.assert_allclose(ds["std"].values[0], sd, rtol=1e-12)
    np.testing.assert_allclose(ds["err_representation"].values, [sd / 2, 0.0], atol=1e-12)
    np.testing.assert_allclose(ds["err_instrument"].values, [0.1 / 2, 0.1 / np.sqrt(3)])
    np.testing.assert_allclose(ds["err_transport"].values, 2.0)
    assert ds["time"].values[0] == np.datetime64("2020-06-01T12:30")
    rep = obs.qc_report(ds).sources[0]
    assert rep.dropped == {"quality flag": 1, "other intake height": 1}
    assert rep.averaged == 7 and rep.kept == 2
    total = obs.total_error(ds).values
    np.testing.assert_allclose(total[1], np.sqrt(0.01 / 3 + 4.0), rtol=1e-12)


def test_period_selection(fixtures_dir):
    ds = obs.read(fixtures_dir / HTM, start="2016-12-14", end="2016-12-15")
    t = ds["time"].values
    assert (t >= np.datetime64("2016-12-14")).all() and (t < np.datetime64("2016-12-15")).all()
    assert ds.sizes["obs"] == 24
    assert obs.qc_report(ds).sources[0].dropped["outside requested period"] == 76
