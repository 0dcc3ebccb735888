"""Matching footprint receptors to observations, and the one-call ``assemble_h``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from scipy.spatial import cKDTree

from inversion.state import StateVector
from transport_models.footprints import FootprintError

from ._assemble import AssemblyReport, assemble_receptors

__all__ = ["assemble_h", "match_receptors"]


def match_receptors(
    receptors: pd.DataFrame,
    obs: xr.Dataset,
    *,
    time_tolerance: str | pd.Timedelta = "1min",
    position_tolerance: float = 1e-3,
) -> np.ndarray:
    """Observation index of each receptor (same time and position within tolerances).

    Receptor and observation are matched when ``|Δt| <= time_tolerance`` and both
    ``|Δlat|`` and ``|Δlon|`` are ``<= position_tolerance`` [degrees]; the nearest such
    observation (Chebyshev distance in tolerance units) wins. Heights are not compared.

    Parameters
    ----------
    receptors : pandas.DataFrame
        With ``time``, ``lat``, ``lon`` (and ``file``, ``id`` for messages).
    obs : xarray.Dataset
        Observation set with ``time``, ``lat``, ``lon`` along ``obs``.

    Returns
    -------
    numpy.ndarray of int
        (n_receptor,) observation index.

    Raises
    ------
    FootprintError
        If a receptor matches no observation.
    """
    for v in ("time", "lat", "lon"):
        if v not in obs.variables:
            raise KeyError(f"obs: variable {v!r} is missing; expected time, lat, lon along 'obs'")
    tol = pd.Timedelta(time_tolerance).total_seconds()
    ot = obs["time"].values.astype("datetime64[ns]")
    ref = ot.min() if ot.size else np.datetime64("1970-01-01", "ns")

    def scaled(t: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        secs = (np.asarray(t, "datetime64[ns]") - ref) / np.timedelta64(1, "s")
        return np.column_stack(
            [secs / tol, np.asarray(lat, float) / position_tolerance, lon / position_tolerance]
        )

    tree = cKDTree(scaled(ot, obs["lat"].values, np.asarray(obs["lon"].values, float)))
    rt = receptors["time"].to_numpy().astype("datetime64[ns]")
    q = scaled(rt, receptors["lat"].to_numpy(), receptors["lon"].to_numpy(float))
    dist, idx = tree.query(q, p=np.inf, distance_upper_bound=1.0 + 1e-9)
    miss = ~np.isfinite(dist)
    if miss.any():
        bad = receptors[miss].head(5)
        listing = "; ".join(
            f"{r.get('file', '?')} receptor {r.get('id', '?')} at {r['time']} "
            f"({r['lat']:.4f}, {r['lon']:.4f})"
            for _, r in bad.iterrows()
        )
        raise FootprintError(
            f"{int(miss.sum())} footprint receptor(s) match no observation within "
            f"{time_tolerance} and {position_tolerance} deg: {listing}; check the receptor "
            "times/positions or widen the tolerances"
        )
    return idx.astype(np.int64)


def assemble_h(
    footprints: Sequence[str | Path | xr.DataArray],
    state: StateVector,
    obs: xr.Dataset | None = None,
    *,
    time_tolerance: str = "1min",
    position_tolerance: float = 1e-3,
    **kwargs: Any,
) -> tuple[sp.csr_array, AssemblyReport]:
    """Observation operator ``H`` (n_obs × state.size) from footprint files.

    Without ``obs`` the rows are the receptors in file order. With ``obs`` every observation
    must match exactly one receptor (point observations); for columns and lidar use
    :func:`assemble_receptors` and the row operators.

    Parameters
    ----------
    footprints : sequence of path or xarray.DataArray
        Footprint files.
    state : StateVector
    obs : xarray.Dataset, optional
        Observation set (dim ``obs``; ``time``, ``lat``, ``lon``).
    **kwargs
        Passed to :func:`assemble_receptors` (threshold, scheduler, cache_dir, ...).

    Returns
    -------
    H : scipy.sparse.csr_array
        [ppm per (µmol m-2 s-1)] for the flux block; zero in extra blocks.
    report : AssemblyReport
    """
    op = assemble_receptors(footprints, state, **kwargs)
    if obs is None:
        return op.H, op.report
    idx = match_receptors(
        op.receptors, obs, time_tolerance=time_tolerance, position_tolerance=position_tolerance
    )
    n_obs = obs.sizes["obs"]
    counts = np.bincount(idx, minlength=n_obs)
    if (counts != 1).any():
        o = int(np.flatnonzero(counts != 1)[0])
        raise FootprintError(
            f"observation {o} (time {obs['time'].values[o]}) matches {counts[o]} receptors; "
            f"{int((counts == 0).sum())} observation(s) have no footprint and "
            f"{int((counts > 1).sum())} have several — provide one footprint per point "
            "observation, or combine levels/samples with column_operator / lidar operators"
        )
    p = sp.csr_array((np.ones(idx.size), (idx, np.arange(idx.size))), shape=(n_obs, idx.size))
    return sp.csr_array(p @ op.H), op.report
