"""Seeded small inversion problems shared by the solver and posterior tests.

Everything here is independent of :mod:`inversion.covariance`: explicit SPD matrices and a
Kronecker product written as a ``LinearOperator`` with a reshape.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator


def random_spd(rng: np.random.Generator, n: int, cond: float = 50.0) -> np.ndarray:
    """Random SPD matrix with eigenvalues log-spread in [1, cond] (well conditioned)."""
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = np.exp(rng.uniform(0.0, np.log(cond), n))
    M = (Q * eig) @ Q.T
    return 0.5 * (M + M.T)


def exp_corr(n: int, length: float) -> np.ndarray:
    """Exponential correlation matrix of n points 1 apart (SPD)."""
    idx = np.arange(n)
    return np.exp(-np.abs(idx[:, None] - idx[None, :]) / length)


class KronOperator(LinearOperator):
    """``kron(Ct, Cs)`` for a state flattened (time, space) in C order, applied by reshape.

    Has ``diag()`` but no ``to_dense()``, so the solvers must fall back on ``B @ I``.
    """

    def __init__(self, Ct: np.ndarray, Cs: np.ndarray) -> None:
        n = Ct.shape[0] * Cs.shape[0]
        super().__init__(dtype=np.float64, shape=(n, n))
        self.Ct, self.Cs = Ct, Cs

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        nt, ns = self.Ct.shape[0], self.Cs.shape[0]
        k = X.shape[1]
        Xr = np.asarray(X).reshape(nt, ns, k)
        Y = np.einsum("ts,sjk->tjk", self.Ct, Xr)
        Y = np.einsum("ij,tjk->tik", self.Cs, Y)
        return Y.reshape(nt * ns, k)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(x, (-1, 1)))[:, 0]

    def _adjoint(self) -> KronOperator:
        return self

    def diag(self) -> np.ndarray:
        return np.kron(np.diag(self.Ct), np.diag(self.Cs))


def make_H(rng: np.random.Generator, n_obs: int, n_state: int, kind: str, density: float = 0.3):
    """Observation operator of the given kind ("dense", "sparse", "operator"), and its dense twin."""
    Hs = sp.random_array(
        (n_obs, n_state), density=density, rng=rng, data_sampler=rng.uniform, format="csr"
    )
    Hd = Hs.toarray()
    # make sure no observation row is empty
    Hd[np.arange(n_obs), rng.integers(0, n_state, n_obs)] += 1.0
    if kind == "dense":
        return Hd, Hd
    if kind == "sparse":
        return sp.csr_array(Hd), Hd
    if kind == "operator":
        return aslinearoperator(Hd), Hd
    raise ValueError(kind)


def make_problem_arrays(
    seed: int, n_obs: int, n_state: int, h_kind: str = "dense", b_kind: str = "dense"
):
    """Return (H, H_dense, x_prior, y, B, B_dense, R) for a seeded random SPD problem."""
    rng = np.random.default_rng(seed)
    H, Hd = make_H(rng, n_obs, n_state, h_kind)
    if b_kind == "kron":
        nt = 2 if n_state % 2 == 0 else 1
        Ct = exp_corr(nt, 1.5) * 1.0
        Cs = random_spd(rng, n_state // nt, cond=20.0) * 0.5
        B = KronOperator(Ct, Cs)
        Bd = np.kron(Ct, Cs)
    else:
        Bd = random_spd(rng, n_state, cond=50.0)
        B = Bd
    R = random_spd(rng, n_obs, cond=10.0) * 0.3
    x_prior = rng.standard_normal(n_state)
    y = Hd @ x_prior + rng.standard_normal(n_obs)
    return H, Hd, x_prior, y, B, Bd, R
