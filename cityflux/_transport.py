"""Observation operator of the synthetic city: flux block from the plume model, plus background.

``flux_operator`` builds the (n_obs, n_flux) sensitivity of an ObservationSet with the
Gaussian plume model of :mod:`transport_models.plume`; ``background_operator`` adds one column
per background offset (one per observation kind).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from cityflux.config import TransportConfig
from inversion import Grid, StateVector, TimeAxis
from transport_models import plume

__all__ = ["background_operator", "flux_operator"]

logger = logging.getLogger(__name__)


def flux_operator(
    obs: xr.Dataset,
    grid: Grid,
    time: TimeAxis,
    met: xr.Dataset,
    sectors: tuple[str, ...],
    transport: TransportConfig,
) -> sp.csr_array:
    """Sensitivity of the observations to the flux block (n_obs, n_sector·nt·ny·nx).

    [ppm per (µmol m-2 s-1)], from the built-in Gaussian plume model with the dispersion
    scheme and cell model of the ``transport`` section.
    """
    met_obj = plume.PlumeMet(
        times=met["time"].values,
        wind_speed=met["wind_speed"].values,
        wind_direction=met["wind_direction"].values,
        boundary_layer_height=met["blh"].values,
        stability=met["stability"].values.astype(str),
    )
    options = plume.PlumeOptions(cell_model=transport.cell_model, subcell=transport.subcell)
    return sp.csr_array(
        plume.plume_operator(
            obs, grid, time, met_obj, sectors=len(sectors),
            dispersion=transport.dispersion, options=options,
        )
    )  # fmt: skip


def background_operator(obs: xr.Dataset, state: StateVector) -> sp.csr_array:
    """(n_obs, n_state) matrix mapping the ``background`` block to the observations [ppm ppm-1].

    Observation i gets the offset labelled by its ``kind``.
    """
    block = state.blocks["background"]
    labels = list(block.labels or ())
    kind = obs["kind"].values.astype(str)
    missing = sorted(set(kind) - set(labels))
    if missing:
        raise ValueError(
            f"background block labels {labels} do not cover observation kinds {missing}; "
            "add one background offset per observation kind"
        )
    col = block.start + pd.Index(labels).get_indexer(kind)
    n = kind.size
    return sp.csr_array((np.ones(n), (np.arange(n), col)), shape=(n, state.size))
