"""The terms of the innovation covariance S(φ) (blocks ``H B_c Hᵀ`` and parts of R) and the
model that weights and rebuilds them (:mod:`inversion.hyperparameters`)."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from inversion.errors import ShapeMismatchError
from inversion.problem import LinearProblem, add_hbht_upper

__all__ = [
    "LENGTH_STEP",
    "SMALL_BLAS",
    "Block",
    "LowRank",
    "VarianceModel",
    "blas_threads_for",
    "projected_block",
    "sparse_covariance",
]

#: Step [log units] of the five-point stencil of the length derivatives.
LENGTH_STEP = 0.01
#: Largest S run with one BLAS thread: threads only cost on small matrices (measured 60x
#: slower Cholesky of a 217 x 217 S with two OpenBLAS threads on a loaded 2-core machine).
SMALL_BLAS = 1024


@contextlib.contextmanager
def blas_threads_for(n: int) -> Iterator[None]:
    """One BLAS thread while working on an (n, n) S with n <= :data:`SMALL_BLAS`."""
    if n > SMALL_BLAS:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ---------------------------------------------------------------------------------- matrices
@dataclass(frozen=True, eq=False)
class LowRank:
    """A positive semidefinite matrix ``U Uᵀ`` held by its (n, r) factor ``U``."""

    U: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(n, n)."""
        return (self.U.shape[0], self.U.shape[0])


