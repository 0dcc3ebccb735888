"""Benchmark: a one-year batch of daily windows of the small synthetic city on a LocalCluster.

Prints the machine (CPU model, cores, threads, load average at start and end), the wall time of
``cityflux.batch.run_batch`` (cluster start, every window's pipeline, its outputs and manifest,
the stitch), the sum of the windows' own pipeline times (``windows.csv: run_s``: inputs, prior,
transport, solve, posterior), and the overhead: wall / (sum / workers). Then the wall time of a
rerun (every window finished: verified and skipped, then the stitch).

Run: ``python benchmarks/batch.py [--days 366] [--workers N] [--threads]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from cityflux.batch import run_batch
from cityflux.config import load_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import Run, add_json_argument  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print (and optionally record) its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=366, help="days (daily windows) from 2024-01-01")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", action="store_true", help="threads instead of worker processes")
    ap.add_argument("--out", type=Path, default=None, help="batch folder (default: a temp dir)")
    add_json_argument(ap)
    args = ap.parse_args(argv)
    bench = Run("batch", argv, args.json)
    end = pd.Timestamp("2024-01-01") + pd.Timedelta(days=args.days)
    cfg = load_config(
        ROOT / "examples" / "osse_small.yaml",
        [
            "period.start=2024-01-01T00:00:00", f"period.end={end.isoformat()}",
            "batch.window=1D", f"batch.cluster.workers={args.workers}",
            f"batch.cluster.processes={'false' if args.threads else 'true'}",
        ],
    )  # fmt: skip
    out = args.out or Path(tempfile.mkdtemp(prefix="cityflux-batch-bench-")) / "batch"
    t0 = time.perf_counter()
    res = run_batch(cfg, out)
    wall = time.perf_counter() - t0
    assert not res.failed, [o.error for o in res.failed]
    table = pd.read_csv(out / "windows.csv")
    total = float(table["run_s"].sum())
    ideal = total / args.workers
    t0 = time.perf_counter()
    res2 = run_batch(cfg, out)
    rerun = time.perf_counter() - t0
    assert all(o.status == "finished" for o in res2.outcomes)
    print(
        f"{len(table)} daily windows of the small synthetic city (20 x 20 cells, "
        f"{int(table['n_state'].iloc[0])} unknowns and ~{table['n_obs'].mean():.0f} "
        f"observations per window), {args.workers} {'threads' if args.threads else 'processes'}"
    )
    print(f"wall time: {wall:.1f} s ({wall / len(table):.2f} s per window)")
    print(f"sum of the window pipelines: {total:.1f} s; / {args.workers} workers = {ideal:.1f} s")
    print(f"overhead: wall / (sum / workers) = {wall / ideal:.2f}")
    print(f"rerun with every window finished (verify + skip + stitch): {rerun:.1f} s")
    kind = "threads" if args.threads else "processes"
    bench.add(
        windows=len(table), workers=args.workers, kind=kind, wall_s=wall, sum_windows_s=total,
        overhead=wall / ideal, rerun_s=rerun,
        display={
            "daily windows": f"{len(table)} ({int(table['n_state'].iloc[0])} unknowns, "
                             f"~{table['n_obs'].mean():.0f} obs each)",
            "workers": f"{args.workers} {kind}", "wall [s]": f"{wall:.1f}",
            "sum of window pipelines [s]": f"{total:.1f}",
            "overhead: wall / (sum / workers)": f"{wall / ideal:.2f}",
            "rerun, all finished [s]": f"{rerun:.1f}",
        },
    )  # fmt: skip
    print(f"outputs: {out}")
    bench.finish()


if __name__ == "__main__":
    main()
