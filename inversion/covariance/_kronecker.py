"""Space-time prior covariance B = D (C_t ⊗ C_s) D and its convenience constructor."""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from inversion.covariance._base import CovarianceOperator, as_float_2d, check_finite_array
from inversion.covariance._correlation import CORRELATION_KINDS
from inversion.covariance._grid import RegularGridCorrelation
from inversion.covariance._kernels import (
    ar1_apply_numba,
    ar1_sqrt_numba,
    ar1_sqrt_t_numba,
    nonzero_slices_numba,
    pairs_to_state_numba,
)
from inversion.covariance._separable import SEPARABLE_KIND, SeparableGridCorrelation
from inversion.covariance._simple import (
    BlockDiagonalCovariance,
    DenseCovariance,
    DiagonalCovariance,
)
from inversion.covariance._temporal import TemporalCorrelation
from inversion.errors import NonFiniteError, ShapeMismatchError

__all__ = ["KroneckerCovariance", "kronecker_prior"]

#: Fraction of (time, column) slices holding data above which B is applied densely (C_t by
#: one BLAS product, then C_s on every slice) instead of by the fused per-slice kernel.
_DENSE_SLICES = 0.5
#: Spatial operators that take fields (m, ny, nx, k) and a scale written with the result.
_GRID_OPERATORS = (RegularGridCorrelation, SeparableGridCorrelation)
#: Columns per pass of the dense path: wider blocks cost more per column (measured 45 ms per
#: column up to 8 columns, 70 ms at 16, at the Bay Area size: the block leaves the cache).
_COLUMN_CHUNK = 8


def _check_std(std: ArrayLike, shape: tuple[int, ...], name: str = "std") -> np.ndarray:
    s = np.asarray(std, dtype=np.float64)
    try:
        s = np.broadcast_to(s, shape)
    except ValueError:
        raise ShapeMismatchError(
            f"{name} must broadcast to {shape}; found shape {s.shape}"
        ) from None
    check_finite_array(s, name)
    if np.any(s < 0):
        idx = tuple(int(i) for i in np.argwhere(s < 0)[0])
        raise NonFiniteError(
            f"{name} must be >= 0 (prior standard deviation); found {float(s[idx])!r} at index {idx}"
        )
    return s


