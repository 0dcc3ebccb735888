"""Run configuration: YAML parsed once into typed, frozen pydantic models.

A configuration file has the sections ``domain``, ``period``, ``prior``, ``observations``,
``transport``, ``inversion``, ``output`` and, for synthetic cases (OSSE), ``synthetic``. Every
model forbids unknown keys and is frozen, so a parsed configuration is a faithful, immutable
record of what runs. Errors are raised as :class:`ConfigError` (a ``ValueError``) whose message
names the dotted key (``inversion.spatial_length_km``), what was found and how to fix it.

Relative paths in the file are resolved against the directory of the configuration file.

Example
-------
>>> from cityflux.config import demo_config_path, load_config
>>> cfg = load_config(demo_config_path())
>>> cfg.domain.nx
40
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cityflux._config_base import Section as _Section
from cityflux._config_base import duration as _duration
from cityflux._config_base import resolve_path as _resolve_path
from cityflux._config_batch import BatchConfig, ClusterSection, QCConfig
from cityflux._config_cg import CGConfig
from cityflux._config_hyper import HyperparametersConfig, SiteBiasConfig
from cityflux._config_metrology import DesignConfig, VerificationConfig
from cityflux._config_real import (
    BackgroundConfig,
    BoundaryConfig,
    MetConfig,
    ObservationErrorsConfig,
    OffsetConfig,
    PointSourcesConfig,
    RegionsConfig,
    SamplingConfig,
    TemporalConfig,
)
from cityflux._config_synthetic import SyntheticConfig, TransportPerturbationConfig, TruthConfig
from cityflux._config_uncertainty import (
    EnsembleConfig,
    LocalisationConfig,
    LognormalConfig,
    MetPerturbation,
)

__all__ = [
    "BackgroundConfig",
    "BatchConfig",
    "BoundaryConfig",
    "CityfluxConfig",
    "ClusterSection",
    "ConfigError",
    "DomainConfig",
    "EnsembleConfig",
    "HyperparametersConfig",
    "InversionConfig",
    "LocalisationConfig",
    "LognormalConfig",
    "MetConfig",
    "MetPerturbation",
    "ObservationErrorsConfig",
    "ObservationSource",
    "OffsetConfig",
    "OutputConfig",
    "PeriodConfig",
    "PointSourcesConfig",
    "PriorConfig",
    "QCConfig",
    "RegionsConfig",
    "SamplingConfig",
    "SiteBiasConfig",
    "SyntheticConfig",
    "TemporalConfig",
    "TransportConfig",
    "TransportPerturbationConfig",
    "TruthConfig",
    "apply_overrides",
    "check_inputs",
    "config_hash",
    "demo_config_path",
    "load_config",
    "parse_config",
]

#: Spatial prior correlation: isotropic functions of distance, or ``separable_exponential``
#: (exp(−(|Δy| + |Δx|)/L), projected grids only: B products in O(n) without FFT).
CorrelationKind = Literal["exponential", "gaussian", "matern32", "separable_exponential"]


class ConfigError(ValueError):
    """A configuration file is unreadable, has unknown keys, wrong types or missing inputs.

    Attributes
    ----------
    problems : list of (str, str)
        ``(dotted key, message)`` for every problem found.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class DomainConfig(_Section):
    """The inversion grid.

    Either a local projected grid centred on the city: ``resolution_m`` [m] cells, ``nx`` ×
    ``ny`` of them, centred on (``center_lon``, ``center_lat``) [degrees] in an azimuthal
    equidistant projection; or a longitude/latitude grid: ``bounds`` (lon0, lat0, lon1, lat1)
    [degrees] in cells of ``resolution_deg`` [degrees] (e.g. to nest in a footprint grid).
    """

    center_lon: float | None = Field(default=None, ge=-180.0, le=180.0, description="[deg E]")
    center_lat: float | None = Field(default=None, ge=-85.0, le=85.0, description="[deg N]")
    nx: int | None = Field(default=None, ge=2, le=2000, description="number of columns")
    ny: int | None = Field(default=None, ge=2, le=2000, description="number of rows")
    resolution_m: float = Field(default=1000.0, gt=0.0, description="cell size [m]")
    bounds: tuple[float, float, float, float] | None = Field(
        default=None, description="lon0, lat0, lon1, lat1 [degrees] of a lon/lat grid"
    )
    resolution_deg: float | None = Field(default=None, gt=0.0, description="[degrees]")

    @model_validator(mode="after")
    def _one_kind(self) -> DomainConfig:
        local = (self.center_lon, self.center_lat, self.nx, self.ny)
        if self.bounds is None:
            if any(v is None for v in local):
                raise ValueError(
                    "give center_lon, center_lat, nx and ny (local projected grid), or bounds "
                    "and resolution_deg (lon/lat grid)"
                )
            return self
        if any(v is not None for v in local) or self.resolution_deg is None:
            raise ValueError(
                "a lon/lat grid takes 'bounds' and 'resolution_deg' only (remove center_lon, "
                "center_lat, nx, ny)"
            )
        lon0, lat0, lon1, lat1 = self.bounds
        if not (-180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90):
            raise ValueError(
                f"bounds must be lon0 < lon1, lat0 < lat1 in degrees, found {self.bounds}"
            )
        return self

    @property
    def is_lonlat(self) -> bool:
        """True for a longitude/latitude grid."""
        return self.bounds is not None


