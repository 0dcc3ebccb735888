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

from inversion._sparse import n_threads, run_threaded, spmm_t_threaded
from inversion.errors import ShapeMismatchError

__all__ = ["ChunkedOperator", "as_chunked_operator", "write_chunked_h"]

logger = logging.getLogger(__name__)

_FORMAT = "cityflux-chunked-csr-v1"


class _MemoryBlock:
    """A CSR row block held in memory."""

    def __init__(self, mat: sp.csr_array) -> None:
        self.mat = mat

    def load(self) -> sp.csr_array:
        return self.mat


class _ZarrBlock:
    """Rows ``start:stop`` of a chunked CSR store, read from disk on each use (picklable)."""

    def __init__(self, path: str, start: int, stop: int, lo: int, hi: int, n_state: int) -> None:
        self.path, self.start, self.stop, self.lo, self.hi = path, start, stop, lo, hi
        self.n_state = n_state

    def load(self) -> sp.csr_array:
        import zarr

        g = zarr.open_group(self.path, mode="r")
        indptr = np.asarray(g["indptr"][self.start : self.stop + 1]) - self.lo
        data = np.asarray(g["data"][self.lo : self.hi])
        indices = np.asarray(g["indices"][self.lo : self.hi])
        if indices.dtype == np.int32 and self.hi - self.lo <= np.iinfo(np.int32).max:
            # int32 offsets too, or scipy widens both index arrays to int64: a third more
            # bytes per non-zero to hold in the cache and to stream at every product
            indptr = indptr.astype(np.int32)
        return sp.csr_array((data, indices, indptr), shape=(self.stop - self.start, self.n_state))


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
    """

    def __init__(
        self,
        blocks: Sequence[Any],
        row_starts: Sequence[int],
        n_state: int,
        client: Any = None,
        cache_bytes: float = 0,
    ) -> None:
        self._blocks = list(blocks)
        self.cache_bytes = float(cache_bytes)
        self._cache: dict[int, sp.csr_array] = {}
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

        ``cache_bytes`` [B] keeps that much of H in memory once read (see the class).

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
        blocks = [
            _ZarrBlock(str(path), int(a), int(b), int(indptr[a]), int(indptr[b]), n_state)
            for a, b in itertools.pairwise(starts)
        ]
        return cls(blocks, starts, n_state, client, cache_bytes)

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
        mat = self._cache.get(k)
        if mat is not None:
            return mat
        mat = self._blocks[k].load()
        size = mat.data.nbytes + mat.indices.nbytes + mat.indptr.nbytes
        with self._cache_lock:  # blocks load on several threads
            if k not in self._cache and self._cached + size <= self.cache_bytes:
                self._cache[k] = mat
                self._cached += size
        return mat

    # ------------------------------------------------------------------ products
    def _matmat(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.client is not None:
            xf = self.client.scatter(X, broadcast=True)
            futs = self.client.map(_block_matmat, self._remote, [xf] * self.n_blocks, pure=False)
            return np.concatenate(self.client.gather(futs), axis=0)
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
        Ht = self._transposed()
        if Ht is not None:
            return np.asarray(Ht @ V, dtype=np.float64)
        # one accumulator per thread (blocks dealt round-robin), summed at the end
        return spmm_t_threaded(self.block, parts, self.shape[1])

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


def _fast_codec() -> Any:
    """Blosc LZ4 with byte shuffle: every product reads the whole store again, so decoding
    speed matters more than size. On footprint-like H, with int32 indices, a full read pass
    is about twice as fast as with zarr's default zstd and int64 indices, and the store is
    smaller (``benchmarks/h_store.py``)."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def write_chunked_h(
    H: Any, path: str | os.PathLike, chunk_rows: int, *, overwrite: bool = False
) -> Path:
    """Write ``H`` as a zarr store of CSR row chunks that :meth:`ChunkedOperator.open` streams.

    The store holds ``indptr`` (n_obs + 1), ``data`` (float64) and ``indices`` (nnz; int32
    where n_state allows) with zarr chunks aligned on ``chunk_rows`` observations, compressed
    by Blosc LZ4 with byte shuffle (fast to decode: the store is read at every product), and
    the attributes ``shape`` and ``chunk_rows``. It is written to a temporary folder beside
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

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    import zarr

    _check_chunk_rows(chunk_rows)
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
    g.create_array("indptr", shape=(n_obs + 1,), chunks=(max(1, n_obs + 1),), dtype="i8")
    g["indptr"][:] = indptr
    codec = [_fast_codec()]
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
