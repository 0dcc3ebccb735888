"""ObservationSet construction, combine, scale warnings, correlation groups, backgrounds."""

from __future__ import annotations

import json

import numpy as np
import pytest

import observations as obs


def _tower(site, values, scale="WMO CO2 X2019", hours=None):
    n = len(values)
    t0 = np.datetime64("2020-06-01T00:30")
    t = hours if hours is not None else t0 + np.arange(n) * np.timedelta64(1, "h")
    return obs.make_observation_set(
        value=values, time=t, kind="tower", site=site, lat=40.0, lon=-105.0, alt=100.0,
        errors={"instrument": 0.3, "transport": 2.0},
        extras={"scale": np.full(n, scale), "group": np.zeros(n, int)},
    )  # fmt: skip


def test_make_observation_set_defaults_and_total_error():
    ds = _tower("A", [400.0, 401.0])
    np.testing.assert_allclose(ds["err_calibration"].values, 0.0)  # missing -> 0, not NaN
    np.testing.assert_allclose(obs.total_error(ds).values, np.hypot(0.3, 2.0))
    assert ds["value"].dtype == np.float64 and ds["time"].dtype == "datetime64[ns]"
    with pytest.raises(ValueError, match="non-finite"):
        obs.make_observation_set([np.nan], "2020-01-01", "tower", "A", 0, 0, 0, {"instrument": 1})
    with pytest.raises(ValueError, match="zero total error"):
        obs.make_observation_set([400.0], "2020-01-01", "tower", "A", 0, 0, 0)
    with pytest.raises(ValueError, match="unknown kind"):
        obs.make_observation_set([400.0], "2020-01-01", "ship", "A", 0, 0, 0, {"instrument": 1})


def test_validate_units_and_missing():
    ds = _tower("A", [400.0])
    bad = ds.copy()
    bad["value"].attrs["units"] = "ppb"
    with pytest.raises(obs.UnitsError, match="ppb"):
        obs.validate_observation_set(bad)
    with pytest.raises(KeyError, match="err_transport"):
        obs.validate_observation_set(ds.drop_vars("err_transport"))


def test_combine_groups_scales_and_levels(data_dir, fixtures_dir):
    a = _tower("A", [400.0, 401.0])
    b = _tower("B", [402.0], scale="WMO CO2 X2007")
    col = obs.read(data_dir / "column_generic.nc")
    with pytest.warns(obs.ScaleMismatchWarning, match="X2007"):
        out = obs.combine([a, b, col])
    assert out.sizes["obs"] == 3 + col.sizes["obs"]
    assert "X2007" in json.loads(out.attrs["warnings"])[0]
    g = out["group"].values
    assert g[0] == g[1] and g[2] != g[0] and not set(g[3:]) & {g[0], g[2]}
    assert out["alt"].attrs["reference"] == "mixed"
    assert list(out["alt_reference"].values[:3]) == ["agl"] * 3
    assert np.isnan(out["averaging_kernel"].values[:3]).all()
    np.testing.assert_allclose(out["averaging_kernel"].values[3:], col["averaging_kernel"].values)
    assert len(obs.qc_report(out).sources) == 1  # only the read set carried a report


def test_combine_species_mismatch(fixtures_dir):
    ch4 = obs.read(fixtures_dir / "insitu/ch4_bao_tower-insitu_1_ccgg_all.nc", species="ch4")
    with pytest.raises(ValueError, match="species"):
        obs.combine([ch4, _tower("A", [400.0])])


def test_combine_refuses_records_held_twice(fixtures_dir, tmp_path):
    """The same records in two sets (a file listed twice, or a copy) would count twice: refused
    naming the sources; the same site at other times is combined."""
    a = obs.read(fixtures_dir / "insitu/co2_htm_tower-insitu_424_allvalid-150magl_small.nc")
    with pytest.raises(ValueError, match=r"100 observation records appear in more than one"):
        obs.combine([a, a.copy()])
    early, late = _tower("A", [400.0, 401.0]), _tower("A", [402.0])
    late["time"] = late["time"] + np.timedelta64(5, "h")
    assert obs.combine([early, late]).sizes["obs"] == 3
    with pytest.raises(ValueError, match=r"site 'A' at 2020-06-01T00:30:00"):
        obs.combine([early, _tower("A", [399.0])])


