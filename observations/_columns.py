"""Satellite column readers: OCO-2/OCO-3/ACOS-GOSAT L2 Lite and the generic ``cityflux-column``
layout (TanSat-like, FORMATS.md); quality, domain and time filters; super-observations.

Levels are stored surface -> top of atmosphere (level 0 = surface); Lite files (space -> surface)
are reversed (by their pressures: a file already surface first is read as it is, and that is
stated).  A sounding keeps its own time (Lite ``time``: sounding time, UTC).  A negative
uncertainty, or pressure weights of a kept sounding that do not sum to 1, are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ingest import FileProbe, pressure_factor

from ._exceptions import ObservationFormatError
from ._io import (
    decode_cf_time,
    get_var,
    normalise_scale,
    open_netcdf,
    read_float,
    read_strings,
    to_ppm_factor,
)
from ._qc import QCReport, QCTracker, attach_report
from ._registry import register_reader
from ._schema import make_observation_set
from ._tower_core import select_period

__all__ = ["ColumnOptions", "read_column_nc", "read_oco_lite", "superobs_reduce"]

#: OCO-2/OCO-3 ``Sounding/operation_mode`` codes.
OPERATION_MODES = {"ND": 0, "GL": 1, "TG": 2, "XS": 3, "SAM": 4}


@dataclass
class ColumnRecords:
    """Soundings of one file (levels surface -> top, values in ppm)."""

    source: str
    time: np.ndarray
    value: np.ndarray
    unc: np.ndarray
    flag: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    alt: np.ndarray
    ak: np.ndarray
    pw: np.ndarray
    apriori: np.ndarray
    pressure: np.ndarray
    site: np.ndarray
    scale: str
    orbit: np.ndarray | None = None
    mode: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)
    species: str = "co2"
    assumptions: dict = field(default_factory=dict)
    unc_name: str = "xco2_uncertainty"  # the file's names, for messages
    pw_name: str = "pressure_weight"


#: Tolerance on the sum of a sounding's pressure weights (1) [1]; the same as the column
#: sampler's (``transport_models.operator._rows.PRESSURE_WEIGHT_ATOL``).
PRESSURE_WEIGHT_ATOL = 1e-4


def surface_first(prof: dict[str, np.ndarray], expected: str, notes: dict) -> dict[str, np.ndarray]:
    """(sounding, level) arrays ordered surface -> top by their pressures.

    Levels whose median pressure increases along the level axis are top -> surface and are
    reversed. When the file's order differs from the ``expected`` one of its format
    (``"surface_to_top"`` or ``"top_to_surface"``), ``notes["level order"]`` says so.
    """
    p = prof["pressure"]
    top_first = bool(np.nanmedian(p[:, 0]) < np.nanmedian(p[:, -1]))
    if top_first:
        prof = {k: v[:, ::-1] for k, v in prof.items()}
    if top_first != (expected == "top_to_surface"):
        notes["level order"] = (
            "top -> surface in the file (pressure increasing); reversed"
            if top_first
            else "surface -> top in the file (pressure decreasing), not the documented "
            "top -> surface; read as it is"
        )
    return prof


def _check_column_values(rec: ColumnRecords, keep: np.ndarray) -> None:
    """Refuse negative uncertainties and pressure weights that do not sum to 1 (kept
    soundings), naming the file and the variable."""
    neg = np.flatnonzero(np.isfinite(rec.unc) & (rec.unc < 0))
    if neg.size:
        raise ObservationFormatError(
            f"{rec.source}: variable {rec.unc_name!r} holds {neg.size} negative uncertainties "
            f"(first {float(rec.unc[neg[0]]):.4g} ppm at sounding {int(neg[0])}); an uncertainty "
            "is >= 0 (it is never made positive): fix the file"
        )
    pw = rec.pw[keep]
    total = np.where(np.isfinite(pw), pw, 0.0).sum(axis=1)
    off = np.flatnonzero(np.abs(total - 1.0) > PRESSURE_WEIGHT_ATOL)
    if off.size:
        i = int(np.flatnonzero(keep)[off[0]])
        raise ObservationFormatError(
            f"{rec.source}: variable {rec.pw_name!r}: the pressure weights of {off.size} "
            f"sounding(s) do not sum to 1 (sounding {i}: {float(total[off[0]]):.6g}); they are "
            "fractions of the column: check the variable, its level order and padding"
        )


@dataclass(frozen=True)
class ColumnOptions:
    """Options of the column readers (see :func:`read_oco_lite`)."""

    quality_flag: int | None = 0
    bbox: tuple[float, float, float, float] | None = None
    start: str | None = None
    end: str | None = None
    operation_modes: tuple | None = None
    superobs: float | None = None
    correlated_error: float = 0.0
    overpass_gap: float = 600.0
    err_calibration: float = 0.0
    err_transport: float = 0.0


def _overpass_ids(time: np.ndarray, orbit: np.ndarray | None, gap_s: float) -> np.ndarray:
    """Overpass id: runs of soundings (sorted by time) without a gap > ``gap_s`` (and same orbit)."""
    order = np.argsort(time, kind="stable")
    t = time[order].astype("int64") / 1e9
    new = np.r_[True, np.diff(t) > gap_s]
    if orbit is not None:
        o = orbit[order]
        new |= np.r_[True, o[1:] != o[:-1]]
    ids = np.empty(time.size, dtype="int64")
    ids[order] = np.cumsum(new) - 1
    return ids


def superobs_reduce(keys: np.ndarray, arrays: dict[str, np.ndarray]) -> tuple[dict, np.ndarray]:
    """Means of ``arrays`` (first axis = sounding) over equal ``keys``; returns (means, counts).

    Vectorised with a stable sort and ``np.add.reduceat`` (no loop over soundings).
    """
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, k.size])
    out = {}
    for name, arr in arrays.items():
        a = np.asarray(arr)[order]
        shape = (-1,) + (1,) * (a.ndim - 1)
        out[name] = np.add.reduceat(a, starts, axis=0) / counts.reshape(shape)
    return out, counts


def finalize_column(rec: ColumnRecords, opts: ColumnOptions) -> xr.Dataset:
    """QC, domain/time selection, optional super-observations -> ObservationSet."""
    qc = QCTracker(rec.source, rec.value.size)
    for key, text in rec.assumptions.items():
        qc.assume(key, text)
    qc.drop(~np.isfinite(rec.value) | ~np.isfinite(rec.unc), "missing xco2 or uncertainty")
    no_err = (rec.unc <= 0) & (opts.err_calibration == 0) & (opts.err_transport == 0)
    qc.drop(no_err, "no uncertainty (zero total error; set err_transport)")
    qc.drop(np.isnat(rec.time), "missing time")
    profile_ok = np.isfinite(rec.ak).all(1) & np.isfinite(rec.pw).all(1)
    profile_ok &= np.isfinite(rec.apriori).all(1) & np.isfinite(rec.pressure).all(1)
    qc.drop(~profile_ok, "missing averaging kernel / profile")
    if opts.quality_flag is not None:
        qc.drop(rec.flag != opts.quality_flag, f"quality flag != {opts.quality_flag}")
    if opts.operation_modes is not None:
        if rec.mode is None:
            raise ObservationFormatError(
                f"{rec.source}: operation_modes={opts.operation_modes} requested but the file "
                "has no 'Sounding/operation_mode' (GOSAT/ACOS files have none); drop the option"
            )
        codes = [OPERATION_MODES.get(m, m) for m in opts.operation_modes]
        qc.drop(~np.isin(rec.mode, codes), f"operation mode not in {list(opts.operation_modes)}")
    select_period(rec.time, qc, opts.start, opts.end)
    if opts.bbox is not None:
        lon0, lat0, lon1, lat1 = opts.bbox
        inside = (rec.lon >= lon0) & (rec.lon <= lon1) & (rec.lat >= lat0) & (rec.lat <= lat1)
        qc.drop(~inside, "outside domain")
    qc.require_nonempty()
    keep = qc.keep
    _check_column_values(rec, keep)
    n_kept = int(keep.sum())
    overpass = _overpass_ids(rec.time[keep], None if rec.orbit is None else rec.orbit[keep],
                             opts.overpass_gap)  # fmt: skip
    c = float(opts.correlated_error)
    unc = rec.unc[keep]
    fields = {
        "value": rec.value[keep],
        "value2": rec.value[keep] ** 2,
        "unc_r2": np.maximum(unc**2 - c**2, 0.0),
        "unc2": unc**2,
        "time": rec.time[keep].astype("int64").astype("float64"),
        "lat": rec.lat[keep],
        "lon": rec.lon[keep],
        "alt": rec.alt[keep],
        "ak": rec.ak[keep],
        "pw": rec.pw[keep],
        "apriori": rec.apriori[keep],
        "pressure": rec.pressure[keep],
    }
    site = rec.site[keep]
    if opts.superobs:
        size = float(opts.superobs)
        iy = np.floor(fields["lat"] / size).astype("int64")
        ix = np.floor(fields["lon"] / size).astype("int64")
        keys, _ = pd.factorize(pd.MultiIndex.from_arrays([overpass, iy, ix]))
        order = np.argsort(keys, kind="stable")
        first = order[np.flatnonzero(np.r_[True, np.diff(keys[order]) != 0])]
        m, counts = superobs_reduce(keys, fields)
        cnt = counts.astype("float64")
        var = np.maximum(m["value2"] - m["value"] ** 2, 0.0) * cnt / np.maximum(cnt - 1, 1)
        std = np.where(counts > 1, np.sqrt(var), np.nan)
        # random part reduced by 1/sqrt(n), the within-overpass correlated part c kept whole
        inst = np.sqrt(m["unc_r2"] / cnt + np.minimum(c**2, m["unc2"]))
        rep = np.where(counts > 1, std / np.sqrt(cnt), 0.0)
        overpass_out, site = overpass[first], site[first]
        qc.report.averaged = n_kept
    else:
        m, counts = fields, np.ones(n_kept, dtype="int64")
        std = np.full(n_kept, np.nan)
        inst, rep = unc, np.zeros(n_kept)
        overpass_out = overpass
    qc.report.kept = int(counts.size)
    ds = make_observation_set(
        value=m["value"],
        time=np.round(m["time"]).astype("int64").astype("datetime64[ns]"),
        kind="column",
        site=site,
        lat=m["lat"],
        lon=m["lon"],
        alt=m["alt"],
        errors={
            "instrument": inst,
            "calibration": opts.err_calibration,
            "transport": opts.err_transport,
            "representation": rep,
        },
        extras={
            "averaging_kernel": m["ak"],
            "pressure_weight": m["pw"],
            "co2_apriori": m["apriori"],
            "pressure": m["pressure"],
            "group": overpass_out,
            "scale": np.full(counts.size, rec.scale, dtype=object),
            "count": counts.astype("int64"),
            "std": std,
        },
        alt_reference="asl",
        attrs={
            **rec.attrs,
            "species": rec.species,
            "level_order": "surface_to_top",
            "superobs_cell_deg": float(opts.superobs or 0.0),
            "correlated_error_ppm": c,
            "time_convention": "sounding time (mean sounding time for super-observations), UTC",
        },
    )
    ds["alt"].attrs["long_name"] = "surface altitude above sea level"
    ds["pressure"].attrs["long_name"] = "pressure at level boundaries, level 0 = surface"
    return attach_report(ds, QCReport([qc.report]))


def _column_opts(**kw) -> ColumnOptions:
    modes = kw.pop("operation_modes")
    return ColumnOptions(operation_modes=None if modes is None else tuple(modes), **kw)


def _is_lite(probe: FileProbe) -> bool:
    return probe.is_netcdf and probe.has("xco2", "sounding_id")


@register_reader(
    "oco_lite",
    sniff=_is_lite,
    description="OCO-2 / OCO-3 / ACOS-GOSAT L2 Lite NetCDF (xco2, averaging kernel, ...)",
)
def read_oco_lite(
    path: Path,
    *,
    quality_flag: int | None = 0,
    bbox: tuple[float, float, float, float] | None = None,
    start: str | None = None,
    end: str | None = None,
    operation_modes: list | None = None,
    superobs: float | None = None,
    correlated_error: float = 0.0,
    overpass_gap: float = 600.0,
    scale: str = "TCCON-tied (Lite bias correction)",
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read an OCO-2/OCO-3/ACOS-GOSAT L2 Lite file.

    Parameters
    ----------
    path : Path
        Lite NetCDF4 file (``xco2``, ``xco2_uncertainty``, ``xco2_quality_flag``,
        ``pressure_weight``, ``xco2_averaging_kernel``, ``co2_profile_apriori``,
        ``pressure_levels`` space -> surface; optional ``Sounding/operation_mode``,
        ``Sounding/orbit``, ``Sounding/target_id``, ``Sounding/altitude``).
    quality_flag : int or None
        Keep soundings with ``xco2_quality_flag == quality_flag`` (0 = good); None keeps all.
    bbox : (lon_min, lat_min, lon_max, lat_max), optional
        Domain [degrees]; soundings outside are dropped and counted.
    start, end : str, optional
        Period [start, end), UTC.
    operation_modes : list, optional
        OCO modes to keep, names (``"ND", "GL", "TG", "XS", "SAM"`` = 0..4) or codes.
    superobs : float, optional
        Cell size [degrees]: average soundings of one overpass within lat/lon cells.  Value and
        kernels are plain means; ``err_instrument = sqrt((u_rms^2 - c^2)/n + c^2)`` (random part
        reduced by 1/sqrt(n), correlated part ``c`` kept); ``err_representation = std/sqrt(n)``.
    correlated_error : float
        Part ``c`` [ppm] of each sounding's error that is correlated within an overpass.
    overpass_gap : float
        Time gap [s] that starts a new overpass (correlation ``group``).
    scale : str
        Calibration-scale name recorded in ``scale``.
    err_calibration, err_transport : float
        Error components [ppm].

    Returns
    -------
    xarray.Dataset
        ObservationSet, kind "column", levels surface -> top; site = target id or platform.
    """
    path = Path(path)
    with open_netcdf(path) as nc:
        xv = get_var(nc, "xco2", path)
        xfac = to_ppm_factor(getattr(xv, "units", "ppm"), where=f"{path}: xco2")
        n = xv.shape[0]
        if n == 0:
            raise ObservationFormatError(f"{path}: no soundings (dimension sounding_id is 0)")
        value = read_float(xv, path) * xfac
        unc = read_float(get_var(nc, "xco2_uncertainty", path), path) * xfac
        flag = read_float(get_var(nc, "xco2_quality_flag", path), path)
        tv = get_var(nc, "time", path)
        time = decode_cf_time(read_float(tv, path), tv.units, where=str(path))
        lat = read_float(get_var(nc, "latitude", path), path)
        lon = read_float(get_var(nc, "longitude", path), path)
        prof = {}
        for key, name in (
            ("ak", "xco2_averaging_kernel"),
            ("pw", "pressure_weight"),
            ("apriori", "co2_profile_apriori"),
            ("pressure", "pressure_levels"),
        ):
            prof[key] = read_float(get_var(nc, name, path), path)
        pv = get_var(nc, "pressure_levels", path)
        prof["pressure"] = prof["pressure"] * pressure_factor(
            getattr(pv, "units", "hPa"), where=f"{path}: variable 'pressure_levels'"
        )
        notes: dict[str, str] = {}
        prof = surface_first(prof, "top_to_surface", notes)
        altv = get_var(nc, "Sounding/altitude", path, required=False)
        alt = np.zeros(n) if altv is None else np.nan_to_num(read_float(altv, path))
        modev = get_var(nc, "Sounding/operation_mode", path, required=False)
        orbv = get_var(nc, "Sounding/orbit", path, required=False)
        tgt = get_var(nc, "Sounding/target_id", path, required=False)
        platform = str(nc.getncattr("Platform")) if "Platform" in nc.ncattrs() else "satellite"
        site = np.full(n, platform, dtype=object)
        if tgt is not None:
            ids = read_strings(tgt)
            site = np.where(np.char.str_len(ids) > 0, ids, site)
        rec = ColumnRecords(
            source=str(path),
            time=time,
            value=value,
            unc=unc,
            flag=flag,
            lat=lat,
            lon=lon,
            alt=alt,
            site=site.astype(str),
            scale=normalise_scale(scale),
            orbit=None if orbv is None else read_float(orbv, path),
            mode=None if modev is None else read_float(modev, path),
            attrs={"source_file": path.name, "platform": platform},
            assumptions=notes,
            **prof,
        )
    opts = _column_opts(
        quality_flag=quality_flag, bbox=bbox, start=start, end=end,
        operation_modes=operation_modes, superobs=superobs, correlated_error=correlated_error,
        overpass_gap=overpass_gap, err_calibration=err_calibration, err_transport=err_transport,
    )  # fmt: skip
    return finalize_column(rec, opts)


