"""Observation stage: read each source, crop to the period and domain, set errors, combine,
remove the background, and build the observation error covariance R with its error budget."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
import xarray as xr

import observations
from cityflux._config_batch import QCConfig
from cityflux._config_real import BackgroundConfig, ObservationErrorsConfig
from cityflux._files import sha256_file_cached
from cityflux.config import CityfluxConfig, ObservationSource, PeriodConfig
from cityflux.stages._plausibility import naming, observation_plausibility
from inversion import Grid
from inversion.covariance import (
    BlockDiagonalCovariance,
    DenseCovariance,
    DiagonalCovariance,
    correlation_function,
    haversine_km,
)

__all__ = [
    "append_qc",
    "apply_error_settings",
    "error_budget",
    "input_checksums",
    "observation_covariance",
    "qc_summary",
    "read_observations",
    "remove_background",
]

logger = logging.getLogger(__name__)

_SELECTION = "cityflux selection (period, domain)"


def append_qc(ds: xr.Dataset, source: observations.SourceQC) -> xr.Dataset:
    """``ds`` with ``source`` appended to its QC report (``attrs["qc_report"]``)."""
    report = observations.qc_report(ds) if "qc_report" in ds.attrs else observations.QCReport()
    report.sources.append(source)
    ds.attrs["qc_report"] = report.to_json()
    return ds


def _crop(ds: xr.Dataset, period: PeriodConfig, grid: Grid, name: str) -> xr.Dataset:
    """Drop observations outside [start, end) or outside the grid (counted in the QC report)."""
    t = ds["time"].values.astype("datetime64[ns]")
    t0, t1 = (
        pd.Timestamp(d).tz_convert("UTC").tz_localize(None) if d.tzinfo else pd.Timestamp(d)
        for d in (period.start, period.end)
    )
    t0, t1 = t0.to_datetime64(), t1.to_datetime64()
    in_time = (t >= t0) & (t < t1)
    in_dom = grid.contains_lonlat(ds["lon"].values, ds["lat"].values)
    src = observations.SourceQC(source=f"{_SELECTION}: {name}", read=int(t.size))
    n_time, n_dom = int((~in_time).sum()), int((in_time & ~in_dom).sum())
    if n_time:
        src.dropped["outside the inversion period"] = n_time
    if n_dom:
        src.dropped["outside the inversion domain"] = n_dom
    keep = np.flatnonzero(in_time & in_dom)
    src.kept = int(keep.size)
    if keep.size == 0:
        x0, y0, x1, y1 = (float(b) for b in grid.bounds)
        raise observations.EmptyAfterQCError(
            f"{name}: none of the {t.size} observations is kept: {n_time} lie outside the "
            f"period {period.start} – {period.end}, {n_dom} outside the domain (x {x0:.6g} to "
            f"{x1:.6g}, y {y0:.6g} to {y1:.6g} in the grid CRS); check the period, the domain "
            "or the file"
        )
    attrs = dict(ds.attrs)
    out = ds.isel(obs=keep)
    out.attrs = attrs
    return append_qc(out, src)


def _add_transport(ds: xr.Dataset, error_ppm: float) -> xr.Dataset:
    new = np.hypot(ds["err_transport"].values, error_ppm)
    return ds.assign(err_transport=("obs", new, dict(ds["err_transport"].attrs)))


def read_observations(
    sources: Sequence[ObservationSource],
    period: PeriodConfig,
    grid: Grid,
    errors: ObservationErrorsConfig,
    qc: QCConfig | None = None,
) -> xr.Dataset:
    """Read, crop and combine every observation source into one ObservationSet [ppm].

    Each file is read with ``observations.read(path, format=..., **options)``; records outside
    the period or the domain are dropped and counted (sources with ``crop: false`` are kept as
    read). Error components ``errors.transport`` / ``errors.representation`` [ppm] replace the
    readers' values, then each source's ``error_ppm`` is added in quadrature to the transport
    error.

    Returns
    -------
    xarray.Dataset
        Combined ObservationSet with the merged QC report in ``attrs["qc_report"]``.
    """
    qc = QCConfig() if qc is None else qc
    sets = []
    for i, src in enumerate(sources):
        for path in src.files():
            with naming(path, f"observations[{i}]", src.options):
                ds = observations.read(path, format=src.format, **src.options)
                ds, report = observation_plausibility(ds, qc, path)
            ds = append_qc(ds, report)
            if src.crop:
                ds = _crop(ds, period, grid, path.name)
            ds = apply_error_settings(ds, errors)
            if src.error_ppm is not None:
                ds = _add_transport(ds, src.error_ppm)
            logger.info("%s: %d observations", path, ds.sizes["obs"])
            sets.append(ds)
    return observations.combine(sets)


def apply_error_settings(ds: xr.Dataset, errors: ObservationErrorsConfig) -> xr.Dataset:
    """``ds`` with the transport / representation errors [ppm] of ``errors`` (when set)."""
    comps = {k: v for k, v in (("transport", errors.transport),
                               ("representation", errors.representation)) if v is not None}  # fmt: skip
    return observations.set_errors(ds, **comps) if comps else ds


def remove_background(ds: xr.Dataset, cfg: BackgroundConfig) -> xr.Dataset:
    """Observed enhancement above the background [ppm] (``value``; ``background`` kept).

    ``none`` keeps the values; ``constant`` subtracts ``value_ppm`` with uncertainty
    ``error_ppm`` (0 if unset); ``quantile`` and ``upwind`` call
    ``observations.background_quantile`` / ``background_upwind``.
    """
    if cfg.method == "none":
        return ds
    if cfg.method == "quantile":
        return observations.background_quantile(
            ds, cfg.quantile, window=cfg.window, per_site=cfg.per_site,
            min_count=cfg.min_count, err_background=cfg.error_ppm,
        )  # fmt: skip
    if cfg.method == "upwind":
        return observations.background_upwind(ds, cfg.site, err_background=cfg.error_ppm)
    n = ds.sizes["obs"]
    bg = np.full(n, float(cfg.value_ppm))
    err = np.hypot(ds["err_background"].values, cfg.error_ppm or 0.0)
    out = ds.assign(
        value=("obs", ds["value"].values - bg, {"units": "ppm",
               "long_name": "enhancement above background"}),
        background=("obs", bg, {"units": "ppm", "long_name": "background (constant)"}),
        err_background=("obs", err, dict(ds["err_background"].attrs)),
    )  # fmt: skip
    out.attrs.update(background_method=f"constant {cfg.value_ppm} ppm", quantity="enhancement")
    src = observations.SourceQC(source="background_constant", read=n, kept=n)
    return append_qc(observations.validate_observation_set(out), src)


def qc_summary(ds: xr.Dataset) -> dict:
    """The QC report of ``ds`` as plain JSON (per source and totals)."""
    report = observations.qc_report(ds)
    return {
        "sources": [asdict(s) for s in report.sources],
        "n_kept": int(ds.sizes["obs"]),
        "n_dropped": int(report.n_dropped),
        "warnings": json.loads(ds.attrs.get("warnings", "[]")),
    }


def error_budget(ds: xr.Dataset) -> dict[str, dict[str, float]]:
    """Share of the total error variance of each component, per kind [1], and the rms [ppm]."""
    kinds = ds["kind"].values.astype(str)
    total2 = observations.total_error(ds).values ** 2
    out = {}
    for kind in np.unique(kinds):
        sel = kinds == kind
        denom = float(total2[sel].sum())
        row = {
            c: float((ds[f"err_{c}"].values[sel] ** 2).sum() / denom)
            for c in observations.ERROR_COMPONENTS
        }
        row["total_rms_ppm"] = float(np.sqrt(total2[sel].mean()))
        row["n_obs"] = int(sel.sum())
        out[str(kind)] = row
    return out


def observation_covariance(ds: xr.Dataset, cfg: ObservationErrorsConfig):
    """R [ppm²]: diagonal, plus exponential correlation within each correlation group.

    The components in ``cfg.correlated_components`` are correlated within a group (site-day,
    overpass, scan) with the lengths of ``observations.correlation_groups`` (time [h] or
    great-circle distance [km]); the other components are independent. Groups of one
    observation are gathered into one diagonal block.

    Returns
    -------
    BlockDiagonalCovariance or DiagonalCovariance
    """
    total2 = observations.total_error(ds).values ** 2
    groups = observations.correlation_groups(
        ds, lengths=cfg.correlation_lengths or None, components=cfg.correlated_components
    )
    corr2 = sum(ds[f"err_{c}"].values ** 2 for c in groups.components)
    corr2 = np.zeros_like(total2) + corr2
    blocks_idx = groups.blocks()
    single = [b for b in blocks_idx if b.size == 1 or not corr2[b].any()]
    multi = [b for b in blocks_idx if not (b.size == 1 or not corr2[b].any())]
    if not multi:
        return DiagonalCovariance(total2, name="R")
    hours = ds["time"].values.astype("datetime64[ns]").astype("int64") / 3.6e12
    lat, lon = ds["lat"].values, ds["lon"].values
    blocks, order = [], []
    if single:
        idx = np.concatenate(single)
        blocks.append(DiagonalCovariance(total2[idx], name="R (independent observations)"))
        order.append(idx)
    for b in multi:  # one dense block per correlation group (site-day, overpass, scan)
        if groups.coordinate[b[0]] == "time":
            d = np.abs(hours[b][:, None] - hours[b][None, :])
        else:
            d = haversine_km(lat[b][:, None], lon[b][:, None], lat[b][None, :], lon[b][None, :])
        c = correlation_function(d, float(groups.length[b[0]]), "exponential")
        sc = np.sqrt(corr2[b])
        mat = np.diag(total2[b] - corr2[b]) + sc[:, None] * c * sc[None, :]
        blocks.append(DenseCovariance(mat, name=f"R block of group {int(groups.group[b[0]])}"))
        order.append(b)
    return BlockDiagonalCovariance(blocks, index=np.concatenate(order))


def input_checksums(cfg: CityfluxConfig) -> dict[str, str]:
    """SHA-256 of every input file a real-data configuration names (path -> hex digest)."""
    paths = [p for s in cfg.observations for p in s.files()]
    paths += [i.path for i in cfg.prior.inventories]
    paths += cfg.transport.footprint_files() if cfg.transport.model == "footprints" else []
    for extra in (
        cfg.transport.met.path if cfg.transport.met else None,
        cfg.regions.path if cfg.regions else None,
        cfg.prior.point_sources.path if cfg.prior.point_sources else None,
        cfg.prior.temporal.profile_path(),
    ):
        if extra is not None:
            paths.append(extra)
    return {str(p): sha256_file_cached(p) for p in paths if p.is_file()}
