"""The one pipeline: inputs -> case -> solve -> totals and diagnostics, for real and synthetic runs.

:func:`run` reads (real data) or generates (``synthetic:``) the inputs, builds the case with
:func:`cityflux.case.build_case`, draws the synthetic truth and observations where there is
one, solves, and computes the totals with their covariance, the city total per observation
kind and the diagnostics. Progress is reported through an optional callback
``progress(step: str)`` so that the CLI can show it while library code only logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from cityflux import stages
from cityflux.case import Case, build_case, read_inputs
from cityflux.config import CityfluxConfig
from inversion import Posterior, solve

__all__ = [
    "KindResult",
    "RunResult",
    "all_kind_subsets",
    "headline_row",
    "kind_comparison",
    "prepare_case",
    "run",
    "solve_case",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _quiet(step: str) -> None:
    return None


@dataclass(frozen=True)
class KindResult:
    """City total from one subset of observation kinds [t CO2 over the period]."""

    kinds: tuple[str, ...]
    n_obs: int
    posterior: float
    posterior_std: float
    prior_std: float

    @property
    def error_reduction(self) -> float:
        """``1 - posterior_std / prior_std`` [1]."""
        return 1.0 - self.posterior_std / self.prior_std


@dataclass(eq=False)
class RunResult:
    """Everything a run produces (written by :func:`cityflux.outputs.write_outputs`).

    Attributes
    ----------
    config : CityfluxConfig
    case : Case
    posterior : inversion.Posterior
    totals : pandas.DataFrame
        One row per aggregate (region, sector, period) [t CO2].
    totals_covariance : numpy.ndarray
        (k, k) posterior covariance of the rows of ``totals`` [t CO2²].
    by_kind : list of KindResult
        The headline total from each observation kind alone and from all combined.
    diagnostics : dict
    timings : dict of str to float
        Wall time per stage [s].
    """

    config: CityfluxConfig
    case: Case
    posterior: Posterior
    totals: pd.DataFrame
    totals_covariance: np.ndarray
    by_kind: list[KindResult]
    diagnostics: dict
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        """True for a synthetic-city run (a truth is known)."""
        return self.case.x_truth is not None


def prepare_case(
    cfg: CityfluxConfig, progress: Progress = _quiet, timings: dict[str, float] | None = None
) -> tuple[Case, Any]:
    """Inputs (read or generated) and the case built from them by the one set of stages.

    Returns
    -------
    case : Case
        For a synthetic configuration, without data yet (see :func:`cityflux.synthetic.observe`).
    world : cityflux.synthetic.SyntheticWorld or None
        The synthetic city's own knowledge (None for real data).
    """
    from cityflux._memory import check_budget, plume_h_bytes, prior_bytes
    from cityflux.stages._plausibility import check_operator

    timings = {} if timings is None else timings
    n_flux, nbytes = prior_bytes(cfg)
    progress(f"prior stage: {n_flux:,} flux unknowns, about {nbytes / 2**30:.2f} GiB")
    check_budget(cfg, "prior stage", nbytes, f"{n_flux:,} flux unknowns")
    t0 = time.perf_counter()
    world = None
    if cfg.synthetic is not None:
        from cityflux import synthetic

        progress("generating the synthetic city (prior inventory, met, networks)")
        inputs, world = synthetic.generate_inputs(cfg)
    else:
        inputs = read_inputs(cfg, progress)
    timings["inputs"] = time.perf_counter() - t0
    if cfg.transport.model == "plume":
        n_obs = int(inputs.obs.sizes["obs"])
        check_budget(
            cfg, "transport (plume H)", plume_h_bytes(cfg, n_obs), f"{n_obs:,} observations"
        )
    case = build_case(cfg, inputs, progress, timings)
    check_operator(case.H, case.obs, case.state, cfg.transport.model)
    return case, world


def solve_case(case: Case, cfg: CityfluxConfig) -> Posterior:
    """Solve the case with the solver settings of ``cfg.inversion``."""
    return solve(
        case.problem(),
        method=cfg.inversion.method,
        memory_budget=cfg.inversion.memory_budget_gib * 2**30,
        cg=cfg.inversion.cg.options(),
    )


def run(cfg: CityfluxConfig, progress: Progress | None = None) -> RunResult:
    """Run the inversion a configuration describes (real data or the synthetic city).

    Parameters
    ----------
    cfg : CityfluxConfig
    progress : callable, optional
        Called with a short description of each stage.

    Returns
    -------
    RunResult
        Posterior, totals [t CO2] with standard and k = 2 expanded uncertainty and their
        covariance, the headline total per observation kind, and diagnostics.
    """
    step = progress or _quiet
    timings: dict[str, float] = {}
    case, world = prepare_case(cfg, step, timings)
    if world is not None:
        from cityflux import synthetic

        t0 = time.perf_counter()
        step("drawing the synthetic truth and observations")
        case = synthetic.observe(case, cfg, world)
        timings["truth"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step(f"solving the inversion (n_state={case.state.size}, n_obs={case.y.size})")
    post = solve_case(case, cfg)
    timings["solve"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("posterior uncertainty: std map, totals and their covariance")
    _ = post.std
    totals, cov = stages.totals_table(
        post, case.B, case.x_prior, case.weights, case.labels, case.x_truth
    )
    timings["posterior"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    by_kind: list[KindResult] = []
    if len(case.kinds) > 1:
        step("headline total per observation kind")
        by_kind = kind_comparison(case, cfg, post)
    timings["by_kind"] = time.perf_counter() - t0
    diag = diagnostics(case, cfg, post, totals, by_kind, timings)
    return RunResult(cfg, case, post, totals, cov, by_kind, diag, timings)


def headline_row(labels: pd.DataFrame) -> int:
    """Row of the headline total: the first region's whole-period total, else the domain's."""
    regions = [r for r in dict.fromkeys(labels["region"]) if r != "domain"]
    name = regions[0] if regions else "domain"
    sel = (labels["region"] == name) & (labels["sector"] == "all")
    sel &= labels["period"] == labels["period"].iloc[0]
    return int(np.flatnonzero(sel.to_numpy())[0])


def kind_comparison(case: Case, cfg: CityfluxConfig, post: Posterior) -> list[KindResult]:
    """Headline total from each observation kind alone, then from all kinds combined.

    Each kind reuses the rows of ``H`` and rebuilds ``R`` for its observations; the combined
    result is the run's own posterior.
    """
    w = case.weights[[headline_row(case.labels)]].toarray()[0]
    prior_std = float(np.sqrt(w @ (case.B @ w)))
    method = "obs-space" if cfg.inversion.method == "auto" else cfg.inversion.method
    out = []
    for kind in case.kinds:
        p = solve(
            case.problem((kind,)),
            method=method,
            memory_budget=cfg.inversion.memory_budget_gib * 2**30,
            cg=cfg.inversion.cg.options(),
        )
        m, s = p.aggregate(w)
        out.append(KindResult((kind,), int(case.kind_mask((kind,)).sum()), m, s, prior_std))
    m, s = post.aggregate(w)
    out.append(KindResult(tuple(case.kinds), int(case.y.size), m, s, prior_std))
    return out


def all_kind_subsets(kinds: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``kinds`` (for nesting checks)."""
    return [c for r in range(1, len(kinds) + 1) for c in combinations(kinds, r)]


