"""Base class shared by every covariance operator."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy.sparse.linalg import LinearOperator

from inversion.errors import NonFiniteError, ShapeMismatchError

__all__ = ["MAX_DENSE_SIZE", "CovarianceOperator"]

#: Largest n for which ``to_dense`` builds an (n, n) matrix unless ``max_size`` is raised.
MAX_DENSE_SIZE = 20_000


def as_float_2d(X: ArrayLike) -> np.ndarray:
    """Return ``X`` (ndarray, sparse or matrix) as a 2-D float64 ndarray (no copy if possible)."""
    if sp.issparse(X):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    return X


def check_finite_array(a: np.ndarray, name: str) -> None:
    """Raise NonFiniteError naming the first non-finite entry of ``a``."""
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = idx[0] if len(idx) == 1 else idx
        raise NonFiniteError(
            f"{name} must be finite; found {float(a[idx])!r} at index {where} "
            f"({int(bad.sum())} non-finite value(s) in total); fill or drop them first"
        )


def check_dense_size(n: int, max_size: int, what: str) -> None:
    """Refuse to build an (n, n) matrix above ``max_size``."""
    if n > max_size:
        gib = n * n * 8 / 2**30
        raise ValueError(
            f"{what}: refusing to build a dense {n} x {n} matrix ({gib:.1f} GiB) because "
            f"n={n} > max_size={max_size}; pass max_size={n} to override, or use the operator "
            "(matvec, diag, sqrt_matvec) instead"
        )


class CovarianceOperator(LinearOperator):
    """A symmetric positive (semi)definite covariance as a ``scipy.sparse.linalg.LinearOperator``.

    ``C @ v`` (shape (n,)) and ``C @ V`` (shape (n, k), ndarray or scipy.sparse) work as for any
    linear operator; the result is always a dense float64 ndarray. Besides, every operator has

    - ``diag()`` : the variances, shape (n,);
    - ``to_dense(max_size=MAX_DENSE_SIZE)`` : the explicit (n, n) matrix, small sizes only;
    - ``sqrt_dim`` and ``sqrt_matvec(w)`` = L w with L Lᵀ = C, L of shape (n, sqrt_dim), and
      ``sqrt_rmatvec(v)`` = Lᵀ v, used by the whitened solvers (x = x_a + L χ).

    Subclasses implement ``_apply(X)`` (C X for a float64 (n, k) array) and, for the square root,
    ``_sqrt_apply(W)`` and ``_sqrt_rapply(V)``; row-batched variants ``_apply_rows`` etc. default to
    transposes and are overridden where the row layout is faster (FFT).
    """

    def __init__(self, n: int) -> None:
        super().__init__(dtype=np.float64, shape=(int(n), int(n)))

    # ------------------------------------------------------------------ sizes
    @property
    def n(self) -> int:
        """Size of the covariance (length of the state / observation vector)."""
        return int(self.shape[0])

    @property
    def sqrt_dim(self) -> int:
        """Length of the whitened vector w in ``sqrt_matvec(w)`` (n unless stated)."""
        return self.n

    # ------------------------------------------------------------------ public extras
    def diag(self) -> np.ndarray:
        """Diagonal (variances) of the covariance, shape (n,)."""
        raise NotImplementedError

    def to_dense(self, max_size: int = MAX_DENSE_SIZE) -> np.ndarray:
        """Explicit (n, n) matrix; raises ValueError when n > ``max_size``."""
        check_dense_size(self.n, max_size, type(self).__name__)
        return self._to_dense()

    def sqrt_matvec(self, w: ArrayLike) -> np.ndarray:
        """L w with L Lᵀ = C; ``w`` of shape (sqrt_dim,) or (sqrt_dim, k)."""
        W, one_d = self._check_input(w, self.sqrt_dim, "w", "sqrt_dim")
        out = self._sqrt_apply(W)
        return out[:, 0] if one_d else out

    def inv_matvec(self, v: ArrayLike) -> np.ndarray:
        """C⁻¹ v for ``v`` of shape (n,) or (n, k) (used by the whitened CG solver for R).

        Implemented by :class:`DiagonalCovariance`, :class:`DenseCovariance` (Cholesky) and
        :class:`BlockDiagonalCovariance` (block by block); other operators raise TypeError.
        """
        V, one_d = self._check_input(v, self.n, "v", "n")
        out = self._inv_apply(V)
        return out[:, 0] if one_d else out

    def _inv_apply(self, V: np.ndarray) -> np.ndarray:
        """C⁻¹ V for V of shape (n, k)."""
        raise TypeError(
            f"{type(self).__name__} has no inverse product (inv_matvec); the 'cg' solver needs "
            "R⁻¹ v: give R as a DiagonalCovariance, DenseCovariance or BlockDiagonalCovariance "
            "of those, or use method='obs-space'"
        )

    def sqrt_rmatvec(self, v: ArrayLike) -> np.ndarray:
        """Lᵀ v; ``v`` of shape (n,) or (n, k); returns shape (sqrt_dim,) or (sqrt_dim, k)."""
        V, one_d = self._check_input(v, self.n, "v", "n")
        out = self._sqrt_rapply(V)
        return out[:, 0] if one_d else out

    def with_precision(self, precision: str) -> CovarianceOperator:
        """This operator with its spectral (FFT) products in ``precision``.

        ``"double"`` (default, exact to rounding) or ``"single"``: FFT-based operators
        (:class:`RegularGridCorrelation` and the operators built on it) then transform in
        float32, about twice as fast with a relative error of about 1e-7; operators without
        FFTs return themselves. Results are float64 arrays either way.
        """
        if precision not in ("double", "single"):
            raise ValueError(f"precision must be 'double' or 'single'; found {precision!r}")
        return self

    # ------------------------------------------------------------------ LinearOperator hooks
    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self._apply(as_float_2d(np.ravel(x)))[:, 0]

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._apply(as_float_2d(X))

    _rmatvec = _matvec
    _rmatmat = _matmat

    def _adjoint(self) -> CovarianceOperator:
        return self

    def _transpose(self) -> CovarianceOperator:
        return self

    def dot(self, x):
        """As ``LinearOperator.dot``; a sparse (n, 1) column is densified first."""
        if sp.issparse(x) and x.ndim == 2 and x.shape[1] == 1:
            x = x.toarray()
        return super().dot(x)

    # ------------------------------------------------------------------ to implement
    def _apply(self, X: np.ndarray) -> np.ndarray:
        """C X for a float64 array of shape (n, k)."""
        return np.ascontiguousarray(self._apply_rows(np.ascontiguousarray(X.T)).T)

    def _apply_rows(self, R: np.ndarray) -> np.ndarray:
        """(C Rᵀ)ᵀ for rows R of shape (m, n)."""
        return np.ascontiguousarray(self._apply(np.ascontiguousarray(R.T)).T)

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        """L W for W of shape (sqrt_dim, k)."""
        return np.ascontiguousarray(self._sqrt_apply_rows(np.ascontiguousarray(W.T)).T)

    def _sqrt_apply_rows(self, W: np.ndarray) -> np.ndarray:
        """(L Wᵀ)ᵀ for rows W of shape (m, sqrt_dim)."""
        return np.ascontiguousarray(self._sqrt_apply(np.ascontiguousarray(W.T)).T)

    def _sqrt_rapply(self, V: np.ndarray) -> np.ndarray:
        """Lᵀ V for V of shape (n, k)."""
        return np.ascontiguousarray(self._sqrt_rapply_rows(np.ascontiguousarray(V.T)).T)

    def _sqrt_rapply_rows(self, V: np.ndarray) -> np.ndarray:
        """(Lᵀ Vᵀ)ᵀ for rows V of shape (m, n)."""
        return np.ascontiguousarray(self._sqrt_rapply(np.ascontiguousarray(V.T)).T)

    def _to_dense(self) -> np.ndarray:
        return self._apply(np.eye(self.n))

    # ------------------------------------------------------------------ helpers
    def _check_input(
        self, a: ArrayLike, size: int, name: str, size_name: str
    ) -> tuple[np.ndarray, bool]:
        arr = as_float_2d(a) if sp.issparse(a) else np.asarray(a, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[0] != size:
            raise ShapeMismatchError(
                f"{type(self).__name__}: {name} must have shape ({size_name},) or "
                f"({size_name}, k) with {size_name}={size}; found shape {arr.shape}"
            )
        one_d = arr.ndim == 1
        return (arr[:, None] if one_d else arr), one_d

    def __repr__(self) -> str:
        return f"<{type(self).__name__} n={self.n}>"
