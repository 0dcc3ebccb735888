"""Hyperparameters of a case (``cityflux.hyper``): the blocks against the case's own operators,
the case rebuilt with the estimates against the solver, the run's outputs, the warnings that
name the parameter, REML, lengths, the bias state per site and every configuration key."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from cityflux import stages, synthetic
from cityflux.config import load_config
from cityflux.hyper import HyperparameterWarning, estimate, hyper_setup
from cityflux.outputs import write_outputs
from cityflux.pipeline import headline_row, prepare_case, run, solve_case
from inversion.hyperparameters import MarginalLikelihood

ESTIMATE = "inversion.hyperparameters.estimate=[prior_scale, mismatch]"


def _case(make_small_config, *overrides):
    cfg = make_small_config(*overrides)
    case, world = prepare_case(cfg)
    return synthetic.observe(case, cfg, world), cfg


@pytest.fixture(scope="module")
def prior2x(make_small_config):
    case, cfg = _case(make_small_config, ESTIMATE, "synthetic.truth.prior_error_scale=2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", HyperparameterWarning)  # a clean case warns nothing
        return case, cfg, estimate(case, cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("inversion.hyperparameters.mismatch_by=site",),  # lidar scans span several chords
        ("synthetic.sectors=[traffic, buildings]", "inversion.hyperparameters.estimate="
         "[prior_scale, mismatch, offset_std]"),
    ],
)  # fmt: skip
def test_blocks_sum_to_the_innovation_covariance_of_the_case(make_small_config, overrides):
    """ℓ from the blocks against numpy's slogdet on S built from the case's own dense B and R,
    every parameter moved: flux std of each sector times its scale, offsets std times theirs,
    R = diag(m) R diag(m) with m the factor of each observation's kind or site."""
    case, cfg = _case(make_small_config, ESTIMATE, *overrides)
    setup = hyper_setup(case, cfg)
    lik = MarginalLikelihood(setup.model, setup.innovation())
    phi = np.random.default_rng(1).uniform(-0.4, 0.4, len(setup.params))
    Bd = case.B.to_dense()
    scale = np.ones(case.state.size)
    for p, v in zip(setup.params, phi, strict=True):
        if p.kind == "prior_scale":
            sl = case.state.slice("flux")
            per = (sl.stop - sl.start) // len(case.state.sectors)
            k = [str(s) for s in case.state.sectors].index(p.label)
            scale[sl.start + k * per : sl.start + (k + 1) * per] = np.exp(v)
        elif p.kind == "offset_std":
            scale[case.state.slice(stages.OFFSET_BLOCK)] = np.exp(v)
    Bd = scale[:, None] * Bd * scale[None, :]
    lab = {
        p.label or "all": v for p, v in zip(setup.params, phi, strict=True) if p.kind == "mismatch"
    }
    m = np.exp([lab[str(x)] for x in setup.obs_labels])
    H = case.H.toarray()
    S = H @ Bd @ H.T + m[:, None] * case.R.to_dense() * m[None, :]
    d = case.y - H @ case.x_prior
    ref = -0.5 * (d.size * np.log(2 * np.pi) + np.linalg.slogdet(S)[1] + d @ np.linalg.solve(S, d))
    assert lik(phi).value == pytest.approx(ref, rel=1e-10)


def test_case_at_the_estimates_scales_B_and_R_and_the_solver_agrees(prior2x):
    case, cfg, res = prior2x
    est = res.estimates
    nf = case.state.n_flux
    np.testing.assert_allclose(
        res.case.B.diag()[:nf], est["prior_scale[total]"] ** 2 * case.B.diag()[:nf], rtol=1e-12
    )
    np.testing.assert_array_equal(res.case.B.diag()[nf:], case.B.diag()[nf:])  # offsets kept
    m = np.array([est[f"mismatch[{k}]"] for k in case.obs["kind"].values.astype(str)])
    np.testing.assert_allclose(
        res.case.R.to_dense(), m[:, None] * case.R.to_dense() * m[None, :], rtol=1e-12
    )
    # the totals of the block algebra at the estimates are those of the solver on that case
    post = solve_case(res.case, cfg)
    totals, cov = stages.totals_table(
        post, res.case.B, res.case.x_prior, res.case.weights, res.case.labels
    )
    np.testing.assert_allclose(res.plugin_mean, totals["posterior"], rtol=1e-9)
    np.testing.assert_allclose(res.plugin_cov, cov, rtol=1e-8, atol=1e-8 * np.abs(cov).max())
    # the propagation widens the headline interval (the prior scale is uncertain)
    row = headline_row(case.labels)
    assert res.propagation.std[row] > np.sqrt(res.plugin_cov[row, row])


