"""Point sources (power plants, industry): reading and placing on the inversion grid."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from inversion.grid import Grid

from ._geometry import flux_on_grid
from ._units import _MASS, _MOL, SECONDS_PER_YEAR_365, UnitError, rate_factor

log = logging.getLogger(__name__)

_RATE_TIME = {"s-1": 1.0, "h-1": 3600.0, "d-1": 86400.0, "yr-1": SECONDS_PER_YEAR_365}
#: Accepted point-source emission units (amount per time), e.g. ``"tCO2 yr-1"``, ``"kt CO2/yr"``,
#: ``"kg/s"`` (kg CO2), ``"tC yr-1"``, ``"mol s-1"``; a bare ``t``/``kg``/``g`` is CO2 mass.
POINT_UNITS = tuple(f"{a} {t}" for a in (*_MOL, *_MASS, "g", "kg", "t") for t in _RATE_TIME)


def point_rate_factor(units: str | None, *, where: str = "point sources") -> float:
    """Factor converting an emission rate in ``units`` to µmol CO2 s-1.

    Raises
    ------
    UnitError
        If ``units`` is missing or not in :data:`POINT_UNITS`.
    """
    return rate_factor(units, where=where)


def read_point_sources(
    path: str | Path,
    *,
    units: str | None = None,
    lon: str = "lon",
    lat: str = "lat",
    emission: str = "emission",
    units_column: str = "units",
    sector: str = "sector",
    stack_height: str = "stack_height",
    name: str = "name",
    default_sector: str = "point",
) -> pd.DataFrame:
    """Read point sources from CSV (lon/lat columns) or a vector file (GeoPackage, GeoJSON…).

    Parameters
    ----------
    path : str or pathlib.Path
        ``.csv`` or any file geopandas reads (point geometries, reprojected to EPSG:4326).
    units : str, optional
        Emission units for all rows; else a per-row ``units_column`` is required
        (accepted: :data:`POINT_UNITS`).
    lon, lat, emission, units_column, sector, stack_height, name : str
        Column names. ``sector``, ``stack_height`` [m] and ``name`` are optional.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``sector``, ``lon``, ``lat`` [degrees], ``rate_umol_s`` [µmol CO2 s-1],
        ``stack_height_m`` [m] (NaN when not given).

    Raises
    ------
    FileNotFoundError, KeyError, priors.UnitError, ValueError
        Missing file or column, unknown units, non-finite or negative emissions, latitudes
        beyond ±90° or longitudes beyond -180..360° (swapped columns).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"point-source file {str(path)!r} does not exist")
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(path)
        missing = [c for c in (lon, lat, emission) if c not in df.columns]
        if missing:
            raise KeyError(f"{path}: missing columns {missing}; found {list(df.columns)}")
        lons, lats = df[lon].to_numpy(float), df[lat].to_numpy(float)
    else:
        import geopandas as gpd

        gdf = gpd.read_file(path)
        if gdf.crs is None:
            raise ValueError(f"{path}: the layer has no CRS; set one (e.g. EPSG:4326)")
        if not (gdf.geom_type == "Point").all():
            raise ValueError(f"{path}: expected point geometries, found {set(gdf.geom_type)}")
        gdf = gdf.to_crs("EPSG:4326")
        if emission not in gdf.columns:
            raise KeyError(f"{path}: missing column {emission!r}; found {list(gdf.columns)}")
        lons, lats = gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()
        df = pd.DataFrame(gdf.drop(columns="geometry"))
    where = f"{path}:{emission}"
    if units is not None:
        factor = np.full(len(df), point_rate_factor(units, where=where))
    elif units_column in df.columns:
        ufac = {u: point_rate_factor(u, where=where) for u in df[units_column].astype(str).unique()}
        factor = df[units_column].astype(str).map(ufac).to_numpy(float)
    else:
        raise UnitError(f"{where}: no emission units; pass units= or add a {units_column!r} column")
    values = df[emission].to_numpy(float)
    if not (np.isfinite(values).all() and np.isfinite(lons).all() and np.isfinite(lats).all()):
        raise ValueError(
            f"{path}: non-finite emission or coordinates in {int((~np.isfinite(values)).sum())} rows"
        )
    if (values < 0).any():
        raise ValueError(
            f"{where}: {int((values < 0).sum())} negative emissions; point sources emit"
        )
    bad = np.flatnonzero((np.abs(lats) > 90) | (lons < -180) | (lons > 360))
    if bad.size:
        names = df[name].astype(str).to_numpy() if name in df.columns else bad.astype(str)
        raise ValueError(
            f"{path}: {bad.size} point source(s) with latitude beyond ±90° or longitude beyond "
            f"-180..360° (first {names[bad[0]]!r}: lon {lons[bad[0]]:.6g}, lat "
            f"{lats[bad[0]]:.6g}; rows {(bad[:5] + 1).tolist()}): the {lon!r}/{lat!r} columns "
            "may be swapped; fix the file or pass lon=/lat= with the right column names"
        )
    return pd.DataFrame(
        {
            "name": df[name].astype(str)
            if name in df.columns
            else [f"point_{i}" for i in range(len(df))],
            "sector": df[sector].astype(str) if sector in df.columns else default_sector,
            "lon": lons,
            "lat": lats,
            "rate_umol_s": values * factor,
            "stack_height_m": df[stack_height].to_numpy(float)
            if stack_height in df.columns
            else np.nan,
        }
    )


