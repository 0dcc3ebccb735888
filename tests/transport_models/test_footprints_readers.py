"""Footprint readers on the real fixture files and on broken copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from inversion import Grid
from transport_models.footprints import (
    M_AIR,
    FootprintError,
    FootprintWarning,
    detect_format,
    read_boundary_sensitivity,
    read_footprint,
    read_name,
    register_footprint_reader,
    write_footprint,
)

FIX = Path(__file__).parents[2] / ".." / "shared" / "fixtures"
STILT = FIX / "stilt" / "pystilt_r_foot_201512100000_-112_40.5_5.nc"
FLEXPART = FIX / "flexpart" / "grid_time_20091130210000.nc"
NAME_CO2 = FIX / "name" / "openghg_TAC-100magl_UKV_co2_TEST_201407.nc"
NAME_INERT = FIX / "name" / "openghg_TAC-100magl_UKV_TEST_201607.nc"
PARIS = FIX / "name" / "openghg_MHD-10magl_NAME_UKV_TEST_inert_PARIS-format_201301.nc"


def test_stilt_real_values_times_receptor():
    fp = read_footprint(STILT)
    assert detect_format(STILT) == "stilt"
    assert fp.dims == ("time", "y", "x")
    with netCDF4.Dataset(STILT) as nc:
        raw = np.asarray(nc["foot"][:], dtype=np.float32)  # (time, lat, lon), ppm/(umol m-2 s-1)
        lat, lon = nc["lat"][:], nc["lon"][:]
        secs = nc["time"][:]
    np.testing.assert_array_equal(fp.values, raw)
    np.testing.assert_allclose(fp["y"].values, lat, atol=1e-9)
    np.testing.assert_allclose(fp["x"].values, lon, atol=1e-9)
    expected = np.datetime64("1970-01-01", "ns") + (secs * 1e9).astype("timedelta64[ns]")
    np.testing.assert_array_equal(fp["time"].values, expected)
    # receptor from the file name 201512100000_-112_40.5_5
    assert fp["receptor_time"].values == np.datetime64("2015-12-10T00:00", "ns")
    assert (fp["receptor_lon"].item(), fp["receptor_lat"].item()) == (-112.0, 40.5)
    assert fp["receptor_height"].item() == 5.0
    assert fp.attrs["layer_seconds"] == 3600.0
    # last layer starts one hour before the receptor: time = start of each back-hour
    assert fp["time"].values[-1] + np.timedelta64(1, "h") == fp["receptor_time"].values
    g = Grid.from_dataarray(fp)
    assert g.shape == (200, 200) and g.is_geographic
    np.testing.assert_allclose(g.bounds, (-113.0, 39.5, -111.0, 41.5), atol=1e-9)


def test_flexpart_conversion_by_hand():
    fp = read_footprint(FLEXPART)
    assert detect_format(FLEXPART) == "flexpart"
    assert fp.dims == ("receptor", "time", "y", "x") and fp.sizes["receptor"] == 42
    with netCDF4.Dataset(FLEXPART) as nc:
        s = np.asarray(nc["spec001_mr"][0, 3, :, 0], dtype=np.float64)  # (time, lat, lon)
        h = float(nc["height"][0])
    assert h == 100.0
    # ppm/(umol m-2 s-1) = s m3 kg-1 / h[m] * M_air[kg/mol]; layers reversed to increasing time
    expected = (s * M_AIR / h)[::-1]
    np.testing.assert_allclose(fp.values[3], expected, rtol=1e-6)
    assert (np.diff(fp["time"].values) == np.timedelta64(3, "h")).all()
    assert fp["receptor_time"].values[0] == np.datetime64("2009-11-30T20:00", "ns")
    np.testing.assert_allclose(fp["receptor_height"].values[:2], [250.0, 750.0])
    # magnitude: 14 days of a near-surface release, order 1 ppm per (umol m-2 s-1)
    total = float(fp.isel(receptor=0).sum())
    assert 0.1 < total < 30


def test_name_openghg_and_paris():
    with pytest.warns(FootprintWarning, match="back-trajectory length assumed default 720 h"):
        fp = read_footprint(NAME_INERT)
    assert detect_format(NAME_INERT) == "name"
    with netCDF4.Dataset(NAME_INERT) as nc:
        raw = np.asarray(nc["fp"][:], dtype=np.float32)  # (lat, lon, time), (mol/mol)/(mol/m2/s)
    # 1 (mol/mol)/(mol m-2 s-1) = 1 ppm/(umol m-2 s-1)
    np.testing.assert_array_equal(fp.values[:, 0], np.moveaxis(raw, -1, 0))
    # the integrated fp covers the back-trajectory [t - 720 h, t) (documented default, warned)
    np.testing.assert_array_equal(fp["layer_end"].values[:, 0], fp["receptor_time"].values)
    np.testing.assert_array_equal(
        fp["layer_time"].values[:, 0], fp["receptor_time"].values - np.timedelta64(720, "h")
    )
    assert "assumed default 720 h" in fp.attrs["backtime_source"]
    given = read_footprint(NAME_INERT, back_hours=48)
    assert given.attrs["backtime_source"] == "option back_hours=48"
    assert (given["receptor_time"] - given["layer_time"][:, 0] == np.timedelta64(48, "h")).all()
    assert fp["receptor_height"].values[0] == 100.0
    assert Grid.from_dataarray(fp).shape == (12, 12)

    fpp = read_footprint(PARIS)
    assert detect_format(PARIS) == "paris"
    with netCDF4.Dataset(PARIS) as nc:
        rawp = np.asarray(nc["srr"][:], dtype=np.float32)
    np.testing.assert_array_equal(fpp.values[:, 0], rawp)
    assert fpp["receptor_height"].values[0] == 10.0


def test_name_hitres_real_file_has_nan_and_is_rejected():
    with pytest.raises(FootprintError, match="NaN"):
        read_name(NAME_CO2, hitres=True)


def test_name_hitres_layers(tmp_path):
    with xr.open_dataset(NAME_CO2) as ds:
        sub = ds.isel(time=[0]).load()
    p = tmp_path / "TAC-100magl_sub.nc"
    sub.to_netcdf(p)
    fp = read_name(p, hitres=True)
    hb = sub["H_back"].values
    assert fp.shape == (1, hb.size, 12, 12)
    t0 = sub["time"].values[0]
    # layer for H_back=0 covers [t - 2h, t): the last (latest) layer
    assert fp["layer_time"].values[0, -1] == t0 - np.timedelta64(2, "h")
    expect = np.moveaxis(sub["fp_HiTRes"].values[:, :, 0, ::-1], -1, 0)
    np.testing.assert_allclose(fp.values[0], expect, rtol=1e-6)


def test_boundary_sensitivity():
    b = read_boundary_sensitivity(NAME_INERT)
    assert b.dims == ("receptor", "bc") and list(b["bc"].values) == ["n", "e", "s", "w"]
    with netCDF4.Dataset(NAME_INERT) as nc:
        n0 = float(np.asarray(nc["particle_locations_n"][:, :, 0], dtype=np.float64).sum())
    np.testing.assert_allclose(b.values[0, 0], n0, rtol=1e-6)
    bh = read_boundary_sensitivity(PARIS, resolve="side_height")
    assert bh.shape == (49, 80)
    np.testing.assert_allclose(
        bh.values.sum(axis=1), read_boundary_sensitivity(PARIS).values.sum(1)
    )


def _xstilt_fixture(tmp_path: Path) -> Path:
    """A small X-STILT column footprint following the published layout (see _stilt.py)."""
    rng = np.random.default_rng(3)
    t = np.datetime64("2020-07-01T19:00", "ns") - np.arange(3, 0, -1) * np.timedelta64(1, "h")
    ds = xr.Dataset(
        {"foot": (("time", "lat", "lon"), rng.random((3, 4, 5)).astype("f4") * 1e-3)},
        coords={
            "time": t,
            "lat": 40 + 0.01 * np.arange(4) + 0.005,
            "lon": -112 + 0.01 * np.arange(5),
        },
    )
    ds["foot"].attrs["units"] = "ppm (umol-1 m2 s)"
    ds.attrs.update({"crs": "+proj=longlat", "title": "X-STILT column footprint"})
    p = tmp_path / "202007011900_-111.98_40.015_X_foot.nc"
    ds.to_netcdf(p)
    return p


def test_xstilt_column(tmp_path):
    p = _xstilt_fixture(tmp_path)
    assert detect_format(p) == "xstilt"
    fp = read_footprint(p)
    assert fp["receptor_kind"].item() == "column"
    assert np.isnan(fp["receptor_height"].item())
    assert fp["receptor_time"].values == np.datetime64("2020-07-01T19:00", "ns")


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_generic_roundtrip(tmp_path, suffix):
    fp = read_footprint(STILT)
    p = write_footprint(fp, tmp_path / f"fp{suffix}")
    assert detect_format(p) == "cityflux"
    back = read_footprint(p)
    np.testing.assert_array_equal(back.values, fp.values)
    for k in ("time", "receptor_time", "receptor_lat", "receptor_kind"):
        np.testing.assert_array_equal(back[k].values, fp[k].values)
    assert Grid.from_dataarray(back) == Grid.from_dataarray(fp)


def test_register_reader(tmp_path):
    calls = []

    def reader(path, **kw):
        calls.append(path)
        return read_footprint(STILT)

    register_footprint_reader("mine", reader, lambda p, ds: p.suffix == ".mine", overwrite=True)
    p = tmp_path / "a.mine"
    xr.Dataset({"v": ("a", [1.0])}).to_netcdf(p)
    assert detect_format(p) == "mine"
    read_footprint(p)
    assert calls == [p]
    with pytest.raises(ValueError, match="already registered"):
        register_footprint_reader("mine", reader)


# ---------------------------------------------------------------- broken inputs
def _copy(tmp_path: Path, name: str = "201512100000_-112_40.5_5_foot.nc") -> Path:
    p = tmp_path / name
    shutil.copy(STILT, p)
    p.chmod(0o644)
    return p


def _edit(p: Path, fn) -> None:
    with xr.open_dataset(p) as ds:
        ds = ds.load()
    ds = fn(ds)
    p.unlink()
    ds.to_netcdf(p)


def test_unknown_units(tmp_path):
    p = _copy(tmp_path)
    _edit(p, lambda ds: ds.assign(foot=ds.foot.assign_attrs(units="kg m-2")))
    with pytest.raises(FootprintError, match=r"units 'kg m-2'.*"):
        read_footprint(p)
    with pytest.raises(FootprintError, match=p.name):
        read_footprint(p)


def test_nan_values(tmp_path):
    p = _copy(tmp_path)

    def f(ds):
        v = ds.foot.values.copy()
        v[2, 10, 10] = np.nan
        return ds.assign(foot=(ds.foot.dims, v, ds.foot.attrs))

    _edit(p, f)
    with pytest.raises(FootprintError, match=r"NaN.*layer 2"):
        read_footprint(p)


@pytest.mark.parametrize(
    ("index", "what"), [([0, 1, 1, 2, 3, 4], "overlapping"), ([0, 1, 3, 4, 5], "missing")]
)
def test_overlapping_or_missing_hours(tmp_path, index, what):
    p = _copy(tmp_path)
    _edit(p, lambda ds: ds.isel(time=index))
    with pytest.raises(FootprintError, match=what):
        read_footprint(p)


def test_missing_variable_and_corrupt(tmp_path):
    p = _copy(tmp_path)
    _edit(p, lambda ds: ds.rename({"foot": "other"}))
    with pytest.raises(FootprintError, match="missing variable"):
        read_footprint(p)  # detected as STILT from the name
    q = tmp_path / "renamed.nc"
    shutil.copy(p, q)
    with pytest.raises(FootprintError, match="could not detect"):
        read_footprint(q)
    bad = tmp_path / "201512100000_-112_40.5_5_foot_bad.nc"
    bad.write_bytes(STILT.read_bytes()[:5000])
    with pytest.raises(FootprintError, match="corrupt"):
        read_footprint(bad, format="stilt")
    with pytest.raises(FileNotFoundError):
        read_footprint(tmp_path / "nope.nc")


def test_receptor_unknown(tmp_path):
    p = _copy(tmp_path, "footprint.nc")
    with pytest.raises(FootprintError, match="receptor"):
        read_footprint(p)


def test_flexpart_wrong_units(tmp_path):
    p = tmp_path / "grid_time_x.nc"
    with xr.open_dataset(FLEXPART) as ds:
        sub = ds.isel(pointspec=[0], numpoint=[0], time=slice(0, 4)).load()
    sub["spec001_mr"].attrs["units"] = "s"
    sub.to_netcdf(p)
    with pytest.raises(FootprintError, match="IND_RECEPTOR=2"):
        read_footprint(p)


def test_negative_values(tmp_path, caplog):
    p = _copy(tmp_path)

    def small(ds):
        v = ds.foot.values.copy()
        v[5, 0, 0] = -1e-6
        return ds.assign(foot=(ds.foot.dims, v, ds.foot.attrs))

    _edit(p, small)
    fp = read_footprint(p)  # tiny artefacts are kept and logged
    assert fp.values[5, 0, 0] == np.float32(-1e-6)
    assert "negative" in caplog.text
    _edit(p, lambda ds: ds.assign(foot=-ds.foot))
    with pytest.raises(FootprintError, match="negative"):
        read_footprint(p)


def test_absurd_value_refused_with_file_variable_and_location(tmp_path):
    """One absurd cell anywhere in the file (here far outside any inversion domain) is refused
    by the reader, naming the file, the variable and where it is; the threshold applies after
    unit conversion."""
    p = _copy(tmp_path)
    with netCDF4.Dataset(STILT) as nc:
        lat, lon = nc["lat"][:], nc["lon"][:]
        t0 = netCDF4.num2date(nc["time"][3], nc["time"].units)

    def spike(ds):
        v = ds.foot.values.copy()
        v[3, 150, 20] = 1e30
        return ds.assign(foot=(ds.foot.dims, v, ds.foot.attrs))

    _edit(p, spike)
    with pytest.raises(FootprintError) as err:
        read_footprint(p)
    msg = str(err.value)
    assert p.name in msg and "variable 'foot' holds 1 absurd value" in msg
    assert f"layer 3, starting {t0.isoformat()[:19]}" in msg
    assert f"y {float(lat[150]):.6g}, x {float(lon[20]):.6g}" in msg
    q = _copy(tmp_path, "big_201512100000_-112_40.5_5_foot.nc")
    with netCDF4.Dataset(q, "a") as nc:  # 0.26 ppm per (µmol m-2 s-1) read as ppm per (pmol ...)
        nc["foot"].units = "ppm (pmol-1 m2 s)"
    with pytest.raises(FootprintError, match="absurd value"):
        read_footprint(q)


@pytest.mark.parametrize("src", [STILT, NAME_INERT, FLEXPART])
def test_time_units_not_understood_refused(tmp_path, src):
    name = "201512100000_-112_40.5_5_foot.nc" if src == STILT else src.name
    p = tmp_path / name
    shutil.copy(src, p)
    p.chmod(0o644)
    with netCDF4.Dataset(p, "a") as nc:
        nc["time"].units = "bananas"
    with pytest.raises(FootprintError, match=rf"{p.name}: variable 'time'.*'bananas'"):
        read_footprint(p)


@pytest.mark.parametrize(
    ("change", "coord"),
    [
        (lambda ds: ds.rename({"lat": "t", "lon": "lat"}).rename({"t": "lon"}), "y"),
        (lambda ds: ds.assign_coords(lat=ds.lat * 3), "y"),
        (lambda ds: ds.assign_coords(lon=ds.lon + 720), "x"),
    ],
)
def test_swapped_or_scaled_coordinates_refused(tmp_path, change, coord):
    p = _copy(tmp_path)
    _edit(p, change)
    with pytest.raises(FootprintError, match=rf"{p.name}: coordinate {coord} .* degrees, beyond"):
        read_footprint(p)


def test_flexpart_nan_refused_not_summed_away(tmp_path):
    """NaN in spec001_mr is refused (the sum over age classes once skipped it: an all-zero
    footprint and exit 0)."""
    p = tmp_path / "grid_time_nan.nc"
    with xr.open_dataset(FLEXPART) as ds:
        sub = ds.isel(pointspec=[0], numpoint=[0], time=slice(0, 4)).load()
    v = sub["spec001_mr"].values.copy()
    v[..., 2, 0, 10, 10] = np.nan
    sub["spec001_mr"] = (sub["spec001_mr"].dims, v, sub["spec001_mr"].attrs)
    sub.to_netcdf(p)
    with pytest.raises(
        FootprintError, match=r"grid_time_nan\.nc: variable 'spec001_mr' holds 1 NaN"
    ):
        read_footprint(p)
