"""Temporal disaggregation of inventory fluxes onto the state time axis.

The prior flux of a state bin is the inventory flux times the *mean over the bin* of the product
of hour-of-day, day-of-week and month factors (in local time), computed exactly: the period is
cut into pieces on which the product is constant (every state-bin edge and every 15 minutes in
UTC, which contains every local hour boundary of any real time zone), and the pieces are averaged
with their durations as weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from inversion.state import TimeAxis

from . import _profile_table

log = logging.getLogger(__name__)

_LENGTHS = {"hour": 24, "dow": 7, "month": 12}
_INDEX_BASE = {"hour": 0, "dow": 0, "month": 1}


class ProfileError(ValueError):
    """A temporal profile that is malformed or does not average to 1."""


def _check_profile(sector: str, kind: str, values: Any, tol: float) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    n = _LENGTHS[kind]
    if v.shape != (n,) or not np.isfinite(v).all() or (v < 0).any():
        raise ProfileError(
            f"profile {kind!r} of sector {sector!r}: expected {n} finite non-negative factors, "
            f"found shape {v.shape} (min {np.nanmin(v) if v.size else 'n/a'})"
        )
    if abs(v.mean() - 1.0) > tol:
        raise ProfileError(
            f"profile {kind!r} of sector {sector!r}: factors must average to 1 (within {tol:g}), "
            f"found mean {v.mean():.9g}; divide them by their mean"
        )
    v.setflags(write=False)
    return v


@dataclass(frozen=True, eq=False)
class TemporalProfiles:
    """Hour-of-day, day-of-week and month factors per sector, each averaging to 1.

    Parameters
    ----------
    hour, dow, month : mapping of str to sequence of float
        Per sector: 24 factors (index 0 = 00–01 local), 7 (index 0 = Monday), 12 (January
        first). A sector missing from a mapping gets a flat (all-ones) profile of that kind.
    tolerance : float
        Allowed deviation of each profile's mean from 1.

    Raises
    ------
    ProfileError
        If a profile has the wrong length, negative/non-finite factors, or a mean != 1.
    """

    hour: Mapping[str, Any] = field(default_factory=dict)
    dow: Mapping[str, Any] = field(default_factory=dict)
    month: Mapping[str, Any] = field(default_factory=dict)
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        for kind in ("hour", "dow", "month"):
            table = {
                str(s): _check_profile(str(s), kind, v, self.tolerance)
                for s, v in getattr(self, kind).items()
            }
            object.__setattr__(self, kind, MappingProxyType(table))

    @property
    def sectors(self) -> tuple[str, ...]:
        """Sectors with at least one non-flat profile."""
        return tuple(sorted(set(self.hour) | set(self.dow) | set(self.month)))

    @classmethod
    def default(cls) -> TemporalProfiles:
        """TNO-MACC profiles (Denier van der Gon et al. 2011), see :mod:`priors._profile_table`.

        Sectors ``energy``, ``residential``, ``industry``, ``road``; ``total`` (equal-weight
        composite of the four, project-made) and ``flat``. Renormalised to mean 1.
        """
        tables = {}
        for kind, src in (
            ("hour", _profile_table.HOUR),
            ("dow", _profile_table.DOW),
            ("month", _profile_table.MONTH),
        ):
            t = {s: np.asarray(v) / np.mean(v) for s, v in src.items()}
            t["total"] = np.mean([t[s] for s in ("energy", "residential", "industry", "road")], 0)
            t["flat"] = np.ones(_LENGTHS[kind])
            tables[kind] = {s: v / v.mean() for s, v in t.items()}
        return cls(**tables)

    @classmethod
    def from_csv(cls, path: str | Path, *, tolerance: float = 1e-6) -> TemporalProfiles:
        """Read profiles from a CSV with columns ``sector, profile, index, factor``.

        ``profile`` is ``hour`` (index 0–23, local), ``dow`` (0 = Monday … 6 = Sunday) or
        ``month`` (1–12). Each (sector, profile) must list every index once and average to 1.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"profile file {str(path)!r} does not exist")
        df = pd.read_csv(path)
        need = {"sector", "profile", "index", "factor"}
        if not need <= set(df.columns):
            raise KeyError(f"{path}: expected columns {sorted(need)}, found {list(df.columns)}")
        tables: dict[str, dict[str, np.ndarray]] = {"hour": {}, "dow": {}, "month": {}}
        for (sector, kind), g in df.groupby(["sector", "profile"]):
            if kind not in _LENGTHS:
                raise ProfileError(f"{path}: unknown profile {kind!r}; use hour, dow or month")
            idx = g["index"].to_numpy(int) - _INDEX_BASE[kind]
            n = _LENGTHS[kind]
            if sorted(idx) != list(range(n)):
                raise ProfileError(
                    f"{path}: profile {kind!r} of sector {sector!r} must list indices "
                    f"{_INDEX_BASE[kind]}..{_INDEX_BASE[kind] + n - 1} once each"
                )
            v = np.empty(n)
            v[idx] = g["factor"].to_numpy(float)
            tables[kind][str(sector)] = v
        try:
            return cls(**tables, tolerance=tolerance)
        except ProfileError as err:
            raise ProfileError(f"{path}: {err}") from None

    def get(self, kind: str, sector: str) -> np.ndarray:
        """Factors of ``kind`` for ``sector`` (flat when not given)."""
        return getattr(self, kind).get(sector, np.ones(_LENGTHS[kind]))

    def check_sectors(self, sectors: Sequence[str]) -> None:
        """Raise KeyError for sectors without any profile (use ``flat`` explicitly)."""
        missing = [s for s in sectors if s not in self.sectors]
        if missing:
            raise KeyError(
                f"no temporal profile for sectors {missing}; available: {list(self.sectors)}. "
                "Rename the sector, pass profile_for={'<sector>': '<profile sector>'} or add "
                "it to the profile CSV"
            )


