"""Format variants in real use (observations/FORMATS.md): each read, checked against an
independent netCDF4 parse of the same file, or refused with a message naming file and cause."""

from __future__ import annotations

import shutil

import netCDF4
import numpy as np
import pytest
from nc_edit import rewrite

import observations as obs
from ingest import FormatDetectionError, ReaderOptionError

HTM = "insitu/co2_htm_tower-insitu_424_allvalid-150magl_small.nc"
BAO = "insitu/ch4_bao_tower-insitu_1_ccgg_all.nc"
OGHG = "columns/openghg_gosat-fts_gosat_20160101_ch4-column.nc"
TCCON = "pa20190701_20190701.public.qc.nc"
OCO3 = "oco3_LtCO2_200505_B10400Br_test.nc4"


def _raw(path, name):
    with netCDF4.Dataset(path) as nc:
        return np.ma.filled(nc[name][:].astype("f8"), np.nan)


# ---------------------------------------------------------------- ObsPack variants
def test_obspack_allvalid_without_flag_variable(fixtures_dir, tmp_path):
    src = fixtures_dir / HTM
    p = rewrite(src, tmp_path / "co2_htm_allvalid_noflag.nc", drop=["qc_flag"])
    ds = obs.read(p)
    assert ds.sizes["obs"] == 100
    np.testing.assert_allclose(ds["value"].values, _raw(src, "value") * 1e6, rtol=1e-12)
    note = obs.qc_report(ds).sources[0].assumptions["qc_flag"]
    assert "no flag variable" in note and "allvalid-150.0magl" in note
    # a file that does not say it holds valid data only is refused, naming what to do
    bare = rewrite(src, tmp_path / "noflag.nc", drop=["qc_flag"],
                   attrs={"/": {"dataset_selection_tag": "all", "dataset_name": "x",
                                "dataset_selection": "all hourly data"}})  # fmt: skip
    with pytest.raises(obs.MissingVariableError, match=r"noflag\.nc.*assume_valid=True"):
        obs.read(bare)
    ok = obs.read(bare, assume_valid=True)
    assert "option assume_valid" in obs.qc_report(ok).sources[0].assumptions["qc_flag"]


@pytest.mark.parametrize("source", ["time_components", "time_decimal", "datetime"])
def test_obspack_time_stamp_from_other_comments(fixtures_dir, tmp_path, source):
    src = fixtures_dir / HTM
    others = [v for v in ("time_components", "time_decimal", "datetime") if v != source]
    attrs = {"time": {"comment": None}, **{v: {"comment": None} for v in others}}
    p = rewrite(src, tmp_path / "nocomment.nc", attrs=attrs)
    ds = obs.read(p)
    t = _raw(src, "time").astype("int64")
    # the other comment says "beginning of the averaging interval": +30 min to the midpoint
    assert ds["time"].values[5] == np.datetime64(int(t[5]), "s") + np.timedelta64(30, "m")
    note = obs.qc_report(ds).sources[0].assumptions["time_stamp"]
    assert note == f"start of the averaging interval (from the comment of variable {source!r})"


def test_obspack_time_stamp_midpoint_and_unknown(fixtures_dir, tmp_path):
    src = fixtures_dir / HTM
    mid = "Time-averaged values are reported at the midpoint of the averaging interval."
    p = rewrite(src, tmp_path / "mid.nc", attrs={"time": {"comment": mid}})  # GV+ v8 wording
    ds = obs.read(p)
    t = _raw(src, "time").astype("int64")
    # no shift: stamps are midpoints, and one record per hour keeps its own time
    np.testing.assert_array_equal(
        ds["time"].values, t.astype("datetime64[s]").astype("datetime64[ns]")
    )
    none = {v: {"comment": None} for v in ("time", "time_components", "time_decimal", "datetime")}
    q = rewrite(src, tmp_path / "silent.nc", attrs=none)
    with pytest.raises(ValueError, match=r"silent\.nc.*time_stamp='start'"):
        obs.read(q)
    assert obs.read(q, time_stamp="end")["time"].values[0] == np.datetime64(
        int(t[0]), "s"
    ) - np.timedelta64(30, "m")


