"""Benchmark: read + hourly-average a synthetic 200,000-record ObsPack file.

Prints the time of ``observations.read`` (target < 5 s) and its ratio to a plain
``xarray.open_dataset(...).load()`` of the same file (medians of ``--repeat`` runs each,
interleaved), with the machine and its load.  Run:
``python benchmarks/obs_read.py --repeat 5 --json out.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr
from _machine import Run, add_json_argument

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (median reported)")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    run = Run("obs_read", argv, args.json)
    t_xr, t_obs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "co2_syn_tower-insitu_1_all.nc"
        write_obspack(path, args.n)
        for _ in range(max(1, args.repeat)):  # interleaved: both see the same load
            t0 = time.perf_counter()
            with xr.open_dataset(path) as ds:
                ds.load()
            t_xr.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = observations.read(path, intake_height="all", average="hourly")
            t_obs.append(time.perf_counter() - t0)
    rep = observations.qc_report(out).sources[0]
    m_xr, m_obs = statistics.median(t_xr), statistics.median(t_obs)
    print(f"records: {args.n}, hourly obs out: {out.sizes['obs']}, averaged: {rep.averaged}")
    print(f"xarray open+load:          {m_xr:8.3f} s  (median of {len(t_xr)})")
    print(f"observations.read+hourly:  {m_obs:8.3f} s  (target < 5 s)")
    print(f"ratio read / xarray load:  {m_obs / m_xr:8.2f}")
    run.add(records=args.n, t_xarray=t_xr, t_read=t_obs, display={
        "records": f"{args.n:,}", "observations.read + hourly [s]": f"{m_obs:.2f}",
        "xarray open + load [s]": f"{m_xr:.2f}", "ratio": f"{m_obs / m_xr:.2f}",
        "runs [s]": " ".join(f"{v:.2f}" for v in t_obs),
    })  # fmt: skip
    run.finish()


if __name__ == "__main__":
    main()
