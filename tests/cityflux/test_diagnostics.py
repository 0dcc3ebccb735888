"""Per-site and per-kind consistency: leave-one-group-out statistics from S⁻¹ equal an explicit
re-solve without the group, are calibrated when the truth follows the assumptions, and find a
biased site."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from cityflux import synthetic
from cityflux.diagnostics import desroziers, group_statistics, site_and_kind_diagnostics
from cityflux.pipeline import prepare_case, solve_case
from inversion import LinearProblem, solve
from inversion.problem import covariance_dense


def test_leave_one_site_out_equals_an_explicit_re_solve(small_case):
    case = small_case
    post = solve(case.problem(), method="obs-space")
    sites = case.obs["site"].values.astype(str)
    st = group_statistics(post, sites)
    g = list(st.labels).index("T01")
    idx = np.flatnonzero(sites == "T01")
    rest = np.flatnonzero(sites != "T01")
    # the posterior without T01, by the dense reference solver
    R = covariance_dense(case.R)
    Hd = case.H.toarray()
    sub = LinearProblem(
        H=Hd[rest], x_prior=case.x_prior, y=case.y[rest], B=case.B, R=R[np.ix_(rest, rest)]
    )
    ref = solve(sub, method="dense")
    r = case.y[idx] - Hd[idx] @ ref.mean  # prediction errors of the withheld site
    C = Hd[idx] @ ref.covariance @ Hd[idx].T + R[np.ix_(idx, idx)]
    chi2 = r @ np.linalg.solve(C, r)
    assert st.chi2[g, 0] == pytest.approx(chi2, rel=1e-8)
    one = np.ones(idx.size)
    b = one @ np.linalg.solve(C, r) / (one @ np.linalg.solve(C, one))
    assert st.bias[g, 0] == pytest.approx(b, rel=1e-8, abs=1e-12)
    assert st.bias_sd[g] == pytest.approx(1 / np.sqrt(one @ np.linalg.solve(C, one)), rel=1e-8)
    cover = np.mean(np.abs(r) <= 1.96 * np.sqrt(np.diag(C)))
    assert st.coverage_95[g, 0] == pytest.approx(cover)


@pytest.fixture(scope="module")
def draws(make_small_config):
    """Leave-one-site-out statistics of 400 draws, as assumed and with T01 biased by +1 ppm."""
    out = {}
    for bias in (0.0, 1.0):
        cfg = make_small_config(f"synthetic.truth.site_bias_ppm={{T01: {bias}}}")
        case, world = prepare_case(cfg)
        model = synthetic.truth_model(case, cfg, world)
        X, Y = model.draw(case, 400, np.random.default_rng(8))
        post = solve_case(case.with_data(Y[0], X[0]), cfg)
        D = (Y - case.H @ case.x_prior).T
        out[bias] = group_statistics(post, case.obs["site"].values, D)
    return out


def test_statistics_are_calibrated_when_the_truth_follows_the_assumptions(draws):
    st = draws[0.0]
    # χ²_g / n_g has mean 1 (sd of the mean over 400 draws: sqrt(2/n_g/400) <= 0.016)
    assert np.all(np.abs((st.chi2 / st.n[:, None]).mean(axis=1) - 1) < 0.07)
    # p-values are uniform: Kolmogorov-Smirnov over all groups and draws
    assert stats.kstest(st.p_value().ravel(), "uniform").pvalue > 1e-3
    # offsets: mean 0, spread = the stated sd (sd of a sample sd of 400: 3.5 %)
    z = st.bias / st.bias_sd[:, None]
    assert np.all(np.abs(z.mean(axis=1)) < 0.2)
    assert np.all(np.abs(z.std(axis=1) - 1) < 0.15)
    # family-wise false alarms <= 5 % (binomial sd over 400 draws: 1.1 %)
    assert st.flagged().any(axis=0).mean() <= 0.08
    assert abs(st.coverage_95.mean() - 0.95) < 0.01


def test_a_biased_tower_is_estimated_and_stands_out(draws):
    st = draws[1.0]
    g = list(st.labels).index("T01")
    # its offset is estimated without bias: 1 ppm within 3 standard errors of the mean
    se = st.bias_sd[g] / np.sqrt(st.bias.shape[1])
    assert abs(st.bias[g].mean() - 1.0) < 3 * se
    # the other sites see T01's bias only through its share in their prediction (the central
    # tower T00 most, -0.4 ppm here): always well below T01's own
    others = np.delete(np.arange(st.labels.size), g)
    assert np.abs(st.bias[others].mean(axis=1)).max() < 0.5 * st.bias[g].mean()
    # T01 is flagged far more often than any unbiased site
    fl = st.flagged()
    assert fl[g].mean() > 3 * max(fl[others].mean(axis=1).max(), 0.01)


def test_desroziers_ratios_near_one_for_many_observations(make_small_config):
    cfg = make_small_config(
        "synthetic.n_towers=20", "synthetic.obs_hours_local=[9, 10, 11, 12, 13, 14, 15, 16]"
    )
    case, world = prepare_case(cfg)
    case = synthetic.observe(case, cfg, world)
    post = solve_case(case, cfg)
    t = desroziers(post, case.R, case.obs["kind"].values.astype(str)).set_index("kind")
    assert t.loc["tower", "n"] == 800
    assert abs(t.loc["tower", "r_ratio"] - 1) < 0.25


def test_run_diagnostics_have_sites_and_kinds(small_case):
    post = solve(small_case.problem(), method="obs-space")
    d = site_and_kind_diagnostics(small_case, post)
    sites = {r["group"] for r in d["sites"]}
    assert {"T00", "T01"} <= sites and {r["group"] for r in d["kinds"]} == set(small_case.kinds)
    for r in d["sites"]:
        assert r["expected_sd"] == pytest.approx(np.sqrt(2 / r["n"]))
        assert 0 <= r["p_value"] <= 1 and 0 <= r["loo_coverage_95"] <= 1
    assert {r["kind"] for r in d["desroziers"]} == set(small_case.kinds)


def test_a_flag_is_logged_with_its_site_and_the_false_alarm_rate(small_case, caplog):
    # +10 ppm at T01: the warning names the site and says how often a consistent network
    # raises such a flag, so a chance flag on a first run is not taken for a bug
    problem = small_case.problem()
    sites = small_case.obs["site"].values.astype(str)
    y = problem.y + 10.0 * (sites == "T01")
    post = solve(dataclasses.replace(problem, y=y), method="obs-space")
    with caplog.at_level("WARNING", logger="cityflux.diagnostics"):
        d = site_and_kind_diagnostics(small_case, post)
    flagged = [r["group"] for r in d["sites"] if r["flagged"]]
    assert "T01" in flagged
    msg = next(m for m in caplog.messages if "'T01'" in m)
    n_sites = len(d["sites"])
    assert f"one of its {n_sites} sites in 5 % of runs" in msg, msg


def test_statistics_from_the_dense_inverse_equal_those_from_solves(small_case):
    from cityflux.diagnostics import innovation_precision

    post = solve(small_case.problem(), method="obs-space")
    sites = small_case.obs["site"].values.astype(str)
    D = np.random.default_rng(2).standard_normal((post.n_obs, 3))
    a = group_statistics(post, sites, D)
    b = group_statistics(post, sites, D, P=innovation_precision(post))
    for name in ("chi2", "bias", "bias_sd", "coverage_95"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-8, atol=1e-12)


@pytest.fixture(scope="module")
def month():
    """examples/osse_small.yaml over 30 days (120 tower hours per site), 300 OSSE draws each:
    as assumed, +1 ppm at T01, and +1 ppm at T01 with a bias state per tower."""
    from pathlib import Path

    from cityflux.config import load_config
    from cityflux.osse import run_osse

    base = Path(__file__).resolve().parents[2] / "examples" / "osse_small.yaml"
    sets = {
        "assumed": [],
        "biased": ["synthetic.truth.site_bias_ppm={T01: 1.0}"],
        "bias_state": ["synthetic.truth.site_bias_ppm={T01: 1.0}",
                       "background.site_bias={per: constant, std_ppm: 1.0, kinds: [tower]}"],
    }  # fmt: skip
    return {
        k: run_osse(load_config(base, ["period.end=2024-07-03T00:00:00", *v]), 300, seed=11)
        for k, v in sets.items()
    }


def test_a_biased_tower_is_flagged_in_most_draws_with_a_month_of_data(month):
    """Issue #14's target: +1 ppm at one tower flagged in >= 80 % of draws at <= 5 % family-wise
    false alarms. With 120 hours at the tower its offset is known to ~0.18 ppm (z ~ 5.7 against
    the Bonferroni cut of ~3.1); over 5 days (20 hours, sd 0.48 ppm) it is flagged in ~20 %."""
    s_ok, s_bias = month["assumed"].sites, month["biased"].sites
    any_ok = s_ok.groupby("draw")["flagged"].any().mean()
    assert any_ok <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)  # binomial sd 1.3 % over 300 draws
    assert month["biased"].flag_rates()["T01"] >= 0.9
    t01 = s_bias[s_bias["site"] == "T01"]
    assert abs(t01["offset_ppm"].mean() - 1.0) < 3 * t01["offset_sd_ppm"].mean() / np.sqrt(300)
    # the bias wrecks the city total (coverage ~0.36); a bias state per tower restores it
    assert month["biased"].coverage(0.95) < 0.6
    assert 0.92 <= month["bias_state"].coverage(0.95) <= 0.98
    assert month["bias_state"].flag_rates()["T01"] <= 0.05
