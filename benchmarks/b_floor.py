"""The prior covariance product B·x against its memory-bandwidth floor, at the Bay Area size.

B = D (C_t ⊗ C_s) D of ``benchmarks/urban_scale.py`` (case ``bay``: 105 x 130 cells of 1 km,
96 hourly steps, exponential C_s with L = 5 km by FFT, exponential C_t with τ = 6 h: Markov).

Floor: a product must at least read x and D and write B·x, 3 x 8 bytes per unknown; at the
memory bandwidth measured here (STREAM-like copy of a 512 MB array, read + write) that takes
``24 n / bandwidth`` seconds. The FFT work itself (the torus is about 4.4 times the grid, and
every time slice needs a forward and an inverse 2-D transform) is the other reference:
the convolution alone, timed on the same fields.

Rows (median of ``--repeat`` runs each, all in this process; ratios from this one run):

- B·x (one column), B·X per column for 5 columns, L·w and Lᵀ·x;
- the same with C_t as a plain dense matrix (the BLAS path B used before the Markov
  recursion) — the reference for the O(nt) temporal product;
- FFT threads: the default choice against one thread;
- single-precision spectra (``with_precision("single")``): time and measured relative error
  (2-norm and max over the columns), which :data:`inversion.covariance._grid.
  SINGLE_PRECISION_RTOL` must bound.

Usage::

    python benchmarks/b_floor.py --repeat 7 --json results/b_floor.json
"""

from __future__ import annotations

import argparse

import numpy as np
from _machine import Run, add_json_argument, timed

CASE = {"ny": 105, "nx": 130, "nt": 96, "length_km": 5.0, "step_hours": 1.0, "tau_hours": 6.0}


def bandwidth(repeat: int) -> float:
    """Memory bandwidth [bytes/s]: copy of a 512 MB array (read + write), median."""
    a = np.ones(2**26)
    b = np.empty_like(a)
    t, _ = timed(lambda: np.copyto(b, a), repeat)
    return 2 * a.nbytes / t


def make_b(temporal_dense: bool = False, fft_workers: int | None = None):
    from inversion.covariance import (
        DenseCovariance,
        KroneckerCovariance,
        RegularGridCorrelation,
        TemporalCorrelation,
    )

    c = CASE
    rng = np.random.default_rng(2)
    spatial = RegularGridCorrelation(
        (c["ny"], c["nx"]), 1.0, "exponential", c["length_km"], fft_workers=fft_workers
    )
    temporal = TemporalCorrelation(c["tau_hours"], nt=c["nt"], step_hours=c["step_hours"])
    if temporal_dense:
        temporal = DenseCovariance(temporal.to_dense())
    std = rng.uniform(0.5, 1.5, (c["nt"], c["ny"] * c["nx"]))
    return KroneckerCovariance(std, spatial, temporal)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="runs per figure (median reported)")
    add_json_argument(ap)
    args = ap.parse_args(argv)
    run = Run("b_floor", argv, args.json)

    B = make_b()
    n = B.shape[0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    X5 = rng.standard_normal((n, 5))
    w = rng.standard_normal(B.sqrt_dim)
    for f in (lambda: B @ x, lambda: B @ X5, lambda: B.sqrt_matvec(w)):
        f()  # numba compilation, FFT plans
    bw = bandwidth(args.repeat)
    floor = 24.0 * n / bw
    print(f"B: {n:,} unknowns ({CASE}); torus {B.spatial.embedding_shape}")
    print(f"memory bandwidth {bw / 1e9:.1f} GB/s -> floor of B·x (read x, D; write Bx) "
          f"{floor * 1e3:.2f} ms")  # fmt: skip
    rows = []

    def row(name: str, fn, per: int = 1, ref: float | None = None) -> float:
        t, times = timed(fn, args.repeat)
        t /= per
        extra = f", {ref / t:.2f}x faster than the reference" if ref else ""
        print(f"{name:<46} {t * 1e3:8.2f} ms  {t / floor:6.1f}x the floor{extra}", flush=True)
        rows.append({"name": name, "seconds": t, "runs": [v / per for v in times],
                     "floor_ratio": t / floor, "speedup_vs_ref": (ref / t) if ref else None})  # fmt: skip
        return t

    Bd = make_b(temporal_dense=True)
    B1 = make_b(fft_workers=1)
    Bd @ x
    B1 @ x
    t_ref = row("B·x, C_t as a dense matrix (BLAS; reference)", lambda: Bd @ x)
    t_bx = row("B·x (Markov C_t, default FFT threads)", lambda: B @ x, ref=t_ref)
    row("B·x, one FFT thread", lambda: B1 @ x)
    row("B·X per column, 5 columns (C_t dense; reference)", lambda: Bd @ X5, per=5)
    row("B·X per column, 5 columns", lambda: B @ X5, per=5)
    row("L·w (square root)", lambda: B.sqrt_matvec(w))
    row("Lᵀ·x", lambda: B.sqrt_rmatvec(x))
    ny, nx, nt = CASE["ny"], CASE["nx"], CASE["nt"]
    fields = rng.standard_normal((nt, ny * nx))
    t_fft = row("FFT convolution alone (C_s on nt fields)", lambda: B.spatial._apply_rows(fields))
    B32 = B.with_precision("single")
    B32 @ x
    t_32 = row("B·x, single-precision spectra", lambda: B32 @ x, ref=t_bx)
    exact, approx = B @ X5, B32 @ X5
    err2 = np.linalg.norm(approx - exact, axis=0) / np.linalg.norm(exact, axis=0)
    errmax = np.max(np.abs(approx - exact), axis=0) / np.max(np.abs(exact), axis=0)
    from inversion.covariance._grid import SINGLE_PRECISION_RTOL

    print(f"single precision: relative error 2-norm max {err2.max():.2e}, max-norm "
          f"{errmax.max():.2e} (stated bound {SINGLE_PRECISION_RTOL:g})")  # fmt: skip
    print(f"B·x = {t_bx * 1e3:.1f} ms = {t_bx / floor:.1f}x the bandwidth floor "
          f"({floor * 1e3:.2f} ms), {t_bx / t_fft:.2f}x the FFT convolution alone; single "
          f"precision {t_32 / floor:.1f}x the floor")  # fmt: skip
    run.add(case=CASE, n=n, bandwidth_gbs=bw / 1e9, floor_s=floor, rows=rows,
            single_rel_err_2norm=float(err2.max()), single_rel_err_max=float(errmax.max()),
            single_bound=SINGLE_PRECISION_RTOL)  # fmt: skip
    for r in rows:
        run.add(table=f"B at the Bay Area size ({n:,} unknowns)", display={
            "product": r["name"], "median [ms]": f"{r['seconds'] * 1e3:.1f}",
            "x the bandwidth floor": f"{r['floor_ratio']:.0f}",
            "speed-up vs reference": f"{r['speedup_vs_ref']:.2f}x" if r["speedup_vs_ref"] else "",
        })  # fmt: skip
    run.add(note=(
        f"Bandwidth {bw / 1e9:.1f} GB/s (copy of 512 MB), floor {floor * 1e3:.2f} ms (24 bytes "
        f"per unknown). Single-precision spectra: relative error {err2.max():.1e} (2-norm), "
        f"{errmax.max():.1e} (max-norm); stated bound {SINGLE_PRECISION_RTOL:g}."
    ))  # fmt: skip
    run.finish()


if __name__ == "__main__":
    main()
