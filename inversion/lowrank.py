"""Posterior of the ``cg`` solver: low-rank std map, exact aggregates by solves, RTO samples.

:class:`CGPosterior` keeps results; the work after the mean (solves, preconditioners,
spectra, samples) is done by its :class:`~inversion.cg_solver.CGSolver`.

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
elsewhere). Whatever the iterate x and its recomputed residual r, ``aᵀBa − uᵀx − xᵀr ≥ aᵀAa``
and the gap ``rᵀS⁻¹r`` is at most ``rᵀP⁻¹r`` (``S ⪰ P``, see :mod:`inversion.cg_solver`): the
solve stops when that certificate is ≤ ``tol`` times the variance. Otherwise
``aᵀ A a = (Lᵀa)ᵀ (I + K)⁻¹ (Lᵀa)`` by batched CG in χ, certified the same way with ``I + K ⪰ I``.
Samples are drawn by randomize-then-optimize: ``χ_s = (I + K)⁻¹ (χ₀ + Lᵀ Hᵀ R⁻¹ (d + R^{1/2} ε))``
with ``χ₀ ~ N(0, I)``, ``ε ~ N(0, I)``; then ``x_s = x_a + L χ_s ~ N(x̂, A)`` exactly.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from inversion.cg import CGOptions, LanczosResult, WhitenedSystem, lanczos_cg
from inversion.cg_solver import CGSolver
from inversion.errors import MemoryBudgetError
from inversion.posterior import Posterior, _gib
from inversion.problem import _check_output

__all__ = ["CGPosterior", "solve_cg"]

logger = logging.getLogger(__name__)


class CGPosterior(Posterior):
    """Posterior made by ``solve(problem, method="cg")``.

    Attributes
    ----------
    mean : numpy.ndarray
        Posterior mean (n_state,) to the CG tolerance.
    options : CGOptions
        The settings (read-only; :meth:`with_options` gives a posterior with others).
    std_method : str
        ``"low-rank (k=…, complete spectrum)"`` (exact), ``"low-rank (k=…)"`` (Ritz pairs, an
        upper bound), ``"low-rank+sampled (k=…, n=…)"`` or ``"sampled (n=…)"``; final once
        :attr:`std` is computed.
    info : dict
        ``iterations``, ``residuals`` (relative residual per iteration), ``tolerance``,
        ``converged``, ``ritz_values``, ``rank``, ``complete_spectrum``, ``dofs_is_estimate``,
        ``solves`` (one entry per batch of a later solve, see :class:`CGSolver`), and after
        use ``n_samples``, ``mc_rel_error``, ``std_se``.
    """

    def __init__(self, solver: CGSolver, mean: np.ndarray) -> None:
        self.problem = solver.problem
        self.method = "cg"
        self.mean = mean
        self.memory_budget = solver.memory_budget
        self.chunk_size = solver.chunk_size
        self._solver = solver
        self._G = None
        self._A = None
        lz = solver.lanczos
        opts = solver.options
        self.std_method = (
            self._lowrank_name() if opts.std == "low-rank"
            else "local windows" if opts.std == "local"
            else f"sampled (n={opts.n_samples})"
        )  # fmt: skip
        self.info: dict[str, Any] = {
            "iterations": lz.iterations,
            "residuals": list(lz.residuals),
            "tolerance": opts.tol,
            "converged": lz.converged,
            "solves": solver.log,
        }
        self._update_spectrum_info()

    def __repr__(self) -> str:
        return (
            f"CGPosterior(n_state={self.n_state}, n_obs={self.n_obs}, iterations="
            f"{self.info['iterations']}, std_method={self.std_method!r})"
        )

    @property
    def options(self) -> CGOptions:
        """The settings of this posterior's solves (read-only)."""
        return self._solver.options

    def with_options(self, options: CGOptions) -> CGPosterior:
        """The same posterior (mean, spectrum) whose later solves use ``options``."""
        post = CGPosterior(self._solver.with_options(options), self.mean)
        post.info.update(iterations=self.info["iterations"], converged=self.info["converged"])
        return post

    @property
    def _lz(self) -> LanczosResult:
        return self._solver.lanczos

    def _update_spectrum_info(self) -> None:
        lz = self._lz
        self.info.update(
            ritz_values=lz.ritz_values.copy(), rank=lz.ritz_values.size,
            complete_spectrum=lz.complete, dofs_is_estimate=not lz.complete,
        )  # fmt: skip

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
        if self.options.std == "local":
            return self.local_std()
        return self.lowrank_std()

    def local_std(self) -> np.ndarray:
        """Posterior std map from local windows, checked against exact cells (n_state,)
        [state units].

        Every tile of ``CGOptions.local_tile`` grid cells and steps is solved exactly given
        the observations whose footprints touch the tile widened by ``local_halo``
        (:func:`inversion.local_std.local_std_map`): an upper bound on the exact std, as close
        as the halo holds the observations that matter; on the dask client of ``solve(...,
        client=)`` the tiles are spread over its workers. The global parameters after the grid
        blocks of B (background offsets, site biases) are not local: their std comes from
        certified solves (:meth:`aggregate`). Then ``local_check`` grid cells, drawn among
        those the observations constrain, are solved exactly the same way;
        ``info["local_check"]`` holds the cells, their exact std and the relative excess of
        the map, ``std_method`` its median and maximum, and a warning is given above 5 %. The
        check is a sample: it measures the typical excess, and the map's largest excess over
        all cells can be higher (Bay Area benchmark: 0.58 % at most at the 16 cells, p95 0.49 %
        and max 3.75 % over all 1.3 M cells).

        Raises
        ------
        TypeError
            If H is neither sparse nor a chunked store, or B / R are not of the kinds local
            windows take.
        MemoryBudgetError
            If a chunked H read whole would not fit the memory budget.
        """
        from inversion.local_std import auto_halo, local_std_map

        opts, pb = self.options, self.problem
        H = _sparse_h(pb.H, self.memory_budget)
        halo = opts.local_halo if opts.local_halo is not None else auto_halo(pb.B)
        tile = opts.local_tile
        m = local_std_map(H, pb.B, pb.R, core_cells=tile[0], core_steps=tile[1],
                          halo_cells=halo[0], halo_steps=halo[1],
                          client=getattr(pb.H, "client", None))  # fmt: skip
        del H
        std = np.empty(self.n_state)
        std[m.cells] = m.std
        rest = np.setdiff1d(np.arange(self.n_state), m.cells)
        if rest.size:  # global parameters: exact (certified) std
            std[rest] = self.element_std(rest)
        name = f"local windows (tiles {tile[0]} cells x {tile[1]} steps, halo {halo[0]} cells / "
        name += f"{halo[1]} steps; an upper bound"
        n_chk = min(opts.local_check, m.cells.size)
        if n_chk:
            rng = np.random.default_rng(opts.seed)
            seen = m.cells[m.std < (1.0 - 1e-6) * m.prior_std]  # cells the data constrain
            pool = seen if seen.size >= n_chk else m.cells
            cells = np.sort(rng.choice(pool, n_chk, replace=False))
            exact = self.element_std(cells)
            excess = std[cells] / exact - 1.0
            worst = float(excess.max())
            self.info["local_check"] = {
                "cells": cells, "exact_std": exact, "rel_excess": excess,
                "certified_rel_variance_error": self.options.aggregate_tol or self.options.tol,
            }  # fmt: skip
            name += (f"; above the exact std by {float(np.median(excess)):+.2%} (median) and "
                     f"{worst:+.2%} (max) at {n_chk} sampled cells")  # fmt: skip
            if worst > 0.05:
                logger.warning(
                    "cg std='local': the local-window std map is up to %.1f%% above the exact "
                    "std at %d checked cells (median %.1f%%): its windows miss observations "
                    "that matter; widen the halo (CGOptions.local_halo; in a cityflux config "
                    "inversion.cg.local_halo, now %s cells / %s steps)", 100 * worst, n_chk,
                    100 * float(np.median(excess)), halo[0], halo[1],
                )  # fmt: skip
        self.info["local_halo"] = tuple(int(v) for v in halo)
        self.std_method = name + ")"
        return std

    def _spectrum_for_std(self) -> None:
        """The pairs behind the std map: the complete spectrum when ``rank="auto"`` and it
        fits; else ``std_pairs`` block Lanczos pairs if asked; else the Ritz pairs, with a
        warning that the map is then an upper bound."""
        lz, opts = self._lz, self.options
        if lz.complete or getattr(self, "_spectrum_done", False):
            return
        self._spectrum_done = True
        why = self._solver.complete_spectrum() if opts.rank == "auto" else "rank is an int"
        if not why:
            self._update_spectrum_info()
            return
        if (
            opts.std_pairs is not None
            and lz.space == "obs"
            and opts.std_pairs > lz.ritz_values.size
        ):
            self._solver.block_spectrum(opts.std_pairs, opts.seed)
            self._update_spectrum_info()
            logger.info(
                "cg: the std map uses %d block Lanczos pairs (std_pairs) because the complete "
                "spectrum was not computed: %s", self._lz.ritz_values.size, why,
            )  # fmt: skip
            return
        if opts.rank == "auto" and opts.std == "low-rank":
            logger.warning(
                "cg (rank='auto'): the std map uses the %d Ritz pairs of the mean's Lanczos run "
                "(DOFS %.1f captured): an upper bound of the exact std, far above it where the "
                "spectrum decays slowly; the complete spectrum was not computed: %s. Set "
                "CGOptions.std='local' (local windows, checked against exact cells) or "
                "CGOptions.std_pairs (block Lanczos pairs) with std='low-rank+sampled' (in a "
                "cityflux config: inversion.cg.std and inversion.cg.std_pairs)",
                lz.ritz_values.size, self.dofs, why,
            )  # fmt: skip

    def _lowrank_name(self, k: int | None = None) -> str:
        kk = self._lz.ritz_values.size
        k = kk if k is None else min(int(k), kk)
        whole = self._lz.complete and k == kk
        return f"low-rank (k={k}, complete spectrum)" if whole else f"low-rank (k={k})"

    def lowrank_std(self, rank: int | None = None) -> np.ndarray:
        """``sqrt(diag B − Σ θ/(1+θ) (B Hᵀ z_i)²)`` over the pairs (n_state,) [state units].

        Parameters
        ----------
        rank : int, optional
            Use only the leading ``rank`` pairs (default: all). Truncation drops variance
            reduction only, so the std is never below the exact one.
        """
        self._spectrum_for_std()
        k = self._lz.ritz_values.size if rank is None else int(rank)
        return self.lowrank_std_at([k])[min(max(k, 0), self._lz.ritz_values.size)]

    def lowrank_std_at(self, ranks: Any) -> dict[int, np.ndarray]:
        """Low-rank std maps from the leading k pairs for each k in ``ranks``, in one pass.

        Returns ``{k: std (n_state,)}`` [state units] (k clipped to the number of pairs);
        costs as much as the map of the largest k. Shows how the map converges with the rank.
        """
        self._spectrum_for_std()
        n = self._lz.ritz_values.size
        ks = sorted({min(max(int(k), 0), n) for k in ranks})
        reductions = self._solver.lowrank_reductions(ks)
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
        the same ξ and ε and the pairs (V = Lᵀ Hᵀ Z),

            δ̃ = ξ − V diag(θ/(1+θ)) Vᵀ ξ + V diag(1/(1+θ)) Vᵀ Lᵀ Hᵀ R⁻¹ ε,

        has ``Cov δ̃ = I − V diag(θ/(1+θ)) Vᵀ`` exactly from ``VᵀV = I`` and ``VᵀKV = Θ``
        (Rayleigh–Ritz), whatever the accuracy of the vectors, so
        ``E[(L ξ)² − (L δ̃)²]`` is the low-rank reduction and

            reduction ≈ low-rank reduction + mean_s[(L δ̃_s)² − (L δ_s)²]

        is unbiased. δ and δ̃ agree on the space the pairs capture, so the Monte-Carlo error
        shrinks with the part of the spectrum they miss. Each sample costs one preconditioned
        observation-space solve (to ``sample_tol``), one ``L`` and two ``B Hᵀ`` products.
        ``info["std_se"]`` is the standard error of each std [state unit] (delta method) and
        ``info["n_samples"]`` the count.

        Raises
        ------
        NotImplementedError
            When the Lanczos basis is not in observation coordinates (n_obs >= sqrt_dim).
        ValueError
            If an estimated variance is not positive (too few samples for the remainder).
        """
        if self._lz.space == "obs":
            self._spectrum_for_std()
        rem, rem_var = self._solver.sampled_remainder(n, seed)
        k = self._lz.ritz_values.size
        low = self._solver.lowrank_reductions([k])[k]
        var = self.problem.B_diag - low - rem
        bad = ~(var > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"low-rank+sampled posterior variance is not positive at {int(bad.sum())} "
                f"element(s) (first at index {i}: {var[i]:.3g}, Monte-Carlo standard error "
                f"{np.sqrt(rem_var[i] / n):.3g}): the pairs capture too little of the "
                "spectrum for this many samples; raise CGOptions.n_samples, CGOptions.std_pairs "
                "(block Lanczos pairs) or CGOptions.rank, or use std='low-rank' (an upper bound "
                "of the std)"
            )
        std = np.sqrt(var)
        self.info["n_samples"] = int(n)
        self.info["std_se"] = np.sqrt(rem_var / n) / (2.0 * std)
        self.std_method = f"low-rank+sampled (k={k}, n={n})"
        return std

    def element_std(self, idx: Any) -> np.ndarray:
        """Exact posterior std of chosen state elements by certified solves, ``batch`` at a
        time (each batch holds ``batch`` dense state columns).

        Parameters
        ----------
        idx : array_like of int
            State indices.

        Returns
        -------
        numpy.ndarray
            Std [state units] in the order of ``idx``, each certified as :meth:`aggregate`
            (relative variance error <= ``aggregate_tol``, default ``tol``).
        """
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        b = max(1, self.options.batch)
        parts = [self.aggregate(_unit_rows(idx[a : a + b], self.n_state))[1]
                 for a in range(0, idx.size, b)]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros(0)

    # ------------------------------------------------------------------ aggregates
    def aggregate_cov(self, weights: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean (k,) and covariance (k, k) of aggregates by ``k`` batched CG solves.

        Certified: each variance is an upper estimate above the exact one by at most
        ``aggregate_tol`` (default ``tol``, relative); covariances to that times the geometric
        mean of their variances (Cauchy–Schwarz). See :meth:`CGSolver.certified_forms`.
        """
        W, _ = self._as_weights(weights)
        mean = np.asarray(W @ self.mean).ravel()
        Wt = W.toarray().T if hasattr(W, "toarray") else np.ascontiguousarray(W.T)
        Wt = np.ascontiguousarray(Wt, dtype=np.float64)
        s = self._solver
        if self._lz.space == "obs":
            BW = self.problem.B_matmat(Wt)
            prior_cov = Wt.T @ BW
            prior_cov = 0.5 * (prior_cov + prior_cov.T)
            cov, _ = s.certified_forms(s.system.H(BW), prior_cov, -1.0, "aggregate variance")
        else:
            C = s.system.Lt(Wt)  # (q, k)
            prior_cov = C.T @ C
            cov, _ = s.certified_forms(C, np.zeros_like(prior_cov), 1.0, "aggregate variance")
        _check_output(cov, "aggregate covariance")
        self._checked_variance(np.diag(cov).copy(), np.diag(prior_cov), "aggregate variance")
        return mean, cov

    def aggregate(self, weights: Any) -> tuple[Any, Any]:
        """Posterior mean and std of aggregates ``weights @ x`` (certified to ``tol``)."""
        W, single = self._as_weights(weights)
        mean, cov = self.aggregate_cov(W)
        std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        if single:
            return float(mean[0]), float(std[0])
        return mean, std

    def observation_sensitivity(self, weights: Any) -> np.ndarray:
        """``g = S⁻¹ H B a`` (n_obs, k) by batched CG solves (see :meth:`Posterior.observation_sensitivity`).

        Observation coordinates (n_obs < sqrt_dim): Ritz-preconditioned CG on S to the relative
        residual ``aggregate_tol`` (default ``tol``). Otherwise
        ``g = R⁻¹ H L (I + K)⁻¹ Lᵀ a``, one whitened solve per aggregate. An approximate g
        overstates the budget's total by ``δgᵀ S δg`` (second order in the solve error).
        """
        W, single = self._as_weights(weights)
        Wt = W.toarray().T if hasattr(W, "toarray") else np.ascontiguousarray(W.T)
        Wt = np.ascontiguousarray(Wt, dtype=np.float64)
        s, sy = self._solver, self._solver.system
        if self._lz.space == "obs":
            U = sy.H(self.problem.B_matmat(Wt))
            tol = s.options.aggregate_tol or s.options.tol
            g = s.solve_obs(U, "observation sensitivity", tol)
        else:
            X = s.solve_whitened(sy.Lt(Wt), "observation sensitivity")
            g = sy.Rinv(sy.H(sy.L(X)))
        _check_output(g, "observation sensitivity S⁻¹ H B a")
        return g[:, 0] if single else g

    # ------------------------------------------------------------------ other observations
    def means_for(self, y: np.ndarray) -> np.ndarray:
        """Posterior means for other observation vectors (batched CG solves)."""
        Y, single = self._as_obs(y)
        sy = self._solver.system
        D = self._innovations(Y).T
        rhs = sy.Lt(sy.Ht(sy.Rinv(D)))
        X = sy.L(self._solver.solve_whitened(rhs, "means_for")).T + self.problem.x_prior
        _check_output(X, "posterior means")
        return X[0] if single else X

    def chi2_for(self, y: np.ndarray) -> np.ndarray | float:
        """Innovation chi-square per observation for other observation vector(s)."""
        Y, single = self._as_obs(y)
        sy = self._solver.system
        D = self._innovations(Y).T
        G = sy.Rinv(D)
        rhs = sy.Lt(sy.Ht(G))
        X = self._solver.solve_whitened(rhs, "chi2_for")
        chi2 = (np.einsum("ij,ij->j", D, G) - np.einsum("ij,ij->j", rhs, X)) / self.n_obs
        return float(chi2[0]) if single else chi2

    def solve_innovation_covariance(self, V: np.ndarray) -> np.ndarray:
        """``S⁻¹ V`` by Woodbury in the whitened space (batched CG solves):
        ``S⁻¹ = R⁻¹ − R⁻¹ H L (I + Lᵀ Hᵀ R⁻¹ H L)⁻¹ Lᵀ Hᵀ R⁻¹``."""
        V = np.asarray(V, dtype=np.float64)
        single = V.ndim == 1
        V2 = V[:, None] if single else V
        s = self._solver.system
        G = s.Rinv(V2)
        X = self._solver.solve_whitened(s.Lt(s.Ht(G)), "S⁻¹ V")
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
        return self._solver.rto_samples(n, seed)

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


