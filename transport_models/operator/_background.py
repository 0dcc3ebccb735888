"""Background parameters: boundary (curtain) sensitivities and per-group offsets.

Both give blocks of ``H`` in the extra-state columns: a boundary block maps curtain mole
fractions [ppm] to observations (sensitivity [ppm per ppm], the fraction of particles leaving
through each curtain), an offset block adds one background offset [ppm] per group (site,
overpass, scan) with sensitivity 1 ppm per ppm.

Lateral boundary inflow (:func:`boundary_operator`). A Lagrangian model run backwards from a
receptor (NAME ``particle_locations_{n,e,s,w}``) records the fraction ``f_r,c`` of the
receptor's particles that leave the domain through the curtain element ``c`` (side, height
level, position along the side). If ``x_c`` is the mole fraction of the air on that curtain,
the receptor sees ``Σ_c f_r,c x_c`` from the boundary [ppm per ppm]. The state holds one curtain
mole fraction per (side, height band, time window) — the window of the *receptor* time —, so
the block entry of an observation is ``Σ_r C_o,r Σ_{c in side, band} f_r,c`` for the receptors
``r`` in that window, ``C`` the receptor -> observation combination of
:func:`match_observations`. The fractions of a receptor lie in [0, 1] and sum to at most 1;
the rest (``1 - Σ_c f_r,c``) stays in the domain at the end of the run or leaves through its
top, and is not represented by this block (the caller covers it, e.g. with an offset).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from inversion.state import StateVector
from transport_models.footprints import FootprintError, read_boundary_sensitivity

__all__ = ["add_block", "boundary_block", "boundary_operator", "offset_block"]

_SIDES = ("n", "e", "s", "w")
_LABEL = re.compile(r"^(?P<side>[nesw])(?:_(?P<height>[-+0-9.eE]+)m)?$")


def boundary_block(
    sensitivity: xr.DataArray | np.ndarray, combination: sp.csr_array | None = None
) -> sp.csr_array:
    """Boundary sensitivity block (n_obs, n_bc) [ppm per ppm].

    Parameters
    ----------
    sensitivity : xarray.DataArray or numpy.ndarray
        (n_receptor, n_bc) curtain sensitivities per receptor (e.g. from
        ``read_boundary_sensitivity``).
    combination : scipy.sparse.csr_array, optional
        (n_obs, n_receptor) receptor -> observation matrix (matching or row operator);
        identity when omitted.
    """
    s = np.asarray(sensitivity, dtype=float)
    if s.ndim != 2 or not np.isfinite(s).all():
        raise ValueError(
            f"sensitivity: expected a finite (n_receptor, n_bc) array, found {s.shape}"
        )
    b = sp.csr_array(s)
    return b if combination is None else sp.csr_array(combination @ b)


def offset_block(groups: Sequence[object] | np.ndarray) -> tuple[sp.csr_array, list[str]]:
    """Indicator block (n_obs, n_groups) [ppm per ppm] with one column per distinct group.

    Returns the block and the group labels (sorted), e.g. for ``StateVector(extra=...)``.
    """
    g = np.asarray(groups).astype(str)
    labels, inv = np.unique(g, return_inverse=True)
    n = g.size
    block = sp.csr_array((np.ones(n), (np.arange(n), inv)), shape=(n, labels.size))
    return block, [str(x) for x in labels]


def add_block(h: sp.csr_array, state: StateVector, name: str, block: sp.csr_array) -> sp.csr_array:
    """Return ``h`` with ``block`` placed in the columns of the state's extra block ``name``."""
    sl = state.slice(name)
    if block.shape != (h.shape[0], sl.stop - sl.start):
        raise ValueError(
            f"block {name!r}: expected shape {(h.shape[0], sl.stop - sl.start)}, "
            f"found {block.shape}"
        )
    coo = sp.coo_array(block)
    placed = sp.csr_array((coo.data, (coo.row, coo.col + sl.start)), shape=h.shape)
    return sp.csr_array(h + placed)


