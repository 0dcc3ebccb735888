"""ObsPack tower in-situ NetCDF: NOAA (dim ``obs``), ICOS / European ObsPack and GLOBALVIEWplus
(dim ``time``), including products without a QC-flag variable ("allvalid").

Where a file does not carry what the reader needs, it is taken from the file's own metadata
when stated there, else from an explicit option, and recorded in the QC report's
``assumptions`` (see FORMATS.md):

* QC flag: ``qcflag`` (NOAA, 3 characters, first = rejection) or ``qc_flag`` (ICOS letters);
  none: the file must state that it holds valid data only (``dataset_selection_tag`` /
  ``dataset_name`` containing "allvalid", or ``dataset_selection`` saying "valid"), else
  ``assume_valid=True``.
* Time-stamp position: the comment of ``time``, else of ``time_components``, ``time_decimal``
  or ``datetime`` (same stamps), else ``time_stamp=``.
* Uncertainty: ``value_unc``, else ICOS ``icos_LTR``/``icos_SMR`` (in quadrature), plus
  ``value_std_dev``/sqrt(``nvalue``) as representation; options override.  Negative values
  of these variables that all share one value (sentinels such as -9.99 that differ from
  ``_FillValue``) are missing (noted); varying negative values are refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ingest import FileProbe

from ._exceptions import MissingVariableError, ObservationFormatError
from ._io import (
    decode_cf_time,
    get_var,
    normalise_scale,
    open_netcdf,
    read_float,
    read_strings,
    stamp_offset,
    stamp_position,
    to_ppm_factor,
)
from ._registry import register_reader
from ._tower_core import (
    TowerOptions,
    TowerRecords,
    empty_error,
    finalize_tower,
    negative_sentinels,
)

__all__ = ["read_obspack"]

logger = logging.getLogger(__name__)

_UNIT_STEPS = {"hour": "h", "hours": "h", "minute": "min", "minutes": "min", "second": "s"}
_STAMP_VARIABLES = ("time", "time_components", "time_decimal", "datetime")


def interval_of(freq, unit) -> np.timedelta64 | None:
    """Averaging interval from ``dataset_data_frequency`` and its unit (None when absent)."""
    if freq is None:
        return None
    try:
        td = pd.Timedelta(float(freq), unit=_UNIT_STEPS.get(str(unit).strip().lower(), "h"))
    except (TypeError, ValueError):
        return None
    return td.to_timedelta64().astype("timedelta64[ns]")


def _sniff_obspack(probe: FileProbe) -> bool:
    return (
        probe.is_netcdf
        and probe.has("value")
        and ("obspack_id" in probe.variables or "dataset_parameter" in probe.attrs)
    )


def _check_time_components(nc, time: np.ndarray, path: Path) -> None:
    tc = get_var(nc, "time_components", path, required=False)
    if tc is None:
        return
    comp = np.ma.filled(tc[...].astype("int64"), -9)
    ok = (comp >= 0).all(axis=1)
    if not ok.any():
        return
    cols = ["year", "month", "day", "hour", "minute", "second"]
    stamps = pd.to_datetime(pd.DataFrame(comp[ok], columns=cols).astype("int64")).to_numpy()
    diff = np.abs((stamps - time[ok]).astype("timedelta64[s]").astype("int64"))
    if (diff > 1).any():
        i = int(np.argmax(diff))
        raise ObservationFormatError(
            f"{path}: 'time' and 'time_components' disagree by {int(diff[i])} s at record {i}; "
            "the file is inconsistent"
        )


def _check_fixed_platform(attrs: dict, path: Path) -> None:
    """Refuse moving-platform products (aircraft, ship): their records are not one tower."""
    project = str(attrs.get("dataset_project", "")).lower()
    platform = str(attrs.get("dataset_platform", "fixed")).lower()
    if platform not in ("fixed", "") or any(
        w in project for w in ("aircraft", "shipboard", "aircore")
    ):
        raise ObservationFormatError(
            f"{path}: a moving-platform ObsPack product (dataset_project={project!r}, "
            f"dataset_platform={platform!r}); this reader reads fixed towers and surface sites "
            "(records at one position and intake height); select the tower/surface datasets"
        )


def _time_offset(nc, attrs: dict, time_stamp: str, path: Path, notes: dict) -> np.timedelta64:
    """Shift from the file's stamps to the interval midpoint; records where it came from."""
    if time_stamp == "auto":
        comments = {
            f"comment of variable {v!r}": nc.variables[v].comment
            for v in _STAMP_VARIABLES
            if v in nc.variables and "comment" in nc.variables[v].ncattrs()
        }
        found = stamp_position(comments)
        if found is None:
            raise ObservationFormatError(
                f"{path}: cannot tell whether time stamps mark the start, midpoint or end of the "
                f"averaging interval: no comment of {list(_STAMP_VARIABLES)} states it (checked "
                f"{list(comments) or 'none present'}); pass time_stamp='start'|'midpoint'|'end'"
            )
        position, source = found
        notes["time_stamp"] = f"{position} of the averaging interval (from the {source})"
    else:
        position = time_stamp
        notes["time_stamp"] = f"{position} of the averaging interval (option time_stamp)"
    interval = interval_of(
        attrs.get("dataset_data_frequency"), attrs.get("dataset_data_frequency_unit", "hour")
    )
    if interval is None:
        if position != "midpoint":
            raise ObservationFormatError(
                f"{path}: time stamps mark the {position} of the averaging interval but the file "
                "has no dataset_data_frequency; pass time_stamp='midpoint' if the stamps are "
                "representative times"
            )
        interval = np.timedelta64(0, "ns")
    return stamp_offset("", interval, position, where=str(path))