def test_obspack_std_sentinel_and_missing_uncertainty(fixtures_dir, tmp_path):
    src = fixtures_dir / HTM

    def sentinel(nc):
        v = nc["value_std_dev"][:]
        v[:10] = -9.99e-6  # -9.99 ppm: a sentinel that is not the _FillValue (NaN)
        nc["value_std_dev"][:] = v

    p = rewrite(src, tmp_path / "sentinel.nc", edit=sentinel)
    ds = obs.read(p, err_transport=1.0)
    assert (ds["err_representation"].values >= 0).all()
    std, n = _raw(src, "value_std_dev"), _raw(src, "nvalue")
    np.testing.assert_allclose(
        ds["err_representation"].values[10:], std[10:] * 1e6 / np.sqrt(n[10:]), rtol=1e-6
    )
    note = obs.qc_report(ds).sources[0].assumptions["value_std_dev sentinels"]
    assert "10 negative values" in note and "'value_std_dev'" in note
    # no uncertainty at all for the first ten records: dropped and counted, not a refusal
    bare = rewrite(src, tmp_path / "nounc.nc", drop=["icos_LTR", "icos_SMR"], edit=sentinel)
    ds0 = obs.read(bare)
    rep = obs.qc_report(ds0).sources[0]
    key = "no uncertainty (zero total error; set err_transport or err_instrument)"
    assert rep.dropped[key] == 10 and ds0.sizes["obs"] == 90
    # ... and the uncertainty option applies before that check: every record kept
    assert obs.read(bare, err_transport=2.0).sizes["obs"] == 100


def test_obspack_varying_negative_std_refused_and_missing_unc_stated(fixtures_dir, tmp_path):
    """One repeated negative value is a sentinel (above); negative values that differ are
    corrupt data: refused naming the file and the variable. Records whose value_unc is a fill
    value get instrument error 0, stated in the QC report."""
    src = fixtures_dir / HTM

    def varying(nc):
        v = nc["value_std_dev"][:]
        v[:10] = -np.linspace(1e-7, 1e-6, 10)
        nc["value_std_dev"][:] = v

    p = rewrite(src, tmp_path / "varying.nc", edit=varying)
    with pytest.raises(
        ValueError, match=r"varying\.nc: variable 'value_std_dev' holds 10 negative"
    ):
        obs.read(p)

    def unc_fill(nc):
        nc.createVariable("value_unc", "f8", ("time",), fill_value=np.nan)
        v = np.full(nc.dimensions["time"].size, 2e-7)
        v[:7] = np.nan
        nc["value_unc"][:] = v
        nc["value_unc"].units = "mol mol-1"

    q = rewrite(src, tmp_path / "uncfill.nc", edit=unc_fill)
    ds = obs.read(q, average=None)
    note = obs.qc_report(ds).sources[0].assumptions["records without instrument error"]
    assert note.startswith("7 of 100 records selected have no value_unc")
    np.testing.assert_allclose(ds["err_instrument"].values[:7], 0.0)
    np.testing.assert_allclose(ds["err_instrument"].values[7:], 0.2)


def test_obspack_icos_repeatability_used(fixtures_dir):
    src = fixtures_dir / HTM
    ds = obs.read(src)
    ltr, smr = _raw(src, "icos_LTR"), _raw(src, "icos_SMR")
    smr = np.where(smr < 0, 0.0, smr)
    np.testing.assert_allclose(ds["err_instrument"].values, np.hypot(ltr, smr) * 1e6, rtol=1e-6)
    assert "icos_LTR" in obs.qc_report(ds).sources[0].assumptions["instrument error"]


def test_noaa_obspack_uses_value_unc(fixtures_dir):
    ds = obs.read(fixtures_dir / BAO, species="ch4", intake_height=300.0)
    assert obs.qc_report(ds).sources[0].assumptions["instrument error"] == "variable 'value_unc'"


