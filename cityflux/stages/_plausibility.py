"""Plausibility of inputs as read: per-record checks of observations (dropped and counted),
refusals of absurd inventories and operators (with file and location), and errors that name
their file.

Observations: a record with a non-finite value, position or error, a value outside the plausible
range of its kind (``qc.bounds_ppm``), a total error above ``qc.max_error_ppm``, a position
outside ±90° / ±360°, or a negative tower intake height is dropped and counted in the QC report
(reason ``implausible ...``). A negative error component is an error: it is never silently made
positive by the quadrature sum.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

import observations
import transport_models
from cityflux._config_batch import QCConfig

__all__ = [
    "ABSURD_FLUX",
    "ABSURD_SENSITIVITY",
    "check_distinct_inventories",
    "check_inventory",
    "check_operator",
    "naming",
    "observation_plausibility",
]

#: |flux| above this is absurd [µmol m-2 s-1] (a 20 Mt/yr plant in one 100 m cell is ~1.4e6).
ABSURD_FLUX = 1e7
#: |H| above this is absurd [ppm per (µmol m-2 s-1)] (footprints are O(0.01–1) per cell); the
#: footprint readers refuse such cells in the files with the same bound.
ABSURD_SENSITIVITY = transport_models.ABSURD_SENSITIVITY


@contextlib.contextmanager
def naming(
    path: Path, key: str, options: Iterable[str] = (), options_key: str | None = None
) -> Iterator[None]:
    """Re-raise errors that do not name ``path`` with the path (and the config key) added.

    A ``TypeError`` that names one of the reader ``options`` (an unknown or misspelt option,
    ``ingest.ReaderOptionError``) becomes a configuration error naming ``options_key``
    (default ``<key>.options``).
    """
    from cityflux.config import ConfigError

    try:
        yield
    except TypeError as err:
        if any(repr(o) in str(err) for o in options):
            k = options_key or f"{key}.options"
            raise ConfigError(f"{k}: {err} (reading {path})", [(k, str(err))]) from None
        raise
    except (ValueError, KeyError, OSError) as err:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        if str(path) in text or path.name in text:
            raise
        msg = f"{path} ({key}): {text}"
        try:
            new = type(err)(msg)
        except Exception:  # an exception class with another signature
            new = ValueError(msg)
        raise new from err


def observation_plausibility(
    ds: xr.Dataset, qc: QCConfig, path: Path
) -> tuple[xr.Dataset, observations.SourceQC]:
    """Drop implausible records of an ObservationSet (values [ppm] as read, before background).

    Returns
    -------
    kept : xarray.Dataset
    report : observations.SourceQC
        The drops by reason (``implausible ...``).

    Raises
    ------
    ValueError
        If an error component is negative (names the file, the variable and the count).
    observations.EmptyAfterQCError
        If no record is left (names the file and the reasons).
    """
    n = ds.sizes["obs"]
    comps = [f"err_{c}" for c in observations.ERROR_COMPONENTS if f"err_{c}" in ds]
    for c in comps:
        v = ds[c].values
        neg = int((v < 0).sum())
        if neg:
            raise ValueError(
                f"{path}: {neg} record(s) of {n} have a negative uncertainty in {c!r} (min "
                f"{np.nanmin(v):.4g} ppm); an uncertainty is >= 0: fix the file's uncertainty "
                "column (it is never made positive silently)"
            )
    value = ds["value"].values.astype(float)
    kind = ds["kind"].values.astype(str)
    lat, lon = ds["lat"].values.astype(float), ds["lon"].values.astype(float)
    err2 = sum(np.asarray(ds[c].values, float) ** 2 for c in comps) if comps else np.zeros(n)
    total = np.sqrt(err2)
    reasons: dict[str, np.ndarray] = {}
    bad_value = ~np.isfinite(value)
    lo = np.array([qc.bounds(k)[0] for k in kind]) if n else np.zeros(0)
    hi = np.array([qc.bounds(k)[1] for k in kind]) if n else np.zeros(0)
    with np.errstate(invalid="ignore"):
        reasons["implausible value: non-finite"] = bad_value
        reasons["implausible value: outside qc.bounds_ppm"] = ~bad_value & (
            (value < lo) | (value > hi)
        )
        reasons["implausible uncertainty: non-finite"] = ~np.isfinite(total)
        reasons["implausible uncertainty: above qc.max_error_ppm"] = total > qc.max_error_ppm
        reasons["implausible position: latitude/longitude out of range or missing"] = ~(
            (np.abs(lat) <= 90) & (np.abs(lon) <= 360)
        )
        if "alt" in ds:
            alt = ds["alt"].values.astype(float)
            reasons["implausible position: negative tower intake height"] = (kind == "tower") & (
                alt < 0
            )
    drop = np.zeros(n, bool)
    src = observations.SourceQC(source=f"cityflux plausibility (qc): {path.name}", read=n)
    for reason, mask in reasons.items():
        new = mask & ~drop
        if new.any():
            src.dropped[reason] = int(new.sum())
        drop |= mask
    src.kept = int(n - drop.sum())
    if src.kept == 0:
        detail = ", ".join(f"{k} {reason}" for reason, k in src.dropped.items())
        raise observations.EmptyAfterQCError(
            f"{path}: none of the {n} observations is plausible ({detail}); check the file's "
            "values, units and positions, or qc.bounds_ppm / qc.max_error_ppm"
        )
    if not drop.any():
        return ds, src
    attrs = dict(ds.attrs)
    out = ds.isel(obs=np.flatnonzero(~drop))
    out.attrs = attrs
    return out, src


def _geographic(da: xr.DataArray) -> bool:
    wkt = da["spatial_ref"].attrs.get("crs_wkt") if "spatial_ref" in da.coords else None
    if wkt is None:
        return False
    from pyproj import CRS

    return CRS.from_wkt(wkt).is_geographic


def _coord_range(da: xr.DataArray, path: Path) -> None:
    """Refuse native lon/lat coordinates beyond ±90° (latitude) or -180..360° (longitude)."""
    names = {
        "lat": "latitude",
        "latitude": "latitude",
        "lon": "longitude",
        "longitude": "longitude",
    }
    if _geographic(da):  # a geographic grid keeps its native coordinates in y / x
        names = {"y": "latitude", "x": "longitude", **names}
    for name, what in names.items():
        if name not in da.coords:
            continue
        v = np.asarray(da[name].values, float)
        lo, hi = (-90.0, 90.0) if what == "latitude" else (-180.0, 360.0)
        if v.size and (not np.isfinite(v).all() or v.min() < lo or v.max() > hi):
            raise ValueError(
                f"{path}: coordinate {name!r} ({what}) spans {np.nanmin(v):.6g} to "
                f"{np.nanmax(v):.6g}, beyond [{lo:g}, {hi:g}] degrees; latitude and longitude "
                "may be swapped or scaled: fix the file's coordinates"
            )


def check_inventory(native: xr.DataArray, path: Path) -> None:
    """Refuse an inventory (as read, [µmol m-2 s-1]) with absurd values or coordinates.

    Raises
    ------
    ValueError
        Naming the file, the variable and the location of the first offending cell.
    """
    _coord_range(native, path)
    v = np.asarray(native.values, float)
    bad = ~np.isfinite(v) | (np.abs(v) > ABSURD_FLUX)
    if not bad.any():
        return
    idx = np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), v.shape)
    where = ", ".join(
        f"{d}={native[d].values[i]}" if d in native.coords else f"{d}[{i}]"
        for d, i in zip(native.dims, idx, strict=True)
    )
    raise ValueError(
        f"{path}: variable {native.name or 'flux'!r} holds {int(bad.sum())} non-finite or absurd "
        f"value(s) (|flux| > {ABSURD_FLUX:g} µmol m-2 s-1 after unit conversion), first "
        f"{v[idx]:.4g} at {where}; fix the file or its units"
    )


def check_distinct_inventories(inventories: Sequence) -> None:
    """Refuse an inventory listed twice (the same bytes read with the same format, options and
    sector, under the same or another name): its emissions would be summed twice.

    Raises
    ------
    cityflux.config.ConfigError
        Naming both ``prior.inventories[i]`` keys and the files.
    """
    from cityflux._files import sha256_file_cached
    from cityflux.config import ConfigError

    def key(inv) -> tuple:
        return (inv.format, inv.sector, repr(sorted(inv.options.items())))

    seen: dict[tuple, int] = {}
    for j, inv in enumerate(inventories):
        if not Path(inv.path).is_file():
            continue  # folders and missing files are refused by the readers with their keys
        k = (Path(inv.path).stat().st_size, *key(inv))
        i = seen.setdefault(k, j)
        if i == j:
            continue
        first = inventories[i]
        if sha256_file_cached(Path(first.path)) == sha256_file_cached(Path(inv.path)):
            msg = (
                f"prior.inventories[{j}] ({inv.path}) holds the same file as "
                f"prior.inventories[{i}] ({first.path}) with the same format, sector and "
                "options: its emissions would be counted twice; remove one of them"
            )
            raise ConfigError(msg, [(f"prior.inventories[{j}]", msg)])


def check_operator(H, obs: xr.Dataset, state, transport: str) -> None:
    """Refuse an observation operator with non-finite or absurd sensitivities.

    Raises
    ------
    ValueError
        Naming the observation (site, time) and the state cell (position, time bin).
    """
    data = H.data
    bad = ~np.isfinite(data) | (np.abs(data) > ABSURD_SENSITIVITY)
    if not bad.any():
        return
    k = int(np.flatnonzero(bad)[0])
    row = int(np.searchsorted(H.indptr, k, side="right") - 1)
    col = int(H.indices[k])
    site = str(obs["site"].values[row]) if "site" in obs else "?"
    time = str(obs["time"].values[row])[:19]
    where = f"state column {col}"
    if col < state.n_flux:
        _, t, j, i = np.unravel_index(col, state.flux_shape)
        g = state.grid
        where = (
            f"cell (lat {g.lat[j, i]:.4f}, lon {g.lon[j, i]:.4f}), time bin "
            f"{str(state.time.starts[t])[:16]}"
        )
    raise ValueError(
        f"transport ({transport}): {int(bad.sum())} non-finite or absurd sensitivities "
        f"(|H| > {ABSURD_SENSITIVITY:g} ppm per µmol m-2 s-1), first {data[k]:.4g} for the "
        f"observation at site {site!r}, {time} and the {where}; check the footprint file of "
        "that receptor (its values and units) or the meteorology"
    )
