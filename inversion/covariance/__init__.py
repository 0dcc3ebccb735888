"""Covariance operators for the prior (B) and observation (R) errors.

Every operator is a :class:`scipy.sparse.linalg.LinearOperator` (float64, symmetric positive
(semi)definite), so ``C @ v`` and ``C @ V`` work, and adds ``diag()``, ``to_dense()``,
``sqrt_dim``, ``sqrt_matvec(w)`` (L w with L Lᵀ = C) and ``sqrt_rmatvec(v)`` (Lᵀ v).

- :class:`DiagonalCovariance`, :class:`DenseCovariance`, :class:`BlockDiagonalCovariance`
- :class:`RegularGridCorrelation` — exact FFT (circulant-embedding) correlation on a projected grid
- :class:`SeparableGridCorrelation` — exp(−taxicab distance/L) on a projected grid, O(n) recursions
- :class:`PointsCorrelation` — great-circle correlation of irregular points (numba, on the fly)
- :class:`TemporalCorrelation` — correlation of state time steps
- :class:`KroneckerCovariance` — B = D (C_t ⊗ C_s) D; :func:`kronecker_prior` builds one per sector
"""

from inversion.covariance._base import MAX_DENSE_SIZE, CovarianceOperator
from inversion.covariance._correlation import (
    CORRELATION_KINDS,
    EARTH_RADIUS_KM,
    correlation_function,
    haversine_km,
    temporal_correlation,
)
from inversion.covariance._grid import RegularGridCorrelation
from inversion.covariance._kronecker import KroneckerCovariance, kronecker_prior
from inversion.covariance._points import PointsCorrelation
from inversion.covariance._separable import SEPARABLE_KIND, SeparableGridCorrelation
from inversion.covariance._simple import (
    BlockDiagonalCovariance,
    DenseCovariance,
    DiagonalCovariance,
)
from inversion.covariance._temporal import TemporalCorrelation

__all__ = [
    "CORRELATION_KINDS",
    "EARTH_RADIUS_KM",
    "MAX_DENSE_SIZE",
    "SEPARABLE_KIND",
    "BlockDiagonalCovariance",
    "CovarianceOperator",
    "DenseCovariance",
    "DiagonalCovariance",
    "KroneckerCovariance",
    "PointsCorrelation",
    "RegularGridCorrelation",
    "SeparableGridCorrelation",
    "TemporalCorrelation",
    "correlation_function",
    "haversine_km",
    "kronecker_prior",
    "temporal_correlation",
]
