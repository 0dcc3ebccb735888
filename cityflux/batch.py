"""Batch runs: a long period as windows, each the one pipeline, on dask.distributed.

:func:`plan_windows` cuts ``period`` into consecutive cores of ``batch.window``; each window is
solved over its core widened by ``batch.overlap`` before and ``batch.lag`` after (clipped to the
period). :func:`run_batch` runs every window that is not already finished as a task on a dask
cluster (:func:`open_client`: a ``LocalCluster`` by default, SLURM/PBS through dask-jobqueue, or
an existing scheduler): :func:`run_window` calls :func:`cityflux.pipeline.run` on the
configuration with the window's period and writes the window's run folder atomically with its
manifest (:func:`cityflux.outputs.write_outputs`), adding the totals of the core alone
(``core_totals.csv``). A window is finished when its folder's manifest is complete, its outputs
match their sha256 and its config hash (which covers the contents of every input file) is that
of the window's configuration; a rerun skips finished windows and redoes missing or stale ones.
A window whose task raises is retried ``batch.retries`` times (errors of its inputs — ``ValueError``,
``KeyError`` — are the same on every attempt and reported at once); a worker that dies is
replaced and its task rescheduled by distributed; a window that keeps failing is reported with
its error while the others finish. The results are stitched (:mod:`cityflux._stitch`): each window
contributes its core only.

Shared inputs: the input files are hashed once (the config hash of every window covers their
contents); footprint runs share one H cache (``<out>/h_cache`` unless ``transport.cache_dir``
is set), so a retried or rerun window reads its H instead of the footprint files. Each window
still reads and regrids the prior inventories itself (a shared regridded prior needs the
inputs stage split, see the batch issue).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cityflux._runfolder import check_out_dir, read_manifest, verify
from cityflux.config import CityfluxConfig, ClusterSection, ConfigError, PeriodConfig, config_hash

__all__ = [
    "BATCH_FILES",
    "BatchResult",
    "Window",
    "WindowOutcome",
    "keep_dask_scheduler",
    "open_client",
    "plan_windows",
    "run_batch",
    "run_window",
    "window_config",
]

logger = logging.getLogger(__name__)

#: Names a batch folder holds: the stitched outputs, the windows and the failure report.
BATCH_FILES = (
    "posterior.nc", "totals.csv", "diagnostics.json", "windows.csv", "config.yaml",
    "config.resolved.yaml", "windows", "failed_windows.json", "h_cache",
)  # fmt: skip
WINDOWS_DIR = "windows"
H_CACHE = "h_cache"
CORE_TOTALS = "core_totals.csv"


@dataclass(frozen=True)
class Window:
    """One window: solved over ``[start, end)``, its core ``[core_start, core_end)`` kept."""

    index: int
    start: pd.Timestamp
    end: pd.Timestamp
    core_start: pd.Timestamp
    core_end: pd.Timestamp

    @property
    def name(self) -> str:
        """Folder name: index and core start, e.g. ``w0003_20240606T0000``."""
        return f"w{self.index:04d}_{self.core_start:%Y%m%dT%H%M}"

    @property
    def core_label(self) -> str:
        """The core as ``start/end`` (the format of the ``period`` column of totals.csv)."""
        fmt = "%Y-%m-%dT%H:%MZ"
        return f"{self.core_start.strftime(fmt)}/{self.core_end.strftime(fmt)}"


@dataclass
class WindowOutcome:
    """What happened to one window: ``finished`` (earlier run), ``done`` or ``failed``."""

    window: Window
    status: str
    error: str | None = None


@dataclass
class BatchResult:
    """Outcome of :func:`run_batch`.

    Attributes
    ----------
    outcomes : list of WindowOutcome
        One per window, in time order.
    out_dir : pathlib.Path
    paths : dict of str to pathlib.Path
        The stitched outputs (empty when a window failed).
    """

    outcomes: list[WindowOutcome]
    out_dir: Path
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[WindowOutcome]:
        """The windows that failed."""
        return [o for o in self.outcomes if o.status == "failed"]


def _naive_utc(value: Any) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def plan_windows(cfg: CityfluxConfig) -> list[Window]:
    """The windows of ``cfg.period`` (see the module docstring).

    Raises
    ------
    ConfigError
        If ``batch.window``, ``overlap`` or ``lag`` is not a whole number of ``period.step``.
    """
    step = pd.Timedelta(cfg.period.step)
    start, end = _naive_utc(cfg.period.start), _naive_utc(cfg.period.end)
    b = cfg.batch
    for key in ("window", "overlap", "lag"):
        d = pd.Timedelta(getattr(b, key))
        if d % step != pd.Timedelta(0):
            raise ConfigError(
                f"batch.{key}: {getattr(b, key)!r} is not a whole number of period.step "
                f"({cfg.period.step!r}); windows must start and end on state time bins",
                [(f"batch.{key}", "not a multiple of period.step")],
            )
    width, before, after = (pd.Timedelta(v) for v in (b.window, b.overlap, b.lag))
    cores = pd.date_range(start, end, freq=width, inclusive="left")
    out = []
    for i, c0 in enumerate(cores):
        c1 = min(c0 + width, end)
        out.append(Window(i, max(c0 - before, start), min(c1 + after, end), c0, c1))
    return out


def window_config(cfg: CityfluxConfig, window: Window) -> CityfluxConfig:
    """``cfg`` with the window's period (validated like ``--set period.start=...``)."""
    period = PeriodConfig(
        start=window.start.to_pydatetime(), end=window.end.to_pydatetime(), step=cfg.period.step
    )
    return cfg.model_copy(update={"period": period})