class KroneckerCovariance(CovarianceOperator):
    """Separable space-time covariance B = D (C_t ⊗ C_s) D with D = diag(std).

    The state is ordered (time, space) in C order: index = t·ns + s. ``B @ X`` reshapes X to
    (nt, ns, k), multiplies by D, applies C_s to each (time, column) slice as one batch
    (FFT for :class:`RegularGridCorrelation`, recursions for
    :class:`SeparableGridCorrelation`) — **skipping slices that are all zero**, which
    makes columns of Hᵀ that touch only a few time steps cheap — then applies C_t along time
    and D again. Sparse (scipy.sparse) X is handled without densifying it. When most slices
    hold data, C_t goes first: by two O(nt) recursions fused with the D scaling when C_t is
    Markov (:attr:`TemporalCorrelation.markov_rho`: exponential kernel on equal steps), by
    one BLAS product otherwise.

    The square root is L = D (L_t ⊗ L_s), ``sqrt_dim`` = sqrt_dim_t · sqrt_dim_s, with the
    whitened vector ordered (time, space) in C order.

    Parameters
    ----------
    std : array_like
        Prior standard deviation [unit of the state], >= 0, broadcastable to (nt, ns) (or of
        shape (nt·ns,)). Zero entries make B semidefinite.
    spatial : CovarianceOperator
        Spatial correlation/covariance C_s (ns × ns).
    temporal : CovarianceOperator
        Temporal correlation/covariance C_t (nt × nt), small (used as a dense matrix).

    Raises
    ------
    ShapeMismatchError
        If ``std`` does not fit (nt, ns).
    NonFiniteError
        If ``std`` is negative or not finite.
    """

    def __init__(
        self, std: ArrayLike, spatial: CovarianceOperator, temporal: CovarianceOperator
    ) -> None:
        for name, op in (("spatial", spatial), ("temporal", temporal)):
            if not isinstance(op, CovarianceOperator):
                raise TypeError(
                    f"{name} must be a CovarianceOperator (e.g. RegularGridCorrelation, "
                    f"TemporalCorrelation, DenseCovariance); found {type(op).__name__}"
                )
        nt, ns = temporal.n, spatial.n
        s = np.asarray(std, dtype=np.float64)
        if s.ndim == 1 and s.size == nt * ns and nt != 1:
            s = s.reshape(nt, ns)
        self._std = np.ascontiguousarray(_check_std(s, (nt, ns)))
        self.spatial = spatial
        self.temporal = temporal
        self.nt, self.ns = nt, ns
        super().__init__(nt * ns)
        self._Ct = temporal.to_dense()
        self._Ct_is_identity = bool(np.array_equal(self._Ct, np.eye(nt)))
        self._Lt: np.ndarray | None = None
        rho = getattr(temporal, "markov_rho", None)
        #: r of a Markov C_t (C_t[i, j] = r^|i−j|): products by O(nt) recursions; else None.
        self.markov_rho: float | None = None if self._Ct_is_identity or rho is None else rho

    @property
    def std(self) -> np.ndarray:
        """Prior standard deviation, shape (nt, ns) (copy)."""
        return self._std.copy()

    @property
    def sqrt_dim(self) -> int:
        return self.temporal.sqrt_dim * self.spatial.sqrt_dim

    def with_precision(self, precision: str) -> KroneckerCovariance:
        spatial = self.spatial.with_precision(precision)
        if spatial is self.spatial:
            return self
        other = copy.copy(self)  # shares D, C_t and its square root
        other.spatial = spatial
        return other

    def diag(self) -> np.ndarray:
        return (self._std**2 * np.outer(np.diag(self._Ct), self.spatial.diag())).ravel()

    def restrict(
        self, t: tuple[int, int], y: tuple[int, int], x: tuple[int, int]
    ) -> KroneckerCovariance:
        """The principal submatrix of B for the box of cells ``t0 <= t < t1``, ``y0 <= y < y1``,
        ``x0 <= x < x1`` (half-open ranges of step and cell indices), as a B of its own: the
        same kernels on the box's grid and steps, the std of its cells. Its state is the box in
        (time, y, x) C order.

        Raises
        ------
        TypeError
            If C_s is not a regular-grid correlation (only they have a box).
        ValueError
            For an empty box or one outside the grid.
        """
        if not isinstance(self.spatial, _GRID_OPERATORS):
            raise TypeError(
                f"restrict needs a regular-grid C_s (RegularGridCorrelation or "
                f"SeparableGridCorrelation); found {type(self.spatial).__name__}"
            )
        ny, nx = self.spatial.grid_shape
        for name, (a, b), n in (("t", t, self.nt), ("y", y, ny), ("x", x, nx)):
            if not 0 <= a < b <= n:
                raise ValueError(f"restrict: {name} range [{a}, {b}) is empty or outside [0, {n})")
        ts = slice(*t)
        temporal = self.temporal
        if isinstance(temporal, TemporalCorrelation):
            sub_t: CovarianceOperator = TemporalCorrelation(
                temporal.tau_hours, times_hours=temporal.times_hours[ts], kind=temporal.kind
            )
        elif isinstance(temporal, DiagonalCovariance):
            sub_t = DiagonalCovariance(temporal.diag()[ts], name="temporal")
        else:
            sub_t = DenseCovariance(self._Ct[ts, ts], name="temporal")
        shape = (y[1] - y[0], x[1] - x[0])
        std = self._std.reshape(self.nt, ny, nx)[ts, y[0] : y[1], x[0] : x[1]]
        return KroneckerCovariance(
            std.reshape(t[1] - t[0], shape[0] * shape[1]), self.spatial.subgrid(shape), sub_t
        )

    # ------------------------------------------------------------------ matvec
    def _matmat(self, X) -> np.ndarray:
        if sp.issparse(X):
            return self._apply_sparse(X)
        return self._apply(as_float_2d(X))

    def _spatial_on_pairs(
        self, rows: np.ndarray, t_idx: np.ndarray, j_idx: np.ndarray, k: int
    ) -> np.ndarray:
        """C_s on the (already D-scaled) rows of (time, column) slices, then C_t and D: (n, k)."""
        if rows.shape[0] == 0:
            return np.zeros((self.nt * self.ns, k))
        fields = np.ascontiguousarray(self.spatial._apply_rows(rows))
        nt, ns = self.nt, self.ns
        out = np.empty((nt * ns, k))
        pairs_to_state_numba(
            fields,
            np.ascontiguousarray(t_idx, dtype=np.int64),
            np.ascontiguousarray(j_idx, dtype=np.int64),
            self._Ct,
            self._std,
            out,
        )
        return out

    def _apply(self, X: np.ndarray) -> np.ndarray:
        nt, ns = self.nt, self.ns
        k = X.shape[1]
        X3 = X.reshape(nt, ns, k)
        nonzero = nonzero_slices_numba(X3)  # (nt, k): slices that need C_s
        if nonzero.sum() > _DENSE_SLICES * nt * k:
            # most slices hold data (a Lanczos or CG vector): C_t first beats the per-slice
            # kernel, whose cost grows as nt² per column
            return self._apply_dense(X3)
        t_idx, j_idx = np.nonzero(nonzero)
        rows = X3[t_idx, :, j_idx] * self._std[t_idx]  # (m, ns)
        return self._spatial_on_pairs(rows, t_idx, j_idx, k)

    def _time_first(self, X3: np.ndarray) -> np.ndarray:
        """(C_t ⊗ I) D X for X (nt, ns, k): fused recursions (Markov C_t), or a BLAS product."""
        nt, ns, k = X3.shape
        if self.markov_rho is not None:
            Y = np.empty((nt, ns * k))
            ar1_apply_numba(X3.reshape(nt, ns * k), self._std, k, self.markov_rho, Y)
            return Y.reshape(nt, ns, k)
        Y = X3 * self._std[:, :, None]
        if not self._Ct_is_identity:
            Y = (self._Ct @ Y.reshape(nt, ns * k)).reshape(nt, ns, k)
        return Y

    def _apply_dense(self, X3: np.ndarray) -> np.ndarray:
        """:meth:`_apply_full` on blocks of at most ``_COLUMN_CHUNK`` columns."""
        nt, ns, k = X3.shape
        if k <= _COLUMN_CHUNK:
            return self._apply_full(X3)
        out = np.empty((nt * ns, k))
        for a in range(0, k, _COLUMN_CHUNK):
            cols = slice(a, min(a + _COLUMN_CHUNK, k))
            out[:, cols] = self._apply_full(X3[:, :, cols])
        return out

    def _apply_full(self, X3: np.ndarray) -> np.ndarray:
        """B X for X (nt, ns, k) with data in most slices: C_t first (it commutes with C_s
        in the Kronecker product), on the time-leading layout, so a single column needs no
        transposition at all and k columns two; the last D is applied as C_s writes."""
        nt, ns, k = X3.shape
        Y = self._time_first(np.ascontiguousarray(X3))
        grid = isinstance(self.spatial, _GRID_OPERATORS)
        if k == 1 and grid:
            out = self.spatial._apply_rows(Y.reshape(nt, ns), scale=self._std)
            return out.reshape(nt * ns, 1)
        if grid:
            ny, nx = self.spatial.grid_shape
            out = self.spatial._apply_fields(
                Y.reshape(nt, ny, nx, k), scale=self._std.reshape(nt, ny, nx)
            )
            return out.reshape(nt * ns, k)
        rows = np.ascontiguousarray(Y.transpose(0, 2, 1)).reshape(nt * k, ns)
        out = np.ascontiguousarray(
            self.spatial._apply_rows(rows).reshape(nt, k, ns).transpose(0, 2, 1)
        )
        out *= self._std[:, :, None]
        return out.reshape(nt * ns, k)

    def _apply_sparse(self, X) -> np.ndarray:
        coo = sp.coo_array(X.tocoo())
        if not (X.format in ("csr", "csc") and X.has_canonical_format):
            coo.sum_duplicates()  # canonical csr/csc hold no duplicate entries
        k = coo.shape[1]
        r, c, v = coo.coords[0], coo.coords[1], coo.data.astype(np.float64)
        keep = v != 0.0
        r, c, v = r[keep], c[keep], v[keep]
        t, s = np.divmod(r, self.ns)
        pair_id = np.full((self.nt, k), -1, dtype=np.intp)
        pair_id[t, c] = 0
        t_idx, j_idx = np.nonzero(pair_id == 0)  # (time, column) slices with non-zeros
        if t_idx.size > _DENSE_SLICES * self.nt * k:
            return self._apply_dense(
                np.asarray(X.toarray(), dtype=np.float64).reshape(self.nt, self.ns, k)
            )
        pair_id[t_idx, j_idx] = np.arange(t_idx.size)
        rows = np.zeros((t_idx.size, self.ns))
        rows[pair_id[t, c], s] = v * self._std[t, s]
        return self._spatial_on_pairs(rows, t_idx, j_idx, k)

    # ------------------------------------------------------------------ square root
    @property
    def temporal_sqrt(self) -> np.ndarray:
        """L_t (nt × sqrt_dim_t) with L_t L_tᵀ = C_t."""
        if self._Lt is None:
            self._Lt = self.temporal.sqrt_matvec(np.eye(self.temporal.sqrt_dim))
        return self._Lt

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        qt, qs = self.temporal.sqrt_dim, self.spatial.sqrt_dim
        nt, ns = self.nt, self.ns
        k = W.shape[1]
        rows = np.ascontiguousarray(W.reshape(qt, qs, k).transpose(0, 2, 1)).reshape(qt * k, qs)
        S = self.spatial._sqrt_apply_rows(rows).reshape(qt, k, ns).transpose(0, 2, 1)
        S = np.ascontiguousarray(S).reshape(qt, ns * k)
        if self.markov_rho is not None:  # qt = nt: L_t by one recursion, fused with D
            out = np.empty((nt, ns * k))
            ar1_sqrt_numba(S, self.markov_rho, self._std, k, out)
            return out.reshape(nt * ns, k)
        Y3 = (self.temporal_sqrt @ S).reshape(nt, ns, k)
        Y3 *= self._std[:, :, None]
        return Y3.reshape(nt * ns, k)

    def _sqrt_rapply(self, V: np.ndarray) -> np.ndarray:
        qt, qs = self.temporal.sqrt_dim, self.spatial.sqrt_dim
        nt, ns = self.nt, self.ns
        k = V.shape[1]
        if self.markov_rho is not None:  # L_tᵀ D by one recursion
            T = np.empty((nt, ns * k))
            V2 = np.ascontiguousarray(V).reshape(nt, ns * k)
            ar1_sqrt_t_numba(V2, self._std, k, self.markov_rho, T)
            T = T.reshape(qt, ns, k)
        else:
            V3 = V.reshape(nt, ns, k) * self._std[:, :, None]
            T = (self.temporal_sqrt.T @ V3.reshape(nt, ns * k)).reshape(qt, ns, k)
        rows = np.ascontiguousarray(T.transpose(0, 2, 1)).reshape(qt * k, ns)
        S = self.spatial._sqrt_rapply_rows(rows).reshape(qt, k, qs).transpose(0, 2, 1)
        return np.ascontiguousarray(S).reshape(qt * qs, k)

    def _to_dense(self) -> np.ndarray:
        d = self._std.ravel()
        return d[:, None] * np.kron(self._Ct, self.spatial._to_dense()) * d[None, :]


