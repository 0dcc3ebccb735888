"""Contract of every covariance operator against an explicit matrix built here, independently.

For each operator: matvec / matmat equal the reference product (rel. 1e-10), diag() equals the
diagonal of to_dense(), to_dense() equals the reference, is symmetric and positive
(semi)definite, L Lᵀ (from sqrt_matvec on identity columns) equals the reference (rel. 1e-10),
and sqrt_rmatvec is the transpose of sqrt_matvec (dot-product test).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from inversion.covariance import (
    BlockDiagonalCovariance,
    DenseCovariance,
    DiagonalCovariance,
    KroneckerCovariance,
    PointsCorrelation,
    RegularGridCorrelation,
    SeparableGridCorrelation,
    TemporalCorrelation,
    kronecker_prior,
)

RTOL = 1e-10
R_KM = 6371.0088


# ---------------------------------------------------------------- independent references
def rho_ref(d: np.ndarray, L: float, kind: str) -> np.ndarray:
    """Correlation functions written out from their textbook definitions."""
    if kind == "exponential":
        return np.exp(-d / L)
    if kind == "gaussian":
        return np.exp(-(d**2) / (2.0 * L**2))
    assert kind == "matern32"
    return (1.0 + np.sqrt(3.0) * d / L) * np.exp(-np.sqrt(3.0) * d / L)


def grid_ref(shape, spacing, kind, L) -> np.ndarray:
    """Correlation matrix of grid cells (C order), planar distances from cell centres."""
    ny, nx = shape
    dy, dx = spacing
    yy, xx = np.meshgrid(np.arange(ny) * dy, np.arange(nx) * dx, indexing="ij")
    pts = np.column_stack([yy.ravel(), xx.ravel()])
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    return rho_ref(d, L, kind)


def taxicab_ref(shape, spacing, L) -> np.ndarray:
    """exp(−(|Δy| + |Δx|)/L) of grid cells (C order) from their centres' coordinates [km]."""
    ny, nx = shape
    yy, xx = np.meshgrid(np.arange(ny) * spacing[0], np.arange(nx) * spacing[1], indexing="ij")
    dy = np.abs(yy.ravel()[:, None] - yy.ravel()[None, :])
    dx = np.abs(xx.ravel()[:, None] - xx.ravel()[None, :])
    return np.exp(-(dy + dx) / L)


def great_circle_ref(lat, lon) -> np.ndarray:
    """Great-circle distances [km] from 3-D unit vectors, atan2(|a×b|, a·b) (not haversine)."""
    la, lo = np.radians(lat), np.radians(lon)
    u = np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    cross = np.linalg.norm(np.cross(u[:, None, :], u[None, :, :]), axis=-1)
    dot = u @ u.T
    return R_KM * np.arctan2(cross, dot)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ---------------------------------------------------------------- cases
def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def case_diagonal():
    v = _rng(1).uniform(0.1, 2.0, 13)
    return DiagonalCovariance(v), np.diag(v)


def case_dense():
    A = _rng(2).normal(size=(9, 9))
    M = A @ A.T + 0.5 * np.eye(9)
    return DenseCovariance(M), M


def case_grid(shape, spacing, kind, L):
    def make():
        return RegularGridCorrelation(shape, spacing, kind, L), grid_ref(shape, spacing, kind, L)

    return make


def case_points(kind, engine):
    def make():
        rng = _rng(3)
        lat = 48.8 + rng.uniform(-0.2, 0.2, 40)
        lon = 2.35 + rng.uniform(-0.3, 0.3, 40)
        ref = rho_ref(great_circle_ref(lat, lon), 8.0, kind)
        return PointsCorrelation(lat, lon, kind, 8.0, engine=engine), ref

    return make


def case_temporal():
    t = np.array([0.0, 1.0, 3.0, 4.5, 10.0, 24.0])
    C = np.exp(-np.abs(t[:, None] - t[None, :]) / 6.0)
    return TemporalCorrelation(6.0, times_hours=t), C


def case_kronecker(shape, kind):
    def make():
        nt = 4
        ns = shape[0] * shape[1]
        std = _rng(4).uniform(0.2, 1.5, (nt, ns))
        Cs = grid_ref(shape, (1.0, 2.0), kind, 2.0)
        t = np.arange(nt) * 3.0
        Ct = np.exp(-np.abs(t[:, None] - t[None, :]) / 5.0)
        d = std.ravel()
        ref = d[:, None] * np.kron(Ct, Cs) * d[None, :]
        op = KroneckerCovariance(
            std,
            RegularGridCorrelation(shape, (1.0, 2.0), kind, 2.0),
            TemporalCorrelation(5.0, nt=nt, step_hours=3.0),
        )
        return op, ref

    return make


def case_separable(shape, spacing, L):
    def make():
        return SeparableGridCorrelation(shape, spacing, L), taxicab_ref(shape, spacing, L)

    return make


