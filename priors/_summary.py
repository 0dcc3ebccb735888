"""Inventory totals per sector, region and month [t CO2]."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from inversion.state import TimeAxis

from ._geometry import NativeGrid
from ._regions import UMOL_TO_T_CO2


def _month_overlaps(t0: np.datetime64, t1: np.datetime64) -> tuple[list[str], np.ndarray]:
    m0 = pd.Timestamp(t0).to_period("M").to_timestamp()
    edges = pd.date_range(m0, pd.Timestamp(t1) + pd.offsets.MonthBegin(1), freq="MS").values
    lo = np.maximum(edges[:-1], np.datetime64(t0, "ns"))
    hi = np.minimum(edges[1:], np.datetime64(t1, "ns"))
    sec = np.clip((hi - lo) / np.timedelta64(1, "s"), 0, None).astype(float)
    keep = sec > 0
    labels = [str(pd.Timestamp(e).strftime("%Y-%m")) for e in edges[:-1]]
    return [lab for lab, k in zip(labels, keep, strict=True) if k], sec[keep]


def summarize_inventory(
    da: xr.DataArray,
    regions: xr.DataArray | None = None,
    time: TimeAxis | tuple[Any, Any] | None = None,
) -> pd.DataFrame:
    """Emission totals per sector, region and calendar month (UTC).

    Parameters
    ----------
    da : xarray.DataArray
        CO2 flux (sector, [time,] y, x) [µmol m-2 s-1] with a ``cell_area`` coordinate [m²]
        (as made by the readers and the regridder). Without a time dim it is a mean flux over
        ``time`` (``(start, end)`` or a TimeAxis) or, when ``time`` is None, over its
        ``period_start``/``period_end`` attributes; with a time dim, records last until their
        ``time_end`` coordinate (or the bins of ``time``) and are counted in the month of their start.
    regions : xarray.DataArray, optional
        (region, y, x) cell fractions on the same grid (:func:`region_weights`); default: the
        whole array as region ``"domain"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``sector``, ``region``, ``month`` (``YYYY-MM``), ``duration_s`` [s],
        ``emission_t_CO2`` [t CO2].
    """
    if "sector" not in da.dims:
        da = da.expand_dims(sector=["total"])
    units = str(da.attrs.get("units", "umol m-2 s-1")).replace("µ", "u")
    if units != "umol m-2 s-1":
        raise ValueError(f"da: expected units 'umol m-2 s-1', found {units!r}")
    area = (
        np.asarray(da["cell_area"].values, float)
        if "cell_area" in da.coords
        else NativeGrid.from_dataarray(da).cell_area
    )
    if regions is None:
        fr = np.ones((1, *area.shape))
        names = ["domain"]
    else:
        if "region" not in regions.dims:
            regions = regions.expand_dims(region=["region"])
        regions = regions.transpose("region", "y", "x")
        if regions.shape[1:] != area.shape:
            raise ValueError(
                f"regions: (y, x) shape {regions.shape[1:]} differs from the inventory's {area.shape}; "
                "compute region_weights on the same grid"
            )
        fr = regions.values
        names = [str(r) for r in regions["region"].values]
    sectors = [str(s) for s in da["sector"].values]
    rows = []
    if "time" in da.dims:
        flux = da.transpose("sector", "time", "y", "x").values
        if isinstance(time, TimeAxis):
            if time.nt != da.sizes["time"]:
                raise ValueError(f"time: {time.nt} bins but the array has {da.sizes['time']}")
            t0, sec = time.starts, time.seconds
        elif "time_end" in da.coords:
            t0 = da["time"].values.astype("datetime64[ns]")
            sec = ((da["time_end"].values - t0) / np.timedelta64(1, "s")).astype(float)
        else:
            raise ValueError("da has a time dim without time_end; pass time=TimeAxis")
        # rate per (sector, region, record) [µmol s-1]
        rate = np.einsum("styx,ryx->srt", flux, fr * area)
        month = pd.DatetimeIndex(t0).strftime("%Y-%m").to_numpy()
        for m in np.unique(month):
            sel = month == m
            tot = (rate[:, :, sel] * sec[sel]).sum(-1) * UMOL_TO_T_CO2
            for i, s in enumerate(sectors):
                for j, r in enumerate(names):
                    rows.append((s, r, m, float(sec[sel].sum()), float(tot[i, j])))
    else:
        if time is None:
            if "period_start" not in da.attrs:
                raise ValueError(
                    "da has no time dim and no period_start/period_end attributes; pass "
                    "time=(start, end) for the period the mean flux applies to"
                )
            p0, p1 = da.attrs["period_start"], da.attrs["period_end"]
        elif isinstance(time, TimeAxis):
            p0, p1 = time.period
        else:
            p0, p1 = time
        t0 = np.datetime64(pd.Timestamp(p0).tz_localize(None), "ns")
        t1 = np.datetime64(pd.Timestamp(p1).tz_localize(None), "ns")
        if t1 <= t0:
            raise ValueError(f"time: the period end {t1} is not after its start {t0}")
        flux = da.transpose("sector", "y", "x").values
        rate = np.einsum("syx,ryx->sr", flux, fr * area)
        months, sec = _month_overlaps(t0, t1)
        for m, dt in zip(months, sec, strict=True):
            for i, s in enumerate(sectors):
                for j, r in enumerate(names):
                    rows.append((s, r, m, float(dt), float(rate[i, j] * dt * UMOL_TO_T_CO2)))
    return pd.DataFrame(rows, columns=["sector", "region", "month", "duration_s", "emission_t_CO2"])
