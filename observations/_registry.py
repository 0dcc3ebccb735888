"""Reader registry: readers registered by format name, auto-detection, and ``read``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import xarray as xr

from ._exceptions import ObservationFormatError
from ._schema import validate_observation_set

__all__ = ["ObservationReader", "available_formats", "detect_format", "read", "register_reader"]

logger = logging.getLogger(__name__)


class ObservationReader(Protocol):
    """A reader: ``reader(path, **options) -> ObservationSet`` with ``attrs["qc_report"]``."""

    def __call__(self, path: Path, **options: Any) -> xr.Dataset: ...


@dataclass(frozen=True)
class _Entry:
    name: str
    reader: ObservationReader
    detect: Callable[[Path], bool] | None
    description: str


class ReaderRegistry:
    """Maps format names to readers; detection functions are tried in registration order."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(
        self,
        name: str,
        *,
        detect: Callable[[Path], bool] | None = None,
        description: str = "",
    ) -> Callable[[ObservationReader], ObservationReader]:
        """Decorator registering a reader under ``name`` (replaces an existing entry)."""

        def deco(func: ObservationReader) -> ObservationReader:
            doc = description or (inspect.getdoc(func) or "").split("\n")[0]
            self._entries[name] = _Entry(name, func, detect, doc)
            return func

        return deco

    def names(self) -> dict[str, str]:
        return {k: e.description for k, e in self._entries.items()}

    def detect(self, path: Path) -> str:
        hits = []
        for entry in self._entries.values():
            if entry.detect is None:
                continue
            try:
                if entry.detect(path):
                    hits.append(entry.name)
            except Exception:  # detection must never crash: a failed probe means "not mine"
                logger.debug("detector of %s failed on %s", entry.name, path, exc_info=True)
        if not hits:
            raise ObservationFormatError(
                f"{path}: format not recognised (tried {list(self._entries)}); the file may be "
                "corrupt or truncated, or pass format=... explicitly"
            )
        if len(hits) > 1:
            logger.info("%s matches formats %s; using %s", path, hits, hits[0])
        return hits[0]

    def get(self, name: str) -> _Entry:
        if name not in self._entries:
            raise KeyError(
                f"unknown observation format {name!r}; registered: {sorted(self._entries)}"
            )
        return self._entries[name]


REGISTRY = ReaderRegistry()


def register_reader(
    name: str, *, detect: Callable[[Path], bool] | None = None, description: str = ""
) -> Callable[[ObservationReader], ObservationReader]:
    """Register a reader function under a format name.

    Parameters
    ----------
    name : str
        Format name used by ``read(path, format=name)``.
    detect : callable, optional
        ``detect(path) -> bool``, used by auto-detection when ``format`` is omitted.
    description : str, optional
        One-line description (defaults to the first docstring line).

    Examples
    --------
    >>> @register_reader("mycsv", detect=lambda p: p.suffix == ".my")
    ... def read_mycsv(path, **options): ...
    """
    return REGISTRY.register(name, detect=detect, description=description)


def available_formats() -> dict[str, str]:
    """Registered format names and their descriptions."""
    return REGISTRY.names()


def detect_format(path: str | Path) -> str:
    """Name of the registered format that recognises ``path``."""
    return REGISTRY.detect(Path(path))


def read(path: str | Path, format: str | None = None, **options: Any) -> xr.Dataset:
    """Read an observation file into an ObservationSet.

    Parameters
    ----------
    path : str or Path
        Input file (never modified).
    format : str, optional
        Registered format name (see :func:`available_formats`); auto-detected when omitted.
    **options
        Reader options (period, domain, error components, ...); see the reader's docstring.

    Returns
    -------
    xarray.Dataset
        ObservationSet (dim ``"obs"``, ppm) with ``attrs["qc_report"]`` (JSON; parse with
        :func:`qc_report`) and ``attrs["source_format"]``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    KeyError
        For an unknown format name.
    TypeError
        For an option the reader does not accept.
    ValueError
        For malformed, corrupt or empty-after-QC input (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"observation file not found: {path}")
    name = format or REGISTRY.detect(path)
    entry = REGISTRY.get(name)
    params = inspect.signature(entry.reader).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(
                f"reader {name!r} does not accept option(s) {unknown}; accepted: {accepted}"
            )
    ds = entry.reader(path, **options)
    ds.attrs["source_format"] = name
    return validate_observation_set(ds, name=str(path))
