"""City and district masks (fractional cell coverage) and aggregation weights for the state."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
import xarray as xr

from inversion.grid import Grid
from inversion.state import StateVector

from ._geometry import flux_on_grid
from ._regrid import target_cells, working_crs
from ._units import M_CO2

log = logging.getLogger(__name__)

#: µmol m-2 s-1 × m² × s -> t CO2: 1e-6 mol/µmol × 44.0095e-6 t/mol.
UMOL_TO_T_CO2 = 1e-6 * M_CO2 * 1e-6


def region_weights(
    polygons: Any,
    grid: Grid,
    *,
    name_column: str | None = None,
) -> xr.DataArray:
    """Fraction of each grid cell covered by each region polygon.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame or str or pathlib.Path
        Region polygons (GeoJSON, Shapefile, GeoPackage …) with a CRS; reprojected to the grid's
        working CRS (the grid CRS, or an equal-area projection for geographic grids). Rows sharing
        a name are merged.
    grid : inversion.Grid
    name_column : str, optional
        Column with region names (default: the row index).

    Returns
    -------
    xarray.DataArray
        (region, y, x) fractions in [0, 1] [1], with a ``region_area_m2`` coordinate (polygon area
        [m²] in the working CRS) and ``inside_fraction`` (share of each polygon inside the domain).

    Raises
    ------
    ValueError
        If the polygons have no CRS, or a region does not intersect the grid (names listed).
    KeyError
        If ``name_column`` is missing.
    """
    import geopandas as gpd

    if isinstance(polygons, str | Path):
        path = Path(polygons)
        if not path.exists():
            raise FileNotFoundError(f"region file {str(path)!r} does not exist")
        gdf = gpd.read_file(path)
        where = str(path)
    else:
        gdf = polygons
        where = "polygons"
    if gdf.crs is None:
        raise ValueError(f"{where}: the polygons have no CRS; set one with .set_crs('EPSG:…')")
    if name_column is not None and name_column not in gdf.columns:
        raise KeyError(
            f"{where}: name_column {name_column!r} not found; columns {list(gdf.columns)}"
        )
    names = (gdf[name_column] if name_column else pd.Series(gdf.index, index=gdf.index)).astype(str)
    gdf = gpd.GeoDataFrame(
        {"region": names.to_numpy()}, geometry=gdf.geometry.to_numpy(), crs=gdf.crs
    )
    gdf = gdf[~gdf.geometry.is_empty & gdf.geometry.notna()]
    gdf["geometry"] = shapely.make_valid(gdf.geometry.to_numpy())
    if gdf["region"].duplicated().any():
        gdf = gdf.dissolve(by="region", sort=False).reset_index()
    wcrs = working_crs(grid)
    geoms = gdf.to_crs(wcrs).geometry.to_numpy()
    cells = target_cells(grid, wcrs)
    cell_area = shapely.area(cells)
    i_reg, i_cell = shapely.STRtree(cells).query(geoms, predicate="intersects")
    overlap = shapely.area(shapely.intersection(geoms[i_reg], cells[i_cell]))
    frac = np.zeros((len(geoms), grid.size))
    np.add.at(frac, (i_reg, i_cell), overlap / cell_area[i_cell])
    frac = np.clip(frac, 0.0, 1.0)
    poly_area = shapely.area(geoms)
    inside = np.bincount(i_reg, weights=overlap, minlength=len(geoms)) / poly_area
    miss = [n for n, f in zip(gdf["region"], inside, strict=True) if f <= 0]
    if miss:
        raise ValueError(
            f"{where}: {len(miss)} region(s) do not intersect the grid domain "
            f"{tuple(round(float(b), 6) for b in grid.bounds)} "
            f"({grid.crs.name}): {miss[:10]}; check the polygons' CRS or extend the grid"
        )
    partial = inside < 1 - 1e-6
    if partial.any():
        log.warning(
            "%s: %d region(s) extend beyond the grid (inside fractions %s)",
            where,
            int(partial.sum()),
            np.round(inside[partial], 3).tolist(),
        )
    da = flux_on_grid(
        frac.reshape(len(geoms), *grid.shape),
        grid,
        ("region", "y", "x"),
        coords={
            "region": ("region", list(gdf["region"])),
            "region_area_m2": ("region", poly_area, {"units": "m2"}),
            "inside_fraction": ("region", inside, {"units": "1"}),
        },
        name="region_fraction",
        attrs={"units": "1", "long_name": "fraction of cell area inside region", "source": where},
    )
    return da


@dataclass(frozen=True, eq=False)
class AggregationWeights:
    """Linear aggregates of the flux state in t CO2.

    Attributes
    ----------
    matrix : scipy.sparse.csr_array
        (k, n_state): ``matrix @ x`` is the emission [t CO2] of each aggregate for a state ``x``
        whose flux block is in µmol m-2 s-1 (extra blocks get weight 0).
    labels : pandas.DataFrame
        k rows: ``region``, ``sector`` ("all" unless by sector), ``day`` (UTC date, "all" unless
        by day).
    """

    matrix: sp.csr_array
    labels: pd.DataFrame


def aggregation_weights(
    state: StateVector,
    fractions: xr.DataArray,
    *,
    by_sector: bool = False,
    by_day: bool = False,
) -> AggregationWeights:
    """Weights turning the flux state into regional totals [t CO2] over the state period.

    weight(region, s, t, y, x) = frac · area [m²] · bin seconds [s] · 1e-6 [mol/µmol] ·
    44.0095e-6 [t/mol], with areas ``state.grid.cell_area``.

    Parameters
    ----------
    state : inversion.StateVector
    fractions : xarray.DataArray
        (region, y, x) cell fractions from :func:`region_weights` on ``state.grid``.
    by_sector : bool
        One aggregate per region and sector.
    by_day : bool
        One aggregate per region (and sector) and UTC day; state bins must not cross midnight.

    Raises
    ------
    inversion.GridMismatchError
        If ``fractions`` is not on ``state.grid``.
    ValueError
        If ``by_day`` and a state bin crosses a UTC day boundary.
    """
    grid, tax = state.grid, state.time
    grid.check_dataarray(fractions, "fractions")
    if "region" not in fractions.dims:
        fractions = fractions.expand_dims(region=["region"])
    fr = fractions.transpose("region", "y", "x").values.reshape(fractions.sizes["region"], -1)
    regions = [str(r) for r in fractions["region"].values]
    ns, nt = len(state.sectors), tax.nt
    if by_day:
        day0 = tax.starts.astype("datetime64[D]")
        day1 = (tax.ends - np.timedelta64(1, "ns")).astype("datetime64[D]")
        if (day0 != day1).any():
            bad = int(np.flatnonzero(day0 != day1)[0])
            raise ValueError(
                f"by_day: state bin {tax.starts[bad]} – {tax.ends[bad]} crosses a UTC day "
                "boundary; use bins that divide days"
            )
        days, t_group = np.unique(day0, return_inverse=True)
    else:
        days, t_group = np.array(["all"]), np.zeros(nt, dtype=int)
    nd = len(days)
    s_groups = ns if by_sector else 1
    r_idx, c_idx = np.nonzero(fr)
    w_cell = fr[r_idx, c_idx] * grid.cell_area.ravel()[c_idx] * UMOL_TO_T_CO2
    s = np.arange(ns)[None, :, None]
    t = np.arange(nt)[None, None, :]
    r = r_idx[:, None, None]
    c = c_idx[:, None, None]
    shape = (r_idx.size, ns, nt)
    cols = (s * nt + t) * grid.size + c
    sg = s if by_sector else np.zeros_like(s)
    rows = (r * s_groups + sg) * nd + t_group[t]
    vals = w_cell[:, None, None] * tax.seconds[None, None, :]
    k = len(regions) * s_groups * nd
    mat = sp.csr_array(
        (
            np.broadcast_to(vals, shape).ravel(),
            (np.broadcast_to(rows, shape).ravel(), np.broadcast_to(cols, shape).ravel()),
        ),
        shape=(k, state.size),
    )
    sec_labels = list(state.sectors) if by_sector else ["all"]
    day_labels = [str(d) for d in days]
    labels = pd.DataFrame(
        [(rg, sc, dy) for rg in regions for sc in sec_labels for dy in day_labels],
        columns=["region", "sector", "day"],
    )
    return AggregationWeights(matrix=mat, labels=labels)
