"""Figures of a run, drawn from what the run folder holds (posterior.nc, the CSV tables):
flux maps on longitude/latitude with the region outlines and the observing network, the
uncertainty reduction, totals with 95 % intervals, the fit to the observations, the
uncertainty budget and the verification scores.

:class:`RunView` gathers those contents either from a finished run in memory
(:meth:`RunView.from_outputs`) or from a run folder (:meth:`RunView.from_dir`), so the figures
written at the end of a run and those of ``cityflux report RUN_DIR`` are the same.
:func:`render_figures` returns PNG bytes (matplotlib's Agg canvas, no global backend);
:func:`write_figures` writes them atomically.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from cityflux._files import atomic_write
from inversion import FLUX_UNITS, Grid

__all__ = ["KIND_STYLE", "RunView", "render_figures", "write_figures"]

logger = logging.getLogger(__name__)

#: Marker, colour and label of each observation kind on the maps.
KIND_STYLE = {
    "tower": {"marker": "^", "color": "#d62728", "label": "tower"},
    "column": {"marker": "o", "color": "#1f77b4", "label": "satellite column"},
    "lidar_path": {"marker": "D", "color": "#2ca02c", "label": "lidar path"},
    "lidar_profile": {"marker": "P", "color": "#9467bd", "label": "lidar profile"},
}

# Cells above which maps are drawn from a block-averaged field (drawing time, file size).
_MAX_CELLS = 250_000
_DPI = 100


@dataclass
class RunView:
    """What the figures and the report show, from a run folder or a finished run.

    Attributes
    ----------
    name : str
        The configuration's ``name``.
    posterior : xarray.Dataset
        posterior.nc's content (fluxes [µmol m-2 s-1], cell_area, city_mask, crs, time_bnds).
    totals : pandas.DataFrame
        totals.csv [t CO2].
    observations : pandas.DataFrame
        observations.csv (positions, kinds, observed and modelled values [ppm]).
    diagnostics : dict
        diagnostics.json.
    budget, verification, design : pandas.DataFrame or None
        budget.csv, verification.csv, design.csv when present.
    regions_path : pathlib.Path or None
        Region polygons (outlines are drawn from them when the file exists, else from the
        city mask).
    """

    name: str
    posterior: xr.Dataset
    totals: pd.DataFrame
    observations: pd.DataFrame
    diagnostics: dict
    budget: pd.DataFrame | None = None
    verification: pd.DataFrame | None = None
    design: pd.DataFrame | None = None
    regions_path: Path | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_outputs(
        cls,
        result: Any,
        posterior: xr.Dataset,
        observations: pd.DataFrame,
        diagnostics: dict,
        budget: pd.DataFrame | None = None,
        verification: pd.DataFrame | None = None,
    ) -> RunView:
        """The view of a run whose outputs are being written (no file is read back)."""
        regions = result.config.regions.path if result.config.regions is not None else None
        return cls(
            name=result.config.name, posterior=posterior, totals=result.totals,
            observations=observations, diagnostics=diagnostics, budget=budget,
            verification=verification, regions_path=regions,
        )  # fmt: skip

    @classmethod
    def from_dir(cls, run_dir: str | Path) -> RunView:
        """The view of a finished run folder.

        Raises
        ------
        FileNotFoundError
            If posterior.nc, totals.csv, observations.csv or diagnostics.json is missing.
        """
        d = Path(run_dir)
        need = ("posterior.nc", "totals.csv", "observations.csv", "diagnostics.json")
        missing = [n for n in need if not (d / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{d}: not a complete cityflux run folder, {missing} missing; give the folder "
                "a run wrote (cityflux run / demo)"
            )
        with xr.open_dataset(d / "posterior.nc") as ds:
            post = ds.load()
        diag = json.loads((d / "diagnostics.json").read_text(encoding="utf-8"))
        cfg = _read_yaml(d / "config.resolved.yaml")
        regions = (cfg.get("regions") or {}).get("path")

        def opt(name: str) -> pd.DataFrame | None:
            return pd.read_csv(d / name) if (d / name).is_file() else None

        return cls(
            name=str(cfg.get("name", d.name)), posterior=post, totals=pd.read_csv(d / "totals.csv"),
            observations=pd.read_csv(d / "observations.csv"), diagnostics=diag,
            budget=opt("budget.csv"), verification=opt("verification.csv"),
            design=opt("design.csv"), regions_path=Path(regions) if regions else None,
        )  # fmt: skip

    # ------------------------------------------------------------------ geometry
    def grid(self) -> Grid:
        """The state grid, rebuilt from posterior.nc's coordinates and CRS."""
        ds = self.posterior
        return Grid.from_coords(ds["x"].values, ds["y"].values, ds["crs"].attrs["crs_wkt"])

    def is_synthetic(self) -> bool:
        """True when the run holds a synthetic truth."""
        return "flux_truth" in self.posterior


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