# ---------------------------------------------------------------- columns
def test_tccon_scale_choice_values_and_weights(data_dir, tmp_path):
    path = data_dir / TCCON
    assert obs.detect_format(path) == "tccon"
    with pytest.raises(
        ValueError, match=r"several calibration scales.*xco2_x2019 \(WMO CO2 X2019\)"
    ):
        obs.read(path)
    ds = obs.read(path, scale="X2019")
    x = _raw(path, "xco2_x2019")
    flag = _raw(path, "extrapolation_flags_ak_xco2")
    keep = np.abs(flag) != 2
    np.testing.assert_allclose(ds["value"].values, x[keep], rtol=1e-12)
    np.testing.assert_allclose(ds["err_instrument"].values, _raw(path, "xco2_error_x2019")[keep])
    assert (
        set(ds["scale"].values) == {"WMO CO2 X2019"}
        and ds.attrs["calibration_scale"] == "WMO CO2 X2019"
    )
    native = obs.read(path, scale="native")
    np.testing.assert_allclose(native["value"].values, _raw(path, "xco2")[keep], rtol=1e-12)
    assert set(native["scale"].values) == {"WMO CO2 X2007"}
    assert obs.read(path, scale="xco2_x2019")["value"].values[0] == ds["value"].values[0]
    # kernel, dry prior and pressures (atm -> hPa) against the file, surface first
    ak, wet, h2o = _raw(path, "ak_xco2"), _raw(path, "prior_co2"), _raw(path, "prior_h2o")
    p = _raw(path, "prior_pressure") * 1013.25
    np.testing.assert_allclose(ds["averaging_kernel"].values, ak[keep], rtol=1e-6)
    np.testing.assert_allclose(ds["co2_apriori"].values, (wet / (1 - h2o))[keep], rtol=1e-6)
    np.testing.assert_allclose(ds["pressure"].values, p[keep], rtol=1e-6)
    # pressure-weight method by hand: dp with pressure clipped at pout, / (g (1 + q Mh2o/Mair))
    pout, g = _raw(path, "pout"), _raw(path, "prior_gravity")
    pc = np.minimum(p, pout[:, None])
    dp = np.concatenate([pc[:, :-1] - pc[:, 1:], pc[:, -1:]], axis=1)
    h = dp / (g * (1 + h2o / (1 - h2o) * 18.0153 / 28.9647))
    np.testing.assert_allclose(
        ds["pressure_weight"].values, (h / h.sum(1, keepdims=True))[keep], rtol=1e-6
    )
    np.testing.assert_allclose(ds["alt"].values, 237.0, rtol=1e-6)  # zobs 0.237 km
    rep = obs.qc_report(ds).sources[0]
    assert rep.dropped == {"quality flag != 0": 1}
    assert "pressure-weight method" in rep.assumptions["pressure weights"]


def test_tccon_integration_operator_and_single_variant(data_dir, tmp_path):
    src = data_dir / TCCON

    def add_io(nc):
        v = nc.createVariable("integration_operator", "f4", ("time", "prior_altitude"))
        w = np.linspace(2.0, 1.0, 51)[None, :] + np.zeros((6, 1))
        v[:] = w
        v.description = "integration operator for dry mole fractions"

    p = rewrite(src, tmp_path / "pa20190701_20190701.public.qc.nc",
                drop=["xco2_x2019", "xco2_error_x2019"], edit=add_io)  # fmt: skip
    ds = obs.read(p)  # one variant only: no scale option needed
    w = np.linspace(2.0, 1.0, 51)
    np.testing.assert_allclose(ds["pressure_weight"].values[0], w / w.sum(), rtol=1e-6)
    rep = obs.qc_report(ds).sources[0]
    assert "integration_operator" in rep.assumptions["pressure weights"]
    assert rep.assumptions["calibration scale"].startswith("WMO CO2 X2007 (the only variant")
    # GGG2020 revision R0: its integration operator is known to be wrong -> method used instead
    r0 = rewrite(p, tmp_path / "r0.nc", attrs={"/": {"data_revision": "R0"}})
    assert "GGG2020.R0" in obs.qc_report(obs.read(r0)).sources[0].assumptions["pressure weights"]


