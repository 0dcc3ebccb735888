"""Footprint files in documented third-party layouts, built for the tests."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np


def aggregated_stilt(path: Path, *, backtime: str | None = "-240 hours", stamp=None) -> np.ndarray:
    """A 10-day aggregated STILT footprint in the ICOS / STILT v1 layout (Trajecmod.r):
    foot(time=1, lat, lon), time = footprint initial (receptor) time in days since 2000,
    units 'ppm per (micromol m-2 s-1)', global attribute backtime."""
    rng = np.random.default_rng(5)
    vals = (rng.random((1, 6, 8)) * 1e-3).astype("f8")
    t = np.datetime64("2018-01-10T12:00") if stamp is None else stamp
    days = (t - np.datetime64("2000-01-01")) / np.timedelta64(1, "D")
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("lon", 8)
        nc.createDimension("lat", 6)
        nc.createDimension("time", None)
        nc.createVariable("lon", "f8", ("lon",))[:] = 4.0 + 0.25 * np.arange(8) + 0.125
        nc.createVariable("lat", "f8", ("lat",))[:] = 51.0 + 0.25 * np.arange(6) + 0.125
        tv = nc.createVariable("time", "f8", ("time",))
        tv.units = "days since 2000-01-01 00:00:00 UTC"
        tv[:] = [days]
        f = nc.createVariable("foot", "f8", ("time", "lat", "lon"), fill_value=-1e30)
        f.units = "ppm per (micromol m-2 s-1)"
        f.long_name = "STILT footprints integrated over backward time intervall backtime"
        f[:] = vals
        if backtime is not None:
            nc.backtime = backtime
    return vals[0]
