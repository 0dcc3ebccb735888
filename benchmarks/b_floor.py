"""The prior covariance product B·x against its memory-bandwidth floor.

B = D (C_t ⊗ C_s) D of ``benchmarks/urban_scale.py``: case ``bay`` (default; 105 x 130 cells
of 1 km, 96 hourly steps) or ``regional`` (250 x 400 cells, 100 steps), exponential C_s with
L = 5 km by FFT, exponential C_t with τ = 6 h: Markov.

Floor: a product must at least read x and D and write B·x, 3 x 8 bytes per unknown; at the
memory bandwidth measured here (STREAM-like copy of a 512 MB array, read + write) that takes
``24 n / bandwidth`` seconds. The FFT work itself (the torus is about 4.4 times the grid, and
every time slice needs a forward and an inverse 2-D transform) is the other reference:
the convolution alone, timed on the same fields.

A third reference is arithmetic: the FFT convolution's nominal operation count (the FFTW
benchmark convention, 2.5 N log₂ N for a real transform of N points: a forward and an inverse
transform of the torus per time slice, plus the spectral product) at the rate this machine
reaches in a matrix product (DGEMM, SGEMM for single precision, all cores). That is what the
FFT would cost if it ran as fast as the best-tuned dense kernel; where it alone is above a
target multiple of the bandwidth floor, no exact FFT convolution meets that target here.

Rows (median of ``--repeat`` runs each, all in this process; ratios from this one run):

- B·x (one column), B·X per column for 5 columns, L·w and Lᵀ·x;
- the same with C_t as a plain dense matrix (the BLAS path B used before the Markov
  recursion) — the reference for the O(nt) temporal product;
- FFT threads: the default choice against one thread;
- single-precision spectra (``with_precision("single")``): time and measured relative error
  (2-norm and max over the columns), which :data:`inversion.covariance._grid.
  SINGLE_PRECISION_RTOL` must bound;
- a 320 MB array allocated afresh a few seconds after the last was freed, with glibc's
  default settings and with :func:`inversion.retain_freed_memory` (on for every other row);
- single precision on 4 columns (the batched solves of the totals) against the same
  convolution with its FFTs along the strided axes of the (time, space, column) layout (the
  layout used before; reference), and the two results compared;
- the separable exponential kernel (``kind="separable_exponential"``,
  :class:`inversion.covariance.SeparableGridCorrelation`: exp(−(|Δy| + |Δx|)/L), the same L,
  O(n) recursions, no FFT): B·x (ratio to the isotropic B·x of this run), 5 columns, L·w, Lᵀ·x
  and C_s alone, with B·x checked against the product by the per-axis dense matrices.

Usage::

    python benchmarks/b_floor.py --repeat 7 --json results/b_floor.json
    python benchmarks/b_floor.py --case regional --repeat 5 --json results/b_floor_regional.json
"""

from __future__ import annotations

import argparse

import numpy as np
from _machine import Run, add_json_argument, timed

CASES = {
    "bay": {"ny": 105, "nx": 130, "nt": 96, "length_km": 5.0, "step_hours": 1.0, "tau_hours": 6.0},
    "regional": {"ny": 250, "nx": 400, "nt": 100, "length_km": 5.0, "step_hours": 1.0,
                 "tau_hours": 6.0},
}  # fmt: skip
CASE = CASES["bay"]


