"""Stitching a batch's windows into one result: posterior.nc, totals.csv, windows.csv,
diagnostics.json, sealed by the batch's manifest.json.

Each window contributes its core only: the time bins of ``posterior.nc`` inside the core, and
the totals of the core (``core_totals.csv``, computed by the window from its own posterior so
that their uncertainty is exact). Rows for the whole batch period sum the windows' cores. The
covariance between windows is not estimated (they are separate inversions, but their errors
correlate through the prior's time correlation and shared systematic errors), so their
``posterior_std`` is the conservative bound for fully correlated windows (the sum of the
windows' std); ``posterior_std_if_independent`` adds the variances instead.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from cityflux._files import atomic_write
from cityflux._runfolder import MANIFEST, commit, new_staging, read_manifest, write_json
from cityflux.batch import CORE_TOTALS, H_CACHE, WINDOWS_DIR, Window, WindowOutcome
from cityflux.config import CityfluxConfig, config_hash

__all__ = ["mark_incomplete", "stitch"]

_STATIC_DIMS = {"y", "x"}
_SUMMED = ("prior", "posterior", "truth")
_QUADRATURE = ("prior_std", "posterior_std")
WHOLE_NOTE = (
    "rows with window 'all' sum the windows' core totals; the covariance between windows is "
    "not estimated, so their prior_std / posterior_std are the bound for fully correlated "
    "windows (sum of the windows' std) and *_std_if_independent add the variances"
)


def _core(ds: xr.Dataset, w: Window) -> xr.Dataset:
    starts = pd.DatetimeIndex(ds["time"].values)
    keep = np.flatnonzero((starts >= w.core_start) & (starts < w.core_end))
    return ds.isel(time=keep)


def _posterior(windows: list[Window], wdir: Path, attrs: dict[str, Any]) -> xr.Dataset:
    parts = []
    for w in windows:
        with xr.open_dataset(wdir / w.name / "posterior.nc") as ds:
            parts.append(_core(ds.load(), w))
    first = parts[0]
    timed = [v for v in first.data_vars if "time" in first[v].dims]
    per_window = [
        v for v in first.data_vars
        if "time" not in first[v].dims and first[v].ndim and not set(first[v].dims) <= _STATIC_DIMS
    ]  # fmt: skip
    static = [v for v in first.data_vars if v not in timed and v not in per_window]
    out = xr.concat([p[timed] for p in parts], dim="time", data_vars="all", join="outer")
    for v in static:
        out[v] = first[v]
    for v in per_window:
        out[v] = xr.concat([p[v] for p in parts], dim="window", join="outer")
    out = out.assign_coords(window=np.arange(len(windows)))
    sizes = [p.sizes["time"] for p in parts]
    out["window_index"] = ("time", np.repeat(np.arange(len(windows)), sizes), {
        "long_name": "batch window whose core this time bin comes from"})  # fmt: skip
    for v in out.variables:
        out[v].encoding = {}
    out.attrs = {**first.attrs, **attrs}
    return out


def _totals(windows: list[Window], wdir: Path, whole_label: str) -> pd.DataFrame:
    t = pd.concat(
        [pd.read_csv(wdir / w.name / CORE_TOTALS) for w in windows], ignore_index=True
    ).drop(columns=["row"])
    t["window"] = t["window"].astype(str)
    core = t[t["period"].str.contains("/")]
    keys = ["region", "sector"]
    agg: dict[str, Any] = {c: "sum" for c in (*_SUMMED, *_QUADRATURE) if c in t}
    whole = core.groupby(keys, sort=False).agg(agg).reset_index()
    var = core.assign(**{c: core[c] ** 2 for c in _QUADRATURE}).groupby(keys, sort=False)
    indep = np.sqrt(var[list(_QUADRATURE)].sum()).reset_index(drop=True)
    whole.insert(0, "window", "all")
    whole["period"] = whole_label
    whole["posterior_expanded_uncertainty_k2"] = 2.0 * whole["posterior_std"]
    # columns that do not add up over windows (a log-normal run's quantiles, mean, mode) are
    # left empty in the whole-period rows
    out = pd.concat([whole.reindex(columns=t.columns), t], ignore_index=True)
    for c in _QUADRATURE:
        out[f"{c}_if_independent"] = np.nan
        out.loc[: len(whole) - 1, f"{c}_if_independent"] = indep[c].to_numpy()
    return out


def _window_table(windows: list[Window], wdir: Path, hashes: dict[str, str]) -> pd.DataFrame:
    rows = []
    fmt = "%Y-%m-%dT%H:%MZ"
    for w in windows:
        d = json.loads((wdir / w.name / "diagnostics.json").read_text(encoding="utf-8"))
        rows.append(
            {
                "window": w.index, "name": w.name, "start": w.start.strftime(fmt),
                "end": w.end.strftime(fmt), "core_start": w.core_start.strftime(fmt),
                "core_end": w.core_end.strftime(fmt), "n_obs": d["n_obs"],
                "n_state": d["n_state"], "chi2": d["chi2"], "dofs": d["dofs"],
                "solver": d["solver_method"], "run_s": float(sum(d["timings_s"].values())),
                "config_hash": hashes[w.name],
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def _checksums(windows: list[Window], wdir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for w in windows:
        m = read_manifest(wdir / w.name) or {}
        for k, v in m.get("input_checksums", {}).items():
            out[f"{w.name}:{k}" if k.startswith("synthetic_") else k] = v
    return out


def stitch(
    cfg: CityfluxConfig,
    windows: list[Window],
    hashes: dict[str, str],
    out: Path,
    *,
    config_text: str | None = None,
) -> dict[str, Path]:
    """Write the stitched outputs of finished windows into the batch folder ``out``.

    Returns
    -------
    dict of str to pathlib.Path
        Every file written, ``manifest.json`` included.
    """
    wdir = out / WINDOWS_DIR
    fmt = "%Y-%m-%dT%H:%MZ"
    whole = f"{windows[0].core_start.strftime(fmt)}/{windows[-1].core_end.strftime(fmt)}"
    chash = config_hash(cfg)
    checksums = _checksums(windows, wdir)
    table = _window_table(windows, wdir, hashes)
    staging = new_staging(out)
    try:
        attrs = {
            "title": f"cityflux batch posterior CO2 flux: {cfg.name}",
            "config_hash": chash,
            "input_checksums": json.dumps(checksums, sort_keys=True),
            "batch": f"{len(windows)} windows of {cfg.batch.window} (overlap {cfg.batch.overlap},"
            f" lag {cfg.batch.lag}); each time bin from its window's core",
        }
        ds = _posterior(windows, wdir, attrs)
        enc = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars if ds[v].ndim >= 2}
        for v in ("time", "time_bnds"):
            if v in ds.variables:
                enc[v] = {"units": "hours since 1970-01-01 00:00:00", "calendar": "standard"}
        ds.to_netcdf(staging / "posterior.nc", format="NETCDF4", encoding=enc, engine="netcdf4")
        _totals(windows, wdir, whole).to_csv(
            staging / "totals.csv", index=False, float_format="%.10g"
        )
        table.to_csv(staging / "windows.csv", index=False, float_format="%.10g")
        diag = {
            "n_windows": len(windows),
            "period": whole,
            "window": cfg.batch.window,
            "overlap": cfg.batch.overlap,
            "lag": cfg.batch.lag,
            "overlaps": "each window is solved over its core widened by overlap and lag; only "
            "its core enters posterior.nc and totals.csv",
            "totals_combination": WHOLE_NOTE,
            "n_obs": int(table["n_obs"].sum()),
            "chi2_by_window": table["chi2"].tolist(),
            "dofs_by_window": table["dofs"].tolist(),
            "sum_of_window_run_s": float(table["run_s"].sum()),
            "config_hash": chash,
            "input_checksums": checksums,
        }
        (staging / "diagnostics.json").write_text(json.dumps(diag, indent=2), encoding="utf-8")
        resolved = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
        (staging / "config.resolved.yaml").write_text(resolved, encoding="utf-8")
        if config_text is not None:
            (staging / "config.yaml").write_text(config_text, encoding="utf-8")
        extra = {
            "batch": cfg.batch.model_dump(mode="json", exclude={"cluster"}),
            "windows": hashes,
        }
        manifest = commit(
            staging, kind="batch", config_hash=chash, input_checksums=checksums,
            folders=[WINDOWS_DIR, *([H_CACHE] if (out / H_CACHE).is_dir() else [])], extra=extra,
        )  # fmt: skip
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise
    with contextlib.suppress(FileNotFoundError):
        (out / "failed_windows.json").unlink()
    return {name: out / name for name in (*manifest["outputs"], MANIFEST)}


def mark_incomplete(out: Path, failed: list[WindowOutcome]) -> None:
    """Record failed windows (``failed_windows.json``); an earlier manifest becomes incomplete."""
    report = [{"window": o.window.index, "name": o.window.name, "error": o.error} for o in failed]
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2)
    atomic_write(out / "failed_windows.json", lambda p: p.write_text(text, encoding="utf-8"))
    m = read_manifest(out)
    if m is not None:
        write_json(out / MANIFEST, {**m, "status": "incomplete", "failed_windows": report})