def _flags(nc, attrs: dict, valid_flags, assume_valid: bool | None, path: Path, notes: dict):
    if "qcflag" in nc.variables:  # NOAA: 3-char flag, first char = rejection
        notes["qc_flag"] = "variable 'qcflag' (valid when the first character is '.')"
        return np.char.startswith(read_strings(nc.variables["qcflag"]), ".")
    if "qc_flag" in nc.variables:  # ICOS: single letter
        notes["qc_flag"] = f"variable 'qc_flag' (valid: {list(valid_flags)})"
        return np.isin(read_strings(nc.variables["qc_flag"]), list(valid_flags))
    n = nc.variables["value"].shape[0]
    if assume_valid:
        notes["qc_flag"] = "no flag variable; every record taken as valid (option assume_valid)"
        return np.ones(n, bool)
    stated = {
        k: str(attrs[k])
        for k in ("dataset_selection_tag", "dataset_name", "dataset_selection")
        if k in attrs
    }
    says_valid = any("allvalid" in v.lower().replace(" ", "") for v in stated.values()) or (
        "valid" in stated.get("dataset_selection", "").lower()
    )
    if says_valid and assume_valid is None:
        src = ", ".join(f"{k}={v!r}" for k, v in stated.items())
        notes["qc_flag"] = (
            f"no flag variable; every record taken as valid because the file states it holds "
            f"valid data only ({src})"
        )
        return np.ones(n, bool)
    raise MissingVariableError(
        f"{path}: no quality flag variable ('qcflag' or 'qc_flag') and the file does not state "
        f"that it holds valid data only (found {stated or 'no dataset_selection attributes'}); "
        "pass assume_valid=True to read every record as valid"
    )


def _uncertainties(nc, path: Path, notes: dict):
    def var(name):
        if name not in nc.variables:
            return None
        v = nc.variables[name]
        factor = to_ppm_factor(getattr(v, "units", None), where=f"{path}: variable {name!r}")
        return negative_sentinels(read_float(v, path), name, str(path), notes) * factor

    unc = var("value_unc")
    if unc is not None:
        notes["instrument error"] = "variable 'value_unc'"
    else:
        ltr, smr = var("icos_LTR"), var("icos_SMR")
        if ltr is not None or smr is not None:
            parts = [a for a in (ltr, smr) if a is not None]
            unc = np.sqrt(sum(np.where(np.isfinite(a), a, 0.0) ** 2 for a in parts))
            notes["instrument error"] = (
                "sqrt(icos_LTR^2 + icos_SMR^2) (ICOS repeatabilities, Yver Kwok et al., 2015)"
            )
        else:
            notes["instrument error"] = "none in the file (0 unless err_instrument is given)"
    std = var("value_std_dev")
    nval = None
    if "nvalue" in nc.variables:
        nval = negative_sentinels(
            read_float(nc.variables["nvalue"], path), "nvalue", str(path), notes
        )
    notes["representation error"] = (
        "value_std_dev / sqrt(nvalue) (std of the records when averaged)"
        if std is not None
        else "std of the records averaged into each hour (no value_std_dev in the file)"
    )
    return unc, std, nval


