"""Transport stage: the observation operator H from the plume model or from footprint files,
and the background-offset block of the state."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

import transport_models
from cityflux._config_real import MetConfig, OffsetConfig
from cityflux.config import PeriodConfig, TransportConfig
from inversion import StateVector

__all__ = ["footprint_operator", "load_met", "offset_labels", "plume_flux_operator", "with_offsets"]

logger = logging.getLogger(__name__)

OFFSET_BLOCK = "background"


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


def plume_flux_operator(
    obs: xr.Dataset, state: StateVector, cfg: TransportConfig, met: transport_models.PlumeMet
) -> tuple[sp.csr_array, dict]:
    """Plume H (n_obs, state.size) [ppm per (µmol m-2 s-1)], zero in the extra blocks.

    Rows with no sensitivity to any cell (a receptor upwind of the whole domain, or above the
    mixing layer) are counted in the report and logged as a warning.
    """
    h = transport_models.plume_operator(
        obs, state.grid, state.time, met, sectors=len(state.sectors), dispersion=cfg.dispersion,
        options=transport_models.PlumeOptions(cell_model=cfg.cell_model, subcell=cfg.subcell),
    )  # fmt: skip
    pad = sp.csr_array((h.shape[0], state.size - h.shape[1]))
    zero = int((np.diff(h.indptr) == 0).sum())
    if zero:
        logger.warning(
            "plume transport: %d of %d observations have zero sensitivity to every cell "
            "(upwind of the domain or above the mixing layer); they constrain only the "
            "background offsets",
            zero,
            h.shape[0],
        )
    report = {
        "model": "plume",
        "dispersion": cfg.dispersion,
        "cell_model": cfg.cell_model,
        "met_hours": met.n_hours,
        "nnz": int(h.nnz),
        "zero_rows": zero,
    }
    return sp.csr_array(sp.hstack([h, pad], format="csr")), report


def footprint_operator(
    obs: xr.Dataset, state: StateVector, cfg: TransportConfig
) -> tuple[sp.csr_array, dict]:
    """H from footprint files (``transport_models.assemble_h``), and the assembly report.

    The report (dropped mass below the threshold, sensitivity outside the domain and the time
    axis, uncovered domain fraction) goes into the diagnostics.
    """
    files = cfg.footprint_files()
    if not files:
        raise FileNotFoundError(
            f"transport.footprints: no footprint file in {str(cfg.footprints)!r} matching "
            f"{cfg.footprint_pattern!r}"
        )
    h, report = transport_models.assemble_h(
        files, state, obs, time_tolerance=cfg.time_tolerance,
        position_tolerance=cfg.position_tolerance, format=cfg.footprint_format,
        reader_kwargs=dict(cfg.footprint_options), threshold=cfg.threshold,
        cache_dir=cfg.cache_dir, max_uncovered_area_fraction=cfg.max_uncovered_area_fraction,
    )  # fmt: skip
    rep = {"model": "footprints", **report.to_dict(), "dropped_fraction": report.dropped_fraction}
    return sp.csr_array(h), rep


def offset_labels(obs: xr.Dataset, cfg: OffsetConfig) -> np.ndarray | None:
    """Offset group of each observation (site or kind), or None without offsets."""
    if cfg.by == "none":
        return None
    return obs[cfg.by].values.astype(str)


def with_offsets(h: sp.csr_array, state: StateVector, groups: np.ndarray | None) -> sp.csr_array:
    """``h`` with the offset block (1 ppm per ppm in its group's column) added."""
    if groups is None:
        return h
    block, _ = transport_models.offset_block(groups)
    return transport_models.add_block(h, state, OFFSET_BLOCK, block)
