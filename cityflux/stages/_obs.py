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
import transport_models
from cityflux._config_batch import QCConfig
from cityflux._config_real import BackgroundConfig, ObservationErrorsConfig
from cityflux._files import sha256_file_cached
from cityflux.config import CityfluxConfig, ObservationSource, PeriodConfig
from cityflux.stages import _ensemble
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
    "error_quadratic_forms",
    "input_checksums",
    "observation_covariance",
    "qc_summary",
    "read_observations",
    "remove_background",
    "subtract_column_apriori",
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


def reader_error_options(
    src: ObservationSource, fmt: str, errors: ObservationErrorsConfig
) -> tuple[dict, bool]:
    """The reader options of one source, with the configured errors passed to the reader.

    Errors set in the configuration (``observation_errors.transport`` / ``representation`` as
    one number, a source's ``error_ppm``) go to readers that take ``err_transport`` /
    ``err_representation``, so that they count BEFORE a reader drops records without any
    uncertainty. Returns the options and whether the transport error was handled that way.
    """
    opts = dict(src.options)
    accepted = observations.reader_options(fmt)
    if accepted is not None and "err_transport" not in accepted:
        return opts, False
    if isinstance(errors.representation, int | float) and "err_representation" not in opts:
        opts["err_representation"] = float(errors.representation)
    if isinstance(errors.transport, dict):
        return opts, False
    base = errors.transport if errors.transport is not None else opts.get("err_transport", 0.0)
    if src.error_ppm is not None or errors.transport is not None:
        opts["err_transport"] = float(np.hypot(base, src.error_ppm or 0.0))
    return opts, True


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
    readers' values and each source's ``error_ppm`` is added in quadrature to the transport
    error — passed to the reader where it takes them (:func:`reader_error_options`), so that
    they apply before records without any uncertainty are dropped.

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
                fmt = src.format or observations.detect_format(path)
                opts, handled = reader_error_options(src, fmt, errors)
                ds = observations.read(path, format=fmt, **opts)
                ds, report = observation_plausibility(ds, qc, path)
            ds = append_qc(ds, report)
            if src.crop:
                ds = _crop(ds, period, grid, path.name)
            ds = apply_error_settings(ds, errors, reader_took=handled)
            if not handled and src.error_ppm is not None:
                ds = _add_transport(ds, src.error_ppm)
            logger.info("%s: %d observations", path, ds.sizes["obs"])
            sets.append(ds)
    return observations.combine(sets)


def apply_error_settings(
    ds: xr.Dataset, errors: ObservationErrorsConfig, reader_took: bool = False
) -> xr.Dataset:
    """``ds`` on the target calibration scale (``observations.convert_scale``) with the
    transport / representation / calibration errors [ppm] of ``errors`` (when set).

    ``reader_took``: the reader already applied the single-number transport and representation
    settings (:func:`reader_error_options`); only per-kind ones are applied here.
    """
    if errors.calibration_scale is not None:
        ds = observations.convert_scale(
            ds, errors.calibration_scale, unspecified=errors.unspecified_scale
        )
    comps = {k: v for k, v in (("transport", errors.transport),
                               ("representation", errors.representation),
                               ("calibration", errors.calibration)) if v is not None}  # fmt: skip
    if reader_took:
        comps = {k: v for k, v in comps.items() if k == "calibration" or isinstance(v, dict)}
    return observations.set_errors(ds, **comps) if comps else ds


def subtract_column_apriori(ds: xr.Dataset) -> xr.Dataset:
    """Column values minus their retrieval's apriori term ``Σ h_k (1 − a_k) x_a,k`` [ppm]
    (``transport_models.column_prior_term``), for the soundings that carry ``co2_apriori``;
    recorded in the QC report."""
    kinds = ds["kind"].values.astype(str)
    if "co2_apriori" not in ds or not (kinds == "column").any():
        return ds
    term = transport_models.column_prior_term(ds)
    sel = (kinds == "column") & np.isfinite(term)
    if not sel.any():
        return ds
    value = ds["value"].values.copy()
    value[sel] -= term[sel]
    out = ds.assign(value=("obs", value, dict(ds["value"].attrs)))
    out.attrs = dict(ds.attrs)
    n = int(sel.sum())
    src = observations.SourceQC(source="column apriori term", read=n, kept=n)
    src.assumptions["apriori"] = (
        f"Σ h(1 - a) x_a subtracted from {n} column soundings (mean {float(term[sel].mean()):.3f} "
        "ppm) before the background: the background then estimates Σ h a b"
    )
    return append_qc(out, src)