def _curtain(
    src: str | Path | xr.DataArray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, np.ndarray]:
    """Values (n_receptor, n_bc), side index and height [m] (n_bc,), name, receptor times."""
    if isinstance(src, xr.DataArray):
        da, name = src, str(src.attrs.get("source_file", "<memory>"))
    else:
        da, name = read_boundary_sensitivity(src, resolve="side_height"), str(src)
    if da.dims != ("receptor", "bc") or "bc" not in da.coords:
        raise ValueError(
            f"{name}: expected a (receptor, bc) boundary sensitivity with 'bc' labels (as "
            f"read_boundary_sensitivity returns), found dims {da.dims}"
        )
    side, height = [], []
    for lab in np.asarray(da["bc"].values).astype(str):
        m = _LABEL.match(lab)
        if m is None:
            raise ValueError(
                f"{name}: boundary label {lab!r} not understood; expected 'n', 'e', 's', 'w' or "
                "'<side>_<height>m' (read_boundary_sensitivity(..., resolve='side_height'))"
            )
        side.append(_SIDES.index(m["side"]))
        height.append(float(m["height"]) if m["height"] else np.nan)
    v = np.asarray(da.values, dtype=float)
    times = (
        np.asarray(da["receptor_time"].values, "datetime64[ns]")
        if "receptor_time" in da.coords
        else np.full(v.shape[0], np.datetime64("NaT", "ns"))
    )
    return v, np.array(side, np.int64), np.array(height), name, times


def _check_fractions(v: np.ndarray, name: str, times: np.ndarray, tol: float) -> None:
    if not np.isfinite(v).all():
        raise FootprintError(f"{name}: boundary sensitivities hold NaN/inf values")
    lo, tot = v.min(axis=1, initial=0.0), v.sum(axis=1)
    bad = np.flatnonzero((lo < -tol) | (v.max(axis=1, initial=0.0) > 1 + tol) | (tot > 1 + tol))
    if bad.size:
        r = bad[0]
        raise FootprintError(
            f"{name}: boundary sensitivities of {bad.size} receptor(s) are not particle "
            f"fractions (each in [0, 1], summing to <= 1 within {tol}); receptor {r} (time "
            f"{times[r]}) has entries in [{v[r].min():.6g}, {v[r].max():.6g}] summing to "
            f"{tot[r]:.6g}. Check the file's particle_locations units (fractions, not counts)"
        )


