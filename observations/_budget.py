"""Error budget, combination of ObservationSets, calibration-scale checks and the description of
the correlated blocks of R (numpy only)."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ._exceptions import ObservationFormatError, ScaleMismatchWarning
from ._qc import QCReport, qc_report
from ._schema import UNSPECIFIED_SCALE, validate_observation_set

__all__ = [
    "CORRELATION_LENGTHS",
    "CorrelationGroups",
    "check_scales",
    "combine",
    "correlation_groups",
    "set_errors",
]

logger = logging.getLogger(__name__)

#: Default error correlation within a group, per kind: (length, unit, coordinate).
#: Tower hours of one site-day: exponential in time, 3 h; soundings of one overpass: exponential
#: in great-circle distance, 10 km; chords of one lidar scan and segments of one profile:
#: exponential in time, 0.5 h.
CORRELATION_LENGTHS: dict[str, tuple[float, str, str]] = {
    "tower": (3.0, "h", "time"),
    "column": (10.0, "km", "distance"),
    "lidar_path": (0.5, "h", "time"),
    "lidar_profile": (0.5, "h", "time"),
}

_IN_SITU = ("tower", "lidar_path", "lidar_profile")


def set_errors(ds: xr.Dataset, **components: float | Mapping[str, float]) -> xr.Dataset:
    """Return a copy of ``ds`` with error components set, per kind or globally.

    Parameters
    ----------
    ds : xarray.Dataset
        ObservationSet.
    **components
        ``transport=2.0`` sets ``err_transport`` to 2 ppm everywhere; ``transport={"tower":
        2.0, "column": 1.0}`` per kind (kinds not named keep their value).  Names: instrument,
        calibration, transport, representation, background [ppm].

    Returns
    -------
    xarray.Dataset
        Validated copy.
    """
    out = ds.copy()
    kinds = out["kind"].values.astype(str)
    for comp, spec in components.items():
        name = f"err_{comp}"
        if name not in out:
            raise KeyError(f"set_errors: unknown component {comp!r}")
        arr = out[name].values.copy()
        if isinstance(spec, Mapping):
            for kind, val in spec.items():
                arr[kinds == kind] = float(val)
        else:
            arr[:] = float(spec)
        out[name] = (("obs",), arr, dict(out[name].attrs))
    return validate_observation_set(out)


def check_scales(ds: xr.Dataset) -> list[str]:
    """Messages for calibration scales that disagree between sites.

    In-situ kinds (tower, lidar) are compared with each other and columns with each other;
    ``"unspecified"`` scales are reported separately.
    """
    msgs = []
    kinds = ds["kind"].values.astype(str)
    scales = ds["scale"].values.astype(str)
    sites = ds["site"].values.astype(str)
    for label, sel in (("in-situ", np.isin(kinds, _IN_SITU)), ("column", kinds == "column")):
        found = {s for s in np.unique(scales[sel]) if s != UNSPECIFIED_SCALE}
        if len(found) > 1:
            per = {s: sorted(np.unique(sites[sel & (scales == s)]).tolist()) for s in found}
            msgs.append(
                f"calibration scales disagree between {label} sites: {per}; convert the data to "
                "one scale (e.g. 'WMO CO2 X2019') or add the scale offset to err_calibration"
            )
        unspec = np.unique(sites[sel & (scales == UNSPECIFIED_SCALE)])
        if found and unspec.size:
            msgs.append(f"sites {unspec.tolist()} have no calibration scale; others use {found}")
    return msgs


def _set_name(ds: xr.Dataset, i: int) -> str:
    if ds.attrs.get("source_file"):
        return str(ds.attrs["source_file"])
    if "qc_report" in ds.attrs:
        return qc_report(ds).sources[0].source
    return f"set {i}"


def _refuse_shared_records(parts: Sequence[xr.Dataset], names: Sequence[str]) -> None:
    """Refuse records (kind, site, time, position, height) held by more than one set: the same
    file twice, a copy, or overlapping releases would count each observation twice."""
    if len(parts) < 2:
        return
    cols = {
        "set": np.repeat(np.arange(len(parts)), [p.sizes["obs"] for p in parts]),
        **{k: np.concatenate([p[k].values.astype(str) for p in parts]) for k in ("kind", "site")},
        "time": np.concatenate([p["time"].values.astype("datetime64[ns]") for p in parts]),
        **{k: np.concatenate([np.round(p[k].values.astype(float), 6) for p in parts])
           for k in ("lat", "lon", "alt")},
    }  # fmt: skip
    df = pd.DataFrame(cols)
    sets_per = df.groupby(["kind", "site", "time", "lat", "lon", "alt"], dropna=False)["set"]
    shared = df[sets_per.transform("nunique") > 1]
    if shared.empty:
        return
    first = shared.iloc[0]
    both = sorted(set(shared["set"]))
    n = len(shared.drop_duplicates(["kind", "site", "time", "lat", "lon", "alt"]))
    when = np.datetime_as_string(np.datetime64(first["time"], "s"))
    raise ObservationFormatError(
        f"{n} observation records appear in more than one source "
        f"({', '.join(names[i] for i in both)}): same kind, site, time, position and height, "
        f"e.g. {first['kind']} site {first['site']!r} at {when}; the same "
        "observations twice would count twice in the inversion: remove the duplicated source "
        "(a file listed twice, a copy of it, or overlapping releases of one record)"
    )


def combine(sets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Concatenate ObservationSets along ``obs``.

    Correlation ``group`` ids are offset so they stay distinct between sets; QC reports are
    merged; extras absent from a set are filled with NaN (numeric) or "" (text); levels of
    different length are padded with NaN at the top.  Disagreeing calibration scales raise a
    :class:`ScaleMismatchWarning` and are recorded in ``attrs["warnings"]`` (JSON list).

    Raises
    ------
    ValueError
        When ``sets`` is empty, the species differ, or a record (kind, site, time, position,
        height) appears in more than one set (counted twice otherwise).
    """
    if not sets:
        raise ValueError("combine: empty list of ObservationSets")
    species = {ds.attrs.get("species", "co2") for ds in sets}
    if len(species) > 1:
        raise ObservationFormatError(f"combine: sets hold different species {sorted(species)}")
    refs = {ds["alt"].attrs.get("reference", "agl") for ds in sets}
    n_level = max((ds.sizes.get("level", 0) for ds in sets), default=0)
    parts, offset, reports, prior_warnings = [], 0, QCReport(), []
    for ds in sets:
        validate_observation_set(ds)
        part = ds.copy()
        part["group"] = part["group"] + offset
        offset = int(part["group"].max()) + 1 if part.sizes["obs"] else offset
        if len(refs) > 1:
            part["alt_reference"] = ("obs", np.full(part.sizes["obs"], part["alt"].attrs.get(
                "reference", "agl")))  # fmt: skip
        if "level" in part.dims and part.sizes["level"] < n_level:
            part = part.pad(level=(0, n_level - part.sizes["level"]))
        if "qc_report" in ds.attrs:
            reports.sources.extend(qc_report(ds).sources)
        prior_warnings.extend(json.loads(ds.attrs.get("warnings", "[]")))
        part.attrs = {}
        parts.append(part)
    names = {v for p in parts for v in p.data_vars}
    for i, part in enumerate(parts):
        for name in names - set(part.data_vars):
            ref = next(p[name] for p in parts if name in p.data_vars)
            shape = tuple(part.sizes[d] if d in part.dims else n_level for d in ref.dims)
            fill = "" if ref.dtype.kind in "UO" else np.nan
            dtype = ref.dtype if ref.dtype.kind in "UO" else "float64"
            part[name] = (ref.dims, np.full(shape, fill, dtype=dtype), dict(ref.attrs))
        parts[i] = part
    _refuse_shared_records(parts, [_set_name(ds, i) for i, ds in enumerate(sets)])
    out = xr.concat(parts, dim="obs", data_vars="all", coords="minimal", join="outer")
    out["alt"].attrs = {"units": "m", "reference": refs.pop() if len(refs) == 1 else "mixed"}
    if out["alt"].attrs["reference"] == "mixed":
        out["alt"].attrs["comment"] = "see per-observation variable alt_reference"
    for name in ("kind", "site", "scale"):
        out[name] = out[name].astype(str)
    msgs = prior_warnings + check_scales(out)
    for msg in msgs[len(prior_warnings) :]:
        warnings.warn(msg, ScaleMismatchWarning, stacklevel=2)
        logger.warning(msg)
    out.attrs = {"species": species.pop(), "warnings": json.dumps(msgs),
                 "qc_report": reports.to_json(), "time_convention": "representative time, UTC"}  # fmt: skip
    if n_level:
        out.attrs["level_order"] = "surface_to_top"
    return validate_observation_set(out, name="combined ObservationSet")