class PeriodConfig(_Section):
    """The inversion period ``[start, end)`` (UTC) and the state time step (pandas offset)."""

    start: dt.datetime
    end: dt.datetime
    step: str = Field(default="1D", description="state time step, e.g. '6h' or '1D'")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        """Times with a UTC offset become naive UTC (all cityflux times are UTC)."""
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    @field_validator("step")
    @classmethod
    def _check_step(cls, value: str) -> str:
        return _duration(value, "a time step", example="'1h', '6h' or '1D'")

    @model_validator(mode="after")
    def _check_order(self) -> PeriodConfig:
        if self.end <= self.start:
            raise ValueError(
                f"end ({self.end}) must be after start ({self.start}); swap or fix the dates"
            )
        n = (pd.Timestamp(self.end) - pd.Timestamp(self.start)) / pd.Timedelta(self.step)
        if n != int(n):
            raise ValueError(
                f"the period {self.start} – {self.end} is not a whole number of {self.step!r} "
                f"steps (found {n:.4g}); adjust end or step"
            )
        return self


class InventorySource(_Section):
    """A prior inventory file, read with ``priors.read_inventory(path, format=...)``."""

    path: Path
    format: str | None = None
    sector: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("path", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Path:
        return _resolve_path(value, info)


class PriorConfig(_Section):
    """Prior flux and its uncertainty ``B = D (C_t ⊗ C_s) D`` per sector.

    D = max(``relative_std`` [1] (or ``relative_std_by_sector``) · |prior flux|, ``floor_std``
    [µmol m-2 s-1]) (``priors.PriorUncertainty``). The sectors are those of the inventories
    (real runs) or of ``synthetic.sectors``; background offsets take their prior std from
    ``background.offsets.std_ppm``.
    """

    relative_std: float = Field(default=0.5, gt=0.0)
    floor_std: float = Field(default=0.05, gt=0.0, description="[umol m-2 s-1]")
    inventories: tuple[InventorySource, ...] = ()
    relative_std_by_sector: dict[str, float] = Field(default_factory=dict)
    point_sources: PointSourcesConfig | None = None
    temporal: TemporalConfig = TemporalConfig()


class ObservationSource(_Section):
    """One observation input, read with ``observations.read(path, format=format, **options)``.

    ``path`` is a file, a glob pattern (``towers/*.nc``) or a list of files; relative paths are
    taken from the config's folder. ``error_ppm`` [ppm] is added in quadrature to the
    transport error of these observations. Records outside the period or the domain are
    dropped (counted in the QC report) unless ``crop`` is false.
    """

    path: Path | tuple[Path, ...]
    crop: bool = True
    format: str | None = Field(default=None, description="reader name; auto-detected if omitted")
    options: dict[str, Any] = Field(default_factory=dict)
    error_ppm: float | None = Field(
        default=None, gt=0.0, description="model-data mismatch added in quadrature [ppm]"
    )

    @field_validator("path", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Path | tuple[Path, ...]:
        if isinstance(value, list | tuple):
            return tuple(_resolve_path(v, info) for v in value)
        return _resolve_path(value, info)

    def files(self) -> list[Path]:
        """The input files: the path itself, each listed path, or the sorted glob matches."""
        paths = self.path if isinstance(self.path, tuple) else (self.path,)
        out: list[Path] = []
        for p in paths:
            if any(c in str(p) for c in "*?[") and not p.exists():
                out.extend(sorted(Path(p.anchor).glob(str(p.relative_to(p.anchor)))))
            else:
                out.append(p)
        return out


class TransportConfig(_Section):
    """Transport: the built-in Gaussian plume model, or footprint files.

    Plume: ``met`` (see :class:`MetConfig`), ``dispersion``, ``cell_model`` and ``subcell``
    (``transport_models.PlumeOptions``). Footprints: ``footprints`` is a folder (files matching
    ``footprint_pattern``), a glob or a file; ``threshold`` [ppm per (µmol m-2 s-1)] drops small
    entries (the dropped mass is reported); ``cache_dir`` caches the assembled H; footprint
    receptors match the samples of the observations (``sampling``: a point for a tower, levels
    for a column, points along a lidar chord) within ``time_tolerance``,
    ``position_tolerance`` [deg] and ``height_tolerance`` [m]; observations without a complete
    set of footprints are dropped and counted, receptors without an observation are counted;
    ``boundary`` solves for the lateral inflow. Both: ``surface_altitude_m`` [m asl] is the
    ground altitude for heights given above sea level (a per-observation ``surface_altitude``
    in the data takes precedence); ``ensemble`` (:class:`EnsembleConfig`) makes the transport
    error from an ensemble of transports (perturbed plume met, or several footprint folders).
    """

    model: Literal["plume", "footprints"] = "plume"
    footprints: Path | None = Field(default=None, description="footprint folder (model=footprints)")
    footprint_format: str | None = None
    footprint_pattern: str = "*.nc"
    footprint_options: dict[str, Any] = Field(default_factory=dict)
    threshold: float = Field(default=1e-7, ge=0.0, description="[ppm per (umol m-2 s-1)]")
    cache_dir: Path | None = None
    time_tolerance: str = "1min"
    position_tolerance: float = Field(default=1e-3, gt=0.0, description="[degrees]")
    max_uncovered_area_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    height_tolerance: float = Field(
        default=1.0, gt=0.0, description="receptor-sample height match [m]"
    )
    surface_altitude_m: float | None = Field(
        default=None, ge=-500.0, le=9000.0, description="ground altitude [m asl]"
    )
    sampling: SamplingConfig = SamplingConfig()
    boundary: BoundaryConfig | None = None
    met: MetConfig | None = None
    dispersion: Literal["briggs-urban", "briggs-rural"] = "briggs-urban"
    cell_model: Literal["point", "area"] = "area"
    subcell: int = Field(default=1, ge=1, le=10)
    ensemble: EnsembleConfig | None = None

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _resolve_cache(cls, value: Any, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve_path(value, info)

    @field_validator("time_tolerance")
    @classmethod
    def _tol(cls, value: str) -> str:
        return _duration(value, "a duration", allow_zero=True, example="'30min'")

    def footprint_files(self) -> list[Path]:
        """Footprint files: folder contents matching the pattern, glob matches, or the file."""
        p = self.footprints
        if p is None:
            return []
        if p.is_dir():
            return sorted(p.glob(self.footprint_pattern))
        if p.exists():
            return [p]
        return sorted(Path(p.anchor).glob(str(p.relative_to(p.anchor))))

    @field_validator("footprints", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve_path(value, info)

    @model_validator(mode="after")
    def _need_footprints(self) -> TransportConfig:
        if self.boundary is not None and self.model != "footprints":
            raise ValueError(
                "boundary inflow needs footprint files with particle locations "
                "(model: footprints); remove 'boundary' for the plume model"
            )
        ens = self.ensemble
        if ens is not None and bool(ens.footprints) != (self.model == "footprints"):
            raise ValueError(
                f"ensemble: with model={self.model!r} the ensemble is "
                + ("footprint folders (ensemble.footprints: [DIR1, DIR2])"
                   if self.model == "footprints"
                   else "perturbed plume met (members and the *_std settings); remove "
                   "ensemble.footprints or set model: footprints")
            )  # fmt: skip
        if ens is not None and ens.footprints and self.boundary is not None:
            raise ValueError(
                "ensemble.footprints with boundary inflow is not supported; remove one of them"
            )
        return self

    def member_configs(self) -> list[TransportConfig]:
        """One transport configuration per member of a footprint ensemble (none otherwise)."""
        if self.ensemble is None or not self.ensemble.footprints:
            return []
        return [
            self.model_copy(update={"footprints": p, "ensemble": None})
            for p in self.ensemble.footprints
        ]

    def sampling_options(self) -> Any:
        """The ``transport_models.SamplingOptions`` of these settings."""
        from transport_models import SamplingOptions

        s = self.sampling
        return SamplingOptions(
            surface_altitude=self.surface_altitude_m, temperature=s.temperature_k,
            chord_spacing=s.chord_spacing_m, min_chord_points=s.min_chord_points,
        )  # fmt: skip


class InversionConfig(_Section):
    """Solver and prior correlation settings.

    ``method``: ``auto`` picks dense / obs-space / cg by size and ``memory_budget_gib``.
    ``hyperparameters``: error statistics estimated from the data (see
    :class:`HyperparametersConfig`).
    ``positivity``: ``none`` (the linear-Gaussian posterior) or ``lognormal`` (a non-negative
    flux, :class:`LognormalConfig` in ``lognormal``).
    ``spatial_kind``: ``exponential``, ``gaussian``, ``matern32`` (isotropic, by FFT on a
    projected grid) or ``separable_exponential``: exp(−(|Δy| + |Δx|)/L), the product of
    one-dimensional exponentials along the grid axes, whose B products take O(n) recursions
    (about 10 times faster than the FFT at 1.3 M unknowns, ``benchmarks/b_floor.py``); it is
    not isotropic (exp(−√2 d/L) along a diagonal) and needs a projected grid.
    """

    method: Literal["auto", "dense", "obs-space", "cg"] = "auto"
    cg: CGConfig = Field(default_factory=CGConfig)
    spatial_kind: CorrelationKind = "exponential"
    spatial_length_km: float = Field(default=5.0, gt=0.0, description="[km]")
    temporal_length_h: float = Field(default=48.0, gt=0.0, description="e-folding time [h]")
    memory_budget_gib: float = Field(default=4.0, gt=0.0, description="[GiB]")
    hyperparameters: HyperparametersConfig = HyperparametersConfig()
    positivity: Literal["none", "lognormal"] = "none"
    lognormal: LognormalConfig = Field(default_factory=LognormalConfig)


class OutputConfig(_Section):
    """Where and what to write. ``dir`` is relative to the working directory (not the config)."""

    dir: Path = Path("cityflux-out")
    figures: bool = True


class CityfluxConfig(_Section):
    """A complete cityflux run configuration (see the module docstring)."""

    name: str = "cityflux-run"
    domain: DomainConfig
    period: PeriodConfig
    prior: PriorConfig = PriorConfig()
    observations: tuple[ObservationSource, ...] = ()
    transport: TransportConfig = TransportConfig()
    inversion: InversionConfig = InversionConfig()
    output: OutputConfig = OutputConfig()
    background: BackgroundConfig = BackgroundConfig()
    observation_errors: ObservationErrorsConfig = ObservationErrorsConfig()
    regions: RegionsConfig | None = None
    synthetic: SyntheticConfig | None = None
    verification: VerificationConfig = VerificationConfig()
    design: DesignConfig | None = None
    qc: QCConfig = QCConfig()
    batch: BatchConfig = BatchConfig()

    @model_validator(mode="after")
    def _hyper_blocks(self) -> CityfluxConfig:
        est = self.inversion.hyperparameters.estimate
        if "offset_std" in est and self.background.offsets.by == "none":
            raise ValueError(
                "inversion.hyperparameters.estimate lists offset_std but there are no background "
                "offsets; set background.offsets.by (site or kind) or remove offset_std"
            )
        if "bias_std" in est and self.background.site_bias.per == "none":
            raise ValueError(
                "inversion.hyperparameters.estimate lists bias_std but there is no bias state; "
                "set background.site_bias.per (constant or day) or remove bias_std"
            )
        if self.inversion.spatial_kind == "separable_exponential" and self.domain.is_lonlat:
            raise ValueError(
                "inversion.spatial_kind='separable_exponential' correlates along the axes of a "
                "projected grid; domain.bounds makes a lon/lat grid. Use an isotropic kind "
                "(exponential, gaussian, matern32) or a local projected domain (center_lon, "
                "center_lat, nx, ny)"
            )
        if self.inversion.cg.std == "local" and self.domain.is_lonlat:
            raise ValueError(
                "inversion.cg.std='local' cuts the state into windows of a projected grid; "
                "domain.bounds makes a lon/lat grid. Use another inversion.cg.std or a local "
                "projected domain (center_lon, center_lat, nx, ny)"
            )
        return self

    @model_validator(mode="after")
    def _need_data(self) -> CityfluxConfig:
        if self.synthetic is not None and self.domain.is_lonlat:
            raise ValueError(
                "the synthetic city needs a local projected domain (center_lon, center_lat, "
                "nx, ny); remove domain.bounds"
            )
        if self.synthetic is not None and self.observations:
            raise ValueError(
                "a synthetic case generates its own observations; remove 'observations:' (or "
                "the 'synthetic:' section to invert real data)"
            )
        if self.synthetic is not None and self.background.method != "none":
            raise ValueError(
                "the synthetic city's observations are enhancements: set background.method to "
                f"'none' (found {self.background.method!r})"
            )
        if (
            self.synthetic is None
            and self.transport.model == "footprints"
            and self.transport.footprints is None
            and not (self.transport.ensemble and self.transport.ensemble.footprints)
        ):
            raise ValueError(
                "transport.model='footprints' needs a 'footprints' folder; set "
                "transport.footprints: DIR (the synthetic city writes its own when omitted)"
            )
        if self.synthetic is None and not self.observations:
            raise ValueError(
                "the configuration has neither 'synthetic' nor 'observations'; add a "
                "'synthetic:' section (OSSE) or list observation files under 'observations:'"
            )
        if (
            self.synthetic is None
            and self.transport.model == "plume"
            and self.transport.met is None
        ):
            raise ValueError(
                "transport.met is required for real data with the plume model; give a met CSV "
                "(transport.met.path) or constant wind_speed, wind_direction, "
                "boundary_layer_height and stability"
            )
        return self


# ---------------------------------------------------------------------------------- loading
def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_FIXES = {
    "extra_forbidden": "remove it or check its spelling (see examples/demo.yaml for valid keys)",
    "missing": "add it",
}


def _format_errors(err: ValidationError, source: str) -> ConfigError:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if p not in ("function-after",))
        key = _dotted(loc)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = f"unknown key; {_FIXES['extra_forbidden']}"
        elif e["type"] == "missing":
            msg = "required key is missing; add it"
        else:
            found = e.get("input")
            if not isinstance(found, dict | list):
                msg = f"{msg} (found {found!r})"
        problems.append((key, msg))
    lines = "\n".join(f"  {k}: {m}" for k, m in problems)
    return ConfigError(f"invalid configuration {source}:\n{lines}", problems)


def parse_config(
    data: Any, *, base_dir: str | Path | None = None, source: str = ""
) -> CityfluxConfig:
    """Validate a mapping (parsed YAML) into a :class:`CityfluxConfig`.

    Parameters
    ----------
    data : mapping
        The configuration.
    base_dir : path, optional
        Directory that relative paths are resolved against.
    source : str
        Name of the source used in messages (e.g. the file name).

    Raises
    ------
    ConfigError
        With one line per problem, each naming the dotted key.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid configuration {source}: expected a mapping of sections (domain, period, "
            f"...), found {type(data).__name__}",
            [("(top level)", "not a mapping")],
        )
    try:
        return CityfluxConfig.model_validate(
            data, context={"base_dir": None if base_dir is None else Path(base_dir)}
        )
    except ValidationError as err:
        raise _format_errors(err, source) from None


_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def _split_key(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in key.split("."):
        m = _KEY_PART.fullmatch(piece)
        if m is None:
            raise ConfigError(
                f"--set {key}: {piece!r} is not a key; use dotted names with optional [index], "
                "e.g. inversion.spatial_length_km or observations[0].error_ppm",
                [(key, "malformed key")],
            )
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return parts


def apply_overrides(data: Any, overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of the parsed YAML ``data`` with ``KEY=VALUE`` overrides applied.

    ``KEY`` is a dotted config key with optional list indices (``synthetic.truth.length_scale``,
    ``observations[0].error_ppm``); missing mappings on the way are created. ``VALUE`` is read
    with YAML syntax (``2``, ``true``, ``[1, 2]``, ``{T01: 1.0}``, ``null``). The result is then
    validated exactly like the file (:func:`parse_config`); relative paths are taken from the
    configuration file's folder, as in the file.

    Raises
    ------
    ConfigError
        If an override is not ``KEY=VALUE``, its value is not YAML, or its key walks into a value
        that is not a mapping/list or past the end of a list (the message names the key).
    """
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE, e.g. --set inversion.method=cg",
                [(key or item, "not KEY=VALUE")],
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(
                f"--set {key}: the value {text!r} is not valid YAML ({err})", [(key, "bad value")]
            ) from None
        parts = _split_key(key)
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    size = len(node) if isinstance(node, list) else 0
                    raise ConfigError(
                        f"--set {key}: index [{part}] is out of range (the list has {size} "
                        "item(s))",
                        [(key, "index out of range")],
                    )
                if node[part] is None:
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
                continue
            if not isinstance(node, dict):
                raise ConfigError(
                    f"--set {key}: {part!r} is inside a value that is not a section",
                    [(key, "not a section")],
                )
            if node.get(part) is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last > len(node):
                raise ConfigError(
                    f"--set {key}: index [{last}] is out of range", [(key, "index out of range")]
                )
            if last == len(node):
                node.append(value)
            else:
                node[last] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(
                f"--set {key}: {last!r} is inside a value that is not a section",
                [(key, "not a section")],
            )
    return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> CityfluxConfig:
    """Read and validate a YAML configuration file (never modifies it).

    Parameters
    ----------
    path : path
        The YAML file.
    overrides : sequence of str
        ``KEY=VALUE`` overrides (``--set``), applied before validation
        (:func:`apply_overrides`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ConfigError
        If the YAML cannot be parsed, an override is malformed, or the result does not
        validate.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"configuration file {str(path)!r} not found; check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(
            f"invalid configuration {path}: not valid YAML ({err})", [("(file)", str(err))]
        ) from None
    if overrides:
        data = apply_overrides(data, overrides)
        source = f"{path} (with --set {' '.join(overrides)})"
    else:
        source = str(path)
    return parse_config(data, base_dir=path.resolve().parent, source=source)


def check_inputs(cfg: CityfluxConfig) -> list[tuple[str, str]]:
    """Problems with the input files a configuration refers to, as ``(dotted key, message)``.

    Checks that every observation, footprint, met, inventory, point-source, profile and region
    file exists, and that each format is registered (or, when omitted, detectable for
    observations and footprints).
    """
    from cityflux._inputs import input_problems

    return input_problems(cfg)


#: Parts of the configuration that do not change the science: where and how results are written
#: and run, and the run's name.
_NOT_SCIENCE = ("name", "output", "batch")


def _file_digest(path: Path) -> str:
    from cityflux._files import sha256_file_cached

    return f"sha256:{sha256_file_cached(path)}" if path.is_file() else f"missing:{path}"


def _science(cfg: CityfluxConfig) -> dict[str, Any]:
    """The configuration as JSON with every input path replaced by its files' contents."""
    data = cfg.model_dump(mode="json", exclude=set(_NOT_SCIENCE))
    for i, src in enumerate(cfg.observations):
        data["observations"][i]["path"] = [_file_digest(p) for p in src.files()]
    for i, inv in enumerate(cfg.prior.inventories):
        data["prior"]["inventories"][i]["path"] = _file_digest(inv.path)
    if cfg.prior.point_sources is not None:
        data["prior"]["point_sources"]["path"] = _file_digest(cfg.prior.point_sources.path)
    prof = cfg.prior.temporal.profile_path()
    if prof is not None:
        data["prior"]["temporal"]["profiles"] = _file_digest(prof)
    tr = data["transport"]
    tr.pop("cache_dir", None)
    if cfg.transport.footprints is not None:
        tr["footprints"] = [_file_digest(p) for p in cfg.transport.footprint_files()]
    for i, member in enumerate(cfg.transport.member_configs()):
        tr["ensemble"]["footprints"][i] = [_file_digest(p) for p in member.footprint_files()]
    if cfg.transport.met is not None and cfg.transport.met.path is not None:
        tr["met"]["path"] = _file_digest(cfg.transport.met.path)
    if cfg.regions is not None:
        data["regions"]["path"] = _file_digest(cfg.regions.path)
    return data


def config_hash(cfg: CityfluxConfig) -> str:
    """SHA-256 (hex) of the science a configuration describes.

    The canonical JSON of the configuration without ``name``, ``output``, ``batch`` and
    ``transport.cache_dir``, with every input path replaced by the SHA-256 of its file's
    contents (a folder or glob by the list of its files' digests). So the hash does not change
    with the output folder or with where identical inputs lie, and changes with any input's
    contents.
    """
    text = json.dumps(_science(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def demo_config_path() -> Path:
    """Path of the packaged demo configuration ``cityflux/examples/demo.yaml``."""
    return Path(str(resources.files("cityflux") / "examples" / "demo.yaml"))