@register_reader(
    "obspack",
    sniff=_sniff_obspack,
    description="NOAA/ICOS ObsPack tower in-situ NetCDF (dim 'obs' or 'time'; also 'allvalid')",
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
    assume_valid: bool | None = None,
    err_instrument: float | None = None,
    err_representation: float | None = None,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read an ObsPack tower file (NOAA ``obs`` variant, ICOS / GLOBALVIEWplus ``time`` variant).

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
        comment of ``time`` (else of ``time_components``, ``time_decimal``, ``datetime``).
        Stamps are shifted to the interval midpoint.
    use_obs_flag : bool
        Drop records with ``obs_flag == 0`` (local influence).
    valid_flags : tuple of str
        Valid single-letter ICOS ``qc_flag`` values.  NOAA 3-character ``qcflag``: a record is
        valid when the first (rejection) character is ``"."``.
    assume_valid : bool, optional
        For files without a flag variable: True reads every record as valid; None (default)
        does so only when the file states it holds valid data only ("allvalid").
    err_instrument : float, optional
        Instrument error [ppm]; default from the file (``value_unc``, else ICOS
        ``icos_LTR``/``icos_SMR``; 0 if none).
    err_representation : float, optional
        Representation error [ppm]; default ``value_std_dev``/sqrt(``nvalue``) or the std of
        the records averaged into the hour.
    err_calibration, err_transport : float
        Calibration and transport (model-data mismatch) errors [ppm].  Records whose total
        error is zero after these options are dropped and counted.

    Returns
    -------
    xarray.Dataset
        ObservationSet, kind "tower", ``alt`` = intake height [m agl].
    """
    path = Path(path)
    notes: dict[str, str] = {}
    with open_netcdf(path) as nc:
        vvar = get_var(nc, "value", path)
        tvar = get_var(nc, "time", path)
        n = vvar.shape[0] if vvar.ndim else 0
        if n == 0:
            raise empty_error(str(path), "dimension of 'value' has length 0")
        vunits = getattr(vvar, "units", None)
        factor = to_ppm_factor(vunits, where=f"{path}: variable 'value'")
        value = read_float(vvar, path) * factor
        time = decode_cf_time(read_float(tvar, path), getattr(tvar, "units", ""), where=str(path))
        _check_time_components(nc, time, path)
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        _check_fixed_platform(attrs, path)
        time = time + _time_offset(nc, attrs, time_stamp, path, notes)
        flag_ok = _flags(nc, attrs, valid_flags, assume_valid, path, notes)
        extra_bad: dict[str, np.ndarray] = {}
        if use_obs_flag and "obs_flag" in nc.variables:
            of = np.ma.filled(nc.variables["obs_flag"][...], 1)  # _FillValue is 1 in ICOS files
            extra_bad["obs_flag == 0 (local influence)"] = np.asarray(of) == 0
        unc, std, nval = _uncertainties(nc, path, notes)
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
        assumptions=notes,
        value_origin=f"variable 'value' (units attribute {vunits!r})",
    )
    opts = TowerOptions(
        species, start, end, intake_height, hours, average, err_instrument, err_calibration,
        err_transport, err_representation,
    )  # fmt: skip
    keep_attrs = {
        "source_file": path.name,
        "site_name": str(attrs.get("site_name", "")),
        "site_elevation_m_asl": float(attrs.get("site_elevation", np.nan)),
        "dataset_name": str(attrs.get("dataset_name", "")),
    }
    return finalize_tower(rec, opts, keep_attrs)
