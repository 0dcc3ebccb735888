"""Consistency diagnostics that find what the global χ² misses: per site and per kind.

All come from the innovations ``d = y − H x_a`` and their covariance ``S = H B Hᵀ + R``
(``Posterior.solve_innovation_covariance``), so they cost a few solves with ``S``:

- **Leave-one-group-out cross-validation** (a group is a site, or a kind): the observations of
  group g predicted from all the others. For Gaussian innovations the prediction error and its
  covariance follow from ``P = S⁻¹`` alone (no re-solve): ``r_g = P_gg⁻¹ (P d)_g`` and
  ``C_g = P_gg⁻¹``. The statistic ``χ²_g = r_gᵀ C_g⁻¹ r_g = (P d)_gᵀ P_gg⁻¹ (P d)_g`` follows a
  χ² distribution with ``n_g`` degrees of freedom when B and R are right: ``χ²_g / n_g`` has mean
  1 and sd ``sqrt(2 / n_g)``; its p-value is exact. A group is flagged when its p-value is below
  ``level / n_groups`` (Bonferroni: the chance that ANY group of a consistent network is flagged
  is at most ``level``). The coverage of the withheld observations' 95 % predictive intervals
  ``|r_i| <= 1.96 sqrt(C_g,ii)`` is reported too.
- **Desroziers et al. (2005)** per kind: ``E[(y − H x̂) dᵀ] = R`` and ``E[(H x̂ − H x_a) dᵀ] =
  H B Hᵀ``; with ``y − H x̂ = R S⁻¹ d`` and ``H x̂ − H x_a = d − R S⁻¹ d``, the ratios of the
  estimated to the assumed diagonals (mean over the observations of a kind) should be near 1.
  They are noisy for one realisation (use many observations, or the OSSE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
from scipy import special

__all__ = [
    "GroupStatistics",
    "desroziers",
    "group_statistics",
    "innovation_precision",
    "site_and_kind_diagnostics",
]

logger = logging.getLogger(__name__)

#: Family-wise false-alarm rate of the per-group flags.
DEFAULT_LEVEL = 0.05


@dataclass(frozen=True, eq=False)
class GroupStatistics:
    """Leave-one-group-out statistics of one grouping (sites or kinds), for m innovation vectors.

    Attributes
    ----------
    labels : numpy.ndarray of str
        (G,) group labels.
    n : numpy.ndarray of int
        (G,) observations per group.
    chi2 : numpy.ndarray
        (G, m) χ²_g of each group and innovation vector.
    coverage_95 : numpy.ndarray
        (G, m) share of the group's observations inside their 95 % predictive intervals.
    bias : numpy.ndarray
        (G, m) generalised-least-squares estimate of a constant offset of the group's
        observations relative to what the others predict [ppm]:
        ``b̂ = 1ᵀ (P d)_g / 1ᵀ P_gg 1``.
    bias_sd : numpy.ndarray
        (G,) its standard deviation when B and R are right, ``1 / sqrt(1ᵀ P_gg 1)`` [ppm].
    """

    labels: np.ndarray
    n: np.ndarray
    chi2: np.ndarray
    coverage_95: np.ndarray
    bias: np.ndarray
    bias_sd: np.ndarray

    def p_value(self) -> np.ndarray:
        """(G, m) upper-tail p-values of χ²_g under χ²(n_g)."""
        return special.chdtrc(self.n[:, None], self.chi2)

    def bias_p_value(self) -> np.ndarray:
        """(G, m) two-sided p-values of ``b̂ / sd`` under N(0, 1)."""
        return 2.0 * special.ndtr(-np.abs(self.bias) / self.bias_sd[:, None])

    def flagged(self, level: float = DEFAULT_LEVEL) -> np.ndarray:
        """(G, m) bool: the χ² or the offset p-value below ``level / (2 G)`` (Bonferroni over
        the groups and the two tests: a consistent network raises a flag with probability at
        most ``level``)."""
        cut = level / (2 * max(len(self.labels), 1))
        return (self.p_value() < cut) | (self.bias_p_value() < cut)


#: Largest number of observations for which S⁻¹ is formed once (n_obs² doubles) and sliced
#: for every group, instead of one solve per group.
MAX_DENSE_INVERSE = 6_000


def innovation_precision(post: Any) -> np.ndarray | None:
    """``P = S⁻¹`` (n_obs, n_obs) [1/ppm²] when it is small enough to hold, else None."""
    if post.n_obs > MAX_DENSE_INVERSE:
        return None
    P = post.solve_innovation_covariance(np.eye(post.n_obs))
    return 0.5 * (P + P.T)


def group_statistics(
    post: Any, groups: np.ndarray, D: np.ndarray | None = None, P: np.ndarray | None = None
) -> GroupStatistics:
    """Leave-one-group-out χ² and predictive coverage of each group (see the module docstring).

    Parameters
    ----------
    post : inversion.Posterior
        Posterior of the run (its factorisation of S is reused).
    groups : numpy.ndarray
        (n_obs,) group label of each observation (site, kind, ...).
    D : numpy.ndarray, optional
        (n_obs,) or (n_obs, m) innovation vectors ``y − H x_a`` [ppm]; default the run's own.
    P : numpy.ndarray, optional
        ``S⁻¹`` (:func:`innovation_precision`), to reuse between groupings; without it each
        group takes one solve with S.

    Returns
    -------
    GroupStatistics

    Raises
    ------
    ValueError
        If ``groups`` does not have one label per observation.
    """
    groups = np.asarray(groups).astype(str)
    if groups.shape != (post.n_obs,):
        raise ValueError(f"groups: expected {post.n_obs} labels, found shape {groups.shape}")
    D = post.innovation if D is None else np.asarray(D, float)
    D = D[:, None] if D.ndim == 1 else D
    PD = post.solve_innovation_covariance(D) if P is None else P @ D
    labels, inverse = np.unique(groups, return_inverse=True)
    chi2 = np.empty((labels.size, D.shape[1]))
    cover, bias = np.empty_like(chi2), np.empty_like(chi2)
    bias_sd = np.empty(labels.size)
    for g in range(labels.size):
        idx = np.flatnonzero(inverse == g)
        if P is None:
            E = np.zeros((post.n_obs, idx.size))
            E[idx, np.arange(idx.size)] = 1.0
            P_gg = post.solve_innovation_covariance(E)[idx]
            P_gg = 0.5 * (P_gg + P_gg.T)
        else:
            P_gg = P[np.ix_(idx, idx)]
        fac = scipy.linalg.cho_factor(P_gg, lower=True, check_finite=False)
        r = scipy.linalg.cho_solve(fac, PD[idx], check_finite=False)  # prediction errors
        chi2[g] = np.einsum("ij,ij->j", PD[idx], r)
        info = P_gg.sum()  # 1ᵀ P_gg 1
        bias[g] = PD[idx].sum(axis=0) / info
        bias_sd[g] = 1.0 / np.sqrt(info)
        c_diag = np.diag(scipy.linalg.cho_solve(fac, np.eye(idx.size), check_finite=False))
        cover[g] = np.mean(np.abs(r) <= 1.96 * np.sqrt(c_diag)[:, None], axis=0)
    return GroupStatistics(
        labels=labels, n=np.bincount(inverse), chi2=chi2, coverage_95=cover, bias=bias,
        bias_sd=bias_sd,
    )  # fmt: skip


def desroziers(post: Any, R: Any, kinds: np.ndarray) -> pd.DataFrame:
    """Desroziers ratios per kind: estimated / assumed R and H B Hᵀ (mean diagonals) [1].

    Parameters
    ----------
    post : inversion.Posterior
    R : covariance operator
        The assumed observation error covariance (n_obs²) [ppm²].
    kinds : numpy.ndarray
        (n_obs,) kind of each observation.

    Returns
    -------
    pandas.DataFrame
        ``kind``, ``n``, ``r_ratio``, ``hbh_ratio`` (NaN where ``diag(S)`` is not available).
    """
    d = post.innovation
    R_diag = np.asarray(R.diag(), float)
    resid = np.asarray(R @ post.solve_innovation_covariance(d)).ravel()  # y − H x̂ = R S⁻¹ d
    try:
        hbh = post.innovation_covariance_diag() - R_diag
    except NotImplementedError:
        hbh = np.full(d.size, np.nan)
    rows = []
    for k in dict.fromkeys(np.asarray(kinds).astype(str)):
        sel = kinds == k
        rows.append(
            {
                "kind": k,
                "n": int(sel.sum()),
                "r_ratio": float(np.mean(resid[sel] * d[sel]) / np.mean(R_diag[sel])),
                "hbh_ratio": float(np.mean((d[sel] - resid[sel]) * d[sel]) / np.mean(hbh[sel])),
            }
        )
    return pd.DataFrame(rows)


def _table(st: GroupStatistics, level: float) -> list[dict[str, Any]]:
    p, pb = st.p_value()[:, 0], st.bias_p_value()[:, 0]
    flag = st.flagged(level)[:, 0]
    return [
        {
            "group": str(st.labels[g]),
            "n": int(st.n[g]),
            "chi2_per_n": float(st.chi2[g, 0] / st.n[g]),
            "expected_sd": float(np.sqrt(2.0 / st.n[g])),
            "p_value": float(p[g]),
            "offset_ppm": float(st.bias[g, 0]),
            "offset_sd_ppm": float(st.bias_sd[g]),
            "offset_p_value": float(pb[g]),
            "flagged": bool(flag[g]),
            "loo_coverage_95": float(st.coverage_95[g, 0]),
        }
        for g in range(st.labels.size)
    ]


def site_and_kind_diagnostics(case: Any, post: Any, level: float = DEFAULT_LEVEL) -> dict:
    """Per-site and per-kind consistency of a run (for diagnostics.json).

    Returns
    -------
    dict
        ``sites`` and ``kinds`` (leave-one-group-out χ²/n with its expected sd, exact p-value,
        Bonferroni flag at ``level``, predictive coverage), ``desroziers`` per kind, and
        ``level``. Flagged groups are logged as warnings.
    """
    sites = case.obs["site"].values.astype(str)
    kinds = case.obs["kind"].values.astype(str)
    out: dict[str, Any] = {"level": level}
    P = innovation_precision(post)
    for name, groups in (("sites", sites), ("kinds", kinds)):
        if np.unique(groups).size < 2:
            out[name] = []  # one group: its statistic is the global χ²
            continue
        rows = _table(group_statistics(post, groups, P=P), level)
        out[name] = rows
        for r in rows:
            if r["flagged"]:
                logger.warning(
                    "%s %r: its observations disagree with what the others predict given B and "
                    "R: leave-one-out chi2/n = %.2f (expected 1 ± %.2f, p = %.2g), offset "
                    "%.2f ± %.2f ppm (p = %.2g); check it for a bias or a wrong error. A "
                    "consistent network raises a flag for one of its %d %s in %.0f %% of runs "
                    "(family-wise level)",
                    name[:-1], r["group"], r["chi2_per_n"], r["expected_sd"], r["p_value"],
                    r["offset_ppm"], r["offset_sd_ppm"], r["offset_p_value"],
                    len(rows), name, 100 * level,
                )  # fmt: skip
    out["desroziers"] = desroziers(post, case.R, kinds).to_dict(orient="records")
    return out
