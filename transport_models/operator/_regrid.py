r"""Conservative regridding of footprints onto the inversion grid.

Derivation
----------
A footprint :math:`f_i` [ppm per (µmol m-2 s-1)] on source cell :math:`i` (area :math:`A_i`)
gives the enhancement :math:`\Delta c = \sum_i f_i F_i` for the cell-mean flux :math:`F_i`.
A flux given on target cells :math:`j`, seen on source cell :math:`i`, is the area mean
:math:`F_i = \sum_j (a_{ij}/A_i) F_j` with :math:`a_{ij}` the overlap area. Hence

.. math:: \Delta c = \sum_j H_j F_j, \qquad H_j = \sum_i f_i \, a_{ij} / A_i ,

i.e. ``H = W f`` with ``W[j, i] = a_ij / A_i`` (the adjoint of conservative flux regridding
target -> source). **Conserved quantity**: for a source cell fully inside the target domain
:math:`\sum_j a_{ij}/A_i = 1`, so :math:`\sum_j H_j = \sum_i f_i`: the response to a uniform
flux (equivalently the area integral of the sensitivity density :math:`f_i/A_i`, i.e.
:math:`\sum (f/A)\,A`) is preserved exactly; the part of source cells outside the target
domain is reported as ``outside`` sensitivity. For nested grids ``W`` only sums source cells.

Same CRS: ``W`` is separable, ``W = W_y ⊗ W_x``, with 1-D overlap fractions computed once per
grid pair (exact; for geographic grids the y-fractions use the exact ellipsoidal area between
latitudes, :math:`\propto q(\varphi)`, so they are area fractions, not degree fractions).
Different CRS: each source cell is split into ``k × k`` sub-cells (equal steps in the source
CRS) whose centres are transformed and located in the target grid; each carries its exact
share of the source cell's area (``1/k²`` in a projected source; ``Δq/(k ΔQ)`` by latitude in
a geographic one). Conservative, approximate only in where a sub-cell's area is assigned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from inversion.grid import Grid

from ._kernels import interval_overlaps

__all__ = ["ConservativeRegridder", "conservative_regridder"]


def _authalic_q(phi_deg: np.ndarray, e: float) -> np.ndarray:
    """:math:`q(\\varphi)`, area between equator and latitude ∝ q (Snyder 1987, eq. 3-12)."""
    s = np.sin(np.radians(np.clip(phi_deg, -90.0, 90.0)))
    if e == 0.0:
        return 2.0 * s
    es = e * s
    return (1 - e * e) * (s / (1 - es * es) - np.log((1 - es) / (1 + es)) / (2 * e))


def _eccentricity(grid: Grid) -> float:
    """First eccentricity of the ellipsoid of a geographic grid's CRS [1]."""
    ell = grid.crs.ellipsoid
    return float(np.sqrt(max(0.0, 1 - (ell.semi_minor_metre / ell.semi_major_metre) ** 2)))


def _axis_matrix(
    s_edges: np.ndarray, t_edges: np.ndarray, engine: str
) -> tuple[sp.csr_array, np.ndarray]:
    """1-D fractions ``F[j, i] = overlap(i, j) / length(i)`` and target coverage (n_t,)."""
    s_desc, t_desc = s_edges[-1] < s_edges[0], t_edges[-1] < t_edges[0]
    s = s_edges[::-1] if s_desc else s_edges
    t = (t_edges[::-1] if t_desc else t_edges).copy()
    # snap target edges that coincide with source edges up to rounding (exact nesting)
    k = np.clip(np.searchsorted(s, t), 1, s.size - 1)
    near = np.where(np.abs(s[k] - t) < np.abs(s[k - 1] - t), s[k], s[k - 1])
    tol = 1e-9 * min(np.abs(np.diff(s)).min(), np.abs(np.diff(t)).min())
    t = np.where(np.abs(near - t) <= tol, near, t)
    i, j, w = interval_overlaps(s[:-1], s[1:], t[:-1], t[1:], engine=engine)
    ns, nt = s.size - 1, t.size - 1
    if s_desc:
        i = ns - 1 - i
    if t_desc:
        j = nt - 1 - j
    s_len = np.abs(np.diff(s_edges))
    t_len = np.abs(np.diff(t[::-1] if t_desc else t))
    frac = sp.csr_array((w / s_len[i], (j, i)), shape=(nt, ns))
    cover = np.bincount(j, weights=w, minlength=nt) / t_len
    return frac, np.minimum(cover, 1.0)


