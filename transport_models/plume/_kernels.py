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

Column levels are layers, not points: a level representing the heights ``[za, zb]`` above
ground (from its pressure interval) gets the pressure-weighted mean of ``G`` over the layer,

    Ḡ = ∫_za^min(zb,zi) G(z) e^{-z/H} dz / ∫_za^zb e^{-z/H} dz            [m-1]

(isothermal atmosphere of scale height ``H``: ``dp ∝ e^{-z/H} dz``), in closed form: each
image term is a Gaussian times an exponential (an erf difference after completing the square),
each Fourier term a cosine times an exponential. ``zb`` may be infinite (top level); the part
of the layer above ``zi`` contributes 0 but stays in the denominator, so the level weights
still sum over the full column.
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
    "vertical_layer_numpy",
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
def _erf_diff(x1, x0):
    # erf(x1) - erf(x0) for x1 >= x0 without cancellation in the tails
    if x0 >= 0.0:
        return math.erfc(x0) - math.erfc(x1)
    if x1 <= 0.0:
        return math.erfc(-x1) - math.erfc(-x0)
    return math.erf(x1) - math.erf(x0)


@numba.njit(cache=True, inline="always")
def _image_layer(c, a, b, shift, q, e0, hs):
    # ∫_a^b exp(-(z-c)²/2σ²) e^{-(z-a)/H} dz / (√(2π) σ), with shift = σ²/H, q = 1/(√2 σ),
    # e0 = σ²/(2H²): completing the square moves the centre to c - σ²/H
    cp = c - shift
    return 0.5 * math.exp((a - c) / hs + e0) * _erf_diff((b - cp) * q, (a - cp) * q)


@numba.njit(cache=True, inline="always")
def _cos_exp(kappa, phi, a, b, hs):
    # ∫_a^b e^{-(z-a)/H} cos(κ z + φ) dz
    inv = 1.0 / hs
    fb = math.exp(-(b - a) * inv) * (
        kappa * math.sin(kappa * b + phi) - inv * math.cos(kappa * b + phi)
    )
    fa = kappa * math.sin(kappa * a + phi) - inv * math.cos(kappa * a + phi)
    return (fb - fa) / (kappa * kappa + inv * inv)


