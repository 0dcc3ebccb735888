"""Statistics of the synthetic city: honest draws, interval coverage, error reduction."""

from __future__ import annotations

import numpy as np
import pytest

from cityflux.osse import KINDS
from cityflux.pipeline import all_kind_subsets
from inversion.solve import solve

N_SEEDS = 400


def _city_weight(city):
    return city.weights[[0]].toarray()[0]


def test_city_total_matches_configured_emissions(small_city):
    # 25 kt/day over 7 days, city mask total, within rounding.
    w = _city_weight(small_city)
    np.testing.assert_allclose(w @ small_city.x_truth, 25e3 * 7, rtol=1e-9)
    # Daily rows sum to the whole-period row.
    labels = small_city.weight_labels
    days = [i for i, (r, p) in enumerate(labels) if r == "city" and len(p) == 10]
    assert len(days) == 7
    t = small_city.totals(small_city.x_truth)
    np.testing.assert_allclose(t[days].sum(), t[0], rtol=1e-12)


def test_prior_and_noise_draws_follow_B_and_R(small_city):
    city = small_city
    rng = np.random.default_rng(1)
    X, Y = city.draw(2000, rng)
    w = _city_weight(city)
    err = (X - city.x_truth) @ w
    sd_expected = np.sqrt(w @ (city.B @ w))
    # Sample std of 2000 Gaussian draws: relative standard error 1/sqrt(2*2000) = 1.6 %.
    assert abs(err.std() / sd_expected - 1) < 0.06
    noise = Y - city.H @ city.x_truth
    sd_obs = np.sqrt(city.R.diag())
    ratio = noise.std(axis=0) / sd_obs
    assert abs(ratio.mean() - 1) < 0.02


@pytest.fixture(scope="module")
def ensemble(small_city):
    """Posterior city totals of N_SEEDS realisations (one factorisation, vectorised)."""
    city = small_city
    post = solve(city.problem(), method="obs-space")
    X, Y = city.draw(N_SEEDS, np.random.default_rng(2024))
    # Different prior means per realisation: shift y so means_for() sees the same innovation.
    Y_shift = Y - (city.H @ (X - city.x_prior).T).T
    means = post.means_for(Y_shift) + (X - city.x_prior)
    w = _city_weight(city)
    _, std = post.aggregate(w)
    truth = w @ city.x_truth
    return {"post": means @ w, "prior": X @ w, "std": std, "truth": truth}


def test_95_interval_coverage(ensemble):
    inside = np.abs(ensemble["post"] - ensemble["truth"]) <= 1.96 * ensemble["std"]
    coverage = inside.mean()
    assert 0.90 <= coverage <= 0.99, coverage


def test_mae_drops_by_half(ensemble):
    mae_prior = np.mean(np.abs(ensemble["prior"] - ensemble["truth"]))
    mae_post = np.mean(np.abs(ensemble["post"] - ensemble["truth"]))
    assert mae_post <= 0.5 * mae_prior, (mae_post, mae_prior)


def test_adding_a_kind_never_increases_total_std(small_city):
    city = small_city
    w = _city_weight(city)
    std = {}
    for kinds in all_kind_subsets(city.kinds):
        std[kinds] = solve(city.problem(list(kinds)), method="obs-space").aggregate(w)[1]
    prior_std = np.sqrt(w @ (city.B @ w))
    for kinds, s in std.items():
        assert s <= prior_std * (1 + 1e-9)
        for extra in set(city.kinds) - set(kinds):
            bigger = tuple(k for k in city.kinds if k in set(kinds) | {extra})
            assert std[bigger] <= s * (1 + 1e-9), (kinds, extra)
    assert set(city.kinds) == set(KINDS)


def test_kind_subset_uses_rows_of_H(small_city):
    p = small_city.problem(["tower"])
    mask = small_city.kind_mask(["tower"])
    assert p.n_obs == mask.sum()
    np.testing.assert_array_equal(p.y, small_city.y[mask])
    with pytest.raises(ValueError, match="unknown observation kinds"):
        small_city.kind_mask(["radar"])
