"""Small builders shared by the plume tests (independent of the observations package)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from inversion import Grid, TimeAxis
from transport_models.plume import PlumeMet

LON0, LAT0 = -111.9, 40.75
T0 = np.datetime64("2024-07-01T00:00", "ns")


def city_grid(n: int = 12, res: float = 1000.0) -> Grid:
    return Grid.local(LON0, LAT0, nx=n, ny=n, resolution_m=res)


def day_axis() -> TimeAxis:
    return TimeAxis.regular("2024-07-01", "2024-07-02", "6h")


def met(hours: int = 24, **kw) -> PlumeMet:
    args = {
        "times": T0 + np.arange(hours) * np.timedelta64(1, "h"),
        "wind_speed": 3.0,
        "wind_direction": 270.0,
        "boundary_layer_height": 800.0,
        "stability": "D",
        "pressure": 990.0,
        "temperature": 295.0,
    }
    args.update(kw)
    return PlumeMet(**args)


def obs_set(kind, lon, lat, alt, time=None, site=None, **extras) -> xr.Dataset:
    """A minimal ObservationSet-like Dataset (dim "obs") built by hand."""
    kind = np.atleast_1d(np.asarray(kind, dtype=str))
    n = kind.size
    time = T0 + np.timedelta64(90, "m") if time is None else time
    data = {
        "value": ("obs", np.zeros(n), {"units": "ppm"}),
        "time": ("obs", np.broadcast_to(np.asarray(time, "datetime64[ns]"), (n,)).copy()),
        "kind": ("obs", kind),
        "site": ("obs", np.atleast_1d(site if site is not None else [f"s{i}" for i in range(n)])),
        "lat": ("obs", np.broadcast_to(np.asarray(lat, float), (n,)).copy()),
        "lon": ("obs", np.broadcast_to(np.asarray(lon, float), (n,)).copy()),
        "alt": ("obs", np.broadcast_to(np.asarray(alt, float), (n,)).copy(), {"reference": "agl"}),
    }
    for name, val in extras.items():
        val = np.asarray(val, dtype=float)
        val = val if val.ndim == 2 else np.broadcast_to(val, (n,)).copy()
        data[name] = (("obs", "level") if val.ndim == 2 else ("obs",), val)
    return xr.Dataset(data)
