"""Kernels, distances, FFT embedding and the Kronecker zero-slice optimisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from inversion.covariance import (
    EARTH_RADIUS_KM,
    DenseCovariance,
    DiagonalCovariance,
    KroneckerCovariance,
    RegularGridCorrelation,
    TemporalCorrelation,
    correlation_function,
    haversine_km,
    kronecker_prior,
    temporal_correlation,
)
from inversion.covariance._grid import SINGLE_PRECISION_RTOL
from inversion.covariance._kernels import (
    AR1_APPLY,
    AR1_SQRT,
    AR1_SQRT_T,
    ar1_apply_numba,
    ar1_apply_numpy,
    ar1_grid_numba,
    ar1_grid_numpy,
    ar1_matrix,
    ar1_sqrt_numba,
    ar1_sqrt_numpy,
    ar1_sqrt_t_numba,
    ar1_sqrt_t_numpy,
    nonzero_slices_numba,
    pairs_to_state_numba,
    pairs_to_state_numpy,
    points_correlation_matrix_numpy,
    points_matmat_numba,
    points_matmat_numpy,
)


# ---------------------------------------------------------------- distances and functions
def test_haversine_hand_computed_pairs():
    # one degree along the equator and a quarter meridian: R·π/180 and R·π/2
    assert haversine_km(0.0, 0.0, 0.0, 1.0) == pytest.approx(
        EARTH_RADIUS_KM * math.pi / 180, rel=1e-13
    )
    assert haversine_km(0.0, 10.0, 90.0, 10.0) == pytest.approx(
        EARTH_RADIUS_KM * math.pi / 2, rel=1e-13
    )
    # Paris (48.8566 N, 2.3522 E) - London (51.5074 N, 0.1278 W), spherical law of cosines
    p1, p2 = math.radians(48.8566), math.radians(51.5074)
    dl = math.radians(-0.1278 - 2.3522)
    cos_c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    expected = EARTH_RADIUS_KM * math.acos(cos_c)  # 343.5 km
    assert expected == pytest.approx(343.5, abs=0.5)
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(expected, rel=1e-10)
    # symmetric and zero on the diagonal, broadcasting
    d = haversine_km([[10.0], [20.0]], [[0.0], [5.0]], [10.0, 20.0], [0.0, 5.0])
    assert d.shape == (2, 2)
    assert d[0, 0] == 0.0 and d[1, 1] == 0.0 and d[0, 1] == pytest.approx(d[1, 0], rel=1e-14)


def test_correlation_function_values_at_one_length():
    L = 7.0
    assert correlation_function(L, L, "exponential") == pytest.approx(math.exp(-1.0), rel=1e-15)
    assert correlation_function(L, L, "gaussian") == pytest.approx(math.exp(-0.5), rel=1e-15)
    expected = (1 + math.sqrt(3)) * math.exp(-math.sqrt(3))
    assert correlation_function(L, L, "matern32") == pytest.approx(expected, rel=1e-15)
    assert np.all(correlation_function([0.0, 0.0], L, "matern32") == 1.0)
    np.testing.assert_allclose(
        temporal_correlation([-3.0, 0.0, 6.0], 3.0), np.exp([-1.0, 0.0, -2.0]), rtol=1e-15
    )


# ---------------------------------------------------------------- numba vs numpy twin
@pytest.mark.parametrize("code", [0, 1, 2])
def test_points_numba_kernel_equals_numpy_twin(code):
    rng = np.random.default_rng(code)
    n = 300
    lat = np.radians(rng.uniform(-60, 60, n))
    lon = np.radians(rng.uniform(-180, 180, n))
    X = rng.normal(size=(n, 4))
    ref = points_matmat_numpy(lat, lon, X, code, 1500.0)
    out = points_matmat_numba(lat, lon, X, code, 1500.0)
    np.testing.assert_allclose(out, ref, rtol=1e-11, atol=1e-11 * np.abs(ref).max())
    # the twin's matrix uses haversine distances
    M = points_correlation_matrix_numpy(lat[:5], lon[:5], 0, 1500.0)
    la, lo = np.degrees(lat[:5]), np.degrees(lon[:5])
    d = haversine_km(la[:, None], lo[:, None], la[None, :], lo[None, :])
    np.testing.assert_allclose(M, np.exp(-d / 1500.0), rtol=1e-12)


# ---------------------------------------------------------------- FFT embedding
def test_fft_embedding_sizes_and_larger_grid_exactness():
    C = RegularGridCorrelation((37, 53), (1.0, 0.7), "exponential", 4.0)
    My, Mx = C.embedding_shape
    assert My >= 2 * 37 - 1 and Mx >= 2 * 53 - 1
    assert C.sqrt_dim == np.prod(C.sqrt_embedding_shape)
    assert RegularGridCorrelation((1, 9), 1.0, "gaussian", 2.0).embedding_shape[0] == 1
    # independent dense reference for n = 1961
    yy, xx = np.meshgrid(np.arange(37) * 1.0, np.arange(53) * 0.7, indexing="ij")
    d = np.hypot(yy.ravel()[:, None] - yy.ravel(), xx.ravel()[:, None] - xx.ravel())
    ref = np.exp(-d / 4.0)
    V = np.random.default_rng(0).normal(size=(C.n, 3))
    out = C @ V
    assert np.max(np.abs(out - ref @ V)) / np.max(np.abs(ref @ V)) < 1e-10


def test_fft_sqrt_gives_unit_variance_samples():
    C = RegularGridCorrelation((20, 30), 1.0, "gaussian", 3.0)
    W = np.random.default_rng(0).normal(size=(C.sqrt_dim, 8))
    S = C.sqrt_matvec(W)
    assert S.shape == (600, 8)
    # exact per-cell variance of L w is diag(L Lᵀ) = 1; check it without sampling noise
    rows = C.sqrt_rmatvec(np.eye(600)[:, :50])  # Lᵀ e_i, i < 50
    np.testing.assert_allclose(np.sum(rows**2, axis=0), 1.0, rtol=1e-10)


# ---------------------------------------------------------------- Kronecker zero-slice skipping
class _CountingGrid(RegularGridCorrelation):
    """Records how many spatial rows each batched application receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def _apply_rows(self, R):
        self.calls.append(R.shape[0])
        return super()._apply_rows(R)


