"""Numba kernels of the footprint readers, each with a pure-numpy twin used in tests.

Kernels take and return plain arrays; the readers own dims, coords and units.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["scan_layers", "scan_layers_numpy"]


@numba.njit(cache=True, nogil=True)
def _scan_layers_numba(
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    nl = values.shape[0]
    n = values.shape[1]
    sums = np.zeros(nl)
    n_bad = np.zeros(nl, dtype=np.int64)
    n_neg = np.zeros(nl, dtype=np.int64)
    peak = np.zeros(nl)
    for k in range(nl):
        s = 0.0
        m = 0.0
        for i in range(n):
            v = values[k, i]
            if not np.isfinite(v):
                n_bad[k] += 1
            else:
                if v < 0.0:
                    n_neg[k] += 1
                s += v
                a = abs(v)
                if a > m:
                    m = a
        sums[k] = s
        peak[k] = m
    return sums, n_bad, n_neg, peak


def scan_layers_numpy(
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pure-numpy twin of :func:`scan_layers`."""
    v = np.asarray(values).reshape(values.shape[0], -1)
    finite = np.isfinite(v)
    clean = np.where(finite, v, 0.0)
    sums = clean.sum(axis=1, dtype=np.float64)
    n_bad = (~finite).sum(axis=1).astype(np.int64)
    n_neg = (finite & (v < 0)).sum(axis=1).astype(np.int64)
    peak = np.abs(clean).max(axis=1, initial=0.0).astype(np.float64)
    return sums, n_bad, n_neg, peak


def scan_layers(
    values: np.ndarray, engine: str = "numba"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass over footprint layers: per-layer sum, non-finite and negative counts, peak.

    Parameters
    ----------
    values : numpy.ndarray
        Footprint layers ``(n_layer, ...)`` [ppm per (µmol m-2 s-1)].
    engine : {"numba", "numpy"}
        Implementation.

    Returns
    -------
    sums : numpy.ndarray
        Sum of the finite values of each layer (n_layer,) [ppm per (µmol m-2 s-1)].
    n_nonfinite, n_negative : numpy.ndarray of int64
        Counts of NaN/inf and of negative values per layer (n_layer,).
    peak : numpy.ndarray
        Largest absolute finite value of each layer (n_layer,) [ppm per (µmol m-2 s-1)].
    """
    if engine == "numpy":
        return scan_layers_numpy(values)
    if engine != "numba":
        raise ValueError(f"engine: expected 'numba' or 'numpy', found {engine!r}")
    v = np.ascontiguousarray(values).reshape(values.shape[0], -1)
    return _scan_layers_numba(v)
