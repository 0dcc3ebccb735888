"""Accuracy benchmark: plume column rows against the number of retrieval levels.

The same XCO2 sounding is given on 20 levels (Lite-like: evenly spaced in pressure from the
surface to the top, pressure weights = the levels' pressure-interval fractions) and on 400
levels. A 1 km city grid lies upwind (westerly wind); the column stands at its east end. For
stability classes C and D this prints

1. the largest relative difference between the 20-level and the 400-level row entries of the
   cells 1–25 km upwind on the column's line, and of the crosswind sums at those distances;
2. the far-field (25 km) crosswind sum on 400 levels against the well-mixed boundary-layer
   value ``dx / (u zi n) · (p_s - p(zi)) / p_s`` (``n`` the air molar density of the met
   hour, ``p(zi) = p_s exp(-zi / H)`` with ``H = R_d T / g``), i.e. ``Q / (u zi W)`` diluted by
   the column's pressure fraction of the mixed layer (with ``--ak sloped`` the fraction is
   weighted by the averaging kernel ``a(p) = 0.55 + 0.45 p / p_s``: ``∫ a dp / p_s`` over the
   mixed layer).

Usage: ``python benchmarks/plume_column_levels.py [--zi 1000] [--ak sloped]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inversion import Grid, TimeAxis
from transport_models import PlumeMet, plume_operator

R_DRY, G0, R_GAS = 287.05, 9.80665, 8.314462618
P_S, T_K, U = 1000.0, 288.15, 3.0
NX, NY, RES = 30, 41, 1000.0
T0 = np.datetime64("2024-07-01T12:00", "ns")


def levels(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Level pressures [hPa] surface -> top and their pressure-interval fractions [1]."""
    p = P_S * (1.0 - np.arange(n) / (n - 1))
    p[-1] = 0.01 * P_S / (n - 1)  # the top level just above 0 hPa
    edges = np.concatenate([[P_S], 0.5 * (p[1:] + p[:-1]), [0.0]])
    return p, (edges[:-1] - edges[1:]) / P_S


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sounding(grid: Grid, n: int, ak: str) -> xr.Dataset:
    p, pw = levels(n)
    a = np.ones(n) if ak == "one" else 0.55 + 0.45 * p / P_S
    lon, lat = grid.to_lonlat(14_500.0, 0.0)
    return xr.Dataset(
        {
            "value": ("obs", [0.0]),
            "time": ("obs", [T0]),
            "kind": ("obs", ["column"]),
            "site": ("obs", ["sounding"]),
            "lat": ("obs", [float(lat)]),
            "lon": ("obs", [float(lon)]),
            "alt": ("obs", [0.0], {"reference": "asl"}),
            "pressure": (("obs", "level"), p[None]),
            "pressure_weight": (("obs", "level"), pw[None]),
            "averaging_kernel": (("obs", "level"), a[None]),
            "surface_pressure": ("obs", [P_S]),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--zi", type=float, default=1000.0, help="mixing height [m]")
    ap.add_argument("--ak", choices=("one", "sloped"), default="one", help="averaging kernel")
    args = ap.parse_args()
    print(f"machine: {cpu_model()}, cores {os.cpu_count()}, numba threads "
          f"{numba.get_num_threads()}, load average at start {os.getloadavg()}")  # fmt: skip
    grid = Grid.local(-111.9, 40.75, nx=NX, ny=NY, resolution_m=RES)
    axis = TimeAxis.regular("2024-07-01", "2024-07-02", "1D")
    dist = np.arange(1, 26)
    ix = NX - 1 - dist  # cells 1..25 km upwind of the column (at the east cell centre)
    iy = NY // 2
    n_air = P_S * 100.0 / (R_GAS * T_K)
    f = np.exp(-args.zi / (R_DRY * T_K / G0))  # p(zi) / p_s
    frac = 1.0 - f if args.ak == "one" else 0.55 * (1.0 - f) + 0.225 * (1.0 - f * f)
    mixed = RES / (U * args.zi * n_air) * frac
    t = time.perf_counter()
    for cls in ("C", "D"):
        met = PlumeMet(T0, U, 270.0, args.zi, cls, pressure=P_S, temperature=T_K)
        rows = {}
        for n in (20, 400):
            h = plume_operator(sounding(grid, n, args.ak), grid, axis, met).toarray()[0]
            rows[n] = h.reshape(NY, NX)
        line = np.abs(rows[20][iy, ix] / rows[400][iy, ix] - 1.0)
        cross = np.abs(rows[20].sum(0)[ix] / rows[400].sum(0)[ix] - 1.0)
        far = rows[400].sum(0)[ix[-1]] / mixed - 1.0
        print(
            f"class {cls}: 20 vs 400 levels, max |rel diff| 1-25 km: centre line "
            f"{100 * line.max():.3g} % (at {dist[np.argmax(line)]} km), crosswind sums "
            f"{100 * cross.max():.3g} % (at {dist[np.argmax(cross)]} km); far field (25 km) "
            f"400 levels vs well-mixed: {100 * far:+.3g} %"
        )
    print(f"elapsed {time.perf_counter() - t:.1f} s; load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
