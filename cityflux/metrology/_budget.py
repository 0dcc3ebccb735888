"""GUM uncertainty budget of the reported totals (JCGM 100:2008 §5, JCGM 101:2008).

For the linear-Gaussian posterior, an aggregate ``t = aᵀx`` (a row of totals.csv) is estimated
by ``aᵀx̂ = aᵀx_a + gᵀ(y − H x_a)`` with the sensitivity ``g = Kᵀa = S⁻¹ H B a``
(``inversion.Posterior.observation_sensitivity``). Its error is a linear function of the
independent input errors,

    aᵀ(x̂ − x) = (a − Hᵀg)ᵀ (x_a − x) + gᵀ e,      e = Σ_c e_c  (one term per error component),

so its variance splits exactly (the law of propagation of uncertainty for a linear model, GUM
§5.1.2, with no truncation):

    Var = (a − Hᵀg)ᵀ B (a − Hᵀg) + Σ_c gᵀ R_c g,     R = Σ_c R_c,

which equals the posterior variance ``aᵀ A a``. B is block diagonal (flux sectors, background
offsets), so the prior term splits into the flux and offset parts; ``R_c`` are built with the
same correlation rules as R (``cityflux.stages.error_quadratic_forms``).

GUM evaluation types (JCGM 100 §4.2–4.3), our choice per source:

==========================  ====  ===========================================================
source                      type  why
==========================  ====  ===========================================================
prior_flux                  B     inventory uncertainty set by judgement (relative std, floor)
prior_background_offsets    B     prior std of the offsets, set in the configuration
obs_instrument              A     repeatability from series of measurements (data provider)
obs_calibration             B     the calibration scale's stated uncertainty (literature)
obs_transport               B     model-data mismatch set by judgement or model comparison
obs_representation          B     representation error set by judgement
obs_background              A/B   A when estimated from the spread of the data (quantile,
                                  upwind), B when set (constant, configuration)
obs_transport_ensemble      B     spread of an ensemble of transport models or perturbed met
                                  (transport.ensemble): model-based, set by the perturbations
hyperparameters             A     hook for #14: uncertainty of maximum-likelihood estimates
==========================  ====  ===========================================================

The standard uncertainty is ``u = sqrt(Var)``, the expanded uncertainty ``U = k u`` with the
coverage factor k = 2, and the 95 % coverage interval of the Gaussian posterior is
``t̂ ± 1.96 u``. The log-normal (non-negative) posterior (``inversion.positivity: lognormal``)
is budgeted on its Laplace linearisation at the mode (the case linearised there,
``cityflux.positivity.linearised_case``: the sources then split the Laplace variance), and its
coverage interval is asymmetric: the quantiles of the posterior (RTO samples or the Laplace
log-normal) passed as ``interval``, or the log-normal of :func:`coverage_interval`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import ndtri

import observations
from cityflux import stages

__all__ = [
    "BUDGET_COLUMNS",
    "COVERAGE_FACTOR",
    "GUM_TYPES",
    "Budget",
    "coverage_interval",
    "uncertainty_budget",
]

logger = logging.getLogger(__name__)

#: Coverage factor k of the expanded uncertainty U = k u (JCGM 100 §6.2).
COVERAGE_FACTOR = 2.0

#: Columns of budget.csv.
BUDGET_COLUMNS = (
    "row", "region", "period", "sector", "source", "type", "variance_t2", "std_t", "share",
)  # fmt: skip

#: GUM evaluation type of each source (see the module docstring).
GUM_TYPES = {
    "prior_flux": "B",
    "prior_background_offsets": "B",
    "obs_instrument": "A",
    "obs_calibration": "B",
    "obs_transport": "B",
    "obs_representation": "B",
    "obs_background": "B",
    "obs_transport_ensemble": "B",
    "hyperparameters": "A",
}

# Relative mismatch between the budget's sum and the posterior variance that is reported.
_CLOSURE_RTOL = 1e-6
# Aggregates per block of the budget (columns of B (a − Hᵀg) held at a time).
_ROW_BLOCK = 64


@dataclass(frozen=True)
class Budget:
    """Uncertainty budget of every row of totals.csv.

    Attributes
    ----------
    table : pandas.DataFrame
        Long format (:data:`BUDGET_COLUMNS`): one line per row of totals.csv and source;
        ``variance_t2`` [t CO2²], ``std_t`` = sqrt(variance) [t CO2], ``share`` of the
        row's posterior variance [1].
    summary : pandas.DataFrame
        One line per row of totals.csv: ``posterior`` [t CO2], ``variance_t2`` (the sum of the
        budget), ``standard_uncertainty_t`` u, ``expanded_uncertainty_t`` U = k u (k = 2),
        ``coverage_95_low_t`` / ``coverage_95_high_t`` and ``closure_rel`` (|sum − posterior
        variance| / posterior variance).
    """

    table: pd.DataFrame
    summary: pd.DataFrame


def coverage_interval(
    mean: Any, std: Any, p: float = 0.95, distribution: str = "normal"
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilistically symmetric coverage interval of probability ``p`` (JCGM 101 §7.7).

    Parameters
    ----------
    mean, std : float or array_like
        Estimate and standard uncertainty [t CO2].
    p : float
        Coverage probability, 0 < p < 1.
    distribution : str
        ``"normal"`` (the linear-Gaussian posterior: ``mean ± z u``, z = 1.96 for 95 %) or
        ``"lognormal"`` (a positive quantity: the log-normal with this mean and standard
        uncertainty, ``σ² = ln(1 + (u/mean)²)``, ``μ = ln(mean) − σ²/2``, and the interval
        ``exp(μ ± z σ)``, asymmetric about the mean).

    Returns
    -------
    low, high : numpy.ndarray
        Interval ends [t CO2].

    Raises
    ------
    ValueError
        If ``p`` is not in (0, 1), the distribution is unknown, or a log-normal mean is not > 0.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: the coverage probability must be in (0, 1), found {p}")
    if distribution not in ("normal", "lognormal"):
        raise ValueError(f"distribution: expected 'normal' or 'lognormal', found {distribution!r}")
    z = float(ndtri(0.5 + p / 2.0))
    m, s = np.asarray(mean, float), np.asarray(std, float)
    if distribution == "lognormal":
        if np.any(m <= 0):
            raise ValueError(
                "coverage_interval: a log-normal quantity needs a mean > 0, found "
                f"{float(np.min(m))!r}"
            )
        sig = np.sqrt(np.log1p((s / m) ** 2))
        mu = np.log(m) - 0.5 * sig**2
        return np.exp(mu - z * sig), np.exp(mu + z * sig)
    return m - z * s, m + z * s


def _background_type(method: str) -> str:
    return "A" if str(method).split()[0] in ("quantile", "upwind") else "B"


def uncertainty_budget(
    post: Any,
    case: Any,
    *,
    posterior_variance: np.ndarray | None = None,
    hyperparameters: Mapping[str, np.ndarray] | None = None,
    rtol: float = _CLOSURE_RTOL,
    estimate: np.ndarray | None = None,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
) -> Budget:
    """Split the posterior variance of every row of totals.csv by source of uncertainty.

    Parameters
    ----------
    post : inversion.Posterior
        The run's posterior (any solver; ``observation_sensitivity`` gives g = Kᵀa).
    case : cityflux.case.Case
        ``weights`` (k, n_state) [t CO2 per state unit] and ``labels`` of the totals, ``H``,
        ``B``, ``obs`` (error components [ppm]), ``observation_errors``.
    posterior_variance : numpy.ndarray, optional
        (k,) posterior variances of the totals [t CO2²] (the diagonal of
        ``RunResult.totals_covariance``); computed with ``post.aggregate_cov`` when omitted.
    hyperparameters : mapping of str to numpy.ndarray, optional
        Hook for #14: extra variance contributions (k,) [t CO2²] of estimated
        hyperparameters, added as sources ``hyperparameters:<name>`` (type A). The budget's
        sum then exceeds the posterior variance conditional on the hyperparameters by exactly
        these terms; ``closure_rel`` is computed without them.
    rtol : float
        Largest relative mismatch accepted between the budget's sum and the posterior
        variance (exact solvers: rounding, about 1e-12; ``cg``: its solve tolerance).
    estimate : numpy.ndarray, optional
        (k,) the reported totals [t CO2] (default ``weights @ post.mean``): for a case
        linearised at a mode, the totals of the nonlinear posterior.
    interval : (numpy.ndarray, numpy.ndarray), optional
        (k,) 95 % interval ends [t CO2] of a non-Gaussian posterior (default the Gaussian
        ``estimate ± 1.96 u``).

    Returns
    -------
    Budget

    Raises
    ------
    ValueError
        If the budget does not add up to the posterior variance to relative ``rtol`` (R is
        not the sum of its components, or B is not block diagonal): the budget would be wrong.
    """
    W = sp.csr_array(case.weights)
    k = W.shape[0]
    state = case.state
    flux = state.slice("flux")
    parts: dict[str, np.ndarray] = {"prior_flux": np.empty(k)}
    has_offsets = stages.OFFSET_BLOCK in state.blocks
    if has_offsets:
        parts["prior_background_offsets"] = np.empty(k)
    obs_parts = {f"obs_{c}": np.zeros(k) for c in observations.ERROR_COMPONENTS}
    post_var = np.empty(k)
    for start in range(0, k, _ROW_BLOCK):
        rows = slice(start, min(start + _ROW_BLOCK, k))
        Wb = W[rows]
        g = np.asarray(post.observation_sensitivity(Wb)).reshape(case.y.size, -1)
        V = Wb.toarray().T - np.asarray(case.H.T @ g)  # (n_state, kb): a − Hᵀg
        Vf = np.zeros_like(V)
        Vf[flux] = V[flux]
        parts["prior_flux"][rows] = np.einsum("ij,ij->j", Vf, np.asarray(case.B @ Vf))
        if has_offsets:
            Vo = V - Vf
            parts["prior_background_offsets"][rows] = np.einsum(
                "ij,ij->j", Vo, np.asarray(case.B @ Vo)
            )
        for c, q in stages.error_quadratic_forms(case.obs, case.observation_errors, g).items():
            obs_parts.setdefault(f"obs_{c}", np.zeros(k))[rows] = q
        if posterior_variance is None:
            post_var[rows] = np.diag(post.aggregate_cov(Wb)[1])
    parts.update(obs_parts)
    if posterior_variance is not None:
        post_var = np.asarray(posterior_variance, float).reshape(k)
    total = sum(parts.values())
    closure = np.abs(total - post_var) / np.maximum(post_var, np.finfo(float).tiny)
    labels = case.labels.reset_index(drop=True)
    if (closure > rtol).any():
        i = int(np.argmax(closure))
        raise ValueError(
            f"uncertainty budget: the sources add up to {total[i]:.6g} t² for the total "
            f"{dict(labels.iloc[i])} but its posterior variance is {post_var[i]:.6g} t² "
            f"(relative {closure[i]:.2g}); R must be the sum of its components and B block "
            "diagonal between flux and offsets"
        )
    types = dict(GUM_TYPES)
    types["obs_background"] = _background_type(case.reports.get("background_method", "none"))
    for name, var in (hyperparameters or {}).items():
        var = np.asarray(var, float).reshape(-1)
        if var.shape != (k,) or (var < 0).any() or not np.isfinite(var).all():
            raise ValueError(
                f"hyperparameters[{name!r}]: expected {k} finite non-negative variances "
                f"[t CO2²], found shape {var.shape}"
            )
        parts[f"hyperparameters:{name}"] = var
        types[f"hyperparameters:{name}"] = "A"
        total = total + var
    frames = []
    for name, var in parts.items():
        f = labels[["region", "period", "sector"]].copy()
        f.insert(0, "row", np.arange(k))
        f["source"] = name
        f["type"] = types[name]
        f["variance_t2"] = var
        f["std_t"] = np.sqrt(np.clip(var, 0.0, None))
        f["share"] = var / np.where(total > 0, total, 1.0)
        frames.append(f)
    table = (
        pd.concat(frames, ignore_index=True)
        .sort_values(["row"], kind="stable")
        .reset_index(drop=True)[list(BUDGET_COLUMNS)]
    )
    mean = np.asarray(W @ post.mean).ravel() if estimate is None else np.asarray(estimate, float)
    u = np.sqrt(total)
    low, high = coverage_interval(mean, u, 0.95) if interval is None else interval
    summary = labels[["region", "period", "sector"]].copy()
    summary.insert(0, "row", np.arange(k))
    summary["posterior"] = mean
    summary["variance_t2"] = total
    summary["standard_uncertainty_t"] = u
    summary["expanded_uncertainty_t"] = COVERAGE_FACTOR * u
    summary["coverage_95_low_t"] = low
    summary["coverage_95_high_t"] = high
    summary["closure_rel"] = closure
    logger.info(
        "uncertainty budget of %d totals; largest closure error %.2g (relative)",
        k, float(closure.max(initial=0.0)),
    )  # fmt: skip
    return Budget(table=table, summary=summary)
