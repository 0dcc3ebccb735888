"""Gaussian plume physics against independent textbook evaluations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from plume_builders import city_grid, day_axis, met, obs_set

from transport_models.plume import PlumeOptions, footprint, plume_operator
from transport_models.plume._kernels import (
    SWITCH_RATIO,
    vertical_fourier,
    vertical_image,
    vertical_numpy,
)

# Briggs (1973) as tabulated in Seinfeld & Pandis, written out independently: x in m -> σ in m
RURAL = {
    "A": (lambda x: 0.22 * x / math.sqrt(1 + 1e-4 * x), lambda x: 0.20 * x),
    "B": (lambda x: 0.16 * x / math.sqrt(1 + 1e-4 * x), lambda x: 0.12 * x),
    "C": (
        lambda x: 0.11 * x / math.sqrt(1 + 1e-4 * x),
        lambda x: 0.08 * x / math.sqrt(1 + 2e-4 * x),
    ),
    "D": (
        lambda x: 0.08 * x / math.sqrt(1 + 1e-4 * x),
        lambda x: 0.06 * x / math.sqrt(1 + 1.5e-3 * x),
    ),
    "E": (lambda x: 0.06 * x / math.sqrt(1 + 1e-4 * x), lambda x: 0.03 * x / (1 + 3e-4 * x)),
    "F": (lambda x: 0.04 * x / math.sqrt(1 + 1e-4 * x), lambda x: 0.016 * x / (1 + 3e-4 * x)),
}
_UAB = (lambda x: 0.32 * x / math.sqrt(1 + 4e-4 * x), lambda x: 0.24 * x * math.sqrt(1 + 1e-3 * x))
_UEF = (
    lambda x: 0.11 * x / math.sqrt(1 + 4e-4 * x),
    lambda x: 0.08 * x / math.sqrt(1 + 1.5e-3 * x),
)
URBAN = {
    "A": _UAB,
    "B": _UAB,
    "C": (lambda x: 0.22 * x / math.sqrt(1 + 4e-4 * x), lambda x: 0.20 * x),
    "D": (
        lambda x: 0.16 * x / math.sqrt(1 + 4e-4 * x),
        lambda x: 0.14 * x / math.sqrt(1 + 3e-4 * x),
    ),
    "E": _UEF,
    "F": _UEF,
}
R_GAS = 8.314462618


def textbook_ppm_per_flux(dx, dy, z, wdir, u, zi, sig_y, sig_z, area, p_hpa, t_k):
    """Reflected, capped Gaussian plume of a ground point source, as a footprint.

    (dx, dy) = receptor - source [m, east/north]; wdir = direction the wind comes FROM.
    """
    dist = math.hypot(dx, dy)
    alpha = math.atan2(dx, dy) - math.radians(wdir + 180.0)  # angle from the downwind axis
    x, y = dist * math.cos(alpha), dist * math.sin(alpha)
    if x <= 0:
        return 0.0
    sy, sz = sig_y(x), sig_z(x)
    images = sum(
        math.exp(-((z - 2 * n * zi) ** 2) / (2 * sz**2))
        + math.exp(-((z + 2 * n * zi) ** 2) / (2 * sz**2))
        for n in range(-12, 13)
    )
    c_per_q = math.exp(-(y**2) / (2 * sy**2)) / (2 * math.pi * u * sy * sz) * images
    n_air = p_hpa * 100.0 / (R_GAS * t_k)
    return area * c_per_q / n_air


CASES = [
    ("briggs-urban", "A", 270.0, 40.0),
    ("briggs-urban", "D", 225.0, 100.0),
    ("briggs-urban", "F", 300.0, 10.0),
    ("briggs-rural", "B", 250.0, 60.0),
    ("briggs-rural", "D", 200.0, 30.0),
    ("briggs-rural", "E", 280.0, 150.0),
]


@pytest.mark.parametrize(("scheme", "cls", "wdir", "z"), CASES)
def test_one_cell_source_matches_textbook_plume(scheme, cls, wdir, z):
    grid = city_grid(12, 500.0)
    time = day_axis()
    m = met(wind_direction=wdir, stability=cls, boundary_layer_height=700.0, wind_speed=2.5)
    # receptor in the north-east part of the domain, source cells to its south-west
    xr_, yr_ = 1830.0, 2140.0
    lon, lat = grid.to_lonlat(xr_, yr_)
    obs = obs_set("tower", lon, lat, z)
    H = plume_operator(obs, grid, time, m, dispersion=scheme, engine="numba").toarray()[0]
    table = (URBAN if scheme == "briggs-urban" else RURAL)[cls]
    tbin = int(time.index(obs["time"].values)[0])
    checked = 0
    for iy, ix in [(1, 2), (3, 3), (0, 7), (5, 1), (8, 4), (2, 0)]:
        expect = textbook_ppm_per_flux(
            xr_ - grid.x[ix],
            yr_ - grid.y[iy],
            z,
            wdir,
            2.5,
            700.0,
            table[0],
            table[1],
            grid.cell_area[iy, ix],
            990.0,
            295.0,
        )
        got = H[tbin * grid.size + iy * grid.nx + ix]
        if expect == 0.0:
            assert got == 0.0
            continue
        checked += 1
        # H·x for a unit flux in that one cell
        x = np.zeros(H.size)
        x[tbin * grid.size + iy * grid.nx + ix] = 1.0
        assert H @ x == pytest.approx(expect, rel=1e-6)
    assert checked >= 3


def test_far_downwind_reaches_well_mixed_limit():
    grid = city_grid(40, 500.0)  # 20 km domain
    m = met(stability="B", boundary_layer_height=300.0, wind_speed=4.0, wind_direction=270.0)
    lon, lat = grid.to_lonlat(9750.0, 130.0)
    obs = obs_set("tower", lon, lat, 120.0)
    fp = footprint(obs, grid, day_axis(), m).isel(obs=0)
    ix, iy = 1, 20  # source 19 km upwind
    x_dist, y_off = 9750.0 - grid.x[ix], 130.0 - grid.y[iy]
    sy = URBAN["B"][0](x_dist)
    n_air = 990.0 * 100.0 / (R_GAS * 295.0)
    mixed = (
        grid.cell_area[iy, ix]
        * math.exp(-(y_off**2) / (2 * sy**2))
        / (math.sqrt(2 * math.pi) * 4.0 * sy * 300.0)
        / n_air
    )
    assert URBAN["B"][1](x_dist) / 300.0 > 5  # deep in the well-mixed regime
    assert float(fp.values[iy, ix]) == pytest.approx(mixed, rel=0.01)


def test_image_sum_converges_to_well_mixed_and_switch_is_continuous():
    zi = 500.0
    z = np.array([0.0, 37.0, 250.0, 499.0, 500.0])
    # pure image sum (many images) -> 1/zi as sigma_z/zi grows
    for ratio, tol in [(1.0, 0.02), (1.5, 2e-4), (2.5, 1e-9)]:
        g = vertical_image(z, 0.0, ratio * zi, zi, n_terms=30)
        assert np.allclose(g * zi, 1.0, rtol=tol, atol=0)
    # both series represent the same sum: equal at, below and above the switch
    for ratio in [0.5, SWITCH_RATIO * (1 - 1e-9), SWITCH_RATIO, SWITCH_RATIO * (1 + 1e-9), 1.2]:
        a = vertical_image(z, 20.0, ratio * zi, zi)
        b = vertical_fourier(z, 20.0, ratio * zi, zi)
        np.testing.assert_allclose(a, b, rtol=1e-12)
    lo = vertical_numpy(z, 0.0, SWITCH_RATIO * zi * (1 - 1e-12), zi)
    hi = vertical_numpy(z, 0.0, SWITCH_RATIO * zi * (1 + 1e-12), zi)
    np.testing.assert_allclose(lo, hi, rtol=1e-10)
    # above the lid nothing arrives
    assert vertical_numpy(501.0, 0.0, 100.0, zi) == 0.0


def test_area_cell_model_tends_to_point_model_far_away():
    """The crosswind-integrated cell tends to the point source when the plume is much wider.

    For a Gaussian of width σ convolved with a crosswind profile of variance w²/12 (square cell
    of side w, any orientation) the relative change near the axis (|Y| < σ) is at most about
    w²/(12σ²); we allow 1.5 times that.
    """
    grid = city_grid(30, 250.0)
    wdir = 265.0
    m = met(stability="A", wind_direction=wdir)
    xr_, yr_ = 3600.0, 40.0
    lon, lat = grid.to_lonlat(xr_, yr_)
    obs = obs_set("tower", lon, lat, 30.0)
    fa = footprint(obs, grid, day_axis(), m, options=PlumeOptions(cell_model="area")).values[0]
    fp = footprint(obs, grid, day_axis(), m).values[0]
    dx = xr_ - grid.x[None, :] + 0 * grid.y[:, None]
    dy = yr_ - grid.y[:, None] + 0 * grid.x[None, :]
    alpha = np.arctan2(dx, dy) - np.radians(wdir + 180.0)
    X, Y = np.hypot(dx, dy) * np.cos(alpha), np.hypot(dx, dy) * np.sin(alpha)
    sig = np.where(X > 0, 0.32 * X / np.sqrt(1 + 4e-4 * np.maximum(X, 0)), 0.0)
    sel = (sig > 3 * 250.0) & (np.abs(Y) < sig)
    assert sel.sum() > 20
    bound = 1.5 * 250.0**2 / (12 * sig[sel] ** 2)
    assert (np.abs(fa[sel] / fp[sel] - 1.0) <= bound).all()
    assert np.abs(fa[sel] / fp[sel] - 1.0).max() > 0  # the two models do differ
