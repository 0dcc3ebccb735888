"""Tower in-situ processing shared by the tower readers: selection, hourly averaging, errors.

Representative time: the midpoint of the averaging interval (readers shift interval-start stamps
by half an interval).  Hourly averages use half-open UTC bins [h, h+1) and get the mean of the
averaged records' times (h+30 min for a full hour of evenly spaced records; a single record keeps
its own time, so midpoint-stamped hourly files are not shifted).
Local solar time is mean solar time, LST = UTC + lon/15 h (no equation-of-time correction).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ._exceptions import EmptyAfterQCError, ObservationFormatError
from ._qc import QCReport, QCTracker, attach_report
from ._schema import make_observation_set

__all__ = [
    "TowerOptions",
    "TowerRecords",
    "finalize_tower",
    "local_solar_hour",
    "negative_sentinels",
    "refuse_negative",
]

logger = logging.getLogger(__name__)

_PLAUSIBLE_PPM = {"co2": (150.0, 2000.0), "ch4": (0.5, 50.0), "co": (0.0, 50.0)}
_HOUR = np.timedelta64(3600, "s").astype("timedelta64[ns]")


@dataclass
class TowerRecords:
    """Raw tower records of one file, already in ppm with representative (midpoint) times."""

    source: str
    time: np.ndarray  # datetime64[ns], interval midpoint, UTC
    value: np.ndarray  # [ppm], NaN where missing
    flag_ok: np.ndarray  # bool
    intake: np.ndarray  # [m agl]
    lat: np.ndarray
    lon: np.ndarray
    site: str
    scale: str
    species: str
    unc: np.ndarray | None = None  # [ppm] instrument uncertainty per record
    std: np.ndarray | None = None  # [ppm] variability within the record's interval
    nvalue: np.ndarray | None = None  # measurements in the record
    extra_bad: dict[str, np.ndarray] | None = None  # further reason -> mask to drop
    assumptions: dict[str, str] | None = None  # what was taken from metadata or options
    value_origin: str = "variable 'value'"  # where the values and their units came from
    unc_origin: str = "value_unc"  # the file's name of the instrument uncertainty


@dataclass(frozen=True)
class TowerOptions:
    """Selection and error options of the tower readers (see ``read_obspack``)."""

    species: str | None = "co2"
    start: str | np.datetime64 | None = None
    end: str | np.datetime64 | None = None
    intake_height: float | str | None = "highest"
    hours: tuple[float, float] | None = None
    average: str | None = "hourly"
    err_instrument: float | None = None
    err_calibration: float = 0.0
    err_transport: float = 0.0
    err_representation: float | None = None


def local_solar_hour(time: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Mean local solar time of day [h, 0-24) from UTC times and longitude [degrees_east]."""
    t = time.astype("datetime64[ns]").astype("int64") / 3.6e12 + np.asarray(lon) / 15.0
    return np.mod(t, 24.0)


def _lst_day(time: np.ndarray, lon: np.ndarray) -> np.ndarray:
    t = time.astype("datetime64[ns]").astype("int64") / 3.6e12 + np.asarray(lon) / 15.0
    day = np.floor(t / 24.0)
    # a longitude no place has (a garbled column: 1e21) would overflow the cast: such rows
    # share one day of their own here; the plausibility QC of the pipeline drops them
    return np.where(np.abs(day) < 2.0**62, day, -(2.0**62)).astype("int64")


def check_species(rec_species: str, requested: str | None, where: str) -> None:
    """Raise when the file's species differs from the requested one."""
    if requested is None:
        return
    if rec_species and rec_species.lower() != requested.lower():
        raise ObservationFormatError(
            f"{where}: file holds {rec_species!r} but species={requested!r} was requested; pass "
            f"species={rec_species.lower()!r} (or species=None for any mole fraction)"
        )


