"""Run folders: outputs are staged, committed by renames, and sealed by ``manifest.json``.

Every run folder (``run``, ``demo``, ``osse``, ``batch`` and each batch window) is written the
same way:

1. :func:`check_out_dir` refuses, before any work, an output path that is a file or a folder
   holding something other than a cityflux run.
2. The writers write into a staging folder ``<out>/.cityflux-staging-<id>/``; nothing in the
   output folder changes while they work, so a run killed here leaves the previous result
   (and its manifest) as it was.
3. :func:`commit` writes ``manifest.json`` with ``status: incomplete`` (listing the files about
   to move), moves every staged file into place with ``os.replace``, removes the previous
   run's files that the new one does not write, and writes ``manifest.json`` again, LAST, with
   ``status: complete``: the sha256 and size of every output, the config hash, the input
   checksums and the versions of cityflux and its main dependencies. A run killed during the
   commit leaves ``status: incomplete``: such a folder is never presented as a result.
4. The next run removes leftover staging folders and temporary files (:func:`clean_leftovers`).

Readers of a run folder trust it only when :func:`read_manifest` says ``complete`` and the
checksums match (:func:`verify`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import json
import os
import platform
import shutil
import uuid
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from cityflux._files import atomic_write, sha256_file
from cityflux._version import __version__

__all__ = [
    "MANIFEST",
    "OutputFolderError",
    "check_out_dir",
    "clean_leftovers",
    "commit",
    "new_staging",
    "read_manifest",
    "verify",
    "versions",
    "write_json",
]

MANIFEST = "manifest.json"
STAGING_PREFIX = ".cityflux-staging-"
PRODUCER = "cityflux"

#: Distributions whose versions every manifest records.
DEPENDENCIES = (
    "numpy", "scipy", "xarray", "pandas", "netCDF4", "dask", "distributed", "numba",
    "pyproj", "pydantic", "zarr",
)  # fmt: skip


class OutputFolderError(FileExistsError):
    """The output path is a file, or a folder holding something other than a cityflux run."""


def _is_leftover(name: str) -> bool:
    return name.startswith(STAGING_PREFIX) or (name.startswith(".") and name.endswith(".tmp"))


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest of a run folder, or None if there is none (or it is not cityflux's).

    Parameters
    ----------
    folder : path

    Returns
    -------
    dict or None
        The parsed ``manifest.json`` (``status`` is ``complete`` or ``incomplete``).
    """
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("producer") != PRODUCER:
        return None
    return data


def check_out_dir(path: str | Path, known: Iterable[str] = ()) -> None:
    """Refuse an output path that cityflux must not write into (call it before any work).

    Accepted: a path that does not exist, an empty folder, a folder with a cityflux manifest
    whose other entries are the outputs it lists (or leftovers of a killed run), and a folder
    holding only names that cityflux writes (``known``: e.g. a run killed before its manifest).

    Parameters
    ----------
    path : path
        The output folder.
    known : iterable of str
        Names (files or folders, or ``fnmatch`` patterns) that a run of this kind writes.

    Raises
    ------
    OutputFolderError
        If ``path`` is a file (or another non-folder), or a folder holding other things; the
        message names the path and up to five of the foreign entries.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise OutputFolderError(
            f"output path {str(path)!r} exists and is not a folder; cityflux writes a folder of "
            "results there: remove the file or choose another output.dir / --out"
        )
    manifest = read_manifest(path)
    allowed = {MANIFEST, *known}
    if manifest is not None:
        allowed |= set(manifest.get("outputs", {})) | set(manifest.get("folders", []))
    patterns = [k for k in allowed if any(c in k for c in "*?[")]
    foreign = sorted(
        e.name
        for e in path.iterdir()
        if e.name not in allowed
        and not any(fnmatch.fnmatchcase(e.name, p) for p in patterns)
        and not _is_leftover(e.name)
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise OutputFolderError(
            f"output folder {str(path)!r} holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'}"
            f" that no cityflux run wrote ({shown}); cityflux replaces the contents of its "
            "output folder, so it refuses to write there: choose an empty or new folder "
            "(output.dir / --out)"
        )


def clean_leftovers(folder: str | Path) -> list[str]:
    """Remove staging folders and temporary files a killed run left in ``folder``.

    Returns
    -------
    list of str
        The names removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for e in folder.iterdir():
        if not _is_leftover(e.name):
            continue
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                e.unlink()
        removed.append(e.name)
    return removed


def new_staging(folder: str | Path) -> Path:
    """Create ``folder`` (if needed), clear leftovers and return a fresh staging folder in it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean_leftovers(folder)
    staging = folder / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    return staging


def versions() -> dict[str, str]:
    """Versions of Python, cityflux and its main dependencies."""
    out = {"cityflux": __version__, "python": platform.python_version()}
    for dist in DEPENDENCIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (and flush the folder entry)."""
    text = json.dumps(data, indent=2, sort_keys=False)
    atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(
    staging: Path,
    *,
    kind: str,
    config_hash: str,
    input_checksums: Mapping[str, str],
    folders: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Move the staged files into the output folder and write ``manifest.json`` last.

    Parameters
    ----------
    staging : pathlib.Path
        From :func:`new_staging`; its files (not subfolders) are the outputs. Removed after.
    kind : str
        ``run``, ``osse``, ``batch`` or ``window``.
    config_hash : str
        :func:`cityflux.config.config_hash` of the configuration that ran.
    input_checksums : mapping of str to str
        SHA-256 of the inputs.
    folders : iterable of str
        Subfolders of the output folder that belong to the run (written by their own commits,
        e.g. a batch's ``windows``); listed in the manifest, never touched here.
    extra : mapping, optional
        More entries for the manifest (e.g. a batch's window table).

    Returns
    -------
    dict
        The manifest written.
    """
    out = staging.parent
    staged = sorted(p for p in staging.iterdir() if p.is_file())
    outputs = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in staged}
    old = read_manifest(out)
    manifest: dict[str, Any] = {
        "producer": PRODUCER,
        "kind": kind,
        "status": "incomplete",
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config_hash": config_hash,
        "input_checksums": dict(sorted(input_checksums.items())),
        "versions": versions(),
        "outputs": outputs,
        "folders": sorted(folders),
        **dict(extra or {}),
    }
    stale = set(old.get("outputs", {})) - set(outputs) if old else set()
    # 'incomplete' first: from here until the last write the folder is not a result
    write_json(
        out / MANIFEST, {**manifest, "outputs": {**(old or {}).get("outputs", {}), **outputs}}
    )
    for p in staged:
        os.replace(p, out / p.name)
    for name in stale:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            (out / name).unlink()
    _fsync_dir(out)
    manifest["status"] = "complete"
    write_json(out / MANIFEST, manifest)
    shutil.rmtree(staging, ignore_errors=True)
    return manifest


def verify(folder: str | Path, config_hash: str | None = None) -> dict[str, Any] | None:
    """The manifest of ``folder`` if it is a complete run whose outputs match their sha256.

    Parameters
    ----------
    folder : path
    config_hash : str, optional
        Also require this config hash (a run of another configuration is stale).

    Returns
    -------
    dict or None
        None when the folder has no manifest, is incomplete, was made from another
        configuration, or an output is missing or altered.
    """
    folder = Path(folder)
    m = read_manifest(folder)
    if m is None or m.get("status") != "complete":
        return None
    if config_hash is not None and m.get("config_hash") != config_hash:
        return None
    for name, info in m.get("outputs", {}).items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != info.get("bytes"):
            return None
        if sha256_file(p) != info.get("sha256"):
            return None
    return m
