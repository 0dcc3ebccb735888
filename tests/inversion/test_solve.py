"""Exact solvers: obs-space against the dense reference and against independent formulas."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from inversion.errors import MemoryBudgetError, NotPositiveDefiniteError
from inversion.problem import LinearProblem
from inversion.solve import solve
from tests.inversion._solver_cases import KronOperator, exp_corr, make_problem_arrays, random_spd

SHAPES = [(15, 40), (60, 24), (33, 33)]  # (n_obs, n_state): under- and over-determined


def _close(actual, desired, rtol):
    desired = np.asarray(desired)
    assert_allclose(actual, desired, rtol=rtol, atol=rtol * np.max(np.abs(desired)))


def _information_form(Hd, x_prior, y, Bd, R):
    """Independent reference: A = (B⁻¹ + Hᵀ R⁻¹ H)⁻¹, x̂ = x_a + A Hᵀ R⁻¹ (y − H x_a)."""
    Rinv = np.linalg.inv(R)
    A = np.linalg.inv(np.linalg.inv(Bd) + Hd.T @ Rinv @ Hd)
    mean = x_prior + A @ Hd.T @ Rinv @ (y - Hd @ x_prior)
    return mean, A


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("h_kind", ["dense", "sparse", "operator"])
@pytest.mark.parametrize("b_kind", ["dense", "kron"])
def test_obs_space_matches_dense(shape, h_kind, b_kind):
    n_obs, n_state = shape
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(7, n_obs, n_state, h_kind, b_kind)
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    ref = solve(problem, "dense")
    post = solve(problem, "obs-space", chunk_size=7)  # several chunks, the last one partial
    assert (ref.method, post.method) == ("dense", "obs-space")
    assert (ref.std_method, post.std_method) == ("exact-dense", "exact-obs-space")
    _close(post.mean, ref.mean, 1e-8)
    _close(post.std, ref.std, 1e-6)
    W = np.random.default_rng(1).standard_normal((4, n_state))
    W[0] = 1.0  # the "city total"
    m_ref, s_ref = ref.aggregate(W)
    m, s = post.aggregate(W)
    _close(m, m_ref, 1e-8)
    _close(s, s_ref, 1e-6)
    _close(post.aggregate_cov(W)[1], ref.aggregate_cov(W)[1], 1e-6)
    _close(post.averaging_kernel_diag, ref.averaging_kernel_diag, 1e-6)
    assert post.dofs == pytest.approx(ref.dofs, rel=1e-8)
    assert post.chi2 == pytest.approx(ref.chi2, rel=1e-10)


@pytest.mark.parametrize("method", ["dense", "obs-space"])
@pytest.mark.parametrize("h_kind", ["dense", "sparse"])
def test_against_information_form(method, h_kind):
    H, Hd, x_prior, y, B, Bd, R = make_problem_arrays(3, 25, 30, h_kind)
    post = solve(LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R), method, chunk_size=4)
    mean, A = _information_form(Hd, x_prior, y, Bd, R)
    _close(post.mean, mean, 1e-8)
    _close(post.std, np.sqrt(np.diag(A)), 1e-6)
    W = sp.csr_array(np.random.default_rng(2).uniform(size=(3, 30)) * (np.arange(30) % 3 == 0))
    m, s = post.aggregate(W)
    _close(m, W @ mean, 1e-8)
    _close(s, np.sqrt(np.diag(W @ (W @ A).T)), 1e-6)
    a = np.ones(30)
    m1, s1 = post.aggregate(a)
    assert isinstance(m1, float) and isinstance(s1, float)
    assert s1 == pytest.approx(np.sqrt(a @ A @ a), rel=1e-6)
    assert m1 == pytest.approx(a @ mean, rel=1e-8)
    _close(post.aggregate_cov(W.toarray())[1], W @ (W @ A).T, 1e-6)


@pytest.mark.parametrize("method", ["dense", "obs-space"])
def test_analytic_scalar_case(method):
    h, sb, sr, xa, y = 2.0, 3.0, 0.5, 1.0, 4.0
    post = solve(LinearProblem(H=[[h]], x_prior=[xa], y=[y], B=[[sb**2]], R=[[sr**2]]), method)
    s = h**2 * sb**2 + sr**2  # innovation variance
    assert post.mean[0] == pytest.approx(xa + sb**2 * h / s * (y - h * xa), rel=1e-12)
    assert post.std[0] == pytest.approx(np.sqrt(sb**2 * sr**2 / s), rel=1e-12)
    assert post.dofs == pytest.approx(h**2 * sb**2 / s, rel=1e-12)
    assert post.chi2 == pytest.approx((y - h * xa) ** 2 / s, rel=1e-12)
    assert post.averaging_kernel_diag[0] == pytest.approx(h**2 * sb**2 / s, rel=1e-12)
    assert post.error_reduction[0] == pytest.approx(1 - np.sqrt(sr**2 / s), rel=1e-12)
    assert post.aggregate([2.0]) == pytest.approx((2 * post.mean[0], 2 * post.std[0]), rel=1e-12)


@pytest.mark.parametrize("method", ["dense", "obs-space"])
def test_dofs_is_trace_hk(method):
    H, Hd, x_prior, y, B, Bd, R = make_problem_arrays(11, 20, 35, "sparse", "kron")
    post = solve(LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R), method, chunk_size=6)
    K = Bd @ Hd.T @ np.linalg.inv(Hd @ Bd @ Hd.T + R)
    assert post.dofs == pytest.approx(np.trace(Hd @ K), rel=1e-8)
    _close(post.averaging_kernel_diag, np.diag(K @ Hd), 1e-8)
    assert 0 < post.dofs < min(20, 35)


@pytest.mark.parametrize("method", ["dense", "obs-space"])
def test_batched_observations_match_separate_solves(method):
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(5, 12, 18, "sparse")
    post = solve(LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R), method)
    Y = y + np.random.default_rng(0).standard_normal((3, 12))
    means, chi2 = post.means_for(Y), post.chi2_for(Y)
    assert means.shape == (3, 18) and chi2.shape == (3,)
    for i in range(3):
        single = solve(LinearProblem(H=H, x_prior=x_prior, y=Y[i], B=B, R=R), method)
        _close(means[i], single.mean, 1e-10)
        assert chi2[i] == pytest.approx(single.chi2, rel=1e-10)
    _close(post.means_for(y), post.mean, 1e-12)


def test_auto_picks_and_logs(caplog):
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(0, 10, 20)
    with caplog.at_level(logging.INFO, logger="inversion.solve"):
        post = solve(LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R))
    assert post.method == "dense"
    assert "'dense' because n_state=20" in caplog.text
    rng = np.random.default_rng(0)
    n_state = 2500
    Hs = sp.random_array((5, n_state), density=0.01, rng=rng, format="csr")
    problem = LinearProblem(
        H=Hs, x_prior=np.zeros(n_state), y=np.ones(5), B=sp.eye_array(n_state), R=np.eye(5)
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="inversion.solve"):
        post = solve(problem)
    assert post.method == "obs-space"
    assert "'obs-space' because n_state=2500" in caplog.text


@pytest.mark.parametrize("method", ["lsqr", "gauss-jordan"])
def test_unknown_method_lists_valid_ones(method):
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(0, 4, 5)
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    with pytest.raises(ValueError, match=r"valid methods are: 'auto', 'dense', 'obs-space', 'cg'"):
        solve(problem, method)


def test_memory_budget_errors_say_what_to_use():
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(0, 10, 30)
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    with pytest.raises(MemoryBudgetError, match="use method='obs-space'"):
        solve(problem, "dense", memory_budget=10_000)
    ref = solve(problem, "dense")
    # S (10 x 10) and a chunk fit, G whole (30 x 10) does not: the std map is streamed
    post = solve(problem, "obs-space", memory_budget=2_200, chunk_size=1)
    _close(post.std, ref.std, 1e-10)
    # not even one streamed block (4 x 30 x 8 bytes beside S) fits: std refuses, aggregate works
    post = solve(problem, "obs-space", memory_budget=2_200, chunk_size=1)
    post.memory_budget = 1_500.0
    with pytest.raises(MemoryBudgetError, match=r"post.aggregate\(weights\)"):
        _ = post.std
    with pytest.raises(MemoryBudgetError, match="aggregate_cov"):
        _ = post.covariance
    _close(post.aggregate(np.ones(30))[1], ref.aggregate(np.ones(30))[1], 1e-6)


def test_non_pd_r_raises():
    # R has positive variances but is indefinite (eigenvalues -2 and 4); B is small
    R = np.array([[1.0, 3.0], [3.0, 1.0]])
    problem = LinearProblem(H=np.eye(2), x_prior=np.zeros(2), y=np.ones(2), B=0.01 * np.eye(2), R=R)
    for method in ("dense", "obs-space"):
        with pytest.raises(NotPositiveDefiniteError, match=r"S = H B Hᵀ \+ R.*check that R and B"):
            solve(problem, method)


def test_inputs_are_not_modified():
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(4, 9, 14, "dense")
    copies = [a.copy() for a in (H, x_prior, y, B, R)]
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    for method in ("dense", "obs-space"):
        post = solve(problem, method)
        _ = post.std, post.dofs, post.aggregate(np.ones(14)), post.averaging_kernel_diag
    for a, c in zip((H, x_prior, y, B, R), copies, strict=True):
        assert np.array_equal(a, c)


@pytest.mark.parametrize("h_kind", ["sparse", "operator"])
def test_with_covariance_package_operators(h_kind):
    """KroneckerCovariance (FFT grid x temporal) for B and DiagonalCovariance for R."""
    from inversion.covariance import (
        DiagonalCovariance,
        KroneckerCovariance,
        RegularGridCorrelation,
        TemporalCorrelation,
    )

    rng = np.random.default_rng(8)
    ny, nx, nt, n_obs = 6, 7, 3, 25
    n_state = ny * nx * nt
    spatial = RegularGridCorrelation((ny, nx), 1.0, kind="exponential", length_km=2.5)
    temporal = TemporalCorrelation(12.0, nt=nt, step_hours=6.0)
    std = rng.uniform(0.5, 1.5, (nt, ny * nx))
    B = KroneckerCovariance(std, spatial, temporal)
    R = DiagonalCovariance(rng.uniform(0.1, 0.3, n_obs))
    H, Hd, x_prior, y, *_ = make_problem_arrays(9, n_obs, n_state, h_kind)
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    post = solve(problem, "obs-space", chunk_size=8)
    ref = solve(problem, "dense")
    mean, A = _information_form(Hd, x_prior, y, B.to_dense(), R.to_dense())
    _close(ref.mean, mean, 1e-8)
    _close(post.mean, ref.mean, 1e-8)
    _close(post.std, np.sqrt(np.diag(A)), 1e-6)
    city = np.zeros(n_state)
    city.reshape(nt, ny, nx)[:, 2:5, 2:5] = 1.0
    assert post.aggregate(city)[1] == pytest.approx(np.sqrt(city @ A @ city), rel=1e-6)
    assert post.dofs == pytest.approx(ref.dofs, rel=1e-8)


def test_wide_chunks_and_many_aggregates():
    """Chunks wider than the 64-column sparse-product block, and more aggregates than a chunk."""
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(12, 150, 40, "sparse", "kron")
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    ref = solve(problem, "dense")
    post = solve(problem, "obs-space", chunk_size=100)
    _close(post.mean, ref.mean, 1e-8)
    _close(post.std, ref.std, 1e-6)
    W = sp.random_array((130, 40), density=0.2, rng=np.random.default_rng(0), format="csr")
    _close(post.aggregate(W)[1], ref.aggregate(W)[1], 1e-6)


class _NoDenseKron(KronOperator):
    """B that refuses to be made dense and counts the vectors it is applied to."""

    def __init__(self, Ct, Cs):
        super().__init__(Ct, Cs)
        self.columns = 0

    def _matmat(self, X):
        self.columns += X.shape[1]
        return super()._matmat(X)

    def to_dense(self, max_size=None):
        raise AssertionError("obs-space must not form B")


def test_obs_space_never_forms_b():
    rng = np.random.default_rng(4)
    B = _NoDenseKron(exp_corr(3, 2.0), random_spd(rng, 10))
    H, _Hd, x_prior, y, _B, _Bd, R = make_problem_arrays(4, 12, 30, "sparse")
    post = solve(LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R), "obs-space", chunk_size=5)
    assert B.columns == 12 + 1  # one column per observation, one for the mean
    post.aggregate(np.ones(30))
    assert B.columns == 12 + 2  # one per aggregate
    assert np.all(np.isfinite(post.std))  # recomputes G chunk by chunk
