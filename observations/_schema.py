"""The ObservationSet: an ``xarray.Dataset`` with dimension ``"obs"`` (see DESIGN.md).

Conventions fixed here and relied on by every reader:

* ``value`` is a dry-air mole fraction in ppm (µmol mol-1), float64.
* ``time`` is the *representative* time of the observation, UTC, ``datetime64[ns]``: the
  **midpoint** of the averaging interval (an ObsPack hourly record stamped at 10:00, i.e. at
  the interval start, gets 10:30; a satellite sounding keeps its own time).
* ``alt`` is in metres; ``alt.attrs["reference"]`` says ``"agl"`` (towers: intake height above
  ground) or ``"asl"`` (lidar end points, column surface altitude).  A combined set mixing both
  carries the per-observation variable ``alt_reference``.
* Error components ``err_instrument``, ``err_calibration``, ``err_transport``,
  ``err_representation``, ``err_background`` are 1-sigma in ppm; a missing component is 0, never
  NaN.  They are independent and add in quadrature (:func:`total_error`).
* Column extras on dimension ``level`` are ordered **surface -> top of atmosphere** (level 0 is
  the surface); readers of top -> surface files reverse them.
* ``group`` (int) is the correlation-group id (tower site-day, satellite overpass, lidar scan);
  ``scale`` (str) the calibration scale name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._exceptions import MissingVariableError, ObservationFormatError, UnitsError

__all__ = [
    "ERROR_COMPONENTS",
    "EXTRA_UNITS",
    "KINDS",
    "LEVEL_ORDER",
    "make_observation_set",
    "total_error",
    "validate_observation_set",
]

KINDS = ("tower", "column", "lidar_path", "lidar_profile")
ERROR_COMPONENTS = ("instrument", "calibration", "transport", "representation", "background")
LEVEL_ORDER = "surface_to_top"
UNSPECIFIED_SCALE = "unspecified"

_REQUIRED_UNITS = {
    "value": "ppm",
    "lat": "degrees_north",
    "lon": "degrees_east",
    "alt": "m",
    **{f"err_{c}": "ppm" for c in ERROR_COMPONENTS},
}

#: Units of the known per-kind extras ("1" = dimensionless).
EXTRA_UNITS: dict[str, str] = {
    "averaging_kernel": "1",
    "pressure_weight": "1",
    "co2_apriori": "ppm",
    "pressure": "hPa",
    "lat0": "degrees_north",
    "lon0": "degrees_east",
    "alt0": "m",
    "lat1": "degrees_north",
    "lon1": "degrees_east",
    "alt1": "m",
    "range_start": "m",
    "range_end": "m",
    "std": "ppm",
    "background": "ppm",
    "count": "1",
}

_KIND_EXTRAS = {
    "column": ("averaging_kernel", "pressure_weight", "co2_apriori", "pressure"),
    "lidar_path": ("lat0", "lon0", "alt0", "lat1", "lon1", "alt1"),
    "lidar_profile": ("lat0", "lon0", "alt0", "lat1", "lon1", "alt1", "range_start", "range_end"),
}


def _as_time(time: Any, n: int | None = None) -> np.ndarray:
    """Convert times to UTC-naive ``datetime64[ns]``."""
    idx = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(time), utc=True))
    out = idx.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
    if n is not None and out.size == 1 and n != 1:
        out = np.repeat(out, n)
    return out


def _broadcast(name: str, values: Any, n: int, dtype: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim == 0:
        return np.full(n, arr.item(), dtype=dtype)
    if arr.shape != (n,):
        raise ObservationFormatError(
            f"make_observation_set: {name!r} has shape {arr.shape}, expected ({n},) like 'value' "
            "or a scalar; pass one entry per observation."
        )
    return arr


def make_observation_set(
    value: Any,
    time: Any,
    kind: Any,
    site: Any,
    lat: Any,
    lon: Any,
    alt: Any,
    errors: Mapping[str, Any] | None = None,
    extras: Mapping[str, Any] | None = None,
    *,
    alt_reference: str = "agl",
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build and validate an ObservationSet.

    Parameters
    ----------
    value : array_like
        Mole fraction [ppm], shape (n_obs,).
    time : array_like
        Representative (interval-midpoint) times, UTC; anything ``pandas.to_datetime`` reads.
    kind, site : str or array_like of str
        Observation kind (one of ``KINDS``) and site / platform name; scalars are broadcast.
    lat, lon : float or array_like
        Position [degrees_north, degrees_east].
    alt : float or array_like
        Altitude [m]; above ground or above sea level as ``alt_reference`` says.
    errors : mapping, optional
        Error components [ppm], keys ``"instrument"`` or ``"err_instrument"`` etc.; values scalar
        or (n_obs,).  Missing components are 0.
    extras : mapping, optional
        Additional variables: name -> array (n_obs,) or (n_obs, n_level) (dims ``("obs",
        "level")``), or ``(dims, data)`` tuple, or ``xarray.DataArray``.  ``group`` (int) and
        ``scale`` (str) default to one group per observation and ``"unspecified"``.
    alt_reference : {"agl", "asl"}
        Reference of ``alt``.
    attrs : mapping, optional
        Dataset attributes.

    Returns
    -------
    xarray.Dataset
        The validated ObservationSet (dim ``"obs"``).

    Raises
    ------
    ValueError
        (``ObservationFormatError``) on wrong shapes, unknown kinds, non-finite values or a
        non-positive total error.
    """
    val = np.atleast_1d(np.asarray(value, dtype="float64"))
    if val.ndim != 1:
        raise ObservationFormatError(f"make_observation_set: 'value' must be 1-D, got {val.shape}")
    n = val.size
    if alt_reference not in ("agl", "asl"):
        raise ObservationFormatError(
            f"make_observation_set: alt_reference={alt_reference!r}, expected 'agl' or 'asl'"
        )
    data: dict[str, Any] = {
        "value": ("obs", val, {"units": "ppm", "long_name": "dry-air mole fraction of CO2"}),
        "time": (
            "obs",
            _as_time(time, n),
            {"long_name": "representative time (interval midpoint), UTC"},
        ),
        "kind": ("obs", _broadcast("kind", kind, n, object).astype(str)),
        "site": ("obs", _broadcast("site", site, n, object).astype(str)),
        "lat": ("obs", _broadcast("lat", lat, n, "float64"), {"units": "degrees_north"}),
        "lon": ("obs", _broadcast("lon", lon, n, "float64"), {"units": "degrees_east"}),
        "alt": ("obs", _broadcast("alt", alt, n, "float64"), {"units": "m"}),
    }
    data["alt"][2]["reference"] = alt_reference
    given = {(k if k.startswith("err_") else f"err_{k}"): v for k, v in (errors or {}).items()}
    unknown = set(given) - {f"err_{c}" for c in ERROR_COMPONENTS}
    if unknown:
        raise ObservationFormatError(
            f"make_observation_set: unknown error components {sorted(unknown)}; "
            f"expected some of {list(ERROR_COMPONENTS)}"
        )
    for comp in ERROR_COMPONENTS:
        name = f"err_{comp}"
        arr = _broadcast(name, given.get(name, 0.0), n, "float64")
        data[name] = ("obs", arr, {"units": "ppm", "long_name": f"{comp} error (1 sigma)"})
    extras = dict(extras or {})
    extras.setdefault("group", np.arange(n, dtype="int64"))
    extras.setdefault("scale", UNSPECIFIED_SCALE)
    ds = xr.Dataset(data)
    for name, item in extras.items():
        if isinstance(item, xr.DataArray):
            ds[name] = item
            continue
        if isinstance(item, tuple):
            dims, arr = item[0], np.asarray(item[1])
        else:
            arr = np.asarray(item)
            if arr.ndim == 0:
                arr = _broadcast(name, arr, n, arr.dtype if arr.dtype != np.str_ else object)
            dims = ("obs",) if arr.ndim == 1 else ("obs", "level")
        if name == "group":
            arr = arr.astype("int64")
        elif name == "scale":
            arr = arr.astype(str)
        ds[name] = (dims, arr)
        if name in EXTRA_UNITS:
            ds[name].attrs["units"] = EXTRA_UNITS[name]
    if "level" in ds.dims:
        ds.attrs["level_order"] = LEVEL_ORDER
    ds.attrs.update(dict(attrs or {}))
    validate_observation_set(ds)
    return ds