def solve_cg(
    problem: Any,
    options: CGOptions,
    memory_budget: float,
    chunk_size: int,
) -> CGPosterior:
    """Run Lanczos-CG for the mean and return a :class:`CGPosterior`.

    With ``options.rank`` ``"full"`` (or ≥ n_obs) and the observation-space basis, the Ritz
    pairs are replaced by the complete spectrum (:func:`inversion.cg_spectrum.
    obs_space_spectrum`); with ``"auto"`` that happens when the std map is first asked for,
    if it fits.
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
    solver = CGSolver(system, lz, options, memory_budget, chunk_size)
    if explicit and lz.space == "obs":
        why = solver.complete_spectrum()
        if why:
            raise MemoryBudgetError(why)
    mean = problem.x_prior + lz.L_of(system, lz.chi_coef[:, None])[:, 0]
    _check_output(mean, "posterior mean")
    return CGPosterior(solver, mean)


def _unit_rows(idx: np.ndarray, n: int) -> Any:
    """Sparse rows e_i (len(idx), n): aggregates that pick single state elements."""
    return sp.csr_array((np.ones(idx.size), (np.arange(idx.size), idx)), shape=(idx.size, n))


def _sparse_h(H: Any, budget: float) -> Any:
    """H as a scipy.sparse array for local windows: sparse as given, or a chunked store read
    whole when it fits ``budget`` [bytes]."""
    from inversion.chunked import ChunkedOperator

    if sp.issparse(H):
        return H
    if isinstance(H, ChunkedOperator):
        try:
            return H.to_sparse(budget)
        except MemoryBudgetError as err:
            raise MemoryBudgetError(
                f"std='local' reads H whole, more than the memory budget allows ({err}); raise "
                "the budget or use std='low-rank' with std_pairs"
            ) from None
    raise TypeError(
        "std='local' needs the footprints H as a scipy.sparse array (or a chunked store); "
        f"found {type(H).__name__}"
    )
