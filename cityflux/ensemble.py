"""Transport error from an ensemble (``transport.ensemble``): meteorology ensembles of the plume
model (hourly perturbations of wind direction, speed, mixing height and stability, also used by
the OSSE's ``synthetic.truth.transport``) and the stage that turns an ensemble of transports
(perturbed plume met, or several footprint folders) into the ensemble-mean H and the anomalies
of the ``transport_ensemble`` component of R (:mod:`cityflux.stages._ensemble`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from cityflux._config_uncertainty import EnsembleConfig, MetPerturbation
from cityflux.config import TransportConfig
from cityflux.stages import TransportResult, transport_operator
from inversion import StateVector
from transport_models import PlumeMet

__all__ = ["PASQUILL", "ensemble_transport", "met_members", "perturb_met"]

logger = logging.getLogger(__name__)

#: Pasquill stability classes, most unstable first.
PASQUILL = ("A", "B", "C", "D", "E", "F")


def perturb_met(met: PlumeMet, rng: np.random.Generator, p: MetPerturbation) -> PlumeMet:
    """The met with independent hourly perturbations (:class:`MetPerturbation`).

    Direction + N(0, std²) [degrees]; speed [m s-1] and mixing height [m] × (1 + N(0, std²)),
    at least 0.2 × their value; the Pasquill class moved one class (up or down, equally
    likely, kept within A–F) with probability ``stability_shift_prob``. Only the perturbations
    that are set draw random numbers.

    Parameters
    ----------
    met : transport_models.PlumeMet
    rng : numpy.random.Generator
    p : MetPerturbation

    Returns
    -------
    transport_models.PlumeMet
    """
    n = met.n_hours
    d_dir = rng.normal(0.0, p.wind_direction_std_deg, n) if p.wind_direction_std_deg else 0.0
    f_spd = 1.0 + rng.normal(0.0, p.wind_speed_rel_std, n) if p.wind_speed_rel_std else 1.0
    f_blh = 1.0 + rng.normal(0.0, p.mixing_height_rel_std, n) if p.mixing_height_rel_std else 1.0
    stability = np.broadcast_to(np.asarray(met.stability, dtype=str), (n,))
    if p.stability_shift_prob:
        shift = (rng.uniform(size=n) < p.stability_shift_prob) * rng.choice([-1, 1], n)
        code = np.searchsorted(np.array(PASQUILL), stability)
        stability = np.array(PASQUILL)[np.clip(code + shift, 0, len(PASQUILL) - 1)]
    return PlumeMet(
        times=met.times,
        wind_speed=met.wind_speed * np.maximum(f_spd, 0.2),
        wind_direction=np.mod(met.wind_direction + d_dir, 360.0),
        boundary_layer_height=met.boundary_layer_height * np.maximum(f_blh, 0.2),
        stability=np.asarray(stability).astype(str),
        pressure=met.pressure,
        temperature=met.temperature,
    )


def met_members(met: PlumeMet, p: MetPerturbation, n: int, seed: int) -> list[PlumeMet]:
    """``n`` perturbed meteorologies (seeded by ``seed``)."""
    rng = np.random.default_rng([seed, 5])
    return [perturb_met(met, rng, p) for _ in range(n)]


def _flux_draws(x_flux: np.ndarray, B_flux: Any, k: int, seed: int) -> np.ndarray:
    """``[x_prior, B^{1/2} ξ_1, …, B^{1/2} ξ_k]`` (n_flux, k + 1) [µmol m-2 s-1]."""
    X = np.empty((x_flux.size, k + 1))
    X[:, 0] = x_flux
    if k:
        rng = np.random.default_rng([seed, 6])
        X[:, 1:] = B_flux.sqrt_matvec(rng.standard_normal((B_flux.sqrt_dim, k)))
    return X


def _check_same_observations(keeps: list[np.ndarray], cfg: EnsembleConfig, obs: xr.Dataset) -> None:
    """The last member must cover the same observations as the first (footprint ensembles)."""
    first, keep = keeps[0], keeps[-1]
    if np.array_equal(keep, first):
        return
    diff = np.flatnonzero(keep != first)
    i = int(diff[0])
    where = "only the first covers it" if first[i] else "the first lacks it"
    raise ValueError(
        f"transport.ensemble.footprints: the footprint sets do not cover the same observations: "
        f"{str(cfg.footprints[0])!r} has complete footprints for {int(first.sum())} "
        f"observations, {str(cfg.footprints[len(keeps) - 1])!r} for {int(keep.sum())}; "
        f"{diff.size} differ, the first is site {obs['site'].values[i]!s} at "
        f"{pd.Timestamp(obs['time'].values[i])} ({where}); every member needs footprints for "
        "the same receptors"
    )


def ensemble_transport(
    obs: xr.Dataset,
    state: StateVector,
    cfg: TransportConfig,
    met: Any,
    x_flux: np.ndarray,
    B_flux: Any,
) -> tuple[TransportResult, np.ndarray]:
    """Ensemble-mean flux block of H and the scaled anomalies of ``transport.ensemble``.

    Parameters
    ----------
    obs : xarray.Dataset
        ObservationSet after background removal.
    state : StateVector
        Flux state (grid, time bins, sectors).
    cfg : TransportConfig
        With ``ensemble`` set.
    met : transport_models.PlumeMet or None
        The plume meteorology the members perturb (plume model).
    x_flux : numpy.ndarray
        (n_flux,) prior flux [µmol m-2 s-1].
    B_flux : covariance operator
        Prior covariance of the flux block (for the ``flux_samples`` draws).

    Returns
    -------
    TransportResult
        H̄ (n_kept, n_flux), the observations kept (those every member covers) and the report
        of the first member with an ``ensemble`` entry.
    anomalies : numpy.ndarray
        (n_kept, M (K + 1)) [ppm]: R_ens = T ∘ (A Aᵀ).

    Raises
    ------
    ValueError
        If the footprint folders of the members do not cover the same observations.
    """
    ens = cfg.ensemble
    M, K = ens.n_members, ens.flux_samples
    X = _flux_draws(np.asarray(x_flux, float), B_flux, K, ens.seed)
    if ens.footprints:
        members = [(c, None) for c in cfg.member_configs()]
    else:
        base = cfg.model_copy(update={"ensemble": None})
        members = [(base, m) for m in met_members(met, ens, M, ens.seed)]
    H_sum, first, keeps, Y = None, None, [], []
    for m, (member_cfg, member_met) in enumerate(members):
        tr = transport_operator(obs, state, member_cfg, member_met)
        keeps.append(np.asarray(tr.keep, bool))
        if ens.footprints and m:
            _check_same_observations(keeps, ens, obs)
        H_sum = tr.H if H_sum is None else H_sum + tr.H
        Y.append(np.asarray(tr.H @ X))
        first = tr if first is None else first
        logger.info("transport ensemble: member %d/%d (nnz %d)", m + 1, M, tr.H.nnz)
    H_bar = sp.csr_array(H_sum / M)
    Yarr = np.stack(Y)  # (M, n_kept, K + 1)
    A = Yarr - Yarr.mean(axis=0)
    f = ens.inflation_factor
    w = np.full(K + 1, np.sqrt(f / (M - 1)))
    if K:
        w[1:] /= np.sqrt(K)
    A = (A * w[None, None, :]).transpose(1, 0, 2).reshape(A.shape[1], -1)
    spread = np.sqrt(np.einsum("ij,ij->i", A, A))
    kinds = obs["kind"].values.astype(str)[np.flatnonzero(first.keep)]
    report = dict(first.report)
    report["nnz"] = int(H_bar.nnz)
    report["ensemble"] = {
        "kind": "footprints" if ens.footprints else "plume met",
        "members": M,
        "footprints": [str(p) for p in ens.footprints],
        "perturbation": None if ens.footprints else {
            k: getattr(ens, k) for k in ("wind_direction_std_deg", "wind_speed_rel_std",
                                         "mixing_height_rel_std", "stability_shift_prob")
        },
        "flux_samples": K,
        "inflation": f,
        "localisation": ens.localisation.model_dump(),
        "seed": ens.seed,
        "spread_rms_ppm": {
            k: float(np.sqrt(np.mean(spread[kinds == k] ** 2))) for k in np.unique(kinds)
        },
        # rms over members of ‖H_m x_prior − H̄ x_prior‖ / ‖H̄ x_prior‖
        "prior_enhancement_relative_spread": float(
            np.sqrt(np.mean(np.sum((Yarr[:, :, 0] - Yarr[:, :, 0].mean(0)) ** 2, axis=1)))
            / max(float(np.linalg.norm(Yarr[:, :, 0].mean(0))), 1e-300)
        ),
    }  # fmt: skip
    result = TransportResult(
        H=H_bar, keep=first.keep, report=report, boundary=first.boundary,
        boundary_labels=first.boundary_labels,
    )  # fmt: skip
    return result, A
