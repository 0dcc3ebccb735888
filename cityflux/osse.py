"""The synthetic city: an observing-system simulation experiment (OSSE) with a known truth.

:func:`build_synthetic_city` makes, from a :class:`~cityflux.config.CityfluxConfig` with a
``synthetic`` section, a seeded city on a projected grid: truth emissions (core, roads, point
sources, diurnal and weekly cycles, several sectors), hourly meteorology, a tower network,
satellite snapshot maps and lidar chords, the observation operator ``H`` (plume model plus one
background offset per observation kind), the prior covariance ``B`` and observation covariance
``R``. The prior is the truth plus a draw from N(0, B) and the observations are ``H x_truth``
plus a draw from N(0, R), so the posterior statistics are honest by construction.

Example
-------
>>> from cityflux.config import demo_config_path, load_config
>>> city = build_synthetic_city(load_config(demo_config_path()))  # doctest: +SKIP
>>> post = solve(city.problem())                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

import priors
from cityflux._city import make_emissions
from cityflux._network import (
    make_columns,
    make_lidar,
    make_met,
    make_towers,
    observation_covariance,
)
from cityflux._transport import background_operator, flux_operator
from cityflux.config import CityfluxConfig
from inversion import Grid, StateVector, TimeAxis
from inversion.covariance import BlockDiagonalCovariance, DiagonalCovariance, kronecker_prior
from inversion.problem import LinearProblem

__all__ = ["BACKGROUND_PPM", "KINDS", "SyntheticCity", "build_synthetic_city"]

logger = logging.getLogger(__name__)

#: Observation kinds of the synthetic city, in state (background block) order.
KINDS = ("tower", "column", "lidar_path")

#: Reference background mole fraction of each kind [ppm]; the state solves for offsets to it.
BACKGROUND_PPM = {"tower": 420.0, "column": 418.0, "lidar_path": 420.0}

_COMMON_VARS = (
    "value",
    "time",
    "kind",
    "site",
    "lat",
    "lon",
    "alt",
    "err_instrument",
    "err_calibration",
    "err_transport",
    "err_representation",
    "err_background",
    "group",
)


@dataclass(frozen=True, eq=False)
class SyntheticCity:
    """Everything of one synthetic city inversion.

    Attributes
    ----------
    grid, time, state : Grid, TimeAxis, StateVector
        State space; the state has a ``background`` block (one offset [ppm] per kind).
    met : xarray.Dataset
        Hourly meteorology (wind_speed [m s-1], wind_direction [deg], blh [m], stability).
    obs : xarray.Dataset
        ObservationSet (dim ``obs``) of all kinds; ``value`` [ppm] includes the background.
    obs_by_kind : dict of str to xarray.Dataset
        Full ObservationSets per kind (column kernels, chord end points).
    H : scipy.sparse.csr_array
        (n_obs, n_state) [ppm per state unit].
    B, R : covariance operators
        Prior (n_state²) and observation (n_obs²) error covariances.
    x_truth, x_prior : numpy.ndarray
        (n_state,) truth and prior mean; ``x_prior - x_truth`` is one draw of N(0, B).
    y : numpy.ndarray
        (n_obs,) observations minus the reference background [ppm].
    weights : scipy.sparse.csr_array
        (k, n_state) aggregation weights [t CO2 per (µmol m-2 s-1)] of the totals.
    weight_labels : list of (str, str)
        ``(region, period)`` of each row of ``weights``.
    city_mask : numpy.ndarray
        (y, x) bool.
    qc : dict of str to int
        Observations dropped by QC, per reason.
    """

    grid: Grid
    time: TimeAxis
    state: StateVector
    met: xr.Dataset
    obs: xr.Dataset
    obs_by_kind: dict[str, xr.Dataset]
    H: sp.csr_array
    B: BlockDiagonalCovariance
    R: object
    x_truth: np.ndarray
    x_prior: np.ndarray
    y: np.ndarray
    weights: sp.csr_array
    weight_labels: list[tuple[str, str]]
    city_mask: np.ndarray
    qc: dict[str, int]
    tower_corr_hours: float
    column_corr_km: float
    seed: int
    extra: dict = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Observation kinds present, in state order."""
        present = set(self.obs["kind"].values.astype(str))
        return tuple(k for k in KINDS if k in present)

    @property
    def n_obs_by_kind(self) -> dict[str, int]:
        """Number of observations per kind."""
        kind = self.obs["kind"].values.astype(str)
        return {k: int((kind == k).sum()) for k in self.kinds}

    def kind_mask(self, kinds: Sequence[str] | None) -> np.ndarray:
        """Boolean (n_obs,) mask of the observations of ``kinds`` (all when None)."""
        kind = self.obs["kind"].values.astype(str)
        if kinds is None:
            return np.ones(kind.size, bool)
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"kinds: unknown observation kinds {unknown}; use some of {KINDS}")
        return np.isin(kind, list(kinds))

    def covariance_R(self, mask: np.ndarray | None = None):
        """Observation error covariance of all (or the masked) observations [ppm²]."""
        obs = self.obs if mask is None else self.obs.isel(obs=np.flatnonzero(mask))
        return observation_covariance(
            obs,
            self.grid,
            tower_corr_hours=self.tower_corr_hours,
            column_corr_km=self.column_corr_km,
        )

    def problem(
        self,
        kinds: Sequence[str] | None = None,
        *,
        x_prior: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> LinearProblem:
        """The inversion problem using the observations of ``kinds`` (all when None).

        ``x_prior`` (n_state,) and ``y`` (n_obs,) default to the city's own.
        """
        mask = self.kind_mask(kinds)
        if not mask.any():
            raise ValueError(f"kinds={list(kinds or [])}: no observation of these kinds")
        idx = np.flatnonzero(mask)
        R = self.R if kinds is None else self.covariance_R(mask)
        y_all = self.y if y is None else np.asarray(y, float)
        return LinearProblem(
            H=self.H[idx],
            x_prior=self.x_prior if x_prior is None else x_prior,
            y=y_all[idx],
            B=self.B,
            R=R,
        )

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Fresh realisations with the same truth, network, ``B`` and ``R``.

        Returns
        -------
        x_prior : numpy.ndarray
            (n, n_state) truth plus draws of N(0, B).
        y : numpy.ndarray
            (n, n_obs) ``H x_truth`` plus draws of N(0, R) [ppm].
        """
        W = rng.standard_normal((self.B.sqrt_dim, n))
        Z = rng.standard_normal((self.R.sqrt_dim, n))
        X = self.x_truth[:, None] + self.B.sqrt_matvec(W)
        Y = (self.H @ self.x_truth)[:, None] + self.R.sqrt_matvec(Z)
        return X.T, Y.T

    def totals(self, x: np.ndarray) -> np.ndarray:
        """Aggregate totals ``weights @ x`` (k,) or (k, m) [t CO2]."""
        return self.weights @ x

    def flux_dataset(self, x: np.ndarray, name: str) -> xr.Dataset:
        """State vector as a Dataset (flux (sector, time, y, x) [µmol m-2 s-1] + background)."""
        return self.state.unflatten(x, name=name)


def _aggregation_weights(
    state: StateVector, city_mask: np.ndarray
) -> tuple[sp.csr_array, list[tuple[str, str]]]:
    """Rows of t CO2 per (µmol m-2 s-1): city totals per period, per day, per sector; domain.

    Built with :func:`priors.aggregation_weights`, the same weights a real-data run uses.
    """
    grid, time = state.grid, state.time
    fractions = xr.DataArray(
        np.stack([np.asarray(city_mask, float), np.ones(grid.shape)]),
        dims=("region", "y", "x"),
        coords={"region": ["city", "domain"], "y": grid.y, "x": grid.x},
    )
    fmt = "%Y-%m-%dT%H:%MZ"
    whole = (
        f"{pd.Timestamp(time.edges[0]).strftime(fmt)}/{pd.Timestamp(time.edges[-1]).strftime(fmt)}"
    )
    total = priors.aggregation_weights(state, fractions)
    blocks = [total.matrix[[0]]]
    labels = [("city", whole)]
    day_of_start = time.starts.astype("datetime64[D]")
    if (day_of_start == (time.ends - np.timedelta64(1, "ns")).astype("datetime64[D]")).all():
        daily = priors.aggregation_weights(state, fractions[[0]], by_day=True)
        blocks.append(daily.matrix)
        labels += [("city", str(d)) for d in daily.labels["day"]]
    by_sector = priors.aggregation_weights(state, fractions[[0]], by_sector=True)
    blocks.append(by_sector.matrix)
    labels += [(f"city:{sec}", whole) for sec in by_sector.labels["sector"]]
    blocks.append(total.matrix[[1]])
    labels.append(("domain", whole))
    return sp.csr_array(sp.vstack(blocks, format="csr")), labels


def _combine(parts: dict[str, xr.Dataset]) -> xr.Dataset:
    pieces, offset = [], 0
    for ds in parts.values():
        sub = ds[[v for v in _COMMON_VARS if v in ds]].copy()
        sub["group"] = sub["group"] + offset
        offset = int(sub["group"].max()) + 1
        pieces.append(sub)
    out = xr.concat(pieces, dim="obs")
    for k, v in pieces[0].items():
        out[k].attrs = dict(v.attrs)
    return out


def build_synthetic_city(cfg: CityfluxConfig) -> SyntheticCity:
    """Build the seeded synthetic city described by ``cfg`` (needs a ``synthetic`` section).

    Parameters
    ----------
    cfg : CityfluxConfig
        Uses ``domain``, ``period``, ``prior``, ``transport.column_levels``, ``inversion``
        (correlation kinds and lengths) and ``synthetic``.

    Returns
    -------
    SyntheticCity

    Raises
    ------
    ValueError
        If ``cfg.synthetic`` is missing or no observation falls inside the period.
    """
    syn = cfg.synthetic
    if syn is None:
        raise ValueError("synthetic: the configuration has no 'synthetic' section; add one")
    rng = np.random.default_rng(syn.seed)
    d = cfg.domain
    grid = Grid.local(d.center_lon, d.center_lat, nx=d.nx, ny=d.ny, resolution_m=d.resolution_m)
    time = TimeAxis.regular(cfg.period.start, cfg.period.end, cfg.period.step)
    sectors = tuple(cfg.prior.sectors)
    lon = d.center_lon

    emis = make_emissions(
        grid,
        time,
        sectors,
        rng=rng,
        city_total_kt_per_day=syn.city_total_kt_per_day,
        core_radius_km=syn.core_radius_km,
        n_point_sources=syn.n_point_sources,
        lon=lon,
    )
    met = make_met(time, lon, rng)
    parts: dict[str, xr.Dataset] = {}
    qc = {"column_cloudy": 0}
    if syn.n_towers:
        parts["tower"] = make_towers(
            grid,
            time,
            rng,
            n_towers=syn.n_towers,
            hours_local=syn.obs_hours_local,
            error_ppm=syn.tower_error_ppm,
            corr_ppm=syn.tower_corr_ppm,
            lon=lon,
        )
    if syn.n_overpasses:
        parts["column"], qc["column_cloudy"] = make_columns(
            grid,
            time,
            rng,
            n_overpasses=syn.n_overpasses,
            spacing_km=syn.sounding_spacing_km,
            size_km=syn.snapshot_size_km,
            n_levels=cfg.transport.column_levels,
            error_ppm=syn.column_error_ppm,
            corr_ppm=syn.column_corr_ppm,
            lon=lon,
        )
    if syn.n_chords:
        parts["lidar_path"] = make_lidar(
            grid,
            time,
            rng,
            n_chords=syn.n_chords,
            hours_local=syn.obs_hours_local,
            error_ppm=syn.lidar_error_ppm,
            corr_ppm=syn.lidar_corr_ppm,
            lon=lon,
        )
    kinds = tuple(k for k in KINDS if k in parts)
    state = StateVector(
        grid,
        time,
        sectors,
        extra={"background": list(kinds)},
        extra_units={"background": "ppm"},
    )
    obs = _combine(parts)

    H_flux = sp.vstack(
        [flux_operator(parts[k], grid, time, met, sectors, cfg.transport) for k in kinds],
        format="csr",
    )
    H = sp.csr_array(
        sp.hstack([H_flux, sp.csr_array((H_flux.shape[0], len(kinds)))], format="csr")
        + background_operator(obs, state)
    )

    inv = cfg.inversion
    flux_std = cfg.prior.relative_std * emis.flux + cfg.prior.floor_std
    B_flux = kronecker_prior(
        flux_std,
        grid.shape,
        grid.spacing_km,
        inv.spatial_kind,
        inv.spatial_length_km,
        nt=time.nt,
        step_hours=float(time.hours[0]),
        tau_hours=inv.temporal_length_h,
        n_sectors=len(sectors),
    )
    bg_std = cfg.prior.background_std_ppm
    B = BlockDiagonalCovariance(
        [*B_flux.blocks, DiagonalCovariance(np.full(len(kinds), bg_std**2), name="background")]
    )
    R = observation_covariance(
        obs, grid, tower_corr_hours=syn.tower_corr_hours, column_corr_km=syn.column_corr_km
    )

    x_truth = state.flatten(emis.flux, {"background": rng.normal(0.0, bg_std, len(kinds))})
    x_prior = x_truth + B.sqrt_matvec(rng.standard_normal(B.sqrt_dim))
    y = H @ x_truth + R.sqrt_matvec(rng.standard_normal(R.sqrt_dim))
    ref = np.array([BACKGROUND_PPM[k] for k in obs["kind"].values.astype(str)])
    obs = obs.assign(value=("obs", y + ref, obs["value"].attrs))
    obs["background"] = ("obs", ref, {"units": "ppm", "long_name": "reference background"})
    for k in kinds:
        m = obs["kind"].values == k
        parts[k] = parts[k].assign(value=("obs", obs["value"].values[m], {"units": "ppm"}))

    weights, labels = _aggregation_weights(state, emis.city_mask)
    logger.info(
        "synthetic city: grid %s, %d time steps, %d sectors, n_state=%d, n_obs=%d %s",
        grid.shape,
        time.nt,
        len(sectors),
        state.size,
        y.size,
        {k: int(p.sizes["obs"]) for k, p in parts.items()},
    )
    return SyntheticCity(
        grid=grid,
        time=time,
        state=state,
        met=met,
        obs=obs,
        obs_by_kind=parts,
        H=H,
        B=B,
        R=R,
        x_truth=x_truth,
        x_prior=x_prior,
        y=y,
        weights=weights,
        weight_labels=labels,
        city_mask=emis.city_mask,
        qc=qc,
        tower_corr_hours=syn.tower_corr_hours,
        column_corr_km=syn.column_corr_km,
        seed=syn.seed,
        extra={"flux_std": flux_std, "point_sources": emis.point_sources},
    )
