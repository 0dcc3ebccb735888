"""Inventory readers on the real EDGAR file, the ODIAC/Vulcan-layout fixtures and broken copies."""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from scipy.integrate import quad

import priors

DATA = Path(__file__).parent / "data"
EDGAR = "inventories/edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc"
A_WGS84 = 6378137.0
F_WGS84 = 1 / 298.257223563


def _band_area_quad(lat0: float, lat1: float, dlon_deg: float) -> float:
    """Ellipsoidal cell area by numerical integration of M(φ) N(φ) cos φ dφ dλ (independent)."""
    e2 = F_WGS84 * (2 - F_WGS84)

    def integrand(phi: float) -> float:
        w = 1 - e2 * np.sin(phi) ** 2
        m = A_WGS84 * (1 - e2) / w**1.5
        n = A_WGS84 / np.sqrt(w)
        return m * n * np.cos(phi)

    val, _ = quad(integrand, np.deg2rad(lat0), np.deg2rad(lat1), epsabs=0, epsrel=1e-13)
    return val * np.deg2rad(dlon_deg)


def test_edgar_annual_total_matches_hand_computation(fixtures_dir):
    path = fixtures_dir / EDGAR
    da = priors.read_inventory(path)
    assert da.attrs["format"] == "edgar" and da.attrs["units"] == "umol m-2 s-1"
    assert da.dims == ("sector", "y", "x") and list(da["sector"].values) == ["total"]
    assert da.attrs["period_start"].startswith("2015-01-01")
    # lon normalised to ±180 and sorted
    assert da["x"].values.min() >= -180 and da["x"].values.max() < 180
    assert (np.diff(da["x"].values) > 0).all()

    # hand computation from the raw file: kg CO2 m-2 s-1 × area × seconds of 2015
    with xr.open_dataset(path) as ds:
        raw = ds["emi_co2"].values.astype(float)
        lon = ds["lon"].values.astype(float)
        lat = ds["lat"].values.astype(float)
    lon = (lon + 180) % 360 - 180
    ox, oy = np.argsort(lon), np.argsort(lat)
    lon, lat, raw = lon[ox], lat[oy], raw[oy][:, ox]
    # documented cell bounds: midpoints, clipped/closed at ±90 and ±180
    lat_e = np.concatenate([[-90.0], (lat[:-1] + lat[1:]) / 2, [90.0]])
    lon_e = np.concatenate([[-180.0], (lon[:-1] + lon[1:]) / 2, [180.0]])
    areas = np.array(
        [[_band_area_quad(a, b, w) for w in np.diff(lon_e)] for a, b in itertools.pairwise(lat_e)]
    )
    # independent checks of the areas: the bands tile the ellipsoid (surface 5.10066e14 m²)
    assert areas.sum() == pytest.approx(5.100656217e14, rel=1e-9)
    # the reader rebuilds evenly spaced float32 coordinates exactly (regular to 1e-4 of a cell),
    # the hand computation uses the raw float32 midpoints: they agree to float32 precision
    np.testing.assert_allclose(da["cell_area"].values, areas, rtol=1e-6)
    seconds = 365 * 86400.0
    expected_kg = np.sum(raw * areas) * seconds

    table = priors.summarize_inventory(da)
    assert list(table["month"]) == [f"2015-{m:02d}" for m in range(1, 13)]
    assert table["emission_t_CO2"].sum() * 1e3 == pytest.approx(expected_kg, rel=1e-6)


def test_edgar_v8_fluxes_and_0_360_handled(tmp_path):
    lon = np.arange(0.05, 360, 0.1)[::300]  # 12 cells, 0–360
    lat = np.array([-45.0, 0.0, 45.0])
    vals = np.arange(lat.size * lon.size, dtype=float).reshape(lat.size, lon.size) * 1e-10
    ds = xr.Dataset(
        {"fluxes": (("lat", "lon"), vals, {"units": "kg m-2 s-1"})},
        coords={"lat": lat, "lon": lon},
    )
    p = tmp_path / "EDGAR_2022_GHG_CO2_2022_TOTALS_flx.nc"
    ds.to_netcdf(p)
    da = priors.read_inventory(p)
    assert da.attrs["format"] == "edgar"
    # cell at lon 330.05 -> -29.95, value preserved, converted kg -> µmol
    i = int(np.flatnonzero(np.isclose(lon, 330.05))[0])
    j = int(np.flatnonzero(np.isclose(da["x"].values, -29.95))[0])
    np.testing.assert_allclose(da.values[0, :, j], vals[:, i] * 1e9 / 44.0095, rtol=1e-12)


