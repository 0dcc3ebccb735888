"""Observation operators held in row chunks: in memory, as dask blocks, or out of core in zarr.

:class:`ChunkedOperator` is a :class:`scipy.sparse.linalg.LinearOperator` (n_obs × n_state)
whose rows are split in blocks of observations, each a CSR matrix. ``H @ X`` stacks the block
products and ``Hᵀ @ V`` sums them, loading one block at a time, so an ``H`` stored on disk
(:func:`write_chunked_h` / :meth:`ChunkedOperator.open`) never has to fit in memory. With a
``dask.distributed`` client the block products run on the cluster's workers (map over blocks,
sum on the cluster) and only the results travel back.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from inversion._sparse import n_threads, run_threaded, spmm_from_transpose, spmm_t_threaded
from inversion.errors import MemoryBudgetError, ShapeMismatchError

__all__ = ["ChunkedOperator", "as_chunked_operator", "write_chunked_h"]

logger = logging.getLogger(__name__)

_FORMAT = "cityflux-chunked-csr-v1"


class _MemoryBlock:
    """A CSR row block held in memory."""

    def __init__(self, mat: sp.csr_array) -> None:
        self.mat = mat

    def load(self) -> sp.csr_array:
        return self.mat


class _RawArray:
    """A 1-D zarr v3 array whose chunks are raw little-endian bytes (no compressor), read by
    ``preadv`` straight into the destination array: no codec pipeline, no intermediate copy.

    zarr's own reader took 5 times as long per pass over a regional-size store
    (``benchmarks/h_store.py``), and every out-of-core product reads the whole store.
    Picklable (paths and numbers only).
    """

    def __init__(self, folder: str, chunk: int, dtype: str, fill: float) -> None:
        self.folder, self.chunk, self.dtype, self.fill = folder, chunk, dtype, fill

    @classmethod
    def of(cls, folder: Path) -> _RawArray | None:
        """The raw layout of the array in ``folder``, or None where zarr must decode it (zarr
        v2, a compressor, sharding, another chunk key encoding or grid)."""
        try:
            meta = json.loads((folder / "zarr.json").read_text())
        except (OSError, ValueError):
            return None
        codecs = meta.get("codecs") or []
        key = meta.get("chunk_key_encoding") or {}
        grid = meta.get("chunk_grid") or {}
        chunks = (grid.get("configuration") or {}).get("chunk_shape") or []
        raw = (
            meta.get("zarr_format") == 3
            and len(meta.get("shape") or []) == 1
            and grid.get("name") == "regular"
            and len(chunks) == 1
            and key.get("name") == "default"
            and (key.get("configuration") or {}).get("separator", "/") == "/"
            and not meta.get("storage_transformers")
            and len(codecs) == 1
            and codecs[0].get("name") == "bytes"
            and (codecs[0].get("configuration") or {}).get("endian", "little") == "little"
            and meta.get("data_type") in ("float64", "float32", "int32", "int64")
        )
        if not raw:
            return None
        dtype = np.dtype(meta["data_type"]).newbyteorder("<").str
        return cls(str(folder), int(chunks[0]), dtype, float(meta.get("fill_value") or 0))

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Elements ``lo:hi``; a chunk with no file is all fill value, as zarr reads it (zarr
        writes no chunk that holds nothing else).

        Raises
        ------
        OSError
            If a chunk file is shorter than its chunk (a truncated store), naming the file.
        """
        dt = np.dtype(self.dtype)
        out = np.empty(hi - lo, dtype=dt)
        pos = lo
        while pos < hi:
            j = pos // self.chunk
            end = min(hi, (j + 1) * self.chunk)
            view = out[pos - lo : end - lo]
            name = os.path.join(self.folder, "c", str(j))
            try:
                fd = os.open(name, os.O_RDONLY)
            except FileNotFoundError:  # zarr writes no chunk that is all fill value
                view[:] = self.fill
            else:
                try:
                    got = os.preadv(
                        fd, [memoryview(view).cast("B")], (pos - j * self.chunk) * dt.itemsize
                    )
                finally:
                    os.close(fd)
                if got != view.nbytes:
                    raise OSError(
                        f"chunk file {name} holds {got} of the {view.nbytes} bytes needed at "
                        f"element {pos}: the chunked H store is truncated; write it again"
                    )
            pos = end
        return out


