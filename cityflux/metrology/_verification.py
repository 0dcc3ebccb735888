"""Inventory verification: ζ and E_n scores (ISO 13528:2015 §9.6–9.7) of the posterior totals
against inventories with their own stated uncertainty.

For a posterior total x (standard uncertainty u_x) and an inventory total y (u_y),

    ζ   = (x − y) / u_d,          u_d² = u_x² + u_y² − 2 cov(x, y)
    E_n = (x − y) / (k u_d),      k = 2 (expanded uncertainties U = k u),

with |ζ| ≤ 2 and |E_n| ≤ 1 satisfactory (ISO 13528 §9.6.3, §9.7.3). For an independent
inventory cov = 0. The posterior is NOT independent of its prior: with the gain K,
x̂ − x_a = K (y − H x_a), so ``Var(aᵀx̂ − aᵀx_a) = (HBa)ᵀ S⁻¹ (HBa) = u_prior² − u_post²``
exactly (cov = u_post²); the run's own prior is scored with that. An inventory that only
shares data with the prior (one of several prior inventories) is scored as independent and
flagged: the score then overstates the agreement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cityflux import stages

__all__ = ["SCORE_COLUMNS", "Verification", "scores", "verify_totals"]

logger = logging.getLogger(__name__)

#: Columns of verification.csv.
SCORE_COLUMNS = (
    "inventory", "region", "sector", "period", "posterior_t", "posterior_u_t", "inventory_t",
    "inventory_u_t", "difference_t", "u_difference_t", "zeta", "En", "zeta_satisfactory",
    "En_satisfactory", "independent", "note",
)  # fmt: skip

#: Coverage factor of E_n (expanded uncertainties, ISO 13528 §9.7).
K_EN = 2.0

_PRIOR_NOTE = (
    "the run's prior: the posterior depends on it, scored with u_d² = u_prior² − u_post² "
    "(exact for the linear-Gaussian posterior)"
)


@dataclass(frozen=True)
class Verification:
    """Scores of every inventory against the totals.

    Attributes
    ----------
    table : pandas.DataFrame
        :data:`SCORE_COLUMNS`, one line per inventory and matched row of totals.csv [t CO2].
    unmatched : dict of str to list of str
        Inventory -> rows of its totals CSV that match no row of totals.csv.
    """

    table: pd.DataFrame
    unmatched: dict[str, list[str]] = field(default_factory=dict)


def scores(
    diff: Any, u_x: Any, u_y: Any, cov: Any = 0.0, k: float = K_EN
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ζ, E_n and u_d of differences ``diff = x − y`` (ISO 13528 §9.6, §9.7).

    Parameters
    ----------
    diff, u_x, u_y : array_like
        Difference and standard uncertainties [t CO2].
    cov : array_like
        Covariance of the errors of x and y [t CO2²] (0 when independent).
    k : float
        Coverage factor of the expanded uncertainties in E_n.

    Returns
    -------
    zeta, en, u_d : numpy.ndarray
        [1], [1], [t CO2].

    Raises
    ------
    ValueError
        If ``u_d²`` is not positive (the uncertainties cannot support a score).
    """
    u_x, u_y = np.asarray(u_x, float), np.asarray(u_y, float)
    var = u_x**2 + u_y**2 - 2.0 * np.asarray(cov, float)
    if not (np.asarray(var) > 0).all():
        raise ValueError(
            f"scores: the variance of the difference must be positive, found {var}; check the "
            "stated uncertainties"
        )
    u_d = np.sqrt(var)
    d = np.asarray(diff, float)
    return d / u_d, d / (k * u_d), u_d


def _score_frame(name, lab, post, u_post, inv, u_inv, cov, independent, note) -> pd.DataFrame:
    zeta, en, u_d = scores(post - inv, u_post, u_inv, cov)
    out = lab[["region", "sector", "period"]].reset_index(drop=True).copy()
    out.insert(0, "inventory", name)
    out["posterior_t"] = post
    out["posterior_u_t"] = u_post
    out["inventory_t"] = inv
    out["inventory_u_t"] = u_inv
    out["difference_t"] = post - inv
    out["u_difference_t"] = u_d
    out["zeta"] = zeta
    out["En"] = en
    out["zeta_satisfactory"] = np.abs(zeta) <= 2.0
    out["En_satisfactory"] = np.abs(en) <= 1.0
    out["independent"] = independent
    out["note"] = note
    return out


def _gridded_totals(inv: Any, result: Any) -> tuple[np.ndarray, np.ndarray]:
    """Totals [t CO2] of a gridded inventory for every row of totals.csv (NaN where its
    sectors do not cover the row), and whether each row is covered."""
    from cityflux.config import InventorySource, PriorConfig

    cfg, case = result.config, result.case
    prior = PriorConfig(
        inventories=(InventorySource(path=inv.path, format=inv.format, sector=inv.sector,
                                     options=dict(inv.options)),),
        temporal=cfg.prior.temporal,
    )  # fmt: skip
    flux, _ = stages.prior_flux(prior, case.grid, case.time)
    f = flux.transpose("sector", "time", "y", "x").values
    inv_sectors = [str(s) for s in flux["sector"].values]
    run_sectors = [str(s) for s in case.state.sectors]
    nf = case.state.n_flux
    W = sp.csr_array(case.weights)[:, :nf].toarray().reshape(-1, len(run_sectors), f[0].size)
    out = np.full(W.shape[0], np.nan)
    labels = case.labels.reset_index(drop=True)
    for r in range(W.shape[0]):
        sector = str(labels["sector"].iloc[r])
        if sector == "all":
            out[r] = W[r, 0] @ f.sum(axis=0).ravel()
        elif sector in inv_sectors and sector in run_sectors:
            out[r] = W[r, run_sectors.index(sector)] @ f[inv_sectors.index(sector)].ravel()
    return out, np.isfinite(out)


