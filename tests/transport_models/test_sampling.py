"""The receptor-sampling design (sample_receptors, write_receptor_table) and the column terms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
from plume_builders import T0, obs_set

import observations
from transport_models import (
    SamplingOptions,
    column_prior_term,
    sample_receptors,
    write_receptor_table,
)

DATA = Path(__file__).parents[1] / "observations" / "data"
FIX = Path(__file__).parents[2] / ".." / "shared" / "fixtures"
R_DRY, G0 = 287.05, 9.80665


def _chord(lon0, lat0, z0, lon1, lat1, z1, kind="lidar_path", **kw):
    ds = obs_set(kind, 0.5 * (lon0 + lon1), 0.5 * (lat0 + lat1), 0.5 * (z0 + z1),
                 lat0=lat0, lon0=lon0, alt0=z0, lat1=lat1, lon1=lon1, alt1=z1, **kw)  # fmt: skip
    return ds


def test_tower_one_sample_and_heights_above_sea_level():
    ds = obs_set(["tower"] * 2, [-112.0, -111.9], [40.5, 40.6], [30.0, 1650.0])
    ds["alt_reference"] = ("obs", ["agl", "asl"])
    s = sample_receptors(ds, SamplingOptions(surface_altitude=1600.0))
    np.testing.assert_array_equal(s.obs, [0, 1])
    np.testing.assert_array_equal(s.height, [30.0, 50.0])
    np.testing.assert_array_equal(s.weight, [1.0, 1.0])
    assert (s.time == T0 + np.timedelta64(90, "m")).all()
    # the per-observation variable wins over the option; NaN falls back to the option
    ds["surface_altitude"] = ("obs", [np.nan, 1620.0])
    s = sample_receptors(ds, SamplingOptions(surface_altitude=1600.0))
    np.testing.assert_array_equal(s.height, [30.0, 30.0])
    with pytest.warns(UserWarning, match=r"obs 1 .*assumed 0 m asl"):
        s = sample_receptors(ds.drop_vars("surface_altitude"))
    assert s.height[1] == 1650.0


def test_column_levels_intervals_heights_and_weights():
    p = np.array(
        [[1000.0, 900.0, np.nan, 700.0, 400.0, 100.0], [950.0, 800.0, 600.0] + [np.nan] * 3]
    )
    pw = np.array([[0.2, 0.3, np.nan, 0.0, 0.3, 0.2], [0.5, 0.3, 0.2] + [np.nan] * 3])
    ak = np.array([[1.0, 0.9, np.nan, 0.8, 0.7, 0.6], [1.1, 1.0, 0.5] + [np.nan] * 3])
    ds = obs_set(["column"] * 2, -112.0, 40.5, 0.0, pressure=p, pressure_weight=pw,
                 averaging_kernel=ak, surface_pressure=[np.nan, 960.0])  # fmt: skip
    s = sample_receptors(ds, temperature=np.array([280.0, 300.0]))
    # obs 0: level 3 has weight 0 (no sample), level 2 is padding; obs 1 surface 960 hPa
    np.testing.assert_array_equal(s.obs, [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(s.sub, [0, 1, 4, 5, 0, 1, 2])
    np.testing.assert_allclose(s.weight, [0.2, 0.27, 0.21, 0.12, 0.55, 0.3, 0.1], rtol=1e-14)
    np.testing.assert_allclose(s.p_bottom, [1000, 950, 550, 250, 960, 875, 700], rtol=1e-14)
    np.testing.assert_allclose(s.p_top, [950, 800, 250, 0, 875, 700, 0], rtol=1e-14)
    np.testing.assert_allclose(s.p_surface, [1000] * 4 + [960] * 3)
    hs = np.array([R_DRY * 280 / G0] * 4 + [R_DRY * 300 / G0] * 3)
    lev = np.array([1000, 900, 400, 100, 950, 800, 600.0])
    np.testing.assert_allclose(s.height, hs * np.log(s.p_surface / lev), rtol=1e-13, atol=1e-9)
    np.testing.assert_allclose(s.scale_height, hs)


def test_chord_samples_along_the_geodesic():
    lon0, lat0, lon1, lat1 = -112.05, 40.45, -111.98, 40.52
    ds = _chord(lon0, lat0, 20.0, lon1, lat1, 300.0)
    s = sample_receptors(ds, SamplingOptions(chord_spacing=700.0, min_chord_points=4))
    geod = pyproj.Geod(ellps="WGS84")
    d = geod.inv(lon0, lat0, lon1, lat1)[2]
    length = math.hypot(d, 280.0)
    n = max(4, math.ceil(length / 700.0))
    assert s.size == n
    # the midpoints of n equal pieces are the odd ones of 2n - 1 equally spaced inner points
    pts = np.array(geod.npts(lon0, lat0, lon1, lat1, 2 * n - 1))[::2]
    np.testing.assert_allclose(s.lon, pts[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.lat, pts[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.height, 20.0 + 280.0 * (np.arange(n) + 0.5) / n, rtol=1e-12)
    np.testing.assert_allclose(s.weight, 1.0 / n, rtol=1e-12)
    np.testing.assert_allclose(s.length.sum(), length, rtol=1e-12)
    # a vertical beam: all samples above the instrument
    v = sample_receptors(_chord(lon0, lat0, 10.0, lon0, lat0, 510.0), SamplingOptions(100.0))
    np.testing.assert_allclose(v.height, 10.0 + 100.0 * (np.arange(5) + 0.5), rtol=1e-12)
    np.testing.assert_allclose(v.lon, lon0, rtol=0, atol=1e-12)


def test_reader_outputs_of_every_kind_are_sampled():
    opts = SamplingOptions(surface_altitude=1600.0, chord_spacing=100.0)
    for name, kind in (("lidar_path.csv", "lidar_path"), ("lidar_profile.nc", "lidar_profile"),
                       ("ipda_small.nc", "column"), ("column_generic.nc", "column")):  # fmt: skip
        ds = observations.read(DATA / name)
        s = sample_receptors(ds, opts)
        assert (s.kind == kind).all() and np.unique(s.obs).size == ds.sizes["obs"]
        sums = np.bincount(s.obs, weights=s.weight)
        if kind != "column" or name.startswith("ipda"):  # path means and IPDA: Σ w = 1
            np.testing.assert_allclose(sums, 1.0, rtol=1e-6)
        assert (s.height >= 0).all()
    prof = observations.read(DATA / "lidar_profile.nc")
    s = sample_receptors(prof, opts)
    seg_len = prof["range_end"].values - prof["range_start"].values
    # the reader places segment ends on a sphere (R = 6371 km), the sampler measures on WGS84
    np.testing.assert_allclose(np.bincount(s.obs, weights=s.length), seg_len, rtol=5e-3)
    lite = observations.read(
        FIX / "satellite" / "acos_LtCO2_090901_v205205_B9213A_200310212449s.nc4", quality_flag=None
    )
    s = sample_receptors(lite)
    assert s.n_obs == lite.sizes["obs"] and (np.diff(s.p_surface[s.sub == 0]) != 0).any()
    w = lite["pressure_weight"].values * lite["averaging_kernel"].values
    np.testing.assert_allclose(np.bincount(s.obs, weights=s.weight), w.sum(1), rtol=1e-12)


def test_bad_inputs_are_named():
    ds = obs_set("tower", -112.0, 40.5, -3.0, site="LOW")
    with pytest.raises(ValueError, match=r"below ground.*'LOW'.*-3 m agl"):
        sample_receptors(ds)
    with pytest.raises(ValueError, match=r"zero length.*site 's0'"):
        sample_receptors(_chord(-112.0, 40.5, 50.0, -112.0, 40.5, 50.0))
    p = np.array([[1000.0, 800.0, 500.0]])
    col = obs_set("column", -112.0, 40.5, 0.0, pressure=p, averaging_kernel=np.ones((1, 3)),
                  pressure_weight=np.array([[0.6, -0.1, 0.5]]), site="SAT")  # fmt: skip
    with pytest.raises(ValueError, match=r"negative.*'SAT'.*-0.1 at level 1"):
        sample_receptors(col)
    col["pressure_weight"] = (("obs", "level"), np.array([[0.5, 0.3, 0.1]]))
    with pytest.raises(ValueError, match=r"sum to 1.*'SAT'.*sums to 0.9"):
        sample_receptors(col)
    col["pressure_weight"] = (("obs", "level"), np.array([[0.5, 0.3, 0.2]]))
    col["pressure"] = (("obs", "level"), np.array([[1000.0, 500.0, 800.0]]))
    with pytest.raises(ValueError, match="decreasing pressure"):
        sample_receptors(col)
    with pytest.raises(ValueError, match="unknown kind"):
        sample_receptors(obs_set("ship", 0.0, 0.0, 1.0))
    with pytest.raises(KeyError, match="lat0"):
        sample_receptors(obs_set("lidar_path", 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="chord_spacing"):
        SamplingOptions(chord_spacing=0.0)


def test_receptor_table_round_trip(tmp_path):
    ds = _chord(-112.05, 40.45, 20.0, -111.98, 40.52, 300.0, site="L1")
    s = sample_receptors(ds, SamplingOptions(chord_spacing=2000.0))
    t = pd.read_csv(write_receptor_table(s, tmp_path / "sub" / "r.csv"))
    assert list(t.columns) == [
        "time", "lat", "lon", "height_agl", "kind", "obs", "sample", "site", "weight", "id"
    ]  # fmt: skip
    assert (t["time"] == "2024-07-01T01:30:00Z").all() and (t["site"] == "L1").all()
    np.testing.assert_allclose(t["lat"], s.lat, atol=5e-9, rtol=0)
    np.testing.assert_allclose(t["height_agl"], s.height, atol=5e-4, rtol=0)
    assert t["id"].is_unique and (t["sample"] == np.arange(s.size)).all()


def test_column_prior_term_matches_hand_sum():
    rng = np.random.default_rng(2)
    p = np.array([[1000.0, 800.0, 500.0, np.nan], [990.0, 700.0, 400.0, 100.0]])
    pw = np.array([[0.4, 0.35, 0.25, np.nan], [0.3, 0.3, 0.2, 0.2]])
    ak = rng.uniform(0.5, 1.2, (2, 4))
    xa = rng.uniform(395, 415, (2, 4))
    ds = obs_set(["column", "column", "tower"][:2], -112.0, 40.5, 0.0, pressure=p,
                 pressure_weight=pw, averaging_kernel=ak, co2_apriori=xa)  # fmt: skip
    n0 = 3
    hand = np.array(
        [
            sum(pw[0, k] * (1 - ak[0, k]) * xa[0, k] for k in range(n0)),
            sum(pw[1, k] * (1 - ak[1, k]) * xa[1, k] for k in range(4)),
        ]
    )
    np.testing.assert_allclose(column_prior_term(ds), hand, rtol=1e-13)
    b = rng.uniform(400, 410, (2, 4))
    with_b = hand + np.array(
        [sum(pw[0, k] * ak[0, k] * b[0, k] for k in range(n0)), (pw[1] * ak[1] * b[1]).sum()]
    )
    np.testing.assert_allclose(column_prior_term(ds, b), with_b, rtol=1e-13)
    np.testing.assert_allclose(
        column_prior_term(ds, 405.0),
        hand + 405.0 * np.array([(pw[0, :3] * ak[0, :3]).sum(), (pw[1] * ak[1]).sum()]),
        rtol=1e-13,
    )
    # an IPDA column (a = 1, x_a = 0): the background as the weighting function sees it
    ipda = ds.assign(averaging_kernel=ds.averaging_kernel * 0 + 1, co2_apriori=ds.co2_apriori * 0)
    np.testing.assert_allclose(column_prior_term(ipda, 400.0), [400.0, 400.0], rtol=1e-13)
    with pytest.raises(ValueError, match="background"):
        column_prior_term(ds, np.ones(5))
