"""The log-normal problem ``y = H x(u) + e``, ``x = s ∘ exp(z)`` on the positive elements
(see :mod:`inversion.lognormal`), and the prior moments that map a Gaussian prior to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.sparse.linalg import LinearOperator

from inversion.covariance import CovarianceOperator
from inversion.errors import NonFiniteError, ShapeMismatchError
from inversion.problem import LinearProblem, covariance_dense

__all__ = ["LognormalProblem", "lognormal_moments"]

# Largest |z| accepted before exp(z) is taken (exp(50) ≈ 5e21 times the prior flux).
_MAX_LOG = 50.0
# Sparse H with fewer stored values is multiplied directly (the threaded tiles of
# LinearProblem.H_matmat cost more than they save for a few columns of a small H).
_DIRECT_NNZ = 2_000_000


def lognormal_moments(rel_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-space mean and std that give a log-normal of mean 1 and relative std ``rel_std``.

    For ``x = s exp(z)``, ``z ~ N(μ, σ²)``: ``σ² = ln(1 + r²)`` and ``μ = −σ²/2`` make
    ``E[x] = s`` and ``std(x) = r s`` (the first two moments of the Gaussian prior N(s, (r s)²)).

    Parameters
    ----------
    rel_std : numpy.ndarray
        Relative std r = std / mean [1], > 0.

    Returns
    -------
    mu, sigma : numpy.ndarray
        Mean and std of z [1].
    """
    r = np.asarray(rel_std, dtype=float)
    if not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError("rel_std: relative stds must be finite and > 0")
    var = np.log1p(r * r)
    return -0.5 * var, np.sqrt(var)


class _ScaledCovariance(CovarianceOperator):
    """``c · C`` for a covariance operator C and a factor c > 0 (Levenberg–Marquardt steps)."""

    def __init__(self, base: Any, factor: float) -> None:
        super().__init__(base.shape[0])
        self.base = base
        self.factor = float(factor)

    @property
    def sqrt_dim(self) -> int:
        return int(getattr(self.base, "sqrt_dim", self.n))

    def diag(self) -> np.ndarray:
        return self.factor * np.asarray(self.base.diag(), dtype=float)

    def _matmat(self, X) -> np.ndarray:
        return self.factor * np.asarray(self.base @ X, dtype=float)

    def _apply(self, X: np.ndarray) -> np.ndarray:
        return self.factor * np.asarray(self.base @ X, dtype=float)

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        return np.sqrt(self.factor) * np.asarray(self.base.sqrt_matvec(W), dtype=float)

    def _sqrt_rapply(self, V: np.ndarray) -> np.ndarray:
        return np.sqrt(self.factor) * np.asarray(self.base.sqrt_rmatvec(V), dtype=float)

    def _inv_apply(self, V: np.ndarray) -> np.ndarray:
        return np.asarray(self.base.inv_matvec(V), dtype=float) / self.factor

    def _to_dense(self) -> np.ndarray:
        return self.factor * covariance_dense(self.base)


def _scale_columns(H: Any, s: np.ndarray) -> Any:
    """``H diag(s)`` for a dense, sparse or operator H."""
    if isinstance(H, LinearOperator):
        return LinearOperator(
            H.shape,
            matvec=lambda x: H.matvec(s * np.ravel(x)),
            matmat=lambda X: H.matmat(s[:, None] * X),
            rmatvec=lambda y: s * H.rmatvec(y),
            rmatmat=lambda Y: s[:, None] * H.rmatmat(Y),
            dtype=np.float64,
        )
    if scipy.sparse.issparse(H):
        return scipy.sparse.csr_array(H @ scipy.sparse.diags_array(s))
    return H * s[None, :]


