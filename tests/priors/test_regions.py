"""Region masks from real boundary files, aggregation weights, uncertainty model, summaries."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import scipy.sparse as sp
import xarray as xr

import priors
from inversion.grid import Grid
from inversion.state import StateVector, TimeAxis
from priors._geometry import flux_on_grid


@pytest.fixture(scope="module")
def nyc(fixtures_dir):
    return gpd.read_file(fixtures_dir / "boundaries" / "nybb_16a" / "nybb.shp")


def test_nyc_borough_weights_sum_to_areas(nyc):
    assert nyc.crs.to_epsg() == 2263
    grid = Grid.local(-73.98, 40.71, nx=120, ny=120, resolution_m=500.0)
    w = priors.region_weights(nyc, grid, name_column="BoroName")
    assert w.dims == ("region", "y", "x")
    assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0
    areas_m2 = nyc.set_index("BoroName").geometry.area * 0.3048**2  # ft² -> m²
    got = (w * w["cell_area"]).sum(("y", "x")).to_series()
    for name, a in areas_m2.items():
        assert got[name] == pytest.approx(a, rel=0.01)
    np.testing.assert_allclose(w["inside_fraction"], 1.0, atol=1e-9)
    # boroughs do not overlap: the sum over regions stays within [0, 1]
    assert float(w.sum("region").max()) <= 1.0 + 1e-9


def test_slc_geojson_on_geographic_grid(fixtures_dir):
    path = fixtures_dir / "boundaries" / "clickthathood_salt-lake-city.geojson"
    gdf = gpd.read_file(path)
    grid = Grid.from_bounds("EPSG:4326", (-112.15, 40.65, -111.7, 40.88), 0.005)
    w = priors.region_weights(path, grid, name_column="name")
    assert w.sizes["region"] == gdf["name"].nunique()
    # areas against geopandas in an equal-area projection (Albers, EPSG:5070)
    ref = gdf.dissolve("name").to_crs("EPSG:5070").area
    got = (w * w["cell_area"]).sum(("y", "x")).to_series()
    big = ref > 2e6  # neighbourhoods larger than 2 km² (many cells): 1 %
    np.testing.assert_allclose(got[ref.index[big]], ref[big], rtol=0.01)


def test_regions_missing_domain_and_no_crs(nyc):
    grid = Grid.local(-111.9, 40.75, nx=20, ny=20, resolution_m=1000.0)  # Salt Lake City
    with pytest.raises(ValueError, match=r"5 region\(s\) do not intersect.*Manhattan"):
        priors.region_weights(nyc, grid, name_column="BoroName")
    with pytest.raises(ValueError, match="no CRS"):
        priors.region_weights(gpd.GeoDataFrame(geometry=list(nyc.geometry)), grid)
    with pytest.raises(KeyError, match="name_column 'nope'"):
        priors.region_weights(nyc, grid, name_column="nope")


def _state():
    grid = Grid.from_bounds("EPSG:32612", (0, 0, 4000, 3000), 1000.0)
    time = TimeAxis.regular("2024-06-01", "2024-06-03", "6h")
    return StateVector(grid, time, sectors=("road", "energy"), extra={"bg": 2})


def test_aggregation_weights_give_tonnes():
    state = _state()
    g = state.grid
    frac = np.zeros((2, *g.shape))
    frac[0, :2, :2] = 1.0
    frac[0, 2, 0] = 0.25
    frac[1] = 0.5
    fr = flux_on_grid(frac, g, ("region", "y", "x"), coords={"region": ("region", ["a", "b"])})
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, state.size)
    flux = x[state.slice("flux")].reshape(state.flux_shape)
    # dense reference: Σ frac·area·seconds·flux [µmol] → t CO2
    umol = np.einsum("styx,ryx,t->rst", flux, frac * g.cell_area[None], state.time.seconds)
    to_t = 1e-6 * 44.0095e-6
    w = priors.aggregation_weights(state, fr)
    assert isinstance(w.matrix, sp.csr_array) and w.matrix.shape == (2, state.size)
    np.testing.assert_allclose(w.matrix @ x, umol.sum((1, 2)) * to_t, rtol=1e-12)
    ws = priors.aggregation_weights(state, fr, by_sector=True, by_day=True)
    assert ws.matrix.shape == (2 * 2 * 2, state.size)
    assert list(ws.labels.iloc[1]) == ["a", "road", "2024-06-02"]
    day = umol.reshape(2, 2, 2, 4).sum(-1) * to_t  # (region, sector, day)
    np.testing.assert_allclose(ws.matrix @ x, day.ravel(), rtol=1e-12)
    assert ws.matrix[:, state.slice("bg")].nnz == 0
    bad = StateVector(state.grid, TimeAxis.regular("2024-06-01T18:00", "2024-06-02T06:00", "12h"))
    with pytest.raises(ValueError, match="crosses a UTC day"):
        priors.aggregation_weights(bad, fr, by_day=True)


def test_prior_uncertainty_std_and_parameters():
    unc = priors.PriorUncertainty(
        fraction={"road": 0.3},
        default_fraction=0.8,
        floor=0.05,
        spatial_kind="gaussian",
        length_km=3.0,
        tau_hours=12.0,
    )
    prior = xr.DataArray(
        np.array([[0.0, -1.0, 2.0], [0.0, 1.0, 0.01]]),
        dims=("sector", "x"),
        coords={"sector": ["road", "energy"]},
    )
    std = unc.std(prior)
    np.testing.assert_allclose(std.values, [[0.05, 0.3, 0.6], [0.05, 0.8, 0.05]])
    assert std.attrs["units"] == "umol m-2 s-1"
    with pytest.raises(ValueError, match="zero in 2 of 6"):
        priors.PriorUncertainty(fraction=0.5).std(prior)
    with pytest.raises(ValueError, match="spatial_kind"):
        priors.PriorUncertainty(spatial_kind="spherical")
    with pytest.raises(ValueError, match="length_km"):
        priors.PriorUncertainty(length_km=0.0)
    with pytest.raises(ValueError, match="positive relative errors"):
        priors.PriorUncertainty(fraction={"road": -0.1})
    with pytest.raises(AttributeError):
        unc.floor = 1.0  # frozen


def test_summarize_regions_and_time_axis():
    state = _state()
    g = state.grid
    frac = np.zeros((1, *g.shape))
    frac[0, 0, :] = 1.0
    fr = flux_on_grid(frac, g, ("region", "y", "x"), coords={"region": ("region", ["south"])})
    mean = flux_on_grid(
        np.full((2, *g.shape), 2.0),
        g,
        ("sector", "y", "x"),
        coords={"sector": ("sector", ["road", "energy"])},
    )
    # mean flux over May 31 12:00 – June 2 00:00: split between two months
    table = priors.summarize_inventory(mean, regions=fr, time=("2024-05-31T12:00", "2024-06-02"))
    assert list(table["month"].unique()) == ["2024-05", "2024-06"]
    row = table[(table["sector"] == "road") & (table["month"] == "2024-06")].iloc[0]
    expected = 2.0 * 4 * 1e6 * 86400 * 1e-6 * 44.0095e-6  # 4 cells of 1 km², one day
    assert row["emission_t_CO2"] == pytest.approx(expected, rel=1e-12)
    assert row["duration_s"] == 86400
    # gridded prior on the time axis
    prior = priors.temporal_disaggregate(
        mean, state.time, profile_for={"road": "flat", "energy": "flat"}
    )
    t2 = priors.summarize_inventory(prior)
    assert t2["emission_t_CO2"].sum() == pytest.approx(
        2.0 * 12e6 * 2 * 2 * 86400 * 1e-6 * 44.0095e-6, rel=1e-12
    )
    with pytest.raises(ValueError, match="period_start"):
        priors.summarize_inventory(mean)
