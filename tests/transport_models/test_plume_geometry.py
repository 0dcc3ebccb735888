"""Plume geometry: column levels integrated over their pressure intervals, surface altitude,
receptors below ground and rows with zero sensitivity."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from plume_builders import T0, city_grid, day_axis, met, obs_set
from scipy import integrate

from inversion import Grid, TimeAxis
from transport_models import zero_rows
from transport_models.plume import PlumeMet, PlumeOptions, footprint, plume_operator
from transport_models.plume._kernels import SWITCH_RATIO, vertical_layer_numpy, vertical_numpy

R_DRY, G0, R_GAS = 287.05, 9.80665, 8.314462618


# ----------------------------------------------------------------------- the layer integral
@pytest.mark.parametrize(
    ("za", "zb", "h", "sz", "zi"),
    [
        (0.0, 120.0, 0.0, 15.0, 800.0),  # near field, image branch
        (40.0, 300.0, 10.0, 90.0, 800.0),
        (500.0, 1200.0, 0.0, 300.0, 800.0),  # layer straddling the lid
        (0.0, 250.0, 0.0, 900.0, 800.0),  # Fourier branch (σz > 0.8 zi)
        (300.0, np.inf, 0.0, 2000.0, 1000.0),  # top layer, open above
        (900.0, 2000.0, 0.0, 400.0, 800.0),  # entirely above the lid
    ],
)
def test_layer_mean_equals_quadrature(za, zb, h, sz, zi):
    hs = R_DRY * 290.0 / G0

    def f(z):
        return float(vertical_numpy(z, h, sz, zi)) * math.exp(-(z - za) / hs)

    top = min(zb, zi)
    num = integrate.quad(f, za, top, limit=400, epsabs=0, epsrel=1e-12)[0] if top > za else 0.0
    den = hs * (1.0 - math.exp(-(zb - za) / hs))
    got = float(vertical_layer_numpy(za, zb, h, sz, zi, hs))
    assert got == pytest.approx(num / den, rel=1e-10, abs=1e-16)
    # and the numba kernel agrees (a one-point "receptor" at the origin of a one-cell row)
    from transport_models.plume._kernels import _vertical_layer

    assert _vertical_layer(za, zb, h, sz, zi, hs) == pytest.approx(got, rel=1e-12, abs=1e-18)


def test_layer_mean_is_continuous_at_the_branch_switch():
    zi, hs = 800.0, 8000.0
    for za, zb in [(0.0, 100.0), (200.0, 900.0), (50.0, np.inf)]:
        lo = vertical_layer_numpy(za, zb, 10.0, SWITCH_RATIO * zi * (1 - 1e-12), zi, hs)
        hi = vertical_layer_numpy(za, zb, 10.0, SWITCH_RATIO * zi * (1 + 1e-12), zi, hs)
        np.testing.assert_allclose(lo, hi, rtol=1e-10)


def test_thin_layer_tends_to_point_value():
    hs, zi = 8000.0, 800.0
    for z, sz in [(30.0, 20.0), (400.0, 150.0), (100.0, 900.0)]:
        thin = vertical_layer_numpy(z - 1e-3, z + 1e-3, 0.0, sz, zi, hs)
        assert thin == pytest.approx(float(vertical_numpy(z, 0.0, sz, zi)), rel=1e-6)


# ------------------------------------------------------------------ column rows, operator level
def _column(grid, x, y, p, pw, ak, ps=None):
    lon, lat = grid.to_lonlat(x, y)
    extra = {} if ps is None else {"surface_pressure": ps}
    return obs_set(
        "column", lon, lat, 1300.0, pressure=p, pressure_weight=pw, averaging_kernel=ak, **extra
    )


def test_column_row_is_pressure_weighted_layer_mean_of_point_footprints():
    """Reference: each level's pressure interval integrated by Gauss-Legendre in pressure over
    tower (point) footprints, the intervals written out here from the documented rule."""
    grid = city_grid(12, 1000.0)
    zi, temp = 1500.0, 300.0
    m = met(boundary_layer_height=zi, temperature=temp, stability="B")
    rng = np.random.default_rng(1)
    p = np.array([[980.0, 960.0, 930.0, 900.0, 870.0, 850.0, 800.0, 600.0, 300.0, np.nan]])
    pw = np.append(rng.uniform(0.05, 0.15, 9), np.nan)[None]
    pw[0, :9] /= pw[0, :9].sum()
    ak = np.append(rng.uniform(0.6, 1.1, 9), np.nan)[None]
    ps = 990.0
    col = footprint(_column(grid, 1250.0, -300.0, p, pw, ak, ps=ps), grid, day_axis(), m).values[0]
    hscale = R_DRY * temp / G0
    lv = p[0, :9]
    bottom = np.concatenate([[ps], 0.5 * (lv[1:] + lv[:-1])])
    top = np.concatenate([0.5 * (lv[1:] + lv[:-1]), [0.0]])
    p_zi = ps * math.exp(-zi / hscale)
    nodes, gw = np.polynomial.legendre.leggauss(120)
    heights, weights = [], []
    for k in range(9):
        lo, hi = max(top[k], p_zi), bottom[k]
        if hi <= lo:
            continue
        pk = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
        heights.append(hscale * np.log(ps / pk))
        weights.append(pw[0, k] * ak[0, k] * 0.5 * (hi - lo) * gw / (bottom[k] - top[k]))
    z, w = np.concatenate(heights), np.concatenate(weights)
    lon, lat = grid.to_lonlat(1250.0, -300.0)
    towers = footprint(obs_set(["tower"] * z.size, lon, lat, z), grid, day_axis(), m).values
    expect = np.tensordot(w, towers, axes=1)
    assert col.max() > 0
    np.testing.assert_allclose(col, expect, rtol=1e-8, atol=1e-10 * expect.max())


P_S, T_K, U, NX, NY = 1000.0, 288.15, 3.0, 30, 41


def _lite_like(grid: Grid, n: int, ak: str) -> xr.Dataset:
    """A sounding on ``n`` levels evenly spaced in pressure (surface -> top), Lite-like
    pressure weights (the levels' interval fractions)."""
    p = P_S * (1.0 - np.arange(n) / (n - 1))
    p[-1] = 0.01 * P_S / (n - 1)
    edges = np.concatenate([[P_S], 0.5 * (p[1:] + p[:-1]), [0.0]])
    pw = (edges[:-1] - edges[1:]) / P_S
    a = np.ones(n) if ak == "one" else 0.55 + 0.45 * p / P_S
    return _column(grid, 14_500.0, 0.0, p[None], pw[None], a[None])


@pytest.mark.parametrize("cls", ["C", "D"])
def test_column_rows_do_not_depend_on_the_number_of_levels(cls):
    grid = Grid.local(-111.9, 40.75, nx=NX, ny=NY, resolution_m=1000.0)
    axis = TimeAxis.regular("2024-07-01", "2024-07-02", "1D")
    zi = 1000.0
    m = PlumeMet(T0 + np.timedelta64(1, "h"), U, 270.0, zi, cls, pressure=P_S, temperature=T_K)
    dist = np.arange(1, 26)  # km upwind of the column (east cell centre)
    ix, iy = NX - 1 - dist, NY // 2
    rows = {}
    for ak in ("one", "sloped"):
        for n in (20, 400):
            obs = _lite_like(grid, n, ak).assign(time=("obs", [T0 + np.timedelta64(90, "m")]))
            rows[ak, n] = plume_operator(obs, grid, axis, m).toarray()[0].reshape(NY, NX)
    for ak, rtol in (("one", 1e-9), ("sloped", 0.02)):
        a, b = rows[ak, 20], rows[ak, 400]
        assert (b[iy, ix] > 0).all()
        np.testing.assert_allclose(a[iy, ix], b[iy, ix], rtol=rtol)
        np.testing.assert_allclose(a.sum(0)[ix], b.sum(0)[ix], rtol=rtol)
    # far field (25 km) on 400 levels: Q/(u zi W) diluted by the column's pressure fraction of
    # the mixed layer, for a crosswind line of cells (per unit flux: dx / (u zi n_air))
    n_air = P_S * 100.0 / (R_GAS * T_K)
    frac = 1.0 - math.exp(-zi / (R_DRY * T_K / G0))
    mixed = 1000.0 / (U * zi * n_air) * frac
    assert rows["one", 400].sum(0)[ix[-1]] == pytest.approx(mixed, rel=0.02)
    assert rows["one", 400].sum(0)[ix[-1]] == pytest.approx(mixed, rel=2e-4)  # measured 4e-5


# ------------------------------------------------------------------ surface altitude, heights
def _lidar(grid, base, **extra):
    lo0, la0 = grid.to_lonlat(2500.0, 300.0)
    lo1, la1 = grid.to_lonlat(-1800.0, 900.0)
    ds = obs_set(
        "lidar_path", lo0, la0, base + 40.0, site="roof",
        lat0=la0, lon0=lo0, alt0=base + 12.0, lat1=la1, lon1=lo1, alt1=base + 95.0, **extra,
    )  # fmt: skip
    ds["alt"].attrs["reference"] = "asl"
    return ds


def test_lidar_above_terrain_equals_the_same_case_at_sea_level():
    grid, m = city_grid(12, 1000.0), met(boundary_layer_height=600.0)
    sea = plume_operator(
        _lidar(grid, 0.0), grid, day_axis(), m, options=PlumeOptions(surface_altitude=0.0)
    )
    high_opt = plume_operator(
        _lidar(grid, 1600.0), grid, day_axis(), m, options=PlumeOptions(surface_altitude=1600.0)
    )
    high_var = plume_operator(
        _lidar(grid, 1600.0, surface_altitude=1600.0), grid, day_axis(), m
    )  # per observation, no option needed
    assert sea.nnz > 0 and zero_rows(sea).size == 0
    for h in (high_opt, high_var):
        assert h.nnz == sea.nnz
        np.testing.assert_allclose(h.toarray(), sea.toarray(), rtol=1e-12, atol=0)


def test_asl_heights_without_surface_altitude_warn_and_zero_rows_are_warned():
    grid, m = city_grid(12, 1000.0), met(boundary_layer_height=600.0)
    with pytest.warns(UserWarning) as rec:
        h = plume_operator(_lidar(grid, 1600.0), grid, day_axis(), m)
    msgs = [str(w.message) for w in rec]
    assert any("assumed 0 m asl" in s and "'roof'" in s for s in msgs)
    assert any("1 of 1 observation row(s) have zero sensitivity" in s for s in msgs)
    assert h.nnz == 0
    with pytest.warns(UserWarning, match="zero sensitivity"):
        np.testing.assert_array_equal(zero_rows(h), [0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zero_rows(np.eye(2)).size == 0


def test_receptor_below_the_surface_names_site_and_heights():
    grid = city_grid(12, 1000.0)
    with pytest.raises(ValueError, match=r"'alt0' below ground.*'roof'.*1612 m asl.*1700 m asl"):
        plume_operator(
            _lidar(grid, 1600.0),
            grid,
            day_axis(),
            met(),
            options=PlumeOptions(surface_altitude=1700.0),
        )
    lon, lat = grid.to_lonlat(0.0, 0.0)
    tower = obs_set("tower", lon, lat, 1590.0, site="T1", surface_altitude=1600.0)
    tower["alt"].attrs["reference"] = "asl"
    with pytest.raises(ValueError, match=r"'T1'.*1590 m asl.*surface altitude 1600 m asl.*-10 m"):
        plume_operator(tower, grid, day_axis(), met())


def test_column_level_below_the_surface_pressure_is_an_error():
    grid = city_grid(6, 1000.0)
    p = np.array([[1000.0, 900.0, 500.0]])
    obs = _column(grid, 0.0, 0.0, p, np.full((1, 3), 1 / 3), np.ones((1, 3)), ps=980.0)
    with pytest.raises(ValueError, match=r"level below the surface.*980 hPa < level pressure 1000"):
        plume_operator(obs, grid, day_axis(), met())
