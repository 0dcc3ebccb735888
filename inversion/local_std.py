"""Posterior std of chosen cells from the observations near them (local windows).

Where neither the complete spectrum nor enough Ritz pairs fit (10⁵ observations and more), the
posterior variance of a cell can be computed exactly *given a subset of the observations*:

    var(x_c | y_L) = B_cc − g_Lᵀ S_L⁻¹ g_L,   S_L = H_L B H_Lᵀ + R_LL,   g_L = H_L B e_c,

with L the observations whose footprints touch a window around the cell (``halo_cells`` cells
and ``halo_steps`` steps each way). Conditioning on fewer observations never lowers a
Gaussian posterior variance, so the result is an **upper bound** on the exact std, and equal to
it once the window holds every observation that matters. Observations outside L matter through
their correlation with those in L, which fades with the distance in space and time when
footprints and the prior correlation are local; the halo sets the trade-off and
``benchmarks/urban_scale.py --local-std`` measures it against exact cells.

Every product is exact and local: H_L B H_Lᵀ only involves B on the bounding box of the
footprints of L (:meth:`KroneckerCovariance.restrict`: a principal submatrix of B is the same
kernel on the box). Each footprint slice (an observation at one step) is convolved with C_s
once; C_t then only weighs pairs of slices, so a window costs one FFT convolution per slice,
a sparse × dense product over the box's grid and one Cholesky of |L| × |L|, whatever the
size of the whole problem.

:func:`local_posterior_std` solves one window per chosen cell; :func:`local_std_map` cuts the
grid into tiles and solves every cell of a tile from one window (the tile widened by the halo),
so a whole map costs one window per tile. Windows are independent (a natural unit for a batch
of jobs).

Needs a sparse H and B = D (C_t ⊗ C_s) D on one regular grid per sector (state order (sector,
time, y, x)), optionally followed by blocks of global parameters (background offsets, site
biases: any covariance, independent of the flux). Those parameters enter every window's S_L
through the observations that see them, but are not local: their own std needs every
observation (:meth:`inversion.CGPosterior.local_std` takes it from certified solves). R may be
diagonal, dense, or block-diagonal of those (correlated groups of observations): S_L takes
its principal submatrix on L, which is the exact error covariance of the window's
observations, so the result is still the exact posterior given them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from inversion._hyper_blocks import sparse_covariance
from inversion._sparse import spmm_threaded
from inversion.covariance import (
    BlockDiagonalCovariance,
    CovarianceOperator,
    DiagonalCovariance,
    KroneckerCovariance,
)
from inversion.covariance._kronecker import _GRID_OPERATORS
from inversion.errors import ShapeMismatchError

__all__ = ["LocalStd", "auto_halo", "local_posterior_std", "local_std_map"]

logger = logging.getLogger(__name__)

#: Memory for one chunk of B_box H_Lᵀ columns [bytes].
_CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class LocalStd:
    """Local-window posterior std of chosen cells.

    Attributes
    ----------
    cells : numpy.ndarray
        State indices of the cells, shape (m,).
    std : numpy.ndarray
        Posterior std given the window's observations [unit of the state], shape (m,): an
        upper bound on the exact posterior std.
    prior_std : numpy.ndarray
        Prior std of the cells [unit of the state], shape (m,).
    n_obs : numpy.ndarray
        Observations in each cell's window, shape (m,).
    box_cells : numpy.ndarray
        State cells of the boxes on which B was applied, per cell (summed over sectors).
    seconds : float
        Wall time [s].
    """

    cells: np.ndarray
    std: np.ndarray
    prior_std: np.ndarray
    n_obs: np.ndarray
    box_cells: np.ndarray
    seconds: float


def _blocks(B) -> tuple[list[KroneckerCovariance], CovarianceOperator | None]:
    """The Kronecker blocks of B in state order (one per sector), and the covariance of the
    global parameters after them (None if there are none)."""
    if isinstance(B, KroneckerCovariance):
        _check_grid_blocks([B])
        return [B], None
    if isinstance(B, BlockDiagonalCovariance) and B.index is None:
        blocks = list(B.blocks)
        n_grid = 0
        while n_grid < len(blocks) and isinstance(blocks[n_grid], KroneckerCovariance):
            n_grid += 1
        rest = blocks[n_grid:]
        if n_grid and not any(isinstance(b, KroneckerCovariance) for b in rest):
            _check_grid_blocks(blocks[:n_grid])
            extra = (
                None if not rest else rest[0] if len(rest) == 1 else BlockDiagonalCovariance(rest)
            )
            return blocks[:n_grid], extra
    raise TypeError(
        "local windows need B = KroneckerCovariance on a regular grid, or a "
        "BlockDiagonalCovariance in state order of such blocks (one per sector, as "
        "kronecker_prior builds) optionally followed by blocks of global parameters; found "
        f"{type(B).__name__}"
    )


def _check_grid_blocks(blocks: list[KroneckerCovariance]) -> None:
    """Refuse a C_s that is not on a regular grid (windows are boxes of grid cells)."""
    for b in blocks:
        if not isinstance(b.spatial, _GRID_OPERATORS):
            raise TypeError(
                "local windows need a regular-grid C_s (RegularGridCorrelation or "
                f"SeparableGridCorrelation, a projected grid); found {type(b.spatial).__name__}"
            )


def auto_halo(B) -> tuple[int, int]:
    """A default window halo for B: three spatial correlation lengths in cells, one temporal
    e-folding time in steps (the settings measured in ``benchmarks/urban_scale.py``: at 5
    cells and 6 steps, a halo of 15 cells and 4 steps is within 0.7 % of the exact std).

    Parameters
    ----------
    B : KroneckerCovariance or BlockDiagonalCovariance
        As :func:`local_posterior_std`.

    Returns
    -------
    (int, int)
        Halo in grid cells and in time steps.

    Raises
    ------
    TypeError
        If B is not of a supported kind.
    """
    blocks, _ = _blocks(B)
    sp_corr, temporal = blocks[0].spatial, blocks[0].temporal
    cells = int(np.ceil(3.0 * sp_corr.length_km / min(sp_corr.spacing_km)))
    steps = 0
    tau = getattr(temporal, "tau_hours", None)
    times = getattr(temporal, "times_hours", None)
    if tau is not None and times is not None and len(times) > 1:
        steps = int(np.ceil(tau / float(np.median(np.diff(times)))))
    return cells, steps


def _box_columns(offset: int, dims: tuple[int, int, int], box) -> np.ndarray:
    """State indices of a (t, y, x) box of a block at ``offset``, in the box's C order."""
    _, ny, nx = dims
    (t0, t1), (y0, y1), (x0, x1) = box
    tt, yy, xx = np.meshgrid(np.arange(t0, t1), np.arange(y0, y1), np.arange(x0, x1), indexing="ij")
    return (offset + (tt * ny + yy) * nx + xx).ravel()


