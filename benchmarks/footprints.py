"""Benchmark: assembling H from many STILT-format footprint files vs the xarray I/O floor.

Writes N synthetic R-STILT ``*_foot.nc`` files (200 × 200 cells, 24–72 hourly back-layers,
sparse plume-like footprints) to a temporary directory, then measures in the same run

1. the I/O floor: open each file with xarray and load ``foot`` (no processing);
2. ``assemble_receptors`` (read, bin, regrid, threshold, CSR) with the threads scheduler,

and prints throughput (files/s, MB/s), peak RSS, the CSR size and the ratios
(target: assembly ≥ 50 % of the I/O floor throughput; peak memory < 2 × CSR + one chunk).

Usage: ``python benchmarks/footprints.py --n 200`` (N = 100 … 10 000).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import Run, add_json_argument

from inversion import Grid, StateVector, TimeAxis
from transport_models.operator import assemble_receptors


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_files(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    lat = 39.5 + 0.01 * (np.arange(200) + 0.5)
    lon = -113.0 + 0.01 * (np.arange(200) + 0.5)
    yy, xx = np.meshgrid(np.arange(200), np.arange(200), indexing="ij")
    t0 = np.datetime64("2015-12-10T00:00", "ns")
    paths = []
    for k in range(n):
        nl = int(rng.integers(24, 73))
        rt = t0 + np.timedelta64(k % 240, "h")
        times = rt - np.arange(nl, 0, -1) * np.timedelta64(1, "h")
        cy, cx = rng.uniform(60, 140, size=2)
        # a plume drifting upwind with age; zero beyond ~4 sigma like real STILT output
        age = np.arange(nl, 0, -1)[:, None, None]
        sig = 3.0 + 0.5 * age
        d2 = (yy - cy - 0.8 * age) ** 2 + (xx - cx - 1.2 * age) ** 2
        foot = (np.exp(-d2 / (2 * sig**2)) * 1e-3 / age).astype("f4")
        foot[foot < 1e-9] = 0
        ds = xr.Dataset(
            {"foot": (("time", "lat", "lon"), foot, {"units": "ppm (umol-1 m2 s)"})},
            coords={"time": times, "lat": lat, "lon": lon},
            attrs={"crs": "+proj=longlat"},
        )
        ts = pd.Timestamp(rt).strftime("%Y%m%d%H%M")
        p = folder / f"{ts}_{-112.0 + 0.001 * k:.3f}_40.5_5_foot.nc"
        ds.to_netcdf(p, encoding={"foot": {"zlib": True, "complevel": 1}})
        paths.append(p)
    return paths


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="number of footprint files")
    ap.add_argument("--chunk", type=int, default=16, help="files per dask task")
    ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each (median)")
    add_json_argument(ap)
    args = ap.parse_args(argv)
    run = Run("footprints", argv, args.json)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        paths = write_files(Path(tmp), args.n)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"wrote {args.n} files ({mb:.1f} MB on disk) in {time.perf_counter() - t:.1f} s")
        grid = Grid.from_bounds("EPSG:4326", (-113.0, 39.5, -111.0, 41.5), 0.01)
        axis = TimeAxis.regular("2015-12-06", "2015-12-21", "6h")
        state = StateVector(grid, axis)
        assemble_receptors(paths[:1], state)  # compile the numba kernels outside the timing
        rss0 = _rss_mb()
        ios, hs = [], []
        for i in range(max(1, args.repeat)):  # interleaved; peak RSS from the first run
            t = time.perf_counter()
            for p in paths:
                with xr.open_dataset(p) as ds:
                    ds["foot"].load()
            ios.append(time.perf_counter() - t)
            t = time.perf_counter()
            op = assemble_receptors(
                paths, state, chunk_files=args.chunk, scheduler=args.scheduler, threshold=1e-7
            )
            hs.append(time.perf_counter() - t)
            if i == 0:
                rss = _rss_mb()
        t_io, t_h = statistics.median(ios), statistics.median(hs)
    h = op.H
    csr_mb = (h.data.nbytes + h.indices.nbytes + h.indptr.nbytes) / 1e6
    raw_mb = sum(72 * 200 * 200 * 4 for _ in range(args.chunk)) / 1e6  # worst-case chunk
    print(f"I/O floor (xarray open+load): {args.n / t_io:8.1f} files/s {mb / t_io:8.1f} MB/s")
    print(f"assemble H                  : {args.n / t_h:8.1f} files/s {mb / t_h:8.1f} MB/s")
    print(f"throughput ratio H / I/O floor: {t_io / t_h:.2f}  (target >= 0.50)")
    print(
        f"H: {h.shape}, nnz {h.nnz}, CSR {csr_mb:.1f} MB; dropped {op.report.dropped_fraction:.2e}"
    )
    print(
        f"peak RSS {rss:.0f} MB (before timing {rss0:.0f} MB); growth {rss - rss0:.0f} MB vs "
        f"2 x CSR + one chunk = {2 * csr_mb + raw_mb:.0f} MB"
    )
    run.add(n_files=args.n, t_io=ios, t_assemble=hs, rss_growth_mb=rss - rss0, display={
        "files": args.n, "assemble H [files/s]": f"{args.n / t_h:.1f}",
        "xarray open + load [files/s]": f"{args.n / t_io:.1f}",
        "throughput ratio H / I/O": f"{t_io / t_h:.2f}",
        "RSS growth [MB] (bound)": f"{rss - rss0:.0f} ({2 * csr_mb + raw_mb:.0f})",
    })  # fmt: skip
    run.finish()


if __name__ == "__main__":
    main()