@dataclass(frozen=True, eq=False)
class _Combo:
    """``Σ coef · M`` of matrices of any kind (length derivatives)."""

    terms: tuple[tuple[float, Any], ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.terms[0][1].shape


def _matmat(M: Any, V: np.ndarray) -> np.ndarray:
    if isinstance(M, LowRank):
        return M.U @ (M.U.T @ V)
    if isinstance(M, _Combo):
        return sum(c * _matmat(m, V) for c, m in M.terms)
    if isinstance(M, LinearOperator):
        return np.asarray(M.matmat(V) if V.ndim == 2 else M.matvec(V), dtype=float)
    return np.asarray(M @ V, dtype=float)


def _add_to(S: np.ndarray, f: float, M: Any) -> None:
    """``S += f M`` in place."""
    if isinstance(M, np.ndarray):
        scipy.linalg.blas.daxpy(M.ravel(), S.ravel(), a=f)
    elif sp.issparse(M):
        coo = sp.coo_array(M)
        S[coo.row, coo.col] += f * coo.data  # canonical: no repeated (row, col)
    elif isinstance(M, LowRank):
        S += (f * M.U) @ M.U.T
    elif isinstance(M, _Combo):
        for c, m in M.terms:
            _add_to(S, f * c, m)
    else:
        raise TypeError(
            f"a block of S is a {type(M).__name__} (products only): the exact and hybrid "
            "methods assemble S; use method='stochastic'"
        )


def _trace_with(P: np.ndarray, M: Any) -> float:
    """``tr(P M)`` for a symmetric explicit P."""
    if isinstance(M, np.ndarray):
        return float(np.vdot(P, M))
    if sp.issparse(M):
        coo = sp.coo_array(M)
        return float(np.dot(P[coo.row, coo.col], coo.data))
    if isinstance(M, LowRank):
        return float(np.vdot(M.U, P @ M.U))
    if isinstance(M, _Combo):
        return float(sum(c * _trace_with(P, m) for c, m in M.terms))
    raise TypeError(f"tr(P M) needs an explicit block, found {type(M).__name__}")


def _diag_of(block: Block) -> np.ndarray | None:
    M = block.M
    if block.diag is not None:
        return block.diag
    if isinstance(M, np.ndarray):
        return np.diag(M).copy()
    if sp.issparse(M):
        return np.asarray(M.diagonal(), dtype=float)
    if isinstance(M, LowRank):
        return np.einsum("ij,ij->i", M.U, M.U)
    return None


@dataclass(frozen=True, eq=False)
class Block:
    """One additive term of S, with what aggregates need.

    Attributes
    ----------
    M : numpy.ndarray, scipy.sparse array, LowRank or LinearOperator
        (n_obs, n_obs) term of S at factor 1 [ppm²]: ``H B_c Hᵀ`` or a part of R.
    HBW : numpy.ndarray, optional
        (n_obs, k) ``H B_c Wᵀ`` for the k aggregates W [ppm · aggregate unit]; None: zero.
    WBW : numpy.ndarray, optional
        (k, k) ``W B_c Wᵀ`` [aggregate unit²]; None: zero.
    diag : numpy.ndarray, optional
        diag(M), used to scale the stochastic method when M is an operator.
    """

    M: Any
    HBW: np.ndarray | None = None
    WBW: np.ndarray | None = None
    diag: np.ndarray | None = None


def projected_block(
    H: Any, B: LinearOperator, W: Any = None, *, chunk_size: int | None = None, dense: bool = True
) -> Block:
    """``H B Hᵀ`` (and ``H B Wᵀ``, ``W B Wᵀ``) of one block of the prior, as a :class:`Block`.

    Parameters
    ----------
    H : scipy.sparse array or numpy.ndarray
        (n_obs, n_b) columns of H of this block of the state [ppm per state unit].
    B : covariance operator
        (n_b, n_b) its prior covariance [state unit²].
    W : scipy.sparse array or numpy.ndarray, optional
        (k, n_b) aggregation weights of the block [aggregate unit per state unit].
    chunk_size : int, optional
        Observations per chunk of ``B Hᵀ`` (memory ``2 · n_b · chunk_size · 8`` bytes); by
        default the obs-space solver's own choice.
    dense : bool
        Form ``H B Hᵀ`` (n_obs² · 8 bytes); otherwise M is the product operator
        ``v -> H (B (Hᵀ v))`` (for the stochastic method).

    Returns
    -------
    Block
    """
    n_obs = H.shape[0]
    HBW = WBW = None
    if W is not None:
        Wd = W.toarray() if sp.issparse(W) else np.asarray(W, dtype=float)
        BW = np.asarray(B @ np.ascontiguousarray(Wd.T), dtype=float)
        HBW = np.asarray(H @ BW, dtype=float)
        WBW = Wd @ BW
        WBW = 0.5 * (WBW + WBW.T)
    if not dense:
        Ht = H.T.tocsr() if sp.issparse(H) else np.asarray(H).T

        def mv(V: np.ndarray) -> np.ndarray:
            return np.asarray(H @ np.asarray(B @ (Ht @ V), dtype=float), dtype=float)

        op = LinearOperator((n_obs, n_obs), matvec=mv, matmat=mv, dtype=float)
        return Block(op, HBW, WBW)
    if chunk_size is None:
        from inversion.solve import _CHUNK_BYTES, _CHUNK_MAX_OBS

        chunk_size = int(max(1, min(n_obs, _CHUNK_MAX_OBS, _CHUNK_BYTES // (8 * H.shape[1]))))
    M = np.zeros((n_obs, n_obs))
    add_hbht_upper(_problem(H, B), chunk_size, M)  # upper triangle, as the obs-space solver
    M = np.triu(M) + np.triu(M, 1).T
    return Block(M, HBW, WBW)


def _problem(H: Any, B: LinearOperator) -> LinearProblem:
    from inversion.covariance import DiagonalCovariance

    n_obs, n_b = H.shape
    return LinearProblem(
        H=H, x_prior=np.zeros(n_b), y=np.zeros(n_obs), B=B, R=DiagonalCovariance(np.ones(n_obs))
    )


def sparse_covariance(C: Any) -> sp.csr_array:
    """A diagonal, dense or block-diagonal covariance operator as a scipy.sparse CSR array.

    Raises
    ------
    TypeError
        For an operator of another kind.
    """
    from inversion.covariance import (
        BlockDiagonalCovariance,
        DenseCovariance,
        DiagonalCovariance,
    )

    if isinstance(C, DiagonalCovariance):
        return sp.csr_array(sp.diags_array(C.diag()))
    if isinstance(C, DenseCovariance):
        return sp.csr_array(C.to_dense(max_size=C.n))
    if isinstance(C, BlockDiagonalCovariance):
        parts = [sparse_covariance(b) for b in C.blocks]
        M = sp.block_diag(parts, format="coo")
        idx = C.index
        if idx is not None:
            M = sp.coo_array((M.data, (idx[M.row], idx[M.col])), shape=M.shape)
        return sp.csr_array(M)
    if isinstance(C, np.ndarray):
        return sp.csr_array(C)
    raise TypeError(
        f"sparse_covariance: {type(C).__name__} is not a diagonal, dense or block-diagonal "
        "covariance"
    )


# ---------------------------------------------------------------------------------- model
class VarianceModel:
    """``S(φ) = Σ_c exp(e_c · φ) M_c(φ_ℓ)``: blocks, their exponents and the length rebuild.

    Parameters
    ----------
    blocks : sequence of Block
        The terms of S at φ = 0 (configured hyperparameters).
    exponents : array_like
        (n_blocks, n_params): block c is multiplied by ``exp(exponents[c] @ φ)``; the
        columns of length parameters are zero.
    names : sequence of str
        Name of each parameter (used in messages).
    length_params : sequence of int
        Indices of the length parameters.
    rebuild : callable, optional
        ``rebuild(factors) -> {block index: Block}``: the length-dependent blocks for the
        length factors ``exp(φ[length_params])`` (built by the caller's own builder).

    Raises
    ------
    ShapeMismatchError
        If a block is not (n, n) or the exponents do not fit.
    """

    def __init__(
        self,
        blocks: Sequence[Block],
        exponents: Any,
        names: Sequence[str],
        *,
        length_params: Sequence[int] = (),
        rebuild: Callable[[np.ndarray], Mapping[int, Block]] | None = None,
    ) -> None:
        self.blocks = tuple(blocks)
        self.exponents = np.asarray(exponents, dtype=float).reshape(len(self.blocks), -1)
        self.names = tuple(names)
        self.length_params = np.asarray(length_params, dtype=int)
        self.rebuild = rebuild
        n = self.blocks[0].M.shape[0]
        for c, b in enumerate(self.blocks):
            if tuple(b.M.shape) != (n, n):
                raise ShapeMismatchError(f"block {c}: expected shape ({n}, {n}), found {b.M.shape}")
        if self.exponents.shape[1] != len(self.names):
            raise ShapeMismatchError(
                f"exponents: {self.exponents.shape[1]} columns for {len(self.names)} parameters"
            )
        if self.length_params.size and (
            rebuild is None or self.exponents[:, self.length_params].any()
        ):
            raise ValueError("length parameters need a rebuild function and zero exponents")
        self._cache: OrderedDict[tuple, list[Block]] = OrderedDict()

    @property
    def n_obs(self) -> int:
        """Number of observations (size of S)."""
        return int(self.blocks[0].M.shape[0])

    @property
    def n_params(self) -> int:
        """Number of hyperparameters."""
        return len(self.names)

    def factors(self, phi: np.ndarray) -> np.ndarray:
        """(n_blocks,) variance factor of each block at φ."""
        return np.exp(self.exponents @ np.asarray(phi, dtype=float))

    def blocks_at(self, phi: np.ndarray) -> list[Block]:
        """The blocks at the lengths of φ (rebuilt, cached for the last few lengths)."""
        if not self.length_params.size:
            return list(self.blocks)
        return self._blocks_for_lengths(np.asarray(phi, dtype=float)[self.length_params])

    def _blocks_for_lengths(self, phi_l: np.ndarray) -> list[Block]:
        if not np.any(phi_l):
            return list(self.blocks)
        key = tuple(np.round(phi_l, 13))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        blocks = list(self.blocks)
        for c, b in self.rebuild(np.exp(phi_l)).items():
            blocks[c] = b
        self._cache[key] = blocks
        if len(self._cache) > 16:
            self._cache.popitem(last=False)
        return blocks

    def length_derivative(self, phi: np.ndarray, j: int, step: float = LENGTH_STEP) -> list[Any]:
        """``∂M_c/∂φ_ℓ`` of every block for length parameter ``j`` (index among the length
        parameters), by the five-point stencil (zero for blocks that do not depend on it)."""
        phi_l = np.asarray(phi, dtype=float)[self.length_params]
        coefs = {-2: 1.0, -1: -8.0, 1: 8.0, 2: -1.0}
        stencil = {}
        for k in coefs:
            p = phi_l.copy()
            p[j] += k * step
            stencil[k] = self._blocks_for_lengths(p)
        out = []
        for c in range(len(self.blocks)):
            ms = [stencil[k][c].M for k in coefs]
            if all(m is ms[0] for m in ms):
                out.append(None)
            else:
                out.append(_Combo(tuple((coefs[k] / (12 * step), stencil[k][c].M) for k in coefs)))
        return out
