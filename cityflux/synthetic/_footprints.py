"""Synthetic footprint files: the synthetic city's transport written as a Lagrangian model would.

With ``transport.model: footprints`` the synthetic city samples its observations by receptors
(``transport_models.sample_receptors`` with ``transport.sampling``, as ``cityflux receptors``
does), computes each receptor's footprint with the built-in Gaussian plume model (a point
receptor at the sample's height, the hour of the observation as one back-layer), and writes
them in the cityflux footprint layout, one file per hour with a receptor dimension. The case
then reads them through the footprint path of a real run (matching, weights, time binning).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import transport_models
from inversion import Grid, TimeAxis
from observations import make_observation_set

__all__ = ["write_synthetic_footprints"]

logger = logging.getLogger(__name__)


def write_synthetic_footprints(
    obs: xr.Dataset,
    grid: Grid,
    time: TimeAxis,
    met: transport_models.PlumeMet,
    transport: object,
    folder: Path,
) -> list[Path]:
    """Write plume-model footprints for every receptor sample of ``obs`` into ``folder``.

    Parameters
    ----------
    obs : xarray.Dataset
        The synthetic ObservationSet.
    grid, time : Grid, TimeAxis
        State grid and bins (the footprints are on the state grid).
    met : transport_models.PlumeMet
        The meteorology of the plume model.
    transport : cityflux.config.TransportConfig
        ``sampling``, ``surface_altitude_m``, ``dispersion``, ``cell_model``, ``subcell``.
    folder : pathlib.Path
        Where the files go (created; ``synthetic_fp_YYYYmmddTHH.nc``).

    Returns
    -------
    list of pathlib.Path
        The files written, in time order.
    """
    samples = transport_models.sample_receptors(obs, transport.sampling_options())
    table = samples.to_dataframe()
    points = make_observation_set(
        np.zeros(len(table)),
        table["time"].to_numpy(),
        "tower",
        table["site"].astype(str).to_numpy(),
        table["lat"].to_numpy(),
        table["lon"].to_numpy(),
        table["height_agl"].to_numpy(),
        errors={"instrument": 1.0},
    )
    options = transport_models.PlumeOptions(
        cell_model=transport.cell_model, subcell=transport.subcell
    )
    maps = transport_models.footprint(
        points, grid, time, met, dispersion=transport.dispersion, options=options
    ).values  # (n_sample, ny, nx) [ppm per (µmol m-2 s-1)]
    hour = pd.DatetimeIndex(table["time"]).floor("h")
    crs = grid.crs.to_wkt()
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for h in np.unique(hour):
        sel = np.flatnonzero(hour == h)
        t = table.iloc[sel]
        with warnings.catch_warnings():
            # plume footprints are exactly 0 above the mixing layer and upwind: not lost particles
            warnings.simplefilter("ignore", transport_models.FootprintWarning)
            fp = transport_models.build_footprint(
                maps[sel][:, None].astype(np.float32),
                x=grid.x, y=grid.y, crs=crs, time=np.array([h], "datetime64[ns]"),
                layer_seconds=3600.0,
                receptor={
                    "time": t["time"].to_numpy().astype("datetime64[ns]"),
                    "lat": t["lat"].to_numpy(), "lon": t["lon"].to_numpy(),
                    "height": t["height_agl"].to_numpy(),
                    "kind": t["kind"].astype(str).to_numpy(), "id": t["id"].astype(str).to_numpy(),
                },
                path=folder, fmt="cityflux",
            )  # fmt: skip
        name = pd.Timestamp(h).strftime("synthetic_fp_%Y%m%dT%H.nc")
        files.append(transport_models.write_footprint(fp, folder / name))
    logger.info(
        "synthetic footprints: %d receptors in %d files in %s", len(table), len(files), folder
    )
    return files