def test_tccon_ggg2014_refused(tmp_path):
    p = tmp_path / "rj20131116_20170315.public.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("time", 2)
        nc.createDimension("ak_zenith", 3)
        nc.createDimension("ak_P_hPa", 4)
        nc.createDimension("prior_altitude", 4)
        nc.createVariable("xco2_ppm", "f4", ("time",))[:] = [400, 401]
        nc.createVariable("ak_co2", "f4", ("ak_zenith", "ak_P_hPa"))[:] = 1.0
        nc.createVariable("ak_altitude", "f4", ("ak_P_hPa",))[:] = 0.0
        nc.createVariable("ak_xco2", "f4", ("ak_zenith", "ak_P_hPa"))[:] = 1.0
    with pytest.raises(ValueError, match=r"rj20131116.*GGG2014 is superseded.*GGG2020"):
        obs.read(p, format="tccon")


def test_openghg_column_species(fixtures_dir):
    path = fixtures_dir / OGHG
    assert obs.detect_format(path) == "openghg_column"
    with pytest.raises(
        ValueError, match=r"ch4-column\.nc: the file holds \['xch4'\].*species='ch4'"
    ):
        obs.read(path)
    ds = obs.read(path, species="ch4")
    x, u = _raw(path, "xch4"), _raw(path, "xch4_uncertainty")
    np.testing.assert_allclose(ds["value"].values, x * 1e-3, rtol=1e-12)  # units "1e-9" -> ppm
    np.testing.assert_allclose(ds["err_instrument"].values, u * 1e-3, rtol=1e-12)
    np.testing.assert_allclose(ds["pressure"].values, _raw(path, "pressure_levels"), rtol=1e-7)
    np.testing.assert_allclose(
        ds["co2_apriori"].values, _raw(path, "ch4_profile_apriori") * 1e-3, rtol=1e-6
    )
    assert (ds["pressure"].values[:, 0] > ds["pressure"].values[:, -1]).all()  # surface first
    np.testing.assert_allclose(ds["pressure_weight"].sum("level"), 1.0, atol=1e-6)
    assert ds.attrs["species"] == "ch4" and set(ds["site"].values) == {"GOSAT"}
    assert "not stated" in obs.qc_report(ds).sources[0].assumptions["calibration scale"]
    assert set(obs.read(path, species="ch4", scale="NOAA 2004A")["scale"].values) == {"NOAA 2004A"}


def test_oco3_sam_target_modes(data_dir):
    path = data_dir / OCO3
    ds = obs.read(path)
    with netCDF4.Dataset(path) as nc:
        modes = nc["Sounding/operation_mode"][:]
        tid = np.asarray(nc["Sounding/target_id"][:], dtype=str)
        x = nc["xco2"][:].astype("f8")
    assert ds.sizes["obs"] == 12
    np.testing.assert_array_equal(ds["site"].values, np.where(tid == "", "OCO-3", tid))
    sam = obs.read(path, operation_modes=["SAM"])
    np.testing.assert_allclose(sam["value"].values, x[modes == 4], rtol=1e-12)
    assert obs.qc_report(sam).sources[0].dropped == {"operation mode not in ['SAM']": 8}
    both = obs.read(path, operation_modes=["TG", 4])
    assert both.sizes["obs"] == int(np.isin(modes, [2, 4]).sum())
    assert set(both["site"].values) == {"fossil0037", "sam_LosAngeles"}


def test_column_nc_platform_names_not_truncated(data_dir, tmp_path):
    a = tmp_path / "a.nc"
    b = tmp_path / "b.nc"
    shutil.copy(data_dir / "column_generic.nc", a)
    shutil.copy(data_dir / "column_generic.nc", b)
    for p, name in ((a, "OCO-2"), (b, "OCO-3")):
        with netCDF4.Dataset(p, "a") as nc:
            nc.platform = name
    sa, sb = obs.read(a), obs.read(b)
    assert set(sa["site"].values) == {"OCO-2"} and set(sb["site"].values) == {"OCO-3"}


