"""One reader registry for every reader package: formats by name, sniffing, option checks.

A :class:`Registry` maps format names to reader functions ``reader(path, **options)``. When no
format is given, :meth:`Registry.detect` opens the file once as a :class:`FileProbe` (magic bytes,
NetCDF header or the first text lines, never the data) and asks each format's ``sniff(probe)`` in
priority order. Options are checked against the reader's signature before the file is read:
their names, and their values against the parameters' type annotations (pydantic, lax mode:
a YAML list fits the tuple the reader declares).
"""

from __future__ import annotations

import functools
import inspect
import logging
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ._errors import FormatDetectionError, ReaderError, ReaderOptionError, UnknownFormatError

__all__ = ["FileProbe", "ReaderEntry", "Registry", "VarInfo"]

log = logging.getLogger(__name__)

_MAGIC = {
    b"CDF\x01": "netcdf3",
    b"CDF\x02": "netcdf3",
    b"CDF\x05": "netcdf3",
    b"\x89HDF": "hdf5",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"II+\x00": "tiff",
}


@dataclass(frozen=True)
class VarInfo:
    """Header of one variable: dimension names, shape and attributes (no data)."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


class FileProbe:
    """What a file is, read once and cheaply: container type, NetCDF header or first text lines.

    Sniffers receive a probe; every property is computed on first use and cached, so a file is
    opened at most once however many formats are tried.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.suffix = self.path.suffix.lower()

    @cached_property
    def head(self) -> bytes:
        """First 8 KiB of the file (empty for directories or unreadable files)."""
        if not self.path.is_file():
            return b""
        try:
            with open(self.path, "rb") as fh:
                return fh.read(8192)
        except OSError:
            return b""

    @cached_property
    def container(self) -> str:
        """``"zarr"``, ``"directory"``, ``"netcdf3"``, ``"hdf5"``, ``"tiff"``, ``"text"``,
        ``"empty"``, ``"missing"`` or ``"binary"``."""
        p = self.path
        if not p.exists():
            return "missing"
        if p.is_dir():
            markers = (".zgroup", ".zattrs", "zarr.json", ".zarray")
            return "zarr" if any((p / m).exists() for m in markers) else "directory"
        head = self.head
        if not head:
            return "empty"
        for magic, kind in _MAGIC.items():
            if head.startswith(magic):
                return kind
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            text = head.decode("latin-1")
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
        return "text" if printable >= 0.95 * len(text) and "\x00" not in text else "binary"

    @cached_property
    def _header(self) -> tuple[dict[str, VarInfo], dict[str, Any], dict[str, int], str | None]:
        if self.container in ("netcdf3", "hdf5"):
            return _netcdf_header(self.path)
        if self.container == "zarr":
            return _zarr_header(self.path)
        return {}, {}, {}, None

    @property
    def variables(self) -> dict[str, VarInfo]:
        """Variables of a NetCDF/HDF5/zarr file (group variables as ``"Group/var"``)."""
        return self._header[0]

    @property
    def attrs(self) -> dict[str, Any]:
        """Global attributes of a NetCDF/HDF5/zarr file."""
        return self._header[1]

    @property
    def dims(self) -> dict[str, int]:
        """Dimension sizes of a NetCDF/HDF5/zarr file."""
        return self._header[2]

    @property
    def open_error(self) -> str | None:
        """Why a file that looks like NetCDF/HDF5/zarr could not be opened (else None)."""
        return self._header[3]

    @property
    def is_netcdf(self) -> bool:
        """True for a NetCDF/HDF5/zarr file whose header could be read."""
        return self.container in ("netcdf3", "hdf5", "zarr") and self.open_error is None

    def has(self, *names: str) -> bool:
        """True when every variable in ``names`` exists."""
        return all(n in self.variables for n in names)

    def text_lines(self, n: int = 40) -> list[str]:
        """The first ``n`` lines of a text file (empty list for binary files)."""
        if self.container != "text":
            return []
        return self.head.decode("utf-8", errors="replace").splitlines()[:n]

    def describe(self) -> str:
        """One phrase saying what the file is (used in detection errors)."""
        c = self.container
        if c == "missing":
            return "missing"
        if c == "directory":
            return "a directory (not a zarr store)"
        if c == "empty":
            return "an empty file (0 bytes)"
        if c in ("netcdf3", "hdf5", "zarr"):
            what = {
                "netcdf3": "a NetCDF-3 file",
                "hdf5": "a NetCDF-4/HDF5 file",
                "zarr": "a zarr store",
            }[c]
            if self.open_error:
                return (
                    f"{what} by its first bytes, but it cannot be opened ({self.open_error}): it is "
                    "corrupt or truncated"
                )
            names = sorted(self.variables)
            shown = ", ".join(names[:25]) + (
                f", ... ({len(names)} in all)" if len(names) > 25 else ""
            )
            gattrs = sorted(self.attrs)[:12]
            return f"{what} with variables [{shown}] and global attributes {gattrs}"
        if c == "tiff":
            return "a TIFF/GeoTIFF raster"
        if c == "text":
            first = (self.text_lines(1) or [""])[0][:80]
            return f"a text file starting with {first!r}"
        return f"a binary file of unknown type (first bytes {self.head[:8]!r})"

    def dataset(self) -> Any:
        """The file opened with xarray (``decode_times=False``), or None; for legacy sniffers."""
        if not self.is_netcdf:
            return None
        import xarray as xr

        try:
            if self.container == "zarr":
                return xr.open_zarr(self.path, decode_times=False)
            return xr.open_dataset(self.path, decode_times=False)
        except (OSError, ValueError, RuntimeError, KeyError):
            return None


