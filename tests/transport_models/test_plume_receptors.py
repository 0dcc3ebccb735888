"""Column and lidar receptors, engines and bad inputs of the plume model."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
from plume_builders import T0, city_grid, day_axis, met, obs_set

from transport_models.plume import PlumeMet, PlumeOptions, footprint, plume_operator

R_DRY, G0 = 287.05, 9.80665


def _column_obs(grid, p, pw, ak):
    lon, lat = grid.to_lonlat(1250.0, -300.0)
    return obs_set("column", lon, lat, 1300.0, pressure=p, pressure_weight=pw, averaging_kernel=ak)


def _chord(grid, x0, y0, z0, x1, y1, z1, kind="lidar_path"):
    lo0, la0 = grid.to_lonlat(x0, y0)
    lo1, la1 = grid.to_lonlat(x1, y1)
    return obs_set(kind, lo0, la0, z0, lat0=la0, lon0=lo0, alt0=z0, lat1=la1, lon1=lo1, alt1=z1)


def test_chord_is_mean_of_point_footprints_and_reversible():
    grid = city_grid(12, 1000.0)
    m = met(wind_direction=240.0)
    ends = (-2300.0, 800.0, 40.0, 3100.0, 1900.0, 250.0)  # slant chord
    row = footprint(_chord(grid, *ends), grid, day_axis(), m).values[0]
    x0, y0, z0, x1, y1, z1 = ends
    # documented sampling rule: along the WGS84 geodesic, height linear in distance, n equal
    # pieces of at most 0.25 cell (and at least 5), one sample in the middle of each
    lo0, la0 = grid.to_lonlat(x0, y0)
    lo1, la1 = grid.to_lonlat(x1, y1)
    geod = pyproj.Geod(ellps="WGS84")
    az, _, dist = geod.inv(lo0, la0, lo1, la1)
    length = math.hypot(dist, z1 - z0)
    n = max(5, math.ceil(length / (0.25 * 1000.0)))
    f = (np.arange(n) + 0.5) / n
    lon, lat, _ = geod.fwd(np.full(n, lo0), np.full(n, la0), np.full(n, az), f * dist)
    pts = footprint(obs_set(["tower"] * n, lon, lat, z0 + f * (z1 - z0)), grid, day_axis(), m)
    expect = pts.values.mean(axis=0)
    np.testing.assert_allclose(row, expect, rtol=1e-9, atol=1e-12 * expect.max())
    # a horizontal chord and its reverse give the same row
    fwd = _chord(grid, -2000.0, -500.0, 60.0, 2500.0, 1500.0, 60.0)
    rev = _chord(grid, 2500.0, 1500.0, 60.0, -2000.0, -500.0, 60.0, kind="lidar_profile")
    H = plume_operator(fwd, grid, day_axis(), m).toarray()
    Hr = plume_operator(rev, grid, day_axis(), m).toarray()
    assert H.max() > 0
    np.testing.assert_allclose(Hr, H, rtol=1e-9, atol=1e-14 * H.max())  # geodesic rounding


@pytest.mark.parametrize("options", [PlumeOptions(), PlumeOptions(cell_model="area", subcell=2)])
def test_numba_equals_numpy(options):
    grid = city_grid(10, 1000.0)
    m = met(
        wind_direction=np.linspace(180.0, 330.0, 24),
        stability=list("ABCDEF") * 4,
        boundary_layer_height=np.linspace(300.0, 1500.0, 24),
    )
    lon, lat = grid.to_lonlat([1500.0, -700.0, 3000.0], [2000.0, -2500.0, 0.0])
    towers = obs_set(
        ["tower"] * 3, lon, lat, [50.0, 10.0, 120.0], time=T0 + np.array([0, 7, 20], "m8[h]")
    )
    p = np.array([[1000.0, 950.0, 900.0, 700.0]])
    col = _column_obs(grid, p, np.full((1, 4), 0.25), np.ones((1, 4)))
    chord = _chord(grid, -3000.0, -3000.0, 30.0, 3500.0, 2800.0, 400.0)
    for ds in (towers, col, chord):
        a = footprint(ds, grid, day_axis(), m, engine="numba", options=options).values
        b = footprint(ds, grid, day_axis(), m, engine="numpy", options=options).values
        assert a.max() > 0
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * a.max())


def test_sparse_layout_sectors_and_time_bins():
    from inversion import StateVector

    grid, time = city_grid(8, 1000.0), day_axis()
    m = met()
    lon, lat = grid.to_lonlat([2500.0, 2500.0], [300.0, -300.0])
    obs = obs_set(["tower"] * 2, lon, lat, 50.0, time=T0 + np.array([1, 13], "m8[h]"))
    fp = footprint(obs, grid, time, m).values.reshape(2, -1)
    sv = StateVector(grid, time, sectors=("a", "b"), extra={"background": 2})
    H = plume_operator(obs, grid, time, m, sectors=sv)
    assert H.shape == (2, sv.n_flux) and H.format == "csr"
    dense = H.toarray().reshape(2, 2, time.nt, grid.size)
    for i, tbin in enumerate([0, 2]):
        for s in range(2):
            np.testing.assert_array_equal(dense[i, s, tbin], fp[i])
        others = np.delete(dense[i], tbin, axis=1)
        assert not others.any()
    # threshold drops small entries only
    Ht = plume_operator(obs, grid, time, m, threshold=0.5 * fp.max())
    assert 0 < Ht.nnz < H.nnz / 2
    assert Ht.data.min() > 0.5 * fp.max()


# ------------------------------------------------------------------------------ bad inputs
def test_receptor_outside_grid_is_named():
    grid = city_grid(6, 1000.0)
    lon, lat = grid.to_lonlat([0.0, 9000.0], [0.0, 0.0])
    obs = obs_set(["tower"] * 2, lon, lat, 50.0, site=["in", "far"])
    with pytest.raises(ValueError, match=r"outside the grid.*obs 1 \(site 'far'"):
        plume_operator(obs, grid, day_axis(), met())


def test_zero_length_chord_is_named():
    grid = city_grid(6, 1000.0)
    obs = _chord(grid, 100.0, 100.0, 50.0, 100.0, 100.0, 50.0)
    with pytest.raises(ValueError, match=r"zero length.*obs 0 \(site 's0', kind 'lidar_path'"):
        plume_operator(obs, grid, day_axis(), met())


def test_non_positive_wind_names_the_hour():
    speeds = np.full(24, 3.0)
    speeds[5] = 0.0
    with pytest.raises(ValueError, match=r"wind_speed.*2024-07-01T05:00.*record 5"):
        met(wind_speed=speeds)
    with pytest.raises(ValueError, match="wind_speed"):
        PlumeMet(T0, -1.0, 270.0, 500.0, "D")


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("wind_speed", 150.0, "<= 100 m s-1"),
        ("boundary_layer_height", 50000.0, "<= 10000 m"),
        ("pressure", 101325.0, "not Pa"),
        ("temperature", 15.0, "not degrees Celsius"),
    ],
)
def test_impossible_met_and_units_mistakes_named(name, value, text):
    """Physically impossible met values (a pressure in Pa, a temperature in degrees Celsius,
    a 50 km mixing height) are refused naming the variable and the hour."""
    args = {"wind_speed": 3.0, "boundary_layer_height": 500.0, "pressure": 1000.0,
            "temperature": 290.0, name: value}  # fmt: skip
    with pytest.raises(ValueError, match=rf"PlumeMet\.{name}: expected .*{text}.*found {value}"):
        PlumeMet(T0, args["wind_speed"], 270.0, args["boundary_layer_height"], "D",
                 pressure=args["pressure"], temperature=args["temperature"])  # fmt: skip


def test_empty_receptor_set():
    grid = city_grid(6, 1000.0)
    obs = obs_set("tower", 0.0, 0.0, 10.0).isel(obs=slice(0, 0))
    with pytest.raises(ValueError, match="empty"):
        plume_operator(obs, grid, day_axis(), met())


def test_time_outside_axis_or_met_is_named():
    grid = city_grid(6, 1000.0)
    lon, lat = grid.to_lonlat(0.0, 0.0)
    late = obs_set("tower", lon, lat, 50.0, time=np.datetime64("2024-07-02T03:00"), site="X")
    with pytest.raises(ValueError, match=r"outside the state time axis.*obs 0 \(site 'X'"):
        plume_operator(late, grid, day_axis(), met())
    evening = obs_set("tower", lon, lat, 50.0, time=np.datetime64("2024-07-01T20:30"), site="Y")
    with pytest.raises(ValueError, match=r"met: no hourly record.*obs 0 \(site 'Y'"):
        plume_operator(evening, grid, day_axis(), met(hours=12))


def test_other_bad_arguments():
    grid = city_grid(6, 1000.0)
    lon, lat = grid.to_lonlat(0.0, 0.0)
    obs = obs_set("tower", lon, lat, 50.0)
    with pytest.raises(ValueError, match="dispersion"):
        plume_operator(obs, grid, day_axis(), met(), dispersion="pasquill")
    with pytest.raises(ValueError, match="engine"):
        plume_operator(obs, grid, day_axis(), met(), engine="cuda")
    with pytest.raises(ValueError, match="stability"):
        met(stability="G")
    with pytest.raises(ValueError, match="below ground"):
        plume_operator(obs_set("tower", lon, lat, -5.0), grid, day_axis(), met())
    col = obs_set("column", lon, lat, 0.0, pressure_weight=np.ones((1, 2)))
    with pytest.raises(KeyError, match="pressure"):
        plume_operator(col, grid, day_axis(), met())
