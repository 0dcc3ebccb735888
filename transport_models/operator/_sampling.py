"""The receptor-sampling design: every observation as a set of weighted receptor samples.

One design serves the built-in plume model and the matching of Lagrangian footprints to
observations (:func:`transport_models.match_observations`): an observation's row of ``H`` is
``Σ_s weight_s · footprint(sample_s)``. The weights are defined in
:mod:`transport_models.operator._rows` (one place).

* ``tower``: one sample at (lon, lat) and the inlet height ``alt``, weight 1.
* ``column``: one sample per valid level at the sounding's (lon, lat) (a vertical column, no
  slant), weight ``h_k a_k`` (pressure weight × averaging kernel, :func:`column_weights`).
  Level ``k`` represents the pressure interval from the midpoint to the level below (the
  surface pressure for the lowest level) to the midpoint to the level above (0 hPa for the
  highest), so the intervals tile the full column. The surface pressure is the variable
  ``surface_pressure`` [hPa] when the set carries it, else the largest level pressure.
  Heights above ground from the isothermal barometric relation ``z = H ln(p_s / p)`` with the
  scale height ``H = R_d T / g`` (``R_d`` = 287.05 J kg-1 K-1, ``g`` = 9.80665 m s-2, ``T``
  the ``temperature`` given, default 288.15 K). The plume model integrates over each level's
  pressure interval; a Lagrangian model is run at the level heights. Levels padded with NaN
  and levels of weight 0 get no sample. IPDA soundings (stored by the readers as columns with
  ``pressure_weight`` = the normalised integral weighting function and ``averaging_kernel``
  = 1) are columns here.
* ``lidar_path`` and ``lidar_profile`` (one observation per range segment, whose end points
  are ``lat0/lon0/alt0`` and ``lat1/lon1/alt1``): the beam from end 0 to end 1 follows the
  WGS84 geodesic horizontally with the height linear in the distance (flat terrain), chord
  length ``L = sqrt(d² + Δz²)`` [m] with ``d`` the geodesic distance. It is cut into
  ``n = max(min_chord_points, ceil(L / chord_spacing))`` equal pieces, one sample at the
  middle of each, weight = the length a sample represents / the chord length ``= 1/n``
  (:func:`length_weights`).

Heights above sea level (per observation ``alt_reference`` when the set carries it, else
``reference = "asl"`` on the variable, else on ``alt``) become heights above ground by subtracting
the surface altitude [m asl]: the observation's ``surface_altitude`` variable where the set
carries it (and it is finite), else ``SamplingOptions.surface_altitude``; where neither is
given, 0 m is assumed with a warning. A sample below the ground is an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import xarray as xr

from ._rows import PRESSURE_WEIGHT_ATOL, column_weights, length_weights, warn

__all__ = [
    "GRAVITY",
    "KINDS",
    "R_DRY",
    "ReceptorSamples",
    "SamplingOptions",
    "obs_labels",
    "sample_receptors",
    "write_receptor_table",
]

log = logging.getLogger(__name__)

R_DRY = 287.05  # J kg-1 K-1
GRAVITY = 9.80665  # m s-2
KINDS = ("tower", "column", "lidar_path", "lidar_profile")
_CHORD_KINDS = ("lidar_path", "lidar_profile")
_GEOD = pyproj.Geod(ellps="WGS84")


@dataclass(frozen=True)
class SamplingOptions:
    """How observations are sampled by receptors.

    Parameters
    ----------
    surface_altitude : float, optional
        Ground altitude [m asl] subtracted from heights referenced above sea level, where the
        ObservationSet has no ``surface_altitude`` variable. None: 0 m, with a warning when an
        asl height needs it.
    temperature : float
        Air temperature [K] of the scale height that places column levels (default 288.15).
    chord_spacing : float
        Largest spacing of the samples along a lidar chord or range segment [m].
    min_chord_points : int
        Smallest number of samples on a chord or range segment.
    pressure_weight_atol : float
        Tolerance on Σ pressure_weight = 1 per sounding [1].
    """

    surface_altitude: float | None = None
    temperature: float = 288.15
    chord_spacing: float = 250.0
    min_chord_points: int = 5
    pressure_weight_atol: float = PRESSURE_WEIGHT_ATOL

    def __post_init__(self) -> None:
        if self.surface_altitude is not None and not np.isfinite(self.surface_altitude):
            raise ValueError(
                f"SamplingOptions.surface_altitude: expected a finite altitude [m asl] or None, "
                f"found {self.surface_altitude}"
            )
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(
                f"SamplingOptions.temperature: expected > 0 K, found {self.temperature}"
            )
        if not (np.isfinite(self.chord_spacing) and self.chord_spacing > 0):
            raise ValueError(
                f"SamplingOptions.chord_spacing: expected > 0 m, found {self.chord_spacing}"
            )
        if int(self.min_chord_points) != self.min_chord_points or self.min_chord_points < 1:
            raise ValueError(
                "SamplingOptions.min_chord_points: expected an integer >= 1, found "
                f"{self.min_chord_points}"
            )


@dataclass(frozen=True, eq=False)
class ReceptorSamples:
    """Weighted receptor samples of a set of observations, sorted by observation.

    Attributes (one entry per sample unless stated)
    ------------------------------------------------
    obs : numpy.ndarray of int
        Index of the observation along ``obs``.
    time : numpy.ndarray of datetime64[ns]
        Observation time, UTC.
    kind : numpy.ndarray of str
        Observation kind.
    lon, lat : numpy.ndarray
        Position [degrees_east, degrees_north].
    height : numpy.ndarray
        Height above ground [m] (columns: the level height).
    weight : numpy.ndarray
        Weight [1] of the sample in its observation's row.
    sub : numpy.ndarray of int
        Level index (columns, along ``level``) or sample number along the beam (chords), 0 for
        towers.
    length : numpy.ndarray
        Path length the sample represents [m] (chords), NaN otherwise.
    p_bottom, p_top, p_surface : numpy.ndarray
        Pressure interval of a column level and the sounding's surface pressure [hPa]; NaN for
        other kinds.
    scale_height : numpy.ndarray
        Scale height [m] used for the column level heights; NaN for other kinds.
    site : numpy.ndarray of str
        (n_obs,) site of each observation.
    """

    obs: np.ndarray
    time: np.ndarray
    kind: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    height: np.ndarray
    weight: np.ndarray
    sub: np.ndarray
    length: np.ndarray
    p_bottom: np.ndarray
    p_top: np.ndarray
    p_surface: np.ndarray
    scale_height: np.ndarray
    site: np.ndarray

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(self.obs.size)

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return int(self.site.size)

    @property
    def ptr(self) -> np.ndarray:
        """(n_obs + 1,) samples of observation ``i`` are ``ptr[i]:ptr[i+1]``."""
        counts = np.bincount(self.obs, minlength=self.n_obs)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per sample: time, lat, lon, height_agl, kind, obs, sample, site, weight, id."""
        return pd.DataFrame(
            {
                "time": self.time,
                "lat": self.lat,
                "lon": self.lon,
                "height_agl": self.height,
                "kind": self.kind,
                "obs": self.obs,
                "sample": self.sub,
                "site": self.site[self.obs],
                "weight": self.weight,
                "id": np.char.add(
                    np.char.add("o", self.obs.astype(str)), np.char.add("_s", self.sub.astype(str))
                ),
            }
        )