def test_run_writes_the_estimates_the_figure_and_the_propagated_totals(make_small_config, tmp_path):
    cfg = make_small_config(ESTIMATE, "synthetic.truth.prior_error_scale=2", "output.figures=true")
    result = run(cfg)
    write_outputs(result, tmp_path, figures=True)
    diag = json.loads((tmp_path / "diagnostics.json").read_text())
    h = diag["hyperparameters"]
    assert h["converged"] and h["method"] == "exact" and h["objective"] == "ml"
    names = [p["name"] for p in h["parameters"]]
    assert names == ["prior_scale[total]", "mismatch[column]", "mismatch[lidar_path]",
                     "mismatch[tower]"]  # fmt: skip
    p0 = h["parameters"][0]
    assert p0["interval_95"][0] < p0["estimate"] < p0["interval_95"][1]
    assert h["log_likelihood"] > h["log_likelihood_configured"]
    assert set(h["profile"]) == set(names)
    for prof in h["profile"].values():  # the estimate is the profile's maximum
        assert max(prof["loglik"]) == pytest.approx(prof["loglik_max"], abs=1e-5)
        assert prof["objective"] == "log posterior (hyperprior)"
    assert (tmp_path / "hyperparameters.png").stat().st_size > 10_000
    totals = result.totals
    for c in ("posterior_lower_95", "posterior_upper_95", "posterior_plugin"):
        assert c in totals
    assert (totals["posterior_lower_95"] < totals["posterior"]).all()
    # the budget lists the propagated part as its own (type A) source and still closes
    budget = (tmp_path / "budget.csv").read_text()
    assert "hyperparameters:propagated" in budget


def test_bounds_that_exclude_the_optimum_warn_with_the_parameter_and_key(make_small_config):
    case, cfg = _case(make_small_config, ESTIMATE, "inversion.hyperparameters.bounds={mismatch: [2, 20]}",
                      "inversion.hyperparameters.profile_points=0")  # fmt: skip
    with pytest.warns(HyperparameterWarning) as rec:
        res = estimate(case, cfg)
    text = " ".join(str(w.message) for w in rec)
    assert "mismatch[tower] = 2 " in text and "inversion.hyperparameters.bounds.mismatch" in text
    assert "lower bound" in text
    assert res.fit.at_bound[1:].all()
    table = {r["name"]: r for r in res.table()}
    assert table["mismatch[tower]"]["at_bound"] and not table["mismatch[tower]"]["propagated"]
    assert res.diagnostics()["warnings"]


def test_a_flat_likelihood_is_reported_not_identifiable(make_small_config):
    """One state time step: the temporal correlation length changes nothing."""
    case, cfg = _case(
        make_small_config, "inversion.hyperparameters.estimate=[prior_scale, temporal_length]",
        "period.end=2024-06-04T00:00:00", "inversion.hyperparameters.profile_points=0",
    )  # fmt: skip
    assert case.time.nt == 1
    with pytest.warns(HyperparameterWarning, match=r"temporal_length is not identifiable"):
        res = estimate(case, cfg)
    assert res.fit.flat[1] and not res.fit.flat[0]


