"""Posterior products of a linear-Gaussian inversion: mean, std, aggregates, diagnostics.

A :class:`Posterior` is made by :func:`inversion.solve.solve`. It holds the posterior mean and
the Cholesky factor of the innovation covariance ``S = H B Hᵀ + R``; everything else (std map,
aggregate uncertainties, DOFS, averaging kernel) is computed on demand from that factor and
the problem's operators, so that the posterior covariance ``A = B − B Hᵀ S⁻¹ H B`` is never
formed by the obs-space method. The dense reference method keeps ``A`` explicitly.
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse

from inversion.errors import MemoryBudgetError, NotPositiveDefiniteError, ShapeMismatchError
from inversion.problem import (
    LinearProblem,
    _check_output,
    cho_factor_checked,
    covariance_dense,
    gain_columns,
    iter_gain_chunks,
)

__all__ = ["Posterior"]

logger = logging.getLogger(__name__)

# Negative posterior variances of magnitude below this fraction of the prior variance are
# rounding noise (cancellation in B − G S⁻¹ Gᵀ) and are set to zero; larger ones are errors.
_NEGATIVE_VARIANCE_RTOL = 1e-8
# Observations per block of the streamed obs-space std map (columns of B Hᵀ S⁻¹ held at once).
_STREAM_BLOCK = 64


def _gib(nbytes: float) -> str:
    """Human-readable size of ``nbytes``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes:.0f} bytes"