# ---------------------------------------------------------------------------------- maps
def _period_mean(ds: xr.Dataset, name: str) -> np.ndarray:
    """Sector total, mean over the period weighted by bin length [µmol m-2 s-1] (y, x)."""
    b = ds["time_bnds"].values
    w = (b[:, 1] - b[:, 0]) / np.timedelta64(1, "s")
    w = w / w.sum()
    return np.einsum("styx,t->yx", ds[name].values, w)


def _std_map(ds: xr.Dataset, name: str) -> np.ndarray:
    """Per time step std of the sector total (sectors in quadrature), averaged over the period."""
    b = ds["time_bnds"].values
    w = (b[:, 1] - b[:, 0]) / np.timedelta64(1, "s")
    w = w / w.sum()
    return np.einsum("tyx,t->yx", np.sqrt((ds[name].values ** 2).sum(axis=0)), w)


@dataclass
class _MapFrame:
    lon_c: np.ndarray  # cell corners
    lat_c: np.ndarray
    lon: np.ndarray  # cell centres
    lat: np.ndarray
    mask: np.ndarray
    outlines: list[np.ndarray]
    step: int  # block size of the drawn fields (1: every cell)

    def coarse(self, field: np.ndarray) -> np.ndarray:
        if self.step == 1:
            return field
        s = self.step
        ny, nx = (field.shape[0] // s) * s, (field.shape[1] // s) * s
        return field[:ny, :nx].reshape(ny // s, s, nx // s, s).mean(axis=(1, 3))


def _frame(view: RunView) -> _MapFrame:
    grid = view.grid()
    step = max(1, int(np.ceil(np.sqrt(grid.size / _MAX_CELLS))))
    xe, ye = grid.x_edges[::step], grid.y_edges[::step]
    if grid.is_geographic:
        lon_c, lat_c = np.meshgrid(xe, ye)
    else:
        lon_c, lat_c = grid.to_lonlat(*np.meshgrid(xe, ye))
    mask = view.posterior["city_mask"].values.astype(bool)
    return _MapFrame(lon_c, lat_c, grid.lon, grid.lat, mask, _outlines(view), step)


def _outlines(view: RunView) -> list[np.ndarray]:
    """Region boundaries as (n, 2) lon/lat arrays, from the polygon file when it exists."""
    path = view.regions_path
    if path is None or not Path(path).exists():
        return []
    try:
        import geopandas as gpd

        gdf = gpd.read_file(path).to_crs("EPSG:4326")
    except (OSError, ValueError) as err:  # pragma: no cover - unreadable file after the run
        logger.warning("region outlines: cannot read %s (%s); drawing the city mask", path, err)
        return []
    lines = []
    for geom in gdf.boundary.explode(index_parts=False):
        if geom is not None and not geom.is_empty:
            lines.append(np.asarray(geom.coords)[:, :2])
    return lines


def _draw_outlines(ax, frame: _MapFrame, color: str = "k") -> None:
    if frame.outlines:
        for line in frame.outlines:
            ax.plot(line[:, 0], line[:, 1], "-", color=color, lw=0.7)
    elif frame.mask.any() and not frame.mask.all():
        ax.contour(frame.lon, frame.lat, frame.mask.astype(float), levels=[0.5],
                   colors=color, linewidths=0.9)  # fmt: skip


def _draw_network(ax, obs: pd.DataFrame, legend: bool = False) -> None:
    for kind, style in KIND_STYLE.items():
        sel = obs[obs["kind"] == kind]
        if sel.empty:
            continue
        pos = sel[["lon", "lat"]].round(5).drop_duplicates()
        size = 10 if kind == "column" else 34
        ax.scatter(
            pos["lon"], pos["lat"], s=size, marker=style["marker"], facecolor=style["color"],
            edgecolor="white", linewidth=0.5, label=f"{style['label']} ({len(sel)} obs)", zorder=3,
        )  # fmt: skip
    if legend:
        ax.legend(loc="lower left", fontsize=7, framealpha=0.85)


def _map_panel(ax, fig, frame, field, title, cbar_label, outline="k", extend="neither", **kw):
    m = ax.pcolormesh(frame.lon_c, frame.lat_c, frame.coarse(field), **kw)
    _draw_outlines(ax, frame, outline)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("longitude [°E]", fontsize=8)
    ax.set_ylabel("latitude [°N]", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_aspect(1.0 / np.cos(np.radians(float(np.mean(frame.lat)))))
    ax.set_xlim(float(frame.lon_c.min()), float(frame.lon_c.max()))
    ax.set_ylim(float(frame.lat_c.min()), float(frame.lat_c.max()))
    cb = fig.colorbar(m, ax=ax, label=cbar_label, shrink=0.85, extend=extend)
    cb.ax.tick_params(labelsize=7)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _maps(view: RunView, frame: _MapFrame) -> bytes:
    ds = view.posterior
    prior, post = _period_mean(ds, "flux_prior"), _period_mean(ds, "flux_posterior")
    fields = [("prior", prior), ("posterior", post)]
    if view.is_synthetic():
        fields.insert(0, ("truth", _period_mean(ds, "flux_truth")))
    vmax = float(np.percentile(np.concatenate([f.ravel() for _, f in fields]), 99.5)) or 1.0
    vmin = min(0.0, float(np.percentile(post, 0.5)))
    n = len(fields) + 2
    ncol = 3 if n > 4 else 2
    nrow = -(-n // ncol)
    fig = Figure(figsize=(4.4 * ncol, 3.7 * nrow))  # fixed layout: much faster than constrained
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    fig.subplots_adjust(left=0.06, right=0.97, bottom=0.07, top=0.92, wspace=0.42, hspace=0.32)
    unit = f"CO2 flux [{FLUX_UNITS}]"
    for ax, (name, f) in zip(axes, fields, strict=False):
        _map_panel(ax, fig, frame, f, f"{name}: period mean, all sectors", unit, outline="c",
                   extend="max", cmap="magma", vmin=vmin, vmax=vmax)  # fmt: skip
    diff = post - prior
    lim = float(np.percentile(np.abs(diff), 99.5)) or 1.0
    i = len(fields)
    _map_panel(axes[i], fig, frame, diff, "posterior − prior", f"Δ flux [{FLUX_UNITS}]",
               cmap="RdBu_r", vmin=-lim, vmax=lim)  # fmt: skip
    std = _std_map(ds, "flux_posterior_std")
    _map_panel(axes[i + 1], fig, frame, std, "posterior std (per step, sectors in quadrature)",
               f"σ [{FLUX_UNITS}]", outline="w", extend="max", cmap="viridis", vmin=0.0,
               vmax=float(np.percentile(std, 99.0)) or 1.0)  # fmt: skip
    _draw_network(axes[i + 1], view.observations, legend=True)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(f"{view.name}: fluxes on the state grid (outline: reporting regions)", fontsize=10)
    return _png(fig)


def _reduction_map(
    view: RunView, frame: _MapFrame, title: str, label: str, cmap: str, size: tuple
) -> tuple[Figure, Any]:
    """A figure with the map of 1 − σ_post/σ_prior per cell and the network."""
    ds = view.posterior
    red = 1.0 - _std_map(ds, "flux_posterior_std") / _std_map(ds, "flux_prior_std")
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    _map_panel(ax, fig, frame, red, title, label, cmap=cmap, vmin=0.0,
               vmax=max(float(red.max()), 0.01))  # fmt: skip
    return fig, ax


def _reduction(view: RunView, frame: _MapFrame) -> bytes:
    fig, ax = _reduction_map(
        view, frame, "uncertainty reduction 1 − σ_post/σ_prior per cell",
        "uncertainty reduction [1]", "viridis", (6.4, 5.0),
    )  # fmt: skip
    _draw_network(ax, view.observations, legend=True)
    return _png(fig)


# ---------------------------------------------------------------------------------- charts
def _headline_rows(t: pd.DataFrame, limit: int = 25) -> pd.DataFrame:
    """Rows to chart: per-day region totals when there are any, else all-sector rows."""
    whole = t["period"].iloc[0]
    daily = t[(t["sector"] == "all") & (t["period"] != whole)]
    rows = daily if not daily.empty else t[t["sector"] == "all"]
    return rows.iloc[:limit] if not rows.empty else t.iloc[:limit]


def _short_period(p: str) -> str:
    return str(p).replace("T00:00Z", "")


def _totals(view: RunView) -> bytes:
    rows = _headline_rows(view.totals)
    pos = np.arange(len(rows))
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    z = 1.959964
    lognormal = "posterior_q025" in rows  # asymmetric quantiles of the log-normal posterior
    for off, col, lab, color in ((-0.2, "prior", "prior", "0.7"),
                                 (0.2, "posterior", "posterior", "tab:blue")):  # fmt: skip
        err = z * rows[f"{col}_std"] / 1000
        if lognormal and col == "posterior":
            err = np.vstack([rows[col] - rows["posterior_q025"],
                             rows["posterior_q975"] - rows[col]]) / 1000  # fmt: skip
            lab = "posterior median"
        ax.bar(pos + off, rows[col] / 1000, 0.4, yerr=err,
               label=f"{lab} (95 % interval)", color=color, capsize=3)  # fmt: skip
    if "truth" in rows:
        ax.plot(pos, rows["truth"] / 1000, "k_", markersize=18, mew=2, label="truth")
    ax.set_xticks(pos, rows["region"] + " " + rows["period"].map(_short_period), rotation=30,
                  fontsize=7, ha="right")  # fmt: skip
    ax.set_ylabel("total [kt CO2]")
    ax.set_title("totals with 95 % coverage intervals ("
                 + ("prior ±1.96 u; posterior: 2.5–97.5 % quantiles, log-normal)" if lognormal
                    else "±1.96 u)"), fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    return _png(fig)


def _kind_panels(obs: pd.DataFrame, height: float, top: float) -> tuple[Figure, Any, list]:
    """A figure with one panel per observation kind present (and the kinds)."""
    kinds = [k for k in KIND_STYLE if (obs["kind"] == k).any()]
    fig = Figure(figsize=(3.6 * max(len(kinds), 1), height))
    axes = fig.subplots(1, max(len(kinds), 1), squeeze=False)[0]
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.14, top=top, wspace=0.3)
    return fig, axes, kinds


def _obs_fit(view: RunView) -> bytes:
    obs = view.observations
    fig, axes, kinds = _kind_panels(obs, 3.6, 0.9)
    for ax, k in zip(axes, kinds, strict=False):
        sel = obs[obs["kind"] == k]
        lo, hi = float(sel["observed_ppm"].min()), float(sel["observed_ppm"].max())
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.scatter(sel["observed_ppm"], sel["prior_modelled_ppm"], s=5, c="0.6", label="prior")
        ax.scatter(sel["observed_ppm"], sel["posterior_modelled_ppm"], s=5,
                   c=KIND_STYLE[k]["color"], label="posterior")  # fmt: skip
        ax.set_title(f"{KIND_STYLE[k]['label']} ({len(sel)} obs)", fontsize=9)
        ax.set_xlabel("observed [ppm]")
    axes[0].set_ylabel("modelled H·x (flux + offset) [ppm]")
    axes[0].legend(fontsize=8)
    return _png(fig)


def _transport_ensemble(view: RunView) -> bytes:
    """Per observation kind: the transport-ensemble error (sqrt of the diagonal of R_ens)
    against the other error components, in time order."""
    obs = view.observations
    fig, axes, kinds = _kind_panels(obs, 3.4, 0.85)
    for ax, k in zip(axes, kinds, strict=False):
        sel = obs[obs["kind"] == k]
        ens = sel["transport_ensemble_ppm"].to_numpy()
        other = np.sqrt(np.maximum(sel["total_error_ppm"].to_numpy() ** 2 - ens**2, 0.0))
        i = np.arange(len(sel))
        ax.plot(i, other, ".", ms=3, color="0.5", label="other components")
        ax.plot(i, ens, ".", ms=3, color=SOURCE_COLORS["obs_transport_ensemble"],
                label="transport ensemble")  # fmt: skip
        ax.set_title(f"{KIND_STYLE[k]['label']}: rms ensemble {np.sqrt(np.mean(ens**2)):.2f} ppm",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("observation (time order)")
    axes[0].set_ylabel("1σ error [ppm]")
    axes[0].legend(fontsize=7)
    fig.suptitle("transport error from the ensemble (localised spread of H_m x) vs the rest of R",
                 fontsize=9)  # fmt: skip
    return _png(fig)


#: Colours of the budget's sources.
SOURCE_COLORS = {
    "prior_flux": "#7f7f7f",
    "prior_background_offsets": "#c7c7c7",
    "obs_instrument": "#1f77b4",
    "obs_calibration": "#17becf",
    "obs_transport": "#ff7f0e",
    "obs_representation": "#bcbd22",
    "obs_background": "#9467bd",
    "obs_transport_ensemble": "#d62728",
}


def _budget(view: RunView) -> bytes:
    b = view.budget
    t = view.totals
    whole = t["period"].iloc[0]
    keep = t[(t["period"] == whole)]["row"].iloc[:14].tolist()
    sub = b[b["row"].isin(keep)]
    table = sub.pivot_table(index="row", columns="source", values="share", sort=False)
    table = table.loc[[r for r in keep if r in table.index]]
    lab = t.set_index("row").loc[table.index]
    names = lab["region"] + " / " + lab["sector"]
    fig = Figure(figsize=(8.0, 0.42 * len(table) + 1.8), layout="constrained")
    ax = fig.subplots()
    left = np.zeros(len(table))
    types = dict(zip(b["source"], b["type"], strict=False))
    for src in table.columns:
        vals = 100.0 * table[src].to_numpy()
        ax.barh(np.arange(len(table)), vals, left=left, color=SOURCE_COLORS.get(src),
                label=f"{src} (type {types.get(src, '?')})")  # fmt: skip
        left += vals
    ax.set_yticks(np.arange(len(table)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the posterior variance [%]")
    ax.set_title(f"uncertainty budget of the whole-period totals ({_short_period(whole)})",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(table)),
              ncol=3)  # fmt: skip
    return _png(fig)


def _verification(view: RunView) -> bytes:
    v = view.verification
    whole = view.totals["period"].iloc[0]
    v = v[(v["period"] == whole) & (v["sector"] == "all")]
    if v.empty:
        v = view.verification.iloc[:20]
    fig = Figure(figsize=(10.0, 0.45 * len(v) + 1.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(v))
    labels = v["inventory"] + ": " + v["region"] + " / " + v["sector"]
    ax1.errorbar(v["posterior_t"] / 1000, y - 0.12, xerr=2 * v["posterior_u_t"] / 1000, fmt="o",
                 color="tab:blue", capsize=3, label="posterior ± U (k = 2)")  # fmt: skip
    ax1.errorbar(v["inventory_t"] / 1000, y + 0.12, xerr=2 * v["inventory_u_t"] / 1000, fmt="s",
                 color="tab:orange", capsize=3, label="inventory ± U (k = 2)")  # fmt: skip
    ax1.set_yticks(y, labels, fontsize=7)
    ax1.invert_yaxis()
    ax1.set_xlabel("total [kt CO2]")
    ax1.legend(fontsize=7)
    ax2.axvspan(-2, 2, color="tab:green", alpha=0.12, label="|ζ| ≤ 2")
    ax2.axvspan(-1, 1, color="tab:green", alpha=0.18, label="|E_n| ≤ 1")
    ax2.scatter(v["zeta"], y - 0.12, marker="o", color="k", label="ζ")
    ax2.scatter(v["En"], y + 0.12, marker="x", color="tab:red", label="E_n")
    lim = max(3.0, float(np.nanmax(np.abs(v[["zeta", "En"]].to_numpy()))) * 1.1)
    ax2.set_xlim(-lim, lim)
    ax2.axvline(0, color="0.5", lw=0.6)
    ax2.set_xlabel("score [1] (ISO 13528)")
    ax2.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"inventory verification, whole period ({_short_period(whole)})", fontsize=10)
    return _png(fig)


def design_map(view: RunView, design: pd.DataFrame, candidates: pd.DataFrame) -> bytes:
    """Map of the candidate additions, numbered by rank, over the current uncertainty
    reduction and network (PNG bytes)."""
    fig, ax = _reduction_map(
        view, _frame(view), "candidate additions ranked by the target's std reduction",
        "uncertainty reduction of the current network [1]", "Greys", (7.0, 5.4),
    )  # fmt: skip
    _draw_network(ax, view.observations)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    rank = dict(zip(design["candidate"], design["rank"], strict=False))
    for _, c in candidates.iterrows():
        style = KIND_STYLE.get(str(c["kind"]), KIND_STYLE["tower"])
        r = rank.get(c["name"])
        if c["kind"] == "lidar_path" and "lon0" in c and np.isfinite(c["lon0"]):
            ax.plot([c["lon0"], c["lon1"]], [c["lat0"], c["lat1"]], "-", color="gold", lw=2.5,
                    zorder=4, path_effects=None)  # fmt: skip
        elif c["kind"] == "column":
            ax.add_patch(Rectangle((c["lon_min"], c["lat_min"]), c["lon_max"] - c["lon_min"],
                                   c["lat_max"] - c["lat_min"], fill=False, ec="gold", lw=2,
                                   zorder=4))  # fmt: skip
        ax.scatter(c["lon"], c["lat"], s=90, marker=style["marker"], facecolor="gold",
                   edgecolor="k", zorder=5)  # fmt: skip
        ax.annotate(f"{r}" if r is not None else "–", (c["lon"], c["lat"]), fontsize=9,
                    xytext=(6, 6), textcoords="offset points", weight="bold", zorder=6)  # fmt: skip
    proxies = [
        Line2D([], [], ls="", marker=KIND_STYLE[k]["marker"], mfc="gold", mec="k", ms=9,
               label=f"candidate {KIND_STYLE[k]['label']} (number: rank)")
        for k in sorted(set(candidates["kind"]) & set(KIND_STYLE))
    ]  # fmt: skip
    network = ax.get_legend_handles_labels()[0]
    ax.legend(handles=proxies + network, fontsize=7, loc="lower left", framealpha=0.85)
    return _png(fig)


# ---------------------------------------------------------------------------------- entry
def render_figures(view: RunView) -> dict[str, bytes]:
    """PNG bytes of every figure the view supports, by file name.

    ``maps.png``, ``uncertainty_reduction.png``, ``totals.png``, ``obs_fit.png``, and
    ``budget.png`` / ``verification.png`` when the view has a budget / verification table,
    ``transport_ensemble.png`` when the observations carry a transport ensemble.
    """
    frame = _frame(view)
    out = {
        "maps.png": _maps(view, frame),
        "uncertainty_reduction.png": _reduction(view, frame),
        "totals.png": _totals(view),
        "obs_fit.png": _obs_fit(view),
    }
    if "transport_ensemble_ppm" in view.observations:
        out["transport_ensemble.png"] = _transport_ensemble(view)
    if view.budget is not None and not view.budget.empty:
        out["budget.png"] = _budget(view)
    if view.verification is not None and not view.verification.empty:
        out["verification.png"] = _verification(view)
    return out


def write_figures(figures: dict[str, bytes], out_dir: str | Path) -> dict[str, Path]:
    """Write PNG bytes (from :func:`render_figures`) atomically into ``out_dir``."""
    out = Path(out_dir)
    return {
        name: atomic_write(out / name, lambda p, data=data: p.write_bytes(data))
        for name, data in figures.items()
    }
