"""Registry of footprint readers by format name, with auto-detection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import xarray as xr

from ._common import FootprintError, open_dataset
from ._flexpart import read_flexpart
from ._generic import read_generic
from ._name import read_name, read_paris
from ._stilt import read_stilt, read_xstilt

__all__ = [
    "FootprintReader",
    "available_formats",
    "detect_format",
    "read_footprint",
    "register_footprint_reader",
]


class FootprintReader(Protocol):
    """A callable that reads one footprint file into the standard DataArray."""

    def __call__(self, path: str | Path, **kwargs: Any) -> xr.DataArray: ...


@dataclass(frozen=True)
class _Entry:
    reader: FootprintReader
    sniff: Callable[[Path, xr.Dataset | None], bool] | None


def _sniff_xstilt(p: Path, ds: xr.Dataset | None) -> bool:
    return p.name.endswith("_X_foot.nc") and ds is not None and "foot" in ds.variables


def _sniff_stilt(p: Path, ds: xr.Dataset | None) -> bool:
    return ds is not None and "foot" in ds.variables


def _has(var: str) -> Callable[[Path, xr.Dataset | None], bool]:
    return lambda p, ds: ds is not None and var in ds.variables


def _sniff_generic(p: Path, ds: xr.Dataset | None) -> bool:
    return ds is not None and "cityflux_footprint_format" in ds.attrs


def _default_registry() -> dict[str, _Entry]:
    return {
        "cityflux": _Entry(read_generic, _sniff_generic),
        "xstilt": _Entry(read_xstilt, _sniff_xstilt),
        "stilt": _Entry(read_stilt, _sniff_stilt),
        "flexpart": _Entry(read_flexpart, _has("spec001_mr")),
        "paris": _Entry(read_paris, _has("srr")),
        "name": _Entry(read_name, _has("fp")),
    }


class _Registry:
    """Holds the readers; one instance per process, created lazily (no import-time state)."""

    _instance: _Registry | None = None

    def __init__(self) -> None:
        self.entries = _default_registry()

    @classmethod
    def get(cls) -> _Registry:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


def register_footprint_reader(
    name: str,
    reader: FootprintReader,
    sniff: Callable[[Path, xr.Dataset | None], bool] | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Register ``reader`` under format ``name``.

    Parameters
    ----------
    name : str
        Format name for ``read_footprint(path, format=name)``.
    reader : callable
        ``reader(path, **kwargs) -> xarray.DataArray`` in the standard layout (FORMAT.md).
    sniff : callable, optional
        ``sniff(path, dataset_or_None) -> bool`` used by auto-detection (tried before the
        built-in formats).
    overwrite : bool
        Allow replacing an existing format.
    """
    reg = _Registry.get().entries
    if name in reg and not overwrite:
        raise ValueError(f"footprint format {name!r} is already registered; pass overwrite=True")
    entries = {name: _Entry(reader, sniff)}
    entries.update({k: v for k, v in reg.items() if k != name})
    reg.clear()
    reg.update(entries)


def available_formats() -> list[str]:
    """Names of the registered footprint formats, in detection order."""
    return list(_Registry.get().entries)


def detect_format(path: str | Path) -> str:
    """Detect the footprint format of ``path`` from its name and variables.

    Raises
    ------
    FootprintError
        If no registered format recognises the file.
    """
    p = Path(path)
    # cheap detection from the name alone (no file open) for the conventional names
    if p.name.endswith("_X_foot.nc") and "xstilt" in _Registry.get().entries:
        return "xstilt"
    if p.name.endswith("_foot.nc") and "stilt" in _Registry.get().entries:
        return "stilt"
    if p.name.startswith("grid_time_") and p.suffix == ".nc":
        return "flexpart"
    with open_dataset(p, decode_times=False) as ds:
        for name, entry in _Registry.get().entries.items():
            if entry.sniff is not None and entry.sniff(p, ds):
                return name
        found = sorted(map(str, ds.variables))
    raise FootprintError(
        f"{p}: could not detect the footprint format (variables {found}); pass format= one of "
        f"{available_formats()} or register a reader with register_footprint_reader"
    )


def read_footprint(path: str | Path, format: str | None = None, **kwargs: Any) -> xr.DataArray:
    """Read a footprint file into the standard layout.

    Parameters
    ----------
    path : str or Path
        Footprint file (NetCDF) or zarr store.
    format : str, optional
        A registered format name (``"stilt"``, ``"xstilt"``, ``"flexpart"``, ``"name"``,
        ``"paris"``, ``"cityflux"``, or one added by :func:`register_footprint_reader`);
        detected from the file when omitted.
    **kwargs
        Passed to the reader (e.g. ``hitres=True`` for NAME).

    Returns
    -------
    xarray.DataArray
        ``(time, y, x)`` or ``(receptor, time, y, x)`` footprint [ppm per (µmol m-2 s-1)],
        ``time`` = start of each back-layer (UTC), cell-centre ``y``/``x`` in ``attrs["crs"]``;
        ``Grid.from_dataarray(fp)`` gives its grid.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FootprintError
        (a ValueError) For unknown formats, units, NaN, irregular layers or corrupt files.

    Examples
    --------
    >>> fp = read_footprint("201512100000_-112_40.5_5_foot.nc")  # doctest: +SKIP
    >>> fp.sum().item()  # response to a uniform 1 µmol m-2 s-1 flux [ppm]  # doctest: +SKIP
    """
    fmt = format or detect_format(path)
    entries = _Registry.get().entries
    if fmt not in entries:
        raise FootprintError(
            f"{path}: unknown footprint format {fmt!r}; registered formats are {list(entries)}"
        )
    return entries[fmt].reader(path, **kwargs)