def test_correlation_groups():
    a = _tower("A", [400.0, 401.0, 402.0])
    out = obs.combine([a, _tower("B", [1.0, 2.0])])
    cg = obs.correlation_groups(out, lengths={"tower": 5.0})
    np.testing.assert_array_equal(cg.group, [0, 0, 0, 1, 1])
    np.testing.assert_allclose(cg.length, 5.0)
    assert set(cg.unit) == {"h"}
    blocks = cg.blocks()
    assert [b.tolist() for b in blocks] == [[0, 1, 2], [3, 4]]


def test_set_errors_per_kind(data_dir):
    out = obs.combine([_tower("A", [400.0]), obs.read(data_dir / "lidar_path.csv")])
    new = obs.set_errors(out, transport={"lidar_path": 1.5}, calibration=0.1)
    np.testing.assert_allclose(new["err_transport"].values, [2.0] + [1.5] * 5)
    np.testing.assert_allclose(new["err_calibration"].values, 0.1)


def test_background_upwind():
    t = np.datetime64("2020-06-01T00:30") + np.arange(3) * np.timedelta64(1, "h")
    up = _tower("UP", [400.0, 401.0, 402.0], hours=t)
    city = _tower("CITY", [410.0, 415.0], hours=t[[0, 2]])
    extra = _tower("CITY", [420.0], hours=np.array([t[2] + np.timedelta64(5, "h")]))
    both = obs.combine([up, city, extra])
    enh = obs.background_upwind(both, "UP")
    np.testing.assert_allclose(enh["value"].values, [10.0, 13.0])
    np.testing.assert_allclose(enh["err_background"].values, np.hypot(0.3, 2.0))
    rep = obs.qc_report(enh).sources[-1]
    assert rep.dropped == {"background site itself": 3, "no background available": 1}


def test_background_quantile():
    rng = np.random.default_rng(0)
    v = 400 + rng.uniform(0, 10, 48)
    t = np.datetime64("2020-06-01T00:30") + np.arange(48) * np.timedelta64(1, "h")
    ds = _tower("A", v, hours=t)
    out = obs.background_quantile(ds, 0.1, window="1D")
    for day in range(2):
        sl = slice(24 * day, 24 * day + 24)
        bg = np.quantile(v[sl], 0.1)  # numpy linear interpolation = pandas default
        np.testing.assert_allclose(out["background"].values[sl], bg, rtol=1e-12)
        np.testing.assert_allclose(out["value"].values[sl], v[sl] - bg, rtol=1e-12)
        low = v[sl][v[sl] <= bg]
        assert low.size >= 2  # 24 values: 3 below the 10th percentile
        np.testing.assert_allclose(out["err_background"].values[sl], low.std(ddof=1))


def test_background_quantile_small_windows_keep_their_values():
    # 5 afternoon values a day: one value is below the 10th percentile, so the spread is taken
    # over the two lowest; no window is lost (the old default dropped every one)
    rng = np.random.default_rng(1)
    v = 400 + rng.uniform(0, 10, 10)
    t = np.concatenate([np.datetime64(f"2020-06-0{d}T12:30") + np.arange(5) * np.timedelta64(1, "h")
                        for d in (1, 2)])  # fmt: skip
    out = obs.background_quantile(_tower("A", v, hours=t), 0.1, window="1D", min_count=5)
    assert out.sizes["obs"] == 10
    for day in range(2):
        sl = slice(5 * day, 5 * day + 5)
        two = np.sort(v[sl])[:2]
        np.testing.assert_allclose(out["err_background"].values[sl], two.std(ddof=1))
        np.testing.assert_allclose(out["background"].values[sl], np.quantile(v[sl], 0.1))


def test_background_curtain_hook():
    ds = _tower("A", [400.0, 401.0])
    out = obs.background_curtain(ds, lambda d: (np.array([399.0, np.nan]), np.array([0.5, 0.5])))
    np.testing.assert_allclose(out["value"].values, [1.0])
    assert obs.qc_report(out).sources[-1].dropped == {"no background available": 1}
    with pytest.raises(ValueError, match="shapes"):
        obs.background_curtain(ds, lambda d: (np.zeros(3), np.zeros(3)))
