"""Conservative regridding of inventory fluxes onto the inversion grid (any pair of CRS).

Method
------
Intersections are computed in a *working* CRS: the target grid's own CRS when it is projected,
or, for a geographic target, a cylindrical equal-area projection on the target ellipsoid (which
maps longitude/latitude cells to exact rectangles whose planar areas are their ellipsoidal areas).
Source cells are reprojected to it as polygons with densified edges (exact, without densifying,
when the source is the working CRS or geographic into the equal-area projection); target cells
are rectangles. Candidate pairs come from a ``shapely.STRtree`` query and the overlaps from the
vectorised ``shapely.intersection``/``shapely.area`` — no Python loop over cells.

Emission is moved as flux × native source cell area [µmol s-1], split in proportion to the
overlap areas (fraction of each source cell, measured in the working CRS), and divided by the
target :attr:`inversion.Grid.cell_area`. Hence exactly (to round-off)::

    Σ_t F_t · A_t  =  Σ_s F_s · A_s · |s ∩ domain| / |s|

i.e. the emission of the source falling inside the target domain is preserved; when the target
covers the whole source grid this is the source total.
"""

from __future__ import annotations

import logging

import numpy as np
import pyproj
import scipy.sparse as sp
import shapely
import xarray as xr

from inversion.grid import Grid

from ._geometry import NativeGrid, flux_on_grid

log = logging.getLogger(__name__)


class CoverageError(ValueError):
    """The source grid does not cover the target domain."""


def working_crs(grid: Grid) -> pyproj.CRS:
    """CRS in which overlaps with ``grid`` cells are measured (see module docstring)."""
    if not grid.is_geographic:
        return grid.crs
    ell = grid.crs.ellipsoid
    lon0 = float(np.mean(grid.x_edges[[0, -1]]))
    rf = ell.inverse_flattening
    shape = f"+a={ell.semi_major_metre} +rf={rf}" if rf else f"+R={ell.semi_major_metre}"
    return pyproj.CRS.from_proj4(f"+proj=cea +lon_0={lon0} +lat_ts=0 {shape} +units=m +no_defs")


def target_cells(grid: Grid, wcrs: pyproj.CRS | None = None) -> np.ndarray:
    """Target cells as shapely boxes (ny*nx,) in the working CRS, C order."""
    wcrs = wcrs or working_crs(grid)
    xe, ye = grid.x_edges, grid.y_edges
    if grid.is_geographic:
        t = pyproj.Transformer.from_crs(grid.crs, wcrs, always_xy=True)
        xe = np.asarray(t.transform(xe, np.zeros_like(xe))[0])  # cea: x depends on lon only
        ye = np.asarray(t.transform(np.full_like(ye, grid.x[0]), ye)[1])
    x0, x1 = xe[:-1], xe[1:]
    y0, y1 = np.minimum(ye[:-1], ye[1:]), np.maximum(ye[:-1], ye[1:])
    X0, Y0 = np.meshgrid(x0, y0)
    X1, Y1 = np.meshgrid(x1, y1)
    return shapely.box(X0.ravel(), Y0.ravel(), X1.ravel(), Y1.ravel())


def cell_polygons(
    x_lo: np.ndarray,
    x_hi: np.ndarray,
    y_lo: np.ndarray,
    y_hi: np.ndarray,
    transformer: pyproj.Transformer | None,
    densify: int,
) -> np.ndarray:
    """Polygons of the cells of 1-D edges (C order over (y, x)), reprojected, ``densify`` points
    per edge."""
    X0, Y0 = np.meshgrid(x_lo, y_lo)
    X1, Y1 = np.meshgrid(x_hi, y_hi)
    X0, Y0, X1, Y1 = (a.ravel()[:, None] for a in (X0, Y0, X1, Y1))
    t = np.arange(densify) / densify
    xs = np.concatenate(
        [
            X0 + t * (X1 - X0),
            np.broadcast_to(X1, (X1.size, densify)),
            X1 - t * (X1 - X0),
            np.broadcast_to(X0, (X0.size, densify)),
            X0,
        ],
        axis=1,
    )
    ys = np.concatenate(
        [
            np.broadcast_to(Y0, (Y0.size, densify)),
            Y0 + t * (Y1 - Y0),
            np.broadcast_to(Y1, (Y1.size, densify)),
            Y1 - t * (Y1 - Y0),
            Y0,
        ],
        axis=1,
    )
    if transformer is not None:
        xs, ys = transformer.transform(xs, ys)
        xs, ys = np.asarray(xs), np.asarray(ys)
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError(
            "source cells could not be reprojected into the target CRS (non-finite coordinates); "
            "read the inventory with a bbox around the domain"
        )
    return shapely.polygons(np.stack([xs, ys], axis=-1))