def _segments(edges: np.ndarray) -> np.ndarray:
    """Union of bin edges and a 15-min UTC grid between them [datetime64[ns]]."""
    q = np.int64(15 * 60 * 10**9)
    e = edges.astype("datetime64[ns]").astype(np.int64)
    grid = np.arange((e[0] // q + 1) * q, e[-1], q, dtype=np.int64)
    return np.union1d(e, grid).astype("datetime64[ns]")


def _local_parts(t: np.ndarray, utc_offset: float | None, timezone: str | None):
    idx = pd.DatetimeIndex(t)
    if timezone is not None:
        loc = idx.tz_localize("UTC").tz_convert(timezone)
    else:
        loc = idx + pd.Timedelta(hours=float(utc_offset or 0.0))
    return loc.hour.to_numpy(), loc.day_of_week.to_numpy(), loc.month.to_numpy() - 1


def temporal_factors(
    time: TimeAxis,
    sectors: Sequence[str],
    profiles: TemporalProfiles | None = None,
    *,
    utc_offset: float | None = None,
    timezone: str | None = None,
    apply: Sequence[str] = ("hour", "dow", "month"),
    profile_for: Mapping[str, str] | None = None,
    normalize_over_period: bool = False,
) -> np.ndarray:
    """Mean profile product over each state bin, (n_sector, nt) [1].

    See :func:`temporal_disaggregate` for the parameters.
    """
    profiles = profiles or TemporalProfiles.default()
    mapping = {s: (profile_for or {}).get(s, s) for s in sectors}
    profiles.check_sectors(list(mapping.values()))
    if timezone is not None and utc_offset is not None:
        raise ValueError("give either utc_offset [h] or timezone, not both")
    bad = set(apply) - set(_LENGTHS)
    if bad:
        raise ValueError(f"apply: unknown profiles {sorted(bad)}; use hour, dow, month")
    seg = _segments(time.edges)
    dur = (np.diff(seg) / np.timedelta64(1, "s")).astype(float)
    h, d, m = _local_parts(seg[:-1], utc_offset, timezone)
    start_idx = np.searchsorted(seg, time.edges[:-1])
    out = np.empty((len(sectors), time.nt))
    for i, s in enumerate(sectors):  # loop over sectors only (a handful)
        p = mapping[s]
        f = np.ones(dur.size)
        if "hour" in apply:
            f = f * profiles.get("hour", p)[h]
        if "dow" in apply:
            f = f * profiles.get("dow", p)[d]
        if "month" in apply:
            f = f * profiles.get("month", p)[m]
        out[i] = np.add.reduceat(f * dur, start_idx) / time.seconds
        if normalize_over_period:
            out[i] /= np.sum(out[i] * time.seconds) / np.sum(time.seconds)
    return out


def temporal_disaggregate(
    flux: xr.DataArray,
    time: TimeAxis,
    profiles: TemporalProfiles | None = None,
    *,
    utc_offset: float | None = None,
    timezone: str | None = None,
    apply: Sequence[str] | None = None,
    profile_for: Mapping[str, str] | None = None,
    normalize_over_period: bool = False,
) -> xr.DataArray:
    """Spread a mean inventory flux over the state time bins with sector profiles.

    Parameters
    ----------
    flux : xarray.DataArray
        CO2 flux (sector, y, x) [µmol m-2 s-1], the mean over the inventory period; or
        (sector, time, y, x) records with a ``time_end`` coordinate (e.g. monthly ODIAC), each
        the mean over ``[time, time_end)``; every state bin must lie inside one record.
    time : inversion.TimeAxis
        State time bins (UTC).
    profiles : TemporalProfiles, optional
        Defaults to :meth:`TemporalProfiles.default`.
    utc_offset : float, optional
        Local time = UTC + ``utc_offset`` [h] (fixed); or give ``timezone`` (IANA name, with
        daylight saving). Neither: profiles are applied in UTC.
    apply : sequence of str, optional
        Profiles to apply among ``"hour"``, ``"dow"``, ``"month"``. Default: all three for a
        flux without time; for records, those finer than the record length (monthly records →
        hour and dow; daily → hour; hourly → none).
    profile_for : mapping, optional
        Profile sector to use per flux sector (e.g. ``{"total": "road"}``).
    normalize_over_period : bool
        Rescale each sector's factors to average exactly 1 over the state period, so the total
        over the period equals flux × duration (otherwise it does so only over whole cycles,
        e.g. whole weeks for hour × day-of-week).

    Returns
    -------
    xarray.DataArray
        CO2 flux (sector, time, y, x) [µmol m-2 s-1] on the state time axis; each value is the
        mean over its bin, so flux × bin seconds sums to the emission of the bin.
    """
    if "sector" not in flux.dims:
        flux = flux.expand_dims(sector=["total"])
    sectors = [str(s) for s in flux["sector"].values]
    if "time" in flux.dims:
        if "time_end" not in flux.coords:
            raise ValueError(
                "flux has a time dim but no time_end coordinate; each record must state its "
                "period [time, time_end)"
            )
        r0 = flux["time"].values.astype("datetime64[ns]")
        r1 = flux["time_end"].values.astype("datetime64[ns]")
        rec = np.searchsorted(r0, time.starts, side="right") - 1
        ok = (rec >= 0) & (time.ends <= r1[np.clip(rec, 0, None)])
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"state bin {time.starts[bad]} – {time.ends[bad]} is not inside one inventory "
                f"record (records {r0[0]} … {r1[-1]}); choose state bins within the records"
            )
        if apply is None:
            step = float(np.median((r1 - r0) / np.timedelta64(1, "h")))
            apply = (("hour", "dow") if step > 24 + 1e-9 else ("hour",)) if step > 1 + 1e-9 else ()
            if step > 32 * 24:
                apply = ("hour", "dow", "month")
        base = flux.transpose("sector", "time", "y", "x").values[:, rec]
    else:
        apply = ("hour", "dow", "month") if apply is None else apply
        base = flux.transpose("sector", "y", "x").values[:, None]
    fac = temporal_factors(
        time,
        sectors,
        profiles,
        utc_offset=utc_offset,
        timezone=timezone,
        apply=tuple(apply),
        profile_for=profile_for,
        normalize_over_period=normalize_over_period,
    )
    values = base * fac[:, :, None, None]
    keep = {k: v for k, v in flux.coords.items() if set(v.dims) <= {"y", "x"} or k == "sector"}
    keep = {k: v for k, v in keep.items() if k not in ("time", "time_end")}
    out = xr.DataArray(
        values,
        dims=("sector", "time", "y", "x"),
        coords={**keep, "time": ("time", time.starts), "time_end": ("time", time.ends)},
        name=flux.name or "flux",
        attrs={**flux.attrs, "temporal_profiles": ",".join(apply) or "none"},
    )
    for k in ("period_start", "period_end"):
        out.attrs.pop(k, None)
    return out
