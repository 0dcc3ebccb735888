"""Generate the small synthetic inventory fixtures used by tests/priors (run from anywhere).

    python tests/priors/data/make_fixtures.py

- ``odiac2023_1km_excl_intl_2301.tif``: ODIAC layout — single-band float32 GeoTIFF, EPSG:4326,
  30 arc-second (1/120°) cells, north-up, values in tonne C per cell per month (January 2023),
  cropped to Salt Lake City (lon -112.2…-111.7, lat 40.5…40.9: 60 × 48 cells).
- ``vulcan_like_2015_annual.nc``: Vulcan-v3-like annual total, ``carbon_emissions(time, y, x)``
  in tC km-2 yr-1 on a 1 km Lambert conformal conic grid (Vulcan's CONUS projection) with a CF
  ``grid_mapping`` variable and ``time_bnds`` (one record, 2015).
- ``vulcan_like_hourly.nc``: the same grid, 24 hourly records in tC km-2 h-1.
- ``point_sources.csv``: three stacks (name, sector, lon, lat, emission, units, stack_height).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import xarray as xr

HERE = Path(__file__).resolve().parent
LCC = "+proj=lcc +lat_1=33 +lat_2=45 +lat_0=40 +lon_0=-97 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"


def make_odiac(path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(2301)
    ny, nx = 48, 60
    lat = 40.9 - (np.arange(ny) + 0.5) / 120
    lon = -112.2 + (np.arange(nx) + 0.5) / 120
    lon2, lat2 = np.meshgrid(lon, lat)
    city = 400.0 * np.exp(-(((lon2 + 111.89) / 0.06) ** 2 + ((lat2 - 40.76) / 0.05) ** 2))
    values = (city + rng.gamma(0.5, 4.0, (ny, nx))).astype("float32")  # tonne C / cell / month
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=nx,
        height=ny,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(-112.2, 40.9, 1 / 120, 1 / 120),
    ) as dst:
        dst.write(values, 1)


def _lcc_grid() -> tuple[np.ndarray, np.ndarray]:
    t = pyproj.Transformer.from_crs("EPSG:4326", LCC, always_xy=True)
    x0, y0 = t.transform(-86.16, 39.77)  # Indianapolis
    x0, y0 = round(x0 / 1000) * 1000, round(y0 / 1000) * 1000
    x = x0 - 20_000 + 500 + 1000 * np.arange(40)
    y = y0 - 15_000 + 500 + 1000 * np.arange(30)
    return x, y


def _grid_mapping() -> xr.DataArray:
    attrs = pyproj.CRS.from_proj4(LCC).to_cf()
    attrs["crs_wkt"] = pyproj.CRS.from_proj4(LCC).to_wkt()
    return xr.DataArray(np.int32(0), attrs=attrs)


def make_vulcan(annual: Path, hourly: Path) -> None:
    rng = np.random.default_rng(2015)
    x, y = _lcc_grid()
    xx, yy = np.meshgrid(x - x.mean(), y - y.mean())
    field = 2000.0 * np.exp(-(xx**2 + yy**2) / (2 * 6000.0**2)) + rng.gamma(0.7, 30.0, xx.shape)
    coords = {
        "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
        "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
    }
    t = np.array(["2015-01-01"], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {
            "carbon_emissions": (
                ("time", "y", "x"),
                field[None],
                {
                    "units": "tC km-2 yr-1",
                    "grid_mapping": "lambert_conformal_conic",
                    "long_name": "total fossil fuel CO2 emissions (as carbon)",
                },
            ),
            "lambert_conformal_conic": _grid_mapping(),
            "time_bnds": (
                ("time", "nv"),
                np.array([["2015-01-01", "2016-01-01"]], "datetime64[ns]"),
            ),
        },
        coords={**coords, "time": ("time", t, {"bounds": "time_bnds"})},
        attrs={"title": "Vulcan-like synthetic test inventory (cityflux fixture)"},
    )
    ds.to_netcdf(
        annual,
        encoding={
            "time": {"units": "hours since 2015-01-01"},
            "time_bnds": {"units": "hours since 2015-01-01"},
        },
    )
    hours = np.arange(24)
    shape = 1 + 0.5 * np.sin(2 * np.pi * (hours - 8) / 24)
    hourly_field = (field[None] / 8760.0 * shape[:, None, None]).astype("float32")
    ts = np.datetime64("2015-07-01T00:00", "ns") + hours * np.timedelta64(1, "h")
    ds_h = xr.Dataset(
        {
            "carbon_emissions": (
                ("time", "y", "x"),
                hourly_field,
                {"units": "tC km-2 h-1", "grid_mapping": "lambert_conformal_conic"},
            ),
            "lambert_conformal_conic": _grid_mapping(),
        },
        coords={**coords, "time": ("time", ts)},
    )
    ds_h.to_netcdf(hourly)


def make_points(path: Path) -> None:
    pd.DataFrame(
        {
            "name": ["plant_a", "plant_b", "refinery"],
            "sector": ["energy", "energy", "industry"],
            "lon": [-111.95, -111.80, -111.92],
            "lat": [40.70, 40.80, 40.84],
            "emission": [1.2, 0.35, 250.0],
            "units": ["Mt CO2/yr", "Mt CO2/yr", "kt C/yr"],
            "stack_height": [120.0, 80.0, 45.0],
        }
    ).to_csv(path, index=False)


def main() -> None:
    make_odiac(HERE / "odiac2023_1km_excl_intl_2301.tif")
    make_vulcan(HERE / "vulcan_like_2015_annual.nc", HERE / "vulcan_like_hourly.nc")
    make_points(HERE / "point_sources.csv")


if __name__ == "__main__":
    main()
