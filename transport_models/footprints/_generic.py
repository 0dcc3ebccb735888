"""Our own documented footprint layout (NetCDF or zarr), see FORMAT.md."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ._common import (
    FootprintError,
    FootprintWarning,
    atomic_directory,
    build_footprint,
    check_layer_times,
    check_layers,
    decoded_times,
    footprint_unit_factor,
    load_values,
    open_dataset,
    require,
)

__all__ = ["FORMAT_VERSION", "read_generic", "write_footprint"]

#: Value of the global attribute ``cityflux_footprint_format`` of files in our layout
#: (version 2 adds the ``layer_end`` coordinate; version 1 files are still read).
FORMAT_VERSION = "2"

_RECEPTOR = ("time", "lat", "lon", "height", "kind", "id")

log = logging.getLogger(__name__)


def read_generic(path: str | Path, *, units: str | None = None) -> xr.DataArray:
    """Read a footprint in the cityflux layout (``*.nc`` or ``*.zarr``), see FORMAT.md.

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` or ``(receptor, time, y, x)`` [ppm per (µmol m-2 s-1)].
    """
    path = Path(path)
    with open_dataset(path) as ds:
        require(ds, ["footprint", *(f"receptor_{k}" for k in _RECEPTOR)], path, "cityflux")
        da = ds["footprint"]
        factor = footprint_unit_factor(units or da.attrs.get("units"), path, "footprint")
        multi = "receptor" in da.dims
        order = ("receptor", "time", "y", "x") if multi else ("time", "y", "x")
        if set(da.dims) != set(order):
            raise FootprintError(f"{path}: footprint dims {da.dims}; expected {order}")
        da = da.transpose(*order)
        crs = da.attrs.get("crs") or ds.attrs.get("crs")
        gm = da.attrs.get("grid_mapping")
        if not crs and gm and gm in ds.variables:
            crs = ds[gm].attrs.get("crs_wkt")
        if not crs:
            raise FootprintError(
                f"{path}: no CRS: set the footprint attribute 'crs' (e.g. 'EPSG:4326') or a CF "
                "grid_mapping variable with 'crs_wkt'"
            )
        if "layer_seconds" not in da.attrs:
            raise FootprintError(f"{path}: footprint attribute 'layer_seconds' [s] is missing")
        layer_seconds = float(da.attrs["layer_seconds"])
        values = load_values(da, path).astype(np.float32, copy=False)
        rec = {k: ds[f"receptor_{k}"].values for k in _RECEPTOR}
        time = (
            decoded_times(ds["time"].values, "time", ds["time"].attrs.get("units"), path)
            if "time" in ds.coords
            else None
        )
        layer_time, layer_end = (
            decoded_times(ds[k].values, k, ds[k].attrs.get("units"), path)
            if k in ds.variables
            else None
            for k in ("layer_time", "layer_end")
        )
        x, y = ds["x"].values, ds["y"].values
        extra = {k: v for k, v in da.attrs.items() if k not in ("units", "crs", "layer_seconds")}
    if time is None and layer_time is None:
        raise FootprintError(f"{path}: neither a 'time' nor a 'layer_time' coordinate")
    if time is not None and np.isfinite(layer_seconds) and layer_end is None:
        check_layer_times(time, np.timedelta64(round(layer_seconds * 1e9), "ns"), path)
    if layer_end is None and not np.isfinite(layer_seconds):
        layer_end = layer_time if layer_time is not None else time
        msg = (
            f"{path}: version-1 file without layer ends and with layer_seconds = NaN (a "
            "time-integrated footprint): each layer is placed at its start as when it was "
            "written; re-read the source file to get its back-time interval"
        )
        log.warning(msg)
        warnings.warn(msg, FootprintWarning, stacklevel=2)
    check_layers(
        values, path, "footprint", factor=factor, y=y, x=x,
        starts=time if time is not None else layer_time,
    )  # fmt: skip
    if factor != 1.0:
        values = values * np.float32(factor)
    for key in ("source_file", "source_format", "n_all_zero_receptors"):
        extra.pop(key, None)
    return build_footprint(
        values,
        x=x,
        y=y,
        crs=str(crs),
        time=time,
        layer_time=layer_time,
        layer_end=layer_end,
        layer_seconds=layer_seconds,
        receptor=rec,
        path=path,
        fmt="cityflux",
        extra_attrs=extra,
    )


def write_footprint(fp: xr.DataArray, path: str | Path) -> Path:
    """Write a footprint DataArray (as returned by the readers) in our layout, atomically.

    ``*.zarr`` paths are written as zarr stores, anything else as NetCDF4 (zlib level 1).
    The file is written to a temporary name in the same directory and renamed into place.
    """
    path = Path(path)
    ds = fp.rename("footprint").to_dataset()
    ds["footprint"].attrs.pop("source_file", None)
    ds.attrs["cityflux_footprint_format"] = FORMAT_VERSION
    ds.attrs["Conventions"] = "CF-1.10"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zarr":
        with atomic_directory(path) as tmp:
            # zarr format 2: string coordinates (receptor ids) have a stable encoding there
            ds.to_zarr(tmp, mode="w", zarr_format=2)
        return path
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        enc = {"footprint": {"zlib": True, "complevel": 1}}
        ds.to_netcdf(tmp_name, engine="netcdf4", encoding=enc)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
