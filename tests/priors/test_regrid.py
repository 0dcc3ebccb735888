"""Conservative regridding: totals preserved for any CRS pair, coverage errors, point sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import priors
from inversion.grid import Grid
from priors._geometry import flux_on_grid

DATA = Path(__file__).parent / "data"
LON0, LAT0 = -111.9, 40.75
CRS_CHOICES = {
    "wgs84": "EPSG:4326",
    "utm12": "EPSG:32612",
    "albers": "EPSG:5070",
    "lcc": "+proj=lcc +lat_1=33 +lat_2=45 +lat_0=40 +lon_0=-97 +datum=WGS84 +units=m",
    "aeqd": f"+proj=aeqd +lat_0={LAT0} +lon_0={LON0} +datum=WGS84 +units=m",
}


def _grid_around(crs: str, half_m: float, res_m: float, pad_cells: int = 0) -> Grid:
    """Grid in ``crs`` whose extent contains the ±half_m box around the city centre."""
    c = pyproj.CRS.from_user_input(crs)
    if c.is_geographic:
        dlat = half_m / 111_000.0
        dlon = half_m / (111_000.0 * np.cos(np.deg2rad(LAT0)))
        res = res_m / 111_000.0
        b = (LON0 - dlon, LAT0 - dlat, LON0 + dlon, LAT0 + dlat)
    else:
        aeqd = CRS_CHOICES["aeqd"]
        t = pyproj.Transformer.from_crs(aeqd, c, always_xy=True)
        b = t.transform_bounds(-half_m, -half_m, half_m, half_m, densify_pts=21)
        res = res_m
    nx = int(np.ceil((b[2] - b[0]) / res)) + 2 * pad_cells
    ny = int(np.ceil((b[3] - b[1]) / res)) + 2 * pad_cells
    x0, y0 = b[0] - pad_cells * res, b[1] - pad_cells * res
    return Grid(c, (res, 0.0, x0, 0.0, res, y0), (ny, nx))


def _source(grid: Grid, seed: int):
    rng = np.random.default_rng(seed)
    values = rng.gamma(1.0, 5.0, (2, *grid.shape))
    return flux_on_grid(
        values, grid, ("sector", "y", "x"), coords={"sector": ("sector", ["a", "b"])}
    )


def _total(da) -> np.ndarray:
    return (da * da["cell_area"]).sum(("y", "x")).values


def _working(grid: Grid) -> pyproj.CRS:
    if not grid.is_geographic:
        return grid.crs
    lon0 = 0.5 * (grid.x_edges[0] + grid.x_edges[-1])
    return pyproj.CRS.from_proj4(
        f"+proj=cea +lon_0={lon0} +lat_ts=0 +a=6378137 +rf=298.257223563 +units=m"
    )


def _cell_rings(grid: Grid, crs: pyproj.CRS, d: int) -> np.ndarray:
    """Densified cell polygons of ``grid`` in ``crs`` (test's own construction)."""
    polys = []
    tr = pyproj.Transformer.from_crs(grid.crs, crs, always_xy=True)
    xe, ye = grid.x_edges, grid.y_edges
    s = np.arange(d) / d
    for j in range(grid.ny):
        for i in range(grid.nx):
            x0, x1, y0, y1 = xe[i], xe[i + 1], min(ye[j], ye[j + 1]), max(ye[j], ye[j + 1])
            xs = np.r_[x0 + s * (x1 - x0), [x1] * d, x1 - s * (x1 - x0), [x0] * d, x0]
            ys = np.r_[[y0] * d, y0 + s * (y1 - y0), [y1] * d, y1 - s * (y1 - y0), y0]
            polys.append(shapely.Polygon(np.c_[tr.transform(xs, ys)]))
    return np.array(polys)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src=st.sampled_from(sorted(CRS_CHOICES)),
    tgt=st.sampled_from(sorted(CRS_CHOICES)),
    src_res=st.sampled_from([700.0, 1300.0, 2500.0]),
    tgt_res=st.sampled_from([900.0, 2000.0]),
    seed=st.integers(0, 1000),
)
def test_total_preserved_when_source_covers_target(src, tgt, src_res, tgt_res, seed):
    target = _grid_around(CRS_CHOICES[tgt], 8_000.0, tgt_res)
    source = _grid_around(CRS_CHOICES[src], 12_000.0, src_res, pad_cells=1)
    da = _source(source, seed)
    rg = priors.Regridder(da, target, densify=4)
    out = rg(da)
    assert rg.uncovered_fraction < 1e-12
    np.testing.assert_allclose(out["cell_area"].values, target.cell_area)
    # independent: emission of each source cell × (area inside the domain / cell area)
    wcrs = _working(target)
    same = source.crs == wcrs or (source.is_geographic and target.is_geographic)
    polys = _cell_rings(source, wcrs, 1 if same else 4)
    xe, ye = target.x_edges, target.y_edges
    if target.is_geographic:
        tr = pyproj.Transformer.from_crs(target.crs, wcrs, always_xy=True)
        (xa, xb), (ya, yb) = tr.transform([xe[0], xe[-1]], [ye[0], ye[-1]])
    else:
        xa, xb, ya, yb = xe[0], xe[-1], ye[0], ye[-1]
    domain = shapely.box(xa, ya, xb, yb)
    inside = shapely.area(shapely.intersection(polys, domain)) / shapely.area(polys)
    emis = (da.values * da["cell_area"].values).reshape(2, -1)
    expected = emis @ inside
    np.testing.assert_allclose(_total(out), expected, rtol=1e-10)


