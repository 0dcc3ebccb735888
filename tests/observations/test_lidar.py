"""Lidar readers on the fixtures of FORMATS.md."""

from __future__ import annotations

import numpy as np
import pytest

import observations as obs


@pytest.mark.parametrize("name", ["lidar_path.csv", "lidar_path.nc"])
def test_lidar_path(data_dir, name):
    ds = obs.read(data_dir / name)
    assert obs.detect_format(data_dir / name) == "lidar_path"
    np.testing.assert_allclose(ds["value"].values, [415, 416, 417, 418, 419])
    np.testing.assert_allclose(ds["lat"].values, (40.0 + 40.0 + 0.01 * np.arange(1, 6)) / 2)
    np.testing.assert_allclose(ds["alt"].values, 1625.0)
    assert ds["alt"].attrs["reference"] == "asl"
    assert ds["time"].values[0] == np.datetime64(1_500_000_015, "s")  # midpoint of 30 s
    np.testing.assert_array_equal(ds["group"].values, [0, 0, 0, 1, 1])
    assert obs.qc_report(ds).sources[0].dropped == {"quality flag != 0": 1}


def test_lidar_profile_geometry(data_dir):
    ds = obs.read(data_dir / "lidar_profile.nc")
    assert ds.sizes["obs"] == 7
    np.testing.assert_allclose(ds["value"].values[:4], 420 + 0.1 * np.arange(4))
    # due east at elevation 0: dlon = r / (R cos(lat)), latitude unchanged
    r = ds["range_end"].values
    dlon = np.rad2deg(r / (6_371_000.0 * np.cos(np.deg2rad(40.0))))
    np.testing.assert_allclose(ds["lon1"].values, -105.0 + dlon, rtol=1e-12)
    np.testing.assert_allclose(ds["lat1"].values, 40.0)
    np.testing.assert_allclose(ds["range_end"].values - ds["range_start"].values, 500.0)
    np.testing.assert_array_equal(ds["group"].values, [0, 0, 0, 0, 1, 1, 1])
