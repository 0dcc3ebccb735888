"""numba kernels of the solvers, each with a pure-numpy/scipy twin used in tests.

Choose by argument (``engine="numba"`` or ``"numpy"``), never by environment.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse

__all__ = ["csr_matmat"]


@numba.njit(parallel=True, cache=True, fastmath=False)
def _csr_matmat_numba(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, X: np.ndarray, n_rows: int
) -> np.ndarray:
    k = X.shape[1]
    out = np.empty((n_rows, k))
    for i in numba.prange(n_rows):
        acc = np.zeros(k)  # one output row in registers/L1, written once
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            j = indices[p]
            for c in range(k):
                acc[c] += v * X[j, c]
        out[i, :] = acc
    return out


def csr_matmat(
    H: scipy.sparse.csr_array, X: np.ndarray, engine: str = "numba", rows: int | None = None
) -> np.ndarray:
    """``H[:rows] @ X`` for a CSR matrix (m, n) and a dense (n, k) array, threaded over rows.

    scipy's sparse-dense product runs on one thread; this kernel splits the rows of ``H``
    over the numba threads (the solvers' ``S = H G`` product is the main user).

    Parameters
    ----------
    H : scipy.sparse.csr_array
        Sparse matrix (m, n), float64.
    X : numpy.ndarray
        Dense matrix (n, k).
    engine : {"numba", "numpy"}
        ``"numpy"`` uses scipy's product (the reference twin).
    rows : int, optional
        Use only the first ``rows`` rows of ``H`` (default all), without slicing a copy.

    Returns
    -------
    numpy.ndarray
        ``H[:rows] @ X`` (rows, k), float64.
    """
    rows = H.shape[0] if rows is None else int(rows)
    if engine == "numpy":
        return np.asarray(H[:rows] @ X, dtype=np.float64)
    if engine != "numba":
        raise ValueError(f"engine must be 'numba' or 'numpy', found {engine!r}")
    if not (scipy.sparse.issparse(H) and H.format == "csr"):
        H = scipy.sparse.csr_array(H)
    return _csr_matmat_numba(
        H.indptr,
        H.indices,
        np.asarray(H.data, dtype=np.float64),
        np.ascontiguousarray(X, dtype=np.float64),
        rows,
    )