# ---------------------------------------------------------------- detection and options
def test_unknown_valid_netcdf_is_described_not_called_corrupt(tmp_path):
    p = tmp_path / "stranger.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("n", 3)
        nc.createVariable("brightness", "f4", ("n",))[:] = 1.0
        nc.title = "not an observation file"
    with pytest.raises(FormatDetectionError) as err:
        obs.read(p)
    msg = str(err.value)
    assert "stranger.nc" in msg and "brightness" in msg and "corrupt" not in msg
    assert "tccon" in msg and "obspack" in msg  # lists the formats


def test_unknown_option_names_accepted_ones(fixtures_dir):
    with pytest.raises(
        ReaderOptionError, match=r"\['err_trnsport'\].*accepted options: .*'err_transport'"
    ):
        obs.read(fixtures_dir / HTM, err_trnsport=1.0)
    with pytest.raises(TypeError):  # also a TypeError and a ValueError
        obs.read(fixtures_dir / HTM, bogus=1)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ValueError, match=r"is a directory; expected one observation file"):
        obs.read(tmp_path)


def test_icos_atc_unaveraged_time_is_interval_midpoint(fixtures_dir):
    """Hourly records stamped at the hour start sit at +30 min even without averaging."""
    path = fixtures_dir / "insitu/icos_atc_nrt_GAT_realatc.CO2"
    ds = obs.read(path, average=None)
    lines = [
        ln.split(";")
        for ln in path.read_text(encoding="utf-8").splitlines()
        if ln.startswith("GAT;")
    ]
    hours = [int(f[5]) for f in lines]
    expect = np.array([np.datetime64(f"2018-04-12T{h:02d}:30") for h in hours], "datetime64[ns]")
    np.testing.assert_array_equal(ds["time"].values, expect)


# ---------------------------------------------------------------- inspect == read
def _broken_inputs(fixtures_dir, tmp_path):
    src = fixtures_dir / HTM
    trunc = tmp_path / "truncated.nc"
    trunc.write_bytes(src.read_bytes()[:3000])
    units = rewrite(src, tmp_path / "units.nc", attrs={"value": {"units": "kg m-3"}})
    novar = rewrite(src, tmp_path / "novar.nc", drop=["intake_height"])
    return [
        (trunc, {}),
        (trunc, {"format": "obspack"}),
        (units, {}),
        (novar, {}),
        (tmp_path, {}),
        (tmp_path / "missing.nc", {}),
        (src, {"bogus": 1}),
        (src, {"start": "2030-01-01"}),
        (src, {"format": "nosuch"}),
        (src, {"species": "ch4"}),
    ]


def test_inspect_raises_what_read_raises(fixtures_dir, tmp_path):
    for path, opts in _broken_inputs(fixtures_dir, tmp_path):
        with pytest.raises(Exception) as a:
            obs.read(path, **opts)
        with pytest.raises(Exception) as b:
            obs.inspect(path, **opts)
        assert type(a.value) is type(b.value), (path, opts)
        assert str(a.value) == str(b.value)
        assert str(path.name) in str(a.value) or "nosuch" in str(a.value) or "bogus" in str(a.value)


def test_inspect_summary(fixtures_dir, data_dir):
    src = fixtures_dir / HTM
    info = obs.inspect(src, hours=(10, 18))
    ds = obs.read(src, hours=(10, 18))
    assert info.format == "obspack" and info.what == "observations"
    assert info.n_records == ds.sizes["obs"] and info.kinds == ("tower",) and info.sites == ("HTM",)
    assert info.time_range == (ds["time"].values.min(), ds["time"].values.max())
    assert info.bbox == pytest.approx((13.4189, 56.0976, 13.4189, 56.0976), abs=1e-4)
    assert info.units["value"] == "mol mol-1"
    assert "qc_flag" in info.assumptions and info.details["read"] == 100
    d = info.to_dict()
    assert d["time_range"][0].startswith("2016-12-1") and isinstance(d["bbox"], list)
    tc = obs.inspect(data_dir / TCCON, scale="X2019")
    assert tc.kinds == ("column",) and tc.details["scales"] == ["WMO CO2 X2019"]


def test_moving_platform_obspack_refused(fixtures_dir, tmp_path):
    p = rewrite(fixtures_dir / BAO, tmp_path / "co2_xyz_aircraft-pfp_1_ccgg_all.nc",
                attrs={"/": {"dataset_project": "aircraft-pfp", "dataset_platform": "aircraft"}})  # fmt: skip
    with pytest.raises(ValueError, match=r"aircraft-pfp_1_ccgg_all\.nc: a moving-platform ObsPack"):
        obs.read(p, species=None)