def remove_background(ds: xr.Dataset, cfg: BackgroundConfig) -> xr.Dataset:
    """Observed enhancement above the background [ppm] (``value``; ``background`` kept).

    ``none`` keeps the values; ``constant`` subtracts ``value_ppm`` with uncertainty
    ``error_ppm`` (0 if unset); ``quantile`` and ``upwind`` call
    ``observations.background_quantile`` / ``background_upwind``.
    """
    if cfg.method == "none":
        return ds
    if cfg.column_apriori == "subtract":
        ds = subtract_column_apriori(ds)
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
    var = {c: ds[f"err_{c}"].values ** 2 for c in observations.ERROR_COMPONENTS}
    if _ensemble.ENSEMBLE_VAR in ds:  # the diagonal of R_ens (the taper is 1 there)
        var[_ensemble.COMPONENT] = (ds[_ensemble.ENSEMBLE_VAR].values ** 2).sum(axis=1)
    total2 = sum(var.values())
    out = {}
    for kind in np.unique(kinds):
        sel = kinds == kind
        denom = float(total2[sel].sum())
        row = {c: float(v[sel].sum() / denom) for c, v in var.items()}
        row["total_rms_ppm"] = float(np.sqrt(total2[sel].mean()))
        row["n_obs"] = int(sel.sum())
        out[str(kind)] = row
    return out


def _correlation_blocks(
    ds: xr.Dataset, cfg: ObservationErrorsConfig
) -> tuple[tuple[str, ...], list[tuple[np.ndarray, np.ndarray, int]]]:
    """Correlated components and ``(index, correlation, group id)`` of every group of > 1 obs."""
    groups = observations.correlation_groups(
        ds, lengths=cfg.correlation_lengths or None, components=cfg.correlated_components
    )
    hours = ds["time"].values.astype("datetime64[ns]").astype("int64") / 3.6e12
    lat, lon = ds["lat"].values, ds["lon"].values
    out = []
    for b in groups.blocks():
        if b.size == 1:
            continue
        if groups.coordinate[b[0]] == "time":
            d = np.abs(hours[b][:, None] - hours[b][None, :])
        else:
            d = haversine_km(lat[b][:, None], lon[b][:, None], lat[b][None, :], lon[b][None, :])
        corr = correlation_function(d, float(groups.length[b[0]]), "exponential")
        out.append((b, corr, int(groups.group[b[0]])))
    return tuple(groups.components), out


def _component_errors(ds: xr.Dataset, components: Sequence[str] | None) -> dict[str, np.ndarray]:
    comps = observations.ERROR_COMPONENTS if components is None else tuple(components)
    unknown = sorted(set(comps) - set(observations.ERROR_COMPONENTS))
    if unknown:
        raise ValueError(
            f"components: unknown error components {unknown}; use some of "
            f"{list(observations.ERROR_COMPONENTS)}"
        )
    return {c: ds[f"err_{c}"].values.astype(float) for c in comps}


def observation_covariance(
    ds: xr.Dataset, cfg: ObservationErrorsConfig, components: Sequence[str] | None = None
):
    """R [ppm²]: diagonal, plus exponential correlation within each correlation group.

    The components in ``cfg.correlated_components`` are correlated within a group (site-day,
    overpass, scan) with the lengths of ``observations.correlation_groups`` (time [h] or
    great-circle distance [km]); the other components are independent. Each component is an
    independent error source: ``R = Σ_c R_c`` with ``R_c = diag(e_c) C diag(e_c)`` (C the
    group's correlation for a correlated component, I otherwise), so the parts of the
    uncertainty budget (:func:`error_quadratic_forms`) add up to R exactly. Groups of one
    observation are gathered into one diagonal block. Observations that carry the anomalies
    of a transport ensemble (``transport.ensemble``) add the localised ``R_ens``
    (component ``transport_ensemble``, :mod:`cityflux.stages._ensemble`), merged into the
    blocks.

    Parameters
    ----------
    ds : xarray.Dataset
        ObservationSet with ``err_<component>`` [ppm].
    cfg : ObservationErrorsConfig
    components : sequence of str, optional
        Only these error components (default: all, ``observations.ERROR_COMPONENTS`` and
        ``transport_ensemble`` where present); the variances must then still be positive.

    Returns
    -------
    BlockDiagonalCovariance or DiagonalCovariance
    """
    ens = None
    if components is None or _ensemble.COMPONENT in components:
        ens = _ensemble.ensemble_covariance(ds)
    if components is not None:
        components = [c for c in components if c != _ensemble.COMPONENT]
    base = _component_covariance(ds, cfg, components)
    return base if ens is None else _ensemble.add_to_covariance(base, ens)


