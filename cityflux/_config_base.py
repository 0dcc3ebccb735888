"""Shared pieces of the configuration models: the frozen, strict base class and path resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo

__all__ = ["Section", "resolve_path"]


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
