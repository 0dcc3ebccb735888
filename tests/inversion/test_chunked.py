"""Chunked / out-of-core H operators and the distributed paths of the cg solver."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from inversion.cg import CGOptions
from inversion.chunked import ChunkedOperator, as_chunked_operator, write_chunked_h
from inversion.covariance import DiagonalCovariance, kronecker_prior
from inversion.distributed import ClusterConfig, make_client, solve_windows
from inversion.errors import MemoryBudgetError
from inversion.problem import LinearProblem
from inversion.solve import solve


def _H(seed=0, n_obs=37, n_state=50):
    rng = np.random.default_rng(seed)
    return sp.random_array((n_obs, n_state), density=0.2, rng=rng, format="csr")


def _variants(H, tmp_path):
    yield "blocks", ChunkedOperator.from_blocks([H[:10], H[10:11], H[11:]])
    yield "sparse", ChunkedOperator.from_sparse(H, 8)
    yield "dask", as_chunked_operator(da.from_array(H.toarray(), chunks=(9, 20)))
    path = write_chunked_h(ChunkedOperator.from_sparse(H, 5), tmp_path / "H.zarr", chunk_rows=7)
    yield "zarr", ChunkedOperator.open(path)


@pytest.mark.parametrize("threads", ["1", "3"])  # serial, and blocks dealt to 3 accumulators
def test_chunked_equals_in_memory_and_adjoint(tmp_path, monkeypatch, threads):
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    H = _H()
    rng = np.random.default_rng(1)
    X, V = rng.standard_normal((50, 3)), rng.standard_normal((37, 3))
    for name, op in _variants(H, tmp_path):
        assert op.shape == H.shape, name
        assert_allclose(op @ X, H @ X, rtol=1e-14, atol=1e-14, err_msg=name)
        assert_allclose(op.T @ V, H.T @ V, rtol=1e-14, atol=1e-14, err_msg=name)
        x, v = X[:, 0], V[:, 0]
        lhs, rhs = v @ (op @ x), x @ (op.T @ v)  # adjoint (dot-product) test
        assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0), name


def test_zarr_store_errors(tmp_path):
    H = _H()
    path = write_chunked_h(H, tmp_path / "H.zarr", chunk_rows=10)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_chunked_h(H, path, chunk_rows=10)
    write_chunked_h(2 * H, path, chunk_rows=4, overwrite=True)
    assert_allclose(ChunkedOperator.open(path) @ np.ones(50), 2 * H @ np.ones(50), rtol=1e-14)
    with pytest.raises(FileNotFoundError, match="write_chunked_h"):
        ChunkedOperator.open(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match="chunk_rows must be a positive integer"):
        write_chunked_h(H, tmp_path / "x.zarr", chunk_rows=0)


def test_store_layout_and_earlier_stores_still_read(tmp_path):
    # new stores: int32 indices (n_state fits), raw chunks by default or Blosc LZ4; stores
    # written before (zarr's default zstd, int64 indices, no transposed copy) still open and
    # give the same products
    import zarr

    H = _H()
    H.sort_indices()
    g = zarr.open_group(str(write_chunked_h(H, tmp_path / "new.zarr", chunk_rows=10)), mode="r")
    assert g["indices"].dtype == np.int32 and g["data"].dtype == np.float64
    assert len(g["data"].compressors) == 0 and len(g["t"]["data"].compressors) == 0
    lz4 = zarr.open_group(
        str(write_chunked_h(H, tmp_path / "lz4.zarr", chunk_rows=10, compression="lz4")), mode="r"
    )
    assert "Blosc" in type(lz4["data"].compressors[0]).__name__
    assert "Blosc" in type(lz4["t"]["indices"].compressors[0]).__name__
    with pytest.raises(ValueError, match="compression must be one of"):
        write_chunked_h(H, tmp_path / "x.zarr", chunk_rows=10, compression="gzip")
    old = zarr.open_group(str(tmp_path / "old.zarr"), mode="w")
    old.attrs.update({**dict(g.attrs)})
    for name, arr in (("indptr", H.indptr), ("data", H.data), ("indices", H.indices)):
        old.create_array(name, data=np.asarray(arr, dtype="f8" if name == "data" else "i8"))
    x = np.random.default_rng(3).standard_normal(H.shape[1])
    v = np.random.default_rng(4).standard_normal(H.shape[0])
    for path in (tmp_path / "new.zarr", tmp_path / "lz4.zarr", tmp_path / "old.zarr"):
        op = ChunkedOperator.open(path)
        assert_allclose(op @ x, H @ x, rtol=1e-14, atol=1e-14)
        assert_allclose(op.T @ v, H.T @ v, rtol=1e-14, atol=1e-14)


def test_raw_chunks_are_read_directly_and_match_zarr(tmp_path):
    # raw stores (the default) are read by preadv from the chunk files (no zarr decode) in
    # both groups; ranges crossing chunk boundaries, the padded last chunk and chunks zarr
    # never wrote (all fill value) give what zarr gives; compressed stores go through zarr
    import zarr

    from inversion.chunked import _RawArray

    rng = np.random.default_rng(5)
    H = _H(seed=6)
    path = write_chunked_h(H, tmp_path / "H.zarr", chunk_rows=12)
    op = ChunkedOperator.open(path)
    assert all(r is not None for b in op._blocks + op._t_blocks for r in b.raw)
    z = zarr.open_group(str(tmp_path / "z.zarr"), mode="w").create_array(
        "a", shape=(10,), chunks=(4,), dtype="i4", compressors=None
    )
    z[:] = [1, 2, 3, 4, 0, 0, 0, 0, 9, 10]
    assert not (tmp_path / "z.zarr" / "a" / "c" / "1").exists()  # zarr skips all-fill chunks
    np.testing.assert_array_equal(_RawArray.of(tmp_path / "z.zarr" / "a").read(2, 10), z[2:10])
    v2 = zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2)
    v2.create_array("a", shape=(10,), chunks=(4,), dtype="i4", compressors=None)
    zarr.open_group(str(tmp_path / "be.zarr"), mode="w").create_array(
        "a", shape=(10,), chunks=(4,), dtype="i4", compressors=None,
        serializer=zarr.codecs.BytesCodec(endian="big"),
    )  # fmt: skip
    assert _RawArray.of(tmp_path / "v2.zarr" / "a") is None  # zarr v2: zarr decodes it
    assert _RawArray.of(tmp_path / "be.zarr" / "a") is None  # big-endian chunks
    g = zarr.open_group(str(path), mode="r")
    for name in ("indptr", "data", "indices", "t/indptr", "t/data", "t/indices"):
        raw = _RawArray.of(path / name)
        n = g[name].shape[0]
        for lo, hi in ((0, n), (0, 1), (n - 1, n), (n // 3, 2 * n // 3 + 1), (5, 5)):
            np.testing.assert_array_equal(raw.read(lo, hi), g[name][lo:hi], err_msg=name)
    X = rng.standard_normal((50, 2))
    assert_allclose(op @ X, H @ X, rtol=1e-14, atol=1e-14)
    assert_allclose(op.T @ X[:37], H.T @ X[:37], rtol=1e-14, atol=1e-14)
    lz4 = ChunkedOperator.open(write_chunked_h(H, tmp_path / "l.zarr", 12, compression="lz4"))
    assert all(r is None for r in lz4._blocks[0].raw)
    assert_allclose(lz4 @ X, H @ X, rtol=1e-14, atol=1e-14)
    # a truncated chunk file is an error naming it, not zeros
    chunk = path / "t" / "data" / "c" / "0"
    chunk.write_bytes(chunk.read_bytes()[:16])
    with pytest.raises(OSError, match=r"t/data/c/0 holds 16 of the .* truncated"):
        ChunkedOperator.open(path).T @ X[:37]


def _problem(H, seed=0):
    rng = np.random.default_rng(seed)
    B = kronecker_prior(0.5, (5, 5), 1.0, "exponential", 2.0, nt=2, step_hours=24.0,
                        tau_hours=24.0)  # fmt: skip
    y = rng.standard_normal(H.shape[0])
    return LinearProblem(H=H, x_prior=np.zeros(50), y=y, B=B, R=DiagonalCovariance(
        rng.uniform(0.1, 0.4, H.shape[0])))  # fmt: skip


def test_cg_on_zarr_h_matches_in_memory(tmp_path):
    H = _H()
    ref = solve(_problem(H), "dense")
    path = write_chunked_h(H, tmp_path / "H.zarr", chunk_rows=6)
    post = solve(_problem(ChunkedOperator.open(path)), "cg", cg=CGOptions(rank=37))
    assert_allclose(post.mean, ref.mean, rtol=1e-6, atol=1e-6 * np.abs(ref.mean).max())
    assert_allclose(post.std, ref.std, rtol=1e-6)


def test_distributed_cg_and_windows():
    H = _H()
    ref = solve(_problem(H), "dense")
    client = make_client(ClusterConfig(kind="local", jobs=1, cores=1, processes=False))
    try:
        post = solve(_problem(H), "cg", client=client, chunk_size=10)
        assert isinstance(post.problem.H, ChunkedOperator) and post.problem.H.n_blocks == 4
        assert_allclose(post.mean, ref.mean, rtol=1e-6, atol=1e-6 * np.abs(ref.mean).max())
        posts = solve_windows([_problem(H, 0), _problem(H, 1)], "obs-space", client=client)
        local = solve_windows([_problem(H, 0), _problem(H, 1)], "obs-space")
    finally:
        client.close()
    for a, b in zip(posts, local, strict=True):
        assert_allclose(a.mean, b.mean, rtol=1e-12)
    assert_allclose(posts[0].mean, ref.mean, rtol=1e-8, atol=1e-8)


def test_cluster_config_checks():
    with pytest.raises(ValueError, match="kind must be one of"):
        ClusterConfig(kind="sge")


def test_zarr_cache_keeps_blocks_within_budget(tmp_path, monkeypatch):
    import inversion.chunked as chunked

    # one thread: blocks are read in order, so which ones the budget admits is deterministic
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rng = np.random.default_rng(4)
    H = sp.random_array((40, 30), density=0.2, format="csr", rng=rng)
    # without the transposed copy: Hᵀ products come from the (cached) blocks of H
    path = write_chunked_h(H, tmp_path / "H.zarr", chunk_rows=10, transpose=False)
    loads = []
    real_load = chunked._ZarrBlock.load
    monkeypatch.setattr(chunked._ZarrBlock, "load", lambda self: loads.append(1) or real_load(self))
    x, v = rng.normal(size=30), rng.normal(size=40)
    # no cache: every product reads all 4 blocks
    op = ChunkedOperator.open(path)
    op @ x, op.T @ v
    assert len(loads) == 8
    # a budget for the first two blocks: they stay in memory, the others are read each time
    sizes = [m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in map(op.block, range(4))]
    loads.clear()
    op = ChunkedOperator.open(path, cache_bytes=sizes[0] + sizes[1])
    assert_allclose(op @ x, H @ x, rtol=1e-14)
    assert_allclose(op.T @ v, H.T @ v, rtol=1e-14)
    assert sorted(op._cache) == [0, 1]
    assert len(loads) == 4 + 2
    # a budget for two copies: after the first product every block is cached and Hᵀ is kept
    # as one CSR; the transposed products stay exact and read nothing more
    loads.clear()
    op = ChunkedOperator.open(path, cache_bytes=2 * sum(sizes) + 1024)
    V = rng.normal(size=(40, 3))
    assert_allclose(op @ x, H @ x, rtol=1e-14)
    assert op._t_csr is None
    assert_allclose(op.T @ V, H.T @ V, rtol=1e-14, atol=1e-15)
    assert op._t_csr is not None and op._cached <= op.cache_bytes
    assert_allclose(op.T @ v, H.T @ v, rtol=1e-14, atol=1e-15)
    assert len(loads) == 4


@pytest.mark.parametrize("pass_nnz", [1 << 26, 7])  # one pass, and many passes over H
def test_transposed_copy_gives_ht_products_without_reading_h(tmp_path, monkeypatch, pass_nnz):
    import inversion.chunked as chunked

    monkeypatch.setattr(chunked, "_TRANSPOSE_PASS_NNZ", pass_nnz)
    rng = np.random.default_rng(6)
    seen = np.ones(60)
    seen[7] = 0.0  # a state element no observation sees
    H = sp.csr_array(
        sp.random_array((45, 60), density=0.15, format="csr", rng=rng) @ sp.diags_array(seen)
    )
    H.eliminate_zeros()
    path = write_chunked_h(H, tmp_path / "H.zarr", chunk_rows=10)
    op = ChunkedOperator.open(path)
    assert len(op._t_blocks) > 1 and op._t_starts[0] == 0 and op._t_starts[-1] == 60
    # the stored copy is Hᵀ exactly, rows in order, each row's observations sorted
    Ht = sp.vstack([b.load() for b in op._t_blocks], format="csr")
    assert Ht.shape == (60, 45)
    assert (Ht != H.T.tocsr()).nnz == 0
    assert all(np.all(np.diff(Ht.indices[a:b]) > 0) for a, b in itertools.pairwise(Ht.indptr))
    loads = []
    real_load = chunked._ZarrBlock.load
    monkeypatch.setattr(
        chunked._ZarrBlock, "load", lambda self: loads.append(self.group) or real_load(self)
    )
    V = rng.normal(size=(45, 3))
    X = rng.normal(size=(60, 3))
    assert_allclose(op.T @ V, H.T @ V, rtol=1e-14, atol=1e-15)
    assert_allclose(op.T @ V[:, 0], H.T @ V[:, 0], rtol=1e-14, atol=1e-15)
    assert_allclose(op @ X, H @ X, rtol=1e-14, atol=1e-15)
    assert_allclose(op @ X[:, 1], H @ X[:, 1], rtol=1e-14, atol=1e-15)
    assert set(loads) == {"t"}  # both products from the copy: no block of H was read
    # a cache that holds the copy: read once, then every product from memory
    sizes = sum(
        b.data.nbytes + b.indices.nbytes + b.indptr.nbytes
        for b in map(op.t_block, range(len(op._t_blocks)))
    )
    cached = ChunkedOperator.open(path, cache_bytes=sizes)
    loads.clear()
    for _ in range(2):
        assert_allclose(cached @ X, H @ X, rtol=1e-14, atol=1e-15)
        assert_allclose(cached.T @ V, H.T @ V, rtol=1e-14, atol=1e-15)
    assert len(loads) == len(op._t_blocks) and cached._cache == {}
    # a store written without it scatters from the blocks of H: the same numbers
    plain = ChunkedOperator.open(
        write_chunked_h(H, tmp_path / "plain.zarr", chunk_rows=10, transpose=False)
    )
    assert plain._t_blocks == []
    assert_allclose(plain.T @ V, op.T @ V, rtol=1e-14, atol=1e-15)


def test_to_sparse_reads_the_whole_store_and_stops_at_the_budget(tmp_path, monkeypatch):
    import inversion.chunked as chunked

    rng = np.random.default_rng(7)
    H = sp.random_array((40, 30), density=0.2, format="csr", rng=rng)
    op = ChunkedOperator.open(write_chunked_h(H, tmp_path / "H.zarr", chunk_rows=10))
    assert_allclose(op.to_sparse(1e9).toarray(), H.toarray(), rtol=0, atol=0)
    loads = []
    real_load = chunked._ZarrBlock.load
    monkeypatch.setattr(chunked._ZarrBlock, "load", lambda self: loads.append(1) or real_load(self))
    first = H[:10].nnz * 24  # bytes of the first block: the second passes the budget
    with pytest.raises(MemoryBudgetError, match="first 2 of 4 blocks"):
        ChunkedOperator.open(tmp_path / "H.zarr").to_sparse(first + 1)
    assert len(loads) == 2  # the last two blocks were never read
