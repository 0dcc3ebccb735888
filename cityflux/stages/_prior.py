"""Prior stage: the inversion grid, the prior flux from inventories (regridded, point sources,
temporal profiles) and the prior covariance B (flux blocks + background offsets)."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

import priors
from cityflux.config import DomainConfig, InversionConfig, PriorConfig
from cityflux.stages._plausibility import check_distinct_inventories, check_inventory, naming
from inversion import FLUX_UNITS, Grid, StateVector, TimeAxis
from inversion.covariance import (
    BlockDiagonalCovariance,
    DiagonalCovariance,
    KroneckerCovariance,
    PointsCorrelation,
    TemporalCorrelation,
    kronecker_prior,
)

__all__ = ["build_grid", "prior_covariance", "prior_flux", "prior_std"]

logger = logging.getLogger(__name__)


def build_grid(domain: DomainConfig) -> Grid:
    """The inversion grid: local azimuthal-equidistant, or lon/lat from ``bounds``."""
    if domain.is_lonlat:
        return Grid.from_bounds("EPSG:4326", domain.bounds, domain.resolution_deg)
    return Grid.local(
        domain.center_lon, domain.center_lat, nx=domain.nx, ny=domain.ny,
        resolution_m=domain.resolution_m,
    )  # fmt: skip


def _profiles(cfg: PriorConfig) -> priors.TemporalProfiles:
    path = cfg.temporal.profile_path()
    return (
        priors.TemporalProfiles.default()
        if path is None
        else priors.TemporalProfiles.from_csv(path)
    )


def _disaggregate(flux: xr.DataArray, time: TimeAxis, cfg: PriorConfig) -> xr.DataArray:
    t = cfg.temporal
    return priors.temporal_disaggregate(
        flux, time, _profiles(cfg), utc_offset=t.utc_offset, timezone=t.timezone,
        apply=t.apply, profile_for=t.profile_for or None,
        normalize_over_period=t.normalize_over_period,
    )  # fmt: skip


def prior_flux(cfg: PriorConfig, grid: Grid, time: TimeAxis) -> tuple[xr.DataArray, dict]:
    """Prior CO2 flux (sector, time, y, x) [µmol m-2 s-1] on the state grid and time bins.

    Each inventory is read (``priors.read_inventory``), conservatively regridded
    (``priors.regrid``) and spread over the state bins with the temporal profiles; point sources
    are placed in their cells. Inventories of the same sector are summed; sectors keep the
    order in which they first appear.

    Returns
    -------
    flux : xarray.DataArray
    info : dict
        Per inventory: file, sector(s), uncovered fraction of the domain.
    """
    parts: list[xr.DataArray] = []
    info: dict = {"inventories": []}
    check_distinct_inventories(cfg.inventories)
    for i, inv in enumerate(cfg.inventories):
        opts = dict(inv.options)
        if inv.sector is not None:
            opts.setdefault("sector", inv.sector)
        with naming(inv.path, f"prior.inventories[{i}]", opts):
            native = priors.read_inventory(inv.path, format=inv.format, **opts)
            check_inventory(native, inv.path)
            on_grid = priors.regrid(native, grid)
        parts.append(_disaggregate(on_grid, time, cfg))
        info["inventories"].append(
            {
                "path": str(inv.path),
                "format": native.attrs.get("format", inv.format),
                "sectors": [str(s) for s in parts[-1]["sector"].values],
                "regrid_uncovered_fraction": float(
                    on_grid.attrs.get("regrid_uncovered_fraction", 0)
                ),
            }
        )
    if cfg.point_sources is not None:
        ps_path = cfg.point_sources.path
        with naming(ps_path, "prior.point_sources", cfg.point_sources.options):
            points = priors.read_point_sources(ps_path, **cfg.point_sources.options)
            placed = priors.place_point_sources(points, grid)
            if len(points) and placed.iy.size == 0:
                raise ValueError(
                    f"{ps_path}: none of the {len(points)} point sources lies inside the "
                    "inversion domain, so the file adds nothing to the prior; check the "
                    "lon/lat columns (swapped?) and the domain"
                )
            check_inventory(placed.flux, ps_path)
        parts.append(_disaggregate(placed.flux.assign_attrs(units=FLUX_UNITS), time, cfg))
        info["point_sources"] = {"n_placed": int(placed.iy.size), "n_outside": placed.n_outside}
    sectors = list(dict.fromkeys(str(s) for p in parts for s in p["sector"].values))
    values = np.zeros((len(sectors), time.nt, *grid.shape))
    for p in parts:
        arr = p.transpose("sector", "time", "y", "x").values
        for k, s in enumerate(p["sector"].values):
            values[sectors.index(str(s))] += arr[k]
    if not np.isfinite(values).all():
        raise ValueError("prior: the prior flux has non-finite values; check the inventories")
    flux = xr.DataArray(
        values,
        dims=("sector", "time", "y", "x"),
        coords={"sector": sectors, "time": time.starts, **grid.coords()},
        name="flux_prior",
        attrs={"units": FLUX_UNITS, "long_name": "prior CO2 flux"},
    )
    return flux, info


def prior_std(flux: xr.DataArray, cfg: PriorConfig, inv: InversionConfig) -> xr.DataArray:
    """Prior std max(fraction · |flux|, floor) [µmol m-2 s-1] (``priors.PriorUncertainty``)."""
    unc = priors.PriorUncertainty(
        fraction=dict(cfg.relative_std_by_sector) or cfg.relative_std,
        default_fraction=cfg.relative_std, floor=cfg.floor_std, spatial_kind=inv.spatial_kind,
        length_km=inv.spatial_length_km, tau_hours=inv.temporal_length_h,
    )  # fmt: skip
    return unc.std(flux)


def prior_covariance(
    std: xr.DataArray, state: StateVector, inv: InversionConfig, extra_std: dict[str, float]
) -> BlockDiagonalCovariance:
    """B: one Kronecker block D (C_t ⊗ C_s) D per sector, plus a diagonal block per extra block.

    Projected grids use the FFT grid correlation (spacing from ``Grid.spacing_km``); lon/lat
    grids a great-circle :class:`PointsCorrelation` of the cell centres. ``extra_std`` gives
    the prior std of each extra block of the state (background offsets, boundary curtains)
    [its units, ppm].

    Raises
    ------
    KeyError
        If an extra block of the state has no entry in ``extra_std``.
    """
    grid, time = state.grid, state.time
    s = std.transpose("sector", "time", "y", "x").values
    step_h = float(time.hours[0])
    if not grid.is_geographic:
        flux_blocks = kronecker_prior(
            s, grid.shape, grid.spacing_km, inv.spatial_kind, inv.spatial_length_km,
            nt=time.nt, step_hours=step_h, tau_hours=inv.temporal_length_h,
            n_sectors=len(state.sectors),
        ).blocks  # fmt: skip
    else:
        spatial = PointsCorrelation(grid.lat, grid.lon, inv.spatial_kind, inv.spatial_length_km)
        temporal = TemporalCorrelation(inv.temporal_length_h, times_hours=time.center_hours)
        flux_blocks = [
            KroneckerCovariance(s[k].reshape(time.nt, grid.size), spatial, temporal)
            for k in range(len(state.sectors))
        ]
    blocks = list(flux_blocks)
    for name, block in state.blocks.items():
        if name == "flux":
            continue
        if name not in extra_std:
            raise KeyError(f"prior_covariance: no prior std for the state block {name!r}")
        blocks.append(DiagonalCovariance(np.full(block.size, extra_std[name] ** 2), name=name))
    return BlockDiagonalCovariance(blocks)