# --------------------------------------------------------------------------- one window
def _core_rows(result: Any, window: Window) -> tuple[sp.csr_array, pd.DataFrame]:
    """Aggregation weights restricted to the core's time bins, and their labels."""
    case = result.case
    starts = pd.DatetimeIndex(case.time.starts)
    in_core = (starts >= window.core_start) & (starts < window.core_end)
    nf = case.state.n_flux
    t_of_col = (np.arange(nf) // case.grid.size) % case.time.nt
    keep_col = np.zeros(case.state.size)
    keep_col[:nf] = in_core[t_of_col]
    W = sp.csr_array(case.weights @ sp.diags_array(keep_col))
    W.eliminate_zeros()
    rows = np.flatnonzero(np.diff(W.indptr) > 0)
    labels = case.labels.iloc[rows].reset_index(drop=True)
    whole = labels["period"].str.contains("/")
    labels.loc[whole, "period"] = window.core_label
    return sp.csr_array(W[rows]), labels


def _core_totals_writer(window: Window) -> Callable[..., None]:
    from cityflux import stages

    def write(result: Any, folder: Path, ctx: Any) -> None:
        W, labels = _core_rows(result, window)
        case = result.case
        if result.positivity is not None:  # log-normal: the run's quantiles for the core rows
            import dataclasses

            from cityflux import positivity

            core = dataclasses.replace(case, weights=W, labels=labels)
            totals, _, _ = positivity.totals_table(
                result.posterior, result.positivity.prior, core, result.config
            )
        else:
            totals, _ = stages.totals_table(
                result.posterior, case.B, case.x_prior, W, labels, case.x_truth
            )
        totals.insert(0, "window", window.index)
        totals.to_csv(folder / CORE_TOTALS, index=False, float_format="%.10g")

    return write


def run_window(
    cfg: CityfluxConfig, window: Window, folder: str | Path, config_text: str | None = None
) -> dict[str, Any]:
    """Run one window with the one pipeline and write its run folder (the batch's task).

    The folder has every output of a run but ``report.html`` (rendering its figures took most of
    a small window's time); ``cityflux report FOLDER`` writes it when wanted.

    Parameters
    ----------
    cfg : CityfluxConfig
        The batch's configuration (the window's period is set here).
    window : Window
    folder : path
        The window's run folder.
    config_text : str, optional
        The configuration file's text (copied to ``config.yaml``).

    Returns
    -------
    dict
        ``chi2``, ``dofs``, ``n_obs``, ``n_state``, ``solve_s`` (wall time of the solve [s]).
    """
    from cityflux.outputs import write_outputs
    from cityflux.pipeline import run

    cfg_w = window_config(cfg, window)
    result = run(cfg_w)
    write_outputs(
        result, folder, config_text=config_text, figures=False, report=False,
        extra_writers=[_core_totals_writer(window)], kind="window",
    )  # fmt: skip
    d = result.diagnostics
    return {
        "chi2": float(d["chi2"]),
        "dofs": float(d["dofs"]),
        "n_obs": int(d["n_obs"]),
        "n_state": int(d["n_state"]),
        "solve_s": float(sum(result.timings.wall.values())),
    }


#: Errors of a window's inputs: the same on every attempt, so reported without retries.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, NotImplementedError)


#: One window at a time in a process. The netCDF-C and HDF5 libraries are not thread-safe and
#: netCDF4-python releases the GIL around their calls, so two windows reading or writing files in
#: threads of one process crash it (seen as a segfault with a 2-thread in-process cluster; see
#: xarray issues 4100 and 9779). Windows run in parallel across worker processes.
_WINDOW_LOCK = threading.Lock()


def _window_task(
    cfg: CityfluxConfig, window: Window, folder: str, config_text: str | None
) -> dict[str, Any]:
    """:func:`run_window` as a dask task: input errors are returned (not retried); any other
    error (I/O, memory, a bug) propagates and distributed retries the task. Windows in one
    process run one at a time (:data:`_WINDOW_LOCK`)."""
    with _WINDOW_LOCK:
        try:
            return run_window(cfg, window, folder, config_text)
        except INPUT_ERRORS as err:
            return {"error": f"{type(err).__name__}: {err}"}


# --------------------------------------------------------------------------- cluster
@contextlib.contextmanager
def open_client(cluster: ClusterSection, n_tasks: int) -> Iterator[Any]:
    """A ``distributed.Client`` for ``batch.cluster`` (closed, with its cluster, on exit).

    Raises
    ------
    ConfigError
        For ``slurm``/``pbs`` without dask-jobqueue (the ``hpc`` extra), naming the key.
    """
    from distributed import Client

    if cluster.kind == "address":
        client = Client(cluster.address)
    else:
        from inversion.distributed import ClusterConfig, make_client

        if cluster.kind == "local":
            workers = cluster.workers or max(1, min(os.cpu_count() or 1, n_tasks))
            spec = ClusterConfig(
                kind="local", jobs=workers, cores=cluster.threads_per_worker,
                memory=cluster.memory, processes=cluster.processes,
            )  # fmt: skip
        else:
            spec = ClusterConfig(
                kind=cluster.kind, cores=cluster.cores, memory=cluster.memory,
                walltime=cluster.walltime, jobs=cluster.jobs, queue=cluster.queue,
            )  # fmt: skip
        try:
            with warnings.catch_warnings():  # "port 8787 in use": no dashboard is needed
                warnings.filterwarnings("ignore", message="Port .* is already in use")
                client = make_client(spec)
        except ImportError as err:
            raise ConfigError(
                f"batch.cluster.kind: {cluster.kind!r} needs dask-jobqueue, which is not "
                "installed: pip install 'cityflux[hpc]' (or pip install dask-jobqueue)",
                [("batch.cluster.kind", str(err))],
            ) from None
    try:
        yield client
    finally:
        cl = client.cluster
        client.close()
        if cl is not None:
            cl.close()


@contextlib.contextmanager
def keep_dask_scheduler() -> Iterator[None]:
    """Restore dask's default scheduler settings on exit.

    A ``distributed.Client`` (the batch's, or one a worker thread makes) sets itself as dask's
    default scheduler and restores the setting only when it is the last client alive; without
    this, later dask work in the same process would ask for a closed client.
    """
    import dask

    saved = {k: dask.config.get(k, None) for k in ("scheduler", "shuffle")}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                dask.config.config.pop(key, None)
            else:
                dask.config.set({key: value})


# --------------------------------------------------------------------------- the batch
def window_hashes(cfg: CityfluxConfig, windows: list[Window]) -> dict[str, str]:
    """Config hash of each window's configuration (window name -> hash)."""
    return {w.name: config_hash(window_config(cfg, w)) for w in windows}


def _finished(folder: Path, expected_hash: str) -> bool:
    m = verify(folder, expected_hash)
    return m is not None and CORE_TOTALS in m.get("outputs", {})


def run_batch(
    cfg: CityfluxConfig,
    out_dir: str | Path,
    *,
    config_text: str | None = None,
    client: Any = None,
    progress: Callable[[int, int, WindowOutcome | None], None] | None = None,
) -> BatchResult:
    """Run every window of ``cfg`` that is not finished, then stitch the results.

    Parameters
    ----------
    cfg : CityfluxConfig
    out_dir : path
        The batch folder: ``windows/<name>/`` per window, the stitched outputs, manifest.json.
    config_text : str, optional
        The configuration file's text.
    client : distributed.Client, optional
        Run on this client (default: open one from ``batch.cluster``).
    progress : callable, optional
        ``progress(n_done, n_windows, outcome)``, called once with ``outcome=None`` after the
        finished windows were counted, then after each window.

    Returns
    -------
    BatchResult

    Raises
    ------
    OutputFolderError
        If ``out_dir`` is a file or holds something other than a cityflux batch.
    """
    from cityflux._stitch import mark_incomplete, stitch

    out = Path(out_dir)
    check_out_dir(out, BATCH_FILES)
    if cfg.transport.model == "footprints" and cfg.transport.cache_dir is None:
        # one H cache for the batch: a retried or rerun window reads its H instead of the files
        tr = cfg.transport.model_copy(update={"cache_dir": (out / H_CACHE).resolve()})
        cfg = cfg.model_copy(update={"transport": tr})
    windows = plan_windows(cfg)
    hashes = window_hashes(cfg, windows)
    wdir = out / WINDOWS_DIR
    outcomes = {w.index: WindowOutcome(w, "pending") for w in windows}
    todo = []
    for w in windows:
        if _finished(wdir / w.name, hashes[w.name]):
            outcomes[w.index].status = "finished"
        else:
            todo.append(w)
    done = len(windows) - len(todo)
    logger.info("batch: %d windows, %d finished, %d to run", len(windows), done, len(todo))
    if progress is not None:
        progress(done, len(windows), None)
    if todo:
        wdir.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            stack.enter_context(keep_dask_scheduler())
            if client is None:
                client = stack.enter_context(open_client(cfg.batch.cluster, len(todo)))
            done = _submit_all(client, cfg, todo, wdir, config_text, outcomes, done, progress)
    result = BatchResult([outcomes[w.index] for w in windows], out)
    if result.failed:
        mark_incomplete(out, result.failed)
        return result
    _remove_stale_windows(wdir, {w.name for w in windows})
    result.paths = stitch(cfg, windows, hashes, out, config_text=config_text)
    return result


def _submit_all(client, cfg, todo, wdir, config_text, outcomes, done, progress) -> int:
    from distributed import as_completed

    futures = {
        client.submit(
            _window_task, cfg, w, str(wdir / w.name), config_text,
            key=f"cityflux-window-{w.name}-{config_hash(window_config(cfg, w))[:12]}",
            retries=cfg.batch.retries, pure=False,
        ): w
        for w in todo
    }  # fmt: skip
    n = len(outcomes)
    for fut in as_completed(list(futures), loop=client.loop):
        w = futures[fut]
        oc = outcomes[w.index]
        try:
            out = fut.result()
            oc.status, oc.error = ("failed", out["error"]) if "error" in out else ("done", None)
        except Exception as err:  # after its retries (a lost worker is not counted)
            oc.status, oc.error = "failed", f"{type(err).__name__}: {err}"
        if oc.error is not None:
            logger.warning("batch: window %s failed: %s", w.name, oc.error)
        done += 1
        if progress is not None:
            progress(done, n, oc)
    return done


def _remove_stale_windows(wdir: Path, keep: set[str]) -> None:
    """Remove window folders of an earlier plan (cityflux run folders only)."""
    if not wdir.is_dir():
        return
    for e in wdir.iterdir():
        if e.name in keep or not e.is_dir():
            continue
        if read_manifest(e) is not None or not any(e.iterdir()):
            shutil.rmtree(e, ignore_errors=True)