def test_obspack_start_stamps_without_frequency_refused(fixtures_dir, tmp_path):
    p = rewrite(fixtures_dir / HTM, tmp_path / "nofreq.nc",
                attrs={"/": {"dataset_data_frequency": None, "dataset_data_frequency_unit": None}})  # fmt: skip
    with pytest.raises(
        ValueError, match=r"nofreq\.nc: time stamps mark the start.*no dataset_data_frequency"
    ):
        obs.read(p)


def test_icos_atc_not_hourly_refused(fixtures_dir, tmp_path):
    text = (fixtures_dir / "insitu/icos_atc_nrt_GAT_realatc.CO2").read_text(encoding="utf-8")
    p = tmp_path / "GAT_minute.CO2"
    p.write_text(
        text.replace("# TIME INTERVAL: hourly", "# TIME INTERVAL: minute"), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"GAT_minute\.CO2: TIME INTERVAL 'minute' not supported"):
        obs.read(p)


# every real third-party file: read by default, or refused for the documented reason (FORMATS.md)
REAL = {
    HTM: None,
    BAO: r"file holds 'ch4' but species='co2' was requested; pass species='ch4'",
    "insitu/icos_atc_nrt_GAT_realatc.CO2": None,
    "satellite/acos_LtCO2_090901_v205205_B9213A_200310212449s.nc4": None,
    OGHG: r"holds \['xch4'\].*pass species='ch4'",
}


@pytest.mark.parametrize("name", list(REAL))
def test_every_real_observation_file(fixtures_dir, name):
    path = fixtures_dir / name
    if REAL[name] is None:
        assert obs.read(path).sizes["obs"] > 0
    else:
        with pytest.raises(ValueError, match=REAL[name]):
            obs.read(path)


def test_openghg_tccon_site_column(tmp_path):
    """OpenGHG's TCCON output: one pressure grid on 'lev', site position in global attributes."""
    n, nl = 3, 5
    p = tmp_path / "tccon_pa_20190701_co2-column.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("time", n)
        nc.createDimension("lev", nl)
        nc.setncatts({"site": "TPA", "latitude": "34.136", "longitude": "-118.127",
                      "calibration_scale": "WMO CO2 X2019"})  # fmt: skip
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "seconds since 2019-07-01 00:00:00"
        t[:] = [3600.0, 7200.0, 10800.0]
        for name, val, units in (("xco2", 4.1e-4, "1e-6"), ("xco2_uncertainty", 4e-7, "1e-6")):
            v = nc.createVariable(name, "f8", ("time",))
            v.units = units
            v[:] = np.full(n, val * 1e6)
        pl = nc.createVariable("pressure_levels", "f4", ("lev",))
        pl.units = "hPa"
        pl[:] = [1000.0, 800.0, 500.0, 200.0, 10.0]
        nc.createVariable("pressure_weights", "f4", ("time", "lev"))[:] = np.full((n, nl), 0.2)
        nc.createVariable("xco2_averaging_kernel", "f4", ("time", "lev"))[:] = np.ones((n, nl))
        ap = nc.createVariable("co2_profile_apriori", "f4", ("time", "lev"))
        ap.units = "1e-6"
        ap[:] = np.full((n, nl), 409.0)
    ds = obs.read(p)
    assert obs.detect_format(p) == "openghg_column" and ds.sizes["obs"] == 3
    np.testing.assert_allclose(ds["value"].values, 410.0)
    np.testing.assert_allclose(
        ds["pressure"].values, np.tile([1000.0, 800.0, 500.0, 200.0, 10.0], (3, 1))
    )
    assert set(ds["site"].values) == {"TPA"} and set(ds["scale"].values) == {"WMO CO2 X2019"}
    np.testing.assert_allclose(ds["lat"].values, 34.136)
    assert "latitude/longitude" in obs.qc_report(ds).sources[0].assumptions["position"]