def _total_dict(row: pd.Series) -> dict[str, Any]:
    out = {"region": str(row["region"]), "sector": str(row["sector"]), "period": row["period"]}
    for c in ("prior", "prior_std", "posterior", "posterior_std", "truth"):
        if c in row:
            out[c] = float(row[c])
    return out


def diagnostics(
    case: Case,
    cfg: CityfluxConfig,
    post: Posterior,
    totals: pd.DataFrame,
    by_kind: list[KindResult],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The diagnostics of a run (written as diagnostics.json), the same for every run."""
    kinds = case.obs["kind"].values.astype(str)
    nf = case.state.n_flux
    prior_enh = case.H[:, :nf] @ case.x_prior[:nf]
    resid = case.y - case.H @ post.mean
    info = getattr(post, "info", {})
    diag: dict[str, Any] = {
        "chi2": post.chi2,
        "dofs": post.dofs,
        # cg without the complete spectrum: Σθ/(1+θ) over the Ritz pairs, a lower bound
        "dofs_is_estimate": bool(info.get("dofs_is_estimate", False)),
        "n_state": int(case.state.size),
        "n_obs": int(case.y.size),
        "n_obs_by_kind": case.n_obs_by_kind,
        "solver_method": post.method,
        "std_method": post.std_method,
        **case.reports,
        "prior_flux_enhancement_ppm": {
            "mean": float(prior_enh.mean()),
            "min": float(prior_enh.min()),
            "max": float(prior_enh.max()),
        },
        "residual_rms_ppm": {
            k: float(np.sqrt(np.mean(resid[kinds == k] ** 2))) for k in case.kinds
        },
        "city_total_t": _total_dict(totals.iloc[headline_row(case.labels)]),
        "domain_total_t": _total_dict(totals.iloc[0]),
        "by_kind": [
            {
                "kinds": list(r.kinds),
                "n_obs": r.n_obs,
                "posterior_t": r.posterior,
                "posterior_std_t": r.posterior_std,
                "error_reduction": r.error_reduction,
            }
            for r in by_kind
        ],
        "timings_s": timings,
    }
    if stages.OFFSET_BLOCK in case.state.blocks:
        blk = case.state.blocks[stages.OFFSET_BLOCK]
        diag["background_offsets_posterior_ppm"] = dict(
            zip(blk.labels, post.mean[blk.slice].tolist(), strict=True)
        )
    if cfg.synthetic is not None:
        diag["synthetic_truth"] = {
            "as_assumed": cfg.synthetic.truth.as_assumed,
            **cfg.synthetic.truth.model_dump(mode="json"),
        }
    return diag
