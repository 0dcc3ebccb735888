"""Bad inputs to the covariance operators raise the right ValueError subclass, naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from inversion.covariance import (
    BlockDiagonalCovariance,
    DenseCovariance,
    DiagonalCovariance,
    KroneckerCovariance,
    PointsCorrelation,
    RegularGridCorrelation,
    SeparableGridCorrelation,
    TemporalCorrelation,
    correlation_function,
    kronecker_prior,
)
from inversion.errors import (
    NonFiniteError,
    NonPositiveVarianceError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)


# ---------------------------------------------------------------- diagonal
@pytest.mark.parametrize(
    ("bad", "needle"), [(-1.0, "-1.0 at index 2"), (np.nan, "nan at index 2"), (0.0, "index 2")]
)
def test_diagonal_rejects_bad_variance(bad, needle):
    v = np.array([1.0, 2.0, bad, 3.0])
    with pytest.raises(NonFiniteError, match="R_tower") as info:
        DiagonalCovariance(v, name="R_tower")
    assert needle in str(info.value)


def test_diagonal_from_std_rejects_negative_std():
    with pytest.raises(NonFiniteError, match=r"std must be > 0; found -0.5 at index 1"):
        DiagonalCovariance.from_std([1.0, -0.5])
    np.testing.assert_allclose(DiagonalCovariance.from_std([2.0, 3.0]).diag(), [4.0, 9.0])


def test_diagonal_rejects_2d():
    with pytest.raises(ShapeMismatchError, match="1-D"):
        DiagonalCovariance(np.ones((2, 2)))


# ---------------------------------------------------------------- dense
def test_dense_rejects_non_symmetric():
    M = np.array([[2.0, 0.5], [0.4, 2.0]])
    with pytest.raises(ValueError, match=r"B_test must be symmetric.*B_test\[") as info:
        DenseCovariance(M, name="B_test")
    assert not isinstance(info.value, (NonFiniteError, ShapeMismatchError))


def test_dense_accepts_rounding_asymmetry_and_does_not_modify_input():
    M = np.array([[2.0, 0.5], [0.5 + 1e-14, 2.0]])
    before = M.copy()
    C = DenseCovariance(M)
    np.testing.assert_array_equal(M, before)
    np.testing.assert_array_equal(C.to_dense(), C.to_dense().T)


def test_dense_rejects_nan_and_non_square():
    with pytest.raises(NonFiniteError, match=r"R_block.*index \(1, 0\)"):
        DenseCovariance(np.array([[1.0, 0.0], [np.nan, 1.0]]), name="R_block")
    with pytest.raises(ShapeMismatchError, match=r"square.*\(2, 3\)"):
        DenseCovariance(np.ones((2, 3)))


def test_dense_not_positive_definite():
    # symmetric, positive diagonal, eigenvalues 3 and -1
    M = np.array([[1.0, 2.0], [2.0, 1.0]])
    C = DenseCovariance(M, name="R_overpass")
    assert np.allclose(C @ np.ones(2), [3.0, 3.0])  # the matvec does not need definiteness
    with pytest.raises(NotPositiveDefiniteError, match=r"R_overpass.*not positive definite"):
        C.sqrt_matvec(np.ones(2))
    with pytest.raises(NonPositiveVarianceError, match=r"R_neg\[1, 1\]=-1.0"):
        DenseCovariance(np.diag([1.0, -1.0]), name="R_neg")


# ---------------------------------------------------------------- correlation lengths / kinds
@pytest.mark.parametrize("length", [0.0, -2.0, np.nan, np.inf])
def test_grid_rejects_bad_length(length):
    with pytest.raises(NonFiniteError, match="length_km"):
        RegularGridCorrelation((3, 4), 1.0, "exponential", length)


def test_points_rejects_bad_length_and_kind():
    with pytest.raises(NonFiniteError, match="length_km"):
        PointsCorrelation([0.0, 1.0], [0.0, 1.0], "gaussian", 0.0)
    with pytest.raises(ValueError, match=r"kind='spherical'.*exponential"):
        PointsCorrelation([0.0, 1.0], [0.0, 1.0], "spherical", 1.0)
    with pytest.raises(ValueError, match="engine"):
        PointsCorrelation([0.0, 1.0], [0.0, 1.0], "gaussian", 1.0, engine="cuda")


def test_correlation_function_rejects_zero_length():
    with pytest.raises(NonFiniteError, match="length"):
        correlation_function([0.0, 1.0], 0.0, "exponential")


def test_grid_rejects_bad_shape_and_spacing():
    with pytest.raises(ShapeMismatchError, match="shape"):
        RegularGridCorrelation((0, 4), 1.0, "exponential", 2.0)
    with pytest.raises(ShapeMismatchError, match="shape"):
        RegularGridCorrelation((3, 4, 5), 1.0, "exponential", 2.0)
    with pytest.raises(NonFiniteError, match="spacing_km"):
        RegularGridCorrelation((3, 4), (1.0, -1.0), "exponential", 2.0)


def test_separable_grid_rejects_bad_shape_spacing_and_length():
    with pytest.raises(ShapeMismatchError, match="shape must be"):
        SeparableGridCorrelation((0, 4), 1.0, 2.0)
    with pytest.raises(NonFiniteError, match="spacing_km"):
        SeparableGridCorrelation((3, 4), (1.0, np.nan), 2.0)
    with pytest.raises(NonFiniteError, match="length_km"):
        SeparableGridCorrelation((3, 4), 1.0, 0.0)


def test_kronecker_prior_names_every_spatial_kind():
    with pytest.raises(ValueError, match="separable_exponential") as info:
        kronecker_prior(1.0, (3, 3), 1.0, "spherical", 2.0, nt=1, step_hours=1.0, tau_hours=None)
    assert "'spherical'" in str(info.value) and "matern32" in str(info.value)


def test_points_rejects_bad_coordinates():
    with pytest.raises(ShapeMismatchError, match="3 latitudes and 2 longitudes"):
        PointsCorrelation([0.0, 1.0, 2.0], [0.0, 1.0], "exponential", 5.0)
    with pytest.raises(NonFiniteError, match=r"lon.*index 1"):
        PointsCorrelation([0.0, 1.0], [0.0, np.nan], "exponential", 5.0)
    with pytest.raises(ValueError, match=r"lat must lie in \[-90, 90\].*95.0 at index 0"):
        PointsCorrelation([95.0, 1.0], [0.0, 1.0], "exponential", 5.0)


# ---------------------------------------------------------------- temporal
def test_temporal_rejects_bad_arguments():
    with pytest.raises(NonFiniteError, match="tau_hours"):
        TemporalCorrelation(0.0, nt=3, step_hours=1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        TemporalCorrelation(5.0, times_hours=[0.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="nt and step_hours"):
        TemporalCorrelation(5.0, nt=3)
    with pytest.raises(ValueError, match="not both"):
        TemporalCorrelation(5.0, nt=3, step_hours=1.0, times_hours=[0.0, 1.0, 2.0])


# ---------------------------------------------------------------- kronecker / block
def _kron_parts():
    return RegularGridCorrelation((2, 3), 1.0, "exponential", 2.0), TemporalCorrelation(
        4.0, nt=2, step_hours=1.0
    )


@pytest.mark.parametrize(("bad", "err"), [(-0.1, NonFiniteError), (np.nan, NonFiniteError)])
def test_kronecker_rejects_bad_std(bad, err):
    Cs, Ct = _kron_parts()
    std = np.ones((2, 6))
    std[1, 4] = bad
    with pytest.raises(err, match=r"std.*index \(1, 4\)"):
        KroneckerCovariance(std, Cs, Ct)


def test_kronecker_rejects_wrong_shapes_and_types():
    Cs, Ct = _kron_parts()
    with pytest.raises(ShapeMismatchError, match=r"std must broadcast to \(2, 6\).*\(5,\)"):
        KroneckerCovariance(np.ones(5), Cs, Ct)
    with pytest.raises(TypeError, match="spatial must be a CovarianceOperator"):
        KroneckerCovariance(1.0, np.eye(6), Ct)
    with pytest.raises(NonFiniteError, match="std"):
        kronecker_prior(-1.0, (2, 2), 1.0, "exponential", 1.0, 2, 1.0, 3.0, n_sectors=2)
    with pytest.raises(ShapeMismatchError, match="n_sectors"):
        kronecker_prior(1.0, (2, 2), 1.0, "exponential", 1.0, 2, 1.0, 3.0, n_sectors=0)


def test_block_rejects_bad_index():
    blocks = [DiagonalCovariance([1.0, 2.0]), DiagonalCovariance([3.0])]
    with pytest.raises(ShapeMismatchError, match=r"index.*n=3"):
        BlockDiagonalCovariance(blocks, index=[0, 1])
    with pytest.raises(ValueError, match=r"permutation of 0..2.*\[2\]"):
        BlockDiagonalCovariance(blocks, index=[0, 1, 1])
    with pytest.raises(ShapeMismatchError, match="at least one"):
        BlockDiagonalCovariance([])


# ---------------------------------------------------------------- shapes and size caps
def test_wrong_vector_shapes():
    C = RegularGridCorrelation((3, 4), 1.0, "matern32", 2.0)
    with pytest.raises(ValueError, match="dimension mismatch"):
        C @ np.ones(11)
    with pytest.raises(ShapeMismatchError, match=rf"w must have shape.*sqrt_dim={C.sqrt_dim}"):
        C.sqrt_matvec(np.ones(12))
    with pytest.raises(ShapeMismatchError, match=r"v must have shape.*n=12"):
        C.sqrt_rmatvec(np.ones((5, 2)))


def test_to_dense_size_cap():
    big = RegularGridCorrelation((150, 150), 1.0, "exponential", 5.0)  # n = 22 500
    with pytest.raises(ValueError, match=r"n=22500 > max_size=20000.*max_size=22500"):
        big.to_dense()
    small = DiagonalCovariance(np.ones(30))
    with pytest.raises(ValueError, match="max_size=10"):
        small.to_dense(max_size=10)
    assert small.to_dense(max_size=30).shape == (30, 30)


def test_points_sqrt_size_cap():
    rng = np.random.default_rng(0)
    C = PointsCorrelation(rng.uniform(0, 1, 20), rng.uniform(0, 1, 20), "exponential", 30.0,
                          max_sqrt_size=10)  # fmt: skip
    with pytest.raises(ValueError, match=r"n=20 > max_sqrt_size=10"):
        C.sqrt_matvec(np.ones(20))


def test_grid_sqrt_failure_is_clear_but_matvec_still_exact():
    C = RegularGridCorrelation((8, 8), 1.0, "gaussian", 6.0, max_sqrt_tries=1)
    with pytest.raises(NotPositiveDefiniteError, match="PointsCorrelation"):
        C.sqrt_matvec(np.ones(C.n))
    v = np.random.default_rng(1).normal(size=C.n)
    np.testing.assert_allclose(C @ v, C.to_dense() @ v, rtol=1e-10, atol=1e-12)
