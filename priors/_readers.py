"""Inventory readers, registered by format name, converting to µmol m-2 s-1 on the native grid.

All readers return an ``xarray.DataArray`` ``(sector, [time,] y, x)`` named ``"flux"`` with the
coordinates described in :mod:`priors._geometry` (edges, ``cell_area`` [m²], 2-D ``lat``/``lon``,
``spatial_ref`` grid mapping) and attributes ``units="umol m-2 s-1"``, ``source`` (the file),
``format`` and, when known, ``period_start``/``period_end`` (ISO, UTC) of the period that the
mean flux describes. A ``time`` dimension comes with a ``time_end`` coordinate (records are the
half-open periods ``[time, time_end)``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyproj
import xarray as xr

import ingest
from ingest import FileProbe

from ._geometry import NativeGrid, edges_from_centres, native_dataarray
from ._registry import _probe_sniffer, register_inventory_reader
from ._units import SECONDS_PER_YEAR_365, UnitError, parse_units, to_flux

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- shared helpers
def _check_values(values: np.ndarray, where: str, *, allow_negative: bool) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{where}: found {int(bad.sum())} non-finite values (NaN/inf) out of {values.size}; "
            "fill or mask them before reading (e.g. fill_nodata=0 for no-data cells)"
        )
    if not allow_negative and (values < 0).any():
        n = int((values < 0).sum())
        raise ValueError(
            f"{where}: found {n} negative emissions (min {float(values.min()):.6g}); this format "
            "holds non-negative emissions only — the file is corrupt or not of this format"
        )


def _check_geographic(x: np.ndarray, y: np.ndarray, xn: str, yn: str, where: str) -> None:
    """Refuse geographic cell centres beyond ±90° latitude or -180..360° longitude (swapped or
    scaled axes, projected metres in a file said to be lon/lat), naming the coordinate."""
    for name, c, lo, hi, what in (
        (xn, x, -180.0, 360.0, "longitude"),
        (yn, y, -90.0, 90.0, "latitude"),
    ):
        if c.size and (not np.isfinite(c).all() or c.min() < lo or c.max() > hi):
            raise ValueError(
                f"{where}: coordinate {name!r} ({what}) spans {np.nanmin(c):.6g} to "
                f"{np.nanmax(c):.6g} degrees, beyond [{lo:g}, {hi:g}] (or holds NaN): latitude "
                "and longitude may be swapped or scaled, or the grid is projected; fix the "
                "file's coordinates (they are never wrapped or clipped silently)"
            )


def _bbox_index(lo: np.ndarray, hi: np.ndarray, vmin: float, vmax: float, where: str) -> np.ndarray:
    tol = 1e-9 * float(np.max(hi - lo))  # cells merely touching the box are not read
    sel = np.flatnonzero((hi > vmin + tol) & (lo < vmax - tol))
    if sel.size == 0:
        raise ValueError(
            f"{where}: bbox [{vmin:.6g}, {vmax:.6g}] does not intersect the inventory extent "
            f"[{float(lo.min()):.6g}, {float(hi.max()):.6g}]; check the bbox (lon/lat degrees)"
        )
    return np.arange(sel[0], sel[-1] + 1)


def _bbox_in_crs(bbox: tuple[float, float, float, float], crs: pyproj.CRS) -> tuple[float, ...]:
    if crs.is_geographic:
        return tuple(float(b) for b in bbox)
    t = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return tuple(t.transform_bounds(*bbox, densify_pts=21))


def _period_attrs(start: Any, end: Any) -> dict[str, str]:
    return {
        "period_start": pd.Timestamp(start).isoformat(),
        "period_end": pd.Timestamp(end).isoformat(),
    }


def _sector_from_name(name: str, default: str = "total") -> str:
    codes = {
        "TOTALS": "total",
        "ENE": "energy",
        "IND": "industry",
        "TRO": "road",
        "RCO": "residential",
        "PRO": "fuel_production",
        "REF_TRF": "refineries",
    }
    for code, sector in codes.items():
        if re.search(rf"(^|[_.]){code}([_.]|$)", name):
            return sector
    return default


# ----------------------------------------------------------------------------- GeoTIFF
def _read_geotiff_core(
    path: Path,
    *,
    units: str | None,
    fmt: str,
    sector: str,
    bbox: tuple[float, float, float, float] | None,
    period: tuple[Any, Any] | None,
    allow_negative: bool,
    fill_nodata: float | None,
    default_crs: str | None = None,
) -> xr.DataArray:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        if src.crs is None and default_crs is None:
            raise ValueError(f"{path}: the GeoTIFF has no CRS; pass crs=… or fix the file")
        crs = pyproj.CRS.from_user_input(src.crs.to_wkt() if src.crs else default_crs)
        t = src.transform
        if t.b != 0 or t.d != 0:
            raise ValueError(f"{path}: rotated rasters are not supported (transform {tuple(t)})")
        xe = t.c + t.a * np.arange(src.width + 1)
        ye = t.f + t.e * np.arange(src.height + 1)
        if crs.is_geographic:
            _check_geographic(
                0.5 * (xe[:-1] + xe[1:]), 0.5 * (ye[:-1] + ye[1:]), "x", "y", f"{path}"
            )
        x_lo, x_hi = np.minimum(xe[:-1], xe[1:]), np.maximum(xe[:-1], xe[1:])
        y_lo, y_hi = np.minimum(ye[:-1], ye[1:]), np.maximum(ye[:-1], ye[1:])
        ix = np.arange(src.width)
        iy = np.arange(src.height)
        if bbox is not None:
            b = _bbox_in_crs(bbox, crs)
            ix = _bbox_index(x_lo, x_hi, b[0], b[2], f"{path}: bbox")
            iy = _bbox_index(y_lo, y_hi, b[1], b[3], f"{path}: bbox")
        window = Window(ix[0], iy[0], ix.size, iy.size)
        values = src.read(1, window=window).astype(float)
        nodata = src.nodata
        tag_units = src.tags().get("units") or (src.units[0] if src.units else None)
    where = f"{path} (band 1)"
    if nodata is not None and np.isfinite(nodata):
        mask = values == nodata
        if mask.any():
            if fill_nodata is None:
                raise ValueError(
                    f"{where}: {int(mask.sum())} cells hold the no-data value {nodata}; pass "
                    "fill_nodata=0 to treat them as zero emission"
                )
            values[mask] = fill_nodata
    if fill_nodata is not None:
        values[~np.isfinite(values)] = fill_nodata
    _check_values(values, where, allow_negative=allow_negative)
    native = NativeGrid(crs, x_lo[ix], x_hi[ix], y_lo[iy], y_hi[iy])
    spec = parse_units(units or tag_units, where=where)
    seconds = None
    attrs: dict[str, Any] = {"source": str(path), "format": fmt, "original_units": spec.canonical}
    if period is not None:
        p0, p1 = pd.Timestamp(period[0]), pd.Timestamp(period[1])
        seconds = (p1 - p0).total_seconds()
        attrs.update(_period_attrs(p0, p1))
    if spec.time == "month" and seconds is None:
        raise UnitError(
            f"{where}: units {spec.canonical!r} are per month; pass period=(start, end)"
        )
    flux = to_flux(values, spec, cell_area=native.cell_area, period_seconds=seconds, where=where)
    xc = 0.5 * (xe[:-1] + xe[1:])[ix]
    yc = 0.5 * (ye[:-1] + ye[1:])[iy]
    return native_dataarray(
        flux[None],
        ("sector", "y", "x"),
        native,
        xc,
        yc,
        coords={"sector": ("sector", [sector])},
        attrs=attrs,
    )


_ODIAC_NAME = re.compile(r"odiac(\d{4}).*_(\d{2})(\d{2})\.tiff?$", re.IGNORECASE)


@_probe_sniffer
def _sniff_odiac(probe: FileProbe) -> bool:
    return probe.suffix in (".tif", ".tiff") and bool(_ODIAC_NAME.search(probe.name))


@register_inventory_reader("odiac", sniff=_sniff_odiac, priority=100)
def read_odiac(
    path: str | Path,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    month: str | None = None,
    sector: str = "total",
) -> xr.DataArray:
    """Read an ODIAC monthly GeoTIFF (tonne C per cell per month, EPSG:4326, 30 arc-seconds).

    The month comes from the file name (``odiac2023_1km_excl_intl_2301.tif`` → January 2023) or
    ``month="2023-01"``. Flux = tC · 1e12/12.011 [µmol] / (cell area [m²] · seconds of the month);
    cell areas are exact ellipsoidal (WGS84) areas. The total in t CO2 is tC × 44.0095/12.011.
    Negative values are an error (ODIAC emissions are non-negative).

    Parameters
    ----------
    path : str or pathlib.Path
    bbox : tuple of float, optional
        ``(lon_min, lat_min, lon_max, lat_max)`` [degrees]: read only this window (the global
        file is 21600 × 43200 cells).
    month : str, optional
        ``"YYYY-MM"`` when the file name does not carry YYMM.
    sector : str
        Sector label (ODIAC is total fossil CO2).
    """
    path = Path(path)
    if month is None:
        m = _ODIAC_NAME.search(path.name)
        if m is None:
            raise ValueError(
                f"{path}: cannot tell the month from the file name (expected …_YYMM.tif as in "
                "odiac2023_1km_excl_intl_2301.tif); pass month='YYYY-MM'"
            )
        month = f"20{m.group(2)}-{m.group(3)}"
    start = pd.Timestamp(f"{month}-01")
    end = start + pd.offsets.MonthBegin(1)
    return _read_geotiff_core(
        path,
        units="tC cell-1 month-1",
        fmt="odiac",
        sector=sector,
        bbox=bbox,
        period=(start, end),
        allow_negative=False,
        fill_nodata=None,
        default_crs="EPSG:4326",
    )


@_probe_sniffer
def _sniff_tif(probe: FileProbe) -> bool:
    return probe.suffix in (".tif", ".tiff") or probe.container == "tiff"


@register_inventory_reader("geotiff", sniff=_sniff_tif, priority=0)
def read_geotiff(
    path: str | Path,
    *,
    units: str | None = None,
    sector: str = "total",
    bbox: tuple[float, float, float, float] | None = None,
    period: tuple[Any, Any] | None = None,
    allow_negative: bool = False,
    fill_nodata: float | None = None,
) -> xr.DataArray:
    """Read a generic single-band emission GeoTIFF with a ``units`` tag (or ``units=``).

    ``period=(start, end)`` gives the period of per-month/per-year totals (its length converts
    them to a rate; ``yr-1`` without a period means 365 days). Accepted units:
    :data:`priors.ACCEPTED_UNITS`.
    """
    return _read_geotiff_core(
        Path(path),
        units=units,
        fmt="geotiff",
        sector=sector,
        bbox=bbox,
        period=period,
        allow_negative=allow_negative,
        fill_nodata=fill_nodata,
    )


# ----------------------------------------------------------------------------- NetCDF
def _find_xy(ds: xr.Dataset, var: str) -> tuple[str, str]:
    dims = ds[var].dims
    for xn, yn in (("x", "y"), ("lon", "lat"), ("longitude", "latitude"), ("rlon", "rlat")):
        if xn in dims and yn in dims:
            return xn, yn
    raise ValueError(
        f"variable {var!r}: expected horizontal dims x/y or lon/lat, found {dims}; "
        "only regular rectilinear grids are supported"
    )


def _nc_crs(ds: xr.Dataset, var: str, xn: str, crs: Any) -> pyproj.CRS:
    if crs is not None:
        return pyproj.CRS.from_user_input(crs)
    gm = ds[var].attrs.get("grid_mapping") or ds[var].encoding.get("grid_mapping")
    if gm and gm in ds.variables:
        attrs = ds[gm].attrs
        if "crs_wkt" in attrs:
            return pyproj.CRS.from_wkt(attrs["crs_wkt"])
        if "spatial_ref" in attrs:
            return pyproj.CRS.from_wkt(attrs["spatial_ref"])
        return pyproj.CRS.from_cf(attrs)
    if xn in ("lon", "longitude"):
        return pyproj.CRS.from_epsg(4326)
    raise ValueError(
        f"variable {var!r} has projected x/y coordinates but no grid_mapping variable; pass crs="
    )


def _time_bounds(ds: xr.Dataset, tn: str) -> tuple[np.ndarray, np.ndarray]:
    t = ds[tn].values.astype("datetime64[ns]")
    bn = ds[tn].attrs.get("bounds")
    if bn and bn in ds.variables:
        b = ds[bn].values.astype("datetime64[ns]")
        return b[:, 0], b[:, 1]
    if t.size > 1:
        step = np.diff(t)
        if not (step == step[0]).all():
            raise ValueError(
                f"time: irregular records without a bounds variable (steps {np.unique(step)})"
            )
        return t, t + step[0]
    raise ValueError(
        "time: a single record needs a bounds variable (time:bounds) to know its period"
    )


def _read_netcdf_core(
    path: Path,
    *,
    variable: str | None,
    units: str | None,
    crs: Any,
    sector: str | None,
    bbox: tuple[float, float, float, float] | None,
    year: int | None,
    fmt: str,
    allow_negative: bool,
    candidates: tuple[str, ...] = (),
) -> xr.DataArray:
    with ingest.open_dataset(path, "inventory", decode_times=True) as ds:
        if variable is None:
            found = [v for v in candidates if v in ds.data_vars]
            if not found:
                found = [v for v in ds.data_vars if ds[v].ndim >= 2 and "bnds" not in v]
                found = [v for v in found if not v.endswith("_bounds")]
            if len(found) != 1:
                raise KeyError(
                    f"{path}: cannot choose the emission variable (candidates {found or 'none'}, "
                    f"variables {sorted(map(str, ds.data_vars))}); pass variable="
                )
            variable = found[0]
        if variable not in ds.data_vars:
            raise KeyError(
                f"{path}: variable {variable!r} not found; variables are "
                f"{sorted(map(str, ds.data_vars))}"
            )
        where = f"{path}:{variable}"
        xn, yn = _find_xy(ds, variable)
        the_crs = _nc_crs(ds, variable, xn, crs)
        da = ds[variable]
        extra = [d for d in da.dims if d not in (xn, yn)]
        tn = next(
            (d for d in extra if d == "time" or np.issubdtype(ds[d].dtype, np.datetime64)), None
        )
        others = [d for d in extra if d != tn]
        if others:
            if all(da.sizes[d] == 1 for d in others):
                da = da.isel({d: 0 for d in others})
            else:
                raise ValueError(f"{where}: unexpected extra dims {others}; select them first")
        da = da.transpose(*([tn] if tn else []), yn, xn)
        x = np.asarray(ds[xn].values, float)
        y = np.asarray(ds[yn].values, float)
        tbounds = _time_bounds(ds, tn) if tn else None
        values = np.asarray(da.values, dtype=float)
        file_units = da.attrs.get("units")
    # geographic: longitudes 0–360 -> ±180, sorted; latitudes ascending
    if the_crs.is_geographic:
        _check_geographic(x, y, xn, yn, where)
        x = (x + 180.0) % 360.0 - 180.0
    ox, oy = np.argsort(x, kind="stable"), np.argsort(y, kind="stable")
    x, y = x[ox], y[oy]
    values = values[..., oy, :][..., ox]
    clip_x = (-180.0, 180.0) if the_crs.is_geographic else None
    clip_y = (-90.0, 90.0) if the_crs.is_geographic else None
    xe = edges_from_centres(x, clip_x)
    if the_crs.is_geographic and x.size > 2 and x[0] + 360.0 - x[-1] <= 1.5 * np.median(np.diff(x)):
        # global in longitude: the wrap-around gap is split at the antimeridian
        xe[0], xe[-1] = -180.0, 180.0
    ye = edges_from_centres(y, clip_y)
    ix, iy = np.arange(x.size), np.arange(y.size)
    if bbox is not None:
        b = _bbox_in_crs(bbox, the_crs)
        ix = _bbox_index(xe[:-1], xe[1:], b[0], b[2], f"{where}: bbox")
        iy = _bbox_index(ye[:-1], ye[1:], b[1], b[3], f"{where}: bbox")
        values = values[..., iy, :][..., ix]
    _check_values(values, where, allow_negative=allow_negative)
    native = NativeGrid(the_crs, xe[:-1][ix], xe[1:][ix], ye[:-1][iy], ye[1:][iy])
    spec = parse_units(units or file_units, where=where)
    attrs: dict[str, Any] = {"source": str(path), "format": fmt, "original_units": spec.canonical}
    coords: dict[str, Any] = {"sector": ("sector", [sector or _sector_from_name(path.name)])}
    if tbounds is not None:
        t0, t1 = tbounds
        seconds = ((t1 - t0) / np.timedelta64(1, "s")).astype(float)
        coords["time"] = ("time", t0)
        coords["time_end"] = ("time", t1)
        attrs.update(_period_attrs(t0[0], t1[-1]))
        shape = (-1,) + (1,) * 2
        flux = to_flux(
            values,
            spec,
            cell_area=native.cell_area,
            period_seconds=seconds.reshape(shape) if spec.time in ("yr", "month") else None,
            where=where,
        )
        dims: tuple[str, ...] = ("sector", "time", "y", "x")
    else:
        seconds = None
        if year is not None:
            p0, p1 = pd.Timestamp(f"{year}-01-01"), pd.Timestamp(f"{year + 1}-01-01")
            attrs.update(_period_attrs(p0, p1))
            seconds = (p1 - p0).total_seconds()
        if spec.time == "yr" and seconds is None:
            seconds = SECONDS_PER_YEAR_365
            log.info("%s: year length unknown; converting yr-1 with 365 days", where)
        flux = to_flux(
            values, spec, cell_area=native.cell_area, period_seconds=seconds, where=where
        )
        dims = ("sector", "y", "x")
    if native.crs.is_geographic and (x.size > 1 and np.ptp(np.diff(xe)) > 1e-4 * np.diff(xe).max()):
        attrs["note"] = (
            "irregular cell spacing: cell edges are midpoints between coordinates (each value "
            "stands for the area nearer to its coordinate), clipped at ±180°/±90°"
        )
    return native_dataarray(flux[None], dims, native, x[ix], y[iy], coords=coords, attrs=attrs)


_EDGAR_VARS = ("emi_co2", "fluxes", "emissions")


@_probe_sniffer
def _sniff_edgar(probe: FileProbe) -> bool:
    if not probe.is_netcdf:
        return False
    return bool(set(probe.variables) & set(_EDGAR_VARS[:2])) or "edgar" in probe.name.lower()


@register_inventory_reader("edgar", sniff=_sniff_edgar, priority=90)
def read_edgar(
    path: str | Path,
    *,
    variable: str | None = None,
    units: str | None = None,
    sector: str | None = None,
    year: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> xr.DataArray:
    """Read an EDGAR gridded NetCDF (v6/v7 ``emi_co2``, v8 ``fluxes``; kg CO2 m-2 s-1).

    Longitudes 0–360 are normalised to ±180 and sorted; latitudes ascending. Cell edges are the
    midpoints between coordinates, outer edges half a spacing out and clipped at ±180°/±90°.
    For the native 0.1° grid these are the exact cell bounds. For a *subsampled* file (such as
    the 35 × 71 test file, whose coordinates are a regular ~5.29° × 5.14° subsample of the 0.1°
    centres, spanning 365° in longitude) the cells are not contiguous 0.1° cells: after the
    ±180 normalisation the two samples at 359.95° and 0.05° sit 0.1° apart, so each value is
    taken to stand for the area nearer to its coordinate than to any other (midpoint edges),
    which tiles the globe exactly once. Totals from such a file are a coarse resample, not the
    EDGAR global total.

    ``units=`` replaces the variable's ``units`` attribute (files without one, or with a wrong one).
    The year (``_2015_`` in the file name, or ``year=``) sets ``period_start``/``period_end``.
    Negative values are an error. The sector comes from the file name (``TOTALS`` → ``total``,
    ``ENE`` → ``energy``, …) unless ``sector=`` is given.
    """
    path = Path(path)
    if year is None:
        m = re.search(r"(?:^|[_.])((?:19|20)\d{2})(?:[_.]|$)", path.name)
        year = int(m.group(1)) if m else None
    return _read_netcdf_core(
        path,
        variable=variable,
        units=units,
        crs="EPSG:4326",
        sector=sector,
        bbox=bbox,
        year=year,
        fmt="edgar",
        allow_negative=False,
        candidates=_EDGAR_VARS,
    )


@_probe_sniffer
def _sniff_vulcan(probe: FileProbe) -> bool:
    return probe.is_netcdf and any(
        "grid_mapping" in v.attrs and "x" in v.dims and "y" in v.dims
        for v in probe.variables.values()
    )


@register_inventory_reader("vulcan", sniff=_sniff_vulcan, priority=80)
def read_vulcan(
    path: str | Path,
    *,
    variable: str | None = None,
    units: str | None = None,
    sector: str | None = None,
    year: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> xr.DataArray:
    """Read a Vulcan/Hestia-like projected NetCDF (x/y [m] with a CF ``grid_mapping`` variable).

    Annual (no time dim, or one record with ``time_bnds``) or hourly ``(time, y, x)``; units such as
    ``tC km-2 yr-1`` or ``tC km-2 h-1`` (:data:`priors.ACCEPTED_UNITS`). Per-year values are
    converted with the length of their record (from the time bounds or ``year=``; 365 days
    when unknown). Negative values are an error.
    """
    return _read_netcdf_core(
        Path(path),
        variable=variable,
        units=units,
        crs=None,
        sector=sector,
        bbox=bbox,
        year=year,
        fmt="vulcan",
        allow_negative=False,
    )


@_probe_sniffer
def _sniff_nc(probe: FileProbe) -> bool:
    return probe.is_netcdf


@register_inventory_reader("netcdf", sniff=_sniff_nc, priority=0)
def read_netcdf(
    path: str | Path,
    *,
    variable: str | None = None,
    units: str | None = None,
    crs: Any = None,
    sector: str = "total",
    year: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    allow_negative: bool = False,
) -> xr.DataArray:
    """Read a generic gridded emission NetCDF with a ``units`` attribute (or ``units=``).

    Horizontal dims x/y (with a grid_mapping variable or ``crs=``) or lon/lat; optional time.
    """
    return _read_netcdf_core(
        Path(path),
        variable=variable,
        units=units,
        crs=crs,
        sector=sector,
        bbox=bbox,
        year=year,
        fmt="netcdf",
        allow_negative=allow_negative,
    )