def test_odiac_totals_match_tonnes_carbon():
    path = DATA / "odiac2023_1km_excl_intl_2301.tif"
    with rasterio.open(path) as src:
        tonnes_c = src.read(1).astype(float)
        assert src.res == pytest.approx((1 / 120, 1 / 120))
    da = priors.read_inventory(path)
    assert da.attrs["format"] == "odiac"
    assert da.attrs["period_start"].startswith("2023-01-01")
    table = priors.summarize_inventory(da)
    assert list(table["month"]) == ["2023-01"]
    assert table["emission_t_CO2"].sum() == pytest.approx(
        tonnes_c.sum() * 44.0095 / 12.011, rel=1e-10
    )
    # per cell: flux · area · 31 days = tC · 1e12/12.011 µmol
    per_cell = da.values[0] * da["cell_area"].values * 31 * 86400
    np.testing.assert_allclose(per_cell, tonnes_c * 1e12 / 12.011, rtol=1e-10)
    # bbox reads a window only
    sub = priors.read_inventory(path, bbox=(-112.0, 40.6, -111.9, 40.7))
    assert sub.sizes["x"] == 12 and sub.sizes["y"] == 12


def test_odiac_negative_is_error(tmp_path):
    src = DATA / "odiac2023_1km_excl_intl_2301.tif"
    bad = tmp_path / "odiac2023_1km_excl_intl_2301.tif"
    shutil.copy(src, bad)
    with rasterio.open(bad, "r+") as ds:
        v = ds.read(1)
        v[3, 4] = -1.0
        ds.write(v, 1)
    with pytest.raises(ValueError, match="1 negative emissions"):
        priors.read_inventory(bad)


def test_vulcan_annual_and_hourly():
    ann = priors.read_inventory(DATA / "vulcan_like_2015_annual.nc")
    assert ann.attrs["format"] == "vulcan"
    assert "Lambert" in ann["spatial_ref"].attrs["crs_wkt"] or "lcc" in ann[
        "spatial_ref"
    ].attrs.get("grid_mapping_name", "")
    with xr.open_dataset(DATA / "vulcan_like_2015_annual.nc") as ds:
        tc_km2_yr = ds["carbon_emissions"].values[0].astype(float)
    # tC km-2 yr-1 -> µmol m-2 s-1 with 365 days (2015)
    np.testing.assert_allclose(
        ann.values[0, 0], tc_km2_yr * 1e12 / 12.011 / 1e6 / (365 * 86400), rtol=1e-12
    )
    table = priors.summarize_inventory(ann)
    # the annual total in t CO2 is the sum of tC per km² × 1 km² cells × 44/12
    assert table["emission_t_CO2"].sum() == pytest.approx(
        tc_km2_yr.sum() * 44.0095 / 12.011, rel=1e-10
    )
    hr = priors.read_inventory(DATA / "vulcan_like_hourly.nc")
    assert hr.sizes["time"] == 24
    assert (hr["time_end"].values - hr["time"].values == np.timedelta64(1, "h")).all()
    # the hourly file is built so that its daily mean equals the annual mean rate
    np.testing.assert_allclose(hr.values[0].mean(0), ann.values[0, 0], rtol=1e-5)