def boundary_operator(
    sources: Sequence[str | Path | xr.DataArray],
    combination: sp.csr_array,
    receptor_times: np.ndarray,
    *,
    bands: Sequence[float] | None = None,
    window: str | None = "1D",
    time_tolerance: str = "1min",
    fraction_tolerance: float = 1e-3,
) -> tuple[sp.csr_array, list[str]]:
    """Lateral-boundary block of ``H`` per (side, height band, time window) [ppm per ppm].

    See the module docstring for the fraction-of-particles semantics.

    Parameters
    ----------
    sources : sequence of path or xarray.DataArray
        NAME footprint files with ``particle_locations_{n,e,s,w}`` (read with
        ``read_boundary_sensitivity(path, resolve="side_height")``) or such arrays, in the same
        order as the footprints given to ``assemble_receptors``: their rows, concatenated, are
        the receptors.
    combination : scipy.sparse.csr_array
        (n_obs, n_receptor) receptor -> observation weights (``match_observations``).
    receptor_times : numpy.ndarray
        (n_receptor,) receptor times (the ``time`` column of the receptor table), UTC.
    bands : sequence of float, optional
        Increasing height-band edges [m] of the curtains (e.g. ``[0, 2000, 6000, inf]``); a
        curtain level belongs to the band holding its (mid-level) height. None: one band.
    window : str, optional
        Length of the time windows (anything ``pandas.Timedelta`` reads; windows start at
        multiples of it from the epoch, UTC) by receptor time; None: one window.
    time_tolerance : str
        Largest difference between a source's receptor times and ``receptor_times``.
    fraction_tolerance : float
        Tolerance of the fraction checks [1].

    Returns
    -------
    block : scipy.sparse.csr_array
        (n_obs, n_bc) [ppm per ppm].
    labels : list of str
        ``"<side>[_<lo>m-<hi>m][_<window start>]"`` (e.g. ``"n_0m-2000m_2014-07-01T00:00"``;
        ``"top"`` for an open upper edge; no band part without ``bands``, no window part
        without ``window``), window-major then side (n, e, s, w) then band, for
        ``StateVector(extra=...)``. Only windows holding a receptor used by an observation
        appear; without any, the block has no column.

    Raises
    ------
    FootprintError
        Fractions outside [0, 1] or summing above 1 (naming the file), receptor rows or times
        that differ from ``receptor_times``.
    ValueError
        Bad bands or window, curtain levels outside every band, bands without heights.
    """
    n_obs, n_rec = combination.shape
    rt = np.asarray(receptor_times, "datetime64[ns]")
    if rt.shape != (n_rec,):
        raise ValueError(
            f"receptor_times: expected {n_rec} times (one per combination column), found {rt.shape}"
        )
    if not sources:
        raise ValueError("sources: expected at least one boundary-sensitivity file")
    tol = pd.Timedelta(time_tolerance).to_timedelta64()
    if bands is None:
        edges = np.array([-np.inf, np.inf])
    else:
        edges = np.asarray(bands, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or (np.diff(edges) <= 0).any():
            raise ValueError(f"bands: expected increasing height edges [m], found {list(edges)}")
    nb = edges.size - 1
    rows, cols, vals = [], [], []
    start = 0
    for src in sources:
        v, side, height, name, times = _curtain(src)
        stop = start + v.shape[0]
        if stop > n_rec:
            raise FootprintError(
                f"{name}: the boundary sources hold more receptors ({stop}+) than the "
                f"combination ({n_rec}); give the same files, in the same order, as to "
                "assemble_receptors"
            )
        off = np.abs(times - rt[start:stop])
        if np.isnat(times).any() or (off > tol).any():
            r = int(np.argmax(np.isnat(times) | (off > tol)))
            raise FootprintError(
                f"{name}: receptor {r} has time {times[r]} but receptor {start + r} of the "
                f"footprints has {rt[start + r]}; give the same files, in the same order, as "
                "to assemble_receptors"
            )
        _check_fractions(v, name, times, fraction_tolerance)
        if bands is not None and np.isnan(height).any():
            raise ValueError(
                f"{name}: height bands need curtain heights; read the file with "
                "resolve='side_height'"
            )
        band = (
            np.zeros(side.size, np.int64)
            if bands is None
            else np.searchsorted(edges, height, side="right") - 1
        )
        out = (band < 0) | (band >= nb)
        if out.any():
            raise ValueError(
                f"{name}: curtain heights {sorted(set(height[out].tolist()))} m lie outside the "
                f"bands {list(edges)}; widen the bands (e.g. end with inf)"
            )
        r, c = np.nonzero(v)
        rows.append(r + start)
        cols.append(side[c] * nb + band[c])
        vals.append(v[r, c])
        start = stop
    if start != n_rec:
        raise FootprintError(
            f"the boundary sources hold {start} receptors but the combination has {n_rec}; give "
            "the same files, in the same order, as to assemble_receptors"
        )
    used = np.diff(sp.csc_array(combination).indptr) > 0
    if not used.any():
        return sp.csr_array((n_obs, 0)), []
    if window is None:
        win = np.zeros(n_rec, np.int64)
        win_labels = [""]
    else:
        step = pd.Timedelta(window)
        if step <= pd.Timedelta(0):
            raise ValueError(f"window: expected a positive duration, found {window!r}")
        floor = pd.DatetimeIndex(rt).floor(step).to_numpy("datetime64[ns]")
        starts = np.unique(floor[used])
        win = np.searchsorted(starts, floor)
        win = np.where(used & (win < starts.size), win, 0)
        win_labels = ["_" + s for s in np.datetime_as_string(starts, unit="m")]
    n_w = len(win_labels)
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    s = sp.csr_array((v, (r, win[r] * 4 * nb + c)), shape=(n_rec, n_w * 4 * nb))
    block = sp.csr_array(combination @ s)

    def band_label(b: int) -> str:
        if bands is None:
            return ""
        lo, hi = edges[b], edges[b + 1]
        lo_s = "0m" if not np.isfinite(lo) else f"{lo:g}m"
        hi_s = "top" if not np.isfinite(hi) else f"{hi:g}m"
        return f"_{lo_s}-{hi_s}"

    labels = [f"{sd}{band_label(b)}{w}" for w in win_labels for sd in _SIDES for b in range(nb)]
    return block, labels
