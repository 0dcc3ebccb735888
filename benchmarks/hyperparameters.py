"""Hyperparameter estimation (``inversion.hyperparameters``) at the city-month size, against
one solve of the same problem.

The ``city`` case of ``benchmarks/urban_scale.py``: 100 x 100 cells of 1 km x 30 daily steps x
2 sectors = 600 k unknowns, 10,000 footprint-like observations, B = D (C_t ⊗ C_s) D per
sector (5 km exponential FFT correlation, 48 h), R diagonal. The data are drawn from a truth
that departs from the assumptions (prior std x 1.5 in sector 0, x 0.8 in sector 1;
observation errors x 1.3); three hyperparameters are estimated (one prior scale per sector,
one mismatch factor) with the method ``auto`` picks at this size (``hybrid``: Cholesky of S
for the exact log-likelihood, Hutchinson traces through the same factor for the gradient,
AI-Newton steps, average information for the standard errors), then propagated to 5 totals
(cubature, 6 nodes). It prints the time of each step, the estimates against the truth, and
the time of one solve of the problem (``--reference``: ``obs-space``, the solver ``auto``
picks at this size, mean and exact std of the 5 totals; or ``cg``) with the ratio, and the
machine and its load.

Usage::

    python benchmarks/hyperparameters.py                 # city: 600 k unknowns, 10 k obs
    python benchmarks/hyperparameters.py --case quick    # 14 k unknowns, 500 obs
    python benchmarks/hyperparameters.py --reference none
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

TRUE_PRIOR = (1.5, 0.8)  # per sector (the quick case has one sector: the first)
TRUE_MISMATCH = 1.3


def _data(problem, dims, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Innovations and truth drawn from the departing truth."""
    ny, nx, nt, ns = dims
    rng = np.random.default_rng(seed)
    B = problem.B
    x = problem.x_prior.copy()
    per = nt * ny * nx
    for k in range(ns):
        blk = B.blocks[k]
        x[k * per : (k + 1) * per] += TRUE_PRIOR[k] * blk.sqrt_matvec(
            rng.standard_normal(blk.sqrt_dim)
        )
    e = TRUE_MISMATCH * np.sqrt(problem.R.diag()) * rng.standard_normal(problem.n_obs)
    y = problem.H @ x + e
    return y - problem.H @ problem.x_prior, x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--case", default="city", choices=["city", "quick"])
    ap.add_argument("--method", default="auto", choices=["auto", "exact", "hybrid"])
    ap.add_argument("--probes", type=int, default=64)
    ap.add_argument("--reference", default="obs-space", choices=["obs-space", "cg", "none"])
    from _machine import Run, add_json_argument, load_average

    add_json_argument(ap)
    o = ap.parse_args(argv)
    bench = Run("hyperparameters", argv, o.json)
    from urban_scale import make_problem, weights

    from inversion.hyperparameters import (
        Block,
        MarginalLikelihood,
        VarianceModel,
        blas_threads_for,
        fit_hyperparameters,
        projected_block,
        propagate,
        sparse_covariance,
    )

    t0 = time.perf_counter()
    problem, dims, _ = make_problem(o.case, None)
    ny, nx, nt, ns = dims
    W = sp.csr_array(weights(dims))
    d, x_true = _data(problem, dims)
    print(f"case {o.case}: n_state = {problem.n_state:,}, n_obs = {problem.n_obs:,}, {ns} sector(s); "
          f"built in {time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip

    t_solve = None
    if o.reference != "none":  # first, so that a load change does not favour the estimation
        from inversion.cg import CGOptions
        from inversion.solve import solve

        t = time.perf_counter()
        post = solve(problem, o.reference, memory_budget=12 * 2**30, cg=CGOptions(tol=1e-6))
        post.aggregate(W)
        t_solve = time.perf_counter() - t
        del post
        print(f"one solve ({o.reference}: mean and exact std of the 5 totals): {t_solve:.1f} s; "
              f"load average now {load_average()}", flush=True)  # fmt: skip

    H = sp.csr_array(problem.H)
    per = nt * ny * nx
    blocks, t_blocks = [], []
    for k in range(ns):
        t = time.perf_counter()
        cols = slice(k * per, (k + 1) * per)
        blocks.append(projected_block(H[:, cols], problem.B.blocks[k], W[:, cols]))
        t_blocks.append(time.perf_counter() - t)
        print(f"H B_{k} Hᵀ ({problem.n_obs:,}²) and H B_{k} Wᵀ: {t_blocks[-1]:.1f} s", flush=True)
    blocks.append(Block(sparse_covariance(problem.R)))
    E = np.zeros((ns + 1, ns + 1))
    E[np.arange(ns + 1), np.arange(ns + 1)] = 2.0
    names = [f"prior_scale[{k}]" for k in range(ns)] + ["mismatch"]
    model = VarianceModel(blocks, E, names)
    method = o.method
    if method == "auto":
        method = "exact" if problem.n_obs <= 3000 else "hybrid"
    lik = MarginalLikelihood(model, d, method=method, probes=o.probes, prior_std=1.0)

    with blas_threads_for(problem.n_obs):
        t = time.perf_counter()
        lik(np.zeros(ns + 1))
        t_eval = time.perf_counter() - t
    print(f"one evaluation (value and gradient, {method}): {t_eval:.1f} s", flush=True)
    t = time.perf_counter()
    fit = fit_hyperparameters(lik, np.log([[0.05, 20.0]] * (ns + 1)))
    t_fit = time.perf_counter() - t
    print(f"fit: {t_fit:.1f} s, {fit.n_evaluations} evaluations, {fit.n_iterations} iterations, "
          f"converged {fit.converged} ({fit.message})", flush=True)  # fmt: skip
    truth = [*TRUE_PRIOR[:ns], TRUE_MISMATCH]
    for i, name in enumerate(names):
        est = float(np.exp(fit.phi[i]))
        print(f"  {name:16s} {est:7.3f} ± {est * fit.se[i]:.3f}  (truth {truth[i]}); gradient "
              f"{fit.grad[i]:+.3g} ± {fit.grad_se[i]:.2g}")  # fmt: skip
    t = time.perf_counter()
    prop = propagate(lik, fit, np.asarray(W @ problem.x_prior).ravel(), rule="cubature")
    t_prop = time.perf_counter() - t
    z = (prop.mean[0] - float((W @ x_true)[0])) / prop.std[0]
    print(f"propagation ({prop.weights.size} nodes): {t_prop:.1f} s; city total "
          f"{prop.mean[0]:.4g} ± {prop.std[0]:.3g} (plug-in ± {np.sqrt(prop.plugin_cov[0, 0]):.3g}); "
          f"(estimate − truth)/std = {z:+.2f}", flush=True)  # fmt: skip
    t_est = sum(t_blocks) + t_fit
    print(f"estimation (blocks + fit): {t_est:.1f} s; with propagation {t_est + t_prop:.1f} s")
    if t_solve is not None:
        print(f"estimation / solve = {t_est / t_solve:.2f}, with propagation "
              f"{(t_est + t_prop) / t_solve:.2f}")  # fmt: skip
    bench.add(
        case=o.case, n_state=problem.n_state, n_obs=problem.n_obs, method=method,
        reference=o.reference, solve_s=t_solve, blocks_s=sum(t_blocks), evaluation_s=t_eval,
        fit_s=t_fit, evaluations=fit.n_evaluations, converged=bool(fit.converged),
        propagation_s=t_prop, estimation_s=t_est,
        estimates={n: float(np.exp(fit.phi[i])) for i, n in enumerate(names)},
        truth=dict(zip(names, truth, strict=True)), city_total_z=float(z),
        display={
            "case": f"{o.case}: {problem.n_state:,} unknowns / {problem.n_obs:,} obs",
            "one solve [s]": "—" if t_solve is None else f"{t_solve:.1f} ({o.reference})",
            "blocks H B Hᵀ [s]": f"{sum(t_blocks):.1f}",
            "fit [s] (evaluations)": f"{t_fit:.1f} ({fit.n_evaluations}, {method})",
            "propagation [s]": f"{t_prop:.1f}",
            "estimation / solve": "—" if t_solve is None else f"{t_est / t_solve:.2f}",
            "estimates (truth)": ", ".join(
                f"{n} {np.exp(fit.phi[i]):.3f} ({truth[i]})" for i, n in enumerate(names)
            ),
        },
    )  # fmt: skip
    bench.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