def test_too_few_observations_keep_the_configured_value(make_small_config):
    case, cfg = _case(
        make_small_config, ESTIMATE, "inversion.hyperparameters.min_obs=40",
        "inversion.hyperparameters.profile_points=0",
    )  # fmt: skip
    with pytest.warns(HyperparameterWarning, match=r"mismatch\[column\]: only 37 observations"):
        res = estimate(case, cfg)
    i = res.setup.names.index("mismatch[column]")
    assert not res.fit.free[i] and res.fit.phi[i] == 0.0
    assert res.estimates["mismatch[column]"] == 1.0


def test_reml_estimates_the_prior_mean_and_adds_its_uncertainty(make_small_config):
    case, cfg = _case(make_small_config, ESTIMATE, "inversion.hyperparameters.objective=reml",
                      "inversion.hyperparameters.profile_points=0",
                      "inversion.hyperparameters.propagate=false")  # fmt: skip
    res = estimate(case, cfg)
    ml_cfg = make_small_config(ESTIMATE, "inversion.hyperparameters.profile_points=0",
                               "inversion.hyperparameters.propagate=false")  # fmt: skip
    ml = estimate(case, ml_cfg)
    beta, vb = res.setup.likelihood().beta(res.fit.phi)
    # prior mean scaled by 1 + β̂ on the sector, the same in the case the run solves
    nf = case.state.n_flux
    np.testing.assert_allclose(res.case.x_prior[:nf], case.x_prior[:nf] * (1 + beta[0]))
    assert abs(beta[0]) < 3 * np.sqrt(vb[0, 0])  # the truth's mean IS the prior
    row = headline_row(case.labels)
    assert res.plugin_cov[row, row] > ml.plugin_cov[row, row] * 0.9


def test_length_estimation_recovers_a_longer_true_correlation(make_small_config):
    """Truth with twice the configured spatial length (8 km for 4): the estimates of six draws
    move from 4 km towards 8 km (geometric mean 6.6 km). 217 observations identify the length
    weakly (the data's standard error of log length exceeds 1 in most draws, which are
    flagged), so the hyperprior holds part of the way back."""
    from cityflux.osse import run_osse

    cfg = make_small_config(
        "inversion.hyperparameters.estimate=[prior_scale, spatial_length]",
        "synthetic.truth.length_scale=2", "inversion.hyperparameters.propagate=false",
    )  # fmt: skip
    res = run_osse(cfg, 6, seed=3)
    est = res.hyperparameters["spatial_length"]
    assert 5.0 < np.exp(np.log(est).mean()) < 12.0, est.tolist()


def test_site_bias_state_absorbs_a_biased_tower(make_small_config):
    from cityflux.osse import run_osse

    base = ("synthetic.truth.site_bias_ppm={T01: 1.0}",)
    cfg = make_small_config(*base, "background.site_bias.per=constant",
                            "background.site_bias.std_ppm=1.0")  # fmt: skip
    case, _ = prepare_case(cfg)
    blk = case.state.blocks[stages.BIAS_BLOCK]
    assert blk.labels == ("T00", "T01", "T02", "T03", "T04")  # towers only (kinds: [tower])
    sites = case.obs["site"].values.astype(str)
    col = case.H[:, blk.slice].toarray()
    np.testing.assert_array_equal(col[:, 1], (sites == "T01").astype(float))
    assert col[case.obs["kind"].values.astype(str) != "tower"].sum() == 0
    # per day: one state per tower and UTC day
    day = prepare_case(make_small_config("background.site_bias.per=day"))[0]
    assert len(day.state.blocks[stages.BIAS_BLOCK].labels) == 5 * 5
    # the headline total is less biased with the bias state than without (same draws)
    z = []
    for c in (make_small_config(*base), cfg):
        t = run_osse(c, 150, seed=4).table
        t = t[t["row"] == 1]
        z.append(float(((t["posterior"] - t["truth"]) / t["posterior_std"]).mean()))
    assert abs(z[1]) < abs(z[0]) - 0.1, z


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        (
            "estimate",
            "[prior_scale, mismatch, offset_std]",
            ("prior_scale", "mismatch", "offset_std"),
        ),
        ("prior_scale_by", "all", "all"),
        ("mismatch_by", "site", "site"),
        ("objective", "reml", "reml"),
        ("hyperprior_log_std", "null", None),
        ("bounds", "{prior_scale: [0.5, 4]}", {"prior_scale": (0.5, 4.0)}),
        ("propagate", "false", False),
        ("method", "hybrid", "hybrid"),
        ("quadrature", "cubature", "cubature"),
        ("probes", "32", 32),
        ("seed", "3", 3),
        ("min_obs", "5", 5),
        ("max_log_se", "0.5", 0.5),
        ("profile_points", "0", 0),
        ("maxiter", "50", 50),
    ],
)
def test_every_key_can_be_set_on_the_command_line(make_small_config, key, value, expect):
    cfg = make_small_config(f"inversion.hyperparameters.{key}={value}")
    assert getattr(cfg.inversion.hyperparameters, key) == expect


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("inversion.hyperparameters.estimate=[prior_scale, length]", "unknown hyperparameters"),
        ("inversion.hyperparameters.bounds={mismatch: [2, 1]}", "bounds.mismatch"),
        ("background.site_bias.kinds=[towers]", "unknown observation kinds"),
    ],
)
def test_bad_settings_are_refused_with_the_key(make_small_config, override, match):
    from cityflux.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        make_small_config(override)


