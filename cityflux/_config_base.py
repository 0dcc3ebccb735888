"""Shared pieces of the configuration models: the frozen, strict base class and path resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationInfo

__all__ = ["Section", "duration", "resolve_path"]


class Section(BaseModel):
    """Base of every configuration section: unknown keys are errors, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_path(value: Any, info: ValidationInfo) -> Path:
    """``value`` as a Path, relative paths taken from the configuration file's folder."""
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


def duration(
    value: str, what: str, *, allow_zero: bool = False, example: str = "'1h' or '1D'"
) -> str:
    """Check that ``value`` is a pandas duration (> 0, or >= 0 with ``allow_zero``).

    Raises
    ------
    ValueError
        Naming ``what``, the value found and an example.
    """
    try:
        d = pd.Timedelta(value)
    except (TypeError, ValueError):
        raise ValueError(f"could not parse {value!r} as {what}; use e.g. {example}") from None
    if d < pd.Timedelta(0) or (d == pd.Timedelta(0) and not allow_zero):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, found {value!r}")
    return value