class Posterior:
    """Posterior of ``x`` given ``y`` for a :class:`~inversion.problem.LinearProblem`.

    Do not build it directly: use :func:`inversion.solve.solve`.

    Attributes
    ----------
    mean : numpy.ndarray
        Posterior mean (n_state,) [state units].
    method : str
        Solver that made it ("dense" or "obs-space").
    std_method : str
        How :attr:`std` is computed: "exact-dense" or "exact-obs-space".
    """

    def __init__(
        self,
        problem: LinearProblem,
        *,
        method: str,
        mean: np.ndarray,
        S_factor: tuple[np.ndarray, bool],
        innovation: np.ndarray,
        alpha: np.ndarray,
        memory_budget: float,
        chunk_size: int,
        gain_matrix: np.ndarray | None = None,
        covariance: np.ndarray | None = None,
    ) -> None:
        self.problem = problem
        self.method = method
        self.mean = mean
        self._S = S_factor
        self._d = innovation
        self._alpha = alpha
        self.memory_budget = float(memory_budget)
        self.chunk_size = int(chunk_size)
        self._G = gain_matrix  # dense method only: B Hᵀ (n_state, n_obs)
        self._A = covariance  # dense method only: explicit posterior covariance
        self.std_method = "exact-dense" if covariance is not None else "exact-obs-space"

    def __repr__(self) -> str:
        return (
            f"Posterior(method={self.method!r}, n_state={self.n_state}, n_obs={self.n_obs}, "
            f"chi2={self.chi2:.4g})"
        )

    # ------------------------------------------------------------------ basic quantities
    @property
    def n_state(self) -> int:
        """Number of state elements."""
        return self.problem.n_state

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return self.problem.n_obs

    @cached_property
    def prior_std(self) -> np.ndarray:
        """Prior standard deviation ``sqrt(diag B)`` (n_state,) [state units]."""
        return np.sqrt(self.problem.B_diag)

    @property
    def chi2(self) -> float:
        """Innovation chi-square per observation ``dᵀ S⁻¹ d / n_obs``, ``d = y − H x_a``.

        About 1 when ``B`` and ``R`` describe the errors correctly; ≫ 1 when they are
        underestimated.
        """
        return float(self._d @ self._alpha) / self.n_obs

    @cached_property
    def dofs(self) -> float:
        """Degrees of freedom for signal ``trace(H K)`` (dense) = ``n_obs − trace(S⁻¹ R)``."""
        if self._G is not None:
            return float(np.sum(self.averaging_kernel_diag))
        R = covariance_dense(self.problem.R)
        S_inv_R = scipy.linalg.cho_solve(self._S, R, overwrite_b=True, check_finite=False)
        dofs = self.n_obs - float(np.trace(S_inv_R))
        _check_output(np.array([dofs]), "DOFS")
        return dofs

    @property
    def covariance(self) -> np.ndarray:
        """Explicit posterior covariance ``A`` (n_state, n_state); dense method only."""
        if self._A is None:
            raise MemoryBudgetError(
                "the obs-space solver never forms the posterior covariance A (n_state x n_state "
                f"= {_gib(8.0 * self.n_state**2)}); use post.aggregate_cov(weights) for the "
                "covariance of aggregates, post.std for variances, or solve(..., method='dense') "
                "for small problems"
            )
        return self._A

    # ------------------------------------------------------------------ std map
    @cached_property
    def std(self) -> np.ndarray:
        """Exact posterior standard deviation (n_state,) [state units].

        Dense: ``sqrt(diag A)``. Obs-space: ``diag A = diag B − diag(G S⁻¹ Gᵀ)`` with
        ``G = B Hᵀ``: G held whole when ``n_state · n_obs · 8`` bytes fit the memory budget,
        otherwise streamed over blocks of observations (n_obs products of B with dense
        columns; slower, memory ``O(n_state)`` per column; progress is logged).

        Raises
        ------
        MemoryBudgetError
            If not even one streamed block fits the memory budget.
        """
        if self._A is not None:
            var = np.diag(self._A).copy()
        else:
            var = self.problem.B_diag - self._obs_space_reduction(want_ak=False)[0]
        var = self._checked_variance(var, self.problem.B_diag, "posterior variance map")
        return np.sqrt(var)

    @cached_property
    def error_reduction(self) -> np.ndarray:
        """Uncertainty reduction ``1 − std / prior_std`` (n_state,) [1]."""
        return 1.0 - self.std / self.prior_std

    @cached_property
    def averaging_kernel_diag(self) -> np.ndarray:
        """Diagonal of the averaging kernel ``K H`` (n_state,) [1], ``K = B Hᵀ S⁻¹``."""
        if self._G is not None:
            Kt = scipy.linalg.cho_solve(self._S, self._G.T, check_finite=False)
            ak = _rowwise_dot_h(self.problem, Kt)
        else:
            reduction, ak = self._obs_space_reduction(want_ak=True)
            if "std" not in self.__dict__:
                var = self._checked_variance(
                    self.problem.B_diag - reduction, self.problem.B_diag, "posterior variances"
                )
                self.__dict__["std"] = np.sqrt(var)
        _check_output(ak, "averaging kernel diagonal")
        return ak

    def _obs_space_reduction(self, want_ak: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``diag(G S⁻¹ Gᵀ)`` and, if asked, ``diag(K H)``, with ``G = B Hᵀ``.

        G is held whole when ``n_state · n_obs · 8`` bytes fit the memory budget (one pass of
        cheap gain columns, then triangular solves). Otherwise it is streamed over blocks of b
        observations: ``W = B Hᵀ S⁻¹[:, blk]`` (n_state, b) and ``G[:, blk]`` give
        ``diag(G S⁻¹ Gᵀ) = Σ_blk rowsum(G[:, blk] ∘ W)`` and
        ``diag(K H)_j = Σ_blk Σ_{i∈blk} W[j, i] H[i, j]``: n_obs products of B with dense
        columns, memory ``3 · n_state · b · 8`` bytes.
        """
        need = 8.0 * self.n_state * self.n_obs
        if need > self.memory_budget:
            return self._obs_space_reduction_streamed(want_ak)
        G = np.empty((self.n_state, self.n_obs))
        for rows, G_c in iter_gain_chunks(self.problem, self.chunk_size):
            G[:, rows] = G_c
        del G_c
        # G.T is F-contiguous (n_obs, n_state): solved in place, no copy.
        Z = self._half_solve(G.T, overwrite=True)
        reduction = np.einsum("ij,ij->j", Z, Z)
        if not want_ak:
            return reduction, None
        W = self._half_solve(Z, overwrite=True, adjoint=True)
        return reduction, _rowwise_dot_h(self.problem, W)

    def _obs_space_reduction_streamed(self, want_ak: bool) -> tuple[np.ndarray, np.ndarray | None]:
        n, m = self.n_state, self.n_obs
        per_col = 8.0 * 4 * n  # W, G block, the B product's temporaries
        held = 8.0 * m * m  # the factor of S
        b = int(min(_STREAM_BLOCK, m, (self.memory_budget - held) // per_col))
        if b < 1:
            raise MemoryBudgetError(
                f"the exact obs-space std map needs at least one column block of B Hᵀ "
                f"(4 x n_state x 8 bytes = {_gib(per_col)}) beside the factor of S "
                f"({_gib(held)}), more than the memory budget of {_gib(self.memory_budget)}; "
                f"use post.aggregate(weights) for the uncertainty of totals (exact, cheap), or "
                f"pass solve(..., memory_budget={int(np.ceil((held + per_col) * 1.25))})"
            )
        logger.info(
            "obs-space std map: G = B Hᵀ (%s) exceeds the memory budget; streaming %d blocks "
            "of %d observations (n_obs products of B)",
            _gib(8.0 * n * m), -(-m // b), b,
        )  # fmt: skip
        reduction = np.zeros(n)
        ak = np.zeros(n) if want_ak else None
        t0 = time.perf_counter()
        for start in range(0, m, b):
            rows = slice(start, min(start + b, m))
            E = np.zeros((m, rows.stop - start))
            E[np.arange(start, rows.stop), np.arange(rows.stop - start)] = 1.0
            Sinv = scipy.linalg.cho_solve(self._S, E, check_finite=False)  # S⁻¹[:, rows]
            W = self.problem.B_matmat(self.problem.Ht_matmat(Sinv))  # (n, b)
            _check_output(W, "B Hᵀ S⁻¹")
            reduction += np.einsum("ij,ij->i", gain_columns(self.problem, rows), W)
            if ak is not None:
                ak += _rowwise_dot_h_rows(self.problem, rows, W)
            if (start // b) % 10 == 9:
                logger.info(
                    "obs-space std map: %d/%d observations (%.0f s)",
                    rows.stop, m, time.perf_counter() - t0,
                )  # fmt: skip
        return reduction, ak

    def _checked_variance(
        self,
        var: np.ndarray,
        prior_var: np.ndarray,
        what: str,
        advice: str = "S = H B Hᵀ + R is too ill-conditioned: check R (variances far too small?) and B",
    ) -> np.ndarray:
        _check_output(var, what)
        neg = var < 0
        if neg.any():
            worst = int(np.argmin(var / prior_var))
            if -var[worst] > _NEGATIVE_VARIANCE_RTOL * prior_var[worst]:
                raise NotPositiveDefiniteError(
                    f"{what}: {int(neg.sum())} negative posterior variance(s), the worst at index "
                    f"{worst}: {float(var[worst])!r} (prior variance {float(prior_var[worst])!r}); "
                    f"{advice}"
                )
            var = np.where(neg, 0.0, var)
        return var

    # ------------------------------------------------------------------ aggregates
    def aggregate(self, weights: Any) -> tuple[Any, Any]:
        """Posterior mean and exact std of linear aggregates ``weights @ x``.

        ``var = aᵀ B a − (H B a)ᵀ S⁻¹ (H B a)``: one ``B`` product per aggregate.

        Parameters
        ----------
        weights : numpy.ndarray or scipy.sparse array/matrix
            One aggregate (n_state,) or k aggregates (k, n_state) [aggregate units per state
            unit, e.g. cell area × duration for a total].

        Returns
        -------
        mean, std : float, float or numpy.ndarray, numpy.ndarray
            Scalars for a vector of weights, arrays (k,) for a matrix [aggregate units].
        """
        W, single = self._as_weights(weights)
        mean = np.asarray(W @ self.mean).ravel()
        var = np.empty(W.shape[0])
        prior_var = np.empty(W.shape[0])
        for rows, Wt, BWt in self._iter_bw(W):
            prior_var[rows] = np.einsum("ij,ij->j", Wt, BWt)
            if self._A is not None:
                var[rows] = np.einsum("ij,ij->j", Wt, self._A @ Wt)
            else:
                V = self._half_solve(self.problem.H_matmat(BWt))
                var[rows] = prior_var[rows] - np.einsum("ij,ij->j", V, V)
        var = self._checked_variance(var, prior_var, "aggregate variance")
        std = np.sqrt(var)
        _check_output(mean, "aggregate mean")
        if single:
            return float(mean[0]), float(std[0])
        return mean, std

    def aggregate_cov(self, weights: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (k,) and covariance (k, k) of aggregates ``weights @ x``.

        Parameters
        ----------
        weights : numpy.ndarray or scipy.sparse array/matrix
            (k, n_state) or (n_state,) aggregate weights.

        Returns
        -------
        mean : numpy.ndarray
            (k,) [aggregate units].
        cov : numpy.ndarray
            (k, k) [aggregate units²], ``W B Wᵀ − (H B Wᵀ)ᵀ S⁻¹ (H B Wᵀ)``.
        """
        W, _ = self._as_weights(weights)
        mean = np.asarray(W @ self.mean).ravel()
        k = W.shape[0]
        prior_cov = np.empty((k, k))
        V = np.empty((self.n_obs, k)) if self._A is None else None
        for rows, _Wt, BWt in self._iter_bw(W):
            prior_cov[:, rows] = np.asarray(W @ BWt)
            if V is not None:
                V[:, rows] = self._half_solve(self.problem.H_matmat(BWt))
        if self._A is not None:
            cov = np.asarray(W @ (W @ self._A).T)
        else:
            cov = prior_cov - V.T @ V
        cov = 0.5 * (cov + cov.T)
        _check_output(cov, "aggregate covariance")
        self._checked_variance(np.diag(cov).copy(), np.diag(prior_cov), "aggregate variance")
        return mean, cov

    def observation_sensitivity(self, weights: Any) -> np.ndarray:
        """Sensitivity of aggregates of the posterior mean to the observations, ``g = Kᵀ a``.

        ``g = S⁻¹ H B a`` (one column per aggregate) is the change of ``aᵀ x̂`` per unit change
        of each observation (``K = B Hᵀ S⁻¹``), so ``aᵀ x̂ = aᵀ x_a + gᵀ (y − H x_a)``. It splits
        the posterior variance of each aggregate exactly into the prior and observation-error
        contributions, ``aᵀ A a = (a − Hᵀg)ᵀ B (a − Hᵀg) + gᵀ R g`` (uncertainty budget).

        Parameters
        ----------
        weights : numpy.ndarray or scipy.sparse array/matrix
            One aggregate (n_state,) or k aggregates (k, n_state) [aggregate units per state
            unit].

        Returns
        -------
        numpy.ndarray
            (n_obs, k) [aggregate units per observation unit, e.g. t CO2 per ppm]; (n_obs,)
            for a vector of weights.
        """
        W, single = self._as_weights(weights)
        g = np.empty((self.n_obs, W.shape[0]))
        for rows, _Wt, BWt in self._iter_bw(W):
            g[:, rows] = scipy.linalg.cho_solve(
                self._S, self.problem.H_matmat(BWt), check_finite=False
            )
        _check_output(g, "observation sensitivity S⁻¹ H B a")
        return g[:, 0] if single else g

    # ------------------------------------------------------------------ innovations
    @property
    def innovation(self) -> np.ndarray:
        """Innovation ``d = y − H x_a`` (n_obs,) [observation units]."""
        return self.problem.innovation() if getattr(self, "_d", None) is None else self._d

    def solve_innovation_covariance(self, V: np.ndarray) -> np.ndarray:
        """``S⁻¹ V`` with ``S = H B Hᵀ + R`` the innovation covariance, from the factorisation.

        Parameters
        ----------
        V : numpy.ndarray
            (n_obs,) or (n_obs, m) [observation units].

        Returns
        -------
        numpy.ndarray
            Same shape [1 / observation units].
        """
        V = np.asarray(V, dtype=np.float64)
        if V.shape[0] != self.n_obs:
            raise ShapeMismatchError(f"V must have n_obs={self.n_obs} rows; found {V.shape}")
        out = scipy.linalg.cho_solve(self._S, V, check_finite=False)
        _check_output(out, "S⁻¹ V")
        return out

    def innovation_covariance_diag(self) -> np.ndarray:
        """Diagonal of ``S = H B Hᵀ + R`` (n_obs,) [observation units²], from its factor."""
        c, lower = self._S
        L = np.tril(c) if lower else np.triu(c).T
        return np.einsum("ij,ij->i", L, L)

    def aggregate_subset(self, weights: Any, obs_index: np.ndarray) -> tuple[Any, Any]:
        """Posterior mean and std of aggregates from a SUBSET of the observations.

        The posterior that the observations ``obs_index`` alone give (same ``B``, ``H`` rows and
        the principal submatrix of ``R``), from this posterior's factorisation of ``S``: with
        ``S = L Lᵀ``, ``S_kk = L_k L_kᵀ`` (``L_k`` the rows of ``L``), so no new ``B Hᵀ``.
        Useful for comparing observation kinds or sites.

        Parameters
        ----------
        weights : numpy.ndarray or scipy.sparse array
            (n_state,) or (k, n_state) aggregate weights.
        obs_index : numpy.ndarray of int
            Indices of the observations kept (n_kept,).

        Returns
        -------
        mean, std : float or numpy.ndarray
            As :meth:`aggregate` [aggregate units].

        Raises
        ------
        NotImplementedError
            For posteriors without a factorisation of ``S`` (``cg``): solve the restricted
            problem instead.
        """
        factor = getattr(self, "_S", None)
        if factor is None:
            raise NotImplementedError(
                f"aggregate_subset needs the factorisation of S ({self.method!r} has none); "
                "solve the problem restricted to the observations instead"
            )
        idx = np.asarray(obs_index, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= self.n_obs)):
            raise ShapeMismatchError(
                f"obs_index must be 1-D indices in [0, {self.n_obs}); found {idx[:5]}..."
            )
        W, single = self._as_weights(weights)
        c, lower = factor
        L = np.tril(c) if lower else np.triu(c).T
        Lk = L[idx]
        S_kk = Lk @ Lk.T
        Wd = np.ascontiguousarray((W.toarray() if scipy.sparse.issparse(W) else W).T)
        BWt = self.problem.B_matmat(Wd)
        V = self.problem.H_matmat(BWt)[idx]
        d = self._d[idx]
        fk = cho_factor_checked(S_kk, lower=True)
        mean = (
            np.asarray(W @ self.problem.x_prior).ravel()
            + scipy.linalg.cho_solve(fk, d, check_finite=False) @ V
        )
        prior_var = np.einsum("ij,ji->i", Wd.T, BWt)
        half = scipy.linalg.solve_triangular(fk[0], V, lower=True, check_finite=False)
        var = prior_var - np.einsum("ij,ij->j", half, half)
        var = self._checked_variance(var, prior_var, "aggregate variance (subset)")
        std = np.sqrt(var)
        _check_output(mean, "aggregate mean (subset)")
        if single:
            return float(mean[0]), float(std[0])
        return mean, std

    def _as_weights(self, weights: Any) -> tuple[Any, bool]:
        if scipy.sparse.issparse(weights):
            W = scipy.sparse.csr_array(weights, dtype=np.float64)
            single = False
        else:
            W = np.asarray(weights, dtype=np.float64)
            single = W.ndim == 1
            W = np.atleast_2d(W)
            if W.ndim != 2:
                raise ShapeMismatchError(
                    f"weights must be (n_state,) or (k, n_state); found shape {W.shape}"
                )
            _check_output(W, "weights")
        if W.shape[1] != self.n_state:
            raise ShapeMismatchError(
                f"weights must have n_state={self.n_state} columns (shape (n_state,) or "
                f"(k, n_state)); found shape {W.shape}"
            )
        return W, single

    def _iter_bw(self, W: Any):
        """Yield ``(rows, Wᵀ[:, rows], B Wᵀ[:, rows])`` over chunks of aggregates."""
        for start in range(0, W.shape[0], self.chunk_size):
            rows = slice(start, min(start + self.chunk_size, W.shape[0]))
            Wc = W[rows]
            Wt = np.ascontiguousarray((Wc.toarray() if scipy.sparse.issparse(Wc) else Wc).T)
            BWt = self.problem.B_matmat(Wt)
            _check_output(BWt, "B Wᵀ")
            yield rows, Wt, BWt

    def _half_solve(
        self, V: np.ndarray, overwrite: bool = False, adjoint: bool = False
    ) -> np.ndarray:
        """``L⁻¹ V`` (or ``L⁻ᵀ V`` if ``adjoint``) with ``S = L Lᵀ``.

        The factor is stored as ``(c, lower)``: ``L = c`` (lower) or ``L = cᵀ`` (upper, S = cᵀ c).
        """
        c, lower = self._S
        trans = "T" if lower == adjoint else "N"
        return scipy.linalg.solve_triangular(
            c, V, lower=lower, trans=trans, overwrite_b=overwrite, check_finite=False
        )

    # ------------------------------------------------------------------ other observations
    def means_for(self, y: np.ndarray) -> np.ndarray:
        """Posterior means for other observation vectors with the same ``H``, ``B``, ``R``.

        Reuses the factorisation of ``S``: one ``B`` product with m columns, no new solve.
        Useful for ensembles of perturbed or synthetic observations.

        Parameters
        ----------
        y : numpy.ndarray
            (n_obs,) or (m, n_obs) observations [ppm].

        Returns
        -------
        numpy.ndarray
            (n_state,) or (m, n_state) posterior means [state units].
        """
        Y, single = self._as_obs(y)
        alpha = scipy.linalg.cho_solve(self._S, self._innovations(Y).T, check_finite=False)
        if self._G is not None:
            X = self._G @ alpha
        else:
            X = self.problem.B_matmat(self.problem.Ht_matmat(alpha))
        X = (X + self.problem.x_prior[:, None]).T
        _check_output(X, "posterior means")
        return X[0] if single else X

    def chi2_for(self, y: np.ndarray) -> np.ndarray | float:
        """Innovation chi-square per observation for other observation vector(s) (see chi2)."""
        Y, single = self._as_obs(y)
        D = self._innovations(Y)
        V = self._half_solve(D.T)
        chi2 = np.einsum("ij,ij->j", V, V) / self.n_obs
        return float(chi2[0]) if single else chi2

    def _as_obs(self, y: np.ndarray) -> tuple[np.ndarray, bool]:
        Y = np.asarray(y, dtype=np.float64)
        single = Y.ndim == 1
        Y = np.atleast_2d(Y)
        if Y.ndim != 2 or Y.shape[1] != self.n_obs:
            raise ShapeMismatchError(
                f"y must have shape (n_obs,) or (m, n_obs) with n_obs={self.n_obs}; "
                f"found shape {np.shape(y)}"
            )
        _check_output(Y, "y")
        return Y, single

    def _innovations(self, Y: np.ndarray) -> np.ndarray:
        return Y - self.problem.H_matmat(self.problem.x_prior)[None, :]


