"""The solvers' numba kernels against their scipy twins."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from inversion._kernels import csr_matmat


@pytest.mark.parametrize(
    ("m", "n", "k", "density"), [(1, 5, 1, 1.0), (37, 200, 13, 0.05), (50, 80, 0, 0.1)]
)
def test_csr_matmat_matches_scipy(m, n, k, density):
    rng = np.random.default_rng(m)
    H = sp.random_array((m, n), density=density, format="csr", rng=rng)
    X = rng.normal(size=(n, k))
    np.testing.assert_allclose(
        csr_matmat(H, X), csr_matmat(H, X, engine="numpy"), rtol=1e-13, atol=1e-14
    )


def test_csr_matmat_with_empty_rows_and_fortran_input():
    H = sp.csr_array(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 2.0]]))
    X = np.asfortranarray(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(csr_matmat(H, X), [[0.0, 0.0], [8.0, 11.0]])


def test_csr_matmat_rejects_unknown_engine():
    with pytest.raises(ValueError, match="engine"):
        csr_matmat(sp.csr_array(np.eye(2)), np.eye(2), engine="cuda")


def test_csr_matmat_first_rows_only():
    rng = np.random.default_rng(3)
    H = sp.random_array((30, 40), density=0.2, format="csr", rng=rng)
    X = rng.normal(size=(40, 5))
    for rows in (0, 1, 17, 30):
        np.testing.assert_allclose(csr_matmat(H, X, rows=rows), (H @ X)[:rows], rtol=1e-13)
        np.testing.assert_allclose(csr_matmat(H, X, engine="numpy", rows=rows), (H @ X)[:rows])