def _netcdf_header(path: Path):
    import netCDF4

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nc = netCDF4.Dataset(str(path), "r")
    except (OSError, RuntimeError, ValueError) as exc:
        return {}, {}, {}, str(exc)
    try:
        variables: dict[str, VarInfo] = {}
        stack = [("", nc)]
        while stack:
            prefix, grp = stack.pop()
            for name, var in grp.variables.items():
                attrs = {k: var.getncattr(k) for k in var.ncattrs()}
                variables[prefix + name] = VarInfo(tuple(var.dimensions), tuple(var.shape), attrs)
            stack.extend((f"{prefix}{g}/", sub) for g, sub in grp.groups.items())
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        dims = {k: len(d) for k, d in nc.dimensions.items()}
    except (OSError, RuntimeError, ValueError) as exc:
        return {}, {}, {}, str(exc)
    finally:
        nc.close()
    return variables, attrs, dims, None


def _zarr_header(path: Path):
    import xarray as xr

    try:
        with xr.open_zarr(path, decode_times=False) as ds:
            variables = {
                str(k): VarInfo(tuple(map(str, v.dims)), tuple(v.shape), dict(v.attrs))
                for k, v in ds.variables.items()
            }
            return variables, dict(ds.attrs), {str(k): int(v) for k, v in ds.sizes.items()}, None
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        return {}, {}, {}, str(exc)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python objects (for validation against annotations)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64 | np.timedelta64):
        return value.item()
    return value


@functools.cache
def _option_adapter(reader: Callable[..., Any], key: str) -> Any:
    """A pydantic TypeAdapter for the annotation of ``reader``'s parameter ``key`` (or None)."""
    try:
        hint = typing.get_type_hints(reader).get(key)
    except Exception:  # an annotation that cannot be resolved is not checked
        return None
    if hint is None or hint is Any:
        return None
    from pydantic import ConfigDict, TypeAdapter

    try:
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # a type pydantic cannot check (callables, protocols)
        return None


