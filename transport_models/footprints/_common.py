"""Shared pieces of the footprint readers: units, checks and the output layout.

Every reader returns an :class:`xarray.DataArray` named ``footprint`` with dims ``(time, y, x)``
for a single receptor or ``(receptor, time, y, x)`` for multi-receptor files, values in
ppm per (µmol m-2 s-1) integrated over each layer, 1-D ``y``/``x`` cell-centre coordinates in the
CRS named by ``attrs["crs"]``, and the receptor metadata as coordinates (see FORMAT.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import ingest
from ingest import ReaderError, footprint_factor

from ._kernels import scan_layers

__all__ = [
    "ABSURD_SENSITIVITY",
    "FOOTPRINT_UNITS",
    "FootprintError",
    "FootprintWarning",
    "build_footprint",
    "footprint_unit_factor",
    "layer_bounds",
    "layer_start_times",
]

log = logging.getLogger(__name__)

#: Units of every footprint returned by the readers.
FOOTPRINT_UNITS = "ppm (umol m-2 s-1)-1"

#: A footprint cell above this is absurd [ppm per (µmol m-2 s-1) per layer]: real cells are
#: O(1e-4 .. 1), a whole 10-day STILT footprint summed over the globe is O(10 .. 100).
ABSURD_SENSITIVITY = 1e3

#: Largest share of the absolute sensitivity that negative values (numerical artefacts, e.g. the
#: residual layer of OpenGHG high-time-resolution footprints) may carry; they are kept and
#: logged below it, an error above it.
MAX_NEGATIVE_FRACTION = 0.05


#: A footprint file is missing, corrupt, or holds values or metadata we cannot use
#: (the shared :class:`ingest.ReaderError`; unit problems raise its subclass ``UnitsError``).
FootprintError = ReaderError


class FootprintWarning(UserWarning):
    """A footprint read with an assumption the user should see (all-zero, assumed back-time)."""


def footprint_unit_factor(units: Any, path: str | Path, variable: str) -> float:
    """Factor that converts ``units`` to ppm per (µmol m-2 s-1) (:func:`ingest.footprint_factor`).

    Raises
    ------
    ingest.UnitsError
        (a ``FootprintError``) if the units string is missing or not mole fraction per flux.
    """
    return footprint_factor(units, where=f"{path}: variable {variable!r}")


def warn_all_zero(values: np.ndarray, n_receptor: int, path: str | Path, variable: str) -> int:
    """Warn when receptors have an all-zero footprint; return how many do."""
    zero = int(np.count_nonzero(~np.asarray(values).reshape(n_receptor, -1).any(axis=1)))
    if zero:
        msg = (
            f"{path}: variable {variable!r}: {zero} of {n_receptor} receptor(s) have an all-zero "
            "footprint (no particle reached the grid): their observations will get H = 0; check "
            "the run (domain too small, particles lost) or drop those receptors"
        )
        log.warning(msg)
        warnings.warn(msg, FootprintWarning, stacklevel=3)
    return zero


def check_layers(
    values: np.ndarray,
    path: str | Path,
    variable: str,
    *,
    factor: float = 1.0,
    y: np.ndarray | None = None,
    x: np.ndarray | None = None,
    starts: np.ndarray | None = None,
) -> np.ndarray:
    """Raise on NaN/inf, negative or absurd values; return the per-layer sums.

    ``values`` are ``(..., y, x)`` as in the file (leading dims flattened into layers);
    ``factor`` converts them to ppm per (µmol m-2 s-1): a value above
    :data:`ABSURD_SENSITIVITY` after conversion is refused, naming the file, the variable and
    the location (layer start from ``starts``, broadcastable to the leading dims, and the
    ``y``/``x`` cell centres when given).
    """
    flat = values.reshape(-1, values.shape[-2] * values.shape[-1])
    sums, n_bad, n_neg, peak = scan_layers(flat)
    if n_bad.any():
        k = int(np.flatnonzero(n_bad)[0])
        where = _location(values, k, np.flatnonzero(~np.isfinite(flat[k]))[0], y, x, starts)
        raise FootprintError(
            f"{path}: variable {variable!r} holds {int(n_bad.sum())} NaN/inf values (first at "
            f"{where}); footprints must be finite — fill missing cells with 0 if they mean "
            "'no particle', otherwise regenerate the file"
        )
    absurd = peak * abs(factor) > ABSURD_SENSITIVITY
    if absurd.any():
        k = int(np.flatnonzero(absurd)[0])
        i = int(np.argmax(np.abs(flat[k])))
        n = int((np.abs(flat) * abs(factor) > ABSURD_SENSITIVITY).sum())
        raise FootprintError(
            f"{path}: variable {variable!r} holds {n} absurd value(s) (above "
            f"{ABSURD_SENSITIVITY:g} ppm per (µmol m-2 s-1) in one cell and layer after unit "
            f"conversion), largest {float(flat[k, i]) * factor:.4g} at "
            f"{_location(values, k, i, y, x, starts)}; check the file's values and units"
        )
    if n_neg.any():
        neg = float(np.minimum(flat, 0).sum(dtype=np.float64))
        pos = float(np.maximum(flat, 0).sum(dtype=np.float64))
        frac = -neg / max(pos - neg, 1e-300)
        k = int(np.flatnonzero(n_neg)[0])
        if frac > MAX_NEGATIVE_FRACTION:
            raise FootprintError(
                f"{path}: variable {variable!r} holds {int(n_neg.sum())} negative values (first "
                f"in layer {k}) carrying {frac:.2%} of the absolute sensitivity (limit "
                f"{MAX_NEGATIVE_FRACTION:.0%}); footprints are non-negative — check the file"
            )
        log.warning(
            "%s: %s holds %d negative values (%.3g%% of the absolute sensitivity); kept as is",
            path,
            variable,
            int(n_neg.sum()),
            100 * frac,
        )
    return sums


def _location(values, k: int, i: int, y, x, starts) -> str:
    """``layer ... , y/lat ..., x/lon ...`` of flat layer ``k`` and cell ``i`` (for messages)."""
    lead = values.shape[:-2]
    idx = np.unravel_index(k, lead) if lead else ()
    parts = [f"layer index {tuple(int(j) for j in idx)}" if len(idx) > 1 else f"layer {k}"]
    if starts is not None:
        t = np.broadcast_to(np.asarray(starts), lead).ravel()[k]
        parts.append(f"starting {str(t)[:19]}")
    iy, ix = np.unravel_index(int(i), values.shape[-2:])
    parts.append(f"y {float(y[iy]):.6g}" if y is not None else f"y index {int(iy)}")
    parts.append(f"x {float(x[ix]):.6g}" if x is not None else f"x index {int(ix)}")
    return ", ".join(parts)


def check_coordinates(x: np.ndarray, y: np.ndarray, crs: str, path: str | Path) -> None:
    """Refuse non-finite cell centres, and on a geographic grid latitudes beyond ±90° or
    longitudes beyond -180..360° (swapped or scaled coordinates), naming the file."""
    for name, c, lo, hi in (("x (longitude)", x, -180.0, 360.0), ("y (latitude)", y, -90.0, 90.0)):
        c = np.asarray(c, float)
        if not np.isfinite(c).all():
            raise FootprintError(f"{path}: coordinate {name} holds NaN/inf cell centres")
        if _geographic(crs) and c.size and (c.min() < lo or c.max() > hi):
            raise FootprintError(
                f"{path}: coordinate {name} spans {c.min():.6g} to {c.max():.6g} degrees, "
                f"beyond [{lo:g}, {hi:g}]: latitude and longitude may be swapped or scaled, or "
                "the grid is not geographic; fix the file's coordinates"
            )


def _geographic(crs: str) -> bool:
    return "4326" in crs or "longlat" in crs.lower()


def decoded_times(values: np.ndarray, name: str, units: Any, path: str | Path) -> np.ndarray:
    """``values`` of time variable ``name`` as datetime64[ns]; refuse times xarray could not
    decode (numbers left as they are: missing or unknown ``units``), naming file and units."""
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        raise FootprintError(
            f"{path}: variable {name!r} holds numbers that are not times: its units attribute "
            f"{units!r} is not '<hours|days|...> since <date>'; fix the units attribute"
        )
    return arr.astype("datetime64[ns]")


def check_layer_times(times: np.ndarray, step: np.timedelta64, path: str | Path) -> None:
    """Raise unless layer starts are strictly increasing with spacing exactly ``step``.

    Duplicated or overlapping layers (spacing < step) and missing layers (spacing > step) are
    errors: both would double count or silently lose sensitivity.
    """
    if times.size < 2:
        return
    d = np.diff(times)
    bad = np.flatnonzero(d != step)
    if bad.size:
        i = int(bad[0])
        what = "overlapping or duplicated" if d[i] < step else "missing"
        raise FootprintError(
            f"{path}: {what} back-layers: layer {i} starts {times[i]} and layer {i + 1} starts "
            f"{times[i + 1]}, expected a spacing of {pd.Timedelta(step)}; regenerate the footprint "
            "or fill the gap with zero layers"
        )


def layer_start_times(fp: xr.DataArray) -> np.ndarray:
    """Start of each layer [datetime64[ns], UTC] as ``(n_receptor, n_time)``.

    Uses the 2-D ``layer_time`` coordinate when receptors have their own layers (NAME),
    else broadcasts the 1-D ``time`` coordinate.
    """
    n_rec = fp.sizes.get("receptor", 1)
    if "layer_time" in fp.coords:
        lt = fp.coords["layer_time"]
        if "receptor" in fp.dims:
            lt = lt.transpose("receptor", "time")
        return np.broadcast_to(lt.values.astype("datetime64[ns]"), (n_rec, fp.sizes["time"]))
    t = fp["time"].values.astype("datetime64[ns]")
    return np.broadcast_to(t, (n_rec, t.size))


def layer_bounds(fp: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of each layer [datetime64[ns], UTC], each ``(n_receptor, n_time)``.

    The end comes from the ``layer_end`` coordinate when present (time-integrated or irregular
    layers), else from start + ``attrs["layer_seconds"]``. A footprint without either (older
    in-memory arrays with ``layer_seconds = NaN``) gets zero-length layers at their start, the
    old behaviour, with a warning.
    """
    start = layer_start_times(fp)
    n_rec, nl = start.shape
    if "layer_end" in fp.coords:
        le = fp.coords["layer_end"]
        if "receptor" in le.dims:
            le = le.transpose("receptor", "time")
        end = np.broadcast_to(le.values.astype("datetime64[ns]"), (n_rec, nl))
        return start, end
    sec = float(fp.attrs.get("layer_seconds", np.nan))
    if np.isfinite(sec):
        return start, start + np.timedelta64(round(sec * 1e9), "ns")
    msg = (
        f"{fp.attrs.get('source_file', '<memory>')}: footprint has neither a 'layer_end' "
        "coordinate nor a finite layer_seconds; each layer is placed at its start time"
    )
    log.warning(msg)
    warnings.warn(msg, FootprintWarning, stacklevel=2)
    return start, start