def _component_covariance(
    ds: xr.Dataset, cfg: ObservationErrorsConfig, components: Sequence[str] | None
):
    errs = _component_errors(ds, components)
    total2 = sum(e * e for e in errs.values()) + np.zeros(ds.sizes["obs"])
    correlated, blocks_c = _correlation_blocks(ds, cfg)
    E = np.array([errs[c] for c in correlated if c in errs]).reshape(-1, ds.sizes["obs"])
    corr2 = (E * E).sum(axis=0)
    multi = [blk for blk in blocks_c if corr2[blk[0]].any()]
    if not multi:
        return DiagonalCovariance(total2, name="R")
    in_multi = np.zeros(total2.size, bool)
    blocks, order = [], []
    for blk in multi:
        in_multi[blk[0]] = True
    single = np.flatnonzero(~in_multi)
    if single.size:
        blocks.append(DiagonalCovariance(total2[single], name="R (independent observations)"))
        order.append(single)
    for b, c, gid in multi:  # one dense block per correlation group (site-day, overpass, scan)
        mat = np.diag(total2[b] - corr2[b]) + c * (E[:, b].T @ E[:, b])
        blocks.append(DenseCovariance(mat, name=f"R block of group {gid}"))
        order.append(b)
    return BlockDiagonalCovariance(blocks, index=np.concatenate(order))


def error_quadratic_forms(
    ds: xr.Dataset, cfg: ObservationErrorsConfig, G: np.ndarray
) -> dict[str, np.ndarray]:
    """``diag(Gᵀ R_c G)`` for each error component c, with the R_c of
    :func:`observation_covariance` (their sum over c is ``diag(Gᵀ R G)``).

    Parameters
    ----------
    ds : xarray.Dataset
        ObservationSet with ``err_<component>`` [ppm].
    cfg : ObservationErrorsConfig
    G : numpy.ndarray
        (n_obs, k) sensitivities [unit per ppm].

    Returns
    -------
    dict of str to numpy.ndarray
        Component -> (k,) variances [unit²]; ``transport_ensemble`` too where the
        observations carry a transport ensemble.
    """
    errs = _component_errors(ds, None)
    correlated, blocks_c = _correlation_blocks(ds, cfg)
    G = np.asarray(G, dtype=float).reshape(ds.sizes["obs"], -1)
    out = {}
    for c, e in errs.items():
        Ge = G * e[:, None]
        q = np.einsum("ik,ik->k", Ge, Ge)
        if c in correlated:  # add the off-diagonal part of each correlated block
            for b, corr, _gid in blocks_c:
                Gb = Ge[b]
                q += np.einsum("ik,ij,jk->k", Gb, corr - np.eye(b.size), Gb)
        out[c] = q
    ens = _ensemble.ensemble_covariance(ds)
    if ens is not None:
        out[_ensemble.COMPONENT] = np.einsum("ik,ik->k", G, np.asarray(ens @ G))
    return out


def input_checksums(cfg: CityfluxConfig) -> dict[str, str]:
    """SHA-256 of every input file a real-data configuration names (path -> hex digest)."""
    paths = [p for s in cfg.observations for p in s.files()]
    paths += [i.path for i in cfg.prior.inventories]
    paths += cfg.transport.footprint_files() if cfg.transport.model == "footprints" else []
    paths += [p for m in cfg.transport.member_configs() for p in m.footprint_files()]
    for extra in (
        cfg.transport.met.path if cfg.transport.met else None,
        cfg.regions.path if cfg.regions else None,
        cfg.prior.point_sources.path if cfg.prior.point_sources else None,
        cfg.prior.temporal.profile_path(),
    ):
        if extra is not None:
            paths.append(extra)
    return {str(p): sha256_file_cached(p) for p in paths if p.is_file()}
