"""Localised ensemble covariance of model-data mismatch (transport error from an ensemble).

Given anomalies ``A`` (n_obs, k) of an ensemble of modelled observations (columns scaled so
that the raw covariance is ``A Aᵀ``), the localised covariance is the Schur product

    C = T ∘ (A Aᵀ),     T_ij = τ_t(|t_i − t_j|; L_t) · τ_s(d_ij; L_s),

with a taper τ in time [h] and great-circle distance [km]: ``gaspari-cohn`` (the compactly
supported fifth-order piecewise rational function of Gaspari & Cohn 1999, eq. 4.10, zero beyond
twice its length; positive definite in up to three dimensions) or ``exponential``
(``exp(−r/L)``, never zero). Both are positive definite, so C is positive semi-definite (Schur
product theorem) and full rank where A is not. Optionally only pairs within the same group
(e.g. the correlation groups of R: site-day, overpass, scan) are kept. The result is a sparse
matrix: only pairs inside the taper's support (or groups) are formed, in chunks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from inversion.covariance import haversine_km

__all__ = ["TAPERS", "localised_ensemble_covariance", "taper"]

#: Taper functions of :func:`taper`.
TAPERS = ("gaspari-cohn", "exponential")

# Pairs formed per chunk (bounds the (pairs, k) products held at once).
_PAIR_CHUNK = 200_000


def taper(distance: np.ndarray, length: float, kind: str = "gaspari-cohn") -> np.ndarray:
    """Localisation taper of ``distance`` for a length ``length`` (same units), in [0, 1].

    ``gaspari-cohn``: Gaspari & Cohn (1999) eq. 4.10 with half-width c = ``length`` (zero for
    distance ≥ 2c); ``exponential``: ``exp(−distance/length)``.

    Raises
    ------
    ValueError
        If ``kind`` is unknown or ``length`` is not > 0.
    """
    if kind not in TAPERS:
        raise ValueError(f"taper kind {kind!r} is unknown; use one of {list(TAPERS)}")
    if not length > 0:
        raise ValueError(f"taper length must be > 0, found {length!r}")
    r = np.abs(np.asarray(distance, dtype=float)) / length
    if kind == "exponential":
        return np.exp(-r)
    out = np.zeros_like(r)
    a = r <= 1.0
    b = (r > 1.0) & (r < 2.0)
    x = r[a]
    out[a] = -0.25 * x**5 + 0.5 * x**4 + 0.625 * x**3 - 5.0 / 3.0 * x**2 + 1.0
    x = r[b]
    out[b] = (
        x**5 / 12.0 - 0.5 * x**4 + 0.625 * x**3 + 5.0 / 3.0 * x**2 - 5.0 * x + 4.0 - 2.0 / (3.0 * x)
    )
    return out


def _support(length: float | None, kind: str) -> float:
    if length is None:
        return np.inf
    return 2.0 * length if kind == "gaspari-cohn" else np.inf


def _pairs_in_window(t: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i ≤ j, with |t_i − t_j| ≤ window (vectorised, via the time order)."""
    order = np.argsort(t, kind="stable")
    ts = t[order]
    n = ts.size
    hi = np.searchsorted(ts, ts + window, side="right") if np.isfinite(window) else np.full(n, n)
    counts = hi - np.arange(n)
    first = np.repeat(np.arange(n), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    second = first + (np.arange(counts.sum()) - start)
    return order[first], order[second]


def _pairs_in_groups(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i ≤ j in the time-free sense, with the same group label."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    bounds = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True])
    sizes = np.diff(bounds)
    n = g.size
    pos = np.arange(n)
    end = np.repeat(bounds[1:], sizes)
    counts = end - pos
    first = np.repeat(pos, counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    second = first + (np.arange(counts.sum()) - start)
    return order[first], order[second]


def localised_ensemble_covariance(
    anomalies: np.ndarray,
    times_h: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    time_length_h: float,
    distance_km: float | None = None,
    kind: str = "gaspari-cohn",
    groups: np.ndarray | None = None,
    max_pairs: int = 50_000_000,
) -> scipy.sparse.csr_array:
    """Localised covariance ``T ∘ (A Aᵀ)`` as a symmetric sparse matrix.

    Parameters
    ----------
    anomalies : numpy.ndarray
        (n, k) anomalies A, scaled so that the raw covariance is ``A Aᵀ`` [ppm].
    times_h : numpy.ndarray
        (n,) observation times [h] (any origin).
    lat, lon : numpy.ndarray
        (n,) positions [degrees].
    time_length_h : float
        Taper length in time [h].
    distance_km : float, optional
        Taper length in distance [km]; None: no spatial taper.
    kind : {"gaspari-cohn", "exponential"}
    groups : numpy.ndarray, optional
        (n,) labels: keep only pairs of the same group.
    max_pairs : int
        Largest number of pairs formed (a dense ``exponential`` taper forms all n²/2).

    Returns
    -------
    scipy.sparse.csr_array
        (n, n) [ppm²].

    Raises
    ------
    ValueError
        If shapes disagree, a length is not > 0, the kind is unknown, or more than
        ``max_pairs`` pairs would be formed (use ``gaspari-cohn`` or ``groups``).
    """
    A = np.asarray(anomalies, dtype=float)
    t = np.asarray(times_h, dtype=float)
    n = t.size
    if A.ndim != 2 or A.shape[0] != n or np.shape(lat) != (n,) or np.shape(lon) != (n,):
        raise ValueError(
            f"anomalies must be (n, k) and times, lat, lon (n,) with n={n}; found "
            f"{A.shape}, {np.shape(lat)}, {np.shape(lon)}"
        )
    taper(np.zeros(1), time_length_h, kind)  # checks kind and length
    if distance_km is not None:
        taper(np.zeros(1), distance_km, kind)
    if groups is not None:
        i, j = _pairs_in_groups(np.asarray(groups))
        keep = np.abs(t[i] - t[j]) <= _support(time_length_h, kind)
        i, j = i[keep], j[keep]
    else:
        window = _support(time_length_h, kind)
        n_pairs_max = n * (n + 1) // 2
        if not np.isfinite(window) and n_pairs_max > max_pairs:
            raise ValueError(
                f"an '{kind}' taper never reaches zero: {n_pairs_max:,} pairs of {n:,} "
                f"observations exceed {max_pairs:,}; use 'gaspari-cohn' (compact support) or "
                "localise within groups"
            )
        i, j = _pairs_in_window(t, window)
    if i.size > max_pairs:
        raise ValueError(
            f"{i.size:,} observation pairs inside the taper's support exceed {max_pairs:,}; "
            "shorten the localisation lengths or localise within groups"
        )
    vals = np.empty(i.size)
    for a in range(0, i.size, _PAIR_CHUNK):
        s = slice(a, min(a + _PAIR_CHUNK, i.size))
        ii, jj = i[s], j[s]
        w = taper(t[ii] - t[jj], time_length_h, kind)
        if distance_km is not None:
            d = haversine_km(lat[ii], lon[ii], lat[jj], lon[jj])
            w = w * taper(d, distance_km, kind)
        vals[s] = w * np.einsum("ij,ij->i", A[ii], A[jj])
    off = i != j
    rows = np.concatenate([i, j[off]])
    cols = np.concatenate([j, i[off]])
    data = np.concatenate([vals, vals[off]])
    out = scipy.sparse.csr_array((data, (rows, cols)), shape=(n, n))
    out.sum_duplicates()
    out.eliminate_zeros()
    return out