def _kron_reference(op: KroneckerCovariance) -> np.ndarray:
    d = op.std.ravel()
    return d[:, None] * np.kron(op.temporal.to_dense(), op.spatial.to_dense()) * d[None, :]


@pytest.mark.parametrize("active", [2, 4])  # slice density 1/3: per-slice path; 2/3: dense path
@pytest.mark.parametrize("sparse_input", [False, True])
def test_kronecker_skips_all_zero_time_slices(sparse_input, active):
    nt, shape = 6, (4, 5)
    ns = 20
    Cs = _CountingGrid(shape, 1.0, "exponential", 2.0)
    B = KroneckerCovariance(
        np.random.default_rng(1).uniform(0.5, 1.0, (nt, ns)),
        Cs,
        TemporalCorrelation(12.0, nt=nt, step_hours=6.0),
    )
    rng = np.random.default_rng(2)
    k = 7
    V = np.zeros((nt * ns, k))
    for j in range(k):  # each column non-zero in `active` time steps only
        for t in rng.choice(nt, active, replace=False):
            V[t * ns + rng.choice(ns, 3, replace=False), j] = rng.normal(size=3)
    out = B @ (sp.csc_array(V) if sparse_input else V)
    if active == 2:
        assert Cs.calls == [2 * k]  # one batch, only the 14 non-zero (time, column) slices
    else:  # mostly dense: C_t first, then C_s on all fields at once (no per-slice batch)
        assert Cs.calls == []
    ref = _kron_reference(B) @ V
    assert np.max(np.abs(out - ref)) / np.max(np.abs(ref)) < 1e-10


