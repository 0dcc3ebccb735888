"""Write small files in third-party layouts for which no real sample is at hand.

Run: ``python tests/observations/data/make_variants.py``.  Deterministic; the files are
committed next to this script (PROVENANCE.md lists each with the document it follows).

* ``pa20190701_20190701.public.qc.nc`` — TCCON GGG2020 public file, layout of the GGG2020 file
  headers published with every site record (e.g. the Izana and Indianapolis README.txt of the
  CaltechDATA records) and of the writer ``TCCON/py_tccon_netcdf`` (``write_netcdf.py``: the
  ``*_x2019`` variables with ``wmo_or_analogous_scale``, error ``xco2_error_x2019``).
* ``oco3_LtCO2_200505_B10400Br_test.nc4`` — OCO-3 L2 Lite file, layout of the OCO-2/OCO-3 Lite
  data user guide as in the real ACOS Lite fixture (same variables), plus the OCO-3 ``Sounding``
  group: ``operation_mode`` (0 nadir, 1 glint, 2 target, 3 transition, 4 snapshot area map) and
  ``target_id``.
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np

HERE = Path(__file__).resolve().parent
EPOCH = "seconds since 1970-01-01 00:00:00"

#: Known values used by the tests.
TCCON_T0 = 1_562_003_000.0  # 2019-07-01T17:43:20Z
TCCON_XCO2 = np.array([410.0, 410.5, 411.0, 411.5, 412.0, 412.5])
TCCON_X2019_OFFSET = 0.18  # xco2_x2019 - xco2 [ppm]
OCO3_MODES = np.array([0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4], dtype="i1")
OCO3_TARGETS = ["", "", "", "", "fossil0037", "fossil0037", "fossil0037", "fossil0037",
                "sam_LosAngeles", "sam_LosAngeles", "sam_LosAngeles", "sam_LosAngeles"]  # fmt: skip


def _var(nc, name, dtype, dims, data, **attrs):
    v = nc.createVariable(name, dtype, dims)
    v.setncatts(attrs)
    v[:] = data
    return v


def tccon(path: Path) -> None:
    """Six spectra at Pasadena (pa), 2 minutes apart; the 4th has an extrapolated kernel."""
    n, nz = 6, 51
    z = np.linspace(0.0, 70.0, nz).astype("f4")  # [km], ascending from sea level
    p_atm = np.exp(-z / 7.5)  # [atm]
    with netCDF4.Dataset(path, "w") as nc:
        nc.setncatts({
            "file_format_version": "2020.1.0", "data_revision": "R1",
            "long_name": "pasadena01", "contact": "Test Person test@example.org",
            "description": "layout test file written by make_variants.py (not real data)",
        })  # fmt: skip
        nc.createDimension("time", n)
        nc.createDimension("prior_altitude", nz)
        nc.createDimension("ak_altitude", nz)
        t = TCCON_T0 + 120.0 * np.arange(n)
        _var(nc, "time", "f8", ("time",), t, units=EPOCH, calendar="gregorian",
             standard_name="time", description="UTC time")  # fmt: skip
        _var(nc, "prior_altitude", "f4", ("prior_altitude",), z, units="km")
        _var(nc, "ak_altitude", "f4", ("ak_altitude",), z, units="km")
        _var(nc, "ak_pressure", "f4", ("ak_altitude",), 1013.25 * p_atm, units="hPa",
             description="Median pressure for the column averaging kernels vertical grid")  # fmt: skip
        _var(nc, "lat", "f4", ("time",), np.full(n, 34.136), units="degrees_north")
        _var(nc, "long", "f4", ("time",), np.full(n, -118.127), units="degrees_east")
        _var(nc, "zobs", "f4", ("time",), np.full(n, 0.237), units="km")
        _var(nc, "pout", "f4", ("time",), np.full(n, 986.0), units="hPa")
        _var(nc, "xco2", "f4", ("time",), TCCON_XCO2, units="ppm",
             wmo_or_analogous_scale="WMO CO2 X2007")  # fmt: skip
        _var(nc, "xco2_error", "f4", ("time",), np.full(n, 0.35), units="ppm")
        _var(nc, "xco2_x2019", "f4", ("time",), TCCON_XCO2 + TCCON_X2019_OFFSET, units="ppm",
             wmo_or_analogous_scale="WMO CO2 X2019")  # fmt: skip
        _var(nc, "xco2_error_x2019", "f4", ("time",), np.full(n, 0.36), units="ppm")
        _var(nc, "extrapolation_flags_ak_xco2", "i1", ("time",), [0, 0, 0, 2, 0, -1])
        ak = np.clip(1.05 - 0.4 * (z / 70.0), 0, None)[None, :] * (1 + 0.01 * np.arange(n))[:, None]
        _var(nc, "ak_xco2", "f4", ("time", "ak_altitude"), ak, units="1")
        prior = 409.0 - 5.0 * (z / 70.0)[None, :] + np.zeros((n, 1))
        h2o = 0.012 * np.exp(-z / 2.0)[None, :] + np.zeros((n, 1))
        _var(nc, "prior_co2", "f4", ("time", "prior_altitude"), prior * (1 - h2o), units="ppm",
             standard_name="wet_atmosphere_mole_fraction_of_carbon_dioxide")  # fmt: skip
        _var(nc, "prior_h2o", "f4", ("time", "prior_altitude"), h2o, units="1",
             standard_name="wet_atmosphere_mole_fraction_of_water")  # fmt: skip
        _var(nc, "prior_pressure", "f4", ("time", "prior_altitude"),
             p_atm[None, :] + np.zeros((n, 1)), units="atm")  # fmt: skip
        _var(nc, "prior_gravity", "f4", ("time", "prior_altitude"),
             9.80 - 0.003 * z[None, :] + np.zeros((n, 1)), units="m s-2")  # fmt: skip
        _var(nc, "prior_xco2", "f4", ("time",), np.full(n, 408.0), units="ppm")


def oco3_lite(path: Path) -> None:
    """Twelve soundings over Los Angeles: 4 nadir, 4 target, 4 SAM (modes 0, 2, 4)."""
    n, nl = 12, 20
    rng = np.random.default_rng(11)
    with netCDF4.Dataset(path, "w") as nc:
        nc.setncatts({"Platform": "OCO-3", "Sensor": "OCO-3", "title": "OCO-3 L2 Lite layout test"})
        nc.createDimension("sounding_id", n)
        nc.createDimension("levels", nl)
        t = 1_588_700_000.0 + 0.3 * np.arange(n)
        _var(nc, "sounding_id", "u8", ("sounding_id",),
             2020050517330000 + np.arange(n, dtype="u8"), units="YYYYMMDDhhmmss")  # fmt: skip
        _var(nc, "time", "f8", ("sounding_id",), t, units=EPOCH)
        _var(nc, "latitude", "f4", ("sounding_id",), 34.0 + 0.01 * np.arange(n),
             units="degrees_north")  # fmt: skip
        _var(nc, "longitude", "f4", ("sounding_id",), -118.3 + 0.01 * np.arange(n),
             units="degrees_east")  # fmt: skip
        _var(nc, "xco2", "f4", ("sounding_id",), 414.0 + np.arange(n) * 0.1, units="ppm")
        _var(nc, "xco2_uncertainty", "f4", ("sounding_id",), np.full(n, 0.6), units="ppm")
        _var(nc, "xco2_quality_flag", "i1", ("sounding_id",), np.zeros(n, "i1"))
        sigma = np.linspace(0.0001, 1.0, nl)  # space -> surface
        p = 1000.0 * sigma[None, :] + np.zeros((n, 1))
        _var(nc, "pressure_levels", "f4", ("sounding_id", "levels"), p, units="hPa")
        w = np.diff(np.r_[0.0, sigma]) / sigma[-1]
        _var(nc, "pressure_weight", "f4", ("sounding_id", "levels"), w[None, :] + np.zeros((n, 1)))
        _var(nc, "xco2_averaging_kernel", "f4", ("sounding_id", "levels"),
             0.6 + 0.4 * sigma[None, :] + 0.01 * rng.random((n, nl)))  # fmt: skip
        _var(nc, "co2_profile_apriori", "f4", ("sounding_id", "levels"),
             np.full((n, nl), 412.0), units="ppm")  # fmt: skip
        g = nc.createGroup("Sounding")
        _var(g, "operation_mode", "i1", ("sounding_id",), OCO3_MODES,
             comment="0=Nadir, 1=Glint, 2=Target, 3=Transition, 4=Snapshot Area Map")  # fmt: skip
        tid = g.createVariable("target_id", str, ("sounding_id",))
        for i, s in enumerate(OCO3_TARGETS):
            tid[i] = s
        _var(g, "altitude", "f4", ("sounding_id",), np.full(n, 90.0), units="meters")
        _var(g, "orbit", "i4", ("sounding_id",), np.full(n, 5123))


def main() -> None:
    tccon(HERE / "pa20190701_20190701.public.qc.nc")
    oco3_lite(HERE / "oco3_LtCO2_200505_B10400Br_test.nc4")


if __name__ == "__main__":
    main()
