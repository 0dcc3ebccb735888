"""The configured solver: ``inversion.method: cg`` gives the obs-space answer on the small city."""

from __future__ import annotations

import numpy as np
import pytest

from cityflux.config import ConfigError, parse_config
from cityflux.pipeline import run


def _with_method(small_config, method: str, **cg):
    cfg = small_config()
    inv = cfg.inversion.model_copy(
        update={"method": method, "cg": cfg.inversion.cg.model_copy(update=cg)}
    )
    return cfg.model_copy(update={"inversion": inv})


def test_cg_city_totals_equal_obs_space(make_small_config):
    ref = run(_with_method(make_small_config, "obs-space"))
    cg = run(_with_method(make_small_config, "cg", tol=1e-10))
    assert cg.posterior.std_method.startswith("low-rank")
    W = ref.case.weights
    m_ref, s_ref = ref.posterior.aggregate(W)
    m_cg, s_cg = cg.posterior.aggregate(W)
    # exact aggregates by CG solves: equal to the Cholesky answer to 1e-6 relative
    np.testing.assert_allclose(m_cg, m_ref, rtol=1e-6)
    np.testing.assert_allclose(s_cg, s_ref, rtol=1e-6)
    # the low-rank std map never claims more certainty than the exact one
    assert np.all(cg.posterior.std >= ref.posterior.std * (1 - 1e-6))


def test_unknown_solver_in_config_names_the_key():
    with pytest.raises(ConfigError, match=r"inversion\.method"):
        parse_config({"inversion": {"method": "gmres"}})


def test_cg_lowrank_plus_sampled_std_and_its_standard_error_reach_the_output(make_small_config):
    from cityflux.outputs import posterior_dataset

    ref = run(_with_method(make_small_config, "obs-space"))
    res = run(_with_method(make_small_config, "cg", std="low-rank+sampled", n_samples=64))
    post = res.posterior
    assert post.std_method.startswith("low-rank+sampled")
    se = post.info["std_se"]
    # the corrected map is within 5 of its own standard errors of the exact std everywhere
    z = (post.std - ref.posterior.std) / np.maximum(se, 1e-30)
    assert np.all(np.abs(z) < 5), np.abs(z).max()
    ds = posterior_dataset(res, {})
    expected = res.case.state.unflatten(se, name="se")["se"]
    np.testing.assert_array_equal(ds["flux_posterior_std_se"].values, expected.values)
    assert ds["flux_posterior_std_se"].attrs["units"] == ds["flux_posterior_std"].attrs["units"]


def test_cg_full_rank_std_map_equals_obs_space(make_small_config):
    ref = run(_with_method(make_small_config, "obs-space"))
    res = run(_with_method(make_small_config, "cg", rank="full"))
    assert res.posterior.std_method.endswith("complete spectrum)")
    np.testing.assert_allclose(res.posterior.std, ref.posterior.std, rtol=1e-7)
    assert res.posterior.dofs == pytest.approx(ref.posterior.dofs, rel=1e-8)
    assert res.diagnostics["dofs_is_estimate"] is False
    assert res.diagnostics["dofs"] == pytest.approx(ref.diagnostics["dofs"], rel=1e-8)
    # a Lanczos rank below n_obs: the DOFS is flagged as an estimate
    part = run(_with_method(make_small_config, "cg", rank=3))
    assert part.diagnostics["dofs_is_estimate"] is True


def test_bad_cg_rank_in_config_names_the_key():
    with pytest.raises(ConfigError, match=r"inversion\.cg\.rank"):
        parse_config({"inversion": {"cg": {"rank": "all"}}})


