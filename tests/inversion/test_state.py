"""TimeAxis and StateVector: half-open bins, C-order flattening and xarray round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inversion.grid import Grid
from inversion.state import FLUX_UNITS, StateVector, TimeAxis


@pytest.fixture
def state() -> StateVector:
    grid = Grid.local(-111.9, 40.76, nx=5, ny=4)
    time = TimeAxis.regular("2024-06-01", "2024-06-02", "6h")
    return StateVector(grid, time, ["traffic", "buildings"], extra={"background": ["A", "B", "C"]})


def test_regular_axis_edges_and_durations():
    t = TimeAxis.regular("2024-06-01", "2024-06-08", "6h")
    assert t.nt == 28
    assert t.edges[1] - t.edges[0] == np.timedelta64(6, "h")
    np.testing.assert_allclose(t.seconds, 21600.0)
    np.testing.assert_allclose(t.center_hours[:3], [3.0, 9.0, 15.0])


def test_bins_are_half_open():
    t = TimeAxis.regular("2024-06-01", "2024-06-02", "6h")
    idx = t.index(
        [
            "2024-06-01T00:00",
            "2024-06-01T05:59:59.999",
            "2024-06-01T06:00",
            "2024-06-02T00:00",
            "2024-05-31T23:59",
        ]
    )
    np.testing.assert_array_equal(idx, [0, 0, 1, -1, -1])


def test_tz_aware_times_are_converted_to_utc():
    t = TimeAxis.regular("2024-06-01", "2024-06-02", "1h")
    local = pd.Timestamp("2024-06-01 08:30", tz="America/Denver")  # 14:30 UTC
    assert t.index([local])[0] == 14


def test_bad_axes():
    with pytest.raises(ValueError, match="whole number"):
        TimeAxis.regular("2024-06-01", "2024-06-01T05:00", "2h")
    with pytest.raises(ValueError, match="increase strictly"):
        TimeAxis(np.array(["2024-01-01", "2024-01-03", "2024-01-02"], dtype="datetime64[ns]"))
    with pytest.raises(ValueError, match="at least 2 edges"):
        TimeAxis(np.array(["2024-01-01"], dtype="datetime64[ns]"))


def test_state_layout_is_sector_time_y_x_in_c_order(state):
    assert state.flux_shape == (2, 4, 4, 5)
    assert state.n_flux == 160
    assert state.size == 163
    assert state.slice("background") == slice(160, 163)
    # hand calculation of a C-order index
    assert state.flux_index(1, 2, 3, 4) == 1 * 80 + 2 * 20 + 3 * 5 + 4
    flux = np.arange(160.0).reshape(2, 4, 4, 5)
    x = state.flatten(flux, {"background": [7, 8, 9]})
    assert x[state.flux_index(1, 2, 3, 4)] == flux[1, 2, 3, 4]
    np.testing.assert_array_equal(x[160:], [7, 8, 9])


def test_unflatten_round_trip_with_coords_and_units(state):
    x = np.random.default_rng(1).normal(size=state.size)
    ds = state.unflatten(x, name="flux_posterior")
    da = ds["flux_posterior"]
    assert da.dims == ("sector", "time", "y", "x")
    assert da.attrs["units"] == FLUX_UNITS
    assert list(ds.sector.values) == ["traffic", "buildings"]
    np.testing.assert_array_equal(ds.time.values, state.time.starts)
    np.testing.assert_array_equal(ds.time_bnds.values[:, 1], state.time.ends)
    assert ds.lat.shape == (4, 5)
    np.testing.assert_array_equal(ds["flux_posterior_background"].values, x[160:])
    back = state.flatten(da, {"background": ds["flux_posterior_background"].values})
    np.testing.assert_array_equal(back, x)
    # a transposed DataArray flattens to the same vector
    np.testing.assert_array_equal(
        state.flatten(da.transpose("x", "y", "time", "sector"), {"background": x[160:]}), x
    )


def test_flatten_rejects_wrong_shape_units_and_blocks(state):
    with pytest.raises(ValueError, match=r"expected shape \(sector, time, y, x\)"):
        state.flatten(np.zeros((2, 4, 5, 4)))
    da = state.unflatten(np.zeros(state.size))["flux"]
    da.attrs["units"] = "kg m-2 s-1"
    with pytest.raises(ValueError, match="expected units"):
        state.flatten(da)
    with pytest.raises(KeyError, match="unknown block 'bias'"):
        state.flatten(np.zeros(state.flux_shape), {"bias": [1.0]})
    with pytest.raises(ValueError, match="expected 3 values"):
        state.flatten(np.zeros(state.flux_shape), {"background": [1.0]})
    with pytest.raises(KeyError, match="does not exist"):
        state.slice("nope")
    with pytest.raises(ValueError, match="unique"):
        StateVector(state.grid, state.time, ["a", "a"])
