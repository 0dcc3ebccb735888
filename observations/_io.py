"""Low-level file helpers shared by the readers: opening, variables, units, times, scales."""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pandas as pd

import ingest
from ingest import mole_fraction_factor

from ._exceptions import MissingVariableError, ObservationFormatError, UnitsError

__all__ = [
    "decode_cf_time",
    "get_var",
    "normalise_scale",
    "open_netcdf",
    "to_ppm_factor",
]


def to_ppm_factor(units: str | None, *, where: str) -> float:
    """Factor that converts a mole fraction in ``units`` to ppm (:func:`ingest.mole_fraction_factor`).

    Raises
    ------
    ValueError
        (``UnitsError``) for units that are not a mole fraction.
    """
    return mole_fraction_factor(units, where=where)


def normalise_scale(name: Any) -> str:
    """Canonical calibration scale name (``"WMOX2007"`` -> ``"WMO CO2 X2007"``)."""
    text = str(name).strip() if name is not None else ""
    if not text:
        return "unspecified"
    m = re.fullmatch(r"WMO[\s_-]*(CO2)?[\s_-]*X?(\d{4}[A-Za-z]?)", text, flags=re.IGNORECASE)
    if m:
        return f"WMO CO2 X{m.group(2).upper()}"
    return text


def open_netcdf(path: Path) -> contextlib.AbstractContextManager:
    """Open an observation NetCDF file read-only (``ingest.open_netcdf``)."""
    return ingest.open_netcdf(path, "observation")


def get_var(nc: Any, name: str, path: Path, *, required: bool = True) -> Any:
    """Return variable ``name`` (``"Group/var"`` allowed) or raise a clear error."""
    grp = nc
    *groups, leaf = name.split("/")
    for g in groups:
        if g not in grp.groups:
            grp = None
            break
        grp = grp.groups[g]
    if grp is None or leaf not in grp.variables:
        if not required:
            return None
        raise MissingVariableError(
            f"{path}: required variable {name!r} not found; this reader expects it (see "
            "observations/FORMATS.md). Check the file or choose another format=..."
        )
    return grp.variables[leaf]


def read_float(var: Any, path: Path) -> np.ndarray:
    """Read a numeric variable as float64 with fill/missing values as NaN."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*_FillValue not used.*")
            arr = var[...]
    except (RuntimeError, OSError, IndexError) as exc:
        raise ObservationFormatError(
            f"{path}: variable {var.name!r} cannot be read ({exc}); the file is corrupt or "
            "truncated."
        ) from exc
    return np.ma.filled(np.ma.asarray(arr).astype("float64"), np.nan)


def read_strings(var: Any) -> np.ndarray:
    """Read a char-array or string variable as a 1-D array of str (masked -> "")."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*_FillValue not used.*")
        arr = var[...]
    if isinstance(arr, np.ma.MaskedArray):
        arr = arr.filled(b"" if arr.dtype.kind == "S" else "")
    arr = np.asarray(arr)
    if arr.dtype.kind == "S" and arr.ndim == 2:
        arr = netCDF4.chartostring(arr)
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "ascii", errors="replace")
    return np.asarray(arr, dtype=str)


def decode_cf_time(values: np.ndarray, units: str, *, where: str) -> np.ndarray:
    """Decode numeric CF times ``"<unit> since <date>"`` to UTC ``datetime64[ns]`` (vectorised)."""
    m = re.fullmatch(r"\s*(\w+)\s+since\s+(.+?)\s*", str(units))
    steps = {
        "seconds": 1e9,
        "second": 1e9,
        "s": 1e9,
        "minutes": 6e10,
        "minute": 6e10,
        "hours": 3.6e12,
        "hour": 3.6e12,
        "h": 3.6e12,
        "days": 8.64e13,
        "day": 8.64e13,
    }
    if not m or m.group(1).lower() not in steps:
        raise UnitsError(
            f"{where}: time units {units!r} not understood; expected '<seconds|minutes|hours|"
            "days> since <ISO date>'"
        )
    ref = pd.Timestamp(m.group(2))
    ref = ref.tz_convert("UTC").tz_localize(None) if ref.tzinfo else ref
    vals = np.asarray(values, dtype="float64")
    ns = np.round(vals * steps[m.group(1).lower()])
    out = np.full(vals.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = np.isfinite(ns)
    out[ok] = ref.to_datetime64().astype("datetime64[ns]") + ns[ok].astype("int64").astype(
        "timedelta64[ns]"
    )
    return out


_POSITIONS = (
    (
        "start",
        (
            "beginning of the averaging interval",
            "start of the averaging",
            "beginning of each averaging",
            "interval start",
        ),
    ),
    (
        "midpoint",
        (
            "middle of the averaging",
            "midpoint",
            "centre of the averaging",
            "center of the averaging",
        ),
    ),
    ("end", ("end of the averaging interval", "end of each averaging")),
)


def stamp_position(comments: dict[str, str]) -> tuple[str, str] | None:
    """Position of the time stamps stated in the first comment that states one.

    ``comments`` maps a description of where the text was found (``"comment of 'time'"``) to
    the text. Returns ``(position, where)`` with position ``"start"``, ``"midpoint"`` or
    ``"end"``, or None when no comment says it.
    """
    for where, text in comments.items():
        low = str(text).lower()
        for position, phrases in _POSITIONS:
            if any(ph in low for ph in phrases):
                return position, where
    return None


def stamp_offset(comment: str, interval: np.timedelta64, time_stamp: str, *, where: str):
    """Offset to add to a time stamp to get the interval midpoint.

    ``time_stamp`` is ``"start"``, ``"midpoint"``, ``"end"`` or ``"auto"`` (read from the
    comment: "reported at the beginning of the averaging interval" -> start).
    """
    if time_stamp == "auto":
        found = stamp_position({"comment": comment})
        if found is None:
            raise ObservationFormatError(
                f"{where}: cannot tell whether time stamps mark the start, midpoint or end of "
                "the averaging interval; pass time_stamp='start'|'midpoint'|'end'"
            )
        time_stamp = found[0]
    half = np.timedelta64(interval, "ns") / 2  # in ns: an interval of 1 h must halve to 30 min
    offsets = {"start": half, "midpoint": np.timedelta64(0, "ns"), "end": -half}
    if time_stamp not in offsets:
        raise ValueError(f"{where}: time_stamp={time_stamp!r}, expected start|midpoint|end|auto")
    return offsets[time_stamp]
