"""Domain-uniform hourly meteorology for the Gaussian plume model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._dispersion import STABILITY_CLASSES

__all__ = ["GAS_CONSTANT", "PlumeMet"]

#: Molar gas constant [J mol-1 K-1].
GAS_CONSTANT = 8.314462618
_HOUR = np.timedelta64(3600, "s").astype("timedelta64[ns]")


def _utc(times: Any) -> np.ndarray:
    idx = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(times), utc=True))
    return idx.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")


@dataclass(frozen=True, eq=False)
class PlumeMet:
    """Hourly, domain-uniform meteorology driving the plume model.

    Each record ``j`` holds for the hour ``[times[j], times[j] + 1 h)``. Scalars are broadcast
    to all hours.

    Parameters
    ----------
    times : array_like
        Start of each hour, UTC (anything ``pandas.to_datetime`` reads), strictly increasing.
    wind_speed : array_like
        Wind speed [m s-1], in (0, 100].
    wind_direction : array_like
        Meteorological wind direction [degrees]: the direction the wind blows FROM, clockwise
        from true north (270 = westerly wind, blowing towards the east).
    boundary_layer_height : array_like
        Mixing-layer depth zi [m], in (0, 10000].
    stability : array_like of str
        Pasquill stability class "A" (very unstable) … "F" (stable) per hour.
    pressure : array_like, optional
        Surface air pressure [hPa] (default 1013.25), in (300, 1100].
    temperature : array_like, optional
        Surface air temperature [K] (default 288.15), in (180, 340].

    Raises
    ------
    ValueError
        Naming the first offending hour, for non-increasing times, a wind speed, zi, pressure
        or temperature outside its plausible range (units mistakes: Pa, degrees Celsius), a
        non-finite direction, or an unknown stability class.
    """

    times: Any
    wind_speed: Any
    wind_direction: Any
    boundary_layer_height: Any
    stability: Any
    pressure: Any = 1013.25
    temperature: Any = 288.15

    def __post_init__(self) -> None:
        t = _utc(self.times)
        n = t.size
        if n == 0:
            raise ValueError("PlumeMet.times: expected at least one hour, found none")
        if np.isnat(t).any() or (n > 1 and not (np.diff(t) > np.timedelta64(0, "ns")).all()):
            raise ValueError(
                "PlumeMet.times: expected strictly increasing hours without NaT; sort the "
                "records and drop duplicates"
            )
        object.__setattr__(self, "times", t)

        def arr(name: str, dtype: Any) -> np.ndarray:
            a = np.asarray(getattr(self, name), dtype=dtype)
            if a.ndim == 0:
                a = np.full(n, a.item(), dtype=dtype)
            if a.shape != (n,):
                raise ValueError(
                    f"PlumeMet.{name}: expected a scalar or {n} values (one per hour), found "
                    f"shape {a.shape}"
                )
            return a

        def check(name: str, a: np.ndarray, ok: np.ndarray, expected: str) -> None:
            if not ok.all():
                j = int(np.flatnonzero(~ok)[0])
                val = a[j].item() if isinstance(a[j], np.generic) else a[j]
                raise ValueError(
                    f"PlumeMet.{name}: expected {expected}, found {val!r} at hour {t[j]} "
                    f"(record {j}); {int((~ok).sum())} of {n} hours are invalid"
                )

        for name, (lo, hi), expected in (
            ("wind_speed", (0.0, 100.0), "> 0 and <= 100 m s-1 (calms are outside the plume "
             "model: set a minimum speed)"),
            ("boundary_layer_height", (0.0, 10000.0), "> 0 and <= 10000 m"),
            ("pressure", (300.0, 1100.0), "300-1100 hPa (a surface pressure in hPa, not Pa)"),
            ("temperature", (180.0, 340.0), "180-340 K (kelvin, not degrees Celsius)"),
        ):  # fmt: skip
            a = arr(name, float)
            check(name, a, np.isfinite(a) & (a > lo) & (a <= hi), expected)
            object.__setattr__(self, name, a)
        wd = arr("wind_direction", float)
        check("wind_direction", wd, np.isfinite(wd), "finite degrees")
        object.__setattr__(self, "wind_direction", np.mod(wd, 360.0))
        st = np.char.upper(np.char.strip(arr("stability", object).astype(str)))
        check("stability", st, np.isin(st, STABILITY_CLASSES), f"one of {STABILITY_CLASSES}")
        object.__setattr__(self, "stability", st)

    @property
    def n_hours(self) -> int:
        """Number of hourly records."""
        return int(self.times.size)

    @property
    def stability_index(self) -> np.ndarray:
        """Stability class as an index 0–5 (A–F) per hour."""
        return np.searchsorted(np.array(STABILITY_CLASSES), self.stability)

    @property
    def air_molar_density(self) -> np.ndarray:
        """Molar density of air n = p / (R T) per hour [mol m-3]."""
        return self.pressure * 100.0 / (GAS_CONSTANT * self.temperature)

    def hour_index(self, times: Any) -> np.ndarray:
        """Index of the hourly record containing each time; ``-1`` where none does."""
        t = _utc(times)
        j = np.searchsorted(self.times, t, side="right") - 1
        jc = np.clip(j, 0, self.n_hours - 1)
        ok = (j >= 0) & (t < self.times[jc] + _HOUR)
        return np.where(ok, j, -1)
