"""Broken inputs (modified copies in tmp_path) must raise clear errors; drops are counted."""

from __future__ import annotations

import shutil
import warnings

import netCDF4
import numpy as np
import pytest

import observations as obs

HTM = "insitu/co2_htm_tower-insitu_424_allvalid-150magl_small.nc"
ACOS = "satellite/acos_LtCO2_090901_v205205_B9213A_200310212449s.nc4"


def _copy(src, tmp_path, name="copy.nc"):
    dst = tmp_path / name
    shutil.copy(src, dst)
    return dst


def test_missing_variable(fixtures_dir, tmp_path):
    src = fixtures_dir / HTM
    dst = tmp_path / "novalue.nc"
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w") as b:
        b.setncatts({k: a.getncattr(k) for k in a.ncattrs()})
        for d in a.dimensions.values():
            b.createDimension(d.name, None if d.isunlimited() else len(d))
        for v in a.variables.values():
            if v.name == "intake_height":
                continue
            nv = b.createVariable(v.name, v.dtype, v.dimensions)
            nv.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"})
            nv.set_auto_mask(False)
            v.set_auto_mask(False)
            nv[:] = v[:]
    with pytest.raises(KeyError, match="intake_height") as err:
        obs.read(dst, format="obspack")
    assert "novalue.nc" in str(err.value)


def test_unexpected_units(fixtures_dir, tmp_path):
    dst = _copy(fixtures_dir / HTM, tmp_path)
    with netCDF4.Dataset(dst, "a") as nc:
        nc["value"].units = "kg m-3"
    with pytest.raises(obs.UnitsError, match="kg m-3"):
        obs.read(dst)


def test_wrong_magnitude_for_units(fixtures_dir, tmp_path):
    dst = _copy(fixtures_dir / HTM, tmp_path)
    with netCDF4.Dataset(dst, "a") as nc:
        nc["value"].units = "ppm"  # values are mol mol-1 -> 4e-4 ppm is implausible
    with pytest.raises(ValueError, match="plausible"):
        obs.read(dst)


def test_all_nan(fixtures_dir, tmp_path):
    dst = _copy(fixtures_dir / HTM, tmp_path)
    with netCDF4.Dataset(dst, "a") as nc:
        nc["value"][:] = np.nan
    with pytest.raises(obs.EmptyAfterQCError, match=r"100 dropped \(100 missing value"):
        obs.read(dst)


def test_all_flagged(fixtures_dir, tmp_path):
    dst = _copy(fixtures_dir / HTM, tmp_path)
    with netCDF4.Dataset(dst, "a") as nc:
        nc["qc_flag"][:] = np.array([b"K"] * 100)
    with pytest.raises(obs.EmptyAfterQCError, match="100 quality flag"):
        obs.read(dst)


def test_outside_period(fixtures_dir):
    with pytest.raises(obs.EmptyAfterQCError, match="100 outside requested period"):
        obs.read(fixtures_dir / HTM, start="2020-01-01", end="2020-02-01")


def test_sounding_outside_domain(fixtures_dir):
    ds = obs.read(fixtures_dir / ACOS, bbox=(-170.0, 0.0, -150.0, 40.0))
    rep = obs.qc_report(ds).sources[0]
    assert rep.dropped["outside domain"] == 350 - ds.sizes["obs"] > 0
    with pytest.raises(obs.EmptyAfterQCError, match="outside domain"):
        obs.read(fixtures_dir / ACOS, bbox=(0.0, -1.0, 0.1, -0.9))


def test_truncated_file(fixtures_dir, tmp_path):
    src = fixtures_dir / HTM
    dst = tmp_path / "truncated.nc"
    dst.write_bytes(src.read_bytes()[:3000])
    with pytest.raises(ValueError, match=r"truncated\.nc"):
        obs.read(dst)
    with pytest.raises(ValueError, match=r"truncated\.nc"):
        obs.read(dst, format="obspack")


def test_corrupt_text(tmp_path):
    bad = tmp_path / "garbage.dat"
    bad.write_bytes(b"\x00\x01 not an observation file")
    with pytest.raises(ValueError, match=r"garbage\.dat"):
        obs.read(bad)


def test_missing_file_and_unknown_option(tmp_path, fixtures_dir):
    with pytest.raises(FileNotFoundError, match=r"nope\.nc"):
        obs.read(tmp_path / "nope.nc")
    with pytest.raises(TypeError, match="bogus"):
        obs.read(fixtures_dir / HTM, bogus=1)
    with pytest.raises(KeyError, match="unknown observation format"):
        obs.read(fixtures_dir / HTM, format="nosuch")