def test_generic_netcdf_units_and_errors(tmp_path):
    x = np.arange(5) * 1000.0
    y = np.arange(4) * 1000.0
    base = xr.Dataset(
        {"co2": (("y", "x"), np.full((4, 5), 2.0), {"units": "g m-2 s-1"})},
        coords={"x": x, "y": y},
    )
    p = tmp_path / "generic.nc"
    base.to_netcdf(p)
    da = priors.read_inventory(p, format="netcdf", crs="EPSG:32612")
    np.testing.assert_allclose(da.values, 2.0 / 44.0095 * 1e6, rtol=1e-12)
    # unknown units
    base["co2"].attrs["units"] = "ppm"
    base.to_netcdf(tmp_path / "ppm.nc")
    with pytest.raises(priors.UnitError, match=r"'ppm'.*Accepted: umol m-2 s-1"):
        priors.read_inventory(tmp_path / "ppm.nc", format="netcdf", crs="EPSG:32612")
    # missing units
    del base["co2"].attrs["units"]
    base.to_netcdf(tmp_path / "nounits.nc")
    with pytest.raises(priors.UnitError, match="no units attribute"):
        priors.read_inventory(tmp_path / "nounits.nc", format="netcdf", crs="EPSG:32612")
    # ... which units= fixes
    ok = priors.read_inventory(
        tmp_path / "nounits.nc", format="netcdf", crs="EPSG:32612", units="tCO2/km2/yr", year=2016
    )
    np.testing.assert_allclose(ok.values, 2.0 * 1e12 / 44.0095 / 1e6 / (366 * 86400), rtol=1e-12)
    # NaN
    base["co2"][0, 0] = np.nan
    base["co2"].attrs["units"] = "kg m-2 s-1"
    base.to_netcdf(tmp_path / "nan.nc")
    with pytest.raises(ValueError, match="1 non-finite"):
        priors.read_inventory(tmp_path / "nan.nc", format="netcdf", crs="EPSG:32612")
    # missing variable
    with pytest.raises(KeyError, match="'flux' not found"):
        priors.read_inventory(p, format="netcdf", variable="flux", crs="EPSG:32612")


def test_generic_geotiff_requires_units(tmp_path):
    from rasterio.transform import from_origin

    p = tmp_path / "map.tif"
    with rasterio.open(
        p,
        "w",
        driver="GTiff",
        width=4,
        height=3,
        count=1,
        dtype="float64",
        crs="EPSG:32612",
        transform=from_origin(400000, 4500000, 500, 500),
    ) as dst:
        dst.write(np.full((3, 4), 3.0), 1)
    with pytest.raises(priors.UnitError, match="no units"):
        priors.read_inventory(p)
    da = priors.read_inventory(p, units="umol/m2/s")
    assert da.attrs["format"] == "geotiff"
    np.testing.assert_allclose(da["cell_area"].values, 250000.0)
    with pytest.raises(priors.UnitError, match="per month"):
        priors.read_inventory(p, units="tC cell-1 month-1")
    per_month = priors.read_inventory(
        p, units="tC cell-1 month-1", period=("2024-02-01", "2024-03-01")
    )
    np.testing.assert_allclose(
        per_month.values, 3.0 * 1e12 / 12.011 / 250000.0 / (29 * 86400), rtol=1e-12
    )


@pytest.mark.parametrize(
    "units",
    [
        "kg m-2 s-1",
        "kg/m2/s",
        "µmol m-2 s-1",
        "tC/km2/yr",
        "t C per cell per month",
        "tonne C/cell/month",
        "mol m^-2 s^-1",
        "tCO2 km-2 year-1",
    ],
)
def test_unit_aliases_parse(units):
    assert priors.parse_units(units).canonical in priors.ACCEPTED_UNITS


def test_registry_and_detection(tmp_path):
    with pytest.raises(ValueError, match="already registered"):
        priors.register_inventory_reader("edgar", lambda p: None)
    with pytest.raises(ValueError, match="not a registered inventory format"):
        priors.read_inventory(DATA / "point_sources.csv", format="nope")
    with pytest.raises(ValueError, match="could not detect"):
        priors.read_inventory(DATA / "point_sources.csv")
    with pytest.raises(FileNotFoundError):
        priors.read_inventory(tmp_path / "missing.nc")


