"""Stochastic trace and log-determinant estimators for matrices known only by their products.

- **Hutchinson**: ``tr(A) = E[zᵀ A z]`` for Rademacher probes z (entries ±1); the mean over N
  probes has variance ``2 (‖A‖_F² − Σ A_ii²) / N`` (symmetric A), estimated by the sample
  variance of the per-probe values: :class:`Estimate` carries the value and that standard
  error.
- **Stochastic Lanczos quadrature** (SLQ, Ubaru, Chen & Saad 2017): ``log det A = tr(log A)``
  with ``zᵀ log(A) z ≈ ‖z‖² e₁ᵀ log(T) e₁``, T the Lanczos tridiagonal of A started at z. T
  comes for free from the coefficients of conjugate gradients on ``A x = z``
  (:func:`cg_lanczos`, as in Gardner et al. 2018), so the same iterations give ``A⁻¹ z`` (for
  the trace terms of a gradient) and the quadrature. The quadrature error falls with the
  Krylov dimension like the CG error; the probe error (the stated standard error) dominates
  once CG has converged to ``tol``.

Everything is vectorised over the probes (one product with an (n, m) block per iteration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from inversion.errors import ConvergenceError, NotPositiveDefiniteError

__all__ = ["CGLanczos", "Estimate", "cg_lanczos", "probe_estimate", "quadrature", "rademacher"]


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate: ``value`` and its ``std_error`` (sample sd / sqrt(N))."""

    value: float
    std_error: float
    n_probes: int


def rademacher(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """(n, m) probes with independent ±1 entries (float64)."""
    return rng.integers(0, 2, size=(n, m)).astype(np.float64) * 2.0 - 1.0


def probe_estimate(values: np.ndarray) -> Estimate:
    """Mean of per-probe values with its standard error ``sd / sqrt(N)`` (N >= 2)."""
    v = np.asarray(values, dtype=float).ravel()
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("inf")
    return Estimate(float(v.mean()), se, int(v.size))


@dataclass(frozen=True, eq=False)
class CGLanczos:
    """Conjugate gradients on m right-hand sides, with the coefficients that give Lanczos' T.

    Attributes
    ----------
    X : numpy.ndarray
        (n, m) approximate solutions of ``A X = B``.
    alpha, beta : numpy.ndarray
        (maxiter, m) CG step lengths and direction-update ratios (NaN after a column stopped).
    iterations : numpy.ndarray
        (m,) iterations of each column.
    residual : numpy.ndarray
        (m,) final relative residuals ``‖b − A x‖ / ‖b‖``.
    """

    X: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray

    def tridiagonal(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Diagonal and off-diagonal of the Lanczos T of column ``j``.

        With CG coefficients αᵢ, βᵢ: ``T₀₀ = 1/α₀``, ``Tᵢᵢ = 1/αᵢ + βᵢ₋₁/αᵢ₋₁`` and
        ``Tᵢ,ᵢ₊₁ = sqrt(βᵢ)/αᵢ``.
        """
        k = int(self.iterations[j])
        a, b = self.alpha[:k, j], self.beta[:k, j]
        diag = 1.0 / a
        diag[1:] += b[:-1] / a[:-1]
        off = np.sqrt(b[:-1]) / a[:-1]
        return diag, off


def cg_lanczos(
    matmat: Callable[[np.ndarray], np.ndarray],
    B: np.ndarray,
    *,
    tol: float,
    maxiter: int,
    what: str = "S",
) -> CGLanczos:
    """Conjugate gradients on the columns of ``B`` for an SPD ``A`` given by ``matmat``.

    Parameters
    ----------
    matmat : callable
        ``V (n, k) -> A V (n, k)``.
    B : numpy.ndarray
        (n, m) right-hand sides.
    tol : float
        Relative residual at which a column stops.
    maxiter : int
        Iteration cap.
    what : str
        Name of A in messages.

    Returns
    -------
    CGLanczos

    Raises
    ------
    NotPositiveDefiniteError
        If a direction has ``pᵀ A p <= 0``.
    ConvergenceError
        If a column does not reach ``tol`` within ``maxiter`` iterations.
    """
    n, m = B.shape
    X = np.zeros((n, m))
    R = np.array(B, dtype=float, copy=True)
    P = R.copy()
    rr = np.einsum("ij,ij->j", R, R)
    bnorm = np.sqrt(rr)
    active = bnorm > 0
    alpha = np.full((maxiter, m), np.nan)
    beta = np.full((maxiter, m), np.nan)
    iters = np.zeros(m, dtype=int)
    for j in range(maxiter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        AP = matmat(np.ascontiguousarray(P[:, idx]))
        pap = np.einsum("ij,ij->j", P[:, idx], AP)
        if np.any(pap <= 0):
            raise NotPositiveDefiniteError(
                f"conjugate gradients on {what}: a direction has pᵀ {what} p = "
                f"{float(pap.min()):.3g} <= 0; {what} is not positive definite"
            )
        a = rr[idx] / pap
        X[:, idx] += P[:, idx] * a
        R[:, idx] -= AP * a
        new = np.einsum("ij,ij->j", R[:, idx], R[:, idx])
        b = new / rr[idx]
        alpha[j, idx], beta[j, idx] = a, b
        iters[idx] += 1
        P[:, idx] = R[:, idx] + P[:, idx] * b
        rr[idx] = new
        active[idx[np.sqrt(new) <= tol * bnorm[idx]]] = False
    res = np.sqrt(rr) / np.where(bnorm > 0, bnorm, 1.0)
    if active.any():
        raise ConvergenceError(
            f"conjugate gradients on {what}: {int(active.sum())} of {m} columns did not reach "
            f"the relative residual {tol:g} in {maxiter} iterations (worst {res.max():.3g}); "
            "raise the iteration cap or use an exact method"
        )
    return CGLanczos(X, alpha, beta, iters, res)


def quadrature(cg: CGLanczos, columns: np.ndarray, norms2: np.ndarray, f: Callable) -> np.ndarray:
    """``‖z‖² e₁ᵀ f(T) e₁`` ≈ ``zᵀ f(A) z`` for the given CG columns (Gauss quadrature).

    Parameters
    ----------
    cg : CGLanczos
    columns : numpy.ndarray of int
        Columns of ``cg`` started at the probes z.
    norms2 : numpy.ndarray
        ``‖z‖²`` of each of those columns.
    f : callable
        Elementwise function of the eigenvalues (e.g. ``numpy.log``).

    Returns
    -------
    numpy.ndarray
        One value per column.
    """
    out = np.empty(len(columns))
    for i, j in enumerate(columns):  # one small tridiagonal eigenproblem per probe
        d, e = cg.tridiagonal(int(j))
        theta, V = scipy.linalg.eigh_tridiagonal(d, e)
        out[i] = norms2[i] * float(np.sum(V[0] ** 2 * f(theta)))
    return out
