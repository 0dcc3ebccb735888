"""Footprint variants in real use (transport_models/footprints/FORMAT.md), derived from the real
STILT and NAME files or built from the documented layouts, and inspect == read on bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from footprint_builders import aggregated_stilt as _aggregated

from ingest import ReaderOptionError, UnitsError
from transport_models.footprints import (
    FootprintError,
    FootprintWarning,
    detect_format,
    inspect_footprint,
    layer_bounds,
    parse_stilt_name,
    read_footprint,
)

FIX = Path(__file__).parents[2] / ".." / "shared" / "fixtures"
STILT = FIX / "stilt" / "pystilt_r_foot_201512100000_-112_40.5_5.nc"
NAME_INERT = FIX / "name" / "openghg_TAC-100magl_UKV_TEST_201607.nc"
NAME_CO2 = FIX / "name" / "openghg_TAC-100magl_UKV_co2_TEST_201407.nc"
H = np.timedelta64(1, "h")


def _copy(tmp_path: Path, name: str, src: Path = STILT) -> Path:
    p = tmp_path / name
    shutil.copy(src, p)
    p.chmod(0o644)
    return p


def _raw_foot() -> np.ndarray:
    with netCDF4.Dataset(STILT) as nc:
        return np.asarray(nc["foot"][:], dtype=np.float32)


@pytest.mark.parametrize(
    "units",
    ["ppm per (micromol m-2 s-1)", "ppm/(umol m-2 s-1)", "(mol/mol)/(mol/m2/s)", "s m2 mol-1"],
)
def test_stilt_unit_spellings(tmp_path, units):
    p = _copy(tmp_path, "201512100000_-112_40.5_5_foot.nc")
    with netCDF4.Dataset(p, "a") as nc:
        nc["foot"].units = units
    np.testing.assert_array_equal(read_footprint(p).values, _raw_foot())


def test_stilt_ppb_units_scaled_and_wrong_units_named(tmp_path):
    p = _copy(tmp_path, "201512100000_-112_40.5_5_foot.nc")
    with netCDF4.Dataset(p, "a") as nc:
        nc["foot"].units = "ppb (umol-1 m2 s)"
    np.testing.assert_allclose(read_footprint(p).values, _raw_foot() * 1e-3, rtol=1e-6)
    with netCDF4.Dataset(p, "a") as nc:
        nc["foot"].units = "umol CO2 m-2 s-1"  # early R-STILT wrote this (wrong) string
    with pytest.raises(
        UnitsError, match=r"201512100000_-112_40\.5_5_foot\.nc: variable 'foot'.*'umol CO2 m-2 s-1'"
    ):
        read_footprint(p)
    fixed = read_footprint(p, units="ppm (umol-1 m2 s)")  # the documented override
    np.testing.assert_array_equal(fixed.values, _raw_foot())


@pytest.mark.parametrize(
    ("name", "receptor"),
    [
        ("hrrr_201512100000_-112_40.5_5_slc_foot.nc", (-112.0, 40.5, 5.0)),  # PYSTILT
        ("201512100000_-112_40.5_5_foot.nc", (-112.0, 40.5, 5.0)),  # R-STILT
        ("foot2015x12x10x00x40.50Nx112.00Wx00005.nc", (-112.0, 40.5, 5.0)),  # STILT v1 / AER
        ("foot2015x12x10x00x40.50Sx112.00Ex00005_aggreg.nc", (112.0, -40.5, 5.0)),  # ICOS
    ],
)
def test_stilt_name_patterns(tmp_path, name, receptor):
    info = parse_stilt_name(name)
    assert info["time"] == np.datetime64("2015-12-10T00:00", "ns")
    assert (info["lon"], info["lat"], info["height"]) == receptor
    p = _copy(tmp_path, name)
    assert detect_format(p) == "stilt"
    fp = read_footprint(p)
    assert (fp["receptor_lon"].item(), fp["receptor_lat"].item()) == receptor[:2]
    assert fp.attrs["time_integrated"] == 0 and fp.attrs["layer_seconds"] == 3600.0


def test_icos_aggregated_footprint_keeps_its_interval(tmp_path):
    p = tmp_path / "foot2018x01x10x12x51.97Nx004.93Ex00020_aggreg.nc"
    vals = _aggregated(p)
    fp = read_footprint(p)
    start, end = layer_bounds(fp)
    rt = np.datetime64("2018-01-10T12:00", "ns")
    assert end[0, 0] == rt and start[0, 0] == rt - 240 * H
    assert fp.attrs["time_integrated"] == 1 and fp.attrs["backtime_hours"] == 240.0
    assert fp.attrs["backtime_source"] == "global attribute backtime='-240 hours'"
    np.testing.assert_allclose(fp.values[0], vals, rtol=1e-7)
    # without the attribute: ICOS-named files default to 240 h, with a warning
    q = tmp_path / "foot2018x01x10x12x51.97Nx004.93Ex00020.nc"
    _aggregated(q, backtime=None)
    with pytest.warns(FootprintWarning, match="assumed default 240 h"):
        g = read_footprint(q)
    assert layer_bounds(g)[0][0, 0] == rt - 240 * H
    h = read_footprint(q, backtime_hours=72)
    assert (
        layer_bounds(h)[0][0, 0] == rt - 72 * H
        and h.attrs["backtime_source"] == "option backtime_hours=72"
    )
    # a file stamped at the start of its back-time (as the ICOS viewer shows it) reads the same
    r = tmp_path / "foot2018x01x10x12x51.97Nx004.93Ex00021_aggreg.nc"
    _aggregated(r, stamp=np.datetime64("2017-12-31T12:00"))
    assert layer_bounds(read_footprint(r))[1][0, 0] == rt


def test_rstilt_time_integrated_single_layer(tmp_path):
    """R-STILT time_integrate=TRUE: one layer stamped with the receptor time (calc_footprint.r)."""
    with xr.open_dataset(STILT) as ds:
        one = ds.isel(time=[0]).load()
    one["foot"].values = ds["foot"].values.sum(axis=0, keepdims=True)
    one = one.assign_coords(time=[np.datetime64("2015-12-10T00:00", "ns")])
    p = tmp_path / "201512100000_-112_40.5_5_foot.nc"
    one.to_netcdf(p)
    with pytest.warns(FootprintWarning, match="assumed default 24 h"):
        fp = read_footprint(p)
    start, end = layer_bounds(fp)
    assert end[0, 0] == np.datetime64("2015-12-10", "ns") and start[0, 0] == end[0, 0] - 24 * H
    six = read_footprint(p, backtime_hours=6)
    assert layer_bounds(six)[0][0, 0] == np.datetime64("2015-12-09T18:00", "ns")


def test_backtime_dimension_layers(tmp_path):
    """FLEXPART-web/ICOS 3-D layout: foot(backtime, lat, lon) with hourly backtime stamps."""
    raw = _raw_foot()
    with xr.open_dataset(STILT) as ds:
        stamps = ds["time"].values
    da = xr.DataArray(raw, dims=("backtime", "lat", "lon"),
                      coords={"backtime": stamps, "lat": np.linspace(39.505, 41.495, 200),
                              "lon": np.linspace(-112.995, -111.005, 200)},
                      attrs={"units": "ppm / (micromoles m-2 s-1)"})  # fmt: skip
    p = tmp_path / "201512100000_-112_40.5_5_foot.nc"
    da.to_dataset(name="foot").to_netcdf(p)
    fp = read_footprint(p)
    np.testing.assert_array_equal(fp["time"].values, stamps.astype("datetime64[ns]"))
    assert fp.attrs["layer_seconds"] == 3600.0 and fp.attrs["time_integrated"] == 0


def test_icos_slot_file_needs_receptor_option(tmp_path):
    d = tmp_path / "2018x01x10x12"
    d.mkdir()
    p = d / "foot"
    _aggregated(p)
    with pytest.raises(FootprintError, match=r"ICOS STILT slot file.*receptor="):
        read_footprint(p, format="stilt")
    fp = read_footprint(p, format="stilt", receptor={"lat": 51.97, "lon": 4.93, "height": 20})
    assert fp["receptor_time"].values == np.datetime64("2018-01-10T12:00", "ns")
    assert fp["receptor_id"].item() == "2018x01x10x12/foot"


def test_name_column_kind_and_hitres_residual(tmp_path):
    p = _copy(tmp_path, "GOSAT-BRAZIL-column_SOUTHAMERICA_201607.nc", NAME_INERT)
    fp = read_footprint(p, back_hours=240)
    assert set(fp["receptor_kind"].values) == {"column"}
    assert fp.attrs["kind_source"].startswith("file name")
    assert set(read_footprint(p, back_hours=240, kind="tower")["receptor_kind"].values) == {"tower"}
    with xr.open_dataset(NAME_CO2) as ds:
        sub = ds.isel(time=[0]).load()
    q = tmp_path / "TAC-100magl_sub.nc"
    sub.to_netcdf(q)
    hr = read_footprint(q, hitres=True, back_hours=100)
    start, end = layer_bounds(hr)
    t0 = sub["time"].values[0]
    # residual (last H_back element) covers [t - 100 h, t - 26 h); resolved 2-h layers after it
    assert start[0, 0] == t0 - 100 * H and end[0, 0] == t0 - 26 * H
    assert (end[0, 1:] - start[0, 1:] == 2 * H).all() and end[0, -1] == t0
    assert (start[0, 1:] == end[0, :-1]).all()  # contiguous, no gap, no overlap


def test_all_zero_footprint_warns(tmp_path):
    p = _copy(tmp_path, "201512100000_-112_40.5_5_foot.nc")
    with netCDF4.Dataset(p, "a") as nc:
        nc["foot"][:] = 0.0
    with pytest.warns(FootprintWarning, match="1 of 1 receptor"):
        fp = read_footprint(p)
    assert fp.attrs["n_all_zero_receptors"] == 1


def test_unknown_valid_netcdf_footprint_message(tmp_path):
    p = tmp_path / "stranger.nc"
    xr.Dataset({"brightness": ("n", [1.0, 2.0])}).to_netcdf(p)
    with pytest.raises(FootprintError, match=r"could not detect.*brightness") as err:
        read_footprint(p)
    assert "corrupt" not in str(err.value)


def _broken(tmp_path: Path):
    trunc = tmp_path / "201512100000_-112_40.5_5_foot_trunc.nc"
    trunc.write_bytes(STILT.read_bytes()[:5000])
    units = _copy(tmp_path, "201512100000_-112_40.5_6_foot.nc")
    with netCDF4.Dataset(units, "a") as nc:
        nc["foot"].units = "kg m-2"
    return [
        (trunc, {}),
        (units, {}),
        (tmp_path, {}),
        (tmp_path / "missing_foot.nc", {}),
        (STILT, {"hitres": True}),
        (STILT, {"format": "nosuch"}),
    ]


def test_inspect_footprint_raises_what_read_raises(tmp_path):
    for path, opts in _broken(tmp_path):
        with pytest.raises(Exception) as a:
            read_footprint(path, **opts)
        with pytest.raises(Exception) as b:
            inspect_footprint(path, **opts)
        assert type(a.value) is type(b.value) and str(a.value) == str(b.value), (path, opts)
    with pytest.raises(ReaderOptionError, match=r"\['hitres'\].*'backtime_hours'"):
        read_footprint(STILT, hitres=True)


def test_inspect_footprint_summary(tmp_path):
    info = inspect_footprint(STILT)
    fp = read_footprint(STILT)
    assert info.format == "stilt" and info.n_records == 1 and info.kinds == ("tower",)
    assert info.time_range == (fp["time"].values[0], fp["time"].values[-1] + H)
    assert info.bbox == pytest.approx((-112.995, 39.505, -111.005, 41.495), abs=1e-6)
    assert info.units == {"foot": "ppm (umol-1 m2 s)"}
    np.testing.assert_allclose(
        info.details["total_sensitivity"], fp.values.astype("f8").sum(), rtol=1e-12
    )
    p = tmp_path / "foot2018x01x10x12x51.97Nx004.93Ex00020_aggreg.nc"
    _aggregated(p)
    agg = inspect_footprint(p)
    assert agg.details["time_integrated"] == 1 and "backtime" in agg.assumptions["backtime_source"]
    assert agg.time_range[1] - agg.time_range[0] == 240 * H


def test_projected_stilt_needs_crs(tmp_path):
    with xr.open_dataset(STILT) as ds:
        proj = ds.rename({"lon": "x", "lat": "y"}).load()
    proj.attrs.pop("crs", None)
    p = tmp_path / "201512100000_-112_40.5_5_foot.nc"
    proj.to_netcdf(p)
    with pytest.raises(
        FootprintError, match=r"_foot\.nc: projected STILT footprint without a global 'crs'"
    ):
        read_footprint(p)


@pytest.mark.parametrize(
    ("name", "opts", "refusal"),
    [
        ("stilt/pystilt_r_foot_201512100000_-112_40.5_5.nc", {}, None),
        ("flexpart/grid_time_20091130210000.nc", {}, None),
        ("name/openghg_TAC-100magl_UKV_TEST_201607.nc", {"back_hours": 720}, None),
        ("name/openghg_TAC-100magl_UKV_co2_TEST_201407.nc", {"back_hours": 720}, None),
        (
            "name/openghg_TAC-100magl_UKV_co2_TEST_201407.nc",
            {"hitres": True, "back_hours": 720},
            "NaN",
        ),
        (
            "name/openghg_MHD-10magl_NAME_UKV_TEST_inert_PARIS-format_201301.nc",
            {"back_hours": 720},
            None,
        ),
    ],
)
def test_every_real_footprint_file(name, opts, refusal):
    path = FIX / name
    if refusal is None:
        with np.errstate(all="ignore"):
            fp = read_footprint(path, **opts)
        assert np.isfinite(fp.values).all() and fp.sizes["time"] >= 1
    else:
        with pytest.raises(FootprintError, match=refusal):
            read_footprint(path, **opts)
