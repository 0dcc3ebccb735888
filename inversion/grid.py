"""The regular horizontal grid of the inversion state.

A :class:`Grid` is a rectilinear, axis-aligned raster in any CRS: a pyproj CRS, a GDAL-ordered affine
transform without rotation, and a shape ``(ny, nx)``. Dimensions are always ``("y", "x")``; 1-D
coordinates are cell centres in the grid CRS, and 2-D ``lat``/``lon`` are auxiliary coordinates.

Cell areas are in m²: geodesic (exact on the WGS84 ellipsoid) for geographic grids, planar
``|dx·dy|`` in metres for projected grids (exact for equal-area projections; for a local
projection centred on a city the scale error is well below 0.1 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyproj
import xarray as xr

__all__ = ["Grid", "GridMismatchError", "axis_attrs", "band_area"]


class GridMismatchError(ValueError):
    """Two grids (or a grid and a data array) do not agree."""


def band_area(lat_lo: Any, lat_hi: Any, dlon_deg: Any, crs: Any = "EPSG:4326") -> np.ndarray:
    """Exact area [m²] of longitude/latitude cells on the ellipsoid of ``crs``.

    Cells are bounded by parallels ``lat_lo``/``lat_hi`` [degrees] and meridians ``dlon_deg``
    [degrees] apart (not by geodesics). Uses the authalic-latitude integral: the area from the
    equator to latitude φ per radian of longitude is ``b²/2 · (sinφ/(1 − e² sin²φ) +
    artanh(e sinφ)/e)`` (Snyder 1987, eqs. 3-12 and 10-15). Arguments broadcast.
    """
    ell = _as_crs(crs).ellipsoid
    a = ell.semi_major_metre if ell is not None else 6378137.0
    inv_f = ell.inverse_flattening if ell is not None else 298.257223563
    f = 0.0 if not np.isfinite(inv_f) or inv_f == 0 else 1.0 / inv_f
    e2 = f * (2.0 - f)
    b2 = (a * (1.0 - f)) ** 2

    def zone(lat: Any) -> np.ndarray:
        sin = np.sin(np.deg2rad(np.clip(np.asarray(lat, float), -90.0, 90.0)))
        if e2 == 0.0:
            return b2 * sin
        e = np.sqrt(e2)
        return 0.5 * b2 * (sin / (1.0 - e2 * sin * sin) + np.arctanh(e * sin) / e)

    return np.abs(np.deg2rad(np.asarray(dlon_deg, float)) * (zone(lat_hi) - zone(lat_lo)))


def axis_attrs(crs: Any) -> tuple[dict[str, str], dict[str, str]]:
    """CF attributes of the 1-D ``x`` and ``y`` coordinates of a grid in ``crs``.

    Returns
    -------
    xattrs, yattrs : dict
        ``units``, ``standard_name`` and ``axis`` (degrees for geographic CRSs, the CRS's
        linear unit otherwise).
    """
    crs = _as_crs(crs)
    if crs.is_geographic:
        return (
            {"units": "degrees_east", "standard_name": "longitude", "axis": "X"},
            {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"},
        )
    unit = crs.axis_info[0].unit_name
    units = "m" if unit in ("metre", "meter") else unit
    return (
        {"units": units, "standard_name": "projection_x_coordinate", "axis": "X"},
        {"units": units, "standard_name": "projection_y_coordinate", "axis": "Y"},
    )


def _as_crs(crs: Any) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as err:
        raise ValueError(
            f"crs: could not interpret {crs!r} as a coordinate reference system ({err}); "
            "pass an EPSG code such as 'EPSG:4326', a PROJ string or a pyproj.CRS"
        ) from err


@dataclass(frozen=True, eq=False)
class Grid:
    """A regular grid of cells in a coordinate reference system.

    Parameters
    ----------
    crs : pyproj.CRS or str or int
        Coordinate reference system of the grid (anything ``pyproj.CRS.from_user_input`` takes).
    transform : sequence of 6 floats or affine.Affine
        GDAL-ordered affine transform ``(dx, 0, x_left, 0, dy, y_first_edge)`` mapping
        (column, row) of cell corners to CRS coordinates [CRS units]. Rotation terms must be 0.
        ``dy`` may be negative (north-up rasters) or positive (south-to-north NetCDF grids).
    shape : tuple of int
        ``(ny, nx)``, number of rows and columns.

    Examples
    --------
    >>> g = Grid.from_bounds("EPSG:4326", (-112.2, 40.5, -111.7, 40.9), resolution=0.01)
    >>> g.shape
    (40, 50)
    """

    crs: pyproj.CRS
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        crs = _as_crs(self.crs)
        t = tuple(float(v) for v in tuple(self.transform)[:6])
        if len(t) != 6:
            raise ValueError(f"transform: expected 6 numbers (GDAL order), found {len(t)}")
        if t[1] != 0.0 or t[3] != 0.0:
            raise ValueError(
                f"transform: rotated grids are not supported (found rotation terms {t[1]}, {t[3]}); "
                "resample to an axis-aligned grid first"
            )
        if not (np.isfinite(t).all() and t[0] > 0 and t[4] != 0):
            raise ValueError(
                f"transform: expected finite cell sizes with dx > 0 and dy != 0, found dx={t[0]}, "
                f"dy={t[4]}"
            )
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"shape: expected (ny, nx) with both >= 1, found {self.shape!r}")
        object.__setattr__(self, "crs", crs)
        object.__setattr__(self, "transform", t)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "_hash", hash((crs.to_wkt(), t, shape)))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_bounds(
        cls,
        crs: Any,
        bounds: Sequence[float],
        resolution: float | tuple[float, float],
        *,
        north_up: bool = False,
    ) -> Grid:
        """Grid covering ``bounds = (xmin, ymin, xmax, ymax)`` [CRS units] at ``resolution``.

        ``resolution`` is one cell size or ``(dx, dy)`` [CRS units]; the extent must be a whole
        number of cells (to 1e-6 of a cell). Rows run south to north unless ``north_up``.
        """
        xmin, ymin, xmax, ymax = (float(b) for b in bounds)
        dx, dy = (resolution, resolution) if np.isscalar(resolution) else resolution
        dx, dy = float(dx), float(dy)
        fx, fy = (xmax - xmin) / dx, (ymax - ymin) / dy
        nx, ny = round(fx), round(fy)
        if nx < 1 or ny < 1 or abs(fx - nx) > 1e-6 or abs(fy - ny) > 1e-6:
            raise ValueError(
                f"bounds {tuple(bounds)} are not a whole number of cells of size ({dx}, {dy}): "
                f"found {fx:.6g} x {fy:.6g} cells; adjust the bounds or the resolution"
            )
        if north_up:
            return cls(crs, (dx, 0.0, xmin, 0.0, -dy, ymax), (ny, nx))
        return cls(crs, (dx, 0.0, xmin, 0.0, dy, ymin), (ny, nx))

    @classmethod
    def local(
        cls,
        lon: float,
        lat: float,
        *,
        nx: int,
        ny: int,
        resolution_m: float = 1000.0,
    ) -> Grid:
        """A projected city grid centred on (``lon``, ``lat``) [degrees].

        Uses an azimuthal equidistant projection centred on the city (distances from the centre
        are exact; planar distances between cells equal great-circle ones to < 0.1 % within
        100 km), ``nx × ny`` cells of ``resolution_m`` [m], rows south to north.
        """
        crs = pyproj.CRS.from_proj4(
            f"+proj=aeqd +lat_0={lat} +lon_0={lon} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
        )
        half_x, half_y = nx * resolution_m / 2.0, ny * resolution_m / 2.0
        return cls(crs, (resolution_m, 0.0, -half_x, 0.0, resolution_m, -half_y), (ny, nx))

    @classmethod
    def from_coords(cls, x: np.ndarray, y: np.ndarray, crs: Any, *, rtol: float = 1e-6) -> Grid:
        """Grid from 1-D cell-centre coordinates ``x`` (nx,) and ``y`` (ny,) [CRS units].

        Raises
        ------
        ValueError
            If the coordinates are not evenly spaced to ``rtol`` of a cell, or ``x`` decreases.
        """
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        for name, c in (("x", x), ("y", y)):
            if c.ndim != 1 or c.size < 1 or not np.isfinite(c).all():
                raise ValueError(f"{name}: expected finite 1-D cell centres, found shape {c.shape}")
        dx = float(x[1] - x[0]) if x.size > 1 else 1.0
        dy = float(y[1] - y[0]) if y.size > 1 else 1.0
        for name, c, d in (("x", x, dx), ("y", y, dy)):
            if c.size > 1 and np.max(np.abs(np.diff(c) - d)) > rtol * abs(d):
                raise ValueError(
                    f"{name}: coordinates are not evenly spaced (spacing {d:.6g} ± "
                    f"{np.max(np.abs(np.diff(c) - d)):.3g}); only regular grids are supported"
                )
        if dx <= 0:
            raise ValueError(f"x: expected increasing coordinates, found spacing {dx}")
        return cls(crs, (dx, 0.0, x[0] - dx / 2, 0.0, dy, y[0] - dy / 2), (y.size, x.size))

    @classmethod
    def from_dataarray(cls, da: xr.DataArray | xr.Dataset, crs: Any | None = None) -> Grid:
        """Grid of a data array with 1-D ``x``/``y`` or ``lon``/``lat`` (or longitude/latitude).

        The CRS is taken from ``crs``, else from a CF ``grid_mapping`` variable or ``crs``/
        ``spatial_ref`` attribute, else EPSG:4326 when the coordinates are lon/lat.
        """
        names = [("x", "y"), ("lon", "lat"), ("longitude", "latitude")]
        for xn, yn in names:
            if xn in da.coords and yn in da.coords and da[xn].ndim == 1 and da[yn].ndim == 1:
                break
        else:
            raise ValueError(
                f"cannot infer a grid: expected 1-D coordinates x/y, lon/lat or longitude/latitude, "
                f"found {sorted(map(str, da.coords))}"
            )
        if crs is None:
            gm = da.attrs.get("grid_mapping")
            for key in (gm, "spatial_ref", "crs"):
                if key and key in da.coords:
                    crs = pyproj.CRS.from_cf(da.coords[key].attrs)
                    break
            else:
                crs = da.attrs.get("crs") or ("EPSG:4326" if xn != "x" else None)
        if crs is None:
            raise ValueError("cannot infer the CRS of a grid with x/y coordinates; pass crs=")
        return cls.from_coords(da[xn].values, da[yn].values, crs)

    # ------------------------------------------------------------------ basic properties
    @property
    def ny(self) -> int:
        """Number of rows."""
        return self.shape[0]

    @property
    def nx(self) -> int:
        """Number of columns."""
        return self.shape[1]

    @property
    def size(self) -> int:
        """Number of cells, ``ny * nx``."""
        return self.shape[0] * self.shape[1]

    @property
    def dx(self) -> float:
        """Cell width [CRS units], positive."""
        return self.transform[0]

    @property
    def dy(self) -> float:
        """Signed cell height [CRS units]: negative for north-up rasters."""
        return self.transform[4]

    @property
    def is_geographic(self) -> bool:
        """True for longitude/latitude grids."""
        return bool(self.crs.is_geographic)

    @cached_property
    def x_edges(self) -> np.ndarray:
        """Column edges (nx + 1,) [CRS units]."""
        return self.transform[2] + self.dx * np.arange(self.nx + 1)

    @cached_property
    def y_edges(self) -> np.ndarray:
        """Row edges (ny + 1,) [CRS units], in row order."""
        return self.transform[5] + self.dy * np.arange(self.ny + 1)

    @cached_property
    def x(self) -> np.ndarray:
        """Cell-centre x coordinates (nx,) [CRS units]."""
        return 0.5 * (self.x_edges[:-1] + self.x_edges[1:])

    @cached_property
    def y(self) -> np.ndarray:
        """Cell-centre y coordinates (ny,) [CRS units]."""
        return 0.5 * (self.y_edges[:-1] + self.y_edges[1:])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the outer cell edges [CRS units]."""
        ye = self.y_edges
        return (self.x_edges[0], min(ye[0], ye[-1]), self.x_edges[-1], max(ye[0], ye[-1]))

    @cached_property
    def _to_lonlat(self) -> pyproj.Transformer:
        return pyproj.Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)

    @cached_property
    def _from_lonlat(self) -> pyproj.Transformer:
        return pyproj.Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    @cached_property
    def _lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        xx, yy = np.meshgrid(self.x, self.y)
        lon, lat = self._to_lonlat.transform(xx, yy)
        return np.asarray(lon), np.asarray(lat)

    @property
    def lon(self) -> np.ndarray:
        """Cell-centre longitudes (ny, nx) [degrees_east]."""
        return self._lonlat[0]

    @property
    def lat(self) -> np.ndarray:
        """Cell-centre latitudes (ny, nx) [degrees_north]."""
        return self._lonlat[1]

    @cached_property
    def cell_area(self) -> np.ndarray:
        """Cell areas (ny, nx) [m²].

        Exact on the CRS ellipsoid for geographic grids (cells bounded by meridians and
        parallels; the cells of one row share an area);
        planar ``|dx·dy|`` converted to m² for projected grids.
        """
        if self.is_geographic:
            rows = band_area(self.y_edges[:-1], self.y_edges[1:], self.dx, self.crs)
            return np.repeat(rows[:, None], self.nx, axis=1)
        factor = self.crs.axis_info[0].unit_conversion_factor
        return np.full(self.shape, abs(self.dx * self.dy) * factor**2)

    @property
    def spacing_km(self) -> tuple[float, float]:
        """``(|dy|, dx)`` [km] for projected grids, for stationary correlation models.

        Raises
        ------
        ValueError
            For geographic grids, whose east-west spacing varies with latitude.
        """
        if self.is_geographic:
            raise ValueError(
                "spacing_km is only defined for projected grids; a geographic grid's east-west "
                "spacing varies with latitude (use great-circle distances between cell centres)"
            )
        factor = self.crs.axis_info[0].unit_conversion_factor / 1000.0
        return (abs(self.dy) * factor, self.dx * factor)

    # ------------------------------------------------------------------ locating points
    def to_xy(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Transform longitude/latitude [degrees] to grid CRS coordinates."""
        x, y = self._from_lonlat.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x), np.asarray(y)

    def to_lonlat(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Transform grid CRS coordinates to longitude/latitude [degrees]."""
        lon, lat = self._to_lonlat.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon), np.asarray(lat)

    def index(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of points given in the grid CRS.

        Cells are half-open ``[edge, next edge)``. Points outside the grid get ``-1``.

        Returns
        -------
        iy, ix : numpy.ndarray of int
        """
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        fx = (x - self.transform[2]) / self.dx
        fy = (y - self.transform[5]) / self.dy
        ix = np.floor(fx).astype(np.int64)
        iy = np.floor(fy).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return np.where(inside, iy, -1), np.where(inside, ix, -1)

    def index_lonlat(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of points given in longitude/latitude [degrees]; ``-1`` outside."""
        return self.index(*self.to_xy(lon, lat))

    def contains_lonlat(self, lon: Any, lat: Any) -> np.ndarray:
        """Boolean mask of points [degrees] that fall inside the grid."""
        return self.index_lonlat(lon, lat)[0] >= 0

    # ------------------------------------------------------------------ xarray glue
    def grid_mapping_attrs(self) -> dict[str, Any]:
        """CF-1.10 ``grid_mapping`` attributes of the CRS (with ``crs_wkt``)."""
        attrs = dict(self.crs.to_cf())
        attrs.setdefault("crs_wkt", self.crs.to_wkt())
        return attrs

    def coords(self) -> dict[str, Any]:
        """Coordinates for an xarray object on this grid: ``y``, ``x``, 2-D ``lat``, ``lon``."""
        xattrs, yattrs = axis_attrs(self.crs)
        return {
            "y": ("y", self.y, yattrs),
            "x": ("x", self.x, xattrs),
            "lat": (("y", "x"), self.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": (("y", "x"), self.lon, {"units": "degrees_east", "standard_name": "longitude"}),
        }

    def data_array(self, values: np.ndarray, name: str | None = None, **attrs: Any) -> xr.DataArray:
        """Wrap a ``(..., ny, nx)`` array; leading dims must be named by the caller afterwards."""
        values = np.asarray(values)
        if values.shape[-2:] != self.shape:
            raise GridMismatchError(
                f"values: expected trailing shape {self.shape} (y, x), found {values.shape}"
            )
        dims = (*(f"dim_{i}" for i in range(values.ndim - 2)), "y", "x")
        return xr.DataArray(values, dims=dims, coords=self.coords(), name=name, attrs=attrs)

    def check_dataarray(self, da: xr.DataArray, name: str = "data") -> None:
        """Raise :class:`GridMismatchError` unless ``da`` has this grid's y/x dims and coords."""
        for dim, n, c in (("y", self.ny, self.y), ("x", self.nx, self.x)):
            if dim not in da.dims or da.sizes[dim] != n:
                raise GridMismatchError(
                    f"{name}: expected dim {dim!r} of length {n}, found dims {dict(da.sizes)}"
                )
            if dim in da.coords and not np.allclose(
                da[dim].values, c, rtol=0, atol=1e-6 * abs(self.dx)
            ):
                raise GridMismatchError(
                    f"{name}: {dim} coordinates differ from the grid's "
                    f"(found {da[dim].values[0]:.6g}…, expected {c[0]:.6g}…); regrid first"
                )

    # ------------------------------------------------------------------ identity
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return (
            self.shape == other.shape
            and self.crs == other.crs
            and np.allclose(self.transform, other.transform, rtol=1e-12, atol=1e-9)
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        name = self.crs.name or self.crs.to_string()
        return (
            f"Grid(shape={self.shape}, dx={self.dx:g}, dy={self.dy:g}, "
            f"origin=({self.transform[2]:g}, {self.transform[5]:g}), crs={name!r})"
        )
