"""Inputs of the synthetic city: a prior inventory, meteorology and an observing network.

The synthetic city only generates inputs (:func:`generate_inputs`); the case is then built by
the same stages as a real-data run (:func:`cityflux.case.build_case`).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from cityflux import stages
from cityflux.case import CaseInputs
from cityflux.config import CityfluxConfig
from inversion import FLUX_UNITS, TimeAxis
from observations import SourceQC, combine

from ._emissions import make_emissions
from ._footprints import write_synthetic_footprints
from ._network import make_columns, make_lidar, make_met, make_towers

__all__ = ["SyntheticWorld", "generate_inputs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """What the synthetic city knows beyond the inputs (for drawing truths).

    Attributes
    ----------
    met : transport_models.PlumeMet
        The meteorology of the inputs (the inversion's transport).
    point_sources : numpy.ndarray
        (k, 2) row/column of the point sources of the prior inventory.
    seed : int
        ``synthetic.seed``; truths and observation errors of ``run``/``demo`` are drawn from
        ``numpy.random.default_rng([seed, 1])``.
    scratch : tempfile.TemporaryDirectory or None
        Holds the synthetic footprint files when ``transport.footprints`` is not set (removed
        with the world).
    """

    met: object
    point_sources: np.ndarray
    seed: int
    scratch: object = None


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def generate_inputs(cfg: CityfluxConfig) -> tuple[CaseInputs, SyntheticWorld]:
    """Generate the inputs of the synthetic city that ``cfg.synthetic`` describes.

    The prior inventory (``synthetic.sectors``, ``city_total_kt_per_day`` over the city mask),
    hourly meteorology, and the tower, satellite-snapshot and lidar-chord networks (values 0;
    :func:`cityflux.synthetic.observe` fills them) with their error components; the city mask
    as the reporting region ``city`` (totals per sector and per UTC day).

    Parameters
    ----------
    cfg : CityfluxConfig
        With a ``synthetic`` section and a local projected ``domain``.

    Returns
    -------
    inputs : CaseInputs
    world : SyntheticWorld

    Raises
    ------
    ValueError
        If ``cfg.synthetic`` is missing or no observation falls inside the period.
    """
    syn = cfg.synthetic
    if syn is None:
        raise ValueError("synthetic: the configuration has no 'synthetic' section; add one")
    rng = np.random.default_rng(syn.seed)
    grid = stages.build_grid(cfg.domain)
    time = TimeAxis.regular(cfg.period.start, cfg.period.end, cfg.period.step)
    lon = cfg.domain.center_lon
    emis = make_emissions(
        grid, time, syn.sectors, rng=rng, city_total_kt_per_day=syn.city_total_kt_per_day,
        core_radius_km=syn.core_radius_km, n_point_sources=syn.n_point_sources, lon=lon,
    )  # fmt: skip
    met = make_met(time, lon, rng)
    hours = syn.obs_hours_local
    parts, n_cloudy = [], 0
    if syn.n_towers:
        parts.append(
            make_towers(
                grid,
                time,
                rng,
                n_towers=syn.n_towers,
                hours_local=hours,
                error_ppm=syn.tower_error_ppm,
                corr_ppm=syn.tower_corr_ppm,
                lon=lon,
            )
        )
    if syn.n_overpasses:
        columns, n_cloudy = make_columns(
            grid, time, rng, n_overpasses=syn.n_overpasses, spacing_km=syn.sounding_spacing_km,
            size_km=syn.snapshot_size_km, n_levels=syn.column_levels,
            error_ppm=syn.column_error_ppm, corr_ppm=syn.column_corr_ppm, lon=lon,
        )  # fmt: skip
        parts.append(columns)
    if syn.n_chords:
        parts.append(
            make_lidar(
                grid,
                time,
                rng,
                n_chords=syn.n_chords,
                hours_local=hours,
                error_ppm=syn.lidar_error_ppm,
                corr_ppm=syn.lidar_corr_ppm,
                lon=lon,
            )
        )
    for i, part in enumerate(parts):
        n = part.sizes["obs"]
        kind = str(part["kind"].values[0])
        src = SourceQC(source=f"synthetic {kind} network", read=n, kept=n)
        if kind == "column" and n_cloudy:
            src.read += n_cloudy
            src.dropped["cloudy sounding"] = n_cloudy
        parts[i] = stages.append_qc(part, src)
    obs = combine(parts)
    if cfg.observation_errors.calibration_scale is not None:  # synthetic data are on it
        obs["scale"] = ("obs", np.full(obs.sizes["obs"], cfg.observation_errors.calibration_scale))
    obs = stages.apply_error_settings(obs, cfg.observation_errors)

    flux = xr.DataArray(
        emis.flux,
        dims=("sector", "time", "y", "x"),
        coords={"sector": list(syn.sectors), "time": time.starts, **grid.coords()},
        name="flux_prior",
        attrs={"units": FLUX_UNITS, "long_name": "synthetic prior CO2 flux"},
    )
    city = xr.DataArray(
        emis.city_mask[None].astype(float),
        dims=("region", "y", "x"),
        coords={"region": ["city"], **grid.coords()},
    )
    logger.info(
        "synthetic city: grid %s, %d time steps, %d sectors, %d observations",
        grid.shape, time.nt, len(syn.sectors), obs.sizes["obs"],
    )  # fmt: skip
    files, scratch = None, None
    if cfg.transport.model == "footprints":
        folder = cfg.transport.footprints
        if folder is None:
            scratch = tempfile.TemporaryDirectory(prefix="cityflux-synthetic-footprints-")
            folder = Path(scratch.name)
        files = write_synthetic_footprints(obs, grid, time, met, cfg.transport, Path(folder))
    inputs = CaseInputs(
        grid=grid,
        time=time,
        obs=obs,
        prior_flux=flux,
        prior_info={"synthetic": True, "n_point_sources": int(emis.point_sources.shape[0])},
        met=met,
        regions=city,
        by_sector=True,
        by_day=bool(_whole_days(time)),
        input_checksums={
            "synthetic_prior_sha256": _digest(emis.flux),
            "synthetic_network_sha256": _digest(
                obs["time"].values.astype("int64"), obs["lat"].values, obs["lon"].values
            ),
        },
        footprint_files=files,
    )
    world = SyntheticWorld(
        met=met, point_sources=emis.point_sources, seed=syn.seed, scratch=scratch
    )
    return inputs, world


def _whole_days(time: TimeAxis) -> bool:
    day0 = time.starts.astype("datetime64[D]")
    day1 = (time.ends - np.timedelta64(1, "ns")).astype("datetime64[D]")
    return bool((day0 == day1).all())
