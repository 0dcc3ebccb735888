"""Spectra of the whitened data-misfit Hessian ``K = Lᵀ Hᵀ R⁻¹ H L`` in observation coordinates.

The nonzero eigenvalues of K are those of the pencil ``(M, R)`` with ``M = H B Hᵀ``
(``M z = θ R z`` gives ``K v = θ v`` for ``v = Lᵀ Hᵀ z``, and ``‖v‖² = zᵀ M z``). Both
functions return pairs in the form the low-rank posterior uses: eigenvalues θ (descending),
coordinates Z with ``Zᵀ M Z = I`` and ``M Z``.

- :func:`obs_space_spectrum`: the complete spectrum, exact to rounding, from ``M`` formed by
  batched products and one LAPACK eigendecomposition (needs about ``4 · n_obs² · 8`` bytes).
- :func:`block_lanczos_spectrum`: where that does not fit, the leading part of the spectrum
  from a randomized block Krylov space (block Lanczos in the M inner product with full
  reorthogonalisation, a random Gaussian start block, batched products): Rayleigh–Ritz pairs,
  so ``VᵀV = I`` and ``VᵀKV = Θ`` hold exactly whatever their accuracy — what the truncated
  (upper-bound) std map and the unbiased sampled correction need.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.linalg

from inversion.covariance import DiagonalCovariance
from inversion.errors import MemoryBudgetError
from inversion.posterior import _gib
from inversion.problem import _check_output, add_hbht_upper, covariance_dense

if TYPE_CHECKING:
    from inversion.cg import WhitenedSystem

__all__ = ["block_lanczos_spectrum", "obs_space_spectrum"]

logger = logging.getLogger(__name__)


def obs_space_spectrum(
    system: WhitenedSystem, memory_budget: float, chunk_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complete spectrum of ``K = Lᵀ Hᵀ R⁻¹ H L`` from the pencil ``(H B Hᵀ, R)``.

    ``M = H B Hᵀ`` (n_obs × n_obs) is formed by batched products, one chunk of ``B Hᵀ``
    columns at a time (upper triangle only), and ``M z = θ R z`` is solved by LAPACK
    (``eigh``; for a diagonal R as the standard problem of ``R^{-1/2} M R^{-1/2}``). Each
    eigenvector is scaled to ``zᵀ M z = 1``, so ``v = Lᵀ Hᵀ z`` are orthonormal eigenvectors of
    K with eigenvalues θ [1]. Eigenvalues below ``n_obs · ε · θ_max`` (numerically zero: M is
    rank deficient when observations share footprints) are dropped; their variance reduction
    ``θ/(1+θ)`` is below rounding.

    Parameters
    ----------
    system : inversion.cg.WhitenedSystem
        Products of the problem.
    memory_budget : float
        Bytes; M, its eigenvectors and LAPACK workspace take about ``4 · n_obs² · 8``.
    chunk_size : int
        Observations per chunk of ``B Hᵀ`` (memory ``2 · n_state · chunk_size · 8`` bytes).

    Returns
    -------
    theta : numpy.ndarray
        (k,) eigenvalues, descending [1].
    Z : numpy.ndarray
        (n_obs, k) observation-space coordinates of the eigenvectors (``zᵀ M z = 1``).
    MZ : numpy.ndarray
        (n_obs, k) ``M Z`` = ``θ R Z``.

    Raises
    ------
    MemoryBudgetError
        If M and its eigendecomposition do not fit ``memory_budget``.
    """
    problem = system.problem
    m = problem.n_obs
    chunk = max(1, min(int(chunk_size), m))
    need = 8.0 * (4.0 * m * m + 2.0 * problem.n_state * chunk)
    if need > memory_budget:
        raise MemoryBudgetError(
            f"the complete spectrum (CGOptions.rank='full') needs H B Hᵀ and its "
            f"eigenvectors, about 4 x n_obs² x 8 bytes = {need / 2**30:.2f} GiB with "
            f"n_obs={m}, more than memory_budget={memory_budget / 2**30:.2f} GiB; use an "
            f"integer CGOptions.rank (leading Lanczos pairs), std='low-rank+sampled', or raise "
            f"memory_budget"
        )
    t0 = time.perf_counter()
    M = np.zeros((m, m))
    add_hbht_upper(problem, chunk, M)
    system.n_matvec += m
    t1 = time.perf_counter()
    R = problem.R
    if isinstance(R, DiagonalCovariance):
        r = 1.0 / np.sqrt(R.diag())
        M *= r[:, None]
        M *= r[None, :]
        theta, U = scipy.linalg.eigh(
            M, lower=False, overwrite_a=True, check_finite=False, driver="evd"
        )
        del M
        Z = U * r[:, None]  # z = R^{-1/2} u: zᵀ R z = 1
        RZ = U
        RZ /= r[:, None]  # R z = R^{1/2} u
    else:
        theta, Z = scipy.linalg.eigh(
            M, covariance_dense(R), lower=False, overwrite_a=True, overwrite_b=True,
            check_finite=False,
        )  # fmt: skip
        del M
        RZ = np.asarray(R @ Z, dtype=np.float64)
    order = np.argsort(theta)[::-1]
    theta = theta[order]
    top = max(float(theta[0]), 0.0) if theta.size else 0.0
    keep = order[theta > m * np.finfo(float).eps * top] if top > 0 else order[:0]
    theta = theta[: keep.size]
    root = np.sqrt(theta)
    Z = Z[:, keep] / root
    MZ = RZ[:, keep] * root
    _check_output(Z, "eigenvectors of H B Hᵀ")
    logger.info(
        "complete spectrum: H B Hᵀ (%d x %d) formed in %.1f s, eigendecomposition in %.1f s; "
        "%d nonzero eigenvalues (θ %.3g … %.3g)",
        m, m, t1 - t0, time.perf_counter() - t1, theta.size,
        theta[0] if theta.size else 0.0, theta[-1] if theta.size else 0.0,
    )  # fmt: skip
    return theta, Z, MZ