def kronecker_prior(
    std: ArrayLike,
    grid_shape: tuple[int, int],
    spacing_km: float | tuple[float, float],
    kind: str,
    length_km: float,
    nt: int,
    step_hours: float,
    tau_hours: float | None,
    n_sectors: int = 1,
) -> BlockDiagonalCovariance:
    """Prior covariance of a (sector, time, y, x) flux state on a regular projected grid.

    One :class:`KroneckerCovariance` per sector (no correlation between sectors), sharing one
    spatial correlation (:class:`RegularGridCorrelation`, or :class:`SeparableGridCorrelation`
    for ``kind="separable_exponential"``) and one :class:`TemporalCorrelation`; state order
    (sector, time, y, x) in C order.

    Parameters
    ----------
    std : array_like
        Prior standard deviation [µmol m-2 s-1], >= 0, broadcastable to
        (n_sectors, nt, ny, nx).
    grid_shape : (int, int)
        (ny, nx).
    spacing_km : float or (float, float)
        Cell size (dy, dx) [km].
    kind : {"exponential", "gaussian", "matern32", "separable_exponential"}
        Spatial correlation function; ``separable_exponential`` is exp(−(|Δy| + |Δx|)/L),
        applied in O(n) without FFT (not isotropic: see :class:`SeparableGridCorrelation`).
    length_km : float
        Spatial correlation length [km].
    nt : int
        Number of time steps.
    step_hours : float
        Time step [h].
    tau_hours : float or None
        Temporal correlation time [h] (exponential); None for uncorrelated time steps.
    n_sectors : int
        Number of sectors.

    Returns
    -------
    BlockDiagonalCovariance
        Of size n_sectors·nt·ny·nx.

    Raises
    ------
    ValueError
        For an unknown ``kind`` (the message lists the choices) or a bad length.
    ShapeMismatchError
        If ``n_sectors`` or ``nt`` is not a positive integer, or ``std`` does not fit.

    Examples
    --------
    >>> B = kronecker_prior(0.5, (4, 5), 1.0, "exponential", 3.0, nt=2, step_hours=24.0,
    ...                     tau_hours=48.0, n_sectors=2)
    >>> B.shape
    (80, 80)
    """
    if int(n_sectors) != n_sectors or n_sectors < 1:
        raise ShapeMismatchError(f"n_sectors must be a positive integer; found {n_sectors!r}")
    if kind != SEPARABLE_KIND and kind not in CORRELATION_KINDS:
        raise ValueError(
            f"kind={kind!r} is not a known spatial correlation; expected one of "
            f"{[*sorted(CORRELATION_KINDS), SEPARABLE_KIND]}"
        )
    spatial: RegularGridCorrelation | SeparableGridCorrelation
    if kind == SEPARABLE_KIND:
        spatial = SeparableGridCorrelation(grid_shape, spacing_km, length_km=length_km)
    else:
        spatial = RegularGridCorrelation(grid_shape, spacing_km, kind=kind, length_km=length_km)
    if tau_hours is None:
        if int(nt) != nt or nt < 1:
            raise ShapeMismatchError(f"nt must be a positive integer; found {nt!r}")
        temporal: CovarianceOperator = DiagonalCovariance(np.ones(int(nt)), name="temporal")
    else:
        temporal = TemporalCorrelation(tau_hours, nt=nt, step_hours=step_hours)
    ny, nx = spatial.grid_shape
    s = _check_std(std, (int(n_sectors), temporal.n, ny, nx))
    blocks = [
        KroneckerCovariance(s[i].reshape(temporal.n, ny * nx), spatial, temporal)
        for i in range(int(n_sectors))
    ]
    return BlockDiagonalCovariance(blocks)
