"""LinearProblem input checks: every bad input raises the right error naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

from inversion.errors import (
    NonFiniteError,
    NonPositiveVarianceError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)
from inversion.problem import LinearProblem
from tests.inversion._solver_cases import KronOperator, exp_corr

N_OBS, N_STATE = 4, 6


def _good() -> dict:
    rng = np.random.default_rng(0)
    return {
        "H": rng.uniform(size=(N_OBS, N_STATE)),
        "x_prior": np.ones(N_STATE),
        "y": np.ones(N_OBS),
        "B": exp_corr(N_STATE, 2.0),
        "R": 0.5 * np.eye(N_OBS),
    }


def test_good_problem_and_input_kinds():
    p = LinearProblem(**_good())
    assert (p.n_obs, p.n_state) == (N_OBS, N_STATE)
    kw = _good()
    kw["H"] = sp.csr_matrix(kw["H"])  # legacy sparse matrix -> csr_array
    assert isinstance(LinearProblem(**kw).H, sp.csr_array)
    kw["H"] = aslinearoperator(_good()["H"])
    kw["B"] = KronOperator(exp_corr(2, 1.0), exp_corr(3, 1.0))
    p = LinearProblem(**kw)
    np.testing.assert_allclose(p.B_diag, np.ones(N_STATE))


@pytest.mark.parametrize(
    ("arg", "value", "pattern"),
    [
        (
            "H",
            np.ones((N_OBS, N_STATE + 1)),
            r"H must have shape \(n_obs, n_state\)=\(4, 6\).*\(4, 7\)",
        ),
        ("H", sp.csr_array(np.ones((N_STATE, N_OBS))), r"H must have shape.*found shape \(6, 4\)"),
        ("H", np.ones(N_STATE), r"H must be a 2-D.*\(6,\)"),
        ("x_prior", np.ones((N_STATE, 1)), r"x_prior must be a 1-D vector.*\(6, 1\)"),
        ("y", np.ones((2, 2)), r"y must be a 1-D vector.*\(2, 2\)"),
        ("B", np.eye(N_STATE + 1), r"B must have shape \(n_state, n_state\)=\(6, 6\).*\(7, 7\)"),
        ("B", np.ones((N_STATE, 2)), r"B must be a square 2-D.*\(6, 2\)"),
        ("R", np.eye(N_OBS - 1), r"R must have shape \(n_obs, n_obs\)=\(4, 4\).*\(3, 3\)"),
        (
            "R",
            KronOperator(exp_corr(1, 1.0), exp_corr(5, 1.0)),
            r"R must have shape \(n_obs, n_obs\)=\(4, 4\).*\(5, 5\)",
        ),
    ],
)
def test_shape_mismatch_names_argument(arg, value, pattern):
    kw = _good()
    kw[arg] = value
    with pytest.raises(ShapeMismatchError, match=pattern):
        LinearProblem(**kw)


def _with_bad(arg: str, index, value: float):
    kw = _good()
    arr = kw[arg].copy()
    arr[index] = value
    kw[arg] = arr
    return kw


@pytest.mark.parametrize(
    ("arg", "index", "value", "pattern"),
    [
        ("H", (2, 3), np.nan, r"H holds 1 non-finite.*H\[2, 3\]=nan"),
        ("x_prior", 4, np.inf, r"x_prior holds 1 non-finite.*x_prior\[4\]=inf"),
        ("y", 1, -np.inf, r"y holds 1 non-finite.*y\[1\]=-inf"),
        ("B", (5, 5), np.nan, r"B holds 1 non-finite.*B\[5, 5\]=nan"),
        ("R", (0, 0), np.inf, r"R holds 1 non-finite.*R\[0, 0\]=inf"),
    ],
)
def test_non_finite_names_argument_and_index(arg, index, value, pattern):
    with pytest.raises(NonFiniteError, match=pattern):
        LinearProblem(**_with_bad(arg, index, value))


def test_non_finite_sparse_h_names_row_and_column():
    kw = _good()
    H = sp.csr_array(kw["H"])
    H.data[H.indptr[2] + 1] = np.nan  # second stored value of row 2
    kw["H"] = H
    with pytest.raises(NonFiniteError, match=r"H holds 1 non-finite stored.*H\[2, 1\]=nan"):
        LinearProblem(**kw)


class _DiagOnly(KronOperator):
    """Operator whose diag() reports given variances (to test the operator path)."""

    def __init__(self, var):
        super().__init__(np.eye(1), np.diag(var))


@pytest.mark.parametrize(
    ("arg", "value", "pattern"),
    [
        ("B", np.diag([1.0, 1, 0, 1, 1, 1]), r"B has 1 non-positive.*B\[2, 2\]=0\.0"),
        ("R", np.diag([1.0, -0.5, 1, 1]), r"R has 1 non-positive.*R\[1, 1\]=-0\.5"),
        ("R", _DiagOnly([1.0, 1, 1, -2]), r"R has 1 non-positive.*R\[3, 3\]=-2\.0"),
        ("B", _DiagOnly([1.0, 1, 1, 1, np.nan, 1]), r"B has non-finite variance.*B\[4, 4\]=nan"),
    ],
)
def test_non_positive_variance(arg, value, pattern):
    kw = _good()
    kw[arg] = value
    with pytest.raises(NonFiniteError, match=pattern) as info:
        LinearProblem(**kw)
    if "non-positive" in pattern:
        assert isinstance(info.value, NonPositiveVarianceError)


def test_asymmetric_covariance_is_rejected():
    kw = _with_bad("B", (0, 1), 0.9)
    with pytest.raises(NotPositiveDefiniteError, match=r"B must be symmetric.*B\[0, 1\]"):
        LinearProblem(**kw)


def test_errors_are_value_errors():
    for cls in (ShapeMismatchError, NonFiniteError, NonPositiveVarianceError):
        assert issubclass(cls, ValueError)


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("stop", [1, 129, 300])
def test_h_rows_matmat_threaded_tiles_equal_dense_product(monkeypatch, threads, stop):
    # the (row part x column block) tiles on a thread pool reproduce H[:stop] @ X exactly,
    # including parts with empty rows and a column count that is not a multiple of the block
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    rng = np.random.default_rng(5)
    dense = np.where(rng.uniform(size=(300, 500)) < 0.05, rng.standard_normal((300, 500)), 0.0)
    H = sp.csr_array(dense * (rng.uniform(size=(300, 1)) > 0.2))  # some empty rows
    problem = LinearProblem(
        H=H, x_prior=np.zeros(500), y=np.zeros(300), B=np.eye(500), R=np.eye(300)
    )
    X = rng.standard_normal((500, 77))
    Hd = H.toarray()
    np.testing.assert_allclose(
        problem.H_rows_matmat(stop, X), Hd[:stop] @ X, rtol=1e-12, atol=1e-12
    )
    # full products (threaded tiles, and Hᵀ accumulated in place per thread), 2-D and 1-D
    V = rng.standard_normal((300, 5))
    np.testing.assert_allclose(problem.H_matmat(X), Hd @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(problem.Ht_matmat(V), Hd.T @ V, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(problem.H_matmat(X[:, 0]), Hd @ X[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(problem.Ht_matmat(V[:, 0]), Hd.T @ V[:, 0], rtol=1e-12, atol=1e-12)
