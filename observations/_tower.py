"""Tower in-situ readers: ObsPack NetCDF (NOAA ``obs`` and ICOS ``time`` variants), ICOS ATC NRT
text files and a plain CSV layout (documented in FORMATS.md)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._exceptions import MissingVariableError, ObservationFormatError
from ._io import (
    decode_cf_time,
    get_var,
    normalise_scale,
    open_netcdf,
    read_float,
    read_strings,
    stamp_offset,
    to_ppm_factor,
)
from ._registry import register_reader
from ._tower_core import TowerOptions, TowerRecords, empty_error, finalize_tower

__all__ = ["read_icos_atc", "read_obspack", "read_tower_csv"]

_UNIT_STEPS = {"hour": "h", "hours": "h", "minute": "min", "minutes": "min", "second": "s"}


def _interval(freq, unit, default: str = "1h") -> np.timedelta64:
    try:
        td = pd.Timedelta(float(freq), unit=_UNIT_STEPS.get(str(unit).strip().lower(), "h"))
    except (TypeError, ValueError):
        td = pd.Timedelta(default)
    return td.to_timedelta64().astype("timedelta64[ns]")


def _is_obspack(path: Path) -> bool:
    if path.suffix.lower() not in (".nc", ".nc4", ".netcdf"):
        return False
    with open_netcdf(path) as nc:
        return "value" in nc.variables and (
            "obspack_id" in nc.variables or "dataset_parameter" in nc.ncattrs()
        )


def _check_time_components(nc, time: np.ndarray, path: Path) -> None:
    tc = get_var(nc, "time_components", path, required=False)
    if tc is None:
        return
    comp = np.ma.filled(tc[...].astype("int64"), -9)
    ok = (comp >= 0).all(axis=1)
    if not ok.any():
        return
    stamps = pd.to_datetime(
        pd.DataFrame(comp[ok], columns=["year", "month", "day", "hour", "minute", "second"]).astype(
            "int64"
        )
    ).to_numpy()
    diff = np.abs((stamps - time[ok]).astype("timedelta64[s]").astype("int64"))
    if (diff > 1).any():
        i = int(np.argmax(diff))
        raise ObservationFormatError(
            f"{path}: 'time' and 'time_components' disagree by {int(diff[i])} s at record {i}; "
            "the file is inconsistent"
        )


@register_reader(
    "obspack",
    detect=_is_obspack,
    description="NOAA/ICOS ObsPack tower in-situ NetCDF (dim 'obs' or 'time')",
)
def read_obspack(
    path: Path,
    *,
    species: str | None = "co2",
    start: str | None = None,
    end: str | None = None,
    intake_height: float | str | None = "highest",
    hours: tuple[float, float] | None = None,
    average: str | None = "hourly",
    time_stamp: str = "auto",
    use_obs_flag: bool = False,
    valid_flags: tuple[str, ...] = ("O", "U"),
    err_instrument: float | None = None,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read an ObsPack tower file (NOAA ``obs`` variant or ICOS ``time`` variant).

    Parameters
    ----------
    path : Path
        ObsPack NetCDF file.
    species : str or None
        Expected species (``dataset_parameter``); a mismatch raises.  ``None`` accepts any
        mole fraction.  Values are converted to ppm from the ``units`` attribute (mol mol-1,
        nmol mol-1, ...).
    start, end : str, optional
        Period [start, end) on the representative time, UTC.
    intake_height : float, "highest", "lowest", "all" or None
        Inlet choice [m agl]; other inlets are dropped (counted).
    hours : (float, float), optional
        Keep records whose representative time lies in [h0, h1) local mean solar time.
    average : "hourly" or None
        Average records into UTC hours (count and std kept) or keep them as they are.
    time_stamp : {"auto", "start", "midpoint", "end"}
        Position of the file's time stamps in the averaging interval; ``"auto"`` reads the
        ``time`` comment ("reported at the beginning of the averaging interval" -> start).
        Stamps are shifted to the interval midpoint.
    use_obs_flag : bool
        Drop ICOS records with ``obs_flag == 0`` (local influence).
    valid_flags : tuple of str
        Valid single-letter ICOS ``qc_flag`` values.  NOAA 3-character ``qcflag``: a record is
        valid when the first (rejection) character is ``"."``.
    err_instrument : float, optional
        Declared instrument error [ppm]; default ``value_unc`` from the file (0 if absent).
    err_calibration, err_transport : float
        Calibration and transport (model-data mismatch) errors [ppm].

    Returns
    -------
    xarray.Dataset
        ObservationSet, kind "tower", ``alt`` = intake height [m agl].
    """
    path = Path(path)
    with open_netcdf(path) as nc:
        vvar = get_var(nc, "value", path)
        tvar = get_var(nc, "time", path)
        n = vvar.shape[0] if vvar.ndim else 0
        if n == 0:
            raise empty_error(str(path), "dimension of 'value' has length 0")
        factor = to_ppm_factor(getattr(vvar, "units", None), where=f"{path}: variable 'value'")
        value = read_float(vvar, path) * factor
        time = decode_cf_time(read_float(tvar, path), getattr(tvar, "units", ""), where=str(path))
        _check_time_components(nc, time, path)
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        interval = _interval(
            attrs.get("dataset_data_frequency", 1), attrs.get("dataset_data_frequency_unit", "h")
        )
        time = time + stamp_offset(
            getattr(tvar, "comment", ""), interval, time_stamp, where=str(path)
        )
        extra_bad: dict[str, np.ndarray] = {}
        if "qcflag" in nc.variables:  # NOAA: 3-char flag, first char = rejection
            flags = read_strings(nc.variables["qcflag"])
            flag_ok = np.char.startswith(flags, ".")
        elif "qc_flag" in nc.variables:  # ICOS: single letter
            flags = read_strings(nc.variables["qc_flag"])
            flag_ok = np.isin(flags, list(valid_flags))
        else:
            raise MissingVariableError(
                f"{path}: no quality flag variable ('qcflag' or 'qc_flag'); cannot QC the data"
            )
        if use_obs_flag and "obs_flag" in nc.variables:
            of = np.ma.filled(nc.variables["obs_flag"][...], 1)  # _FillValue is 1 in ICOS files
            extra_bad["obs_flag == 0 (local influence)"] = np.asarray(of) == 0
        unc = std = nval = None
        if "value_unc" in nc.variables:
            u = nc.variables["value_unc"]
            unc = read_float(u, path) * to_ppm_factor(u.units, where=f"{path}: value_unc")
        if "value_std_dev" in nc.variables:
            s = nc.variables["value_std_dev"]
            std = read_float(s, path) * to_ppm_factor(s.units, where=f"{path}: value_std_dev")
        if "nvalue" in nc.variables:
            nval = read_float(nc.variables["nvalue"], path)
        intake = read_float(get_var(nc, "intake_height", path), path)
        lat = read_float(get_var(nc, "latitude", path), path)
        lon = read_float(get_var(nc, "longitude", path), path)
    scale = attrs.get("dataset_calibration_scale") or getattr(vvar, "scale_comment", "")
    rec = TowerRecords(
        source=str(path),
        time=time,
        value=value,
        flag_ok=flag_ok,
        intake=intake,
        lat=np.where(np.isfinite(lat), lat, float(attrs.get("site_latitude", np.nan))),
        lon=np.where(np.isfinite(lon), lon, float(attrs.get("site_longitude", np.nan))),
        site=str(attrs.get("site_code", path.stem)),
        scale=normalise_scale(scale),
        species=str(attrs.get("dataset_parameter", "")),
        unc=unc,
        std=std,
        nvalue=nval,
        extra_bad=extra_bad,
    )
    opts = TowerOptions(
        species, start, end, intake_height, hours, average, err_instrument, err_calibration,
        err_transport,
    )  # fmt: skip
    keep_attrs = {
        "source_file": path.name,
        "site_name": str(attrs.get("site_name", "")),
        "site_elevation_m_asl": float(attrs.get("site_elevation", np.nan)),
        "dataset_name": str(attrs.get("dataset_name", "")),
    }
    return finalize_tower(rec, opts, keep_attrs)


