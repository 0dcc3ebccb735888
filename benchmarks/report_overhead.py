"""What the metrology outputs add to a run: uncertainty budget, verification, GeoTIFFs, the
figures and report.html, timed on the demo (or any configuration) after one solve.

    python benchmarks/report_overhead.py [CONFIG.yaml] [--repeat 3] [--baseline-ref GIT_REF]

Prints the machine (CPU, cores, load average at start and end) and the wall time of each part
(best of ``--repeat``). With ``--baseline-ref`` (e.g. the commit before issue #16), the
figures of that commit (``cityflux/figures.py``, which took the run in memory) are timed on the
same run for the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return f"CPU {cpu}; {os.cpu_count()} cores; OMP_NUM_THREADS={threads}"


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--baseline-ref", default=None)
    args = p.parse_args()

    from cityflux import metrology
    from cityflux._geotiff import write_geotiffs
    from cityflux.config import demo_config_path, load_config
    from cityflux.figures import RunView, render_figures
    from cityflux.outputs import posterior_dataset, write_outputs
    from cityflux.pipeline import run

    print(_machine())
    print(f"load average at start: {os.getloadavg()}")
    cfg = load_config(args.config or demo_config_path())
    t0 = time.perf_counter()
    result = run(cfg)
    print(f"run (inputs, transport, solve, totals): {time.perf_counter() - t0:.2f} s")
    rep = args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t_all, _ = _best(lambda: write_outputs(result, out / "all", figures=True), rep)
        ds = posterior_dataset(result, {})
        t_budget, (_, budget) = _best(lambda: metrology.write_budget(result, out), rep)
        t_ver, (_, ver) = _best(lambda: metrology.write_verification(result, out), rep)
        t_tif, _ = _best(lambda: write_geotiffs(ds, out), rep)
        t_cols, _ = _best(lambda: metrology.observation_columns(result), rep)
        table = result.case.observation_table(result.posterior.mean)
        table = table.assign(**metrology.observation_columns(result))
        view = RunView.from_outputs(result, ds, table, result.diagnostics, budget.table, ver.table)
        t_fig, figs = _best(lambda: render_figures(view), rep)
        t_html, _ = _best(lambda: metrology.build_report(view, figs, out / "all"), rep)
        print(f"write_outputs, everything:            {t_all:.3f} s")
        print(f"  uncertainty budget (budget.csv):    {t_budget:.3f} s")
        print(f"  verification (verification.csv):   {t_ver:.3f} s")
        print(f"  GeoTIFFs:                           {t_tif:.3f} s")
        print(f"  observation columns (scale, chi2):  {t_cols:.3f} s")
        print(f"  figures ({len(figs)}):                        {t_fig:.3f} s")
        print(f"  report.html (figures given):        {t_html:.3f} s")
        added = t_budget + t_ver + t_tif + t_cols + t_html
        print(f"  metrology additions without figures: {added:.3f} s")
        if args.baseline_ref:
            src = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{args.baseline_ref}:cityflux/figures.py"],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            path = out / "figures_baseline.py"
            path.write_text(src)
            spec = importlib.util.spec_from_file_location("figures_baseline", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            t_old, _ = _best(lambda: mod.write_figures(result, out / "old"), rep)
            print(f"  figures of {args.baseline_ref} (4):         {t_old:.3f} s")
            print(f"  new figures / old figures: {t_fig / t_old:.2f}")
            print(f"  added by #16 (additions + figure difference): {added + t_fig - t_old:.3f} s")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