class _ZarrBlock:
    """Rows ``start:stop`` of a chunked CSR store (or of its transposed copy, ``group="t"``:
    rows are then state elements and ``n_state`` is n_obs), read from disk on each use
    (picklable). ``raw`` (indptr, data, indices) reads the arrays that are raw directly
    (:class:`_RawArray`); zarr decodes the others."""

    def __init__(
        self,
        path: str,
        start: int,
        stop: int,
        lo: int,
        hi: int,
        n_state: int,
        group: str = "",
        raw: tuple[_RawArray | None, _RawArray | None, _RawArray | None] = (None, None, None),
    ) -> None:
        self.path, self.start, self.stop, self.lo, self.hi = path, start, stop, lo, hi
        self.n_state = n_state
        self.group = group
        self.raw = raw

    def load(self) -> sp.csr_array:
        raw = self.raw
        g = None
        if not all(raw):
            import zarr

            g = zarr.open_group(self.path, mode="r")
            if self.group:
                g = g[self.group]

        def read(k: int, name: str, lo: int, hi: int) -> np.ndarray:
            return raw[k].read(lo, hi) if raw[k] is not None else np.asarray(g[name][lo:hi])

        indptr = read(0, "indptr", self.start, self.stop + 1) - self.lo
        data = read(1, "data", self.lo, self.hi)
        indices = read(2, "indices", self.lo, self.hi)
        if indices.dtype == np.int32 and self.hi - self.lo <= np.iinfo(np.int32).max:
            # int32 offsets too, or scipy widens both index arrays to int64: a third more
            # bytes per non-zero to hold in the cache and to stream at every product
            indptr = indptr.astype(np.int32)
        return sp.csr_array((data, indices, indptr), shape=(self.stop - self.start, self.n_state))


def _raw_arrays(group: Path) -> tuple[_RawArray | None, _RawArray | None, _RawArray | None]:
    """The raw layouts of ``indptr``, ``data`` and ``indices`` in ``group`` (None for an array
    zarr must decode)."""
    return tuple(_RawArray.of(group / name) for name in ("indptr", "data", "indices"))  # type: ignore[return-value]


class _DaskBlock:
    """One row block of a dask array (dense or scipy.sparse chunks), computed on each use."""

    def __init__(self, delayed: Any) -> None:
        self.delayed = delayed

    def load(self) -> sp.csr_array:
        return sp.csr_array(self.delayed.compute(), dtype=np.float64)


