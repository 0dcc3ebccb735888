"""Row operators (column, lidar chord/profile, IPDA) and background blocks against dense references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from inversion import Grid, StateVector, TimeAxis
from transport_models.operator import (
    add_block,
    apply_rows,
    boundary_block,
    column_operator,
    ipda_operator,
    lidar_chord_operator,
    lidar_profile_operator,
    offset_block,
)


def _h(rng, n_rec, n_state):
    return sp.csr_array(sp.random(n_rec, n_state, density=0.3, random_state=rng))


def _adjoint(h: sp.csr_array, rng) -> None:
    x, y = rng.normal(size=h.shape[1]), rng.normal(size=h.shape[0])
    lhs = (h @ x) @ y
    rhs = x @ (h.T @ y)
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, np.abs(h).sum() * np.abs(x).max() * np.abs(y).max())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n_obs=st.integers(1, 6), n_lev=st.integers(1, 5))
def test_column_and_ipda(seed, n_obs, n_lev):
    rng = np.random.default_rng(seed)
    n_rec = n_obs * n_lev
    hr = _h(rng, n_rec, 30)
    idx = rng.permutation(n_rec).reshape(n_obs, n_lev)
    ak = rng.random((n_obs, n_lev)) + 0.5
    pw = rng.random((n_obs, n_lev)) + 0.1
    pw /= pw.sum(axis=1, keepdims=True)
    h = apply_rows(column_operator(idx, ak, pw, n_rec), hr)
    dense = hr.toarray()
    ref = np.stack([(pw[o, :, None] * ak[o, :, None] * dense[idx[o]]).sum(0) for o in range(n_obs)])
    np.testing.assert_allclose(h.toarray(), ref, rtol=1e-12, atol=1e-15)
    _adjoint(h, rng)
    iwf, dz = rng.random((n_obs, n_lev)) + 0.1, rng.random((n_obs, n_lev)) + 0.1
    hi = apply_rows(ipda_operator(idx, iwf, dz, n_rec), hr)
    w = iwf * dz / (iwf * dz).sum(axis=1, keepdims=True)
    ref = np.stack([(w[o, :, None] * dense[idx[o]]).sum(0) for o in range(n_obs)])
    np.testing.assert_allclose(hi.toarray(), ref, rtol=1e-12, atol=1e-15)
    _adjoint(hi, rng)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n_beam=st.integers(1, 3), n_samp=st.integers(2, 12))
def test_lidar_chord_and_profile(seed, n_beam, n_samp):
    rng = np.random.default_rng(seed)
    n_rec = n_beam * n_samp
    hr = _h(rng, n_rec, 25)
    dense = hr.toarray()
    beam = np.repeat(np.arange(n_beam), n_samp)
    length = rng.random(n_rec) + 0.1
    rec = np.arange(n_rec)
    h = apply_rows(lidar_chord_operator(beam, rec, length, n_beam, n_rec), hr)
    ref = np.stack(
        [
            (length[beam == b, None] * dense[beam == b]).sum(0) / length[beam == b].sum()
            for b in range(n_beam)
        ]
    )
    np.testing.assert_allclose(h.toarray(), ref, rtol=1e-12, atol=1e-15)
    _adjoint(h, rng)
    rng_ = np.tile(np.arange(n_samp) * 100.0 + 50.0, n_beam)  # sample ranges [m]
    edges = np.array([0.0, 100.0 * ((n_samp + 1) // 2), 100.0 * n_samp])
    hp = apply_rows(lidar_profile_operator(beam, rng_, length, rec, edges, n_beam, n_rec), hr)
    assert hp.shape == (2 * n_beam, 25)
    for b in range(n_beam):
        for m in range(2):
            sel = (beam == b) & (rng_ >= edges[m]) & (rng_ < edges[m + 1])
            r = (length[sel, None] * dense[sel]).sum(0) / length[sel].sum()
            np.testing.assert_allclose(hp.toarray()[b * 2 + m], r, rtol=1e-12, atol=1e-15)
    _adjoint(hp, rng)


def test_row_operator_errors():
    idx = np.array([[0, 1]])
    with pytest.raises(ValueError, match="sum to 1"):
        column_operator(idx, np.ones((1, 2)), np.array([[0.5, 0.6]]), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        column_operator(np.array([[0, 2]]), np.ones((1, 2)), np.full((1, 2), 0.5), 2)
    with pytest.raises(ValueError, match="NaN"):
        ipda_operator(idx, np.array([[np.nan, 1.0]]), np.ones((1, 2)), 2)
    with pytest.raises(ValueError, match="no samples"):
        lidar_chord_operator(np.array([0]), np.array([0]), np.array([1.0]), 2, 1)
    with pytest.raises(ValueError, match="non-negative lengths"):
        lidar_chord_operator(np.array([0, 0]), np.array([0, 1]), np.array([1.0, -0.5]), 1, 2)
    with pytest.raises(ValueError, match="negative entries"):
        ipda_operator(idx, np.array([[-0.5, 1.0]]), np.ones((1, 2)), 2)
    with pytest.raises(ValueError, match="negative level weight"):
        column_operator(idx, np.ones((1, 2)), np.array([[1.2, -0.2]]), 2)


def test_background_blocks():
    rng = np.random.default_rng(5)
    grid = Grid.from_bounds("EPSG:32612", (0, 0, 3000, 2000), 1000)
    sites = ["B", "A", "B", "C"]
    block, labels = offset_block(sites)
    assert labels == ["A", "B", "C"]
    np.testing.assert_array_equal(block.toarray(), [[0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    state = StateVector(
        grid, TimeAxis.regular("2024-01-01", "2024-01-02", "1D"), extra={"bg": labels, "bc": 4}
    )
    n_extra = state.size - state.n_flux
    h = sp.csr_array(sp.hstack([_h(rng, 4, state.n_flux), sp.csr_array((4, n_extra))]))
    sens = rng.random((6, 4))  # 6 receptors, 4 curtains
    comb = sp.csr_array(rng.random((4, 6)))
    bc = boundary_block(sens, comb)
    np.testing.assert_allclose(bc.toarray(), comb.toarray() @ sens, rtol=1e-12)
    full = add_block(add_block(h, state, "bg", block), state, "bc", bc)
    x = rng.normal(size=state.size)
    expect = h @ x + block @ x[state.slice("bg")] + bc @ x[state.slice("bc")]
    np.testing.assert_allclose(full @ x, expect, rtol=1e-12)
    _adjoint(full, rng)
    with pytest.raises(ValueError, match="expected shape"):
        add_block(h, state, "bg", bc)
