"""Observation readers by format name (an :class:`ingest.Registry`), ``read`` and ``inspect``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xarray as xr

from ingest import FileProbe, Inspection, Registry, bbox_of, time_range_of

from ._qc import qc_report
from ._schema import validate_observation_set

__all__ = [
    "ObservationReader",
    "available_formats",
    "detect_format",
    "inspect",
    "read",
    "register_reader",
]

logger = logging.getLogger(__name__)


class ObservationReader(Protocol):
    """A reader: ``reader(path, **options) -> ObservationSet`` with ``attrs["qc_report"]``."""

    def __call__(self, path: Path, **options: Any) -> xr.Dataset: ...


REGISTRY = Registry("observation")


def register_reader(
    name: str,
    *,
    sniff: Callable[[FileProbe], bool] | None = None,
    detect: Callable[[Path], bool] | None = None,
    priority: int = 50,
    description: str = "",
    overwrite: bool = True,
) -> Callable[[ObservationReader], ObservationReader]:
    """Register a reader function under a format name (decorator).

    Parameters
    ----------
    name : str
        Format name used by ``read(path, format=name)``.
    sniff : callable, optional
        ``sniff(probe: ingest.FileProbe) -> bool`` used by auto-detection (the probe holds the
        file's NetCDF header or first text lines).
    detect : callable, optional
        Older form ``detect(path) -> bool``; used when ``sniff`` is not given.
    priority : int
        Detection order (higher first; user formats default above none of the built-ins).
    description : str, optional
        One-line description (defaults to the first docstring line).
    overwrite : bool
        Replace an existing entry of that name.

    Examples
    --------
    >>> @register_reader("mycsv", sniff=lambda probe: probe.suffix == ".my")
    ... def read_mycsv(path, **options): ...
    """
    if sniff is None and detect is not None:
        sniff = lambda probe: bool(detect(probe.path))  # noqa: E731
    return REGISTRY.register(
        name, sniff=sniff, priority=priority, description=description, overwrite=overwrite
    )


def available_formats() -> dict[str, str]:
    """Registered observation formats: name -> one-line description, in detection order."""
    return REGISTRY.formats()


def reader_options(format: str) -> frozenset[str] | None:
    """Keyword options the reader of ``format`` accepts (None when it takes any).

    Raises
    ------
    ingest.UnknownFormatError
        (a ``KeyError``) for an unknown format name.
    """
    opts = REGISTRY.get(format).options
    return None if opts is None else frozenset(opts)


def detect_format(path: str | Path) -> str:
    """Name of the registered format that recognises ``path``.

    Raises
    ------
    ingest.FormatDetectionError
        (a ``ValueError``) naming what the file holds and the registered formats.
    """
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
        Uncertainty options (``err_instrument``, ``err_transport``, ...) apply before records
        without any uncertainty are dropped (counted in the QC report).

    Returns
    -------
    xarray.Dataset
        ObservationSet (dim ``"obs"``, ppm) with ``attrs["qc_report"]`` (JSON; parse with
        :func:`qc_report`; its ``assumptions`` say where QC flags, uncertainties and the
        time-stamp position came from) and ``attrs["source_format"]``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ingest.UnknownFormatError
        (a ``KeyError``) for an unknown format name.
    ingest.ReaderOptionError
        (a ``TypeError`` and ``ValueError``) for an option the reader does not accept; the
        message names it and the accepted options.
    ingest.ReaderError
        (a ``ValueError``) for a directory, malformed, corrupt, empty-after-QC input (message
        names the file).
    """
    path = Path(path)
    name, ds = REGISTRY.read(path, format, **options)
    ds.attrs["source_format"] = name
    return validate_observation_set(ds, name=str(path))


def inspect(path: str | Path, format: str | None = None, **options: Any) -> Inspection:
    """Open an observation file as :func:`read` would and summarise it (for ``cityflux validate``).

    The file is read in full with the given options (observation files are small: an ObsPack
    site record or a daily satellite file), so every error :func:`read` raises on the file is
    raised here with the same class and message.

    Parameters
    ----------
    path : str or Path
        Input file.
    format : str, optional
        Registered format name; auto-detected when omitted.
    **options
        Reader options, checked against the reader's signature.

    Returns
    -------
    ingest.Inspection
        ``n_records`` observations kept, ``time_range`` of the observation times [UTC],
        ``bbox`` (lon_min, lat_min, lon_max, lat_max) [degrees], ``kinds``, ``sites``, the
        ``units`` of the file's main variables, the reader's ``assumptions`` (QC report) and
        ``details`` (``read``, ``dropped`` counts, ``species``, ``scales``).

    Raises
    ------
    Same as :func:`read`.
    """
    path = Path(path)
    name = REGISTRY.resolve(path, format, options)
    ds = read(path, format=name, **options)
    probe = FileProbe(path)
    units = {
        k: str(v.attrs["units"])
        for k, v in probe.variables.items()
        if "units" in v.attrs and (k.split("/")[-1].startswith(("value", "xco2", "xch4", "co2")))
    }
    rep = qc_report(ds).sources[0]
    return Inspection(
        path=str(path),
        format=name,
        what="observations",
        n_records=int(ds.sizes["obs"]),
        time_range=time_range_of(ds["time"].values),
        bbox=bbox_of(ds["lon"].values, ds["lat"].values),
        kinds=tuple(sorted(set(ds["kind"].values.astype(str)))),
        sites=tuple(sorted(set(ds["site"].values.astype(str)))),
        units=units,
        assumptions=dict(rep.assumptions),
        details={
            "read": rep.read,
            "dropped": dict(rep.dropped),
            "species": str(ds.attrs.get("species", "")),
            "scales": sorted(set(np.asarray(ds["scale"].values, dtype=str))),
            "size_bytes": os.path.getsize(path),
        },
        complete=True,
    )