def obs_labels(obs: xr.Dataset, rows: np.ndarray, limit: int = 3) -> str:
    """``obs i (site 'S', kind 'K')`` for the first ``limit`` rows, for messages."""
    rows = np.asarray(rows)
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


def _surface_altitude(obs: xr.Dataset, rows: np.ndarray, opts: SamplingOptions) -> np.ndarray:
    fallback = np.nan if opts.surface_altitude is None else float(opts.surface_altitude)
    if "surface_altitude" in obs:
        s = np.asarray(obs["surface_altitude"].values[rows], dtype=float)
        return np.where(np.isfinite(s), s, fallback)
    return np.full(rows.size, fallback)


def _heights_agl(obs: xr.Dataset, var: str, rows: np.ndarray, opts: SamplingOptions) -> np.ndarray:
    """Heights of ``obs[var][rows]`` above ground [m]; errors name what is below ground."""
    vals = np.asarray(obs[var].values[rows], dtype=float)
    if "alt_reference" in obs:
        refs = obs["alt_reference"].values[rows].astype(str)
    else:
        ref = obs[var].attrs.get("reference") or obs["alt"].attrs.get("reference", "agl")
        refs = np.full(rows.size, ref)
    asl = np.char.lower(refs.astype(str)) == "asl"
    surf = _surface_altitude(obs, rows, opts)
    assumed = asl & ~np.isfinite(surf)
    if assumed.any():
        msg = (
            f"obs: {int(assumed.sum())} height(s) {var!r} are above sea level but no surface "
            f"altitude is known for {obs_labels(obs, rows[assumed])}; assumed 0 m asl (give "
            "the obs variable 'surface_altitude' [m asl] or the surface_altitude option)"
        )
        warn(msg, stacklevel=4)
    z = np.where(asl, vals - np.where(np.isfinite(surf), surf, 0.0), vals)
    bad = np.flatnonzero(~np.isfinite(z) | (z < 0))
    if bad.size:
        i = bad[0]
        given = f"{vals[i]:.6g} m {'asl' if asl[i] else 'agl'}"
        if asl[i]:
            src = "obs variable 'surface_altitude'" if "surface_altitude" in obs else "option"
            given += (
                f", surface altitude {surf[i] if np.isfinite(surf[i]) else 0.0:.6g} m asl ({src})"
            )
        raise ValueError(
            f"obs: {bad.size} receptor height(s) {var!r} below ground or not finite: "
            f"{obs_labels(obs, rows[bad])}; first: {given} -> {z[i]:.6g} m above ground. "
            "Check the height reference (agl/asl) and the surface altitude"
        )
    return z


