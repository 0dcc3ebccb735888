"""Benchmark: read + hourly-average a synthetic 200,000-record ObsPack file.

Prints the time of ``observations.read`` (target < 5 s) and its ratio to a plain
``xarray.open_dataset(...).load()`` of the same file.  Run: ``python benchmarks/obs_read.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

import observations


def write_obspack(path: Path, n: int, seed: int = 0) -> None:
    """Synthetic NOAA-style ObsPack file: n records at 1-minute spacing, 3 intakes."""
    rng = np.random.default_rng(seed)
    with netCDF4.Dataset(path, "w") as nc:
        nc.site_code = "SYN"
        nc.dataset_parameter = "co2"
        nc.dataset_calibration_scale = "WMO CO2 X2019"
        nc.dataset_data_frequency = "1"
        nc.dataset_data_frequency_unit = "minute"
        nc.createDimension("obs", None)
        nc.createDimension("string_of_10chars", 10)
        t = nc.createVariable("time", "i4", ("obs",))
        t.units = "seconds since 1970-01-01T00:00:00Z"
        t.comment = "Time-averaged values are reported at the beginning of the averaging interval."
        t[:] = 1_600_000_000 + 60 * (np.arange(n) // 3)
        for name, data, units in (
            ("value", 4.1e-4 + 1e-5 * rng.standard_normal(n), "mol mol-1"),
            ("value_unc", np.full(n, 1e-7), "mol mol-1"),
            ("intake_height", np.tile([10.0, 50.0, 100.0], n // 3 + 1)[:n], "m"),
            ("latitude", np.full(n, 40.0), "degrees_north"),
            ("longitude", np.full(n, -105.0), "degrees_east"),
        ):
            v = nc.createVariable(name, "f4", ("obs",))
            v.units = units
            v[:] = data
        q = nc.createVariable("qcflag", "S1", ("obs", "string_of_10chars"))
        q[:] = netCDF4.stringtochar(np.array(["..."] * n, dtype="S10"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "co2_syn_tower-insitu_1_all.nc"
        write_obspack(path, args.n)
        t0 = time.perf_counter()
        with xr.open_dataset(path) as ds:
            ds.load()
        t_xr = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = observations.read(path, intake_height="all", average="hourly")
        t_obs = time.perf_counter() - t0
    rep = observations.qc_report(out).sources[0]
    print(f"records: {args.n}, hourly obs out: {out.sizes['obs']}, averaged: {rep.averaged}")
    print(f"xarray open+load:          {t_xr:8.3f} s")
    print(f"observations.read+hourly:  {t_obs:8.3f} s  (target < 5 s)")
    print(f"ratio read / xarray load:  {t_obs / t_xr:8.2f}")


if __name__ == "__main__":
    main()
