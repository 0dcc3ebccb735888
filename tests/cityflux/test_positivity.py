"""The non-negative (log-normal) posterior through the real path: the prior mapped from the
Gaussian configuration, the run's outputs (no negative cell, asymmetric totals, a GUM budget
that does not claim a symmetric interval), bad input, and the OSSE with a log-normal truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cityflux import positivity, synthetic
from cityflux.osse import run_osse
from cityflux.outputs import write_outputs
from cityflux.pipeline import headline_row, prepare_case, run

LN = "inversion.positivity=lognormal"
OSSE_SMALL = Path(__file__).resolve().parents[2] / "examples" / "osse_small.yaml"


@pytest.fixture(scope="module")
def ln_result(make_small_config):
    return run(
        make_small_config(
            LN, "inversion.lognormal.totals=importance", "inversion.lognormal.n_samples=400"
        )
    )


def test_log_prior_maps_the_gaussian_prior_moments(make_small_config, make_small_case):
    """σ_z² = ln(1 + (D/x)²), μ = −σ_z²/2: every cell's prior mean and std are the Gaussian
    prior's; the correlations are B's; B_z comes from the prior, never from the truth."""
    cfg = make_small_config(LN)
    case, _ = make_small_case(cfg)
    lp = positivity.log_prior(case, cfg)
    nf = case.state.n_flux
    D = np.sqrt(case.B.diag()[:nf])
    x = case.x_prior[:nf]
    sig2 = np.log1p((D / x) ** 2)
    np.testing.assert_allclose(lp.B.diag()[:nf], sig2, rtol=1e-12)
    np.testing.assert_allclose(lp.u_prior[:nf], -sig2 / 2, rtol=1e-12)
    mean = x * np.exp(lp.u_prior[:nf] + 0.5 * lp.B.diag()[:nf])
    np.testing.assert_allclose(mean, x, rtol=1e-12)
    np.testing.assert_allclose(lp.B.diag()[nf:], case.B.diag()[nf:], rtol=1e-12)  # offsets
    e = np.zeros(case.state.size)
    e[[10, 11]] = 1.0  # neighbouring cells: the correlation of B
    c_z = (lp.B @ e)[[10, 11]]
    c_x = (case.B @ e)[[10, 11]]
    rho_z = (c_z[1] - lp.B.diag()[11]) / np.sqrt(lp.B.diag()[10] * lp.B.diag()[11])
    rho_x = (c_x[1] - case.B.diag()[11]) / np.sqrt(case.B.diag()[10] * case.B.diag()[11])
    assert rho_z == pytest.approx(rho_x, rel=1e-9)
    other, _ = make_small_case(make_small_config(LN, "synthetic.truth.prior_error_scale=3"))
    np.testing.assert_array_equal(positivity.log_prior(other, cfg).B.diag(), lp.B.diag())


def test_lognormal_truth_is_positive_and_follows_its_prior(make_small_config):
    cfg = make_small_config(LN)
    case, world = prepare_case(cfg)
    model = synthetic.truth_model(case, cfg, world)
    X, _ = model.draw(case, 3000, np.random.default_rng(0))
    nf = case.state.n_flux
    assert np.all(X[:, :nf] > 0)
    # mean of the truth = the prior (moment matching); 3,000 draws: MC error ~ 1.8 % of std
    w = case.weights[[headline_row(case.labels)]].toarray()[0]
    t = X @ w
    prior_t = w @ case.x_prior
    assert abs(t.mean() - prior_t) < 4 * t.std() / np.sqrt(t.size)


def test_run_outputs_have_no_negative_cell_and_asymmetric_totals(ln_result, tmp_path):
    res = ln_result
    nf = res.case.state.n_flux
    post = res.posterior
    assert np.all(post.mean[:nf] > 0)  # median (mode of z) of every cell
    assert np.all(post.quantiles([0.025])[0, :nf] > 0)
    t = res.totals
    for col in ("posterior_q025", "posterior_q16", "posterior_q50", "posterior_q84",
                "posterior_q975", "posterior_mean", "posterior_mode"):  # fmt: skip
        assert col in t
    assert np.all(t["posterior_q025"] < t["posterior"])
    assert np.all(t["posterior"] < t["posterior_q975"])
    assert np.all(t["posterior_q025"] > 0)
    h = headline_row(res.case.labels)
    up = t["posterior_q975"][h] - t["posterior"][h]
    down = t["posterior"][h] - t["posterior_q025"][h]
    assert up > down  # log-normal: the longer tail is above
    diag = res.diagnostics["positivity"]
    assert diag["negative_cells"] == {"mode": 0, "q025": 0, "q975": 0}
    assert diag["samples"]["n_samples"] == 400
    assert diag["samples"]["method"] == "importance"
    assert 10 < diag["samples"]["effective_size"] <= 400
    files = write_outputs(res, tmp_path / "out", figures=False)
    with xr.open_dataset(files["posterior.nc"]) as ds:
        assert float(ds["flux_posterior"].min()) > 0
        assert float(ds["flux_posterior_q025"].min()) > 0
        assert "median" in ds["flux_posterior"].attrs["long_name"]
        assert ds.attrs["positivity"] == "lognormal"
    d = json.loads(files["diagnostics.json"].read_text())
    hu = d["headline_uncertainty"]
    assert hu["distribution"] == "lognormal"
    # the budget's interval is the posterior's quantiles, not estimate ± 1.96 u
    assert hu["coverage_95_t"] == pytest.approx(
        [t["posterior_q025"][h], t["posterior_q975"][h]], rel=1e-12
    )
    assert hu["budget_closure_rel_max"] < 1e-9  # it splits the Laplace variance exactly
    report = (tmp_path / "out" / "report.html").read_text()
    assert "asymmetric" in report and "±1.96u" not in report


def test_other_sampling_methods_agree_roughly(make_small_config, ln_result):
    """RTO and the Laplace log-normal give the same order of interval for the city total as
    importance sampling (they are approximations of a skewed posterior: within 20 %)."""
    h = headline_row(ln_result.case.labels)
    ref = ln_result.totals.iloc[h]
    for method in ("rto", "laplace"):
        cfg = make_small_config(
            LN, f"inversion.lognormal.totals={method}", "inversion.lognormal.n_samples=100"
        )
        case = ln_result.case
        prior = positivity.log_prior(case, cfg)
        t, cov, smp = positivity.totals_table(ln_result.posterior, prior, case, cfg)
        width = t["posterior_q975"][h] - t["posterior_q025"][h]
        assert width == pytest.approx(ref["posterior_q975"] - ref["posterior_q025"], rel=0.2)
        assert t["posterior"][h] == pytest.approx(ref["posterior"], rel=0.1)
        assert np.allclose(np.sqrt(np.diag(cov)), t["posterior_std"])
        assert (smp is None) == (method == "laplace")


def test_nonpositive_prior_names_the_cell_and_the_fix(make_small_config, make_small_case):
    import dataclasses

    cfg = make_small_config(LN)
    case, _ = make_small_case(cfg)
    x = case.x_prior.copy()
    x[[5, 17]] = [0.0, -1.0]
    bad = dataclasses.replace(case, x_prior=x)
    with pytest.raises(ValueError, match=r"2 of 2000 cells are <= 0.*row 0, column 5.*"
                                         r"min_prior_flux"):  # fmt: skip
        positivity.log_prior(bad, cfg)
    ok = positivity.log_prior(bad, make_small_config(LN, "inversion.lognormal.min_prior_flux=0.1"))
    assert ok.n_raised >= 2
    assert np.all(ok.scale[: case.state.n_flux] >= 0.1)


# OSSE with a log-normal truth (drawn in z from the log-normal prior), Laplace intervals of the
# totals (batched draws). 400 draws: binomial sd of a 95 % coverage 0.011; measured 0.939 with
# 1,000 draws (seed 3), so the band 0.92–0.98 lies 1.7 sd below it (false-failure rate about
# 4 % for a random draw seed; the seed is fixed).
def test_osse_with_a_lognormal_truth(make_small_config):
    res = run_osse(make_small_config(LN, "inversion.lognormal.totals=laplace"), 400, seed=3)
    s = res.summary()
    assert res.interval == "lognormal-laplace"
    assert 0.92 <= s["coverage_95"] <= 0.98, s
    assert 0.9 <= s["mean_chi2"] <= 1.1, s
    assert s["negative_cells_mean"] == 0.0
    t = res.table
    assert np.all(t["posterior_q025"] > 0)


def test_cli_osse_reaches_both_features_through_set(tmp_path, capsys):
    """`cityflux osse ... --set` switches the log-normal posterior and the transport ensemble
    on; osse.csv carries the quantile columns and the summary names the interval."""
    import pandas as pd

    from cityflux.cli import main

    code = main([
        "osse", str(OSSE_SMALL), "--draws", "6", "--out", str(tmp_path / "o"),
        "--set", LN, "--set",
        "transport.ensemble={members: 3, wind_direction_std_deg: 20, flux_samples: 2}",
    ])  # fmt: skip
    assert code == 0
    t = pd.read_csv(tmp_path / "o" / "osse.csv")
    assert {"posterior_q025", "posterior_q975"} <= set(t.columns)
    assert (t["posterior_q025"] > 0).all()
    assert "lognormal-laplace" in capsys.readouterr().out


def test_estimated_hyperparameters_feed_the_lognormal_solve(make_small_config, caplog):
    """Hyperparameters are estimated on the linear model (the same estimates as a Gaussian run),
    the log-normal posterior is solved with them, and the totals say they are plug-in."""
    est = "inversion.hyperparameters.estimate=[prior_scale, mismatch]"
    with caplog.at_level("WARNING", logger="cityflux.pipeline"):
        both = run(make_small_config(LN, est, "inversion.lognormal.totals=laplace"))
    assert "not applied to the log-normal totals" in caplog.text
    gauss = run(make_small_config(est, "synthetic.truth.flux_distribution=lognormal"))  # same data
    a, b = both.diagnostics["hyperparameters"], gauss.diagnostics["hyperparameters"]
    assert [p["estimate"] for p in a["parameters"]] == pytest.approx(
        [p["estimate"] for p in b["parameters"]], rel=1e-10
    )
    assert not any(p["propagated"] for p in a["parameters"]) and "propagation" not in a
    assert "posterior_plugin" not in both.totals  # no mixture: the estimates are used as known
    plain = run(make_small_config(LN, "inversion.lognormal.totals=laplace"))
    row = headline_row(both.case.labels)
    # B scaled by the estimated prior_scale: the log-normal posterior moves with it
    assert both.totals["posterior_std"][row] != pytest.approx(plain.totals["posterior_std"][row])
    assert set(both.diagnostics["positivity"]["negative_cells"].values()) == {0}
    with pytest.raises(ValueError, match=r"inversion\.hyperparameters\.estimate"):
        run_osse(make_small_config(LN, est), 2, seed=0)
