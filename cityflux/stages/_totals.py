"""Totals stage: aggregation weights of the domain and of region polygons [t CO2], and the
totals table (prior, posterior, 1-sigma and k=2 expanded uncertainty)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

import priors
from cityflux._config_real import RegionsConfig
from inversion import StateVector

__all__ = ["aggregation_rows", "region_fractions", "totals_table"]

#: Coverage factor of the expanded uncertainty (GUM, about 95 %).
K_EXPANDED = 2.0


def region_fractions(cfg: RegionsConfig | None, state: StateVector) -> xr.DataArray | None:
    """(region, y, x) cell fractions of the region polygons (``priors.region_weights``)."""
    if cfg is None:
        return None
    return priors.region_weights(cfg.path, state.grid, name_column=cfg.name_column)


def _period_label(state: StateVector) -> str:
    fmt = "%Y-%m-%dT%H:%MZ"
    t0, t1 = (pd.Timestamp(t).strftime(fmt) for t in state.time.period)
    return f"{t0}/{t1}"


def aggregation_rows(
    state: StateVector, regions: xr.DataArray | None, cfg: RegionsConfig | None
) -> tuple[sp.csr_array, pd.DataFrame]:
    """Weights (k, n_state) [t CO2 per state unit] and labels (region, sector, period).

    Rows: the domain total, the domain per sector (several sectors), then per region (all
    sectors), per region and sector (``by_sector``) and per region and day (``by_day``).
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
        if cfg.by_sector and len(state.sectors) > 1:
            specs.append((regions, True, False))
        if cfg.by_day:
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
    post, B, x_prior: np.ndarray, W: sp.csr_array, labels: pd.DataFrame
) -> pd.DataFrame:
    """Prior and posterior totals [t CO2] with 1-sigma and k=2 expanded uncertainties."""
    prior = np.asarray(W @ x_prior).ravel()
    Wd = W.toarray()
    prior_std = np.sqrt(np.einsum("ij,ji->i", Wd, B @ Wd.T))
    mean, std = post.aggregate(W)
    out = labels.copy()
    out["prior"] = prior
    out["prior_std"] = prior_std
    out["posterior"] = np.asarray(mean, float)
    out["posterior_std"] = np.asarray(std, float)
    out["posterior_expanded_uncertainty_k2"] = K_EXPANDED * out["posterior_std"]
    return out