def test_point_sources_csv_units_and_stack_height(tmp_path):
    pts = priors.read_point_sources(DATA / "point_sources.csv")
    yr = 365 * 86400.0
    np.testing.assert_allclose(
        pts["rate_umol_s"].to_numpy(),
        [1.2e12 * 1e6 / 44.0095 / yr, 0.35e12 * 1e6 / 44.0095 / yr, 250e9 * 1e6 / 12.011 / yr],
        rtol=1e-12,
    )
    assert list(pts["stack_height_m"]) == [120.0, 80.0, 45.0]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,lon,lat,emission,units\na,1,2,3,ppm\n")
    with pytest.raises(priors.UnitError, match="'ppm'"):
        priors.read_point_sources(bad)
    # GeoPackage via geopandas
    import geopandas as gpd

    gdf = gpd.GeoDataFrame(
        pts.drop(columns=["lon", "lat"]).rename(columns={"rate_umol_s": "emission"}),
        geometry=gpd.points_from_xy(pts["lon"], pts["lat"]),
        crs="EPSG:4326",
    ).to_crs("EPSG:32612")
    gpkg = tmp_path / "points.gpkg"
    gdf.to_file(gpkg)
    back = priors.read_point_sources(gpkg, units="umol/s", stack_height="stack_height_m")
    np.testing.assert_allclose(back["lon"], pts["lon"], atol=1e-9)
    np.testing.assert_allclose(back["rate_umol_s"], pts["rate_umol_s"], rtol=1e-12)


@pytest.mark.parametrize(
    ("units", "factor"),
    [
        ("metric tonnes carbon/km2/year", 1e12 / 12.011 / 1e6),  # Vulcan-style words
        ("gC/m2/d", 1e6 / 12.011 / 86400.0),  # ODIAC 1x1 degree NetCDF style
        ("kg(C) m-2 s-1", 1e9 / 12.011),
        ("umol CO2 m-2 s-1", 1.0),
        ("Mg km-2 h-1", 1e12 / 44.0095 / 1e6 / 3600.0),  # bare mass = CO2
    ],
)
def test_unit_parser_factors_by_hand(units, factor):
    spec = priors.parse_units(units)  # hours and days are folded into the factor; years are not
    np.testing.assert_allclose(spec.factor, factor, rtol=1e-12)
    assert spec.area == "m2"


def test_available_formats_and_inspect(fixtures_dir, tmp_path):
    formats = priors.available_formats()
    assert isinstance(formats, dict) and next(iter(formats)) == "odiac" and "edgar" in formats
    assert priors.inventory_formats() == sorted(formats)
    path = fixtures_dir / EDGAR
    info = priors.inspect_inventory(path)
    da = priors.read_inventory(path)
    assert info.format == "edgar" and info.what == "inventory" and info.complete
    assert info.n_records == da.sizes["y"] * da.sizes["x"]
    assert info.units == {"flux": "kg m-2 s-1"}
    assert str(info.time_range[0]).startswith("2015-01-01") and str(info.time_range[1]).startswith(
        "2016-01-01"
    )
    area = da["cell_area"].values
    seconds = 365 * 86400.0
    total = float((da.values[0] * area).sum() * seconds * priors.UMOL_TO_T_CO2)
    np.testing.assert_allclose(info.details["total_t_co2"], total, rtol=1e-12)
    assert info.bbox[0] >= -180 and info.bbox[2] <= 180


def test_inspect_inventory_raises_what_read_raises(fixtures_dir, tmp_path):
    path = fixtures_dir / EDGAR
    bad_units = tmp_path / "ppm.nc"
    xr.Dataset({"co2": (("y", "x"), np.ones((2, 3)), {"units": "ppm"})},
               coords={"x": [0.0, 1e3, 2e3], "y": [0.0, 1e3]}).to_netcdf(bad_units)  # fmt: skip
    cases = [
        (path, {"bogus": 1}),
        (path, {"format": "nope"}),
        (path, {"bbox": (100.0, 80.0, 100.5, 80.5), "format": "geotiff"}),
        (bad_units, {"format": "netcdf", "crs": "EPSG:32612"}),
        (tmp_path, {}),
        (tmp_path / "none.nc", {}),
        (DATA / "point_sources.csv", {}),
    ]
    for p, opts in cases:
        with pytest.raises(Exception) as a:
            priors.read_inventory(p, **opts)
        with pytest.raises(Exception) as b:
            priors.inspect_inventory(p, **opts)
        assert type(a.value) is type(b.value) and str(a.value) == str(b.value), (p, opts)
    with pytest.raises(
        TypeError,
        match=r"\['bogus'\].*accepted options: \['bbox', 'sector', 'units', 'variable', 'year'\]",
    ):
        priors.read_inventory(path, bogus=1)