# ---------------------------------------------------------------- ICOS ATC NRT text files


def _parse_atc_header(path: Path) -> tuple[dict[str, str], list[str], int, list[str]]:
    meta: dict[str, str] = {}
    comments: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
        if not first.startswith("# TITLE"):
            raise ObservationFormatError(f"{path}: not an ICOS ATC file (no '# TITLE' line)")
        meta["TITLE"] = first.split(":", 1)[-1].strip()
        n_lines = 1
        for line in fh:
            n_lines += 1
            if line.startswith("#Site") or line.startswith("# Site"):
                cols = [c.strip() for c in line.lstrip("# ").split(";")]
                return meta, cols, n_lines, comments
            text = line[1:].strip()
            if ":" in text and text.split(":", 1)[0].isupper():
                key, val = text.split(":", 1)
                meta[key.strip()] = val.strip()
            else:
                comments.append(text)
    raise ObservationFormatError(f"{path}: ICOS ATC header has no '#Site;...' column line")


def _is_icos_atc(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    return head.startswith(b"# TITLE") and b"#Site;" in head


def _signed_degrees(text: str, where: str) -> float:
    m = re.match(r"\s*([-+]?\d+(?:\.\d*)?)\s*([NSEW])?", text)
    if not m:
        raise ObservationFormatError(f"{where}: cannot parse coordinate {text!r}")
    val = float(m.group(1))
    return -val if m.group(2) in ("S", "W") else val


@register_reader(
    "icos_atc", detect=_is_icos_atc, description="ICOS ATC NRT hourly text file (';' separated)"
)
def read_icos_atc(
    path: Path,
    *,
    species: str | None = "co2",
    start: str | None = None,
    end: str | None = None,
    intake_height: float | str | None = "highest",
    hours: tuple[float, float] | None = None,
    average: str | None = "hourly",
    valid_flags: tuple[str, ...] = ("O", "U"),
    err_instrument: float | None = None,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read an ICOS ATC near-real-time text file (e.g. ``GAT_..._nrtHour.CO2``).

    The header gives station, coordinates (``53.0657 N``), units (``umol.mol-¹``) and scale
    (``WMOX2007`` -> ``"WMO CO2 X2007"``).  Time columns are UTC ("Times are UTC") and mark the
    start of the hour; they are shifted to the midpoint.  ``Flag`` in ``valid_flags`` is kept;
    the fill value -999.99 is missing.  Options as :func:`read_obspack`; ``err_instrument``
    has no file default (0 unless declared); representation = ``Stdev``/sqrt(``NbPoints``).
    """
    path = Path(path)
    meta, columns, n_header, comments = _parse_atc_header(path)
    param = meta.get("PARAMETER", "").lower()
    try:
        df = pd.read_csv(
            path, sep=";", skiprows=n_header, names=columns, header=None, na_values=["-999.990"]
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ObservationFormatError(f"{path}: cannot parse ICOS ATC data lines ({exc})") from exc
    if df.empty:
        raise empty_error(str(path), "no data lines after the header")
    vcol = param if param in df.columns else columns[8]
    need = ["Year", "Month", "Day", "Hour", "Minute", vcol, "Flag", "SamplingHeight"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise MissingVariableError(f"{path}: ICOS ATC columns {missing} missing")
    factor = to_ppm_factor(meta.get("MEASUREMENT UNIT"), where=f"{path}: MEASUREMENT UNIT")
    comp = df[["Year", "Month", "Day", "Hour", "Minute"]].apply(pd.to_numeric, errors="coerce")
    stamps = pd.to_datetime(comp.rename(columns=str.lower), errors="coerce").to_numpy()
    stamps = stamps.astype("datetime64[ns]")
    if not any("times are utc" in c.lower() for c in comments):
        m = re.search(r"UTC\s*([+-]\d+)", meta.get("TIME ZONE", ""))
        if m:
            stamps = stamps - np.timedelta64(int(m.group(1)), "h")
    interval = np.timedelta64(1, "h") if "hour" in meta.get("TIME INTERVAL", "hour") else None
    if interval is None:
        raise ObservationFormatError(
            f"{path}: TIME INTERVAL {meta.get('TIME INTERVAL')!r} not supported (hourly only)"
        )
    stamps = stamps + stamp_offset(" ".join(comments), interval, "auto", where=str(path))
    value = pd.to_numeric(df[vcol], errors="coerce").to_numpy("float64")
    value = np.where(value < -900, np.nan, value) * factor
    std = pd.to_numeric(df.get("Stdev"), errors="coerce").to_numpy("float64") * factor
    nval = pd.to_numeric(df.get("NbPoints"), errors="coerce").to_numpy("float64")
    n = value.size
    rec = TowerRecords(
        source=str(path),
        time=stamps,
        value=value,
        flag_ok=df["Flag"].astype(str).str.strip().isin(list(valid_flags)).to_numpy(),
        intake=pd.to_numeric(df["SamplingHeight"], errors="coerce").to_numpy("float64"),
        lat=np.full(n, _signed_degrees(meta.get("LATITUDE", ""), str(path))),
        lon=np.full(n, _signed_degrees(meta.get("LONGITUDE", ""), str(path))),
        site=meta.get("STATION CODE", str(df["Site"].iloc[0])),
        scale=normalise_scale(meta.get("MEASUREMENT SCALE")),
        species=param,
        std=np.where(std < -900, np.nan, std),
        nvalue=nval,
    )
    opts = TowerOptions(
        species, start, end, intake_height, hours, average, err_instrument, err_calibration,
        err_transport,
    )  # fmt: skip
    return finalize_tower(
        rec, opts, {"source_file": path.name, "site_name": meta.get("STATION NAME", "")}
    )


# ---------------------------------------------------------------- plain CSV

TOWER_CSV_COLUMNS = ("time", "site", "lat", "lon", "intake_height", "value")


def _is_tower_csv(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = next((ln for ln in fh if not ln.startswith("#")), "")
    cols = [c.strip() for c in header.split(",")]
    return all(c in cols for c in TOWER_CSV_COLUMNS)


@register_reader("tower_csv", detect=_is_tower_csv, description="plain tower CSV (FORMATS.md)")
def read_tower_csv(
    path: Path,
    *,
    units: str = "ppm",
    time_stamp: str = "start",
    interval: str = "1h",
    scale: str = "unspecified",
    species: str | None = "co2",
    start: str | None = None,
    end: str | None = None,
    intake_height: float | str | None = "highest",
    hours: tuple[float, float] | None = None,
    average: str | None = "hourly",
    err_instrument: float | None = None,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read the plain tower CSV layout of FORMATS.md.

    Required columns ``time`` (ISO 8601, UTC), ``site``, ``lat``, ``lon``, ``intake_height``
    [m agl], ``value`` [``units``]; optional ``value_unc``, ``std`` [``units``], ``nvalue``,
    ``flag`` (0 = good) and ``scale``.  One site per file.  ``time_stamp``/``interval`` state
    where the stamps sit in the averaging interval; other options as :func:`read_obspack`.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ObservationFormatError(f"{path}: cannot parse as CSV ({exc})") from exc
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in TOWER_CSV_COLUMNS if c not in df.columns]
    if missing:
        raise MissingVariableError(
            f"{path}: tower CSV columns {missing} missing; required {list(TOWER_CSV_COLUMNS)}"
        )
    if df.empty:
        raise empty_error(str(path), "no data rows")
    sites = df["site"].astype(str).unique()
    if sites.size != 1:
        raise ObservationFormatError(f"{path}: one site per file expected, found {list(sites)}")
    factor = to_ppm_factor(units, where=f"{path}: units option")
    itv = pd.Timedelta(interval).to_timedelta64().astype("timedelta64[ns]")
    t = pd.to_datetime(df["time"], utc=True, errors="coerce").dt.tz_localize(None)
    time = t.to_numpy().astype("datetime64[ns]") + stamp_offset(
        "", itv, time_stamp, where=str(path)
    )

    def col(name):
        return pd.to_numeric(df[name], errors="coerce").to_numpy("float64") if name in df else None

    flag = col("flag")
    rec = TowerRecords(
        source=str(path),
        time=time,
        value=col("value") * factor,
        flag_ok=np.ones(len(df), bool) if flag is None else flag == 0,
        intake=col("intake_height"),
        lat=col("lat"),
        lon=col("lon"),
        site=str(sites[0]),
        scale=normalise_scale(df["scale"].iloc[0] if "scale" in df else scale),
        species=species or "",
        unc=None if col("value_unc") is None else col("value_unc") * factor,
        std=None if col("std") is None else col("std") * factor,
        nvalue=col("nvalue"),
    )
    opts = TowerOptions(
        species, start, end, intake_height, hours, average, err_instrument, err_calibration,
        err_transport,
    )  # fmt: skip
    return finalize_tower(rec, opts, {"source_file": path.name})
