"""Truths and observations of the synthetic city, drawn from the TRUE covariances.

The truth is the prior plus a draw from the true prior covariance; the observations are the
truth seen through the true transport plus a draw from the true observation covariance and
any site biases. The true operators are built by the same stages as the case's, with the
departures of ``synthetic.truth`` (:class:`cityflux.config.TruthConfig`); with the defaults they
ARE the case's operators.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import xarray as xr

from cityflux import stages
from cityflux.case import Case
from cityflux.config import CityfluxConfig

from ._generate import SyntheticWorld

__all__ = ["TruthModel", "observe", "truth_model"]

logger = logging.getLogger(__name__)

#: Perturbed transports drawn for ``synthetic.truth.transport`` (draws cycle through them).
N_TRANSPORT_MEMBERS = 16


@dataclass(frozen=True, eq=False)
class TruthModel:
    """The true prior covariance, transports, observation-error scale and biases.

    Attributes
    ----------
    B : covariance operator
        True prior covariance (n_state²).
    H : list of scipy.sparse.csr_array
        True observation operators (n_obs, n_state); draw ``d`` uses ``H[d % len(H)]``.
    R : covariance operator
        The case's observation covariance; the true one is ``mismatch_scale²`` times it.
    mismatch_scale : float
    bias : numpy.ndarray
        (n_obs,) constant bias of each observation [ppm].
    lognormal : cityflux.positivity.LogPrior or None
        A log-normal truth: ``x = s exp(u)`` on the flux with ``u ~ N(u_prior, B)``
        (``B`` is then the true covariance of u); None: ``x ~ N(x_prior, B)``.
    """

    B: Any
    H: list[sp.csr_array]
    R: Any
    mismatch_scale: float
    bias: np.ndarray
    lognormal: Any = None

    def draw(
        self, case: Case, n: int, rng: np.random.Generator, first: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` truths and observation vectors.

        Parameters
        ----------
        case : Case
        n : int
            Number of draws.
        rng : numpy.random.Generator
        first : int
            Index of the first draw (selects the transport member of each draw).

        Returns
        -------
        x_truth : numpy.ndarray
            (n, n_state) truths [state units].
        y : numpy.ndarray
            (n, n_obs) observed enhancements [ppm].
        """
        W = rng.standard_normal((self.B.sqrt_dim, n))
        if self.lognormal is None:
            X = case.x_prior[:, None] + self.B.sqrt_matvec(W)
        else:
            U = self.lognormal.u_prior[:, None] + self.B.sqrt_matvec(W)
            p = self.lognormal.positive
            X = U.copy()
            X[p] = self.lognormal.scale[p, None] * np.exp(U[p])
        Z = rng.standard_normal((self.R.sqrt_dim, n))
        E = self.mismatch_scale * self.R.sqrt_matvec(Z)
        Y = np.empty((case.y.size, n))
        member = (first + np.arange(n)) % len(self.H)
        for m in np.unique(member):
            sel = member == m
            Y[:, sel] = self.H[m] @ X[:, sel]
        Y += E + self.bias[:, None]
        return X.T, Y.T


def truth_model(case: Case, cfg: CityfluxConfig, world: SyntheticWorld) -> TruthModel:
    """The true operators of the synthetic case (``cfg.synthetic.truth``).

    Raises
    ------
    ValueError
        If ``synthetic.truth.site_bias_ppm`` names a site that has no observation, or a
        transport perturbation (or a transport ensemble) is asked for with footprint
        transport.
    """
    truth = cfg.synthetic.truth
    B = case.B
    dist = truth.flux_distribution
    if dist is None:
        dist = "lognormal" if cfg.inversion.positivity == "lognormal" else "normal"
    lognormal = None
    if dist == "lognormal":
        from cityflux.positivity import log_prior

        lognormal = log_prior(
            case, cfg, std_scale=truth.prior_error_scale, length_scale=truth.length_scale
        )
        B = lognormal.B
    elif truth.prior_error_scale != 1.0 or truth.length_scale != 1.0:
        nf = case.state.n_flux
        std = np.sqrt(case.B.diag()[:nf]).reshape(case.state.flux_shape) * truth.prior_error_scale
        std_da = xr.DataArray(std, dims=("sector", "time", "y", "x"))
        inv = cfg.inversion.model_copy(
            update={"spatial_length_km": cfg.inversion.spatial_length_km * truth.length_scale}
        )
        B = stages.prior_covariance(std_da, case.state, inv, stages.extra_prior_std(cfg))
    H = [case.H]
    R = case.R
    ensemble = cfg.transport.ensemble is not None
    if ensemble:  # the inversion's H is an ensemble mean and its R has the ensemble part
        R = stages.observation_covariance(
            case.obs.drop_vars(stages.ENSEMBLE_VAR), case.observation_errors
        )
    if truth.transport.active or ensemble:
        if cfg.transport.model != "plume":
            raise ValueError(
                "synthetic.truth.transport / transport.ensemble: the synthetic truth's "
                f"transport needs the plume model (transport.model is {cfg.transport.model!r})"
            )
        from cityflux.ensemble import perturb_met

        rng = np.random.default_rng([world.seed, 2])
        groups = stages.offset_labels(case.obs, cfg.background.offsets)
        bias = stages.site_bias_block(case.obs, cfg.background.site_bias)
        base = cfg.transport.model_copy(update={"ensemble": None})
        H = []
        for _ in range(N_TRANSPORT_MEMBERS if truth.transport.active else 1):
            met = perturb_met(world.met, rng, truth.transport) if truth.transport.active else (
                world.met
            )  # fmt: skip
            tr = stages.transport_operator(case.obs, case.state, base, met)
            H.append(
                stages.full_operator(tr, case.state, groups, None if bias is None else bias[0])
            )
    sites = case.obs["site"].values.astype(str)
    bias = np.zeros(sites.size)
    for site, ppm in truth.site_bias_ppm.items():
        sel = sites == site
        if not sel.any():
            raise ValueError(
                f"synthetic.truth.site_bias_ppm: site {site!r} has no observation; sites are "
                f"{sorted(set(sites))}"
            )
        bias[sel] += ppm
    return TruthModel(
        B=B, H=H, R=R, mismatch_scale=truth.mismatch_scale, bias=bias, lognormal=lognormal
    )


def observe(case: Case, cfg: CityfluxConfig, world: SyntheticWorld) -> Case:
    """The case with one truth and its observations (seeded by ``synthetic.seed``).

    Returns
    -------
    Case
        ``x_truth`` set, ``y`` and ``obs["value"]`` the observed enhancements [ppm].
    """
    model = truth_model(case, cfg, world)
    x, y = model.draw(case, 1, np.random.default_rng([world.seed, 1]))
    if not cfg.synthetic.truth.as_assumed:
        logger.info("synthetic truth departs from the assumptions: %s", cfg.synthetic.truth)
    return case.with_data(y[0], x[0])