@dataclass(frozen=True, eq=False)
class PointSourcePlacement:
    """Point sources located on a grid.

    Attributes
    ----------
    flux : xarray.DataArray
        (sector, y, x) [µmol m-2 s-1]: rate / cell area summed per cell, or zeros when the sources
        are kept as separate state elements.
    iy, ix : numpy.ndarray
        Cell indices of the kept sources.
    rate_umol_s : numpy.ndarray
        Emission rates [µmol s-1] of the kept sources.
    names, sectors : tuple of str
    stack_height_m : numpy.ndarray
        Stack heights [m] (NaN where unknown).
    n_outside : int
        Sources outside the grid, dropped (and logged).
    """

    flux: xr.DataArray
    iy: np.ndarray
    ix: np.ndarray
    rate_umol_s: np.ndarray
    names: tuple[str, ...]
    sectors: tuple[str, ...]
    stack_height_m: np.ndarray
    n_outside: int


def place_point_sources(
    points: pd.DataFrame,
    grid: Grid,
    *,
    sectors: tuple[str, ...] | None = None,
    as_state_elements: bool = False,
    on_outside: str = "drop",
) -> PointSourcePlacement:
    """Place point sources (from :func:`read_point_sources`) in their grid cells.

    Parameters
    ----------
    points : pandas.DataFrame
        Columns ``lon``, ``lat`` [degrees], ``rate_umol_s`` [µmol s-1], ``sector``, ``name``.
    grid : inversion.Grid
    sectors : tuple of str, optional
        Sector labels of the output flux (default: the sectors of ``points``, sorted).
    as_state_elements : bool
        Keep sources as separate state elements: ``flux`` is zero and the returned indices/rates
        describe them (e.g. for a ``StateVector`` extra block).
    on_outside : {"drop", "raise"}
        What to do with sources outside the grid (dropped ones are counted and logged).
    """
    lon = points["lon"].to_numpy(float)
    lat = points["lat"].to_numpy(float)
    iy, ix = grid.index_lonlat(lon, lat)
    inside = iy >= 0
    n_out = int((~inside).sum())
    if n_out:
        if on_outside == "raise":
            raise ValueError(f"{n_out} point sources lie outside the grid {grid!r}")
        log.warning(
            "place_point_sources: %d of %d point sources lie outside the grid and are not in "
            "the prior (counted in n_outside)",
            n_out,
            len(points),
        )
    pts = points[inside]
    iy, ix = iy[inside], ix[inside]
    sec_all = tuple(sorted(set(pts["sector"].astype(str)))) if sectors is None else tuple(sectors)
    unknown = set(pts["sector"].astype(str)) - set(sec_all)
    if unknown:
        raise ValueError(f"point sources have sectors {sorted(unknown)} not in sectors={sec_all}")
    rate = pts["rate_umol_s"].to_numpy(float)
    field = np.zeros((len(sec_all), *grid.shape))
    if not as_state_elements and len(pts):
        si = np.searchsorted(
            np.array(sec_all), pts["sector"].astype(str).to_numpy(), sorter=np.argsort(sec_all)
        )
        si = np.argsort(sec_all)[si]
        np.add.at(field, (si, iy, ix), rate / grid.cell_area[iy, ix])
    flux = flux_on_grid(
        field,
        grid,
        ("sector", "y", "x"),
        coords={"sector": ("sector", list(sec_all))},
        attrs={"source": "point sources"},
    )
    stack = (
        pts["stack_height_m"].to_numpy(float)
        if "stack_height_m" in pts
        else np.full(len(pts), np.nan)
    )
    return PointSourcePlacement(
        flux=flux,
        iy=iy,
        ix=ix,
        rate_umol_s=rate,
        names=tuple(pts["name"].astype(str))
        if "name" in pts
        else tuple(f"point_{i}" for i in range(len(pts))),
        sectors=tuple(pts["sector"].astype(str)),
        stack_height_m=stack,
        n_outside=n_out,
    )
