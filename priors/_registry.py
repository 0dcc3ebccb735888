"""Inventory readers by format name (an :class:`ingest.Registry`), ``read_inventory`` and
``inspect_inventory``; the readers themselves are in ``_readers.py``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ingest import FileProbe, Inspection, Registry, bbox_of

from ._regions import UMOL_TO_T_CO2
from ._units import parse_units

__all__ = [
    "available_formats",
    "inspect_inventory",
    "inventory_formats",
    "read_inventory",
    "register_inventory_reader",
]

log = logging.getLogger(__name__)

Reader = Callable[..., xr.DataArray]

REGISTRY = Registry("inventory")


def register_inventory_reader(
    name: str,
    reader: Reader | None = None,
    *,
    sniff: Callable[..., bool] | None = None,
    priority: int = 50,
    overwrite: bool = False,
    description: str = "",
) -> Any:
    """Register ``reader(path, **opts) -> DataArray`` under format ``name``.

    Usable as a decorator. ``sniff`` recognises the format for auto-detection: either
    ``sniff(probe: ingest.FileProbe) -> bool`` or the older ``sniff(path) -> bool``; sniffers
    run by decreasing ``priority`` (generic formats use 0).

    Raises
    ------
    ValueError
        If ``name`` is taken and ``overwrite`` is False.
    """
    wrapped = sniff
    if sniff is not None and not getattr(sniff, "_takes_probe", False):

        def wrapped(probe: FileProbe) -> bool:
            return bool(sniff(probe.path))

    return REGISTRY.register(
        name, reader, sniff=wrapped, priority=priority, overwrite=overwrite, description=description
    )


def _probe_sniffer(func: Callable[[FileProbe], bool]) -> Callable[[FileProbe], bool]:
    func._takes_probe = True  # type: ignore[attr-defined]
    return func


def available_formats() -> dict[str, str]:
    """Registered inventory formats: name -> one-line description, in detection order."""
    return REGISTRY.formats()


def inventory_formats() -> list[str]:
    """Names of the registered inventory formats (sorted; see :func:`available_formats`)."""
    return sorted(REGISTRY.formats())


def read_inventory(path: str | Path, format: str | None = None, **opts: Any) -> xr.DataArray:
    """Read an emission inventory and convert it to CO2 flux [µmol m-2 s-1] on its native grid.

    Parameters
    ----------
    path : str or pathlib.Path
        Inventory file.
    format : str, optional
        Registered format name (:func:`available_formats`: ``"odiac"``, ``"edgar"``,
        ``"vulcan"``, ``"geotiff"``, ``"netcdf"``, …); auto-detected when omitted.
    **opts
        Format options, e.g. ``bbox=(lon_min, lat_min, lon_max, lat_max)`` [degrees] to read
        only the cells intersecting a box, ``sector="total"``, ``units=`` for files without a
        units attribute, ``variable=`` for NetCDF; checked against the reader's signature.

    Returns
    -------
    xarray.DataArray
        CO2 flux (sector, [time,] y, x) [µmol m-2 s-1] on the native grid.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the format is unknown or cannot be detected (:class:`ingest.ReaderError`), an option
        is not accepted (:class:`ingest.ReaderOptionError`, also a ``TypeError``), the units
        cannot be converted (:class:`priors.UnitError` = :class:`ingest.UnitsError`), or the
        values are invalid (NaN, negative where the format forbids it).
    """
    name, da = REGISTRY.read(path, format, **opts)
    log.info("%s: read as inventory format %r", path, name)
    return da


#: Files up to this size are read in full by :func:`inspect_inventory` [bytes].
INSPECT_FULL_READ_BYTES = 512 * 2**20


def inspect_inventory(path: str | Path, format: str | None = None, **opts: Any) -> Inspection:
    """Open an inventory as :func:`read_inventory` would and summarise it (``cityflux validate``).

    Files up to 512 MiB, and any file read with ``bbox=``, are read in full with the given
    options, so every error :func:`read_inventory` raises is raised here with the same class and
    message. Larger files without ``bbox`` (a global ODIAC GeoTIFF) are checked on their header
    only: path, format detection, options, units (same parser and message), CRS and extent;
    value checks (NaN, negative cells) are then left to the read (``complete=False``).

    Parameters
    ----------
    path : str or Path
        Inventory file.
    format : str, optional
        Registered format name; detected when omitted.
    **opts
        Reader options, checked against the reader's signature.

    Returns
    -------
    ingest.Inspection
        ``n_records`` grid cells; ``time_range`` = the period the flux describes (UTC) when
        known; ``bbox`` (lon_min, lat_min, lon_max, lat_max) [degrees] of the grid; ``units`` as
        found; ``details``: ``sectors``, ``shape``, ``crs``, ``mean_flux_umol_m2_s``,
        ``total_t_co2`` over the period (when the period is known).

    Raises
    ------
    Same as :func:`read_inventory`.
    """
    path = Path(path)
    name = REGISTRY.resolve(path, format, opts)
    size = path.stat().st_size
    if size > INSPECT_FULL_READ_BYTES and opts.get("bbox") is None:
        return _inspect_header(path, name, opts, size)
    da = REGISTRY.get(name).reader(path, **opts)
    t_range = None
    if "period_start" in da.attrs:
        t_range = (
            np.datetime64(pd.Timestamp(da.attrs["period_start"]).to_datetime64(), "ns"),
            np.datetime64(pd.Timestamp(da.attrs["period_end"]).to_datetime64(), "ns"),
        )
    elif "time_end" in da.coords:
        t_range = (da["time"].values.min(), da["time_end"].values.max())
    area = np.asarray(da["cell_area"].values, float)
    mean = np.asarray(da.mean([d for d in da.dims if d not in ("y", "x")]).values, float)
    details: dict[str, Any] = {
        "sectors": [str(v) for v in da["sector"].values],
        "shape": {k: int(v) for k, v in da.sizes.items()},
        "crs": str(da["spatial_ref"].attrs.get("crs_wkt", ""))[:80],
        "mean_flux_umol_m2_s": float(np.nanmean(da.values)),
        "size_bytes": size,
    }
    if t_range is not None:
        seconds = (t_range[1] - t_range[0]) / np.timedelta64(1, "s")
        details["total_t_co2"] = float((mean * area).sum() * seconds * UMOL_TO_T_CO2)
    return Inspection(
        path=str(path),
        format=name,
        what="inventory",
        n_records=int(da.sizes["y"] * da.sizes["x"]),
        time_range=t_range,
        bbox=bbox_of(da["lon"].values, da["lat"].values),
        units={"flux": str(da.attrs.get("original_units", ""))},
        assumptions={k: str(da.attrs[k]) for k in ("note",) if k in da.attrs},
        details=details,
        complete=True,
    )


def _inspect_header(path: Path, name: str, opts: dict[str, Any], size: int) -> Inspection:
    """Header-only inspection of a large inventory file (no data read)."""
    probe = FileProbe(path)
    units: dict[str, str] = {}
    details: dict[str, Any] = {"size_bytes": size, "mode": "header only (file > 512 MiB)"}
    bbox = None
    if probe.container == "tiff":
        import rasterio

        with rasterio.open(path) as src:
            tag = src.tags().get("units") or (src.units[0] if src.units else None)
            b = src.bounds
            details.update({"shape": [src.height, src.width], "crs": str(src.crs)})
            if src.crs is None or src.crs.is_geographic:
                bbox = (b.left, b.bottom, b.right, b.top)
        if name == "odiac":
            tag = "tC cell-1 month-1"
        given = opts.get("units") or tag
        if given is not None or name not in ("odiac",):
            parse_units(given, where=f"{path} (band 1)")
        units["band 1"] = str(given)
    else:
        var = opts.get("variable")
        cands = [v for v, info in probe.variables.items() if len(info.dims) >= 2]
        var = (
            var
            or next((v for v in ("emi_co2", "fluxes") if v in probe.variables), None)
            or (cands[0] if len(cands) == 1 else None)
        )
        if var is not None:
            given = opts.get("units") or probe.variables[var].attrs.get("units")
            parse_units(given, where=f"{path}:{var}")
            units[var] = str(given)
        details["dims"] = probe.dims
    return Inspection(
        path=str(path), format=name, what="inventory", n_records=0, bbox=bbox, units=units,
        details=details, complete=False,
    )  # fmt: skip
