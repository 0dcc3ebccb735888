"""Lateral-boundary blocks from NAME particle-location files, against a netCDF4 + numpy parse."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xarray as xr

import observations
from inversion import Grid, StateVector, TimeAxis
from transport_models import (
    FootprintError,
    add_block,
    assemble_h,
    boundary_operator,
    read_boundary_sensitivity,
    read_footprint,
)

NAME = Path(__file__).parents[2] / ".." / "shared" / "fixtures" / "name"
FILES = [
    NAME / "openghg_TAC-100magl_UKV_co2_TEST_201407.nc",
    NAME / "openghg_TAC-100magl_UKV_TEST_201607.nc",
    NAME / "openghg_MHD-10magl_NAME_UKV_TEST_inert_PARIS-format_201301.nc",
]
SIDES = "nesw"


def parse(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times (n_t,), heights (n_h,), fractions (n_t, 4 sides, n_h)) read with netCDF4 alone."""
    with netCDF4.Dataset(path) as nc:
        tv = nc["time"]
        times = np.array(
            [np.datetime64(d.isoformat(), "ns") for d in netCDF4.num2date(tv[:], tv.units)]
        )
        heights = np.asarray(nc["height"][:], float)
        out = np.zeros((times.size, 4, heights.size))
        for k, s in enumerate(SIDES):
            var = nc[f"particle_locations_{s}"]
            a = np.asarray(var[:], float)
            dims = list(var.dimensions)
            along = [i for i, d in enumerate(dims) if d not in ("time", "height")]
            a = a.sum(axis=tuple(along))
            kept = [d for d in dims if d in ("time", "height")]
            out[:, k, :] = a if kept == ["time", "height"] else a.T
    return times, heights, out


@pytest.fixture(scope="module")
def parsed():
    return [parse(f) for f in FILES]


def test_block_per_side_band_window_equals_hand_computation(parsed):
    times = np.concatenate([p[0] for p in parsed])
    frac = np.concatenate([p[2] for p in parsed])  # (n_rec, 4, n_h)
    heights = parsed[0][1]
    assert all(np.array_equal(p[1], heights) for p in parsed)
    n_rec, n_obs = times.size, 7
    rng = np.random.default_rng(4)
    c = sp.random(n_obs, n_rec, density=0.2, random_state=rng).toarray()
    c[:, rng.choice(n_rec, 20, replace=False)] = 0.0  # receptors no observation uses
    bands = [0.0, 2000.0, 6000.0, np.inf]
    block, labels = boundary_operator(FILES, sp.csr_array(c), times, bands=bands, window="1D")
    day = times.astype("datetime64[D]").astype("datetime64[ns]")
    used = c.any(axis=0)
    days = np.unique(day[used])
    band_of = np.searchsorted(bands, heights, side="right") - 1
    expect, names = [], []
    for d in days:
        for k, s in enumerate(SIDES):
            for b, name in enumerate(["0m-2000m", "2000m-6000m", "6000m-top"]):
                per_rec = frac[:, k, band_of == b].sum(axis=1) * (day == d)
                expect.append(c @ per_rec)
                names.append(f"{s}_{name}_{np.datetime_as_string(d, unit='m')}")
    assert labels == names
    np.testing.assert_allclose(block.toarray(), np.array(expect).T, rtol=1e-12, atol=1e-15)
    assert block.toarray().max() > 0
    # one band, one window: the total fraction per side
    total, lab = boundary_operator(FILES, sp.csr_array(c), times, window=None)
    assert lab == list(SIDES)
    np.testing.assert_allclose(total.toarray(), c @ frac.sum(axis=2), rtol=1e-12, atol=1e-15)
    # dot-product test of the block
    x, y = rng.normal(size=block.shape[1]), rng.normal(size=n_obs)
    assert (block @ x) @ y == pytest.approx(x @ (block.T @ y), rel=1e-12)


def test_fraction_checks_name_the_file(parsed):
    da = read_boundary_sensitivity(FILES[1], resolve="side_height")
    t, n = da["receptor_time"].values, da.sizes["receptor"]
    eye = sp.csr_array(np.eye(n))
    bad = da.copy(data=da.values * 30.0)  # sums above 1: counts, not fractions
    bad.attrs["source_file"] = "bogus_counts.nc"
    with pytest.raises(FootprintError, match=r"bogus_counts\.nc.*not particle fractions.*summing"):
        boundary_operator([bad], eye, t)
    neg = da.copy(data=da.values - 0.01)
    with pytest.raises(FootprintError, match="not particle fractions"):
        boundary_operator([neg], eye, t)
    with pytest.raises(FootprintError, match=r"same order"):
        boundary_operator([da], eye, t + np.timedelta64(1, "h"))
    with pytest.raises(FootprintError, match="combination has"):
        boundary_operator([da], sp.csr_array(np.eye(n + 1)), np.concatenate([t, t[:1]]))
    with pytest.raises(FootprintError, match="more receptors"):
        boundary_operator([da, da], sp.csr_array(np.eye(n + 1)), np.concatenate([t, t[:1]]))
    with pytest.raises(ValueError, match="outside the bands"):
        boundary_operator([da], eye, t, bands=[0.0, 5000.0])
    side_only = read_boundary_sensitivity(FILES[1])
    with pytest.raises(ValueError, match="curtain heights"):
        boundary_operator([side_only], eye, t, bands=[0.0, np.inf])
    block, labels = boundary_operator([side_only], eye, t, window="6h")
    assert labels[:4] == ["n_2016-07-01T00:00", "e_2016-07-01T00:00", "s_2016-07-01T00:00",
                          "w_2016-07-01T00:00"]  # fmt: skip
    np.testing.assert_allclose(block.toarray().sum(1), parsed[1][2].sum(axis=(1, 2)), rtol=1e-6)


def test_with_matched_footprints_into_a_state(parsed):
    """NAME footprints matched to tower observations, the boundary block placed in the state."""
    path = FILES[1]
    times = parsed[1][0]
    fp = read_footprint(path)
    grid = Grid.from_dataarray(fp)
    axis = TimeAxis.regular(
        pd.Timestamp(times[0]).floor("D") - pd.Timedelta("1D"),
        pd.Timestamp(times[-1]).ceil("D"),
        "1D",
    )
    lat, lon = (
        float(fp["receptor_lat"].values.ravel()[0]),
        float(fp["receptor_lon"].values.ravel()[0]),
    )
    obs = observations.make_observation_set(
        value=np.full(2, 400.0), time=times[[2, 0]], kind="tower", site="TAC", lat=lat, lon=lon,
        alt=100.0, errors={"instrument": 0.5},
    )  # fmt: skip
    op = assemble_h([path], StateVector(grid, axis), obs, threshold=0.0)
    assert op.complete.all() and op.report["receptors"]["unmatched"] == 1
    block, labels = boundary_operator([path], op.combination, op.receptors["time"].to_numpy())
    state = StateVector(grid, axis, extra={"boundary": labels})
    h = sp.csr_array(sp.hstack([op.H, sp.csr_array((2, state.size - op.H.shape[1]))]))
    full = add_block(h, state, "boundary", block[np.flatnonzero(op.complete)])
    sides = parsed[1][2].sum(axis=2)  # (n_t, 4)
    got = full.toarray()[:, state.slice("boundary")]
    assert labels == [f"{s}_{np.datetime_as_string(times[0], unit='D')}T00:00" for s in SIDES]
    np.testing.assert_allclose(got, sides[[2, 0]], rtol=1e-6)  # float32 file values
    assert isinstance(op.receptors, pd.DataFrame) and isinstance(fp, xr.DataArray)
