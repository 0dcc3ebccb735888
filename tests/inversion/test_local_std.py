"""Local-window posterior std against the dense posterior covariance, and B restricted to a box."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from inversion.cg import CGOptions
from inversion.chunked import ChunkedOperator
from inversion.covariance import (
    BlockDiagonalCovariance,
    DenseCovariance,
    DiagonalCovariance,
    KroneckerCovariance,
    PointsCorrelation,
    RegularGridCorrelation,
    SeparableGridCorrelation,
    TemporalCorrelation,
    kronecker_prior,
)
from inversion.errors import MemoryBudgetError, ShapeMismatchError
from inversion.local_std import auto_halo, local_posterior_std, local_std_map
from inversion.problem import LinearProblem
from inversion.solve import solve

NY, NX, NT = 9, 11, 5


def _footprints(rng, n_obs: int, n_sectors: int, radius: int = 2) -> sp.csr_array:
    """Sparse H: each observation sees a disc of cells over 1–2 steps in every sector."""
    oy, ox = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = np.hypot(oy, ox) <= radius
    oy, ox = oy[disc], ox[disc]
    rows, cols, vals = [], [], []
    for o in range(n_obs):  # a test fixture: a loop over a few dozen observations
        y0, x0, t0 = rng.integers(0, NY), rng.integers(0, NX), rng.integers(0, NT)
        for lag in range(rng.integers(1, 3)):
            t = t0 - lag
            if t < 0:
                continue
            yy, xx = y0 + oy, x0 + ox
            keep = (yy >= 0) & (yy < NY) & (xx >= 0) & (xx < NX)
            for s in range(n_sectors):
                c = ((s * NT + t) * NY + yy[keep]) * NX + xx[keep]
                rows.append(np.full(c.size, o))
                cols.append(c)
                vals.append(rng.uniform(0.2, 1.0, c.size))
    n = n_sectors * NT * NY * NX
    H = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_obs, n)
    )
    H.sum_duplicates()
    return H


def _exact_std(H, B, R) -> np.ndarray:
    """sqrt(diag(B − B Hᵀ (H B Hᵀ + R)⁻¹ H B)) with every matrix written out."""
    Bd, Hd = B.to_dense(), H.toarray()
    G = Bd @ Hd.T
    S = Hd @ G + R.to_dense()
    return np.sqrt(np.diag(Bd) - np.einsum("ij,ji->i", G, np.linalg.solve(S, G.T)))


def _problem(kind: str, n_sectors: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    B = kronecker_prior(
        rng.uniform(0.5, 1.5, (n_sectors, NT, NY, NX)), (NY, NX), 1.0, kind, 2.5, nt=NT,
        step_hours=1.0, tau_hours=3.0, n_sectors=n_sectors,
    )  # fmt: skip
    H = _footprints(rng, 40, n_sectors)
    R = DiagonalCovariance(rng.uniform(0.05, 0.3, H.shape[0]) ** 2)
    return H, B, R, rng


@pytest.mark.parametrize("kind", ["exponential", "separable_exponential"])
@pytest.mark.parametrize("n_sectors", [1, 2])
def test_window_over_the_whole_domain_is_the_exact_posterior_std(kind, n_sectors):
    H, B, R, rng = _problem(kind, n_sectors)
    cells = rng.choice(B.n, 25, replace=False)
    res = local_posterior_std(H, B, R, cells, halo_cells=NX, halo_steps=NT)
    np.testing.assert_allclose(res.std, _exact_std(H, B, R)[cells], rtol=1e-10)
    np.testing.assert_allclose(res.prior_std, np.sqrt(B.diag()[cells]), rtol=1e-14)
    assert np.all(res.n_obs == np.count_nonzero(np.diff(H.indptr)))  # every observation


def test_smaller_windows_are_upper_bounds_that_tighten_as_the_window_grows():
    # conditioning on fewer observations never lowers a Gaussian posterior variance: each
    # window's std is >= the exact one, and a larger (nested) window's is <= a smaller one's
    H, B, R, rng = _problem("exponential", 2, seed=3)
    cells = rng.choice(B.n, 40, replace=False)
    exact = _exact_std(H, B, R)[cells]
    prev = np.sqrt(B.diag()[cells])
    errors = []
    for halo in (0, 1, 2, 4, 8):
        res = local_posterior_std(H, B, R, cells, halo_cells=halo, halo_steps=halo // 2)
        assert np.all(res.std >= exact * (1 - 1e-12))
        assert np.all(res.std <= prev * (1 + 1e-12))
        errors.append(np.median(res.std / exact - 1))
        prev = res.std
    assert errors[0] > 0.01 > errors[-1]  # the bound is loose for one cell, tight at 8


def test_a_cell_no_observation_sees_keeps_its_prior_std():
    H, B, R, _ = _problem("exponential", 1, seed=4)
    seen = np.flatnonzero(np.asarray(abs(H).sum(axis=0)).ravel())
    unseen = np.setdiff1d(np.arange(B.n), seen)
    res = local_posterior_std(H, B, R, unseen[:3], halo_cells=0, halo_steps=0)
    np.testing.assert_array_equal(res.n_obs, 0)
    np.testing.assert_allclose(res.std, np.sqrt(B.diag()[unseen[:3]]), rtol=1e-15)


def test_bad_inputs_name_what_is_wrong():
    H, B, R, _ = _problem("exponential", 1)
    with pytest.raises(TypeError, match="KroneckerCovariance"):
        local_posterior_std(H, DenseCovariance(B.to_dense()), R, [0], halo_cells=1, halo_steps=1)
    r_grid = RegularGridCorrelation((5, 8), 1.0, "exponential", 1.0)  # an R of no such kind
    with pytest.raises(TypeError, match="R diagonal, dense or block-diagonal"):
        local_posterior_std(H, B, r_grid, [0], halo_cells=1, halo_steps=1)
    with pytest.raises(TypeError, match="sparse"):
        local_posterior_std(H.toarray(), B, R, [0], halo_cells=1, halo_steps=1)
    yy, xx = np.mgrid[0:NY, 0:NX]  # a great-circle C_s on cell centres: no grid boxes
    points = PointsCorrelation(40 + 0.01 * yy.ravel(), 8 + 0.01 * xx.ravel(), "exponential", 2.5)
    on_points = KroneckerCovariance(np.ones((NT, NY * NX)), points, B.blocks[0].temporal)
    for call in (
        lambda: auto_halo(on_points),
        lambda: local_posterior_std(H, on_points, R, [0], halo_cells=1, halo_steps=1),
    ):
        with pytest.raises(TypeError, match="regular-grid C_s"):
            call()
    with pytest.raises(ValueError, match="halo_cells"):
        local_posterior_std(H, B, R, [0], halo_cells=-1, halo_steps=1)
    with pytest.raises(ValueError, match="halo_steps"):
        local_posterior_std(H, B, R, [0], halo_cells=1, halo_steps=1.5)
    with pytest.raises(ShapeMismatchError, match="cells"):
        local_posterior_std(H, B, R, [B.n], halo_cells=1, halo_steps=1)
    with pytest.raises(ShapeMismatchError, match="n_obs"):
        local_posterior_std(H[:-1], B, R, [0], halo_cells=1, halo_steps=1)


# ---------------------------------------------------------------- B on a box
@pytest.mark.parametrize(
    "temporal",
    [
        TemporalCorrelation(3.0, nt=NT, step_hours=1.0),  # Markov
        TemporalCorrelation(3.0, times_hours=[0.0, 1.0, 3.0, 3.5, 7.0]),  # irregular
        DiagonalCovariance(np.ones(NT)),  # uncorrelated steps
        DenseCovariance(np.eye(NT) + 0.3),  # any matrix
    ],
)
@pytest.mark.parametrize(
    "spatial",
    [
        RegularGridCorrelation((NY, NX), (1.0, 2.0), "matern32", 3.0),
        SeparableGridCorrelation((NY, NX), (1.0, 2.0), 3.0),
    ],
)
def test_restrict_is_the_principal_submatrix(temporal, spatial):
    rng = np.random.default_rng(5)
    B = KroneckerCovariance(rng.uniform(0.5, 1.5, (NT, NY * NX)), spatial, temporal)
    box = ((1, 4), (2, 7), (0, 6))
    tt, yy, xx = np.meshgrid(*(np.arange(*r) for r in box), indexing="ij")
    idx = ((tt * NY + yy) * NX + xx).ravel()
    sub = B.restrict(*box)
    np.testing.assert_allclose(sub.to_dense(), B.to_dense()[np.ix_(idx, idx)], rtol=1e-13,
                               atol=1e-15)  # fmt: skip
    assert (sub.markov_rho is None) == (B.markov_rho is None)  # the recursions stay


def test_restrict_refuses_boxes_outside_the_grid_and_non_grid_kernels():
    B = kronecker_prior(1.0, (NY, NX), 1.0, "exponential", 2.0, nt=NT, step_hours=1.0,
                        tau_hours=3.0).blocks[0]  # fmt: skip
    with pytest.raises(ValueError, match=r"y range \[3, 3\)"):
        B.restrict((0, 1), (3, 3), (0, 2))
    with pytest.raises(ValueError, match=r"t range \[0, 9\)"):
        B.restrict((0, 9), (0, 3), (0, 2))
    dense = KroneckerCovariance(np.ones((NT, 4)), DenseCovariance(np.eye(4)), B.temporal)
    with pytest.raises(TypeError, match="regular-grid"):
        dense.restrict((0, 1), (0, 1), (0, 1))


@pytest.mark.parametrize("kind", ["exponential", "separable_exponential"])
def test_tiled_map_equals_the_single_cell_windows_it_contains(kind):
    # a tile's cells are solved from the observations touching the tile widened by the halo:
    # with a halo over the whole domain every tile is exact; with a small one each cell's
    # value is bounded by the exact std below and by its own single-cell window above (the
    # tile's window contains the cell's)
    H, B, R, rng = _problem(kind, 2, seed=6)
    exact = _exact_std(H, B, R)
    full = local_std_map(H, B, R, core_cells=4, core_steps=2, halo_cells=NX, halo_steps=NT)
    np.testing.assert_array_equal(full.cells, np.arange(B.n))
    np.testing.assert_allclose(full.std, exact, rtol=1e-10)
    tiled = local_std_map(H, B, R, core_cells=3, core_steps=2, halo_cells=1, halo_steps=1)
    cells = rng.choice(B.n, 30, replace=False)
    single = local_posterior_std(H, B, R, cells, halo_cells=1, halo_steps=1)
    assert np.all(tiled.std[cells] >= exact[cells] * (1 - 1e-12))
    assert np.all(tiled.std[cells] <= single.std * (1 + 1e-12))
    with pytest.raises(ValueError, match="core_cells"):
        local_std_map(H, B, R, core_cells=0, core_steps=1, halo_cells=1, halo_steps=1)


# ---------------------------------------------------------------- the app's state and R
def _full_problem(seed: int = 1, radius: int = 2):
    """Two sectors, 3 background offsets after the grid blocks (each observation sees one),
    and R with a group of 10 correlated observations scattered by an index."""
    rng = np.random.default_rng(seed)
    Bk = kronecker_prior(
        rng.uniform(0.5, 1.5, (2, NT, NY, NX)), (NY, NX), 1.0, "exponential", 2.5, nt=NT,
        step_hours=1.0, tau_hours=3.0, n_sectors=2,
    )  # fmt: skip
    n_obs, n_off = 60, 3
    Hg = _footprints(rng, n_obs, 2, radius)
    Ho = sp.csr_array((np.ones(n_obs), (np.arange(n_obs), rng.integers(0, n_off, n_obs))),
                      shape=(n_obs, n_off))  # fmt: skip
    H = sp.csr_array(sp.hstack([Hg, Ho]))
    B = BlockDiagonalCovariance([*Bk.blocks, DiagonalCovariance(np.full(n_off, 0.3**2))])
    grp = rng.choice(n_obs, 10, replace=False)
    rest = np.setdiff1d(np.arange(n_obs), grp)
    R = BlockDiagonalCovariance(
        [DiagonalCovariance(rng.uniform(0.05, 0.3, rest.size) ** 2),
         DenseCovariance(0.05**2 * (0.5 * np.eye(10) + 0.5))],
        index=np.concatenate([rest, grp]),
    )  # fmt: skip
    pb = LinearProblem(H=H, x_prior=np.zeros(B.n), y=rng.standard_normal(n_obs), B=B, R=R)
    return pb, Hg.shape[1], rng


def test_global_parameters_and_correlated_r_keep_the_windows_exact():
    # offsets enter every window's S_L through the observations that see them, and R_LL is
    # the principal submatrix of a block-diagonal, permuted R: a whole-domain window is exact
    pb, n_grid, rng = _full_problem()
    exact = _exact_std(pb.H, pb.B, pb.R)
    cells = rng.choice(n_grid, 25, replace=False)
    full = local_posterior_std(pb.H, pb.B, pb.R, cells, halo_cells=NX, halo_steps=NT)
    np.testing.assert_allclose(full.std, exact[cells], rtol=1e-10)
    tiled = local_std_map(pb.H, pb.B, pb.R, core_cells=4, core_steps=2, halo_cells=1,
                          halo_steps=1)  # fmt: skip
    np.testing.assert_array_equal(tiled.cells, np.arange(n_grid))  # offsets are not local
    assert np.all(tiled.std >= exact[:n_grid] * (1 - 1e-12))
    assert np.max(tiled.std / exact[:n_grid] - 1) > 1e-3  # a small halo does miss data
    with pytest.raises(ValueError, match="global parameters"):
        local_posterior_std(pb.H, pb.B, pb.R, [n_grid], halo_cells=1, halo_steps=1)


def test_auto_halo_is_three_lengths_and_one_time_scale():
    B = kronecker_prior(1.0, (NY, NX), (2.0, 1.0), "exponential", 2.5, nt=NT, step_hours=2.0,
                        tau_hours=3.0)  # fmt: skip
    assert auto_halo(B) == (8, 2)  # ceil(7.5 km / 1 km), ceil(3 h / 2 h)


# ---------------------------------------------------------------- CGPosterior std="local"
def test_cg_local_std_map_against_obs_space_and_its_own_check(caplog):
    pb, n_grid, _ = _full_problem(seed=2)
    exact = solve(pb, "obs-space").std
    whole = solve(pb, "cg", cg=CGOptions(std="local", local_halo=(NX, NT), local_tile=(4, 2),
                                         batch=2))  # fmt: skip
    np.testing.assert_allclose(whole.std, exact, rtol=1e-7)  # offsets: certified, 2 at a time
    assert whole.std_method.startswith("local windows")
    assert np.max(np.abs(whole.info["local_check"]["rel_excess"])) < 1e-7
    small = solve(pb, "cg", cg=CGOptions(std="local", local_halo=(0, 0), local_tile=(3, 1)))
    with caplog.at_level("WARNING", logger="inversion.lowrank"):
        std = small.std
    rel = std / exact - 1
    assert rel.min() > -1e-7  # an upper bound everywhere
    np.testing.assert_allclose(std[n_grid:], exact[n_grid:], rtol=1e-7)
    chk = small.info["local_check"]
    assert chk["cells"].size == 16 and np.all(chk["cells"] < n_grid)
    # the check's figures are the map's true excess at those cells (against obs-space)
    np.testing.assert_allclose(chk["rel_excess"], rel[chk["cells"]], atol=1e-7)
    worst = chk["rel_excess"].max()
    med = np.median(chk["rel_excess"])
    assert f"by {med:+.2%} (median) and {worst:+.2%} (max) at 16 sampled cells" in small.std_method
    warned = [r for r in caplog.records if "inversion.cg.local_halo" in r.getMessage()]
    assert bool(warned) == (worst > 0.05)
    assert worst > 0.05  # halo 0 on footprints of radius 2: the warning must fire here


def test_cg_local_std_reads_a_chunked_h_within_the_budget():
    pb, _, _ = _full_problem(seed=3, radius=4)
    opts = CGOptions(std="local", local_halo=(2, 1), local_tile=(4, 2), local_check=0)
    ref = solve(pb, "cg", cg=opts).std
    chunked = LinearProblem(H=ChunkedOperator.from_sparse(pb.H, 16), x_prior=pb.x_prior,
                            y=pb.y, B=pb.B, R=pb.R)  # fmt: skip
    np.testing.assert_allclose(solve(chunked, "cg", cg=opts).std, ref, rtol=1e-12)
    budget = 60_000  # bytes: the Lanczos basis fits (about 59.5 kB), H read whole does not
    assert pb.H.nnz * 24 > budget
    tight = solve(chunked, "cg", cg=opts, memory_budget=budget)
    with pytest.raises(MemoryBudgetError, match="std='local' reads H whole"):
        _ = tight.std


def test_cg_local_std_spreads_the_tiles_over_a_dask_client():
    from inversion.distributed import ClusterConfig, make_client

    pb, _, _ = _full_problem(seed=4)
    opts = CGOptions(std="local", local_halo=(2, 1), local_tile=(3, 2), local_check=4)
    ref = solve(pb, "cg", cg=opts).std
    client = make_client(ClusterConfig(kind="local", jobs=1, cores=2, processes=False))
    try:
        post = solve(pb, "cg", cg=opts, client=client, chunk_size=16)
        assert post.problem.H.client is client
        std = post.std
        direct = local_std_map(pb.H, pb.B, pb.R, core_cells=3, core_steps=2, halo_cells=2,
                               halo_steps=1, client=client)  # fmt: skip
    finally:
        client.close()
    np.testing.assert_allclose(std, ref, rtol=1e-12)
    np.testing.assert_allclose(direct.std, ref[: direct.cells.size], rtol=1e-12)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("std", "locals", "CGOptions.std"),
        ("local_halo", (1,), "local_halo must be two ints >= 0"),
        ("local_halo", (1, -1), "local_halo must be two ints >= 0"),
        ("local_tile", (0, 1), "local_tile must be two ints >= 1"),
        ("local_check", -1, "local_check must be an int >= 0"),
    ],
)
def test_cg_local_options_are_checked(key, value, match):
    with pytest.raises(ValueError, match=match):
        CGOptions(**{key: value})