@numba.njit(cache=True)
def _vertical_layer(za, zb, h, sz, zi, hs):
    if za >= zi:
        return 0.0
    den = -hs * math.expm1(-(zb - za) / hs)
    b = min(zb, zi)
    r = sz / zi
    if r <= SWITCH_RATIO:
        shift = sz * sz / hs
        q = 1.0 / (_SQRT2 * sz)
        e0 = 0.5 * (sz / hs) ** 2
        g = _image_layer(h, za, b, shift, q, e0, hs) + _image_layer(-h, za, b, shift, q, e0, hs)
        for n in range(1, N_TERMS + 1):
            s = 2.0 * n * zi
            t = (
                _image_layer(h + s, za, b, shift, q, e0, hs)
                + _image_layer(-h + s, za, b, shift, q, e0, hs)
                + _image_layer(h - s, za, b, shift, q, e0, hs)
                + _image_layer(-h - s, za, b, shift, q, e0, hs)
            )
            g += t
            if t <= 1e-18 * g:
                break
        return g / den
    g = -hs * math.expm1(-(b - za) / hs)
    for k in range(1, N_TERMS + 1):
        e = math.exp(-0.5 * (math.pi * k * r) ** 2)
        kap = math.pi * k / zi
        g += e * (_cos_exp(kap, -kap * h, za, b, hs) + _cos_exp(kap, kap * h, za, b, hs))
        if e <= 1e-18:
            break
    return g / (zi * den)


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
    px, py, pz, pza, pzb, phs, pw, ptr, ux, uy, speed, zi, cls, scale, sx, sy, sarea, sa, sb,
    nsub, cy, cz, h,
):  # fmt: skip
    """Footprint rows for receptors × cells (numba, parallel over rows).

    Parameters
    ----------
    px, py, pz, pw : (n_point,) float64
        Receptor sample points: frame coordinates [m], height above ground [m], weight [1].
    pza, pzb, phs : (n_point,) float64
        Layer samples (column levels): bottom and top height above ground [m] (``pzb`` may be
        inf) and scale height [m]; a point sample has ``pzb > pza`` False (e.g. NaN).
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
            za = pza[p]
            zb = pzb[p]
            hsp = phs[p]
            layer = zb > za
            wp = pw[p] * f
            if wp == 0.0 or (layer and za >= z_i) or (not layer and zr > z_i):
                continue
            for s in range(nsrc):
                dx = xr - sx[s]
                dy = yr - sy[s]
                X = dx * ex + dy * ey
                if X <= 0.0:
                    continue
                Y = -dx * ey + dy * ex
                sz = _sigma(X, az, bz, qz)
                if layer:
                    g = _vertical_layer(za, zb, h, sz, z_i, hsp)
                else:
                    g = _vertical(zr, h, sz, z_i)
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


def _erf_diff_np(x1, x0):
    pos, neg = x0 >= 0, x1 <= 0
    mid = special.erf(x1) - special.erf(x0)
    hi = special.erfc(np.where(pos, x0, 0)) - special.erfc(np.where(pos, x1, 0))
    lo = special.erfc(-np.where(neg, x1, 0)) - special.erfc(-np.where(neg, x0, 0))
    return np.where(pos, hi, np.where(neg, lo, mid))


def vertical_layer_numpy(za, zb, h, sz, zi, hs, n_terms: int = N_TERMS):
    """Pressure-weighted layer mean of the vertical density Ḡ [m-1] (numpy; see the module).

    ``za < zb`` are heights above ground [m] (``zb`` may be inf), ``hs`` the scale height [m].
    """
    za, zb, h, sz, zi, hs = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (za, zb, h, sz, zi, hs))
    )
    b = np.minimum(zb, zi)
    den = -hs * np.expm1(-(zb - za) / hs)
    n = np.arange(-n_terms, n_terms + 1).reshape((-1,) + (1,) * za.ndim)
    shift, q, e0 = sz**2 / hs, 1.0 / (_SQRT2 * sz), 0.5 * (sz / hs) ** 2
    img = 0.0
    for sign in (1.0, -1.0):
        c = sign * h + 2.0 * n * zi
        cp = c - shift
        diff = _erf_diff_np((b - cp) * q, (za - cp) * q)
        img = img + (0.5 * np.exp((za - c) / hs + e0) * diff).sum(axis=0)
    k = np.arange(1, n_terms + 1).reshape((-1,) + (1,) * za.ndim)
    e = np.exp(-0.5 * (np.pi * k * sz / zi) ** 2)
    kap = np.pi * k / zi

    def cos_exp(phi):
        inv = 1.0 / hs
        fb = np.exp(-(b - za) * inv) * (kap * np.sin(kap * b + phi) - inv * np.cos(kap * b + phi))
        fa = kap * np.sin(kap * za + phi) - inv * np.cos(kap * za + phi)
        return (fb - fa) / (kap**2 + inv**2)

    four = -hs * np.expm1(-(b - za) / hs) + (e * (cos_exp(-kap * h) + cos_exp(kap * h))).sum(0)
    g = np.where(sz / zi <= SWITCH_RATIO, img, four / zi) / den
    return np.where(za >= zi, 0.0, g)


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
    px, py, pz, pza, pzb, phs, pw, ptr, ux, uy, speed, zi, cls, scale, sx, sy, sarea, sa, sb,
    nsub, cy, cz, h,
):  # fmt: skip
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
    zir = zi[row][:, None]
    layer = (pzb > pza)[:, None]
    # point samples: dummy layer arguments (masked below)
    za = np.where(layer, pza[:, None], 0.0)
    zb = np.where(layer, pzb[:, None], 1.0)
    hs = np.where(layer, phs[:, None], 8000.0)
    g = np.where(
        layer,
        vertical_layer_numpy(za, zb, h, sig_z, zir, hs),
        vertical_numpy(np.where(layer, 0.0, zr), h, sig_z, zir),
    )
    c = crosswind_numpy(Y, sig_y, sa[None, :] * np.abs(ey), sb[None, :] * np.abs(ex))
    w = (pw * scale[row] / speed[row])[:, None]
    val = np.where(down, w * sarea[None, :] * c * g, 0.0)
    val = val.reshape(val.shape[0], -1, nsub).sum(axis=2)
    out = np.zeros((counts.size, val.shape[1]))
    nonempty = counts > 0
    out[nonempty] = np.add.reduceat(val, ptr[:-1][nonempty], axis=0)
    return out
