"""Configuration of the error models beyond the linear-Gaussian defaults: the transport error
from an ensemble (``transport.ensemble``) and the non-negative, log-normal posterior
(``inversion.positivity: lognormal`` with ``inversion.lognormal``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from cityflux._config_base import Section, resolve_path

__all__ = ["EnsembleConfig", "LocalisationConfig", "LognormalConfig", "MetPerturbation"]


class MetPerturbation(Section):
    """Hourly perturbations of the plume meteorology (independent each hour).

    ``wind_direction_std_deg`` [degrees]: direction + N(0, std²); ``wind_speed_rel_std`` [1]:
    speed × (1 + N(0, std²)), at least 0.2 × the speed; ``mixing_height_rel_std`` [1]: mixing
    height × (1 + N(0, std²)), at least 0.2 × the height; ``stability_shift_prob`` [1]: the
    probability that the Pasquill class moves one class up or down (A–F, equally likely).
    """

    wind_direction_std_deg: float = Field(default=0.0, ge=0.0, le=180.0)
    wind_speed_rel_std: float = Field(default=0.0, ge=0.0, lt=1.0)
    mixing_height_rel_std: float = Field(default=0.0, ge=0.0, lt=1.0)
    stability_shift_prob: float = Field(default=0.0, ge=0.0, le=1.0)

    @property
    def active(self) -> bool:
        """True when any perturbation is set."""
        return any(
            v > 0
            for v in (
                self.wind_direction_std_deg, self.wind_speed_rel_std,
                self.mixing_height_rel_std, self.stability_shift_prob,
            )
        )  # fmt: skip


class LocalisationConfig(Section):
    """Localisation of the ensemble covariance: ``T ∘ cov`` with a taper in time and distance.

    ``kind``: ``gaspari-cohn`` (compact support: zero beyond twice the length) or
    ``exponential``; ``time_h`` [h] and ``distance_km`` [km] (null: no spatial taper) are the
    lengths; ``within``: ``all`` (every pair of observations inside the taper's support) or
    ``groups`` (only pairs inside the correlation groups of R: site-day, overpass, scan).
    """

    kind: Literal["gaspari-cohn", "exponential"] = "gaspari-cohn"
    time_h: float = Field(default=3.0, gt=0.0, description="[h]")
    distance_km: float | None = Field(default=30.0, gt=0.0, description="[km]")
    within: Literal["all", "groups"] = "all"


class EnsembleConfig(MetPerturbation):
    """Transport error from an ensemble of transports (``transport.ensemble``).

    Plume model: ``members`` perturbed meteorologies (the settings of
    :class:`MetPerturbation`, seeded by ``seed``). Footprints: ``footprints``, a list of at
    least two footprint folders (e.g. two Lagrangian models or met drivers) with footprints for
    the same receptors (``transport.footprint_pattern``). The inversion uses the ensemble mean
    H̄ and adds to R the localised covariance of the members' anomalies ``(H_m − H̄) x``:

        R_ens = f · T ∘ [ Σ_m ( a_m a_mᵀ + (1/K) Σ_k b_mk b_mkᵀ ) / (M − 1) ],
        a_m = (H_m − H̄) x_prior,   b_mk = (H_m − H̄) B^{1/2} ξ_k,

    where the K = ``flux_samples`` draws b add the spread the prior flux uncertainty causes
    (E[x xᵀ] = x_prior x_priorᵀ + B), T is the taper of ``localisation`` and f =
    ``inflation`` (default 1 + 1/M: the error of the M-member mean H̄ itself).
    """

    members: int = Field(default=10, ge=1, le=500)
    footprints: tuple[Path, ...] = ()
    flux_samples: int = Field(default=10, ge=0, le=1000)
    inflation: float | None = Field(default=None, gt=0.0)
    localisation: LocalisationConfig = LocalisationConfig()
    seed: int = Field(default=0, ge=0)

    @field_validator("footprints", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> tuple[Path, ...]:
        if value is None:
            return ()
        if isinstance(value, str | Path):
            value = [value]
        return tuple(resolve_path(v, info) for v in value)

    @model_validator(mode="after")
    def _one_kind(self) -> EnsembleConfig:
        if self.footprints:
            if len(self.footprints) < 2:
                raise ValueError(
                    f"a footprint ensemble needs at least 2 footprint folders (found "
                    f"{len(self.footprints)}); list the folders of every model under footprints"
                )
            if "members" in self.model_fields_set or self.active:
                raise ValueError(
                    "a footprint ensemble's members are its footprint folders: remove members "
                    "and the met perturbations (they apply to the plume model)"
                )
            return self
        if self.members < 2:
            raise ValueError(
                f"an ensemble needs at least 2 members to have a spread (found members="
                f"{self.members}); use 10 or more"
            )
        if not self.active:
            raise ValueError(
                "the plume ensemble perturbs nothing: set wind_direction_std_deg, "
                "wind_speed_rel_std, mixing_height_rel_std or stability_shift_prob (or give "
                "footprints: [DIR1, DIR2] for a footprint ensemble)"
            )
        return self

    @property
    def n_members(self) -> int:
        """M: the footprint folders, or the plume members."""
        return len(self.footprints) if self.footprints else self.members

    @property
    def inflation_factor(self) -> float:
        """f: ``inflation``, or 1 + 1/M."""
        return self.inflation if self.inflation is not None else 1.0 + 1.0 / self.n_members


class LognormalConfig(Section):
    """The log-normal posterior (``inversion.positivity: lognormal``).

    The flux is ``x = x_prior · exp(z)`` cell by cell, with ``z ~ N(μ, B_z)``: B_z has the
    correlations of the Gaussian B and the std ``σ = sqrt(ln(1 + r²))`` with ``r`` the
    Gaussian prior std over the prior flux (``prior.relative_std`` or, where the floor applies,
    ``prior.floor_std / x_prior``), and ``μ = −σ²/2``: each cell's prior mean and std are
    those of the Gaussian prior. Background offsets stay Gaussian (additive). The mode is found
    by Gauss–Newton / Levenberg–Marquardt (at most ``max_iter`` iterations, converged when the
    squared B⁻¹-norm of a step is below ``tol`` × n_obs) with the solver of
    ``inversion.method`` at every step; cells report the Laplace median and quantiles. Totals
    (``totals``): ``laplace`` (default), the log-normal of the Laplace approximation (delta
    method in log space; no sampling); ``rto``, ``n_samples`` randomize-then-optimize samples
    (``seed``; each a perturbed optimisation, at most ``sample_max_iter`` Newton iterations),
    exact in the linear limit but biased where the posterior is skewed; ``importance``,
    ``n_samples`` draws of the Laplace approximation (tempered by ``temper``: data weight
    1/temper) weighted by the exact posterior, consistent for the exact posterior but only
    where the weights do not degenerate (the effective sample size is in diagnostics.json and
    warned about below 100). ``min_prior_flux``
    [µmol m-2 s-1]: cells whose prior flux is below it get this prior instead (counted in
    diagnostics.json); without it a cell with a prior flux <= 0 is an error
    (x_prior · exp(z) cannot move it).
    """

    totals: Literal["laplace", "rto", "importance"] = "laplace"
    n_samples: int = Field(default=1000, ge=20, le=100_000)
    temper: float = Field(default=2.0, ge=1.0, le=100.0)
    seed: int = Field(default=0, ge=0)
    max_iter: int = Field(default=50, ge=1, le=1000)
    tol: float = Field(default=1e-12, gt=0.0, lt=1.0)
    sample_max_iter: int = Field(default=30, ge=1, le=1000)
    min_prior_flux: float | None = Field(default=None, gt=0.0, description="[umol m-2 s-1]")

    def options(self) -> Any:
        """The ``inversion.lognormal.LognormalOptions`` of these settings."""
        from inversion.lognormal import LognormalOptions

        return LognormalOptions(
            max_iter=self.max_iter, tol=self.tol, sample_max_iter=self.sample_max_iter
        )
