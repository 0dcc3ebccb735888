"""Figure of the estimated hyperparameters: the profile log-likelihood of each one, with the
quadratic (Gaussian) approximation from the observed information that the propagation uses,
the 95 % threshold, the estimate and the configured value."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = ["HALF_CHI2_95", "profile_figure"]

#: Drop of the log-likelihood at the edges of a 95 % profile interval, χ²₁(0.95) / 2.
HALF_CHI2_95 = 1.920729410347062


def profile_figure(section: dict[str, Any]) -> bytes | None:
    """PNG of the profile likelihoods in the ``hyperparameters`` section of diagnostics.json.

    Returns None when the section holds no profile (``profile_points: 0``).
    """
    prof = section.get("profile") or {}
    if not prof:
        return None
    configured = {p["name"]: p["configured"] for p in section.get("parameters", [])}
    n = len(prof)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.0 * cols, 3.2 * rows), layout="constrained")
    for i, (name, p) in enumerate(prof.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        x = np.asarray(p["values"], float)
        ll = np.asarray(p["loglik"], float) - float(p["loglik_max"])
        ax.plot(x, ll, "o-", color="#1f77b4", ms=3, label="profile")
        se = p.get("log_std_error")
        if se:
            xs = np.geomspace(x.min(), x.max(), 200)
            quad = -0.5 * (np.log(xs / p["estimate"]) / se) ** 2
            ax.plot(xs, quad, "--", color="#ff7f0e", label="Gaussian (observed information)")
        ax.axhline(-HALF_CHI2_95, color="0.5", lw=0.8, ls=":", label="95 % threshold")
        ax.axvline(p["estimate"], color="#d62728", lw=1.0, label="estimate")
        if name in configured:
            ax.axvline(configured[name], color="k", lw=0.8, ls="--", label="configured")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_ylim(max(float(np.nanmin(ll)), -8.0) - 0.3, 0.5)
        ax.set_xlabel(f"{name} [{p['unit']}]")
        ax.set_ylabel(f"{p.get('objective', 'log-likelihood')} − max", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6, loc="lower center")
    fig.suptitle(
        f"hyperparameters ({section.get('objective', 'ml')}, {section.get('method', '')}): "
        "profile of the objective"
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
