"""Configuration of the error hyperparameters estimated from the data
(``inversion.hyperparameters``) and of the optional bias state per site
(``background.site_bias``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cityflux._config_base import Section

__all__ = ["HYPERPARAMETERS", "HyperparametersConfig", "SiteBiasConfig"]

#: Hyperparameters that can be estimated, and their units.
HYPERPARAMETERS: dict[str, str] = {
    "prior_scale": "1",  # multiplies the prior std of a sector (or of every sector)
    "mismatch": "1",  # multiplies the observation errors of a kind / site (or of all)
    "offset_std": "ppm",  # prior std of the background offsets
    "bias_std": "ppm",  # prior std of the per-site bias state
    "spatial_length": "km",  # inversion.spatial_length_km
    "temporal_length": "h",  # inversion.temporal_length_h
}


class HyperparametersConfig(Section):
    """Error statistics estimated by maximum marginal likelihood (``cityflux.hyper``).

    ``estimate`` lists what is estimated: ``prior_scale`` (a factor on the prior std, per
    sector or for all: ``prior_scale_by``), ``mismatch`` (a factor on every observation
    error component, per kind, per site or for all: ``mismatch_by``), ``offset_std`` and
    ``bias_std`` [ppm] (prior std of the background offsets / the per-site bias state),
    ``spatial_length`` [km] and ``temporal_length`` [h] (prior correlation lengths). Empty:
    nothing is estimated (the configured values are used).

    ``objective``: ``ml`` (the prior mean is known) or ``reml`` (the prior mean is estimated
    too, one factor per sector on the prior flux, and integrated out). ``hyperprior_log_std``
    [log units]: a Gaussian hyperprior on the log of each estimated parameter, centred on its
    configured value (1.0: a factor e at one standard deviation): the estimate is then the
    maximum of the posterior, which stays off the boundary where the data cannot separate a
    variance from zero, and the propagation integrates over a proper posterior; ``null``:
    pure ML/REML. ``bounds``: per
    parameter name, ``[low, high]`` in its units (factors for prior_scale and mismatch);
    default 1/20 to 20 times the configured value. ``propagate``: the totals average over the
    hyperparameters' approximate posterior (a mixture of Gaussians: mean, std and the 95 %
    interval from its quantiles) instead of using the estimate alone. ``method``: ``exact``
    (Cholesky log-determinant and exact gradient), ``hybrid`` (exact value, Hutchinson
    traces in the gradient, ``probes`` probes), ``stochastic`` (S never formed: stochastic
    Lanczos log-determinant and Hutchinson traces, for when S does not fit the memory
    budget) or ``auto``. A parameter informed by fewer than ``min_obs`` observations (fewer
    than 3 groups for offset_std / bias_std) keeps its configured value, with a warning; one
    whose standard error of log exceeds ``max_log_se`` is reported as not identifiable and
    not propagated. ``profile_points`` points of the profile likelihood per parameter
    (figure and diagnostics.json; 0: none).
    """

    estimate: tuple[str, ...] = ()
    prior_scale_by: Literal["sector", "all"] = "sector"
    mismatch_by: Literal["kind", "site", "all"] = "kind"
    objective: Literal["ml", "reml"] = "ml"
    hyperprior_log_std: float | None = Field(default=1.0, gt=0.0, description="[log units]")
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    propagate: bool = True
    method: Literal["auto", "exact", "hybrid", "stochastic"] = "auto"
    quadrature: Literal["auto", "gauss-hermite", "cubature"] = "auto"
    probes: int = Field(default=64, ge=4, le=4096)
    seed: int = Field(default=0, ge=0)
    min_obs: int = Field(default=10, ge=1)
    max_log_se: float = Field(default=1.0, gt=0.0, description="[log units]")
    profile_points: int = Field(default=13, ge=0, le=101)
    maxiter: int = Field(default=200, ge=1)

    @field_validator("estimate")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if v not in HYPERPARAMETERS]
        if bad:
            raise ValueError(f"unknown hyperparameters {bad}; use some of {list(HYPERPARAMETERS)}")
        if len(set(value)) != len(value):
            raise ValueError(f"hyperparameters listed twice: {list(value)}")
        return value

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        bad = sorted(set(value) - set(HYPERPARAMETERS))
        if bad:
            raise ValueError(
                f"bounds for unknown hyperparameters {bad}; use {list(HYPERPARAMETERS)}"
            )
        for name, (lo, hi) in value.items():
            if not 0 < lo < hi:
                raise ValueError(
                    f"bounds.{name} must be 0 < low < high [{HYPERPARAMETERS[name]}], found "
                    f"[{lo}, {hi}]"
                )
        return value

    @property
    def active(self) -> bool:
        """True when something is estimated."""
        return bool(self.estimate)


class SiteBiasConfig(Section):
    """A bias state per site, solved for with the fluxes (prior mean 0, std ``std_ppm`` [ppm]).

    ``per``: ``none`` (no bias state), ``constant`` (one bias per site over the period) or
    ``day`` (one per site and UTC day). ``kinds``: the observation kinds that get one (sites
    of other kinds have none).
    """

    per: Literal["none", "constant", "day"] = "none"
    std_ppm: float = Field(default=0.5, gt=0.0, description="[ppm]")
    kinds: tuple[str, ...] = ("tower",)

    @model_validator(mode="after")
    def _kinds(self) -> SiteBiasConfig:
        known = ("tower", "column", "lidar_path", "lidar_profile")
        bad = [k for k in self.kinds if k not in known]
        if bad:
            raise ValueError(f"unknown observation kinds {bad}; use some of {list(known)}")
        return self
