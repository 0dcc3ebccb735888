"""The matrix-free 'cg' solver at published urban inversion sizes, against obs-space where it fits.

Cases (seeded, synthetic; H footprint-like and sparse as in ``benchmarks/solve_scaling.py``,
B = D (C_t ⊗ C_s) D with a 5 km exponential FFT spatial correlation, or another kind with
``--spatial-kind`` (``separable_exponential``: O(n) recursions, no FFT), R diagonal):

- ``bay``: Bay Area window, 105 x 130 cells (13,650) x 96 hourly steps = 1.31 M unknowns,
  2,100 observations (target: mean + exact city-total and daily-total std <= 60 s, <= 8 GB);
- ``city``: city-month, 100 x 100 1 km cells x 30 daily steps x 2 sectors = 600 k unknowns,
  10,000 observations (<= 3 min, <= 12 GB);
- ``regional``: 10 M unknowns (250 x 400 cells x 100 steps), 100,000 observations, H written
  to zarr chunks and streamed from disk (<= 15 min, <= 16 GB);
- ``quick``: a small case for smoke runs.

Every (case, method) runs in a fresh "spawn" process; it reports wall times and the
process CPU time of the median run (all threads; on a shared machine the wall time grows
with the load, the CPU time much less), (the mean and
the exact aggregates are solved ``--repeat`` times in that process; the median run is
reported, and every run is recorded), peak RSS (VmHWM), CG iterations and, where obs-space
fits, the agreement of means, exact aggregate std and the low-rank std (relative error of
low-rank vs exact std on ``--std-cells`` random cells, exact by obs-space aggregates of unit
vectors: median, 95th percentile, max; with ``--std-map``, over every cell against the
obs-space std map; with ``--truncations``, also for the map from the leading k pairs only).
Each process keeps freed large arrays for reuse (:func:`inversion.retain_freed_memory`, as the
``cityflux`` command does); ``--default-malloc`` leaves glibc's default (every large array
faulted in afresh) for comparison.
``--rank 0 --std-pairs N`` makes the cg std map from N randomized block Lanczos pairs (as where
the complete spectrum does not fit), ``--corrected S`` adds the sampled correction.
``--cg-local TILE_CELLS TILE_STEPS HALO_CELLS HALO_STEPS`` runs ``CGOptions(std="local")``,
the path of ``inversion.cg.std: local`` in a config (tiled windows and the check at 16 cells),
and compares it with the exact map. ``--cell-reference`` solves the ``--std-cells`` cells' std by certified cg solves (aggregates of
unit vectors, to ``--aggregate-tol``: an upper estimate within that relative variance error)
where obs-space does not fit, and compares the maps with it. The
machine, the load at the start and the end, and every figure are printed, and written to
``--json`` for ``benchmarks/readme_table.py``.

Usage::

    python benchmarks/urban_scale.py --cases quick
    python benchmarks/urban_scale.py --cases bay city --no-std
    python benchmarks/urban_scale.py --cases bay city --no-std --spatial-kind separable_exponential
    python benchmarks/urban_scale.py --cases bay --rank full --std-map --truncations 300 1000 1500
    python benchmarks/urban_scale.py --cases regional --no-compare --mean-only
    python benchmarks/urban_scale.py --cases bay --rank 0 --std-pairs 600 --corrected 64
    python benchmarks/urban_scale.py --cases bay --repeat 1 --std-map --cg-local 20 6 15 4
    python benchmarks/urban_scale.py --cases regional --no-compare --repeat 1 --rank 0 \
        --std-pairs 1500 --corrected 64 --cell-reference --aggregate-tol 1e-4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

from _machine import Run, add_json_argument  # noqa: E402

CASES = {  # ny, nx, nt, sectors, n_obs, step_hours, tau_hours
    "quick": (30, 40, 12, 1, 500, 1.0, 6.0),
    "bay": (105, 130, 96, 1, 2100, 1.0, 6.0),
    "city": (100, 100, 30, 2, 10_000, 24.0, 48.0),
    "regional": (250, 400, 100, 1, 100_000, 1.0, 6.0),
}


W_ROWS = 5  # city total + 4 sub-period totals


def make_problem(
    name: str, zarr_dir: str | None, h_cache: float = 0, spatial_kind: str = "exponential"
):
    from solve_scaling import Case, make_h

    from inversion.chunked import ChunkedOperator, write_chunked_h
    from inversion.covariance import DiagonalCovariance, kronecker_prior
    from inversion.problem import LinearProblem

    ny, nx, nt, ns, n_obs, step, tau = CASES[name]
    rng = np.random.default_rng(2)
    H = make_h(Case(ny, nx, nt * ns, n_obs))  # columns in (sector, time, y, x) order
    B = kronecker_prior(
        rng.uniform(0.5, 1.5, (ns, nt, ny, nx)), (ny, nx), 1.0, spatial_kind, 5.0,
        nt=nt, step_hours=step, tau_hours=tau, n_sectors=ns,
    )  # fmt: skip
    R = DiagonalCovariance(rng.uniform(0.5, 2.0, n_obs) ** 2)
    x_prior = np.ones(B.shape[0])
    truth = x_prior + B.sqrt_matvec(rng.standard_normal(B.sqrt_dim))
    y = H @ truth + np.sqrt(R.diag()) * rng.standard_normal(n_obs)
    if zarr_dir is not None:
        path = write_chunked_h(H, Path(zarr_dir) / f"H_{name}.zarr", 2000, overwrite=True)
        del H
        H = ChunkedOperator.open(path, cache_bytes=h_cache)
    return LinearProblem(H=H, x_prior=x_prior, y=y, B=B, R=R), (ny, nx, nt, ns), truth


def weights(dims) -> np.ndarray:
    """City total (central disc, all steps and sectors) and 4 totals over quarters of the period."""
    ny, nx, nt, ns = dims
    iy, ix = np.mgrid[0:ny, 0:nx]
    disc = (np.hypot(iy - ny / 2, ix - nx / 2) <= min(ny, nx) / 4).ravel().astype(float)
    W = np.zeros((W_ROWS, ns, nt, ny * nx))
    W[0] = disc
    for q in range(4):
        W[1 + q, :, q * nt // 4 : (q + 1) * nt // 4] = disc
    return W.reshape(W_ROWS, -1)


def _peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def run(name: str, method: str, o: dict, queue) -> None:
    """One (case, method) in this process; puts a dict of figures on ``queue``."""
    from inversion.cg import CGOptions
    from inversion.solve import solve

    if not o["default_malloc"]:
        from inversion import retain_freed_memory

        retain_freed_memory()
    zarr_dir = o["zarr_dir"] if name == "regional" else None
    problem, dims, _truth = make_problem(
        name, zarr_dir, o["h_cache_gib"] * 2**30, o["spatial_kind"]
    )
    W = weights(dims)
    cells = np.random.default_rng(9).choice(problem.n_state, o["std_cells"], replace=False)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    out = {"n_state": problem.n_state, "n_obs": problem.n_obs}
    opts = CGOptions(
        rank=o["rank"], tol=o["tol"], std_pairs=o["std_pairs"], seed=o["seed"],
        aggregate_tol=o["aggregate_tol"],
    )  # fmt: skip
    runs = []
    for _ in range(max(1, o["repeat"])):  # the first run includes numba compilation
        c0, t0 = time.process_time(), time.perf_counter()
        post = solve(problem, method, memory_budget=12 * 2**30, cg=opts)
        t_mean = time.perf_counter() - t0
        if o["mean_only"]:  # mean only: the time-to-answer of the largest cases
            runs.append((t_mean, t_mean, 0.0, time.process_time() - c0))
            continue
        t0 = time.perf_counter()
        agg = post.aggregate(W)
        t_agg = time.perf_counter() - t0
        runs.append((t_mean + t_agg, t_mean, t_agg, time.process_time() - c0))
    out["runs"] = [r[0] for r in runs]
    _, out["t_mean"], out["t_agg"], out["t_cpu"] = sorted(runs)[len(runs) // 2]
    if o["mean_only"]:
        out.update(iterations=post.info.get("iterations"), peak=_peak(),
                   mean_scale=float(np.max(np.abs(post.mean))))  # fmt: skip
        queue.put(out)
        return
    out["agg_mean"], out["agg_std"] = agg
    out["peak_agg"] = _peak()
    if method == "cg":
        out["iterations"] = post.info["iterations"]
        out["k"] = post.info["rank"]
        out["complete"] = post.info["complete_spectrum"]
        out["agg_iters"] = [s["iterations"] for s in post.info["solves"]]
        out["agg_bound"] = max(s["final"] for s in post.info["solves"])
        out["agg_space"] = post.info["solves"][0].get("space", "chi")
        out["dofs_est"] = post.dofs
        out["dofs_exact"] = post.info["complete_spectrum"]  # at the time of the mean
        if o["local_std"]:  # the cells' std from the observations near each (upper bound)
            from inversion.local_std import local_posterior_std

            H = problem.H
            if not sp.issparse(H):  # the zarr-backed H: the same rows again, in memory
                from solve_scaling import Case, make_h

                ny, nx, nt, ns = dims
                H = make_h(Case(ny, nx, nt * ns, problem.n_obs))
            out["local"] = []
            for hs, ht in zip(o["local_std"][::2], o["local_std"][1::2], strict=True):
                loc = local_posterior_std(H, problem.B, problem.R, cells, halo_cells=hs,
                                          halo_steps=ht)  # fmt: skip
                out["local"].append({"halo": (hs, ht), "std": loc.std, "seconds": loc.seconds,
                                     "obs": int(np.median(loc.n_obs)),
                                     "box": int(np.median(loc.box_cells))})  # fmt: skip
            if o["local_map"]:  # the whole map, tile by tile, with the first halo
                from inversion.local_std import _Windows, local_std_map

                cc, cs = o["local_map"]
                hs, ht = o["local_std"][:2]
                if problem.n_state <= 2_000_000 or o["local_map_all"]:
                    m = local_std_map(H, problem.B, problem.R, core_cells=cc, core_steps=cs,
                                      halo_cells=hs, halo_steps=ht)  # fmt: skip
                    out["local_map"] = {"std": m.std, "seconds": m.seconds, "estimated": False,
                                        "cells": m.std[cells]}  # fmt: skip
                else:  # too long to run here: time a sample of tiles, report the estimate
                    win = _Windows(H, problem.B, problem.R, hs, ht)
                    ny, nx, nt, _ = dims
                    rs = np.random.default_rng(3)
                    n_tiles = -(-nt // cs) * -(-ny // cc) * -(-nx // cc)
                    t0 = time.perf_counter()
                    for _ in range(8):
                        a, b, c = (
                            rs.integers(0, nt - cs),
                            rs.integers(0, ny - cc),
                            rs.integers(0, nx - cc),
                        )
                        win.solve(((a, a + cs), (b, b + cc), (c, c + cc)))
                    per = (time.perf_counter() - t0) / 8
                    out["local_map"] = {"seconds": per * n_tiles, "estimated": True,
                                        "tiles": n_tiles, "per_tile": per}  # fmt: skip
                out["local_map"]["core"] = (cc, cs)
                out["local_map"]["halo"] = (hs, ht)
            del H
        if o["cg_local"]:  # the solver's own local map and its self-check (as cityflux runs it)
            import dataclasses

            tc, ts, hc, hs = o["cg_local"]
            lp = post.with_options(dataclasses.replace(
                opts, std="local", local_tile=(tc, ts), local_halo=(hc, hs)))  # fmt: skip
            t0 = time.perf_counter()
            std = lp.std
            chk = lp.info["local_check"]
            out["cg_local"] = {"seconds": time.perf_counter() - t0, "method": lp.std_method,
                               "cells": std[cells], "check_cells": chk["cells"],
                               "check_excess": chk["rel_excess"],
                               "map": std if o["std_map"] else None}  # fmt: skip
        if o["cell_reference"]:  # the cells' std by certified cg solves, batch by batch
            t0 = time.perf_counter()
            before = len(post.info["solves"])
            out["ref_cell_std"] = post.element_std(cells)
            out["t_ref"] = time.perf_counter() - t0
            solves = post.info["solves"][before:]
            out["ref_iters"] = [s["iterations"] for s in solves]
            out["ref_bound"] = max(s["final"] for s in solves)
        if o["no_std"]:
            out["mean_sample"] = post.mean[cells]
            out["mean_scale"] = float(np.max(np.abs(post.mean)))
            out["peak"] = _peak()
            queue.put(out)
            return
        t0 = time.perf_counter()
        post.lowrank_std_at([0])  # the pairs behind the map (complete or block spectrum)
        out["t_pairs"] = time.perf_counter() - t0
        out["k"] = post.info["rank"]
        theta = post.info["ritz_values"]
        out["theta_last"] = float(theta[-1]) if theta.size else 0.0  # the spectrum left out
        out["complete"] = post.info["complete_spectrum"]
        ranks = sorted({k for k in o["truncations"] if k < out["k"]} | {out["k"]})
        maps = post.lowrank_std_at(ranks)
        out["t_std"] = time.perf_counter() - t0
        std = maps.pop(out["k"])
        out["cell_std"] = std[cells]
        out["trunc"] = {k: v[cells] for k, v in maps.items()}
        if o["std_map"]:
            out["std_map"] = std
            out["trunc"] = maps
        if o["corrected"]:
            t0 = time.perf_counter()
            corr = post.corrected_std(o["corrected"], o["seed"])
            out["corr_std"] = corr[cells]
            out["corr_se"] = post.info["std_se"][cells]
            rel_se = post.info["std_se"] / corr  # every cell: the map's own stated error
            out["se_all"] = [float(np.median(rel_se)), float(np.percentile(rel_se, 95)),
                             float(rel_se.max())]  # fmt: skip
            out["t_corr"] = time.perf_counter() - t0
            out["corr_iters"] = [s["iterations"] for s in post.info["solves"][-1:]]
    elif not o["no_std"]:
        E = np.zeros((o["std_cells"], problem.n_state))
        E[np.arange(o["std_cells"]), cells] = 1.0
        t0 = time.perf_counter()
        out["cell_std"] = post.aggregate(E)[1]  # exact, independent of the std map
        out["t_std"] = time.perf_counter() - t0
        if o["std_map"]:
            t0 = time.perf_counter()
            out["std_map"] = post.std
            out["t_map"] = time.perf_counter() - t0
    out["mean_sample"] = post.mean[cells]
    out["mean_scale"] = float(np.max(np.abs(post.mean)))
    out["peak"] = _peak()
    queue.put(out)


def _dist(rel: np.ndarray) -> str:
    """Median, 95th percentile and max of |rel| (percent, or plain below 1e-4)."""
    a = np.abs(rel)
    f = (lambda v: f"{v:.2%}") if a.max() >= 1e-4 else (lambda v: f"{v:.1e}")
    return (f"median {f(np.median(a))}, p95 {f(np.percentile(a, 95))}, max {f(a.max())} "
            f"({a.size:,} cells)")  # fmt: skip


def in_child(*args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=run, args=(*args, q))
    p.start()
    res = None
    while res is None:
        try:
            res = q.get(timeout=2.0)
        except Empty:
            if not p.is_alive():
                break
    p.join()
    if res is None:
        raise RuntimeError(f"{args[:2]} failed (exit code {p.exitcode})")
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["quick"], choices=list(CASES))
    ap.add_argument(
        "--rank", type=_rank, default="auto",
        help="CGOptions.rank: Lanczos steps at least (Ritz pairs), 'full' (complete spectrum) "
        "or 'auto' (complete spectrum once the std map is asked for, if it fits)",
    )  # fmt: skip
    ap.add_argument(
        "--truncations", type=int, nargs="*", default=[],
        help="also report the low-rank std from the leading K pairs only, for each K",
    )  # fmt: skip
    ap.add_argument(
        "--std-map", action="store_true",
        help="compare the whole cg std map with the whole obs-space map (streamed when G = B Hᵀ "
        "does not fit), besides the --std-cells cells solved exactly",
    )  # fmt: skip
    ap.add_argument("--std-cells", type=int, default=200, help="cells for the std comparison")
    ap.add_argument("--no-compare", action="store_true", help="skip obs-space")
    ap.add_argument(
        "--cell-reference", action="store_true",
        help="the exact std of the --std-cells cells by certified cg solves (unit-vector "
        "aggregates, batch by batch, to --aggregate-tol), where obs-space does not fit",
    )  # fmt: skip
    ap.add_argument(
        "--mean-only", action="store_true", help="time the cg mean only (no aggregates, no std)"
    )
    ap.add_argument(
        "--tol",
        type=float,
        default=1e-8,
        help="CGOptions.tol: relative residual of the mean, relative variance bound of the "
        "aggregates",
    )
    ap.add_argument(
        "--corrected",
        type=int,
        default=0,
        metavar="N",
        help="also time std='low-rank+sampled' with N samples and compare it with the exact std",
    )
    ap.add_argument(
        "--no-std",
        action="store_true",
        help="mean and exact aggregates only (no low-rank std map, no obs-space comparison)",
    )
    ap.add_argument(
        "--h-cache-gib", type=float, default=4.0,
        help="memory the zarr-backed H (regional) may keep once read; 0 = fully out of core",
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=3, help="timed solves (median reported)")
    ap.add_argument(
        "--spatial-kind", default="exponential",
        choices=["exponential", "gaussian", "matern32", "separable_exponential"],
        help="spatial correlation of B (L = 5 km); separable_exponential: O(n) products, no FFT",
    )  # fmt: skip
    ap.add_argument(
        "--std-pairs", type=int, default=None,
        help="CGOptions.std_pairs: block Lanczos pairs for the std map (with --rank 0, or "
        "where the complete spectrum does not fit)",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="CGOptions.seed (block start, samples)")
    ap.add_argument(
        "--local-map", type=int, nargs=2, default=None, metavar=("CELLS", "STEPS"),
        help="with --local-std: the whole std map by inversion.local_std_map in tiles of CELLS "
        "cells and STEPS steps with the first halo (above 2 M unknowns only 8 tiles are timed "
        "and the map's time estimated); compared with the exact map where --std-map gives one",
    )  # fmt: skip
    ap.add_argument(
        "--local-map-all", action="store_true",
        help="run the whole --local-map at any size (no estimate from 8 tiles)",
    )  # fmt: skip
    ap.add_argument(
        "--local-std", type=int, nargs="+", default=None, metavar="N",
        help="CELLS STEPS [CELLS STEPS ...]: also the --std-cells cells' std by "
        "inversion.local_posterior_std with a window of CELLS cells and STEPS steps each way, "
        "for each pair (an upper bound; compared with the exact cells)",
    )  # fmt: skip
    ap.add_argument(
        "--cg-local", type=int, nargs=4, default=None,
        metavar=("TILE_CELLS", "TILE_STEPS", "HALO_CELLS", "HALO_STEPS"),
        help="also the std map of CGOptions(std='local') (CGPosterior.local_std: tiled windows "
        "plus the check against certified solves at 16 cells), timed, and compared with the "
        "exact map where --std-map gives one",
    )  # fmt: skip
    ap.add_argument(
        "--default-malloc", action="store_true",
        help="do not call inversion.retain_freed_memory (glibc's default allocator settings)",
    )  # fmt: skip
    ap.add_argument(
        "--aggregate-tol", type=float, default=None,
        help="CGOptions.aggregate_tol: certified relative variance error of the totals "
        "(default: --tol)",
    )  # fmt: skip
    add_json_argument(ap)
    args = ap.parse_args(argv)
    if args.local_map and not args.local_std:
        ap.error("--local-map needs --local-std (its halo)")
    if args.local_std and len(args.local_std) % 2:
        ap.error("--local-std takes pairs: CELLS STEPS [CELLS STEPS ...]")
    bench = Run("urban_scale", argv, args.json)
    print(f"B: {args.spatial_kind} spatial correlation, L = 5 km")
    print(f"CGOptions.tol={args.tol:g}, aggregate_tol={args.aggregate_tol}, rank={args.rank}, "
          f"std_pairs={args.std_pairs}; freed memory "
          f"{'returned to the OS (glibc default)' if args.default_malloc else 'retained'}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        o = dict(vars(args), zarr_dir=tmp)
        for name in args.cases:
            label = (
                name if args.spatial_kind == "exponential" else f"{name} ({args.spatial_kind} C_s)"
            )
            cg = in_child(name, "cg", o)
            size = f"{cg['n_state']:,} / {cg['n_obs']:,}"
            runs = " ".join(f"{v:.1f}" for v in cg["runs"])
            if args.mean_only:
                print(
                    f"[{name}] n_state={cg['n_state']:,} n_obs={cg['n_obs']:,} | cg mean only: "
                    f"{cg['t_mean']:.1f} s ({cg['iterations']} it; runs {runs}), peak "
                    f"{cg['peak'] / 2**30:.2f} GiB",
                    flush=True,
                )
                bench.add(table="solve", case=name, method="cg", raw=cg, display={
                    "case": label, "unknowns / obs": size, "method": "cg (mean only)",
                    "mean [s]": f"{cg['t_mean']:.1f}", "runs [s]": runs,
                    "CPU time [s]": f"{cg['t_cpu']:.1f}",
                    "iterations": cg["iterations"], "H cache [GiB]": args.h_cache_gib,
                    "peak [GiB]": f"{cg['peak'] / 2**30:.2f}",
                })  # fmt: skip
                continue
            spectrum = (
                "complete spectrum" if cg["complete"]
                else "block Lanczos pairs" if args.std_pairs and not args.no_std
                else "Ritz pairs of the mean's run"
            )  # fmt: skip
            std_part = (
                "" if args.no_std else f"; low-rank std map {cg['t_std']:.1f} s, peak "
                f"{cg['peak'] / 2**30:.2f} GiB"
            )  # fmt: skip
            print(
                f"[{name}] n_state={cg['n_state']:,} n_obs={cg['n_obs']:,} | cg: mean "
                f"{cg['t_mean']:.1f} s ({cg['iterations']} it; k={cg['k']} {spectrum}), "
                f"{W_ROWS} exact aggregates {cg['t_agg']:.1f} s ({cg['agg_space']}-space PCG it "
                f"{cg['agg_iters']}, certified rel. variance error <= {cg['agg_bound']:.1e}), "
                f"mean + aggregates {cg['t_mean'] + cg['t_agg']:.1f} s, peak "
                f"{cg['peak_agg'] / 2**30:.2f} GiB{std_part}; DOFS "
                f"{'' if cg['dofs_exact'] else 'est. from the Ritz pairs '}{cg['dofs_est']:.1f}",
                flush=True,
            )
            bench.add(table="solve", case=name, method="cg", raw=_small(cg), display={
                "case": label, "unknowns / obs": size, "method": "cg",
                "mean [s]": f"{cg['t_mean']:.1f}", f"{W_ROWS} exact totals [s]":
                f"{cg['t_agg']:.1f}", "mean + totals [s]": f"{cg['t_mean'] + cg['t_agg']:.1f}",
                "runs [s]": runs, "CPU time [s]": f"{cg['t_cpu']:.1f}",
                "iterations (mean; totals)":
                f"{cg['iterations']}; {cg['agg_iters']}", "certified rel. variance error":
                f"{cg['agg_bound']:.1e}", "peak [GiB]": f"{cg['peak_agg'] / 2**30:.2f}",
                "H cache [GiB]": args.h_cache_gib if name == "regional" else "",
            })  # fmt: skip
            if not args.no_std:
                bench.add(table="std map", case=name, display={
                    "case": label, "pairs": f"{cg['k']} ({spectrum})",
                    "pairs + map [s]": f"{cg['t_std']:.1f}",
                })  # fmt: skip
            if args.corrected:  # what the map states of itself, at any size
                med, p95, mx = cg["se_all"]
                stated = f"median {med:.2%}, p95 {p95:.2%}, max {mx:.2%} (all cells)"
                print(f"[{name}] low-rank+sampled std (n={args.corrected}): {cg['t_corr']:.1f} s; "
                      f"last Ritz value {cg['theta_last']:.3g}; stated standard error / std: {stated}",
                      flush=True)  # fmt: skip
                bench.add(table="std map stated error", case=name, display={
                    "case": label, "map": f"low-rank+sampled, {cg['k']} pairs, "
                    f"{args.corrected} samples", "last Ritz value": f"{cg['theta_last']:.3g}",
                    "time [s]": f"{cg['t_std'] + cg['t_corr']:.1f}", "stated se / std": stated,
                })  # fmt: skip
            if "ref_cell_std" in cg:  # no obs-space at this size: certified cg solves instead
                print(f"[{name}] exact std of {cg['ref_cell_std'].size} cells by certified cg "
                      f"solves: {cg['t_ref']:.1f} s (PCG it {cg['ref_iters']}, certified rel. "
                      f"variance error <= {cg['ref_bound']:.1e})", flush=True)  # fmt: skip
                bench.add(table="std map reference", case=name, display={
                    "case": label, "cells": cg["ref_cell_std"].size,
                    "time [s]": f"{cg['t_ref']:.1f}", "PCG iterations": str(cg["ref_iters"]),
                    "certified rel. variance error": f"{cg['ref_bound']:.1e}",
                })  # fmt: skip
                if args.no_compare or cg["n_obs"] > 20_000:  # else against obs-space below
                    if not args.no_std:
                        _accuracy(bench, label, cg, cg["ref_cell_std"], spectrum, args)
                    if "local" in cg:
                        _local_accuracy(bench, label, cg, cg["ref_cell_std"], args)
            if args.no_compare or cg["n_obs"] > 20_000:
                if "local_map" in cg:  # no exact map at this size
                    first = cg["local"][0]["std"] if cg.get("local") else None
                    _local_map_accuracy(bench, label, cg["local_map"], None, first)
                continue
            ob = in_child(name, "obs-space", o)
            dm = np.max(np.abs(cg["mean_sample"] - ob["mean_sample"])) / ob["mean_scale"]
            ds = np.max(np.abs(cg["agg_std"] / ob["agg_std"] - 1))
            mp_part = f", std map {ob['t_map']:.1f} s" if args.std_map else ""
            print(
                f"[{name}] obs-space: mean {ob['t_mean']:.1f} s, aggregates {ob['t_agg']:.1f} s"
                f"{mp_part}, peak {ob['peak'] / 2**30:.2f} GiB | cg vs obs-space: max|Δmean|/"
                f"max|mean| {dm:.1e}, aggregate std max rel diff {ds:.1e}",
                flush=True,
            )
            oruns = " ".join(f"{v:.1f}" for v in ob["runs"])
            bench.add(table="solve", case=name, method="obs-space", raw=_small(ob), display={
                "case": label, "unknowns / obs": size, "method": "obs-space",
                "mean [s]": f"{ob['t_mean']:.1f}", f"{W_ROWS} exact totals [s]":
                f"{ob['t_agg']:.1f}", "mean + totals [s]": f"{ob['t_mean'] + ob['t_agg']:.1f}",
                "runs [s]": oruns, "CPU time [s]": f"{ob['t_cpu']:.1f}",
                "peak [GiB]": f"{ob['peak_agg'] / 2**30:.2f}",
                "cg vs obs-space (mean; total std)": f"{dm:.1e}; {ds:.1e}",
            })  # fmt: skip
            if args.no_std:
                continue
            if "ref_cell_std" in cg:  # the certified cg reference against obs-space's
                print(f"    certified cg cell std vs obs-space: max rel diff "
                      f"{np.max(np.abs(cg['ref_cell_std'] / ob['cell_std'] - 1)):.1e}")  # fmt: skip
            _accuracy(bench, label, cg, ob["cell_std"], spectrum, args, ob)
            if "local" in cg:
                _local_accuracy(bench, label, cg, ob["cell_std"], args)
            if "local_map" in cg and args.std_map:
                _local_map_accuracy(bench, label, cg["local_map"], ob["std_map"])
            if "cg_local" in cg:
                _cg_local_accuracy(bench, label, cg["cg_local"], ob)
            print(f"    city total {cg['agg_mean'][0]:.5g} ± {cg['agg_std'][0]:.4g} (cg), "
                  f"{ob['agg_mean'][0]:.5g} ± {ob['agg_std'][0]:.4g} (obs-space)")  # fmt: skip
    bench.finish()


def _accuracy(bench, name: str, cg: dict, ref: np.ndarray, spectrum: str, args, ob=None) -> None:
    """Tables of the cg std map (low-rank, truncated, low-rank+sampled) against the exact std
    ``ref`` of the sampled cells (obs-space aggregates ``ob``, or certified cg solves)."""
    print(f"    low-rank std (k={cg['k']}) vs exact cells: "
          f"{_dist(cg['cell_std'] / ref - 1)}")  # fmt: skip
    bench.add(table="std map accuracy", case=name, display={
        "case": name, "map": f"low-rank, {cg['k']} pairs ({spectrum})",
        "time [s]": f"{cg['t_std']:.1f}",
        "rel. error vs exact std (cells)": _dist(cg["cell_std"] / ref - 1),
    })  # fmt: skip
    if args.std_map and ob is not None:
        print(f"    low-rank std map (k={cg['k']}) vs obs-space map: "
              f"{_dist(cg['std_map'] / ob['std_map'] - 1)}")  # fmt: skip
    for k, v in sorted(cg["trunc"].items()):
        tr = v / ob["std_map"] - 1 if args.std_map and ob is not None else v / ref - 1
        print(f"    truncated to the leading k={k}: {_dist(tr)}")
    if args.corrected:
        err = cg["corr_std"] / ref - 1
        z = (cg["corr_std"] - ref) / cg["corr_se"]
        print(
            f"[{name}] low-rank+sampled std (n={args.corrected}): "
            f"{cg['t_corr']:.1f} s (PCG it {cg['corr_iters']}), rel error "
            f"{_dist(err)}, mean signed {err.mean():+.2%}; stated standard error "
            f"median {np.median(cg['corr_se'] / ref):.2%}; z = error/se: mean "
            f"{z.mean():+.2f}, std {z.std():.2f}",
            flush=True,
        )
        bench.add(table="std map accuracy", case=name, display={
            "case": name, "map": f"low-rank+sampled, {cg['k']} pairs, "
            f"{args.corrected} samples", "time [s]": f"{cg['t_std'] + cg['t_corr']:.1f}",
            "rel. error vs exact std (cells)": _dist(err),
            "z = error / stated se": f"mean {z.mean():+.2f}, std {z.std():.2f}",
        })  # fmt: skip


def _local_accuracy(bench, name: str, cg: dict, ref: np.ndarray, args) -> None:
    """Table rows of the local-window std of the sampled cells against their exact std ``ref``."""
    for loc in cg["local"]:
        rel = loc["std"] / ref - 1
        hs, ht = loc["halo"]
        print(f"    local-window std (halo {hs} cells, {ht} steps; median {loc['obs']} obs, "
              f"{loc['box']:,} box cells) vs exact cells: {_dist(rel)}; lowest rel. error "
              f"{rel.min():+.1e} (an upper bound: >= 0 up to the reference's own error); "
              f"{loc['seconds']:.1f} s", flush=True)  # fmt: skip
        bench.add(table="std map accuracy", case=name, display={
            "case": name, "map": f"local windows, halo {hs} cells / {ht} steps "
            f"(median {loc['obs']} obs)", "time [s]": f"{loc['seconds']:.1f}",
            "rel. error vs exact std (cells)": f"{_dist(rel)}; lowest {rel.min():+.1e}",
        })  # fmt: skip


def _local_map_accuracy(
    bench, name: str, lm: dict, exact: np.ndarray | None, single: np.ndarray | None = None
) -> None:
    """Table row of the tiled local std map: its time (or estimate) and, where the exact map
    is known, its error over every cell."""
    (cc, cs), (hs, ht) = lm["core"], lm["halo"]
    if lm["estimated"]:
        when = (f"{lm['seconds']:.0f} (estimated: {lm['tiles']:,} tiles x {lm['per_tile']:.2f} s, "
                "the mean of 8 timed)")  # fmt: skip
    else:
        when = f"{lm['seconds']:.1f}"
    err = "" if exact is None else _dist(lm["std"] / exact - 1) + " (whole map)"
    if exact is None and not lm["estimated"] and single is not None:
        # exact <= map <= single-cell window at every cell (nested observation sets)
        d = lm["cells"] / single - 1
        err = (f"at the sampled cells: map / single-cell window - 1 in [{d.min():+.1e}, "
               f"{d.max():+.1e}] (<= 0: at least as close as the windows)")  # fmt: skip
    print(f"    local std map (tiles {cc} cells x {cs} steps, halo {hs} cells / {ht} steps): "
          f"{when} s{('; vs exact map ' if exact is not None else '; ') + err if err else ''}",
          flush=True)  # fmt: skip
    bench.add(table="std map accuracy", case=name, display={
        "case": name, "map": f"local std map, tiles {cc} cells x {cs} steps, halo {hs} / {ht}",
        "time [s]": when, "rel. error vs exact std (cells)": err or "(see the cells above)",
    })  # fmt: skip


def _cg_local_accuracy(bench, name: str, cl: dict, ob: dict) -> None:
    """Table row of CGOptions(std='local'): its time, its self-check, and its error against the
    exact map (every cell where ``--std-map`` gave it, else the sampled cells)."""
    exact = ob["std_map"] if cl["map"] is not None else None
    err = cl["map"] / exact - 1 if exact is not None else cl["cells"] / ob["cell_std"] - 1
    where = "whole map" if exact is not None else "sampled cells"
    true_at_check = (
        float(np.max(err[cl["check_cells"]])) if exact is not None else float("nan")
    )  # the check's own figure against the truth at its cells
    stated = float(np.max(cl["check_excess"]))
    print(f"    cg std='local' ({cl['method']}): {cl['seconds']:.1f} s; vs exact ({where}): "
          f"{_dist(err)}; self-check max {stated:+.2%} (exact at those cells "
          f"{true_at_check:+.2%})", flush=True)  # fmt: skip
    bench.add(table="std map accuracy", case=name, display={
        "case": name, "map": f"cg std='local': {cl['method']}",
        "time [s]": f"{cl['seconds']:.1f}",
        "rel. error vs exact std (cells)": f"{_dist(err)} ({where})",
    })  # fmt: skip


def _small(res: dict) -> dict:
    """The scalar figures of a child's result (no maps), for the JSON record."""
    return {
        k: v
        for k, v in res.items()
        if (np.ndim(v) == 0 and not isinstance(v, dict)) or k in ("runs", "agg_iters")
    }


def _rank(value: str) -> int | str:
    return value if value in ("auto", "full") else int(value)


if __name__ == "__main__":
    main()
