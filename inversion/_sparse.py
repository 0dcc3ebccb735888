"""Threaded sparse × dense products of the observation operator (CSR row blocks).

scipy's own products run on one thread, and ``A.T @ V`` returns a new (n_state, k) array per
call; these helpers tile ``H @ X`` over threads and accumulate ``Hᵀ V`` over row blocks in
place (numba), one accumulator per thread. ``OMP_NUM_THREADS`` caps the threads (batch jobs set it).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from numba import njit

__all__ = [
    "n_threads",
    "row_view",
    "run_threaded",
    "spmm_from_transpose",
    "spmm_t_threaded",
    "spmm_threaded",
]

#: Columns of X per sparse product: a block of X's rows stays in cache.
SPMM_BLOCK = 32


def n_threads() -> int:
    """Threads for the package's own thread pools: ``OMP_NUM_THREADS`` when set (batch jobs
    set it to their allocation), else the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_threaded(fn: Callable[[int], None], n: int, workers: int) -> None:
    """``fn(i)`` for i in range(n), on ``workers`` threads (inline when 1)."""
    workers = max(1, min(workers, n))
    if workers == 1:
        for i in range(n):
            fn(i)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, range(n)))


def row_view(H: sp.csr_array, a: int, b: int) -> sp.csr_array:
    """Rows ``a:b`` of a CSR matrix sharing its data and indices (``H[a:b]`` copies them)."""
    lo, hi = int(H.indptr[a]), int(H.indptr[b])
    return sp.csr_array(
        (H.data[lo:hi], H.indices[lo:hi], H.indptr[a : b + 1] - lo),
        shape=(b - a, H.shape[1]),
        copy=False,
    )


def spmm_threaded(H: sp.csr_array, stop: int, X: np.ndarray) -> np.ndarray:
    """``H[:stop] @ X`` (dense (stop, k)) in tiles of rows × ``SPMM_BLOCK`` columns on threads.

    Row parts hold equal numbers of non-zeros (the work of a tile is nnz × columns).
    """
    k = X.shape[1]
    out = np.empty((stop, k))
    workers = min(n_threads(), max(1, stop // 64))
    nnz = int(H.indptr[stop])
    cuts = np.clip(
        np.searchsorted(H.indptr[: stop + 1], np.linspace(0, nnz, workers + 1)[1:-1]), 0, stop
    )
    bounds = np.unique(np.concatenate([[0], cuts, [stop]]))
    parts = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]

    def tile(i: int) -> None:
        a, b = parts[i]
        Hp = row_view(H, a, b)
        for j in range(0, k, SPMM_BLOCK):
            out[a:b, j : j + SPMM_BLOCK] = Hp @ np.ascontiguousarray(X[:, j : j + SPMM_BLOCK])

    run_threaded(tile, len(parts), len(parts))
    return out


@njit(cache=True, nogil=True)
def _csr_rmatmat_add(indptr, indices, data, V, out):  # pragma: no cover - compiled
    """``out += Aᵀ V`` for a CSR block A (rows × n_state) and V (rows, k), in place."""
    k = V.shape[1]
    for i in range(indptr.size - 1):
        for p in range(indptr[i], indptr[i + 1]):
            c = indices[p]
            v = data[p]
            for j in range(k):
                out[c, j] += v * V[i, j]


def spmm_t_threaded(
    load: Callable[[int], sp.csr_array], parts: Sequence[np.ndarray], n_state: int
) -> np.ndarray:
    """``Σ_b A_bᵀ V_b`` over CSR row blocks ``A_b = load(b)`` (rows_b × n_state), V_b (rows_b, k).

    Blocks are dealt round-robin to the threads; each accumulates into its own (n_state, k)
    array in place (numba), and the accumulators are summed at the end — instead of one new
    (n_state, k) array per block as ``A_b.T @ V_b`` would make (400 MB per block for a 10 M
    state and k = 5).
    """
    n_blocks = len(parts)
    k = parts[0].shape[1]
    workers = max(1, min(n_threads(), n_blocks))
    outs = [np.zeros((n_state, k)) for _ in range(workers)]

    def accumulate(w: int) -> None:
        for i in range(w, n_blocks, workers):
            A = load(i)  # duplicate or unsorted entries are fine: each one is added
            _csr_rmatmat_add(A.indptr, A.indices, A.data, np.ascontiguousarray(parts[i]), outs[w])

    run_threaded(accumulate, workers, workers)
    for o in outs[1:]:
        outs[0] += o
    return outs[0]


def spmm_from_transpose(Ht: sp.csr_array, X: np.ndarray) -> np.ndarray:
    """``H @ X`` (n_obs, k) from ``Hᵀ`` held as CSR (n_state × n_obs) and X (n_state, k).

    :func:`spmm_t_threaded` on ranges of state elements with about equal non-zeros, one per
    thread: each streams its rows of Hᵀ and of X once, in order, into its own (n_obs, k)
    accumulator. Where n_obs ≪ n_state the accumulators stay in cache while ``H @ X`` by
    rows of H would gather rows of the large X at random.
    """
    n_state, n_obs = Ht.shape
    X = np.ascontiguousarray(X, dtype=np.float64)
    workers = max(1, min(n_threads(), n_state // 1024 or 1))
    nnz = int(Ht.indptr[-1])
    cuts = np.searchsorted(Ht.indptr, np.linspace(0, nnz, workers + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 0, n_state), [n_state]]))
    ranges = [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    return spmm_t_threaded(lambda i: row_view(Ht, *ranges[i]), [X[a:b] for a, b in ranges], n_obs)
