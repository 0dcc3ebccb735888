"""Receptors of the plume model from an ObservationSet (xarray.Dataset with dim "obs").

Every observation becomes a weighted set of receptor points (frame x, y [m], height z [m above
ground], weight); its footprint is the weighted sum of the point footprints.

* ``tower``: one point at (lon, lat) and the inlet height ``alt``.
* ``column``: one point per valid level at (lon, lat) (a vertical column, no slant), weight
  ``pressure_weight · averaging_kernel``; level heights from pressure by the isothermal
  barometric relation ``z_k = H ln(p_s / p_k)`` with scale height ``H = R_d T / g``
  (T = surface temperature of the met hour, R_d = 287.05 J kg-1 K-1, g = 9.80665 m s-2) and
  ``p_s`` the largest pressure of the sounding's levels (its surface level). Levels padded with
  NaN are skipped; levels above the mixing layer get 0 from the plume's lid.
* ``lidar_path`` and ``lidar_profile`` (one observation per range segment): a straight chord
  between (lon0, lat0, alt0) and (lon1, lat1, alt1), sampled by the midpoint rule at ``n``
  equally spaced points of weight 1/n, ``n = max(min_points, ceil(L / (step · spacing)))`` where
  L is the 3-D chord length [m] and ``spacing`` the grid cell size [m].

Heights referenced above sea level (``reference = "asl"`` on the variable, or a per-observation
``alt_reference``, or on ``alt``) are converted to above ground by subtracting a flat-terrain
``surface_altitude`` [m asl].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from inversion.grid import Grid
from inversion.state import TimeAxis

from ._frame import MetricFrame
from ._met import PlumeMet

__all__ = ["ReceptorPoints", "build_receptors"]

R_DRY = 287.05  # J kg-1 K-1
GRAVITY = 9.80665  # m s-2
KINDS = ("tower", "column", "lidar_path", "lidar_profile")
_CHORD_KINDS = ("lidar_path", "lidar_profile")


@dataclass(frozen=True, eq=False)
class ReceptorPoints:
    """Receptor sample points of a set of observations (rows)."""

    x: np.ndarray  # (n_point,) [m]
    y: np.ndarray  # (n_point,) [m]
    z: np.ndarray  # (n_point,) [m above ground]
    w: np.ndarray  # (n_point,) [1]
    ptr: np.ndarray  # (n_obs + 1,)
    state_bin: np.ndarray  # (n_obs,) index into the TimeAxis
    hour: np.ndarray  # (n_obs,) index into the PlumeMet records

    @property
    def n_obs(self) -> int:
        """Number of observations (rows)."""
        return int(self.ptr.size - 1)


def _labels(obs: xr.Dataset, rows: np.ndarray, limit: int = 3) -> str:
    site = obs["site"].values if "site" in obs else np.full(obs.sizes["obs"], "?")
    kind = obs["kind"].values
    items = [f"obs {int(i)} (site {str(site[i])!r}, kind {str(kind[i])!r})" for i in rows[:limit]]
    more = f" and {rows.size - limit} more" if rows.size > limit else ""
    return ", ".join(items) + more


def _need(obs: xr.Dataset, names: tuple[str, ...], kind: str) -> None:
    missing = [v for v in names if v not in obs]
    if missing:
        raise KeyError(
            f"obs: observations of kind {kind!r} need variables {list(names)}; missing {missing}"
        )


def _agl(obs: xr.Dataset, var: str, rows: np.ndarray, surface_altitude: float) -> np.ndarray:
    """Heights of ``obs[var][rows]`` above ground [m]."""
    vals = np.asarray(obs[var].values[rows], dtype=float)
    ref = obs[var].attrs.get("reference")
    if ref is None and "alt_reference" in obs:
        refs = obs["alt_reference"].values[rows].astype(str)
    else:
        refs = np.full(rows.size, ref or obs["alt"].attrs.get("reference", "agl"))
    return np.where(np.char.lower(refs.astype(str)) == "asl", vals - surface_altitude, vals)


def _check_inside(obs: xr.Dataset, grid: Grid, rows, lon, lat, what: str) -> None:
    iy, _ = grid.index_lonlat(lon, lat)
    bad = np.flatnonzero((iy < 0) | ~np.isfinite(lon) | ~np.isfinite(lat))
    if bad.size:
        raise ValueError(
            f"obs: {bad.size} receptor(s) lie outside the grid ({what}): "
            f"{_labels(obs, rows[bad])}; grid bounds {grid.bounds} in {grid.crs.name!r}. "
            "Drop them or enlarge the grid"
        )


def _check_heights(obs: xr.Dataset, rows, z, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(z) | (z < 0))
    if bad.size:
        raise ValueError(
            f"obs: {bad.size} receptor(s) have a height ({what}) below ground or not finite: "
            f"{_labels(obs, rows[bad])}; found {z[bad][:3]} m above ground (check the "
            "alt reference and surface_altitude)"
        )


def build_receptors(
    obs: xr.Dataset,
    grid: Grid,
    frame: MetricFrame,
    time: TimeAxis,
    met: PlumeMet,
    *,
    surface_altitude: float = 0.0,
    chord_step: float = 0.25,
    min_chord_points: int = 5,
) -> ReceptorPoints:
    """Turn an ObservationSet into weighted receptor points (see the module docstring).

    Raises
    ------
    ValueError
        Empty set, unknown kind, time outside the state axis or the met hours, receptor outside
        the grid, height below ground, zero-length chord, column without a valid level; the
        message names the receptors (obs index, site, kind).
    KeyError
        A variable needed by a kind is missing.
    """
    if "obs" not in obs.dims or obs.sizes["obs"] == 0:
        raise ValueError(
            "obs: the receptor set is empty (no 'obs' entries); nothing to compute a footprint for"
        )
    _need(obs, ("time", "kind", "lat", "lon", "alt"), "any")
    n = obs.sizes["obs"]
    kind = obs["kind"].values.astype(str)
    bad = np.flatnonzero(~np.isin(kind, KINDS))
    if bad.size:
        raise ValueError(
            f"obs: unknown kind {kind[bad[0]]!r} for {_labels(obs, bad)}; expected one of {KINDS}"
        )
    times = obs["time"].values
    state_bin = time.index(times)
    bad = np.flatnonzero(state_bin < 0)
    if bad.size:
        raise ValueError(
            f"obs: {bad.size} observation time(s) outside the state time axis "
            f"[{time.edges[0]}, {time.edges[-1]}): {_labels(obs, bad)} at {times[bad][:3]}; "
            "select the observations of the inversion period first"
        )
    hour = met.hour_index(times)
    bad = np.flatnonzero(hour < 0)
    if bad.size:
        raise ValueError(
            f"met: no hourly record covers the hour of {bad.size} observation(s): "
            f"{_labels(obs, bad)} at {times[bad][:3]}; met hours span "
            f"[{met.times[0]}, {met.times[-1]} + 1 h); supply met for these hours"
        )

    parts: list[tuple[np.ndarray, ...]] = []  # (obs index, x, y, z, w)

    rows = np.flatnonzero(kind == "tower")
    if rows.size:
        lon, lat = obs["lon"].values[rows], obs["lat"].values[rows]
        _check_inside(obs, grid, rows, lon, lat, "tower lon/lat")
        z = _agl(obs, "alt", rows, surface_altitude)
        _check_heights(obs, rows, z, "alt")
        x, y = frame.from_lonlat(lon, lat)
        parts.append((rows, x, y, z, np.ones(rows.size)))

    rows = np.flatnonzero(kind == "column")
    if rows.size:
        _need(obs, ("pressure", "pressure_weight", "averaging_kernel"), "column")
        lon, lat = obs["lon"].values[rows], obs["lat"].values[rows]
        _check_inside(obs, grid, rows, lon, lat, "column lon/lat")
        p = np.asarray(obs["pressure"].values[rows], dtype=float).reshape(rows.size, -1)
        pw = np.asarray(obs["pressure_weight"].values[rows], dtype=float).reshape(p.shape)
        ak = np.asarray(obs["averaging_kernel"].values[rows], dtype=float).reshape(p.shape)
        valid = np.isfinite(p) & (p > 0) & np.isfinite(pw) & np.isfinite(ak)
        empty = np.flatnonzero(~valid.any(axis=1))
        if empty.size:
            raise ValueError(
                f"obs: {empty.size} column(s) have no level with finite positive pressure, "
                f"pressure_weight and averaging_kernel: {_labels(obs, rows[empty])}"
            )
        p_s = np.max(np.where(valid, p, -np.inf), axis=1, keepdims=True)
        scale_h = (R_DRY * met.temperature[hour[rows]] / GRAVITY)[:, None]
        zk = scale_h * np.log(p_s / np.where(valid, p, p_s))
        x, y = frame.from_lonlat(lon, lat)
        r, _ = np.nonzero(valid)
        parts.append((rows[r], x[r], y[r], zk[valid], (pw * ak)[valid]))

    rows = np.flatnonzero(np.isin(kind, _CHORD_KINDS))
    if rows.size:
        names = ("lat0", "lon0", "alt0", "lat1", "lon1", "alt1")
        _need(obs, names, "lidar_path/lidar_profile")
        ends = []
        for e in "01":
            lon, lat = obs[f"lon{e}"].values[rows], obs[f"lat{e}"].values[rows]
            _check_inside(obs, grid, rows, lon, lat, f"chord end point lon{e}/lat{e}")
            z = _agl(obs, f"alt{e}", rows, surface_altitude)
            _check_heights(obs, rows, z, f"alt{e}")
            ends.append((*frame.from_lonlat(lon, lat), z))
        (x0, y0, z0), (x1, y1, z1) = ends
        length = np.sqrt((x1 - x0) ** 2 + (y1 - y0) ** 2 + (z1 - z0) ** 2)
        bad = np.flatnonzero(~(length > 1e-3))
        if bad.size:
            raise ValueError(
                f"obs: {bad.size} lidar chord(s) have zero length (identical end points): "
                f"{_labels(obs, rows[bad])}; a path needs two distinct end points"
            )
        npts = np.maximum(
            int(min_chord_points), np.ceil(length / (chord_step * frame.spacing)).astype(int)
        )
        r = np.repeat(np.arange(rows.size), npts)
        start = np.cumsum(npts) - npts
        frac = (np.arange(r.size) - start[r] + 0.5) / npts[r]
        parts.append(
            (
                rows[r],
                x0[r] + frac * (x1 - x0)[r],
                y0[r] + frac * (y1 - y0)[r],
                z0[r] + frac * (z1 - z0)[r],
                1.0 / npts[r],
            )
        )

    idx, x, y, z, w = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.argsort(idx, kind="stable")
    counts = np.bincount(idx, minlength=n)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ReceptorPoints(
        x=np.ascontiguousarray(x[order], dtype=float),
        y=np.ascontiguousarray(y[order], dtype=float),
        z=np.ascontiguousarray(z[order], dtype=float),
        w=np.ascontiguousarray(w[order], dtype=float),
        ptr=ptr,
        state_bin=state_bin.astype(np.int64),
        hour=hour.astype(np.int64),
    )
