"""Real-data runs: observations, transport, prior and regions read from files, then solved.

:func:`run_real` chains the stages of :mod:`cityflux.stages`; the result has the same shape as
a synthetic run (:class:`cityflux.pipeline.RunResult`) with a :class:`RealCase` in place of the
synthetic city and no truth, so the same writers produce posterior.nc, totals.csv,
diagnostics.json and the figures, plus observations.csv (observed and modelled values).
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from cityflux import stages
from cityflux.config import CityfluxConfig
from inversion import Grid, StateVector, TimeAxis
from inversion.problem import LinearProblem
from inversion.solve import solve

__all__ = ["RealCase", "run_real"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class RealCase:
    """Everything of one real-data inversion (duck-types the synthetic city for the writers).

    Attributes
    ----------
    grid, time, state : Grid, TimeAxis, StateVector
        State space; extra block ``background`` holds one offset [ppm] per site or kind.
    obs : xarray.Dataset
        ObservationSet after QC and background removal (``value`` = enhancement [ppm]).
    H : scipy.sparse.csr_array
        (n_obs, n_state) [ppm per state unit].
    B, R : covariance operators
    x_prior : numpy.ndarray
        (n_state,) prior mean.
    y : numpy.ndarray
        (n_obs,) observed enhancement [ppm].
    city_mask : numpy.ndarray
        (y, x) bool: cells in any region (all cells without regions).
    input_checksums : dict of str to str
        SHA-256 of every input file.
    """

    grid: Grid
    time: TimeAxis
    state: StateVector
    obs: xr.Dataset
    H: sp.csr_array
    B: object
    R: object
    x_prior: np.ndarray
    y: np.ndarray
    city_mask: np.ndarray
    background_dim: str
    input_checksums: dict[str, str] = field(default_factory=dict)
    x_truth: None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        """Observation kinds present."""
        return tuple(dict.fromkeys(self.obs["kind"].values.astype(str)))

    def observation_table(self, x_post: np.ndarray) -> pd.DataFrame:
        """Per observation: time, site, kind, position, observed and modelled values [ppm]."""
        nf = self.state.n_flux
        o = self.obs
        return pd.DataFrame(
            {
                "time": pd.DatetimeIndex(o["time"].values).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "site": o["site"].values.astype(str),
                "kind": o["kind"].values.astype(str),
                "lat": o["lat"].values,
                "lon": o["lon"].values,
                "alt": o["alt"].values,
                "observed_ppm": self.y,
                "background_ppm": o["background"].values if "background" in o else np.nan,
                "total_error_ppm": np.sqrt(self.R.diag()),
                "prior_flux_enhancement_ppm": self.H[:, :nf] @ self.x_prior[:nf],
                "prior_modelled_ppm": self.H @ self.x_prior,
                "posterior_modelled_ppm": self.H @ x_post,
            }
        )


def _checksums(cfg: CityfluxConfig) -> dict[str, str]:
    from cityflux.outputs import sha256_file

    paths = [p for s in cfg.observations for p in s.files()]
    paths += [i.path for i in cfg.prior.inventories]
    paths += cfg.transport.footprint_files() if cfg.transport.model == "footprints" else []
    for extra in (
        cfg.transport.met.path if cfg.transport.met else None,
        cfg.regions.path if cfg.regions else None,
        cfg.prior.point_sources.path if cfg.prior.point_sources else None,
        cfg.prior.temporal.profile_path(),
    ):
        if extra is not None:
            paths.append(extra)
    return {str(p): sha256_file(p) for p in paths if p.is_file()}


def build_case(cfg: CityfluxConfig, step: Callable[[str], None], timings: dict) -> tuple:
    """Read every input and assemble the inversion problem; returns (case, diagnostics)."""
    t0 = _time.perf_counter()
    grid = stages.build_grid(cfg.domain)
    tax = TimeAxis.regular(cfg.period.start, cfg.period.end, cfg.period.step)
    step(f"reading {len(cfg.observations)} observation source(s)")
    obs = stages.read_observations(cfg.observations, cfg.period, grid, cfg.observation_errors)
    obs = stages.remove_background(obs, cfg.background)
    timings["observations"] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    step(f"prior from {len(cfg.prior.inventories)} inventory file(s)")
    flux, prior_info = stages.prior_flux(cfg.prior, grid, tax)
    groups = stages.offset_labels(obs, cfg.background.offsets)
    extra = {} if groups is None else {stages.OFFSET_BLOCK: sorted(set(groups))}
    state = StateVector(
        grid, tax, [str(s) for s in flux["sector"].values], extra=extra,
        extra_units={stages.OFFSET_BLOCK: "ppm"},
    )  # fmt: skip
    std = stages.prior_std(flux, cfg.prior, cfg.inversion)
    B = stages.prior_covariance(std, state, cfg.inversion, cfg.background.offsets.std_ppm)
    x_prior = state.flatten(flux)
    timings["prior"] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    step(f"transport ({cfg.transport.model}): H for {obs.sizes['obs']} observations")
    if cfg.transport.model == "plume":
        H, transport_report = stages.plume_flux_operator(obs, state, cfg.transport, cfg.period)
    else:
        H, transport_report = stages.footprint_operator(obs, state, cfg.transport)
    H = stages.with_offsets(H, state, groups)
    R = stages.observation_covariance(obs, cfg.observation_errors)
    timings["transport"] = _time.perf_counter() - t0

    regions = stages.region_fractions(cfg.regions, state)
    mask = np.ones(grid.shape, bool) if regions is None else regions.values.sum(0) > 0
    case = RealCase(
        grid=grid, time=tax, state=state, obs=obs, H=H, B=B, R=R, x_prior=x_prior,
        y=obs["value"].values.astype(float), city_mask=mask,
        background_dim=cfg.background.offsets.by, input_checksums=_checksums(cfg),
    )  # fmt: skip
    diag = {
        "qc": stages.qc_summary(obs),
        "error_budget": stages.error_budget(obs),
        "background_method": obs.attrs.get("background_method", cfg.background.method),
        "transport": transport_report,
        "prior": prior_info,
    }
    return case, regions, diag


def run_real(cfg: CityfluxConfig, progress: Callable[[str], None] | None = None):
    """Run the real-data inversion ``cfg`` describes (no ``synthetic`` section).

    Returns
    -------
    cityflux.pipeline.RunResult
        With ``city`` a :class:`RealCase`, the totals table per domain/region/sector/period
        [t CO2] and diagnostics (QC report, error budget, transport report, chi2, DOFS).
    """
    from cityflux.pipeline import RunResult

    step = progress or (lambda s: None)
    timings: dict[str, float] = {}
    case, regions, diag = build_case(cfg, step, timings)

    t0 = _time.perf_counter()
    step(f"solving the inversion (n_state={case.state.size}, n_obs={case.y.size})")
    budget = cfg.inversion.memory_budget_gib * 2**30
    problem = LinearProblem(H=case.H, x_prior=case.x_prior, y=case.y, B=case.B, R=case.R)
    post = solve(
        problem, method=cfg.inversion.method, memory_budget=budget, cg=cfg.inversion.cg.options()
    )
    timings["solve"] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    step("posterior uncertainty and totals")
    W, labels = stages.aggregation_rows(case.state, regions, cfg.regions)
    totals = stages.totals_table(post, case.B, case.x_prior, W, labels)
    _ = post.std
    timings["posterior"] = _time.perf_counter() - t0

    table = case.observation_table(post.mean)
    kinds = table["kind"].to_numpy()
    resid = case.y - table["posterior_modelled_ppm"].to_numpy()
    dom = totals.iloc[0]
    diag.update(
        {
            "chi2": post.chi2,
            "dofs": post.dofs,
            "n_state": int(case.state.size),
            "n_obs": int(case.y.size),
            "n_obs_by_kind": {k: int((kinds == k).sum()) for k in case.kinds},
            "solver_method": post.method,
            "std_method": post.std_method,
            "prior_flux_enhancement_ppm": {
                "mean": float(table["prior_flux_enhancement_ppm"].mean()),
                "min": float(table["prior_flux_enhancement_ppm"].min()),
                "max": float(table["prior_flux_enhancement_ppm"].max()),
            },
            "residual_rms_ppm": {
                k: float(np.sqrt(np.mean(resid[kinds == k] ** 2))) for k in case.kinds
            },
            "domain_total_t": {
                c: float(dom[c]) for c in ("prior", "prior_std", "posterior", "posterior_std")
            },
            "timings_s": timings,
        }
    )
    if stages.OFFSET_BLOCK in case.state.blocks:
        blk = case.state.blocks[stages.OFFSET_BLOCK]
        diag["background_offsets_posterior_ppm"] = dict(
            zip(blk.labels, post.mean[blk.slice].tolist(), strict=True)
        )
    result = RunResult(cfg, case, post, totals, [], diag, timings)
    result.extra_tables["observations.csv"] = table
    return result
