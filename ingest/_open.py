"""Opening data files the same way in every reader package: failures name the file and say why."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._errors import ReaderError

__all__ = ["open_dataset", "open_netcdf"]


def _check(path: Path, what: str, allow_directory: bool) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} file not found; check the path")
    if path.is_dir() and not allow_directory:
        raise ReaderError(
            f"{path}: is a directory, expected a {what} file; give the file inside it (or a "
            "glob pattern)"
        )


def _cannot_open(path: Path, what: str, err: BaseException) -> ReaderError:
    size = path.stat().st_size if path.is_file() else None
    empty = " (the file is empty)" if size == 0 else ""
    return ReaderError(
        f"{path}: this {what} file cannot be opened as NetCDF/zarr{empty} "
        f"({type(err).__name__}: {err}); it is corrupt, truncated or not NetCDF — download or "
        "generate it again, or give the right format"
    )


@contextlib.contextmanager
def open_netcdf(path: str | Path, what: str = "data") -> Iterator[Any]:
    """Open a NetCDF file read-only with netCDF4 (auto-masking on), as a context manager.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file should be ("observation", "footprint", "inventory"), for messages.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ingest.ReaderError
        If it is a directory, or cannot be opened (corrupt, truncated, not NetCDF).
    """
    import netCDF4

    p = Path(path)
    _check(p, what, allow_directory=False)
    try:
        nc = netCDF4.Dataset(str(p), "r")
    except OSError as err:
        raise _cannot_open(p, what, err) from err
    try:
        nc.set_auto_mask(True)
        yield nc
    finally:
        nc.close()


def open_dataset(path: str | Path, what: str = "data", **kwargs: Any) -> Any:
    """Open a NetCDF file or zarr store with xarray (lazily; close it or use ``with``).

    Parameters
    ----------
    path : str or Path
        NetCDF file, or a zarr store (a directory or ``*.zarr``).
    what : str
        What the file should be, for messages.
    **kwargs
        Passed to ``xarray.open_dataset`` / ``xarray.open_zarr``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ingest.ReaderError
        If it cannot be opened (corrupt, truncated, not NetCDF/zarr).
    """
    import xarray as xr

    p = Path(path)
    zarr = p.is_dir() or p.suffix == ".zarr"
    _check(p, what, allow_directory=zarr)
    try:
        return xr.open_zarr(p, **kwargs) if zarr else xr.open_dataset(p, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise _cannot_open(p, what, err) from err
