"""Numba kernels of the operator assembly, each with a pure-numpy twin used in tests.

Kernels take and return plain arrays; choose the implementation with ``engine=``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["bin_layers", "interval_overlaps", "layer_bin_weights", "sparsify_rows", "spread_layers"]


def _check_engine(engine: str) -> None:
    if engine not in ("numba", "numpy"):
        raise ValueError(f"engine: expected 'numba' or 'numpy', found {engine!r}")


# ---------------------------------------------------------------- 1-D interval overlaps
@numba.njit(cache=True, nogil=True)
def _overlaps_numba(
    s_lo: np.ndarray, s_hi: np.ndarray, t_lo: np.ndarray, t_hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ns, nt = s_lo.size, t_lo.size
    cap = ns + nt + 1
    ii = np.empty(cap, np.int64)
    jj = np.empty(cap, np.int64)
    ww = np.empty(cap, np.float64)
    n = 0
    j0 = 0
    for i in range(ns):
        while j0 < nt and t_hi[j0] <= s_lo[i]:
            j0 += 1
        j = j0
        while j < nt and t_lo[j] < s_hi[i]:
            lo = max(s_lo[i], t_lo[j])
            hi = min(s_hi[i], t_hi[j])
            if hi > lo:
                if n == cap:
                    cap *= 2
                    ii2 = np.empty(cap, np.int64)
                    jj2 = np.empty(cap, np.int64)
                    ww2 = np.empty(cap, np.float64)
                    ii2[:n] = ii[:n]
                    jj2[:n] = jj[:n]
                    ww2[:n] = ww[:n]
                    ii, jj, ww = ii2, jj2, ww2
                ii[n] = i
                jj[n] = j
                ww[n] = hi - lo
                n += 1
            j += 1
    return ii[:n], jj[:n], ww[:n]


def _overlaps_numpy(
    s_lo: np.ndarray, s_hi: np.ndarray, t_lo: np.ndarray, t_hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo = np.maximum(s_lo[:, None], t_lo[None, :])
    hi = np.minimum(s_hi[:, None], t_hi[None, :])
    w = hi - lo
    i, j = np.nonzero(w > 0)
    return i.astype(np.int64), j.astype(np.int64), w[i, j].astype(np.float64)


def interval_overlaps(
    s_lo: np.ndarray,
    s_hi: np.ndarray,
    t_lo: np.ndarray,
    t_hi: np.ndarray,
    engine: str = "numba",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlaps of source intervals ``[s_lo, s_hi)`` with target intervals ``[t_lo, t_hi)``.

    Both sets must be sorted by their lower ends and non-overlapping among themselves (cells of
    a regular grid). Returns the COO triplets ``(i_source, j_target, overlap_length)`` for all
    pairs with positive overlap, in the units of the inputs.
    """
    _check_engine(engine)
    args = [np.ascontiguousarray(a, dtype=np.float64) for a in (s_lo, s_hi, t_lo, t_hi)]
    if engine == "numpy":
        return _overlaps_numpy(*args)
    return _overlaps_numba(*args)