def negative_sentinels(arr: np.ndarray, name: str, where: str, notes: dict) -> np.ndarray:
    """Negative values of an uncertainty or count variable that all share ONE value (a sentinel
    such as -9.99 or -999.99 that differs from ``_FillValue``) are missing: NaN, counted in
    ``notes`` and logged. Several distinct negative values are corrupt data: an error.

    Raises
    ------
    ObservationFormatError
        When the negative values differ (names the file, the variable, the count and examples).
    """
    bad = np.isfinite(arr) & (arr < 0)
    if not bad.any():
        return arr
    vals = np.unique(arr[bad])
    if vals.size > 1:
        raise ObservationFormatError(
            f"{where}: variable {name!r} holds {int(bad.sum())} negative values of {vals.size} "
            f"different magnitudes (e.g. {vals[:3].tolist()}); an uncertainty or count is >= 0 "
            "and one repeated negative value would be a missing-value sentinel, but varying "
            "negative values are corrupt data: fix the file (or mark them with its _FillValue)"
        )
    notes[f"{name} sentinels"] = (
        f"{int(bad.sum())} negative values {float(vals[0]):.6g} (one repeated value: a "
        f"missing-value sentinel that differs from its _FillValue) in variable {name!r} taken "
        "as missing"
    )
    logger.warning("%s: %s", where, notes[f"{name} sentinels"])
    return np.where(bad, np.nan, arr)


def refuse_negative(arr: np.ndarray | None, name: str, where: str) -> None:
    """Raise naming the column and the rows when ``arr`` holds a negative value (formats that
    define no sentinel: a negative uncertainty is never made positive)."""
    if arr is None:
        return
    rows = np.flatnonzero(np.isfinite(arr) & (arr < 0))
    if rows.size:
        raise ObservationFormatError(
            f"{where}: column {name!r} holds {rows.size} negative value(s) (data row(s) "
            f"{(rows[:5] + 1).tolist()}{' ...' if rows.size > 5 else ''}, first "
            f"{float(arr[rows[0]]):.6g}); uncertainties and counts are >= 0 and this format has no "
            "sentinel for missing values: fix the value, or leave the cell empty when unknown"
        )


def _check_plausible(
    value: np.ndarray, species: str | None, where: str, origin: str = "variable 'value'"
) -> None:
    if species is None or species.lower() not in _PLAUSIBLE_PPM:
        return
    finite = value[np.isfinite(value)]
    if finite.size == 0:
        return
    lo, hi = _PLAUSIBLE_PPM[species.lower()]
    med = float(np.median(finite))
    if not lo <= med <= hi:
        raise ObservationFormatError(
            f"{where}: {origin}: median {species} after unit conversion is {med:.6g} ppm, "
            f"outside the plausible range [{lo}, {hi}] ppm; the units are probably wrong (or "
            "the values are not mole fractions): fix the units or the values"
        )


def _select_intake(rec: TowerRecords, qc: QCTracker, choice: float | str | None) -> None:
    if choice in (None, "all"):
        return
    kept = rec.intake[qc.keep]
    available = np.unique(kept[np.isfinite(kept)])
    if choice == "highest":
        target = available.max() if available.size else np.nan
    elif choice == "lowest":
        target = available.min() if available.size else np.nan
    else:
        target = float(choice)
        if available.size and not np.isclose(available, target, atol=0.5).any():
            raise ObservationFormatError(
                f"{rec.source}: intake_height={target} m not in the file; available intake "
                f"heights: {available.tolist()} m agl"
            )
    qc.drop(~np.isclose(rec.intake, target, atol=0.5), "other intake height")


def _as_ns(t: str | np.datetime64 | None) -> np.datetime64 | None:
    if t is None:
        return None
    ts = pd.Timestamp(t)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts
    return ts.to_datetime64().astype("datetime64[ns]")


def select_period(time: np.ndarray, qc: QCTracker, start, end) -> None:
    """Drop records outside the half-open period [start, end) (counted)."""
    t0, t1 = _as_ns(start), _as_ns(end)
    if t0 is not None:
        qc.drop(time < t0, "outside requested period")
    if t1 is not None:
        qc.drop(time >= t1, "outside requested period")


