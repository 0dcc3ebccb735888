"""Correlation functions of distance and great-circle distances.

All functions are pure numpy and vectorised. Distances are in km, time lags in hours.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from inversion.errors import NonFiniteError

__all__ = [
    "CORRELATION_KINDS",
    "EARTH_RADIUS_KM",
    "correlation_function",
    "haversine_km",
    "temporal_correlation",
]

#: Mean Earth radius (IUGG R1) [km], used for great-circle distances.
EARTH_RADIUS_KM = 6371.0088

#: Supported correlation families and the integer code the numba kernels use.
CORRELATION_KINDS: dict[str, int] = {"exponential": 0, "gaussian": 1, "matern32": 2}

_SQRT3 = math.sqrt(3.0)


def check_kind(kind: str, name: str = "kind") -> int:
    """Return the kernel code of correlation ``kind``; raise ValueError naming the choices."""
    if kind not in CORRELATION_KINDS:
        raise ValueError(
            f"{name}={kind!r} is not a known correlation function; expected one of "
            f"{sorted(CORRELATION_KINDS)}"
        )
    return CORRELATION_KINDS[kind]


def check_length(length: float, name: str, unit: str) -> float:
    """Validate a correlation length / time scale: finite and > 0."""
    try:
        value = float(length)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number [{unit}], found {length!r}") from None
    if not math.isfinite(value) or value <= 0.0:
        raise NonFiniteError(
            f"{name} must be finite and > 0 [{unit}], found {value!r}; "
            "use a positive correlation length (for no correlation use a diagonal covariance)"
        )
    return value


def correlation_function(distance: ArrayLike, length: float, kind: str) -> np.ndarray:
    """Evaluate a stationary isotropic correlation function.

    Parameters
    ----------
    distance : array_like
        Distance (or absolute time lag) [km or h], >= 0.
    length : float
        Correlation length in the same unit as ``distance`` [km or h], > 0.
    kind : {"exponential", "gaussian", "matern32"}
        ``exponential``: exp(-d/L); ``gaussian``: exp(-d²/(2L²));
        ``matern32`` (Matérn ν=1.5): (1 + √3 d/L) exp(-√3 d/L).

    Returns
    -------
    numpy.ndarray
        Correlation [1], same shape as ``distance``.

    Examples
    --------
    >>> float(correlation_function(0.0, 5.0, "gaussian"))
    1.0
    """
    check_kind(kind)
    length = check_length(length, "length", "km or h")
    r = np.abs(np.asarray(distance, dtype=np.float64)) / length
    if kind == "exponential":
        return np.exp(-r)
    if kind == "gaussian":
        return np.exp(-0.5 * r * r)
    s = _SQRT3 * r
    return (1.0 + s) * np.exp(-s)


def temporal_correlation(lag_hours: ArrayLike, tau_hours: float) -> np.ndarray:
    """Exponential temporal correlation exp(-|Δt|/τ).

    Parameters
    ----------
    lag_hours : array_like
        Time lag Δt [h].
    tau_hours : float
        Correlation time τ [h], > 0.

    Returns
    -------
    numpy.ndarray
        Correlation [1].
    """
    tau = check_length(tau_hours, "tau_hours", "h")
    return np.exp(-np.abs(np.asarray(lag_hours, dtype=np.float64)) / tau)


def haversine_km(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> np.ndarray:
    """Great-circle distance on a sphere of radius :data:`EARTH_RADIUS_KM` (haversine formula).

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : array_like
        Latitudes and longitudes [degrees]; broadcast against each other.

    Returns
    -------
    numpy.ndarray
        Distance [km].
    """
    p1 = np.radians(np.asarray(lat1, dtype=np.float64))
    p2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dl = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(0.5 * (p2 - p1)) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(0.5 * dl) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
