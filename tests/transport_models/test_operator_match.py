"""Footprints for every observation kind: receptor table -> a Lagrangian "model" (copies of the
real STILT fixture, scaled per receptor) -> assemble_h, each H row against a hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import scipy.sparse as sp

import observations
from inversion import Grid, StateVector, TimeAxis
from transport_models import (
    FootprintError,
    SamplingOptions,
    assemble_h,
    assemble_receptors,
    match_observations,
    read_footprint,
    sample_receptors,
    write_footprint,
    write_receptor_table,
)

FIX = Path(__file__).parents[2] / ".." / "shared" / "fixtures"
STILT = FIX / "stilt" / "pystilt_r_foot_201512100000_-112_40.5_5.nc"
T = np.datetime64("2015-12-10T00:00", "ns")
OPTS = SamplingOptions(chord_spacing=600.0, min_chord_points=3)
SURFACE = 1280.0  # m asl


@pytest.fixture(scope="module")
def base():
    """The fixture cropped to 50 x 50 cells of 0.01° (edges -112.5..-112.0, 40.0..40.5)."""
    fp = read_footprint(STILT).isel(y=slice(50, 100), x=slice(50, 100))
    assert float(fp.sum()) > 0
    return fp


@pytest.fixture(scope="module")
def state():
    grid = Grid.from_bounds("EPSG:4326", (-112.5, 40.0, -112.0, 40.5), 0.05)
    return StateVector(grid, TimeAxis.regular("2015-12-09T18", "2015-12-10", "3h"))


def by_hand(values: np.ndarray) -> np.ndarray:
    """(6 hourly layers, 50, 50) -> flux-block row: layers 18-20 h and 21-23 h summed into the
    two 3-h bins, 5 x 5 fine cells summed into each 0.05° cell (rows south to north)."""
    v = values.astype(np.float64)
    bins = np.stack([v[0:3].sum(0), v[3:6].sum(0)])
    return bins.reshape(2, 10, 5, 10, 5).sum(axis=(2, 4)).ravel()


def make_obs() -> tuple:
    """Every kind; returns the ObservationSet and the independent weights per (obs, sample)."""
    rng = np.random.default_rng(7)
    nlev = 5
    p = np.array([850.0, 700.0, 500.0, 300.0, 100.0])
    pw = rng.uniform(0.1, 0.3, (3, nlev))
    pw /= pw.sum(axis=1, keepdims=True)
    ak = rng.uniform(0.6, 1.2, (3, nlev))
    iwf, dp = rng.uniform(0.5, 2.0, nlev), np.array([150.0, 150.0, 200.0, 200.0, 200.0])
    w_ipda = iwf * dp / (iwf * dp).sum()  # IPDA: IWF_k Δ_k / Σ IWF Δ, stored as pressure_weight
    pw = np.vstack([pw, w_ipda])
    ak = np.vstack([ak, np.ones(nlev)])
    # obs: 0 tower, 1-3 columns (3: X-STILT whole column), 4 IPDA, 5 chord, 6-7 profile,
    # 8 a second tower (no footprint at all), 9 column with one level missing
    kinds = ["tower", "column", "column", "column", "column", "lidar_path", "lidar_profile",
             "lidar_profile", "tower", "column"]  # fmt: skip
    n = len(kinds)
    lat = np.array([40.20, 40.30, 40.31, 40.32, 40.33, 0, 0, 0, 40.40, 40.34])
    lon = np.array([-112.30, -112.20, -112.21, -112.22, -112.23, 0, 0, 0, -112.10, -112.24])
    beam = [(40.10, -112.40, SURFACE + 12.0), (40.11, -112.38, SURFACE + 80.0),
            (40.12, -112.36, SURFACE + 150.0)]  # fmt: skip
    ends = {5: (beam[0], (40.11, -112.37, SURFACE + 60.0)), 6: (beam[0], beam[1]),
            7: (beam[1], beam[2])}  # fmt: skip
    geo = {f"{c}{e}": np.full(n, np.nan) for c in ("lat", "lon", "alt") for e in "01"}
    for o, (a, b) in ends.items():
        for e, pt in (("0", a), ("1", b)):
            geo[f"lat{e}"][o], geo[f"lon{e}"][o], geo[f"alt{e}"][o] = pt
        lat[o], lon[o] = 0.5 * (a[0] + b[0]), 0.5 * (a[1] + b[1])
    lev = {
        "pressure": np.full((n, nlev), np.nan),
        "pressure_weight": np.full((n, nlev), np.nan),
        "averaging_kernel": np.full((n, nlev), np.nan),
        "co2_apriori": np.full((n, nlev), np.nan),
    }
    for i, o in enumerate([1, 2, 3, 4]):
        lev["pressure"][o], lev["pressure_weight"][o], lev["averaging_kernel"][o] = p, pw[i], ak[i]
        lev["co2_apriori"][o] = 400.0
    lev["pressure"][9], lev["pressure_weight"][9], lev["averaging_kernel"][9] = p, pw[0], ak[0]
    lev["co2_apriori"][9] = 400.0
    ranges = np.full((2, n), np.nan)
    ranges[:, 6] = 0.0, geod_len(*ends[6])
    ranges[:, 7] = ranges[1, 6], ranges[1, 6] + geod_len(*ends[7])
    obs = observations.make_observation_set(
        value=np.full(n, 410.0), time=T, kind=kinds,
        site=[f"site{i}" for i in range(n)], lat=lat, lon=lon,
        alt=np.where(np.isin(kinds, ["tower"]), 30.0, SURFACE + 50.0),
        errors={"instrument": 1.0},
        extras={
            **{k: ("obs", v) for k, v in geo.items()}, **lev,
            "range_start": ("obs", ranges[0]), "range_end": ("obs", ranges[1]),
            "surface_altitude": ("obs", np.full(n, SURFACE)),
            "alt_reference": ("obs", np.where(np.isin(kinds, ["tower"]), "agl", "asl")),
        },
    )  # fmt: skip
    weights = {0: {0: 1.0}, 8: {0: 1.0}}
    for i, o in enumerate([1, 2, 3, 4]):
        weights[o] = {k: pw[i, k] * ak[i, k] for k in range(nlev)}
    weights[9] = {k: pw[0, k] * ak[0, k] for k in range(nlev)}
    for o, (a, b) in ends.items():
        m = max(3, math.ceil(geod_len(a, b) / 600.0))  # documented rule
        weights[o] = dict.fromkeys(range(m), 1.0 / m)
    return obs, weights


def geod_len(a, b) -> float:
    """3-D chord length [m]: WGS84 geodesic distance and height difference."""
    d = pyproj.Geod(ellps="WGS84").inv(a[1], a[0], b[1], b[0])[2]
    return math.hypot(d, b[2] - a[2])


def model(table: pd.DataFrame, base, folder: Path, skip=()) -> tuple[list[Path], np.ndarray]:
    """A stand-in Lagrangian model: one footprint file per receptor row of the CSV table, the
    fixture scaled by a factor particular to the row (a swapped or mis-weighted sample shows)."""
    files, scale = [], 1.0 + 0.137 * np.arange(len(table)) + 0.01 * np.arange(len(table)) ** 2
    for i, r in table.iterrows():
        if i in skip:
            continue
        fp = base.copy(data=(base.values * scale[i]).astype(np.float32))
        fp = fp.assign_coords(
            receptor_time=np.datetime64(pd.Timestamp(r["time"]).tz_localize(None), "ns"),
            receptor_lat=float(r["lat"]), receptor_lon=float(r["lon"]),
            receptor_height=float(r["height_agl"]), receptor_kind=str(r["kind"]),
            receptor_id=str(r["id"]),
        )  # fmt: skip
        files.append(write_footprint(fp, folder / f"fp_{i:03d}.nc"))
    return files, scale


@pytest.fixture(scope="module")
def run(tmp_path_factory, base, state):
    tmp = tmp_path_factory.mktemp("kinds")
    obs, weights = make_obs()
    samples = sample_receptors(obs, OPTS)
    table = pd.read_csv(write_receptor_table(samples, tmp / "receptors.csv"))
    # no footprint for obs 8 at all; obs 9 misses its level 2; obs 3 gets an X-STILT column
    drop = set(table.index[table["obs"] == 8]) | set(
        table.index[(table["obs"] == 9) & (table["sample"] == 2)]
    )
    drop |= set(table.index[table["obs"] == 3])
    files, scale = model(table, base, tmp, skip=drop)
    xstilt = base.copy(data=(base.values * 0.77).astype(np.float32)).assign_coords(
        receptor_time=T, receptor_lat=40.32, receptor_lon=-112.22, receptor_height=np.nan,
        receptor_kind="column", receptor_id="xstilt",
    )  # fmt: skip
    stray = base.copy(data=base.values).assign_coords(
        receptor_time=T + np.timedelta64(3, "h"), receptor_id="stray"
    )
    files += [write_footprint(xstilt, tmp / "xcol.nc"), write_footprint(stray, tmp / "s.nc")]
    op = assemble_h(files, state, obs, sampling=OPTS, threshold=0.0)
    return obs, weights, table, scale, op, files


def test_every_kind_row_equals_hand_computation(run, base):
    obs, weights, table, scale, op, _ = run
    expect_complete = np.ones(obs.sizes["obs"], bool)
    expect_complete[[8, 9]] = False
    np.testing.assert_array_equal(op.complete, expect_complete)
    ref = by_hand(base.values.astype(np.float32))  # the file values are float32 copies
    rows = []
    for o in np.flatnonzero(expect_complete):
        if o == 3:  # X-STILT: already AK- and pressure-weighted, weight 1
            rows.append(by_hand((base.values * 0.77).astype(np.float32)))
            continue
        t = table[table["obs"] == o]
        assert sorted(t["sample"]) == sorted(weights[o])  # the sampler's samples, as documented
        rows.append(
            sum(
                weights[o][s] * by_hand((base.values * scale[i]).astype(np.float32))
                for i, s in zip(t.index, t["sample"], strict=True)
            )
        )
    assert ref.sum() > 0
    h = op.H.toarray()
    assert h.shape == (expect_complete.sum(), op.H.shape[1])
    np.testing.assert_allclose(h, np.array(rows), rtol=1e-10, atol=1e-12 * np.abs(rows).max())


def test_report_counts_unmatched_and_incomplete(run):
    obs, _, _, _, op, files = run
    rep = op.report
    assert rep["receptors"]["total"] == len(files)
    assert rep["receptors"]["unmatched"] == 1 and op.match.n_unmatched_receptors == 1
    assert "s.nc" in rep["receptors"]["unmatched_examples"][0]
    assert rep["receptors"]["whole_column"] == 1
    assert rep["n_incomplete"] == 2 and rep["n_complete"] == obs.sizes["obs"] - 2
    col, tower = rep["observations"]["column"], rep["observations"]["tower"]
    assert col["incomplete"] == 1 and col["reasons"]["footprints for only some samples"] == 1
    assert tower["incomplete"] == 1 and tower["reasons"]["no footprint receptor"] == 1
    assert rep["observations"]["lidar_profile"]["complete"] == 2
    assert op.combination.shape == (obs.sizes["obs"], len(files))
    assert op.combination[[8, 9]].nnz == 0  # incomplete observations have empty rows
    assert rep["assembly"]["n_receptors"] == len(files)


def test_adjoint_and_receptor_order(run, state):
    """<H x, y> = <x, Hᵀ y>, and H does not depend on the order of the footprint files."""
    obs, _, _, _, op, files = run
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=op.H.shape[1]), rng.normal(size=op.H.shape[0])
    lhs, rhs = (op.H @ x) @ y, x @ (op.H.T @ y)
    assert abs(lhs - rhs) <= 1e-12 * np.abs(op.H).sum() * np.abs(x).max() * np.abs(y).max()
    perm = list(rng.permutation(len(files)))
    other = assemble_h([files[i] for i in perm], state, obs, sampling=OPTS, threshold=0.0)
    np.testing.assert_allclose(other.H.toarray(), op.H.toarray(), rtol=1e-12, atol=0)


def test_duplicated_receptor_and_ambiguous_columns_are_errors(run, state):
    obs, _, _, _, op, _ = run
    rec = op.receptors
    with pytest.raises(FootprintError, match=r"more than once.*fp_000"):
        match_observations(pd.concat([rec, rec.iloc[[0]]], ignore_index=True), obs, sampling=OPTS)
    # a whole-column footprint for a column that also has per-level footprints
    i = int(np.flatnonzero(op.match.receptor_obs == 1)[0])
    extra = rec.iloc[[i]].assign(height=np.nan)
    with pytest.raises(FootprintError, match="both a whole-column footprint"):
        match_observations(pd.concat([rec, extra], ignore_index=True), obs, sampling=OPTS)


def test_heights_decide_between_levels_and_tolerances(run):
    obs, _, _, _, op, _ = run
    rec = op.receptors.copy()
    col = np.flatnonzero(op.match.receptor_obs == 1)
    # 5 m off with a 1 m tolerance: the levels of obs 1 lose their footprints
    rec.loc[col, "height"] += 5.0
    m = match_observations(rec, obs, sampling=OPTS)
    assert not m.complete[1] and m.n_unmatched_receptors == col.size + 1
    m = match_observations(rec, obs, sampling=OPTS, height_tolerance=6.0)
    assert m.complete[1]
    np.testing.assert_array_equal(m.combination.toarray(), op.combination.toarray())
    with pytest.raises(ValueError, match="height_tolerance"):
        match_observations(rec, obs, height_tolerance=0.0)


def test_tower_without_receptor_height_and_deprecated_unpacking(tmp_path, base, state):
    obs = observations.make_observation_set(
        value=[410.0, 411.0], time=T, kind="tower", site=["A", "B"], lat=[40.2, 40.2],
        lon=[-112.3, -112.3], alt=[30.0, 60.0], errors={"instrument": 1.0},
    )  # fmt: skip
    fp = base.assign_coords(receptor_lat=40.2, receptor_lon=-112.3, receptor_height=np.nan)
    f = write_footprint(fp, tmp_path / "a.nc")
    m = match_observations(assemble_receptors([f], state).receptors, obs)
    assert m.n_unmatched_receptors == 1  # two inlets share the position: ambiguous
    assert m.report["receptors"]["ambiguous_without_height"] == 1
    op = assemble_h([f], state, obs.isel(obs=[0]), threshold=0.0)
    assert op.complete.all() and op.report["receptors"]["height_not_given"] == 1
    np.testing.assert_allclose(op.H.toarray()[0], by_hand(base.values), rtol=1e-10)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        h, assembly = op
    assert h is op.H and assembly.n_receptors == 1
    with pytest.warns(DeprecationWarning), pytest.raises(FootprintError, match="no complete"):
        h, assembly = assemble_h([f], state, obs, threshold=0.0, height_tolerance=0.5)


def test_combination_is_the_weighted_sum(run):
    """combination @ (receptor indicator) gives each sample's weight, the rows sum as documented."""
    _, weights, _, _, op, _ = run
    c = sp.csr_array(op.combination)
    sums = np.asarray(c.sum(axis=1)).ravel()
    for o in (0, 5, 6, 7):  # towers and lidar path means: weights sum to 1
        assert sums[o] == pytest.approx(1.0, rel=1e-12)
    assert sums[1] == pytest.approx(sum(weights[1].values()), rel=1e-12)
    assert sums[4] == pytest.approx(1.0, rel=1e-12)  # IPDA
