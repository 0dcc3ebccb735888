"""Transport error from an ensemble (``transport.ensemble``): the localised ensemble covariance
against a hand computation, the R component and its budget, footprint ensembles through the real
footprint path, bad input, and the OSSE coverage it restores."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cityflux import stages
from cityflux.config import ConfigError
from cityflux.ensemble import ensemble_transport, met_members, perturb_met
from cityflux.metrology import uncertainty_budget
from cityflux.osse import run_osse
from cityflux.pipeline import headline_row, prepare_case
from cityflux.synthetic._footprints import write_synthetic_footprints
from inversion import StateVector, solve
from inversion.covariance import haversine_km
from inversion.ensemble import localised_ensemble_covariance, taper

ENS = "transport.ensemble={members: 4, wind_direction_std_deg: 30, flux_samples: 0, "


def test_gaspari_cohn_taper_by_hand():
    # Gaspari & Cohn (1999) eq. 4.10 at r = d/c = 0, 0.5, 1, 1.5, 2 (values by hand)
    r = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    expect = [
        1.0,
        -0.25 / 32 + 0.5 / 16 + 0.625 / 8 - 5 / 12 + 1,
        -0.25 + 0.5 + 0.625 - 5 / 3 + 1,
        1.5**5 / 12 - 0.5 * 1.5**4 + 0.625 * 1.5**3 + 5 / 3 * 1.5**2 - 7.5 + 4 - 2 / 4.5,
        0.0,
        0.0,
    ]
    np.testing.assert_allclose(taper(2.0 * r, 2.0), expect, atol=1e-14)
    np.testing.assert_allclose(taper(np.array([0.0, 3.0]), 3.0, "exponential"), [1, np.exp(-1)])
    with pytest.raises(ValueError, match="unknown"):
        taper(np.zeros(1), 1.0, "boxcar")


def test_localised_covariance_is_the_tapered_sample_covariance():
    rng = np.random.default_rng(0)
    n = 120
    A = rng.normal(size=(n, 6))
    t = rng.uniform(0, 30, n)
    lat, lon = 47.3 + rng.uniform(0, 0.2, n), 8.5 + rng.uniform(0, 0.2, n)
    d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    for kind in ("gaspari-cohn", "exponential"):
        C = localised_ensemble_covariance(
            A, t, lat, lon, time_length_h=2.0, distance_km=5.0, kind=kind
        ).toarray()
        T = taper(t[:, None] - t[None, :], 2.0, kind) * taper(d, 5.0, kind)
        np.testing.assert_allclose(C, T * (A @ A.T), atol=1e-12)
        assert np.linalg.eigvalsh(C).min() > -1e-10  # Schur product of PSD matrices
    groups = rng.integers(0, 10, n)
    C = localised_ensemble_covariance(A, t, lat, lon, time_length_h=2.0, groups=groups)
    T = taper(t[:, None] - t[None, :], 2.0) * (groups[:, None] == groups[None, :])
    np.testing.assert_allclose(C.toarray(), T * (A @ A.T), atol=1e-12)
    with pytest.raises(ValueError, match="never reaches zero"):
        localised_ensemble_covariance(A, t, lat, lon, time_length_h=1.0, kind="exponential",
                                      max_pairs=100)  # fmt: skip


@pytest.fixture(scope="module")
def ens_case(make_small_config, make_small_case):
    cfg = make_small_config(ENS + "localisation: {time_h: 1.0, distance_km: 10.0}}")
    case, world = make_small_case(cfg)
    return cfg, case, world


def test_ensemble_covariance_against_a_hand_computation(ens_case):
    """H̄ is the mean of the members' H and R_ens = (1 + 1/M)/(M − 1) T ∘ Σ a_m a_mᵀ with
    a_m = (H_m − H̄) x_prior, computed here from the members rebuilt by hand."""
    cfg, case, world = ens_case
    ens = cfg.transport.ensemble
    flux = StateVector(case.grid, case.time, list(case.state.sectors))
    base = cfg.transport.model_copy(update={"ensemble": None})
    Hs = [
        stages.transport_operator(case.obs, flux, base, m).H
        for m in met_members(world.met, ens, 4, ens.seed)
    ]
    nf = case.state.n_flux
    H_bar = sum(Hs) / 4
    np.testing.assert_allclose(case.H[:, :nf].toarray(), H_bar.toarray(), rtol=1e-12, atol=0)
    a = np.array([(h - H_bar) @ case.x_prior[:nf] for h in Hs])  # (M, n_obs)
    raw = (1 + 1 / 4) / 3 * a.T @ a
    hours = case.obs["time"].values.astype("datetime64[ns]").astype("int64") / 3.6e12
    lat, lon = case.obs["lat"].values, case.obs["lon"].values
    d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    T = taper(hours[:, None] - hours[None, :], 1.0) * taper(d, 10.0)
    R_ens = stages.ensemble_covariance(case.obs).toarray()
    np.testing.assert_allclose(R_ens, T * raw, rtol=1e-10, atol=1e-14)
    # R = the usual components + R_ens
    base_R = stages.observation_covariance(
        case.obs.drop_vars(stages.ENSEMBLE_VAR), case.observation_errors
    )
    dense = case.R.to_dense(max_size=case.y.size)
    np.testing.assert_allclose(dense, base_R.to_dense(max_size=case.y.size) + T * raw,
                               rtol=1e-10, atol=1e-12)  # fmt: skip


def test_budget_has_the_transport_ensemble_source_and_closes(ens_case):
    _, case, _ = ens_case
    post = solve(case.problem(), "obs-space")
    b = uncertainty_budget(post, case)
    assert b.summary["closure_rel"].max() < 1e-9
    src = b.table[b.table["row"] == headline_row(case.labels)].set_index("source")
    assert src.loc["obs_transport_ensemble", "type"] == "B"
    assert src.loc["obs_transport_ensemble", "share"] > 0.002
    # the error budget of the observations has the component too, and sums to one
    eb = case.reports["error_budget"]
    for row in eb.values():
        assert row["transport_ensemble"] > 0
        total = sum(v for k, v in row.items() if k not in ("total_rms_ppm", "n_obs"))
        assert total == pytest.approx(1.0, abs=1e-12)
    # the subset R of the kinds carries the component as well
    idx = np.flatnonzero(case.kind_mask(("tower",)))
    sub = case.covariance_R(idx).to_dense(max_size=idx.size)
    np.testing.assert_allclose(
        sub, case.R.to_dense(max_size=case.y.size)[np.ix_(idx, idx)], rtol=1e-12, atol=1e-14
    )


def test_perturb_met_moves_every_setting(ens_case):
    from cityflux.config import MetPerturbation

    _, _, world = ens_case
    met = world.met
    p = MetPerturbation(wind_direction_std_deg=10, wind_speed_rel_std=0.2,
                        mixing_height_rel_std=0.2, stability_shift_prob=1.0)  # fmt: skip
    out = perturb_met(met, np.random.default_rng(0), p)
    assert not np.allclose(out.wind_direction, met.wind_direction)
    assert np.all(out.wind_speed >= 0.2 * met.wind_speed)
    assert np.all(out.boundary_layer_height >= 0.2 * met.boundary_layer_height)
    order = "ABCDEF"
    shift = np.array([order.index(b) - order.index(a)
                      for a, b in zip(met.stability, out.stability, strict=True)])  # fmt: skip
    assert set(np.unique(shift)) <= {-1, 0, 1} and np.mean(shift != 0) > 0.7  # A/F clip


@pytest.mark.filterwarnings("ignore:.*all-zero footprint")  # receptors the plume misses
def test_footprint_ensemble_through_the_footprint_path(ens_case, tmp_path):
    """Two footprint folders (the plume model under two perturbed mets, written as files and
    read back by the footprint path) make the ensemble; folders that do not cover the same
    observations are refused, naming both."""
    cfg, case, world = ens_case
    obs = case.obs.drop_vars(stages.ENSEMBLE_VAR)
    mets = met_members(world.met, cfg.transport.ensemble, 2, 7)
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d, m in zip(dirs, mets, strict=True):
        write_synthetic_footprints(obs, case.grid, case.time, m, cfg.transport, d)
    tcfg = cfg.transport.model_copy(update={"model": "footprints", "ensemble": None})
    ens = {"footprints": [str(d) for d in dirs], "flux_samples": 0}
    tcfg = tcfg.model_validate({**tcfg.model_dump(), "ensemble": ens})
    flux = StateVector(case.grid, case.time, list(case.state.sectors))
    nf = case.state.n_flux
    tr, A = ensemble_transport(obs, flux, tcfg, None, case.x_prior[:nf], None)
    single = [stages.transport_operator(obs, flux, c, None).H for c in tcfg.member_configs()]
    np.testing.assert_allclose(tr.H.toarray(), (single[0] + single[1]).toarray() / 2, atol=1e-15)
    a = (single[0] - single[1]) @ case.x_prior[:nf] / 2  # a_1 = −a_2 for two members
    np.testing.assert_allclose(A @ A.T, 1.5 * 2 * np.outer(a, a), rtol=1e-10, atol=1e-14)
    assert tr.report["ensemble"]["kind"] == "footprints"
    # drop the footprints of one hour from the second folder
    victim = sorted(dirs[1].glob("*.nc"))[0]
    victim.unlink()
    with pytest.raises(ValueError, match=r"do not cover the same observations.*'.*b'"):
        ensemble_transport(obs, flux, tcfg, None, case.x_prior[:nf], None)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("transport.ensemble={members: 1, wind_direction_std_deg: 20}", "at least 2 members"),
        ("transport.ensemble={members: 10}", "perturbs nothing"),
        ("transport.ensemble={footprints: [a, b]}", "model='plume'"),
        ("transport.ensemble={members: 5, wind_direction_std_deg: 20, "
         "localisation: {time_h: 0}}", "time_h"),
    ],
)  # fmt: skip
def test_bad_ensemble_settings_name_the_key(make_small_config, override, match):
    with pytest.raises(ConfigError, match=match):
        make_small_config(override)


def test_one_footprint_folder_is_not_an_ensemble(make_small_config):
    with pytest.raises(ConfigError, match="at least 2 footprint folders"):
        make_small_config("transport.model=footprints", "transport.ensemble={footprints: [a]}")


def test_localisation_that_ties_too_many_observations_is_refused(ens_case, monkeypatch):
    from cityflux.stages import _ensemble

    _, case, _ = ens_case
    monkeypatch.setattr(_ensemble, "MAX_BLOCK_OBS", 10)
    with pytest.raises(ValueError, match=r"transport\.ensemble\.localisation"):
        stages.observation_covariance(case.obs, case.observation_errors)


# OSSE: 1,000 draws per case (about 10 s each). Binomial sd of a 95 % coverage is 0.0069, so
# the bound 0.90 lies 7 sd below 0.95 (false-failure rate < 1e-10 for a random draw seed; the
# ensemble seed is fixed: across ensemble seeds 0–3 the 45° case with 20 members measured
# 0.91–0.94, with 10 members 0.87–0.93 — see the README).
T20 = "synthetic.truth.transport={wind_direction_std_deg: 20}"
T45 = "synthetic.truth.transport={wind_direction_std_deg: 45, wind_speed_rel_std: 0.4}"


@pytest.mark.parametrize(
    ("truth", "ensemble"),
    [
        (T20, "{members: 10, wind_direction_std_deg: 20}"),
        (T45, "{members: 20, wind_direction_std_deg: 45, wind_speed_rel_std: 0.4}"),
    ],
)
def test_ensemble_restores_coverage(make_small_config, truth, ensemble):
    with_ens = run_osse(make_small_config(truth, f"transport.ensemble={ensemble}"), 1000, seed=5)
    s = with_ens.summary()
    assert s["coverage_95"] >= 0.90, s
    assert 0.8 < s["mean_chi2"] < 1.25, s


def test_truth_of_an_ensemble_run_uses_the_unperturbed_met(ens_case, make_small_config):
    """With an ensemble but no truth perturbation, the truth's transport is the met itself
    (not the ensemble mean) and its errors leave the ensemble part of R out."""
    from cityflux import synthetic

    cfg, case, world = ens_case
    model = synthetic.truth_model(case, cfg, world)
    plain, _ = prepare_case(make_small_config())
    assert len(model.H) == 1
    assert abs(model.H[0] - plain.H).sum() < 1e-12 * abs(plain.H).sum()
    assert isinstance(model.R.diag(), np.ndarray)
    np.testing.assert_allclose(model.R.diag(), plain.R.diag(), rtol=1e-12)
    assert sp.issparse(stages.ensemble_covariance(case.obs))


def test_missing_ensemble_folders_are_named_by_validate(make_small_config):
    from cityflux.config import check_inputs

    cfg = make_small_config(
        "transport.model=footprints", "transport.ensemble={footprints: [nope_a, nope_b]}"
    )
    keys = [k for k, _ in check_inputs(cfg)]
    assert "transport.ensemble.footprints[0]" in keys
    assert "transport.ensemble.footprints[1]" in keys
