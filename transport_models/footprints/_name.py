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

A time-integrated footprint becomes one layer whose start (``layer_time``) is the receptor time:
its whole sensitivity goes to the state bin that contains the receptor time (the OpenGHG
convention; fine for state bins that are long compared with the near-field residence time).

Boundary (curtain) sensitivities ``particle_locations_{n,e,s,w}`` [1] are the fractions of the
particles that leave the domain through each side, by height and position along the side; see
:func:`read_boundary_sensitivity`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from ._common import (
    FootprintError,
    build_footprint,
    check_layers,
    footprint_unit_factor,
    load_values,
    open_dataset,
    require,
)

__all__ = ["read_boundary_sensitivity", "read_name", "read_paris"]

_SIDES = ("n", "e", "s", "w")


def _height(ds: xr.Dataset, path: Path) -> float:
    if "release_height" in ds:
        return float(np.asarray(ds["release_height"].values).ravel()[0])
    for text in (str(ds.attrs.get("inlet_height", "")), path.name):
        m = re.search(r"(\d+(?:\.\d+)?)\s*magl", text)
        if m:
            return float(m.group(1))
    return float("nan")


def _receptors(ds: xr.Dataset, path: Path, kind: str) -> dict[str, Any]:
    t = ds["time"].values.astype("datetime64[ns]")
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
    path: Path, variable: str, yn: str, xn: str, fmt: str, hitres: bool, kind: str
) -> xr.DataArray:
    with open_dataset(path) as ds:
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
        # layer k covers [t - H_back[k] - step, t - H_back[k]); reverse so time increases
        values = values[:, ::-1]
        back = (hb[::-1] + step_h) * 3600.0
        layer_time = rec["time"][:, None] - (back * 1e9).astype("timedelta64[ns]")[None, :]
        layer_seconds = step_h * 3600.0
    else:
        layer_time = rec["time"][:, None]
        layer_seconds = float("nan")
    if y.size > 1 and y[1] < y[0]:
        y, values = y[::-1], values[..., ::-1, :]
    check_layers(values, path, variable)
    values = np.ascontiguousarray(values.astype(np.float32) * np.float32(factor))
    return build_footprint(
        values,
        x=x,
        y=y,
        crs="EPSG:4326",
        time=None,
        layer_time=layer_time,
        layer_seconds=layer_seconds,
        receptor=rec,
        path=path,
        fmt=fmt,
        extra_attrs={"time_integrated": int(not hitres)},
    )


def read_name(path: str | Path, *, hitres: bool = False, kind: str = "tower") -> xr.DataArray:
    """Read a NAME footprint in the OpenGHG layout.

    Parameters
    ----------
    path : str or Path
        OpenGHG NAME footprint file with ``fp(lat, lon, time)``.
    hitres : bool
        Use ``fp_HiTRes`` (hour-resolved layers) instead of the integrated ``fp``.
    kind : str
        Receptor kind recorded.

    Returns
    -------
    xarray.DataArray
        ``(receptor, time, y, x)`` [ppm per (µmol m-2 s-1)]; ``layer_time(receptor, time)``
        gives each layer's start (integrated ``fp``: the receptor time, one layer).
    """
    return _read(Path(path), "fp", "lat", "lon", "name", hitres, kind)


def read_paris(path: str | Path, *, kind: str = "tower") -> xr.DataArray:
    """Read a NAME footprint in the PARIS format, ``srr(time, latitude, longitude)``.

    Returns the same layout as :func:`read_name` with ``hitres=False``.
    """
    return _read(Path(path), "srr", "latitude", "longitude", "paris", False, kind)


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
        t = ds["time"].values.astype("datetime64[ns]")
        heights = ds["height"].values.astype(float)
        blocks, labels = [], []
        for side, name in zip(_SIDES, names, strict=True):
            da = ds[name]
            along = [d for d in da.dims if d not in ("time", "height")]
            v = load_values(da.sum(along).transpose("time", "height"), path).astype(float)
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