def _sector_terms(
    Bb: KroneckerCovariance, HLb: sp.coo_array, n_l: int, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """H_L B_b H_Lᵀ (n_l, n_l) and the rows ``rows`` (box cells) of B_b H_Lᵀ, from the
    observations' footprints HLb (n_l, box cells) on the box of B_b = D (C_t ⊗ C_s) D.

    The footprint of observation o at box step t is a pair p = (o, t) with the D-scaled field
    u_p; with F_p = C_s u_p (one FFT convolution per pair, no expansion over time),
    (H B Hᵀ)[o, o'] = Σ_{p ∈ o, p' ∈ o'} C_t[t_p, t_p'] u_p·F_p' and
    (B Hᵀ)[c, o] = D_c Σ_{p ∈ o} C_t[t_c, t_p] F_p[s_c].
    """
    nt_b, ns_b = Bb.nt, Bb.ns
    std = Bb.std  # (nt_b, ns_b)
    Ct = Bb.temporal.to_dense()
    o, c, v = HLb.row, HLb.col, HLb.data
    t, s = np.divmod(c, ns_b)
    key, pair_of = np.unique(o * nt_b + t, return_inverse=True)
    pair_obs, pair_t = np.divmod(key, nt_b)
    n_p = key.size
    U = sp.csr_array((v * std[t, s], (pair_of, s)), shape=(n_p, ns_b))
    P = sp.csr_array((np.ones(n_p), (pair_obs, np.arange(n_p))), shape=(n_l, n_p))
    ct_c, s_c = np.divmod(rows, ns_b)
    W = np.empty((n_p, n_p))
    Q = np.empty((rows.size, n_p))
    chunk = max(1, _CHUNK_BYTES // (8 * ns_b))
    for a in range(0, n_p, chunk):
        b = min(a + chunk, n_p)
        F = Bb.spatial._apply_rows(U[a:b].toarray())  # (chunk, ns_b) = C_s u_p
        W[:, a:b] = spmm_threaded(U, n_p, np.ascontiguousarray(F.T))
        Q[:, a:b] = F[:, s_c].T * Ct[np.ix_(ct_c, pair_t[a:b])]
    W *= Ct[np.ix_(pair_t, pair_t)]
    K = P @ (P @ W).T  # W is symmetric
    G = (P @ Q.T).T * std.ravel()[rows][:, None]
    return K, G


class _Windows:
    """The shared machinery: H by rows and columns, B's blocks, and one window's solve."""

    def __init__(self, H, B, R, halo_cells: int, halo_steps: int) -> None:
        self.blocks, self.extra = _blocks(B)
        if not sp.issparse(H):
            raise TypeError(
                f"H must be a scipy.sparse array (footprints); found {type(H).__name__}"
            )
        n_obs, n_state = H.shape
        if B.shape[0] != n_state or R.shape[0] != n_obs:
            raise ShapeMismatchError(
                f"H is {H.shape}, B {B.shape}, R {R.shape}: H must be (n_obs, n_state) with B "
                "(n_state, n_state) and R (n_obs, n_obs)"
            )
        self.r_diag = R.diag() if isinstance(R, DiagonalCovariance) else None
        self.r_sparse = None
        if self.r_diag is None:
            try:
                self.r_sparse = sparse_covariance(R)
            except TypeError:
                raise TypeError(
                    "local windows need R diagonal, dense or block-diagonal of those (its "
                    f"principal submatrices); found {type(R).__name__}"
                ) from None
        for name, v in (("halo_cells", halo_cells), ("halo_steps", halo_steps)):
            if int(v) != v or v < 0:
                raise ValueError(f"{name} must be an int >= 0; found {v!r}")
        self.halo = (int(halo_steps), int(halo_cells), int(halo_cells))
        self.Hr = sp.csr_array(H)
        self.Hc = sp.csc_array(H)
        self.b_diag = B.diag()
        self.n_state = n_state
        self.dims = [(b.nt, *b.spatial.grid_shape) for b in self.blocks]
        if len(set(self.dims)) != 1:
            raise ShapeMismatchError(
                f"the sector blocks of B have different grids {sorted(set(self.dims))}; local "
                "windows need one (time, y, x) grid for every sector"
            )
        self.offsets = np.concatenate([[0], np.cumsum([b.n for b in self.blocks])])
        self.n_grid = int(self.offsets[-1])  # the global parameters follow

    def _r_block(self, L: np.ndarray) -> np.ndarray:
        """R_LL, the error covariance of the observations L."""
        if self.r_diag is not None:
            return np.diag(self.r_diag[L])
        return self.r_sparse[L][:, L].toarray()

    def _extra_term(self, HL: sp.csr_array) -> np.ndarray | None:
        """H_L,g B_g H_L,gᵀ over the global parameters g the observations L see."""
        if self.extra is None:
            return None
        He = sp.csc_array(HL[:, self.n_grid :])
        seen = np.flatnonzero(np.diff(He.indptr))
        if seen.size == 0:
            return None
        E = np.zeros((self.extra.n, seen.size))
        E[seen, np.arange(seen.size)] = 1.0
        Bg = self.extra.matmat(E)[seen]  # principal submatrix on the parameters seen
        Hs = He[:, seen]
        return np.asarray(Hs @ (Hs @ Bg).T)

    def locate(self, cells: np.ndarray) -> tuple[np.ndarray, ...]:
        """(block, t, y, x) of state indices."""
        k = np.searchsorted(self.offsets, cells, side="right") - 1
        _, ny, nx = self.dims[0]
        t, rem = np.divmod(cells - self.offsets[k], ny * nx)
        y, x = np.divmod(rem, nx)
        return k, t, y, x

    def solve(self, core) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Posterior variance of every cell of the ``core`` box ((t0, t1), (y0, y1), (x0, x1))
        in every sector, given the observations touching the core widened by the halo.

        Returns (cells, variance, observations used, box cells), cells in state order.
        """
        dims = self.dims[0]
        window = tuple(
            (max(0, a - h), min(n, b + h))
            for (a, b), h, n in zip(core, self.halo, dims, strict=True)
        )
        nb = len(self.blocks)
        core_cells = [_box_columns(int(self.offsets[j]), dims, core) for j in range(nb)]
        cells = np.concatenate(core_cells)
        # an observation seeing any sector at the window's places and times
        cols = np.concatenate([_box_columns(int(self.offsets[j]), dims, window) for j in range(nb)])
        L = np.unique(self.Hc[:, cols].indices)
        if L.size == 0:  # nothing observes the window: the prior
            return cells, self.b_diag[cells], 0, 0
        HL = self.Hr[L]
        K = self._r_block(L)
        extra = self._extra_term(HL)
        if extra is not None:
            K += extra
        G_core = np.zeros((cells.size, L.size))
        n_box = 0
        row0 = 0
        _, ny, nx = dims
        for j, block in enumerate(self.blocks):
            lo, hi = int(self.offsets[j]), int(self.offsets[j + 1])
            sub = sp.csc_array(HL[:, lo:hi])
            used = np.flatnonzero(np.diff(sub.indptr))
            ti, rem = np.divmod(used, ny * nx)
            yi, xi = np.divmod(rem, nx)
            # the box holds the footprints of L in this sector and the core
            box = tuple(
                (int(min(v.min(initial=a), a)), int(max(v.max(initial=b - 1) + 1, b)))
                for v, (a, b) in zip((ti, yi, xi), core, strict=True)
            )
            Bb = block.restrict(*box)
            n_box += Bb.n
            HLb = sp.coo_array(sub[:, _box_columns(0, dims, box)])  # all of L's entries
            (bt, _), (by, by1), (bx, bx1) = box
            core_rel = tuple((a - o, b - o) for (a, b), o in zip(core, (bt, by, bx), strict=True))
            rows = _box_columns(0, (0, by1 - by, bx1 - bx), core_rel)
            K_add, G_blk = _sector_terms(Bb, HLb, L.size, rows)
            K += K_add
            G_core[row0 : row0 + rows.size] = G_blk
            row0 += rows.size
        try:
            chol = scipy.linalg.cholesky(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError(
                f"local std: S_L = H_L B H_Lᵀ + R_L of the window {window} ({L.size} "
                "observations) is not positive definite; check R (every variance > 0)"
            ) from None
        Z = scipy.linalg.solve_triangular(chol, G_core.T, lower=True, check_finite=False)
        var = self.b_diag[cells] - np.einsum("ij,ij->j", Z, Z)
        bad = var < -1e-10 * self.b_diag[cells]
        if bad.any():
            c = int(cells[np.argmax(bad)])
            raise ArithmeticError(
                f"local std: negative variance at cell {c} (prior {self.b_diag[c]:.3g}); the "
                "window's products lost precision"
            )
        return cells, np.maximum(var, 0.0), int(L.size), n_box


def _result(cells, var, b_diag, n_obs, n_box, t0) -> LocalStd:
    return LocalStd(
        cells=cells,
        std=np.sqrt(var),
        prior_std=np.sqrt(b_diag[cells]),
        n_obs=np.asarray(n_obs, dtype=np.int64),
        box_cells=np.asarray(n_box, dtype=np.int64),
        seconds=time.perf_counter() - t0,
    )


def local_posterior_std(
    H,
    B,
    R: CovarianceOperator,
    cells,
    *,
    halo_cells: int,
    halo_steps: int,
) -> LocalStd:
    """Posterior std of ``cells`` given the observations whose footprints touch a window
    around each cell (see the module docstring; an upper bound on the exact std).

    Parameters
    ----------
    H : scipy.sparse array or matrix
        Observation operator (n_obs, n_state) [ppm per unit of the state].
    B : KroneckerCovariance or BlockDiagonalCovariance
        Prior covariance on a regular grid (state order (sector, time, y, x)), optionally
        followed by blocks of global parameters (see the module docstring).
    R : CovarianceOperator
        Observation error covariance [ppm²]: diagonal, dense, or block-diagonal of those.
    cells : array_like of int
        State indices whose std is wanted.
    halo_cells : int
        Window half-width in grid cells (y and x), >= 0.
    halo_steps : int
        Window half-width in state time steps, >= 0.

    Returns
    -------
    LocalStd
        ``std`` [unit of the state] in the order of ``cells``.

    Raises
    ------
    TypeError
        If B or R is not of a supported kind, or H is not sparse.
    ShapeMismatchError
        If the shapes of H, B and R disagree or a cell index is out of range.
    ValueError
        For a negative halo, or a cell that is a global parameter.
    """
    t0 = time.perf_counter()
    win = _Windows(H, B, R, halo_cells, halo_steps)
    cells = np.atleast_1d(np.asarray(cells, dtype=np.int64))
    if cells.size and (cells.min() < 0 or cells.max() >= win.n_state):
        raise ShapeMismatchError(f"cells must be state indices in [0, {win.n_state})")
    if cells.size and cells.max() >= win.n_grid:
        raise ValueError(
            f"cells {cells[cells >= win.n_grid][:5].tolist()} are global parameters (state "
            f"index >= {win.n_grid}, after the grid blocks of B), not grid cells: their "
            "posterior std needs every observation (use Posterior.aggregate)"
        )
    var = np.empty(cells.size)
    n_obs = np.zeros(cells.size, dtype=np.int64)
    n_box = np.zeros(cells.size, dtype=np.int64)
    k, t, y, x = win.locate(cells)
    for i in range(cells.size):  # one window per cell (every sector at its place and time)
        core = ((int(t[i]), int(t[i]) + 1), (int(y[i]), int(y[i]) + 1), (int(x[i]), int(x[i]) + 1))
        got, v, n_obs[i], n_box[i] = win.solve(core)
        var[i] = v[k[i]]  # the cell's own sector (the core holds one cell per sector)
        assert got[k[i]] == cells[i]
    logger.info(
        "local posterior std of %d cells (halo %d cells, %d steps): %.1f s, median %d obs",
        cells.size, halo_cells, halo_steps, time.perf_counter() - t0,
        int(np.median(n_obs)) if cells.size else 0,
    )  # fmt: skip
    return _result(cells, var, win.b_diag, n_obs, n_box, t0)


def _solve_tiles(win: _Windows, tiles: list) -> list:
    """Solve a group of tiles (a task on a dask worker, or in this process)."""
    return [win.solve(core) for core in tiles]


def local_std_map(
    H,
    B,
    R: CovarianceOperator,
    *,
    core_cells: int,
    core_steps: int,
    halo_cells: int,
    halo_steps: int,
    progress: bool = True,
    client: Any = None,
) -> LocalStd:
    """Posterior std of every cell, tile by tile: the grid is cut into cores of ``core_steps``
    × ``core_cells`` × ``core_cells`` (time, y, x); each core's cells (every sector) are
    solved together from the observations touching the core widened by the halo (an upper
    bound on the exact std, as :func:`local_posterior_std`).

    Parameters
    ----------
    H, B, R
        As :func:`local_posterior_std`.
    core_cells, core_steps : int
        Tile size in grid cells (y and x) and time steps, >= 1.
    halo_cells, halo_steps : int
        Window half-widths beyond the core, >= 0.
    progress : bool
        Log the tiles done and the time left (INFO, at most every 10 s).
    client : distributed.Client, optional
        Spread the tiles over its workers (H, B and R are sent to each worker once, in
        groups of tiles, about four groups per worker thread); the result is the same as
        without it.

    Returns
    -------
    LocalStd
        ``cells`` = every grid cell (state indices 0 .. n_grid − 1, in order; global parameters
        after the grid blocks are left out); ``n_obs`` and ``box_cells`` per cell (those of its
        tile).

    Raises
    ------
    TypeError, ShapeMismatchError, ValueError
        As :func:`local_posterior_std`; ValueError for a core size < 1.
    """
    t0 = time.perf_counter()
    win = _Windows(H, B, R, halo_cells, halo_steps)
    for name, v in (("core_cells", core_cells), ("core_steps", core_steps)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be an int >= 1; found {v!r}")
    nt, ny, nx = win.dims[0]
    tiles = [
        ((a, min(a + core_steps, nt)), (b, min(b + core_cells, ny)), (c, min(c + core_cells, nx)))
        for a in range(0, nt, core_steps)
        for b in range(0, ny, core_cells)
        for c in range(0, nx, core_cells)
    ]
    var = np.empty(win.n_grid)
    n_obs = np.zeros(win.n_grid, dtype=np.int64)
    n_box = np.zeros(win.n_grid, dtype=np.int64)
    if client is None:
        groups = [[core] for core in tiles]
        results = (_solve_tiles(win, g) for g in groups)
    else:
        from distributed import as_completed

        threads = max(1, sum(client.nthreads().values()))
        groups = [list(g) for g in np.array_split(np.arange(len(tiles)), 4 * threads) if g.size]
        groups = [[tiles[i] for i in g] for g in groups]
        remote = client.scatter(win, broadcast=True)
        futures = client.map(_solve_tiles, [remote] * len(groups), groups, pure=False)
        results = (f.result() for f in as_completed(futures))
    done, last = 0, t0
    for solved in results:
        for cells, v, n_obs_i, n_box_i in solved:
            var[cells], n_obs[cells], n_box[cells] = v, n_obs_i, n_box_i
        done += len(solved)
        now = time.perf_counter()
        if progress and (now - last > 10.0 or done == len(tiles)):
            last = now
            left = (now - t0) / done * (len(tiles) - done)
            logger.info("local std map: %d/%d tiles, %.0f s, about %.0f s left", done,
                        len(tiles), now - t0, left)  # fmt: skip
    return _result(np.arange(win.n_grid), var, win.b_diag, n_obs, n_box, t0)
