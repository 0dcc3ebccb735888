"""Footprint readers by format name (an :class:`ingest.Registry`), ``read_footprint`` and
``inspect_footprint``."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xarray as xr

from ingest import FileProbe, Inspection, Registry, bbox_of

from ._common import layer_bounds
from ._flexpart import read_flexpart
from ._generic import read_generic
from ._name import read_name, read_paris
from ._stilt import parse_stilt_name, read_stilt, read_xstilt

__all__ = [
    "FootprintReader",
    "available_formats",
    "detect_format",
    "inspect_footprint",
    "read_footprint",
    "register_footprint_reader",
]


class FootprintReader(Protocol):
    """A callable that reads one footprint file into the standard DataArray."""

    def __call__(self, path: str | Path, **kwargs: Any) -> xr.DataArray: ...


def _stilt_name(probe: FileProbe) -> dict | None:
    return parse_stilt_name(probe.path) if probe.suffix in (".nc", "") else None


def _sniff_xstilt(probe: FileProbe) -> bool:
    info = _stilt_name(probe)
    return info is not None and info["kind"] == "column"


def _sniff_stilt(probe: FileProbe) -> bool:
    if _stilt_name(probe) is not None:
        return True  # the name says STILT: read it as STILT (missing variables are reported)
    return probe.is_netcdf and ("foot" in probe.variables or "Footprint" in probe.variables)


def _sniff_flexpart(probe: FileProbe) -> bool:
    return probe.name.startswith("grid_time_") or (probe.is_netcdf and probe.has("spec001_mr"))


REGISTRY = Registry("footprint", allow_directories=True)
REGISTRY.register(
    "cityflux",
    read_generic,
    sniff=lambda p: p.is_netcdf and "cityflux_footprint_format" in p.attrs,
    priority=60,
    description="cityflux footprint layout (NetCDF or zarr, FORMAT.md)",
)
REGISTRY.register(
    "xstilt", read_xstilt, sniff=_sniff_xstilt, priority=55,
    description="X-STILT column footprint *_X_foot.nc (AK- and pressure-weighted)",
)  # fmt: skip
REGISTRY.register(
    "stilt", read_stilt, sniff=_sniff_stilt, priority=50,
    description="STILT footprint: R-STILT/PYSTILT *_foot.nc, ICOS STILT foot*x*_aggreg.nc",
)  # fmt: skip
REGISTRY.register(
    "flexpart", read_flexpart, sniff=_sniff_flexpart, priority=50,
    description="FLEXPART backward-run NetCDF output grid_time_*.nc (spec001_mr)",
)  # fmt: skip
REGISTRY.register(
    "paris", read_paris, sniff=lambda p: p.is_netcdf and p.has("srr"), priority=40,
    description="NAME footprint in the PARIS format, srr(time, latitude, longitude)",
)  # fmt: skip
REGISTRY.register(
    "name", read_name, sniff=lambda p: p.is_netcdf and p.has("fp"), priority=40,
    description="NAME footprint in the OpenGHG layout, fp(lat, lon, time) [+ fp_HiTRes]",
)  # fmt: skip


def register_footprint_reader(
    name: str,
    reader: FootprintReader,
    sniff: Callable[..., bool] | None = None,
    *,
    overwrite: bool = False,
    priority: int = 100,
) -> None:
    """Register ``reader`` under format ``name``.

    Parameters
    ----------
    name : str
        Format name for ``read_footprint(path, format=name)``.
    reader : callable
        ``reader(path, **kwargs) -> xarray.DataArray`` in the standard layout (FORMAT.md).
    sniff : callable, optional
        ``sniff(probe: ingest.FileProbe) -> bool``, or the older ``sniff(path, dataset_or_None)``,
        used by auto-detection.
    overwrite : bool
        Allow replacing an existing format.
    priority : int
        Detection order (default 100: before the built-in formats).
    """
    wrapped = sniff
    if sniff is not None and len(inspect.signature(sniff).parameters) == 2:

        def wrapped(probe: FileProbe) -> bool:
            ds = probe.dataset()
            try:
                return bool(sniff(probe.path, ds))
            finally:
                if ds is not None:
                    ds.close()

    REGISTRY.register(name, reader, sniff=wrapped, priority=priority, overwrite=overwrite)


def available_formats() -> dict[str, str]:
    """Registered footprint formats: name -> one-line description, in detection order."""
    return REGISTRY.formats()


def detect_format(path: str | Path) -> str:
    """Detect the footprint format of ``path`` from its name and header.

    Raises
    ------
    ingest.FormatDetectionError
        (a ``FootprintError``) If no registered format recognises the file; the message says
        what the file holds.
    """
    return REGISTRY.detect(Path(path))


def read_footprint(path: str | Path, format: str | None = None, **kwargs: Any) -> xr.DataArray:
    """Read a footprint file into the standard layout.

    Parameters
    ----------
    path : str or Path
        Footprint file (NetCDF) or zarr store.
    format : str, optional
        A registered format name (``"stilt"``, ``"xstilt"``, ``"flexpart"``, ``"name"``,
        ``"paris"``, ``"cityflux"``, or one added by :func:`register_footprint_reader`);
        detected from the file when omitted.
    **kwargs
        Reader options (e.g. ``hitres=True`` for NAME, ``backtime_hours=240`` for a
        time-integrated STILT file), checked against the reader's signature.

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` or ``(receptor, time, y, x)`` footprint [ppm per (µmol m-2 s-1)];
        layer ``k`` covers ``[start, layer_end)`` with start = ``time`` (or ``layer_time``);
        cell-centre ``y``/``x`` in ``attrs["crs"]``; ``Grid.from_dataarray(fp)`` gives its grid.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ingest.ReaderOptionError
        (a ``TypeError`` and ``FootprintError``) for an option the reader does not accept.
    FootprintError
        (a ValueError) For unknown formats, units, NaN, irregular layers or corrupt files.

    Examples
    --------
    >>> fp = read_footprint("201512100000_-112_40.5_5_foot.nc")  # doctest: +SKIP
    >>> fp.sum().item()  # response to a uniform 1 µmol m-2 s-1 flux [ppm]  # doctest: +SKIP
    """
    return REGISTRY.read(path, format, **kwargs)[1]


def inspect_footprint(path: str | Path, format: str | None = None, **options: Any) -> Inspection:
    """Open a footprint file as :func:`read_footprint` would and summarise it.

    The file is read in full (footprint files are one receptor or one release batch), so every
    error :func:`read_footprint` raises is raised here with the same class and message.

    Parameters
    ----------
    path : str or Path
        Footprint file or zarr store.
    format : str, optional
        Registered format name; detected when omitted.
    **options
        Reader options, checked against the reader's signature.

    Returns
    -------
    ingest.Inspection
        ``n_records`` receptors; ``time_range`` from the earliest layer start to the latest
        layer end [UTC]; ``bbox`` of the footprint grid (geographic grids) or of the receptors;
        ``kinds``; ``sites`` = receptor ids; ``units`` of the footprint variable as found;
        ``assumptions`` (back-time source, receptor kind source); ``details`` (``n_layers``,
        ``layer_seconds``, ``time_integrated``, ``total_sensitivity`` [ppm per (µmol m-2 s-1)],
        ``n_all_zero_receptors``, ``receptor_time_range``).

    Raises
    ------
    Same as :func:`read_footprint`.
    """
    path = Path(path)
    name = REGISTRY.resolve(path, format, options)
    fp = read_footprint(path, name, **options)
    start, end = layer_bounds(fp)
    probe = FileProbe(path)
    units = {k: str(v.attrs["units"]) for k, v in probe.variables.items()
             if k in ("foot", "Footprint", "fp", "srr", "footprint", "spec001_mr")
             and "units" in v.attrs}  # fmt: skip
    geographic = "4326" in str(fp.attrs.get("crs", "")) or "longlat" in str(fp.attrs.get("crs", ""))
    if geographic:
        bbox = (
            float(fp["x"].min()),
            float(fp["y"].min()),
            float(fp["x"].max()),
            float(fp["y"].max()),
        )
    else:
        bbox = bbox_of(fp["receptor_lon"].values, fp["receptor_lat"].values)
    assumptions = {k: str(fp.attrs[k]) for k in ("backtime_source", "kind_source") if k in fp.attrs}
    rt = np.atleast_1d(fp["receptor_time"].values)
    return Inspection(
        path=str(path),
        format=name,
        what="footprint",
        n_records=int(fp.sizes.get("receptor", 1)),
        time_range=(start.min(), end.max()),
        bbox=bbox,
        kinds=tuple(sorted(set(np.atleast_1d(fp["receptor_kind"].values).astype(str)))),
        sites=tuple(np.atleast_1d(fp["receptor_id"].values).astype(str)[:50]),
        units=units,
        assumptions=assumptions,
        details={
            "n_layers": int(fp.sizes["time"]),
            "layer_seconds": float(fp.attrs.get("layer_seconds", np.nan)),
            "time_integrated": int(fp.attrs.get("time_integrated", 0)),
            "total_sensitivity": float(np.asarray(fp.values, np.float64).sum()),
            "n_all_zero_receptors": int(fp.attrs.get("n_all_zero_receptors", 0)),
            "receptor_time_range": (str(rt.min()), str(rt.max())),
            "crs": str(fp.attrs.get("crs", "")),
            "size_bytes": os.path.getsize(path) if path.is_file() else None,
        },
        complete=True,
    )