@dataclass(frozen=True)
class CorrelationGroups:
    """Description of the correlated blocks of R.

    Attributes
    ----------
    group : numpy.ndarray
        Group id per observation (int, shape (n_obs,)); errors of different groups are
        uncorrelated.
    length : numpy.ndarray
        Correlation length per observation, in ``unit`` of that observation's kind.
    unit : numpy.ndarray
        ``"h"`` (temporal) or ``"km"`` (distance) per observation.
    coordinate : numpy.ndarray
        ``"time"`` or ``"distance"`` per observation.
    components : tuple of str
        Error components the correlation applies to (the others are diagonal).
    """

    group: np.ndarray
    length: np.ndarray
    unit: np.ndarray
    coordinate: np.ndarray
    components: tuple[str, ...]

    def blocks(self) -> list[np.ndarray]:
        """Observation indices of each group (ascending group id), vectorised split."""
        order = np.argsort(self.group, kind="stable")
        cuts = np.flatnonzero(np.diff(self.group[order])) + 1
        return np.split(order, cuts)


def correlation_groups(
    ds: xr.Dataset,
    lengths: Mapping[str, float] | None = None,
    components: tuple[str, ...] = ("transport", "representation"),
) -> CorrelationGroups:
    """Group ids and correlation lengths of an ObservationSet for the blocks of R.

    Parameters
    ----------
    ds : xarray.Dataset
        ObservationSet.
    lengths : mapping, optional
        Override of the lengths in :data:`CORRELATION_LENGTHS` per kind (same units: hours
        for tower/lidar, km for columns).
    components : tuple of str
        Components that are correlated within a group (default transport and representation;
        instrument errors stay diagonal).

    Returns
    -------
    CorrelationGroups
    """
    kinds = ds["kind"].values.astype(str)
    table = {k: v for k, v in CORRELATION_LENGTHS.items()}
    for k, v in (lengths or {}).items():
        table[k] = (float(v), table[k][1], table[k][2])
    names = np.array(list(table))
    idx = np.searchsorted(names, kinds, sorter=np.argsort(names))
    order = np.argsort(names)
    sel = order[idx]
    return CorrelationGroups(
        group=ds["group"].values.astype("int64"),
        length=np.array([table[k][0] for k in names])[sel],
        unit=np.array([table[k][1] for k in names])[sel],
        coordinate=np.array([table[k][2] for k in names])[sel],
        components=tuple(components),
    )