def test_block_lanczos_std_pairs_from_the_config(make_small_config):
    # inversion.cg.std_pairs reaches the solver: where the complete spectrum is not computed
    # (rank: 0 here) the map comes from that many block Lanczos pairs, corrected without bias
    ref = run(_with_method(make_small_config, "obs-space"))
    cfg = _with_method(
        make_small_config, "cg", rank=0, std_pairs=40, std="low-rank+sampled", n_samples=64,
        aggregate_tol=1e-6,
    )  # fmt: skip
    assert cfg.inversion.cg.options().std_pairs == 40
    res = run(cfg)
    post = res.posterior
    assert post.std_method == "low-rank+sampled (k=40, n=64)"
    z = (post.std - ref.posterior.std) / np.maximum(post.info["std_se"], 1e-30)
    assert np.all(np.abs(z) < 5) and abs(np.median(z)) < 0.5, (np.abs(z).max(), np.median(z))
    _, s_ref = ref.posterior.aggregate(ref.case.weights)
    _, s_cg = post.aggregate(res.case.weights)
    np.testing.assert_allclose(s_cg, s_ref, rtol=1e-6)  # certified to 5e-7
    with pytest.raises(ConfigError, match=r"inversion\.cg\.std_pairs"):
        parse_config({"inversion": {"cg": {"std_pairs": 0}}})


def test_separable_spatial_kind_builds_its_b_and_cg_agrees_with_obs_space(make_small_config):
    from inversion.covariance import SeparableGridCorrelation

    cfg = make_small_config("inversion.spatial_kind=separable_exponential")
    ref = run(
        cfg.model_copy(
            update={"inversion": cfg.inversion.model_copy(update={"method": "obs-space"})}
        )
    )
    cg = run(_with_method(lambda: cfg, "cg", tol=1e-10))
    # B's flux block is the taxicab exponential of the grid's own cell coordinates [km]
    case = ref.case
    grid, block = case.state.grid, case.B.blocks[0]
    assert isinstance(block.spatial, SeparableGridCorrelation)
    yy, xx = np.meshgrid(grid.y / 1e3, grid.x / 1e3, indexing="ij")
    d1 = np.abs(yy.ravel()[:, None] - yy.ravel()[None, :]) + np.abs(
        xx.ravel()[:, None] - xx.ravel()[None, :]
    )
    L = cfg.inversion.spatial_length_km
    np.testing.assert_allclose(block.spatial.to_dense(), np.exp(-d1 / L), rtol=1e-12, atol=1e-15)
    # the cg solver's exact aggregates equal the Cholesky answer with this B
    W = case.weights
    m_ref, s_ref = ref.posterior.aggregate(W)
    m_cg, s_cg = cg.posterior.aggregate(W)
    np.testing.assert_allclose(m_cg, m_ref, rtol=1e-6)
    np.testing.assert_allclose(s_cg, s_ref, rtol=1e-6)
    # and the prior differs from the isotropic one (the kind was not ignored)
    iso = run(make_small_config("inversion.method=obs-space"))
    assert not np.allclose(iso.posterior.aggregate(W)[1], s_ref, rtol=1e-3)


def test_local_std_map_from_the_config(make_small_config):
    # inversion.cg.std: local reaches the solver: windows over the whole small city are the
    # exact map (the global parameters by certified solves), checked cells recorded; a small
    # halo is an upper bound everywhere, and diagnostics.json names the method and its check
    ref = run(_with_method(make_small_config, "obs-space"))
    case = ref.case
    nt, ny, nx = case.state.time.nt, *case.state.grid.shape
    whole = run(_with_method(make_small_config, "cg", std="local", local_halo=(max(ny, nx), nt),
                             local_tile=(8, 4)))  # fmt: skip
    np.testing.assert_allclose(whole.posterior.std, ref.posterior.std, rtol=1e-6)
    assert whole.diagnostics["std_method"].startswith("local windows (tiles 8 cells x 4 steps")
    assert np.max(np.abs(whole.posterior.info["local_check"]["rel_excess"])) < 1e-6
    small = run(_with_method(make_small_config, "cg", std="local", local_halo=(1, 0)))
    assert np.all(small.posterior.std >= ref.posterior.std * (1 - 1e-6))
    assert "(max) at 16 sampled cells" in small.diagnostics["std_method"]
    with pytest.raises(ConfigError, match=r"inversion\.cg\.local_halo"):
        parse_config({"inversion": {"cg": {"local_halo": [3, -1]}}})
