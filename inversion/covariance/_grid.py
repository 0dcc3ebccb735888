"""Spatial correlation on a regular projected grid by FFT circulant embedding."""

from __future__ import annotations

import copy
import logging
import math
import os

import numpy as np
import scipy.fft

from inversion.covariance._base import CovarianceOperator
from inversion.covariance._correlation import check_kind, check_length, correlation_function
from inversion.errors import NonFiniteError, NotPositiveDefiniteError, ShapeMismatchError

__all__ = ["RegularGridCorrelation"]

logger = logging.getLogger(__name__)

#: Relative tolerance on negative eigenvalues of the embedding (clipped to 0 below it).
EMBEDDING_NEG_TOL = 1e-10
#: Upper bound on the number of torus cells handled by one batched FFT call (fields are
#: transformed many per call: the FFT library vectorises and threads across them).
_FFT_BATCH_CELLS = 1 << 20
#: Spectral precisions: "double" (complex128, exact to rounding) or "single" (complex64).
PRECISIONS = ("double", "single")
#: Measured bound on the relative 2-norm error ‖C̃x − Cx‖/‖Cx‖ of the single-precision
#: product (benchmarks/b_floor.py measures it on every run; about 1e-7 for grids up to 10⁶
#: torus cells). Solvers use single precision only for products whose own tolerance is at
#: least 100 times this.
SINGLE_PRECISION_RTOL = 1e-6


