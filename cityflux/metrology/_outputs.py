"""The metrology files of a run folder, one call each from ``cityflux.outputs.write_outputs``:
budget.csv, verification.csv, the per-observation columns of observations.csv, the
metrology part of diagnostics.json, the figures and report.html."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from cityflux._files import atomic_write
from cityflux.metrology._budget import Budget, uncertainty_budget
from cityflux.metrology._traceability import observation_scale_columns, scale_summary
from cityflux.metrology._verification import Verification, verify_totals

__all__ = [
    "metrology_diagnostics",
    "observation_columns",
    "write_budget",
    "write_figures_and_report",
    "write_verification",
]

logger = logging.getLogger(__name__)


def write_budget(result: Any, out_dir: Path) -> tuple[Path, Budget]:
    """Compute the uncertainty budget of every total and write ``budget.csv``."""
    rtol = 1e-6
    post, case, kw = result.posterior, result.case, {}
    if result.positivity is not None:  # the Laplace linearisation at the mode, its quantiles
        from cityflux.positivity import linearised_case

        post = result.positivity.posterior.laplace
        case = linearised_case(result.case, result.positivity.posterior, result.positivity.prior)
        t = result.totals
        kw = {
            "estimate": t["posterior"].to_numpy(),
            "interval": (t["posterior_q025"].to_numpy(), t["posterior_q975"].to_numpy()),
        }
    if post.method == "cg":  # g and the variances are CG solves to this tolerance
        rtol = max(rtol, 100.0 * result.config.inversion.cg.tol)
    if result.positivity is None:
        variance = np.diag(result.totals_covariance)
        if "posterior_std_plugin" in result.totals:  # estimated hyperparameters (cityflux.hyper)
            plugin = result.totals["posterior_std_plugin"].to_numpy(float) ** 2
            kw["hyperparameters"] = {"propagated": np.clip(variance - plugin, 0.0, None)}
            lower = variance < plugin * (1 - rtol)
            if lower.any():
                logger.warning(
                    "budget: averaging over the hyperparameters lowers the variance of %d "
                    "total(s) (by up to %.2g %%); their hyperparameters source is 0",
                    int(lower.sum()), 100 * float(np.max(1 - variance[lower] / plugin[lower])),
                )  # fmt: skip
            variance = plugin
        kw["posterior_variance"] = variance
    budget = uncertainty_budget(post, case, rtol=rtol, **kw)
    path = atomic_write(
        Path(out_dir) / "budget.csv",
        lambda p: budget.table.to_csv(p, index=False, float_format="%.15g"),
    )
    return path, budget


def write_verification(result: Any, out_dir: Path) -> tuple[Path | None, Verification]:
    """Score the totals against the configured inventories; write ``verification.csv``
    (None when nothing was scored)."""
    ver = verify_totals(result)
    if ver.table.empty:
        return None, ver
    path = atomic_write(
        Path(out_dir) / "verification.csv",
        lambda p: ver.table.to_csv(p, index=False, float_format="%.10g"),
    )
    return path, ver


def observation_columns(result: Any) -> dict[str, np.ndarray]:
    """Columns added to observations.csv: calibration scale (as read and converted), the
    calibration error [ppm], the innovation d = y − H x_a [ppm], each observation's
    contribution dᵢ(S⁻¹d)ᵢ to the innovation χ² (expectation 1) and, with a transport
    ensemble, its 1σ transport-ensemble error ``transport_ensemble_ppm``.

    ``S⁻¹d = R⁻¹(y − H x̂)`` (since x̂ = x_a + B Hᵀ S⁻¹ d), so no extra solve is needed.
    """
    case, post = result.case, result.posterior
    d = case.y - case.H @ case.x_prior
    r = case.y - case.H @ post.mean
    alpha = np.asarray(case.R.inv_matvec(r), dtype=float)
    out = {
        **observation_scale_columns(case.obs),
        "innovation_ppm": d,
        "chi2_contribution": d * alpha,
    }
    from cityflux.stages import ENSEMBLE_VAR

    if ENSEMBLE_VAR in case.obs:  # 1σ transport error of the ensemble (diagonal of R_ens)
        out["transport_ensemble_ppm"] = np.sqrt((case.obs[ENSEMBLE_VAR].values ** 2).sum(axis=1))
    return out


def metrology_diagnostics(
    result: Any, budget: Budget | None, verification: Verification | None
) -> dict[str, Any]:
    """The metrology entries of diagnostics.json: calibration scales, the headline total's
    uncertainty (u, U, 95 % interval, budget shares) and the verification counts."""
    from cityflux.pipeline import headline_row

    out: dict[str, Any] = {
        "calibration_scales": scale_summary(
            result.case.obs, result.config.observation_errors.calibration_scale
        )
    }
    if budget is not None:
        h = headline_row(result.case.labels)
        s = budget.summary.iloc[h]
        shares = budget.table[budget.table["row"] == h].set_index("source")["share"]
        out["headline_uncertainty"] = {
            "row": int(h),
            "standard_uncertainty_t": float(s["standard_uncertainty_t"]),
            "expanded_uncertainty_k2_t": float(s["expanded_uncertainty_t"]),
            "coverage_95_t": [float(s["coverage_95_low_t"]), float(s["coverage_95_high_t"])],
            "distribution": "normal" if result.positivity is None else "lognormal",
            "budget_shares": {k: float(v) for k, v in shares.items()},
            "budget_closure_rel_max": float(budget.summary["closure_rel"].max()),
        }
    if verification is not None and not verification.table.empty:
        t = verification.table
        out["verification"] = {
            "n_scores": len(t),
            "n_En_unsatisfactory": int((~t["En_satisfactory"].astype(bool)).sum()),
            "n_zeta_unsatisfactory": int((~t["zeta_satisfactory"].astype(bool)).sum()),
            "inventories": sorted(set(t["inventory"])),
            "unmatched_rows": verification.unmatched,
        }
    return out


def write_figures_and_report(
    result: Any,
    out_dir: Path,
    posterior: xr.Dataset,
    observations: pd.DataFrame,
    diagnostics: dict,
    budget: Budget | None,
    verification: Verification | None,
    *,
    figures: bool,
    report: bool = True,
) -> dict[str, Path]:
    """Render the figures once; write them as PNG files (``figures``) and embed them in
    ``report.html`` (``report``)."""
    from cityflux.figures import RunView, render_figures, write_figures
    from cityflux.metrology._report import write_report

    view = RunView.from_outputs(
        result, posterior, observations, diagnostics,
        budget=None if budget is None else budget.table,
        verification=None if verification is None else verification.table,
    )  # fmt: skip
    figs = render_figures(view)
    paths = write_figures(figs, out_dir) if figures else {}
    if report:
        paths["report.html"] = write_report(view, out_dir, figs)
    return paths
