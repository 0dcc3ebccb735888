"""Synthetic meteorology and observing networks (towers, satellite snapshots, lidar chords).

Everything is seeded through the ``numpy.random.Generator`` passed in; positions are made in
the grid's projected coordinates [m] and converted to lon/lat. Observation values are left at
zero here: :func:`cityflux.synthetic.observe` fills them from the truth through the case's
operators, with errors drawn from the TRUE observation covariance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.signal
import xarray as xr

from inversion import Grid, TimeAxis
from observations import make_observation_set
from transport_models import PlumeMet

__all__ = ["make_columns", "make_lidar", "make_met", "make_towers"]

#: Surface pressure of the synthetic columns [hPa].
SURFACE_PRESSURE_HPA = 1000.0


def _local_to_utc(days: np.ndarray, hours_local: np.ndarray, lon: float) -> np.ndarray:
    """UTC datetime64[ns] of local solar clock times ``days + hours_local`` [h] at ``lon``."""
    offset = pd.to_timedelta(np.asarray(hours_local, float) - lon / 15.0, unit="h").to_numpy()
    return (np.asarray(days, "datetime64[ns]") + offset).astype("datetime64[ns]")


def make_met(time: TimeAxis, lon: float, rng: np.random.Generator) -> PlumeMet:
    """Hourly synthetic meteorology over the state period (domain-uniform).

    Wind: AR(1) anomalies (lag-1 correlation 0.9) around a prevailing south-westerly of
    3.5 m s-1 with a diurnal speed cycle; mixing height 250–1500 m following the sun; Pasquill
    class from speed and day/night.

    Returns
    -------
    transport_models.PlumeMet
        One record per hour of the period (speed [m s-1], direction [degrees, from], mixing
        height [m], stability class).
    """
    t = np.arange(time.edges[0], time.edges[-1], np.timedelta64(1, "h"))
    n = t.size
    local = pd.DatetimeIndex(t) + pd.to_timedelta(lon / 15.0, unit="h")
    hour = local.hour.to_numpy() + 0.5
    phi = 0.9
    eps = rng.standard_normal((2, n))
    a = scipy.signal.lfilter([np.sqrt(1 - phi**2)], [1.0, -phi], eps, axis=1)
    direction = np.mod(240.0 + 35.0 * a[0], 360.0)
    speed = 3.5 * np.exp(0.3 * a[1]) * (1.0 + 0.25 * np.sin(np.pi * (hour - 8.0) / 12.0))
    speed = np.clip(speed, 1.0, 12.0)
    sun = np.clip(np.sin(np.pi * (hour - 7.0) / 12.0), 0.0, None)
    blh = 250.0 + 1250.0 * sun**0.7
    day = sun > 0.2
    stability = np.where(
        day,
        np.where(speed < 3.0, "B", np.where(speed < 5.0, "C", "D")),
        np.where(speed < 3.0, "F", np.where(speed < 5.0, "E", "D")),
    )
    return PlumeMet(
        times=t,
        wind_speed=speed,
        wind_direction=direction,
        boundary_layer_height=blh,
        stability=stability.astype(str),
    )


def _days(time: TimeAxis) -> np.ndarray:
    start = time.edges[0].astype("datetime64[D]")
    end = (time.edges[-1] - np.timedelta64(1, "ns")).astype("datetime64[D]")
    return np.arange(start, end + np.timedelta64(1, "D")).astype("datetime64[ns]")


def _inside(time: TimeAxis, t: np.ndarray) -> np.ndarray:
    return time.index(t) >= 0


def _box(grid: Grid) -> tuple[float, float, float, float]:
    """The grid's outer edges ``(xmin, ymin, xmax, ymax)`` [m] moved in by 1e-3 of a cell."""
    x0, y0, x1, y1 = grid.bounds
    ex, ey = 1e-3 * grid.dx, 1e-3 * abs(grid.dy)
    return x0 + ex, y0 + ey, x1 - ex, y1 - ey


