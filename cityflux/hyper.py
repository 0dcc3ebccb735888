"""Error statistics estimated from the data: the hyperparameters of B and R by maximum
marginal likelihood (``inversion.hyperparameters``), for a :class:`~cityflux.case.Case`.

:func:`hyper_setup` turns the case into the blocks of ``S = H B Hᵀ + R`` — one ``H B_k Hᵀ`` per
sector (formed once, by the obs-space solver's own product), one low-rank block per extra
state block (offsets, site biases, boundary), R split by observation kind or site — and
the parameters of ``inversion.hyperparameters`` (``cfg.inversion.hyperparameters``). Length
changes rebuild B with the case's own stage (``cityflux.stages.prior_covariance``).
:func:`estimate` fits them, warns about estimates at a bound, parameters the data cannot
identify and parameters with too few observations (each warning names the parameter and
its configuration key), propagates their uncertainty to the totals, computes the profile
likelihood, and returns the case rebuilt with the estimates (:func:`case_at`), which the run
then solves.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

import observations
from cityflux import stages
from cityflux._config_hyper import HYPERPARAMETERS
from cityflux.case import Case
from cityflux.config import CityfluxConfig
from cityflux.stages._totals import K_EXPANDED
from inversion.hyperparameters import (
    Block,
    HyperFit,
    LowRank,
    MarginalLikelihood,
    Propagation,
    VarianceModel,
    fit_hyperparameters,
    profile_likelihood,
    projected_block,
    propagate,
    sparse_covariance,
)

__all__ = [
    "EXACT_MAX_OBS",
    "HyperResult",
    "HyperSetup",
    "HyperparameterWarning",
    "Parameter",
    "case_at",
    "estimate",
    "hyper_setup",
]

logger = logging.getLogger(__name__)

KEY = "inversion.hyperparameters"
#: Largest number of observations for which ``method: auto`` takes the exact gradient.
EXACT_MAX_OBS = 3000
#: Least number of groups (offsets, site biases) to estimate their prior std.
MIN_GROUPS = 3
#: Default bounds: the configured value divided / multiplied by this factor.
DEFAULT_BOUND_FACTOR = 20.0


class HyperparameterWarning(UserWarning):
    """An estimated hyperparameter that cannot be trusted as it is (named in the message)."""


@dataclass(frozen=True)
class Parameter:
    """One hyperparameter of a case.

    Attributes
    ----------
    name : str
        ``prior_scale[traffic]``, ``mismatch[tower]``, ``spatial_length`` ...
    kind : str
        One of ``HYPERPARAMETERS``.
    label : str or None
        Sector, kind or site (per-label parameters).
    unit : str
    configured : float
        The configured value [unit] (1 for the factors).
    bounds : (float, float)
        [unit]
    n_informing : int
        Observations (groups for offset_std, bias_std) that inform it.
    """

    name: str
    kind: str
    label: str | None
    unit: str
    configured: float
    bounds: tuple[float, float]
    n_informing: int

    @property
    def key(self) -> str:
        """The configuration key of its bounds."""
        return f"{KEY}.bounds.{self.kind}"


@dataclass(eq=False)
class HyperSetup:
    """The variance model of a case and what maps it back to the configuration."""

    case: Case
    cfg: CityfluxConfig
    params: list[Parameter]
    model: VarianceModel
    free: np.ndarray
    held: dict[str, str]
    bounds_phi: np.ndarray
    design: np.ndarray | None
    WX: np.ndarray | None
    w_prior: np.ndarray
    method: str
    obs_labels: np.ndarray
    setup_s: float = 0.0

    @property
    def names(self) -> list[str]:
        """Parameter names."""
        return [p.name for p in self.params]

    def innovation(self, y: np.ndarray | None = None) -> np.ndarray:
        """``y − H x_a`` [ppm] (the case's data by default)."""
        y = self.case.y if y is None else y
        return np.asarray(y - self.case.H @ self.case.x_prior, dtype=float)

    def likelihood(self, d: np.ndarray | None = None) -> MarginalLikelihood:
        """The marginal likelihood of innovations ``d`` (the case's by default)."""
        hp = self.cfg.inversion.hyperparameters
        return MarginalLikelihood(
            self.model, self.innovation() if d is None else d, design=self.design,
            method=self.method, probes=hp.probes, seed=hp.seed, prior_std=hp.hyperprior_log_std,
        )  # fmt: skip

    def values(self, phi: np.ndarray) -> dict[str, float]:
        """Parameter values [units] at φ."""
        return {
            p.name: p.configured * float(np.exp(v)) for p, v in zip(self.params, phi, strict=True)
        }


# ---------------------------------------------------------------------------------- setup
def _pick_method(cfg: CityfluxConfig, n_obs: int, n_dense: int) -> str:
    hp = cfg.inversion.hyperparameters
    if hp.method != "auto":
        return hp.method
    if n_obs <= EXACT_MAX_OBS:
        return "exact"
    need = 8.0 * n_obs**2 * (n_dense + 3)
    return "hybrid" if need <= cfg.inversion.memory_budget_gib * 2**30 else "stochastic"


def _mismatch_labels(case: Case, by: str) -> np.ndarray:
    if by == "all":
        return np.full(case.y.size, "all", dtype=object)
    return case.obs[by].values.astype(str).astype(object)


def _r_blocks(case: Case, labels: np.ndarray, names: list[str]) -> list[tuple[Block, list[int]]]:
    """R split into the parts multiplied by m_g m_h (labels g, h of row and column)."""
    R = sp.coo_array(sparse_covariance(case.R))
    codes = np.searchsorted(np.array(names, dtype=object), labels.astype(object))
    gi, gj = codes[R.row], codes[R.col]
    lo, hi = np.minimum(gi, gj), np.maximum(gi, gj)
    pair = lo * len(names) + hi
    order = np.argsort(pair, kind="stable")
    pairs, starts = np.unique(pair[order], return_index=True)
    out = []
    for p, sel in zip(pairs, np.split(order, starts[1:]), strict=True):  # one part per pair
        M = sp.csr_array((R.data[sel], (R.row[sel], R.col[sel])), shape=R.shape)
        out.append((Block(M), [int(p // len(names)), int(p % len(names))]))
    return out


def _flux_columns(case: Case) -> list[slice]:
    fl = case.state.blocks["flux"]
    per = fl.size // len(case.state.sectors)
    return [
        slice(fl.start + k * per, fl.start + (k + 1) * per) for k in range(len(case.state.sectors))
    ]


def _flux_std(case: Case) -> np.ndarray:
    nf = case.state.n_flux
    return np.sqrt(case.B.diag()[:nf]).reshape(case.state.flux_shape)


def _bounds(cfg: CityfluxConfig, kind: str, configured: float) -> tuple[float, float]:
    b = cfg.inversion.hyperparameters.bounds.get(kind)
    if b is None:
        return configured / DEFAULT_BOUND_FACTOR, configured * DEFAULT_BOUND_FACTOR
    return float(b[0]), float(b[1])


def hyper_setup(case: Case, cfg: CityfluxConfig) -> HyperSetup:
    """The variance model of ``case`` for ``cfg.inversion.hyperparameters``.

    Raises
    ------
    ValueError
        If a parameter to estimate has no place in the case (``offset_std`` without offsets,
        ``bias_std`` without ``background.site_bias``), naming the key.
    """
    t0 = time.perf_counter()
    hp = cfg.inversion.hyperparameters
    state, H, B = case.state, sp.csr_array(case.H), case.B
    sectors = [str(s) for s in state.sectors]
    extras = [n for n in state.blocks if n != "flux"]
    if len(getattr(B, "blocks", ())) != len(sectors) + len(extras):
        raise ValueError(
            f"{KEY}: B must hold one block per sector and per extra state block "
            f"({len(sectors)} + {len(extras)}), found {type(B).__name__}"
        )
    for kind, block in (("offset_std", stages.OFFSET_BLOCK), ("bias_std", stages.BIAS_BLOCK)):
        if kind in hp.estimate and block not in state.blocks:
            fix = "background.offsets.by" if kind == "offset_std" else "background.site_bias.per"
            raise ValueError(f"{KEY}.estimate: {kind} needs a {block!r} state block; set {fix}")
    n = case.y.size
    n_dense = len(sectors)
    mlabels = _mismatch_labels(case, hp.mismatch_by)
    mnames = sorted(set(mlabels))
    method = _pick_method(cfg, n, n_dense)
    dense = method != "stochastic"

    params: list[Parameter] = []

    def add(kind: str, label: str | None, configured: float, n_inf: int) -> int:
        name = kind if label is None else f"{kind}[{label}]"
        params.append(
            Parameter(
                name,
                kind,
                label,
                HYPERPARAMETERS[kind],
                configured,
                _bounds(cfg, kind, configured),
                n_inf,
            )
        )
        return len(params) - 1

    scale_of: dict[int, int] = {}
    if "prior_scale" in hp.estimate:
        if hp.prior_scale_by == "all":
            i = add("prior_scale", None, 1.0, n)
            scale_of = dict.fromkeys(range(len(sectors)), i)
        else:
            scale_of = {k: add("prior_scale", s, 1.0, n) for k, s in enumerate(sectors)}
    mis_of: dict[int, int] = {}
    if "mismatch" in hp.estimate:
        counts = pd.Series(mlabels).value_counts()
        for g, lab in enumerate(mnames):
            mis_of[g] = add("mismatch", None if lab == "all" else lab, 1.0, int(counts[lab]))
    extra_of: dict[str, int] = {}
    for kind, block in (("offset_std", stages.OFFSET_BLOCK), ("bias_std", stages.BIAS_BLOCK)):
        if kind in hp.estimate:
            std0 = stages.extra_prior_std(cfg)[block]
            extra_of[block] = add(kind, None, std0, state.blocks[block].size)
    length_ref = {
        "spatial_length": cfg.inversion.spatial_length_km,
        "temporal_length": cfg.inversion.temporal_length_h,
    }
    lengths = [add(k, None, length_ref[k], n) for k in length_ref if k in hp.estimate]

    W = sp.csr_array(case.weights)
    cols = _flux_columns(case)
    blocks: list[Block] = []
    rows: list[dict[int, float]] = []
    for k, sl in enumerate(cols):
        blocks.append(projected_block(H[:, sl], B.blocks[k], W[:, sl], dense=dense))
        rows.append({scale_of[k]: 2.0} if k in scale_of else {})
    for j, name in enumerate(extras):
        sl = state.slice(name)
        var = B.blocks[len(sectors) + j].diag()
        Hs = H[:, sl]
        U = (Hs @ sp.diags_array(np.sqrt(var))).toarray()
        VW = var[:, None] * W[:, sl].T.toarray()
        blocks.append(Block(LowRank(U), np.asarray(Hs @ VW), np.asarray(W[:, sl] @ VW)))
        rows.append({extra_of[name]: 2.0} if name in extra_of else {})
    if mis_of:
        for blk, (g, h) in _r_blocks(case, mlabels, mnames):
            blocks.append(blk)
            e: dict[int, float] = {}
            for lab in (g, h):
                e[mis_of[lab]] = e.get(mis_of[lab], 0.0) + 1.0
            rows.append(e)
    else:
        blocks.append(Block(sparse_covariance(case.R)))
        rows.append({})
    E = np.zeros((len(blocks), len(params)))
    for c, e in enumerate(rows):
        for i, v in e.items():
            E[c, i] = v

    rebuild = None
    if lengths:
        std_da = xr.DataArray(_flux_std(case), dims=("sector", "time", "y", "x"))
        kinds = [params[i].kind for i in lengths]

        def rebuild(factors: np.ndarray) -> dict[int, Block]:
            upd = {
                ("spatial_length_km" if kd == "spatial_length" else "temporal_length_h"):
                length_ref[kd] * float(f)
                for kd, f in zip(kinds, factors, strict=True)
            }  # fmt: skip
            Bn = stages.prior_covariance(
                std_da, state, cfg.inversion.model_copy(update=upd), stages.extra_prior_std(cfg)
            )
            return {
                k: projected_block(H[:, sl], Bn.blocks[k], W[:, sl], dense=dense)
                for k, sl in enumerate(cols)
            }

    model = VarianceModel(
        blocks, E, [p.name for p in params], length_params=lengths, rebuild=rebuild
    )
    design = WX = None
    if hp.objective == "reml":
        X = np.zeros((state.size, len(sectors)))
        for k, sl in enumerate(cols):
            X[sl, k] = case.x_prior[sl]
        design = np.asarray(H @ X)
        WX = np.asarray(W @ X)
    free, held = _held(params, hp.min_obs)
    bounds = np.log(np.array([p.bounds for p in params]).reshape(-1, 2)
                    / np.array([p.configured for p in params])[:, None])  # fmt: skip
    return HyperSetup(
        case=case, cfg=cfg, params=params, model=model, free=free, held=held,
        bounds_phi=bounds, design=design, WX=WX, w_prior=np.asarray(W @ case.x_prior).ravel(),
        method=method, obs_labels=mlabels, setup_s=time.perf_counter() - t0,
    )  # fmt: skip


def _held(params: list[Parameter], min_obs: int) -> tuple[np.ndarray, dict[str, str]]:
    free = np.ones(len(params), bool)
    held: dict[str, str] = {}
    for i, p in enumerate(params):
        groups = p.kind in ("offset_std", "bias_std")
        need = MIN_GROUPS if groups else min_obs
        if p.n_informing < need:
            free[i] = False
            what = "groups" if groups else "observations"
            held[p.name] = (
                f"{p.name}: only {p.n_informing} {what} inform it (fewer than {need}"
                + ("" if groups else f", {KEY}.min_obs")
                + f"); it keeps its configured value {p.configured:g} {p.unit}"
            )
    return free, held


# ---------------------------------------------------------------------------------- results
@dataclass(eq=False)
class HyperResult:
    """The estimated hyperparameters of a run and what follows from them.

    Attributes
    ----------
    setup : HyperSetup
    fit : inversion.hyperparameters.HyperFit
    loglik_configured : float
        ℓ at the configured values (φ = 0) [nats].
    propagation : inversion.hyperparameters.Propagation or None
        Totals over the hyperparameters' posterior (``propagate: true``), else None.
    plugin_mean, plugin_cov : numpy.ndarray
        Totals at the estimates alone [t CO2], [t CO2²].
    profile : dict
        ``{name: {"values": [...], "loglik": [...], ...}}``: the profile of the objective (the
        log-likelihood, plus the log hyperprior when there is one) [nats], values in the
        parameter's units.
    case : Case
        The case rebuilt with the estimates (what the run solves).
    messages : list of str
        The warnings raised.
    timings_s : dict
    """

    setup: HyperSetup
    fit: HyperFit
    loglik_configured: float
    propagation: Propagation | None
    plugin_mean: np.ndarray
    plugin_cov: np.ndarray
    profile: dict[str, dict[str, list[float]]]
    case: Case
    messages: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def estimates(self) -> dict[str, float]:
        """Estimated values [units]."""
        return self.setup.values(self.fit.phi)

    def table(self) -> list[dict[str, Any]]:
        """One record per parameter: configured, estimate, standard error, 95 % interval."""
        out = []
        se = self.fit.se
        for i, p in enumerate(self.setup.params):
            phi = float(self.fit.phi[i])
            rec = {
                "name": p.name, "unit": p.unit, "configured": p.configured,
                "estimate": p.configured * float(np.exp(phi)),
                "log_std_error": None if not np.isfinite(se[i]) else float(se[i]),
                "bounds": list(p.bounds), "estimated": bool(self.fit.free[i]),
                "at_bound": bool(self.fit.at_bound[i]), "identifiable": not bool(self.fit.flat[i]),
                "propagated": bool(self.propagation is not None and self.fit.propagated[i]),
                "n_informing": p.n_informing,
            }  # fmt: skip
            if np.isfinite(se[i]):
                rec["std_error"] = rec["estimate"] * float(se[i])
                rec["interval_95"] = [
                    p.configured * float(np.exp(phi + s * 1.96 * se[i])) for s in (-1, 1)
                ]
            out.append(rec)
        return out

    def diagnostics(self) -> dict[str, Any]:
        """The ``hyperparameters`` section of diagnostics.json."""
        f = self.fit
        sd = np.sqrt(np.clip(np.diag(f.cov), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(np.outer(sd, sd) > 0, f.cov / np.outer(sd, sd), 0.0)
        out: dict[str, Any] = {
            "objective": self.setup.cfg.inversion.hyperparameters.objective,
            "method": f.method,
            "converged": f.converged,
            "message": f.message,
            "iterations": f.n_iterations,
            "evaluations": f.n_evaluations,
            "log_likelihood": f.loglik,
            "log_likelihood_std_error": f.loglik_se,
            "log_likelihood_configured": self.loglik_configured,
            "n_obs": int(self.setup.case.y.size),
            "parameters": self.table(),
            "correlation": corr.tolist(),
            "profile": self.profile,
            "warnings": list(self.messages),
            "timings_s": dict(self.timings_s),
        }
        if self.propagation is not None:
            out["propagation"] = {
                "rule": self.propagation.rule,
                "n_nodes": int(self.propagation.weights.size),
                "parameters": [p for p, u in zip(self.setup.names, f.propagated, strict=True) if u],
            }
        return out

    def apply_to_totals(self, totals: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The run's totals with the estimated statistics: the propagated (mixture) mean, std
        and covariance, the 95 % interval from the mixture's quantiles, and the plug-in values.
        """
        out = totals.copy()
        pstd = np.sqrt(np.clip(np.diag(self.plugin_cov), 0, None))
        if self.propagation is None:
            mean, cov = self.plugin_mean, self.plugin_cov
            q = (
                self.plugin_mean[None, :]
                + np.array([[-1.959963984540054], [1.959963984540054]]) * pstd
            )
        else:
            mean, cov = self.propagation.mean, self.propagation.cov
            q = self.propagation.quantiles([0.025, 0.975])
        std = np.sqrt(np.clip(np.diag(cov), 0, None))
        out["posterior"] = mean
        out["posterior_std"] = std
        out["posterior_expanded_uncertainty_k2"] = K_EXPANDED * std
        out["posterior_lower_95"] = q[0]
        out["posterior_upper_95"] = q[1]
        out["posterior_plugin"] = self.plugin_mean
        out["posterior_std_plugin"] = pstd
        return out, cov


# ---------------------------------------------------------------------------------- estimation
def _warn(messages: list[str], text: str) -> None:
    messages.append(text)
    logger.warning(text)
    warnings.warn(text, HyperparameterWarning, stacklevel=3)


def fit_problems(setup: HyperSetup, fit: HyperFit) -> list[str]:
    """What is wrong with a fit, one sentence per parameter (empty when nothing is)."""
    hp = setup.cfg.inversion.hyperparameters
    out = list(setup.held.values())
    vals = setup.values(fit.phi)
    se = fit.se
    for i, p in enumerate(setup.params):
        if fit.at_bound[i]:
            side = "lower" if fit.phi[i] < 0.5 * fit.bounds[i].sum() else "upper"
            out.append(
                f"{p.name} = {vals[p.name]:.4g} {p.unit} is at its {side} bound ({p.key} = "
                f"[{p.bounds[0]:g}, {p.bounds[1]:g}]): the likelihood's maximum lies outside; "
                "widen the bounds or check the error model"
            )
        elif fit.flat[i]:
            what = (
                "a flat likelihood"
                if not np.isfinite(se[i])
                else f"standard error of log {se[i]:.3g}"
            )
            out.append(
                f"{p.name} is not identifiable from these observations ({what} > {KEY}."
                f"max_log_se = {hp.max_log_se:g}); its estimate {vals[p.name]:.4g} {p.unit} is "
                "not propagated; fix it (remove it from "
                f"{KEY}.estimate) or add observations"
            )
    if not fit.converged:
        out.append(
            f"{KEY}: the optimiser did not converge ({fit.message}); raise {KEY}.maxiter or "
            "check the bounds"
        )
    return out


def estimate(case: Case, cfg: CityfluxConfig, *, progress: Any = None) -> HyperResult:
    """Estimate the hyperparameters of ``cfg.inversion.hyperparameters`` from the case's data.

    Parameters
    ----------
    case : Case
        With its data (``y``).
    cfg : CityfluxConfig
    progress : callable, optional
        Called with a short description of each step.

    Returns
    -------
    HyperResult

    Warns
    -----
    HyperparameterWarning
        For every parameter held at its configured value (too few observations), estimated
        at a bound, or not identifiable, and when the optimiser did not converge.
    """
    step = progress or (lambda s: None)
    hp = cfg.inversion.hyperparameters
    timings: dict[str, float] = {}
    t = time.perf_counter()
    setup = hyper_setup(case, cfg)
    timings["blocks"] = time.perf_counter() - t
    lik = setup.likelihood()
    step(f"maximising the marginal likelihood ({setup.method}, {len(setup.params)} parameters)")
    t = time.perf_counter()
    loglik0 = lik(np.zeros(len(setup.params)), grad=False).loglik
    fit = fit_hyperparameters(
        lik, setup.bounds_phi, free=setup.free, maxiter=hp.maxiter, flat_se=hp.max_log_se
    )
    timings["fit"] = time.perf_counter() - t
    messages: list[str] = []
    for text in fit_problems(setup, fit):
        _warn(messages, text)
    t = time.perf_counter()
    prop = None
    if hp.propagate and cfg.inversion.positivity != "lognormal":  # Gaussian totals only
        step("propagating the hyperparameters' uncertainty to the totals")
        prop = propagate(lik, fit, setup.w_prior, setup.WX, hp.quadrature)
        plug = (prop.plugin_mean, prop.plugin_cov)
    else:
        from inversion.hyperparameters import aggregates_at

        plug = aggregates_at(lik, fit.phi, setup.w_prior, setup.WX)
    timings["propagation"] = time.perf_counter() - t
    t = time.perf_counter()
    profile = _profiles(setup, lik, fit, hp.profile_points) if hp.profile_points else {}
    timings["profile"] = time.perf_counter() - t
    beta = lik.beta(fit.phi)
    return HyperResult(
        setup=setup, fit=fit, loglik_configured=loglik0, propagation=prop, plugin_mean=plug[0],
        plugin_cov=plug[1], profile=profile,
        case=case_at(setup, fit.phi, None if beta is None else beta[0]),
        messages=messages, timings_s=timings,
    )  # fmt: skip


def _profiles(setup: HyperSetup, lik: MarginalLikelihood, fit: HyperFit, points: int) -> dict:
    out = {}
    se = fit.se
    for i, p in enumerate(setup.params):
        if not fit.free[i]:
            continue
        half = 3.0 * se[i] if np.isfinite(se[i]) else 1.0
        half = min(max(half, 0.1), 3.0)
        grid = np.linspace(fit.phi[i] - half, fit.phi[i] + half, points)
        grid = np.unique(np.clip(grid, fit.bounds[i, 0], fit.bounds[i, 1]))
        ll = profile_likelihood(lik, fit, i, grid)
        out[p.name] = {
            "values": (p.configured * np.exp(grid)).tolist(),
            "loglik": ll.tolist(),
            "objective": "log posterior (hyperprior)" if fit.hyperprior else "log-likelihood",
            "estimate": p.configured * float(np.exp(fit.phi[i])),
            "log_std_error": float(se[i]) if np.isfinite(se[i]) else None,
            "loglik_max": fit.loglik + fit.log_prior,
            "unit": p.unit,
        }
    return out


def case_at(setup: HyperSetup, phi: np.ndarray, beta: np.ndarray | None = None) -> Case:
    """The case with the hyperparameters at φ: B and R rebuilt by the case's own stages.

    The flux std of each sector is multiplied by its prior scale, the correlation lengths and
    the prior std of offsets / site biases set, and every error component of each observation
    multiplied by the mismatch factor of its kind or site (so ``R = diag(m) R₀ diag(m)``); with
    REML the prior mean becomes ``x_a + X β̂`` (each sector's prior flux times ``1 + β̂_k``).
    """
    case, cfg = setup.case, setup.cfg
    vals = dict(zip(setup.params, np.exp(np.asarray(phi, dtype=float)), strict=True))
    sectors = [str(s) for s in case.state.sectors]
    scale = np.ones(len(sectors))
    inv_upd: dict[str, float] = {}
    extra_std = stages.extra_prior_std(cfg)
    mis: dict[str, float] = {}
    for p, f in vals.items():
        if p.kind == "prior_scale":
            scale[[k for k, s in enumerate(sectors) if p.label in (None, s)]] = f
        elif p.kind == "mismatch":
            mis[p.label or "all"] = float(f)
        elif p.kind == "offset_std":
            extra_std[stages.OFFSET_BLOCK] = p.configured * float(f)
        elif p.kind == "bias_std":
            extra_std[stages.BIAS_BLOCK] = p.configured * float(f)
        elif p.kind == "spatial_length":
            inv_upd["spatial_length_km"] = p.configured * float(f)
        else:
            inv_upd["temporal_length_h"] = p.configured * float(f)
    std = _flux_std(case) * scale[:, None, None, None]
    std_da = xr.DataArray(std, dims=("sector", "time", "y", "x"))
    B = stages.prior_covariance(
        std_da, case.state, cfg.inversion.model_copy(update=inv_upd), extra_std
    )
    obs, R = case.obs, case.R
    if mis:
        m = np.array([mis.get(str(lab), 1.0) for lab in setup.obs_labels])
        obs = obs.assign(
            {
                f"err_{c}": ("obs", obs[f"err_{c}"].values * m, dict(obs[f"err_{c}"].attrs))
                for c in observations.ERROR_COMPONENTS
            }
        )
        obs.attrs = dict(case.obs.attrs)
        R = stages.observation_covariance(obs, case.observation_errors)
    x_prior = case.x_prior
    if beta is not None:
        x_prior = x_prior.copy()
        for k, sl in enumerate(_flux_columns(case)):
            x_prior[sl] = case.x_prior[sl] * (1.0 + beta[k])
    return dataclasses.replace(case, B=B, R=R, obs=obs, x_prior=x_prior)


# ---------------------------------------------------------------------------------- OSSE
#: Columns of the per-draw hyperparameter table of the OSSE (besides one per parameter).
DRAW_FLAGS = ("converged", "any_at_bound", "any_flat", "loglik")


def osse_draws(setup: HyperSetup, Y: np.ndarray) -> dict[str, np.ndarray]:
    """Each draw's own estimate and its propagated totals (the OSSE harness).

    Parameters
    ----------
    setup : HyperSetup
        Built once for the case (the blocks are shared by every draw).
    Y : numpy.ndarray
        (m, n_obs) observed enhancements of m draws [ppm].

    Returns
    -------
    dict of str to numpy.ndarray
        ``posterior``, ``posterior_std`` (mixture, or plug-in without propagation),
        ``lower_95``, ``upper_95``, ``lower_68``, ``upper_68`` (mixture quantiles),
        ``posterior_plugin``, ``posterior_std_plugin``: (m, k) [t CO2]; ``phi``: (m, P)
        estimates of log(θ/θ_configured); and (m,) ``converged``, ``any_at_bound``,
        ``any_flat``, ``loglik``.
    """
    from inversion.hyperparameters import aggregates_at, blas_threads_for

    hp = setup.cfg.inversion.hyperparameters
    m, k, P = Y.shape[0], setup.w_prior.size, len(setup.params)
    keys = ("posterior", "posterior_std", "lower_95", "upper_95", "lower_68", "upper_68",
            "posterior_plugin", "posterior_std_plugin")  # fmt: skip
    out = {c: np.empty((m, k)) for c in keys}
    out["phi"] = np.empty((m, P))
    for c in DRAW_FLAGS:
        out[c] = np.empty(m, dtype=float if c == "loglik" else bool)
    probs = [0.025, 0.975, 0.16, 0.84]
    with blas_threads_for(setup.case.y.size), warnings.catch_warnings():
        warnings.simplefilter("ignore", HyperparameterWarning)
        for i in range(m):
            lik = setup.likelihood(setup.innovation(Y[i]))
            fit = fit_hyperparameters(
                lik, setup.bounds_phi, free=setup.free, maxiter=hp.maxiter, flat_se=hp.max_log_se
            )
            if hp.propagate:
                prop = propagate(lik, fit, setup.w_prior, setup.WX, hp.quadrature)
                mean, cov, q = prop.mean, prop.cov, prop.quantiles(probs)
                pm, pc = prop.plugin_mean, prop.plugin_cov
            else:
                pm, pc = aggregates_at(lik, fit.phi, setup.w_prior, setup.WX)
                mean, cov = pm, pc
                sd = np.sqrt(np.clip(np.diag(pc), 0, None))
                z = np.array([-1.959963984540054, 1.959963984540054, -0.994457883209753,
                              0.994457883209753])  # fmt: skip
                q = mean[None, :] + z[:, None] * sd[None, :]
            out["posterior"][i], out["posterior_std"][i] = (
                mean,
                np.sqrt(np.clip(np.diag(cov), 0, None)),
            )
            for j, c in enumerate(("lower_95", "upper_95", "lower_68", "upper_68")):
                out[c][i] = q[j]
            out["posterior_plugin"][i] = pm
            out["posterior_std_plugin"][i] = np.sqrt(np.clip(np.diag(pc), 0, None))
            out["phi"][i] = fit.phi
            out["converged"][i] = fit.converged
            out["any_at_bound"][i] = bool(fit.at_bound.any())
            out["any_flat"][i] = bool(fit.flat.any())
            out["loglik"][i] = fit.loglik
    return out