@settings(max_examples=8, deadline=None)
@given(
    src=st.sampled_from(sorted(CRS_CHOICES)),
    tgt=st.sampled_from(sorted(CRS_CHOICES)),
    src_res=st.sampled_from([600.0, 1100.0]),
    tgt_res=st.sampled_from([1000.0, 2500.0]),
    seed=st.integers(0, 1000),
)
def test_total_preserved_when_target_covers_source(src, tgt, src_res, tgt_res, seed):
    target = _grid_around(CRS_CHOICES[tgt], 15_000.0, tgt_res, pad_cells=1)
    source = _grid_around(CRS_CHOICES[src], 4_000.0, src_res)
    da = _source(source, seed)
    out = priors.regrid(da, target, coverage_tolerance=1.0)
    # the whole source emission lands in the domain: Σ F A identical to 1e-10
    np.testing.assert_allclose(_total(out), _total(da), rtol=1e-10)


def test_uniform_field_same_crs_stays_uniform():
    src = Grid.from_bounds("EPSG:32612", (400_000, 4_500_000, 420_000, 4_520_000), 1000.0)
    tgt = Grid.from_bounds("EPSG:32612", (402_300, 4_502_700, 417_300, 4_517_700), 2500.0)
    da = flux_on_grid(
        np.full((1, *src.shape), 3.5),
        src,
        ("sector", "y", "x"),
        coords={"sector": ("sector", ["total"])},
    )
    out = priors.regrid(da, tgt)
    np.testing.assert_allclose(out.values, 3.5, rtol=1e-12)


def test_grid_not_covering_domain_states_fraction():
    src = Grid.from_bounds("EPSG:32612", (400_000, 4_500_000, 410_000, 4_510_000), 1000.0)
    tgt = Grid.from_bounds("EPSG:32612", (400_000, 4_500_000, 420_000, 4_510_000), 1000.0)
    da = flux_on_grid(
        np.ones((1, *src.shape)),
        src,
        ("sector", "y", "x"),
        coords={"sector": ("sector", ["total"])},
    )
    with pytest.raises(priors.CoverageError, match=r"uncovered fraction 0\.5 of the domain"):
        priors.regrid(da, tgt)
    out = priors.regrid(da, tgt, coverage_tolerance=0.5)
    assert out.attrs["regrid_uncovered_fraction"] == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(out.values[0, :, 10:], 0.0)


def test_edgar_onto_city_grid_total_matches_overlap():
    """Real EDGAR file onto a local SLC grid: in-domain emission equals the source cell's flux ×
    (domain area) up to the cell-area ratio between the ellipsoid and the working CRS."""
    fx = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
    da = priors.read_inventory(
        fx / "inventories/edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc"
    )
    grid = Grid.local(LON0, LAT0, nx=20, ny=20, resolution_m=1000.0)
    out = priors.regrid(da, grid)
    iy = int(np.flatnonzero((da["y_lo"].values <= LAT0) & (da["y_hi"].values > LAT0))[0])
    ix = int(np.flatnonzero((da["x_lo"].values <= LON0) & (da["x_hi"].values > LON0))[0])
    # the 20 km domain lies inside one ~5° cell: flux equal to that cell's within the area
    # distortion of the azimuthal-equidistant projection over that cell (< 1 %)
    np.testing.assert_allclose(out.values, float(da.values[0, iy, ix]), rtol=1e-2)


def test_point_sources_placed_or_kept():
    grid = Grid.from_bounds("EPSG:4326", (-112.2, 40.5, -111.7, 40.9), 0.01)
    pts = priors.read_point_sources(DATA / "point_sources.csv")
    placed = priors.place_point_sources(pts, grid)
    emis = (placed.flux * placed.flux["cell_area"]).sum(("y", "x"))
    np.testing.assert_allclose(
        emis.sel(sector="energy"), pts["rate_umol_s"][pts["sector"] == "energy"].sum(), rtol=1e-12
    )
    np.testing.assert_allclose(
        emis.sel(sector="industry"),
        pts["rate_umol_s"][pts["sector"] == "industry"].sum(),
        rtol=1e-12,
    )
    iy, ix = grid.index_lonlat(-111.92, 40.84)
    assert placed.flux.sel(sector="industry").values[iy, ix] > 0
    kept = priors.place_point_sources(pts, grid, as_state_elements=True)
    assert float(abs(kept.flux).sum()) == 0.0
    assert kept.names == ("plant_a", "plant_b", "refinery")
    np.testing.assert_array_equal(kept.stack_height_m, [120.0, 80.0, 45.0])
    small = Grid.from_bounds("EPSG:4326", (-112.0, 40.6, -111.85, 40.75), 0.01)
    part = priors.place_point_sources(pts, small)
    assert part.n_outside == 2 and part.names == ("plant_a",)
    with pytest.raises(ValueError, match="2 point sources lie outside"):
        priors.place_point_sources(pts, small, on_outside="raise")