def _hourly(rec: TowerRecords, keep: np.ndarray, opts: TowerOptions) -> pd.DataFrame:
    """Vectorised groupby over (intake, UTC hour); returns one row per hour."""
    n = int(keep.sum())

    def pick(arr, fill=np.nan):
        return np.full(n, fill) if arr is None else np.asarray(arr, dtype="float64")[keep]

    nval = pick(rec.nvalue)
    std_file = pick(rec.std)
    rep_single = np.where(np.isfinite(std_file), std_file, 0.0) / np.sqrt(
        np.where(np.isfinite(nval) & (nval > 0), nval, 1.0)
    )
    unc = pick(rec.unc)
    df = pd.DataFrame(
        {
            "intake": rec.intake[keep],
            "hour": rec.time[keep].astype("datetime64[ns]").astype("int64") // _HOUR.astype(int),
            "value": rec.value[keep],
            "lat": rec.lat[keep],
            "lon": rec.lon[keep],
            "unc2": np.where(np.isfinite(unc), unc, 0.0) ** 2,
            "std_file": std_file,
            "rep_single": rep_single,
            "t_ns": rec.time[keep].astype("datetime64[ns]").astype("int64"),
        }
    )
    if opts.average is None:
        df["count"] = 1
        df["std"] = df["std_file"]
        df["rep"] = df["rep_single"]
        df["unc"] = np.sqrt(df["unc2"])
        df["time"] = rec.time[keep]
        return df
    if opts.average != "hourly":
        raise ValueError(f"average={opts.average!r}; expected 'hourly' or None")
    g = df.groupby(["intake", "hour"], sort=True)
    out = g.agg(
        value=("value", "mean"),
        std_between=("value", "std"),
        count=("value", "size"),
        lat=("lat", "mean"),
        lon=("lon", "mean"),
        unc2=("unc2", "sum"),
        std_file=("std_file", "first"),
        rep_single=("rep_single", "first"),
        t_ns=("t_ns", "mean"),
    ).reset_index()
    multi = out["count"].to_numpy() > 1
    cnt = out["count"].to_numpy().astype("float64")
    out["std"] = np.where(multi, out["std_between"], out["std_file"])
    out["rep"] = np.where(multi, out["std_between"] / np.sqrt(cnt), out["rep_single"])
    out["unc"] = np.sqrt(out["unc2"]) / cnt
    # representative time = mean of the averaged records' (midpoint) times: h + 30 min for a
    # full hour of evenly spaced records, the record's own time for a single record
    out["time"] = np.round(out["t_ns"].to_numpy()).astype("int64").astype("datetime64[ns]")
    return out


