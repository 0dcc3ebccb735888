"""Column readers: ACOS-GOSAT Lite (real file) and our generic / IPDA layouts."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest

import observations as obs

ACOS = "satellite/acos_LtCO2_090901_v205205_B9213A_200310212449s.nc4"


def test_acos_lite_values_flags_levels(fixtures_dir):
    path = fixtures_dir / ACOS
    ds = obs.read(path)
    with netCDF4.Dataset(path) as nc:
        x = nc["xco2"][:].astype("f8")
        qf = nc["xco2_quality_flag"][:]
        t = nc["time"][:]
        p = nc["pressure_levels"][:].astype("f8")
        ak = nc["xco2_averaging_kernel"][:].astype("f8")
    good = np.flatnonzero(qf == 0)
    assert ds.sizes["obs"] == good.size == 350
    assert obs.qc_report(ds).sources[0].dropped == {"quality flag != 0": int((qf != 0).sum())}
    order = np.argsort(t[good], kind="stable")  # output is in file order
    assert (order == np.arange(good.size)).all()
    for j in (0, 100, 349):
        i = good[j]
        assert ds["value"].values[j] == pytest.approx(x[i], abs=1e-9)
        # file is space -> surface; ours surface -> top
        np.testing.assert_allclose(ds["pressure"].values[j], p[i, ::-1], rtol=1e-7)
        np.testing.assert_allclose(ds["averaging_kernel"].values[j], ak[i, ::-1], rtol=1e-7)
        dt = ds["time"].values[j] - np.datetime64("1970-01-01")
        assert abs(dt / np.timedelta64(1, "s") - t[i]) < 1e-3
    assert (ds["pressure"].values[:, 0] > ds["pressure"].values[:, -1]).all()
    np.testing.assert_allclose(ds["pressure_weight"].sum("level"), 1.0, atol=1e-5)


def test_acos_domain_and_superobs(fixtures_dir):
    path = fixtures_dir / ACOS
    box = (-130.0, 20.0, -60.0, 55.0)
    single = obs.read(path, bbox=box)
    lat, lon = single["lat"].values, single["lon"].values
    assert ((lon >= -130) & (lon <= -60) & (lat >= 20) & (lat <= 55)).all()
    rep = obs.qc_report(single).sources[0]
    assert rep.read == 985 and rep.kept + rep.n_dropped == 985 and rep.dropped["outside domain"] > 0
    c = 0.3
    sup = obs.read(path, bbox=box, superobs=2.0, correlated_error=c)
    assert sup["count"].sum() == single.sizes["obs"]
    # reference: group by hand with numpy on the single soundings
    keys = np.stack([single["group"].values, np.floor(lat / 2.0), np.floor(lon / 2.0)], 1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    assert uniq.shape[0] == sup.sizes["obs"]
    big = int(np.argmax(sup["count"].values))
    # find the matching reference cell by value of the mean latitude
    n = sup["count"].values[big]
    cand = [k for k in range(uniq.shape[0]) if (inv == k).sum() == n]
    ref = [single["value"].values[inv == k].mean() for k in cand]
    assert np.min(np.abs(np.array(ref) - sup["value"].values[big])) < 1e-9
    k = cand[int(np.argmin(np.abs(np.array(ref) - sup["value"].values[big])))]
    u = single["err_instrument"].values[inv == k]
    expect = np.sqrt((np.mean(u**2) - c**2) / n + c**2)
    assert sup["err_instrument"].values[big] == pytest.approx(expect, rel=1e-12)
    sd = single["value"].values[inv == k].std(ddof=1)
    assert sup["err_representation"].values[big] == pytest.approx(sd / np.sqrt(n), rel=1e-9)


def test_operation_mode_absent_in_gosat(fixtures_dir):
    with pytest.raises(ValueError, match="operation_mode"):
        obs.read(fixtures_dir / ACOS, operation_modes=["SAM"])


def test_generic_column_and_ipda(data_dir):
    ds = obs.read(data_dir / "column_generic.nc", bbox=(-106, 39, -104, 41))
    rep = obs.qc_report(ds).sources[0]
    assert rep.dropped == {"quality flag != 0": 1, "outside domain": 1}
    np.testing.assert_allclose(ds["value"].values, [410, 411, 412, 413, 414, 415])
    with netCDF4.Dataset(data_dir / "column_generic.nc") as nc:
        p = nc["pressure"][0]
        ak = nc["averaging_kernel"][0]
    np.testing.assert_allclose(ds["pressure"].values[0], p[::-1])  # top->surface reversed
    np.testing.assert_allclose(ds["averaging_kernel"].values[0], ak[::-1])
    np.testing.assert_array_equal(ds["group"].values, [0, 0, 0, 0, 1, 1])  # two overpasses
    ip = obs.read(data_dir / "ipda_small.nc")
    np.testing.assert_allclose(ip["averaging_kernel"].values, 1.0)
    np.testing.assert_allclose(ip["co2_apriori"].values, 0.0)
    np.testing.assert_allclose(ip["pressure_weight"].sum("level"), 1.0, rtol=1e-12)
    assert (ip["kind"].values == "column").all()


def _lite_copy(fixtures_dir, tmp_path, name, edit):
    dst = tmp_path / name
    dst.write_bytes((fixtures_dir / ACOS).read_bytes())
    with netCDF4.Dataset(dst, "a") as nc:
        edit(nc)
    return dst


def test_lite_bad_uncertainty_and_weights_refused_naming_the_variable(fixtures_dir, tmp_path):
    """A negative xco2_uncertainty and pressure weights that do not sum to 1 are refused by the
    reader, naming the file and the variable (once a message without the file from the
    sampler, or an error component made positive)."""

    def neg(nc):
        u = nc["xco2_uncertainty"][:]
        u[5] = -u[5]
        nc["xco2_uncertainty"][:] = u

    p = _lite_copy(fixtures_dir, tmp_path, "neg.nc4", neg)
    with pytest.raises(ValueError, match=r"neg\.nc4: variable 'xco2_uncertainty' holds 1 negative"):
        obs.read(p)

    def double(nc):
        nc["pressure_weight"][:] = nc["pressure_weight"][:] * 2

    q = _lite_copy(fixtures_dir, tmp_path, "pw.nc4", double)
    with pytest.raises(ValueError, match=r"pw\.nc4: variable 'pressure_weight'.*do not sum to 1"):
        obs.read(q)


def test_lite_levels_surface_first_read_and_stated(fixtures_dir, tmp_path):
    """A Lite file whose levels are surface -> top (not the documented space -> surface) is
    read by its pressures, with the same result, and the order is stated in the QC report."""
    names = ("pressure_levels", "pressure_weight", "xco2_averaging_kernel", "co2_profile_apriori")

    def flip(nc):
        for n in names:
            nc[n][:] = nc[n][:][:, ::-1]

    ref = obs.read(fixtures_dir / ACOS)
    ds = obs.read(_lite_copy(fixtures_dir, tmp_path, "flip.nc4", flip))
    for v in ("pressure", "pressure_weight", "averaging_kernel", "co2_apriori"):
        np.testing.assert_array_equal(ds[v].values, ref[v].values)
    note = obs.qc_report(ds).sources[0].assumptions["level order"]
    assert note.startswith("surface -> top in the file")
    assert "level order" not in obs.qc_report(ref).sources[0].assumptions