def _block_matmat(block: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(block.load() @ X, dtype=np.float64)


def _block_rmatmat(block: Any, V: np.ndarray) -> np.ndarray:
    return np.asarray(block.load().T @ V, dtype=np.float64)


def _sum_arrays(*arrays: np.ndarray) -> np.ndarray:
    out = arrays[0].copy()
    for a in arrays[1:]:
        out += a
    return out


class ChunkedOperator(LinearOperator):
    """``H`` (n_obs × n_state) as row blocks of CSR matrices, applied block by block.

    Build it with :meth:`from_blocks` (list of CSR row blocks), :meth:`from_sparse`,
    :meth:`from_dask` (a dask array chunked over rows) or :meth:`open` (a zarr store written by
    :func:`write_chunked_h`; blocks are read from disk at every product).

    Parameters
    ----------
    blocks : sequence
        Block sources with a ``load() -> scipy.sparse.csr_array`` method.
    row_starts : sequence of int
        First observation of each block, plus n_obs at the end.
    n_state : int
        Number of columns.
    client : distributed.Client, optional
        Run the block products on this cluster (see :meth:`with_client`).
    cache_bytes : float
        Keep loaded blocks in memory up to this many bytes [B] (0: read every block at every
        product, fully out of core). Blocks are cached as they are first read (in order on one
        thread) until the budget is spent; the rest are read on each use. When every block is
        cached and the budget holds a second copy, Hᵀ is also kept as one CSR matrix for
        faster ``Hᵀ V`` products.
    transposed : (blocks, starts), optional
        Row blocks of Hᵀ (state elements ``starts[i]:starts[i+1]`` each, n_obs columns), as a
        store written with ``transpose=True`` holds. Both products then come from them (and
        the cache holds them, one copy): ``Hᵀ V`` block by block (each output row once,
        gathering from the small V) and ``H X`` by streaming the rows of X in order into
        small (n_obs, k) accumulators, instead of scattering into (n_state, k) accumulators
        and gathering rows of the large X at random.
    """

    def __init__(
        self,
        blocks: Sequence[Any],
        row_starts: Sequence[int],
        n_state: int,
        client: Any = None,
        cache_bytes: float = 0,
        transposed: tuple[Sequence[Any], Sequence[int]] | None = None,
    ) -> None:
        self._blocks = list(blocks)
        # Hᵀ as row blocks over the state (a store's transposed copy): serves both products
        self._t_blocks = list(transposed[0]) if transposed else []
        self._t_starts = np.asarray(transposed[1], dtype=np.int64) if transposed else None
        self.cache_bytes = float(cache_bytes)
        self._cache: dict[int, sp.csr_array] = {}
        self._t_cache: dict[int, sp.csr_array] = {}
        self._cached = 0
        self._cache_lock = threading.Lock()
        self._t_csr: sp.csr_array | None = None
        self._starts = np.asarray(row_starts, dtype=np.int64)
        if self._starts.size != len(self._blocks) + 1 or np.any(np.diff(self._starts) < 0):
            raise ShapeMismatchError(
                f"row_starts must hold one start per block plus n_obs ({len(self._blocks) + 1} "
                f"non-decreasing values); found {self._starts.tolist()[:10]}"
            )
        super().__init__(dtype=np.float64, shape=(int(self._starts[-1]), int(n_state)))
        self.client = client
        self._remote: list[Any] | None = None
        if client is not None:
            self._scatter()

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_blocks(cls, blocks: Sequence[Any], client: Any = None) -> ChunkedOperator:
        """From CSR (or any scipy.sparse / dense) row blocks with equal column counts."""
        mats = [sp.csr_array(b, dtype=np.float64) for b in blocks]
        if not mats:
            raise ShapeMismatchError("blocks must hold at least one row block; found none")
        n_state = mats[0].shape[1]
        for k, m in enumerate(mats):
            if m.shape[1] != n_state:
                raise ShapeMismatchError(
                    f"block {k} has {m.shape[1]} columns; every block needs n_state={n_state}"
                )
        starts = np.concatenate([[0], np.cumsum([m.shape[0] for m in mats])])
        return cls([_MemoryBlock(m) for m in mats], starts, n_state, client)

    @classmethod
    def from_sparse(cls, H: Any, chunk_rows: int, client: Any = None) -> ChunkedOperator:
        """Split a scipy.sparse ``H`` into blocks of ``chunk_rows`` observations."""
        H = sp.csr_array(H, dtype=np.float64)
        _check_chunk_rows(chunk_rows)
        return cls.from_blocks(
            [H[i : i + chunk_rows] for i in range(0, H.shape[0], chunk_rows)], client
        )

    @classmethod
    def from_dask(cls, array: Any, client: Any = None) -> ChunkedOperator:
        """From a 2-D dask array (n_obs, n_state) of dense or scipy.sparse chunks.

        Column chunks are merged (one block per row chunk); blocks are computed on use.
        """
        if getattr(array, "ndim", None) != 2:
            raise ShapeMismatchError(
                f"the dask array must be 2-D (n_obs, n_state); found {getattr(array, 'shape', '?')}"
            )
        if len(array.chunks[1]) > 1:
            array = array.rechunk({1: -1})
        delayed = array.to_delayed()[:, 0]
        starts = np.concatenate([[0], np.cumsum(array.chunks[0])])
        return cls([_DaskBlock(d) for d in delayed], starts, array.shape[1], client)

    @classmethod
    def open(
        cls, path: str | os.PathLike, client: Any = None, cache_bytes: float = 0
    ) -> ChunkedOperator:
        """Open a store written by :func:`write_chunked_h` (nothing but the row index is read).

        ``cache_bytes`` [B] keeps that much of H in memory once read (see the class). Raw
        chunks (the default store) are read by ``preadv`` from the chunk files, compressed ones
        through zarr; either way the operating system's page cache keeps what it can of the
        files between products, so a store that fits in free memory is read from memory.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If it is not a chunked-H store.
        """
        import zarr

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"chunked H store {path} does not exist; write it with write_chunked_h(H, path)"
            )
        g = zarr.open_group(str(path), mode="r")
        attrs = dict(g.attrs)
        if attrs.get("format") != _FORMAT:
            raise ValueError(
                f"{path} is not a chunked H store: attribute 'format' is "
                f"{attrs.get('format')!r}, expected {_FORMAT!r}; write it with write_chunked_h"
            )
        n_obs, n_state = (int(v) for v in attrs["shape"])
        chunk_rows = int(attrs["chunk_rows"])
        indptr = np.asarray(g["indptr"][:])
        starts = np.append(np.arange(0, n_obs, chunk_rows), n_obs)
        raw = _raw_arrays(path)
        blocks = [
            _ZarrBlock(str(path), int(a), int(b), int(indptr[a]), int(indptr[b]), n_state, "", raw)
            for a, b in itertools.pairwise(starts)
        ]
        transposed = None
        if "t" in g:  # Hᵀ written beside H (write_chunked_h(..., transpose=True))
            t_indptr = np.asarray(g["t"]["indptr"][:])
            t_starts = np.asarray(g["t"]["starts"][:])
            t_raw = _raw_arrays(path / "t")
            t_blocks = [
                _ZarrBlock(
                    str(path), int(a), int(b), int(t_indptr[a]), int(t_indptr[b]), n_obs, "t", t_raw
                )
                for a, b in itertools.pairwise(t_starts)
            ]
            transposed = (t_blocks, t_starts)
        return cls(blocks, starts, n_state, client, cache_bytes, transposed)

    # ------------------------------------------------------------------ properties
    @property
    def n_blocks(self) -> int:
        """Number of row blocks."""
        return len(self._blocks)

    def with_client(self, client: Any) -> ChunkedOperator:
        """The same operator with its block products run on a ``dask.distributed`` client.

        In-memory blocks are scattered to the workers once; zarr blocks are read by the
        workers themselves (the store must be on a file system they share).
        """
        return ChunkedOperator(self._blocks, self._starts, self.shape[1], client)

    def _scatter(self) -> None:
        self._remote = self.client.scatter(self._blocks, broadcast=False)

    def block(self, k: int) -> sp.csr_array:
        """Row block ``k`` as a CSR matrix (from the cache, else loaded)."""
        return self._load(self._blocks, self._cache, k)

    def t_block(self, i: int) -> sp.csr_array:
        """Row block ``i`` of the transposed copy (state rows × n_obs), cached like H's."""
        return self._load(self._t_blocks, self._t_cache, i)

    def _load(self, sources: list, cache: dict, k: int) -> sp.csr_array:
        mat = cache.get(k)
        if mat is not None:
            return mat
        mat = sources[k].load()
        size = mat.data.nbytes + mat.indices.nbytes + mat.indptr.nbytes
        with self._cache_lock:  # blocks load on several threads
            if k not in cache and self._cached + size <= self.cache_bytes:
                cache[k] = mat
                self._cached += size
        return mat

    # ------------------------------------------------------------------ products
    def _matmat(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.client is not None:
            xf = self.client.scatter(X, broadcast=True)
            futs = self.client.map(_block_matmat, self._remote, [xf] * self.n_blocks, pure=False)
            return np.concatenate(self.client.gather(futs), axis=0)
        # From Hᵀ where it is at hand: its rows stream X once, in order, into small (n_obs, k)
        # accumulators, where the rows of H gather rows of the large X at random (out of
        # core at the regional size: 3.3x faster with 4 columns, 1.2x with one;
        # benchmarks/h_store.py)
        if self._t_blocks:
            X = np.ascontiguousarray(X)
            st = self._t_starts
            parts = [X[st[i] : st[i + 1]] for i in range(len(self._t_blocks))]
            return spmm_t_threaded(self.t_block, parts, self.shape[0])
        if self._transposed() is not None:
            return spmm_from_transpose(self._t_csr, X)
        out = np.empty((self.shape[0], X.shape[1]))

        def rows(k: int) -> None:
            out[self._starts[k] : self._starts[k + 1]] = self.block(k) @ X

        run_threaded(rows, self.n_blocks, n_threads())
        return out

    def _rmatmat(self, V: np.ndarray) -> np.ndarray:
        V = np.asarray(V, dtype=np.float64)
        parts = [V[self._starts[k] : self._starts[k + 1]] for k in range(self.n_blocks)]
        if self.client is not None:
            futs = self.client.map(_block_rmatmat, self._remote, parts, pure=False)
            while len(futs) > 1:  # pairwise tree sum on the workers
                futs = [
                    self.client.submit(_sum_arrays, *futs[i : i + 2], pure=False)
                    for i in range(0, len(futs), 2)
                ]
            return futs[0].result()
        Ht = None if self._t_blocks else self._transposed()
        if Ht is not None:
            return np.asarray(Ht @ V, dtype=np.float64)
        if self._t_blocks:
            out = np.empty((self.shape[1], V.shape[1]))
            starts = self._t_starts

            def state_rows(i: int) -> None:
                out[starts[i] : starts[i + 1]] = self.t_block(i) @ V

            run_threaded(state_rows, len(self._t_blocks), n_threads())
            return out
        # one accumulator per thread (blocks dealt round-robin), summed at the end
        return spmm_t_threaded(self.block, parts, self.shape[1])

    def to_sparse(self, max_bytes: float) -> sp.csr_array:
        """The whole operator as one CSR array, read block by block.

        Parameters
        ----------
        max_bytes : float
            Most memory [bytes] the array may take as CSR plus a CSC copy (24 bytes per
            non-zero: float64 data, int32 indices); reading stops as soon as it is passed.

        Returns
        -------
        scipy.sparse.csr_array
            (n_obs, n_state).

        Raises
        ------
        MemoryBudgetError
            When the blocks read so far already take more than ``max_bytes``.
        """
        blocks, nnz = [], 0
        for k in range(self.n_blocks):
            blocks.append(self.block(k))
            nnz += blocks[-1].nnz
            if nnz * 24 > max_bytes:
                raise MemoryBudgetError(
                    f"chunked H read whole: its first {k + 1} of {self.n_blocks} blocks already "
                    f"take {nnz * 24 / 2**30:.2f} GiB as CSR and CSC, more than "
                    f"{max_bytes / 2**30:.2f} GiB"
                )
        return sp.csr_array(sp.vstack(blocks, format="csr"))

    def _transposed(self) -> sp.csr_array | None:
        """Hᵀ as one CSR once every block is cached and the cache budget holds a second copy.

        ``Hᵀ V`` then gathers from the small V instead of scattering into the large
        (n_state, k) output: 2–4× faster. Counted in ``cache_bytes``.
        """
        if self._t_csr is not None or len(self._cache) < self.n_blocks:
            return self._t_csr
        with self._cache_lock:
            nnz = sum(m.nnz for m in self._cache.values())
            need = nnz * 12 + 8 * (self.shape[1] + 1)  # float64 data, int32 indices, indptr
            if self._t_csr is None and self._cached + need <= self.cache_bytes:
                mats = [self._cache[k] for k in range(self.n_blocks)]
                t = sp.csr_array(sp.vstack(mats, format="csr")).T.tocsr()
                self._t_csr = t
                self._cached += t.data.nbytes + t.indices.nbytes + t.indptr.nbytes
                logger.debug("chunked H: Hᵀ kept as CSR (%.0f MiB)", t.data.nbytes / 2**20)
        return self._t_csr

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(x, (-1, 1)))[:, 0]

    def _rmatvec(self, v: np.ndarray) -> np.ndarray:
        return self._rmatmat(np.reshape(v, (-1, 1)))[:, 0]

    def _adjoint(self) -> LinearOperator:
        return _Adjoint(self)

    def __reduce__(self):
        return (ChunkedOperator, (self._blocks, self._starts, self.shape[1], None))


