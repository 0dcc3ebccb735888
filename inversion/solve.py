"""Exact solvers of the linear-Gaussian inversion: ``solve(problem, method) -> Posterior``.

Methods
-------
``dense``
    Reference with explicit matrices: ``B``, ``H``, ``R`` made dense, ``G = B Hᵀ``,
    ``S = H G + R`` factorised by Cholesky, posterior covariance ``A = B − G S⁻¹ Gᵀ`` formed
    explicitly. For n_state up to a few 10⁴. Every other solver is tested against it.
``obs-space``
    Never forms ``B``: ``G = B Hᵀ`` is made by operator products in chunks of observations
    (one chunk alive at a time), ``S = H G + R`` is assembled chunk by chunk and factorised,
    and ``x̂ = x_a + B (Hᵀ (S⁻¹ d))`` costs one more ``B`` product.
``cg``
    Matrix-free: conjugate gradients in the whitened control variable ``x = x_a + B^{1/2} χ``
    (Lanczos-CG, :mod:`inversion.cg`); low-rank std, exact aggregates by batched solves and
    randomize-then-optimize samples (:class:`inversion.lowrank.CGPosterior`). Settings in
    :class:`inversion.cg.CGOptions`.
``auto``
    ``dense`` for small states (n_state ≤ 2,000), else ``obs-space`` when ``S``
    (n_obs x n_obs) fits the memory budget, else ``cg``. The choice and its reason are
    logged (INFO).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.linalg

from inversion.cg import CGOptions
from inversion.chunked import as_chunked_operator
from inversion.errors import MemoryBudgetError
from inversion.lowrank import solve_cg
from inversion.posterior import Posterior, _gib
from inversion.problem import (
    LinearProblem,
    _check_output,
    add_hbht_upper,
    cho_factor_checked,
    covariance_dense,
)

__all__ = ["DEFAULT_MEMORY_BUDGET", "METHODS", "solve"]

logger = logging.getLogger(__name__)

#: Methods accepted by :func:`solve`.
METHODS = ("auto", "dense", "obs-space", "cg")

#: Default memory budget [bytes] for the largest arrays a solver or product may hold.
DEFAULT_MEMORY_BUDGET = 4 * 2**30

# Largest chunk of G = B Hᵀ held at a time [bytes] (also capped at memory_budget / 8).
_CHUNK_BYTES = 256 * 2**20
# At most this many observations per chunk: S is assembled as an upper triangle, chunk by
# chunk, so smaller chunks skip more of the lower triangle of H G.
_CHUNK_MAX_OBS = 256

# "auto" uses the dense reference up to this many state elements.
_AUTO_DENSE_MAX_STATE = 2000


def _dense_bytes(n_state: int, n_obs: int) -> float:
    """Memory the dense method holds: B/A (plus one temporary), G, Z, H, S and R."""
    return 8.0 * (2 * n_state**2 + 3 * n_state * n_obs + 2 * n_obs**2)


def _obs_space_bytes(n_obs: int) -> float:
    """Memory the obs-space method holds besides the G chunk: R dense, S and its factor."""
    return 8.0 * 2 * n_obs**2


def solve(
    problem: LinearProblem,
    method: str = "auto",
    *,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    chunk_size: int | None = None,
    cg: CGOptions | None = None,
    client: Any = None,
) -> Posterior:
    """Solve a linear-Gaussian inversion.

    Parameters
    ----------
    problem : LinearProblem
        The checked problem ``y = H x + e``, ``x ~ N(x_a, B)``, ``e ~ N(0, R)``.
    method : {"auto", "dense", "obs-space", "cg"}
        Solver; see the module docstring. "auto" logs which one it picked and why.
    memory_budget : float
        Largest memory [bytes] the solver (and later the exact std map) may hold in its big
        arrays; default 4 GiB. Requests beyond it raise :class:`MemoryBudgetError` instead of
        exhausting the machine.
    chunk_size : int, optional
        Observations per chunk of ``G = B Hᵀ`` (obs-space) and aggregates per chunk of
        ``B Wᵀ``. Default: as many as fit ``min(256 MiB, memory_budget / 8)``, at most 256.
        With ``client``, also the observations per block of ``H`` sent to the workers.
    cg : CGOptions, optional
        Settings of the ``cg`` solver (tolerance, iteration cap, Lanczos rank, std mode,
        ``allow_nonconvergence``); default ``CGOptions()``.
    client : distributed.Client, optional
        Run the ``H``/``Hᵀ`` products of ``cg`` over row blocks on this dask cluster (a
        scipy.sparse ``H`` is split into blocks of ``chunk_size`` rows).

    Returns
    -------
    Posterior
        Mean, lazily computed std, aggregates and diagnostics.

    Raises
    ------
    ValueError
        If ``method`` is unknown (the message lists the valid ones) or if no exact method
        fits the memory budget.
    MemoryBudgetError
        If the requested method does not fit ``memory_budget``.
    NotPositiveDefiniteError
        If ``S = H B Hᵀ + R`` is not positive definite.
    NonFiniteError
        If an operator product yields NaN or infinity.
    ConvergenceError
        If ``cg`` misses its tolerance within its iteration cap (unless
        ``cg.allow_nonconvergence``: then a RuntimeWarning and ``post.info["converged"]``).

    Examples
    --------
    >>> import numpy as np
    >>> from inversion.problem import LinearProblem
    >>> p = LinearProblem(H=np.ones((1, 1)), x_prior=np.zeros(1), y=np.ones(1),
    ...                   B=np.eye(1), R=np.eye(1))
    >>> solve(p).mean
    array([0.5])
    """
    if not isinstance(problem, LinearProblem):
        raise TypeError(f"problem must be a LinearProblem; found {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(
            f"unknown solver method {method!r}; valid methods are: "
            f"{', '.join(repr(m) for m in METHODS)}"
        )
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be > 0 bytes; found {memory_budget!r}")
    n_state, n_obs = problem.n_state, problem.n_obs
    if chunk_size is None:
        chunk_bytes = min(_CHUNK_BYTES, memory_budget / 8)
        chunk_size = int(max(1, min(n_obs, _CHUNK_MAX_OBS, chunk_bytes // (8 * n_state))))
    elif chunk_size < 1:
        raise ValueError(
            f"chunk_size must be a positive number of observations; found {chunk_size}"
        )
    if method == "auto":
        method = _pick_method(n_state, n_obs, memory_budget)
    t0 = time.perf_counter()
    if method == "cg":
        if client is not None:
            H = as_chunked_operator(problem.H, chunk_rows=chunk_size, client=client)
            problem = replace(problem, H=H)
        post = solve_cg(problem, cg or CGOptions(), memory_budget, chunk_size)
    elif method == "dense":
        post = _solve_dense(problem, memory_budget, chunk_size)
    else:
        post = _solve_obs_space(problem, memory_budget, chunk_size)
    logger.info(
        "solve(%s): n_state=%d, n_obs=%d, %.3g s, chi2=%.4g",
        method,
        n_state,
        n_obs,
        time.perf_counter() - t0,
        post.chi2,
    )
    return post


def _pick_method(n_state: int, n_obs: int, memory_budget: float) -> str:
    if n_state <= _AUTO_DENSE_MAX_STATE and _dense_bytes(n_state, n_obs) <= memory_budget:
        logger.info(
            "solve(method='auto'): 'dense' because n_state=%d <= %d (explicit matrices, %s)",
            n_state,
            _AUTO_DENSE_MAX_STATE,
            _gib(_dense_bytes(n_state, n_obs)),
        )
        return "dense"
    if _obs_space_bytes(n_obs) <= memory_budget:
        logger.info(
            "solve(method='auto'): 'obs-space' because n_state=%d > %d and S (n_obs=%d squared, "
            "%s) fits the memory budget of %s",
            n_state,
            _AUTO_DENSE_MAX_STATE,
            n_obs,
            _gib(_obs_space_bytes(n_obs)),
            _gib(memory_budget),
        )
        return "obs-space"
    logger.info(
        "solve(method='auto'): 'cg' because S (n_obs=%d squared, %s with its factor) does not "
        "fit the memory budget of %s",
        n_obs,
        _gib(_obs_space_bytes(n_obs)),
        _gib(memory_budget),
    )
    return "cg"


def _solve_dense(problem: LinearProblem, memory_budget: float, chunk_size: int) -> Posterior:
    n_state, n_obs = problem.n_state, problem.n_obs
    need = _dense_bytes(n_state, n_obs)
    if need > memory_budget:
        raise MemoryBudgetError(
            f"the dense solver needs about {_gib(need)} for n_state={n_state}, n_obs={n_obs}, "
            f"more than memory_budget={_gib(memory_budget)}; use method='obs-space' (never "
            f"forms B) or raise memory_budget if the machine has the memory"
        )
    B = covariance_dense(problem.B)
    H = problem.H_dense()
    R = covariance_dense(problem.R)
    # C-contiguous operands everywhere: numpy's transposed/SYRK paths into OpenBLAS segfault
    # for n_state >~ 16,000 (numpy issue #19685); plain NN gemm does not.
    G = B @ np.ascontiguousarray(H.T)
    _check_output(G, "B Hᵀ")
    S = H @ G + R
    del H, R
    S = 0.5 * (S + S.T)
    S_factor = cho_factor_checked(S)
    d = problem.innovation()
    alpha = scipy.linalg.cho_solve(S_factor, d, check_finite=False)
    mean = problem.x_prior + G @ alpha
    _check_output(mean, "posterior mean")
    Z = scipy.linalg.solve_triangular(S_factor[0], G.T, lower=True, check_finite=False)
    Zc = np.ascontiguousarray(Z)  # Z is F-ordered (n_obs, n_state): Z.T is C-ordered
    B -= Z.T @ Zc  # B now holds A = B − G S⁻¹ Gᵀ
    del Z, Zc
    _check_output(B, "posterior covariance")
    return Posterior(
        problem,
        method="dense",
        mean=mean,
        S_factor=S_factor,
        innovation=d,
        alpha=alpha,
        memory_budget=memory_budget,
        chunk_size=chunk_size,
        gain_matrix=G,
        covariance=B,
    )


def _solve_obs_space(problem: LinearProblem, memory_budget: float, chunk_size: int) -> Posterior:
    n_state, n_obs = problem.n_state, problem.n_obs
    need = _obs_space_bytes(n_obs) + 8.0 * 2 * n_state * chunk_size
    if need > memory_budget:
        raise MemoryBudgetError(
            f"the obs-space solver needs about {_gib(need)} (S is n_obs x n_obs = {n_obs} x "
            f"{n_obs}, plus a chunk of {chunk_size} columns of B Hᵀ), more than memory_budget="
            f"{_gib(memory_budget)}; use a smaller chunk_size, split the observations into "
            f"windows, or raise memory_budget"
        )
    t0 = time.perf_counter()
    S = covariance_dense(problem.R)
    n_chunks = add_hbht_upper(problem, chunk_size, S)  # upper triangle only (S is symmetric)
    t1 = time.perf_counter()
    # Only the upper triangle of S is valid; it is the lower triangle of the F-ordered view
    # S.T, which LAPACK factorises in place (no copy, no symmetrisation).
    S_factor = cho_factor_checked(S.T, lower=True)
    d = problem.innovation()
    alpha = scipy.linalg.cho_solve(S_factor, d, check_finite=False)
    mean = problem.x_prior + problem.B_matmat(problem.Ht_matmat(alpha))
    _check_output(mean, "posterior mean")
    logger.debug(
        "obs-space: S assembled from %d chunk(s) of <= %d observations in %.3g s, "
        "factorised and mean in %.3g s",
        n_chunks,
        chunk_size,
        t1 - t0,
        time.perf_counter() - t1,
    )
    return Posterior(
        problem,
        method="obs-space",
        mean=mean,
        S_factor=S_factor,
        innovation=d,
        alpha=alpha,
        memory_budget=memory_budget,
        chunk_size=chunk_size,
    )
