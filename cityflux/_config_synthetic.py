"""Configuration of the synthetic city (OSSE): what it generates and how its truth departs from
what the inversion assumes (``synthetic.truth``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cityflux._config_base import Section
from cityflux._config_uncertainty import MetPerturbation

__all__ = ["SyntheticConfig", "TransportPerturbationConfig", "TruthConfig"]


class TransportPerturbationConfig(MetPerturbation):
    """How the truth's transport departs from the inversion's (plume met, per hour).

    The truth's met is the inversion's met with independent hourly perturbations
    (:class:`cityflux.config.MetPerturbation`: wind direction + N(0, std²) [degrees], speed and
    mixing height × (1 + N(0, std²)), Pasquill class shifted with a probability).
    """


class TruthConfig(Section):
    """How the synthetic truth departs from what the inversion assumes.

    The truth is the prior plus a draw from the TRUE prior covariance, whose std is
    ``prior_error_scale`` times the assumed one and whose spatial correlation length is
    ``length_scale`` times the assumed one; observation errors are drawn from the TRUE
    observation covariance, ``mismatch_scale``² times the assumed R (every component);
    ``site_bias_ppm`` adds a constant bias [ppm] to every observation of the named sites;
    ``transport`` perturbs the truth's plume meteorology. ``flux_distribution``: ``normal``
    (truth = prior + a Gaussian draw, may be negative) or ``lognormal`` (truth = prior ·
    exp(z), z drawn from the log-normal prior of ``inversion.lognormal``); null follows
    ``inversion.positivity``. All 1.0 / empty / null: the truth follows the assumptions exactly.
    """

    prior_error_scale: float = Field(default=1.0, gt=0.0, description="true/assumed prior std")
    length_scale: float = Field(default=1.0, gt=0.0, description="true/assumed length [1]")
    mismatch_scale: float = Field(default=1.0, gt=0.0, description="true/assumed R std [1]")
    site_bias_ppm: dict[str, float] = Field(default_factory=dict, description="{site: ppm}")
    transport: TransportPerturbationConfig = TransportPerturbationConfig()
    flux_distribution: Literal["normal", "lognormal"] | None = None

    @property
    def as_assumed(self) -> bool:
        """True when the truth follows the inversion's assumptions."""
        return (
            self.prior_error_scale == 1.0
            and self.length_scale == 1.0
            and self.mismatch_scale == 1.0
            and not any(self.site_bias_ppm.values())
            and not self.transport.active
        )


class SyntheticConfig(Section):
    """The synthetic city (OSSE): generated inputs of ``cityflux demo`` and ``cityflux osse``.

    Prior inventory: ``city_total_kt_per_day`` [kt CO2 day-1] in ``sectors`` spread over a dense
    core of ``core_radius_km`` [km], a road network and ``n_point_sources`` point sources, with
    diurnal and weekly cycles. Networks: ``n_towers`` tower inlets (hourly means at
    ``obs_hours_local`` local solar hours), ``n_overpasses`` satellite snapshot maps (soundings
    every ``sounding_spacing_km`` [km] on ``column_levels`` levels), ``n_chords`` lidar chords of
    2–5 km scanned at the same hours. Errors are 1-sigma [ppm]: ``*_error_ppm`` instrument
    (independent), ``*_corr_ppm`` transport (correlated within a site-day, overpass or scan with
    the lengths of ``observation_errors.correlation_lengths``). Observation values are
    enhancements [ppm] (``background.method`` must be ``none``). ``truth`` sets the truth apart
    from the assumptions.
    """

    seed: int = Field(default=0, ge=0)
    sectors: tuple[str, ...] = ("traffic", "buildings")
    city_total_kt_per_day: float = Field(default=25.0, gt=0.0)
    core_radius_km: float = Field(default=5.0, gt=0.0)
    n_point_sources: int = Field(default=3, ge=0, le=50)
    n_towers: int = Field(default=8, ge=0, le=100)
    obs_hours_local: tuple[int, ...] = (12, 13, 14, 15)
    tower_error_ppm: float = Field(default=1.0, gt=0.0)
    tower_corr_ppm: float = Field(default=0.7, ge=0.0)
    n_overpasses: int = Field(default=3, ge=0, le=50)
    sounding_spacing_km: float = Field(default=2.5, gt=0.0)
    snapshot_size_km: float = Field(default=24.0, gt=0.0)
    column_levels: int = Field(default=20, ge=2, le=400, description="levels of column kernels")
    column_error_ppm: float = Field(default=0.6, gt=0.0)
    column_corr_ppm: float = Field(default=0.3, ge=0.0)
    n_chords: int = Field(default=30, ge=0, le=1000)
    lidar_error_ppm: float = Field(default=0.8, gt=0.0)
    lidar_corr_ppm: float = Field(default=0.4, ge=0.0)
    truth: TruthConfig = TruthConfig()

    @field_validator("sectors")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"sectors must be unique and non-empty, found {list(value)}")
        return value

    @field_validator("obs_hours_local")
    @classmethod
    def _hours(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [h for h in value if not 0 <= h <= 23]
        if bad or not value:
            raise ValueError(f"hours must be integers in 0..23 (non-empty), found {list(value)}")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _some_obs(self) -> SyntheticConfig:
        if self.n_towers + self.n_overpasses + self.n_chords == 0:
            raise ValueError("at least one of n_towers, n_overpasses, n_chords must be > 0")
        return self