def test_kronecker_all_zero_input_and_flat_std():
    B = KroneckerCovariance(
        np.full(12, 2.0), RegularGridCorrelation((2, 3), 1.0, "gaussian", 1.0),
        TemporalCorrelation(5.0, nt=2, step_hours=1.0),
    )  # fmt: skip
    np.testing.assert_array_equal(B @ np.zeros((12, 3)), 0.0)
    np.testing.assert_allclose(B.diag(), 4.0, rtol=1e-15)


def test_kronecker_prior_uncorrelated_time_and_input_untouched():
    std = np.random.default_rng(3).uniform(0.1, 1.0, (2, 3, 2, 4))
    B = kronecker_prior(std, (2, 4), 1.0, "exponential", 1.5, 3, 24.0, None, n_sectors=2)
    assert isinstance(B.blocks[0].temporal, DiagonalCovariance)
    M = B.to_dense()
    # no correlation between time steps or sectors: off-diagonal (8 x 8) blocks are zero
    blocks = M.reshape(6, 8, 6, 8)
    off = [blocks[i, :, j, :] for i in range(6) for j in range(6) if i != j]
    assert np.all(np.asarray(off) == 0.0)
    V = np.random.default_rng(4).normal(size=(B.shape[0], 2))
    V_copy = V.copy()
    B @ V
    B.sqrt_rmatvec(V)
    np.testing.assert_array_equal(V, V_copy)


def test_float32_and_list_inputs():
    C = RegularGridCorrelation((3, 3), 1.0, "exponential", 1.0)
    v = np.arange(9, dtype=np.float32)
    out = C @ v
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, C.to_dense() @ v.astype(np.float64), rtol=1e-12)
    np.testing.assert_allclose(C.sqrt_rmatvec(list(range(9))), C.sqrt_rmatvec(v), rtol=1e-12)


@pytest.mark.parametrize("identity_ct", [False, True])
def test_pairs_to_state_numba_equals_numpy_twin(identity_ct):
    # slices with repeated columns and times, zero field values, and an empty column
    rng = np.random.default_rng(3)
    nt, ns, k, m = 5, 7, 6, 11
    rows = rng.standard_normal((m, ns))
    rows[2, :3] = 0.0
    t_idx = rng.integers(0, nt, m)
    j_idx = rng.integers(0, k - 1, m)  # column k-1 gets no slice: it must come out zero
    lags = np.subtract.outer(np.arange(nt), np.arange(nt)) * 6.0
    Ct = np.eye(nt) if identity_ct else temporal_correlation(lags, 12.0)
    std = rng.uniform(0.5, 1.5, (nt, ns))
    out = np.full((nt * ns, k), np.nan)  # the kernel must overwrite every element
    pairs_to_state_numba(rows, t_idx, j_idx, Ct, std, out)
    ref = pairs_to_state_numpy(rows, t_idx, j_idx, Ct, std, k)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-14)
    assert np.all(out[:, k - 1] == 0.0)