def _domain_outline(grid: Grid, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    xe, ye = grid.x_edges, grid.y_edges
    s = np.linspace(0.0, 1.0, n)
    x = np.concatenate(
        [
            xe[0] + s * (xe[-1] - xe[0]),
            np.full(n, xe[-1]),
            xe[-1] - s * (xe[-1] - xe[0]),
            np.full(n, xe[0]),
        ]
    )
    y = np.concatenate(
        [
            np.full(n, ye[0]),
            ye[0] + s * (ye[-1] - ye[0]),
            np.full(n, ye[-1]),
            ye[-1] - s * (ye[-1] - ye[0]),
        ]
    )
    return x, y


def _select(lo: np.ndarray, hi: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    sel = np.flatnonzero((hi > vmin) & (lo < vmax))
    return np.arange(sel[0], sel[-1] + 1) if sel.size else sel


class Regridder:
    """Conservative regridding weights from an inventory's native cells to an inversion grid.

    Parameters
    ----------
    source : xarray.DataArray or NativeGrid
        Inventory on its native grid (as returned by :func:`priors.read_inventory`) or its cells.
    grid : inversion.Grid
        Target grid.
    densify : int, optional
        Points per source cell edge when reprojecting (default 1 when exact, else 8).
    coverage_tolerance : float
        Largest accepted fraction of the target domain area not covered by source cells.

    Attributes
    ----------
    weights : scipy.sparse.csr_array
        (grid.size, n_source) fraction of each source cell's emission that lands in each target cell.
    coverage : numpy.ndarray
        (ny, nx) fraction of each target cell's area covered by source cells.
    uncovered_fraction : float
        Fraction of the target domain area not covered by the source grid.

    Raises
    ------
    CoverageError
        If ``uncovered_fraction > coverage_tolerance``.
    """

    def __init__(
        self,
        source: xr.DataArray | NativeGrid,
        grid: Grid,
        *,
        densify: int | None = None,
        coverage_tolerance: float = 1e-6,
    ) -> None:
        native = source if isinstance(source, NativeGrid) else NativeGrid.from_dataarray(source)
        self.source = native
        self.grid = grid
        wcrs = working_crs(grid)
        # source cells near the domain only (bbox of the target outline in the source CRS)
        ox, oy = _domain_outline(grid)
        to_src = pyproj.Transformer.from_crs(grid.crs, native.crs, always_xy=True)
        sx, sy = (np.asarray(v) for v in to_src.transform(ox, oy))
        ix = _select(native.x_lo, native.x_hi, np.nanmin(sx), np.nanmax(sx))
        iy = _select(native.y_lo, native.y_hi, np.nanmin(sy), np.nanmax(sy))
        ix = np.arange(max(ix[0] - 1, 0), min(ix[-1] + 2, native.x_lo.size)) if ix.size else ix
        iy = np.arange(max(iy[0] - 1, 0), min(iy[-1] + 2, native.y_lo.size)) if iy.size else iy
        tgt = target_cells(grid, wcrs)
        tgt_area = shapely.area(tgt)
        n_src = native.shape[0] * native.shape[1]
        if ix.size == 0 or iy.size == 0:
            rows = cols = np.zeros(0, dtype=np.int64)
            frac = np.zeros(0)
            overlap = np.zeros(0)
        else:
            exact = native.crs == wcrs or (native.crs.is_geographic and grid.is_geographic)
            same = native.crs == wcrs
            d = densify or (1 if exact else 8)
            tr = None if same else pyproj.Transformer.from_crs(native.crs, wcrs, always_xy=True)
            polys = cell_polygons(
                native.x_lo[ix], native.x_hi[ix], native.y_lo[iy], native.y_hi[iy], tr, d
            )
            src_area = shapely.area(polys)
            tree = shapely.STRtree(tgt)
            i_src, i_tgt = tree.query(polys, predicate="intersects")
            overlap = shapely.area(shapely.intersection(polys[i_src], tgt[i_tgt]))
            keep = overlap > 0
            i_src, i_tgt, overlap = i_src[keep], i_tgt[keep], overlap[keep]
            frac = overlap / src_area[i_src]
            # local subset index -> full flat source index
            jy, jx = np.divmod(i_src, ix.size)
            cols = iy[jy] * native.shape[1] + ix[jx]
            rows = i_tgt
        self.weights = sp.csr_array((frac, (rows, cols)), shape=(grid.size, n_src))
        covered = np.bincount(rows, weights=overlap, minlength=grid.size)
        self.coverage = (covered / tgt_area).reshape(grid.shape)
        self.uncovered_fraction = float(max(0.0, 1.0 - covered.sum() / tgt_area.sum()))
        if self.uncovered_fraction > coverage_tolerance:
            n_part = int((self.coverage < 1 - 1e-9).sum())
            raise CoverageError(
                f"the inventory grid does not cover the target domain: uncovered fraction "
                f"{self.uncovered_fraction:.6g} of the domain area ({n_part} of {grid.size} target "
                f"cells not fully covered; tolerance {coverage_tolerance:g}). Read the inventory "
                "over a larger area (bbox) or pass coverage_tolerance= to treat the uncovered "
                "area as zero emission"
            )
        if self.uncovered_fraction > 0:
            log.info(
                "regrid: uncovered fraction %.3g treated as zero emission", self.uncovered_fraction
            )

    def regrid_values(self, values: np.ndarray, source_area: np.ndarray) -> np.ndarray:
        """Regrid flux values (..., ny_s, nx_s) [µmol m-2 s-1] to (..., ny, nx) [µmol m-2 s-1].

        ``source_area`` (ny_s, nx_s) [m²] is the native cell area used for flux × area.
        """
        values = np.asarray(values, dtype=float)
        lead = values.shape[:-2]
        emis = (values * source_area).reshape(-1, source_area.size)  # µmol s-1
        used = np.unique(self.weights.indices)
        bad = ~np.isfinite(emis[:, used])
        if bad.any():
            raise ValueError(
                f"regrid: {int(bad.sum())} non-finite source values inside the target domain; "
                "fill or mask them before regridding"
            )
        out = (self.weights @ emis.T).T / self.grid.cell_area.ravel()
        return out.reshape(*lead, *self.grid.shape)

    def __call__(self, da: xr.DataArray) -> xr.DataArray:
        """Regrid an inventory DataArray (..., y, x) [µmol m-2 s-1] onto the target grid."""
        if da.sizes.get("y") != self.source.shape[0] or da.sizes.get("x") != self.source.shape[1]:
            raise ValueError(
                f"regrid: the array's (y, x) sizes {(da.sizes.get('y'), da.sizes.get('x'))} differ "
                f"from the regridder's source grid {self.source.shape}"
            )
        units = str(da.attrs.get("units", "")).replace("µ", "u")
        if units != "umol m-2 s-1":
            raise ValueError(
                f"regrid: expected a flux in 'umol m-2 s-1', found units {units!r}; read it with "
                "priors.read_inventory"
            )
        lead = [d for d in da.dims if d not in ("y", "x")]
        da = da.transpose(*lead, "y", "x")
        area = (
            np.asarray(da["cell_area"].values, float)
            if "cell_area" in da.coords
            else self.source.cell_area
        )
        out = self.regrid_values(da.values, area)
        coords = {k: v for k, v in da.coords.items() if set(v.dims) <= set(lead)}
        coords.pop("spatial_ref", None)
        attrs = {k: v for k, v in da.attrs.items() if k not in ("grid_mapping", "note")}
        attrs["regridded_from"] = str(da.attrs.get("source", "inventory"))
        attrs["regrid_uncovered_fraction"] = self.uncovered_fraction
        return flux_on_grid(
            out, self.grid, (*lead, "y", "x"), coords=coords, attrs=attrs, name=da.name or "flux"
        )


def regrid(
    da: xr.DataArray,
    grid: Grid,
    *,
    densify: int | None = None,
    coverage_tolerance: float = 1e-6,
) -> xr.DataArray:
    """Conservatively regrid an inventory flux onto ``grid``, preserving the in-domain emission.

    Parameters
    ----------
    da : xarray.DataArray
        CO2 flux (..., y, x) [µmol m-2 s-1] on its native grid (from :func:`read_inventory`).
    grid : inversion.Grid
        Target grid (any CRS).
    densify, coverage_tolerance
        See :class:`Regridder`.

    Returns
    -------
    xarray.DataArray
        CO2 flux (..., y, x) [µmol m-2 s-1] on ``grid`` with ``cell_area`` = ``grid.cell_area``.

    Raises
    ------
    CoverageError
        If the inventory does not cover the domain (message states the uncovered fraction).
    """
    return Regridder(da, grid, densify=densify, coverage_tolerance=coverage_tolerance)(da)
