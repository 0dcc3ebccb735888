"""Faults: `cityflux run` and `cityflux batch` killed with SIGKILL at random points never leave a
mix of old and new files presented as a result; the rerun completes with results bitwise
identical to an uninterrupted run and leaves no temporary files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityflux._runfolder import read_manifest, verify

ROOT = Path(__file__).resolve().parents[2]
OSSE = ROOT / "examples" / "osse_small.yaml"
TINY = ["domain.nx=8", "domain.ny=8", "domain.resolution_m=2000"]
N_KILLS = 10


def _sets(*kv: str) -> list[str]:
    return [a for x in (*TINY, *kv) for a in ("--set", x)]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cityflux.cli", *args], cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    p = _start(args)
    assert p.wait(timeout=300) == 0, args
    return time.perf_counter() - t0


def _kill_at(args: list[str], after: float) -> tuple[int | None, float]:
    """Start, SIGKILL the whole process group after ``after`` s.

    Returns the exit code if it ended first (else None) and the wall time it ran [s].
    """
    t0 = time.perf_counter()
    p = _start(args)
    try:
        return p.wait(timeout=after), time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return None, time.perf_counter() - t0


def _kill_points(rng: np.random.Generator, lo: float, hi: float, wall: list[float]):
    """Kill times drawn as fractions in [lo, hi) of the fastest uninterrupted run so far; a
    run that ends before its kill (the machine got faster) gives a new fastest time. Yields
    until N_KILLS runs were killed (at most 3 N_KILLS attempts: the load of a shared machine
    changes the run time)."""
    for _ in range(3 * N_KILLS):
        yield rng.uniform(lo, hi) * min(wall)


def _state(folder: Path) -> str:
    """``none``, ``incomplete`` or ``complete``; a complete folder must verify (no mix)."""
    m = read_manifest(folder)
    if m is None:
        return "none"
    if m["status"] != "complete":
        return "incomplete"
    assert verify(folder) is not None, f"{folder}: complete manifest over a mixed output set"
    return "complete"


def _leftovers(folder: Path) -> list[str]:
    return [
        str(p) for p in folder.rglob("*")
        if p.name.startswith(".cityflux-staging") or p.name.endswith(".tmp")
    ]  # fmt: skip


def _same_results(a: Path, b: Path, csvs: tuple[str, ...]) -> None:
    with xr.open_dataset(a / "posterior.nc") as da, xr.open_dataset(b / "posterior.nc") as db:
        assert set(da.data_vars) == set(db.data_vars)
        for v in da.data_vars:
            assert da[v].values.tobytes() == db[v].values.tobytes(), v
        assert da.attrs["config_hash"] == db.attrs["config_hash"]
    for name in csvs:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_run_killed_at_random_points(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    args = ["run", str(OSSE), *_sets("period.end=2024-06-05T00:00:00")]
    wall = _run([*args, "--out", str(ref)])
    new_hash = read_manifest(ref)["config_hash"]
    # an earlier, different result in the folder: a kill must never mix it with the new one
    wall = min(wall, _run([*args, "--out", str(out), "--set", "synthetic.seed=1"]))
    rng = np.random.default_rng(15)
    seen, killed, walls = [], 0, [wall]
    for t in _kill_points(rng, 0.3, 0.95, walls):  # start-up takes the first third or so
        code, ran = _kill_at([*args, "--out", str(out)], t)
        if code is not None:
            walls.append(ran)
        killed += code is None
        state = _state(out)
        if state == "complete":
            state = "new" if read_manifest(out)["config_hash"] == new_hash else "old"
        seen.append(state)
        if killed == N_KILLS:
            break
    assert killed == N_KILLS, f"only {killed} of {len(seen)} runs were still running"
    _run([*args, "--out", str(out)])
    assert _state(out) == "complete"
    _same_results(ref, out, ("totals.csv", "totals_covariance.csv", "observations.csv"))
    da, db = (json.loads((p / "diagnostics.json").read_text()) for p in (ref, out))
    da.pop("timings_s"), db.pop("timings_s")
    da.pop("cpu_s"), db.pop("cpu_s")
    assert da == db
    assert not _leftovers(out)
    print(f"run: {killed} killed; folder after each kill", seen)


def test_batch_killed_at_random_points(tmp_path):
    """Ten batches killed at random points (each from an empty folder, so that the kills fall
    over the whole batch: windows, their commits, the stitch); two of them are then rerun."""
    ref = tmp_path / "ref"
    args = ["batch", str(OSSE), *_sets(
        "period.end=2024-06-06T00:00:00", "batch.window=1D", "batch.overlap=1D",
        "batch.cluster.processes=false", "batch.cluster.workers=1",
    )]  # fmt: skip
    wall = _run([*args, "--out", str(ref)])
    rng = np.random.default_rng(16)
    seen, killed, walls = [], 0, [wall]
    for i, t in enumerate(_kill_points(rng, 0.4, 0.95, walls)):
        out = tmp_path / f"out{i}"
        code, ran = _kill_at([*args, "--out", str(out)], t)
        if code is not None:
            walls.append(ran)
        killed += code is None
        windows = sorted((out / "windows").iterdir()) if (out / "windows").is_dir() else []
        seen.append((_state(out), [_state(w) for w in windows], len(_leftovers(out))))
        if killed == N_KILLS:
            break
    assert killed == N_KILLS, f"only {killed} of {len(seen)} batches were still running"
    for i in (0, 1):
        out = tmp_path / f"out{i}"
        _run([*args, "--out", str(out)])
        assert _state(out) == "complete"
        _same_results(ref, out, ("totals.csv",))
        wa, wb = (pd.read_csv(p / "windows.csv").drop(columns=["run_s"]) for p in (ref, out))
        pd.testing.assert_frame_equal(wa, wb)
        assert not _leftovers(out)
    print(f"batch: {killed} killed; (folder, windows, leftovers) after each kill", seen)
