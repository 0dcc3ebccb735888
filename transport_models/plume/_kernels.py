"""Numerical kernels of the Gaussian plume footprint (numba, with pure-numpy twins).

Notation (all lengths in m): a receptor point at frame coordinates (xr, yr) and height z above
ground; a (sub-)source at (xs, ys) released at height h; the wind blows towards the unit vector
(ux, uy) in the frame. Downwind distance ``X = (xr-xs)·ux + (yr-ys)·uy`` and crosswind offset
``Y = -(xr-xs)·uy + (yr-ys)·ux``. For ``X > 0`` the concentration per unit emission rate is

    c / Q = C(Y; σy, wa, wb) · G(z; h, σz, zi) / u            [s m-3]

with the crosswind density ``C`` [m-1] and the vertical density ``G`` [m-1]:

* ``C = exp(-Y²/2σy²) / (√(2π) σy)`` for a point source; for a rectangular source of sides
  ``sa``, ``sb`` [m] whose projections on the crosswind axis are ``wa = sa|uy|`` and
  ``wb = sb|ux|``, ``C`` is that Gaussian convolved with the trapezoidal crosswind profile of
  the rectangle (exact; the cell is still taken at its centre's downwind distance).
* ``G = V / (√(2π) σz)`` with the image sum for ground reflection and the reflecting lid at zi,
  ``V = Σ_{n=-N..N} exp(-(z-h-2n zi)²/2σz²) + exp(-(z+h-2n zi)²/2σz²)``. By Poisson summation
  the same infinite sum equals the Fourier series
  ``G = (1/zi) [1 + Σ_{k>=1} exp(-π²k²σz²/2zi²) (cos(πk(z-h)/zi) + cos(πk(z+h)/zi))]``, whose
  first term is the well-mixed limit 1/zi. The image sum is used for σz/zi <= √(2/π) and the
  Fourier series above; at the switch both series' omitted terms are below exp(-38), so the
  switch is continuous to rounding. Receptors above zi get ``G = 0`` (the plume is capped).

Upwind points (``X <= 0``) contribute exactly 0.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy import special

__all__ = [
    "N_TERMS",
    "SWITCH_RATIO",
    "crosswind_numpy",
    "plume_rows_numba",
    "plume_rows_numpy",
    "vertical_fourier",
    "vertical_image",
    "vertical_numpy",
]

#: σz/zi at which the vertical density switches from the image sum to the Fourier series.
SWITCH_RATIO = math.sqrt(2.0 / math.pi)
#: Number of image pairs / Fourier terms kept on each side (omitted terms < exp(-38)).
N_TERMS = 4
_SQRT2PI = math.sqrt(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)
_NARROW = 1e-4  # crosswind widths below this fraction of σy are treated as 0 (error < 1e-9)


# ---------------------------------------------------------------------------- numba kernels
@numba.njit(cache=True, inline="always")
def _sigma(x, a, b, p):
    if b == 0.0 or p == 0.0:
        return a * x
    return a * x * math.pow(1.0 + b * x, p)


@numba.njit(cache=True)
def _vertical(z, h, sz, zi):
    if z > zi:
        return 0.0
    r = sz / zi
    if r <= SWITCH_RATIO:
        inv = 0.5 / (sz * sz)
        g = math.exp(-((z - h) ** 2) * inv) + math.exp(-((z + h) ** 2) * inv)
        for n in range(1, N_TERMS + 1):
            s = 2.0 * n * zi
            t = (
                math.exp(-((z - h - s) ** 2) * inv)
                + math.exp(-((z + h - s) ** 2) * inv)
                + math.exp(-((z - h + s) ** 2) * inv)
                + math.exp(-((z + h + s) ** 2) * inv)
            )
            g += t
            if t <= 1e-18 * g:
                break
        return g / (_SQRT2PI * sz)
    g = 1.0
    for k in range(1, N_TERMS + 1):
        e = math.exp(-0.5 * (math.pi * k * r) ** 2)
        g += e * (math.cos(math.pi * k * (z - h) / zi) + math.cos(math.pi * k * (z + h) / zi))
        if e <= 1e-18:
            break
    return g / zi


@numba.njit(cache=True, inline="always")
def _Phi(t):
    return 0.5 * math.erfc(-t / _SQRT2)


@numba.njit(cache=True, inline="always")
def _Psi(t):
    # antiderivative of the normal CDF: ∫Φ = tΦ(t) + φ(t)
    return t * _Phi(t) + math.exp(-0.5 * t * t) / _SQRT2PI


@numba.njit(cache=True)
def _crosswind(Y, s, wa, wb):
    w1 = max(wa, wb)
    w2 = min(wa, wb)
    if w1 <= _NARROW * s:
        return math.exp(-0.5 * (Y / s) ** 2) / (_SQRT2PI * s)
    if w2 <= _NARROW * s:
        return max((_Phi((Y + 0.5 * w1) / s) - _Phi((Y - 0.5 * w1) / s)) / w1, 0.0)
    hp = 0.5 * (w1 + w2)
    hm = 0.5 * (w1 - w2)
    v = _Psi((Y + hp) / s) - _Psi((Y + hm) / s) - _Psi((Y - hm) / s) + _Psi((Y - hp) / s)
    return max(v * s / (w1 * w2), 0.0)


@numba.njit(parallel=True, cache=True)
def plume_rows_numba(
    px, py, pz, pw, ptr, ux, uy, speed, zi, cls, scale, sx, sy, sarea, sa, sb, nsub, cy, cz, h
):
    """Footprint rows for receptors × cells (numba, parallel over rows).

    Parameters
    ----------
    px, py, pz, pw : (n_point,) float64
        Receptor sample points: frame coordinates [m], height above ground [m], weight [1].
    ptr : (n_row + 1,) int64
        Points of row ``i`` are ``ptr[i]:ptr[i+1]`` (row = weighted sum of its points).
    ux, uy, speed, zi, scale : (n_row,) float64
        Downwind unit vector, wind speed [m s-1], mixing height [m], 1 / n_air [m3 mol-1].
    cls : (n_row,) int64
        Stability class index 0–5.
    sx, sy, sarea, sa, sb : (n_cell * nsub,) float64
        Sub-sources, cell-major: position [m], area [m²], side lengths along frame x/y [m]
        (0 for point sources).
    nsub : int
        Sub-sources per cell.
    cy, cz : (6, 3) float64
        Briggs coefficients of σy and σz.
    h : float
        Release height [m].

    Returns
    -------
    (n_row, n_cell) float64
        Footprints [ppm per (µmol m-2 s-1)].
    """
    nrow = ptr.size - 1
    nsrc = sx.size
    out = np.zeros((nrow, nsrc // nsub))
    for i in numba.prange(nrow):
        ex = ux[i]
        ey = uy[i]
        k = cls[i]
        ay, by, qy = cy[k, 0], cy[k, 1], cy[k, 2]
        az, bz, qz = cz[k, 0], cz[k, 1], cz[k, 2]
        f = scale[i] / speed[i]
        z_i = zi[i]
        for p in range(ptr[i], ptr[i + 1]):
            xr = px[p]
            yr = py[p]
            zr = pz[p]
            wp = pw[p] * f
            if zr > z_i or wp == 0.0:
                continue
            for s in range(nsrc):
                dx = xr - sx[s]
                dy = yr - sy[s]
                X = dx * ex + dy * ey
                if X <= 0.0:
                    continue
                Y = -dx * ey + dy * ex
                g = _vertical(zr, h, _sigma(X, az, bz, qz), z_i)
                if g == 0.0:
                    continue
                c = _crosswind(Y, _sigma(X, ay, by, qy), sa[s] * abs(ey), sb[s] * abs(ex))
                out[i, s // nsub] += wp * sarea[s] * c * g
    return out


# ---------------------------------------------------------------------------- numpy twins
def vertical_image(z, h, sz, zi, n_terms: int = N_TERMS):
    """Image-sum vertical density G [m-1] (numpy; no lid cut-off, no switch)."""
    z, h, sz, zi = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (z, h, sz, zi)))
    n = np.arange(-n_terms, n_terms + 1).reshape((-1,) + (1,) * z.ndim)
    inv = 0.5 / sz**2
    s = 2.0 * n * zi
    v = np.exp(-((z - h - s) ** 2) * inv) + np.exp(-((z + h - s) ** 2) * inv)
    return v.sum(axis=0) / (_SQRT2PI * sz)


def vertical_fourier(z, h, sz, zi, n_terms: int = N_TERMS):
    """Fourier-series vertical density G [m-1] (numpy; the well-mixed 1/zi plus corrections)."""
    z, h, sz, zi = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (z, h, sz, zi)))
    k = np.arange(1, n_terms + 1).reshape((-1,) + (1,) * z.ndim)
    e = np.exp(-0.5 * (np.pi * k * sz / zi) ** 2)
    c = np.cos(np.pi * k * (z - h) / zi) + np.cos(np.pi * k * (z + h) / zi)
    return (1.0 + (e * c).sum(axis=0)) / zi


def vertical_numpy(z, h, sz, zi):
    """Vertical density G [m-1] with the lid cut-off and the documented switch (numpy)."""
    z, h, sz, zi = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (z, h, sz, zi)))
    near = sz / zi <= SWITCH_RATIO
    g = np.where(near, vertical_image(z, h, sz, zi), vertical_fourier(z, h, sz, zi))
    return np.where(z > zi, 0.0, g)


def _Phi_np(t):
    return 0.5 * special.erfc(-t / _SQRT2)


def _Psi_np(t):
    return t * _Phi_np(t) + np.exp(-0.5 * t * t) / _SQRT2PI


def crosswind_numpy(Y, s, wa, wb):
    """Crosswind density C [m-1] of a point (wa = wb = 0) or rectangular source (numpy)."""
    Y, s, wa, wb = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (Y, s, wa, wb)))
    w1, w2 = np.maximum(wa, wb), np.minimum(wa, wb)
    point = w1 <= _NARROW * s
    line = ~point & (w2 <= _NARROW * s)
    with np.errstate(divide="ignore", invalid="ignore"):
        c0 = np.exp(-0.5 * (Y / s) ** 2) / (_SQRT2PI * s)
        c1 = (_Phi_np((Y + 0.5 * w1) / s) - _Phi_np((Y - 0.5 * w1) / s)) / w1
        hp, hm = 0.5 * (w1 + w2), 0.5 * (w1 - w2)
        v = _Psi_np((Y + hp) / s) - _Psi_np((Y + hm) / s) - _Psi_np((Y - hm) / s)
        c2 = (v + _Psi_np((Y - hp) / s)) * s / (w1 * w2)
    return np.where(point, c0, np.maximum(np.where(line, c1, c2), 0.0))


def plume_rows_numpy(
    px, py, pz, pw, ptr, ux, uy, speed, zi, cls, scale, sx, sy, sarea, sa, sb, nsub, cy, cz, h
):
    """Pure-numpy twin of :func:`plume_rows_numba` (same arguments and result).

    Vectorised over (points × sub-sources); memory grows as their product, so callers chunk.
    """
    counts = np.diff(ptr)
    row = np.repeat(np.arange(counts.size), counts)
    X0 = px[:, None] - sx[None, :]
    Y0 = py[:, None] - sy[None, :]
    ex, ey = ux[row][:, None], uy[row][:, None]
    X = X0 * ex + Y0 * ey
    Y = -X0 * ey + Y0 * ex
    down = X > 0
    Xs = np.where(down, X, 1.0)
    k = cls[row][:, None]
    sig_y = cy[k, 0] * Xs * (1.0 + cy[k, 1] * Xs) ** cy[k, 2]
    sig_z = cz[k, 0] * Xs * (1.0 + cz[k, 1] * Xs) ** cz[k, 2]
    zr = pz[:, None]
    g = vertical_numpy(zr, h, sig_z, zi[row][:, None])
    c = crosswind_numpy(Y, sig_y, sa[None, :] * np.abs(ey), sb[None, :] * np.abs(ex))
    w = (pw * scale[row] / speed[row])[:, None]
    val = np.where(down, w * sarea[None, :] * c * g, 0.0)
    val = val.reshape(val.shape[0], -1, nsub).sum(axis=2)
    out = np.zeros((counts.size, val.shape[1]))
    nonempty = counts > 0
    out[nonempty] = np.add.reduceat(val, ptr[:-1][nonempty], axis=0)
    return out
