"""Separable exponential correlation on a regular projected grid, by O(n) recursions."""

from __future__ import annotations

import math

import numpy as np

from inversion.covariance._base import CovarianceOperator
from inversion.covariance._correlation import check_length
from inversion.covariance._grid import check_grid
from inversion.covariance._kernels import (
    AR1_APPLY,
    AR1_SQRT,
    AR1_SQRT_T,
    ar1_grid_numba,
    ar1_matrix,
)

__all__ = ["SEPARABLE_KIND", "SeparableGridCorrelation"]

#: The ``kind`` name of this correlation in :func:`kronecker_prior` and the app's config.
SEPARABLE_KIND = "separable_exponential"

_NO_SCALE = np.zeros((0, 0, 0))


class SeparableGridCorrelation(CovarianceOperator):
    """Exponential correlation of the taxicab distance on a regular projected grid.

    C[i, j] = exp(−(|Δy| + |Δx|)/L) = C_y ⊗ C_x, where C_y and C_x are the exponential
    correlations of each axis: ρ^|i−j| with ρ = exp(−spacing/L), a first-order Markov
    (AR(1)) correlation whose inverse is tridiagonal. Products with C, with its Cholesky
    factor L = L_y ⊗ L_x and with Lᵀ are two first-order recursions per axis: O(n) work, one
    pass over each field in cache, no FFT, exact to rounding (there is no embedding or
    truncation to approximate). ``sqrt_dim`` is n.

    It is a valid correlation (a product of one-dimensional ones) with the same correlation
    length along the grid axes as the isotropic ``exponential`` kernel, but it is not
    isotropic: along a diagonal the correlation at distance d is exp(−√2 d/L) instead of
    exp(−d/L), and its contours are diamonds aligned with the grid. Use it where B products
    dominate the run time and that anisotropy is acceptable (``benchmarks/b_floor.py``
    compares both).

    Parameters
    ----------
    shape : (int, int)
        Grid shape (ny, nx); the state is flattened in C order (index = iy·nx + ix).
    spacing_km : float or (float, float)
        Cell size (dy, dx) [km], > 0.
    length_km : float
        Correlation length L [km], > 0.

    Raises
    ------
    ShapeMismatchError
        For a shape that is not two positive integers.
    NonFiniteError
        For a spacing or length that is not finite and > 0.

    Examples
    --------
    >>> C = SeparableGridCorrelation((3, 4), 1.0, length_km=2.0)
    >>> round(float(C.to_dense()[0, 5]), 6) == round(math.exp(-1.0), 6)
    True
    """

    kind = SEPARABLE_KIND

    def __init__(
        self,
        shape: tuple[int, int],
        spacing_km: float | tuple[float, float],
        length_km: float = 1.0,
    ) -> None:
        self.grid_shape, self.spacing_km = check_grid(shape, spacing_km)
        self.length_km = check_length(length_km, "length_km", "km")
        #: AR(1) coefficients exp(−dy/L), exp(−dx/L) of the two axes [1].
        self.rho: tuple[float, float] = (
            math.exp(-self.spacing_km[0] / self.length_km),
            math.exp(-self.spacing_km[1] / self.length_km),
        )
        super().__init__(self.grid_shape[0] * self.grid_shape[1])

    def diag(self) -> np.ndarray:
        return np.ones(self.n)

    def subgrid(self, shape: tuple[int, int]) -> SeparableGridCorrelation:
        """The same correlation on a grid of ``shape`` (the principal submatrix of any box of
        that shape)."""
        return SeparableGridCorrelation(shape, self.spacing_km, self.length_km)

    # ------------------------------------------------------------------ application
    def _grid(self, F: np.ndarray, mode: int, scale: np.ndarray | None) -> np.ndarray:
        """The kernel on fields F (m, ny, nx, k); ``scale`` (m, ny, nx) or None."""
        F = np.ascontiguousarray(F, dtype=np.float64)
        out = np.empty(F.shape)
        sc = _NO_SCALE if scale is None else np.ascontiguousarray(scale, dtype=np.float64)
        ar1_grid_numba(F, self.rho[0], self.rho[1], mode, sc, out)
        return out

    def _rows(self, R: np.ndarray, mode: int, scale: np.ndarray | None = None) -> np.ndarray:
        m = R.shape[0]
        ny, nx = self.grid_shape
        sc = None if scale is None else scale.reshape(m, ny, nx)
        return self._grid(R.reshape(m, ny, nx, 1), mode, sc).reshape(m, self.n)

    def _apply_fields(self, F: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """C applied to fields F (m, ny, nx, k) over axes (1, 2); ``scale`` (m, ny, nx)
        multiplies the result as it is written."""
        return self._grid(F, AR1_APPLY, scale)

    def _apply_rows(self, R: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """(C Rᵀ)ᵀ for rows R (m, n); ``scale`` (m, n) multiplies the result."""
        return self._rows(R, AR1_APPLY, scale)

    def _columns(self, X: np.ndarray, mode: int) -> np.ndarray:
        """The kernel on the columns of X (n, k): one field whose cells hold k values."""
        ny, nx = self.grid_shape
        k = X.shape[1]
        return self._grid(X.reshape(1, ny, nx, k), mode, None).reshape(self.n, k)

    def _apply(self, X: np.ndarray) -> np.ndarray:
        return self._columns(X, AR1_APPLY)

    def _sqrt_apply_rows(self, W: np.ndarray) -> np.ndarray:
        return self._rows(W, AR1_SQRT)

    def _sqrt_rapply_rows(self, V: np.ndarray) -> np.ndarray:
        return self._rows(V, AR1_SQRT_T)

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        return self._columns(W, AR1_SQRT)

    def _sqrt_rapply(self, V: np.ndarray) -> np.ndarray:
        return self._columns(V, AR1_SQRT_T)

    def _to_dense(self) -> np.ndarray:
        ny, nx = self.grid_shape
        return np.kron(ar1_matrix(ny, self.rho[0]), ar1_matrix(nx, self.rho[1]))

    def __repr__(self) -> str:
        ny, nx = self.grid_shape
        return f"<SeparableGridCorrelation {ny}x{nx} L={self.length_km:g} km>"
