"""Totals stage: aggregation weights of the domain and of region polygons [t CO2], and the
totals table (prior, posterior, 1-sigma and k=2 expanded uncertainty)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

import priors
from cityflux._config_real import RegionsConfig
from inversion import Grid, StateVector

__all__ = ["aggregation_rows", "region_fractions", "totals_table"]

#: Coverage factor of the expanded uncertainty (GUM, about 95 %).
K_EXPANDED = 2.0


def region_fractions(cfg: RegionsConfig, grid: Grid) -> xr.DataArray:
    """(region, y, x) cell fractions [1] of the region polygons (``priors.region_weights``)."""
    return priors.region_weights(cfg.path, grid, name_column=cfg.name_column)


def _period_label(state: StateVector) -> str:
    fmt = "%Y-%m-%dT%H:%MZ"
    t0, t1 = (pd.Timestamp(t).strftime(fmt) for t in state.time.period)
    return f"{t0}/{t1}"


def aggregation_rows(
    state: StateVector, regions: xr.DataArray | None, by_sector: bool, by_day: bool
) -> tuple[sp.csr_array, pd.DataFrame]:
    """Weights (k, n_state) [t CO2 per state unit] and labels (region, sector, period).

    Rows: the domain total, the domain per sector (several sectors), then per region (all
    sectors), per region and sector (``by_sector``) and per region and UTC day (``by_day``).
    """
    grid = state.grid
    ones = xr.DataArray(
        np.ones((1, *grid.shape)), dims=("region", "y", "x"),
        coords={"region": ["domain"], **grid.coords()},
    )  # fmt: skip
    specs = [(ones, False, False)]
    if len(state.sectors) > 1:
        specs.append((ones, True, False))
    if regions is not None:
        specs.append((regions, False, False))
        if by_sector and len(state.sectors) > 1:
            specs.append((regions, True, False))
        if by_day:
            specs.append((regions, False, True))
    mats, labels = [], []
    whole = _period_label(state)
    for fr, by_sector, by_day in specs:
        agg = priors.aggregation_weights(state, fr, by_sector=by_sector, by_day=by_day)
        mats.append(agg.matrix)
        lab = agg.labels.rename(columns={"day": "period"})
        lab["period"] = lab["period"].where(lab["period"] != "all", whole)
        labels.append(lab)
    return sp.csr_array(sp.vstack(mats, format="csr")), pd.concat(labels, ignore_index=True)


def totals_table(
    post: Any, B: Any, x_prior: np.ndarray, W: sp.csr_array, labels: pd.DataFrame,
    x_truth: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """Prior and posterior totals [t CO2] with their covariance.

    Returns
    -------
    totals : pandas.DataFrame
        ``row`` (index into the covariance), ``region``, ``sector``, ``period``, ``prior``,
        ``prior_std``, ``posterior``, ``posterior_std``, ``posterior_expanded_uncertainty_k2``
        (k = 2) [t CO2] and ``truth`` when known.
    covariance : numpy.ndarray
        (k, k) posterior covariance of the totals [t CO2²] (``Posterior.aggregate_cov``).
    """
    prior = np.asarray(W @ x_prior).ravel()
    Wd = W.toarray()
    prior_std = np.sqrt(np.einsum("ij,ji->i", Wd, B @ Wd.T))
    mean, cov = post.aggregate_cov(W)
    out = labels.copy()
    out.insert(0, "row", np.arange(len(out)))
    out["prior"] = prior
    out["prior_std"] = prior_std
    out["posterior"] = np.asarray(mean, float)
    out["posterior_std"] = np.sqrt(np.diag(cov))
    out["posterior_expanded_uncertainty_k2"] = K_EXPANDED * out["posterior_std"]
    if x_truth is not None:
        out["truth"] = np.asarray(W @ x_truth).ravel()
    return out, cov
