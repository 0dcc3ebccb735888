"""Grid: coordinates, transforms, cell areas and point location against independent references."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import xarray as xr

from inversion.grid import Grid, GridMismatchError

#: WGS84 total surface area [km²] (NIMA TR8350.2, table 3.4: 510,065,621.7 km²).
WGS84_SURFACE_KM2 = 510_065_621.7


def test_global_geographic_areas_sum_to_the_ellipsoid_surface():
    g = Grid.from_bounds("EPSG:4326", (-180, -90, 180, 90), 1.0)
    assert g.shape == (180, 360)
    assert g.cell_area.sum() / 1e6 == pytest.approx(WGS84_SURFACE_KM2, rel=1e-9)


def test_small_geographic_cell_area_matches_pyproj_geodesic_polygon():
    g = Grid.from_bounds("EPSG:4326", (-112.2, 40.5, -111.7, 40.9), 0.01)
    geod = pyproj.Geod(ellps="WGS84")
    for iy in (0, 17, 39):
        lat0, lat1 = g.y_edges[iy], g.y_edges[iy + 1]
        lons = [-112.2, -112.19, -112.19, -112.2]
        ref = abs(geod.polygon_area_perimeter(lons, [lat0, lat0, lat1, lat1])[0])
        # geodesic vs parallel edges differ by < 1e-8 relative for 0.01° cells
        assert g.cell_area[iy, 5] == pytest.approx(ref, rel=1e-8)


def test_spherical_crs_area_is_the_sphere_formula():
    crs = pyproj.CRS.from_proj4("+proj=longlat +R=6371000 +no_defs")
    g = Grid.from_bounds(crs, (0, 10, 2, 12), 1.0)
    R = 6371000.0
    ref = R**2 * np.deg2rad(1.0) * (np.sin(np.deg2rad(11)) - np.sin(np.deg2rad(10)))
    assert g.cell_area[0, 0] == pytest.approx(ref, rel=1e-12)


def test_projected_grid_coordinates_area_and_spacing():
    g = Grid.from_bounds("EPSG:32612", (400_000, 4_480_000, 440_000, 4_500_000), 1000.0)
    assert g.shape == (20, 40)
    np.testing.assert_allclose(g.x[:3], [400_500, 401_500, 402_500])
    np.testing.assert_allclose(g.y[-1], 4_499_500)
    np.testing.assert_allclose(g.cell_area, 1e6)
    assert g.spacing_km == (1.0, 1.0)
    lon, lat = pyproj.Transformer.from_crs("EPSG:32612", "EPSG:4326", always_xy=True).transform(
        g.x[3], g.y[7]
    )
    assert g.lon[7, 3] == pytest.approx(lon, abs=1e-12)
    assert g.lat[7, 3] == pytest.approx(lat, abs=1e-12)


def test_north_up_grid_has_decreasing_rows():
    g = Grid.from_bounds("EPSG:4326", (0, 0, 3, 2), 1.0, north_up=True)
    assert g.dy == -1.0
    np.testing.assert_allclose(g.y, [1.5, 0.5])
    assert g.bounds == (0.0, 0.0, 3.0, 2.0)
    iy, ix = g.index([0.5, 2.99], [1.9, 0.1])
    np.testing.assert_array_equal(iy, [0, 1])
    np.testing.assert_array_equal(ix, [0, 2])


def test_local_grid_is_centred_on_the_city():
    g = Grid.local(-111.9, 40.76, nx=40, ny=30, resolution_m=1000.0)
    # the centre of the grid is the projection origin: the city
    iy, ix = g.index_lonlat([-111.9], [40.76])
    assert (iy[0], ix[0]) == (15, 20)
    # distance between neighbouring cell centres is 1 km on the ellipsoid to 0.1 %
    geod = pyproj.Geod(ellps="WGS84")
    _, _, d = geod.inv(g.lon[15, 20], g.lat[15, 20], g.lon[15, 21], g.lat[15, 21])
    assert d == pytest.approx(1000.0, rel=1e-3)


def test_index_is_half_open_and_marks_outside():
    g = Grid.from_bounds("EPSG:3857", (0, 0, 10, 10), 1.0)
    iy, ix = g.index([0.0, 9.999, 10.0, -0.001, 5.0], [0.0, 9.999, 5.0, 5.0, 1.0])
    np.testing.assert_array_equal(ix, [0, 9, -1, -1, 5])
    np.testing.assert_array_equal(iy, [0, 9, -1, -1, 1])


def test_from_coords_and_from_dataarray_round_trip():
    g = Grid.from_bounds("EPSG:4326", (-10, 40, -5, 43), 0.5)
    da = xr.DataArray(np.zeros(g.shape), dims=("lat", "lon"), coords={"lat": g.y, "lon": g.x})
    g2 = Grid.from_dataarray(da)
    assert g2.is_geographic
    assert g2 == g
    assert hash(g2) == hash(g)
    g3 = Grid.from_coords(g.x, g.y, g.crs)
    assert g3 == g


def test_uneven_coordinates_are_rejected():
    with pytest.raises(ValueError, match="not evenly spaced"):
        Grid.from_coords([0, 1, 2.5], [0, 1], "EPSG:4326")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"transform": (1, 0.1, 0, 0, 1, 0), "shape": (2, 2)}, "rotated"),
        ({"transform": (0, 0, 0, 0, 1, 0), "shape": (2, 2)}, "dx > 0"),
        ({"transform": (1, 0, 0, 0, 1, 0), "shape": (0, 2)}, "shape"),
        ({"transform": (1, 0, 0, 0, 1, 0), "shape": (2, 2), "crs": "not a crs"}, "crs"),
    ],
)
def test_bad_grids_raise_clear_errors(kwargs, match):
    kwargs.setdefault("crs", "EPSG:4326")
    with pytest.raises(ValueError, match=match):
        Grid(**kwargs)


def test_bounds_not_a_whole_number_of_cells():
    with pytest.raises(ValueError, match="whole number of cells"):
        Grid.from_bounds("EPSG:4326", (0, 0, 1.05, 1), 0.1)


def test_check_dataarray_detects_wrong_grid():
    g = Grid.from_bounds("EPSG:4326", (0, 0, 3, 2), 1.0)
    good = g.data_array(np.ones(g.shape))
    g.check_dataarray(good)
    shifted = good.assign_coords(x=good.x + 0.5)
    with pytest.raises(GridMismatchError, match="x coordinates differ"):
        g.check_dataarray(shifted, "prior")
    with pytest.raises(GridMismatchError, match="expected dim 'y' of length 2"):
        g.check_dataarray(xr.DataArray(np.ones((3, 3)), dims=("y", "x")), "prior")


def test_spacing_km_refuses_geographic_grids():
    g = Grid.from_bounds("EPSG:4326", (0, 0, 3, 2), 1.0)
    with pytest.raises(ValueError, match="projected"):
        _ = g.spacing_km


def test_grid_mapping_attrs_round_trip_through_cf():
    g = Grid.local(2.35, 48.85, nx=4, ny=4)
    crs = pyproj.CRS.from_cf(g.grid_mapping_attrs())
    assert crs.equals(g.crs, ignore_axis_order=True)
