"""Assembly of H from footprint files: totals, time bins, thresholds, dask, cache, matching."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from inversion import Grid, StateVector, TimeAxis
from transport_models.footprints import FootprintError, read_footprint, write_footprint
from transport_models.operator import assemble_h, assemble_receptors, match_observations

FIX = Path(__file__).parents[2] / ".." / "shared" / "fixtures"
STILT = FIX / "stilt" / "pystilt_r_foot_201512100000_-112_40.5_5.nc"


@pytest.fixture(scope="module")
def fp():
    return read_footprint(STILT)


def test_uniform_flux_equals_footprint_sum(fp):
    total = fp.values.astype(np.float64).sum()
    for grid in (
        Grid.from_dataarray(fp),
        Grid.from_bounds("EPSG:4326", (-113, 39.5, -111, 41.5), 0.05),  # nests the 0.01° grid
    ):
        state = StateVector(grid, TimeAxis.regular("2015-12-09T12", "2015-12-10", "12h"))
        op = assemble_h([STILT], state, threshold=0.0)
        h, rep = op.H, op.assembly
        assert op.complete.all() and op.combination is None
        flux = np.ones(state.size)  # 1 µmol m-2 s-1 everywhere
        np.testing.assert_allclose(h @ flux, total, rtol=1e-10)
        assert rep.dropped_threshold == 0 and rep.outside_domain < 1e-12 * total


def test_time_bins_and_sectors(fp):
    grid = Grid.from_dataarray(fp)
    axis = TimeAxis.regular("2015-12-09T19", "2015-12-10T01", "2h")  # 18:00 layer falls outside
    state = StateVector(grid, axis, sectors=("a", "b"), extra={"bg": 1})
    op = assemble_receptors([STILT], state, threshold=0.0, scheduler="synchronous")
    x = op.H.toarray()[0]
    v = fp.values.astype(np.float64).reshape(6, -1)
    n = grid.size
    expect = np.concatenate([v[1] + v[2], v[3] + v[4], v[5]])  # layers 19-20, 21-22, 23
    for s in range(2):
        np.testing.assert_allclose(x[s * 3 * n : (s + 1) * 3 * n], expect, rtol=1e-12)
    assert x[-1] == 0.0
    np.testing.assert_allclose(op.report.outside_time, v[0].sum(), rtol=1e-12)


def test_threshold_drops_and_reports(fp):
    state = StateVector(Grid.from_dataarray(fp), TimeAxis.regular("2015-12-09", "2015-12-10", "1D"))
    thr = 1e-4
    op = assemble_receptors([STILT], state, threshold=thr, engine="numpy")
    v = fp.values.astype(np.float64).sum(axis=0)
    kept = v[v >= thr]
    assert op.H.nnz == kept.size
    np.testing.assert_allclose(
        op.report.dropped_threshold, v[(v > 0) & (v < thr)].sum(), rtol=1e-10
    )
    np.testing.assert_allclose(op.H.sum() + op.report.dropped_threshold, v.sum(), rtol=1e-10)


def _many(tmp_path: Path, fp: xr.DataArray, n: int) -> list[Path]:
    out = []
    small = fp.isel(y=slice(50, 90), x=slice(60, 100))
    for k in range(n):
        g = small.copy(data=small.values * (k + 1))
        g = g.assign_coords(receptor_time=g.receptor_time + np.timedelta64(k, "m"))
        out.append(write_footprint(g, tmp_path / f"fp_{k:03d}.nc"))
    return out


def test_dask_schedulers_and_engines_agree(tmp_path, fp):
    files = _many(tmp_path, fp, 5)
    grid = Grid.from_bounds("EPSG:4326", (-112.4, 40.0, -112.0, 40.4), 0.02)
    state = StateVector(grid, TimeAxis.regular("2015-12-09T12", "2015-12-10", "3h"))
    a = assemble_receptors(files, state, chunk_files=2, scheduler="threads")
    b = assemble_receptors(files, state, chunk_files=3, scheduler="synchronous", engine="numpy")
    assert a.H.shape == (5, state.size)
    np.testing.assert_allclose(a.H.toarray(), b.H.toarray(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.receptors["total"], b.receptors["total"], rtol=1e-12)


def test_assembly_reports_progress_per_chunk(tmp_path, fp, monkeypatch, caplog):
    # INFO lines "k/N chunks of F files done", throttled (0 s here: one per chunk)
    import transport_models.operator._assemble as asm

    monkeypatch.setattr(asm, "PROGRESS_SECONDS", 0.0)
    files = _many(tmp_path, fp, 5)
    grid = Grid.from_bounds("EPSG:4326", (-112.4, 40.0, -112.0, 40.4), 0.02)
    state = StateVector(grid, TimeAxis.regular("2015-12-09T12", "2015-12-10", "3h"))
    with caplog.at_level("INFO", logger=asm.__name__):
        assemble_receptors(files, state, chunk_files=2, scheduler="threads")
    lines = [m for m in caplog.messages if m.startswith("footprints: ")]
    assert [m.split(" chunks")[0] for m in lines] == [f"footprints: {k}/3" for k in (1, 2, 3)]
    assert "of 5 files done" in lines[-1]


def test_cache_reused_and_invalidated(tmp_path, fp, monkeypatch):
    files = _many(tmp_path, fp, 3)
    state = StateVector(
        Grid.from_dataarray(read_footprint(files[0])),
        TimeAxis.regular("2015-12-09", "2015-12-10", "6h"),
    )
    cache = tmp_path / "cache"
    first = assemble_receptors(files, state, cache_dir=cache, threshold=0.0)
    assert not first.report.from_cache and Path(first.report.cache_path).exists()
    import transport_models.operator._assemble as asm

    def boom(*a, **k):
        raise AssertionError("files were read although the cache is valid")

    monkeypatch.setattr(asm, "read_footprint", boom)
    second = assemble_receptors(files, state, cache_dir=cache, threshold=0.0)
    assert second.report.from_cache
    np.testing.assert_array_equal(second.H.toarray(), first.H.toarray())
    assert list(second.receptors["id"]) == list(first.receptors["id"])
    monkeypatch.undo()
    # changing an input (content and mtime) invalidates the cache
    g = read_footprint(files[1])
    write_footprint(g * 2, files[1])
    st = os.stat(files[1])
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = assemble_receptors(files, state, cache_dir=cache, threshold=0.0)
    assert not third.report.from_cache
    np.testing.assert_allclose(third.H.toarray()[1], 2 * first.H.toarray()[1], rtol=1e-6)
    # a different threshold is a different cache entry
    assert not assemble_receptors(files, state, cache_dir=cache, threshold=1e-3).report.from_cache


def test_match_towers_in_any_order_and_unmatched_receptor(tmp_path, fp):
    files = _many(tmp_path, fp, 3)
    state = StateVector(
        Grid.from_dataarray(read_footprint(files[0])),
        TimeAxis.regular("2015-12-09", "2015-12-10", "1D"),
    )
    t0 = np.datetime64("2015-12-10T00:00", "ns")
    obs = xr.Dataset(
        {
            "time": ("obs", t0 + np.array([2, 0, 1]) * np.timedelta64(1, "m")),
            "kind": ("obs", ["tower"] * 3),
            "lat": ("obs", [40.5, 40.5, 40.5]),
            "lon": ("obs", [-112.0, -112.0, -112.0]),
            "alt": ("obs", [5.0, 5.0, 5.0], {"reference": "agl"}),
        }
    )
    op = assemble_h(files, state, obs, threshold=0.0, time_tolerance="10s")
    hr = assemble_h(files, state, threshold=0.0).H
    np.testing.assert_allclose(op.H.toarray(), hr.toarray()[[2, 0, 1]])
    # a receptor without observation (shorter period, removed site) is counted, not fatal
    two = assemble_h(files, state, obs.isel(obs=[0, 1]), time_tolerance="10s", threshold=0.0)
    assert two.report["receptors"]["unmatched"] == 1 and two.complete.all()
    assert "fp_001" in two.report["receptors"]["unmatched_examples"][0]
    np.testing.assert_allclose(two.H.toarray(), hr.toarray()[[2, 0]])
    rec = assemble_receptors(files, state).receptors
    m = match_observations(rec, obs.assign(lat=obs.lat + 0.5))
    assert m.n_unmatched_receptors == 3 and not m.complete.any()
    # an observation without footprint is reported for the caller to drop
    extra = xr.concat(
        [obs, obs.isel(obs=[0]).assign(time=obs.time[:1] + np.timedelta64(1, "h"))], "obs"
    )
    op = assemble_h(files, state, extra, time_tolerance="10s", threshold=0.0)
    np.testing.assert_array_equal(op.complete, [True, True, True, False])
    assert op.H.shape[0] == 3
    assert op.report["observations"]["tower"]["reasons"]["no footprint receptor"] == 1


def test_domain_not_covered(fp):
    big = Grid.from_bounds("EPSG:4326", (-114, 39.5, -111, 41.5), 0.05)
    state = StateVector(big, TimeAxis.regular("2015-12-09", "2015-12-10", "1D"))
    with pytest.raises(FootprintError, match="uncovered") as err:
        assemble_h([STILT], state)
    assert f"worst: {STILT} (grid x -112.995 to -111.005, y 39.505 to 41.495" in str(err.value)
    rep = assemble_h([STILT], state, max_uncovered_area_fraction=0.5, threshold=0.0).assembly
    np.testing.assert_allclose(rep.max_uncovered_area_fraction, 1 / 3, rtol=1e-6)
    small = Grid.from_bounds("EPSG:4326", (-112.2, 40.3, -111.8, 40.7), 0.01)
    with pytest.raises(FootprintError, match="outside the inversion"):
        assemble_h([STILT], StateVector(small, state.time), max_outside_domain_fraction=0.01)


def test_bad_file_in_batch_names_it(tmp_path, fp):
    files = _many(tmp_path, fp, 2)
    bad = tmp_path / "fp_bad.nc"
    shutil.copy(files[0], bad)
    bad.write_bytes(bad.read_bytes()[:3000])
    state = StateVector(
        Grid.from_dataarray(read_footprint(files[0])),
        TimeAxis.regular("2015-12-09", "2015-12-10", "1D"),
    )
    with pytest.raises(FootprintError, match=r"fp_bad\.nc"):
        assemble_receptors([*files, bad], state, format="cityflux", scheduler="synchronous")