class _Adjoint(LinearOperator):
    def __init__(self, op: ChunkedOperator) -> None:
        super().__init__(dtype=np.float64, shape=(op.shape[1], op.shape[0]))
        self.op = op

    def _matmat(self, X):
        return self.op._rmatmat(X)

    def _rmatmat(self, X):
        return self.op._matmat(X)

    def _matvec(self, x):
        return self.op._rmatvec(x)

    def _rmatvec(self, x):
        return self.op._matvec(x)

    def _adjoint(self):
        return self.op


def _check_chunk_rows(chunk_rows: int) -> None:
    if int(chunk_rows) != chunk_rows or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer; found {chunk_rows!r}")


#: Codecs of a chunked H store: every product reads the whole store again, so decoding speed
#: matters more than size (``benchmarks/h_store.py`` measures each on footprint-like H).
COMPRESSIONS = (None, "lz4")


def _codecs(compression: str | None) -> list:
    """zarr compressors for ``compression``: none, or Blosc LZ4 with byte shuffle."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}; found {compression!r}")
    if compression is None:
        return []
    from zarr.codecs import BloscCodec

    return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]


def write_chunked_h(
    H: Any,
    path: str | os.PathLike,
    chunk_rows: int,
    *,
    overwrite: bool = False,
    transpose: bool = True,
    compression: str | None = None,
) -> Path:
    """Write ``H`` as a zarr store of CSR row chunks that :meth:`ChunkedOperator.open` streams.

    The store holds ``indptr`` (n_obs + 1), ``data`` (float64) and ``indices`` (nnz; int32
    where n_state allows) with zarr chunks aligned on ``chunk_rows`` observations, and the
    attributes ``shape`` and ``chunk_rows``. It is written to a temporary folder beside
    ``path`` and moved in place at the end.

    Parameters
    ----------
    H : scipy.sparse array/matrix, numpy array, or ChunkedOperator
        Observation operator (n_obs, n_state) [ppm per state unit]; a ChunkedOperator is
        written block by block (never whole in memory).
    path : str or os.PathLike
        Target folder (``.zarr``).
    chunk_rows : int
        Observations per chunk.
    overwrite : bool
        Replace an existing store.
    transpose : bool
        Also write Hᵀ (group ``t``: CSR rows over the state, in as many blocks as H with
        about equal non-zeros each), twice the disk: both products then come from it (and
        a cache holds only it): ``Hᵀ V`` gathers from V instead of scattering every block of
        H into an (n_state, k) accumulator, ``H X`` streams X in order instead of gathering
        its rows at random (``benchmarks/h_store.py`` measures both ways). Written after a
        counting pass, in passes over H of at most 2**26 non-zeros each.
    compression : {None, "lz4"}
        None (default): chunks stored raw, read at the speed of the disk or the OS page
        cache; "lz4": Blosc LZ4 with byte shuffle, 1.5 times smaller on footprint-like H but
        decoded at every product, at about 1.6 GB/s on one core (slower than raw wherever
        the disk reads faster than that; ``benchmarks/h_store.py``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If ``chunk_rows`` is not a positive integer or ``compression`` is not one of
        :data:`COMPRESSIONS`.
    """
    import zarr

    _check_chunk_rows(chunk_rows)
    codec = _codecs(compression)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if isinstance(H, ChunkedOperator):
        source = H
        n_obs, n_state = H.shape
    else:
        source = ChunkedOperator.from_sparse(H, chunk_rows)
        n_obs, n_state = source.shape
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    nnz_total = 0
    counts = []
    for k in range(source.n_blocks):  # first pass: row counts only
        counts.append(np.diff(source.block(k).indptr))
    row_nnz = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    indptr = np.concatenate([[0], np.cumsum(row_nnz)]).astype(np.int64)
    nnz_total = int(indptr[-1])
    nnz_chunk = max(1, int(np.ceil(nnz_total / max(1, int(np.ceil(n_obs / chunk_rows))))))
    g = zarr.open_group(str(tmp), mode="w")
    g.attrs.update({"format": _FORMAT, "shape": [n_obs, n_state], "chunk_rows": int(chunk_rows)})
    g.create_array(
        "indptr", shape=(n_obs + 1,), chunks=(max(1, n_obs + 1),), dtype="i8", compressors=codec
    )
    g["indptr"][:] = indptr
    data = g.create_array(
        "data", shape=(nnz_total,), chunks=(nnz_chunk,), dtype="f8", compressors=codec
    )
    index_dtype = "i4" if n_state <= np.iinfo(np.int32).max else "i8"
    indices = g.create_array(
        "indices", shape=(nnz_total,), chunks=(nnz_chunk,), dtype=index_dtype, compressors=codec
    )
    for k in range(source.n_blocks):
        blk = source.block(k)
        blk.sort_indices()
        a = int(indptr[source._starts[k]])
        b = int(indptr[source._starts[k + 1]])
        if b > a:
            data[a:b] = blk.data
            indices[a:b] = blk.indices
    if transpose:
        _write_transpose(g.require_group("t"), source, n_obs, n_state, codec)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    logger.info(
        "write_chunked_h: %d x %d, nnz=%d, %d-row chunks -> %s",
        n_obs,
        n_state,
        nnz_total,
        chunk_rows,
        path,
    )
    return path


#: Non-zeros gathered in memory per pass when Hᵀ is written (16 bytes each, plus the sort).
_TRANSPOSE_PASS_NNZ = 1 << 26


def _write_transpose(
    g: Any, source: ChunkedOperator, n_obs: int, n_state: int, codec: list
) -> None:
    """Hᵀ as CSR rows over the state into group ``g`` (``indptr``, ``data``, ``indices``,
    ``starts`` of its blocks), gathered from the row blocks of H in passes over ranges of
    state elements of at most ``_TRANSPOSE_PASS_NNZ`` non-zeros (more where one element
    alone has more)."""
    counts = np.zeros(n_state, dtype=np.int64)
    for k in range(source.n_blocks):
        counts += np.bincount(source.block(k).indices, minlength=n_state)
    t_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nnz = int(t_indptr[-1])
    n_blocks = max(1, source.n_blocks)

    def cuts(step_nnz: np.ndarray) -> np.ndarray:
        """State boundaries 0 < ... < n_state at the given non-zero counts."""
        at = np.searchsorted(t_indptr, step_nnz, side="right") - 1
        return np.unique(np.concatenate([[0], np.clip(at, 0, n_state), [n_state]]))

    starts = cuts(np.linspace(0, nnz, n_blocks + 1)[1:-1])
    nnz_chunk = max(1, int(np.ceil(nnz / n_blocks)))
    g.create_array("indptr", data=t_indptr, compressors=codec)
    g.create_array("starts", data=starts.astype(np.int64), compressors=codec)
    data = g.create_array("data", shape=(nnz,), chunks=(nnz_chunk,), dtype="f8",
                          compressors=codec)  # fmt: skip
    index_dtype = "i4" if n_obs <= np.iinfo(np.int32).max else "i8"
    indices = g.create_array("indices", shape=(nnz,), chunks=(nnz_chunk,), dtype=index_dtype,
                             compressors=codec)  # fmt: skip
    for a, b in itertools.pairwise(cuts(np.arange(_TRANSPOSE_PASS_NNZ, nnz, _TRANSPOSE_PASS_NNZ))):
        cols, rows, vals = [], [], []
        for k in range(source.n_blocks):
            blk = source.block(k)
            keep = (blk.indices >= a) & (blk.indices < b)
            r = np.repeat(np.arange(blk.shape[0], dtype=np.int64), np.diff(blk.indptr))
            cols.append(blk.indices[keep])
            rows.append(r[keep] + int(source._starts[k]))
            vals.append(blk.data[keep])
        c, r, v = np.concatenate(cols), np.concatenate(rows), np.concatenate(vals)
        order = np.lexsort((r, c))  # by state element, then observation
        lo, hi = int(t_indptr[a]), int(t_indptr[b])
        if hi > lo:
            data[lo:hi] = v[order]
            indices[lo:hi] = r[order]


def as_chunked_operator(H: Any, chunk_rows: int | None = None, client: Any = None) -> Any:
    """Wrap chunked containers as a :class:`ChunkedOperator`; other ``H`` pass through.

    A list/tuple of row blocks -> :meth:`ChunkedOperator.from_blocks`; a dask array ->
    :meth:`~ChunkedOperator.from_dask`; a path -> :meth:`~ChunkedOperator.open`; a scipy.sparse
    ``H`` with ``chunk_rows`` -> :meth:`~ChunkedOperator.from_sparse`.
    """
    if isinstance(H, ChunkedOperator):
        return H.with_client(client) if client is not None else H
    if isinstance(H, list | tuple):
        return ChunkedOperator.from_blocks(H, client)
    if isinstance(H, str | os.PathLike):
        return ChunkedOperator.open(H, client)
    if type(H).__module__.startswith("dask"):
        return ChunkedOperator.from_dask(H, client)
    if sp.issparse(H) and chunk_rows is not None:
        return ChunkedOperator.from_sparse(H, chunk_rows, client)
    return H
