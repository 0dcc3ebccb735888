"""Wall time and peak memory of the exact solvers on growing city-like problems.

Each case is a seeded problem on a regular grid (1 km cells) with ``nt`` state time steps:

- B = D (C_t ⊗ C_s) D: exponential spatial correlation (5 km, exact FFT on the grid,
  ``inversion.covariance.RegularGridCorrelation``) times an exponential temporal correlation
  (12 h over 6 h steps); D = prior std in [0.5, 1.5] µmol m-2 s-1;
- H sparse (csr): each observation touches a footprint-like patch around a random receptor
  (a disc of radius 15 cells, about 70 % of its cells kept, values decaying with distance) in
  1–3 consecutive time steps — a few hundred to a few thousand non-zeros per row;
- R diagonal (0.5–2 ppm std).

Every (case, method) runs in a fresh process (multiprocessing "spawn"): the child builds the
problem, resets its peak-RSS counter (``/proc/self/clear_refs``), then times ``solve`` (mean) and
the exact std of the city total (``post.aggregate``) ``--repeat`` times (``--dense-repeat``
for dense), reporting the median run and every run, and reports the peak RSS of the solve
and aggregate, and its increase over the RSS before ``solve`` (the problem itself: H,
operators). ``dense`` runs only where its explicit matrices fit (``--dense-max`` state
elements). The machine, its load at the start and the end and every figure are printed, and
written to ``--json`` for ``benchmarks/readme_table.py``.

Usage::

    python benchmarks/solve_scaling.py                      # default sizes
    python benchmarks/solve_scaling.py --sizes 50x50x8:2000 100x100x20:2000 --json out.json
    python benchmarks/solve_scaling.py --profile 100x100x20:2000   # cProfile of obs-space
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "benchmarks")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _machine import Run, add_json_argument  # noqa: E402

DEFAULT_SIZES = [
    "10x10x10:100",  # 1e3 state, 1e2 obs
    "30x30x10:1000",  # 9e3 state, 1e3 obs
    "50x50x8:2000",  # 2e4 state, 2e3 obs: dense vs obs-space ratio
    "100x100x20:2000",  # 2e5 state: target < 60 s, < 4 GB
    "60x60x10:10000",  # 3.6e4 state, 1e4 obs
    "250x200x20:2000",  # 1e6 state
]


@dataclass(frozen=True)
class Case:
    ny: int
    nx: int
    nt: int
    n_obs: int
    seed: int = 0

    @property
    def n_state(self) -> int:
        return self.ny * self.nx * self.nt

    @classmethod
    def parse(cls, text: str) -> Case:
        try:
            grid, n_obs = text.split(":")
            ny, nx, nt = (int(v) for v in grid.lower().split("x"))
            return cls(ny, nx, nt, int(n_obs))
        except ValueError:
            raise SystemExit(
                f"--sizes: expected NYxNXxNT:NOBS (e.g. 50x50x8:2000); got {text!r}"
            ) from None


def make_prior(case: Case):
    """Prior covariance operator B (n_state x n_state); the one place B is chosen."""
    from inversion.covariance import (
        KroneckerCovariance,
        RegularGridCorrelation,
        TemporalCorrelation,
    )

    rng = np.random.default_rng(case.seed + 1)
    spatial = RegularGridCorrelation((case.ny, case.nx), 1.0, kind="exponential", length_km=5.0)
    temporal = TemporalCorrelation(12.0, nt=case.nt, step_hours=6.0)
    std = rng.uniform(0.5, 1.5, (case.nt, case.ny * case.nx))
    return KroneckerCovariance(std, spatial, temporal)


def make_h(case: Case) -> sp.csr_array:
    """Sparse footprint-like H (n_obs x n_state), vectorised (no loop over observations)."""
    rng = np.random.default_rng(case.seed)
    radius = max(2, min(15, min(case.ny, case.nx) // 3))  # 15 km footprint patch
    oy, ox = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    dist = np.hypot(oy, ox)
    disc = dist <= radius
    oy, ox, dist = oy[disc], ox[disc], dist[disc]
    n_obs = case.n_obs
    ry = rng.integers(0, case.ny, n_obs)
    rx = rng.integers(0, case.nx, n_obs)
    n_steps = rng.integers(1, 4, n_obs)  # footprint spans 1-3 time steps back
    t_end = rng.integers(0, case.nt, n_obs)
    rows, cols, vals = [], [], []
    obs = np.arange(n_obs)
    for lag in range(3):  # three passes over lags, vectorised over observations
        active = (lag < n_steps) & (t_end - lag >= 0)
        idx = obs[active]
        yy = ry[idx, None] + oy[None, :]
        xx = rx[idx, None] + ox[None, :]
        keep = (
            (yy >= 0)
            & (yy < case.ny)
            & (xx >= 0)
            & (xx < case.nx)
            & (rng.uniform(size=yy.shape) < 0.7)
        )
        value = np.exp(-dist[None, :] / (0.4 * radius)) * 0.05 / (1 + lag)
        t = (t_end[idx] - lag)[:, None]
        col = (t * case.ny + yy) * case.nx + xx
        r = np.broadcast_to(idx[:, None], yy.shape)
        rows.append(r[keep])
        cols.append(col[keep])
        vals.append(np.broadcast_to(value, yy.shape)[keep] * rng.uniform(0.5, 1.5, keep.sum()))
    H = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_obs, case.n_state),
    )
    H.sum_duplicates()
    return H


def make_problem(case: Case):
    from inversion.covariance import DiagonalCovariance
    from inversion.problem import LinearProblem

    rng = np.random.default_rng(case.seed + 2)
    H = make_h(case)
    B = make_prior(case)
    R = DiagonalCovariance(rng.uniform(0.5, 2.0, case.n_obs) ** 2)
    x_prior = np.ones(case.n_state)
    truth = x_prior + B.sqrt_matvec(rng.standard_normal(B.sqrt_dim))
    y = H @ truth + np.sqrt(R.diag()) * rng.standard_normal(case.n_obs)
    return LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R)


def city_weights(case: Case) -> np.ndarray:
    """City total: every time step, cells inside a central disc of radius ny/4."""
    iy, ix = np.mgrid[0 : case.ny, 0 : case.nx]
    disc = np.hypot(iy - case.ny / 2, ix - case.nx / 2) <= min(case.ny, case.nx) / 4
    return np.broadcast_to(disc.ravel(), (case.nt, case.ny * case.nx)).ravel().astype(float)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_case(case: Case, method: str, memory_budget: float, repeat: int, queue) -> None:
    """Child process: build, solve, aggregate (``repeat`` times, the median timed run is
    reported); put a result dict on ``queue``."""
    from inversion.solve import solve

    t0 = time.perf_counter()
    problem = make_problem(case)
    t_build = time.perf_counter() - t0
    w = city_weights(case)
    base = _rss_bytes()
    exact_peak = _reset_peak()
    runs = []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        post = solve(problem, method, memory_budget=memory_budget)
        t_solve = time.perf_counter() - t0
        t0 = time.perf_counter()
        total, total_std = post.aggregate(w)
        t_agg = time.perf_counter() - t0
        runs.append((t_solve + t_agg, t_solve, t_agg, time.process_time() - c0))
    all_runs = [r[0] for r in runs]
    runs.sort()
    _, t_solve, t_agg, t_cpu = runs[len(runs) // 2]  # median by total time
    peak = _peak_bytes()
    queue.put(
        {
            "t_build": t_build,
            "t_solve": t_solve,
            "t_agg": t_agg,
            "t_cpu": t_cpu,
            "runs": all_runs,
            "peak": peak,
            "delta": peak - base,
            "exact_peak": exact_peak,
            "mean": post.mean if case.n_state <= 50_000 else None,
            "total": total,
            "total_std": total_std,
            "prior_total_std": float(np.sqrt(w @ problem.B.matvec(w))),
            "chi2": post.chi2,
            "nnz_row": problem.H.nnz / case.n_obs,
        }
    )


def profile_case(case: Case) -> None:
    import cProfile
    import pstats

    from inversion.solve import solve

    problem = make_problem(case)
    w = city_weights(case)
    prof = cProfile.Profile()
    prof.enable()
    post = solve(problem, "obs-space")
    post.aggregate(w)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


def run_in_child(case: Case, method: str, memory_budget: float, repeat: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_case, args=(case, method, memory_budget, repeat, queue))
    proc.start()
    result = None
    while result is None:
        try:
            result = queue.get(timeout=2.0)
        except Empty:
            if not proc.is_alive():
                break
    proc.join()
    if result is None or proc.exitcode != 0:
        raise RuntimeError(f"{method} on {case} failed (exit code {proc.exitcode})")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="NYxNXxNT:NOBS ...")
    parser.add_argument(
        "--dense-max", type=int, default=20_000, help="largest n_state run with 'dense'"
    )
    parser.add_argument(
        "--memory-budget-gib", type=float, default=16.0, help="memory_budget given to solve"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed runs of obs-space per case in one process (the median is reported; the "
        "first includes numba compilation and FFT planning)",
    )
    parser.add_argument("--dense-repeat", type=int, default=3, help="timed runs of dense")
    add_json_argument(parser)
    parser.add_argument("--profile", metavar="SIZE", help="cProfile obs-space on one size")
    args = parser.parse_args(argv)
    if args.profile:
        profile_case(Case.parse(args.profile))
        return
    budget = args.memory_budget_gib * 2**30
    run = Run("solve_scaling", argv, args.json)
    header = (
        f"{'case':>17} {'n_state':>9} {'n_obs':>6} {'nnz/row':>8} {'method':>10} "
        f"{'solve s':>9} {'agg s':>7} {'peak MB':>9} {'+MB':>8} {'dense/obs':>10} "
        f"{'max|Δmean|':>11} {'Δstd rel':>9} {'total±std (prior std)':>26}"
    )
    print(header)
    print("-" * len(header))
    for text in args.sizes:
        case = Case.parse(text)
        methods = (["dense"] if case.n_state <= args.dense_max else []) + ["obs-space"]
        results = {
            m: run_in_child(
                case, m, budget, max(1, args.dense_repeat if m == "dense" else args.repeat)
            )
            for m in methods
        }
        for m in methods:
            r = results[m]
            ratio = dmean = dstd = ""
            if m == "obs-space" and "dense" in results:
                d = results["dense"]
                t_d, t_o = d["t_solve"] + d["t_agg"], r["t_solve"] + r["t_agg"]
                ratio = f"{t_d / t_o:.1f}x"
                scale = np.max(np.abs(d["mean"]))
                dmean = f"{np.max(np.abs(r['mean'] - d['mean'])) / scale:.1e}"
                dstd = f"{abs(r['total_std'] / d['total_std'] - 1):.1e}"
            tot = f"{r['total']:.4g}±{r['total_std']:.3g} ({r['prior_total_std']:.3g})"
            run.add(
                size=text, n_state=case.n_state, n_obs=case.n_obs, method=m,
                t_solve=r["t_solve"], t_agg=r["t_agg"], runs=r["runs"], peak_gb=r["peak"] / 1e9,
                ratio_dense_over_obs=ratio, rel_mean_diff=dmean, rel_std_diff=dstd,
                display={
                    "state": f"{case.n_state:,} ({case.ny}×{case.nx}×{case.nt})",
                    "obs": f"{case.n_obs:,}", "method": m,
                    "solve + total std [s]": f"{r['t_solve'] + r['t_agg']:.2f}",
                    "runs [s]": " ".join(f"{v:.2f}" for v in r["runs"]),
                    "CPU time [s]": f"{r['t_cpu']:.2f}",
                    "peak [GB]": f"{r['peak'] / 1e9:.2f}",
                    "dense / obs-space": ratio or "",
                    "agreement (mean, std)": f"{dmean} {dstd}".strip(),
                },
            )  # fmt: skip
            print(
                f"{text:>17} {case.n_state:>9} {case.n_obs:>6} {r['nnz_row']:>8.0f} {m:>10} "
                f"{r['t_solve']:>9.2f} {r['t_agg']:>7.2f} {r['peak'] / 2**20:>9.0f} "
                f"{r['delta'] / 2**20:>8.0f} {ratio:>10} {dmean:>11} {dstd:>9} {tot:>26}",
                flush=True,
            )
    print(
        "peak MB: peak RSS of the child during solve + aggregate (VmHWM after a reset); "
        "+MB: increase over its RSS before solve (the problem's H and operators). "
        f"solve/agg s: median of {args.repeat} runs in one process (obs-space; the first "
        f"includes numba compilation), of {args.dense_repeat} for dense."
    )
    run.finish()


if __name__ == "__main__":
    main()
