"""numba kernels of the covariance package, each with a pure-numpy twin used in tests.

Correlation codes: 0 exponential, 1 gaussian, 2 matern32 (see ``CORRELATION_KINDS``).
Coordinates are in radians, lengths in km.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from inversion.covariance._correlation import EARTH_RADIUS_KM

__all__ = [
    "AR1_APPLY",
    "AR1_SQRT",
    "AR1_SQRT_T",
    "ar1_apply_numba",
    "ar1_apply_numpy",
    "ar1_grid_numba",
    "ar1_grid_numpy",
    "ar1_matrix",
    "ar1_sqrt_numba",
    "ar1_sqrt_numpy",
    "ar1_sqrt_t_numba",
    "ar1_sqrt_t_numpy",
    "nonzero_slices_numba",
    "pairs_to_state_numba",
    "pairs_to_state_numpy",
    "points_correlation_matrix_numpy",
    "points_matmat_numba",
    "points_matmat_numpy",
]

_SQRT3 = math.sqrt(3.0)


@njit(cache=True, inline="always")
def _rho(d: float, length: float, code: int) -> float:
    r = d / length
    if code == 0:
        return math.exp(-r)
    if code == 1:
        return math.exp(-0.5 * r * r)
    s = _SQRT3 * r
    return (1.0 + s) * math.exp(-s)


@njit(cache=True, parallel=True)
def _points_matmat_numba(lat, lon, X, code, length, radius):  # pragma: no cover - compiled
    n, k = X.shape
    coslat = np.cos(lat)
    out = np.zeros((n, k))
    for i in prange(n):
        li = lat[i]
        gi = lon[i]
        ci = coslat[i]
        acc = np.zeros(k)
        for j in range(n):
            a = math.sin(0.5 * (lat[j] - li)) ** 2 + ci * coslat[j] * (
                math.sin(0.5 * (lon[j] - gi)) ** 2
            )
            if a > 1.0:
                a = 1.0
            d = 2.0 * radius * math.asin(math.sqrt(a))
            c = _rho(d, length, code)
            for col in range(k):
                acc[col] += c * X[j, col]
        for col in range(k):
            out[i, col] = acc[col]
    return out


def points_matmat_numba(
    lat_rad: np.ndarray, lon_rad: np.ndarray, X: np.ndarray, code: int, length_km: float
) -> np.ndarray:
    """C X for the great-circle correlation of points, on the fly (O(n²) time, O(n k) memory).

    Parameters
    ----------
    lat_rad, lon_rad : numpy.ndarray, shape (n,)
        Point coordinates [rad].
    X : numpy.ndarray, shape (n, k)
        Vectors to multiply.
    code : int
        Correlation code (0 exponential, 1 gaussian, 2 matern32).
    length_km : float
        Correlation length [km].

    Returns
    -------
    numpy.ndarray, shape (n, k)
    """
    return _points_matmat_numba(
        np.ascontiguousarray(lat_rad, dtype=np.float64),
        np.ascontiguousarray(lon_rad, dtype=np.float64),
        np.ascontiguousarray(X, dtype=np.float64),
        int(code),
        float(length_km),
        EARTH_RADIUS_KM,
    )


def points_correlation_matrix_numpy(
    lat_rad: np.ndarray, lon_rad: np.ndarray, code: int, length_km: float
) -> np.ndarray:
    """Explicit (n, n) great-circle correlation matrix (pure numpy; haversine distances)."""
    lat = np.asarray(lat_rad, dtype=np.float64)
    lon = np.asarray(lon_rad, dtype=np.float64)
    a = (
        np.sin(0.5 * (lat[None, :] - lat[:, None])) ** 2
        + np.cos(lat)[:, None]
        * np.cos(lat)[None, :]
        * np.sin(0.5 * (lon[None, :] - lon[:, None])) ** 2
    )
    r = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0))) / length_km
    if code == 0:
        return np.exp(-r)
    if code == 1:
        return np.exp(-0.5 * r * r)
    s = _SQRT3 * r
    return (1.0 + s) * np.exp(-s)


def points_matmat_numpy(
    lat_rad: np.ndarray, lon_rad: np.ndarray, X: np.ndarray, code: int, length_km: float
) -> np.ndarray:
    """Pure-numpy twin of :func:`points_matmat_numba` (builds the (n, n) matrix)."""
    return points_correlation_matrix_numpy(lat_rad, lon_rad, code, length_km) @ np.asarray(
        X, dtype=np.float64
    )


@njit(cache=True, parallel=True)
def pairs_to_state_numba(rows, t_idx, j_idx, Ct, std, out):  # pragma: no cover - compiled
    """``D (C_t ⊗ I)`` applied to (time, column) slices, scattered into ``out`` (nt·ns, k).

    ``rows[p]`` (ns,) is the spatial field of slice p at time ``t_idx[p]`` in column
    ``j_idx[p]``; the result is ``out[t·ns + s, j] = std[t, s] · Σ_{p: j_p = j} Ct[t, t_p] ·
    rows[p, s]`` — one pass over the output instead of zero-fill, scatter, a BLAS product and a
    scaling (which also keeps OpenBLAS's spinning threads out of the chunk loop). ``out`` is
    allocated by numpy, which asks for transparent huge pages: numba's own allocation of the
    tens of MB of a chunk costs more in 4 kB page faults than the kernel's arithmetic.
    """
    nt, ns = std.shape
    m = rows.shape[0]
    k = out.shape[1]
    for s in prange(ns):
        for t in range(nt):
            row = t * ns + s
            for j in range(k):
                out[row, j] = 0.0
        for p in range(m):
            v = rows[p, s]
            if v == 0.0:
                continue
            tp = t_idx[p]
            jp = j_idx[p]
            for t in range(nt):
                c = Ct[t, tp]
                if c != 0.0:
                    out[t * ns + s, jp] += c * v
        for t in range(nt):
            d = std[t, s]
            row = t * ns + s
            for j in range(k):
                out[row, j] *= d


def pairs_to_state_numpy(
    rows: np.ndarray,
    t_idx: np.ndarray,
    j_idx: np.ndarray,
    Ct: np.ndarray,
    std: np.ndarray,
    k: int,
) -> np.ndarray:
    """Pure-numpy twin of :func:`pairs_to_state_numba` (reference for tests)."""
    nt, ns = std.shape
    Y3 = np.zeros((nt, ns, k))
    np.add.at(Y3, (t_idx, slice(None), j_idx), rows)
    Y3 = np.einsum("ab,bsk->ask", Ct, Y3) * std[:, :, None]
    return Y3.reshape(nt * ns, k)


# ---------------------------------------------------------------- AR(1) (Markov) time axis
# The exponential correlation exp(-|t_i - t_j|/τ) on equally spaced steps is ρ^|i-j| with
# ρ = exp(-Δt/τ): a first-order autoregressive (Markov) correlation, whose inverse is
# tridiagonal. Its products need no (nt, nt) matrix: C u = f + b − u with the forward and
# backward recursions f_t = u_t + ρ f_{t−1}, b_t = u_t + ρ b_{t+1}; its lower Cholesky factor
# is L[t, j] = ρ^{t−j} c_j (c_0 = 1, c_j = sqrt(1 − ρ²)), so L w and Lᵀ v are one recursion
# each. The kernels work on (nt, ns·k) arrays (k columns per cell, interleaved) with an
# (nt, ns) scale (the prior std, shared by the k columns of a cell: no repeated copy of it is
# made), in blocks of columns that stay in cache over the whole time axis: O(nt·ns·k), one
# read of the input and one write of the output.
_AR1_BLOCK = 256


@njit(cache=True, inline="always")
def _block_cells(s0, w, k):  # pragma: no cover - compiled
    """Cell index (column // k) of the w columns from s0."""
    cells = np.empty(w, dtype=np.int64)
    for i in range(w):
        cells[i] = (s0 + i) // k
    return cells


@njit(cache=True, parallel=True)
def ar1_apply_numba(X, scale, k, rho, out):  # pragma: no cover - compiled
    """``out = C (D X)`` along axis 0 for C = ρ^|i−j|; X, out (nt, ns·k), scale (nt, ns):
    column j of X is scaled by ``scale[:, j // k]``."""
    nt, m = X.shape
    ns = m // k
    cb = max(1, _AR1_BLOCK // k)  # cells per block: the k columns of a cell stay together
    nb = (ns + cb - 1) // cb
    for b in prange(nb):
        a0 = b * cb
        a1 = min(a0 + cb, ns)
        s0, s1 = a0 * k, a1 * k
        w = s1 - s0
        carry = np.zeros(w)
        if k == 1:  # one column: the loops vectorise
            for t in range(nt):  # forward: out_t = f_t = u_t + ρ f_{t−1}
                xr, sr, orow = X[t, s0:s1], scale[t, a0:a1], out[t, s0:s1]
                for i in range(w):
                    f = sr[i] * xr[i] + rho * carry[i]
                    carry[i] = f
                    orow[i] = f
            carry[:] = 0.0
            for t in range(nt - 1, -1, -1):  # backward: out_t += ρ b_{t+1}
                xr, sr, orow = X[t, s0:s1], scale[t, a0:a1], out[t, s0:s1]
                for i in range(w):
                    back = rho * carry[i]
                    carry[i] = sr[i] * xr[i] + back
                    orow[i] += back
            continue
        sx = np.empty(w)  # the scale of each column of the block at step t
        for t in range(nt):
            xr, sr, orow = X[t, s0:s1], scale[t, a0:a1], out[t, s0:s1]
            for i in range(a1 - a0):
                sx[i * k : i * k + k] = sr[i]
            for c in range(w):
                f = sx[c] * xr[c] + rho * carry[c]
                carry[c] = f
                orow[c] = f
        carry[:] = 0.0
        for t in range(nt - 1, -1, -1):
            xr, sr, orow = X[t, s0:s1], scale[t, a0:a1], out[t, s0:s1]
            for i in range(a1 - a0):
                sx[i * k : i * k + k] = sr[i]
            for c in range(w):
                back = rho * carry[c]
                carry[c] = sx[c] * xr[c] + back
                orow[c] += back


@njit(cache=True, parallel=True)
def nonzero_slices_numba(X3):  # pragma: no cover - compiled
    """(nt, k) mask of the (time, column) slices of X3 (nt, ns, k) holding a non-zero value.

    Each slice is scanned only up to its first non-zero: a dense vector costs O(nt·k) reads,
    not a pass over X (``np.any(X3 != 0, axis=1)`` cost 15 ms for 5 columns at 1.3 M cells)."""
    nt, ns, k = X3.shape
    out = np.zeros((nt, k), dtype=np.bool_)
    for t in prange(nt):
        left = k
        for s in range(ns):
            for c in range(k):
                if not out[t, c] and X3[t, s, c] != 0.0:
                    out[t, c] = True
                    left -= 1
            if left == 0:
                break
    return out


@njit(cache=True, parallel=True)
def ar1_sqrt_numba(W, rho, scale, k, out):  # pragma: no cover - compiled
    """``out = D (L W)`` along axis 0, L the lower Cholesky factor of ρ^|i−j|; W, out
    (nt, ns·k), scale (nt, ns) as in :func:`ar1_apply_numba`."""
    nt, m = W.shape
    c = math.sqrt(1.0 - rho * rho)
    nb = (m + _AR1_BLOCK - 1) // _AR1_BLOCK
    for b in prange(nb):
        s0 = b * _AR1_BLOCK
        s1 = min(s0 + _AR1_BLOCK, m)
        w = s1 - s0
        cells = _block_cells(s0, w, k)
        carry = np.zeros(w)
        for t in range(nt):
            ct = 1.0 if t == 0 else c
            wr, sr, orow = W[t, s0:s1], scale[t], out[t, s0:s1]
            for i in range(w):
                v = rho * carry[i] + ct * wr[i]
                carry[i] = v
                orow[i] = sr[cells[i]] * v


@njit(cache=True, parallel=True)
def ar1_sqrt_t_numba(V, scale, k, rho, out):  # pragma: no cover - compiled
    """``out = Lᵀ (D V)`` along axis 0, L the lower Cholesky factor of ρ^|i−j|; V, out
    (nt, ns·k), scale (nt, ns) as in :func:`ar1_apply_numba`."""
    nt, m = V.shape
    c = math.sqrt(1.0 - rho * rho)
    nb = (m + _AR1_BLOCK - 1) // _AR1_BLOCK
    for b in prange(nb):
        s0 = b * _AR1_BLOCK
        s1 = min(s0 + _AR1_BLOCK, m)
        w = s1 - s0
        cells = _block_cells(s0, w, k)
        carry = np.zeros(w)
        for t in range(nt - 1, -1, -1):
            ct = 1.0 if t == 0 else c
            vr, sr, orow = V[t, s0:s1], scale[t], out[t, s0:s1]
            for i in range(w):
                g = sr[cells[i]] * vr[i] + rho * carry[i]
                carry[i] = g
                orow[i] = ct * g


def ar1_matrix(nt: int, rho: float) -> np.ndarray:
    """Explicit (nt, nt) correlation ρ^|i−j| (reference for the AR(1) kernels)."""
    idx = np.arange(nt)
    return rho ** np.abs(idx[:, None] - idx[None, :]).astype(np.float64)


def ar1_apply_numpy(X: np.ndarray, scale: np.ndarray, k: int, rho: float) -> np.ndarray:
    """Pure-numpy twin of :func:`ar1_apply_numba` (dense (nt, nt) product)."""
    return ar1_matrix(X.shape[0], rho) @ (np.repeat(scale, k, axis=1) * X)


def ar1_sqrt_numpy(W: np.ndarray, rho: float, scale: np.ndarray, k: int) -> np.ndarray:
    """Pure-numpy twin of :func:`ar1_sqrt_numba` (dense Cholesky factor)."""
    return np.repeat(scale, k, axis=1) * (np.linalg.cholesky(ar1_matrix(W.shape[0], rho)) @ W)


def ar1_sqrt_t_numpy(V: np.ndarray, scale: np.ndarray, k: int, rho: float) -> np.ndarray:
    """Pure-numpy twin of :func:`ar1_sqrt_t_numba` (dense Cholesky factor)."""
    return np.linalg.cholesky(ar1_matrix(V.shape[0], rho)).T @ (np.repeat(scale, k, axis=1) * V)


# ---------------------------------------------------------------- separable grid (y ⊗ x)
# The exponential of the taxicab distance, exp(−|Δy|/L − |Δx|/L), on a regular grid is
# C_y ⊗ C_x with C_y, C_x the AR(1) correlations ρ^|i−j| of each axis (ρ = exp(−spacing/L)).
# Each field (ny, nx) is treated in cache: the y recursions run along the rows (vectorised
# across the nx·k entries of a row), the field is transposed into a scratch buffer and the
# x recursions run the same way; the scale is applied as the result is written. O(n) work per
# field, no FFT, exact to rounding. ``mode`` picks the operator of both axes: 0 C, 1 the lower
# Cholesky factor L, 2 its transpose Lᵀ (L_y ⊗ L_x is the Cholesky factor of C_y ⊗ C_x).
AR1_APPLY, AR1_SQRT, AR1_SQRT_T = 0, 1, 2


@njit(cache=True, inline="always")
def _ar1_lines(src, dst, r, mode):  # pragma: no cover - compiled
    """``dst = T src`` along axis 0 of (n, w) arrays, T = C, L or Lᵀ of ρ^|i−j| (``mode``)."""
    n, w = src.shape
    carry = np.zeros(w)
    if mode == 0:
        for i in range(n):  # forward: f_i = u_i + ρ f_{i−1}
            for j in range(w):
                f = src[i, j] + r * carry[j]
                carry[j] = f
                dst[i, j] = f
        carry[:] = 0.0
        for i in range(n - 1, -1, -1):  # backward: dst_i += ρ b_{i+1}; b_i = u_i + ρ b_{i+1}
            for j in range(w):
                back = r * carry[j]
                carry[j] = src[i, j] + back
                dst[i, j] += back
        return
    c = math.sqrt(1.0 - r * r)
    if mode == 1:  # L w: v_i = ρ v_{i−1} + c_i w_i
        for i in range(n):
            ci = 1.0 if i == 0 else c
            for j in range(w):
                v = r * carry[j] + ci * src[i, j]
                carry[j] = v
                dst[i, j] = v
        return
    for i in range(n - 1, -1, -1):  # Lᵀ v: g_i = v_i + ρ g_{i+1}, out_i = c_i g_i
        ci = 1.0 if i == 0 else c
        for j in range(w):
            g = src[i, j] + r * carry[j]
            carry[j] = g
            dst[i, j] = ci * g


@njit(cache=True, parallel=True)
def ar1_grid_numba(F, ry, rx, mode, scale, out):  # pragma: no cover - compiled
    """``out[s] = scale[s] · (T_y ⊗ T_x) F[s]`` for fields F, out (m, ny, nx, k) (C order),
    T = C, L or Lᵀ of each axis (``mode`` 0, 1, 2); ``scale`` (m, ny, nx), or shape (0, 0, 0)
    for none. The k columns of a cell are interleaved and share its scale."""
    m, ny, nx, k = F.shape
    has_scale = scale.shape[0] > 0
    for s in prange(m):
        a = np.empty((ny, nx * k))
        _ar1_lines(F[s].reshape(ny, nx * k), a, ry, mode)
        tb = np.empty((nx, ny * k))
        fb = np.empty((nx, ny * k))
        if k == 1:  # one column: plain 2-D transposes (no interleave arithmetic)
            for i in range(ny):
                for j in range(nx):
                    tb[j, i] = a[i, j]
            _ar1_lines(tb, fb, rx, mode)
            o = out[s].reshape(ny, nx)
            if has_scale:
                sc = scale[s]
                for i in range(ny):
                    for j in range(nx):
                        o[i, j] = sc[i, j] * fb[j, i]
            else:
                for i in range(ny):
                    for j in range(nx):
                        o[i, j] = fb[j, i]
            continue
        for i in range(ny):
            for j in range(nx):
                for c in range(k):
                    tb[j, i * k + c] = a[i, j * k + c]
        _ar1_lines(tb, fb, rx, mode)
        o = out[s]
        for i in range(ny):
            for j in range(nx):
                sc = scale[s, i, j] if has_scale else 1.0
                for c in range(k):
                    o[i, j, c] = sc * fb[j, i * k + c]


def ar1_grid_numpy(
    F: np.ndarray, ry: float, rx: float, mode: int, scale: np.ndarray | None = None
) -> np.ndarray:
    """Pure-numpy twin of :func:`ar1_grid_numba` (dense per-axis matrices)."""
    ny, nx = F.shape[1:3]
    Ty, Tx = ar1_matrix(ny, ry), ar1_matrix(nx, rx)
    if mode != AR1_APPLY:
        Ty, Tx = np.linalg.cholesky(Ty), np.linalg.cholesky(Tx)
        if mode == AR1_SQRT_T:
            Ty, Tx = Ty.T, Tx.T
    out = np.einsum("ab,sbck,dc->sadk", Ty, F, Tx)
    return out if scale is None else out * scale[..., None]
