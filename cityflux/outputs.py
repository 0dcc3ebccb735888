"""Writing run outputs atomically: posterior.nc (CF-1.10), totals.csv and the covariance of the
totals, observations.csv, diagnostics.json, the configuration and figures.

Every file is written to a temporary file in the output folder and moved into place with
``os.replace``, so a killed run never leaves a half-written output. Inputs are never modified.
The writers take the run's :class:`~cityflux.case.Case`: synthetic and real runs write the
same files (synthetic ones add the truth).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from cityflux._files import atomic_write, sha256_file
from cityflux._version import __version__
from cityflux.config import config_hash
from cityflux.pipeline import RunResult
from inversion import FLUX_UNITS

__all__ = ["atomic_write", "posterior_dataset", "sha256_file", "write_outputs"]

OUTPUT_FILES = (
    "posterior.nc",
    "totals.csv",
    "totals_covariance.csv",
    "observations.csv",
    "diagnostics.json",
    "config.resolved.yaml",
)


def _sha256_array(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def posterior_dataset(result: RunResult, input_checksums: dict[str, str]) -> xr.Dataset:
    """CF-1.10 Dataset of the prior, posterior (mean and std) and truth fluxes."""
    city, post = result.case, result.posterior
    base = city.state.unflatten(post.mean, name="flux_posterior")
    ds = xr.Dataset(coords=base.coords)
    ds["time_bnds"] = base["time_bnds"]
    specs = {
        "flux_prior": (city.x_prior, "prior CO2 flux"),
        "flux_prior_std": (np.sqrt(city.B.diag()), "prior CO2 flux uncertainty (1 sigma)"),
        "flux_posterior": (post.mean, "posterior CO2 flux"),
        "flux_posterior_std": (post.std, "posterior CO2 flux uncertainty (1 sigma)"),
    }
    std_se = getattr(post, "info", {}).get("std_se")
    if std_se is not None:  # Monte-Carlo std maps (cg with std='sampled' / 'low-rank+sampled')
        specs["flux_posterior_std_se"] = (
            std_se,
            "Monte-Carlo standard error of flux_posterior_std",
        )
    if city.x_truth is not None:
        specs["flux_truth"] = (city.x_truth, "true CO2 flux of the synthetic city")
    bg_dim = city.offset_by
    for name, (vec, long_name) in specs.items():
        part = city.state.unflatten(vec, name=name)
        ds[name] = part[name]
        ds[name].attrs = {
            "units": FLUX_UNITS,
            "long_name": long_name,
            "grid_mapping": "crs",
            "coordinates": "lat lon",
        }
        if f"{name}_background" not in part:
            continue
        bg = part[f"{name}_background"]
        ds[f"{name.replace('flux_', 'background_')}"] = bg.rename(background=bg_dim).assign_attrs(
            units="ppm", long_name=f"background offset ({long_name.split(' CO2')[0]})"
        )
    crs_attrs = city.grid.crs.to_cf()
    ds["crs"] = xr.DataArray(np.int32(0), attrs=crs_attrs)
    if not city.grid.is_geographic:
        ds["x"].attrs.update({"units": "m", "standard_name": "projection_x_coordinate"})
        ds["y"].attrs.update({"units": "m", "standard_name": "projection_y_coordinate"})
    ds["city_mask"] = (
        ("y", "x"),
        city.city_mask.astype(np.int8),
        {
            "grid_mapping": "crs",
            "long_name": "cells inside the city boundary",
            "flag_values": [0, 1],
        },
    )
    ds["cell_area"] = (("y", "x"), city.grid.cell_area, {"units": "m2", "grid_mapping": "crs"})
    ds["time"].attrs.update({"standard_name": "time", "bounds": "time_bnds", "axis": "T"})
    ds.attrs = {
        "Conventions": "CF-1.10",
        "title": f"cityflux posterior CO2 flux: {result.config.name}",
        "institution": "cityflux",
        "source": f"cityflux {__version__} "
        + ("synthetic city (OSSE)" if city.x_truth is not None else "inversion of observations"),
        "history": f"{pd.Timestamp.now(tz='UTC').isoformat()} cityflux {__version__}",
        "cityflux_version": __version__,
        "config_hash": config_hash(result.config),
        "input_checksums": json.dumps(input_checksums, sort_keys=True),
        "solver_method": post.method,
        "std_method": post.std_method,
    }
    return ds


def write_outputs(
    result: RunResult,
    out_dir: str | Path,
    *,
    config_text: str | None = None,
    figures: bool = True,
) -> dict[str, Path]:
    """Write every output of a run into ``out_dir``; return their paths.

    Parameters
    ----------
    result : RunResult
    out_dir : path
    config_text : str, optional
        Text of the configuration file as given (copied verbatim to ``config.yaml``).
    figures : bool
        Also write the PNG figures.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    case = result.case
    checksums = dict(case.input_checksums)
    if case.x_truth is not None:
        checksums["synthetic_observations_sha256"] = _sha256_array(case.y)
        checksums["synthetic_truth_sha256"] = _sha256_array(case.x_truth)
    paths: dict[str, Path] = {}
    ds = posterior_dataset(result, checksums)
    enc = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars if ds[v].ndim >= 2}
    enc["time"] = {"units": "hours since 1970-01-01 00:00:00", "calendar": "standard"}
    enc["time_bnds"] = {"units": "hours since 1970-01-01 00:00:00", "calendar": "standard"}
    paths["posterior.nc"] = atomic_write(
        out / "posterior.nc",
        lambda p: ds.to_netcdf(p, format="NETCDF4", encoding=enc, engine="netcdf4"),
    )
    paths["totals.csv"] = atomic_write(
        out / "totals.csv", lambda p: result.totals.to_csv(p, index=False, float_format="%.10g")
    )
    cov = pd.DataFrame(result.totals_covariance, columns=[str(i) for i in result.totals["row"]])
    cov.insert(0, "row", result.totals["row"].to_numpy())
    paths["totals_covariance.csv"] = atomic_write(
        out / "totals_covariance.csv", lambda p: cov.to_csv(p, index=False, float_format="%.10g")
    )
    table = case.observation_table(result.posterior.mean)
    paths["observations.csv"] = atomic_write(
        out / "observations.csv", lambda p: table.to_csv(p, index=False, float_format="%.12g")
    )
    diag = dict(result.diagnostics)
    diag.update(
        {
            "cityflux_version": __version__,
            "config_hash": config_hash(result.config),
            "input_checksums": checksums,
            "units": {"totals": "t CO2 over the period", "flux": FLUX_UNITS},
        }
    )
    paths["diagnostics.json"] = atomic_write(
        out / "diagnostics.json",
        lambda p: p.write_text(json.dumps(_jsonable(diag), indent=2), encoding="utf-8"),
    )
    resolved = yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False)
    paths["config.resolved.yaml"] = atomic_write(
        out / "config.resolved.yaml", lambda p: p.write_text(resolved, encoding="utf-8")
    )
    if config_text is not None:
        paths["config.yaml"] = atomic_write(
            out / "config.yaml", lambda p: p.write_text(config_text, encoding="utf-8")
        )
    if figures:
        from cityflux.figures import write_figures

        paths.update(write_figures(result, out))
    return paths


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
