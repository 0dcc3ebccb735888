"""Configuration sections used by real-data runs (``cityflux run`` without ``synthetic:``).

Meteorology of the plume model, background handling, observation error settings, regions,
temporal profiles and point sources of the prior. See :mod:`cityflux.config` for the whole file.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from cityflux._config_base import Section, duration, resolve_path
from cityflux._config_hyper import SiteBiasConfig

__all__ = [
    "BackgroundConfig",
    "BoundaryConfig",
    "MetConfig",
    "ObservationErrorsConfig",
    "OffsetConfig",
    "PointSourcesConfig",
    "RegionsConfig",
    "SamplingConfig",
    "TemporalConfig",
]

ErrorSpec = float | dict[str, float]


class MetConfig(Section):
    """Hourly, domain-uniform meteorology of the plume model.

    Either ``path``: a CSV with columns ``time`` (UTC start of the hour), ``wind_speed``
    [m s-1], ``wind_direction`` [degrees, blowing from], ``boundary_layer_height`` [m],
    ``stability`` (Pasquill A–F) and optional ``pressure`` [hPa], ``temperature`` [K]; or the
    four constants, applied to every hour of the period.
    """

    path: Path | None = None
    wind_speed: float | None = Field(default=None, gt=0.0, description="[m s-1]")
    wind_direction: float | None = Field(default=None, description="[degrees, from]")
    boundary_layer_height: float | None = Field(default=None, gt=0.0, description="[m]")
    stability: Literal["A", "B", "C", "D", "E", "F"] | None = None
    pressure: float = Field(default=1013.25, gt=0.0, description="[hPa]")
    temperature: float = Field(default=288.15, gt=0.0, description="[K]")

    @field_validator("path", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _one_source(self) -> MetConfig:
        consts = (self.wind_speed, self.wind_direction, self.boundary_layer_height, self.stability)
        given = [c is not None for c in consts]
        if self.path is None and not all(given):
            raise ValueError(
                "give either 'path' (met CSV) or all of wind_speed, wind_direction, "
                "boundary_layer_height and stability"
            )
        if self.path is not None and any(given):
            raise ValueError("give either 'path' or the constant values, not both")
        return self


class OffsetConfig(Section):
    """Background offsets solved for in the state: one per site, per kind, or none.

    ``std_ppm`` [ppm] is their prior standard deviation (prior mean 0).
    """

    by: Literal["site", "kind", "none"] = "site"
    std_ppm: float = Field(default=1.0, gt=0.0, description="[ppm]")


class BackgroundConfig(Section):
    """How the background is removed from the observations before the inversion.

    ``method``: ``none`` (values are already enhancements), ``constant`` (subtract
    ``value_ppm``), ``quantile`` (``quantile`` of each ``window``, see
    ``observations.background_quantile``) or ``upwind`` (hourly value of site ``site``).
    ``error_ppm`` [ppm] overrides the background uncertainty the method estimates.
    ``column_apriori``: with a method other than ``none``, column soundings that carry their
    retrieval's prior profile (``co2_apriori``) have the apriori term ``Σ h_k (1 − a_k) x_a,k``
    subtracted first (OCO-2 Lite / TCCON linearised retrieval), so that the background method
    estimates ``Σ h_k a_k b_k`` and the rest is the ``Σ h_k a_k`` enhancement that the column
    rows of H model; ``keep`` leaves the values as read. ``site_bias``: an optional bias
    state per site (constant or per day, see :class:`SiteBiasConfig`).
    """

    method: Literal["none", "constant", "quantile", "upwind"] = "none"
    value_ppm: float | None = Field(default=None, description="[ppm] for method=constant")
    quantile: float = Field(default=0.1, gt=0.0, lt=1.0)
    window: str = "1D"
    per_site: bool = False
    min_count: int = Field(default=5, ge=1)
    site: str | None = None
    error_ppm: float | None = Field(default=None, ge=0.0, description="[ppm]")
    column_apriori: Literal["subtract", "keep"] = "subtract"
    offsets: OffsetConfig = OffsetConfig()
    site_bias: SiteBiasConfig = SiteBiasConfig()

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return duration(value, "a window", example="'1D' or '6h'")

    @model_validator(mode="after")
    def _needs(self) -> BackgroundConfig:
        if self.method == "constant" and self.value_ppm is None:
            raise ValueError("method='constant' needs value_ppm [ppm]")
        if self.method == "upwind" and not self.site:
            raise ValueError("method='upwind' needs 'site' (the upwind site code)")
        return self


class ObservationErrorsConfig(Section):
    """Error components set per observation kind (or for all kinds) [ppm].

    ``transport`` and ``representation`` replace the readers' values (a number for every kind or
    ``{kind: ppm}``); ``correlation_lengths`` overrides ``observations.CORRELATION_LENGTHS``
    (hours for towers/lidar, km for columns); ``correlated_components`` are correlated within
    a correlation group (site-day, overpass, scan), the other components are diagonal.
    In-situ observations are converted to ``calibration_scale`` (``observations.convert_scale``;
    null: no conversion), those without a stated scale are taken as on it
    (``unspecified_scale: assume-target``, with a warning) or refused (``refuse``); the
    calibration component is the scale's stated uncertainty where the data give none, unless
    ``calibration`` [ppm] sets it.
    """

    transport: ErrorSpec | None = None
    representation: ErrorSpec | None = None
    calibration: ErrorSpec | None = None
    calibration_scale: str | None = "WMO CO2 X2019"
    unspecified_scale: Literal["assume-target", "refuse"] = "assume-target"
    correlation_lengths: dict[str, float] = Field(default_factory=dict)
    correlated_components: tuple[str, ...] = ("transport", "representation")

    @field_validator("correlation_lengths")
    @classmethod
    def _lengths(cls, value: dict[str, float]) -> dict[str, float]:
        kinds = ("tower", "column", "lidar_path", "lidar_profile")
        unknown = sorted(set(value) - set(kinds))
        if unknown:
            raise ValueError(f"unknown observation kinds {unknown}; use some of {list(kinds)}")
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(
                f"correlation lengths must be > 0 (hours for towers/lidar, km for columns), "
                f"found {bad}"
            )
        return value

    @field_validator("transport", "representation")
    @classmethod
    def _non_negative(cls, value: ErrorSpec | None) -> ErrorSpec | None:
        values = value.values() if isinstance(value, dict) else [value]
        bad = [v for v in values if v is not None and not v >= 0]
        if bad:
            raise ValueError(f"uncertainties must be >= 0 [ppm], found {bad}")
        return value

    @field_validator("correlated_components")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = ("instrument", "calibration", "transport", "representation", "background")
        bad = [c for c in value if c not in known]
        if bad:
            raise ValueError(f"unknown error components {bad}; use some of {list(known)}")
        return value


class RegionsConfig(Section):
    """Region polygons (GeoJSON, Shapefile, GeoPackage) for totals per region."""

    path: Path
    name_column: str | None = None
    by_sector: bool = True
    by_day: bool = False

    @field_validator("path", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


class TemporalConfig(Section):
    """Temporal disaggregation of the inventories (``priors.temporal_disaggregate``).

    ``profiles``: ``default`` (TNO-MACC) or a CSV path (sector, profile, index, factor);
    ``timezone`` (IANA) or ``utc_offset`` [h] for local time; ``apply`` subset of hour, dow,
    month (default: chosen from the inventory's time resolution); ``profile_for`` maps
    inventory sectors to profile sectors (e.g. ``{total: flat}``).
    """

    profiles: str = "default"
    timezone: str | None = None
    utc_offset: float | None = None
    apply: tuple[Literal["hour", "dow", "month"], ...] | None = None
    profile_for: dict[str, str] = Field(default_factory=dict)
    normalize_over_period: bool = False

    @field_validator("profiles", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> str:
        return "default" if value == "default" else str(resolve_path(value, info))

    @model_validator(mode="after")
    def _tz(self) -> TemporalConfig:
        if self.timezone is not None and self.utc_offset is not None:
            raise ValueError("give either timezone or utc_offset, not both")
        if self.timezone is not None:
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {self.timezone!r}; use an IANA name such as "
                    "'Europe/Zurich' or 'America/Denver', or utc_offset [h]"
                ) from None
        if self.utc_offset is not None and not -14 <= self.utc_offset <= 14:
            raise ValueError(f"utc_offset must lie in [-14, 14] h, found {self.utc_offset}")
        return self

    def profile_path(self) -> Path | None:
        """The profile CSV, or None for the default profiles."""
        return None if self.profiles == "default" else Path(self.profiles)


class PointSourcesConfig(Section):
    """Point sources added to the gridded prior (``priors.read_point_sources`` options)."""

    path: Path
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("path", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


class SamplingConfig(Section):
    """How observations are sampled by receptors (``transport_models.SamplingOptions``).

    The same settings write the receptor table (``cityflux receptors``) and match footprints to
    observations, so they must not change in between. ``chord_spacing_m`` [m]: largest spacing
    of the samples along a lidar chord or range segment, at least ``min_chord_points`` per
    chord; ``temperature_k`` [K]: temperature of the scale height that places column levels.
    """

    chord_spacing_m: float = Field(default=250.0, gt=0.0, description="[m]")
    min_chord_points: int = Field(default=5, ge=1)
    temperature_k: float = Field(default=288.15, gt=150.0, lt=350.0, description="[K]")


class BoundaryConfig(Section):
    """Lateral boundary inflow solved for in the state (footprint transport only).

    The footprint files' particle-location sensitivities (NAME ``particle_locations_{n,e,s,w}``)
    give, per receptor, the fraction of particles leaving through each side of the domain in
    each height band and time window; the state gets one curtain mole fraction per (side,
    band, window) [ppm, relative to the background removed from the observations], prior mean
    0 and prior std ``std_ppm``. ``bands_m``: increasing band edges [m] (one band when empty);
    ``window``: time window of the curtains (pandas offset).
    """

    bands_m: tuple[float, ...] = ()
    window: str = "1D"
    std_ppm: float = Field(default=1.0, gt=0.0, description="[ppm]")

    @field_validator("bands_m")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if value and (len(value) < 2 or any(b <= a for a, b in itertools.pairwise(value))):
            raise ValueError(f"bands_m must be at least two increasing edges [m], found {value}")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return duration(value, "a window", example="'1D'")