def finalize_tower(
    rec: TowerRecords, opts: TowerOptions, attrs: dict, qc: QCTracker | None = None
) -> xr.Dataset:
    """QC, selection, hourly averaging and error budget of tower records -> ObservationSet."""
    check_species(rec.species, opts.species, rec.source)
    qc = qc or QCTracker(rec.source, rec.value.size)
    for key, text in (rec.assumptions or {}).items():
        qc.assume(key, text)
    qc.drop(~np.isfinite(rec.value), "missing value (NaN or fill value)")
    qc.drop(np.isnat(rec.time), "missing time")
    qc.drop(~rec.flag_ok, "quality flag")
    qc.drop(
        ~(np.isfinite(rec.lat) & np.isfinite(rec.lon)),
        "missing position (NaN latitude or longitude)",
    )
    for reason, mask in (rec.extra_bad or {}).items():
        qc.drop(mask, reason)
    qc.require_nonempty()
    _check_plausible(rec.value[qc.keep], opts.species, rec.source, rec.value_origin)
    _select_intake(rec, qc, opts.intake_height)
    select_period(rec.time, qc, opts.start, opts.end)
    if opts.hours is not None:
        h0, h1 = opts.hours
        lst = local_solar_hour(rec.time, rec.lon)
        qc.drop(~((lst >= h0) & (lst < h1)), f"outside local solar hours [{h0}, {h1})")
    qc.require_nonempty()
    keep = qc.keep.copy()
    df = _hourly(rec, keep, opts)
    qc.report.averaged = int(keep.sum()) if opts.average else 0
    inst = (
        np.full(len(df), float(opts.err_instrument))
        if opts.err_instrument is not None
        else df["unc"].to_numpy()
    )
    if opts.err_instrument is not None:
        qc.assume("instrument error", f"option err_instrument={opts.err_instrument} ppm")
    elif rec.unc is not None and (miss := int((keep & ~np.isfinite(rec.unc)).sum())):
        qc.assume(
            "records without instrument error",
            f"{miss} of {int(keep.sum())} records selected have no {rec.unc_origin} (fill "
            "value): instrument error 0 for them (the other components apply); pass "
            "err_instrument=... to give one",
        )
    rep = df["rep"].to_numpy()
    if opts.err_representation is not None:
        rep = np.full(len(df), float(opts.err_representation))
        qc.assume(
            "representation error", f"option err_representation={opts.err_representation} ppm"
        )
    df, inst, rep = _drop_zero_error(df, inst, rep, opts, qc)
    n_out = len(df)
    qc.report.kept = n_out
    time = df["time"].to_numpy().astype("datetime64[ns]")
    lon = df["lon"].to_numpy()
    key = pd.MultiIndex.from_arrays([df["intake"].to_numpy(), _lst_day(time, lon)])
    group, _ = pd.factorize(key)
    ds = make_observation_set(
        value=df["value"].to_numpy(),
        time=time,
        kind="tower",
        site=rec.site,
        lat=df["lat"].to_numpy(),
        lon=lon,
        alt=df["intake"].to_numpy(),
        errors={
            "instrument": inst,
            "calibration": opts.err_calibration,
            "transport": opts.err_transport,
            "representation": rep,
        },
        extras={
            "group": group.astype("int64"),
            "scale": np.full(n_out, rec.scale, dtype=object),
            "count": df["count"].to_numpy().astype("int64"),
            "std": df["std"].to_numpy().astype("float64"),
        },
        alt_reference="agl",
        attrs={
            **attrs,
            "species": (opts.species or rec.species or "unknown").lower(),
            "time_convention": "midpoint of the averaging interval, UTC",
            "averaging": opts.average or "none",
        },
    )
    ds["alt"].attrs["long_name"] = "intake height above ground level"
    ds["std"].attrs["long_name"] = (
        "variability: std of the records in the hour (count > 1) or the file's std of the "
        "record (count == 1); NaN where unknown"
    )
    ds["count"].attrs["long_name"] = "number of file records averaged"
    return attach_report(ds, QCReport([qc.report]))


def _drop_zero_error(df: pd.DataFrame, inst, rep, opts: TowerOptions, qc: QCTracker):
    """Drop (and count) averaged records without any uncertainty; the options apply first."""
    total2 = inst**2 + rep**2 + float(opts.err_calibration) ** 2 + float(opts.err_transport) ** 2
    zero = ~(np.nan_to_num(total2) > 0)
    if not zero.any():
        return df, inst, rep
    reason = "no uncertainty (zero total error; set err_transport or err_instrument)"
    n_records = int(df["count"].to_numpy()[zero].sum())
    qc.report.dropped[reason] = qc.report.dropped.get(reason, 0) + n_records
    logger.warning(
        "%s: %d of %d records have no uncertainty (no value_unc, std or nvalue, and no "
        "err_* option) and were dropped; pass err_transport=... (model-data mismatch [ppm]) "
        "to keep them",
        qc.report.source,
        n_records,
        qc.report.read,
    )
    if zero.all():
        raise EmptyAfterQCError(
            f"{qc.report.source}: no observation has an uncertainty: the file gives none "
            "(no value_unc, value_std_dev/nvalue) and no err_* option was set; pass "
            "err_transport=... (model-data mismatch [ppm]) or err_instrument=... to the reader"
        )
    keep = ~zero
    return df[keep].reset_index(drop=True), inst[keep], rep[keep]


def empty_error(source: str, what: str) -> EmptyAfterQCError:
    """Error for a file with no records at all."""
    return EmptyAfterQCError(f"{source}: {what}; the file has no records to read")
