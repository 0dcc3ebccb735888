"""Rich tables of the command line: QC report, real-data totals, ``inventory summarize``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from rich.console import Console
from rich.table import Table

__all__ = [
    "kind_table",
    "native_region_fractions",
    "qc_table",
    "real_totals_table",
    "summarize_inventory_command",
]

EXIT_CONFIG = 2


def qc_table(qc: dict) -> Table:
    """One row per QC source: read, dropped (by reason), averaged, kept."""
    table = Table(title="Observation quality control \\[records]")
    for col in ("source", "read", "dropped", "reasons", "averaged", "kept"):
        table.add_column(col, justify="left" if col in ("source", "reasons") else "right")
    for s in qc["sources"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in s["dropped"].items() if v) or "-"
        table.add_row(
            Path(str(s["source"])).name if "/" in str(s["source"]) else str(s["source"]),
            str(s["read"]), str(sum(s["dropped"].values())), reasons, str(s["averaged"]),
            str(s["kept"]),
        )  # fmt: skip
    table.caption = f"{qc['n_kept']} observations in the inversion"
    return table


def kind_table(result) -> Table:
    """The headline total [kt CO2]: truth (synthetic), prior, each kind alone and combined."""
    c = result.diagnostics["city_total_t"]
    table = Table(title=f"{c['region']} total over the period \\[kt CO2]")
    for col in ("estimate", "total", "± std (k=1)", "error reduction"):
        table.add_column(col, justify="right" if col != "estimate" else "left")
    if "truth" in c:
        table.add_row("truth", f"{c['truth'] / 1e3:.2f}", "", "")
    table.add_row("prior", f"{c['prior'] / 1e3:.2f}", f"{c['prior_std'] / 1e3:.2f}", "")
    for r in result.by_kind:
        name = "combined" if len(r.kinds) > 1 else f"{r.kinds[0]} only"
        table.add_row(
            f"posterior: {name}", f"{r.posterior / 1e3:.2f}", f"{r.posterior_std / 1e3:.2f}",
            f"{100 * r.error_reduction:.0f} %",
        )  # fmt: skip
    return table


def real_totals_table(totals: pd.DataFrame, max_rows: int = 40) -> Table:
    """Prior and posterior totals \\[t CO2] per domain/region, sector and period."""
    table = Table(title="Totals over the period \\[t CO2]")
    for col in ("region", "sector", "period", "prior \\[t CO2]", "posterior \\[t CO2]",
                "± std \\[t CO2]", "error reduction"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("region", "sector", "period") else "right")
    for _, r in totals.head(max_rows).iterrows():
        red = 1.0 - r["posterior_std"] / r["prior_std"] if r["prior_std"] > 0 else np.nan
        table.add_row(
            str(r["region"]), str(r["sector"]), str(r["period"]), f"{r['prior']:,.6g}",
            f"{r['posterior']:,.6g}", f"{r['posterior_std']:,.4g}", f"{100 * red:.0f} %",
        )  # fmt: skip
    if len(totals) > max_rows:
        table.caption = f"first {max_rows} of {len(totals)} rows; all in totals.csv"
    return table


def native_region_fractions(da: xr.DataArray, path: Path, name_column: str | None) -> xr.DataArray:
    """(region, y, x) area fractions of the inventory's native cells inside each polygon [1].

    Cells (edges ``x_lo``/``x_hi``/``y_lo``/``y_hi`` in the inventory CRS) and polygons are
    projected to a Lambert azimuthal equal-area projection centred on the polygons.
    """
    import geopandas as gpd
    import pyproj
    import shapely

    gdf = gpd.read_file(path)
    if gdf.crs is None:
        raise ValueError(f"{path}: the polygons have no CRS; set one (e.g. EPSG:4326)")
    if name_column is not None and name_column not in gdf.columns:
        raise KeyError(
            f"{path}: name column {name_column!r} not found; columns {list(gdf.columns)}"
        )
    names = (gdf[name_column] if name_column else pd.Series(gdf.index)).astype(str).to_numpy()
    lon0, lat0 = gdf.to_crs("EPSG:4326").union_all().centroid.coords[0]
    laea = pyproj.CRS.from_proj4(f"+proj=laea +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m")
    gm = da.attrs.get("grid_mapping", "spatial_ref")
    crs = pyproj.CRS.from_cf(da[gm].attrs) if gm in da.coords else pyproj.CRS("EPSG:4326")
    xl, xh = da["x_lo"].values, da["x_hi"].values
    yl, yh = da["y_lo"].values, da["y_hi"].values
    ny, nx = yl.size, xl.size
    boxes = shapely.box(
        np.broadcast_to(xl, (ny, nx)).ravel(), np.broadcast_to(yl[:, None], (ny, nx)).ravel(),
        np.broadcast_to(xh, (ny, nx)).ravel(), np.broadcast_to(yh[:, None], (ny, nx)).ravel(),
    )  # fmt: skip
    seg = 0.05 if crs.is_geographic else 5000.0
    cells = gpd.GeoSeries(shapely.segmentize(boxes, seg), crs=crs).to_crs(laea).to_numpy()
    regions = gdf.to_crs(laea).geometry.to_numpy()
    regions = shapely.make_valid(regions)
    i_reg, i_cell = shapely.STRtree(cells).query(regions, predicate="intersects")
    overlap = shapely.area(shapely.intersection(regions[i_reg], cells[i_cell]))
    frac = np.zeros((len(regions), ny * nx))
    np.add.at(frac, (i_reg, i_cell), overlap / shapely.area(cells)[i_cell])
    out = xr.DataArray(
        np.clip(frac, 0, 1).reshape(len(regions), ny, nx),
        dims=("region", "y", "x"), coords={"region": names},
    )  # fmt: skip
    return out.groupby("region", squeeze=False).sum() if len(set(names)) < len(names) else out


def summarize_inventory_command(console: Console, args: argparse.Namespace) -> int:
    """``cityflux inventory summarize``: table of totals \\[t CO2], optionally written as CSV."""
    import priors
    from cityflux.outputs import atomic_write

    opts = {} if args.bbox is None else {"bbox": tuple(args.bbox)}
    try:
        da = priors.read_inventory(args.path, format=args.format, **opts)
        regions = None
        if args.regions is not None:
            if not args.regions.exists():
                raise FileNotFoundError(f"--regions: file {str(args.regions)!r} does not exist")
            regions = native_region_fractions(da, args.regions, args.name_column)
        df = priors.summarize_inventory(da, regions)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return EXIT_CONFIG
    table = Table(title=f"Inventory totals: {args.path.name}")
    for col in ("sector", "region", "month", "duration [s]", "emission \\[t CO2]"):
        table.add_column(col, justify="left" if col in ("sector", "region", "month") else "right")
    for _, r in df.iterrows():
        table.add_row(
            r["sector"], r["region"], r["month"], f"{r['duration_s']:.0f}",
            f"{r['emission_t_CO2']:.10g}",
        )  # fmt: skip
    first = df["sector"].iloc[0] if len(df) else ""
    for region, g in df.groupby("region", sort=False):
        dur = g.loc[g["sector"] == first, "duration_s"].sum()
        tot = g["emission_t_CO2"].sum()
        table.add_row("all", str(region), "total", f"{dur:.0f}", f"{tot:.10g}", style="bold")
    console.print(table, soft_wrap=True)
    if args.csv is not None:
        atomic_write(args.csv, lambda p: df.to_csv(p, index=False, float_format="%.12g"))
        console.print(f"wrote {args.csv}")
    return 0
