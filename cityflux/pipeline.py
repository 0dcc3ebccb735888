"""End-to-end runs: build (or read) the problem, solve it, compute totals and diagnostics.

The pipeline reports progress through an optional callback ``progress(step: str)`` so that the
CLI can show it (rich) while library code only logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from cityflux.config import CityfluxConfig
from cityflux.osse import SyntheticCity, build_synthetic_city
from inversion.posterior import Posterior
from inversion.solve import solve

__all__ = ["KindResult", "RunResult", "run", "run_synthetic"]

logger = logging.getLogger(__name__)

#: Coverage factor of the expanded uncertainty (GUM, about 95 %).
K_EXPANDED = 2.0


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
    """Everything a run produces (written by :func:`cityflux.outputs.write_outputs`)."""

    config: CityfluxConfig
    city: SyntheticCity  # or cityflux.realdata.RealCase (x_truth None)
    posterior: Posterior
    totals: pd.DataFrame
    by_kind: list[KindResult]
    diagnostics: dict
    timings: dict[str, float] = field(default_factory=dict)
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        """True for a synthetic-city run (a truth is known)."""
        return self.city.x_truth is not None


def _noop(step: str) -> None:
    return None


def run(cfg: CityfluxConfig, progress: Callable[[str], None] | None = None) -> RunResult:
    """Run the inversion a configuration describes.

    Configurations with a ``synthetic`` section run the synthetic city
    (:func:`run_synthetic`); the others read real observations, transport, inventories and
    regions (:func:`cityflux.realdata.run_real`).
    """
    if cfg.synthetic is None:
        from cityflux.realdata import run_real

        return run_real(cfg, progress)
    return run_synthetic(cfg, progress)


def run_synthetic(cfg: CityfluxConfig, progress: Callable[[str], None] | None = None) -> RunResult:
    """Build the synthetic city of ``cfg``, solve it with all observations and per kind.

    Returns
    -------
    RunResult
        Posterior, totals table (t CO2, standard and k=2 expanded uncertainty), per-kind city
        totals (each kind alone and combined) and diagnostics.
    """
    step = progress or _noop
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    step("building the synthetic city (emissions, met, networks, transport)")
    city = build_synthetic_city(cfg)
    timings["build"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step(f"solving the inversion (n_state={city.state.size}, n_obs={city.y.size})")
    budget = cfg.inversion.memory_budget_gib * 2**30
    post = solve(
        city.problem(),
        method=cfg.inversion.method,
        memory_budget=budget,
        cg=cfg.inversion.cg.options(),
    )
    timings["solve"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("posterior uncertainty: std map and totals")
    _ = post.std
    W = city.weights
    mean, std = post.aggregate(W)
    prior = np.asarray(W @ city.x_prior).ravel()
    prior_std = np.sqrt(np.einsum("ij,ji->i", W.toarray(), city.B @ W.T.toarray()))
    truth = np.asarray(W @ city.x_truth).ravel()
    totals = pd.DataFrame(
        {
            "region": [r for r, _ in city.weight_labels],
            "period": [p for _, p in city.weight_labels],
            "prior": prior,
            "prior_std": prior_std,
            "posterior": mean,
            "posterior_std": std,
            "posterior_expanded_uncertainty_k2": K_EXPANDED * std,
            "truth": truth,
        }
    )
    timings["posterior"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("city total per observation kind")
    by_kind = kind_comparison(city, cfg.inversion.method, budget)
    timings["by_kind"] = time.perf_counter() - t0

    kinds = city.obs["kind"].values.astype(str)
    diagnostics = {
        "chi2": post.chi2,
        "dofs": post.dofs,
        # cg without the complete spectrum: Σθ/(1+θ) over the Ritz pairs, a lower bound
        "dofs_is_estimate": bool(getattr(post, "info", {}).get("dofs_is_estimate", False)),
        "n_state": int(city.state.size),
        "n_obs": int(city.y.size),
        "n_obs_by_kind": city.n_obs_by_kind,
        "qc_dropped": city.qc,
        "solver_method": post.method,
        "std_method": post.std_method,
        "background_posterior_ppm": dict(
            zip(city.kinds, post.mean[city.state.slice("background")].tolist(), strict=True)
        ),
        "city_total_t": {
            "truth": float(truth[0]),
            "prior": float(prior[0]),
            "prior_std": float(prior_std[0]),
            "posterior": float(mean[0]),
            "posterior_std": float(std[0]),
        },
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
        "residual_rms_ppm": {
            k: float(np.sqrt(np.mean((city.y - city.H @ post.mean)[kinds == k] ** 2)))
            for k in city.kinds
        },
        "timings_s": timings,
    }
    return RunResult(cfg, city, post, totals, by_kind, diagnostics, timings)


def kind_comparison(
    city: SyntheticCity, method: str = "obs-space", memory_budget: float = 4 * 2**30
) -> list[KindResult]:
    """City total from each observation kind alone, then from all kinds combined.

    Each subset reuses the rows of ``H`` and the blocks of ``R`` of its observations.
    """
    w = city.weights[[0]].toarray()[0]
    prior_std = float(np.sqrt(w @ (city.B @ w)))
    subsets = [(k,) for k in city.kinds] + [tuple(city.kinds)]
    out = []
    for kinds in dict.fromkeys(subsets):
        post = solve(
            city.problem(list(kinds)),
            method="obs-space" if method == "auto" else method,
            memory_budget=memory_budget,
        )
        m, s = post.aggregate(w)
        out.append(KindResult(kinds, int(city.kind_mask(kinds).sum()), m, s, prior_std))
    return out


def all_kind_subsets(kinds: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``kinds`` (for nesting checks)."""
    return [c for r in range(1, len(kinds) + 1) for c in combinations(kinds, r)]
