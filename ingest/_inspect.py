"""The one summary shape returned by ``observations.inspect``, ``transport_models.inspect_footprint``
and ``priors.inspect_inventory`` (used by ``cityflux validate``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["Inspection"]


def _iso(t: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(t, "s"), unit="s"))


@dataclass(frozen=True)
class Inspection:
    """What a reader found in one input file, without solving anything.

    Attributes
    ----------
    path : str
        The file.
    format : str
        The registered format that read it (detected when not given).
    what : str
        ``"observations"``, ``"footprint"`` or ``"inventory"``.
    n_records : int
        Observations kept (observations), receptors (footprints) or grid cells (inventories).
    time_range : (numpy.datetime64, numpy.datetime64) or None
        First and last time [UTC]: observation times; footprint layer start to layer end;
        inventory period.
    bbox : (float, float, float, float) or None
        ``(lon_min, lat_min, lon_max, lat_max)`` [degrees] of the records (observations,
        receptors) or of the grid (footprints, inventories).
    kinds, sites : tuple of str
        Observation or receptor kinds and sites / platforms (empty for inventories).
    units : dict of str to str
        Units found in the file, by variable, as written there.
    assumptions : dict of str to str
        What the reader had to assume or take from an option because the file does not say it
        (QC flags, uncertainty, time-stamp position, back-time interval, ...), and from where.
    details : dict
        Reader-specific extras (QC drop counts, layer counts, read mode).
    complete : bool
        True when the whole file was read with the given options (every error a full read can
        raise was checked); False when only the header and a sample were read.
    """

    path: str
    format: str
    what: str
    n_records: int
    time_range: tuple[np.datetime64, np.datetime64] | None = None
    bbox: tuple[float, float, float, float] | None = None
    kinds: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)
    assumptions: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (times as ISO strings)."""
        out = asdict(self)
        if self.time_range is not None:
            out["time_range"] = [_iso(t) for t in self.time_range]
        if self.bbox is not None:
            out["bbox"] = [float(v) for v in self.bbox]
        out["kinds"], out["sites"] = list(self.kinds), list(self.sites)
        return out

    def summary(self) -> str:
        """One line for a report: format, count, time range, box, assumptions."""
        parts = [f"{self.path}: {self.format} {self.what}, {self.n_records} records"]
        if self.time_range is not None:
            parts.append(f"{_iso(self.time_range[0])} to {_iso(self.time_range[1])}")
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            parts.append(f"lon {x0:.4g}..{x1:.4g}, lat {y0:.4g}..{y1:.4g}")
        if self.kinds:
            parts.append("kinds " + ",".join(self.kinds))
        if self.assumptions:
            parts.append("assumed: " + "; ".join(f"{k}: {v}" for k, v in self.assumptions.items()))
        return "; ".join(parts)


def bbox_of(lon: Any, lat: Any) -> tuple[float, float, float, float] | None:
    """``(lon_min, lat_min, lon_max, lat_max)`` of finite points, or None."""
    lon, lat = np.asarray(lon, float).ravel(), np.asarray(lat, float).ravel()
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return None
    return (float(lon[ok].min()), float(lat[ok].min()), float(lon[ok].max()), float(lat[ok].max()))


def time_range_of(times: Any) -> tuple[np.datetime64, np.datetime64] | None:
    """First and last non-NaT time, or None."""
    t = np.asarray(times, "datetime64[ns]").ravel()
    t = t[~np.isnat(t)]
    if t.size == 0:
        return None
    return (t.min(), t.max())
