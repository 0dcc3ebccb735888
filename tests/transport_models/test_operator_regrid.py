"""Conservative regridding and the kernels' numba/numpy twins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inversion import Grid
from transport_models.footprints._kernels import scan_layers
from transport_models.operator import conservative_regridder
from transport_models.operator._kernels import bin_layers, interval_overlaps, sparsify_rows


def test_kernel_twins():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(7, 50))
    v[1, 3] = np.nan
    for a, b in zip(scan_layers(v, "numba"), scan_layers(v, "numpy"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    bins = np.array([0, 2, -1, 2, 1, 0, 3])
    np.testing.assert_allclose(
        bin_layers(np.nan_to_num(v), bins, 4, "numba"),
        bin_layers(np.nan_to_num(v), bins, 4, "numpy"),
    )
    d = rng.normal(size=(5, 40)) * (rng.random((5, 40)) > 0.5)
    for a, b in zip(sparsify_rows(d, 0.3, "numba"), sparsify_rows(d, 0.3, "numpy"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    e1, e2 = np.sort(rng.random(12)), np.sort(rng.random(9))
    a = interval_overlaps(e1[:-1], e1[1:], e2[:-1], e2[1:], "numba")
    b = interval_overlaps(e1[:-1], e1[1:], e2[:-1], e2[1:], "numpy")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-14)
    with pytest.raises(ValueError, match="engine"):
        sparsify_rows(d, 0.3, "fortran")


def _grids(data, geographic: bool) -> tuple[Grid, Grid, bool]:
    crs = "EPSG:4326" if geographic else "EPSG:32612"
    unit = 0.01 if geographic else 1000.0
    x0 = (-112.0 if geographic else 400000.0) + unit * data.draw(st.integers(-3, 3))
    y0 = (40.0 if geographic else 4400000.0) + unit * data.draw(st.integers(-3, 3))
    nested = data.draw(st.booleans())
    src = Grid(
        crs,
        (unit, 0, x0, 0, unit, y0),
        (data.draw(st.integers(3, 12)), data.draw(st.integers(3, 12))),
    )
    if nested:  # target cells are whole multiples of source cells and cover the source grid
        fx, fy = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
        nx, ny = -(-src.nx // fx) + 1, -(-src.ny // fy) + 1
        tgt = Grid(crs, (unit * fx, 0, x0 - unit * fx, 0, unit * fy, y0 - unit * fy), (ny, nx))
    else:
        dx = unit * data.draw(st.floats(0.37, 2.7))
        dy = unit * data.draw(st.floats(0.37, 2.7))
        ox, oy = data.draw(st.floats(0, 1)), data.draw(st.floats(0, 1))
        nx = int(np.ceil(src.nx * unit / dx)) + 2
        ny = int(np.ceil(src.ny * unit / dy)) + 2
        north_up = data.draw(st.booleans())
        if north_up:
            tgt = Grid(
                crs,
                (dx, 0, x0 - dx * ox - dx, 0, -dy, y0 + src.ny * unit + dy * (1 + oy)),
                (ny, nx),
            )
        else:
            tgt = Grid(crs, (dx, 0, x0 - dx * ox - dx, 0, dy, y0 - dy * oy - dy), (ny, nx))
    return src, tgt, nested


@settings(max_examples=40, deadline=None)
@given(data=st.data(), geographic=st.booleans())
def test_conservation_and_adjoint(data, geographic):
    src, tgt, _ = _grids(data, geographic)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    rg = conservative_regridder(src, tgt)
    f = rng.random(src.size)
    h = rg.regrid(f)
    # total sensitivity (response to a uniform flux) conserved when the target covers the source
    assert np.abs(rg.outside).max() < 1e-12
    assert abs(h.sum() - f.sum()) <= 1e-10 * f.sum()
    # H·F for a flux uniform on target cells equals f·(area-mean flux on source cells) = Σ f
    # adjoint: <W x, y> = <x, W^T y> with the matrix-free separable operator
    op = rg.as_linear_operator()
    x, y = rng.normal(size=src.size), rng.normal(size=tgt.size)
    lhs, rhs = op.matvec(x) @ y, x @ op.rmatvec(y)
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), np.abs(x).sum() * np.abs(y).max())
    np.testing.assert_allclose(op.matvec(x), rg.matrix @ x, rtol=1e-12, atol=1e-14)
    # numpy engine gives the same weights
    rg2 = conservative_regridder(src, tgt, engine="numpy")
    np.testing.assert_allclose((rg2.matrix - rg.matrix).toarray(), 0, atol=1e-14)


def test_nested_sums_exact_and_flux_response():
    src = Grid("EPSG:32612", (1000, 0, 0, 0, 1000, 0), (6, 6))
    tgt = Grid("EPSG:32612", (2000, 0, 0, 0, 3000, 0), (2, 3))
    rg = conservative_regridder(src, tgt)
    f = np.arange(36.0).reshape(6, 6)
    expect = f.reshape(2, 3, 3, 2).sum(axis=(1, 3)).ravel()  # sums of 3x2 blocks
    np.testing.assert_allclose(rg.regrid(f), expect, rtol=1e-14)
    # response to a flux given on target cells = Σ_i f_i F(target containing i)
    F = np.array([1.0, 2, 3, 4, 5, 6])
    on_src = np.repeat(np.repeat(F.reshape(2, 3), 3, axis=0), 2, axis=1)
    np.testing.assert_allclose(rg.regrid(f) @ F, (f * on_src).sum(), rtol=1e-14)


def test_geographic_uses_area_fractions():
    src = Grid("EPSG:4326", (1, 0, 0, 0, 1, 0), (1, 1))  # one 1°x1° cell at 0-1°N
    tgt = Grid("EPSG:4326", (1, 0, 0, 0, 0.5, 0), (2, 1))
    w = conservative_regridder(src, tgt).matrix.toarray()[:, 0]
    a = tgt.cell_area.ravel()
    np.testing.assert_allclose(w, a / a.sum(), rtol=1e-9)


def test_different_crs_conserves_inside():
    src = Grid.from_bounds("EPSG:4326", (-112.2, 40.4, -111.8, 40.6), 0.01)
    tgt = Grid.local(-112.0, 40.5, nx=60, ny=40, resolution_m=1000)
    rg = conservative_regridder(src, tgt, supersample=4)
    f = np.random.default_rng(1).random(src.size)
    h = rg.regrid(f)
    np.testing.assert_allclose(h.sum() + (f * rg.outside).sum(), f.sum(), rtol=1e-12)
    assert rg.uncovered_area_fraction > 0.1  # the 60 km x 40 km grid is larger than the source


def test_different_crs_sub_cells_carry_their_area_share():
    # a 1°x1° WGS84 cell at 60-61°N split at 60.5°N by a NAD83 lat/lon target: a different
    # CRS (sub-cell path) with the same cell edges. The two halves' shares must be their exact
    # ellipsoidal area fractions (0.77 % of the cell apart at this latitude), as on the same-CRS path.
    src = Grid("EPSG:4326", (1, 0, 10, 0, 1, 60), (1, 1))
    tgt = Grid("EPSG:4269", (1, 0, 10, 0, 0.5, 60), (2, 1))
    exact = conservative_regridder(src, Grid("EPSG:4326", tgt.transform, tgt.shape))
    w_exact = exact.matrix.toarray()[:, 0]
    assert abs(w_exact[0] - w_exact[1]) > 0.005
    a = tgt.cell_area.ravel()  # independent: cell areas of the target halves
    np.testing.assert_allclose(w_exact, a / a.sum(), rtol=1e-6)
    w = conservative_regridder(src, tgt, supersample=8).matrix.toarray()[:, 0]
    np.testing.assert_allclose(w, w_exact, rtol=1e-9)
