"""Diagonal, dense and block-diagonal covariance operators."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from numpy.typing import ArrayLike

from inversion.covariance._base import CovarianceOperator, as_float_2d, check_finite_array
from inversion.errors import (
    NonFiniteError,
    NonPositiveVarianceError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)

__all__ = ["BlockDiagonalCovariance", "DenseCovariance", "DiagonalCovariance"]


class DiagonalCovariance(CovarianceOperator):
    """Uncorrelated errors: C = diag(variances).

    Parameters
    ----------
    variances : array_like, shape (n,)
        Variances [unit²], finite and > 0.
    name : str
        Name used in error messages (e.g. ``"R"``).

    Raises
    ------
    ShapeMismatchError
        If ``variances`` is not 1-D or is empty.
    NonFiniteError
        If a variance is NaN, infinite or <= 0 (the message names the index and value).

    Examples
    --------
    >>> R = DiagonalCovariance([0.25, 1.0])
    >>> (R @ np.ones(2)).tolist()
    [0.25, 1.0]
    """

    def __init__(self, variances: ArrayLike, *, name: str = "variances") -> None:
        var = np.array(variances, dtype=np.float64)
        if var.ndim != 1 or var.size == 0:
            raise ShapeMismatchError(
                f"{name} must be a non-empty 1-D array of variances; found shape {var.shape}"
            )
        check_finite_array(var, name)
        bad = np.flatnonzero(var <= 0.0)
        if bad.size:
            i = int(bad[0])
            raise NonFiniteError(
                f"{name} must be > 0; found {float(var[i])!r} at index {i} ({bad.size} non-positive "
                "value(s)); give every element a positive uncertainty"
            )
        super().__init__(var.size)
        self._var = var
        self._std = np.sqrt(var)

    @classmethod
    def from_std(cls, std: ArrayLike, *, name: str = "std") -> DiagonalCovariance:
        """Build from standard deviations [unit] (finite, > 0)."""
        s = np.array(std, dtype=np.float64)
        if s.ndim == 1:
            check_finite_array(s, name)
            bad = np.flatnonzero(s <= 0.0)
            if bad.size:
                i = int(bad[0])
                raise NonFiniteError(f"{name} must be > 0; found {float(s[i])!r} at index {i}")
        return cls(s * s, name=name)

    def diag(self) -> np.ndarray:
        return self._var.copy()

    def _apply(self, X: np.ndarray) -> np.ndarray:
        return self._var[:, None] * X

    def _apply_rows(self, R: np.ndarray) -> np.ndarray:
        return R * self._var[None, :]

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        return self._std[:, None] * W

    _sqrt_rapply = _sqrt_apply

    def _inv_apply(self, V: np.ndarray) -> np.ndarray:
        return V / self._var[:, None]

    def _sqrt_apply_rows(self, W: np.ndarray) -> np.ndarray:
        return W * self._std[None, :]

    _sqrt_rapply_rows = _sqrt_apply_rows

    def _to_dense(self) -> np.ndarray:
        return np.diag(self._var)


class DenseCovariance(CovarianceOperator):
    """A covariance given as an explicit symmetric matrix.

    The square root is the lower Cholesky factor, computed on first use and cached.

    Parameters
    ----------
    matrix : array_like, shape (n, n)
        Covariance [unit²]; finite and symmetric to ``rtol`` (relative to max |entry|). It is
        copied and symmetrised, the input is not modified.
    name : str
        Name used in error messages (e.g. ``"R block of site XYZ"``).
    rtol : float
        Symmetry tolerance.

    Raises
    ------
    ShapeMismatchError
        If ``matrix`` is not square 2-D.
    NonFiniteError
        If it holds NaN or inf.
    ValueError
        If it is not symmetric.
    NonPositiveVarianceError
        If a diagonal entry is negative.
    NotPositiveDefiniteError
        In ``sqrt_matvec``/``sqrt_rmatvec``, if the Cholesky factorisation fails.
    """

    def __init__(self, matrix: ArrayLike, *, name: str = "matrix", rtol: float = 1e-10) -> None:
        A = np.array(matrix, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ShapeMismatchError(
                f"{name} must be a square (n, n) matrix with n >= 1; found shape {A.shape}"
            )
        check_finite_array(A, name)
        scale = float(np.max(np.abs(A)))
        asym = np.abs(A - A.T)
        worst = float(asym.max())
        if worst > rtol * scale:
            i, j = (int(k) for k in np.unravel_index(np.argmax(asym), asym.shape))
            raise ValueError(
                f"{name} must be symmetric (to rtol={rtol:g} of max |entry| {scale:g}); found "
                f"{name}[{i}, {j}]={float(A[i, j])!r} but {name}[{j}, {i}]={float(A[j, i])!r}; "
                f"use (M + M.T) / 2 if the asymmetry is rounding"
            )
        d = np.diag(A)
        if np.any(d < 0):
            i = int(np.flatnonzero(d < 0)[0])
            raise NonPositiveVarianceError(
                f"{name} is not a covariance: diagonal entry {name}[{i}, {i}]={float(d[i])!r} < 0"
            )
        super().__init__(A.shape[0])
        self._A = 0.5 * (A + A.T)
        self._name = name
        self._chol: np.ndarray | None = None

    @property
    def cholesky_factor(self) -> np.ndarray:
        """Lower Cholesky factor L (n, n) with L Lᵀ = C, computed once."""
        if self._chol is None:
            try:
                self._chol = scipy.linalg.cholesky(self._A, lower=True, check_finite=False)
            except np.linalg.LinAlgError as exc:
                raise NotPositiveDefiniteError(
                    f"{self._name} ({self.n} x {self.n}) is not positive definite: Cholesky "
                    f"factorisation failed ({exc}); check it for duplicated or perfectly "
                    "correlated elements, or add a small diagonal (nugget) term"
                ) from None
        return self._chol

    def diag(self) -> np.ndarray:
        return np.diag(self._A).copy()

    def _apply(self, X: np.ndarray) -> np.ndarray:
        return self._A @ X

    def _apply_rows(self, R: np.ndarray) -> np.ndarray:
        return R @ self._A  # A is symmetric

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        return self.cholesky_factor @ W

    def _sqrt_rapply(self, V: np.ndarray) -> np.ndarray:
        return self.cholesky_factor.T @ V

    def _inv_apply(self, V: np.ndarray) -> np.ndarray:
        return scipy.linalg.cho_solve((self.cholesky_factor, True), V, check_finite=False)

    def _sqrt_apply_rows(self, W: np.ndarray) -> np.ndarray:
        return W @ self.cholesky_factor.T

    def _sqrt_rapply_rows(self, V: np.ndarray) -> np.ndarray:
        return V @ self.cholesky_factor

    def _to_dense(self) -> np.ndarray:
        return self._A.copy()


class BlockDiagonalCovariance(CovarianceOperator):
    """Block-diagonal covariance, optionally with the blocks scattered by a permutation.

    With ``index=None`` the blocks sit on the diagonal in order. With ``index`` (a permutation
    of 0..n-1), element ``a`` of the concatenated block vector lives at position ``index[a]``
    of the full vector, i.e. C[index[a], index[b]] = blockdiag(blocks)[a, b]; this lets one block
    cover non-contiguous observations (e.g. the soundings of one satellite overpass in R).

    The square root composes: L = Pᵀ blockdiag(L_i), ``sqrt_dim`` = Σ sqrt_dim_i.

    Parameters
    ----------
    blocks : sequence of CovarianceOperator or (n_i, n_i) arrays
        The diagonal blocks; arrays are wrapped in :class:`DenseCovariance`.
    index : array_like of int, shape (n,), optional
        Position in the full vector of each element of the concatenated blocks.

    Raises
    ------
    ShapeMismatchError
        If ``blocks`` is empty or ``index`` has the wrong length.
    ValueError
        If ``index`` is not a permutation of 0..n-1.
    """

    def __init__(
        self,
        blocks: Sequence[CovarianceOperator | ArrayLike],
        index: ArrayLike | None = None,
    ) -> None:
        if len(blocks) == 0:
            raise ShapeMismatchError("blocks must hold at least one covariance block; found none")
        ops: list[CovarianceOperator] = []
        for k, b in enumerate(blocks):
            if isinstance(b, CovarianceOperator):
                ops.append(b)
            else:
                ops.append(DenseCovariance(b, name=f"blocks[{k}]"))
        sizes = np.array([b.n for b in ops], dtype=np.int64)
        n = int(sizes.sum())
        super().__init__(n)
        self.blocks: tuple[CovarianceOperator, ...] = tuple(ops)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)])
        self._index: np.ndarray | None = None
        if index is not None:
            idx = np.asarray(index)
            if idx.ndim != 1 or idx.size != n:
                raise ShapeMismatchError(
                    f"index must be 1-D with one entry per element of the blocks (n={n}); "
                    f"found shape {idx.shape}"
                )
            if not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"index must hold integers; found dtype {idx.dtype}")
            in_range = (idx >= 0) & (idx < n)
            counts = np.bincount(idx[in_range], minlength=n)
            if not in_range.all() or np.any(counts != 1):
                missing = np.flatnonzero(counts == 0)[:5].tolist()
                raise ValueError(
                    f"index must be a permutation of 0..{n - 1}; positions {missing} are not "
                    f"covered (or entries are repeated / out of range)"
                )
            self._index = idx.astype(np.intp)

    @property
    def sqrt_dim(self) -> int:
        return int(sum(b.sqrt_dim for b in self.blocks))

    def with_precision(self, precision: str) -> BlockDiagonalCovariance:
        blocks = tuple(b.with_precision(precision) for b in self.blocks)
        if all(a is b for a, b in zip(blocks, self.blocks, strict=True)):
            return self
        other = copy.copy(self)
        other.blocks = blocks
        return other

    @property
    def index(self) -> np.ndarray | None:
        """The permutation (copy), or None when blocks are contiguous."""
        return None if self._index is None else self._index.copy()

    # gather / scatter between full order and block order
    def _to_blocks(self, X: np.ndarray) -> np.ndarray:
        return X if self._index is None else X[self._index]

    def _from_blocks(self, Y: np.ndarray) -> np.ndarray:
        if self._index is None:
            return Y
        out = np.empty_like(Y)
        out[self._index] = Y
        return out

    def diag(self) -> np.ndarray:
        return self._from_blocks(np.concatenate([b.diag() for b in self.blocks]))

    def _matmat(self, X) -> np.ndarray:
        if not sp.issparse(X):
            return self._apply(as_float_2d(X))
        # keep sparse columns sparse so that blocks (e.g. KroneckerCovariance) can exploit them
        if len(self.blocks) == 1 and self._index is None:
            return self.blocks[0]._matmat(X)
        Z = sp.csr_array(X)
        if self._index is not None:
            Z = Z[self._index]
        o = self._offsets
        Y = np.empty((self.n, X.shape[1]))
        for k, b in enumerate(self.blocks):
            Y[o[k] : o[k + 1]] = b._matmat(Z[o[k] : o[k + 1]])
        return self._from_blocks(Y)

    def _apply(self, X: np.ndarray) -> np.ndarray:
        if len(self.blocks) == 1 and self._index is None:  # no copies for one block
            return self.blocks[0]._apply(X)
        Z = self._to_blocks(X)
        o = self._offsets
        Y = np.empty((self.n, X.shape[1]))
        for k, b in enumerate(self.blocks):
            Y[o[k] : o[k + 1]] = b._apply(np.ascontiguousarray(Z[o[k] : o[k + 1]]))
        return self._from_blocks(Y)

    def _inv_apply(self, V: np.ndarray) -> np.ndarray:
        if len(self.blocks) == 1 and self._index is None:  # no copies for one block
            return self.blocks[0]._inv_apply(V)
        Z = self._to_blocks(V)
        o = self._offsets
        Y = np.empty((self.n, V.shape[1]))
        for k, b in enumerate(self.blocks):
            Y[o[k] : o[k + 1]] = b._inv_apply(np.ascontiguousarray(Z[o[k] : o[k + 1]]))
        return self._from_blocks(Y)

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        if len(self.blocks) == 1 and self._index is None:  # no copies for one block
            return self.blocks[0]._sqrt_apply(W)
        q = np.concatenate([[0], np.cumsum([b.sqrt_dim for b in self.blocks])])
        o = self._offsets
        Y = np.empty((self.n, W.shape[1]))
        for k, b in enumerate(self.blocks):
            Y[o[k] : o[k + 1]] = b._sqrt_apply(np.ascontiguousarray(W[q[k] : q[k + 1]]))
        return self._from_blocks(Y)

    def _sqrt_rapply(self, V: np.ndarray) -> np.ndarray:
        if len(self.blocks) == 1 and self._index is None:  # no copies for one block
            return self.blocks[0]._sqrt_rapply(V)
        q = np.concatenate([[0], np.cumsum([b.sqrt_dim for b in self.blocks])])
        o = self._offsets
        Z = self._to_blocks(V)
        out = np.empty((int(q[-1]), V.shape[1]))
        for k, b in enumerate(self.blocks):
            out[q[k] : q[k + 1]] = b._sqrt_rapply(np.ascontiguousarray(Z[o[k] : o[k + 1]]))
        return out

    def _to_dense(self) -> np.ndarray:
        M = np.zeros((self.n, self.n))
        o = self._offsets
        for k, b in enumerate(self.blocks):
            M[o[k] : o[k + 1], o[k] : o[k + 1]] = b._to_dense()
        if self._index is not None:
            out = np.empty_like(M)
            out[np.ix_(self._index, self._index)] = M
            M = out
        return M
