"""GeoTIFF maps of the posterior flux and its std: one file per sector and quantity, one band
per state time step, north-up, with the grid's CRS (rasterio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cityflux._files import atomic_write

__all__ = ["GEOTIFF_VARIABLES", "write_geotiffs"]

#: posterior.nc variables written as GeoTIFF, and the file-name stem of each.
GEOTIFF_VARIABLES = {
    "flux_posterior": "flux_posterior_mean",
    "flux_posterior_std": "flux_posterior_std",
}


def write_geotiffs(ds: xr.Dataset, out_dir: str | Path) -> dict[str, Path]:
    """Write ``<stem>_<sector>.tif`` for the posterior mean and std [µmol m-2 s-1].

    Parameters
    ----------
    ds : xarray.Dataset
        posterior.nc's content (``x``, ``y`` cell centres in the CRS of ``crs.crs_wkt``,
        ``time_bnds``, ``sector_name``).
    out_dir : path

    Returns
    -------
    dict of str to pathlib.Path
        File name -> path. Bands are described by their time bin (``start/end`` UTC) and
        tagged with ``units``, ``sector`` and the variable's ``long_name``.
    """
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    x, y = ds["x"].values, ds["y"].values
    dx = float(x[1] - x[0]) if x.size > 1 else 1.0
    dy = float(abs(y[1] - y[0])) if y.size > 1 else 1.0
    north_first = y.size > 1 and y[0] < y[-1]  # rows south -> north in posterior.nc
    transform = Affine(dx, 0.0, float(x[0]) - dx / 2, 0.0, -dy, float(y.max()) + dy / 2)
    crs = CRS.from_wkt(ds["crs"].attrs["crs_wkt"])
    bounds = ds["time_bnds"].values
    fmt = "%Y-%m-%dT%H:%MZ"
    bands = [f"{pd.Timestamp(a).strftime(fmt)}/{pd.Timestamp(b).strftime(fmt)}" for a, b in bounds]
    sectors = [str(s) for s in ds["sector_name"].values]
    out = {}
    for var, stem in GEOTIFF_VARIABLES.items():
        da = ds[var]
        for k, sector in enumerate(sectors):
            data = np.asarray(da.values[k], dtype="float32")  # (time, y, x)
            if north_first:
                data = data[:, ::-1, :]
            name = f"{stem}_{_safe(sector)}.tif"

            def write(p: Path, data=data, sector=sector, da=da) -> None:
                with rasterio.open(
                    p, "w", driver="GTiff", height=data.shape[1], width=data.shape[2],
                    count=data.shape[0], dtype="float32", crs=crs, transform=transform,
                    compress="deflate",
                ) as dst:  # fmt: skip
                    dst.write(data)
                    dst.update_tags(units=da.attrs.get("units", ""), sector=sector,
                                    long_name=da.attrs.get("long_name", ""))  # fmt: skip
                    for i, desc in enumerate(bands, start=1):
                        dst.set_band_description(i, desc)

            out[name] = atomic_write(Path(out_dir) / name, write)
    return out


def _safe(name: str) -> str:
    """``name`` with characters other than letters, digits, ``-`` and ``_`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
