"""Posterior of the ``cg`` solver: low-rank std map, exact aggregates by solves, RTO samples.

With the Ritz pairs (θ_i, v_i) of ``K = Lᵀ Hᵀ R⁻¹ H L`` from the Lanczos-CG run,

    A ≈ B − L V diag(θ/(1+θ)) Vᵀ Lᵀ,

whose diagonal is ``diag B − Σ_i θ_i/(1+θ_i) (L v_i)²`` (row norms of ``L V``, never n×n).
``L v_i = B Hᵀ z_i`` with z_i the observation-space coordinates of v_i, so the map costs one
``B`` product per Ritz pair (in column blocks). Truncation only drops variance reduction, so
the low-rank std is never below the exact one; with the full spectrum it is exact. K has rank
≤ n_obs, so ``CGOptions(rank="full")`` (the complete spectrum of the pencil ``(H B Hᵀ, R)``,
:func:`inversion.cg.obs_space_spectrum`) gives the exact std map in ``O(n_state)`` memory per
column block; where the spectrum decays slowly, a truncated rank can miss much of the
reduction (:meth:`CGPosterior.lowrank_std_at` shows the map against the rank).

Aggregates ``a`` are exact. When the Lanczos basis is in observation coordinates (n_obs <
sqrt_dim) they are solved in observation space, ``aᵀAa = aᵀBa − uᵀ S⁻¹ u`` with ``u = H B a``
and ``S = H B Hᵀ + R``, by batched PCG on S preconditioned with the Ritz pairs
(``P⁻¹ = R⁻¹ − R⁻¹ (M Z) diag(1/(1+θ)) (M Z)ᵀ R⁻¹``, the inverse of S on the Ritz space and R⁻¹
elsewhere). The iterate gives ``aᵀBa − uᵀx_j ≥ aᵀAa`` (Galerkin) and, since S ⪰ R, the gap is
at most ``r_jᵀ R⁻¹ r_j``: the solve stops when that certified bound is ≤ ``tol`` times the
variance, which takes far fewer iterations than a residual of ``tol``. Otherwise
``aᵀ A a = (Lᵀa)ᵀ (I + K)⁻¹ (Lᵀa)`` by batched CG in χ.
Samples are drawn by randomize-then-optimize: ``χ_s = (I + K)⁻¹ (χ₀ + Lᵀ Hᵀ R⁻¹ (d + R^{1/2} ε))``
with ``χ₀ ~ N(0, I)``, ``ε ~ N(0, I)``; then ``x_s = x_a + L χ_s ~ N(x̂, A)`` exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import cached_property
from typing import Any

import numpy as np

from inversion.cg import (
    CGOptions,
    LanczosResult,
    WhitenedSystem,
    batched_pcg,
    lanczos_cg,
    obs_space_spectrum,
)
from inversion.errors import MemoryBudgetError
from inversion.posterior import Posterior, _gib
from inversion.problem import _check_output

__all__ = ["CGPosterior", "solve_cg"]

logger = logging.getLogger(__name__)

# Columns of B Hᵀ Z held at a time for the low-rank std map.
_STD_BLOCK = 32


class CGPosterior(Posterior):
    """Posterior made by ``solve(problem, method="cg")``.

    Attributes
    ----------
    mean : numpy.ndarray
        Posterior mean (n_state,) to the CG tolerance.
    std_method : str
        ``"low-rank (k=…, complete spectrum)"`` (exact), ``"low-rank (k=…)"`` (Ritz pairs, an
        upper bound), ``"low-rank+sampled (k=…, n=…)"`` or ``"sampled (n=…)"``; final once
        :attr:`std` is computed.
    info : dict
        ``iterations``, ``residuals`` (relative residual per iteration), ``tolerance``,
        ``converged``, ``ritz_values``, ``rank``, ``complete_spectrum``, ``dofs_is_estimate``,
        and after use
        ``aggregate_solves``, ``n_samples``, ``mc_rel_error``.
    """

    def __init__(
        self,
        system: WhitenedSystem,
        lanczos: LanczosResult,
        mean: np.ndarray,
        options: CGOptions,
        memory_budget: float,
        chunk_size: int,
    ) -> None:
        self.problem = system.problem
        self.method = "cg"
        self.mean = mean
        self.memory_budget = float(memory_budget)
        self.chunk_size = int(chunk_size)
        self._sys = system
        self._lz = lanczos
        self.options = options
        self._G = None
        self._A = None
        self._auto_done = False
        k = lanczos.ritz_values.size
        self.std_method = (
            self._lowrank_name()
            if options.std == "low-rank"
            else f"sampled (n={options.n_samples})"
        )
        self.info: dict[str, Any] = {
            "iterations": lanczos.iterations,
            "residuals": list(lanczos.residuals),
            "tolerance": options.tol,
            "converged": lanczos.converged,
            "ritz_values": lanczos.ritz_values.copy(),
            "rank": k,
            "complete_spectrum": lanczos.complete,
            "dofs_is_estimate": not lanczos.complete,
        }

    def __repr__(self) -> str:
        return (
            f"CGPosterior(n_state={self.n_state}, n_obs={self.n_obs}, iterations="
            f"{self.info['iterations']}, std_method={self.std_method!r})"
        )

    # ------------------------------------------------------------------ diagnostics
    @property
    def chi2(self) -> float:
        """Innovation chi-square per observation, ``(dᵀR⁻¹d − bᵀχ) / n_obs`` (to the CG tolerance)."""
        return (self._lz.d_rinv_d - self._lz.bt_chi) / self.n_obs

    @property
    def dofs(self) -> float:
        """DOFS ``Σ θ_i/(1+θ_i)`` over the Ritz values [1]: exact with the complete spectrum
        (``rank="full"``), otherwise an estimate and a lower bound (``info["dofs_is_estimate"]``)."""
        th = self._lz.ritz_values
        return float(np.sum(th / (1.0 + th)))

    @property
    def covariance(self) -> np.ndarray:
        raise MemoryBudgetError(
            "the cg solver never forms the posterior covariance (n_state x n_state = "
            f"{_gib(8.0 * self.n_state**2)}); use post.aggregate_cov(weights) or post.std"
        )

    @property
    def averaging_kernel_diag(self) -> np.ndarray:
        raise NotImplementedError(
            "the averaging-kernel diagonal is not available from the cg solver; use "
            "post.dofs (estimate from the Lanczos spectrum) or solve with method='obs-space'"
        )

    # ------------------------------------------------------------------ std
    @cached_property
    def std(self) -> np.ndarray:
        """Posterior std (n_state,): low-rank (default) or sampled; see :attr:`std_method`."""
        if self.options.std == "sampled":
            return self.sampled_std(self.options.n_samples, self.options.seed)
        if self.options.std == "low-rank+sampled":
            return self.corrected_std(self.options.n_samples, self.options.seed)
        return self.lowrank_std()

    def _complete_spectrum(self) -> bool:
        """With ``rank="auto"``: swap the Ritz pairs for the complete spectrum if it fits.

        Returns whether the pairs are now the complete spectrum. Done once; when it cannot be
        done (memory, or the Lanczos basis is not in observation coordinates) a warning says
        that the map from the Ritz pairs is only an upper bound.
        """
        lz = self._lz
        if lz.complete or self.options.rank != "auto" or self._auto_done:
            return lz.complete
        self._auto_done = True
        why = (
            "the Lanczos basis is not in observation coordinates (n_obs >= sqrt_dim)"
            if lz.space != "obs" else ""
        )  # fmt: skip
        if not why:
            try:
                theta, Z, MZ = obs_space_spectrum(self._sys, self.memory_budget, self.chunk_size)
            except MemoryBudgetError as err:
                why = str(err)
        if why:
            logger.warning(
                "cg (rank='auto'): the std map uses the %d Ritz pairs of the mean's Lanczos run "
                "(DOFS %.1f captured): an upper bound of the exact std, far above it where the "
                "spectrum decays slowly; the complete spectrum was not computed: %s",
                lz.ritz_values.size, self.dofs, why,
            )  # fmt: skip
            return False
        self._lz = dataclasses.replace(lz, ritz_values=theta, ritz_z=Z, ritz_mz=MZ, complete=True)
        self.info.update(
            ritz_values=theta.copy(), rank=theta.size, complete_spectrum=True,
            dofs_is_estimate=False,
        )  # fmt: skip
        return True

    def _lowrank_name(self, k: int | None = None) -> str:
        kk = self._lz.ritz_values.size
        k = kk if k is None else min(int(k), kk)
        whole = self._lz.complete and k == kk
        return f"low-rank (k={k}, complete spectrum)" if whole else f"low-rank (k={k})"

    def _lowrank_reductions(self, ks: list[int]) -> dict[int, np.ndarray]:
        """``{k: Σ_{i<k} θ_i/(1+θ_i) (L v_i)²}`` (n_state,) [state unit²] for sorted ``ks``.

        One pass over the leading ``max(ks)`` Ritz pairs, one ``L`` product per pair in blocks
        of ``_STD_BLOCK`` that end on every k; progress is logged every tenth of the pairs.
        """
        n = ks[-1] if ks else 0
        th = self._lz.ritz_values[:n]
        Zr = self._lz.ritz_z
        w = th / (1.0 + th)
        reduction = np.zeros(self.n_state)
        out: dict[int, np.ndarray] = {k: reduction.copy() for k in ks if k == 0}
        step = max(1, n // 10)
        t0 = time.perf_counter()
        a = 0
        while a < n:
            stop = min([a + _STD_BLOCK] + [k for k in ks if k > a])  # blocks end on every k
            U = self._lz.L_of(self._sys, np.ascontiguousarray(Zr[:, a:stop]))
            reduction += (U * U) @ w[a:stop]
            if stop in ks:
                out[stop] = reduction if stop == n else reduction.copy()
            if n >= 10 * _STD_BLOCK and a // step != stop // step:
                logger.info("low-rank std: %d/%d pairs (%.0f s)", stop, n, time.perf_counter() - t0)
            a = stop
        return out

    def lowrank_std(self, rank: int | None = None) -> np.ndarray:
        """``sqrt(diag B − Σ θ/(1+θ) (B Hᵀ z_i)²)`` over the Ritz pairs (n_state,) [state units].

        Parameters
        ----------
        rank : int, optional
            Use only the leading ``rank`` pairs (default: all). Truncation drops variance
            reduction only, so the std is never below the exact one.
        """
        self._complete_spectrum()
        k = self._lz.ritz_values.size if rank is None else int(rank)
        return self.lowrank_std_at([k])[min(max(k, 0), self._lz.ritz_values.size)]

    def lowrank_std_at(self, ranks: Any) -> dict[int, np.ndarray]:
        """Low-rank std maps from the leading k pairs for each k in ``ranks``, in one pass.

        Returns ``{k: std (n_state,)}`` [state units] (k clipped to the number of pairs);
        costs as much as the map of the largest k. Shows how the map converges with the rank.
        """
        self._complete_spectrum()
        n = self._lz.ritz_values.size
        ks = sorted({min(max(int(k), 0), n) for k in ranks})
        reductions = self._lowrank_reductions(ks)
        out = {}
        for k in ks:
            var = self._checked_variance(
                self.problem.B_diag - reductions[k],
                self.problem.B_diag,
                f"low-rank posterior variance (k={k})",
                advice="the Lanczos basis lost orthogonality (H B Hᵀ is ill-conditioned); "
                "lower CGOptions.rank, or use CGOptions(std='sampled')",
            )
            out[k] = np.sqrt(var)
        self.std_method = self._lowrank_name(ks[-1] if ks else 0)
        return out

    def corrected_std(self, n: int, seed: int | None = 0) -> np.ndarray:
        """Low-rank std corrected by a Monte-Carlo estimate of the reduction it misses.

        A randomize-then-optimize pair gives ``L δ = L ξ + B Hᵀ S⁻¹ (ε − H L ξ)`` with
        ``ξ ~ N(0, I)``, ``ε ~ N(0, R)``, so ``δ ~ N(0, (I + K)⁻¹)`` and
        ``E[(L ξ)² − (L δ)²]`` is the exact variance reduction. Its control variate, built from
        the same ξ and ε and the Ritz pairs (V = Lᵀ Hᵀ Z),

            δ̃ = ξ − V diag(θ/(1+θ)) Vᵀ ξ + V diag(1/(1+θ)) Vᵀ Lᵀ Hᵀ R⁻¹ ε,

        has ``Cov δ̃ = I − V diag(θ/(1+θ)) Vᵀ`` exactly from ``VᵀV = I`` and ``VᵀKV = Θ``
        (Rayleigh–Ritz), whatever the accuracy of the Ritz vectors, so
        ``E[(L ξ)² − (L δ̃)²]`` is the low-rank reduction and

            reduction ≈ low-rank reduction + mean_s[(L δ̃_s)² − (L δ_s)²]

        is unbiased. δ and δ̃ agree on the space the Ritz pairs capture, so the Monte-Carlo
        error shrinks with the part of the spectrum they miss. Each sample costs one
        Ritz-preconditioned observation-space solve (to ``sample_tol``), one ``L`` and two
        ``B Hᵀ`` products. ``info["std_se"]`` is the standard error of each std [state unit]
        (delta method) and ``info["n_samples"]`` the count.

        Raises
        ------
        NotImplementedError
            When the Lanczos basis is not in observation coordinates (n_obs >= sqrt_dim).
        ValueError
            If an estimated variance is not positive (too few samples for the remainder).
        """
        lz, s, R = self._lz, self._sys, self.problem.R
        if lz.space != "obs" or lz.ritz_mz is None:
            raise NotImplementedError(
                "std='low-rank+sampled' needs the observation-space Lanczos basis (n_obs < "
                f"sqrt_dim; here n_obs={self.n_obs}, sqrt_dim={s.q}); use std='sampled'"
            )
        rng = np.random.default_rng(seed)
        th = lz.ritz_values
        Zr, MZ = lz.ritz_z, lz.ritz_mz
        low = self._lowrank_reductions([th.size])[th.size]
        acc = np.zeros(self.n_state)
        acc2 = np.zeros(self.n_state)
        precond = self._obs_precond()
        b = self._batch_obs()

        for a in range(0, n, b):
            m = min(b, n - a)
            Lxi = s.L(rng.standard_normal((s.q, m)))  # (n_state, m) ~ N(0, B)
            HLxi = s.H(Lxi)
            eps = R.sqrt_matvec(rng.standard_normal((R.sqrt_dim, m)))  # ~ N(0, R)
            w = self._solve_batches(
                self._apply_S, eps - HLxi, precond, b, "low-rank+sampled std (remainder samples)",
                tol=self.options.sample_tol, space="obs",
            )  # fmt: skip
            c = ((MZ.T @ s.Rinv(eps)) - th[:, None] * (Zr.T @ HLxi)) / (1.0 + th)[:, None]
            G = self.problem.B_matmat(s.Ht(np.hstack([w - Zr @ c, w + Zr @ c])))
            diff = -G[:, :m] * (2.0 * Lxi + G[:, m:])  # (L δ̃)² − (L δ)²
            acc += diff.sum(axis=1)
            acc2 += (diff * diff).sum(axis=1)
        rem = acc / n
        rem_var = np.clip(acc2 / n - rem * rem, 0.0, None) * n / (n - 1)
        var = self.problem.B_diag - low - rem
        bad = ~(var > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"low-rank+sampled posterior variance is not positive at {int(bad.sum())} "
                f"element(s) (first at index {i}: {var[i]:.3g}, Monte-Carlo standard error "
                f"{np.sqrt(rem_var[i] / n):.3g}); raise CGOptions.n_samples or CGOptions.rank"
            )
        std = np.sqrt(var)
        self.info["n_samples"] = int(n)
        self.info["std_se"] = np.sqrt(rem_var / n) / (2.0 * std)
        self.std_method = f"low-rank+sampled (k={th.size}, n={n})"
        return std

    # ------------------------------------------------------------------ solves
    def _maxiter(self) -> int:
        if self.options.maxiter is not None:
            return self.options.maxiter
        return max(100, min(self.n_obs + 1, 2000))

    def _batch(self) -> int:
        per_col = 8.0 * 6 * self._sys.q
        fit = int(self.memory_budget // per_col)
        if fit < 1:
            raise MemoryBudgetError(
                f"one right-hand side of the batched CG needs about {_gib(per_col)} "
                f"(6 vectors of sqrt_dim={self._sys.q}), more than memory_budget="
                f"{_gib(self.memory_budget)}"
            )
        return max(1, min(self.options.batch, fit))

    def _precond(self):
        if not self.options.precondition or self._lz.ritz_values.size == 0:
            return None
        th = self._lz.ritz_values
        w = th / (1.0 + th)
        Zr = self._lz.ritz_z
        s, lz = self._sys, self._lz

        def apply(Rm: np.ndarray) -> np.ndarray:
            c = lz.coords_dot(s, Zr, Rm)  # Vᵀ r
            return Rm - lz.chi_of(s, Zr @ (c * w[:, None]))

        return apply

    def solve_whitened(self, rhs: np.ndarray, what: str) -> np.ndarray:
        """``(I + K)⁻¹ rhs`` for rhs (sqrt_dim, m), in batches; records the solve in ``info``."""
        return self._solve_batches(self._sys.hessian, rhs, self._precond(), self._batch(), what)

    def _solve_batches(
        self,
        apply_A: Any,
        rhs: np.ndarray,
        precond: Any,
        batch: int,
        what: str,
        *,
        tol: float | None = None,
        measure: Any = None,
        space: str = "chi",
    ) -> np.ndarray:
        """Batched PCG on the columns of ``rhs``, ``batch`` at a time; each batch is logged in
        ``info["solves"]``. ``measure(rhs_cols, cols)`` builds the stopping measure of a batch
        (see :func:`inversion.cg.batched_pcg`); ``tol`` defaults to ``options.tol``."""
        out = np.empty_like(rhs)
        log = self.info.setdefault("solves", [])
        for a in range(0, rhs.shape[1], batch):
            cols = slice(a, min(a + batch, rhs.shape[1]))
            Rc = np.ascontiguousarray(rhs[:, cols])
            X, info = batched_pcg(
                apply_A, Rc, self.options.tol if tol is None else tol, self._maxiter(), precond,
                what, self.options.allow_nonconvergence,
                measure=None if measure is None else measure(Rc, cols),
            )  # fmt: skip
            out[:, cols] = X
            log.append({"what": what, "columns": cols.stop - cols.start, "space": space, **info})
        return out

    def _obs_precond(self):
        """``P⁻¹ = R⁻¹ − R⁻¹ (M Z) diag(1/(1+θ)) (M Z)ᵀ R⁻¹`` (n_obs space), or R⁻¹."""
        Rinv = self._sys.Rinv
        MZ = self._lz.ritz_mz
        if not self.options.precondition or MZ is None or MZ.shape[1] == 0:
            return Rinv
        w = 1.0 / (1.0 + self._lz.ritz_values)

        def apply(Rm: np.ndarray) -> np.ndarray:
            G = Rinv(Rm)
            return G - Rinv(MZ @ ((MZ.T @ G) * w[:, None]))

        return apply

    def _apply_S(self, X: np.ndarray) -> np.ndarray:
        """``S X = (H B Hᵀ + R) X`` for X (n_obs, m)."""
        return self._sys.M(X) + np.asarray(self.problem.R @ X, dtype=np.float64)

    def _batch_obs(self) -> int:
        per_col = 8.0 * (3 * self.n_state + 8 * self.n_obs)
        fit = int(self.memory_budget // per_col)
        if fit < 1:
            raise MemoryBudgetError(
                f"one right-hand side of the observation-space CG needs about {_gib(per_col)}, "
                f"more than memory_budget={_gib(self.memory_budget)}"
            )
        return max(1, min(self.options.batch, fit))

    def solve_variances_obs(self, U: np.ndarray, prior_var: np.ndarray, what: str) -> np.ndarray:
        """``S⁻¹ U`` for U = H B A (n_obs, k), stopping on the certified variance bound.

        Column j stops when ``r_jᵀ R⁻¹ r_j ≤ tol · (prior_var_j − u_jᵀ x_j)``: the variance
        ``prior_var_j − u_jᵀ S⁻¹ u_j`` is then known to relative ``tol`` (an upper estimate).
        The largest bound reached is recorded in ``info["solves"]``.
        """
        return self._solve_batches(
            self._apply_S, U, self._obs_precond(), self._batch_obs(), what, space="obs",
            measure=lambda Uc, cols: _VarianceBound(self._sys.Rinv, Uc, prior_var[cols]),
        )  # fmt: skip

    # ------------------------------------------------------------------ aggregates
    def aggregate_cov(self, weights: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean (k,) and exact covariance (k, k) of aggregates by ``k`` batched CG solves.

        In observation space (n_obs < sqrt_dim) each variance is certified to relative
        ``tol`` (an upper estimate, Galerkin bound); covariances between aggregates to
        ``tol`` times the geometric mean of their variances (Cauchy–Schwarz).
        """
        W, _ = self._as_weights(weights)
        mean = np.asarray(W @ self.mean).ravel()
        Wt = W.toarray().T if hasattr(W, "toarray") else np.ascontiguousarray(W.T)
        if self._lz.space == "obs":
            BW = self.problem.B_matmat(np.ascontiguousarray(Wt, dtype=np.float64))
            prior_cov = Wt.T @ BW
            U = self._sys.H(BW)
            X = self.solve_variances_obs(U, np.diag(prior_cov).copy(), "aggregate variance")
            cov = prior_cov - U.T @ X
            cov = 0.5 * (cov + cov.T)
            _check_output(cov, "aggregate covariance")
            self._checked_variance(np.diag(cov).copy(), np.diag(prior_cov), "aggregate variance")
            return mean, cov
        C = self._sys.Lt(np.ascontiguousarray(Wt))  # (q, k)
        X = self.solve_whitened(C, "aggregate variance")
        cov = C.T @ X
        cov = 0.5 * (cov + cov.T)
        _check_output(cov, "aggregate covariance")
        prior = np.einsum("ij,ij->j", C, C)
        self._checked_variance(np.diag(cov).copy(), prior, "aggregate variance")
        return mean, cov

    def aggregate(self, weights: Any) -> tuple[Any, Any]:
        """Posterior mean and exact std of aggregates ``weights @ x`` (CG solves to ``tol``)."""
        W, single = self._as_weights(weights)
        mean, cov = self.aggregate_cov(W)
        std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        if single:
            return float(mean[0]), float(std[0])
        return mean, std

    def observation_sensitivity(self, weights: Any) -> np.ndarray:
        """``g = S⁻¹ H B a`` (n_obs, k) by batched CG solves (see :meth:`Posterior.observation_sensitivity`).

        Observation coordinates (n_obs < sqrt_dim): Ritz-preconditioned CG on S, each column
        stopped on the certified bound of its variance. Otherwise
        ``g = R⁻¹ H L (I + K)⁻¹ Lᵀ a``, one whitened solve per aggregate. An approximate g
        overstates the budget's total by ``δgᵀ S δg`` (second order in the solve error).
        """
        W, single = self._as_weights(weights)
        Wt = W.toarray().T if hasattr(W, "toarray") else np.ascontiguousarray(W.T)
        Wt = np.ascontiguousarray(Wt, dtype=np.float64)
        if self._lz.space == "obs":
            BW = self.problem.B_matmat(Wt)
            U = self._sys.H(BW)
            g = self.solve_variances_obs(
                U, np.einsum("ij,ij->j", Wt, BW), "observation sensitivity"
            )
        else:
            X = self.solve_whitened(self._sys.Lt(Wt), "observation sensitivity")
            g = self._sys.Rinv(self._sys.H(self._sys.L(X)))
        _check_output(g, "observation sensitivity S⁻¹ H B a")
        return g[:, 0] if single else g

    # ------------------------------------------------------------------ other observations
    def means_for(self, y: np.ndarray) -> np.ndarray:
        """Posterior means for other observation vectors (batched CG solves)."""
        Y, single = self._as_obs(y)
        D = self._innovations(Y).T
        rhs = self._sys.Lt(self._sys.Ht(self._sys.Rinv(D)))
        X = self._sys.L(self.solve_whitened(rhs, "means_for")).T + self.problem.x_prior
        _check_output(X, "posterior means")
        return X[0] if single else X

    def chi2_for(self, y: np.ndarray) -> np.ndarray | float:
        """Innovation chi-square per observation for other observation vector(s)."""
        Y, single = self._as_obs(y)
        D = self._innovations(Y).T
        G = self._sys.Rinv(D)
        rhs = self._sys.Lt(self._sys.Ht(G))
        X = self.solve_whitened(rhs, "chi2_for")
        chi2 = (np.einsum("ij,ij->j", D, G) - np.einsum("ij,ij->j", rhs, X)) / self.n_obs
        return float(chi2[0]) if single else chi2

    def solve_innovation_covariance(self, V: np.ndarray) -> np.ndarray:
        """``S⁻¹ V`` by Woodbury in the whitened space (batched CG solves):
        ``S⁻¹ = R⁻¹ − R⁻¹ H L (I + Lᵀ Hᵀ R⁻¹ H L)⁻¹ Lᵀ Hᵀ R⁻¹``."""
        V = np.asarray(V, dtype=np.float64)
        single = V.ndim == 1
        V2 = V[:, None] if single else V
        s = self._sys
        G = s.Rinv(V2)
        X = self.solve_whitened(s.Lt(s.Ht(G)), "S⁻¹ V")
        out = G - s.Rinv(s.H(s.L(X)))
        _check_output(out, "S⁻¹ V")
        return out[:, 0] if single else out

    def innovation_covariance_diag(self) -> np.ndarray:
        """Not available for ``cg`` without forming ``H B Hᵀ``."""
        raise NotImplementedError(
            "innovation_covariance_diag needs the factorisation of S; use method='obs-space'"
        )

    # ------------------------------------------------------------------ sampling
    def samples(self, n: int, seed: int | None = 0) -> np.ndarray:
        """``n`` posterior samples (n, n_state) by randomize-then-optimize (batched solves).

        Each is the exact minimiser of J with a perturbed prior ``χ₀ ~ N(0, I)`` and perturbed
        observations ``y + R^{1/2} ε``; their distribution is exactly ``N(mean, A)``.
        """
        rng = np.random.default_rng(seed)
        s, R = self._sys, self.problem.R
        d = self._lz_innovation()
        out = np.empty((n, self.n_state))
        b = self._batch()
        for a in range(0, n, b):
            m = min(b, n - a)
            chi0 = rng.standard_normal((s.q, m))
            eps = R.sqrt_matvec(rng.standard_normal((R.sqrt_dim, m)))
            rhs = chi0 + s.Lt(s.Ht(s.Rinv(d[:, None] + eps)))
            X = self.solve_whitened(rhs, "posterior samples (RTO)")
            out[a : a + m] = (s.L(X) + self.problem.x_prior[:, None]).T
        return out

    def sampled_std(self, n: int, seed: int | None = 0) -> np.ndarray:
        """Sample std (ddof=1) of ``n`` RTO samples; records n and its Monte-Carlo error.

        The relative standard error of a std estimated from n Gaussian samples is about
        ``1/sqrt(2 (n − 1))`` (``info["mc_rel_error"]``; per element in ``info["std_se"]``).
        """
        X = self.samples(n, seed)
        std = X.std(axis=0, ddof=1)
        self.info["n_samples"] = int(n)
        self.info["mc_rel_error"] = float(1.0 / np.sqrt(2.0 * (n - 1)))
        self.info["std_se"] = std * self.info["mc_rel_error"]
        self.std_method = f"sampled (n={n})"
        return std

    def _lz_innovation(self) -> np.ndarray:
        return self.problem.innovation()


