"""Spatial correlation of irregular points with great-circle (haversine) distances."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from inversion.covariance._base import CovarianceOperator, check_finite_array
from inversion.covariance._correlation import (
    check_kind,
    check_length,
)
from inversion.covariance._kernels import (
    points_correlation_matrix_numpy,
    points_matmat_numba,
    points_matmat_numpy,
)
from inversion.errors import NotPositiveDefiniteError, ShapeMismatchError

__all__ = ["PointsCorrelation"]

#: Default largest n for the dense Cholesky square root of PointsCorrelation.
MAX_SQRT_SIZE = 10_000

_ENGINES = ("numba", "numpy")


class PointsCorrelation(CovarianceOperator):
    """Isotropic correlation of points on the sphere (great-circle / haversine distances).

    For irregular points, or grids in geographic coordinates. ``C @ X`` is computed on the fly
    by a numba kernel (O(n²) time, O(n) extra memory, parallel over rows); ``engine="numpy"``
    builds the (n, n) matrix instead (reference, small n). The square root is the dense
    Cholesky factor, only up to ``max_sqrt_size`` points (``sqrt_dim`` = n).

    Parameters
    ----------
    lat, lon : array_like, shape (n,)
        Point coordinates [degrees]; any shape, flattened in C order.
    kind : {"exponential", "gaussian", "matern32"}
        Correlation function of distance.
    length_km : float
        Correlation length [km], > 0.
    engine : {"numba", "numpy"}
        Kernel used by the matvec.
    max_sqrt_size : int
        Largest n for which the dense Cholesky square root is built.

    Raises
    ------
    ShapeMismatchError
        If ``lat`` and ``lon`` differ in size or are empty.
    NonFiniteError
        If coordinates are NaN/inf or the length is <= 0.
    ValueError
        If a latitude is outside [-90, 90], or ``kind``/``engine`` is unknown.
    """

    def __init__(
        self,
        lat: ArrayLike,
        lon: ArrayLike,
        kind: str = "exponential",
        length_km: float = 1.0,
        *,
        engine: str = "numba",
        max_sqrt_size: int = MAX_SQRT_SIZE,
    ) -> None:
        la = np.asarray(lat, dtype=np.float64).ravel()
        lo = np.asarray(lon, dtype=np.float64).ravel()
        if la.size != lo.size or la.size == 0:
            raise ShapeMismatchError(
                f"lat and lon must hold the same (non-zero) number of points; found "
                f"{la.size} latitudes and {lo.size} longitudes"
            )
        check_finite_array(la, "lat")
        check_finite_array(lo, "lon")
        if np.any(np.abs(la) > 90.0):
            i = int(np.flatnonzero(np.abs(la) > 90.0)[0])
            raise ValueError(
                f"lat must lie in [-90, 90] degrees; found {float(la[i])!r} at index {i}"
            )
        if engine not in _ENGINES:
            raise ValueError(f"engine={engine!r} is unknown; expected one of {_ENGINES}")
        self.kind = kind
        self._code = check_kind(kind)
        self.length_km = check_length(length_km, "length_km", "km")
        self.engine = engine
        self.max_sqrt_size = int(max_sqrt_size)
        super().__init__(la.size)
        self._lat = np.radians(la)
        self._lon = np.radians(lo)
        self._chol: np.ndarray | None = None

    def _apply(self, X: np.ndarray) -> np.ndarray:
        if self.engine == "numba":
            return points_matmat_numba(self._lat, self._lon, X, self._code, self.length_km)
        return points_matmat_numpy(self._lat, self._lon, X, self._code, self.length_km)

    def diag(self) -> np.ndarray:
        return np.ones(self.n)

    def _to_dense(self) -> np.ndarray:
        return points_correlation_matrix_numpy(self._lat, self._lon, self._code, self.length_km)

    @property
    def cholesky_factor(self) -> np.ndarray:
        """Lower Cholesky factor of the correlation matrix (n <= ``max_sqrt_size``)."""
        if self._chol is None:
            if self.n > self.max_sqrt_size:
                raise ValueError(
                    f"PointsCorrelation: the square root needs a dense Cholesky factor, refused "
                    f"for n={self.n} > max_sqrt_size={self.max_sqrt_size}; raise max_sqrt_size "
                    "(O(n³) time, n² memory), or use RegularGridCorrelation on a projected grid"
                )
            try:
                self._chol = scipy.linalg.cholesky(self._to_dense(), lower=True, check_finite=False)
            except np.linalg.LinAlgError as exc:
                raise NotPositiveDefiniteError(
                    f"PointsCorrelation({self.kind}, length_km={self.length_km:g}, n={self.n}) "
                    f"is numerically not positive definite ({exc}); remove duplicated points, "
                    "use a shorter length or the exponential/matern32 kind"
                ) from None
        return self._chol

    def _sqrt_apply(self, W: np.ndarray) -> np.ndarray:
        return self.cholesky_factor @ W

    def _sqrt_rapply(self, V: np.ndarray) -> np.ndarray:
        return self.cholesky_factor.T @ V