def _rowwise_dot_h(problem: LinearProblem, M: np.ndarray) -> np.ndarray:
    """``Σ_i M[i, j] H[i, j]`` for each state j, with M (n_obs, n_state) dense."""
    if scipy.sparse.issparse(problem.H) or isinstance(problem.H, np.ndarray):
        return _rowwise_dot_h_rows(problem, slice(0, problem.n_obs), M.T)
    out = np.zeros(problem.n_state)
    for start in range(0, problem.n_obs, 256):  # operator H: 256 dense columns of Hᵀ at a time
        rows = slice(start, min(start + 256, problem.n_obs))
        out += _rowwise_dot_h_rows(problem, rows, M[rows].T)
    return out


def _rowwise_dot_h_rows(problem: LinearProblem, rows: slice, W: np.ndarray) -> np.ndarray:
    """``Σ_{i∈rows} W[j, i − rows.start] H[i, j]`` for each state j, with W (n_state, k)."""
    H = problem.H
    if scipy.sparse.issparse(H):
        return np.asarray(H[rows].multiply(W.T).sum(axis=0)).ravel()
    if isinstance(H, np.ndarray):
        return np.einsum("ij,ji->j", H[rows], W)
    return np.einsum("ji,ji->j", W, problem.Ht_columns(rows))
