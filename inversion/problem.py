"""The linear-Gaussian inversion problem ``y = H x + e`` and the checks made on its inputs.

A :class:`LinearProblem` holds the observation operator ``H``, the prior mean ``x_a``, the
observations ``y`` and the two covariances ``B`` (prior error) and ``R`` (observation error).
All checks are made once, at construction, before any solver does work: shapes, non-finite
values and non-positive variances raise errors that name the argument, the expected value,
the found value and the first bad index.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.sparse.linalg import LinearOperator

from inversion._sparse import spmm_from_transpose, spmm_threaded
from inversion.covariance import CovarianceOperator, DenseCovariance
from inversion.errors import (
    NonFiniteError,
    NonPositiveVarianceError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)

__all__ = ["LinearProblem", "as_covariance"]

logger = logging.getLogger(__name__)

# Column block of the sparse H @ dense G products (cache-friendly width).
# Relative tolerance for the symmetry check of dense covariance matrices.
_SYMMETRY_RTOL = 1e-8


def as_covariance(cov: Any, name: str) -> LinearOperator:
    """Return ``cov`` as a covariance operator (numpy arrays are wrapped).

    Parameters
    ----------
    cov : numpy.ndarray or scipy.sparse.linalg.LinearOperator
        Dense covariance matrix, or an operator (ideally with ``diag()`` and ``to_dense()``).
    name : str
        Argument name used in error messages ("B" or "R").

    Returns
    -------
    scipy.sparse.linalg.LinearOperator
        The operator, float64.

    Raises
    ------
    ShapeMismatchError
        If a dense ``cov`` is not a square 2-D array.
    NonFiniteError
        If a dense ``cov`` holds NaN or infinite values.
    NotPositiveDefiniteError
        If a dense ``cov`` is not symmetric.
    """
    if isinstance(cov, LinearOperator):
        return cov
    if scipy.sparse.issparse(cov):
        cov = cov.toarray()
    arr = np.asarray(cov, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ShapeMismatchError(
            f"{name} must be a square 2-D covariance matrix or a covariance operator; "
            f"found an array of shape {arr.shape}"
        )
    _check_finite_array(arr, name)
    scale = np.max(np.abs(arr)) if arr.size else 0.0
    asym = np.max(np.abs(arr - arr.T)) if arr.size else 0.0
    if asym > _SYMMETRY_RTOL * scale:
        i, j = np.unravel_index(np.argmax(np.abs(arr - arr.T)), arr.shape)
        raise NotPositiveDefiniteError(
            f"{name} must be symmetric; found {name}[{i}, {j}]={float(arr[i, j])!r} but "
            f"{name}[{j}, {i}]={float(arr[j, i])!r}; symmetrise it with ({name} + {name}.T) / 2"
        )
    _check_variances(np.diag(arr), name)
    return DenseCovariance(arr, name=name, rtol=_SYMMETRY_RTOL)


def covariance_diag(cov: LinearOperator) -> np.ndarray:
    """Variances of a covariance operator: ``cov.diag()`` if it has one, else its dense diagonal."""
    if hasattr(cov, "diag"):
        return np.asarray(cov.diag(), dtype=np.float64).ravel()
    return np.diag(covariance_dense(cov)).copy()


def covariance_dense(cov: LinearOperator) -> np.ndarray:
    """Dense matrix of a covariance operator (``to_dense()`` if it has one, else ``cov @ I``)."""
    if hasattr(cov, "to_dense"):
        try:  # covariance operators refuse large sizes unless max_size is raised
            dense = cov.to_dense(max_size=cov.shape[0])
        except TypeError:
            dense = cov.to_dense()
        if scipy.sparse.issparse(dense):
            dense = dense.toarray()
        return np.array(dense, dtype=np.float64)
    return np.asarray(cov.matmat(np.eye(cov.shape[1])), dtype=np.float64)


def _first_bad_index(bad: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))


def _fmt_index(idx: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in idx)


def _check_finite_array(arr: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = _first_bad_index(bad)
        raise NonFiniteError(
            f"{name} holds {int(bad.sum())} non-finite value(s); the first is "
            f"{name}[{_fmt_index(idx)}]={float(arr[idx])!r}; remove or fill them before the inversion"
        )


def _check_sparse_finite(mat: scipy.sparse.csr_array, name: str) -> None:
    bad = ~np.isfinite(mat.data)
    if bad.any():
        k = int(np.argmax(bad))
        row = int(np.searchsorted(mat.indptr, k, side="right") - 1)
        col = int(mat.indices[k])
        raise NonFiniteError(
            f"{name} holds {int(bad.sum())} non-finite stored value(s); the first is "
            f"{name}[{row}, {col}]={float(mat.data[k])!r}; remove or fill them before the inversion"
        )


def _check_variances(var: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(var)
    if bad.any():
        i = int(np.argmax(bad))
        raise NonFiniteError(
            f"{name} has non-finite variance(s) on its diagonal; the first is {name}[{i}, {i}]="
            f"{float(var[i])!r}; every variance must be a finite positive number"
        )
    bad = var <= 0
    if bad.any():
        i = int(np.argmax(bad))
        raise NonPositiveVarianceError(
            f"{name} has {int(bad.sum())} non-positive variance(s) on its diagonal; the first is "
            f"{name}[{i}, {i}]={float(var[i])!r}; every variance must be > 0 (a zero error is not "
            f"allowed: give it a small positive floor)"
        )


def _as_vector(value: Any, name: str, size_hint: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise ShapeMismatchError(
            f"{name} must be a 1-D vector of shape ({size_hint},); found shape {arr.shape}"
        )
    _check_finite_array(arr, name)
    return arr


def _as_operator_h(H: Any) -> np.ndarray | scipy.sparse.csr_array | LinearOperator:
    if isinstance(H, LinearOperator):
        return H
    if scipy.sparse.issparse(H):
        H = scipy.sparse.csr_array(H, dtype=np.float64)
        H.sum_duplicates()
        _check_sparse_finite(H, "H")
        return H
    arr = np.asarray(H, dtype=np.float64)
    if arr.ndim != 2:
        raise ShapeMismatchError(
            f"H must be a 2-D (n_obs, n_state) matrix or operator; found shape {arr.shape}"
        )
    _check_finite_array(arr, "H")
    return arr


@dataclass(frozen=True, eq=False, repr=False)
class LinearProblem:
    """A linear-Gaussian inversion problem ``y = H x + e``, ``x ~ N(x_prior, B)``, ``e ~ N(0, R)``.

    Parameters
    ----------
    H : numpy.ndarray, scipy.sparse array or matrix, or scipy.sparse.linalg.LinearOperator
        Observation operator (n_obs, n_state) [ppm per state unit]. Sparse input is held as
        ``scipy.sparse.csr_array``. Entries of a ``LinearOperator`` cannot be checked here;
        the solvers check their outputs instead.
    x_prior : numpy.ndarray
        Prior mean (n_state,) [state units, e.g. µmol m-2 s-1].
    y : numpy.ndarray
        Observations (n_obs,) [ppm], background already removed.
    B : numpy.ndarray or scipy.sparse.linalg.LinearOperator
        Prior error covariance (n_state, n_state) [state units²]; a dense matrix or a
        covariance operator (``diag()``, ``to_dense()``).
    R : numpy.ndarray or scipy.sparse.linalg.LinearOperator
        Observation error covariance (n_obs, n_obs) [ppm²].

    Raises
    ------
    ShapeMismatchError
        If an argument does not have the shape implied by ``x_prior`` (n_state) and ``y``
        (n_obs); the message names the argument, the expected and the found shape.
    NonFiniteError
        If ``H`` (dense entries or sparse stored values), ``x_prior``, ``y``, dense ``B``/``R``
        or the variances of ``B``/``R`` hold NaN or infinity; the message names the first bad
        index.
    NonPositiveVarianceError
        If a variance (diagonal of ``B`` or ``R``) is zero or negative.
    NotPositiveDefiniteError
        If a dense ``B`` or ``R`` is not symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> p = LinearProblem(H=np.ones((1, 2)), x_prior=np.zeros(2), y=np.ones(1),
    ...                   B=np.eye(2), R=np.eye(1))
    >>> p.n_state, p.n_obs
    (2, 1)
    """

    H: Any
    x_prior: np.ndarray
    y: np.ndarray
    B: Any
    R: Any
    B_diag: np.ndarray = field(init=False, repr=False)
    R_diag: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        x_prior = _as_vector(self.x_prior, "x_prior", "n_state")
        y = _as_vector(self.y, "y", "n_obs")
        n_state, n_obs = x_prior.size, y.size
        if n_state == 0 or n_obs == 0:
            raise ShapeMismatchError(
                f"the problem needs at least one state element and one observation; found "
                f"x_prior of shape {x_prior.shape} and y of shape {y.shape}"
            )
        H = _as_operator_h(self.H)
        if tuple(H.shape) != (n_obs, n_state):
            raise ShapeMismatchError(
                f"H must have shape (n_obs, n_state)=({n_obs}, {n_state}) to match y and x_prior; "
                f"found shape {tuple(H.shape)}"
            )
        B = as_covariance(self.B, "B")
        R = as_covariance(self.R, "R")
        for name, cov, n in (("B", B, n_state), ("R", R, n_obs)):
            if tuple(cov.shape) != (n, n):
                what = "n_state" if name == "B" else "n_obs"
                raise ShapeMismatchError(
                    f"{name} must have shape ({what}, {what})=({n}, {n}); found shape "
                    f"{tuple(cov.shape)}"
                )
        B_diag = covariance_diag(B)
        R_diag = covariance_diag(R)
        _check_variances(B_diag, "B")
        _check_variances(R_diag, "R")
        for name, value in (
            ("H", H),
            ("x_prior", x_prior),
            ("y", y),
            ("B", B),
            ("R", R),
            ("B_diag", B_diag),
            ("R_diag", R_diag),
        ):
            object.__setattr__(self, name, value)
        logger.debug("LinearProblem: n_state=%d, n_obs=%d, H is %s", n_state, n_obs, type(H))

    def __repr__(self) -> str:
        return (
            f"LinearProblem(n_state={self.n_state}, n_obs={self.n_obs}, "
            f"H={type(self.H).__name__}, B={type(self.B).__name__}, R={type(self.R).__name__})"
        )

    @property
    def n_state(self) -> int:
        """Number of state elements."""
        return int(self.x_prior.size)

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return int(self.y.size)

    def H_matmat(self, X: np.ndarray) -> np.ndarray:
        """``H @ X`` for a dense (n_state, k) or (n_state,) array, as a numpy array."""
        if isinstance(self.H, LinearOperator):
            out = self.H.matmat(X) if X.ndim == 2 else self.H.matvec(X)
        elif (
            X.ndim == 2
            and X.shape[1] >= 2
            and scipy.sparse.issparse(self.H)
            and ("_Ht_csr" in self.__dict__)
        ):
            # Hᵀ is at hand (built by the first Hᵀ product): stream X in order into small
            # (n_obs, k) accumulators instead of gathering rows of X at random (one column
            # stays with the rows of H, which touch only the columns H has: faster where
            # H is small)
            out = spmm_from_transpose(self._Ht_csr, X)
        elif X.ndim == 2 and X.shape[1] >= 4 and scipy.sparse.issparse(self.H):
            # threaded tiles pay off from a few columns on (measured 1.6x at k = 5)
            out = spmm_threaded(self.H, self.n_obs, np.asarray(X, dtype=np.float64))
        else:
            out = self.H @ X
        return np.asarray(out, dtype=np.float64)

    def Ht_matmat(self, V: np.ndarray) -> np.ndarray:
        """``Hᵀ @ V`` for a dense (n_obs, k) or (n_obs,) array, as a numpy array."""
        if isinstance(self.H, LinearOperator):
            out = self.H.rmatmat(V) if V.ndim == 2 else self.H.rmatvec(V)
        elif scipy.sparse.issparse(self.H):
            out = self._Ht_csr @ V
        else:
            out = self.H.T @ V
        return np.asarray(out, dtype=np.float64)

    @cached_property
    def _Ht_csr(self) -> scipy.sparse.csr_array:
        """``Hᵀ`` as its own CSR (built on first use; as much memory as H): ``Hᵀ V`` then
        gathers from the small V instead of scattering into the large output, 2–4× faster."""
        return self.H.T.tocsr()

    def Ht_columns(self, rows: slice) -> np.ndarray:
        """Dense ``Hᵀ[:, rows]`` (n_state, k) float64, C-contiguous, for a slice of observations."""
        if isinstance(self.H, LinearOperator):
            start, stop, _ = rows.indices(self.n_obs)
            E = np.zeros((self.n_obs, stop - start))
            E[np.arange(start, stop), np.arange(stop - start)] = 1.0
            return np.ascontiguousarray(self.H.rmatmat(E), dtype=np.float64)
        if scipy.sparse.issparse(self.H):
            sub = self.H[rows]  # csr, duplicates summed at construction
            out = np.zeros((self.n_state, sub.shape[0]))
            out[sub.indices, np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))] = sub.data
            return out
        return np.ascontiguousarray(self.H[rows].T)

    def H_rows_matmat(self, stop: int, X: np.ndarray) -> np.ndarray:
        """``H[:stop] @ X`` for a dense (n_state, k) array: the first ``stop`` observations."""
        if isinstance(self.H, LinearOperator):
            return np.asarray(self.H.matmat(X), dtype=np.float64)[:stop]
        if not scipy.sparse.issparse(self.H):
            return self.H[:stop] @ X
        # sparse @ dense is memory-bound: blocks of 64 columns keep X's rows in cache, and the
        # (row part, column block) tiles run on a thread pool (scipy's kernel releases the GIL;
        # measured 2.0x on 2 cores for a 2,000 x 20,000 footprint H)
        return spmm_threaded(self.H, stop, X)

    def B_matmat(self, X: np.ndarray) -> np.ndarray:
        """``B @ X`` for a dense (n_state, k) or (n_state,) array, as a numpy array."""
        out = self.B.matmat(X) if X.ndim == 2 else self.B.matvec(X)
        return np.asarray(out, dtype=np.float64)

    def H_dense(self) -> np.ndarray:
        """``H`` as a dense (n_obs, n_state) array (small problems only)."""
        if isinstance(self.H, LinearOperator):
            return np.asarray(self.H.matmat(np.eye(self.n_state)), dtype=np.float64)
        if scipy.sparse.issparse(self.H):
            return self.H.toarray()
        return self.H

    def innovation(self) -> np.ndarray:
        """``d = y − H x_prior`` (n_obs,) [ppm]."""
        d = self.y - self.H_matmat(self.x_prior)
        _check_output(d, "innovation y - H x_prior")
        return d


def _check_output(arr: np.ndarray, what: str) -> None:
    """Raise NonFiniteError if a computed array holds NaN or infinity (never return NaN)."""
    if not np.all(np.isfinite(arr)):
        bad = ~np.isfinite(arr)
        raise NonFiniteError(
            f"{what} holds {int(bad.sum())} non-finite value(s) (first at index "
            f"[{_fmt_index(_first_bad_index(bad))}]); check H, B and R for overflow or NaN inside operators"
        )


def cho_factor_checked(
    S: np.ndarray, name: str = "S = H B Hᵀ + R", lower: bool = True
) -> tuple[np.ndarray, bool]:
    """Cholesky factor ``(c, lower)`` of a symmetric matrix, reading only the ``lower`` (or
    upper) triangle; NotPositiveDefiniteError when it is not positive definite."""
    try:
        return scipy.linalg.cho_factor(S, lower=lower, overwrite_a=True, check_finite=True)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError) as exc:
        raise NotPositiveDefiniteError(
            f"the innovation covariance {name} (shape {S.shape}) is not positive definite "
            f"({exc}); check that R and B are symmetric positive definite (e.g. correlation "
            f"matrices valid for their distances, variances > 0)"
        ) from exc
    except ValueError as exc:
        raise NonFiniteError(
            f"the innovation covariance {name} holds non-finite values ({exc}); check H, B and R"
        ) from exc


def gain_columns(problem: LinearProblem, rows: slice) -> np.ndarray:
    """``B Hᵀ[:, rows]`` (n_state, k): the gain columns of observations ``rows``.

    With a sparse H and a covariance operator B, Hᵀ is passed sparse so that B skips the
    time slices no footprint touches.
    """
    if scipy.sparse.issparse(problem.H) and _accepts_sparse(problem.B):
        Ht = problem.H[rows].T.tocsr()  # (n_state, k) sparse: B skips the zero slices
        G_c = np.asarray(problem.B.matmat(Ht), dtype=np.float64)
    else:
        G_c = problem.B_matmat(problem.Ht_columns(rows))
    _check_output(G_c, f"B Hᵀ for observations {rows.start}:{rows.stop}")
    return G_c


def iter_gain_chunks(problem: LinearProblem, chunk_size: int):
    """Yield ``(rows, G_c)`` with ``G_c = B Hᵀ[:, rows]`` (n_state, k) for chunks of observations.

    Only one chunk of ``G = B Hᵀ`` is alive at a time: memory is ``2 · n_state · chunk_size · 8``
    bytes plus what the ``B`` operator needs for its product.
    """
    for start in range(0, problem.n_obs, chunk_size):
        rows = slice(start, min(start + chunk_size, problem.n_obs))
        yield rows, gain_columns(problem, rows)


def add_hbht_upper(problem: LinearProblem, chunk_size: int, out: np.ndarray) -> int:
    """Add ``H B Hᵀ`` to the upper triangle of ``out`` (n_obs, n_obs), in place.

    One chunk of gain columns ``B Hᵀ[:, rows]`` at a time, multiplied by the first
    ``rows.stop`` rows of H only (the lower triangle is left as it was). Progress is logged
    every ten chunks. Returns the number of chunks.
    """
    t0 = time.perf_counter()
    n = 0
    for rows, G_c in iter_gain_chunks(problem, chunk_size):
        out[: rows.stop, rows] += problem.H_rows_matmat(rows.stop, G_c)
        n += 1
        if n % 10 == 0:
            logger.info(
                "H B Hᵀ: columns %d/%d (%.0f s)", rows.stop, problem.n_obs, time.perf_counter() - t0
            )
    return n


def _accepts_sparse(op: LinearOperator) -> bool:
    """Whether ``op @ X`` takes a scipy.sparse X (the covariance operators of this package do)."""
    return isinstance(op, CovarianceOperator)