@dataclass(frozen=True, eq=False)
class ConservativeRegridder:
    """Conservative footprint regridding ``H_target = W @ f_source`` (see module docstring).

    Attributes
    ----------
    source, target : Grid
    matrix : scipy.sparse.csr_array
        ``W`` (n_target, n_source) [1]: overlap area / source cell area.
    outside : numpy.ndarray
        Fraction of each source cell lying outside the target grid (n_source,) [1].
    uncovered_area_fraction : float
        Share of the target domain's area not covered by the source grid [1].
    factors : tuple of csr_array or None
        ``(W_y, W_x)`` when ``W = W_y ⊗ W_x`` (same CRS).
    """

    source: Grid
    target: Grid
    matrix: sp.csr_array
    outside: np.ndarray
    uncovered_area_fraction: float
    factors: tuple[sp.csr_array, sp.csr_array] | None
    identity: bool = False

    def regrid(self, values: np.ndarray) -> np.ndarray:
        """Regrid ``(..., n_source)`` or ``(..., ny_s, nx_s)`` values to ``(..., n_target)``."""
        v = np.asarray(values)
        lead = v.shape[: -2 if v.shape[-2:] == self.source.shape else -1]
        v = v.reshape(-1, self.source.size)
        if self.identity:
            return v.reshape(*lead, self.target.size).astype(np.float64)
        out = (self.matrix @ v.T).T
        return np.asarray(out).reshape(*lead, self.target.size)

    def as_linear_operator(self) -> LinearOperator:
        """``W`` as a matrix-free operator; same-CRS grids use the separable form."""
        if self.factors is None:
            return sp.linalg.aslinearoperator(self.matrix)
        fy, fx = self.factors
        sy, sx = self.source.shape
        ty, tx = self.target.shape

        def mv(v: np.ndarray) -> np.ndarray:
            return (fy @ (fx @ v.reshape(sy, sx).T).T).ravel()

        def rmv(u: np.ndarray) -> np.ndarray:
            return (fy.T @ (fx.T @ u.reshape(ty, tx).T).T).ravel()

        return LinearOperator(
            (self.target.size, self.source.size), matvec=mv, rmatvec=rmv, dtype=np.float64
        )


def conservative_regridder(
    source: Grid, target: Grid, *, engine: str = "numba", supersample: int = 8
) -> ConservativeRegridder:
    """Build the conservative regridding from a footprint grid to the inversion grid.

    Parameters
    ----------
    source : Grid
        Footprint grid.
    target : Grid
        Inversion grid.
    engine : {"numba", "numpy"}
        Implementation of the 1-D overlap kernel.
    supersample : int
        Sub-cells per source-cell side when the CRSs differ.

    Returns
    -------
    ConservativeRegridder
    """
    if source == target:
        n = source.size
        return ConservativeRegridder(
            source, target, sp.eye_array(n, format="csr"), np.zeros(n), 0.0, None, True
        )
    if source.crs == target.crs:
        sy_e, ty_e = source.y_edges, target.y_edges
        if source.is_geographic:
            e = _eccentricity(source)
            sy_e, ty_e = _authalic_q(sy_e, e), _authalic_q(ty_e, e)
        fy, cy = _axis_matrix(sy_e, ty_e, engine)
        fx, cx = _axis_matrix(source.x_edges, target.x_edges, engine)
        w = sp.csr_array(sp.kron(fy, fx, format="csr"))
        inside = np.outer(fy.sum(axis=0), fx.sum(axis=0)).ravel()
        area = target.cell_area.ravel()
        cover = np.outer(cy, cx).ravel()
        unc = float(1.0 - (cover * area).sum() / area.sum())
        return ConservativeRegridder(
            source, target, w, np.clip(1.0 - inside, 0.0, 1.0), max(unc, 0.0), (fy, fx)
        )
    k = int(supersample)
    off = (np.arange(k) + 0.5) / k
    xs = (source.x_edges[:-1, None] + source.dx * off[None, :]).ravel()
    ys = (source.y_edges[:-1, None] + source.dy * off[None, :]).ravel()
    xx, yy = np.meshgrid(xs, ys)
    lon, lat = source.to_lonlat(xx, yy)
    iy, ix = target.index_lonlat(lon, lat)
    src_iy = np.repeat(np.arange(source.ny), k)[:, None]
    src_ix = np.repeat(np.arange(source.nx), k)[None, :]
    src = np.broadcast_to(src_iy * source.nx + src_ix, iy.shape).ravel()
    # share of its source cell's area that each sub-cell carries: 1/k² in a projected source;
    # in a geographic one the rows of sub-cells differ in area (∝ Δq between their latitudes)
    wy = np.full((source.ny, k), 1.0 / k)
    if source.is_geographic:
        sub = source.y_edges[:-1, None] + source.dy * (np.arange(k + 1) / k)[None, :]
        dq = np.abs(np.diff(_authalic_q(sub, _eccentricity(source)), axis=1))
        wy = dq / dq.sum(axis=1, keepdims=True)
    share = np.broadcast_to(wy.reshape(-1, 1) / k, iy.shape).ravel()
    ok = iy.ravel() >= 0
    tgt = (iy.ravel() * target.nx + ix.ravel())[ok]
    w = sp.csr_array((share[ok], (tgt, src[ok])), shape=(target.size, source.size))
    w.sum_duplicates()
    outside = 1.0 - np.bincount(src[ok], weights=share[ok], minlength=source.size)
    # coverage of the target by the source grid, sampled the same way
    txs = (target.x_edges[:-1, None] + target.dx * off[None, :]).ravel()
    tys = (target.y_edges[:-1, None] + target.dy * off[None, :]).ravel()
    txx, tyy = np.meshgrid(txs, tys)
    in_src = source.index_lonlat(*target.to_lonlat(txx, tyy))[0] >= 0
    area = np.repeat(np.repeat(target.cell_area, k, axis=0), k, axis=1)
    unc = float(1.0 - (area * in_src).sum() / area.sum())
    return ConservativeRegridder(source, target, w, outside, unc, None)
