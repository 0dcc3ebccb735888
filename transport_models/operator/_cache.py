"""Zarr cache of the receptor-level operator, keyed by the inputs.

Layout of ``<cache_dir>/h_<key>.zarr``: one group ``chunk_NNNNN`` per chunk of files with the
CSR arrays ``indptr``, ``indices``, ``data`` of its rows and the receptor table columns; the
root attributes hold the key, the shape and the assembly report (JSON). The store is written to
a temporary directory next to it and renamed into place, so a killed run leaves no half cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr

from inversion.state import StateVector
from transport_models.footprints._common import atomic_directory

__all__ = ["cache_key", "read_cache", "write_cache"]

#: Bump when the cached content or its meaning changes.
CACHE_VERSION = "3"  # 3: layers spread over time bins by overlap (layer_end)


def cache_key(
    paths: Sequence[Path],
    state: StateVector,
    threshold: float,
    extra: dict[str, Any],
) -> str:
    """SHA-256 of the input files (path, mtime, size), grid, time axis, sectors and options."""
    h = hashlib.sha256()
    h.update(f"cityflux-h-cache-{CACHE_VERSION}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).resolve()}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    g = state.grid
    h.update(g.crs.to_wkt().encode())
    h.update(np.asarray(g.transform, float).tobytes())
    h.update(np.asarray(g.shape, np.int64).tobytes())
    h.update(state.time.edges.astype("int64").tobytes())
    h.update(repr(tuple(state.sectors)).encode())
    h.update(repr(float(threshold)).encode())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def write_cache(
    path: Path,
    key: str,
    chunks: Sequence[tuple[sp.csr_array, pd.DataFrame]],
    shape: tuple[int, int],
    report: dict[str, Any],
) -> None:
    """Write the chunks atomically to the zarr store ``path``."""
    with atomic_directory(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        for k, (h, table) in enumerate(chunks):
            g = root.create_group(f"chunk_{k:05d}")
            for name, arr in (("indptr", h.indptr), ("indices", h.indices), ("data", h.data)):
                g.create_array(name, data=np.asarray(arr), overwrite=True)
            g.attrs["n_rows"] = int(h.shape[0])
            # times as int64 ns since the epoch (UTC, naive): exact, no date parsing on read
            ns = table["time"].to_numpy().astype("datetime64[ns]").view("int64")
            g.attrs["receptors"] = table.assign(time=ns).to_json(orient="split")
        root.attrs.update(
            {"key": key, "shape": list(shape), "n_chunks": len(chunks), "report": report}
        )


def read_cache(
    path: Path, key: str
) -> tuple[list[tuple[sp.csr_array, pd.DataFrame]], dict[str, Any]] | None:
    """Chunks and report from the store, or ``None`` if absent or made from other inputs."""
    if not path.exists():
        return None
    try:
        root = zarr.open_group(str(path), mode="r")
        if root.attrs.get("key") != key:
            return None
        n_cols = int(root.attrs["shape"][1])
        out = []
        for k in range(int(root.attrs["n_chunks"])):
            g = root[f"chunk_{k:05d}"]
            h = sp.csr_array(
                (g["data"][...], g["indices"][...], g["indptr"][...]),
                shape=(int(g.attrs["n_rows"]), n_cols),
            )
            table = pd.read_json(_io(g.attrs["receptors"]), orient="split")
            table["time"] = pd.to_datetime(table["time"].to_numpy(np.int64), unit="ns")
            out.append((h, table))
        return out, dict(root.attrs["report"])
    except (KeyError, ValueError, OSError):
        return None


def _io(text: str) -> Any:
    from io import StringIO

    return StringIO(text)