def strided_fields(spatial, F: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Reference: C_s on fields F (m, ny, nx, k) with the FFTs along the strided axes of the
    (time, space, column) layout, as ``RegularGridCorrelation._apply_fields`` did before."""
    import scipy.fft

    from inversion.covariance._grid import _FFT_BATCH_CELLS, fft_workers

    m, ny, nx, k = F.shape
    My, Mx = spatial.embedding_shape
    spec = spatial._spec(spatial._mv_spec)[:, :, None]
    out = np.empty(F.shape)
    batch = max(1, _FFT_BATCH_CELLS // (My * Mx * k))
    w = spatial.fft_workers or fft_workers(min(batch, m) * k)
    for start in range(0, m, batch):
        stop = min(start + batch, m)
        f = F[start:stop].astype(spec.real.dtype)
        f = scipy.fft.rfft(f, n=Mx, axis=2, workers=w)
        f = scipy.fft.fft(f, n=My, axis=1, workers=w, overwrite_x=True)
        f *= spec
        f = scipy.fft.ifft(f, axis=1, workers=w, overwrite_x=True)[:, :ny]
        f = scipy.fft.irfft(f, n=Mx, axis=2, workers=w)[:, :, :nx]
        np.multiply(f, scale[start:stop, :, :, None], out=out[start:stop])
    return out


def bandwidth(repeat: int) -> float:
    """Memory bandwidth [bytes/s]: copy of a 512 MB array (read + write), median."""
    a = np.ones(2**26)
    b = np.empty_like(a)
    t, _ = timed(lambda: np.copyto(b, a), repeat)
    return 2 * a.nbytes / t


def gemm_rate(repeat: int, dtype) -> float:
    """Floating-point operations per second of a 2,000 x 2,000 matrix product (BLAS, all its
    threads), median."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2000, 2000)).astype(dtype)
    b = rng.standard_normal((2000, 2000)).astype(dtype)
    a @ b
    t, _ = timed(lambda: a @ b, repeat)
    return 2 * 2000**3 / t


def fft_convolution_flops(spatial, nt: int) -> float:
    """Nominal operations of C_s on nt fields: per field a real forward and inverse 2-D FFT
    of the torus (2.5 M log₂ M each, M = its points) and the spectral product (2 per complex
    coefficient)."""
    My, Mx = spatial.embedding_shape
    m = My * Mx
    return nt * (5.0 * m * np.log2(m) + 2.0 * My * (Mx // 2 + 1))


def make_b(temporal_dense: bool = False, fft_workers: int | None = None, separable: bool = False):
    from inversion.covariance import (
        DenseCovariance,
        KroneckerCovariance,
        RegularGridCorrelation,
        SeparableGridCorrelation,
        TemporalCorrelation,
    )

    c = CASE
    rng = np.random.default_rng(2)
    if separable:
        spatial = SeparableGridCorrelation((c["ny"], c["nx"]), 1.0, c["length_km"])
    else:
        spatial = RegularGridCorrelation(
            (c["ny"], c["nx"]), 1.0, "exponential", c["length_km"], fft_workers=fft_workers
        )
    temporal = TemporalCorrelation(c["tau_hours"], nt=c["nt"], step_hours=c["step_hours"])
    if temporal_dense:
        temporal = DenseCovariance(temporal.to_dense())
    std = rng.uniform(0.5, 1.5, (c["nt"], c["ny"] * c["nx"]))
    return KroneckerCovariance(std, spatial, temporal)


def separable_reference_error(Bs, x: np.ndarray) -> float:
    """Max-norm relative difference of the separable B·x and D (C_t ⊗ C_y ⊗ C_x) D x with
    the three axes' correlation matrices written out densely (an einsum, no recursion)."""
    from inversion.covariance._kernels import ar1_matrix

    ny, nx = Bs.spatial.grid_shape
    nt = Bs.nt
    std = Bs.std.reshape(nt, ny, nx)
    Cy, Cx = ar1_matrix(ny, Bs.spatial.rho[0]), ar1_matrix(nx, Bs.spatial.rho[1])
    Ct = Bs.temporal.to_dense()
    u = std * x.reshape(nt, ny, nx)
    ref = std * np.einsum("ts,syx,ay,bx->tab", Ct, u, Cy, Cx, optimize=True)
    out = (Bs @ x).reshape(nt, ny, nx)
    return float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))


def fresh_array_cost(repeat: int, idle: float = 3.0) -> tuple[float, float]:
    """Seconds to fill a 320 MB array allocated afresh ``idle`` s after the last one was
    freed: with glibc's default settings, then after :func:`inversion.retain_freed_memory`
    (call first in a process: the setting cannot be undone)."""
    import time

    from inversion import retain_freed_memory

    src = np.ones(40_000_000)

    def one() -> float:
        time.sleep(idle)  # freed pages may be handed back to the host meanwhile
        t0 = time.perf_counter()
        a = np.empty_like(src)
        np.copyto(a, src)
        t = time.perf_counter() - t0
        del a
        return t

    default = float(np.median([one() for _ in range(repeat)]))
    retain_freed_memory()
    one()  # the first allocation grows the heap
    retained = float(np.median([one() for _ in range(repeat)]))
    return default, retained


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="runs per figure (median reported)")
    ap.add_argument("--case", choices=sorted(CASES), default="bay", help="grid of B")
    add_json_argument(ap)
    args = ap.parse_args(argv)
    run = Run("b_floor", argv, args.json)
    global CASE
    CASE = CASES[args.case]

    t_fresh, t_kept = fresh_array_cost(min(args.repeat, 3))
    print(f"320 MB array filled 3 s after the last was freed: {t_fresh * 1e3:.0f} ms (glibc "
          f"default), {t_kept * 1e3:.0f} ms (retain_freed_memory, on from here)")  # fmt: skip
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
    flops = fft_convolution_flops(B.spatial, nt)
    rate64, rate32 = gemm_rate(args.repeat, np.float64), gemm_rate(args.repeat, np.float32)
    t_c64, t_c32 = flops / rate64, flops / rate32
    print(f"FFT convolution: {flops / 1e6:.0f} Mflop nominal, run at {flops / t_fft / 1e9:.1f} "
          f"GFLOP/s; DGEMM {rate64 / 1e9:.1f}, SGEMM {rate32 / 1e9:.1f} GFLOP/s here -> at "
          f"those rates {t_c64 * 1e3:.2f} ms = {t_c64 / floor:.1f}x the floor (double), "
          f"{t_c32 * 1e3:.2f} ms = {t_c32 / floor:.1f}x (single)")  # fmt: skip
    B32 = B.with_precision("single")
    B32 @ x
    t_32 = row("B·x, single-precision spectra", lambda: B32 @ x, ref=t_bx)
    exact, approx = B @ X5, B32 @ X5
    err2 = np.linalg.norm(approx - exact, axis=0) / np.linalg.norm(exact, axis=0)
    errmax = np.max(np.abs(approx - exact), axis=0) / np.max(np.abs(exact), axis=0)
    from inversion.covariance._grid import SINGLE_PRECISION_RTOL

    # 4 columns in single precision: contiguous FFT lines against the strided layout
    X4 = np.ascontiguousarray(X5[:, :4])
    S32 = B32.spatial
    F4 = X4.reshape(nt, ny, nx, 4)
    sc = B.std.reshape(nt, ny, nx)
    t_strided = row("C_s on 4-column fields, single, strided FFT axes (reference)",
                    lambda: strided_fields(S32, F4, sc), per=4)  # fmt: skip
    row("C_s on 4-column fields, single", lambda: S32._apply_fields(F4, scale=sc), per=4,
        ref=t_strided)  # fmt: skip
    row("B·X per column, 4 columns, single precision", lambda: B32 @ X4, per=4)
    layout_diff = float(
        np.max(np.abs(S32._apply_fields(F4, scale=sc) - strided_fields(S32, F4, sc)))
        / np.max(np.abs(strided_fields(S32, F4, sc)))
    )
    print(f"the two layouts differ by {layout_diff:.1e} (max-norm, relative)")
    print(f"single precision: relative error 2-norm max {err2.max():.2e}, max-norm "
          f"{errmax.max():.2e} (stated bound {SINGLE_PRECISION_RTOL:g})")  # fmt: skip
    # the separable exponential kernel: O(n) recursions along y, x and t, no FFT
    Bs = make_b(separable=True)
    ws = rng.standard_normal(Bs.sqrt_dim)
    for f in (lambda: Bs @ x, lambda: Bs @ X5, lambda: Bs.sqrt_matvec(ws)):
        f()  # numba compilation
    t_sep = row("B·x, separable C_s (vs the isotropic B·x)", lambda: Bs @ x, ref=t_bx)
    row("B·X per column, 5 columns, separable C_s", lambda: Bs @ X5, per=5)
    row("L·w, separable C_s", lambda: Bs.sqrt_matvec(ws))
    row("Lᵀ·x, separable C_s", lambda: Bs.sqrt_rmatvec(x))
    row("separable C_s alone (nt fields)", lambda: Bs.spatial._apply_rows(fields))
    sep_err = separable_reference_error(Bs, x)
    print(f"separable B·x against the per-axis dense matrices: {sep_err:.1e} (max-norm, "
          "relative)")  # fmt: skip
    print(f"B·x = {t_bx * 1e3:.1f} ms = {t_bx / floor:.1f}x the bandwidth floor "
          f"({floor * 1e3:.2f} ms), {t_bx / t_fft:.2f}x the FFT convolution alone; single "
          f"precision {t_32 / floor:.1f}x the floor; separable C_s {t_sep * 1e3:.2f} ms = "
          f"{t_sep / floor:.1f}x the floor")  # fmt: skip
    run.add(case=CASE, n=n, bandwidth_gbs=bw / 1e9, floor_s=floor, rows=rows,
            single_rel_err_2norm=float(err2.max()), single_rel_err_max=float(errmax.max()),
            single_bound=SINGLE_PRECISION_RTOL, layout_rel_diff=layout_diff,
            separable_rel_err=sep_err, separable_floor_ratio=t_sep / floor,
            fft_mflop=flops / 1e6, fft_gflops=flops / t_fft / 1e9, dgemm_gflops=rate64 / 1e9,
            sgemm_gflops=rate32 / 1e9, fft_at_dgemm_floor_ratio=t_c64 / floor,
            fft_at_sgemm_floor_ratio=t_c32 / floor,
            fresh_array_s=t_fresh, retained_array_s=t_kept)  # fmt: skip
    for r in rows:
        run.add(table=f"B at the {args.case} size ({n:,} unknowns)", display={
            "product": r["name"], "median [ms]": f"{r['seconds'] * 1e3:.1f}",
            "x the bandwidth floor": f"{r['floor_ratio']:.0f}",
            "speed-up vs reference": f"{r['speedup_vs_ref']:.2f}x" if r["speedup_vs_ref"] else "",
        })  # fmt: skip
    run.add(note=(
        f"Bandwidth {bw / 1e9:.1f} GB/s (copy of 512 MB), floor {floor * 1e3:.2f} ms (24 bytes "
        f"per unknown). Single-precision spectra: relative error {err2.max():.1e} (2-norm), "
        f"{errmax.max():.1e} (max-norm); stated bound {SINGLE_PRECISION_RTOL:g}. The two "
        f"4-column layouts agree to {layout_diff:.0e} (max-norm, relative). The separable "
        f"B·x equals the product by the per-axis dense matrices to {sep_err:.0e} (max-norm, "
        f"relative). The FFT convolution: {flops / 1e6:.0f} Mflop nominal (2.5 M log2 M per "
        f"real transform of M points), run at {flops / t_fft / 1e9:.1f} GFLOP/s; at the "
        f"DGEMM rate of this machine ({rate64 / 1e9:.0f} GFLOP/s) it would take "
        f"{t_c64 * 1e3:.2f} ms = {t_c64 / floor:.1f}x the floor, at the SGEMM rate "
        f"({rate32 / 1e9:.0f} GFLOP/s) {t_c32 * 1e3:.2f} ms = {t_c32 / floor:.1f}x. A 320 MB array "
        f"allocated and filled 3 s after the last was freed: {t_fresh * 1e3:.0f} ms with glibc's "
        f"default settings, {t_kept * 1e3:.0f} ms with retain_freed_memory (used for every "
        f"row above)."
    ))  # fmt: skip
    run.finish()


if __name__ == "__main__":
    main()