def _csv_totals(inv: Any, labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    path = Path(inv.totals)
    table = pd.read_csv(path, comment="#")
    need = {"region", "sector", "period", "total_t"}
    if inv.uncertainty_column:
        need.add(inv.uncertainty_column)
    missing = sorted(need - set(table.columns))
    if missing:
        raise KeyError(
            f"{path}: verification totals need columns {sorted(need)}; missing {missing} "
            f"(found {list(table.columns)})"
        )
    key = ["region", "sector", "period"]
    table[key] = table[key].astype(str)
    if table.duplicated(key).any():
        dup = table[table.duplicated(key, keep=False)][key].values.tolist()
        raise ValueError(f"{path}: rows repeat (region, sector, period): {dup[:5]}")
    lab = labels[key].astype(str).reset_index(drop=True)
    merged = lab.merge(table, on=key, how="left")
    total = merged["total_t"].to_numpy(float)
    unc = merged[inv.uncertainty_column].to_numpy(float) if inv.uncertainty_column else None
    matched = set(map(tuple, lab.values.tolist()))
    unmatched = ["/".join(r) for r in table[key].values.tolist() if tuple(r) not in matched]
    if unc is not None:
        bad = np.isfinite(total) & ~(unc > 0)
        if bad.any():
            raise ValueError(
                f"{path}: column {inv.uncertainty_column!r} must be > 0 [t CO2]; found "
                f"{unc[bad][:3].tolist()}"
            )
    return total, unc, unmatched


def verify_totals(result: Any) -> Verification:
    """Score the posterior totals against ``result.config.verification``'s inventories.

    Parameters
    ----------
    result : cityflux.pipeline.RunResult
        Uses ``totals`` (posterior, posterior_std, prior, prior_std [t CO2]), the case (grid,
        time, weights, labels) and the configuration.

    Returns
    -------
    Verification
    """
    cfg = result.config
    ver = cfg.verification
    totals = result.totals.reset_index(drop=True)
    labels = result.case.labels.reset_index(drop=True)
    post = totals["posterior"].to_numpy(float)
    u_post = totals["posterior_std"].to_numpy(float)
    frames, unmatched = [], {}
    if ver.include_prior:
        u_prior = totals["prior_std"].to_numpy(float)
        frames.append(
            _score_frame(
                "prior",
                labels,
                post,
                u_post,
                totals["prior"].to_numpy(float),
                u_prior,
                u_post**2,
                False,
                _PRIOR_NOTE,
            )
        )
    prior_paths = {Path(i.path).resolve() for i in cfg.prior.inventories}
    for inv in ver.inventories:
        if inv.path is not None:
            total, rows = _gridded_totals(inv, result)
            unc = None
        else:
            total, unc, extra = _csv_totals(inv, labels)
            rows = np.isfinite(total)
            if extra:
                unmatched[inv.name] = extra
                logger.warning(
                    "verification: %d row(s) of %s match no total of this run and are not "
                    "scored: %s", len(extra), inv.totals, extra[:5],
                )  # fmt: skip
        if not rows.any():
            logger.warning("verification: inventory %r covers no row of totals.csv", inv.name)
            continue
        u_inv = (
            inv.relative_uncertainty * np.abs(total) if unc is None else unc
        ) / inv.coverage_factor
        shares = inv.is_prior
        if shares is None:
            shares = inv.path is not None and Path(inv.path).resolve() in prior_paths
        cov = np.zeros_like(total)
        note, independent = "independent of the run's prior", True
        if shares:
            prior = totals["prior"].to_numpy(float)
            same = np.allclose(total[rows], prior[rows], rtol=1e-9, atol=0.0)
            independent = False
            if same:
                u_inv = totals["prior_std"].to_numpy(float)
                cov = u_post**2
                note = f"{_PRIOR_NOTE}; the stated uncertainty is replaced by the prior's"
            else:
                note = (
                    "NOT independent: shares data with the run's prior but is not the whole "
                    "prior; scored as independent, which overstates the agreement"
                )
        r = np.flatnonzero(rows)
        frames.append(
            _score_frame(
                inv.name,
                labels.iloc[r],
                post[r],
                u_post[r],
                total[r],
                u_inv[r],
                cov[r],
                independent,
                note,
            )
        )
    table = (
        pd.concat(frames, ignore_index=True)[list(SCORE_COLUMNS)]
        if frames
        else pd.DataFrame(columns=list(SCORE_COLUMNS))
    )
    return Verification(table=table, unmatched=unmatched)
