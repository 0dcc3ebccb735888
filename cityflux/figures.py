"""PNG figures of a run: flux maps, uncertainty reduction, city totals and observation fit.

Uses matplotlib's non-interactive Agg canvas (no global backend switch); files are written
atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cityflux.outputs import atomic_write
from cityflux.pipeline import RunResult

__all__ = ["write_figures"]


def _save(fig: Figure, path: Path) -> Path:
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))


def _mean_map(city, x: np.ndarray) -> np.ndarray:
    flux = x[city.state.slice("flux")].reshape(city.state.flux_shape)
    w = city.time.seconds / city.time.seconds.sum()
    return np.einsum("stij,t->ij", flux, w)


def write_figures(result: RunResult, out_dir: Path) -> dict[str, Path]:
    """Write ``maps.png``, ``uncertainty_reduction.png``, ``totals.png``, ``obs_fit.png``."""
    city, post = result.case, result.posterior
    geo = city.grid.is_geographic
    scale, unit = (1.0, "deg") if geo else (1000.0, "km")
    ext = np.array(city.grid.bounds)[[0, 2, 1, 3]] / scale
    paths = {}

    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    maps = {
        "prior": _mean_map(city, city.x_prior),
        "posterior": _mean_map(city, post.mean),
    }
    if city.x_truth is not None:
        maps = {"truth": _mean_map(city, city.x_truth), **maps}
    else:
        axes[-1].set_axis_off()
    vmax = float(np.percentile(next(iter(maps.values())), 99.5)) or 1.0
    for ax, (name, m) in zip(axes, maps.items(), strict=False):
        im = ax.imshow(m, origin="lower", extent=ext, vmin=0, vmax=vmax, cmap="magma")
        ax.set_title(f"{name} (period mean, all sectors)")
        ax.set_xlabel(f"x [{unit}]")
    axes[0].set_ylabel(f"y [{unit}]")
    fig.colorbar(im, ax=axes, label="CO2 flux [µmol m-2 s-1]", shrink=0.9)
    paths["maps.png"] = _save(fig, out_dir / "maps.png")

    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.subplots()
    flux = slice(0, city.state.n_flux)
    prior_var = city.B.diag()[flux].reshape(city.state.flux_shape).sum(axis=(0, 1))
    post_var = (post.std[flux] ** 2).reshape(city.state.flux_shape).sum(axis=(0, 1))
    red = 1.0 - np.sqrt(post_var / prior_var)
    im = ax.imshow(
        red, origin="lower", extent=ext, vmin=0, vmax=max(float(red.max()), 0.01), cmap="viridis"
    )
    kinds = city.obs["kind"].values.astype(str)
    x, y = city.grid.to_xy(city.obs["lon"].values, city.obs["lat"].values)
    for k, mk in (("tower", "^"), ("column", "."), ("lidar_path", "x"), ("lidar_profile", "+")):
        sel = kinds == k
        if sel.any():
            ax.scatter(x[sel] / scale, y[sel] / scale, s=12, marker=mk, c="w", label=k)
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title("uncertainty reduction per cell (1 - σ_post/σ_prior)")
    ax.set_xlabel(f"x [{unit}]")
    ax.set_ylabel(f"y [{unit}]")
    fig.colorbar(im, ax=ax)
    paths["uncertainty_reduction.png"] = _save(fig, out_dir / "uncertainty_reduction.png")

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    t = result.totals
    daily = t[(t.index > 0) & (t["sector"] == "all")].iloc[:25]
    if daily.empty:
        daily = t.iloc[:1]
    pos = np.arange(len(daily))
    prior_ci = 1.96 * daily["prior_std"].to_numpy() / 1000
    post_ci = 1.96 * daily["posterior_std"].to_numpy() / 1000
    ax.bar(
        pos - 0.2,
        daily["prior"] / 1000,
        0.4,
        yerr=prior_ci,
        label="prior (95 %)",
        color="0.7",
        capsize=3,
    )
    ax.bar(
        pos + 0.2,
        daily["posterior"] / 1000,
        0.4,
        yerr=post_ci,
        label="posterior (95 %)",
        color="tab:blue",
        capsize=3,
    )
    if "truth" in daily:
        ax.plot(pos, daily["truth"] / 1000, "k_", markersize=18, mew=2, label="truth")
    ticks = daily["region"] + " " + daily["period"].str.replace("T00:00Z", "")
    ax.set_xticks(pos, ticks, rotation=30, fontsize=7, ha="right")
    ax.set_ylabel("total [kt CO2]")
    ax.set_title("totals with 95 % intervals")
    ax.legend(fontsize=8)
    paths["totals.png"] = _save(fig, out_dir / "totals.png")

    fig = Figure(figsize=(10, 3.5), layout="constrained")
    axes = fig.subplots(1, len(city.kinds), squeeze=False)[0]
    fit_prior = city.H @ city.x_prior
    fit_post = city.H @ post.mean
    for ax, k in zip(axes, city.kinds, strict=True):
        sel = kinds == k
        lo, hi = float(city.y[sel].min()), float(city.y[sel].max())
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.scatter(city.y[sel], fit_prior[sel], s=5, c="0.6", label="prior")
        ax.scatter(city.y[sel], fit_post[sel], s=5, c="tab:blue", label="posterior")
        ax.set_title(k)
        ax.set_xlabel("observed y [ppm]")
    axes[0].set_ylabel("modelled H·x (flux + offset) [ppm]")
    axes[0].legend(fontsize=8)
    paths["obs_fit.png"] = _save(fig, out_dir / "obs_fit.png")
    return paths