def case_kronecker_separable(markov: bool):
    """B = D (C_t ⊗ C_s) D with the separable spatial kernel; C_t Markov or a general matrix."""

    def make():
        shape, nt = (4, 5), 5
        rng = _rng(8)
        std = rng.uniform(0.2, 1.5, (nt, 20))
        Cs = taxicab_ref(shape, (1.0, 2.0), 3.0)
        if markov:
            t = np.arange(nt) * 2.0
            Ct = np.exp(-np.abs(t[:, None] - t[None, :]) / 7.0)
            temporal = TemporalCorrelation(7.0, nt=nt, step_hours=2.0)
        else:
            A = rng.normal(size=(nt, nt))
            Ct = A @ A.T + np.eye(nt)
            temporal = DenseCovariance(Ct)
        d = std.ravel()
        ref = d[:, None] * np.kron(Ct, Cs) * d[None, :]
        op = KroneckerCovariance(std, SeparableGridCorrelation(shape, (1.0, 2.0), 3.0), temporal)
        return op, ref

    return make


def case_kronecker_prior_separable():
    shape, nt, ns_ = (3, 4), 3, 2
    std = _rng(9).uniform(0.1, 1.0, (ns_, nt, *shape))
    Cs = taxicab_ref(shape, (2.0, 2.0), 4.0)
    t = np.arange(nt) * 24.0
    Ct = np.exp(-np.abs(t[:, None] - t[None, :]) / 36.0)
    ref = scipy.linalg.block_diag(*[np.kron(Ct, Cs) * np.outer(s.ravel(), s.ravel()) for s in std])
    op = kronecker_prior(
        std, shape, 2.0, "separable_exponential", 4.0, nt, 24.0, 36.0, n_sectors=ns_
    )
    return op, ref


def case_kronecker_points():
    """Generic path: irregular spatial points (numba) and an explicit temporal matrix."""
    rng = _rng(7)
    lat = 31.2 + rng.uniform(-0.1, 0.1, 12)
    lon = 121.4 + rng.uniform(-0.1, 0.1, 12)
    Cs = rho_ref(great_circle_ref(lat, lon), 5.0, "matern32")
    A = rng.normal(size=(3, 3))
    Ct = A @ A.T + np.eye(3)
    std = rng.uniform(0.5, 1.0, 36)
    ref = std[:, None] * np.kron(Ct, Cs) * std[None, :]
    op = KroneckerCovariance(std, PointsCorrelation(lat, lon, "matern32", 5.0), DenseCovariance(Ct))
    return op, ref


def case_block_permuted():
    rng = _rng(5)
    A = rng.normal(size=(5, 5))
    M1 = A @ A.T + np.eye(5)
    v2 = rng.uniform(0.5, 1.0, 4)
    C3 = grid_ref((2, 3), (1.0, 1.0), "exponential", 2.0)
    ref_blocks = scipy.linalg.block_diag(M1, np.diag(v2), C3)
    index = rng.permutation(15)
    ref = np.empty_like(ref_blocks)
    ref[np.ix_(index, index)] = ref_blocks
    op = BlockDiagonalCovariance(
        [
            DenseCovariance(M1),
            DiagonalCovariance(v2),
            RegularGridCorrelation((2, 3), 1.0, "exponential", 2.0),
        ],
        index=index,
    )
    return op, ref


def case_kronecker_prior():
    shape, nt, ns_ = (3, 4), 3, 2
    std = _rng(6).uniform(0.1, 1.0, (ns_, nt, *shape))
    Cs = grid_ref(shape, (2.0, 2.0), "matern32", 4.0)
    t = np.arange(nt) * 24.0
    Ct = np.exp(-np.abs(t[:, None] - t[None, :]) / 36.0)
    blocks = [np.kron(Ct, Cs) * np.outer(s.ravel(), s.ravel()) for s in std]
    ref = scipy.linalg.block_diag(*blocks)
    op = kronecker_prior(std, shape, 2.0, "matern32", 4.0, nt, 24.0, 36.0, n_sectors=ns_)
    return op, ref


CASES = {
    "diagonal": case_diagonal,
    "dense": case_dense,
    "temporal": case_temporal,
    "block_permuted": case_block_permuted,
    "kronecker_prior": case_kronecker_prior,
    "kronecker_points": case_kronecker_points,
}
for _kind in ("exponential", "gaussian", "matern32"):
    for _shape in [(1, 17), (17, 1), (5, 7), (6, 4), (9, 9)]:
        CASES[f"grid-{_kind}-{_shape[0]}x{_shape[1]}"] = case_grid(_shape, (1.0, 1.5), _kind, 2.5)
    CASES[f"kronecker-{_kind}"] = case_kronecker((3, 5), _kind)
    for _engine in ("numba", "numpy"):
        CASES[f"points-{_kind}-{_engine}"] = case_points(_kind, _engine)
