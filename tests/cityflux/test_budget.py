"""GUM uncertainty budget: a hand-worked 2-cell / 2-observation example, and closure of the
budget on every row of totals.csv of the small synthetic city (1e-10 relative)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cityflux import stages
from cityflux.config import ObservationErrorsConfig
from cityflux.metrology import coverage_interval, uncertainty_budget
from inversion import Grid, LinearProblem, StateVector, TimeAxis, solve
from inversion.covariance import DiagonalCovariance
from observations import make_observation_set


@dataclass
class _Case:
    """The parts of a cityflux Case the budget reads."""

    state: Any
    H: Any
    B: Any
    obs: Any
    observation_errors: Any
    weights: Any
    labels: pd.DataFrame
    y: np.ndarray
    reports: dict = field(default_factory=dict)


def _two_cell_case():
    grid = Grid.local(8.5, 47.4, nx=2, ny=1, resolution_m=1000.0)
    time = TimeAxis.regular("2024-01-01", "2024-01-02", "1D")
    state = StateVector(grid, time, ["all"])
    obs = make_observation_set(
        [0.0, 0.0], ["2024-01-01T12:00", "2024-01-01T13:00"], "tower", ["A", "B"],
        47.4, 8.5, 50.0, errors={"instrument": [1.0, 0.0], "transport": [0.0, 1.0]},
    )  # fmt: skip
    H = sp.csr_array(np.array([[1.0, 0.0], [1.0, 1.0]]))
    B = DiagonalCovariance([4.0, 1.0])
    errors = ObservationErrorsConfig()
    R = stages.observation_covariance(obs, errors)
    W = sp.csr_array(np.array([[1.0, 1.0]]))
    labels = pd.DataFrame({"region": ["domain"], "sector": ["all"], "period": ["whole"]})
    case = _Case(state, H, B, obs, errors, W, labels, np.array([1.0, 3.0]))
    post = solve(LinearProblem(H=H, x_prior=np.zeros(2), y=case.y, B=B, R=R), "dense")
    return case, post


def test_hand_worked_two_cells_two_observations():
    """B = diag(4, 1), H = [[1, 0], [1, 1]], R = diag(1, 1) (instrument on obs 1, transport on
    obs 2), a = (1, 1). By hand: S = [[5, 4], [4, 6]], S⁻¹ = [[6, -4], [-4, 5]]/14,
    H B a = (4, 5), g = S⁻¹ H B a = (2/7, 9/14), a − Hᵀg = (1/14, 5/14);
    prior = 4/196 + 25/196 = 29/196, instrument = g₁² = 16/196, transport = g₂² = 81/196;
    sum = 126/196 = 9/14 = aᵀBa − (HBa)ᵀS⁻¹(HBa) = 5 − 61/14."""
    case, post = _two_cell_case()
    b = uncertainty_budget(post, case)
    got = b.table.set_index("source")["variance_t2"]
    assert got["prior_flux"] == pytest.approx(29 / 196, rel=1e-12)
    assert got["obs_instrument"] == pytest.approx(16 / 196, rel=1e-12)
    assert got["obs_transport"] == pytest.approx(81 / 196, rel=1e-12)
    for c in ("obs_calibration", "obs_representation", "obs_background"):
        assert got[c] == 0.0
    assert b.summary["variance_t2"].iloc[0] == pytest.approx(9 / 14, rel=1e-12)
    shares = b.table.set_index("source")["share"]
    assert shares["obs_transport"] == pytest.approx(81 / 126, rel=1e-12)
    assert b.table["share"].sum() == pytest.approx(1.0, rel=1e-12)
    u = np.sqrt(9 / 14)
    assert b.summary["standard_uncertainty_t"].iloc[0] == pytest.approx(u, rel=1e-12)
    assert b.summary["expanded_uncertainty_t"].iloc[0] == pytest.approx(2 * u, rel=1e-12)
    # posterior mean by hand: a x̂ = gᵀ y (x_a = 0) = 2/7 + 27/14 = 31/14
    mean = b.summary["posterior"].iloc[0]
    assert mean == pytest.approx(31 / 14, rel=1e-12)
    assert b.summary["coverage_95_low_t"].iloc[0] == pytest.approx(mean - 1.959964 * u, rel=1e-6)
    types = b.table.set_index("source")["type"]
    assert types["prior_flux"] == "B" and types["obs_instrument"] == "A"


def test_hyperparameter_hook_adds_a_type_a_source():
    case, post = _two_cell_case()
    b = uncertainty_budget(post, case, hyperparameters={"prior_scale": np.array([0.1])})
    row = b.table.set_index("source").loc["hyperparameters:prior_scale"]
    assert row["type"] == "A" and row["variance_t2"] == pytest.approx(0.1)
    assert b.summary["variance_t2"].iloc[0] == pytest.approx(9 / 14 + 0.1, rel=1e-12)
    assert b.summary["closure_rel"].iloc[0] < 1e-12  # closure is without the hook
    with pytest.raises(ValueError, match="hyperparameters"):
        uncertainty_budget(post, case, hyperparameters={"x": np.array([-1.0])})


def test_budget_refuses_when_it_does_not_close():
    case, post = _two_cell_case()
    with pytest.raises(ValueError, match="add up to"):
        uncertainty_budget(post, case, posterior_variance=np.array([1.0]))


def test_coverage_interval():
    lo, hi = coverage_interval(10.0, 2.0, 0.95)
    assert (float(lo), float(hi)) == pytest.approx((10 - 3.919928, 10 + 3.919928), rel=1e-6)
    # log-normal of mean 10 and std 2: σ² = ln(1.04), μ = ln 10 − σ²/2 (by hand), asymmetric
    lo, hi = coverage_interval(10.0, 2.0, 0.95, distribution="lognormal")
    sig = np.sqrt(np.log(1.04))
    mu = np.log(10.0) - sig**2 / 2
    assert (float(lo), float(hi)) == pytest.approx(
        (np.exp(mu - 1.959964 * sig), np.exp(mu + 1.959964 * sig)), rel=1e-6
    )
    assert hi - 10.0 > 10.0 - lo
    draws = np.random.default_rng(0).lognormal(mu, sig, 200_000)  # its 95 % central interval
    assert np.mean((draws >= lo) & (draws <= hi)) == pytest.approx(0.95, abs=0.002)
    with pytest.raises(ValueError, match="mean > 0"):
        coverage_interval(-1.0, 2.0, distribution="lognormal")
    with pytest.raises(ValueError, match="coverage probability"):
        coverage_interval(10.0, 2.0, 1.5)


def test_budget_closes_on_every_total_of_the_small_city(small_case):
    """Every row of totals.csv: the sources add up to the posterior variance to 1e-10, with
    correlated R blocks (towers, overpasses, scans) and background offsets in the state."""
    case = small_case
    post = solve(case.problem(), "obs-space")
    _, cov = post.aggregate_cov(case.weights)
    b = uncertainty_budget(post, case)
    total = b.table.groupby("row")["variance_t2"].sum().to_numpy()
    np.testing.assert_allclose(total, np.diag(cov), rtol=1e-10)
    assert (b.summary["closure_rel"] < 1e-10).all()
    assert len(b.summary) == case.weights.shape[0]
    sources = set(b.table["source"])
    assert {"prior_flux", "prior_background_offsets", "obs_instrument", "obs_transport"} <= sources
    assert (b.table["variance_t2"] >= -1e-12 * total.max()).all()
    # the same split from the dense reference solver
    dense = solve(case.problem(), "dense") if case.state.size <= 2500 else None
    if dense is not None:
        bd = uncertainty_budget(dense, case)
        np.testing.assert_allclose(
            bd.table["variance_t2"], b.table["variance_t2"], rtol=1e-8, atol=1e-10 * total.max()
        )


def test_budget_obs_parts_equal_explicit_component_covariances(small_case):
    """gᵀ R_c g from error_quadratic_forms equals gᵀ (dense R_c) g, and Σ_c R_c = R."""
    case = small_case
    post = solve(case.problem(), "obs-space")
    g = post.observation_sensitivity(case.weights[[0, 1]])
    q = stages.error_quadratic_forms(case.obs, case.observation_errors, g)
    R = case.R.to_dense()
    parts = []
    set_here = ("instrument", "calibration", "transport")
    for c in set_here:
        Rc = stages.observation_covariance(case.obs, case.observation_errors, [c]).to_dense()
        parts.append(Rc)
        np.testing.assert_allclose(q[c], np.einsum("ik,ij,jk->k", g, Rc, g), rtol=1e-10)
    assert (case.obs["err_calibration"].values == 0.069).all()  # the WMO X2019 default
    zero = [c for c in q if c not in set_here]
    assert all(np.all(q[c] == 0) for c in zero)  # the small city sets only these three
    np.testing.assert_allclose(sum(parts), R, rtol=1e-12, atol=1e-14)
