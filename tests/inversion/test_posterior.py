"""Posterior products: calibration of the uncertainties (coverage, chi-square) and diagnostics.

The statistical tests use one problem, one factorisation and many seeded draws
(``Posterior.means_for`` / ``chi2_for`` reuse the Cholesky factor of S), so they take
well under a second.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from inversion.errors import NotPositiveDefiniteError
from inversion.problem import LinearProblem
from inversion.solve import solve
from tests.inversion._solver_cases import KronOperator, exp_corr, random_spd

N_DRAWS = 300
N_T, N_S, N_OBS = 4, 30, 300


@pytest.fixture(scope="module")
def osse():
    """A seeded problem with a Kronecker prior, sparse H and correlated R, and its draws.

    Seed 0 was the first seed tried; it was not tuned to pass.
    """
    rng = np.random.default_rng(0)
    Ct = exp_corr(N_T, 2.0)
    Cs = exp_corr(N_S, 4.0) * 0.8
    B = KronOperator(Ct, Cs)
    Bd = np.kron(Ct, Cs)
    n_state = N_T * N_S
    H = sp.random_array(
        (N_OBS, n_state), density=0.1, rng=rng, data_sampler=rng.uniform, format="csr"
    )
    Hd = H.toarray()
    R = 0.5 * np.eye(N_OBS) + 0.2 * np.kron(np.eye(N_OBS // 3), exp_corr(3, 1.0))
    x_prior = rng.uniform(1.0, 2.0, n_state)
    truth = x_prior + rng.standard_normal((N_DRAWS, n_state)) @ np.linalg.cholesky(Bd).T
    noise = rng.standard_normal((N_DRAWS, N_OBS)) @ np.linalg.cholesky(R).T
    Y = truth @ Hd.T + noise
    problem = LinearProblem(H=H, x_prior=x_prior, y=Y[0], B=B, R=R)
    return {"problem": problem, "Hd": Hd, "Bd": Bd, "R": R, "truth": truth, "Y": Y, "rng": rng}


def test_coverage_of_city_total(osse):
    """95 % intervals of an aggregate contain the truth 93–97 % of the time.

    With 300 draws the binomial sd of the coverage is sqrt(0.95·0.05/300) = 1.26 %, so the
    band ±2 % is ±1.6 sd (a correct method fails it for about 11 % of seeds; the seed is fixed).
    The normalised errors are also checked: their variance is 1 within ±0.2 (±2.4 sd of a
    chi-square/300 variable).
    """
    post = solve(osse["problem"], "obs-space", chunk_size=64)
    n_state = N_T * N_S
    a = np.zeros(n_state)
    a[: n_state // 2] = 1.0  # "city total" over half the domain
    _, std = post.aggregate(a)
    est = post.means_for(osse["Y"]) @ a
    z = (est - osse["truth"] @ a) / std
    coverage = np.mean(np.abs(z) <= 1.959964)
    assert 0.93 <= coverage <= 0.97, coverage
    assert abs(np.mean(z**2) - 1.0) < 0.2
    # the same aggregate for every draw from the dense reference agrees
    ref = solve(osse["problem"], "dense")
    assert ref.aggregate(a)[1] == pytest.approx(std, rel=1e-8)


def test_chi2_is_one_when_error_model_is_right(osse):
    """Mean chi2 over 300 draws of 300 obs: sd sqrt(2/(300·300)) = 0.005; tolerance 0.05."""
    post = solve(osse["problem"], "obs-space")
    chi2 = post.chi2_for(osse["Y"])
    assert chi2.shape == (N_DRAWS,)
    assert abs(np.mean(chi2) - 1.0) < 0.05
    assert post.chi2 == pytest.approx(chi2[0], rel=1e-12)


def test_chi2_flags_underestimated_r(osse):
    """Data drawn with 4 R but solved with R: chi2 ≫ 1, equal to tr(S⁻¹ S_true) / n_obs."""
    rng = np.random.default_rng(1)
    Hd, R, truth = osse["Hd"], osse["R"], osse["truth"]
    noise = 2.0 * rng.standard_normal((N_DRAWS, N_OBS)) @ np.linalg.cholesky(R).T
    Y = truth @ Hd.T + noise
    post = solve(osse["problem"], "obs-space")
    S = Hd @ osse["Bd"] @ Hd.T + R
    expected = np.trace(np.linalg.solve(S, S + 3.0 * R)) / N_OBS
    chi2 = np.mean(post.chi2_for(Y))
    assert expected > 2.0
    assert chi2 == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("method", ["dense", "obs-space"])
def test_diagnostics_against_dense_formulas(osse, method):
    post = solve(osse["problem"], method, chunk_size=50)
    Hd, Bd, R = osse["Hd"], osse["Bd"], osse["R"]
    S = Hd @ Bd @ Hd.T + R
    K = Bd @ Hd.T @ np.linalg.inv(S)
    A = Bd - K @ Hd @ Bd
    assert_allclose(post.averaging_kernel_diag, np.diag(K @ Hd), rtol=1e-7, atol=1e-10)
    assert post.dofs == pytest.approx(np.trace(Hd @ K), rel=1e-8)
    prior_std = np.sqrt(np.diag(Bd))
    assert_allclose(post.prior_std, prior_std, rtol=1e-12)
    assert_allclose(post.error_reduction, 1 - np.sqrt(np.diag(A)) / prior_std, rtol=1e-6)
    assert np.all((post.error_reduction > 0) & (post.error_reduction < 1))
    W = np.random.default_rng(5).uniform(size=(3, N_T * N_S))
    mean, cov = post.aggregate_cov(W)
    assert_allclose(cov, W @ A @ W.T, rtol=1e-6)
    assert_allclose(mean, W @ post.mean, rtol=1e-12)
    assert_allclose(np.sqrt(np.diag(cov)), post.aggregate(W)[1], rtol=1e-8)


def test_explicit_covariance_of_dense_method(osse):
    post = solve(osse["problem"], "dense")
    Hd, Bd, R = osse["Hd"], osse["Bd"], osse["R"]
    A = np.linalg.inv(np.linalg.inv(Bd) + Hd.T @ np.linalg.solve(R, Hd))
    assert_allclose(post.covariance, A, rtol=1e-6, atol=1e-9 * np.max(A))


def test_aggregate_rejects_bad_weights(osse):
    post = solve(osse["problem"], "obs-space")
    with pytest.raises(ValueError, match=r"weights must have n_state=120 columns.*\(2, 7\)"):
        post.aggregate(np.ones((2, 7)))
    with pytest.raises(ValueError, match=r"weights holds 1 non-finite"):
        post.aggregate(np.r_[np.nan, np.ones(119)])
    with pytest.raises(ValueError, match=r"y must have shape \(n_obs,\).*n_obs=300"):
        post.means_for(np.ones(5))


def test_ill_conditioned_problem_never_returns_nan():
    """Tiny R and a huge B: variances stay finite and >= 0, or a clear error is raised."""
    rng = np.random.default_rng(3)
    n = 20
    Bd = random_spd(rng, n, cond=1e6) * 1e6
    H = np.eye(n)[:15]
    problem = LinearProblem(H=H, x_prior=np.zeros(n), y=np.ones(15), B=Bd, R=1e-10 * np.eye(15))
    for method in ("dense", "obs-space"):
        try:
            post = solve(problem, method)
            std = post.std
        except NotPositiveDefiniteError as err:
            assert "ill-conditioned" in str(err) or "not positive definite" in str(err)
        else:
            assert np.all(np.isfinite(std)) and np.all(std >= 0)


@pytest.mark.parametrize("h_kind", ["sparse", "dense", "operator"])
def test_streamed_obs_space_std_and_averaging_kernel(h_kind):
    """G = B Hᵀ over the memory budget: the std map and diag(KH) are streamed over blocks of
    observations (7 per block, the last one ragged) and must equal the dense formulas."""
    rng = np.random.default_rng(11)
    n_t, n_s, n_obs = 4, 100, 60
    Ct, Cs = exp_corr(n_t, 2.0), exp_corr(n_s, 6.0) * 0.7
    Bd = np.kron(Ct, Cs)
    n_state = n_t * n_s
    Hs = sp.random_array((n_obs, n_state), density=0.05, rng=rng, format="csr")
    Hd = Hs.toarray()
    H = {"sparse": Hs, "dense": Hd, "operator": sp.linalg.aslinearoperator(Hs)}[h_kind]
    Rd = np.diag(rng.uniform(0.2, 1.0, n_obs))
    problem = LinearProblem(
        H=H, x_prior=np.zeros(n_state), y=rng.standard_normal(n_obs), B=KronOperator(Ct, Cs), R=Rd
    )
    post = solve(problem, "obs-space", chunk_size=16)
    post.memory_budget = 8.0 * (n_obs**2 + 4 * n_state * 7)  # G (n_state x n_obs) does not fit
    K = Bd @ Hd.T @ np.linalg.inv(Hd @ Bd @ Hd.T + Rd)
    A = Bd - K @ Hd @ Bd
    assert_allclose(post.std, np.sqrt(np.diag(A)), rtol=1e-9)
    assert_allclose(post.averaging_kernel_diag, np.diag(K @ Hd), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("method", ["obs-space", "dense"])
def test_aggregate_subset_equals_solving_the_subset(osse, method):
    """Aggregates from a subset of the observations, from the full factorisation of S, equal
    the dense solve of the problem restricted to those rows of H and that block of R."""
    p = osse["problem"]
    post = solve(p, method, chunk_size=64)
    rng = np.random.default_rng(3)
    W = rng.uniform(0.0, 1.0, (3, p.n_state))
    idx = np.sort(rng.choice(p.n_obs, 120, replace=False))
    sub = LinearProblem(
        H=osse["Hd"][idx],
        x_prior=p.x_prior,
        y=p.y[idx],
        B=osse["Bd"],
        R=osse["R"][np.ix_(idx, idx)],
    )
    ref_mean, ref_std = solve(sub, "dense").aggregate(W)
    mean, std = post.aggregate_subset(W, idx)
    assert_allclose(mean, ref_mean, rtol=1e-10)
    assert_allclose(std, ref_std, rtol=1e-10)
    m1, s1 = post.aggregate_subset(W[0], idx)
    assert m1 == pytest.approx(ref_mean[0], rel=1e-10) and s1 == pytest.approx(
        ref_std[0], rel=1e-10
    )
    # all observations: the posterior's own aggregates
    full = post.aggregate_subset(W, np.arange(p.n_obs))
    assert_allclose(full[1], post.aggregate(W)[1], rtol=1e-10)


@pytest.mark.parametrize("method", ["obs-space", "dense", "cg"])
def test_innovation_covariance_solve_and_diagonal(osse, method):
    """S⁻¹ V and diag(S) from each solver equal the explicit S = H B Hᵀ + R."""
    from inversion.cg import CGOptions
    from inversion.covariance import DenseCovariance

    p = osse["problem"]
    if method == "cg":  # the whitened solver needs operators with square roots
        p = LinearProblem(
            H=p.H, x_prior=p.x_prior, y=p.y, B=DenseCovariance(osse["Bd"]),
            R=DenseCovariance(osse["R"]),
        )  # fmt: skip
    post = solve(p, method, chunk_size=64, cg=CGOptions(tol=1e-12))
    S = osse["Hd"] @ osse["Bd"] @ osse["Hd"].T + osse["R"]
    V = np.random.default_rng(4).standard_normal((p.n_obs, 3))
    tol = 1e-7 if method == "cg" else 1e-10
    assert_allclose(post.solve_innovation_covariance(V), np.linalg.solve(S, V), rtol=tol, atol=tol)
    assert_allclose(post.innovation, p.y - osse["Hd"] @ p.x_prior, rtol=1e-12)
    if method == "cg":
        with pytest.raises(NotImplementedError):
            post.innovation_covariance_diag()
    else:
        assert_allclose(post.innovation_covariance_diag(), np.diag(S), rtol=1e-10)
