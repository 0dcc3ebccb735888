"""STILT footprints: R-STILT / PYSTILT ``*_foot.nc``, X-STILT ``*_X_foot.nc``, the ICOS Carbon
Portal STILT service (``foot<slot>_aggreg.nc`` and per-slot ``foot`` files) and STILT v1 style
aggregated footprints.  Variants and their sources are tabulated in FORMAT.md.

Common layout: ``foot(time, lat, lon)`` (or ``(time, y, x)`` with a PROJ string in the global
``crs``), values mole fraction per molar flux in any spelling the units parser reads
(``"ppm (umol-1 m2 s)"`` R-STILT, ``"ppm per (micromol m-2 s-1)"`` ICOS/STILT v1);
``lat``/``lon`` are cell centres.

Time, hourly files: ``time`` is the **start** of each back-layer (receptor at 00:00 run 6 h
back has layers stamped 18:00 ... 23:00 the day before), layer ``[t, t + 1 h)``.

Time, time-integrated files (one layer): R-STILT ``time_integrate = TRUE`` stamps the single
layer with the receptor time; the ICOS service and STILT v1 ``*_aggreg.nc`` stamp it with the
footprint's initial (receptor) time and give the back-time in the global attribute
``backtime`` (``"-240 hours"``); a ``backtime`` dimension holds the hourly layers themselves.
An integrated layer covers ``[receptor - backtime, receptor)``. The back-time comes from the
option ``backtime_hours``, else the file's ``backtime`` attribute, else a documented default
(240 h for ICOS-named files, the ICOS STILT setting; 24 h otherwise, the R-STILT ``n_hours``
default) with a :class:`FootprintWarning`; which one was used is in ``attrs["backtime_source"]``.

Receptor: from the file name (``[met_]YYYYMMDDHHMM_lon_lat_zagl[_tag]_foot.nc``,
``YYYYMMDDHHMM_lon_lat[_zagl]_X_foot.nc``, ``footYYYYxMMxDDxHH[xMM]xLAT{N|S}xLON{E|W}xAGL
[_aggreg].nc``), else ``receptor_*`` attributes, else the ``receptor`` option.

X-STILT column footprints are already weighted by the averaging kernel and pressure weights
(Wu et al., 2018, GMD 11, 4843): ``receptor_kind = "column"``, ``receptor_height = NaN``.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._common import (
    FootprintError,
    FootprintWarning,
    build_footprint,
    check_layer_times,
    check_layers,
    decoded_times,
    footprint_unit_factor,
    load_values,
    open_dataset,
)

__all__ = ["parse_stilt_name", "read_stilt", "read_xstilt"]

log = logging.getLogger(__name__)

_NUM = r"-?\d+(?:\.\d+)?"
_XSTILT_RE = re.compile(rf"(\d{{12}})_({_NUM})_({_NUM})(?:_({_NUM}))?_X(?:_[A-Za-z]\w*)?_foot\.nc$")
_STILT_RE = re.compile(
    rf"(?:^|_)(\d{{12}})_({_NUM})_({_NUM})_({_NUM})(?:_[A-Za-z][\w-]*?)?(?:_foot)?\.nc$"
)
_ICOS_RE = re.compile(
    r"foot(\d{4})x(\d{2})x(\d{2})x(\d{2})(?:x(\d{2}))?x(\d+(?:\.\d+)?)([NS])x(\d+(?:\.\d+)?)([EW])"
    r"x(\d+)(?:_aggreg)?(?:\.nc)?$"
)
_SLOT_DIR_RE = re.compile(r"^(\d{4})x(\d{2})x(\d{2})x(\d{2})$")
#: Default back-time of single-layer (time-integrated) files, by variant [h].
DEFAULT_BACKTIME_H = {"icos": 240.0, "rstilt": 24.0, "xstilt": 24.0}


def parse_stilt_name(path: str | Path) -> dict[str, Any] | None:
    """Receptor ``time, lon, lat, height, kind, variant`` from a STILT file name, or None.

    Recognised: R-STILT / PYSTILT ``[met_]YYYYMMDDHHMM_lon_lat_zagl[_tag][_foot].nc``, X-STILT
    ``YYYYMMDDHHMM_lon_lat[_zagl]_X[_tag]_foot.nc`` and ICOS STILT
    ``footYYYYxMMxDDxHH[xMM]xLAT{N|S}xLON{E|W}xAGL[_aggreg].nc`` [UTC, deg, deg, m agl].
    """
    name = Path(path).name
    m = _ICOS_RE.search(name)
    if m:
        y, mo, d, h, mi, la, ns, lo, ew, agl = m.groups()
        t = pd.Timestamp(int(y), int(mo), int(d), int(h), int(mi or 0)).to_datetime64()
        return {
            "time": np.datetime64(t, "ns"),
            "lat": float(la) * (-1 if ns == "S" else 1),
            "lon": float(lo) * (-1 if ew == "W" else 1),
            "height": float(agl),
            "kind": "tower",
            "variant": "icos",
        }
    m = _XSTILT_RE.search(name)
    column = m is not None
    if m is None:
        m = _STILT_RE.search(name)
    if m is None:
        return None
    t = pd.to_datetime(m.group(1), format="%Y%m%d%H%M").to_datetime64()
    return {
        "time": np.datetime64(t, "ns"),
        "lon": float(m.group(2)),
        "lat": float(m.group(3)),
        "height": np.nan if column else float(m.group(4)),
        "kind": "column" if column else "tower",
        "variant": "xstilt" if column else "rstilt",
    }


def _receptor(path: Path, attrs: dict, option: Mapping[str, Any] | None, times) -> dict:
    info = parse_stilt_name(path)
    if info is None and "receptor_time" in attrs:
        info = {
            "time": np.datetime64(pd.Timestamp(attrs["receptor_time"]).to_datetime64(), "ns"),
            "lon": float(attrs["receptor_lon"]),
            "lat": float(attrs["receptor_lat"]),
            "height": float(attrs.get("receptor_height", np.nan)),
            "kind": str(attrs.get("receptor_kind", "tower")),
            "variant": "attributes",
        }
    slot = _SLOT_DIR_RE.match(path.parent.name)
    if info is None and option is not None:
        info = {"kind": "tower", "height": np.nan, "variant": "icos" if slot else "option"}
        if slot:
            y, mo, d, h = (int(v) for v in slot.groups())
            info["time"] = np.datetime64(pd.Timestamp(y, mo, d, h).to_datetime64(), "ns")
        info.update(
            {k: v for k, v in option.items() if k in ("time", "lat", "lon", "height", "kind")}
        )
        if "time" in option:
            info["time"] = np.datetime64(pd.Timestamp(option["time"]).to_datetime64(), "ns")
        missing = [k for k in ("time", "lat", "lon") if k not in info]
        if missing:
            raise FootprintError(f"{path}: option receptor lacks {missing}")
    elif info is not None and option:
        info.update({k: v for k, v in option.items() if k in ("lat", "lon", "height", "kind")})
    if info is None:
        hint = (
            " (an ICOS STILT slot file: its directory gives the time; pass receptor={'lat': ..., "
            "'lon': ..., 'height': ...})"
            if slot
            else ""
        )
        raise FootprintError(
            f"{path}: cannot find the receptor: the file name does not follow "
            "'YYYYMMDDHHMM_lon_lat_zagl_foot.nc', '..._X_foot.nc' or "
            "'footYYYYxMMxDDxHHxLATNxLONExAGL.nc', the file has no receptor_time/receptor_lon/"
            f"receptor_lat attributes and no receptor= option was given{hint}; rename the file, "
            "add the attributes or pass receptor={'time': ..., 'lat': ..., 'lon': ..., 'height': ...}"
        )
    info["id"] = path.name if path.name != "foot" else f"{path.parent.name}/{path.name}"
    return info


def parse_backtime(text: Any) -> float | None:
    """Back-time [h] from an attribute such as ``"-240 hours"``, ``"10 days"`` or ``240``."""
    m = re.search(r"(-?\d+(?:\.\d+)?)\s*([a-z]*)", str(text).strip().lower())
    if not m:
        return None
    val = abs(float(m.group(1)))
    unit = m.group(2) or "hours"
    scale = {"h": 1, "hr": 1, "hrs": 1, "hour": 1, "hours": 1, "d": 24, "day": 24, "days": 24}
    return val * scale[unit] if unit in scale else None


def _backtime(option, attrs, long_name, variant, path) -> tuple[float, str]:
    if option is not None:
        return float(option), f"option backtime_hours={option}"
    for key in ("backtime", "back_time", "nhrs", "n_hours"):
        if key in attrs and parse_backtime(attrs[key]) is not None:
            return parse_backtime(attrs[key]), f"global attribute {key}={attrs[key]!r}"
    hours = DEFAULT_BACKTIME_H.get(variant, 24.0)
    why = "the ICOS STILT setting" if variant == "icos" else "the R-STILT n_hours default"
    text = (
        f"assumed default {hours:g} h ({why}): the file gives the integral but not its "
        "interval; pass backtime_hours= to state it"
    )
    msg = f"{path}: time-integrated footprint ({long_name or 'one layer'}): back-time {text}"
    log.warning(msg)
    warnings.warn(msg, FootprintWarning, stacklevel=4)
    return hours, text


def read_stilt(
    path: str | Path,
    *,
    kind: str | None = None,
    variable: str | None = None,
    units: str | None = None,
    backtime_hours: float | None = None,
    receptor: Mapping[str, Any] | None = None,
) -> Any:
    """Read a STILT footprint (R-STILT, PYSTILT, ICOS STILT service, STILT v1 aggregated).

    Parameters
    ----------
    path : str or Path
        STILT footprint file.
    kind : str, optional
        Receptor kind to record (default ``"tower"``; ``"column"`` for ``*_X_foot.nc``).
    variable : str, optional
        Name of the footprint variable (default ``foot``, else ``Footprint``).
    units : str, optional
        Units to use instead of the file's attribute (for files whose attribute is missing or
        wrong, e.g. early R-STILT ``"umol CO2 m-2 s-1"``).
    backtime_hours : float, optional
        Back-time [h] of a time-integrated (single-layer) footprint when the file does not
        state it (overrides the file's ``backtime`` attribute).
    receptor : mapping, optional
        ``time``, ``lat``, ``lon``, ``height`` [UTC, deg, deg, m agl] when the file name and
        attributes do not give the receptor (ICOS per-slot ``foot`` files).

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` footprint [ppm per (µmol m-2 s-1)] per layer; ``time`` = layer start,
        ``layer_end`` = layer end (UTC); receptor coordinates ``receptor_*``; ``attrs``
        ``time_integrated``, ``backtime_hours``, ``backtime_source`` for single-layer files.

    Raises
    ------
    ingest.ReaderError
        Unknown units, NaN or negative values, overlapping or missing layers, corrupt file,
        unknown receptor.
    """
    path = Path(path)
    with open_dataset(path, decode_times=True) as ds:
        var = variable or next((v for v in ("foot", "Footprint") if v in ds.variables), "foot")
        if var not in ds.variables:
            raise FootprintError(
                f"{path}: missing variable(s) {[var]} required by the 'stilt' footprint format "
                f"(found {sorted(map(str, ds.variables))}); pass variable= or the right format="
            )
        da = ds[var]
        factor = footprint_unit_factor(units or da.attrs.get("units"), path, var)
        if "lon" in da.dims and "lat" in da.dims:
            xn, yn, crs = "lon", "lat", "EPSG:4326"
        elif "longitude" in da.dims and "latitude" in da.dims:
            xn, yn, crs = "longitude", "latitude", "EPSG:4326"
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
                f"{path}: variable {var!r} has dims {da.dims}; expected (time, lat, lon), "
                "(time, y, x), (backtime, lat, lon) or (lat, lon)"
            )
        file_time = None
        tdim = "backtime" if "backtime" in da.dims else ("time" if "time" in da.dims else None)
        if tdim == "backtime" and "time" in da.dims:
            file_time = decoded_times(
                da["time"].values, "time", da["time"].attrs.get("units"), path
            )
            da = da.isel(time=0)
        if tdim is None:
            da = da.expand_dims(time=[np.datetime64("NaT", "ns")])
            tdim = "time"
        da = da.transpose(tdim, yn, xn)
        times = decoded_times(
            da[tdim].values,
            tdim,
            ds[tdim].attrs.get("units") if tdim in ds.variables else None,
            path,
        )
        values = load_values(da, path).astype(np.float32, copy=False)
        x, y = ds[xn].values, ds[yn].values
        attrs = dict(ds.attrs)
        long_name = str(da.attrs.get("long_name", ""))
    if times.size == 0:
        raise FootprintError(f"{path}: the footprint has no time layers")
    rec = _receptor(path, attrs, receptor, times)
    if kind is not None:
        rec["kind"] = kind
    variant = rec.pop("variant")
    order = np.argsort(times, kind="stable")
    if (order != np.arange(times.size)).any():
        times, values = times[order], values[order]
    if y.size > 1 and y[1] < y[0]:
        y, values = y[::-1], values[:, ::-1, :]
    check_layers(values, path, var, factor=factor, y=y, x=x, starts=times)
    if factor != 1.0:
        values = values * np.float32(factor)
    rt = np.datetime64(rec["time"], "ns")
    integrated = times.size == 1 and (
        np.isnat(times[0])
        or times[0] >= rt
        or "backtime" in attrs
        or "integrated" in long_name.lower()
        or backtime_hours is not None
    )
    extra: dict[str, Any] = {"time_integrated": int(integrated)}
    if integrated:
        hours, source = _backtime(backtime_hours, attrs, long_name, variant, path)
        start = rt - np.timedelta64(round(hours * 3.6e12), "ns")
        if not (np.isnat(times[0]) or times[0] in (rt, start)):
            log.warning(
                "%s: single layer stamped %s, neither the receptor time %s nor its start %s; "
                "using [%s, %s)", path, times[0], rt, start, start, rt,
            )  # fmt: skip
        times, end, layer_seconds = np.array([start]), np.array([rt]), hours * 3600.0
        extra.update({"backtime_hours": hours, "backtime_source": source})
    else:
        step = np.timedelta64(3600, "s") if times.size < 2 else times[1] - times[0]
        check_layer_times(times, step, path)
        end, layer_seconds = times + step, float(step / np.timedelta64(1, "s"))
        if file_time is not None:
            extra["backtime_source"] = "dimension 'backtime' (hourly layers)"
    fmt = "xstilt" if rec["kind"] == "column" else "stilt"
    return build_footprint(
        np.ascontiguousarray(values),
        x=x,
        y=y,
        crs=crs,
        time=times,
        layer_end=end,
        layer_seconds=layer_seconds,
        receptor=rec,
        path=path,
        fmt=fmt,
        extra_attrs={**extra, "stilt_variant": variant},
    )


def read_xstilt(path: str | Path, *, variable: str | None = None, units: str | None = None) -> Any:
    """Read an X-STILT column footprint ``*_X_foot.nc`` (AK- and pressure-weighted).

    Same layout and units as :func:`read_stilt`; the receptor kind is ``"column"``.
    """
    return read_stilt(path, kind="column", variable=variable, units=units)
