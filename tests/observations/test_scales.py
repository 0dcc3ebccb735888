"""Calibration-scale traceability: published X2007 -> X2019 conversion, stated uncertainties,
refusal to mix scales without a conversion."""

from __future__ import annotations

import json

import numpy as np
import pytest

import observations
from observations import ScaleConversionError, convert_scale, make_observation_set


def _towers(values, scales, kinds="tower", err_calibration=0.0):
    n = len(values)
    return make_observation_set(
        values, ["2020-01-01T12:00"] * n, kinds, [f"S{i}" for i in range(n)], 47.0, 8.0, 50.0,
        errors={"instrument": 0.1, "calibration": err_calibration},
        extras={"scale": np.array(scales, dtype=object)},
    )  # fmt: skip


def test_x2007_to_x2019_by_the_published_linear_conversion():
    # NOAA GML: X2019 = 1.00079 X2007 - 0.142; 400 -> 400.316 - 0.142 = 400.174 ppm, 420 ->
    # 420.3318 - 0.142 = 420.1898 ppm;
    # Hall et al. (2021): "0.18 ppm greater than the previous scale at 400 ppm".
    ds = _towers([400.0, 420.0, 410.0], ["WMO CO2 X2007", "WMO CO2 X2007", "WMO CO2 X2019"])
    out = convert_scale(ds, "WMO CO2 X2019")
    np.testing.assert_allclose(out["value"].values, [400.174, 420.1898, 410.0], rtol=1e-12)
    assert out["scale"].values.tolist() == ["WMO CO2 X2019"] * 3
    assert out["scale_original"].values.tolist()[0] == "WMO CO2 X2007"
    # the calibration component takes the stated uncertainty of X2019 (0.069 ppm)
    np.testing.assert_allclose(out["err_calibration"].values, 0.069)
    rec = json.loads(out.attrs["scale_conversions"])
    assert rec[0]["from"] == "WMO CO2 X2007" and rec[0]["n_obs"] == 2 and not rec[0]["assumed"]
    assert "1.00079" in rec[0]["reference"]
    assert ds["value"].values[0] == 400.0  # the input is not modified
    # and back: X2007 = (X2019 + 0.142) / 1.00079
    back = convert_scale(out.drop_vars("scale_original"), "WMO CO2 X2007")
    np.testing.assert_allclose(back["value"].values[:2], [400.0, 420.0], rtol=1e-12)


def test_stated_uncertainty_of_the_data_is_kept():
    ds = _towers([400.0], ["WMO CO2 X2019"], err_calibration=0.2)
    out = convert_scale(ds, "WMO CO2 X2019")
    assert out["err_calibration"].values[0] == 0.2
    assert observations.scale_uncertainty("WMO CO2 X2007") == 0.069
    assert observations.scale_uncertainty("my lab scale") is None


def test_scales_without_conversion_are_refused():
    ds = _towers([400.0, 401.0], ["WMO CO2 X2019", "SIO X12"])
    with pytest.raises(ScaleConversionError, match=r"S1.*'SIO X12'.*no published conversion"):
        convert_scale(ds, "WMO CO2 X2019")
    assert issubclass(ScaleConversionError, ValueError)


def test_unspecified_scale_is_assumed_with_a_warning_or_refused():
    ds = _towers([400.0, 401.0], ["unspecified", "WMO CO2 X2019"])
    with pytest.warns(UserWarning, match="1 observations .*S0.* assumed to be on WMO CO2 X2019"):
        out = convert_scale(ds, "WMO CO2 X2019")
    assert out["value"].values[0] == 400.0 and out["scale"].values[0] == "WMO CO2 X2019"
    assert out["scale_original"].values[0] == "unspecified"
    assert "assumed" in json.loads(out.attrs["warnings"])[0]
    with pytest.raises(ScaleConversionError, match="state no calibration scale"):
        convert_scale(ds, "WMO CO2 X2019", unspecified="refuse")


def test_columns_keep_their_scale_and_enhancements_are_refused():
    tccon = "TCCON-tied (Lite bias correction)"
    ds = make_observation_set(
        [410.0], ["2020-01-01T12:00"], "column", "oco2", 47.0, 8.0, 0.0,
        errors={"instrument": 0.5},
        extras={"scale": np.array([tccon], dtype=object),
                "averaging_kernel": np.ones((1, 3)), "pressure_weight": np.full((1, 3), 1 / 3),
                "co2_apriori": np.full((1, 3), 400.0), "pressure": np.array([[1000.0, 500, 10]])},
    )  # fmt: skip
    out = convert_scale(ds, "WMO CO2 X2019")
    assert out["scale"].values[0] == tccon and out["value"].values[0] == 410.0
    assert out["err_calibration"].values[0] == 0.0  # no stated uncertainty for this scale
    enh = _towers([5.0], ["WMO CO2 X2007"])
    enh.attrs["quantity"] = "enhancement"
    with pytest.raises(ScaleConversionError, match="enhancements"):
        convert_scale(enh, "WMO CO2 X2019")


def test_values_outside_the_conversion_range_are_flagged():
    ds = _towers([600.0], ["WMO CO2 X2007"])
    out = convert_scale(ds, "WMO CO2 X2019")
    assert "outside 250–520 ppm" in json.loads(out.attrs["warnings"])[0]
    assert out["value"].values[0] == pytest.approx(1.00079 * 600 - 0.142, rel=1e-12)
