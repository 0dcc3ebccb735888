"""NAME footprints as stored by OpenGHG (``fp``, ``fp_HiTRes``) and in the PARIS format (``srr``).

Both layouts (inspected on real OpenGHG test files) hold one footprint per **receptor time**:

- OpenGHG: ``fp(lat, lon, time)`` in ``(mol/mol)/(mol/m2/s)``; ``time`` is the release (receptor)
  time, hourly, ``label = "left"``; the value integrates the whole back-trajectory.
  Optional ``fp_HiTRes(lat, lon, time, H_back)`` resolves the first hours back: layer ``k``
  covers ``[t - H_back[k] - ΔH, t - H_back[k])`` with ``ΔH`` the ``H_back`` spacing [h]
  (our documented reading; OpenGHG stores the remainder of the trajectory in the last element,
  which this reading assigns to the last layer).
- PARIS: ``srr(time, latitude, longitude)`` in the same units, ``release_height`` [m].

Units: 1 (mol/mol)/(mol m-2 s-1) = 1e6 ppm / (1e6 µmol m-2 s-1) = 1 ppm per (µmol m-2 s-1).

Time intervals (explicit per layer in ``layer_time`` / ``layer_end``):

* integrated ``fp`` / ``srr``: one layer ``[t - back, t)`` over the back-trajectory length;
* ``fp_HiTRes``: layers ``[t - H_back[k] - dH, t - H_back[k])`` for all but the last element;
  the last element is the residual integrated beyond the resolved hours:
  ``[t - back, t - H_back[-1])``.

The files do not state the back-trajectory length ``back``: it comes from the option
``back_hours``, else a documented default of 720 h (30 days, the length of the UK Met Office
NAME runs that OpenGHG and the PARIS project distribute) with a :class:`FootprintWarning`;
``attrs["backtime_source"]`` says which. The assembly spreads each layer uniformly over the
state time bins it overlaps.

Receptor kind: ``"column"`` for satellite-column footprints (file name with ``-column``, e.g.
``GOSAT-BRAZIL-column_...``), else ``"tower"``, unless ``kind=`` is given.

Boundary (curtain) sensitivities ``particle_locations_{n,e,s,w}`` [1] are the fractions of the
particles that leave the domain through each side, by height and position along the side; see
:func:`read_boundary_sensitivity`.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from ._common import (
    FootprintError,
    FootprintWarning,
    build_footprint,
    check_layers,
    decoded_times,
    footprint_unit_factor,
    load_values,
    open_dataset,
    require,
)

__all__ = ["read_boundary_sensitivity", "read_name", "read_paris"]

log = logging.getLogger(__name__)

_SIDES = ("n", "e", "s", "w")
#: Default back-trajectory length of NAME footprints when the file does not state it [h].
DEFAULT_BACK_HOURS = 720.0


def _kind(path: Path, attrs: dict, kind: str | None) -> tuple[str, str]:
    if kind is not None:
        return kind, "option kind"
    if re.search(r"-column(?:[_.-]|$)", path.name) or "column" in str(attrs.get("inlet", "")):
        return "column", "file name or inlet attribute says column"
    return "tower", "default (no column marker in the file name)"


def _back_hours(back_hours: float | None, path: Path) -> tuple[float, str]:
    if back_hours is not None:
        return float(back_hours), f"option back_hours={back_hours}"
    text = (
        f"assumed default {DEFAULT_BACK_HOURS:g} h (30-day NAME runs): the file gives the "
        "integral over the back-trajectory but not its length; pass back_hours= to state it"
    )
    msg = f"{path}: time-integrated NAME footprint: back-trajectory length {text}"
    log.warning(msg)
    warnings.warn(msg, FootprintWarning, stacklevel=4)
    return DEFAULT_BACK_HOURS, text


def _height(ds: xr.Dataset, path: Path) -> float:
    if "release_height" in ds:
        return float(np.asarray(ds["release_height"].values).ravel()[0])
    for text in (str(ds.attrs.get("inlet_height", "")), path.name):
        m = re.search(r"(\d+(?:\.\d+)?)\s*magl", text)
        if m:
            return float(m.group(1))
    return float("nan")


def _receptors(ds: xr.Dataset, path: Path, kind: str) -> dict[str, Any]:
    t = decoded_times(ds["time"].values, "time", ds["time"].attrs.get("units"), path)
    lat = np.broadcast_to(np.asarray(ds["release_lat"].values, float), t.shape)
    lon = np.broadcast_to(np.asarray(ds["release_lon"].values, float), t.shape)
    site = str(ds.attrs.get("site", path.stem))
    return {
        "time": t,
        "lat": lat,
        "lon": lon,
        "height": np.full(t.size, _height(ds, path)),
        "kind": np.full(t.size, kind),
        "id": [f"{site}@{np.datetime_as_string(v, unit='m')}" for v in t],
    }


def _read(
    path: Path, variable: str, yn: str, xn: str, fmt: str, hitres: bool, kind: str | None,
    back_hours: float | None,
) -> xr.DataArray:  # fmt: skip
    with open_dataset(path) as ds:
        kind, kind_source = _kind(path, dict(ds.attrs), kind)
        require(ds, [variable, "release_lat", "release_lon"], path, fmt)
        if hitres:
            require(ds, ["fp_HiTRes", "H_back"], path, fmt)
            da = ds["fp_HiTRes"]
            units = ds[variable].attrs.get("units") or da.attrs.get("units")
        else:
            da = ds[variable]
            units = da.attrs.get("units")
        factor = footprint_unit_factor(units, path, variable)
        rec = _receptors(ds, path, kind)
        y, x = ds[yn].values.astype(float), ds[xn].values.astype(float)
        if hitres:
            hb = ds["H_back"].values.astype(float)
            values = load_values(da.transpose("time", "H_back", yn, xn), path)
        else:
            values = load_values(da.transpose("time", yn, xn), path)[:, None]
    if hitres:
        dh = np.diff(hb)
        if hb.size > 1 and (dh[0] <= 0 or np.abs(dh - dh[0]).max() > 1e-9):
            raise FootprintError(
                f"{path}: H_back {hb.tolist()} is not evenly increasing: overlapping or missing "
                "back-hours; regenerate the high-time-resolution footprint"
            )
        step_h = float(dh[0]) if hb.size > 1 else 1.0
        total, source = _back_hours(back_hours, path)
        if total <= hb[-1]:
            raise FootprintError(
                f"{path}: back-trajectory length {total:g} h does not exceed the last H_back "
                f"({hb[-1]:g} h) that starts the residual layer; pass a larger back_hours"
            )
        # layer k covers [t - H_back[k] - step, t - H_back[k]); the last element is the
        # residual [t - back, t - H_back[-1]); reverse so time increases
        values = values[:, ::-1]
        lo = np.r_[total, hb[-2::-1] + step_h] if hb.size > 1 else np.array([total])
        hi = hb[::-1]
        h = np.timedelta64(3600 * 10**9, "ns")
        layer_time = rec["time"][:, None] - (lo * h)[None, :].astype("timedelta64[ns]")
        layer_end = rec["time"][:, None] - (hi * h)[None, :].astype("timedelta64[ns]")
        layer_seconds = float("nan")
        extra = {"backtime_hours": total, "backtime_source": source, "hitres_residual": 1}
    else:
        total, source = _back_hours(back_hours, path)
        layer_end = rec["time"][:, None]
        layer_time = layer_end - np.timedelta64(round(total * 3.6e12), "ns")
        layer_seconds = total * 3600.0
        extra = {"backtime_hours": total, "backtime_source": source}
    if y.size > 1 and y[1] < y[0]:
        y, values = y[::-1], values[..., ::-1, :]
    check_layers(values, path, variable, factor=factor, y=y, x=x, starts=layer_time)
    values = np.ascontiguousarray(values.astype(np.float32) * np.float32(factor))
    return build_footprint(
        values,
        x=x,
        y=y,
        crs="EPSG:4326",
        time=None,
        layer_time=layer_time,
        layer_end=layer_end,
        layer_seconds=layer_seconds,
        receptor=rec,
        path=path,
        fmt=fmt,
        extra_attrs={"time_integrated": int(not hitres), "kind_source": kind_source, **extra},
    )


def read_name(
    path: str | Path,
    *,
    hitres: bool = False,
    kind: str | None = None,
    back_hours: float | None = None,
) -> xr.DataArray:
    """Read a NAME footprint in the OpenGHG layout.

    Parameters
    ----------
    path : str or Path
        OpenGHG NAME footprint file with ``fp(lat, lon, time)``.
    hitres : bool
        Use ``fp_HiTRes`` (resolved back-hours plus the residual) instead of the integrated
        ``fp``.
    kind : str, optional
        Receptor kind recorded; default ``"column"`` for ``*-column*`` files, else ``"tower"``.
    back_hours : float, optional
        Back-trajectory length [h] (the files do not state it; default 720 h with a warning).

    Returns
    -------
    xarray.DataArray
        ``(receptor, time, y, x)`` [ppm per (µmol m-2 s-1)]; ``layer_time`` / ``layer_end``
        ``(receptor, time)`` give each layer's interval (integrated ``fp``: one layer
        ``[t - back_hours, t)``).
    """
    return _read(Path(path), "fp", "lat", "lon", "name", hitres, kind, back_hours)


def read_paris(
    path: str | Path, *, kind: str | None = None, back_hours: float | None = None
) -> xr.DataArray:
    """Read a NAME footprint in the PARIS format, ``srr(time, latitude, longitude)``.

    Returns the same layout as :func:`read_name` with ``hitres=False``.
    """
    return _read(Path(path), "srr", "latitude", "longitude", "paris", False, kind, back_hours)


def read_boundary_sensitivity(
    path: str | Path, *, resolve: Literal["side", "side_height"] = "side"
) -> xr.DataArray:
    """Boundary (curtain) sensitivities of a NAME footprint file, one row per receptor.

    The fraction of particles leaving through each side is the sensitivity of the receptor
    mole fraction to the mole fraction on that boundary curtain [ppm per ppm].

    Parameters
    ----------
    path : str or Path
        OpenGHG or PARIS NAME footprint file with ``particle_locations_{n,e,s,w}``.
    resolve : {"side", "side_height"}
        One parameter per side (4), or per side and curtain height level (4 × n_height).

    Returns
    -------
    xarray.DataArray
        ``(receptor, bc)`` [1 = ppm per ppm] with labels such as ``"n"`` or ``"n_500m"``.
    """
    path = Path(path)
    names = [f"particle_locations_{s}" for s in _SIDES]
    with open_dataset(path) as ds:
        require(ds, names, path, "name")
        t = decoded_times(ds["time"].values, "time", ds["time"].attrs.get("units"), path)
        heights = ds["height"].values.astype(float)
        blocks, labels = [], []
        for side, name in zip(_SIDES, names, strict=True):
            da = ds[name]
            along = [d for d in da.dims if d not in ("time", "height")]
            v = load_values(da.sum(along, skipna=False).transpose("time", "height"), path)
            v = v.astype(float)
            if not np.isfinite(v).all():
                raise FootprintError(f"{path}: {name} holds NaN/inf values")
            if resolve == "side":
                blocks.append(v.sum(axis=1, keepdims=True))
                labels.append(side)
            elif resolve == "side_height":
                blocks.append(v)
                labels.extend(f"{side}_{h:g}m" for h in heights)
            else:
                raise ValueError(f"resolve: expected 'side' or 'side_height', found {resolve!r}")
    return xr.DataArray(
        np.concatenate(blocks, axis=1),
        dims=("receptor", "bc"),
        coords={"receptor_time": ("receptor", t), "bc": labels},
        name="boundary_sensitivity",
        attrs={"units": "ppm ppm-1", "source_file": str(path)},
    )
