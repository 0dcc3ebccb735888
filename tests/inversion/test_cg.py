"""The matrix-free 'cg' solver against the dense and obs-space references."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from inversion.cg import CGOptions
from inversion.covariance import (
    BlockDiagonalCovariance,
    DenseCovariance,
    DiagonalCovariance,
    RegularGridCorrelation,
    kronecker_prior,
)
from inversion.errors import ConvergenceError, MemoryBudgetError
from inversion.problem import LinearProblem
from inversion.solve import solve
from tests.inversion._solver_cases import KronOperator, exp_corr, make_problem_arrays, random_spd


def _close(actual, desired, rtol):
    desired = np.asarray(desired)
    assert_allclose(actual, desired, rtol=rtol, atol=rtol * np.max(np.abs(desired)))


def _block_r(rng, n_obs):
    sizes = [n_obs // 3, n_obs // 3, n_obs - 2 * (n_obs // 3)]
    blocks = [random_spd(rng, s, cond=10.0) * 0.3 for s in sizes]
    return BlockDiagonalCovariance(blocks, index=rng.permutation(n_obs))


def _fft_problem(seed=0, n_obs=40, ny=6, nx=7, nt=3):
    """Kronecker prior with an FFT spatial correlation: sqrt_dim > n_state."""
    rng = np.random.default_rng(seed)
    B = kronecker_prior(
        rng.uniform(0.3, 0.8, (1, nt, ny, nx)), (ny, nx), 1.0, "exponential", 3.0,
        nt=nt, step_hours=24.0, tau_hours=48.0,
    )  # fmt: skip
    n = B.shape[0]
    H = sp.random_array((n_obs, n), density=0.2, rng=rng, format="csr")
    R = DiagonalCovariance(rng.uniform(0.1, 0.5, n_obs))
    y = H @ rng.standard_normal(n) + rng.standard_normal(n_obs)
    return LinearProblem(H=H, x_prior=np.ones(n), y=y, B=B, R=R)


@pytest.mark.parametrize("shape", [(15, 40), (60, 24), (33, 33)])
@pytest.mark.parametrize("r_kind", ["dense", "diag", "block"])
def test_cg_matches_dense_and_obs_space(shape, r_kind):
    n_obs, n_state = shape
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(7, n_obs, n_state, "sparse", "dense")
    rng = np.random.default_rng(3)
    if r_kind == "diag":
        R = DiagonalCovariance(rng.uniform(0.1, 1.0, n_obs))
    elif r_kind == "block":
        R = _block_r(rng, n_obs)
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    ref = solve(problem, "dense")
    obs = solve(problem, "obs-space")
    post = solve(problem, "cg", cg=CGOptions(rank=n_obs))  # full spectrum
    _close(post.mean, ref.mean, 1e-6)
    _close(post.mean, obs.mean, 1e-6)
    assert post.std_method.startswith("low-rank (k=")
    _close(post.std, ref.std, 1e-6)  # full rank: exact
    W = rng.standard_normal((4, n_state))
    W[0] = 1.0
    m_ref, s_ref = ref.aggregate(W)
    m, s = post.aggregate(W)
    _close(m, m_ref, 1e-6)
    _close(s, s_ref, 1e-6)
    _close(post.aggregate_cov(W)[1], ref.aggregate_cov(W)[1], 1e-6)
    assert post.chi2 == pytest.approx(ref.chi2, rel=1e-6)
    assert post.dofs == pytest.approx(ref.dofs, rel=1e-6)  # full spectrum: exact
    assert post.info["residuals"][-1] <= 1e-8 and post.info["tolerance"] == 1e-8
    assert len(post.info["residuals"]) == post.info["iterations"] + 1


def test_cg_fft_kronecker_prior():
    problem = _fft_problem()
    assert problem.B.sqrt_dim > problem.n_state  # embedded torus
    ref = solve(problem, "dense")
    post = solve(problem, "cg", cg=CGOptions(rank=problem.n_obs))
    _close(post.mean, ref.mean, 1e-6)
    _close(post.std, ref.std, 1e-6)
    w = np.ones(problem.n_state)
    assert post.aggregate(w)[1] == pytest.approx(ref.aggregate(w)[1], rel=1e-6)


@pytest.mark.parametrize("rank", [40, 50])
def test_partial_rank_std_is_conservative_and_close(rank):
    problem = _fft_problem(seed=1, n_obs=60)
    ref = solve(problem, "dense")
    post = solve(problem, "cg", cg=CGOptions(rank=rank))
    k = post.info["rank"]
    assert rank <= k < 60 and post.std_method == f"low-rank (k={k})"
    rel = post.std / ref.std - 1.0
    # truncation drops variance reduction only: never below the exact std
    assert rel.min() > -1e-8
    # independent reference: truncation to the exact k' leading eigenpairs of the dense
    # whitened Hessian. Stated tolerance: k Lanczos steps do at least as well as the exact
    # leading k - 15 eigenpairs (a single-vector Krylov space resolves the top of the spectrum
    # first, the tail partially).
    Bd = problem.B.to_dense(max_size=10_000)
    Lf = np.linalg.cholesky(Bd)
    HL = problem.H.toarray() @ Lf
    lam, V = np.linalg.eigh(HL.T @ (HL / problem.R.diag()[:, None]))
    lam, V = lam[::-1][: k - 15], V[:, ::-1][:, : k - 15]
    var_trunc = np.diag(Bd) - ((Lf @ V) ** 2) @ (lam / (1 + lam))
    assert rel.max() <= np.max(np.sqrt(var_trunc) / ref.std - 1.0)
    assert rel.max() < 0.25
    assert post.dofs <= ref.dofs * (1 + 1e-10)  # a lower bound of the DOFS


def test_rto_samples_match_posterior():
    problem = _fft_problem(seed=2, n_obs=30, ny=4, nx=5, nt=2)
    ref = solve(problem, "dense")
    n = 400
    post = solve(problem, "cg", cg=CGOptions(std="sampled", n_samples=n, seed=5, batch=200))
    std = post.std
    assert post.std_method == "sampled (n=400)"
    mc = post.info["mc_rel_error"]
    assert mc == pytest.approx(1 / np.sqrt(2 * (n - 1)))
    rel = std / ref.std - 1.0
    # each element's error is ~N(0, mc): 5 sigma per element, and the mean error ~ 0
    assert np.max(np.abs(rel)) < 5 * mc
    assert abs(np.mean(rel)) < 5 * mc / np.sqrt(4)  # elements correlated: be conservative
    X = post.samples(n, seed=6)
    z = (X.mean(axis=0) - ref.mean) / (ref.std / np.sqrt(n))
    assert np.max(np.abs(z)) < 5.0
    assert len(post.info["solves"]) <= 4  # batched: few solves for 800 samples


def test_means_for_and_chi2_for():
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(5, 12, 18, "sparse")
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    ref, post = solve(problem, "dense"), solve(problem, "cg")
    Y = y + np.random.default_rng(0).standard_normal((3, 12))
    _close(post.means_for(Y), ref.means_for(Y), 1e-6)
    _close(post.chi2_for(Y), ref.chi2_for(Y), 1e-6)


def test_nonconvergence_raises_or_warns():
    problem = _fft_problem(seed=3, n_obs=50)
    with pytest.raises(ConvergenceError, match=r"relative residual \d\.\d+e[-+]\d+ > tol"):
        solve(problem, "cg", cg=CGOptions(maxiter=3))
    with pytest.warns(RuntimeWarning, match="did not converge in 3 iterations"):
        post = solve(problem, "cg", cg=CGOptions(maxiter=3, allow_nonconvergence=True))
    assert post.info["converged"] is False
    assert post.info["iterations"] == 3
    assert post.info["residuals"][-1] > 1e-8
    post = solve(problem, "cg")
    post = post.with_options(CGOptions(maxiter=2, precondition=False))  # solves capped at 2
    with pytest.raises(ConvergenceError, match=r"aggregate variance.*relative error bound"):
        post.aggregate(np.ones(problem.n_state))


def test_cg_needs_sqrt_and_inverse():
    H, _Hd, x_prior, y, _B, _Bd, R = make_problem_arrays(0, 6, 8)
    B = KronOperator(exp_corr(2, 1.5), random_spd(np.random.default_rng(0), 4))
    with pytest.raises(TypeError, match="sqrt_matvec"):
        solve(LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R), "cg")
    Rg = RegularGridCorrelation((2, 3), 1.0, length_km=1.0)  # no inverse product
    with pytest.raises(TypeError, match="inv_matvec"):
        solve(LinearProblem(H=H, x_prior=x_prior, y=y, B=np.eye(8), R=Rg), "cg")


def test_auto_picks_cg_when_s_does_not_fit(caplog):
    problem = _fft_problem(seed=4, n_obs=40)
    ref = solve(problem, "dense")
    # S and its factor (2 x 40² x 8 B = 25,600 B) do not fit; a 36-vector Lanczos basis does
    budget = 8.0 * 2 * 40**2 - 1
    with caplog.at_level(logging.INFO, logger="inversion.solve"):
        post = solve(problem, memory_budget=budget, cg=CGOptions(maxiter=35))
    assert post.method == "cg"
    assert "'cg' because S (n_obs=40 squared" in caplog.text
    _close(post.mean, ref.mean, 1e-6)


@pytest.mark.parametrize("cls", ["diag", "dense", "block"])
def test_inv_matvec(cls):
    rng = np.random.default_rng(0)
    if cls == "diag":
        C = DiagonalCovariance(rng.uniform(0.5, 2.0, 9))
    elif cls == "dense":
        C = DenseCovariance(random_spd(rng, 9))
    else:
        C = _block_r(rng, 9)
    V = rng.standard_normal((9, 3))
    _close(C.inv_matvec(V), np.linalg.solve(C.to_dense(), V), 1e-10)
    _close(C @ C.inv_matvec(V[:, 0]), V[:, 0], 1e-10)


@pytest.mark.parametrize("tol", [1e-2, 1e-4, 1e-10])
def test_obs_space_aggregate_variance_is_a_certified_upper_estimate(tol):
    # n_obs < sqrt_dim: aggregates are solved in observation space and stop on the Galerkin
    # bound; the variance is above the exact one by at most tol (relative)
    problem = _fft_problem(seed=4, n_obs=60, ny=8, nx=9, nt=4)
    rng = np.random.default_rng(1)
    W = np.vstack([np.ones(problem.n_state), rng.uniform(0, 1, (3, problem.n_state))])
    W[1, : problem.n_state // 2] = 0.0
    _, var_ref = solve(problem, "dense").aggregate_cov(W)
    var_ref = np.diag(var_ref)
    post = solve(problem, "cg")
    post = post.with_options(CGOptions(tol=tol))
    _, cov = post.aggregate_cov(W)
    rel = np.diag(cov) / var_ref - 1.0
    assert np.all(rel >= -1e-10), rel  # never below the exact variance
    assert np.all(rel <= tol * (1 + 1e-6)), rel
    assert post.info["solves"][-1]["space"] == "obs"
    assert post.info["solves"][-1]["final"] <= tol


def test_ritz_preconditioner_cuts_obs_space_iterations():
    problem = _fft_problem(seed=5, n_obs=80, ny=8, nx=9, nt=4)
    w = np.ones(problem.n_state)
    iters = {}
    for pre in (True, False):
        post = solve(problem, "cg", cg=CGOptions(rank=30, precondition=pre, tol=1e-10))
        post.aggregate(w)
        iters[pre] = post.info["solves"][-1]["iterations"]
    assert iters[True] < iters[False], iters


def test_lowrank_plus_sampled_is_exact_with_the_full_spectrum():
    # with the complete spectrum (rank = n_obs) the control variate equals the RTO sample,
    # so the Monte-Carlo remainder vanishes and the std is exact whatever the sample count
    problem = _fft_problem(seed=6, n_obs=30, ny=6, nx=7, nt=3)
    exact = solve(problem, "obs-space").std
    post = solve(problem, "cg", cg=CGOptions(rank=30, std="low-rank+sampled", n_samples=4))
    assert post.info["rank"] >= 29
    np.testing.assert_allclose(post.std, exact, rtol=1e-6)
    assert post.std_method.startswith("low-rank+sampled (k=")
    assert np.max(post.info["std_se"] / exact) < 1e-6


def test_lowrank_plus_sampled_is_unbiased_with_calibrated_errors():
    # few Ritz pairs: the low-rank std is biased high; the corrected map is not, and its
    # stated standard errors match its actual errors (z-scores ~ N(0, 1) over the cells)
    problem = _fft_problem(seed=4, n_obs=150, ny=10, nx=12, nt=4)
    exact = solve(problem, "obs-space").std
    post = solve(problem, "cg", cg=CGOptions(rank=60, std="low-rank+sampled", n_samples=200))
    lowrank = post.lowrank_std()
    corrected = post.corrected_std(200, seed=1)
    z = (corrected - exact) / post.info["std_se"]
    assert np.median(lowrank / exact - 1) > 0.1  # the truncation bias being corrected
    assert abs(np.median(corrected / exact - 1)) < 0.02
    assert abs(z.mean()) < 0.5 and 0.7 < z.std() < 1.3, (z.mean(), z.std())
    assert np.mean(np.abs(z) < 3) > 0.97


def test_lowrank_reduction_reused_by_the_sampled_correction_until_the_pairs_change(monkeypatch):
    # the map and the sampled correction need the same reduction (one B product per pair):
    # computed once for the current pairs, computed again once the pairs change
    from inversion.cg import LanczosResult

    problem = _fft_problem(seed=5, n_obs=60, ny=8, nx=9, nt=3)
    post = solve(problem, "cg", cg=CGOptions(rank=30, std="low-rank+sampled", n_samples=64))
    calls = []
    real = LanczosResult.L_of
    monkeypatch.setattr(LanczosResult, "L_of", lambda self, *a: calls.append(1) or real(self, *a))
    low = post.lowrank_std()
    n_map = len(calls)
    assert n_map > 0
    corrected = post.corrected_std(64, seed=1)
    assert len(calls) == n_map  # the correction's own products are not L_of
    fresh = solve(problem, "cg", cg=CGOptions(rank=30, std="low-rank+sampled", n_samples=64))
    np.testing.assert_allclose(fresh.corrected_std(64, seed=1), corrected, rtol=1e-12)
    post._solver.block_spectrum(45, seed=0)  # new pairs: the kept reduction is dropped
    assert post._solver._reduction is None
    assert not np.allclose(post.lowrank_std(), low)
    assert len(calls) > n_map


def test_lowrank_plus_sampled_needs_observation_space_basis():
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(7, 60, 24, "sparse", "dense")
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)  # n_obs 60 > sqrt_dim 24
    post = solve(problem, "cg", cg=CGOptions(std="low-rank+sampled"))
    with pytest.raises(NotImplementedError, match="std='sampled'"):
        _ = post.std


@pytest.mark.parametrize("r_kind", ["diag", "dense", "block"])
def test_full_rank_spectrum_gives_the_exact_std_map(r_kind):
    # n_obs < sqrt_dim: rank='full' forms H B Hᵀ and solves the pencil (H B Hᵀ, R); the
    # low-rank map is then the exact one, the DOFS exact, and the Ritz preconditioner is S⁻¹
    problem = _fft_problem(seed=7, n_obs=45)
    rng = np.random.default_rng(2)
    if r_kind == "dense":
        problem = dataclasses.replace(problem, R=DenseCovariance(random_spd(rng, 45, 20.0) * 0.3))
    elif r_kind == "block":
        problem = dataclasses.replace(problem, R=_block_r(rng, 45))
    ref = solve(problem, "dense")
    post = solve(problem, "cg", cg=CGOptions(rank="full"))
    assert post.info["complete_spectrum"] and not post.info["dofs_is_estimate"]
    assert post.info["rank"] == 45
    _close(post.std, ref.std, 1e-8)
    assert post.std_method == "low-rank (k=45, complete spectrum)"
    assert post.dofs == pytest.approx(ref.dofs, rel=1e-10)
    w = np.ones(problem.n_state)
    assert post.aggregate(w)[1] == pytest.approx(ref.aggregate(w)[1], rel=1e-8)
    assert post.info["solves"][-1]["iterations"] == 1  # exact preconditioner
    # an integer rank >= n_obs takes the same path
    post2 = solve(problem, "cg", cg=CGOptions(rank=45))
    _close(post2.std, ref.std, 1e-8)


def test_truncated_complete_spectrum_matches_leading_dense_eigenpairs():
    # lowrank_std(rank=k) keeps the k largest eigenpairs: compare with the truncation built
    # from the dense whitened Hessian (independent eigensolver)
    problem = _fft_problem(seed=8, n_obs=50)
    post = solve(problem, "cg", cg=CGOptions(rank="full"))
    Bd = problem.B.to_dense(max_size=10_000)
    Lf = np.linalg.cholesky(Bd)
    HL = problem.H.toarray() @ Lf
    lam, V = np.linalg.eigh(HL.T @ (HL / problem.R.diag()[:, None]))
    lam, V = lam[::-1], V[:, ::-1]
    assert_allclose(post.info["ritz_values"][:40], lam[:40], rtol=1e-8)
    for k in (5, 20, 40):
        var_k = np.diag(Bd) - ((Lf @ V[:, :k]) ** 2) @ (lam[:k] / (1 + lam[:k]))
        _close(post.lowrank_std(rank=k), np.sqrt(var_k), 1e-8)
        assert post.std_method == f"low-rank (k={k})"
    # several truncations in one pass equal the maps made one by one
    maps = post.lowrank_std_at([20, 7, 0, 10**6])
    assert set(maps) == {0, 7, 20, post.info["rank"]}
    for k in (7, 20):
        _close(maps[k], post.lowrank_std(rank=k), 1e-12)
    _close(maps[0], post.prior_std, 1e-12)
    _close(maps[post.info["rank"]], solve(problem, "dense").std, 1e-8)


def test_full_rank_spectrum_drops_null_directions():
    # duplicated observation rows make H B Hᵀ singular: numerically zero eigenvalues are
    # dropped and the map is still exact
    problem = _fft_problem(seed=9, n_obs=30)
    H = problem.H.toarray()
    H[20:] = H[:10]
    problem = LinearProblem(
        H=sp.csr_array(H), x_prior=problem.x_prior, y=problem.y, B=problem.B, R=problem.R
    )
    ref = solve(problem, "dense")
    post = solve(problem, "cg", cg=CGOptions(rank="full"))
    assert post.info["rank"] == 20
    _close(post.std, ref.std, 1e-8)


def test_full_rank_spectrum_memory_and_option_errors():
    problem = _fft_problem(seed=7, n_obs=45)
    with pytest.raises(MemoryBudgetError, match=r"rank='full'.*integer CGOptions.rank"):
        solve(problem, "cg", memory_budget=4 * 8 * 45**2, cg=CGOptions(rank="full"))
    for bad in ("all", -1, True, 2.5):
        with pytest.raises(
            ValueError, match=r"CGOptions\.rank must be an int >= 0, 'auto' or 'full'"
        ):
            CGOptions(rank=bad)


def test_auto_rank_completes_the_spectrum_when_the_std_map_is_asked_for():
    problem = _fft_problem(seed=10, n_obs=45)
    ref = solve(problem, "dense")
    post = solve(problem, "cg")  # rank="auto" by default
    assert CGOptions().rank == "auto"
    assert not post.info["complete_spectrum"] and post.info["rank"] < 45
    w = np.ones(problem.n_state)
    assert post.aggregate(w)[1] == pytest.approx(
        ref.aggregate(w)[1], rel=1e-7
    )  # Ritz-preconditioned
    _close(post.std, ref.std, 1e-8)
    assert post.info["complete_spectrum"] and post.info["rank"] == 45
    assert post.std_method == "low-rank (k=45, complete spectrum)"
    assert post.dofs == pytest.approx(ref.dofs, rel=1e-10)


def test_auto_rank_warns_when_the_complete_spectrum_does_not_fit(caplog):
    problem = _fft_problem(seed=10, n_obs=45)
    ref = solve(problem, "dense")
    # the Lanczos basis (2 x 47 x 45 x 8 bytes) fits, H B Hᵀ and its eigenvectors do not
    post = solve(problem, "cg", memory_budget=40_000)
    with caplog.at_level(logging.WARNING, logger="inversion.lowrank"):
        std = post.std
    assert "upper bound" in caplog.text and "rank='full'" in caplog.text
    k = post.info["rank"]
    assert not post.info["complete_spectrum"] and post.std_method == f"low-rank (k={k})"
    assert np.all(std >= ref.std * (1 - 1e-8))
    # n_obs >= sqrt_dim: no observation-space spectrum; the warning says why
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(7, 60, 24, "sparse", "dense")
    post = solve(LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R), "cg")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="inversion.lowrank"):
        _ = post.std
    assert "not in observation coordinates" in caplog.text


def _bound_problem(seed=4, n_obs=100, r_scale=0.1):
    """A problem on which the Galerkin-only variance ``aᵀBa − uᵀx`` missed its own bound by
    two orders of magnitude (rel. error 1.4e-6 against a claimed 1e-8): sparse footprints,
    small R, so CG loses the orthogonality ``xᵀr = 0`` the old estimate relied on."""
    rng = np.random.default_rng(seed)
    ny, nx, nt = 12, 14, 4
    B = kronecker_prior(
        rng.uniform(0.3, 0.8, (1, nt, ny, nx)), (ny, nx), 1.0, "exponential", 3.0,
        nt=nt, step_hours=24.0, tau_hours=48.0,
    )  # fmt: skip
    n = B.shape[0]
    H = sp.random_array((n_obs, n), density=0.05, rng=rng, format="csr")
    R = DiagonalCovariance(rng.uniform(0.1, 0.5, n_obs) * r_scale)
    y = H @ rng.standard_normal(n) + rng.standard_normal(n_obs)
    return LinearProblem(H=H, x_prior=np.ones(n), y=y, B=B, R=R)


@pytest.mark.parametrize("tol", [1e-8, 1e-6])
@pytest.mark.parametrize("case", [(4, 100, 0.1), (1, 300, 0.1), (3, 100, 0.001)])
def test_certified_aggregate_bound_holds(case, tol):
    # the certificate reported in info["solves"][...]["final"] bounds the actual relative
    # variance error (up to rounding, ~1e-10 here), and the variance is never below the exact
    problem = _bound_problem(*case)
    rng = np.random.default_rng(1)
    W = np.vstack([np.ones(problem.n_state), rng.uniform(0, 1, (3, problem.n_state))])
    W[1, : problem.n_state // 2] = 0.0
    exact = np.diag(solve(problem, "dense").aggregate_cov(W)[1])
    post = solve(problem, "cg", cg=CGOptions(tol=tol))
    rel = np.diag(post.aggregate_cov(W)[1]) / exact - 1.0
    log = post.info["solves"][-1]
    assert log["space"] == "obs" and log["final"] <= tol
    assert np.all(rel >= -1e-10), rel
    assert np.all(rel <= log["final"] + 1e-9), (rel, log["final"])


def test_certified_aggregate_bound_holds_in_chi_space():
    # n_obs >= sqrt_dim: cᵀ(I+K)⁻¹c by χ-space CG, certified with I + K ⪰ I
    H, _Hd, x_prior, y, B, _Bd, R = make_problem_arrays(7, 60, 24, "sparse", "dense")
    problem = LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)
    W = np.random.default_rng(2).standard_normal((3, 24))
    exact = np.diag(solve(problem, "dense").aggregate_cov(W)[1])
    for tol in (1e-4, 1e-8):
        post = solve(problem, "cg", cg=CGOptions(tol=tol, precondition=False))
        rel = np.diag(post.aggregate_cov(W)[1]) / exact - 1.0
        log = post.info["solves"][-1]
        assert log["space"] == "chi" and log["final"] <= tol
        assert np.all(rel >= -1e-12) and np.all(rel <= tol), (tol, rel)


def test_options_are_read_only_and_with_options_keeps_the_results():
    problem = _fft_problem(seed=11, n_obs=40)
    post = solve(problem, "cg")
    with pytest.raises(AttributeError):
        post.options = CGOptions(tol=1e-3)
    loose = post.with_options(CGOptions(tol=1e-3))
    assert loose.options.tol == 1e-3 and post.options.tol == 1e-8
    np.testing.assert_array_equal(loose.mean, post.mean)
    assert loose.info["iterations"] == post.info["iterations"]
    w = np.ones(problem.n_state)
    assert loose.aggregate(w)[1] == pytest.approx(post.aggregate(w)[1], rel=1e-3)


def test_block_lanczos_pairs_are_rayleigh_ritz_and_reach_the_complete_spectrum():
    # ZᵀMZ = I and (MZ)ᵀR⁻¹(MZ) = Θ (VᵀV = I, VᵀKV = Θ) for any dimension; with the whole
    # Krylov space (n_pairs = n_obs) the pairs are the complete spectrum (dense reference)
    from inversion.cg import WhitenedSystem
    from inversion.cg_spectrum import block_lanczos_spectrum

    problem = _fft_problem(seed=12, n_obs=45)
    system = WhitenedSystem(problem)
    Bd = problem.B.to_dense(max_size=10_000)
    Hd = problem.H.toarray()
    M = Hd @ Bd @ Hd.T
    r = problem.R.diag()
    lam = np.sort(np.linalg.eigvalsh(M / np.sqrt(r)[:, None] / np.sqrt(r)[None, :]))[::-1]
    for n_pairs, block in ((20, 4), (45, 8)):
        theta, Z, MZ = block_lanczos_spectrum(system, n_pairs, block, 1e9, seed=3)
        assert theta.size == n_pairs
        _close(MZ, M @ Z, 1e-10)
        _close(Z.T @ MZ, np.eye(n_pairs), 1e-9)
        _close(MZ.T @ (MZ / r[:, None]), np.diag(theta), 1e-9)
        # Ritz values interlace: never above the exact ones (Cauchy), the top ones close
        assert np.all(theta <= lam[:n_pairs] * (1 + 1e-9))
        assert theta[0] == pytest.approx(lam[0], rel=1e-6)
    _close(theta, lam, 1e-8)
    with pytest.raises(MemoryBudgetError, match="std_pairs"):
        block_lanczos_spectrum(system, 45, 8, 1000.0)


def test_std_pairs_map_is_an_upper_bound_and_the_corrected_map_is_unbiased():
    # rank=0 (no complete spectrum): the map comes from std_pairs block Lanczos pairs; it
    # never goes below the exact std, and low-rank+sampled corrects it without bias
    problem = _fft_problem(seed=4, n_obs=150, ny=10, nx=12, nt=4)
    exact = solve(problem, "dense").std
    opts = CGOptions(rank=0, std_pairs=60, std="low-rank+sampled", n_samples=200, seed=2)
    post = solve(problem, "cg", cg=opts)
    lowrank = post.lowrank_std()
    assert post.info["rank"] == 60 and not post.info["complete_spectrum"]
    assert np.all(lowrank >= exact * (1 - 1e-6))  # single-precision products: ~1e-7
    assert np.median(lowrank / exact - 1) > 0.01  # the truncation bias being corrected
    corrected = post.std
    z = (corrected - exact) / post.info["std_se"]
    assert post.std_method == "low-rank+sampled (k=60, n=200)"
    assert abs(np.median(corrected / exact - 1)) < 0.02
    assert abs(z.mean()) < 0.5 and 0.7 < z.std() < 1.3, (z.mean(), z.std())
    # double-precision products give the same pairs to the single-precision error
    post64 = solve(problem, "cg", cg=dataclasses.replace(opts, fft_precision="double"))
    _close(post64.lowrank_std(), lowrank, 1e-5)
    # the Monte-Carlo terms run on single-precision FFTs and solves to sample_tol: with the
    # same draws they move the map by a negligible fraction of its standard error
    shift = np.abs(post64.std - corrected) / post.info["std_se"]
    assert np.max(shift) < 1e-2, np.max(shift)
    tight = solve(problem, "cg", cg=dataclasses.replace(opts, sample_tol=1e-10))
    assert np.max(np.abs(tight.std - corrected) / post.info["std_se"]) < 1e-2


def test_aggregate_tol_certifies_a_looser_bound_in_fewer_iterations():
    problem = _bound_problem(1, 300, 0.1)
    W = np.ones((1, problem.n_state))
    exact = solve(problem, "dense").aggregate_cov(W)[1][0, 0]
    its = {}
    for agg_tol in (None, 1e-4):
        post = solve(problem, "cg", cg=CGOptions(aggregate_tol=agg_tol))
        var = post.aggregate_cov(W)[1][0, 0]
        log = post.info["solves"][-1]
        bound = agg_tol or 1e-8
        assert log["final"] <= bound and -1e-10 <= var / exact - 1 <= log["final"] + 1e-9
        its[agg_tol] = log["iterations"]
    assert its[1e-4] < its[None], its
    with pytest.raises(ValueError, match="aggregate_tol"):
        CGOptions(aggregate_tol=0.0)


def test_dependent_aggregates_are_not_solved_twice_and_stay_certified():
    # the first aggregate is the sum of the next two, the fourth a multiple of the second:
    # only a basis of 2 columns is solved, every aggregate keeps its certificate
    problem = _bound_problem(3, 100, 0.001)
    n = problem.n_state
    rng = np.random.default_rng(4)
    a, b = np.zeros(n), np.zeros(n)
    a[: n // 2], b[n // 2 :] = rng.uniform(0, 1, n // 2), rng.uniform(0, 1, n - n // 2)
    W = np.vstack([a + b, a, b, 3.0 * a])
    exact = solve(problem, "dense").aggregate_cov(W)[1]
    post = solve(problem, "cg")
    cov = post.aggregate_cov(W)[1]
    log = post.info["solves"][-1]
    assert log["columns_solved"] == 2 and log["columns"] == 4
    rel = np.diag(cov) / np.diag(exact) - 1.0
    assert np.all(rel >= -1e-10) and np.all(rel <= log["final"] + 1e-9), rel
    assert log["final"] <= 1e-8
    _close(cov, exact, 1e-7)


@pytest.mark.parametrize("agg_tol", [1e-6, 1e-10])
def test_mixed_precision_totals_keep_their_certificate(agg_tol):
    # the first pass runs with single-precision FFTs (error ~1e-7); the certificate rests on
    # the residual recomputed in double, and a tolerance below the single-precision floor
    # (1e-10) is reached by continuing in double
    problem = _bound_problem(3, 100, 0.001)
    W = np.vstack([np.ones(problem.n_state), np.arange(problem.n_state) % 3 == 0])
    exact = np.diag(solve(problem, "dense").aggregate_cov(W)[1])
    for precision in ("auto", "double"):
        post = solve(problem, "cg", cg=CGOptions(aggregate_tol=agg_tol, fft_precision=precision))
        rel = np.diag(post.aggregate_cov(W)[1]) / exact - 1.0
        log = post.info["solves"][-1]
        assert log["final"] <= agg_tol
        assert np.all(rel >= -1e-11) and np.all(rel <= log["final"] + 1e-11), (precision, rel)
        fast = post._solver.fast
        assert (fast is not None and fast.n_matvec > 0) == (precision == "auto")


def test_long_solves_report_progress(monkeypatch, caplog):
    # every solve logs its iteration, error and target at INFO (throttled to one line per
    # PROGRESS_SECONDS; 0 here): the mean's Lanczos-CG and the batched aggregate solves
    import inversion.cg as cg_mod

    monkeypatch.setattr(cg_mod, "PROGRESS_SECONDS", 0.0)
    problem = _fft_problem(seed=4, n_obs=60, ny=8, nx=9, nt=3)
    with caplog.at_level("INFO", logger="inversion.cg"):
        post = solve(problem, "cg", cg=CGOptions(rank=0))
        post.aggregate(np.ones((2, problem.n_state)))
    lines = [m for m in caplog.messages if ": iteration " in m]
    mean = [m for m in lines if m.startswith("posterior mean (Lanczos-CG): iteration")]
    assert len(mean) == post.info["iterations"]
    assert "iteration 1, error" in mean[0] and "(target 1.0e-08)" in mean[0]
    agg = [m for m in lines if "columns left" in m]
    assert agg and "/1 columns left" in agg[0]  # the two equal rows are solved once
