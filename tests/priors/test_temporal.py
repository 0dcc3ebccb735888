"""Temporal profiles: normalisation, local time, exact bin means, totals preserved."""

from __future__ import annotations

import numpy as np
import pytest

import priors
from inversion.grid import Grid
from inversion.state import TimeAxis
from priors import _profile_table
from priors._geometry import flux_on_grid

GRID = Grid.from_bounds("EPSG:32612", (0, 0, 3000, 2000), 1000.0)


def _flux(sectors=("road", "energy")):
    vals = np.arange(1, len(sectors) * GRID.size + 1, dtype=float).reshape(
        len(sectors), *GRID.shape
    )
    return flux_on_grid(
        vals, GRID, ("sector", "y", "x"), coords={"sector": ("sector", list(sectors))}
    )


def test_default_profiles_average_to_one_and_follow_table():
    p = priors.TemporalProfiles.default()
    for kind, n in (("hour", 24), ("dow", 7), ("month", 12)):
        for s in ("energy", "road", "residential", "industry", "total", "flat"):
            assert p.get(kind, s).mean() == pytest.approx(1.0, abs=1e-12)
            assert p.get(kind, s).size == n
    road = np.array(_profile_table.HOUR["road"])
    np.testing.assert_allclose(p.get("hour", "road"), road / road.mean(), rtol=1e-12)


def test_week_total_preserved_with_local_offset():
    # 7 whole days (UTC) inside June: hour × dow average exactly 1, month factor = June's
    t = TimeAxis.regular("2024-06-03", "2024-06-10", "1h")
    flux = _flux()
    out = priors.temporal_disaggregate(flux, t, utc_offset=-7)
    assert out.dims == ("sector", "time", "y", "x")
    p = priors.TemporalProfiles.default()
    tot = (out * t.seconds[None, :, None, None]).sum("time") / t.seconds.sum()
    for s in ("road", "energy"):
        np.testing.assert_allclose(
            tot.sel(sector=s), flux.sel(sector=s) * p.get("month", s)[5], rtol=1e-12
        )
    # hour in local time: UTC 15:00 on Mon 2024-06-03 is 08:00 local (road morning peak)
    i = int(np.flatnonzero(t.starts == np.datetime64("2024-06-03T15:00"))[0])
    expected = p.get("hour", "road")[8] * p.get("dow", "road")[0] * p.get("month", "road")[5]
    np.testing.assert_allclose(out.sel(sector="road").values[i], flux.sel(sector="road") * expected)


def test_bin_mean_not_start_value_and_timezone():
    # 6-hourly bins: factor is the mean of 6 hourly factors, not the start hour's factor
    t = TimeAxis.regular("2024-01-08", "2024-01-09", "6h")  # Monday, UTC
    f = priors.temporal_factors(t, ["road"], apply=("hour",), utc_offset=0)
    h = priors.TemporalProfiles.default().get("hour", "road")
    np.testing.assert_allclose(f[0], h.reshape(4, 6).mean(1), rtol=1e-12)
    # half-hour offset (India, +5:30): the bin 00:00–01:00 UTC spans local 05:30–06:30
    t1 = TimeAxis.regular("2024-01-08T00:00", "2024-01-08T01:00", "1h")
    f1 = priors.temporal_factors(t1, ["road"], apply=("hour",), timezone="Asia/Kolkata")
    np.testing.assert_allclose(f1[0, 0], 0.5 * (h[5] + h[6]), rtol=1e-12)
    # DST: New York in July is UTC-4
    t2 = TimeAxis.regular("2024-07-08T12:00", "2024-07-08T13:00", "1h")
    f2 = priors.temporal_factors(t2, ["road"], apply=("hour",), timezone="America/New_York")
    np.testing.assert_allclose(f2[0, 0], h[8], rtol=1e-12)


def test_normalize_over_period_preserves_total():
    t = TimeAxis.regular("2024-03-01T05:00", "2024-03-04T17:00", "3h")  # not whole days
    flux = _flux()
    out = priors.temporal_disaggregate(flux, t, utc_offset=1, normalize_over_period=True)
    tot = (out * t.seconds[None, :, None, None]).sum("time")
    np.testing.assert_allclose(tot, flux * t.seconds.sum(), rtol=1e-12)


def test_user_csv_profile_must_average_to_one(tmp_path):
    rows = ["sector,profile,index,factor"]
    rows += [f"road,hour,{h},{1.2 if h < 12 else 0.8}" for h in range(24)]
    rows += [f"road,dow,{d},1.0" for d in range(7)]
    good = tmp_path / "good.csv"
    good.write_text("\n".join(rows) + "\n")
    p = priors.TemporalProfiles.from_csv(good)
    np.testing.assert_allclose(p.get("hour", "road")[:12], 1.2)
    np.testing.assert_allclose(p.get("month", "road"), 1.0)  # not given -> flat
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(rows).replace("road,hour,0,1.2", "road,hour,0,1.3") + "\n")
    with pytest.raises(priors.ProfileError, match=r"average to 1.*found mean 1\.00416"):
        priors.TemporalProfiles.from_csv(bad)
    short = tmp_path / "short.csv"
    short.write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(priors.ProfileError, match=r"indices 0\.\.6"):
        priors.TemporalProfiles.from_csv(short)


def test_unknown_sector_and_monthly_records():
    t = TimeAxis.regular("2023-01-02", "2023-01-09", "1h")
    with pytest.raises(KeyError, match="no temporal profile for sectors"):
        priors.temporal_disaggregate(_flux(("aviation",)), t)
    out = priors.temporal_disaggregate(_flux(("aviation",)), t, profile_for={"aviation": "flat"})
    np.testing.assert_allclose(
        out.values, np.broadcast_to(_flux(("aviation",)).values[:, None], out.shape), rtol=1e-12
    )
    # monthly records (ODIAC-like): hour and dow only, total over whole week preserved
    flux = _flux(("total",)).expand_dims(time=[np.datetime64("2023-01-01", "ns")])
    flux = flux.transpose("sector", "time", "y", "x")
    flux = flux.assign_coords(time_end=("time", [np.datetime64("2023-02-01", "ns")]))
    out = priors.temporal_disaggregate(flux, t, utc_offset=-7)
    assert out.attrs["temporal_profiles"] == "hour,dow"
    tot = (out * t.seconds[None, :, None, None]).sum("time")
    np.testing.assert_allclose(tot, flux.isel(time=0) * t.seconds.sum(), rtol=1e-12)
    late = TimeAxis.regular("2023-01-31T12:00", "2023-02-01T12:00", "1h")
    with pytest.raises(ValueError, match="not inside one inventory record"):
        priors.temporal_disaggregate(flux, late)
