"""Wall and CPU time of ``cityflux demo``, split by stage, and of ``cityflux --help``.

Three measurements, each repeated (median reported):

1. ``cityflux --help`` in a fresh process (what a new user waits for first);
2. ``cityflux demo --out TMP`` in a fresh process: total wall time and CPU time of the child
   (imports, numba cache loads, every stage, figures and outputs);
3. the stages of the same run in this process (``cityflux.pipeline.run`` records the wall and
   CPU time of each stage), plus ``write_outputs`` with figures.

Usage::

    python benchmarks/demo.py [--repeat 3]

The machine (CPU model, cores, BLAS threads, load average at start and end) is printed first.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import Run, add_json_argument  # noqa: E402


def _cityflux() -> list[str]:
    exe = Path(sys.executable).with_name("cityflux")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cityflux.cli"]


def _child(args: list[str]) -> tuple[float, float]:
    """Wall and CPU time [s] of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="repetitions (median reported)")
    add_json_argument(p)
    args = p.parse_args(argv)
    bench = Run("demo", argv, args.json)
    cli = _cityflux()
    tmp = Path(tempfile.mkdtemp(prefix="cityflux-demo-bench-"))
    try:
        _child([*cli, "demo", "--out", str(tmp / "warm")])  # fills the numba cache once
        helps = [_child([*cli, "--help"]) for _ in range(max(args.repeat, 5))]
        demos = [_child([*cli, "demo", "--out", str(tmp / f"d{i}")]) for i in range(args.repeat)]

        from cityflux.config import demo_config_path, load_config
        from cityflux.outputs import write_outputs
        from cityflux.pipeline import run

        cfg = load_config(demo_config_path())
        stages: dict[str, list[tuple[float, float]]] = {}
        for i in range(args.repeat):
            res = run(cfg)
            w0, c0 = time.perf_counter(), time.process_time()
            write_outputs(res, tmp / f"s{i}", figures=True)
            res.timings.wall["outputs+figures"] = time.perf_counter() - w0
            res.timings.cpu["outputs+figures"] = time.process_time() - c0
            for name, wall in res.timings.wall.items():
                stages.setdefault(name, []).append((wall, res.timings.cpu[name]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(pairs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(w for w, _ in pairs), statistics.median(c for _, c in pairs)

    def add(what: str, wall: float, cpu: float, n: int | None = None, **extra) -> None:
        shown = {"what": what, "wall [s]": f"{wall:.2f}", "CPU [s]": f"{cpu:.2f}",
                 "median of": "" if n is None else n}  # fmt: skip
        bench.add(what=what, wall_s=wall, cpu_s=cpu, repeats=n, display=shown, **extra)

    print(f"\n{'what':32s} {'wall [s]':>9s} {'CPU [s]':>9s}   (median of {args.repeat})")
    w, c = med(helps)
    print(f"{'cityflux --help':32s} {w:9.2f} {c:9.2f}   (median of {len(helps)})")
    add("cityflux --help", w, c, len(helps))
    w, c = med(demos)
    print(f"{'cityflux demo (fresh process)':32s} {w:9.2f} {c:9.2f}")
    add("cityflux demo (fresh process)", w, c, len(demos), runs_wall_s=[x for x, _ in demos])
    total_w = total_c = 0.0
    for name, pairs in stages.items():
        w, c = med(pairs)
        total_w, total_c = total_w + w, total_c + c
        print(f"  stage {name:26s} {w:9.2f} {c:9.2f}")
        add(f"stage {name} (in process)", w, c, len(pairs))
    print(f"  {'sum of stages (in process)':30s} {total_w:9.2f} {total_c:9.2f}")
    add("sum of stages (in process)", total_w, total_c)
    bench.finish()


if __name__ == "__main__":
    main()
