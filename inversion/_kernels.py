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
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, X: np.ndarray
) -> np.ndarray:
    n_rows = indptr.size - 1
    k = X.shape[1]
    out = np.zeros((n_rows, k))
    for i in numba.prange(n_rows):
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            j = indices[p]
            for c in range(k):
                out[i, c] += v * X[j, c]
    return out


def csr_matmat(H: scipy.sparse.csr_array, X: np.ndarray, engine: str = "numba") -> np.ndarray:
    """``H @ X`` for a CSR matrix (m, n) and a dense (n, k) array, threaded over rows.

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

    Returns
    -------
    numpy.ndarray
        ``H @ X`` (m, k), float64.
    """
    if engine == "numpy":
        return np.asarray(H @ X, dtype=np.float64)
    if engine != "numba":
        raise ValueError(f"engine must be 'numba' or 'numpy', found {engine!r}")
    H = scipy.sparse.csr_array(H)
    return _csr_matmat_numba(
        H.indptr.astype(np.int64, copy=False),
        H.indices.astype(np.int64, copy=False),
        np.asarray(H.data, dtype=np.float64),
        np.ascontiguousarray(X, dtype=np.float64),
    )
