"""Synthetic city emissions: a dense core, roads, point sources, diurnal and weekly cycles.

Pure numpy on the grid; the caller wraps results in xarray. Fluxes are in [µmol m-2 s-1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from inversion import Grid, TimeAxis
from priors import UMOL_TO_T_CO2

__all__ = ["CityEmissions", "make_emissions"]


@dataclass(frozen=True)
class CityEmissions:
    """Emissions of a synthetic city averaged over the state time bins.

    Attributes
    ----------
    flux : numpy.ndarray
        (sector, time, y, x) bin-mean flux [µmol m-2 s-1].
    city_mask : numpy.ndarray
        (y, x) bool, cells inside the city boundary.
    point_sources : numpy.ndarray
        (k, 2) int row/column of the point sources.
    """

    flux: np.ndarray
    city_mask: np.ndarray
    point_sources: np.ndarray


def _segment_distance(px, py, ax, ay, bx, by):
    """Distance [km] from points (px, py) to the segment a-b (broadcast)."""
    vx, vy = bx - ax, by - ay
    t = np.clip(((px - ax) * vx + (py - ay) * vy) / (vx * vx + vy * vy), 0.0, 1.0)
    return np.hypot(px - (ax + t * vx), py - (ay + t * vy))


def _local_hours(starts: np.ndarray, lon: float) -> tuple[np.ndarray, np.ndarray]:
    """Local solar hour [h] and local weekday (0 = Monday) of UTC times."""
    local = pd.DatetimeIndex(starts) + pd.to_timedelta(lon / 15.0, unit="h")
    return local.hour.to_numpy() + local.minute.to_numpy() / 60.0, local.day_of_week.to_numpy()


def _traffic_profile(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    rush = np.exp(-0.5 * ((hour - 8.0) / 1.5) ** 2) + 0.9 * np.exp(-0.5 * ((hour - 17.5) / 2) ** 2)
    day = np.where((hour > 6) & (hour < 22), 0.5, 0.1)
    weekly = np.where(weekday >= 5, 0.65, 1.0)
    return (0.15 + day + rush) * weekly


def _buildings_profile(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    diurnal = (
        1.0
        + 0.3 * np.exp(-0.5 * ((hour - 7.5) / 2.0) ** 2)
        + 0.15 * np.cos(2 * np.pi * (hour - 19.0) / 24.0)
    )
    weekly = np.where(weekday >= 5, 0.9, 1.0)
    return diurnal * weekly


def make_emissions(
    grid: Grid,
    time: TimeAxis,
    sectors: tuple[str, ...],
    *,
    rng: np.random.Generator,
    city_total_kt_per_day: float,
    core_radius_km: float,
    n_point_sources: int,
    lon: float,
) -> CityEmissions:
    """Truth emissions of the synthetic city averaged over the state bins.

    The first sector gets the road network (traffic cycle), every other sector shares the
    building density (heating/commercial cycle); point sources (constant) go to the last sector.
    The city total (inside ``city_mask``) averages ``city_total_kt_per_day`` [kt CO2 day-1].

    Returns
    -------
    CityEmissions
    """
    xk = (grid.x / 1000.0)[None, :]
    yk = (grid.y / 1000.0)[:, None]
    r = np.hypot(xk, yk)
    extent = 0.5 * min(grid.nx * grid.dx, grid.ny * abs(grid.dy)) / 1000.0
    city_mask = r <= 0.8 * extent

    density = np.exp(-0.5 * (r / core_radius_km) ** 2) + 0.12 * np.exp(-r / (2.5 * core_radius_km))
    # Roads: a ring road and radial highways at seeded angles.
    ring = np.abs(r - 1.6 * core_radius_km)
    angles = rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, 6, endpoint=False)
    angles = angles + rng.normal(0, 0.15, angles.size)
    ends = 0.95 * extent
    dist = np.stack(
        [_segment_distance(xk, yk, 0.0, 0.0, ends * np.cos(a), ends * np.sin(a)) for a in angles]
    ).min(axis=0)
    road = np.exp(-0.5 * (np.minimum(ring, dist) / 0.6) ** 2)
    traffic_map = road * (0.35 + density) + 0.25 * density
    building_map = density

    # Point sources 0.3-0.8 of the half extent from the centre.
    rad = rng.uniform(0.3, 0.8, n_point_sources) * extent
    ang = rng.uniform(0, 2 * np.pi, n_point_sources)
    iy, ix = grid.index(rad * np.cos(ang) * 1000.0, rad * np.sin(ang) * 1000.0)
    points = np.stack([iy, ix], axis=1).astype(np.int64)
    point_map = np.zeros(grid.shape)
    np.add.at(point_map, (iy, ix), 1.0)

    hour_starts = np.arange(time.edges[0], time.edges[-1], np.timedelta64(1, "h"))
    hour, weekday = _local_hours(hour_starts + np.timedelta64(30, "m"), lon)
    bins = time.index(hour_starts)
    counts = np.bincount(bins, minlength=time.nt)

    def bin_mean(profile: np.ndarray) -> np.ndarray:
        return np.bincount(bins, weights=profile, minlength=time.nt) / counts

    prof_traffic = bin_mean(_traffic_profile(hour, weekday))
    prof_buildings = bin_mean(_buildings_profile(hour, weekday))

    nsec = len(sectors)
    flux = np.zeros((nsec, time.nt, *grid.shape))
    flux[0] = prof_traffic[:, None, None] * traffic_map
    for s in range(1, nsec):
        flux[s] = prof_buildings[:, None, None] * building_map / (nsec - 1)
    if nsec == 1:
        flux[0] += prof_buildings[:, None, None] * building_map
    # Scale the diffuse part to 80 % of the total; point sources carry 20 % (if any).
    area = grid.cell_area
    seconds_per_day = 86400.0
    diffuse_daily = (flux * area).sum(axis=(0, 2, 3)).mean() * seconds_per_day * UMOL_TO_T_CO2
    target_t = city_total_kt_per_day * 1000.0
    share_points = 0.2 if n_point_sources > 0 else 0.0
    flux *= (1.0 - share_points) * target_t / diffuse_daily
    if n_point_sources > 0:
        per_cell_flux = (
            share_points
            * target_t
            / (seconds_per_day * UMOL_TO_T_CO2 * float((point_map * area).sum()))
        )
        flux[-1] += per_cell_flux * point_map
    # Renormalise on the city mask so that the city total is exactly the target.
    city_daily = (flux * area * city_mask).sum(axis=(0, 2, 3)) * time.seconds
    flux *= target_t * time.seconds.sum() / 86400.0 / (city_daily.sum() * UMOL_TO_T_CO2)
    return CityEmissions(flux=flux, city_mask=city_mask, point_sources=points)
