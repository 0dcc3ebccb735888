"""Writing run outputs: posterior.nc (CF-1.10), totals.csv and the covariance of the totals,
budget.csv, verification.csv, GeoTIFF maps, observations.csv, diagnostics.json, the
configuration, figures and report.html, sealed by manifest.json.

The writers (:data:`WRITERS`) write into a staging folder; :func:`write_outputs` then commits
the files into the run folder and writes ``manifest.json`` last
(:mod:`cityflux._runfolder`), so a killed run never leaves a mix of old and new files
presented as a result. Inputs are never modified. The writers take the run's
:class:`~cityflux.case.Case`: synthetic and real runs write the same files (synthetic ones add
the truth).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from cityflux import metrology, stages
from cityflux._files import atomic_write, sha256_file
from cityflux._geotiff import write_geotiffs
from cityflux._runfolder import MANIFEST, check_out_dir, commit, new_staging
from cityflux._version import __version__
from cityflux.config import config_hash
from cityflux.pipeline import RunResult
from inversion import FLUX_UNITS

__all__ = [
    "FLUX_STANDARD_NAME",
    "RUN_FILES",
    "WRITERS",
    "WriteContext",
    "Writer",
    "atomic_write",
    "netcdf_encoding",
    "posterior_dataset",
    "run_checksums",
    "sha256_file",
    "write_outputs",
]

OUTPUT_FILES = (
    "posterior.nc",
    "totals.csv",
    "totals_covariance.csv",
    "budget.csv",
    "observations.csv",
    "diagnostics.json",
    "config.resolved.yaml",
    "report.html",
)
#: Names (or patterns) a run folder may hold without a manifest (a run killed before its
#: manifest, or written before manifests existed); ``run.log`` is written by the CLI while the
#: run goes on and is not part of the manifest.
RUN_FILES = (
    *OUTPUT_FILES, "config.yaml", "verification.csv", "run.log", "osse.csv", "osse_sites.csv",
    "osse_hyperparameters.csv",
    "*.png", "flux_posterior_*.tif",
)  # fmt: skip


def _sha256_array(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


#: CF standard name of the flux variables (positive upward: emission) [mol m-2 s-1 convertible].
FLUX_STANDARD_NAME = "surface_upward_mole_flux_of_carbon_dioxide"


def _label_coord(ds: xr.Dataset, dim: str, labels: list[str], long_name: str) -> xr.Dataset:
    """String labels of ``dim`` as a CF auxiliary coordinate ``{dim}_name`` (CF §6.1)."""
    return ds.assign_coords(
        {
            f"{dim}_name": xr.Variable(
                (dim,), np.array(labels, dtype=object), {"long_name": long_name}
            )
        }
    )


def posterior_dataset(result: RunResult, input_checksums: dict[str, str]) -> xr.Dataset:
    """CF-1.10 Dataset of the prior, posterior (mean and std) and truth fluxes.

    Fluxes are ``(sector, time, y, x)`` [µmol m-2 s-1] with the standard name
    ``surface_upward_mole_flux_of_carbon_dioxide`` (``standard_error`` for the stds), means
    over each time bin and cell (``cell_methods``, ``cell_measures: area: cell_area``); sector
    and background-offset labels are auxiliary string coordinates (``sector_name``,
    ``offset_name``); the observations' calibration scales are in the global attributes.
    """
    city, post = result.case, result.posterior
    base = city.state.unflatten(post.mean, name="flux_posterior")
    ds = xr.Dataset(coords={k: base.coords[k] for k in ("time", "y", "x", "lat", "lon")})
    ds = _label_coord(ds, "sector", [str(s) for s in city.state.sectors], "emission sector")
    ds["time_bnds"] = base["time_bnds"]
    std_name = f"{FLUX_STANDARD_NAME} standard_error"
    specs = {
        "flux_prior": (city.x_prior, "prior CO2 flux", FLUX_STANDARD_NAME, "flux_prior_std"),
        "flux_prior_std": (
            np.sqrt(city.B.diag()), "prior CO2 flux uncertainty (1 sigma)", std_name, None,
        ),
        "flux_posterior": (
            post.mean, "posterior CO2 flux", FLUX_STANDARD_NAME, "flux_posterior_std",
        ),
        "flux_posterior_std": (
            post.std, "posterior CO2 flux uncertainty (1 sigma)", std_name, None,
        ),
    }  # fmt: skip
    std_se = getattr(post, "info", {}).get("std_se")
    if std_se is not None:  # Monte-Carlo std maps (cg with std='sampled' / 'low-rank+sampled')
        specs["flux_posterior_std_se"] = (
            std_se, "Monte-Carlo standard error of flux_posterior_std", None, None,
        )  # fmt: skip
        specs["flux_posterior"] = (
            *specs["flux_posterior"][:3],
            "flux_posterior_std flux_posterior_std_se",
        )
    if result.positivity is not None:  # log-normal posterior: median, mean and quantiles
        q = post.quantiles([0.025, 0.975])
        specs["flux_posterior"] = (
            post.mean, "posterior CO2 flux (median of the log-normal posterior)",
            FLUX_STANDARD_NAME, "flux_posterior_std flux_posterior_q025 flux_posterior_q975",
        )  # fmt: skip
        specs["flux_posterior_mean"] = (
            post.expected, "posterior CO2 flux (mean of the log-normal posterior)",
            FLUX_STANDARD_NAME, None,
        )  # fmt: skip
        for name, vec, pct in (("q025", q[0], "2.5"), ("q975", q[1], "97.5")):
            specs[f"flux_posterior_{name}"] = (
                vec, f"posterior CO2 flux, {pct} % quantile (log-normal posterior)", None, None,
            )  # fmt: skip
    if city.x_truth is not None:
        specs["flux_truth"] = (
            city.x_truth, "true CO2 flux of the synthetic city", FLUX_STANDARD_NAME, None,
        )  # fmt: skip
    extra = []  # (state block, dimension, variable prefix, what)
    for block, dim, prefix, label in (
        (stages.OFFSET_BLOCK, "offset", "background", "background offset"),
        (stages.BOUNDARY_BLOCK, "curtain", "boundary", "lateral boundary curtain"),
    ):
        blk = city.state.blocks.get(block)
        if blk is None:
            continue
        what = (
            f"group of the background offset (per {city.offset_by})"
            if block == stages.OFFSET_BLOCK
            else "boundary curtain: side, height band [m], time window"
        )
        ds = _label_coord(ds, dim, [str(v) for v in blk.labels], what)
        extra.append((blk, dim, prefix, label))
    nf = city.state.n_flux
    for name, (vec, long_name, standard_name, ancillary) in specs.items():
        vec = np.asarray(vec, dtype=float)
        attrs = {"units": FLUX_UNITS, "long_name": long_name}
        if standard_name:
            attrs["standard_name"] = standard_name
        attrs.update(
            cell_methods="time: mean area: mean", cell_measures="area: cell_area",
            grid_mapping="crs", coordinates="lat lon sector_name",
        )  # fmt: skip
        if ancillary:
            attrs["ancillary_variables"] = ancillary
        flux = vec[:nf].reshape(city.state.flux_shape)
        ds[name] = xr.Variable(("sector", "time", "y", "x"), flux, attrs)
        if "Monte-Carlo" in long_name or name.startswith(("flux_posterior_q", "flux_posterior_m")):
            continue  # MC errors; log-normal means and quantiles (the offsets stay Gaussian)
        what = long_name.split(" CO2 flux")[0]  # prior / posterior / true
        is_std = name.endswith("_std")
        for blk, dim, prefix, label in extra:
            ds[name.replace("flux_", f"{prefix}_")] = xr.Variable(
                (dim,), vec[blk.slice],
                {"units": "ppm", "coordinates": f"{dim}_name",
                 "long_name": f"{label} uncertainty ({what}, 1 sigma)" if is_std
                 else f"{label} ({what})"},
            )  # fmt: skip
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
            "coordinates": "lat lon",
            "long_name": "cells inside the reporting regions (the whole domain without regions)",
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "outside_regions inside_regions",
        },
    )
    ds["cell_area"] = (
        ("y", "x"),
        city.grid.cell_area,
        {"units": "m2", "standard_name": "cell_area", "long_name": "area of the grid cell",
         "grid_mapping": "crs", "coordinates": "lat lon"},
    )  # fmt: skip
    ds["time"].attrs.update({"standard_name": "time", "bounds": "time_bnds", "axis": "T"})
    target = result.config.observation_errors.calibration_scale
    scales = metrology.scale_summary(city.obs, target)
    ds.attrs = {
        "Conventions": "CF-1.10",
        "title": f"cityflux posterior CO2 flux: {result.config.name}",
        "institution": "cityflux",
        "source": f"cityflux {__version__} "
        + ("synthetic city (OSSE)" if city.x_truth is not None else "inversion of observations"),
        "history": f"{pd.Timestamp.now(tz='UTC').isoformat()} cityflux {__version__}",
        "comment": "fluxes are positive upward (emission); means over each time bin and cell",
        "cityflux_version": __version__,
        "config_hash": config_hash(result.config),
        "input_checksums": json.dumps(input_checksums, sort_keys=True),
        "solver_method": post.method,
        "std_method": post.std_method,
        "positivity": result.config.inversion.positivity,
        "calibration_scale": str(target) if target else "as read (no conversion)",
        "calibration_scales": json.dumps(scales["scales"]),
    }
    return ds


def netcdf_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Encoding of posterior.nc: compressed fields, hours since 1970 for time, and no
    ``_FillValue`` on coordinates and complete variables (CF §2.5.1)."""
    enc: dict[str, dict[str, Any]] = {v: {"_FillValue": None} for v in ds.variables}
    for v in ds.data_vars:
        if ds[v].ndim >= 2:
            enc[v].update(zlib=True, complevel=4)
    for v in ("time", "time_bnds"):
        enc[v].update(units="hours since 1970-01-01 00:00:00", calendar="standard")
    return enc


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
    report : bool
        Whether ``report.html`` is wanted.
    products : dict
        What one writer computed for the next (posterior dataset, observation table,
        budget, verification, diagnostics), so that nothing is computed twice.
    """

    input_checksums: dict[str, str]
    config_text: str | None = None
    figures: bool = True
    report: bool = True
    products: dict[str, Any] = field(default_factory=dict)


#: A writer writes one or more files into the folder it is given (the run's staging folder).
Writer = Callable[[RunResult, Path, WriteContext], None]


def _write_posterior(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    ds = posterior_dataset(result, ctx.input_checksums)
    ctx.products["dataset"] = ds
    ds.to_netcdf(
        folder / "posterior.nc", format="NETCDF4", encoding=netcdf_encoding(ds), engine="netcdf4"
    )


def _write_totals(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    result.totals.to_csv(folder / "totals.csv", index=False, float_format="%.10g")
    cov = pd.DataFrame(result.totals_covariance, columns=[str(i) for i in result.totals["row"]])
    cov.insert(0, "row", result.totals["row"].to_numpy())
    cov.to_csv(folder / "totals_covariance.csv", index=False, float_format="%.10g")


def _write_metrology(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    _, ctx.products["budget"] = metrology.write_budget(result, folder)
    _, ctx.products["verification"] = metrology.write_verification(result, folder)
    write_geotiffs(ctx.products["dataset"], folder)


def _write_observations(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    table = result.case.observation_table(result.posterior.mean)
    table = table.assign(**metrology.observation_columns(result))
    ctx.products["observations"] = table
    table.to_csv(folder / "observations.csv", index=False, float_format="%.12g")


def _write_diagnostics(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    diag = dict(result.diagnostics)
    diag.update(
        {
            "cityflux_version": __version__,
            "config_hash": config_hash(result.config),
            "input_checksums": ctx.input_checksums,
            "units": {"totals": "t CO2 over the period", "flux": FLUX_UNITS},
            **metrology.metrology_diagnostics(
                result, ctx.products["budget"], ctx.products["verification"]
            ),
        }
    )
    ctx.products["diagnostics"] = diag
    text = json.dumps(_jsonable(diag), indent=2)
    (folder / "diagnostics.json").write_text(text, encoding="utf-8")


def _write_config(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    resolved = yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False)
    (folder / "config.resolved.yaml").write_text(resolved, encoding="utf-8")
    if ctx.config_text is not None:
        (folder / "config.yaml").write_text(ctx.config_text, encoding="utf-8")


def _write_figures_and_report(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    if not (ctx.figures or ctx.report):
        return
    p = ctx.products
    metrology.write_figures_and_report(
        result, folder, p["dataset"], p["observations"], p["diagnostics"], p["budget"],
        p["verification"], figures=ctx.figures, report=ctx.report,
    )  # fmt: skip


def _write_hyperparameters(result: RunResult, folder: Path, ctx: WriteContext) -> None:
    """hyperparameters.png: the profile likelihoods (runs that estimate hyperparameters)."""
    section = result.diagnostics.get("hyperparameters")
    if section is None or not ctx.figures:
        return
    from cityflux._hyper_figure import profile_figure

    png = profile_figure(section)
    if png is not None:
        (folder / "hyperparameters.png").write_bytes(png)


#: The writers of every run folder, in order; add one here to add an output to every run.
WRITERS: tuple[Writer, ...] = (
    _write_posterior, _write_totals, _write_metrology, _write_observations, _write_diagnostics,
    _write_config, _write_hyperparameters, _write_figures_and_report,
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
    report: bool = True,
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
    report : bool
        Write ``report.html`` (its figures embedded). Batch windows skip it (rendering is most
        of a small window's writing time); ``cityflux report RUN_DIR`` makes it later.
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
    ctx = WriteContext(run_checksums(result), config_text, figures, report)
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
