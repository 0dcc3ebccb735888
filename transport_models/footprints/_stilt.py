"""STILT (R-STILT ``*_foot.nc``) and X-STILT (``*_X_foot.nc``) footprint readers.

Layout of an R-STILT footprint file (uataq/stilt ``calc_footprint``, inspected on a real file):

- ``foot(time, lat, lon)`` float32, units ``"ppm (umol-1 m2 s)"`` = ppm per (µmol m-2 s-1);
- ``lat``/``lon`` are **cell centres** (``long_name = "latitude at cell center"``) of a regular
  grid; projected runs carry ``x``/``y`` and the PROJ string in the global ``crs`` attribute;
- ``time`` (seconds since 1970, UTC) is the **start** of each hourly back-layer: a receptor at
  2015-12-10 00:00 run 6 h back has layers stamped 18:00 ... 23:00 the day before, layer
  ``[t, t + 1 h)``;
- the receptor is encoded in the file name ``YYYYMMDDHHMM_lon_lat_zagl_foot.nc`` (a prefix before
  it is allowed); X-STILT column footprints are named ``YYYYMMDDHHMM_lon_lat_X_foot.nc``.

X-STILT column footprints have the same layout; their values are already weighted by the
averaging kernel and pressure weights (Wu et al., 2018, GMD 11, 4843) so that the footprint
maps a flux to XCO2 [ppm]; they get ``receptor_kind = "column"`` and ``receptor_height = NaN``
(a column has no single height; documented, not a missing value).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._common import (
    FootprintError,
    build_footprint,
    check_layer_times,
    check_layers,
    footprint_unit_factor,
    load_values,
    open_dataset,
    require,
)

__all__ = ["parse_stilt_name", "read_stilt", "read_xstilt"]

_NUM = r"-?\d+(?:\.\d+)?"
_STILT_RE = re.compile(rf"(\d{{12}})_({_NUM})_({_NUM})_({_NUM})(?:_foot)?\.nc$")
_XSTILT_RE = re.compile(rf"(\d{{12}})_({_NUM})_({_NUM})(?:_({_NUM}))?_X_foot\.nc$")


def parse_stilt_name(path: str | Path) -> dict[str, Any] | None:
    """Receptor ``time, lon, lat, height`` [UTC, deg, deg, m agl] from a STILT file name.

    Returns ``None`` when the name does not follow ``YYYYMMDDHHMM_lon_lat_zagl[_foot].nc`` or
    ``YYYYMMDDHHMM_lon_lat[_zagl]_X_foot.nc``.
    """
    name = Path(path).name
    m = _XSTILT_RE.search(name)
    column = m is not None
    if m is None:
        m = _STILT_RE.search(name)
    if m is None:
        return None
    t = pd.to_datetime(m.group(1), format="%Y%m%d%H%M").to_datetime64()
    h = m.group(4)
    return {
        "time": np.datetime64(t, "ns"),
        "lon": float(m.group(2)),
        "lat": float(m.group(3)),
        "height": np.nan if column else float(h),
        "kind": "column" if column else "tower",
    }


def _receptor(path: Path, attrs: dict[str, Any], kind: str | None) -> dict[str, Any]:
    info = parse_stilt_name(path)
    if info is None and "receptor_time" in attrs:
        info = {
            "time": np.datetime64(pd.Timestamp(attrs["receptor_time"]).to_datetime64(), "ns"),
            "lon": float(attrs["receptor_lon"]),
            "lat": float(attrs["receptor_lat"]),
            "height": float(attrs.get("receptor_height", np.nan)),
            "kind": str(attrs.get("receptor_kind", "tower")),
        }
    if info is None:
        raise FootprintError(
            f"{path}: cannot find the receptor: the file name does not follow "
            "'YYYYMMDDHHMM_lon_lat_zagl_foot.nc' (or '..._X_foot.nc') and the file has no "
            "receptor_time/receptor_lon/receptor_lat attributes; rename the file or add them"
        )
    if kind is not None:
        info["kind"] = kind
    info["id"] = Path(path).name
    return info


def read_stilt(path: str | Path, *, kind: str | None = None, variable: str = "foot") -> Any:
    """Read an R-STILT footprint ``*_foot.nc``.

    Parameters
    ----------
    path : str or Path
        STILT footprint file.
    kind : str, optional
        Receptor kind to record (default ``"tower"``; ``"column"`` for ``*_X_foot.nc``).
    variable : str
        Name of the footprint variable.

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` footprint [ppm per (µmol m-2 s-1)] per hourly layer, ``time`` = layer
        start (UTC), cell-centre coordinates, receptor coordinates ``receptor_*``.

    Raises
    ------
    FootprintError
        Unknown units, NaN or negative values, overlapping or missing layers, corrupt file.
    """
    path = Path(path)
    with open_dataset(path, decode_times=True) as ds:
        require(ds, [variable], path, "stilt")
        da = ds[variable]
        factor = footprint_unit_factor(da.attrs.get("units"), path, variable)
        if "lon" in da.dims and "lat" in da.dims:
            xn, yn, crs = "lon", "lat", "EPSG:4326"
        elif "x" in da.dims and "y" in da.dims:
            xn, yn = "x", "y"
            crs = ds.attrs.get("crs")
            if not crs:
                raise FootprintError(
                    f"{path}: projected STILT footprint without a global 'crs' attribute "
                    "(PROJ string); add it to a copy of the file"
                )
        else:
            raise FootprintError(
                f"{path}: variable {variable!r} has dims {da.dims}; expected (time, lat, lon) or "
                "(time, y, x)"
            )
        if "time" not in da.dims:
            raise FootprintError(f"{path}: variable {variable!r} has no 'time' dimension")
        da = da.transpose("time", yn, xn)
        times = da["time"].values.astype("datetime64[ns]")
        values = load_values(da, path).astype(np.float32, copy=False)
        x, y = ds[xn].values, ds[yn].values
        attrs = dict(ds.attrs)
        attrs.update(da.attrs)
    if times.size == 0:
        raise FootprintError(f"{path}: the footprint has no time layers")
    order = np.argsort(times, kind="stable")
    if (order != np.arange(times.size)).any():
        times, values = times[order], values[order]
    if y.size > 1 and y[1] < y[0]:
        y, values = y[::-1], values[:, ::-1, :]
    step = np.timedelta64(3600, "s") if times.size < 2 else times[1] - times[0]
    check_layer_times(times, step, path)
    check_layers(values, path, variable)
    if factor != 1.0:
        values = values * np.float32(factor)
    rec = _receptor(path, attrs, kind)
    fmt = "xstilt" if rec["kind"] == "column" else "stilt"
    return build_footprint(
        np.ascontiguousarray(values),
        x=x,
        y=y,
        crs=crs,
        time=times,
        layer_seconds=float(step / np.timedelta64(1, "s")),
        receptor=rec,
        path=path,
        fmt=fmt,
    )


def read_xstilt(path: str | Path, *, variable: str = "foot") -> Any:
    """Read an X-STILT column footprint ``*_X_foot.nc`` (AK- and pressure-weighted).

    Same layout and units as :func:`read_stilt`; the receptor kind is ``"column"``.
    """
    return read_stilt(path, kind="column", variable=variable)