def _regular(c: np.ndarray, name: str, path: str | Path) -> np.ndarray:
    """Snap nearly even cell centres (float32 rounding) to an exact even spacing.

    Coordinates that deviate from an even spacing by more than 1e-3 of a cell are an error:
    only regular grids are supported.
    """
    if c.size < 2:
        return c
    even = np.linspace(c[0], c[-1], c.size)
    step = (c[-1] - c[0]) / (c.size - 1)
    dev = np.abs(c - even).max()
    if step <= 0 or dev > 1e-3 * abs(step):
        raise FootprintError(
            f"{path}: {name} cell centres are not evenly increasing (spacing {step:.6g}, "
            f"deviation {dev:.3g}); only regular footprint grids are supported — regrid first"
        )
    return even


def build_footprint(
    values: np.ndarray,
    *,
    x: np.ndarray,
    y: np.ndarray,
    crs: str,
    time: np.ndarray | None,
    layer_seconds: float,
    receptor: dict[str, Any],
    path: str | Path,
    fmt: str,
    layer_time: np.ndarray | None = None,
    layer_end: np.ndarray | None = None,
    extra_attrs: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Assemble the standard footprint DataArray (see module docstring and FORMAT.md).

    ``values`` is ``(time, y, x)`` or ``(receptor, time, y, x)`` [ppm per (µmol m-2 s-1)];
    ``receptor`` maps ``time, lat, lon, height, kind, id`` to scalars or 1-D arrays.
    ``layer_end`` (shape of ``time`` or ``layer_time``) gives each layer's end when layers are
    not ``layer_seconds`` long (time-integrated or irregular layers); it is always written, from
    ``layer_seconds`` when not given. Warns when a receptor's footprint is all zero.
    """
    multi = values.ndim == 4
    check_coordinates(x, y, crs, path)
    x = _regular(np.asarray(x, float), "x", path)
    y = _regular(np.asarray(y, float), "y", path)
    dims = ("receptor", "time", "y", "x") if multi else ("time", "y", "x")
    geographic = _geographic(crs)
    units = "degrees_east" if geographic else "m"
    coords: dict[str, Any] = {
        "y": ("y", np.asarray(y, float), {"units": units.replace("east", "north")}),
        "x": ("x", np.asarray(x, float), {"units": units}),
    }
    if time is not None:
        coords["time"] = (
            "time",
            np.asarray(time, "datetime64[ns]"),
            {"long_name": "start of back-layer"},
        )
    if layer_time is not None:
        coords["layer_time"] = (
            ("receptor", "time") if multi else ("time",),
            np.asarray(layer_time, "datetime64[ns]"),
            {"long_name": "start of back-layer"},
        )
    starts = np.asarray(layer_time if layer_time is not None else time, "datetime64[ns]")
    if layer_end is None:
        if not np.isfinite(layer_seconds):
            raise FootprintError(
                f"{path}: layer ends unknown (no layer_end and layer_seconds={layer_seconds})"
            )
        layer_end = starts + np.timedelta64(round(float(layer_seconds) * 1e9), "ns")
    layer_end = np.asarray(layer_end, "datetime64[ns]")
    if layer_end.shape != starts.shape or (layer_end < starts).any():
        raise FootprintError(
            f"{path}: layer ends {layer_end.shape} must match the layer starts {starts.shape} "
            "and not precede them"
        )
    coords["layer_end"] = (
        ("receptor", "time") if (multi and starts.ndim == 2) else ("time",),
        layer_end,
        {"long_name": "end of back-layer (exclusive)"},
    )
    rdim = ("receptor",) if multi else ()
    for key in ("time", "lat", "lon", "height", "kind", "id"):
        val = receptor[key]
        if key == "time":
            val = np.asarray(val, "datetime64[ns]")
        elif key in ("kind", "id"):
            val = np.asarray(val, dtype=str)
        else:
            val = np.asarray(val, dtype=float)
        coords[f"receptor_{key}"] = (rdim, val)
    attrs = {
        "units": FOOTPRINT_UNITS,
        "long_name": "footprint: mole fraction sensitivity to surface flux, per layer",
        "crs": crs,
        "layer_seconds": float(layer_seconds),
        "time_convention": "layers are [start, layer_end); start = time (or layer_time)",
        "source_file": str(path),
        "source_format": fmt,
    }
    attrs.update(extra_attrs or {})
    out = xr.DataArray(values, dims=dims, coords=coords, name="footprint", attrs=attrs)
    n_rec = values.shape[0] if multi else 1
    out.attrs["n_all_zero_receptors"] = warn_all_zero(values, n_rec, path, "footprint")
    return out


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` atomically.

    For zarr stores: a killed or failed write leaves ``path`` as it was and no partial store.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_dataset(path: str | Path, **kwargs: Any) -> xr.Dataset:
    """Open a footprint NetCDF file or zarr store (``ingest.open_dataset``)."""
    return ingest.open_dataset(path, "footprint", **kwargs)


def require(ds: xr.Dataset, names: list[str], path: str | Path, fmt: str) -> None:
    """Raise KeyError-like FootprintError naming the missing variables."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise FootprintError(
            f"{path}: missing variable(s) {missing} required by the {fmt!r} footprint format "
            f"(found {sorted(map(str, ds.variables))}); pass the right format= or fix the file"
        )


def load_values(da: xr.DataArray, path: str | Path) -> np.ndarray:
    """Load a variable, turning decode/read errors (truncated files) into FootprintError."""
    try:
        return np.asarray(da.values)
    except (OSError, RuntimeError, ValueError) as err:
        raise FootprintError(
            f"{path}: could not read variable {da.name!r} ({type(err).__name__}: {err}); the "
            "file is corrupt or truncated — regenerate it"
        ) from err