def test_site_bias_keys_and_bias_std_need_the_state(make_small_config):
    cfg = make_small_config("background.site_bias.per=day", "background.site_bias.std_ppm=0.3",
                            "background.site_bias.kinds=[tower, lidar_path]")  # fmt: skip
    assert cfg.background.site_bias.per == "day" and cfg.background.site_bias.std_ppm == 0.3
    from cityflux.config import ConfigError

    with pytest.raises(ConfigError, match=r"background\.site_bias\.per"):
        make_small_config("inversion.hyperparameters.estimate=[bias_std]")
    with pytest.raises(ConfigError, match=r"background\.offsets\.by"):
        make_small_config(
            "inversion.hyperparameters.estimate=[offset_std]", "background.offsets.by=none"
        )
    # with the bias state, its std is estimated like the others
    case, cfg = _case(make_small_config, "inversion.hyperparameters.estimate=[prior_scale, bias_std]",
                      "background.site_bias.per=constant", "inversion.hyperparameters.profile_points=0")  # fmt: skip
    res = estimate(case, cfg)
    assert res.setup.names == ["prior_scale[total]", "bias_std"]
    assert res.setup.params[1].n_informing == 5 and res.fit.free[1]


def test_demo_config_parses_with_the_new_sections():
    from cityflux.config import demo_config_path

    cfg = load_config(demo_config_path())
    assert not cfg.inversion.hyperparameters.active
    assert cfg.background.site_bias.per == "none"


def test_hybrid_method_agrees_with_exact(make_small_config):
    """The hybrid gradient (Hutchinson traces through the Cholesky factor, 64 probes; its
    noise is about 0.1 standard error of the estimates here) moves the estimates by a small
    fraction of their standard error; its information is the average information."""
    case, cfg = _case(make_small_config, ESTIMATE, "synthetic.truth.prior_error_scale=2",
                      "inversion.hyperparameters.profile_points=0")  # fmt: skip
    exact = estimate(case, cfg)
    hyb_cfg = make_small_config(ESTIMATE, "synthetic.truth.prior_error_scale=2",
                                "inversion.hyperparameters.profile_points=0",
                                "inversion.hyperparameters.method=hybrid")  # fmt: skip
    hyb = estimate(case, hyb_cfg)
    assert hyb.fit.method == "hybrid" and hyb.fit.converged
    assert np.all(np.abs(hyb.fit.phi - exact.fit.phi) < 0.25 * exact.fit.se)
    np.testing.assert_allclose(hyb.fit.se, exact.fit.se, rtol=0.15)
    assert hyb.fit.loglik == pytest.approx(hyb.setup.likelihood()(hyb.fit.phi).loglik)