CASES["kronecker-1xn"] = case_kronecker((1, 8), "exponential")
for _shape in [(1, 9), (9, 1), (5, 7), (8, 3)]:
    CASES[f"separable-{_shape[0]}x{_shape[1]}"] = case_separable(_shape, (1.0, 1.5), 2.5)
CASES["separable-long-length"] = case_separable((6, 5), (1.0, 1.0), 60.0)
CASES["kronecker-separable-markov"] = case_kronecker_separable(True)
CASES["kronecker-separable-dense-time"] = case_kronecker_separable(False)
CASES["kronecker_prior-separable"] = case_kronecker_prior_separable
CASES["grid-long-length"] = case_grid((6, 5), (1.0, 1.0), "exponential", 6.0)


@pytest.fixture(params=sorted(CASES), scope="module")
def case(request):
    return CASES[request.param]()


# ---------------------------------------------------------------- the contract
def test_matvec_and_matmat_match_reference(case):
    op, ref = case
    rng = _rng(10)
    v = rng.normal(size=op.shape[0])
    V = rng.normal(size=(op.shape[0], 5))
    assert op.dtype == np.float64
    yv = op @ v
    assert yv.shape == (op.shape[0],)
    assert rel_err(yv, ref @ v) < RTOL
    assert rel_err(op @ V, ref @ V) < RTOL
    assert rel_err(op.matmat(V[:, :1]), ref @ V[:, :1]) < RTOL


def test_sparse_input_matches_dense(case):
    op, ref = case
    V = sp.random_array((op.shape[0], 4), density=0.2, rng=_rng(11), format="csr")
    V = V + sp.csr_array(
        (np.ones(4), (np.arange(4) % op.shape[0], np.arange(4))), shape=V.shape
    )  # no empty column
    out = op @ V
    assert isinstance(out, np.ndarray)
    assert rel_err(out, ref @ V.toarray()) < RTOL


def test_dense_diag_symmetric_psd(case):
    op, ref = case
    M = op.to_dense()
    assert rel_err(M, ref) < RTOL
    np.testing.assert_allclose(op.diag(), np.diag(M), rtol=1e-12, atol=0)
    np.testing.assert_allclose(M, M.T, rtol=0, atol=1e-12 * np.abs(M).max())
    ev = np.linalg.eigvalsh(M)
    assert ev.min() > -1e-10 * ev.max()


def test_sqrt_squares_to_operator(case):
    op, ref = case
    q = op.sqrt_dim
    L = op.sqrt_matvec(np.eye(q))
    assert L.shape == (op.shape[0], q)
    assert rel_err(L @ L.T, ref) < RTOL
    # 1-D input gives the same as one column
    w = _rng(12).normal(size=q)
    np.testing.assert_allclose(op.sqrt_matvec(w), L @ w, rtol=1e-10, atol=1e-12)


def test_sqrt_rmatvec_is_transpose(case):
    op, _ = case
    rng = _rng(13)
    w = rng.normal(size=(op.sqrt_dim, 3))
    v = rng.normal(size=(op.shape[0], 3))
    lhs = np.sum(op.sqrt_matvec(w) * v)
    rhs = np.sum(w * op.sqrt_rmatvec(v))
    assert abs(lhs - rhs) <= 1e-11 * (abs(lhs) + np.abs(w).sum() * np.abs(v).max())
    assert op.sqrt_rmatvec(v[:, 0]).shape == (op.sqrt_dim,)


def test_linear_operator_adjoint_is_self(case):
    op, ref = case
    v = _rng(14).normal(size=op.shape[0])
    assert rel_err(op.rmatvec(v), ref.T @ v) < RTOL
    assert rel_err(op.H @ v, ref @ v) < RTOL


# ---------------------------------------------------------------- property: symmetry
_SYM_OPS = {
    "grid": RegularGridCorrelation((7, 4), (1.0, 0.5), "matern32", 2.0),
    "kron": case_kronecker((2, 3), "gaussian")()[0],
    "prior": case_kronecker_prior()[0],
}


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(_SYM_OPS)),
    seed=st.integers(0, 2**32 - 1),
    zero_frac=st.floats(0.0, 0.9),
)
def test_symmetry_property(name, seed, zero_frac):
    """<B u, v> = <u, B v> for random (partly zero) u, v."""
    op = _SYM_OPS[name]
    rng = np.random.default_rng(seed)
    u = rng.normal(size=op.shape[0]) * (rng.random(op.shape[0]) > zero_frac)
    v = rng.normal(size=op.shape[0])
    a, b = np.dot(op @ u, v), np.dot(u, op @ v)
    scale = np.abs(u).sum() * np.abs(v).sum() * np.abs(op.diag()).max()
    assert abs(a - b) <= 1e-12 * scale
