"""Lidar readers (formats defined in FORMATS.md): ground-based path-integrated chords (CSV and
NetCDF), range-resolved profiles (segments along a beam) and spaceborne IPDA columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ingest import FileProbe

from ._columns import ColumnOptions, has_format_attr, read_generic_column
from ._exceptions import MissingVariableError, ObservationFormatError
from ._io import decode_cf_time, get_var, normalise_scale, open_netcdf, read_float, to_ppm_factor
from ._qc import QCReport, QCTracker, attach_report
from ._registry import register_reader
from ._schema import make_observation_set
from ._tower import csv_header
from ._tower_core import select_period

__all__ = ["read_ipda", "read_lidar_path", "read_lidar_profile"]

PATH_COLUMNS = (
    "time_start", "time_end", "site", "lat0", "lon0", "alt0", "lat1", "lon1", "alt1",
    "xco2", "xco2_uncertainty", "flag", "scan_id",
)  # fmt: skip
_EARTH_RADIUS = 6_371_000.0  # [m]


def _finalize_lidar(
    kind: str, source: str, cols: dict[str, np.ndarray], scale: str, *, start, end,
    err_calibration: float, err_transport: float, attrs: dict,
) -> xr.Dataset:  # fmt: skip
    """Common QC and assembly of chord / segment records."""
    n = cols["xco2"].size
    qc = QCTracker(source, n)
    qc.drop(~np.isfinite(cols["xco2"]) | ~np.isfinite(cols["xco2_uncertainty"]), "missing xco2")
    geom = np.column_stack([cols[k] for k in ("lat0", "lon0", "alt0", "lat1", "lon1", "alt1")])
    qc.drop(~np.isfinite(geom).all(axis=1), "missing end points")
    qc.drop(np.isnat(cols["time_start"]) | np.isnat(cols["time_end"]), "missing time")
    qc.drop(cols["flag"] != 0, "quality flag != 0")
    time = cols["time_start"] + (cols["time_end"] - cols["time_start"]) / 2
    select_period(time, qc, start, end)
    qc.require_nonempty()
    k = qc.keep
    qc.report.kept = int(k.sum())
    extras = {name: cols[name][k] for name in ("lat0", "lon0", "alt0", "lat1", "lon1", "alt1")}
    for name in ("range_start", "range_end"):
        if name in cols:
            extras[name] = cols[name][k]
    extras["group"] = pd.factorize(cols["group"][k])[0].astype("int64")
    extras["scale"] = np.full(int(k.sum()), scale, dtype=object)
    ds = make_observation_set(
        value=cols["xco2"][k],
        time=time[k],
        kind=kind,
        site=cols["site"][k],
        lat=(cols["lat0"][k] + cols["lat1"][k]) / 2,
        lon=(cols["lon0"][k] + cols["lon1"][k]) / 2,
        alt=(cols["alt0"][k] + cols["alt1"][k]) / 2,
        errors={
            "instrument": cols["xco2_uncertainty"][k],
            "calibration": err_calibration,
            "transport": err_transport,
        },
        extras=extras,
        alt_reference="asl",
        attrs={
            **attrs,
            "species": "co2",
            "time_convention": "midpoint of [time_start, time_end], UTC",
        },
    )
    ds["lat"].attrs["long_name"] = "latitude of the path midpoint"
    ds["alt"].attrs["long_name"] = "altitude of the path midpoint above sea level"
    return attach_report(ds, QCReport([qc.report]))


def _is_lidar_path(probe: FileProbe) -> bool:
    if has_format_attr(probe, "lidar_path"):
        return True
    return {"lat0", "lat1", "xco2"} <= set(csv_header(probe))


def _utc(values) -> np.ndarray:
    t = pd.to_datetime(pd.Series(values), utc=True, errors="coerce").dt.tz_localize(None)
    return t.to_numpy().astype("datetime64[ns]")


@register_reader(
    "lidar_path",
    sniff=_is_lidar_path,
    description="ground-based path-integrated lidar chords, CSV or NetCDF (FORMATS.md)",
)
def read_lidar_path(
    path: Path,
    *,
    start: str | None = None,
    end: str | None = None,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read path-integrated lidar chords (FORMATS.md, CSV or NetCDF ``cityflux_format =
    "lidar_path"``).

    Each chord runs from (lat0, lon0, alt0) to (lat1, lon1, alt1) [degrees, m asl];
    ``xco2`` is the path-mean mole fraction [ppm]; the representative time is the midpoint of
    [time_start, time_end]; ``group`` = ``scan_id`` (chords of one scan are correlated).
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        try:
            df = pd.read_csv(path, comment="#")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ObservationFormatError(f"{path}: cannot parse as CSV ({exc})") from exc
        df.columns = [c.strip() for c in df.columns]
        missing = [c for c in PATH_COLUMNS if c not in df.columns]
        if missing:
            raise MissingVariableError(f"{path}: lidar_path CSV columns {missing} missing")
        if df.empty:
            raise ObservationFormatError(f"{path}: no data rows")
        cols = {c: pd.to_numeric(df[c], errors="coerce").to_numpy("float64")
                for c in PATH_COLUMNS if c not in ("time_start", "time_end", "site")}  # fmt: skip
        cols["time_start"], cols["time_end"] = _utc(df["time_start"]), _utc(df["time_end"])
        cols["site"] = df["site"].astype(str).to_numpy()
        scale = normalise_scale(df["scale"].iloc[0]) if "scale" in df else "unspecified"
    else:
        with open_netcdf(path) as nc:
            cols = {}
            for c in PATH_COLUMNS:
                if c == "site":
                    continue
                var = get_var(nc, c, path)
                if c.startswith("time"):
                    cols[c] = decode_cf_time(read_float(var, path), var.units, where=str(path))
                else:
                    cols[c] = read_float(var, path)
            fac = to_ppm_factor(getattr(nc.variables["xco2"], "units", None), where=f"{path}: xco2")
            cols["xco2"] = cols["xco2"] * fac
            cols["xco2_uncertainty"] = cols["xco2_uncertainty"] * fac
            cols["site"] = np.full(cols["xco2"].size, str(getattr(nc, "site", path.stem)))
            scale = normalise_scale(getattr(nc, "calibration_scale", ""))
    cols["group"] = cols["scan_id"]
    return _finalize_lidar(
        "lidar_path", str(path), cols, scale, start=start, end=end,
        err_calibration=err_calibration, err_transport=err_transport,
        attrs={"source_file": path.name},
    )  # fmt: skip


def beam_point(lat0, lon0, alt0, azimuth, elevation, rng):
    """Point at slant range ``rng`` [m] along a beam (azimuth/elevation [deg]); local flat-earth
    approximation (valid for ranges << Earth radius). Returns (lat, lon, alt)."""
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    horiz = rng * np.cos(el)
    dlat = np.rad2deg(horiz * np.cos(az) / _EARTH_RADIUS)
    dlon = np.rad2deg(horiz * np.sin(az) / (_EARTH_RADIUS * np.cos(np.deg2rad(lat0))))
    return lat0 + dlat, lon0 + dlon, alt0 + rng * np.sin(el)


@register_reader(
    "lidar_profile",
    sniff=lambda probe: has_format_attr(probe, "lidar_profile"),
    description="range-resolved lidar profiles, NetCDF (FORMATS.md)",
)
def read_lidar_profile(
    path: Path,
    *,
    start: str | None = None,
    end: str | None = None,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read range-resolved lidar profiles: one observation per valid (profile, segment).

    Segment k of a profile spans slant ranges [range_start_k, range_end_k] [m] along the beam
    from (lat0, lon0, alt0) with ``azimuth``/``elevation`` [deg]; its end points are stored in
    lat0..alt1 and the ranges in range_start/range_end.  ``group`` = profile (scan).
    """
    path = Path(path)
    with open_netcdf(path) as nc:
        co2v = get_var(nc, "co2", path)
        if co2v.ndim != 2:
            raise ObservationFormatError(f"{path}: 'co2' must be (profile, segment)")
        fac = to_ppm_factor(getattr(co2v, "units", None), where=f"{path}: co2")
        co2 = read_float(co2v, path) * fac
        unc = read_float(get_var(nc, "co2_uncertainty", path), path) * fac
        flag = read_float(get_var(nc, "flag", path), path)
        prof = {c: read_float(get_var(nc, c, path), path)
                for c in ("lat0", "lon0", "alt0", "azimuth", "elevation")}  # fmt: skip
        times = {}
        for c in ("time_start", "time_end"):
            v = get_var(nc, c, path)
            times[c] = decode_cf_time(read_float(v, path), v.units, where=str(path))
        r0 = read_float(get_var(nc, "range_start", path), path)
        r1 = read_float(get_var(nc, "range_end", path), path)
        site = str(getattr(nc, "site", path.stem))
        scale = normalise_scale(getattr(nc, "calibration_scale", ""))
    n_prof, n_seg = co2.shape
    P = {k: np.repeat(v, n_seg) for k, v in {**prof, **times}.items()}
    R0, R1 = np.tile(r0, n_prof), np.tile(r1, n_prof)
    la0, lo0, al0 = beam_point(P["lat0"], P["lon0"], P["alt0"], P["azimuth"], P["elevation"], R0)
    la1, lo1, al1 = beam_point(P["lat0"], P["lon0"], P["alt0"], P["azimuth"], P["elevation"], R1)
    cols = {
        "xco2": co2.ravel(), "xco2_uncertainty": unc.ravel(), "flag": flag.ravel(),
        "time_start": P["time_start"], "time_end": P["time_end"],
        "lat0": la0, "lon0": lo0, "alt0": al0, "lat1": la1, "lon1": lo1, "alt1": al1,
        "range_start": R0, "range_end": R1, "site": np.full(co2.size, site),
        "group": np.repeat(np.arange(n_prof), n_seg),
    }  # fmt: skip
    return _finalize_lidar(
        "lidar_profile", str(path), cols, scale, start=start, end=end,
        err_calibration=err_calibration, err_transport=err_transport,
        attrs={"source_file": path.name},
    )  # fmt: skip