def _clip_to_grid(grid: Grid, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions [m] clipped into the grid (a small domain keeps its soundings inside)."""
    x0, y0, x1, y1 = _box(grid)
    return np.clip(x, x0, x1), np.clip(y, y0, y1)


def make_towers(
    grid: Grid,
    time: TimeAxis,
    rng: np.random.Generator,
    *,
    n_towers: int,
    hours_local: tuple[int, ...],
    error_ppm: float,
    corr_ppm: float,
    lon: float,
) -> xr.Dataset:
    """Tower inlets in a ring around the centre, hourly means at local afternoon hours."""
    extent = 0.5 * min(grid.nx * grid.dx, grid.ny * abs(grid.dy))
    ang = np.linspace(0, 2 * np.pi, n_towers, endpoint=False) + rng.uniform(0, 2 * np.pi)
    rad = extent * np.concatenate([[0.05], rng.uniform(0.25, 0.7, max(n_towers - 1, 0))])
    tx, ty = rad * np.cos(ang), rad * np.sin(ang)
    tlon, tlat = grid.to_lonlat(tx, ty)
    alt = rng.choice([30.0, 50.0, 80.0, 100.0], n_towers)
    days = _days(time)
    hrs = np.asarray(hours_local, float) + 0.5
    site = np.repeat(np.arange(n_towers), days.size * hrs.size)
    day_i = np.tile(np.repeat(np.arange(days.size), hrs.size), n_towers)
    t = _local_to_utc(days[day_i], np.tile(hrs, n_towers * days.size), lon)
    keep = _inside(time, t)
    site, day_i, t = site[keep], day_i[keep], t[keep]
    if site.size == 0:
        raise ValueError("synthetic.n_towers: no tower hour falls inside the period")
    return make_observation_set(
        np.zeros(site.size),
        t,
        "tower",
        np.array([f"T{k:02d}" for k in range(n_towers)])[site],
        tlat[site],
        tlon[site],
        alt[site],
        errors={"instrument": error_ppm, "transport": corr_ppm},
        extras={"group": site * days.size + day_i},
    )


def make_columns(
    grid: Grid,
    time: TimeAxis,
    rng: np.random.Generator,
    *,
    n_overpasses: int,
    spacing_km: float,
    size_km: float,
    n_levels: int,
    error_ppm: float,
    corr_ppm: float,
    lon: float,
    clear_fraction: float = 0.8,
) -> tuple[xr.Dataset, int]:
    """OCO-3-like snapshot maps at 13:30 local solar time on ``n_overpasses`` days.

    Soundings on a square of ``size_km`` (clipped to the domain: jittered soundings beyond the
    grid's edge are moved onto it) every ``spacing_km``; a seeded
    ``1 - clear_fraction`` of them is cloudy and dropped (returned as the QC count). Averaging
    kernels and pressure weights on ``n_levels`` levels, surface first.

    Returns
    -------
    (xarray.Dataset, int)
        The column ObservationSet and the number of cloudy soundings dropped.
    """
    days = _days(time)
    pick = np.unique(np.linspace(0, days.size - 1, n_overpasses + 2)[1:-1].round().astype(int))
    half = 0.5 * min(size_km * 1000.0, 0.9 * grid.nx * grid.dx, 0.9 * grid.ny * abs(grid.dy))
    ax = np.arange(-half, half + 1e-6, spacing_km * 1000.0)
    sx, sy = (g.ravel() for g in np.meshgrid(ax, ax))
    n_s = sx.size
    op = np.repeat(np.arange(pick.size), n_s)
    jitter = rng.uniform(-0.3, 0.3, (2, op.size)) * spacing_km * 1000.0
    x, y = _clip_to_grid(
        grid, np.tile(sx, pick.size) + jitter[0], np.tile(sy, pick.size) + jitter[1]
    )
    t = _local_to_utc(days[pick][op], np.full(op.size, 13.5), lon)
    t = t + (np.tile(np.arange(n_s), pick.size) * np.timedelta64(100, "ms"))
    clear = (rng.uniform(size=op.size) < clear_fraction) & _inside(time, t)
    n_cloudy = int((~clear).sum())
    op, x, y, t = op[clear], x[clear], y[clear], t[clear]
    if op.size == 0:
        raise ValueError("synthetic.n_overpasses: every sounding is cloudy or outside the period")
    clon, clat = grid.to_lonlat(x, y)
    # Pressure levels from the surface to 50 hPa; weights are layer fractions of the column.
    edges = np.linspace(SURFACE_PRESSURE_HPA, 50.0, n_levels + 1)
    pressure = 0.5 * (edges[:-1] + edges[1:])
    pw = (edges[:-1] - edges[1:]) / (SURFACE_PRESSURE_HPA - 50.0)
    ak = 1.0 - 0.35 * (1.0 - pressure / SURFACE_PRESSURE_HPA) ** 2
    nobs = op.size
    return (
        make_observation_set(
            np.zeros(nobs),
            t,
            "column",
            np.array([f"snapshot_{d}" for d in np.datetime_as_string(days[pick], "D")])[op],
            clat,
            clon,
            0.0,
            errors={"instrument": error_ppm, "transport": corr_ppm},
            extras={
                "group": op,
                "averaging_kernel": np.broadcast_to(ak, (nobs, n_levels)).copy(),
                "pressure_weight": np.broadcast_to(pw, (nobs, n_levels)).copy(),
                "pressure": np.broadcast_to(pressure, (nobs, n_levels)).copy(),
                "co2_apriori": np.full((nobs, n_levels), 420.0),
                "surface_pressure": np.full(nobs, SURFACE_PRESSURE_HPA),
            },
        ),
        n_cloudy,
    )


def make_lidar(
    grid: Grid,
    time: TimeAxis,
    rng: np.random.Generator,
    *,
    n_chords: int,
    hours_local: tuple[int, ...],
    error_ppm: float,
    corr_ppm: float,
    lon: float,
) -> xr.Dataset:
    """Path-integrated lidar chords of 2–5 km over the centre, one scan per hour (centre and
    length shrunk where the grid is smaller, so that both ends lie inside it)."""
    cx, cy = rng.uniform(-1500.0, 1500.0, (2, n_chords))
    length = rng.uniform(2000.0, 5000.0, n_chords)
    ang = rng.uniform(0, np.pi, n_chords)
    x_lo, y_lo, x_hi, y_hi = _box(grid)
    qx, qy = 0.25 * (x_hi - x_lo), 0.25 * (y_hi - y_lo)  # centres in the inner half of the grid
    cx, cy = np.clip(cx, x_lo + qx, x_hi - qx), np.clip(cy, y_lo + qy, y_hi - qy)
    with np.errstate(divide="ignore"):  # half-length that keeps both ends in the box
        reach_x = np.minimum(cx - x_lo, x_hi - cx) / np.abs(np.cos(ang))
        reach_y = np.minimum(cy - y_lo, y_hi - cy) / np.abs(np.sin(ang))
    length = np.minimum(length, 2.0 * np.minimum(reach_x, reach_y))
    x0, y0 = cx - 0.5 * length * np.cos(ang), cy - 0.5 * length * np.sin(ang)
    x1, y1 = cx + 0.5 * length * np.cos(ang), cy + 0.5 * length * np.sin(ang)
    lon0, lat0 = grid.to_lonlat(x0, y0)
    lon1, lat1 = grid.to_lonlat(x1, y1)
    lonm, latm = grid.to_lonlat(cx, cy)
    alt0 = np.full(n_chords, 60.0)
    alt1 = rng.uniform(20.0, 150.0, n_chords)
    days = _days(time)
    hrs = np.asarray(hours_local, float) + 0.5
    scan = np.arange(days.size * hrs.size)
    t_scan = _local_to_utc(np.repeat(days, hrs.size), np.tile(hrs, days.size), lon)
    chord = np.tile(np.arange(n_chords), scan.size)
    sc = np.repeat(scan, n_chords)
    t = t_scan[sc]
    keep = _inside(time, t)
    chord, sc, t = chord[keep], sc[keep], t[keep]
    if chord.size == 0:
        raise ValueError("synthetic.n_chords: no lidar scan falls inside the period")
    return make_observation_set(
        np.zeros(chord.size),
        t,
        "lidar_path",
        np.array([f"chord_{k:02d}" for k in range(n_chords)])[chord],
        latm[chord],
        lonm[chord],
        0.5 * (alt0 + alt1)[chord],
        errors={"instrument": error_ppm, "transport": corr_ppm},
        extras={
            "group": sc,
            "lat0": lat0[chord],
            "lon0": lon0[chord],
            "alt0": alt0[chord],
            "lat1": lat1[chord],
            "lon1": lon1[chord],
            "alt1": alt1[chord],
        },
    )