@dataclass(frozen=True, eq=False, repr=False)
class LognormalProblem:
    """``y = H x(u) + e`` with ``x = s ∘ exp(z)`` on the positive elements, ``u ~ N(u_a, B_u)``.

    Parameters
    ----------
    H : numpy.ndarray, scipy.sparse array or LinearOperator
        (n_obs, n_state) [ppm per x unit].
    scale : numpy.ndarray
        (n_state,) s: x = s exp(z) on the positive elements [x units, e.g. µmol m-2 s-1],
        > 0 there; ignored elsewhere.
    positive : numpy.ndarray
        (n_state,) bool: the log-normal elements (True) and the additive ones (False).
    y : numpy.ndarray
        (n_obs,) observations [ppm].
    B : numpy.ndarray or covariance operator
        (n_state, n_state) prior covariance of u [1 on the positive elements, x units elsewhere].
    R : numpy.ndarray or covariance operator
        (n_obs, n_obs) observation error covariance [ppm²].
    u_prior : numpy.ndarray
        (n_state,) prior mean of u (μ_z on the positive elements).

    Raises
    ------
    ValueError
        If a scale of a positive element is not > 0 (the message names the first such element
        and how many there are), or ``positive`` selects no element.
    ShapeMismatchError, NonFiniteError, NonPositiveVarianceError
        As :class:`inversion.LinearProblem` for H, y, B, R and u_prior.
    """

    H: Any
    scale: np.ndarray
    positive: np.ndarray
    y: np.ndarray
    B: Any
    R: Any
    u_prior: np.ndarray
    linear: LinearProblem = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lin = LinearProblem(H=self.H, x_prior=self.u_prior, y=self.y, B=self.B, R=self.R)
        n = lin.n_state
        pos = np.asarray(self.positive, dtype=bool)
        scale = np.asarray(self.scale, dtype=float)
        if pos.shape != (n,) or scale.shape != (n,):
            raise ShapeMismatchError(
                f"scale and positive must have shape (n_state,)=({n},); found {scale.shape} "
                f"and {pos.shape}"
            )
        if not pos.any():
            raise ValueError("positive: no element is log-normal; use inversion.solve instead")
        bad = pos & ~(np.isfinite(scale) & (scale > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"scale: the log-normal formulation x = scale·exp(z) needs scale > 0 on every "
                f"positive element; {int(bad.sum())} are not, the first is scale[{i}]="
                f"{float(scale[i])!r}; give those elements a positive prior (or leave them out "
                "of the log-normal block)"
            )
        object.__setattr__(self, "linear", lin)
        object.__setattr__(self, "positive", pos)
        object.__setattr__(self, "scale", np.where(pos, scale, 1.0))
        for name in ("H", "y", "B", "R"):
            object.__setattr__(self, name, getattr(lin, name))
        object.__setattr__(self, "u_prior", lin.x_prior)

    def __repr__(self) -> str:
        return (
            f"LognormalProblem(n_state={self.n_state}, n_obs={self.n_obs}, "
            f"n_positive={int(self.positive.sum())})"
        )

    @property
    def n_state(self) -> int:
        """Number of state elements."""
        return self.linear.n_state

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return self.linear.n_obs

    def _z(self, U: np.ndarray) -> np.ndarray:
        Z = U[self.positive]
        if not np.all(np.abs(Z) <= _MAX_LOG):
            raise NonFiniteError(
                f"log-normal state: |z| > {_MAX_LOG} (exp(z) would overflow); the optimisation "
                "diverged: check the prior std (inversion.positivity) and the data"
            )
        return Z

    def to_x(self, u: np.ndarray) -> np.ndarray:
        """x(u) for u of shape (n_state,) or (n_state, k) [x units]."""
        U = np.asarray(u, dtype=float)
        X = U.copy()
        sc = self.scale[self.positive]
        X[self.positive] = (sc if U.ndim == 1 else sc[:, None]) * np.exp(self._z(U))
        return X

    def jacobian_scale(self, u: np.ndarray) -> np.ndarray:
        """∂x/∂u (elementwise; x on the positive elements, 1 elsewhere), same shape as u."""
        U = np.asarray(u, dtype=float)
        out = np.ones_like(U)
        sc = self.scale[self.positive]
        out[self.positive] = (sc if U.ndim == 1 else sc[:, None]) * np.exp(self._z(U))
        return out

    def forward(self, u: np.ndarray) -> np.ndarray:
        """``H x(u)`` [ppm] for u of shape (n_state,) or (n_state, k)."""
        return self.H_matmat(self.to_x(u))

    def H_matmat(self, X: np.ndarray) -> np.ndarray:
        """``H X`` [ppm]; small sparse H directly (no thread pool for a few columns)."""
        if scipy.sparse.issparse(self.H) and self.H.nnz < _DIRECT_NNZ:
            return np.asarray(self.H @ X, dtype=float)
        return self.linear.H_matmat(X)

    def Ht_matmat(self, V: np.ndarray) -> np.ndarray:
        """``Hᵀ V`` [ppm⁻¹ … per state unit]."""
        if scipy.sparse.issparse(self.H) and self.H.nnz < _DIRECT_NNZ:
            return np.asarray(self._Ht @ V, dtype=float)
        return self.linear.Ht_matmat(V)

    @cached_property
    def _Ht(self) -> scipy.sparse.csr_array:
        return scipy.sparse.csr_array(self.H.T)

    def jacobian(self, u: np.ndarray) -> Any:
        """``J = H diag(∂x/∂u)`` at u (n_obs, n_state), same kind as H."""
        return _scale_columns(self.H, self.jacobian_scale(u))

    def r_inv(self, V: np.ndarray) -> np.ndarray:
        """``R⁻¹ V`` (the operator's ``inv_matvec``, or a Cholesky of the dense R)."""
        if hasattr(self.R, "inv_matvec"):
            try:
                return np.asarray(self.R.inv_matvec(V), dtype=float)
            except TypeError:
                pass
        return scipy.linalg.cho_solve(self._r_factor, V, check_finite=False)

    @cached_property
    def _r_factor(self) -> tuple[np.ndarray, bool]:
        return scipy.linalg.cho_factor(covariance_dense(self.R), lower=True)

    def cost(
        self,
        u: np.ndarray,
        v: np.ndarray,
        u_prior: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> np.ndarray:
        """J at ``u = u_prior + B v`` with data y (defaults: the problem's), per column.

        Parameters
        ----------
        u, v : numpy.ndarray
            (n_state,) or (n_state, k).
        u_prior, y : numpy.ndarray, optional
            Prior means (n_state,) / (n_state, k) and data (n_obs,) / (n_obs, k).

        Returns
        -------
        numpy.ndarray
            () or (k,) costs [1].
        """
        u = np.asarray(u, dtype=float)
        col = (lambda a: a) if u.ndim == 1 else (lambda a: a if a.ndim == 2 else a[:, None])
        u0 = col(self.u_prior if u_prior is None else np.asarray(u_prior, dtype=float))
        yy = col(self.y if y is None else np.asarray(y, dtype=float))
        r = yy - self.forward(u)
        return 0.5 * (np.sum(v * (u - u0), axis=0) + np.sum(r * self.r_inv(r), axis=0))
