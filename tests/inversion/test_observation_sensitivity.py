"""``Posterior.observation_sensitivity``: g = Kᵀ a = S⁻¹ H B a against explicit dense matrices,
for every solver, and the exact variance split it gives (uncertainty budget)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from inversion.cg import CGOptions
from inversion.covariance import DenseCovariance, DiagonalCovariance
from inversion.problem import LinearProblem
from inversion.solve import solve
from tests.inversion._solver_cases import random_spd


def _problem(n_obs: int, n_state: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    Bd = random_spd(rng, n_state, cond=20.0)
    Hd = sp.random_array((n_obs, n_state), density=0.3, rng=rng, format="csr").toarray()
    Hd[np.arange(n_obs), rng.integers(0, n_state, n_obs)] += 1.0
    Rd = random_spd(rng, n_obs, cond=5.0) * 0.4
    problem = LinearProblem(
        H=sp.csr_array(Hd), x_prior=np.ones(n_state), y=rng.standard_normal(n_obs),
        B=DenseCovariance(Bd), R=DenseCovariance(Rd),
    )  # fmt: skip
    W = rng.standard_normal((3, n_state))
    W[0] = 1.0
    return problem, Hd, Bd, Rd, W


def _reference(Hd, Bd, Rd, W):
    S = Hd @ Bd @ Hd.T + Rd
    g = np.linalg.solve(S, Hd @ Bd @ W.T)
    A = Bd - Bd @ Hd.T @ np.linalg.solve(S, Hd @ Bd)
    return g, np.einsum("ij,jk,ik->i", W, A, W)


@pytest.mark.parametrize(
    ("method", "n_obs", "n_state", "rtol"),
    [
        ("dense", 25, 40, 1e-10),
        ("obs-space", 25, 40, 1e-10),
        ("cg", 25, 40, 1e-6),  # observation-space Lanczos basis (n_obs < sqrt_dim)
        ("cg", 60, 20, 1e-6),  # whitened basis (n_obs >= sqrt_dim)
    ],
)
def test_sensitivity_matches_dense_formula(method, n_obs, n_state, rtol):
    problem, Hd, Bd, Rd, W = _problem(n_obs, n_state)
    post = solve(problem, method, cg=CGOptions(tol=1e-10))
    g_ref, var_ref = _reference(Hd, Bd, Rd, W)
    g = post.observation_sensitivity(W)
    assert g.shape == (n_obs, 3)
    assert_allclose(g, g_ref, rtol=rtol, atol=rtol * np.abs(g_ref).max())
    # one aggregate: a vector in, a vector out
    g1 = post.observation_sensitivity(W[1])
    assert g1.shape == (n_obs,)
    assert_allclose(g1, g[:, 1], rtol=rtol, atol=rtol * np.abs(g).max())
    # the mean moves by gᵀ δy when y moves by δy (definition of the sensitivity)
    dy = np.random.default_rng(5).standard_normal(n_obs)
    shift = W @ post.means_for(problem.y + dy) - W @ post.means_for(problem.y)
    assert_allclose(shift, g.T @ dy, rtol=max(rtol, 1e-9) * 10)
    # exact variance split: (a − Hᵀg)ᵀ B (a − Hᵀg) + gᵀ R g = aᵀ A a
    V = W.T - Hd.T @ g
    split = np.einsum("ji,jk,ki->i", V, Bd, V) + np.einsum("ji,jk,ki->i", g, Rd, g)
    assert_allclose(split, var_ref, rtol=max(rtol, 1e-10))


def test_sensitivity_of_sparse_weights_and_shape_errors():
    problem, Hd, Bd, Rd, W = _problem(10, 15, seed=2)
    post = solve(problem, "obs-space")
    g_ref, _ = _reference(Hd, Bd, Rd, W)
    assert_allclose(post.observation_sensitivity(sp.csr_array(W)), g_ref, rtol=1e-10)
    with pytest.raises(ValueError, match="n_state=15 columns"):
        post.observation_sensitivity(np.ones((2, 14)))


def test_sensitivity_with_diagonal_r_equals_gain_transpose():
    """With R diagonal, g is the column of Kᵀ picked by a: K = B Hᵀ S⁻¹ from dense algebra."""
    rng = np.random.default_rng(4)
    n_obs, n_state = 8, 6
    Bd = random_spd(rng, n_state)
    Hd = rng.uniform(0.0, 1.0, (n_obs, n_state))
    r = rng.uniform(0.1, 0.3, n_obs)
    problem = LinearProblem(
        H=Hd, x_prior=np.zeros(n_state), y=np.zeros(n_obs), B=Bd, R=DiagonalCovariance(r)
    )
    post = solve(problem, "dense")
    K = Bd @ Hd.T @ np.linalg.inv(Hd @ Bd @ Hd.T + np.diag(r))
    a = np.zeros(n_state)
    a[[1, 4]] = 1.0
    assert_allclose(post.observation_sensitivity(a), K.T @ a, rtol=1e-10)
