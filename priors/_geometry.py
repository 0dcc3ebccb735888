"""Native-grid geometry of inventory arrays: cell edges, exact cell areas, CF grid mapping.

Every inventory DataArray made by :mod:`priors` carries, besides ``y``/``x`` cell centres and 2-D
``lat``/``lon``:

- ``x_lo``/``x_hi`` (along ``x``) and ``y_lo``/``y_hi`` (along ``y``): cell edges [CRS units], so
  rectilinear grids that are not evenly spaced (e.g. a subsampled global grid) keep honest cell
  bounds;
- ``cell_area`` (y, x) [m²]: exact ellipsoidal areas of longitude/latitude cells (band formula),
  planar areas for projected cells;
- a scalar ``spatial_ref`` coordinate with CF ``grid_mapping`` attributes (and ``crs_wkt``), named by
  the array's ``grid_mapping`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj
import xarray as xr

from inversion.grid import Grid, axis_attrs, band_area

FLUX_UNITS = "umol m-2 s-1"


def cell_areas(
    x_lo: np.ndarray, x_hi: np.ndarray, y_lo: np.ndarray, y_hi: np.ndarray, crs: pyproj.CRS
) -> np.ndarray:
    """Cell areas (ny, nx) [m²] from 1-D edges: band formula if geographic, else planar."""
    if crs.is_geographic:
        return band_area(y_lo[:, None], y_hi[:, None], (x_hi - x_lo)[None, :], crs)
    f = crs.axis_info[0].unit_conversion_factor
    return np.abs(np.outer(y_hi - y_lo, x_hi - x_lo)) * f**2


def edges_from_centres(c: np.ndarray, clip: tuple[float, float] | None = None) -> np.ndarray:
    """Cell edges (n + 1,) at midpoints between centres, outer edges half a spacing out.

    For evenly spaced centres (to 1e-4 of a cell, i.e. float32 noise) the edges are rebuilt exactly
    from the first centre and the mean spacing. ``clip`` limits the outer edges (e.g. ±90° latitude).
    """
    c = np.asarray(c, dtype=float)
    if c.size == 1:
        raise ValueError("cannot infer cell edges from a single coordinate; pass a grid")
    d = np.diff(c)
    step = (c[-1] - c[0]) / (c.size - 1)
    if np.max(np.abs(d - step)) <= 1e-4 * abs(step):
        edges = c[0] - step / 2 + step * np.arange(c.size + 1)
    else:
        edges = np.concatenate([[c[0] - d[0] / 2], 0.5 * (c[:-1] + c[1:]), [c[-1] + d[-1] / 2]])
    if clip is not None:
        edges = np.clip(edges, *clip)
    return edges


@dataclass(frozen=True, eq=False)
class NativeGrid:
    """Rectilinear cells of an inventory array: edges (in array order) and CRS."""

    crs: pyproj.CRS
    x_lo: np.ndarray
    x_hi: np.ndarray
    y_lo: np.ndarray
    y_hi: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y_lo.size, self.x_lo.size)

    @property
    def cell_area(self) -> np.ndarray:
        """Cell areas (ny, nx) [m²]."""
        return cell_areas(self.x_lo, self.x_hi, self.y_lo, self.y_hi, self.crs)

    @classmethod
    def from_grid(cls, grid: Grid) -> NativeGrid:
        xe, ye = grid.x_edges, grid.y_edges
        return cls(
            grid.crs,
            xe[:-1],
            xe[1:],
            np.minimum(ye[:-1], ye[1:]),
            np.maximum(ye[:-1], ye[1:]),
        )

    @classmethod
    def from_dataarray(cls, da: xr.DataArray) -> NativeGrid:
        """Cells of ``da``: its ``x_lo``… edge coordinates if present, else :class:`Grid` edges."""
        crs = crs_of(da)
        if all(k in da.coords for k in ("x_lo", "x_hi", "y_lo", "y_hi")):
            return cls(
                crs,
                np.asarray(da["x_lo"].values, float),
                np.asarray(da["x_hi"].values, float),
                np.asarray(da["y_lo"].values, float),
                np.asarray(da["y_hi"].values, float),
            )
        return cls.from_grid(Grid.from_dataarray(da, crs=crs))

    def lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        xc = 0.5 * (self.x_lo + self.x_hi)
        yc = 0.5 * (self.y_lo + self.y_hi)
        xx, yy = np.meshgrid(xc, yc)
        if self.crs.is_geographic:
            return xx, yy
        t = pyproj.Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        lon, lat = t.transform(xx, yy)
        return np.asarray(lon), np.asarray(lat)


def crs_of(da: xr.DataArray) -> pyproj.CRS:
    """CRS of an inventory array from its grid-mapping coordinate or ``crs`` attribute."""
    gm = da.attrs.get("grid_mapping")
    for key in (gm, "spatial_ref", "crs"):
        if key and key in da.coords:
            attrs = da.coords[key].attrs
            if "crs_wkt" in attrs:
                return pyproj.CRS.from_wkt(attrs["crs_wkt"])
            return pyproj.CRS.from_cf(attrs)
    if da.attrs.get("crs"):
        return pyproj.CRS.from_user_input(da.attrs["crs"])
    if "lon" in da.dims or "longitude" in da.dims:
        return pyproj.CRS.from_epsg(4326)
    raise ValueError(
        "cannot tell the CRS of the inventory array: expected a 'spatial_ref' grid-mapping "
        "coordinate or a 'crs' attribute; read it with priors.read_inventory or set "
        "da.attrs['crs'] = 'EPSG:…'"
    )


def grid_mapping_attrs(crs: pyproj.CRS) -> dict[str, Any]:
    """CF grid-mapping attributes of ``crs`` including ``crs_wkt``."""
    attrs = dict(crs.to_cf())
    attrs["crs_wkt"] = crs.to_wkt()
    return attrs


def native_dataarray(
    values: np.ndarray,
    dims: tuple[str, ...],
    native: NativeGrid,
    x: np.ndarray,
    y: np.ndarray,
    *,
    coords: dict[str, Any] | None = None,
    name: str = "flux",
    attrs: dict[str, Any] | None = None,
) -> xr.DataArray:
    """Wrap converted values (…, y, x) [µmol m-2 s-1] with the native-grid coordinates."""
    lon, lat = native.lonlat()
    xattrs, yattrs = axis_attrs(native.crs)
    all_coords: dict[str, Any] = dict(coords or {})
    all_coords.update(
        {
            "y": ("y", np.asarray(y, float), yattrs),
            "x": ("x", np.asarray(x, float), xattrs),
            "lat": (("y", "x"), lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": (("y", "x"), lon, {"units": "degrees_east", "standard_name": "longitude"}),
            "x_lo": ("x", native.x_lo, {"long_name": "lower x edge of cell"}),
            "x_hi": ("x", native.x_hi, {"long_name": "upper x edge of cell"}),
            "y_lo": ("y", native.y_lo, {"long_name": "lower y edge of cell"}),
            "y_hi": ("y", native.y_hi, {"long_name": "upper y edge of cell"}),
            "cell_area": (
                ("y", "x"),
                native.cell_area,
                {"units": "m2", "long_name": "cell area", "standard_name": "cell_area"},
            ),
            "spatial_ref": ((), 0, grid_mapping_attrs(native.crs)),
        }
    )
    base = {"units": FLUX_UNITS, "long_name": "CO2 flux", "grid_mapping": "spatial_ref"}
    base.update(attrs or {})
    return xr.DataArray(values, dims=dims, coords=all_coords, name=name, attrs=base)


def flux_on_grid(values: np.ndarray, grid: Grid, dims: tuple[str, ...], **kw: Any) -> xr.DataArray:
    """Wrap values (…, ny, nx) [µmol m-2 s-1] on an inversion :class:`Grid`."""
    native = NativeGrid.from_grid(grid)
    da = native_dataarray(values, dims, native, grid.x, grid.y, **kw)
    # Grid.cell_area is the inversion's convention (geodesic quadrilaterals); use it on grids
    return da.assign_coords(cell_area=(("y", "x"), grid.cell_area, da["cell_area"].attrs))
