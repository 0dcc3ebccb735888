"""Transport stage: the observation operator H from the plume model or from footprint files,
the lateral-boundary block (footprints with particle locations) and the background offsets.

:func:`transport_operator` returns the flux block of H for the observations that have transport
(with footprints, those whose every sample has a footprint: the others are dropped and counted),
and :func:`full_operator` adds the extra blocks of the state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

import observations
import transport_models
from cityflux._config_real import MetConfig, OffsetConfig
from cityflux.config import PeriodConfig, TransportConfig
from cityflux.stages._obs import append_qc
from cityflux.stages._plausibility import naming
from inversion import StateVector

__all__ = [
    "BOUNDARY_BLOCK",
    "OFFSET_BLOCK",
    "TransportResult",
    "full_operator",
    "load_met",
    "offset_labels",
    "transport_operator",
]

logger = logging.getLogger(__name__)

OFFSET_BLOCK = "background"
BOUNDARY_BLOCK = "boundary"


@dataclass(frozen=True, eq=False)
class TransportResult:
    """The flux block of H and what the transport stage kept.

    Attributes
    ----------
    H : scipy.sparse.csr_array
        (n_kept, n_flux) [ppm per (µmol m-2 s-1)] for the kept observations.
    keep : numpy.ndarray
        (n_obs,) bool: the observation has transport (all True for the plume model).
    report : dict
        What the stage did (model, sizes, zero rows, footprint matching and assembly).
    boundary : scipy.sparse.csr_array or None
        (n_kept, n_bc) boundary-curtain sensitivities [ppm per ppm].
    boundary_labels : list of str
        (side, height band, window) label of each curtain.
    """

    H: sp.csr_array
    keep: np.ndarray
    report: dict
    boundary: sp.csr_array | None = None
    boundary_labels: list[str] = field(default_factory=list)


def load_met(cfg: MetConfig, period: PeriodConfig) -> transport_models.PlumeMet:
    """Hourly plume meteorology from the met CSV, or the constants for every hour of the period.

    CSV columns: ``time`` (UTC, start of the hour), ``wind_speed`` [m s-1], ``wind_direction``
    [degrees, from], ``boundary_layer_height`` [m], ``stability`` (A–F), optional ``pressure``
    [hPa] and ``temperature`` [K].
    """
    if cfg.path is None:
        hours = pd.date_range(period.start, period.end, freq="1h", inclusive="left")
        return transport_models.PlumeMet(
            times=hours.to_numpy(), wind_speed=cfg.wind_speed, wind_direction=cfg.wind_direction,
            boundary_layer_height=cfg.boundary_layer_height, stability=cfg.stability,
            pressure=cfg.pressure, temperature=cfg.temperature,
        )  # fmt: skip
    df = pd.read_csv(cfg.path, comment="#")
    df.columns = [c.strip() for c in df.columns]
    need = ["time", "wind_speed", "wind_direction", "boundary_layer_height", "stability"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise KeyError(f"{cfg.path}: met CSV columns {missing} missing; required {need}")
    return transport_models.PlumeMet(
        times=pd.to_datetime(df["time"], utc=True).to_numpy(),
        wind_speed=df["wind_speed"].to_numpy(float),
        wind_direction=df["wind_direction"].to_numpy(float),
        boundary_layer_height=df["boundary_layer_height"].to_numpy(float),
        stability=df["stability"].astype(str).to_numpy(),
        pressure=df["pressure"].to_numpy(float) if "pressure" in df else cfg.pressure,
        temperature=df["temperature"].to_numpy(float) if "temperature" in df else cfg.temperature,
    )


def _zero_rows(h: sp.csr_array, obs: xr.Dataset, warn: bool) -> int:
    """Number of observations with zero sensitivity to every cell (warned by the library)."""
    labels = obs["site"].values.astype(str)
    return len(transport_models.zero_rows(h, labels=labels, warn_user=warn))


def transport_operator(
    obs: xr.Dataset,
    state: StateVector,
    cfg: TransportConfig,
    met: object | None,
    files: list | None = None,
) -> TransportResult:
    """Flux block of H for ``obs``: the plume model (``met``) or footprint files.

    Parameters
    ----------
    obs : xarray.Dataset
        ObservationSet after background removal.
    state : StateVector
        Its flux block (grid, time bins, sectors) is used; extra blocks are ignored.
    cfg : TransportConfig
    met : transport_models.PlumeMet or None
        Plume meteorology (``cfg.model == "plume"``).
    files : list of path, optional
        Footprint files (default ``cfg.footprint_files()``).

    Returns
    -------
    TransportResult

    Raises
    ------
    FileNotFoundError
        No footprint file where ``transport.footprints`` points.
    """
    flux_state = StateVector(state.grid, state.time, state.sectors)
    if cfg.model == "plume":
        options = transport_models.PlumeOptions(
            cell_model=cfg.cell_model, subcell=cfg.subcell, surface_altitude=cfg.surface_altitude_m,
        )  # fmt: skip
        h = sp.csr_array(
            transport_models.plume_operator(
                obs, state.grid, state.time, met, sectors=len(state.sectors),
                dispersion=cfg.dispersion, options=options,
            )
        )  # fmt: skip
        report = {
            "model": "plume", "dispersion": cfg.dispersion, "cell_model": cfg.cell_model,
            "met_hours": met.n_hours, "nnz": int(h.nnz), "zero_rows": _zero_rows(h, obs, warn=False),
            "surface_altitude_m": cfg.surface_altitude_m,
        }  # fmt: skip
        return TransportResult(H=h, keep=np.ones(obs.sizes["obs"], bool), report=report)
    files = cfg.footprint_files() if files is None else list(files)
    if not files:
        raise FileNotFoundError(
            f"transport.footprints: no footprint file in {str(cfg.footprints)!r} matching "
            f"{cfg.footprint_pattern!r}"
        )
    with naming(
        Path(str(cfg.footprints)), "transport", cfg.footprint_options,
        options_key="transport.footprint_options",
    ):  # fmt: skip
        op = _assemble(files, flux_state, obs, cfg)
    return _footprint_result(op, obs, files, cfg)


def _assemble(
    files: list, flux_state: StateVector, obs: xr.Dataset, cfg: TransportConfig
) -> transport_models.FootprintOperator:
    return transport_models.assemble_h(
        files, flux_state, obs, time_tolerance=cfg.time_tolerance,
        position_tolerance=cfg.position_tolerance, height_tolerance=cfg.height_tolerance,
        sampling=cfg.sampling_options(), format=cfg.footprint_format,
        reader_kwargs=dict(cfg.footprint_options), threshold=cfg.threshold,
        cache_dir=cfg.cache_dir, max_uncovered_area_fraction=cfg.max_uncovered_area_fraction,
    )  # fmt: skip


def _footprint_result(
    op: transport_models.FootprintOperator, obs: xr.Dataset, files: list, cfg: TransportConfig
) -> TransportResult:
    a = op.assembly
    report = {
        "model": "footprints",
        **a.to_dict(),
        "dropped_fraction": a.dropped_fraction,
        "matching": op.report,
    }
    kept_obs = obs.isel(obs=np.flatnonzero(op.complete))
    h = sp.csr_array(op.H)
    report["zero_rows"] = _zero_rows(h, kept_obs, warn=True) if h.shape[0] else 0
    n_unmatched = int(op.match.n_unmatched_receptors)
    if n_unmatched:
        logger.warning(
            "transport.footprints: %d of %d footprint receptors match no kept observation "
            "(outside the period, a site removed, or dropped by QC); they are not used",
            n_unmatched, len(op.receptors),
        )  # fmt: skip
    block, labels = None, []
    if cfg.boundary is not None:
        b = cfg.boundary
        bands = list(b.bands_m) if b.bands_m else None
        block, labels = transport_models.boundary_operator(
            files, op.combination, op.receptors["time"].to_numpy(), bands=bands,
            window=b.window, time_tolerance=cfg.time_tolerance,
        )  # fmt: skip
        block = sp.csr_array(block[np.flatnonzero(op.complete)])
        report["boundary"] = {"n_curtains": len(labels), "labels": labels}
    return TransportResult(
        H=h, keep=np.asarray(op.complete, bool), report=report, boundary=block,
        boundary_labels=labels,
    )  # fmt: skip


def drop_without_transport(obs: xr.Dataset, keep: np.ndarray, report: dict) -> xr.Dataset:
    """``obs`` without the observations that have no (complete) footprint, counted in QC."""
    if keep.all():
        return obs
    n = obs.sizes["obs"]
    kinds = obs["kind"].values.astype(str)
    src = observations.SourceQC(source="transport (footprints)", read=n, kept=int(keep.sum()))
    for k in np.unique(kinds[~keep]):
        src.dropped[f"no complete footprint ({k})"] = int(((~keep) & (kinds == k)).sum())
    attrs = dict(obs.attrs)
    out = obs.isel(obs=np.flatnonzero(keep))
    out.attrs = attrs
    if out.sizes["obs"] == 0:
        m = report.get("matching", {})
        raise observations.EmptyAfterQCError(
            f"transport.footprints: none of the {n} observations has a complete set of "
            f"footprints (receptors: {m.get('receptors')}); check the receptor times, "
            "positions and heights against the observations (cityflux receptors writes the "
            "table the footprints must be run for) or widen the tolerances"
        )
    return append_qc(out, src)


def offset_labels(obs: xr.Dataset, cfg: OffsetConfig) -> np.ndarray | None:
    """Offset group of each observation (site or kind), or None without offsets."""
    if cfg.by == "none":
        return None
    return obs[cfg.by].values.astype(str)


def full_operator(
    tr: TransportResult,
    state: StateVector,
    groups: np.ndarray | None,
    bias: sp.csr_array | None = None,
) -> sp.csr_array:
    """H (n_kept, state.size): the flux block, the offsets (1 ppm per ppm in the group's column),
    the boundary curtains and the per-site biases (``bias``: :func:`site_bias_block`)
    [ppm per ppm]."""
    h = sp.csr_array(sp.hstack([tr.H, sp.csr_array((tr.H.shape[0], state.size - tr.H.shape[1]))]))
    if groups is not None:
        block, _ = transport_models.offset_block(groups)
        h = transport_models.add_block(h, state, OFFSET_BLOCK, block)
    if tr.boundary is not None:
        h = transport_models.add_block(h, state, BOUNDARY_BLOCK, tr.boundary)
    if bias is not None:
        from cityflux.stages._bias import BIAS_BLOCK

        h = transport_models.add_block(h, state, BIAS_BLOCK, bias)
    return h