def _empty(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _towers(obs: xr.Dataset, rows: np.ndarray, opts: SamplingOptions) -> dict[str, np.ndarray]:
    n = rows.size
    return {
        "obs": rows,
        "lon": np.asarray(obs["lon"].values[rows], float),
        "lat": np.asarray(obs["lat"].values[rows], float),
        "height": _heights_agl(obs, "alt", rows, opts),
        "weight": np.ones(n),
        "sub": np.zeros(n, np.int64),
        "length": _empty(n),
        "p_bottom": _empty(n),
        "p_top": _empty(n),
        "p_surface": _empty(n),
        "scale_height": _empty(n),
    }


def _neighbour(valid: np.ndarray, step: int) -> np.ndarray:
    """Index of the previous (step -1) or next (+1) valid level along axis 1 (-1 / n: none)."""
    n = valid.shape[1]
    ar = np.arange(n)
    if step < 0:
        last = np.maximum.accumulate(np.where(valid, ar, -1), axis=1)
        return np.concatenate([np.full((valid.shape[0], 1), -1), last[:, :-1]], axis=1)
    first = np.minimum.accumulate(np.where(valid, ar, n)[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([first[:, 1:], np.full((valid.shape[0], 1), n)], axis=1)


def _columns(
    obs: xr.Dataset, rows: np.ndarray, opts: SamplingOptions, temperature: np.ndarray
) -> dict[str, np.ndarray]:
    _need(obs, ("pressure", "pressure_weight", "averaging_kernel"), "column")
    p = np.asarray(obs["pressure"].values[rows], dtype=float).reshape(rows.size, -1)
    pw = np.asarray(obs["pressure_weight"].values[rows], dtype=float).reshape(p.shape)
    ak = np.asarray(obs["averaging_kernel"].values[rows], dtype=float).reshape(p.shape)
    valid = np.isfinite(p) & (p > 0) & np.isfinite(pw) & np.isfinite(ak)
    empty = np.flatnonzero(~valid.any(axis=1))
    if empty.size:
        raise ValueError(
            f"obs: {empty.size} column(s) have no level with finite positive pressure, "
            f"pressure_weight and averaging_kernel: {obs_labels(obs, rows[empty])}"
        )
    site = obs["site"].values[rows] if "site" in obs else np.full(rows.size, "?")
    names = np.char.add(
        np.char.add("obs ", rows.astype(str)),
        np.char.add(" (site '", np.char.add(site.astype(str), "')")),
    )
    w = column_weights(ak, pw, valid, atol=opts.pressure_weight_atol, names=names)
    nlev = p.shape[1]
    prev, nxt = _neighbour(valid, -1), _neighbour(valid, +1)
    p_prev = np.take_along_axis(p, np.clip(prev, 0, nlev - 1), axis=1)
    p_next = np.take_along_axis(p, np.clip(nxt, 0, nlev - 1), axis=1)
    bad = valid & (nxt < nlev) & ~(p_next < p)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(
            f"obs: column levels must be ordered surface -> top with decreasing pressure; "
            f"{obs_labels(obs, rows[[i]])} has pressures {p[i][valid[i]].tolist()} hPa"
        )
    p_max = np.max(np.where(valid, p, -np.inf), axis=1)
    if "surface_pressure" in obs:
        ps = np.asarray(obs["surface_pressure"].values[rows], dtype=float)
        ps = np.where(np.isfinite(ps), ps, p_max)
    else:
        ps = p_max
    below = np.flatnonzero(ps < p_max * (1 - 1e-12))
    if below.size:
        i = below[0]
        raise ValueError(
            f"obs: {below.size} column(s) have a level below the surface: "
            f"{obs_labels(obs, rows[below])}; first: surface_pressure {ps[i]:.6g} hPa < level "
            f"pressure {p_max[i]:.6g} hPa"
        )
    bottom = np.where(prev < 0, ps[:, None], 0.5 * (p + p_prev))
    top = np.where(nxt >= nlev, 0.0, 0.5 * (p + p_next))
    hs = R_DRY * temperature / GRAVITY
    z = hs[:, None] * np.log(ps[:, None] / np.where(valid, p, ps[:, None]))
    keep = valid & (w != 0)
    r, k = np.nonzero(keep)
    return {
        "obs": rows[r],
        "lon": np.asarray(obs["lon"].values[rows], float)[r],
        "lat": np.asarray(obs["lat"].values[rows], float)[r],
        "height": np.maximum(z[keep], 0.0),
        "weight": w[keep],
        "sub": k.astype(np.int64),
        "length": _empty(r.size),
        "p_bottom": bottom[keep],
        "p_top": top[keep],
        "p_surface": ps[r],
        "scale_height": hs[r],
    }


def _chords(obs: xr.Dataset, rows: np.ndarray, opts: SamplingOptions) -> dict[str, np.ndarray]:
    _need(obs, ("lat0", "lon0", "alt0", "lat1", "lon1", "alt1"), "lidar_path/lidar_profile")
    lon0, lat0, lon1, lat1 = (
        np.asarray(obs[v].values[rows], float) for v in ("lon0", "lat0", "lon1", "lat1")
    )
    z0 = _heights_agl(obs, "alt0", rows, opts)
    z1 = _heights_agl(obs, "alt1", rows, opts)
    bad = np.flatnonzero(~np.isfinite(lon0 + lat0 + lon1 + lat1))
    if bad.size:
        raise ValueError(
            f"obs: {bad.size} lidar chord(s) have non-finite end points: "
            f"{obs_labels(obs, rows[bad])}"
        )
    az, _, dist = _GEOD.inv(lon0, lat0, lon1, lat1)
    az, dist = np.asarray(az, float), np.asarray(dist, float)
    length = np.hypot(dist, z1 - z0)
    bad = np.flatnonzero(~(length > 1e-3))
    if bad.size:
        raise ValueError(
            f"obs: {bad.size} lidar chord(s) have zero length (identical end points): "
            f"{obs_labels(obs, rows[bad])}; a path needs two distinct end points"
        )
    n = np.maximum(int(opts.min_chord_points), np.ceil(length / opts.chord_spacing)).astype(int)
    r = np.repeat(np.arange(rows.size), n)
    j = np.arange(r.size) - (np.cumsum(n) - n)[r]
    frac = (j + 0.5) / n[r]
    lon, lat, _ = _GEOD.fwd(lon0[r], lat0[r], az[r], frac * dist[r])
    piece = length[r] / n[r]
    return {
        "obs": rows[r],
        "lon": np.asarray(lon, float),
        "lat": np.asarray(lat, float),
        "height": z0[r] + frac * (z1 - z0)[r],
        "weight": length_weights(r, piece, rows.size),
        "sub": j.astype(np.int64),
        "length": piece,
        "p_bottom": _empty(r.size),
        "p_top": _empty(r.size),
        "p_surface": _empty(r.size),
        "scale_height": _empty(r.size),
    }


def sample_receptors(
    obs: xr.Dataset,
    options: SamplingOptions | None = None,
    *,
    temperature: float | np.ndarray | None = None,
) -> ReceptorSamples:
    """Receptor samples of every observation of an ObservationSet (see the module docstring).

    Parameters
    ----------
    obs : xarray.Dataset
        ObservationSet (dim ``"obs"``): ``time``, ``kind``, ``site``, ``lat``, ``lon``, ``alt``
        [m]; columns also ``pressure`` [hPa], ``pressure_weight``, ``averaging_kernel`` [1] on
        ``(obs, level)`` surface -> top and optionally ``surface_pressure`` [hPa]; lidar
        chords/segments ``lat0, lon0, alt0, lat1, lon1, alt1`` [degrees, m]; optionally
        ``surface_altitude`` [m asl] per observation.
    options : SamplingOptions, optional
        Surface altitude, chord spacing, temperature of the column scale height.
    temperature : float or numpy.ndarray, optional
        (n_obs,) air temperature [K] per observation for the column scale height; overrides
        ``options.temperature`` (the plume model passes the met hour's temperature).

    Returns
    -------
    ReceptorSamples

    Raises
    ------
    ValueError
        Empty set, unknown kind, height below ground, zero-length chord, column without a
        valid level, levels out of order or below the surface, bad pressure weights; the
        message names the observations (index, site, kind).
    KeyError
        A variable needed by a kind is missing.
    """
    opts = options or SamplingOptions()
    if "obs" not in obs.dims or obs.sizes["obs"] == 0:
        raise ValueError("obs: the observation set is empty (no 'obs' entries); nothing to sample")
    _need(obs, ("time", "kind", "lat", "lon", "alt"), "any")
    n = obs.sizes["obs"]
    kind = obs["kind"].values.astype(str)
    bad = np.flatnonzero(~np.isin(kind, KINDS))
    if bad.size:
        raise ValueError(
            f"obs: unknown kind {kind[bad[0]]!r} for {obs_labels(obs, bad)}; expected one of "
            f"{KINDS}"
        )
    temp = np.broadcast_to(
        np.asarray(opts.temperature if temperature is None else temperature, float), (n,)
    )
    if not (np.isfinite(temp) & (temp > 0)).all():
        raise ValueError("temperature: expected finite values > 0 K for every observation")
    parts = []
    rows = np.flatnonzero(kind == "tower")
    if rows.size:
        parts.append(_towers(obs, rows, opts))
    rows = np.flatnonzero(kind == "column")
    if rows.size:
        parts.append(_columns(obs, rows, opts, temp[rows]))
    rows = np.flatnonzero(np.isin(kind, _CHORD_KINDS))
    if rows.size:
        parts.append(_chords(obs, rows, opts))
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((cols["sub"], cols["obs"]))
    cols = {k: np.ascontiguousarray(v[order]) for k, v in cols.items()}
    o = cols["obs"].astype(np.int64)
    site = obs["site"].values.astype(str) if "site" in obs else np.full(n, "?")
    return ReceptorSamples(
        time=obs["time"].values.astype("datetime64[ns]")[o],
        kind=kind[o],
        site=site,
        **{**cols, "obs": o},
    )


def write_receptor_table(samples: ReceptorSamples, path: str | Path) -> Path:
    """Write the receptor samples as a CSV table for running a Lagrangian model.

    Columns: ``time`` (ISO 8601 UTC, seconds), ``lat``, ``lon`` [degrees, 8 decimals],
    ``height_agl`` [m above ground, mm], ``kind``, ``obs`` (observation index), ``sample``
    (level / sample number), ``site``, ``weight`` [1] and ``id`` (``o<obs>_s<sample>``). Run
    the model at these receptors and give its footprints (with the receptor time, position and
    height in their metadata) to :func:`transport_models.match_observations`.

    Parameters
    ----------
    samples : ReceptorSamples
        From :func:`sample_receptors`.
    path : str or Path
        CSV file to write (parent folders are created).

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    df = samples.to_dataframe()
    df["time"] = np.char.add(np.datetime_as_string(samples.time, unit="s"), "Z")
    df["lat"] = df["lat"].round(8)
    df["lon"] = df["lon"].round(8)
    df["height_agl"] = df["height_agl"].round(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    log.info("wrote %d receptor samples of %d observations to %s", len(df), samples.n_obs, path)
    return path
