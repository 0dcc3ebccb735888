"""Marginal likelihood of the hyperparameters: exact value and gradient against dense
references (numpy slogdet and explicit inverses), the stochastic estimators against the exact
ones within their stated errors, the fit, and the propagation algebra."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from scipy import special

from inversion.covariance import kronecker_prior
from inversion.hyperparameters import (
    Block,
    LowRank,
    MarginalLikelihood,
    VarianceModel,
    aggregates_at,
    fit_hyperparameters,
    mixture_quantiles,
    projected_block,
    propagate,
    quadrature_nodes,
)

LOG2PI = np.log(2 * np.pi)


def _psd(rng, n, r):
    A = rng.standard_normal((n, r))
    return A @ A.T / r


def _toy(seed: int = 0, n: int = 60, k: int = 3):
    """Blocks of S: two dense flux blocks, a low-rank offset block, R in two labels with a
    correlated group that spans both (so a cross-label part m₁m₂ R₁₂ exists)."""
    rng = np.random.default_rng(seed)
    M1, M2 = _psd(rng, n, 8), _psd(rng, n, 5)
    U = np.zeros((n, 2))
    U[: n // 2, 0] = 0.7
    U[n // 2 :, 1] = 0.7
    lab = np.arange(n) % 2
    R = np.diag(rng.uniform(0.3, 1.0, n))
    g = np.arange(10)  # a correlated group spanning both labels
    C = 0.5 * np.exp(-np.abs(g[:, None] - g[None, :]) / 3.0)
    R[np.ix_(g, g)] += C
    parts = {}
    for a in (0, 1):
        for b in (a, 1):
            mask = (lab[:, None] == a) & (lab[None, :] == b)
            if a != b:
                mask |= mask.T
            parts[(a, b)] = sp.csr_array(np.where(mask, R, 0.0))
    HBW = [rng.standard_normal((n, k)) * 0.3 for _ in range(3)]
    WBW = [_psd(rng, k, 4) for _ in range(3)]
    blocks = [
        Block(M1, HBW[0], WBW[0]), Block(M2, HBW[1], WBW[1]), Block(LowRank(U), HBW[2], WBW[2]),
        Block(parts[(0, 0)]), Block(parts[(1, 1)]), Block(parts[(0, 1)]),
    ]  # fmt: skip
    # parameters: s1, s2 (prior scales), o (offset std), m0, m1 (mismatch per label)
    E = np.zeros((6, 5))
    E[0, 0] = E[1, 1] = E[2, 2] = 2.0
    E[3, 3] = 2.0
    E[4, 4] = 2.0
    E[5, 3] = E[5, 4] = 1.0
    model = VarianceModel(blocks, E, ["s1", "s2", "o", "m0", "m1"])
    dense = [M1, M2, U @ U.T] + [parts[p].toarray() for p in ((0, 0), (1, 1), (0, 1))]
    S0 = sum(dense)
    d = np.linalg.cholesky(S0) @ rng.standard_normal(n)
    return model, dense, E, d


def _dense_reference(dense, E, d, phi, F=None):
    """ℓ and ∂ℓ/∂φ from explicit matrices: numpy slogdet, explicit inverse and ∂S."""
    f = np.exp(E @ phi)
    S = sum(fc * M for fc, M in zip(f, dense, strict=True))
    n = d.size
    Si = np.linalg.inv(S)
    sign, logdet = np.linalg.slogdet(S)
    assert sign > 0
    if F is None:
        P = Si
        extra, q = 0.0, 0
    else:
        A = F.T @ Si @ F
        P = Si - Si @ F @ np.linalg.inv(A) @ F.T @ Si
        extra, q = np.linalg.slogdet(A)[1], F.shape[1]
    value = -0.5 * ((n - q) * LOG2PI + logdet + extra + d @ P @ d)
    grad = np.empty(E.shape[1])
    for p in range(E.shape[1]):
        dS = sum(E[c, p] * f[c] * dense[c] for c in range(len(dense)))
        grad[p] = -0.5 * np.trace(P @ dS) + 0.5 * d @ P @ dS @ P @ d
    return value, grad


@pytest.mark.parametrize("reml", [False, True])
def test_exact_loglik_and_gradient_match_the_dense_reference(reml):
    model, dense, E, d = _toy()
    F = None
    if reml:
        F = np.random.default_rng(3).standard_normal((d.size, 2))
    lik = MarginalLikelihood(model, d, design=F, method="exact")
    for phi in (np.zeros(5), np.array([0.3, -0.4, 0.2, -0.1, 0.5])):
        ev = lik(phi)
        v_ref, g_ref = _dense_reference(dense, E, d, phi, F)
        assert ev.value == pytest.approx(v_ref, rel=1e-10, abs=1e-8)
        np.testing.assert_allclose(ev.grad, g_ref, rtol=1e-8, atol=1e-8 * np.abs(g_ref).max())


def test_exact_gradient_matches_finite_differences_of_the_dense_loglik():
    """An independent check of the gradient formula itself (Richardson-extrapolated central
    differences of the dense log-likelihood, error O(h⁴) ≈ 1e-9)."""
    model, dense, E, d = _toy(seed=1)
    phi = np.array([0.1, 0.2, -0.3, 0.05, -0.2])
    g = MarginalLikelihood(model, d)(phi).grad

    def ell(p):
        return _dense_reference(dense, E, d, p)[0]

    h = 1e-3
    fd = np.empty(5)
    for i in range(5):
        e = np.zeros(5)
        e[i] = h
        c1 = (ell(phi + e) - ell(phi - e)) / (2 * h)
        c2 = (ell(phi + 2 * e) - ell(phi - 2 * e)) / (4 * h)
        fd[i] = (4 * c1 - c2) / 3
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-7)


def _grid_problem(length_factor_truth: float = 1.0, seed: int = 4):
    """A Kronecker prior on a 6 x 7 grid (2 time steps) seen by 40 random observations."""
    rng = np.random.default_rng(seed)
    shape, nt = (6, 7), 2
    ns = shape[0] * shape[1]
    std = rng.uniform(0.5, 1.5, (1, nt, *shape))
    H = sp.random(40, nt * ns, density=0.2, random_state=seed, format="csr")
    R = np.diag(rng.uniform(0.05, 0.2, 40))

    def B_of(L):
        return kronecker_prior(std, shape, 1.0, "exponential", L, nt=nt, step_hours=24.0,
                               tau_hours=48.0).blocks[0]  # fmt: skip

    return H, R, B_of, std, shape, nt


def test_length_gradient_matches_the_analytic_derivative_of_the_correlation():
    """∂ℓ/∂log L from the five-point stencil over rebuilt blocks, against the analytic
    derivative of exp(−d/L) (∂ρ/∂log L = (d/L) ρ) on explicit matrices."""
    H, R, B_of, std, shape, nt = _grid_problem()
    L0 = 3.0
    Hd = H.toarray()
    model = VarianceModel(
        [projected_block(H, B_of(L0)), Block(sp.csr_array(R))], np.zeros((2, 1)), ["L"],
        length_params=[0], rebuild=lambda f: {0: projected_block(H, B_of(L0 * f[0]))},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    d = rng.standard_normal(40) * 2
    phi = np.array([0.2])
    L = L0 * np.exp(phi[0])
    yy, xx = np.divmod(np.arange(shape[0] * shape[1]), shape[1])
    dist = np.hypot(yy[:, None] - yy[None, :], xx[:, None] - xx[None, :])
    rho = np.exp(-dist / L)
    Ct = np.exp(-np.abs(np.subtract.outer(np.arange(nt), np.arange(nt))) * 24.0 / 48.0)
    s = std.ravel()
    Bd = s[:, None] * np.kron(Ct, rho) * s[None, :]
    np.testing.assert_allclose(Bd, B_of(L).to_dense(), rtol=1e-10, atol=1e-12)
    dB = s[:, None] * np.kron(Ct, (dist / L) * rho) * s[None, :]
    S = Hd @ Bd @ Hd.T + R
    Si = np.linalg.inv(S)
    dS = Hd @ dB @ Hd.T
    g_ref = -0.5 * np.trace(Si @ dS) + 0.5 * d @ Si @ dS @ Si @ d
    v_ref = -0.5 * (40 * LOG2PI + np.linalg.slogdet(S)[1] + d @ Si @ d)
    ev = MarginalLikelihood(model, d)(phi)
    assert ev.value == pytest.approx(v_ref, rel=1e-10)
    # five-point stencil with h = 0.01: truncation h⁴/30 · ℓ⁽⁵⁾, measured < 1e-8 relative
    assert ev.grad[0] == pytest.approx(g_ref, rel=1e-7)


@pytest.mark.parametrize("method", ["hybrid", "stochastic"])
def test_stochastic_estimators_agree_with_exact_within_their_stated_error(method):
    model, _dense, _E, d = _toy(seed=2, n=120)
    phi = np.array([0.2, -0.3, 0.1, 0.3, -0.2])
    exact = MarginalLikelihood(model, d, method="exact")(phi)
    est = MarginalLikelihood(model, d, method=method, probes=200, seed=5, tol=1e-10)(phi)
    if method == "hybrid":  # value from the same Cholesky: exact
        assert est.value == pytest.approx(exact.value, rel=1e-12)
        assert est.value_se == 0.0
    else:  # 4 standard errors: false-failure rate 6e-5 per comparison (seeded)
        assert est.value_se > 0
        assert abs(est.value - exact.value) <= 4 * est.value_se
        assert est.value_se < 0.05 * abs(exact.value)
    assert np.all(est.grad_se > 0)
    assert np.all(np.abs(est.grad - exact.grad) <= 4 * est.grad_se)
    # the stated errors are honest: the standard errors match the spread over seeds
    grads = np.array(
        [
            MarginalLikelihood(model, d, method=method, probes=50, seed=s)(phi).grad
            for s in range(30)
        ]
    )
    se50 = MarginalLikelihood(model, d, method=method, probes=50, seed=99)(phi).grad_se
    ratio = grads.std(axis=0, ddof=1) / se50
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio


def test_fit_recovers_the_factors_of_data_drawn_from_a_known_S():
    rng = np.random.default_rng(7)
    n = 400
    M = _psd(rng, n, 40)
    R = np.diag(rng.uniform(0.2, 1.0, n))
    model = VarianceModel([Block(M), Block(sp.csr_array(R))], [[2.0, 0.0], [0.0, 2.0]], ["s", "m"])
    truth = np.log([1.6, 0.7])
    S = np.exp(2 * truth[0]) * M + np.exp(2 * truth[1]) * R
    L = np.linalg.cholesky(S)
    D = L @ rng.standard_normal((n, 20))
    z = []
    for j in range(D.shape[1]):
        fit = fit_hyperparameters(MarginalLikelihood(model, D[:, j]), np.log([[0.05, 20]] * 2))
        assert fit.converged
        z.append((fit.phi - truth) / fit.se)
    z = np.array(z)
    # standardised errors of 20 fits: mean within 3/sqrt(20), sd near 1
    assert np.all(np.abs(z.mean(axis=0)) < 3 / np.sqrt(20)), z.mean(axis=0)
    assert np.all((z.std(axis=0) > 0.5) & (z.std(axis=0) < 1.6)), z.std(axis=0)


def test_bounds_that_exclude_the_optimum_are_flagged_and_flat_directions_too():
    model, _dense, E, d = _toy(seed=3)
    bounds = np.log([[0.05, 20]] * 5)
    bounds[3] = np.log([5.0, 20.0])  # m0 forced far above its value
    fit = fit_hyperparameters(MarginalLikelihood(model, d), bounds)
    assert fit.at_bound[3] and not fit.at_bound[[0, 1, 2, 4]].any()
    assert fit.phi[3] == pytest.approx(np.log(5.0))
    assert np.isnan(fit.se[3])
    # a parameter of a block that is exactly zero has no information
    zero = VarianceModel(
        [*model.blocks, Block(np.zeros((d.size, d.size)))], np.hstack([np.vstack([E, np.zeros(5)]),
        np.r_[np.zeros(6), 2.0][:, None]]), [*model.names, "nothing"],
    )  # fmt: skip
    fit = fit_hyperparameters(MarginalLikelihood(zero, d), np.log([[0.05, 20]] * 6))
    assert fit.flat[5] and not fit.propagated[5]


def test_quadrature_nodes_reproduce_the_gaussian_moments():
    model, _dense, _E, d = _toy(seed=0)
    fit = fit_hyperparameters(MarginalLikelihood(model, d), np.log([[0.05, 20]] * 5))
    use = fit.propagated
    for rule in ("gauss-hermite", "cubature"):
        nodes, w, used = quadrature_nodes(fit, rule, max_nodes=10**4)
        assert used == rule and np.all(w > 0) and w.sum() == pytest.approx(1.0)
        x = nodes - fit.phi
        np.testing.assert_allclose(w @ x, 0, atol=1e-12)
        np.testing.assert_allclose(np.einsum("m,mi,mj->ij", w, x, x), fit.cov, atol=1e-12)
        assert np.all(x[:, ~use] == 0)


def test_mixture_quantiles_invert_the_mixture_cdf():
    rng = np.random.default_rng(1)
    w = rng.uniform(0.1, 1, 7)
    w /= w.sum()
    mu = rng.normal(0, 3, (7, 4))
    sd = rng.uniform(0.5, 2, (7, 4))
    probs = [0.025, 0.16, 0.5, 0.84, 0.975]
    q = mixture_quantiles(w, mu, sd, probs)
    for j in range(4):
        for i, p in enumerate(probs):
            ref = scipy.optimize.brentq(
                lambda t, j=j, p=p: w @ special.ndtr((t - mu[:, j]) / sd[:, j]) - p, -50, 50,
                xtol=1e-13,
            )  # fmt: skip
            assert q[i, j] == pytest.approx(ref, abs=1e-8)


def _state_space_reference(Hd, Bd, Rd, x_a, y, Wd, X=None):
    """Posterior of the aggregates from the state-space precision form (independent of S):
    with X, the prior mean x_a + X β has β flat (zero prior precision)."""
    n_s = Bd.shape[0]
    q = 0 if X is None else X.shape[1]
    Hz = Hd if X is None else np.hstack([Hd, Hd @ X])
    P0 = np.zeros((n_s + q, n_s + q))
    P0[:n_s, :n_s] = np.linalg.inv(Bd)
    Ri = np.linalg.inv(Rd)
    C = np.linalg.inv(P0 + Hz.T @ Ri @ Hz)
    z = C @ Hz.T @ Ri @ (y - Hd @ x_a)
    Lz = Wd if X is None else np.hstack([Wd, Wd @ X])
    return Wd @ x_a + Lz @ z, Lz @ C @ Lz.T


@pytest.mark.parametrize("reml", [False, True])
def test_aggregates_from_the_blocks_equal_the_state_space_posterior(reml):
    H, R, B_of, _std, _shape, _nt = _grid_problem()
    B = B_of(2.0)
    rng = np.random.default_rng(2)
    W = sp.csr_array(rng.uniform(0, 1, (3, B.shape[0])))
    x_a = rng.uniform(1, 2, B.shape[0])
    y = H @ x_a + rng.standard_normal(40)
    model = VarianceModel(
        [projected_block(H, B, W), Block(sp.csr_array(R))], [[2.0, 0.0], [0.0, 2.0]], ["s", "m"]
    )
    X = None
    if reml:
        X = np.zeros((B.shape[0], 2))
        X[::2, 0] = x_a[::2]
        X[1::2, 1] = x_a[1::2]
    lik = MarginalLikelihood(model, y - H @ x_a, design=None if X is None else H @ X)
    phi = np.array([0.3, -0.2])
    mean, cov = aggregates_at(lik, phi, W @ x_a, None if X is None else W @ X)
    Bd = np.exp(0.6) * B.to_dense()
    m_ref, c_ref = _state_space_reference(H.toarray(), Bd, np.exp(-0.4) * R, x_a, y, W.toarray(), X)
    np.testing.assert_allclose(mean, m_ref, rtol=1e-8)
    np.testing.assert_allclose(cov, c_ref, rtol=1e-7, atol=1e-9 * np.abs(c_ref).max())


def test_propagation_is_the_mixture_of_the_node_posteriors():
    model, _dense, _E, d = _toy(seed=0)
    lik = MarginalLikelihood(model, d)
    fit = fit_hyperparameters(lik, np.log([[0.05, 20]] * 5))
    prop = propagate(lik, fit, np.zeros(3))
    m, c = aggregates_at(lik, fit.phi, np.zeros(3))
    np.testing.assert_allclose(prop.plugin_mean, m)
    np.testing.assert_allclose(prop.plugin_cov, c)
    # law of total variance over the nodes, computed independently
    means, covs = zip(*(aggregates_at(lik, p, np.zeros(3)) for p in prop.nodes), strict=True)
    means, covs = np.array(means), np.array(covs)
    mix_mean = prop.weights @ means
    within = np.einsum("m,mij->ij", prop.weights, covs)
    between = np.einsum("m,mi,mj->ij", prop.weights, means - mix_mean, means - mix_mean)
    np.testing.assert_allclose(prop.cov, within + between, rtol=1e-10)


def test_average_information_matches_its_dense_formula_and_the_fisher_information():
    """AI = ½ dᵀ P Ṡᵢ P Ṡⱼ P d from explicit matrices (to 1e-10); and its mean over data
    drawn from S is the expected (Fisher) information ½ tr(P Ṡᵢ P Ṡⱼ): within 15 % on the
    diagonal, 3 or more Monte-Carlo standard errors of the mean of 400 draws (1.4-5 %)."""
    model, dense, E, d = _toy(seed=5)
    phi = np.array([0.2, -0.1, 0.3, -0.2, 0.1])
    f = np.exp(E @ phi)
    S = sum(fc * M for fc, M in zip(f, dense, strict=True))
    Si = np.linalg.inv(S)
    dS = [sum(E[c, p] * f[c] * dense[c] for c in range(len(dense))) for p in range(5)]
    ref = np.array([[0.5 * d @ Si @ a @ Si @ b @ Si @ d for b in dS] for a in dS])
    ai = MarginalLikelihood(model, d).average_information(phi)
    np.testing.assert_allclose(ai, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    fisher = np.array([[0.5 * np.trace(Si @ a @ Si @ b) for b in dS] for a in dS])
    L = np.linalg.cholesky(S)
    draws = L @ np.random.default_rng(0).standard_normal((d.size, 400))
    mean_ai = np.mean(
        [MarginalLikelihood(model, x).average_information(phi) for x in draws.T], axis=0
    )
    np.testing.assert_allclose(np.diag(mean_ai), np.diag(fisher), rtol=0.15)
