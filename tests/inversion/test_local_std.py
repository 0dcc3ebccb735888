"""Local-window posterior std against the dense posterior covariance, and B restricted to a box."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from inversion.covariance import (
    DenseCovariance,
    DiagonalCovariance,
    KroneckerCovariance,
    RegularGridCorrelation,
    SeparableGridCorrelation,
    TemporalCorrelation,
    kronecker_prior,
)
from inversion.errors import ShapeMismatchError
from inversion.local_std import local_posterior_std, local_std_map

NY, NX, NT = 9, 11, 5


def _footprints(rng, n_obs: int, n_sectors: int, radius: int = 2) -> sp.csr_array:
    """Sparse H: each observation sees a disc of cells over 1–2 steps in every sector."""
    oy, ox = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = np.hypot(oy, ox) <= radius
    oy, ox = oy[disc], ox[disc]
    rows, cols, vals = [], [], []
    for o in range(n_obs):  # a test fixture: a loop over a few dozen observations
        y0, x0, t0 = rng.integers(0, NY), rng.integers(0, NX), rng.integers(0, NT)
        for lag in range(rng.integers(1, 3)):
            t = t0 - lag
            if t < 0:
                continue
            yy, xx = y0 + oy, x0 + ox
            keep = (yy >= 0) & (yy < NY) & (xx >= 0) & (xx < NX)
            for s in range(n_sectors):
                c = ((s * NT + t) * NY + yy[keep]) * NX + xx[keep]
                rows.append(np.full(c.size, o))
                cols.append(c)
                vals.append(rng.uniform(0.2, 1.0, c.size))
    n = n_sectors * NT * NY * NX
    H = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_obs, n)
    )
    H.sum_duplicates()
    return H


def _exact_std(H, B, R) -> np.ndarray:
    """sqrt(diag(B − B Hᵀ (H B Hᵀ + R)⁻¹ H B)) with every matrix written out."""
    Bd, Hd = B.to_dense(), H.toarray()
    G = Bd @ Hd.T
    S = Hd @ G + np.diag(R.diag())
    return np.sqrt(np.diag(Bd) - np.einsum("ij,ji->i", G, np.linalg.solve(S, G.T)))


def _problem(kind: str, n_sectors: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    B = kronecker_prior(
        rng.uniform(0.5, 1.5, (n_sectors, NT, NY, NX)), (NY, NX), 1.0, kind, 2.5, nt=NT,
        step_hours=1.0, tau_hours=3.0, n_sectors=n_sectors,
    )  # fmt: skip
    H = _footprints(rng, 40, n_sectors)
    R = DiagonalCovariance(rng.uniform(0.05, 0.3, H.shape[0]) ** 2)
    return H, B, R, rng


@pytest.mark.parametrize("kind", ["exponential", "separable_exponential"])
@pytest.mark.parametrize("n_sectors", [1, 2])
def test_window_over_the_whole_domain_is_the_exact_posterior_std(kind, n_sectors):
    H, B, R, rng = _problem(kind, n_sectors)
    cells = rng.choice(B.n, 25, replace=False)
    res = local_posterior_std(H, B, R, cells, halo_cells=NX, halo_steps=NT)
    np.testing.assert_allclose(res.std, _exact_std(H, B, R)[cells], rtol=1e-10)
    np.testing.assert_allclose(res.prior_std, np.sqrt(B.diag()[cells]), rtol=1e-14)
    assert np.all(res.n_obs == np.count_nonzero(np.diff(H.indptr)))  # every observation


def test_smaller_windows_are_upper_bounds_that_tighten_as_the_window_grows():
    # conditioning on fewer observations never lowers a Gaussian posterior variance: each
    # window's std is >= the exact one, and a larger (nested) window's is <= a smaller one's
    H, B, R, rng = _problem("exponential", 2, seed=3)
    cells = rng.choice(B.n, 40, replace=False)
    exact = _exact_std(H, B, R)[cells]
    prev = np.sqrt(B.diag()[cells])
    errors = []
    for halo in (0, 1, 2, 4, 8):
        res = local_posterior_std(H, B, R, cells, halo_cells=halo, halo_steps=halo // 2)
        assert np.all(res.std >= exact * (1 - 1e-12))
        assert np.all(res.std <= prev * (1 + 1e-12))
        errors.append(np.median(res.std / exact - 1))
        prev = res.std
    assert errors[0] > 0.01 > errors[-1]  # the bound is loose for one cell, tight at 8


def test_a_cell_no_observation_sees_keeps_its_prior_std():
    H, B, R, _ = _problem("exponential", 1, seed=4)
    seen = np.flatnonzero(np.asarray(abs(H).sum(axis=0)).ravel())
    unseen = np.setdiff1d(np.arange(B.n), seen)
    res = local_posterior_std(H, B, R, unseen[:3], halo_cells=0, halo_steps=0)
    np.testing.assert_array_equal(res.n_obs, 0)
    np.testing.assert_allclose(res.std, np.sqrt(B.diag()[unseen[:3]]), rtol=1e-15)


def test_bad_inputs_name_what_is_wrong():
    H, B, R, _ = _problem("exponential", 1)
    with pytest.raises(TypeError, match="KroneckerCovariance"):
        local_posterior_std(H, DenseCovariance(B.to_dense()), R, [0], halo_cells=1, halo_steps=1)
    with pytest.raises(TypeError, match="DiagonalCovariance"):
        local_posterior_std(H, B, DenseCovariance(np.diag(R.diag())), [0], halo_cells=1,
                            halo_steps=1)  # fmt: skip
    with pytest.raises(TypeError, match="sparse"):
        local_posterior_std(H.toarray(), B, R, [0], halo_cells=1, halo_steps=1)
    with pytest.raises(ValueError, match="halo_cells"):
        local_posterior_std(H, B, R, [0], halo_cells=-1, halo_steps=1)
    with pytest.raises(ValueError, match="halo_steps"):
        local_posterior_std(H, B, R, [0], halo_cells=1, halo_steps=1.5)
    with pytest.raises(ShapeMismatchError, match="cells"):
        local_posterior_std(H, B, R, [B.n], halo_cells=1, halo_steps=1)
    with pytest.raises(ShapeMismatchError, match="n_obs"):
        local_posterior_std(H[:-1], B, R, [0], halo_cells=1, halo_steps=1)


# ---------------------------------------------------------------- B on a box
@pytest.mark.parametrize(
    "temporal",
    [
        TemporalCorrelation(3.0, nt=NT, step_hours=1.0),  # Markov
        TemporalCorrelation(3.0, times_hours=[0.0, 1.0, 3.0, 3.5, 7.0]),  # irregular
        DiagonalCovariance(np.ones(NT)),  # uncorrelated steps
        DenseCovariance(np.eye(NT) + 0.3),  # any matrix
    ],
)
@pytest.mark.parametrize(
    "spatial",
    [
        RegularGridCorrelation((NY, NX), (1.0, 2.0), "matern32", 3.0),
        SeparableGridCorrelation((NY, NX), (1.0, 2.0), 3.0),
    ],
)
def test_restrict_is_the_principal_submatrix(temporal, spatial):
    rng = np.random.default_rng(5)
    B = KroneckerCovariance(rng.uniform(0.5, 1.5, (NT, NY * NX)), spatial, temporal)
    box = ((1, 4), (2, 7), (0, 6))
    tt, yy, xx = np.meshgrid(*(np.arange(*r) for r in box), indexing="ij")
    idx = ((tt * NY + yy) * NX + xx).ravel()
    sub = B.restrict(*box)
    np.testing.assert_allclose(sub.to_dense(), B.to_dense()[np.ix_(idx, idx)], rtol=1e-13,
                               atol=1e-15)  # fmt: skip
    assert (sub.markov_rho is None) == (B.markov_rho is None)  # the recursions stay


def test_restrict_refuses_boxes_outside_the_grid_and_non_grid_kernels():
    B = kronecker_prior(1.0, (NY, NX), 1.0, "exponential", 2.0, nt=NT, step_hours=1.0,
                        tau_hours=3.0).blocks[0]  # fmt: skip
    with pytest.raises(ValueError, match=r"y range \[3, 3\)"):
        B.restrict((0, 1), (3, 3), (0, 2))
    with pytest.raises(ValueError, match=r"t range \[0, 9\)"):
        B.restrict((0, 9), (0, 3), (0, 2))
    dense = KroneckerCovariance(np.ones((NT, 4)), DenseCovariance(np.eye(4)), B.temporal)
    with pytest.raises(TypeError, match="regular-grid"):
        dense.restrict((0, 1), (0, 1), (0, 1))


@pytest.mark.parametrize("kind", ["exponential", "separable_exponential"])
def test_tiled_map_equals_the_single_cell_windows_it_contains(kind):
    # a tile's cells are solved from the observations touching the tile widened by the halo:
    # with a halo over the whole domain every tile is exact; with a small one each cell's
    # value is bounded by the exact std below and by its own single-cell window above (the
    # tile's window contains the cell's)
    H, B, R, rng = _problem(kind, 2, seed=6)
    exact = _exact_std(H, B, R)
    full = local_std_map(H, B, R, core_cells=4, core_steps=2, halo_cells=NX, halo_steps=NT)
    np.testing.assert_array_equal(full.cells, np.arange(B.n))
    np.testing.assert_allclose(full.std, exact, rtol=1e-10)
    tiled = local_std_map(H, B, R, core_cells=3, core_steps=2, halo_cells=1, halo_steps=1)
    cells = rng.choice(B.n, 30, replace=False)
    single = local_posterior_std(H, B, R, cells, halo_cells=1, halo_steps=1)
    assert np.all(tiled.std[cells] >= exact[cells] * (1 - 1e-12))
    assert np.all(tiled.std[cells] <= single.std * (1 + 1e-12))
    with pytest.raises(ValueError, match="core_cells"):
        local_std_map(H, B, R, core_cells=0, core_steps=1, halo_cells=1, halo_steps=1)
