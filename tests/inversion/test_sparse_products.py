"""Threaded sparse products of H (inversion._sparse) against scipy's own."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from inversion._sparse import spmm_from_transpose, spmm_t_threaded, spmm_threaded


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("k", [1, 4])
def test_products_equal_scipy(monkeypatch, threads, k):
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    rng = np.random.default_rng(8)
    H = sp.random_array((40, 5000), density=0.01, format="csr", rng=rng)  # empty columns too
    X = rng.standard_normal((5000, k))
    V = rng.standard_normal((40, k))
    ref = H @ X
    assert_allclose(spmm_from_transpose(H.T.tocsr(), X), ref, rtol=1e-13, atol=1e-13)
    assert_allclose(spmm_threaded(H, 40, X), ref, rtol=1e-13, atol=1e-13)
    blocks = [H[:13], H[13:14], H[14:]]
    parts = [V[:13], V[13:14], V[14:]]
    assert_allclose(
        spmm_t_threaded(lambda i: blocks[i], parts, 5000), H.T @ V, rtol=1e-13, atol=1e-13
    )
    # X in Fortran order (a column slice of a larger array) gives the same
    Xf = np.asfortranarray(X)
    assert_allclose(spmm_from_transpose(H.T.tocsr(), Xf), ref, rtol=1e-13, atol=1e-13)
