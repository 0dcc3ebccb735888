"""The shared units parser against factors computed by hand."""

from __future__ import annotations

import pytest

from ingest import (
    UnitsError,
    footprint_factor,
    length_factor,
    mole_fraction_factor,
    parse_units,
    pressure_factor,
)


@pytest.mark.parametrize(
    ("units", "ppm"),
    [
        ("mol mol-1", 1e6),
        ("mol/mol", 1e6),
        ("1", 1e6),
        ("1e-9", 1e-3),  # OpenGHG column files
        ("ppm", 1.0),
        ("ppmv", 1.0),
        ("umol mol-1", 1.0),
        ("µmol/mol", 1.0),
        ("umol.mol-¹", 1.0),  # ICOS ATC header
        ("micromol mol-1", 1.0),
        ("nanomol mol-1", 1e-3),  # NOAA ObsPack CH4
        ("nmol mol-1", 1e-3),
        ("ppb", 1e-3),
        ("ppt", 1e-6),
        ("mol mol-1 dry air", 1e6),
    ],
)
def test_mole_fraction_factors(units, ppm):
    assert mole_fraction_factor(units, where="f") == pytest.approx(ppm, rel=1e-12)


@pytest.mark.parametrize(
    ("units", "factor"),
    [
        ("ppm (umol-1 m2 s)", 1.0),  # R-STILT
        ("ppm per (micromol m-2 s-1)", 1.0),  # ICOS STILT, STILT v1
        ("ppm per umol m-2 s-1", 1.0),
        ("ppm / (micromoles m-2 s-1)", 1.0),  # FLEXPART-web post-processing
        ("(mol/mol)/(mol/m2/s)", 1.0),  # NAME / OpenGHG / PARIS
        ("ppm (umol m-2 s-1)-1", 1.0),  # cityflux
        ("s m2 mol-1", 1.0),
        ("m^2 s mol^-1", 1.0),
        ("ppb (umol-1 m2 s)", 1e-3),
        ("ppm/(mol m-2 s-1)", 1e-6),
    ],
)
def test_footprint_factors(units, factor):
    assert footprint_factor(units, where="f") == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize(
    ("units", "message"),
    [
        ("kg m-2", "cannot be converted to ppm per"),
        ("umol CO2 m-2 s-1", "cannot be converted to ppm per"),
        ("furlongs", "unknown unit 'furlongs'"),
        ("ppm (umol m-2 s-1", "unbalanced parentheses"),
        (None, "no 'units' attribute"),
    ],
)
def test_footprint_units_refused_with_where(units, message):
    with pytest.raises(UnitsError, match=rf"file\.nc: variable 'foot'.*{message}"):
        footprint_factor(units, where="file.nc: variable 'foot'")


def test_parse_dims_species_and_canonical():
    p = parse_units("t C per cell per month")
    assert p.dims == {"g": 1, "cell": -1, "month": -1} and p.species == "c" and p.factor == 1e6
    assert p.canonical == "tC cell-1 month-1"
    q = parse_units("kt CO2/yr")
    assert q.dims == {"g": 1, "yr": -1} and q.species == "co2" and q.factor == 1e9
    assert parse_units("s m3 kg-1").dims == {"s": 1, "m": 3, "g": -1}  # FLEXPART spec_mr
    assert parse_units("tCO2 km-2 year-1").canonical == "tCO2 km-2 yr-1"


def test_pressure_and_length():
    assert pressure_factor("atm", where="x") == pytest.approx(1013.25)
    assert pressure_factor("Pa", where="x") == pytest.approx(0.01)
    assert pressure_factor("mbar", where="x") == 1.0
    assert length_factor("km", where="x") == 1000.0
    with pytest.raises(UnitsError, match="not a pressure"):
        pressure_factor("km", where="x")
    with pytest.raises(UnitsError, match="are not a mole-fraction unit"):
        mole_fraction_factor("kg m-3", where="x")