class _VarianceBound:
    """Relative bound ``r_jᵀ R⁻¹ r_j / (v_j − u_jᵀ x_j)`` on the error of a CG variance.

    For ``S x = u`` with ``S = M + R ⪰ R`` and CG from x = 0, ``v − uᵀx_j`` decreases to the
    exact variance ``v − uᵀS⁻¹u`` and exceeds it by ``r_jᵀ S⁻¹ r_j ≤ r_jᵀ R⁻¹ r_j``.
    """

    def __init__(self, rinv: Any, U: np.ndarray, prior_var: np.ndarray) -> None:
        self.rinv, self.U, self.prior_var = rinv, U, prior_var

    def __call__(self, Xc: np.ndarray, Rc: np.ndarray, idx: np.ndarray) -> np.ndarray:
        gap = np.einsum("ij,ij->j", Rc, self.rinv(Rc))
        pv = self.prior_var[idx]
        var = pv - np.einsum("ij,ij->j", self.U[:, idx], Xc)
        return gap / np.maximum(var, np.finfo(float).tiny * np.maximum(pv, 1.0))


def solve_cg(
    problem: Any,
    options: CGOptions,
    memory_budget: float,
    chunk_size: int,
) -> CGPosterior:
    """Run Lanczos-CG for the mean and return a :class:`CGPosterior`.

    With ``options.rank`` ``"full"`` (or ≥ n_obs) and the observation-space basis, the Ritz
    pairs are replaced by the complete spectrum (:func:`inversion.cg.obs_space_spectrum`);
    with ``"auto"`` that happens when the std map is first asked for, if it fits.
    """
    system = WhitenedSystem(problem)
    maxiter = options.maxiter if options.maxiter is not None else min(problem.n_obs + 1, 2000)
    d = problem.innovation()
    r = options.rank
    full = r == "full" or (not isinstance(r, str) and int(r) >= problem.n_obs)
    explicit = full and problem.n_obs < system.q  # else Lanczos runs to the whole Krylov space
    if explicit or r == "auto":  # "auto": the complete spectrum later, when the std map asks
        rank = 0
    else:
        rank = problem.n_obs if r == "full" else int(r)
    lz = lanczos_cg(
        system, d, options.tol, maxiter, rank, memory_budget, options.allow_nonconvergence
    )
    if explicit and lz.space == "obs":
        theta, Z, MZ = obs_space_spectrum(system, memory_budget, chunk_size)
        lz = dataclasses.replace(lz, ritz_values=theta, ritz_z=Z, ritz_mz=MZ, complete=True)
    mean = problem.x_prior + lz.L_of(system, lz.chi_coef[:, None])[:, 0]
    _check_output(mean, "posterior mean")
    return CGPosterior(system, lz, mean, options, memory_budget, chunk_size)
