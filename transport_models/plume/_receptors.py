"""Receptors of the plume model: the receptor samples of an ObservationSet in the metric frame.

The samples come from :func:`transport_models.sample_receptors`, the one sampling design shared
with footprint matching (towers one point, columns their levels, lidar chords and range
segments points along the beam; heights above ground from the surface altitude). Here they are
placed in the plume's metric frame; column levels become layers ``[za, zb]`` above ground
(``z = H ln(p_s / p)`` of their pressure interval, ``H = R_d T / g`` with the met hour's surface
temperature) over which the kernel integrates the plume (:mod:`._kernels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from inversion.grid import Grid
from inversion.state import TimeAxis
from transport_models.operator._sampling import SamplingOptions, obs_labels, sample_receptors

from ._frame import MetricFrame
from ._met import PlumeMet

__all__ = ["ReceptorPoints", "build_receptors"]


@dataclass(frozen=True, eq=False)
class ReceptorPoints:
    """Receptor sample points of a set of observations (rows)."""

    x: np.ndarray  # (n_point,) [m]
    y: np.ndarray  # (n_point,) [m]
    z: np.ndarray  # (n_point,) [m above ground]
    za: np.ndarray  # (n_point,) layer bottom [m above ground]; NaN for points
    zb: np.ndarray  # (n_point,) layer top [m above ground], may be inf; NaN for points
    hs: np.ndarray  # (n_point,) scale height of layers [m]; NaN for points
    w: np.ndarray  # (n_point,) [1]
    ptr: np.ndarray  # (n_obs + 1,)
    state_bin: np.ndarray  # (n_obs,) index into the TimeAxis
    hour: np.ndarray  # (n_obs,) index into the PlumeMet records

    @property
    def n_obs(self) -> int:
        """Number of observations (rows)."""
        return int(self.ptr.size - 1)


def build_receptors(
    obs: xr.Dataset,
    grid: Grid,
    frame: MetricFrame,
    time: TimeAxis,
    met: PlumeMet,
    options: SamplingOptions,
) -> ReceptorPoints:
    """Receptor samples of ``obs`` in the plume frame, with their state bin and met hour.

    Raises
    ------
    ValueError
        Empty set, time outside the state axis or the met hours, sample outside the grid, and
        everything :func:`transport_models.sample_receptors` refuses; the message names the
        observations (index, site, kind).
    KeyError
        A variable needed by a kind is missing.
    """
    if "obs" not in obs.dims or obs.sizes["obs"] == 0:
        raise ValueError(
            "obs: the receptor set is empty (no 'obs' entries); nothing to compute a footprint for"
        )
    if "time" not in obs:
        raise KeyError("obs: variable 'time' is missing")
    times = obs["time"].values
    state_bin = time.index(times)
    bad = np.flatnonzero(state_bin < 0)
    if bad.size:
        raise ValueError(
            f"obs: {bad.size} observation time(s) outside the state time axis "
            f"[{time.edges[0]}, {time.edges[-1]}): {obs_labels(obs, bad)} at {times[bad][:3]}; "
            "select the observations of the inversion period first"
        )
    hour = met.hour_index(times)
    bad = np.flatnonzero(hour < 0)
    if bad.size:
        raise ValueError(
            f"met: no hourly record covers the hour of {bad.size} observation(s): "
            f"{obs_labels(obs, bad)} at {times[bad][:3]}; met hours span "
            f"[{met.times[0]}, {met.times[-1]} + 1 h); supply met for these hours"
        )
    s = sample_receptors(obs, options, temperature=met.temperature[hour])
    iy, _ = grid.index_lonlat(s.lon, s.lat)
    bad = np.unique(s.obs[(iy < 0) | ~np.isfinite(s.lon) | ~np.isfinite(s.lat)])
    if bad.size:
        raise ValueError(
            f"obs: {bad.size} observation(s) have receptor samples outside the grid: "
            f"{obs_labels(obs, bad)}; grid bounds {grid.bounds} in {grid.crs.name!r}. "
            "Drop them or enlarge the grid"
        )
    x, y = frame.from_lonlat(s.lon, s.lat)
    layer = np.isfinite(s.p_bottom)
    with np.errstate(divide="ignore"):
        za = np.where(layer, s.scale_height * np.log(s.p_surface / s.p_bottom), np.nan)
        zb = np.where(layer, s.scale_height * np.log(s.p_surface / s.p_top), np.nan)

    def c(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=float)

    return ReceptorPoints(
        x=c(x),
        y=c(y),
        z=c(s.height),
        za=c(np.maximum(za, 0.0) if layer.any() else za),
        zb=c(zb),
        hs=c(np.where(layer, s.scale_height, np.nan)),
        w=c(s.weight),
        ptr=s.ptr,
        state_bin=state_bin.astype(np.int64),
        hour=hour.astype(np.int64),
    )
