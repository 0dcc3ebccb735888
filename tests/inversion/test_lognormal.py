"""Log-normal (non-negative) inversion: the Gauss–Newton / Levenberg–Marquardt mode against a
dense reference optimisation, the Laplace covariance against the dense inverse Hessian, RTO
samples against the Gaussian posterior in the linear limit, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from scipy.special import ndtri

from inversion import LinearProblem, solve
from inversion.lognormal import (
    LognormalOptions,
    LognormalProblem,
    _step,
    lognormal_moments,
    solve_lognormal,
)

N_POS, N_ADD, N_OBS = 30, 2, 20


def _case(rel_std: float, seed: int = 0, noise: float = 0.05):
    """A small dense problem: 30 log-normal cells (exponential correlation), 2 additive
    offsets, 20 observations."""
    rng = np.random.default_rng(seed)
    n = N_POS + N_ADD
    t = np.linspace(0.0, 1.0, N_POS)
    C = np.exp(-np.abs(t[:, None] - t[None, :]) / 0.2)
    scale = np.r_[rng.uniform(0.5, 2.0, N_POS), np.ones(N_ADD)]
    mu, sig = lognormal_moments(np.full(N_POS, rel_std))
    B = np.zeros((n, n))
    B[:N_POS, :N_POS] = sig[:, None] * C * sig[None, :]
    B[N_POS:, N_POS:] = 0.5 * np.eye(N_ADD)
    H = rng.uniform(0, 1, (N_OBS, n)) * (rng.uniform(size=(N_OBS, n)) < 0.4)
    H[:, N_POS:] = 0.0
    H[: N_OBS // 2, N_POS] = 1.0
    H[N_OBS // 2 :, N_POS + 1] = 1.0
    R = noise * np.eye(N_OBS)
    u_a = np.r_[mu, np.zeros(N_ADD)]
    u_true = u_a + np.linalg.cholesky(B) @ rng.standard_normal(n)
    positive = np.r_[np.ones(N_POS, bool), np.zeros(N_ADD, bool)]
    pr0 = LognormalProblem(H=H, scale=scale, positive=positive, y=np.zeros(N_OBS), B=B, R=R,
                           u_prior=u_a)  # fmt: skip
    y = pr0.forward(u_true) + rng.normal(0.0, np.sqrt(noise), N_OBS)
    return LognormalProblem(H=H, scale=scale, positive=positive, y=y, B=B, R=R, u_prior=u_a)


def _dense_objective(pr: LognormalProblem):
    Bi = np.linalg.inv(pr.B.to_dense())
    Ri = np.linalg.inv(pr.R.to_dense())
    H = pr.H

    def f(u):
        r = pr.y - H @ pr.to_x(u)
        d = u - pr.u_prior
        return 0.5 * d @ Bi @ d + 0.5 * r @ Ri @ r

    def grad(u):
        r = pr.y - H @ pr.to_x(u)
        return Bi @ (u - pr.u_prior) - pr.jacobian_scale(u) * (H.T @ (Ri @ r))

    def hess(u):  # exact Hessian: Gauss–Newton part minus the residual curvature
        r = pr.y - H @ pr.to_x(u)
        s = pr.jacobian_scale(u)
        J = H * s
        out = Bi + J.T @ Ri @ J
        d = np.where(pr.positive, s * (H.T @ (Ri @ r)), 0.0)
        return out - np.diag(d)

    return f, grad, hess, Bi, Ri


@pytest.mark.parametrize("method", ["dense", "obs-space", "cg"])
@pytest.mark.parametrize("rel_std", [0.5, 0.8])
def test_mode_matches_a_dense_reference_optimisation(method, rel_std):
    pr = _case(rel_std)
    f, grad, hess, _, _ = _dense_objective(pr)
    ref = scipy.optimize.minimize(
        f, pr.u_prior, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-11}
    )
    assert np.abs(grad(ref.x)).max() < 1e-8  # the reference is a stationary point
    post = solve_lognormal(pr, method=method)
    np.testing.assert_allclose(post.mode, ref.x, rtol=0, atol=1e-6)
    assert post.info["converged"]
    assert np.all(post.mean[pr.positive] > 0)  # mode (= median) never negative
    np.testing.assert_allclose(post.mean, pr.to_x(ref.x), rtol=1e-5, atol=1e-6)


def test_levenberg_marquardt_step_is_the_damped_minimiser():
    """A damped step (λ > 0) minimises the linearised objective plus ½ λ ‖u⁺ − u‖²_{B⁻¹}."""
    pr = _case(0.8)
    _, _, _, Bi, Ri = _dense_objective(pr)
    u = pr.u_prior + 0.3
    v = np.linalg.solve(pr.B.to_dense(), u - pr.u_prior)
    lam = 2.5
    kw = {"method": "obs-space"}
    _, u_new, v_new = _step(pr, u, v, lam, pr.u_prior, pr.y, kw)
    J = pr.H * pr.jacobian_scale(u)
    rhs = Bi @ pr.u_prior + lam * Bi @ u + J.T @ Ri @ (pr.y - pr.forward(u) + J @ u)
    expect = np.linalg.solve((1 + lam) * Bi + J.T @ Ri @ J, rhs)
    np.testing.assert_allclose(u_new, expect, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(pr.B.to_dense() @ v_new, u_new - pr.u_prior, atol=1e-9)


def test_laplace_covariance_is_the_inverse_gauss_newton_hessian():
    pr = _case(0.5)
    post = solve_lognormal(pr, method="dense", options=LognormalOptions(tol=1e-18))
    _, _, hess, Bi, Ri = _dense_objective(pr)
    J = pr.H * pr.jacobian_scale(post.mode)
    A = np.linalg.inv(Bi + J.T @ Ri @ J)
    np.testing.assert_allclose(post.laplace.covariance, A, rtol=1e-7, atol=1e-9 * np.abs(A).max())
    # obs-space: the same std map, never a dense A
    post_o = solve_lognormal(pr, method="obs-space", options=LognormalOptions(tol=1e-18))
    np.testing.assert_allclose(post_o.u_std, np.sqrt(np.diag(A)), rtol=1e-7)
    # the exact Hessian differs from the Gauss–Newton one only by the (diagonal) residual
    # curvature, which the Laplace approximation leaves out
    diff = hess(post.mode) - np.linalg.inv(A)
    assert np.abs(diff - np.diag(np.diag(diff))).max() < 1e-8 * np.abs(Bi).max()
    # Laplace marginals of x: log-normal with median x* and log-std sqrt(A_ii)
    sd = np.sqrt(np.diag(A))
    p = pr.positive
    np.testing.assert_allclose(
        post.std[p], post.mean[p] * np.sqrt(np.exp(sd[p] ** 2) * np.expm1(sd[p] ** 2)), rtol=1e-6
    )
    q = post.quantiles([0.025, 0.975])
    np.testing.assert_allclose(q[1, p], post.mean[p] * np.exp(ndtri(0.975) * sd[p]), rtol=1e-6)
    assert np.all(q[0, p] > 0)


def test_laplace_aggregate_interval_by_hand():
    pr = _case(0.5)
    post = solve_lognormal(pr, method="dense")
    w = np.r_[np.linspace(1.0, 2.0, N_POS), np.zeros(N_ADD)]
    out = post.aggregate_lognormal(w[None, :])
    T = w @ post.mean
    wu = w * pr.jacobian_scale(post.mode)
    sig = np.sqrt(wu @ post.laplace.covariance @ wu) / T
    np.testing.assert_allclose(out["median"], [T], rtol=1e-12)
    np.testing.assert_allclose(out["low"], [T * np.exp(-1.959963984540054 * sig)], rtol=1e-9)
    np.testing.assert_allclose(out["high"], [T * np.exp(1.959963984540054 * sig)], rtol=1e-9)
    assert out["high"][0] - T > T - out["low"][0]  # asymmetric: longer upper tail


def test_rto_samples_match_the_gaussian_posterior_in_the_linear_limit():
    """Small prior std: x ≈ s (1 + z), so the RTO samples of x follow the linear posterior
    of N(s, diag(sσ) C diag(sσ)); 2,000 samples: MC standard error of a mean 2.2 % of its
    std, of a std 1.6 % (bands at about 4 standard errors)."""
    pr = _case(0.01, noise=1e-4)
    post = solve_lognormal(pr, method="obs-space")
    n = 2000
    smp = post.sample(n, seed=3)
    assert smp.values.shape == (n, pr.n_state)
    assert smp.n_unconverged == 0
    assert np.all(smp.values[:, pr.positive] > 0)
    # the linear-Gaussian problem in x with the same first two prior moments
    s = pr.scale
    D = np.where(pr.positive, s, 1.0)
    Bx = D[:, None] * pr.B.to_dense() * D[None, :]
    lin = solve(LinearProblem(H=pr.H, x_prior=pr.to_x(pr.u_prior) * np.where(
        pr.positive, np.exp(0.5 * np.diag(pr.B.to_dense())), 1.0), y=pr.y, B=Bx, R=pr.R),
        method="dense")  # fmt: skip
    W = np.vstack([np.r_[np.ones(N_POS), 0, 0], np.r_[np.arange(N_POS) < 10, 0, 0], np.eye(
        pr.n_state)[N_POS]])  # fmt: skip
    mean_g, cov_g = lin.aggregate_cov(W)
    agg = smp.values @ W.T
    sd_g = np.sqrt(np.diag(cov_g))
    assert np.all(np.abs(agg.mean(0) - mean_g) < 4 * sd_g / np.sqrt(n))
    np.testing.assert_allclose(agg.std(0, ddof=1), sd_g, rtol=0.065)
    # sample correlation of the first two aggregates too
    c_g = cov_g[0, 1] / (sd_g[0] * sd_g[1])
    assert abs(np.corrcoef(agg[:, 0], agg[:, 1])[0, 1] - c_g) < 0.05


def test_rto_samples_are_positive_and_skewed_in_the_nonlinear_case():
    pr = _case(0.8)
    post = solve_lognormal(pr, method="obs-space")
    smp = post.sample(400, seed=1, weights=np.r_[np.ones(N_POS), 0, 0][None, :])
    assert smp.values.shape == (400, 1)
    assert smp.n_unconverged == 0
    assert smp.iterations.max() <= LognormalOptions().sample_max_iter
    full = post.sample(50, seed=2)
    assert np.all(full.values[:, pr.positive] > 0)


def test_nonpositive_scale_is_refused_with_the_index():
    pr = _case(0.5)
    scale = pr.scale.copy()
    scale[7] = 0.0
    with pytest.raises(ValueError, match=r"scale\[7\]=0\.0"):
        LognormalProblem(H=pr.H, scale=scale, positive=pr.positive, y=pr.y, B=pr.B, R=pr.R,
                         u_prior=pr.u_prior)  # fmt: skip


def test_lognormal_moments_match_mean_and_relative_std():
    mu, sig = lognormal_moments(np.array([0.1, 0.5, 2.0]))
    mean = np.exp(mu + 0.5 * sig**2)
    rel = np.sqrt(np.expm1(sig**2))
    np.testing.assert_allclose(mean, 1.0, rtol=1e-12)
    np.testing.assert_allclose(rel, [0.1, 0.5, 2.0], rtol=1e-12)
    with pytest.raises(ValueError, match="> 0"):
        lognormal_moments(np.array([0.0]))


def test_batched_modes_equal_direct_solves():
    """solve_batch (Newton–CG preconditioned by another data vector's Laplace) finds the same
    modes and Laplace aggregates as solve_lognormal on each data vector."""
    pr = _case(0.5)
    post = solve_lognormal(pr, method="obs-space")
    rng = np.random.default_rng(4)
    Y = pr.y[None, :] + rng.normal(0.0, 0.5, (3, N_OBS))
    W = np.vstack([np.r_[np.ones(N_POS), 0, 0], np.r_[np.linspace(0, 1, N_POS), 0, 0]])
    out = post.solve_batch(Y, W)
    assert out["n_unconverged"] == 0
    for j in range(3):
        pj = LognormalProblem(H=pr.H, scale=pr.scale, positive=pr.positive, y=Y[j], B=pr.B,
                              R=pr.R, u_prior=pr.u_prior)  # fmt: skip
        direct = solve_lognormal(pj, method="dense")
        np.testing.assert_allclose(out["x"][j], direct.mean, rtol=1e-6, atol=1e-8)
        agg = direct.aggregate_lognormal(W)
        np.testing.assert_allclose(out["median"][j], agg["median"], rtol=1e-7)
        np.testing.assert_allclose(out["log_std"][j], agg["log_std"], rtol=1e-5)
        assert out["chi2"][j] == pytest.approx(direct.chi2, rel=1e-6)


def _two_cell_problem():
    """Two log-normal cells (relative std 1, correlation 0.5) seen by two noisy observations:
    a clearly skewed posterior whose exact quantiles a 2-D quadrature gives."""
    mu, sig = lognormal_moments(np.array([1.0, 1.0]))
    B = np.outer(sig, sig) * np.array([[1.0, 0.5], [0.5, 1.0]])
    H = np.array([[1.0, 0.3], [0.2, 1.0]])
    R = 0.25 * np.eye(2)
    return LognormalProblem(H=H, scale=np.array([1.0, 2.0]), positive=np.ones(2, bool),
                            y=np.array([0.4, 1.1]), B=B, R=R, u_prior=mu)  # fmt: skip


def _exact_total_quantiles(pr, q):
    g = np.linspace(-6.0, 3.0, 900)
    Z1, Z2 = np.meshgrid(g, g, indexing="ij")
    U = np.stack([Z1.ravel(), Z2.ravel()])
    Bi = np.linalg.inv(pr.B.to_dense())
    d = U - pr.u_prior[:, None]
    X = pr.to_x(U)
    r = pr.y[:, None] - pr.H @ X
    lp = -0.5 * np.einsum("ik,ij,jk->k", d, Bi, d) - 0.5 * np.sum(r * r, axis=0) / 0.25
    p = np.exp(lp - lp.max())
    T = X.sum(axis=0)
    order = np.argsort(T)
    c = np.cumsum(p[order])
    return np.interp(q, c / c[-1], T[order])


def test_importance_samples_converge_to_the_exact_posterior_where_laplace_and_rto_do_not():
    """20,000 importance samples: quantiles of the total within 2 % of the 2-D quadrature;
    the Laplace median and the RTO median are off by more (they approximate a skewed
    posterior)."""
    pr = _two_cell_problem()
    post = solve_lognormal(pr, method="dense")
    q = np.array([0.025, 0.5, 0.975])
    exact = _exact_total_quantiles(pr, q)
    w = np.ones((1, 2))
    smp = post.importance_sample(20_000, seed=0, weights=w, temper=4.0)
    assert smp.effective_size > 5_000
    np.testing.assert_allclose(smp.quantiles(q)[:, 0], exact, rtol=0.02)
    laplace = post.aggregate_lognormal(w)["median"][0]
    rto = np.median(post.sample(4000, seed=1, weights=w).values[:, 0])
    assert abs(laplace / exact[1] - 1) > 0.03
    assert abs(rto / exact[1] - 1) > 0.03
