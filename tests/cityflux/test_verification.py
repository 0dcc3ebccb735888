"""Inventory verification: ζ and E_n (ISO 13528) against hand computations, the dependence of
the posterior on its prior, and the scores of a run against a CSV of inventory totals."""

from __future__ import annotations

import numpy as np
import pytest

from cityflux.metrology import scores, verify_totals
from cityflux.pipeline import run
from tests.inversion._solver_cases import random_spd


def test_scores_by_hand():
    """Posterior 120 ± 10 t, inventory 100 t ± 5 % (u = 5 t), independent:
    u_d = √(100 + 25) = 11.18034 t, ζ = 20 / 11.18034 = 1.788854, E_n = 20 / (2 · 11.18034)
    = 0.894427 (U = 2u on both sides). The run's own prior 100 ± 20 t instead: the errors
    covary by u_post², u_d = √(400 + 100 − 200) = 17.32051 t, ζ = 1.154701, E_n = 0.577350."""
    z, en, ud = scores(20.0, 10.0, 5.0)
    assert (float(z), float(en), float(ud)) == pytest.approx((1.788854, 0.894427, 11.18034), 1e-6)
    z, en, ud = scores(20.0, 10.0, 20.0, cov=100.0)
    assert (float(z), float(en), float(ud)) == pytest.approx((1.154701, 0.577350, 17.32051), 1e-6)
    with pytest.raises(ValueError, match="positive"):
        scores(1.0, 1.0, 1.0, cov=1.0)


def test_posterior_minus_prior_variance_is_prior_minus_posterior_variance():
    """Var(aᵀx̂ − aᵀx_a) = aᵀ K S Kᵀ a (dense algebra) = aᵀBa − aᵀAa: the covariance of the
    posterior and prior errors is the posterior variance (what the prior's score uses)."""
    rng = np.random.default_rng(1)
    n, m = 12, 7
    B = random_spd(rng, n)
    H = rng.uniform(0, 1, (m, n))
    R = random_spd(rng, m, cond=3.0)
    S = H @ B @ H.T + R
    K = B @ H.T @ np.linalg.inv(S)
    A = B - K @ H @ B
    a = rng.uniform(0, 1, n)
    var_diff = a @ K @ S @ K.T @ a
    assert var_diff == pytest.approx(a @ B @ a - a @ A @ a, rel=1e-10)
    # and a Monte-Carlo check of the same statement (truth departs from nothing: exact model)
    x = rng.multivariate_normal(np.zeros(n), B, 20000)
    e = rng.multivariate_normal(np.zeros(m), R, 20000)
    xa = np.zeros(n)
    d = (x @ H.T + e) - H @ xa
    diff = (d @ K.T) @ a  # aᵀ(x̂ − x_a)
    assert diff.var() == pytest.approx(var_diff, rel=0.05)


@pytest.fixture(scope="module")
def small_run(make_small_config, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verif")
    csv = tmp / "inventory_totals.csv"
    csv.write_text(
        "# a national inventory's city totals [t CO2], 1-sigma uncertainty column\n"
        "region,sector,period,total_t,u_t\n"
        "city,all,2024-06-03T00:00Z/2024-06-08T00:00Z,50000,4000\n"
        "city,all,2024-06-04T00:00Z,9000,1500\n"
        "atlantis,all,2024-06-03T00:00Z/2024-06-08T00:00Z,1,1\n",
        encoding="utf-8",
    )
    cfg = make_small_config(
        f"verification.inventories=[{{name: national, totals: {csv}, uncertainty_column: u_t}},"
        f" {{name: other, totals: {csv}, relative_uncertainty: 0.2, coverage_factor: 2}}]"
    )
    return run(cfg)


def test_scores_of_a_run_against_a_totals_csv(small_run):
    ver = verify_totals(small_run)
    t = small_run.totals
    city = t[(t.region == "city") & (t.sector == "all")].iloc[0]
    nat = ver.table[(ver.table.inventory == "national") & (ver.table.period == city.period)]
    assert len(nat) == 1
    row = nat.iloc[0]
    ud = np.sqrt(city.posterior_std**2 + 4000.0**2)
    assert row.zeta == pytest.approx((city.posterior - 50000.0) / ud, rel=1e-12)
    assert row.En == pytest.approx((city.posterior - 50000.0) / (2 * ud), rel=1e-12)
    assert row.independent and bool(row.zeta_satisfactory) == (abs(row.zeta) <= 2)
    # relative uncertainty 20 % stated at k = 2: u = 0.1 · total
    other = ver.table[(ver.table.inventory == "other") & (ver.table.period == city.period)].iloc[0]
    assert other.inventory_u_t == pytest.approx(5000.0, rel=1e-12)
    # the row for a day: the CSV's period label must equal totals.csv's
    day = ver.table[(ver.table.inventory == "national") & (ver.table.period == "2024-06-04T00:00Z")]
    assert len(day) == (1 if "2024-06-04T00:00Z" in set(t.period) else 0)
    # rows of the CSV that match no total are reported, not silently dropped
    assert any("atlantis" in r for r in ver.unmatched["national"])


def test_the_prior_is_scored_with_its_dependence(small_run):
    ver = verify_totals(small_run)
    prior = ver.table[ver.table.inventory == "prior"].reset_index(drop=True)
    t = small_run.totals.reset_index(drop=True)
    assert len(prior) == len(t)
    ud = np.sqrt(t.prior_std**2 - t.posterior_std**2)
    np.testing.assert_allclose(prior.zeta, (t.posterior - t.prior) / ud, rtol=1e-12)
    assert not prior.independent.any()
    assert prior.note.str.contains("depends on it").all()


def test_verification_config_errors(make_small_config):
    from cityflux.config import ConfigError

    with pytest.raises(ConfigError, match="stated uncertainty"):
        make_small_config("verification.inventories=[{name: a, totals: x.csv}]")
    with pytest.raises(ConfigError, match="not 'prior'"):
        make_small_config(
            "verification.inventories=[{name: prior, totals: x.csv, relative_uncertainty: 0.1}]"
        )


def test_validate_names_missing_metrology_files(make_small_config, tmp_path):
    from cityflux.config import check_inputs

    cfg = make_small_config(
        f"verification.inventories=[{{name: a, totals: {tmp_path}/none.csv, "
        "relative_uncertainty: 0.1}]",
        "design.candidates=[{name: c, path: missing.csv, footprints: nowhere}]",
    )
    keys = {k for k, _ in check_inputs(cfg)}
    assert keys == {
        "verification.inventories[0].totals",
        "design.candidates[0].path",
        "design.candidates[0].footprints",
    }