# ---------------------------------------------------------------- Markov (AR(1)) time axis
@pytest.mark.parametrize("shape", [(1, 5), (7, 3), (9, 700)])  # 700: several column blocks
@pytest.mark.parametrize("k", [1, 3, 5])  # columns per cell, sharing the cell's scale
def test_ar1_kernels_equal_numpy_twins(shape, k):
    rng = np.random.default_rng(5)
    nt, ns = shape
    X = rng.standard_normal((nt, ns * k))
    scale = rng.uniform(0.5, 1.5, shape)
    rho = 0.83
    for kernel, twin in (
        (lambda o: ar1_apply_numba(X, scale, k, rho, o), lambda: ar1_apply_numpy(X, scale, k, rho)),
        (lambda o: ar1_sqrt_numba(X, rho, scale, k, o), lambda: ar1_sqrt_numpy(X, rho, scale, k)),
        (lambda o: ar1_sqrt_t_numba(X, scale, k, rho, o), lambda: ar1_sqrt_t_numpy(X, scale, k, rho)),
    ):  # fmt: skip
        out = np.full(X.shape, np.nan)  # every element must be written
        kernel(out)
        np.testing.assert_allclose(out, twin(), rtol=1e-13, atol=1e-13)
    # column j is scaled by cell j // k: a twin with the scale repeated by hand agrees
    manual = ar1_matrix(nt, rho) @ (scale[:, np.arange(ns * k) // k] * X)
    np.testing.assert_allclose(ar1_apply_numpy(X, scale, k, rho), manual, rtol=1e-13)


def test_markov_rho_only_for_exponential_on_equal_steps():
    C = TemporalCorrelation(6.0, nt=5, step_hours=2.0)
    assert C.markov_rho == pytest.approx(math.exp(-2.0 / 6.0), rel=1e-15)
    # the recursion's matrix is the explicit one
    idx = np.arange(5)
    np.testing.assert_allclose(
        C.markov_rho ** np.abs(idx[:, None] - idx[None, :]), C.to_dense(), rtol=1e-14
    )
    assert TemporalCorrelation(6.0, times_hours=[0.0, 1.0, 3.0]).markov_rho is None
    assert TemporalCorrelation(6.0, nt=5, step_hours=2.0, kind="gaussian").markov_rho is None
    assert TemporalCorrelation(6.0, times_hours=[0.5, 1.5, 2.5]).markov_rho is not None


@pytest.mark.parametrize("k", [1, 3])
def test_kronecker_markov_path_equals_explicit_temporal_matrix(k):
    # the same B with C_t given as a plain dense matrix takes the BLAS path: products and
    # square roots must agree, and L Lᵀ = B
    nt, shape = 6, (4, 5)
    ns = 20
    rng = np.random.default_rng(6)
    std = rng.uniform(0.5, 1.5, (nt, ns))
    spatial = RegularGridCorrelation(shape, 1.0, "exponential", 2.0)
    markov = KroneckerCovariance(std, spatial, TemporalCorrelation(9.0, nt=nt, step_hours=3.0))
    plain = KroneckerCovariance(std, spatial, DenseCovariance(markov.temporal.to_dense()))
    assert markov.markov_rho is not None and plain.markov_rho is None
    X = rng.standard_normal((nt * ns, k))
    W = rng.standard_normal((markov.sqrt_dim, k))
    np.testing.assert_allclose(markov @ X, plain @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(markov.sqrt_matvec(W), plain.sqrt_matvec(W), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(
        markov.sqrt_rmatvec(X), plain.sqrt_rmatvec(X), rtol=1e-11, atol=1e-12
    )
    L = markov.sqrt_matvec(np.eye(markov.sqrt_dim))
    np.testing.assert_allclose(L @ L.T, _kron_reference(markov), rtol=1e-10, atol=1e-12)


def test_single_precision_spectra_within_the_stated_bound():
    B = kronecker_prior(
        np.random.default_rng(7).uniform(0.5, 1.5, (1, 4, 30, 40)), (30, 40), 1.0,
        "exponential", 5.0, nt=4, step_hours=1.0, tau_hours=6.0,
    )  # fmt: skip
    B32 = B.with_precision("single")
    assert B32 is not B and B.with_precision("double") is B
    assert B32.blocks[0].spatial.precision == "single" and B.blocks[0].spatial.precision == "double"
    X = np.random.default_rng(8).standard_normal((B.shape[0], 3))
    exact, approx = B @ X, B32 @ X
    assert approx.dtype == np.float64
    rel = np.linalg.norm(approx - exact, axis=0) / np.linalg.norm(exact, axis=0)
    assert np.all(rel < SINGLE_PRECISION_RTOL) and np.all(rel > 1e-12)  # really single
    D = DiagonalCovariance(np.ones(3))
    assert D.with_precision("single") is D
    with pytest.raises(ValueError, match="precision must be"):
        B.with_precision("half")


@pytest.mark.parametrize("kind", ["exponential", "gaussian", "matern32"])
def test_short_kernel_uses_a_smaller_torus_and_stays_exact(kind):
    # a grid many correlation lengths wide: the matvec torus is n + (cells to a 1e-17
    # correlation) instead of 2n - 1, with the same product to rounding; L Lᵀ = C still
    C = RegularGridCorrelation((60, 70), (1.0, 1.5), kind, 1.0)
    My, Mx = C.embedding_shape
    assert My < 2 * 60 - 1 and Mx < 2 * 70 - 1
    X = np.random.default_rng(9).standard_normal((C.n, 2))
    ref = C.to_dense() @ X
    np.testing.assert_allclose(C @ X, ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    small = RegularGridCorrelation((30, 45), 1.0, kind, 0.7)
    assert small.embedding_shape[1] < 2 * 45 - 1
    L = small.sqrt_matvec(np.eye(small.sqrt_dim))
    np.testing.assert_allclose(L @ L.T, small.to_dense(), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- separable grid kernel
@pytest.mark.parametrize("shape", [(1, 6), (6, 1), (7, 9), (40, 3)])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("mode", [AR1_APPLY, AR1_SQRT, AR1_SQRT_T])
@pytest.mark.parametrize("scaled", [False, True])
def test_ar1_grid_kernel_equals_numpy_twin(shape, k, mode, scaled):
    rng = np.random.default_rng(11)
    m = 3
    F = rng.standard_normal((m, *shape, k))
    scale = rng.uniform(0.5, 1.5, (m, *shape)) if scaled else None
    out = np.full(F.shape, np.nan)  # every element must be written
    ar1_grid_numba(F, 0.71, 0.37, mode, np.zeros((0, 0, 0)) if scale is None else scale, out)
    np.testing.assert_allclose(
        out, ar1_grid_numpy(F, 0.71, 0.37, mode, scale), rtol=1e-13, atol=1e-13
    )


def test_ar1_grid_twin_is_the_kronecker_product_of_its_axes():
    # the twin itself against np.kron of the per-axis matrices (C_y ⊗ C_x on a C-order field)
    rng = np.random.default_rng(12)
    F = rng.standard_normal((1, 4, 5, 1))
    C = np.kron(ar1_matrix(4, 0.6), ar1_matrix(5, 0.3))
    np.testing.assert_allclose(
        ar1_grid_numpy(F, 0.6, 0.3, AR1_APPLY)[0, :, :, 0].ravel(), C @ F.ravel(), rtol=1e-13
    )
    L = np.linalg.cholesky(C)  # the Kronecker product of lower factors is C's Cholesky factor
    np.testing.assert_allclose(
        ar1_grid_numpy(F, 0.6, 0.3, AR1_SQRT)[0, :, :, 0].ravel(), L @ F.ravel(), rtol=1e-12
    )
    np.testing.assert_allclose(
        ar1_grid_numpy(F, 0.6, 0.3, AR1_SQRT_T)[0, :, :, 0].ravel(), L.T @ F.ravel(), rtol=1e-12
    )


@pytest.mark.parametrize("k", [1, 3])
def test_nonzero_slices_equals_numpy(k):
    rng = np.random.default_rng(13)
    X3 = np.zeros((6, 50, k))
    X3[1, 49, 0] = 1.0  # the last cell of a slice
    X3[3, :, k - 1] = rng.standard_normal(50)  # a dense slice
    X3[4, 7, 0] = -0.0  # a negative zero is zero
    X3[5, 0, k - 1] = 1e-300
    np.testing.assert_array_equal(nonzero_slices_numba(X3), np.any(X3 != 0.0, axis=1))