@register_reader(
    "ipda",
    sniff=lambda probe: has_format_attr(probe, "ipda"),
    description="spaceborne IPDA lidar XCO2 with integral weighting function (FORMATS.md)",
)
def read_ipda(
    path: Path,
    *,
    quality_flag: int | None = 0,
    bbox: tuple[float, float, float, float] | None = None,
    start: str | None = None,
    end: str | None = None,
    superobs: float | None = None,
    correlated_error: float = 0.0,
    overpass_gap: float = 600.0,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read spaceborne IPDA lidar columns (e.g. DQ-1 ACDL-like), kind "column".

    The integral weighting function (sums to 1 over levels) is stored as ``pressure_weight``;
    the IPDA column has no retrieval prior, so ``averaging_kernel = 1`` and ``co2_apriori = 0``
    (the column operator xco2 = sum_j w_j c_j is then independent of the prior).  Options as
    :func:`read_oco_lite`.
    """
    opts = ColumnOptions(
        quality_flag=quality_flag, bbox=bbox, start=start, end=end, superobs=superobs,
        correlated_error=correlated_error, overpass_gap=overpass_gap,
        err_calibration=err_calibration, err_transport=err_transport,
    )  # fmt: skip
    return read_generic_column(
        Path(path), ak_name=None, apriori_name=None, opts=opts, weight_name="weighting_function"
    )