@dataclass(frozen=True)
class ReaderEntry:
    """One registered format: its reader, sniffer, priority and one-line description."""

    name: str
    reader: Callable[..., Any]
    sniff: Callable[[FileProbe], bool] | None
    priority: int
    description: str
    order: int

    @property
    def options(self) -> dict[str, inspect.Parameter] | None:
        """Keyword options the reader accepts (None when it takes ``**kwargs``)."""
        params = list(inspect.signature(self.reader).parameters.values())
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {
            p.name: p for p in params[1:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }


class Registry:
    """Readers of one package by format name.

    Parameters
    ----------
    what : str
        What the files hold (``"observation"``, ``"footprint"``, ``"inventory"``), for messages.
    allow_directories : bool
        Whether a directory can be an input (zarr stores).
    """

    def __init__(self, what: str, *, allow_directories: bool = False) -> None:
        self.what = what
        self.allow_directories = allow_directories
        self._entries: dict[str, ReaderEntry] = {}
        self._count = 0

    def register(
        self,
        name: str,
        reader: Callable[..., Any] | None = None,
        *,
        sniff: Callable[[FileProbe], bool] | None = None,
        priority: int = 50,
        description: str = "",
        overwrite: bool = False,
    ) -> Any:
        """Register ``reader`` under ``name`` (usable as a decorator when ``reader`` is None).

        ``sniff(probe) -> bool`` recognises the format for auto-detection; sniffers run by
        decreasing ``priority`` (generic catch-all formats use 0, user formats 100).

        Raises
        ------
        ValueError
            If ``name`` is taken and ``overwrite`` is False.
        """

        def deco(func: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries and not overwrite:
                raise ValueError(
                    f"{self.what} format {name!r} is already registered; pass overwrite=True to "
                    "replace it"
                )
            doc = description or (inspect.getdoc(func) or "").split("\n")[0]
            self._count += 1
            self._entries[name] = ReaderEntry(name, func, sniff, priority, doc, self._count)
            return func

        return deco(reader) if reader is not None else deco

    def entries(self) -> list[ReaderEntry]:
        """Entries in detection order (priority, then registration order)."""
        return sorted(self._entries.values(), key=lambda e: (-e.priority, e.order))

    def formats(self) -> dict[str, str]:
        """Format name -> one-line description, in detection order."""
        return {e.name: e.description for e in self.entries()}

    def get(self, name: str) -> ReaderEntry:
        """The entry of format ``name``.

        Raises
        ------
        UnknownFormatError
            (a ``KeyError`` and ``ValueError``) for a name that is not registered.
        """
        if name not in self._entries:
            raise UnknownFormatError(
                f"unknown {self.what} format {name!r}: {name!r} is not a registered {self.what} "
                f"format; registered: {sorted(self._entries)}"
            )
        return self._entries[name]

    def check_path(self, path: str | Path) -> Path:
        """Raise unless ``path`` is an existing file (or a zarr store where allowed)."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{self.what} file not found: {p}")
        if p.is_dir():
            probe = FileProbe(p)
            if not (self.allow_directories and probe.container == "zarr"):
                raise ReaderError(
                    f"{p}: is a directory; expected one {self.what} file: name the files inside it "
                    "(a glob such as 'dir/*.nc' where the config accepts one)"
                )
        return p

    def detect(self, path: str | Path, probe: FileProbe | None = None) -> str:
        """Name of the first format whose sniffer recognises ``path``.

        Raises
        ------
        FormatDetectionError
            When no format recognises the file; the message says what the file is (variables
            found, or that it is corrupt or truncated) and lists the formats.
        """
        p = self.check_path(path)
        probe = probe or FileProbe(p)
        for entry in self.entries():
            if entry.sniff is None:
                continue
            try:
                hit = entry.sniff(probe)
            except Exception:  # a failing sniffer means "not mine"
                log.debug("sniffer of %s failed on %s", entry.name, p, exc_info=True)
                hit = False
            if hit:
                log.debug("%s: detected %s format %r", p, self.what, entry.name)
                return entry.name
        listed = "; ".join(f"{k} ({v})" for k, v in self.formats().items())
        raise FormatDetectionError(
            f"{p}: could not detect the {self.what} format: the file is {probe.describe()}. "
            f"Registered {self.what} formats: {listed}. Pass format= one of "
            f"{sorted(self._entries)}, or register a reader for this layout"
        )

    def check_options(self, name: str, options: Mapping[str, Any]) -> None:
        """Check ``options`` against the signature of ``name``'s reader.

        Each value is validated against its parameter's type annotation (pydantic, lax mode:
        ``[10, 18]`` fits ``tuple[float, float]``); options whose annotation cannot be resolved
        are not checked. The reader gets the values as given.

        Raises
        ------
        ReaderOptionError
            (a ``TypeError`` and ``ValueError``) naming an option the reader does not take, or
            an option whose value does not fit its type (what was expected, what was found).
        """
        accepted = self.get(name).options
        if accepted is None:
            return
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ReaderOptionError(
                f"{self.what} reader {name!r} does not accept option(s) {unknown}; accepted "
                f"options: {sorted(accepted)}. Check the spelling in the reader options"
            )
        reader = self.get(name).reader
        for key, value in options.items():
            adapter = _option_adapter(reader, key)
            if adapter is None:
                continue
            try:
                adapter.validate_python(_plain(value))
            except ValueError as err:  # pydantic.ValidationError
                why = "; ".join(e["msg"] for e in getattr(err, "errors", list)()[:3]) or str(err)
                expected = accepted[key].annotation
                if not isinstance(expected, str):
                    expected = getattr(expected, "__name__", str(expected))
                raise ReaderOptionError(
                    f"{self.what} reader {name!r}: option {key!r} = {value!r} has the wrong "
                    f"type or shape: expected {expected} ({why}). Fix the value in the reader "
                    "options"
                ) from None

    def resolve(self, path: str | Path, format: str | None, options: Mapping[str, Any]) -> str:
        """Check the path, detect the format when None, check the options; return the name."""
        self.check_path(path)
        name = format or self.detect(path)
        self.check_options(name, options)
        return name

    def read(self, path: str | Path, format: str | None = None, **options: Any) -> tuple[str, Any]:
        """Read ``path`` with its reader; returns ``(format name, result)``."""
        name = self.resolve(path, format, options)
        return name, self.get(name).reader(Path(path), **options)