def total_error(ds: xr.Dataset) -> xr.DataArray:
    """Total 1-sigma error: quadrature sum of the ``err_*`` components [ppm].

    Parameters
    ----------
    ds : xarray.Dataset
        ObservationSet.

    Returns
    -------
    xarray.DataArray
        sqrt(sum of err_c**2) [ppm], dim ``"obs"``.
    """
    sq = sum(ds[f"err_{c}"] ** 2 for c in ERROR_COMPONENTS if f"err_{c}" in ds)
    out = np.sqrt(sq)
    out.attrs = {"units": "ppm", "long_name": "total observation error (1 sigma)"}
    return out


def _bad_count(arr: np.ndarray) -> int:
    return int(np.count_nonzero(~np.isfinite(arr)))


def validate_observation_set(ds: xr.Dataset, *, name: str = "ObservationSet") -> xr.Dataset:
    """Check that ``ds`` is a valid ObservationSet; return it unchanged.

    Checks: dimension ``obs``; required variables present with the expected ``units``; finite
    value/lat/lon/alt/errors; no NaT time; kinds known; errors >= 0 and total error > 0;
    per-kind extras present and finite on the rows of that kind.

    Raises
    ------
    KeyError
        (``MissingVariableError``) when a required variable is absent.
    ValueError
        (``UnitsError`` / ``ObservationFormatError``) on wrong units or values.
    """
    if "obs" not in ds.dims:
        raise ObservationFormatError(f"{name}: no dimension 'obs' (found {tuple(ds.dims)})")
    for var in ("time", "kind", "site", "group", "scale", *_REQUIRED_UNITS):
        if var not in ds:
            raise MissingVariableError(
                f"{name}: required variable {var!r} is missing; build sets with "
                "observations.make_observation_set"
            )
        if ds[var].dims[:1] != ("obs",):
            raise ObservationFormatError(f"{name}: {var!r} has dims {ds[var].dims}, expected obs")
    for var, unit in _REQUIRED_UNITS.items():
        found = ds[var].attrs.get("units")
        if found != unit:
            raise UnitsError(f"{name}: {var!r} has units {found!r}, expected {unit!r}")
    for var in _REQUIRED_UNITS:
        nbad = _bad_count(ds[var].values)
        if nbad:
            raise ObservationFormatError(
                f"{name}: {var!r} has {nbad} non-finite entries of {ds.sizes['obs']}; drop or "
                "fill them (missing error components are 0) before building the set"
            )
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise ObservationFormatError(f"{name}: 'time' has dtype {ds['time'].dtype}, not datetime")
    if np.isnat(ds["time"].values).any():
        raise ObservationFormatError(f"{name}: 'time' contains NaT")
    kinds = np.unique(ds["kind"].values.astype(str))
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise ObservationFormatError(f"{name}: unknown kind(s) {bad}; expected one of {KINDS}")
    for comp in ERROR_COMPONENTS:
        if (ds[f"err_{comp}"].values < 0).any():
            raise ObservationFormatError(f"{name}: 'err_{comp}' has negative entries")
    tot = total_error(ds).values
    if tot.size and not (tot > 0).all():
        raise ObservationFormatError(
            f"{name}: {int((tot <= 0).sum())} observations have zero total error; set an "
            "instrument or transport error (e.g. read(..., err_transport=1.0))"
        )
    kind_arr = ds["kind"].values.astype(str)
    for kind, names in _KIND_EXTRAS.items():
        rows = kind_arr == kind
        if not rows.any():
            continue
        for var in names:
            if var not in ds:
                raise MissingVariableError(f"{name}: kind {kind!r} needs variable {var!r}")
            sub = ds[var].values[rows]
            if var in ("averaging_kernel", "pressure_weight", "co2_apriori", "pressure"):
                # padded levels (combined sets with different level counts) are NaN everywhere
                sub = sub[:, np.isfinite(sub).any(axis=0)] if sub.ndim == 2 else sub
            if _bad_count(sub):
                raise ObservationFormatError(
                    f"{name}: {var!r} has non-finite entries on {kind!r} observations"
                )
    return ds