# ---------------------------------------------------------------- layers -> time bins
def layer_bin_weights(
    start: np.ndarray, end: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Share of each layer ``[start, end)`` that falls in each time bin ``[edges[b], edges[b+1])``.

    Sensitivity is taken as uniform in time within a layer, so the share is the overlap
    length over the layer length; a zero-length layer (a point in time) goes whole to the bin
    containing it. Vectorised: each layer touches a contiguous run of bins.

    Parameters
    ----------
    start, end : numpy.ndarray
        Layer bounds (n_layer,) [datetime64[ns] or int64 ns].
    edges : numpy.ndarray
        Strictly increasing bin edges (n_bin + 1,) [same type].

    Returns
    -------
    layer, bin, weight : numpy.ndarray
        COO triplets (int64, int64, float64 in (0, 1]) for every positive overlap.
    inside : numpy.ndarray
        Sum of the weights of each layer (n_layer,) [1]; ``1 - inside`` lies outside the axis.
    """
    t0 = np.asarray(start).astype("datetime64[ns]").astype(np.int64)
    t1 = np.asarray(end).astype("datetime64[ns]").astype(np.int64)
    e = np.asarray(edges).astype("datetime64[ns]").astype(np.int64)
    nt = e.size - 1
    point = t1 == t0
    b0 = np.maximum(np.searchsorted(e, t0, side="right") - 1, 0)
    b1 = np.minimum(np.searchsorted(e, t1, side="left") - 1, nt - 1)
    bp = np.searchsorted(e, t0, side="right") - 1  # bin of a point layer
    b0 = np.where(point, bp, b0)
    b1 = np.where(point, bp, b1)
    count = np.where((b1 >= b0) & (b0 >= 0) & (b0 < nt), b1 - b0 + 1, 0)
    layer = np.repeat(np.arange(t0.size, dtype=np.int64), count)
    offset = np.arange(layer.size, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    bins = b0[layer] + offset
    lo = np.maximum(t0[layer], e[bins])
    hi = np.minimum(t1[layer], e[bins + 1])
    dur = (t1 - t0)[layer]
    weight = np.where(point[layer], 1.0, (hi - lo) / np.where(dur > 0, dur, 1))
    ok = weight > 0
    layer, bins, weight = layer[ok], bins[ok], weight[ok]
    inside = np.bincount(layer, weights=weight, minlength=t0.size)
    return layer, bins, weight, inside


@numba.njit(cache=True, nogil=True)
def _spread_numba(values, layer, target, weight, nbins):
    out = np.zeros((nbins, values.shape[1]))
    for e in range(layer.size):
        k, b, w = layer[e], target[e], weight[e]
        for c in range(values.shape[1]):
            out[b, c] += w * values[k, c]
    return out


def _spread_numpy(values, layer, target, weight, nbins):
    out = np.zeros((nbins, values.shape[1]))
    np.add.at(out, target, weight[:, None] * values[layer].astype(np.float64))
    return out


def spread_layers(
    values: np.ndarray,
    layer: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    nbins: int,
    engine: str = "numba",
) -> np.ndarray:
    """``out[target[e]] += weight[e] * values[layer[e]]`` over entries ``e`` (float64).

    ``values`` is ``(n_layer, n_cell)``; the result is ``(nbins, n_cell)``.
    """
    _check_engine(engine)
    layer = np.ascontiguousarray(layer, dtype=np.int64)
    target = np.ascontiguousarray(target, dtype=np.int64)
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    if engine == "numpy":
        return _spread_numpy(values, layer, target, weight, nbins)
    return _spread_numba(np.ascontiguousarray(values), layer, target, weight, nbins)


def bin_layers(
    values: np.ndarray, bins: np.ndarray, nbins: int, engine: str = "numba"
) -> np.ndarray:
    """Sum layers into bins: ``out[b] = Σ_{k: bins[k] == b} values[k]`` (float64).

    ``values`` is ``(n_layer, n_cell)``; layers with ``bins < 0`` are skipped. Equivalent to
    :func:`spread_layers` with unit weights.
    """
    bins = np.ascontiguousarray(bins, dtype=np.int64)
    keep = np.flatnonzero(bins >= 0)
    return spread_layers(values, keep, bins[keep], np.ones(keep.size), nbins, engine)


# ---------------------------------------------------------------- dense rows -> CSR
@numba.njit(cache=True, nogil=True)
def _sparsify_numba(
    dense: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    nr, nc = dense.shape
    indptr = np.zeros(nr + 1, np.int64)
    dropped = np.zeros(nr)
    for r in range(nr):
        n = 0
        for c in range(nc):
            v = dense[r, c]
            if v != 0.0:
                if abs(v) >= threshold:
                    n += 1
                else:
                    dropped[r] += abs(v)
        indptr[r + 1] = indptr[r] + n
    indices = np.empty(indptr[nr], np.int64)
    data = np.empty(indptr[nr], np.float64)
    for r in range(nr):
        p = indptr[r]
        for c in range(nc):
            v = dense[r, c]
            if v != 0.0 and abs(v) >= threshold:
                indices[p] = c
                data[p] = v
                p += 1
    return indptr, indices, data, dropped


def _sparsify_numpy(
    dense: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a = np.abs(dense)
    keep = (dense != 0) & (a >= threshold)
    dropped = np.where(keep, 0.0, a).sum(axis=1)
    r, c = np.nonzero(keep)
    indptr = np.zeros(dense.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(r, minlength=dense.shape[0]), out=indptr[1:])
    return indptr, c.astype(np.int64), dense[r, c].astype(np.float64), dropped


def sparsify_rows(
    dense: np.ndarray, threshold: float, engine: str = "numba"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays ``(indptr, indices, data)`` of ``dense`` keeping ``|v| >= threshold``.

    Also returns the dropped absolute mass per row ``Σ |v|`` over ``0 < |v| < threshold``.
    """
    _check_engine(engine)
    dense = np.ascontiguousarray(dense, dtype=np.float64)
    if engine == "numpy":
        return _sparsify_numpy(dense, float(threshold))
    return _sparsify_numba(dense, float(threshold))