def block_lanczos_spectrum(
    system: WhitenedSystem,
    n_pairs: int,
    block: int,
    memory_budget: float,
    seed: int | None = 0,
    B: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading eigenpairs of K from a randomized block Krylov space of dimension ``n_pairs``.

    Block Lanczos on the coordinates z (operator ``z ↦ R⁻¹ M z``, self-adjoint in the M inner
    product), started from a Gaussian block, with full reorthogonalisation (twice) against
    all stored blocks; each step costs one batched product ``M T`` on ``block`` columns. The
    pairs are the Rayleigh–Ritz pairs of the space: ``θ, Y = eig((M Z)ᵀ R⁻¹ (M Z))``. The
    leading ones converge first (block Krylov, Musco & Musco 2015); all of them satisfy
    ``VᵀV = I`` and ``VᵀKV = Θ``, so the low-rank map from them is an upper bound of the exact
    std and the sampled correction is unbiased.

    Parameters
    ----------
    system : inversion.cg.WhitenedSystem
        Products of the problem.
    n_pairs : int
        Dimension of the Krylov space (pairs returned, fewer if it is exhausted); ≤ n_obs.
    block : int
        Columns per batched product.
    memory_budget : float
        Bytes; the basis, its M-image and a work array take ``3 · n_obs · n_pairs · 8``.
    seed : int, optional
        Seed of the start block.
    B : CovarianceOperator, optional
        Prior covariance for the products (e.g. its single-precision twin); default the
        system's.

    Returns
    -------
    theta : numpy.ndarray
        (k,) Ritz values, descending [1].
    Z : numpy.ndarray
        (n_obs, k) coordinates of the Ritz vectors (``Zᵀ M Z = I``).
    MZ : numpy.ndarray
        (n_obs, k) ``M Z``.

    Raises
    ------
    MemoryBudgetError
        If the basis does not fit ``memory_budget``.
    """
    problem = system.problem
    m = problem.n_obs
    D = int(min(max(int(n_pairs), 1), m))
    b = int(max(1, min(block, D)))
    need = 8.0 * (3.0 * m * D + 4.0 * problem.n_state * b)
    if need > memory_budget:
        raise MemoryBudgetError(
            f"the block Lanczos basis ({D} vectors of n_obs={m}, with their M-images) needs "
            f"{_gib(need)}, more than memory_budget={_gib(memory_budget)}; ask for fewer pairs "
            f"(CGOptions.std_pairs) or raise memory_budget"
        )
    M = system.M if B is None else type(system)(problem, B=B).M

    rng = np.random.default_rng(seed)
    Z = np.empty((m, D))
    MZ = np.empty((m, D))
    filled = 0
    T = rng.standard_normal((m, b))
    t0 = time.perf_counter()
    step = 0
    while filled < D:
        T = T[:, : min(T.shape[1], D - filled)]
        for _ in range(2):  # full reorthogonalisation in the M inner product
            T -= Z[:, :filled] @ (MZ[:, :filled].T @ T)
        MT = M(np.ascontiguousarray(T))
        C = T.T @ MT
        s, U = np.linalg.eigh(0.5 * (C + C.T))
        keep = s > 1e-12 * max(float(s.max()), np.finfo(float).tiny) if s.size else s > 0
        if not keep.any() or s.max() <= 0:
            logger.info("block Lanczos: Krylov space exhausted at dimension %d", filled)
            break
        U = U[:, keep] / np.sqrt(s[keep])
        r = U.shape[1]
        Z[:, filled : filled + r] = T @ U
        MZ[:, filled : filled + r] = MT @ U
        T = system.Rinv(MZ[:, filled : filled + r])  # next block: the operator R⁻¹ M
        filled += r
        step += 1
        if step % 10 == 0:
            logger.info(
                "block Lanczos: %d/%d vectors (%.0f s)", filled, D, time.perf_counter() - t0
            )
    Z, MZ = Z[:, :filled], MZ[:, :filled]
    RinvMZ = system.Rinv(MZ)
    Hr = MZ.T @ RinvMZ
    del RinvMZ
    theta, Y = scipy.linalg.eigh(0.5 * (Hr + Hr.T), check_finite=False)
    order = np.argsort(theta)[::-1]
    theta, Y = np.clip(theta[order], 0.0, None), Y[:, order]
    Z, MZ = Z @ Y, MZ @ Y
    _check_output(Z, "block Lanczos Ritz vectors")
    logger.info(
        "block Lanczos: %d Ritz pairs from %d batched products of %d columns in %.1f s "
        "(θ %.3g … %.3g)",
        theta.size, step, b, time.perf_counter() - t0,
        theta[0] if theta.size else 0.0, theta[-1] if theta.size else 0.0,
    )  # fmt: skip
    return theta, Z, MZ
