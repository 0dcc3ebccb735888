"""Bias state per site (``background.site_bias``): one unknown per site (or per site and UTC
day) added to the observations of that site, with prior mean 0 and std ``std_ppm``; and the
prior std of every extra block of the state (offsets, boundary curtains, site biases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from cityflux._config_hyper import SiteBiasConfig
from cityflux.config import CityfluxConfig

__all__ = ["BIAS_BLOCK", "extra_prior_std", "site_bias_block"]

#: Name of the state block of the per-site biases [ppm].
BIAS_BLOCK = "site_bias"


def site_bias_block(obs: xr.Dataset, cfg: SiteBiasConfig) -> tuple[sp.csr_array, list[str]] | None:
    """Indicator block (n_obs, n_bias) [ppm per ppm] of the bias state, and its labels.

    Labels are ``SITE`` (``per: constant``) or ``SITE@YYYY-MM-DD`` (``per: day``, UTC days);
    observations of kinds not in ``cfg.kinds`` have no bias (empty rows). None when
    ``per`` is ``none`` or no observation is of those kinds.
    """
    if cfg.per == "none":
        return None
    kinds = obs["kind"].values.astype(str)
    sel = np.isin(kinds, list(cfg.kinds))
    if not sel.any():
        return None
    label = obs["site"].values.astype(str).astype(object)
    if cfg.per == "day":
        day = pd.DatetimeIndex(obs["time"].values).strftime("%Y-%m-%d").to_numpy(dtype=object)
        label = label + "@" + day
    labels, col = np.unique(label[sel].astype(str), return_inverse=True)
    rows = np.flatnonzero(sel)
    block = sp.csr_array((np.ones(rows.size), (rows, col)), shape=(obs.sizes["obs"], labels.size))
    return block, [str(v) for v in labels]


def extra_prior_std(cfg: CityfluxConfig) -> dict[str, float]:
    """Prior std [ppm] of each extra block the configuration may add to the state."""
    from cityflux.stages._transport import BOUNDARY_BLOCK, OFFSET_BLOCK

    out = {
        OFFSET_BLOCK: cfg.background.offsets.std_ppm,
        BIAS_BLOCK: cfg.background.site_bias.std_ppm,
    }
    if cfg.transport.boundary is not None:
        out[BOUNDARY_BLOCK] = cfg.transport.boundary.std_ppm
    return out
