"""The one pipeline: inputs -> case -> solve -> totals and diagnostics, for real and synthetic runs.

:func:`run` reads (real data) or generates (``synthetic:``) the inputs, builds the case with
:func:`cityflux.case.build_case`, draws the synthetic truth and observations where there is
one, solves, and computes the totals with their covariance, the city total per observation
kind and the diagnostics. Progress is reported through an optional callback
``progress(step: str)`` so that the CLI can show it while library code only logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from cityflux import stages
from cityflux._timing import Timings
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
    "receptor_samples",
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
    timings : Timings
        Wall and CPU time per stage [s].
    positivity : cityflux.positivity.LognormalRun or None
        The log-normal posterior's extras (``inversion.positivity: lognormal``); ``posterior``
        is then its :class:`inversion.lognormal.LognormalPosterior`.
    """

    config: CityfluxConfig
    case: Case
    posterior: Posterior
    totals: pd.DataFrame
    totals_covariance: np.ndarray
    by_kind: list[KindResult]
    diagnostics: dict
    timings: Timings = field(default_factory=Timings)
    positivity: Any = None

    @property
    def is_synthetic(self) -> bool:
        """True for a synthetic-city run (a truth is known)."""
        return self.case.x_truth is not None


def prepare_case(
    cfg: CityfluxConfig, progress: Progress = _quiet, timings: Timings | None = None
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

    timings = Timings() if timings is None else timings
    n_flux, nbytes = prior_bytes(cfg)
    progress(f"prior stage: {n_flux:,} flux unknowns, about {nbytes / 2**30:.2f} GiB")
    check_budget(cfg, "prior stage", nbytes, f"{n_flux:,} flux unknowns")
    world = None
    with timings.stage("inputs"):
        if cfg.synthetic is not None:
            from cityflux import synthetic

            progress("generating the synthetic city (prior inventory, met, networks)")
            inputs, world = synthetic.generate_inputs(cfg)
        else:
            inputs = read_inputs(cfg, progress)
    if cfg.transport.model == "plume":
        n_obs = int(inputs.obs.sizes["obs"])
        check_budget(
            cfg, "transport (plume H)", plume_h_bytes(cfg, n_obs), f"{n_obs:,} observations"
        )
    case = build_case(cfg, inputs, progress, timings)
    check_operator(case.H, case.obs, case.state, cfg.transport.model)
    return case, world


def receptor_samples(cfg: CityfluxConfig, progress: Progress = _quiet) -> Any:
    """The receptor samples of the observations a run would invert (for a Lagrangian model).

    The observations are read (or generated) and their background removed by the stages of
    ``run``; each is then sampled (``transport_models.sample_receptors`` with
    ``transport.sampling`` and ``transport.surface_altitude_m``): a point for a tower, one
    point per level for a column, points along a lidar chord or range segment. Footprints run
    for these receptors match the observations in ``run`` (same sampling settings).

    Returns
    -------
    transport_models.ReceptorSamples
    """
    import transport_models

    if cfg.synthetic is not None:
        from cityflux import synthetic

        inputs, _ = synthetic.generate_inputs(cfg)
        obs = inputs.obs
    else:
        grid = stages.build_grid(cfg.domain)
        progress(f"reading {len(cfg.observations)} observation source(s)")
        obs = stages.read_observations(
            cfg.observations, cfg.period, grid, cfg.observation_errors, cfg.qc
        )
    obs = stages.remove_background(obs, cfg.background)
    return transport_models.sample_receptors(obs, cfg.transport.sampling_options())


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
    timings = Timings()
    case, world = prepare_case(cfg, step, timings)
    if world is not None:
        from cityflux import synthetic

        step("drawing the synthetic truth and observations")
        with timings.stage("truth"):
            case = synthetic.observe(case, cfg, world)

    hyper = None
    if cfg.inversion.hyperparameters.active:
        from cityflux.hyper import estimate

        step("estimating the error hyperparameters (marginal likelihood)")
        with timings.stage("hyperparameters"):
            hyper = estimate(case, cfg, progress=step)
            case = hyper.case  # B, R (and the prior mean for REML) at the estimates

    step(f"solving the inversion (n_state={case.state.size}, n_obs={case.y.size})")
    lognormal = None
    with timings.stage("solve"):
        if cfg.inversion.positivity == "lognormal":
            from cityflux import positivity

            prior = positivity.log_prior(case, cfg)
            post = positivity.solve_positive(case, cfg, prior)
            lognormal = positivity.LognormalRun(post, prior, None, cfg.inversion.lognormal.totals)
        else:
            post = solve_case(case, cfg)

    step("posterior uncertainty: std map, totals and their covariance")
    with timings.stage("posterior"):
        _ = post.std
        if lognormal is None:
            totals, cov = stages.totals_table(
                post, case.B, case.x_prior, case.weights, case.labels, case.x_truth
            )
            if hyper is not None:  # the hyperparameters' uncertainty propagated to the totals
                totals, cov = hyper.apply_to_totals(totals)
        else:
            totals, cov, lognormal.samples = positivity.totals_table(post, prior, case, cfg)
            if hyper is not None and cfg.inversion.hyperparameters.propagate:
                logger.warning(
                    "inversion.hyperparameters.propagate: not applied to the log-normal totals "
                    "(inversion.positivity=lognormal); they use the estimates as if known "
                    "(plug-in)"
                )

    by_kind: list[KindResult] = []
    if len(case.kinds) > 1:
        step("headline total per observation kind")
        with timings.stage("by_kind"):
            by_kind = kind_comparison(case, cfg, post)
    with timings.stage("consistency"):
        consistency = consistency_diagnostics(case, post)
    diag = diagnostics(case, cfg, post, totals, by_kind, timings)
    diag["consistency"] = consistency
    if hyper is not None:
        diag["hyperparameters"] = hyper.diagnostics()
    if lognormal is not None:
        diag["positivity"] = lognormal.diagnostics(case)
    if cfg.transport.ensemble is not None:
        diag["transport_ensemble"] = case.reports["transport"].get("ensemble")
    return RunResult(cfg, case, post, totals, cov, by_kind, diag, timings, lognormal)


def headline_row(labels: pd.DataFrame) -> int:
    """Row of the headline total: the first region's whole-period total, else the domain's."""
    regions = [r for r in dict.fromkeys(labels["region"]) if r != "domain"]
    name = regions[0] if regions else "domain"
    sel = (labels["region"] == name) & (labels["sector"] == "all")
    sel &= labels["period"] == labels["period"].iloc[0]
    return int(np.flatnonzero(sel.to_numpy())[0])


def kind_comparison(case: Case, cfg: CityfluxConfig, post: Posterior) -> list[KindResult]:
    """Headline total from each observation kind alone, then from all kinds combined.

    Each kind's posterior is that of its rows of ``H`` and its block of ``R``: from the run's
    own factorisation where the solver keeps one (``Posterior.aggregate_subset``), else by
    solving the restricted problem. The combined result is the run's own posterior.
    """
    w = case.weights[[headline_row(case.labels)]].toarray()[0]
    prior_std = float(np.sqrt(w @ (case.B @ w)))
    out = []
    for kind in case.kinds:
        idx = np.flatnonzero(case.kind_mask((kind,)))
        try:
            m, s = post.aggregate_subset(w, idx)
        except NotImplementedError:
            m, s = solve(
                case.problem((kind,)),
                method=cfg.inversion.method,
                memory_budget=cfg.inversion.memory_budget_gib * 2**30,
                cg=cfg.inversion.cg.options(),
            ).aggregate(w)
        out.append(KindResult((kind,), int(idx.size), m, s, prior_std))
    m, s = post.aggregate(w)
    out.append(KindResult(tuple(case.kinds), int(case.y.size), m, s, prior_std))
    return out


#: Largest number of observations for which the per-site diagnostics are computed (they cost
#: one solve with S per observation).
MAX_CONSISTENCY_OBS = 20_000


def consistency_diagnostics(case: Case, post: Posterior) -> dict[str, Any]:
    """Per-site and per-kind consistency (``cityflux.diagnostics``), or why it was skipped."""
    from cityflux.diagnostics import site_and_kind_diagnostics

    if case.y.size > MAX_CONSISTENCY_OBS:
        return {"skipped": f"n_obs = {case.y.size} > {MAX_CONSISTENCY_OBS}"}
    if getattr(post, "laplace", post).method == "cg":
        return {"skipped": "cg posterior (no factorisation of S); use method obs-space"}
    return site_and_kind_diagnostics(case, post)


def all_kind_subsets(kinds: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``kinds`` (for nesting checks)."""
    return [c for r in range(1, len(kinds) + 1) for c in combinations(kinds, r)]


def _total_dict(row: pd.Series) -> dict[str, Any]:
    out = {"region": str(row["region"]), "sector": str(row["sector"]), "period": row["period"]}
    for c in ("prior", "prior_std", "posterior", "posterior_std", "posterior_q025",
              "posterior_q975", "truth"):  # fmt: skip
        if c in row:
            out[c] = float(row[c])
    return out


def diagnostics(
    case: Case,
    cfg: CityfluxConfig,
    post: Posterior,
    totals: pd.DataFrame,
    by_kind: list[KindResult],
    timings: Timings,
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
        "timings_s": timings.wall,
        "cpu_s": timings.cpu,
    }
    for block, key in (
        (stages.OFFSET_BLOCK, "background_offsets_posterior_ppm"),
        (stages.BOUNDARY_BLOCK, "boundary_curtains_posterior_ppm"),
    ):
        if block in case.state.blocks:
            blk = case.state.blocks[block]
            diag[key] = dict(zip(blk.labels, post.mean[blk.slice].tolist(), strict=True))
    if cfg.synthetic is not None:
        diag["synthetic_truth"] = {
            "as_assumed": cfg.synthetic.truth.as_assumed,
            **cfg.synthetic.truth.model_dump(mode="json"),
        }
    return diag
