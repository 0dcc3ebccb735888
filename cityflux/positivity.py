"""Non-negative posterior of a case (``inversion.positivity: lognormal``).

The flux is ``x = s · exp(z)`` cell by cell (s: the prior flux, or ``min_prior_flux`` where the
prior is below it) with ``z ~ N(μ, B_z)``: B_z has the correlations of the Gaussian B and the
std ``σ = sqrt(ln(1 + r²))``, ``r = D / s`` with D the Gaussian prior std (relative std or
floor), and ``μ = −σ²/2`` — so every cell's prior mean and std are the Gaussian prior's. The
extra blocks (background offsets, boundary inflow) keep their Gaussian prior (additive).
:func:`log_prior` builds it from the case (B is built from the prior, never from a truth);
:func:`solve_positive` finds the mode and the Laplace posterior
(:func:`inversion.lognormal.solve_lognormal`, the solver of ``inversion.method`` at every
Gauss–Newton step); :func:`totals_table` gives the totals with asymmetric intervals: quantiles
of randomize-then-optimize samples (``totals: rto``, the sample count stated) or the Laplace
log-normal (``totals: laplace``). :func:`linearised_case` is the case linearised at the mode
(Jacobian, B_z, chained weights): the uncertainty budget of the Laplace variance.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from scipy.special import ndtri

from cityflux import stages
from cityflux.case import Case
from cityflux.config import CityfluxConfig, InversionConfig
from inversion import StateVector
from inversion.covariance import BlockDiagonalCovariance
from inversion.lognormal import (
    LognormalPosterior,
    LognormalProblem,
    SampleResult,
    lognormal_moments,
    solve_lognormal,
)

__all__ = [
    "QUANTILES",
    "LogPrior",
    "LognormalRun",
    "linearised_case",
    "log_prior",
    "solve_positive",
    "totals_table",
]

logger = logging.getLogger(__name__)

#: Effective sample size below which the importance-sampled totals are warned about.
MIN_EFFECTIVE_SIZE = 100

#: Quantiles of the totals written to totals.csv (column ``posterior_q025`` etc.) [1].
QUANTILES = {"q025": 0.025, "q16": 0.16, "q50": 0.5, "q84": 0.84, "q975": 0.975}


@dataclass(frozen=True, eq=False)
class LogPrior:
    """The log-normal prior of a case's state ``u = (z, offsets)``.

    Attributes
    ----------
    B : covariance operator
        (n_state²) prior covariance of u [1 on the flux, ppm² on the offsets].
    u_prior : numpy.ndarray
        (n_state,) prior mean of u (μ on the flux, 0 elsewhere).
    scale : numpy.ndarray
        (n_state,) s on the flux [µmol m-2 s-1] (1 elsewhere).
    positive : numpy.ndarray
        (n_state,) True on the flux block.
    n_raised : int
        Flux cells whose prior was raised to ``inversion.lognormal.min_prior_flux``.
    """

    B: Any
    u_prior: np.ndarray
    scale: np.ndarray
    positive: np.ndarray
    n_raised: int = 0

    @property
    def x_mean(self) -> np.ndarray:
        """Prior mean of x: s on the flux (moment matching), 0 elsewhere [state units]."""
        return np.where(self.positive, self.scale, 0.0)


def _first_cell(case: Case, i: int) -> str:
    sec, t, y, x = np.unravel_index(i, case.state.flux_shape)
    return (
        f"sector {case.state.sectors[sec]!r}, time {pd.Timestamp(case.time.starts[t])}, "
        f"row {y}, column {x}"
    )


def log_prior(
    case: Case, cfg: CityfluxConfig, *, std_scale: float = 1.0, length_scale: float = 1.0
) -> LogPrior:
    """The log-normal prior mapped from the case's Gaussian prior (see the module docstring).

    Parameters
    ----------
    case : Case
    cfg : CityfluxConfig
        ``inversion`` (correlations, ``lognormal.min_prior_flux``).
    std_scale, length_scale : float
        Multiply the Gaussian prior std and the spatial correlation length (the synthetic
        truth's departures, ``synthetic.truth``).

    Raises
    ------
    ValueError
        If a flux cell's prior is <= 0 (or non-finite) and ``inversion.lognormal.min_prior_flux``
        is not set; the message names the first cell and how many there are.
    """
    nf = case.state.n_flux
    x = case.x_prior[:nf]
    floor = cfg.inversion.lognormal.min_prior_flux
    low = ~(x > 0) if floor is None else ~(x >= floor)
    if floor is None and low.any():
        i = int(np.argmax(low))
        raise ValueError(
            f"inversion.positivity: lognormal needs a positive prior flux in every cell "
            f"(x = x_prior · exp(z) cannot move a zero); {int(low.sum())} of {nf} cells are "
            f"<= 0, the first at {_first_cell(case, i)} ({float(x[i])!r} µmol m-2 s-1); set "
            "inversion.lognormal.min_prior_flux (e.g. 0.01) to give them that prior, or use "
            "inversion.positivity: none"
        )
    s = np.where(low, floor if floor is not None else 1.0, x)
    if low.any():
        logger.warning(
            "inversion.lognormal.min_prior_flux: %d of %d flux cells have a prior below %g "
            "µmol m-2 s-1 and get that prior instead", int(low.sum()), nf, floor,
        )  # fmt: skip
    D = np.sqrt(case.B.diag()[:nf]) * std_scale
    mu, sig = lognormal_moments(D / s)
    std = xr.DataArray(sig.reshape(case.state.flux_shape), dims=("sector", "time", "y", "x"))
    inv: InversionConfig = cfg.inversion
    if length_scale != 1.0:
        inv = inv.model_copy(update={"spatial_length_km": inv.spatial_length_km * length_scale})
    B_z = stages.prior_covariance(
        std, StateVector(case.grid, case.time, list(case.state.sectors)), inv, {}
    )
    n_sec = len(case.state.sectors)
    extra = list(case.B.blocks[n_sec:]) if isinstance(case.B, BlockDiagonalCovariance) else []
    B = BlockDiagonalCovariance([*B_z.blocks, *extra]) if extra else B_z
    n = case.state.size
    u_prior = np.zeros(n)
    u_prior[:nf] = mu
    scale = np.ones(n)
    scale[:nf] = s
    positive = np.zeros(n, bool)
    positive[:nf] = True
    return LogPrior(B=B, u_prior=u_prior, scale=scale, positive=positive, n_raised=int(low.sum()))


@dataclass(eq=False)
class LognormalRun:
    """What the log-normal posterior of a run adds to its result.

    Attributes
    ----------
    posterior : inversion.lognormal.LognormalPosterior
    prior : LogPrior
    samples : inversion.lognormal.SampleResult or None
        The RTO samples of the totals (``totals: rto``).
    totals_method : str
        ``rto`` or ``laplace``.
    """

    posterior: LognormalPosterior
    prior: LogPrior
    samples: SampleResult | None = None
    totals_method: str = "rto"

    def diagnostics(self, case: Case) -> dict[str, Any]:
        """The ``positivity`` entry of diagnostics.json."""
        post, info = self.posterior, self.posterior.info
        nf = case.state.n_flux
        q = post.quantiles([0.025, 0.975])[:, :nf]
        p = post.problem.positive
        # residual curvature left out of the Laplace (Gauss–Newton) Hessian, relative to the
        # posterior precision of each cell: |d_i| A_ii (small: the Laplace is accurate)
        r = post.problem.y - post.problem.forward(post.mode)
        d = post.problem.jacobian_scale(post.mode) * post.problem.Ht_matmat(post.problem.r_inv(r))
        out = {
            "positivity": "lognormal",
            "solver": post.method,
            "iterations": int(info["iterations"]),
            "converged": bool(info["converged"]),
            "cost_initial": float(info["cost"][0]),
            "cost_final": float(info["cost"][-1]),
            "levenberg_marquardt_damped_steps": int(sum(lam > 0 for lam in info["lambda"])),
            "last_step_norm2": float(info.get("last_step_norm2", np.nan)),
            "seconds": float(info["seconds"]),
            "negative_cells": {
                "mode": int((post.mean[:nf] < 0).sum()),
                "q025": int((q[0] < 0).sum()),
                "q975": int((q[1] < 0).sum()),
            },
            "prior_cells_raised_to_min_prior_flux": self.prior.n_raised,
            "laplace_residual_curvature_max": float(np.max(np.abs(d[p]) * post.u_std[p] ** 2)),
            "totals_method": self.totals_method,
            "cells": "Laplace median s·exp(z*) and quantiles; std of the Laplace log-normal",
        }
        if self.samples is not None:
            smp = self.samples
            out["samples"] = {
                "method": smp.method,
                "n_samples": int(smp.n_samples),
                "effective_size": smp.effective_size,
                "seed": smp.seed,
            }
            if smp.method == "rto":
                out["samples"].update(
                    newton_iterations_mean=float(smp.iterations.mean()),
                    newton_iterations_max=int(smp.iterations.max()),
                    n_unconverged=int(smp.n_unconverged),
                )
        return out


def lognormal_problem(case: Case, prior: LogPrior) -> LognormalProblem:
    """The case's data and operators with the log-normal prior."""
    return LognormalProblem(
        H=case.H, scale=prior.scale, positive=prior.positive, y=case.y, B=prior.B, R=case.R,
        u_prior=prior.u_prior,
    )  # fmt: skip


def solve_positive(case: Case, cfg: CityfluxConfig, prior: LogPrior | None = None):
    """Mode and Laplace posterior of the case with the log-normal prior.

    Returns
    -------
    inversion.lognormal.LognormalPosterior
        Its ``mean`` (median of every cell) is never negative on the flux.
    """
    prior = log_prior(case, cfg) if prior is None else prior
    inv = cfg.inversion
    return solve_lognormal(
        lognormal_problem(case, prior), method=inv.method, options=inv.lognormal.options(),
        memory_budget=inv.memory_budget_gib * 2**30, cg=inv.cg.options(),
    )  # fmt: skip


def _lognormal_cov(T: np.ndarray, c_lin: np.ndarray) -> np.ndarray:
    """Covariance of jointly log-normal totals with medians T and log-covariance c/(T Tᵀ)."""
    S = c_lin / np.outer(T, T)
    v = np.diag(S)
    return np.outer(T, T) * np.exp(0.5 * (v[:, None] + v[None, :])) * np.expm1(S)


def totals_table(
    post: LognormalPosterior, prior: LogPrior, case: Case, cfg: CityfluxConfig
) -> tuple[pd.DataFrame, np.ndarray, SampleResult | None]:
    """Totals [t CO2] of the log-normal posterior, with asymmetric intervals.

    Columns as :func:`cityflux.stages.totals_table` (``prior`` is the log-normal prior mean,
    ``prior_std`` the Gaussian prior's std) with ``posterior`` the median,
    ``posterior_std`` the std, ``posterior_mean``, ``posterior_mode`` (the totals of the cells'
    medians) and the quantiles ``posterior_q025``, ``posterior_q16``, ``posterior_q50``,
    ``posterior_q84``, ``posterior_q975``: of ``n_samples`` RTO samples (``totals: rto``) or of
    the Laplace log-normal (``totals: laplace``).

    Returns
    -------
    totals : pandas.DataFrame
    covariance : numpy.ndarray
        (k, k) [t CO2²]: the samples' (weighted) covariance, or the Laplace log-normal one.
    samples : SampleResult or None
    """
    lcfg = cfg.inversion.lognormal
    W = case.weights
    base, c_lin = stages.totals_table(post, case.B, prior.x_mean, W, case.labels, case.x_truth)
    mode = base["posterior"].to_numpy()
    samples = None
    if lcfg.totals in ("rto", "importance"):
        if lcfg.totals == "rto":
            samples = post.sample(lcfg.n_samples, seed=lcfg.seed, weights=W)
        else:
            samples = post.importance_sample(
                lcfg.n_samples, seed=lcfg.seed, weights=W, temper=lcfg.temper
            )
            if samples.effective_size < MIN_EFFECTIVE_SIZE:
                logger.warning(
                    "inversion.lognormal: the %d importance samples are worth %.0f equal-weight "
                    "samples only (< %d); the totals' quantiles are noisy: raise "
                    "inversion.lognormal.n_samples", lcfg.n_samples, samples.effective_size,
                    MIN_EFFECTIVE_SIZE,
                )  # fmt: skip
        qv = samples.quantiles(list(QUANTILES.values()))
        qs = dict(zip(QUANTILES, qv, strict=True))
        mean, cov = samples.mean_cov()
        cov = np.atleast_2d(cov)
    else:
        out = post.aggregate_lognormal(W)
        qs = {k: out["median"] * np.exp(ndtri(p) * out["log_std"]) for k, p in QUANTILES.items()}
        mean, cov = out["mean"], _lognormal_cov(out["median"], c_lin)
    t = base.copy()
    t["posterior"] = qs["q50"]
    t["posterior_std"] = np.sqrt(np.diag(cov))
    t["posterior_expanded_uncertainty_k2"] = stages._totals.K_EXPANDED * t["posterior_std"]
    t["posterior_mean"] = mean
    t["posterior_mode"] = mode
    for k in ("q025", "q16", "q50", "q84", "q975"):
        t[f"posterior_{k}"] = qs[k]
    if "truth" in t:  # keep the truth last
        t["truth"] = t.pop("truth")
    return t, 0.5 * (cov + cov.T), samples


def linearised_case(case: Case, post: LognormalPosterior, prior: LogPrior) -> Case:
    """The case linearised at the mode: H = J* (ppm per unit of u), B = B_u, the data and the
    prior mean of the last Gauss–Newton step, weights chained by ∂x/∂u. Its linear posterior
    is ``post.laplace``; its uncertainty budget splits the Laplace variance of the totals."""
    lp = post.laplace.problem
    Wu = sp.csr_array(case.weights @ sp.diags_array(post.problem.jacobian_scale(post.mode)))
    return dataclasses.replace(
        case, H=lp.H, B=prior.B, x_prior=lp.x_prior, y=lp.y, weights=Wu, x_truth=None,
    )  # fmt: skip
