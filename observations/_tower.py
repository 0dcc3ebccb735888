"""Tower in-situ text readers: ICOS ATC NRT files and a plain CSV layout (FORMATS.md).

ObsPack NetCDF is read by :mod:`observations._obspack`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ingest import FileProbe

from ._exceptions import MissingVariableError, ObservationFormatError
from ._io import normalise_scale, stamp_offset, stamp_position, to_ppm_factor
from ._registry import register_reader
from ._tower_core import (
    TowerOptions,
    TowerRecords,
    empty_error,
    finalize_tower,
    negative_sentinels,
    refuse_negative,
)

__all__ = ["read_icos_atc", "read_tower_csv"]

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


def _is_icos_atc(probe: FileProbe) -> bool:
    return probe.head.startswith(b"# TITLE") and b"#Site;" in probe.head


def _signed_degrees(text: str, where: str) -> float:
    m = re.match(r"\s*([-+]?\d+(?:\.\d*)?)\s*([NSEW])?", text)
    if not m:
        raise ObservationFormatError(f"{where}: cannot parse coordinate {text!r}")
    val = float(m.group(1))
    return -val if m.group(2) in ("S", "W") else val


@register_reader(
    "icos_atc", sniff=_is_icos_atc, description="ICOS ATC NRT hourly text file (';' separated)"
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
    err_representation: float | None = None,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read an ICOS ATC near-real-time text file (e.g. ``GAT_..._nrtHour.CO2``).

    The header gives station, coordinates (``53.0657 N``), units (``umol.mol-¹``) and scale
    (``WMOX2007`` -> ``"WMO CO2 X2007"``).  Time columns are UTC ("Times are UTC") and mark the
    start of the hour; they are shifted to the midpoint.  ``Flag`` in ``valid_flags`` is kept;
    the fill value -999.99 is missing.  Options as :func:`read_obspack`; ``err_instrument``
    has no file default (0 unless declared); representation = ``Stdev``/sqrt(``NbPoints``)
    (``err_representation`` overrides).
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
    found = stamp_position({"header comments": " ".join(comments)})
    if found is None:
        raise ObservationFormatError(
            f"{path}: the header comments do not say whether times mark the start, midpoint or "
            "end of the hour; this reader needs that statement"
        )
    stamps = stamps + stamp_offset("", interval, found[0], where=str(path))
    value = pd.to_numeric(df[vcol], errors="coerce").to_numpy("float64")
    value = np.where(value < -900, np.nan, value) * factor
    std = pd.to_numeric(df.get("Stdev"), errors="coerce").to_numpy("float64") * factor
    nval = pd.to_numeric(df.get("NbPoints"), errors="coerce").to_numpy("float64")
    n = value.size
    notes = {
        "time_stamp": f"{found[0]} of the hour (from the header comments)",
        "qc_flag": f"column 'Flag' (valid: {list(valid_flags)})",
        "instrument error": "none in the file (0 unless err_instrument is given)",
        "representation error": "Stdev / sqrt(NbPoints)",
    }
    std = negative_sentinels(std, "Stdev", str(path), notes)
    nval = negative_sentinels(nval, "NbPoints", str(path), notes)
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
        std=std,
        nvalue=nval,
        assumptions=notes,
        value_origin=f"column {vcol!r} (MEASUREMENT UNIT {meta.get('MEASUREMENT UNIT')!r})",
    )
    opts = TowerOptions(
        species, start, end, intake_height, hours, average, err_instrument, err_calibration,
        err_transport, err_representation,
    )  # fmt: skip
    return finalize_tower(
        rec, opts, {"source_file": path.name, "site_name": meta.get("STATION NAME", "")}
    )


# ---------------------------------------------------------------- plain CSV

TOWER_CSV_COLUMNS = ("time", "site", "lat", "lon", "intake_height", "value")


def csv_header(probe: FileProbe) -> list[str]:
    """Column names of a ``.csv`` file (first line not starting with ``#``), else []."""
    if probe.suffix != ".csv":
        return []
    header = next((ln for ln in probe.text_lines(200) if not ln.startswith("#")), "")
    return [c.strip() for c in header.split(",")]


def _is_tower_csv(probe: FileProbe) -> bool:
    cols = csv_header(probe)
    return all(c in cols for c in TOWER_CSV_COLUMNS)


@register_reader("tower_csv", sniff=_is_tower_csv, description="plain tower CSV (FORMATS.md)")
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
    err_representation: float | None = None,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read the plain tower CSV layout of FORMATS.md.

    Required columns ``time`` (ISO 8601, UTC), ``site``, ``lat``, ``lon``, ``intake_height``
    [m agl], ``value`` [``units``]; optional ``value_unc``, ``std`` [``units``], ``nvalue``,
    ``flag`` (0 = good) and ``scale``.  One site per file.  ``time_stamp``/``interval`` state
    where the stamps sit in the averaging interval; other options as :func:`read_obspack`.
    A negative ``value_unc``, ``std`` or ``nvalue`` is an error (the layout has no sentinel);
    a row whose ``value_unc`` is empty or NaN is dropped and counted ("missing uncertainty"),
    unless ``err_instrument`` is given.
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
    unc, std = col("value_unc"), col("std")
    refuse_negative(unc, "value_unc", str(path))
    refuse_negative(std, "std", str(path))
    refuse_negative(col("nvalue"), "nvalue", str(path))
    extra_bad = {}
    if unc is not None and err_instrument is None:
        # an empty cell in a column that gives each row's uncertainty: the row is unusable
        extra_bad["missing uncertainty (value_unc empty or NaN)"] = ~np.isfinite(unc)
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
        unc=None if unc is None else unc * factor,
        std=None if std is None else std * factor,
        nvalue=col("nvalue"),
        extra_bad=extra_bad,
        value_origin=f"column 'value' (units {units!r}, option units)",
        assumptions={
            "time_stamp": f"{time_stamp} of a {interval} interval (options time_stamp, interval)",
            "qc_flag": "column 'flag' (0 = good)"
            if flag is not None
            else "no flag column: all valid",
            "instrument error": "column 'value_unc'" if "value_unc" in df else "none in the file",
        },
    )
    opts = TowerOptions(
        species, start, end, intake_height, hours, average, err_instrument, err_calibration,
        err_transport, err_representation,
    )  # fmt: skip
    return finalize_tower(rec, opts, {"source_file": path.name})
