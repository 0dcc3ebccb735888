"""Configuration sections of the metrology products: ``verification`` (inventories to score the
posterior totals against, ISO 13528) and ``design`` (candidate additions to the network).

See :mod:`cityflux.metrology` for what is computed from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from cityflux._config_base import Section, resolve_path

__all__ = [
    "DesignCandidate",
    "DesignConfig",
    "DesignTarget",
    "VerificationConfig",
    "VerificationInventory",
    "metrology_input_problems",
]


class VerificationInventory(Section):
    """An inventory the posterior totals are scored against (E_n and ζ, ISO 13528).

    Either ``path``: a gridded inventory read with ``priors.read_inventory(path, format=...,
    **options)``, put on the state grid and time steps by the prior stage (same temporal
    profiles as the run's prior) and aggregated with the weights of totals.csv; or
    ``totals``: a CSV with columns ``region``, ``sector``, ``period`` (as in totals.csv) and
    ``total_t`` [t CO2] (and the ``uncertainty_column``, if used).

    The stated standard uncertainty is ``relative_uncertainty`` [1] × |total|, or the
    ``uncertainty_column`` of the totals CSV [t CO2]; an expanded uncertainty (e.g. a 95 %
    half-width) is divided by its ``coverage_factor``. ``is_prior``: this inventory is the
    run's prior (its errors are then correlated with the posterior's); detected from the path
    when omitted.
    """

    name: str = Field(min_length=1)
    path: Path | None = None
    format: str | None = None
    sector: str | None = Field(default=None, description="sector name of a one-sector file")
    options: dict[str, Any] = Field(default_factory=dict)
    totals: Path | None = Field(default=None, description="CSV of totals [t CO2]")
    relative_uncertainty: float | None = Field(default=None, gt=0.0, description="[1]")
    uncertainty_column: str | None = Field(default=None, description="[t CO2] in the CSV")
    coverage_factor: float = Field(default=1.0, gt=0.0, description="k of the stated value")
    is_prior: bool | None = None

    @field_validator("path", "totals", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _one_source(self) -> VerificationInventory:
        if (self.path is None) == (self.totals is None):
            raise ValueError("give either 'path' (gridded inventory) or 'totals' (CSV), not both")
        if (self.relative_uncertainty is None) == (self.uncertainty_column is None):
            raise ValueError(
                "give the inventory's stated uncertainty: either relative_uncertainty [1] or "
                "uncertainty_column (a column of the totals CSV [t CO2])"
            )
        if self.uncertainty_column is not None and self.totals is None:
            raise ValueError("uncertainty_column needs a totals CSV ('totals: FILE')")
        return self


class VerificationConfig(Section):
    """Inventory verification: ``inventories`` to score; ``include_prior`` also scores the run's
    own prior (with its uncertainty B), which the posterior depends on."""

    inventories: tuple[VerificationInventory, ...] = ()
    include_prior: bool = True

    @field_validator("inventories")
    @classmethod
    def _unique(cls, value: tuple[VerificationInventory, ...]) -> tuple[VerificationInventory, ...]:
        names = [i.name for i in value]
        dup = sorted({n for n in names if names.count(n) > 1} | ({"prior"} & set(names)))
        if dup:
            raise ValueError(f"inventory names must be unique and not 'prior'; found {dup}")
        return value


class DesignCandidate(Section):
    """A candidate addition to the observing network (``cityflux design``).

    Built from the keys of its ``kind`` (positions [degrees], altitudes [m], UTC times, errors
    [ppm]), or read from ``path`` with ``observations.read(path, format=..., **options)`` (any
    kind; values are not used). ``tower``: ``lon``, ``lat``, ``alt`` (inlet above ground), one
    hourly mean at each of ``hours_local`` (local solar time) every day of the period.
    ``lidar_path``: one chord from (``lon``, ``lat``, ``alt``) to (``lon_end``, ``lat_end``,
    ``alt_end``) (above sea level), one scan each hour of ``hours_local``. ``column``: a
    satellite snapshot centred on (``lon``, ``lat``) at ``time`` (UTC), soundings every
    ``spacing_km`` over ``size_km``, column averaging kernel 1 on ``levels`` levels.
    ``error_ppm`` is the instrument error, ``transport_ppm`` the model-data mismatch
    (correlated within a group as the run's R says). With footprint transport,
    ``footprints`` is the folder of the candidate's footprint files.
    """

    name: str = Field(min_length=1)
    kind: Literal["tower", "lidar_path", "column"] | None = None
    path: Path | None = None
    format: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    lon: float | None = Field(default=None, ge=-180.0, le=180.0)
    lat: float | None = Field(default=None, ge=-90.0, le=90.0)
    alt: float = Field(default=50.0, description="[m]")
    lon_end: float | None = Field(default=None, ge=-180.0, le=180.0)
    lat_end: float | None = Field(default=None, ge=-90.0, le=90.0)
    alt_end: float = Field(default=100.0, description="[m]")
    hours_local: tuple[int, ...] = (12, 13, 14, 15)
    time: str | None = Field(default=None, description="UTC time of a satellite snapshot")
    size_km: float = Field(default=12.0, gt=0.0)
    spacing_km: float = Field(default=2.0, gt=0.0)
    levels: int = Field(default=20, ge=2)
    error_ppm: float = Field(default=1.0, gt=0.0)
    transport_ppm: float = Field(default=0.0, ge=0.0)
    footprints: Path | None = None

    @field_validator("path", "footprints", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _complete(self) -> DesignCandidate:
        if (self.kind is None) == (self.path is None):
            raise ValueError("give either 'kind' (built from positions) or 'path' (a file)")
        need = {"tower": ("lon", "lat"), "lidar_path": ("lon", "lat", "lon_end", "lat_end"),
                "column": ("lon", "lat", "time")}.get(self.kind or "", ())  # fmt: skip
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.kind} candidate needs {missing}")
        return self


class DesignTarget(Section):
    """The total whose posterior std the design reduces: a row of totals.csv (``region``,
    ``sector``, ``period``; the whole period when omitted; the headline region by default)."""

    region: str | None = None
    sector: str = "all"
    period: str | None = None


class DesignConfig(Section):
    """Network design (``cityflux design``): rank ``candidates`` by the reduction of the
    ``target``'s posterior std; ``method`` greedy (exact sequential updates) or exhaustive (the
    best subset of each size; at most 12 candidates); ``max_selected`` stops the ranking."""

    candidates: tuple[DesignCandidate, ...] = Field(min_length=1)
    target: DesignTarget = DesignTarget()
    method: Literal["greedy", "exhaustive"] = "greedy"
    max_selected: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DesignConfig:
        names = [c.name for c in self.candidates]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"candidate names must be unique; found {dup} more than once")
        if self.method == "exhaustive" and len(self.candidates) > 12:
            raise ValueError(
                f"method 'exhaustive' evaluates every subset: at most 12 candidates, found "
                f"{len(self.candidates)}; use method: greedy"
            )
        return self


def metrology_input_problems(verification: VerificationConfig, design: DesignConfig | None):
    """``(dotted key, message)`` for every missing file of ``verification`` and ``design``."""
    out = []
    for i, inv in enumerate(verification.inventories):
        for attr in ("path", "totals"):
            p = getattr(inv, attr)
            if p is not None and not p.exists():
                out.append((f"verification.inventories[{i}].{attr}", _missing(p)))
    for i, cand in enumerate(design.candidates if design is not None else ()):
        for attr in ("path", "footprints"):
            p = getattr(cand, attr)
            if p is not None and not p.exists():
                out.append((f"design.candidates[{i}].{attr}", _missing(p)))
    return out


def _missing(path: Path) -> str:
    return f"file {str(path)!r} does not exist; fix the path"
