"""Time-integrated footprints are spread over the state time bins they cover (issue #12 item 5)."""

from __future__ import annotations

import numpy as np
import pytest
from footprint_builders import aggregated_stilt as _aggregated

from inversion import Grid, StateVector, TimeAxis
from transport_models.footprints import read_footprint
from transport_models.operator import assemble_receptors
from transport_models.operator._kernels import layer_bin_weights, spread_layers

H = np.timedelta64(1, "h")


@pytest.fixture
def aggregated(tmp_path):
    p = tmp_path / "foot2018x01x10x12x51.97Nx004.93Ex00020_aggreg.nc"
    vals = _aggregated(p)
    return p, vals


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_ten_day_footprint_spread_over_daily_bins(aggregated, engine):
    """[2017-12-31 12:00, 2018-01-10 12:00): half a day, nine days, half a day (hand computed)."""
    path, vals = aggregated
    fp = read_footprint(path)
    axis = TimeAxis.regular("2017-12-30", "2018-01-13", "1D")
    state = StateVector(Grid.from_dataarray(fp), axis)
    op = assemble_receptors([path], state, threshold=0.0, engine=engine, scheduler="synchronous")
    h = op.H.toarray()[0].reshape(axis.nt, -1)
    hours = np.array([0, 12] + [24] * 9 + [12, 0, 0], float)  # hours of the layer in each day
    per_bin = h.sum(axis=1)
    read = fp.values[0].astype(np.float64)  # the footprint as read (float32 storage)
    total = read.sum()
    assert abs(total - vals.sum()) <= 1e-6 * vals.sum()  # the file's total sensitivity, to 1e-6
    np.testing.assert_allclose(per_bin, total * hours / 240.0, rtol=1e-12, atol=0)
    # each bin holds the whole map scaled by its share (uniform in time within the layer)
    np.testing.assert_allclose(h[5], read.ravel() * 24 / 240, rtol=1e-12)
    assert abs(h.sum() - vals.sum()) <= 1e-6 * vals.sum()
    assert op.receptors["outside_time"].iloc[0] <= 1e-14 * total  # rounding of the shares only
    np.testing.assert_allclose(op.receptors["total"].iloc[0], total, rtol=1e-12)
    assert abs(op.receptors["total"].iloc[0] - vals.sum()) <= 1e-6 * vals.sum()


def test_part_outside_the_time_axis_is_counted(aggregated):
    path, _ = aggregated
    fp = read_footprint(path)
    axis = TimeAxis.regular("2018-01-02", "2018-01-12", "1D")
    op = assemble_receptors([path], StateVector(Grid.from_dataarray(fp), axis), threshold=0.0)
    total = fp.values.astype(np.float64).sum()
    outside = total * 36 / 240  # 2017-12-31 12:00 to 2018-01-02 00:00
    np.testing.assert_allclose(op.report.outside_time, outside, rtol=1e-12)
    np.testing.assert_allclose(op.H.sum() + op.report.outside_time, total, rtol=1e-12)


def test_layer_bin_weights_against_brute_force():
    rng = np.random.default_rng(2)
    edges = np.datetime64("2020-01-01", "ns") + np.cumsum(rng.integers(1, 50, 30)) * H
    s = edges[0] - 40 * H + rng.integers(0, 1500, 200) * np.timedelta64(1, "m") * 60
    e = s + rng.integers(0, 300, 200) * H
    e[:5] = s[:5]  # points in time
    layer, b, w, inside = layer_bin_weights(s, e, edges)
    dense = np.zeros((200, edges.size - 1))
    np.add.at(dense, (layer, b), w)
    ref = np.zeros_like(dense)
    for k in range(200):  # brute force, by hand
        for j in range(edges.size - 1):
            if e[k] == s[k]:
                ref[k, j] = float(edges[j] <= s[k] < edges[j + 1])
                continue
            lo, hi = max(s[k], edges[j]), min(e[k], edges[j + 1])
            ref[k, j] = max((hi - lo) / (e[k] - s[k]), 0.0)
    np.testing.assert_allclose(dense, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(inside, ref.sum(axis=1), rtol=1e-12, atol=1e-15)
    vals = rng.random((200, 7))
    a = spread_layers(vals, layer, b, w, edges.size - 1, "numba")
    np.testing.assert_allclose(
        a, spread_layers(vals, layer, b, w, edges.size - 1, "numpy"), rtol=1e-12
    )
    np.testing.assert_allclose(a, ref.T @ vals, rtol=1e-12)