def has_format_attr(probe: FileProbe, name: str) -> bool:
    """True for a NetCDF file with global attribute ``cityflux_format == name``."""
    return probe.is_netcdf and str(probe.attrs.get("cityflux_format", "")) == name


def read_level_block(nc, path: Path, names: dict[str, str]) -> dict[str, np.ndarray]:
    """Read (sounding, level) variables and return them surface -> top using ``level_order``."""
    out = {}
    order = str(getattr(nc, "level_order", "")).strip()
    if order not in ("surface_to_top", "top_to_surface"):
        raise ObservationFormatError(
            f"{path}: global attribute level_order={order!r}; expected 'surface_to_top' or "
            "'top_to_surface'"
        )
    for key, name in names.items():
        arr = read_float(get_var(nc, name, path), path)
        out[key] = arr[:, ::-1] if order == "top_to_surface" else arr
    return out


@register_reader(
    "column_nc",
    sniff=lambda probe: has_format_attr(probe, "column"),
    description="generic cityflux-column NetCDF (TanSat-like; FORMATS.md)",
)
def read_column_nc(
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
    """Read the generic column layout (``cityflux_format = "column"``) of FORMATS.md.

    Options as :func:`read_oco_lite`; an ``overpass`` variable, when present, sets the
    overpass (correlation group) instead of the time-gap rule.
    """
    return read_generic_column(
        Path(path),
        ak_name="averaging_kernel",
        apriori_name="co2_apriori",
        opts=_column_opts(
            quality_flag=quality_flag, bbox=bbox, start=start, end=end, operation_modes=None,
            superobs=superobs, correlated_error=correlated_error, overpass_gap=overpass_gap,
            err_calibration=err_calibration, err_transport=err_transport,
        ),
    )  # fmt: skip


def read_generic_column(
    path: Path, *, ak_name: str | None, apriori_name: str | None, opts: ColumnOptions,
    weight_name: str = "pressure_weight",
) -> xr.Dataset:  # fmt: skip
    """Shared reader of the cityflux column and IPDA layouts (see FORMATS.md)."""
    with open_netcdf(path) as nc:
        xv = get_var(nc, "xco2", path)
        xfac = to_ppm_factor(getattr(xv, "units", None), where=f"{path}: variable 'xco2'")
        n = xv.shape[0]
        if n == 0:
            raise ObservationFormatError(f"{path}: no soundings (dimension 'sounding' is 0)")
        tv = get_var(nc, "time", path)
        names = {"pw": weight_name, "pressure": "pressure"}
        if ak_name:
            names["ak"] = ak_name
        if apriori_name:
            names["apriori"] = apriori_name
        prof = read_level_block(nc, path, names)
        # IPDA: the weighting function is the whole operator (kernel 1, no prior dependence)
        prof.setdefault("ak", np.ones_like(prof["pw"]))
        prof.setdefault("apriori", np.zeros_like(prof["pw"]))
        flagv = get_var(nc, "quality_flag", path, required=False)
        altv = get_var(nc, "surface_altitude", path, required=False)
        ov = get_var(nc, "overpass", path, required=False)
        platform = str(getattr(nc, "platform", "satellite"))
        rec = ColumnRecords(
            source=str(path),
            time=decode_cf_time(read_float(tv, path), tv.units, where=str(path)),
            value=read_float(xv, path) * xfac,
            unc=read_float(get_var(nc, "xco2_uncertainty", path), path) * xfac,
            flag=np.zeros(n) if flagv is None else read_float(flagv, path),
            lat=read_float(get_var(nc, "latitude", path), path),
            lon=read_float(get_var(nc, "longitude", path), path),
            alt=np.zeros(n) if altv is None else read_float(altv, path),
            site=np.full(n, platform, dtype=object),
            scale=normalise_scale(getattr(nc, "calibration_scale", "")),
            orbit=None if ov is None else read_float(ov, path),
            attrs={"source_file": path.name, "platform": platform},
            pw_name=weight_name,
            **prof,
        )
    return finalize_column(rec, opts)
