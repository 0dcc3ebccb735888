"""The synthetic city and the OSSE harness: the same path as a real run, honest statistics
when the truth follows the assumptions, and visible damage when it does not."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cityflux import synthetic
from cityflux.osse import run_osse
from cityflux.pipeline import all_kind_subsets, headline_row, prepare_case, solve_case
from inversion import solve
from priors import PriorUncertainty

# 1,000 draws: the binomial sd of a 95 % coverage is 0.0069, so the band 0.92-0.98 lies 4.4 sd
# from 0.95 on both sides (false-failure rate about 1e-5 for a random seed; the seed is fixed).
N_DRAWS = 1000


def _w(case, row=None):
    return case.weights[[headline_row(case.labels) if row is None else row]].toarray()[0]


def test_prior_inventory_total_and_daily_rows(small_case):
    # 10 kt/day over 5 days inside the city mask, the prior being the synthetic inventory.
    w = _w(small_case)
    np.testing.assert_allclose(w @ small_case.x_prior, 10e3 * 5, rtol=1e-9)
    lab = small_case.labels
    days = np.flatnonzero((lab["region"] == "city") & (lab["period"].str.len() == 10))
    assert days.size == 5
    t = small_case.weights @ small_case.x_prior
    np.testing.assert_allclose(t[days].sum(), t[headline_row(lab)], rtol=1e-12)


def test_B_is_built_from_the_prior_and_never_from_the_truth(make_small_config, make_small_case):
    a, _ = make_small_case(make_small_config())
    b, _ = make_small_case(make_small_config("synthetic.truth.prior_error_scale=3"))
    assert not np.allclose(a.x_truth, b.x_truth)  # the truths differ ...
    np.testing.assert_array_equal(a.B.diag(), b.B.diag())  # ... B does not
    # D = max(0.5 |prior|, floor): the stage's uncertainty model applied to the prior flux
    prior = a.state.unflatten(a.x_prior, name="p")["p"]
    expect = PriorUncertainty(fraction=0.5, floor=0.05).std(prior).values.ravel()
    np.testing.assert_allclose(np.sqrt(a.B.diag()[: a.state.n_flux]), expect, rtol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_truth_draws_follow_the_true_covariances(make_small_config, make_small_case, scale):
    cfg = make_small_config(
        f"synthetic.truth.prior_error_scale={scale}", f"synthetic.truth.mismatch_scale={scale}"
    )
    case, world = make_small_case(cfg)
    model = synthetic.truth_model(case, cfg, world)
    X, Y = model.draw(case, 3000, np.random.default_rng(1))
    w = _w(case)
    err = (X - case.x_prior) @ w
    # sd of 3000 Gaussian draws: relative standard error 1/sqrt(6000) = 1.3 %
    assert abs(err.std() / (scale * np.sqrt(w @ (case.B @ w))) - 1) < 0.05
    noise = Y - (case.H @ X.T).T
    ratio = noise.std(axis=0) / (scale * np.sqrt(case.R.diag()))
    assert abs(ratio.mean() - 1) < 0.02


@pytest.fixture(scope="module")
def osse_as_assumed(make_small_config):
    return run_osse(make_small_config(), N_DRAWS, seed=11)


def test_osse_coverage_and_chi2_when_the_truth_follows_the_assumptions(osse_as_assumed):
    res = osse_as_assumed
    s = res.summary()
    assert 0.92 <= s["coverage_95"] <= 0.98, s
    assert 0.64 <= s["coverage_68"] <= 0.72, s  # binomial sd 0.015
    assert 0.9 <= s["mean_chi2"] <= 1.1, s
    # every daily row too (5 rows x 1,000 draws)
    days = res.table[res.table["period"].str.len() == 10]["row"].unique()
    assert days.size == 5
    cov = np.mean([res.coverage(0.95, row=int(r)) for r in days])
    assert 0.92 <= cov <= 0.98


def test_osse_table_has_one_row_per_draw_and_total(osse_as_assumed):
    t = osse_as_assumed.table
    k = t["row"].nunique()
    assert len(t) == N_DRAWS * k
    assert list(t.columns) == [
        "draw", "row", "region", "sector", "period", "truth", "prior", "posterior",
        "posterior_std", "chi2",
    ]  # fmt: skip
    city = t[(t["region"] == "city") & (t["sector"] == "all")]
    whole = city["period"].str.contains("/")
    assert city[whole]["period"].iloc[0] == "2024-06-03T00:00Z/2024-06-08T00:00Z"


def test_osse_draw_equals_a_direct_solve(make_small_config):
    """The harness reuses one factorisation; each draw equals solving its own data."""
    cfg = make_small_config()
    case, world = prepare_case(cfg)
    model = synthetic.truth_model(case, cfg, world)
    X, Y = model.draw(case, 2, np.random.default_rng(5))
    post = solve_case(case.with_data(Y[0], X[0]), cfg)
    direct = solve(case.with_data(Y[1], X[1]).problem(), method="dense")
    np.testing.assert_allclose(post.means_for(Y[1]), direct.mean, rtol=1e-9, atol=1e-12)
    assert post.chi2_for(Y[1]) == pytest.approx(direct.chi2, rel=1e-9)


@pytest.mark.parametrize(
    ("override", "max_cov95", "chi2_range"),
    [
        ("synthetic.truth.prior_error_scale=2", 0.85, (1.05, 1.5)),
        ("synthetic.truth.mismatch_scale=2", 0.9, (3.0, 5.0)),
        ("synthetic.truth.site_bias_ppm={T01: 1.0}", 0.9, (0.9, 1.2)),
        (
            "synthetic.truth.transport={wind_direction_std_deg: 45, wind_speed_rel_std: 0.4}",
            0.85,
            (1.8, 4.0),
        ),
    ],
)
def test_osse_shows_what_misspecification_does(make_small_config, override, max_cov95, chi2_range):
    s = run_osse(make_small_config(override), 400, seed=2).summary()
    assert s["coverage_95"] < max_cov95, s
    assert chi2_range[0] < s["mean_chi2"] < chi2_range[1], s


def test_transport_perturbation_changes_the_truths_operator(make_small_config):
    cfg = make_small_config("synthetic.truth.transport={wind_direction_std_deg: 20}")
    case, world = prepare_case(cfg)
    model = synthetic.truth_model(case, cfg, world)
    assert len(model.H) == synthetic._truth.N_TRANSPORT_MEMBERS
    diff = abs(model.H[0] - case.H).sum() / abs(case.H).sum()
    assert 0.05 < diff < 2.0
    assert abs(model.H[0] - model.H[1]).sum() > 0


def test_unknown_bias_site_names_the_key(make_small_config, make_small_case):
    cfg = make_small_config("synthetic.truth.site_bias_ppm={NOPE: 1.0}")
    with pytest.raises(ValueError, match=r"site_bias_ppm.*'NOPE'"):
        make_small_case(cfg)


def test_adding_a_kind_never_increases_total_std(small_case):
    case = small_case
    w = _w(case)
    std = {
        kinds: solve(case.problem(kinds), method="obs-space").aggregate(w)[1]
        for kinds in all_kind_subsets(case.kinds)
    }
    prior_std = np.sqrt(w @ (case.B @ w))
    for kinds, s in std.items():
        assert s < prior_std
        for other, s2 in std.items():
            if set(kinds) < set(other):
                assert s2 <= s * (1 + 1e-9), (kinds, other)


def test_kind_subset_uses_rows_of_H(small_case):
    case = small_case
    p = case.problem(("tower",))
    idx = np.flatnonzero(case.kind_mask(("tower",)))
    assert (abs(p.H - case.H[idx]) > 0).nnz == 0
    np.testing.assert_array_equal(p.y, case.y[idx])
    with pytest.raises(ValueError, match="unknown kinds"):
        case.kind_mask(("radar",))


def test_synthetic_observations_are_an_observation_set(small_case):
    obs = small_case.obs
    assert isinstance(obs, xr.Dataset) and "obs" in obs.dims
    assert set(small_case.kinds) == {"tower", "column", "lidar_path"}
    for comp in ("err_instrument", "err_transport"):
        assert (obs[comp] > 0).all()
    np.testing.assert_array_equal(obs["value"].values, small_case.y)


def test_kind_comparison_equals_solving_each_kind(small_case, make_small_config):
    from cityflux.pipeline import kind_comparison

    cfg = make_small_config()
    post = solve(small_case.problem(), method="obs-space")
    res = kind_comparison(small_case, cfg, post)
    w = _w(small_case)
    assert [r.kinds for r in res] == [(k,) for k in small_case.kinds] + [small_case.kinds]
    for r in res[:-1]:
        ref = solve(small_case.problem(r.kinds), method="dense").aggregate(w)
        assert r.posterior == pytest.approx(ref[0], rel=1e-9)
        assert r.posterior_std == pytest.approx(ref[1], rel=1e-9)


def test_osse_site_table_singles_out_the_biased_tower(make_small_config):
    res = run_osse(make_small_config("synthetic.truth.site_bias_ppm={T01: 1.0}"), 300, seed=4)
    rates = res.flag_rates()
    assert rates.idxmax() == "T01"
    t01 = res.sites[res.sites["site"] == "T01"]
    se = t01["offset_sd_ppm"].iloc[0] / np.sqrt(len(t01))
    assert abs(t01["offset_ppm"].mean() - 1.0) < 3 * se
    assert len(res.sites) == 300 * res.sites["site"].nunique()


def test_synthetic_footprint_files_go_through_the_footprint_path(make_small_config):
    """transport.model=footprints: the synthetic city writes plume footprints per receptor
    sample; the case reads them like a real run. Tower and lidar rows equal the plume model's
    rows (same sampling, float32 files); every observation is kept; the OSSE stays honest."""
    cfg_fp = make_small_config("transport.model=footprints", "transport.threshold=0")
    case_fp, world = prepare_case(cfg_fp)
    case_pl, _ = prepare_case(make_small_config())
    assert case_fp.y.size == case_pl.y.size
    rep = case_fp.reports["transport"]
    assert rep["model"] == "footprints" and rep["matching"]["receptors"]["unmatched"] == 0
    kinds = case_pl.obs["kind"].values.astype(str)
    nf = case_pl.state.n_flux
    for kind in ("tower", "lidar_path"):
        sel = np.flatnonzero(kinds == kind)
        a = case_fp.H[sel][:, :nf].toarray()
        b = case_pl.H[sel][:, :nf].toarray()
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7 * np.abs(b).max())
    s = run_osse(cfg_fp, 400, seed=6).summary()
    assert 0.91 <= s["coverage_95"] <= 0.98 and 0.9 <= s["mean_chi2"] <= 1.1, s
    assert world.scratch is not None  # files in a scratch folder removed with the world


@pytest.mark.parametrize(("n", "res"), [(8, 1000.0), (3, 1000.0), (4, 500.0)])
def test_small_domains_keep_soundings_and_chords_inside(make_small_config, n, res):
    """Snapshot soundings and lidar chords of a domain smaller than the snapshot stay inside the
    grid (once 'receptor(s) lie outside the grid' at 8 x 8 cells of 1 km), and the case builds."""
    cfg = make_small_config(f"domain.nx={n}", f"domain.ny={n}", f"domain.resolution_m={res}")
    inputs, _ = synthetic.generate_inputs(cfg)
    obs, grid = inputs.obs, inputs.grid
    kind = obs["kind"].values.astype(str)
    assert {"column", "lidar_path"} <= set(kind)
    inside = grid.contains_lonlat(obs["lon"].values, obs["lat"].values)
    assert inside.all()
    lid = kind == "lidar_path"
    for end in ("0", "1"):
        assert grid.contains_lonlat(
            obs[f"lon{end}"].values[lid], obs[f"lat{end}"].values[lid]
        ).all()
    case, _ = prepare_case(cfg)
    assert set(case.n_obs_by_kind) == {"tower", "column", "lidar_path"}


def test_osse_small_network_is_not_clipped(make_small_config):
    """The clipping only acts on small domains: in osse_small every sounding lies well inside
    (more than half a sounding spacing from the edge), so its network is as drawn."""
    inputs, _ = synthetic.generate_inputs(make_small_config())
    obs, grid = inputs.obs, inputs.grid
    col = obs["kind"].values.astype(str) == "column"
    x, y = grid.to_xy(obs["lon"].values[col], obs["lat"].values[col])
    x0, y0, x1, y1 = grid.bounds
    margin = np.minimum.reduce([x - x0, x1 - x, y - y0, y1 - y])
    assert margin.min() > 1250.0


def test_osse_with_the_separable_kernel_covers_and_flags_a_wrong_prior(make_small_config):
    # the separable exponential prior through the same stages: calibrated when the truth follows
    # it (1,000 draws, coverage band as above), over-confident when the true std is twice it
    sep = "inversion.spatial_kind=separable_exponential"
    s = run_osse(make_small_config(sep), N_DRAWS, seed=12).summary()
    assert 0.92 <= s["coverage_95"] <= 0.98, s
    assert 0.9 <= s["mean_chi2"] <= 1.1, s
    bad = run_osse(make_small_config(sep, "synthetic.truth.prior_error_scale=2"), 400, seed=2)
    assert bad.summary()["coverage_95"] < 0.85, bad.summary()
    assert 1.05 < bad.summary()["mean_chi2"] < 1.5, bad.summary()