def test_edgar_v8_emissions_per_cell_need_their_time(tmp_path):
    lon = np.arange(0.05, 1.0, 0.1)
    lat = np.arange(40.05, 40.5, 0.1)
    ds = xr.Dataset(
        {"emissions": (("lat", "lon"), np.full((lat.size, lon.size), 3.0), {"units": "Tonnes"})},
        coords={"lat": lat, "lon": lon},
    )
    p = tmp_path / "EDGAR_2022_GHG_CO2_2022_TOTALS_emi.nc"
    ds.to_netcdf(p)
    with pytest.raises(priors.UnitError, match=r"_emi\.nc:emissions.*'Tonnes'"):
        priors.read_inventory(p)
    da = priors.read_inventory(p, units="t CO2 cell-1 yr-1")
    area = da["cell_area"].values
    expect = 3.0 * 1e12 / 44.0095 / area / (365 * 86400.0)  # 2022 has 365 days
    np.testing.assert_allclose(da.values[0], expect, rtol=1e-12)


@pytest.mark.parametrize(
    ("change", "coord"),
    [
        (lambda ds: ds.assign_coords(lon=ds.lon * 3), "'lon' (longitude)"),
        (lambda ds: ds.assign_coords(lat=ds.lat * 2), "'lat' (latitude)"),
        (lambda ds: ds.rename({"lat": "t", "lon": "lat"}).rename({"t": "lon"}), "'lat' (latitude)"),
    ],
)
def test_edgar_coordinates_out_of_range_refused(fixtures_dir, tmp_path, change, coord):
    """Longitudes beyond 360, latitudes beyond ±90 or swapped axes are refused naming the file
    and the coordinate (never wrapped or clipped into a plausible-looking grid)."""
    with xr.open_dataset(fixtures_dir / EDGAR) as ds:
        bad = change(ds.load())
    p = tmp_path / "edgar_2015_TOTALS.nc"
    bad.to_netcdf(p)
    with pytest.raises(
        ValueError, match=rf"edgar_2015_TOTALS\.nc:emi_co2: coordinate {re.escape(coord)} spans"
    ):
        priors.read_inventory(p)


def test_edgar_bbox_of_wrong_length_refused(fixtures_dir):
    with pytest.raises(TypeError, match=r"option 'bbox' = \[1, 2\] has the wrong type"):
        priors.read_inventory(fixtures_dir / EDGAR, bbox=[1, 2])


def test_point_sources_out_of_range_refused_outside_warned(tmp_path, caplog):
    """A latitude beyond ±90 (swapped columns) is refused naming the file and the source;
    sources outside the grid are dropped with a warning and counted."""
    p = tmp_path / "plants.csv"
    p.write_text(
        "name,lon,lat,emission,units\nA,13.4,56.1,1,Mt CO2 yr-1\nB,56.1,93.4,1,Mt CO2 yr-1\n"
    )
    with pytest.raises(ValueError, match=r"plants\.csv: 1 point source\(s\) .* \(first 'B'"):
        priors.read_point_sources(p)
    q = tmp_path / "two.csv"
    q.write_text(
        "name,lon,lat,emission,units\nA,13.4,56.1,1,Mt CO2 yr-1\nB,56.1,13.4,1,Mt CO2 yr-1\n"
    )
    from inversion import Grid

    grid = Grid.from_bounds("EPSG:4326", (13.0, 55.8, 13.8, 56.4), 0.1)
    placed = priors.place_point_sources(priors.read_point_sources(q), grid)
    assert placed.n_outside == 1 and placed.names == ("A",)
    assert "1 of 2 point sources lie outside the grid" in caplog.text
