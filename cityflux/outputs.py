"""Writing run outputs: posterior.nc (CF-1.10), totals.csv and the covariance of the totals,
observations.csv, diagnostics.json, the configuration and figures, sealed by manifest.json.

Each output is made by a writer (:data:`WRITERS`: ``writer(result, folder, ctx)``) that writes
into the run's staging folder; :func:`write_outputs` then moves the files into the output folder
and writes ``manifest.json`` last (see :mod:`cityflux._runfolder`), so a killed run never leaves
a mix of old and new files presented as a result. Inputs are never modified. The writers take
the run's :class:`~cityflux.case.Case`: synthetic and real runs write the same files (synthetic
ones add the truth).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from cityflux._files import atomic_write, sha256_file
from cityflux._runfolder import MANIFEST, check_out_dir, commit, new_staging
from cityflux._version import __version__
from cityflux.config import config_hash
from cityflux.pipeline import RunResult
from inversion import FLUX_UNITS

__all__ = [
    "RUN_FILES",
    "WRITERS",
    "WriteContext",
    "Writer",
    "atomic_write",
    "posterior_dataset",
    "run_checksums",
    "sha256_file",
    "write_outputs",
]

OUTPUT_FILES = (
    "posterior.nc",
    "totals.csv",
    "totals_covariance.csv",
    "observations.csv",
    "diagnostics.json",
    "config.resolved.yaml",
)
#: Names a run folder may hold without a manifest (a folder written before manifests existed).
RUN_FILES = (*OUTPUT_FILES, "config.yaml", "maps.png", "uncertainty_reduction.png", "totals.png",
             "obs_fit.png", "osse.csv")  # fmt: skip


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


@dataclass(frozen=True)
class WriteContext:
    """What every writer is given besides the run's result.

    Attributes
    ----------
    input_checksums : dict of str to str
        SHA-256 of the inputs (and, for synthetic cases, of the generated data and truth).
    config_text : str or None
        Text of the configuration file as given.
    figures : bool
        Whether figures are wanted.
    """

    input_checksums: dict[str, str]
    config_text: str | None = None
    figures: bool = True


#: A writer writes one or more files into the folder it is given (the run's staging folder).
Writer = Callable[[RunResult, Path, WriteContext], None]


def _write_posterior(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    ds = posterior_dataset(result, ctx.input_checksums)
    enc = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars if ds[v].ndim >= 2}
    enc["time"] = {"units": "hours since 1970-01-01 00:00:00", "calendar": "standard"}
    enc["time_bnds"] = {"units": "hours since 1970-01-01 00:00:00", "calendar": "standard"}
    ds.to_netcdf(folder / "posterior.nc", format="NETCDF4", encoding=enc, engine="netcdf4")


def _write_totals(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    result.totals.to_csv(folder / "totals.csv", index=False, float_format="%.10g")
    cov = pd.DataFrame(result.totals_covariance, columns=[str(i) for i in result.totals["row"]])
    cov.insert(0, "row", result.totals["row"].to_numpy())
    cov.to_csv(folder / "totals_covariance.csv", index=False, float_format="%.10g")


def _write_observations(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    table = result.case.observation_table(result.posterior.mean)
    table.to_csv(folder / "observations.csv", index=False, float_format="%.9g")


def _write_diagnostics(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    diag = dict(result.diagnostics)
    diag.update(
        {
            "cityflux_version": __version__,
            "config_hash": config_hash(result.config),
            "input_checksums": ctx.input_checksums,
            "units": {"totals": "t CO2 over the period", "flux": FLUX_UNITS},
        }
    )
    text = json.dumps(_jsonable(diag), indent=2)
    (folder / "diagnostics.json").write_text(text, encoding="utf-8")


def _write_config(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    resolved = yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False)
    (folder / "config.resolved.yaml").write_text(resolved, encoding="utf-8")
    if ctx.config_text is not None:
        (folder / "config.yaml").write_text(ctx.config_text, encoding="utf-8")


def _write_figures(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    if ctx.figures:
        from cityflux.figures import write_figures

        write_figures(result, folder)


#: The writers of every run folder, in order; add one here to add an output to every run.
WRITERS: tuple[Writer, ...] = (
    _write_posterior, _write_totals, _write_observations, _write_diagnostics, _write_config,
    _write_figures,
)  # fmt: skip


def run_checksums(result: RunResult) -> dict[str, str]:
    """Input checksums of a run: its input files, plus the generated data of a synthetic run."""
    case = result.case
    checksums = dict(case.input_checksums)
    if case.x_truth is not None:
        checksums["synthetic_observations_sha256"] = _sha256_array(case.y)
        checksums["synthetic_truth_sha256"] = _sha256_array(case.x_truth)
    return checksums


def write_outputs(
    result: RunResult,
    out_dir: str | Path,
    *,
    config_text: str | None = None,
    figures: bool = True,
    extra_writers: Sequence[Writer] = (),
    kind: str = "run",
) -> dict[str, Path]:
    """Write every output of a run into ``out_dir``, sealed by ``manifest.json``.

    The writers (:data:`WRITERS`, then ``extra_writers``) write into a staging folder; the
    files are then moved into ``out_dir`` and ``manifest.json`` is written last
    (:func:`cityflux._runfolder.commit`), so a killed run never leaves a mix of old and new
    files presented as a result. Leftovers of a killed run are removed first.

    Parameters
    ----------
    result : RunResult
    out_dir : path
        The run folder (created if needed).
    config_text : str, optional
        Text of the configuration file as given (copied verbatim to ``config.yaml``).
    figures : bool
        Also write the PNG figures.
    extra_writers : sequence of Writer
        More writers (e.g. a batch window's core totals).
    kind : str
        Recorded in the manifest (``run``, ``window``).

    Returns
    -------
    dict of str to pathlib.Path
        Every file written, ``manifest.json`` included.

    Raises
    ------
    OutputFolderError
        If ``out_dir`` is a file or holds something other than a cityflux run.
    """
    out = Path(out_dir)
    check_out_dir(out, RUN_FILES)
    ctx = WriteContext(run_checksums(result), config_text, figures)
    staging = new_staging(out)
    try:
        for writer in (*WRITERS, *extra_writers):
            writer(result, staging, ctx)
        manifest = commit(
            staging, kind=kind, config_hash=config_hash(result.config),
            input_checksums=ctx.input_checksums,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: out / name for name in (*manifest["outputs"], MANIFEST)}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
