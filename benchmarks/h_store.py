"""Reading a chunked H store (zarr) once, as every out-of-core product does, by codec and reader.

H is footprint-like (``solve_scaling.make_h``, the regional grid of ``urban_scale.py`` with
``--n-obs`` observations). The stores ``write_chunked_h`` writes (int32 indices; raw chunks,
the default, or ``compression="lz4"``: Blosc LZ4 with byte shuffle) are compared with the
reference: the same arrays with zarr's default codec (zstd) and int64 indices, as the store was
first written. Raw chunks are read directly (``preadv`` of the chunk files into the arrays, what
``ChunkedOperator.open`` does) and, for comparison, through zarr's reader. The files are read
from the OS page cache (they were just written), except in the rows marked "from disk": there
every file of the store is evicted from the page cache (``posix_fadvise(DONTNEED)``, untimed)
before each pass, so the pass reads the disk (or whatever caches the disk behind it).
Reported: size on disk, median time of one full pass reading every block (``--repeat``), and
the ratio, measured in this run.

Second table: one out-of-core product (no cache; the store read at every product) with 1 and
4 columns, from a store without the transposed copy (``H·X`` by rows of H, gathering rows of
X; ``Hᵀ·V`` scattering every block into per-thread (n_state, k) accumulators; reference)
against the copy of Hᵀ ``write_chunked_h`` writes beside H (``transpose=True``, the default),
from the page cache and from disk.
The gain grows with the number of observations (``--n-obs``; 100,000 is the regional case).

Usage::

    python benchmarks/h_store.py --n-obs 100000 --json benchmarks/results/h_store.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

from _machine import Run, add_json_argument, timed  # noqa: E402


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _evict(path: Path) -> None:
    """Drop every file of ``path`` from the OS page cache (the next read goes to the disk)."""
    for f in path.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _through_zarr(op):
    """``op`` with its raw chunks read by zarr's reader instead of directly."""
    for b in op._blocks + op._t_blocks:
        b.raw = (None, None, None)
    return op


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-obs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    add_json_argument(ap)
    args = ap.parse_args(argv)
    bench = Run("h_store", argv, args.json)
    import zarr
    from solve_scaling import Case, make_h

    from inversion import retain_freed_memory
    from inversion.chunked import ChunkedOperator, write_chunked_h

    retain_freed_memory()  # as the cityflux command does: no page faults on every fresh array

    H = make_h(Case(250, 400, 100, args.n_obs))
    H.sort_indices()
    print(f"H: {H.shape[0]:,} x {H.shape[1]:,}, {H.nnz:,} non-zeros", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        lz4 = write_chunked_h(H, Path(tmp) / "lz4.zarr", 2000, transpose=False, compression="lz4")
        new = write_chunked_h(H, Path(tmp) / "new.zarr", 2000, transpose=False)
        old = Path(tmp) / "reference.zarr"
        g_new = zarr.open_group(str(lz4), mode="r")
        g = zarr.open_group(str(old), mode="w")
        g.attrs.update(dict(g_new.attrs))
        chunk = g_new["data"].chunks
        g.create_array("indptr", data=np.asarray(H.indptr, dtype="i8"))
        for name, arr, dt in (("data", H.data, "f8"), ("indices", H.indices, "i8")):
            g.create_array(name, shape=arr.shape, chunks=chunk, dtype=dt)[:] = arr
        x = np.ones(H.shape[1])
        rows = []
        for label, path, how in (
            ("zstd (zarr default), int64 indices; reference", old, "zarr"),
            ("Blosc LZ4 + shuffle, int32 indices (compression='lz4')", lz4, "zarr"),
            ("raw, int32 indices, read by zarr", new, "zarr"),
            ("raw, int32 indices, read directly (the default)", new, "direct"),
            ("raw, read directly, from disk", new, "disk"),
        ):
            op = ChunkedOperator.open(path)
            if how == "zarr":
                _through_zarr(op)
            assert np.allclose(op @ x, H @ x)
            t, runs = timed(
                lambda op=op: [op.block(k) for k in range(op.n_blocks)], args.repeat,
                setup=(lambda path=path: _evict(path)) if how == "disk" else None,
            )  # fmt: skip
            rows.append((label, _size(path), t, runs))
        both = write_chunked_h(H, Path(tmp) / "both.zarr", 2000)
        rng = np.random.default_rng(1)
        products = []  # (label, columns, store size, seconds, runs, reference seconds)
        plain_op, copy_op = ChunkedOperator.open(new), ChunkedOperator.open(both)
        for k in (1, 4):
            X = rng.standard_normal((H.shape[1], k))
            V = rng.standard_normal((H.shape[0], k))
            for name, f, ref in (("H·X", lambda op, X=X: op @ X, H @ X),
                                 ("Hᵀ·V", lambda op, V=V: op.T @ V, H.T @ V)):  # fmt: skip
                t_ref = None
                for how, op, path, cold in (("blocks of H (reference)", plain_op, new, False),
                                            ("transposed copy", copy_op, both, False),
                                            ("transposed copy, from disk", copy_op, both, True)):  # fmt: skip
                    got = f(op)
                    assert np.allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
                    t, runs = timed(lambda f=f, op=op: f(op), args.repeat,
                                    setup=(lambda path=path: _evict(path)) if cold else None)  # fmt: skip
                    t_ref = t if t_ref is None else t_ref
                    products.append((f"{name}, {how}", k, _size(path), t, runs, t_ref))
    t_ref = rows[0][2]
    for label, size, t, runs in rows:
        print(f"{label}: {size / 2**20:.0f} MiB, {size / H.nnz:.1f} B per non-zero, one pass "
              f"{t:.3f} s ({t_ref / t:.2f}x the reference)")  # fmt: skip
        bench.add(label=label, bytes=size, seconds=t, runs=runs, nnz=int(H.nnz), display={
            "store": label, "size [MiB]": f"{size / 2**20:.0f}",
            "bytes per non-zero": f"{size / H.nnz:.1f}", "one read pass [s]": f"{t:.3f}",
            "speed-up vs reference": f"{t_ref / t:.2f}x",
        })  # fmt: skip
    for label, k, size, t, runs, t_ref in products:
        print(f"{label}, {k} column(s): store {size / 2**20:.0f} MiB, {t:.3f} s "
              f"({t_ref / t:.2f}x the reference)")  # fmt: skip
        bench.add(label=label, columns=k, bytes=size, seconds=t, runs=runs, nnz=int(H.nnz),
                  table="one product out of core", display={
            "product": label, "columns": k, "store [MiB]": f"{size / 2**20:.0f}",
            "time [s]": f"{t:.3f}", "speed-up vs reference": f"{t_ref / t:.2f}x",
        })  # fmt: skip
    bench.finish()


if __name__ == "__main__":
    main()
