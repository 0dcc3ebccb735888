"""Assembly of the observation operator H from footprint files.

Pipeline per file: read -> spread each back-layer ``[start, layer_end)`` over the state time
bins it overlaps, in proportion to the overlap (sensitivity taken as uniform in time within a
layer; an hourly layer inside one bin goes whole to that bin, a 10-day time-integrated layer is
shared among the bins it covers; the part outside the state time axis is counted in
``outside_time``) -> conservative regridding onto the inversion grid -> drop
``|H_ij| < threshold`` -> CSR rows, one per receptor. Files are processed
in chunks, one dask task per chunk; the regridding weights are computed once per source grid
within a task. The receptor-level matrix is cached as zarr (see ``_cache``).

Threshold: entries with ``|H_ij| < threshold`` [ppm per (µmol m-2 s-1) per state cell and
bin] are dropped; their summed magnitude is the *dropped mass*, logged and returned per
receptor. The default 1e-7 drops cells whose contribution stays below 1e-6 ppm even for an
urban-core flux of 10 µmol m-2 s-1.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time as _time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from dask.callbacks import Callback

from inversion.grid import Grid
from inversion.state import StateVector
from transport_models.footprints import FootprintError, layer_bounds, read_footprint

from ._cache import cache_key, read_cache, write_cache
from ._kernels import layer_bin_weights, sparsify_rows, spread_layers
from ._regrid import ConservativeRegridder, conservative_regridder

#: netCDF-C/HDF5 are not thread-safe: footprint files are read one at a time per process (the
#: threaded scheduler still regrids and bins in parallel; process-based workers are unaffected).
_READ_LOCK = threading.Lock()

__all__ = ["DEFAULT_THRESHOLD", "AssemblyReport", "ReceptorOperator", "assemble_receptors"]

log = logging.getLogger(__name__)

#: Default drop threshold [ppm per (µmol m-2 s-1)].
DEFAULT_THRESHOLD = 1e-7

_COLS = ("time", "lat", "lon", "height", "kind", "id")


#: Seconds between progress lines of a running assembly (INFO; ``cityflux -v`` shows them).
PROGRESS_SECONDS = 10.0


class _LogProgress(Callback):
    """Logs how many footprint chunks are done, at most every :data:`PROGRESS_SECONDS`."""

    def __init__(self, n_files: int, n_chunks: int) -> None:
        super().__init__()
        self.n_files, self.n_chunks, self.done = n_files, n_chunks, 0
        self.t0 = self.last = _time.perf_counter()
        self.lock = threading.Lock()

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        name = key[0] if isinstance(key, tuple) else key
        if not str(name).startswith("_process_chunk"):
            return
        with self.lock:
            self.done += 1
            now = _time.perf_counter()
            if now - self.last < PROGRESS_SECONDS and self.done < self.n_chunks:
                return
            self.last = now
        log.info(
            "footprints: %d/%d chunks of %d files done (%.0f s)",
            self.done, self.n_chunks, self.n_files, now - self.t0,
        )  # fmt: skip


@dataclass
class AssemblyReport:
    """What the assembly did and what it dropped (sensitivities in ppm per (µmol m-2 s-1))."""

    n_files: int
    n_receptors: int
    threshold: float
    total_sensitivity: float
    dropped_threshold: float
    outside_domain: float
    outside_time: float
    max_outside_domain_fraction: float
    max_uncovered_area_fraction: float
    from_cache: bool = False
    cache_path: str | None = None
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def dropped_fraction(self) -> float:
        """Dropped mass / total sensitivity [1]."""
        return self.dropped_threshold / self.total_sensitivity if self.total_sensitivity else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


@dataclass
class ReceptorOperator:
    """Receptor-level operator: one row of ``H`` per footprint receptor.

    Attributes
    ----------
    H : scipy.sparse.csr_array
        (n_receptor, state.size) [ppm per (µmol m-2 s-1)]; extra-block columns are zero.
    receptors : pandas.DataFrame
        time, lat, lon, height, kind, id, file and the per-receptor sensitivities ``total``,
        ``outside_domain``, ``outside_time``, ``dropped``.
    report : AssemblyReport
    """

    H: sp.csr_array
    receptors: pd.DataFrame
    report: AssemblyReport


#: Largest dense block of time-binned footprints held at once in ``_file_rows`` [bytes].
BLOCK_BYTES = 256 * 2**20


def _file_rows(
    fp: xr.DataArray,
    state: StateVector,
    regridders: dict[Grid, ConservativeRegridder],
    threshold: float,
    engine: str,
) -> tuple[sp.csr_array, pd.DataFrame, float]:
    path = fp.attrs.get("source_file", "<memory>")
    src = Grid.from_dataarray(fp)
    rg = regridders.get(src)
    if rg is None:
        rg = conservative_regridder(src, state.grid, engine=engine)
        regridders[src] = rg
    start, end = layer_bounds(fp)
    n_rec, nl = start.shape
    vals = np.asarray(fp.values).reshape(n_rec * nl, src.size)
    # share of every layer in every state time bin (uniform in time within a layer)
    layer, tbin, weight, inside = layer_bin_weights(start.ravel(), end.ravel(), state.time.edges)
    layer_sums = vals.sum(axis=1, dtype=np.float64)
    total = layer_sums.reshape(n_rec, nl).sum(axis=1)
    outside_time = (layer_sums * (1.0 - inside)).reshape(n_rec, nl).sum(axis=1)
    rec_of = layer // nl
    ncell = state.grid.size
    nf = state.time.nt * ncell
    # receptors in blocks so that the dense (receptor x bin, source cell) array stays bounded
    per_rec = np.bincount(rec_of, minlength=n_rec).astype(np.int64)
    budget = max(1, BLOCK_BYTES // (8 * max(src.size, ncell)))
    block = (np.cumsum(np.maximum(per_rec, 1)) - 1) // budget
    bounds = np.r_[0, np.flatnonzero(np.diff(block)) + 1, n_rec].tolist()
    rows_h, out_dom, dropped = [], np.zeros(n_rec), np.zeros(n_rec)
    for r0, r1 in itertools.pairwise(bounds):
        sel = np.flatnonzero((rec_of >= r0) & (rec_of < r1))
        used = np.unique(tbin[sel])
        nb = used.size
        target = (rec_of[sel] - r0) * nb + np.searchsorted(used, tbin[sel])
        binned = spread_layers(vals, layer[sel], target, weight[sel], (r1 - r0) * nb, engine)
        if nb:
            out_dom[r0:r1] = (binned @ rg.outside).reshape(r1 - r0, nb).sum(axis=1)
        reg = rg.regrid(binned).reshape(r1 - r0, nb * ncell)
        indptr, indices, data, drop = sparsify_rows(reg, threshold, engine=engine)
        dropped[r0:r1] = drop
        cols = used[indices // ncell] * ncell + indices % ncell
        rows_h.append(sp.csr_array((data, cols, indptr), shape=(r1 - r0, nf)))
    hf = sp.csr_array(sp.vstack(rows_h, format="csr"))
    ns = len(state.sectors)
    # the same footprint applies to every sector's flux; extra blocks get zero columns
    blocks = [hf] * ns
    if state.size > ns * nf:
        blocks.append(sp.csr_array((n_rec, state.size - ns * nf)))
    h = sp.csr_array(sp.hstack(blocks, format="csr")) if len(blocks) > 1 else hf
    table = pd.DataFrame(
        {k: np.atleast_1d(fp.coords[f"receptor_{k}"].values) for k in _COLS}
    ).assign(
        file=str(path),
        total=total,
        outside_domain=out_dom,
        outside_time=outside_time,
        dropped=dropped,
    )
    return h, table, rg.uncovered_area_fraction


def _process_chunk(
    items: Sequence[Any],
    state: StateVector,
    fmt: str | None,
    reader_kwargs: dict[str, Any],
    threshold: float,
    engine: str,
) -> tuple[sp.csr_array, pd.DataFrame, tuple[float, str]]:
    """Rows of the chunk's files, their table, and the largest uncovered fraction of the domain
    with the file (and its grid extent) that leaves it."""
    regridders: dict[Grid, ConservativeRegridder] = {}
    hs, tables, unc = [], [], (0.0, "")
    for item in items:
        if isinstance(item, xr.DataArray):
            fp = item
        else:
            with _READ_LOCK:
                fp = read_footprint(item, fmt, **reader_kwargs)
        h, t, u = _file_rows(fp, state, regridders, threshold, engine)
        hs.append(h)
        tables.append(t)
        if u > unc[0] or not unc[1]:
            name = fp.attrs.get("source_file", "<in memory>")
            x, y = fp["x"].values, fp["y"].values
            unc = (u, f"{name} (grid x {x.min():.6g} to {x.max():.6g}, y {y.min():.6g} to "
                      f"{y.max():.6g} in {fp.attrs.get('crs', '?')})")  # fmt: skip
    return sp.csr_array(sp.vstack(hs, format="csr")), pd.concat(tables, ignore_index=True), unc


def _report(
    chunks: Sequence[tuple[sp.csr_array, pd.DataFrame]], n_files: int, threshold: float, unc: float
) -> AssemblyReport:
    t = pd.concat([c[1] for c in chunks], ignore_index=True)
    frac = np.where(t["total"] > 0, t["outside_domain"] / t["total"].where(t["total"] > 0, 1), 0)
    return AssemblyReport(
        n_files=n_files,
        n_receptors=len(t),
        threshold=float(threshold),
        total_sensitivity=float(t["total"].sum()),
        dropped_threshold=float(t["dropped"].sum()),
        outside_domain=float(t["outside_domain"].sum()),
        outside_time=float(t["outside_time"].sum()),
        max_outside_domain_fraction=float(np.max(frac)) if len(t) else 0.0,
        max_uncovered_area_fraction=float(unc),
    )


def assemble_receptors(
    footprints: Sequence[str | Path | xr.DataArray],
    state: StateVector,
    *,
    format: str | None = None,
    reader_kwargs: dict[str, Any] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    chunk_files: int = 32,
    scheduler: Any = "threads",
    cache_dir: str | Path | None = None,
    engine: str = "numba",
    max_uncovered_area_fraction: float = 0.01,
    max_outside_domain_fraction: float = 1.0,
) -> ReceptorOperator:
    """Assemble the receptor-level operator from footprint files.

    Parameters
    ----------
    footprints : sequence of path or xarray.DataArray
        Footprint files (any registered format) or footprints already read.
    state : StateVector
        State layout: grid, time bins, sectors.
    format : str, optional
        Footprint format; auto-detected per file when omitted.
    reader_kwargs : dict, optional
        Passed to the reader.
    threshold : float
        Drop ``|H_ij| < threshold`` [ppm per (µmol m-2 s-1)]; the dropped mass is reported.
    chunk_files : int
        Files per dask task (and per cached chunk).
    scheduler : str or distributed.Client
        ``"threads"`` (default), ``"synchronous"``, ``"processes"`` or a dask.distributed client.
    cache_dir : str or Path, optional
        Directory of the zarr cache; a rerun with the same inputs reads it instead of the files.
    engine : {"numba", "numpy"}
        Kernel implementation.
    max_uncovered_area_fraction : float
        Fail when a footprint grid leaves more than this share of the inversion domain
        uncovered [1].
    max_outside_domain_fraction : float
        Fail when a receptor has more than this share of its sensitivity outside the
        inversion domain [1] (default 1: report only).

    Returns
    -------
    ReceptorOperator

    Raises
    ------
    FootprintError
        Bad files (see the readers), footprint grids that do not cover the domain.
    """
    t0 = _time.perf_counter()
    items = list(footprints)
    if not items:
        raise ValueError("footprints: expected at least one footprint file, found none")
    kwargs = dict(reader_kwargs or {})
    paths = [Path(p) for p in items if not isinstance(p, xr.DataArray)]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: footprint file not found")
    store = None
    if cache_dir is not None and len(paths) == len(items):
        key = cache_key(paths, state, threshold, {"format": format, "kwargs": kwargs})
        store = Path(cache_dir) / f"h_{key[:24]}.zarr"
        cached = read_cache(store, key)
        if cached is not None:
            chunks, rep = cached
            report = AssemblyReport(**{**rep, "from_cache": True, "cache_path": str(store)})
            report.elapsed_s = _time.perf_counter() - t0
            log.info("H read from cache %s (%d receptors)", store, report.n_receptors)
            return _finish(chunks, report)
    groups = [items[i : i + chunk_files] for i in range(0, len(items), max(1, chunk_files))]
    tasks = [
        dask.delayed(_process_chunk)(g, state, format, kwargs, threshold, engine) for g in groups
    ]
    if hasattr(scheduler, "compute"):  # a dask.distributed Client (its dashboard shows progress)
        results = scheduler.gather(scheduler.compute(tasks))
    else:
        with _LogProgress(len(items), len(groups)):
            results = dask.compute(*tasks, scheduler=scheduler)
    unc, worst = max((r[2] for r in results), key=lambda u: u[0])
    chunks = [(r[0], r[1]) for r in results]
    report = _report(chunks, len(items), threshold, unc)
    if unc > max_uncovered_area_fraction:
        b = state.grid.bounds
        raise FootprintError(
            f"footprint grid(s) leave {unc:.3%} of the inversion domain uncovered (limit "
            f"{max_uncovered_area_fraction:.3%}); worst: {worst}; the domain spans x {b[0]:.6g} to "
            f"{b[2]:.6g}, y {b[1]:.6g} to {b[3]:.6g}: use footprints whose grid covers the "
            "domain, shrink the inversion grid, or check the file's coordinates (swapped "
            "latitude and longitude)"
        )
    if report.max_outside_domain_fraction > max_outside_domain_fraction:
        t = pd.concat([c[1] for c in chunks], ignore_index=True)
        worst = t.iloc[int(np.argmax(t["outside_domain"] / t["total"].clip(lower=1e-300)))]
        raise FootprintError(
            f"{worst['file']}: receptor {worst['id']} has "
            f"{report.max_outside_domain_fraction:.1%} of its sensitivity outside the inversion "
            f"domain (limit {max_outside_domain_fraction:.1%}); enlarge the domain or raise the limit"
        )
    log.info(
        "H assembled: %d receptors from %d files; dropped %.3g (%.3g%%) below threshold %g; "
        "outside domain %.3g, outside time axis %.3g",
        report.n_receptors,
        report.n_files,
        report.dropped_threshold,
        100 * report.dropped_fraction,
        threshold,
        report.outside_domain,
        report.outside_time,
    )
    if store is not None:
        report.cache_path = str(store)
        write_cache(store, key, chunks, (report.n_receptors, state.size), report.to_dict())
    report.elapsed_s = _time.perf_counter() - t0
    return _finish(chunks, report)


def _finish(chunks: Sequence[tuple[sp.csr_array, pd.DataFrame]], report: AssemblyReport) -> Any:
    h = sp.csr_array(sp.vstack([c[0] for c in chunks], format="csr"))
    table = pd.concat([c[1] for c in chunks], ignore_index=True)
    return ReceptorOperator(h, table, report)