def test_intake_not_in_file(fixtures_dir):
    with pytest.raises(ValueError, match=r"available intake heights: \[150.0\]"):
        obs.read(fixtures_dir / HTM, intake_height=10.0)


def test_scale_mismatch_recorded(fixtures_dir):
    htm = obs.read(fixtures_dir / HTM)
    gat = obs.read(fixtures_dir / "insitu/icos_atc_nrt_GAT_realatc.CO2")
    with pytest.warns(obs.ScaleMismatchWarning) as rec:
        out = obs.combine([htm, gat])
    msg = str(rec[0].message)
    assert "WMO CO2 X2019" in msg and "WMO CO2 X2007" in msg and "GAT" in msg
    assert "X2007" in out.attrs["warnings"]
    assert [s.kept for s in obs.qc_report(out).sources] == [100, 24]


def test_lidar_csv_missing_column(data_dir, tmp_path):
    text = (data_dir / "lidar_path.csv").read_text().replace("xco2_uncertainty", "xco2_unc")
    p = tmp_path / "lp.csv"
    p.write_text(text)
    with pytest.raises(KeyError, match="xco2_uncertainty"):
        obs.read(p, format="lidar_path")


CSV_HEAD = "time,site,lat,lon,intake_height,value,value_unc\n"


def _csv(tmp_path, rows, name="t.csv"):
    p = tmp_path / name
    p.write_text(CSV_HEAD + "".join(f"2015-12-10T{h:02d}:00:00Z,RCP,{r}\n" for h, r in rows))
    return p


def test_tower_csv_negative_uncertainty_refused_missing_dropped(tmp_path):
    """A negative value_unc is refused naming the file, the column and the row (never squared
    into a positive error); an empty one drops its row (counted) unless err_instrument."""
    neg = _csv(tmp_path, [(0, "40.5,-112,5,415,0.2"), (1, "40.5,-112,5,416,-1e-9")], "neg.csv")
    with pytest.raises(
        ValueError, match=r"neg\.csv: column 'value_unc' holds 1 negative.*row\(s\) \[2\]"
    ):
        obs.read(neg)
    gap = _csv(tmp_path, [(0, "40.5,-112,5,415,0.2"), (1, "40.5,-112,5,416,"),
                          (2, "40.5,-112,5,417,nan")], "gap.csv")  # fmt: skip
    ds = obs.read(gap)
    rep = obs.qc_report(ds).sources[0]
    assert rep.dropped == {"missing uncertainty (value_unc empty or NaN)": 2}
    np.testing.assert_allclose(ds["value"].values, [415.0])
    np.testing.assert_allclose(ds["err_instrument"].values, [0.2])
    assert obs.read(gap, err_instrument=0.3).sizes["obs"] == 3
    with pytest.raises(obs.EmptyAfterQCError, match=r"gap1\.csv"):
        obs.read(_csv(tmp_path, [(0, "40.5,-112,5,415,nan")], "gap1.csv"))


def test_tower_nan_position_dropped_without_warning(tmp_path):
    """A row with a NaN longitude is dropped and counted before the local-time grouping (once
    a RuntimeWarning from casting NaN to int)."""
    p = _csv(tmp_path, [(0, "40.5,nan,5,415,0.2"), (1, "40.5,-112,5,416,0.2")], "pos.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = obs.read(p)
    rep = obs.qc_report(ds).sources[0]
    assert rep.dropped == {"missing position (NaN latitude or longitude)": 1}
    np.testing.assert_allclose(ds["lon"].values, [-112.0])


def test_tower_position_out_of_range_reads_without_overflow(tmp_path):
    """A longitude no place has (a garbled column: 6.6e21, found by the fuzz test) once
    overflowed the local-time day cast (RuntimeWarning, garbage group). The reader keeps the
    row apart from the others (the pipeline's plausibility QC drops and counts it); the
    valid rows keep their own local days."""
    rows = [(0, "40.5,6.640827866535427e+21,5,415,0.2"), (1, "40.5,-112,5,418,0.2"),
            (23, "40.5,-112,5,419,0.2")]  # fmt: skip
    p = _csv(tmp_path, rows, "far.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = obs.read(p)
    assert ds.sizes["obs"] == 3
    group = dict(zip(ds["value"].values.tolist(), ds["group"].values.tolist(), strict=True))
    assert len({group[415.0], group[418.0], group[419.0]}) == 3


def test_plausibility_error_names_variable_and_units(fixtures_dir, tmp_path):
    dst = _copy(fixtures_dir / HTM, tmp_path, "units.nc")
    with netCDF4.Dataset(dst, "a") as nc:
        nc["value"].units = "ppm"
    with pytest.raises(ValueError, match=r"units\.nc: variable 'value' \(units attribute 'ppm'\)"):
        obs.read(dst)