def fft_workers(n_transforms: int) -> int:
    """FFT threads for a call that transforms ``n_transforms`` fields: the CPUs this process
    may run on (its affinity mask, not the machine's core count), or 1 for a single field
    (splitting one small 2-D transform across threads costs more than it saves)."""
    if n_transforms < 2:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def check_grid(
    shape: tuple[int, int], spacing_km: float | tuple[float, float]
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Validated ((ny, nx), (dy, dx) [km]) of a regular grid.

    Raises
    ------
    ShapeMismatchError
        If ``shape`` is not two positive integers.
    NonFiniteError
        If a spacing is not finite and > 0.
    """
    shp = tuple(np.atleast_1d(np.asarray(shape)).tolist())
    if len(shp) != 2 or not all(isinstance(s, int) and s >= 1 for s in shp):
        raise ShapeMismatchError(f"shape must be (ny, nx) with positive integers; found {shape!r}")
    spacing = np.broadcast_to(np.asarray(spacing_km, dtype=np.float64), (2,))
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise NonFiniteError(
            f"spacing_km must be finite and > 0 (dy, dx) [km]; found {spacing_km!r}"
        )
    return (int(shp[0]), int(shp[1])), (float(spacing[0]), float(spacing[1]))


def _torus_size(n: int, pad: int) -> int:
    """Smallest FFT-friendly torus length >= 2n - 1 + 2 pad (1 for a single cell)."""
    if n == 1:
        return 1
    return scipy.fft.next_fast_len(2 * n - 1 + 2 * pad, real=True)


#: Correlations below this are zero to double precision (eps = 2.2e-16) in any product.
_NEGLIGIBLE = 1e-17


def negligible_distance(length: float, kind: str) -> float:
    """Distance [unit of ``length``] beyond which the correlation is below 1e-17."""
    lo, hi = 0.0, length
    while correlation_function(hi, length, kind) > _NEGLIGIBLE:
        hi *= 2.0
    for _ in range(60):  # bisection to well below a cell
        mid = 0.5 * (lo + hi)
        if correlation_function(mid, length, kind) > _NEGLIGIBLE:
            lo = mid
        else:
            hi = mid
    return hi


def _matvec_torus_size(n: int, spacing: float, length: float, kind: str) -> int:
    """Torus length for the exact convolution of n cells: 2n − 1, or less when the kernel
    vanishes first: with M ≥ n + s (s cells to the negligible distance) every pair the
    torus wraps around is at least s cells apart both ways, where both the true and the
    wrapped correlation are below 1e-17: the product is exact to rounding."""
    if n == 1:
        return 1
    s = math.ceil(negligible_distance(length, kind) / spacing)
    return scipy.fft.next_fast_len(min(2 * n - 1, n + s), real=True)


class RegularGridCorrelation(CovarianceOperator):
    """Isotropic spatial correlation on a regular projected grid, applied by FFT.

    On a regular grid the correlation matrix is block-Toeplitz with Toeplitz blocks; it is the
    top-left (ny nx) × (ny nx) part of a block-circulant matrix C_emb on a padded torus of
    (My, Mx) cells, My >= 2 ny - 1, Mx >= 2 nx - 1, whose eigenvalues are the FFT of its first
    row. Where the correlation falls below 1e-17 within s < n - 1 cells (grids many
    correlation lengths wide), a torus of n + s cells per axis gives the same product to
    rounding (only pairs at least s cells apart wrap around), with fewer FFT cells. ``C @ x`` is therefore an exact convolution: zero-pad x onto the torus, rfft2,
    multiply, irfft2, crop. No (n, n) matrix is formed; cost O(My Mx log(My Mx)) per vector.

    The matvec is exact whatever the sign of the embedding's eigenvalues. The square root is
    L = P C_emb^{1/2}, with P the restriction from the torus to the grid, so L Lᵀ = P C_emb Pᵀ = C
    and ``sqrt_dim`` = My·Mx of the (possibly larger) square-root torus, **not** n: w in
    ``sqrt_matvec(w)`` is a field on the torus, flattened in C order. It needs the embedding's
    eigenvalues >= 0: the torus is grown (padding by 1, 1.5, 2.25, ... times the correlation
    length plus half the grid) until min eigenvalue >= -1e-10·max (the tiny negatives are clipped to 0), on first use of
    ``sqrt_dim``/``sqrt_matvec``; if that fails, NotPositiveDefiniteError is raised.

    Distances are planar on the projected grid, sqrt((Δy dy)² + (Δx dx)²) [km]; they equal the
    great-circle distance to the projection's scale error (< 0.1 % for a city on a local
    projection such as UTM or a local transverse Mercator). For geographic (lat/lon) grids or
    irregular points use :class:`PointsCorrelation`.

    Parameters
    ----------
    shape : (int, int)
        Grid shape (ny, nx); the state is flattened in C order (index = iy·nx + ix).
    spacing_km : float or (float, float)
        Cell size (dy, dx) [km], > 0.
    kind : {"exponential", "gaussian", "matern32"}
        Correlation function.
    length_km : float
        Correlation length L [km], > 0.
    fft_workers : int, optional
        FFT threads per call; default (None) :func:`fft_workers`: the CPUs this process may
        use (1 for a single field).
    max_sqrt_tries : int
        Number of torus sizes tried for the square root. Long correlation lengths relative to
        the grid need a torus of several L per side (e.g. an exponential with L = 30 cells on a
        6 × 5 grid needs ~400 × 400), which makes ``sqrt_dim`` large.

    Raises
    ------
    ValueError
        (subclasses) for a bad shape, spacing, kind or length.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        spacing_km: float | tuple[float, float],
        kind: str = "exponential",
        length_km: float = 1.0,
        *,
        fft_workers: int | None = None,
        max_sqrt_tries: int = 10,
    ) -> None:
        self.grid_shape, self.spacing_km = check_grid(shape, spacing_km)
        self.kind = kind
        self._code = check_kind(kind)
        self.length_km = check_length(length_km, "length_km", "km")
        self.max_sqrt_tries = int(max_sqrt_tries)
        super().__init__(self.grid_shape[0] * self.grid_shape[1])
        ny, nx = self.grid_shape
        self._mv_torus = (
            _matvec_torus_size(ny, self.spacing_km[0], self.length_km, kind),
            _matvec_torus_size(nx, self.spacing_km[1], self.length_km, kind),
        )
        self._mv_spec = self._spectrum(self._mv_torus)
        self._sqrt_torus: tuple[int, int] | None = None
        self._sqrt_spec: np.ndarray | None = None
        self.precision = "double"
        if fft_workers is not None and (int(fft_workers) != fft_workers or fft_workers < 1):
            raise ValueError(f"fft_workers must be None or an int >= 1; found {fft_workers!r}")
        self.fft_workers = None if fft_workers is None else int(fft_workers)

    # ------------------------------------------------------------------ embedding
    def _spectrum(self, torus: tuple[int, int]) -> np.ndarray:
        """Eigenvalues (rfft2 half-spectrum, real) of the circulant embedding on ``torus``."""
        My, Mx = torus
        dy, dx = self.spacing_km
        iy = np.arange(My)
        ix = np.arange(Mx)
        ly = np.minimum(iy, My - iy) * dy
        lx = np.minimum(ix, Mx - ix) * dx
        d = np.hypot(ly[:, None], lx[None, :])
        base = correlation_function(d, self.length_km, self.kind)
        return scipy.fft.rfft2(base, workers=-1).real.copy()

    def _ensure_sqrt(self) -> None:
        if self._sqrt_spec is not None:
            return
        ny, nx = self.grid_shape
        dy, dx = self.spacing_km
        tried = []
        for attempt in range(self.max_sqrt_tries):
            if attempt == 0:
                torus, spec = self._mv_torus, self._mv_spec
            else:
                f = 1.5 ** (attempt - 1)  # pad by f·(L + half the grid), f = 1, 1.5, 2.25, ...
                py = math.ceil(f * (self.length_km / dy + ny / 2))
                px = math.ceil(f * (self.length_km / dx + nx / 2))
                torus = (_torus_size(ny, py), _torus_size(nx, px))
                spec = self._spectrum(torus)
            lmax = float(spec.max())
            lmin = float(spec.min())
            tried.append((torus, lmin / lmax))
            if lmin >= -EMBEDDING_NEG_TOL * lmax:
                self._sqrt_torus = torus
                self._sqrt_spec = np.sqrt(np.clip(spec, 0.0, None))
                logger.debug(
                    "circulant embedding for %s grid %s: torus %s, min/max eigenvalue %.3g",
                    self.kind,
                    self.grid_shape,
                    torus,
                    lmin / lmax,
                )
                return
        summary = ", ".join(f"{t[0]}x{t[1]}: min/max={r:.2g}" for t, r in tried)
        raise NotPositiveDefiniteError(
            f"RegularGridCorrelation({self.kind}, length_km={self.length_km:g}, shape="
            f"{self.grid_shape}): the circulant embedding has negative eigenvalues on every "
            f"torus tried ({summary}); its square root does not exist. Use PointsCorrelation "
            "(irregular / dense Cholesky path) or a DenseCovariance for this grid, or raise "
            "max_sqrt_tries"
        )

    def with_precision(self, precision: str) -> RegularGridCorrelation:
        """This correlation with its FFTs in ``precision`` ("double" or "single").

        The single-precision operator shares the spectra (cast once) and casts each batch of
        fields to float32 for the transforms: about twice as fast, with a relative error of
        about 1e-7 (see :data:`SINGLE_PRECISION_RTOL`); results are float64 arrays. Use it
        only where that error is far below the tolerance of what it feeds.

        Raises
        ------
        ValueError
            If ``precision`` is not one of :data:`PRECISIONS`.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; found {precision!r}")
        if precision == self.precision:
            return self
        other = copy.copy(self)
        other.precision = precision
        return other

    def subgrid(self, shape: tuple[int, int]) -> RegularGridCorrelation:
        """The same correlation (kind, length, spacing, precision) on a grid of ``shape``: the
        principal submatrix of any ``shape``-sized box of cells of this grid (the kernel is
        stationary)."""
        other = RegularGridCorrelation(
            shape, self.spacing_km, self.kind, self.length_km, fft_workers=self.fft_workers,
            max_sqrt_tries=self.max_sqrt_tries,
        )  # fmt: skip
        return other.with_precision(self.precision)

    def _spec(self, spec: np.ndarray) -> np.ndarray:
        return spec.astype(np.float32) if self.precision == "single" else spec

    @property
    def embedding_shape(self) -> tuple[int, int]:
        """Torus (My, Mx) used by the matvec."""
        return self._mv_torus

    @property
    def sqrt_embedding_shape(self) -> tuple[int, int]:
        """Torus (My, Mx) used by the square root (computed on first use)."""
        self._ensure_sqrt()
        assert self._sqrt_torus is not None
        return self._sqrt_torus

    @property
    def sqrt_dim(self) -> int:
        My, Mx = self.sqrt_embedding_shape
        return My * Mx

    # ------------------------------------------------------------------ application
    def _convolve_rows(
        self,
        R: np.ndarray,
        in_shape: tuple[int, int],
        torus: tuple[int, int],
        spec: np.ndarray,
        out_shape: tuple[int, int],
        scale: np.ndarray | None = None,
    ) -> np.ndarray:
        """Circular convolution on ``torus`` of fields of ``in_shape``, cropped to ``out_shape``.

        A pruned 2-D FFT: the x-transforms run only over the ``in_shape[0]`` rows that hold
        data (forward) and the ``out_shape[0]`` rows that are kept (inverse), which saves about
        a quarter of the work of a full ``rfft2``/``irfft2`` on the zero-padded torus. Rows are
        processed in batches of about ``_FFT_BATCH_CELLS`` torus cells; ``scale`` (m, *out_shape)
        multiplies the result as it is written (no extra pass).
        """
        m = R.shape[0]
        fields = R.reshape(m, *in_shape)
        My, Mx = torus
        oy, ox = out_shape
        out = np.empty((m, oy, ox))
        spec = self._spec(spec)
        single = spec.dtype == np.float32
        batch = max(1, _FFT_BATCH_CELLS // (My * Mx))
        w = self.fft_workers or fft_workers(min(batch, m))
        for start in range(0, m, batch):
            stop = min(start + batch, m)
            f = fields[start:stop].astype(np.float32) if single else fields[start:stop]
            f = scipy.fft.rfft(f, n=Mx, axis=-1, workers=w)
            f = scipy.fft.fft(f, n=My, axis=-2, workers=w, overwrite_x=True)
            f *= spec
            f = scipy.fft.ifft(f, axis=-2, workers=w, overwrite_x=True)[:, :oy]
            f = scipy.fft.irfft(f, n=Mx, axis=-1, workers=w)[..., :ox]
            if scale is None:
                out[start:stop] = f
            else:
                np.multiply(f, scale[start:stop], out=out[start:stop])
        return out

    def _apply_fields(self, F: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """C applied to fields F (m, ny, nx, k) over axes (1, 2): the columns stay last.

        The same pruned circulant-embedding convolution as :meth:`_apply_rows`. Each batch of
        time slices is moved to (slice, column, y, x) as it is cast (one copy the size of the
        batch, which stays in cache), so the FFTs run on contiguous lines; FFTs along the
        strided axes of the (time, space, column) layout cost 1.17–1.26 times as much per
        column with 4 columns in single precision (regional and Bay Area sizes,
        ``benchmarks/b_floor.py``). ``scale`` (m, ny, nx) multiplies the result as it is
        written back.
        """
        m, ny, nx, k = F.shape
        My, Mx = self._mv_torus
        spec = self._spec(self._mv_spec)
        single = spec.dtype == np.float32
        out = np.empty(F.shape)
        batch = max(1, _FFT_BATCH_CELLS // (My * Mx * k))
        w = self.fft_workers or fft_workers(min(batch, m) * k)
        for start in range(0, m, batch):
            stop = min(start + batch, m)
            f = np.moveaxis(F[start:stop], 3, 1)  # (b, k, ny, nx), a view
            f = f.astype(np.float32) if single else np.ascontiguousarray(f)
            f = scipy.fft.rfft(f, n=Mx, axis=-1, workers=w)
            f = scipy.fft.fft(f, n=My, axis=-2, workers=w, overwrite_x=True)
            f *= spec
            f = scipy.fft.ifft(f, axis=-2, workers=w, overwrite_x=True)[:, :, :ny]
            f = scipy.fft.irfft(f, n=Mx, axis=-1, workers=w)[..., :nx]
            target = np.moveaxis(out[start:stop], 3, 1)
            if scale is None:
                target[...] = f
            else:
                np.multiply(f, scale[start:stop, None], out=target)
        return out

    def _apply_rows(self, R: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """(C Rᵀ)ᵀ for rows R (m, n); ``scale`` (m, n) multiplies the result."""
        if R.shape[0] == 0:
            return np.zeros((0, self.n))
        grid = self.grid_shape
        sc = None if scale is None else scale.reshape(R.shape[0], *grid)
        out = self._convolve_rows(R, grid, self._mv_torus, self._mv_spec, grid, sc)
        return out.reshape(R.shape[0], self.n)

    def _apply(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._apply_rows(np.ascontiguousarray(X.T)).T)

    def _sqrt_apply_rows(self, W: np.ndarray) -> np.ndarray:
        self._ensure_sqrt()
        torus = self.sqrt_embedding_shape
        out = self._convolve_rows(W, torus, torus, self._sqrt_spec, self.grid_shape)
        return out.reshape(W.shape[0], self.n)

    def _sqrt_rapply_rows(self, V: np.ndarray) -> np.ndarray:
        self._ensure_sqrt()
        torus = self.sqrt_embedding_shape
        full = self._convolve_rows(V, self.grid_shape, torus, self._sqrt_spec, torus)
        return full.reshape(V.shape[0], torus[0] * torus[1])

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._sqrt_apply_rows(np.ascontiguousarray(W.T)).T)

    def _sqrt_rapply(self, V: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._sqrt_rapply_rows(np.ascontiguousarray(V.T)).T)

    def diag(self) -> np.ndarray:
        return np.ones(self.n)

    def _to_dense(self) -> np.ndarray:
        nx = self.grid_shape[1]
        dy, dx = self.spacing_km
        iy, ix = np.divmod(np.arange(self.n), nx)
        d = np.hypot((iy[:, None] - iy[None, :]) * dy, (ix[:, None] - ix[None, :]) * dx)
        return correlation_function(d, self.length_km, self.kind)
