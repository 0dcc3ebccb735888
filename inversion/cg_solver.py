"""The solver side of the ``cg`` method: batched solves, preconditioners, spectrum, samples.

A :class:`~inversion.lowrank.CGPosterior` holds results (mean, std, diagnostics); every
computation it needs after the mean is done here, by a :class:`CGSolver` built on the
:class:`~inversion.cg.WhitenedSystem` and the spectrum of the Lanczos-CG run.

Certified quadratic forms
    For ``S x = u`` (S SPD) and any approximate solution x with residual ``r = u − S x``,

        uᵀ S⁻¹ u = uᵀx + xᵀr + rᵀ S⁻¹ r,

    an identity that needs no Galerkin orthogonality (``xᵀr = 0`` holds for CG only in exact
    arithmetic; in floating point it is lost and ``uᵀx`` alone can be off by far more than a
    bound on ``rᵀS⁻¹r``). With an SPD ``P`` known to satisfy ``S ⪰ P``,
    ``0 ≤ rᵀS⁻¹r ≤ rᵀP⁻¹r``, so ``uᵀx + xᵀr`` is certified to within ``rᵀP⁻¹r``. The residual
    used for the final figures is recomputed (``u − S x``, one more batched product), so the
    certificate does not rest on the recursively updated residual either.

Observation-space preconditioner
    For Ritz (or exact) vectors Z in observation coordinates with ``M Z`` known
    (``M = H B Hᵀ``), ``M ⪰ M Z (Zᵀ M Z)⁻¹ Zᵀ M`` (M-orthogonal projection), so
    ``S = M + R ⪰ P = R + M Z C⁻¹ Zᵀ M`` with ``C = Zᵀ M Z``, and by Woodbury

        P⁻¹ = R⁻¹ − R⁻¹ (M Z) (C + (M Z)ᵀ R⁻¹ (M Z))⁻¹ (M Z)ᵀ R⁻¹,

    which is both the preconditioner of the observation-space PCG and the certificate
    ``rᵀP⁻¹r ≥ rᵀS⁻¹r`` (exact, ``P = S``, with the complete spectrum; ``P = R`` without pairs).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import scipy.linalg

from inversion.cg import (
    CGOptions,
    LanczosResult,
    WhitenedSystem,
    batched_pcg,
    check_convergence,
)
from inversion.cg_spectrum import block_lanczos_spectrum, obs_space_spectrum
from inversion.errors import MemoryBudgetError
from inversion.posterior import _gib
from inversion.problem import _check_output

__all__ = ["CGSolver"]

logger = logging.getLogger(__name__)

# Columns of B Hᵀ Z held at a time for the low-rank std map.
_STD_BLOCK = 32
# Restarts of a certified solve from its recomputed residual (rounding can leave the true
# residual a little above the recursive one).
_CERTIFY_RESTARTS = 3


class CGSolver:
    """Batched solves, preconditioners, spectrum and samples of a ``cg`` posterior.

    Parameters
    ----------
    system : WhitenedSystem
        Products of the problem.
    lanczos : LanczosResult
        The Lanczos-CG run of the mean (its Ritz pairs; replaced by a better spectrum on
        request, see :meth:`complete_spectrum` and :meth:`block_spectrum`).
    options : CGOptions
        Settings of every solve.
    memory_budget : float
        Bytes the largest arrays may take.
    chunk_size : int
        Observations per chunk of ``B Hᵀ`` when ``H B Hᵀ`` is formed.

    Attributes
    ----------
    log : list of dict
        One entry per batch of a solve: ``what``, ``columns``, ``space`` ("obs" or "chi"),
        ``iterations``, ``residuals``, ``converged``, ``final`` (the relative residual, or the
        certified relative variance error of aggregates).
    """

    def __init__(
        self,
        system: WhitenedSystem,
        lanczos: LanczosResult,
        options: CGOptions,
        memory_budget: float,
        chunk_size: int,
    ) -> None:
        self.system = system
        self.problem = system.problem
        self.lanczos = lanczos
        self.options = options
        self.memory_budget = float(memory_budget)
        self.chunk_size = int(chunk_size)
        self.log: list[dict] = []
        self._tried_complete = False
        self._obs_pre: Any = None
        self._fast: WhitenedSystem | None = None
        # the last low-rank reduction (k, (n_state,)) of the current pairs: the map and the
        # sampled correction both need it, one B product per pair (minutes at 10 M unknowns)
        self._reduction: tuple[int, np.ndarray] | None = None

    @property
    def fast(self) -> WhitenedSystem | None:
        """The system with single-precision FFTs in B (``fft_precision="auto"`` and a B that
        has them), for solves whose result is then checked in double precision; else None."""
        if self.options.fft_precision != "auto" or not hasattr(self.problem.B, "with_precision"):
            return None
        if self._fast is None:
            B32 = self.problem.B.with_precision("single")
            if B32 is self.problem.B:
                return None
            self._fast = WhitenedSystem(self.problem, B=B32)
        return self._fast

    def with_options(self, options: CGOptions) -> CGSolver:
        """A solver with other settings sharing this one's products and spectrum."""
        other = CGSolver(self.system, self.lanczos, options, self.memory_budget, self.chunk_size)
        other._tried_complete = self._tried_complete
        return other

    # ------------------------------------------------------------------ spectrum
    @property
    def space(self) -> str:
        """ "obs" when the Lanczos basis is in observation coordinates (n_obs < sqrt_dim)."""
        return self.lanczos.space

    def _set_spectrum(self, theta: np.ndarray, Z: np.ndarray, MZ: np.ndarray, complete: bool):
        self.lanczos = dataclasses.replace(
            self.lanczos, ritz_values=theta, ritz_z=Z, ritz_mz=MZ, complete=complete
        )
        self._obs_pre = None
        self._reduction = None

    def complete_spectrum(self) -> str:
        """Swap the Ritz pairs for the complete spectrum of K if it fits (once).

        Returns ``""`` when the pairs are now the complete spectrum, otherwise why not.
        """
        if self.lanczos.complete:
            return ""
        if self._tried_complete:
            return "it was tried before and did not fit"
        self._tried_complete = True
        if self.space != "obs":
            return "the Lanczos basis is not in observation coordinates (n_obs >= sqrt_dim)"
        try:
            theta, Z, MZ = obs_space_spectrum(self.system, self.memory_budget, self.chunk_size)
        except MemoryBudgetError as err:
            return str(err)
        self._set_spectrum(theta, Z, MZ, complete=True)
        return ""

    def block_spectrum(self, n_pairs: int, seed: int | None) -> None:
        """Replace the Ritz pairs by ``n_pairs`` pairs of a randomized block Lanczos run.

        See :func:`inversion.cg_spectrum.block_lanczos_spectrum`; its products use
        single-precision FFTs when ``options.fft_precision == "auto"`` (the map these pairs
        feed is approximate to far more than their 1e-6 error).
        """
        theta, Z, MZ = block_lanczos_spectrum(
            self.fast or self.system, n_pairs, self.batch_obs(), self.memory_budget, seed
        )
        self._set_spectrum(theta, Z, MZ, complete=False)

    def lowrank_reductions(self, ks: list[int]) -> dict[int, np.ndarray]:
        """``{k: Σ_{i<k} θ_i/(1+θ_i) (L v_i)²}`` (n_state,) [state unit²] for sorted ``ks``.

        One pass over the leading ``max(ks)`` pairs, one ``L`` product per pair in blocks of
        ``_STD_BLOCK`` that end on every k; progress is logged every tenth of the pairs. With
        the complete spectrum (the exact map) the products are in double precision; with a
        partial one (an approximate map) they use :attr:`fast` where available. The reduction
        of the largest k is kept for the current pairs: asked again (the sampled correction
        after the map), it costs nothing. Callers must not modify the arrays returned.
        """
        lz = self.lanczos
        n = ks[-1] if ks else 0
        if self._reduction is not None and ks == [self._reduction[0]]:
            return {n: self._reduction[1]}  # computed before for these pairs
        system = self.system if lz.complete else (self.fast or self.system)
        th = lz.ritz_values[:n]
        w = th / (1.0 + th)
        reduction = np.zeros(self.problem.n_state)
        out: dict[int, np.ndarray] = {k: reduction.copy() for k in ks if k == 0}
        step = max(1, n // 10)
        t0 = time.perf_counter()
        a = 0
        while a < n:
            stop = min([a + _STD_BLOCK] + [k for k in ks if k > a])  # blocks end on every k
            U = lz.L_of(system, np.ascontiguousarray(lz.ritz_z[:, a:stop]))
            reduction += (U * U) @ w[a:stop]
            if stop in ks:
                out[stop] = reduction if stop == n else reduction.copy()
            if n >= 10 * _STD_BLOCK and a // step != stop // step:
                logger.info("low-rank std: %d/%d pairs (%.0f s)", stop, n, time.perf_counter() - t0)
            a = stop
        if n in out:
            self._reduction = (n, out[n])
        return out

    # ------------------------------------------------------------------ sizes
    def maxiter(self) -> int:
        """Iteration cap of the batched solves."""
        if self.options.maxiter is not None:
            return self.options.maxiter
        return max(100, min(self.problem.n_obs + 1, 2000))

    def batch(self) -> int:
        """Right-hand sides per batch of a χ-space solve (memory: 6 vectors of sqrt_dim)."""
        return self._fit(8.0 * 6 * self.system.q, f"6 vectors of sqrt_dim={self.system.q}")

    def batch_obs(self) -> int:
        """Right-hand sides per batch of an observation-space solve."""
        return self._fit(8.0 * (3 * self.problem.n_state + 8 * self.problem.n_obs), "its vectors")

    def _fit(self, per_col: float, what: str) -> int:
        fit = int(self.memory_budget // per_col)
        if fit < 1:
            raise MemoryBudgetError(
                f"one right-hand side of the batched CG needs about {_gib(per_col)} ({what}), "
                f"more than memory_budget={_gib(self.memory_budget)}; raise memory_budget"
            )
        return max(1, min(self.options.batch, fit))

    # ------------------------------------------------------------------ preconditioners
    def chi_precond(self):
        """``P⁻¹ = I − V diag(θ/(1+θ)) Vᵀ`` in χ space from the Ritz pairs, or None."""
        lz = self.lanczos
        if not self.options.precondition or lz.ritz_values.size == 0:
            return None
        w = lz.ritz_values / (1.0 + lz.ritz_values)
        Zr, s = lz.ritz_z, self.system

        def apply(Rm: np.ndarray) -> np.ndarray:
            c = lz.coords_dot(s, Zr, Rm)  # Vᵀ r
            return Rm - lz.chi_of(s, Zr @ (c * w[:, None]))

        return apply

    def obs_precond(self):
        """``P⁻¹`` of the module docstring (``S ⪰ P``), or ``R⁻¹`` without pairs."""
        if self._obs_pre is not None:
            return self._obs_pre
        Rinv = self.system.Rinv
        lz = self.lanczos
        Z, MZ = lz.ritz_z, lz.ritz_mz
        self._obs_pre = Rinv
        if not self.options.precondition or MZ is None or MZ.shape[1] == 0:
            return Rinv
        RinvMZ = Rinv(MZ)
        C = Z.T @ MZ
        core = 0.5 * (C + C.T) + MZ.T @ RinvMZ
        try:
            factor = scipy.linalg.cho_factor(core, lower=True, check_finite=False)
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            logger.warning(
                "cg: the Ritz vectors are numerically dependent (Zᵀ M Z is not positive "
                "definite); the observation-space solves use R⁻¹ as preconditioner"
            )
            return Rinv

        def apply(Rm: np.ndarray) -> np.ndarray:
            G = Rinv(Rm)
            return G - RinvMZ @ scipy.linalg.cho_solve(factor, MZ.T @ G, check_finite=False)

        self._obs_pre = apply
        return apply

    def apply_S(self, X: np.ndarray, system: WhitenedSystem | None = None) -> np.ndarray:
        """``S X = (H B Hᵀ + R) X`` for X (n_obs, m) (with the products of ``system``)."""
        M = (system or self.system).M(X)
        return M + np.asarray(self.problem.R @ X, dtype=np.float64)

    # ------------------------------------------------------------------ solves
    def _record(self, what: str, columns: int, space: str, info: dict) -> None:
        self.log.append({"what": what, "columns": columns, "space": space, **info})

    def _batches(self, m: int, batch: int):
        for a in range(0, m, batch):
            yield slice(a, min(a + batch, m))

    def solve_whitened(self, rhs: np.ndarray, what: str) -> np.ndarray:
        """``(I + K)⁻¹ rhs`` for rhs (sqrt_dim, m) to the relative residual ``options.tol``."""
        out = np.empty_like(rhs)
        pre = self.chi_precond()
        for cols in self._batches(rhs.shape[1], self.batch()):
            X, info = batched_pcg(
                self.system.hessian, np.ascontiguousarray(rhs[:, cols]), self.options.tol,
                self.maxiter(), pre, what, self.options.allow_nonconvergence,
            )  # fmt: skip
            out[:, cols] = X
            self._record(what, cols.stop - cols.start, "chi", info)
        return out

    def solve_obs(
        self, rhs: np.ndarray, what: str, tol: float, system: WhitenedSystem | None = None
    ) -> np.ndarray:
        """``S⁻¹ rhs`` for rhs (n_obs, m) to the relative residual ``tol``, with the products of
        ``system`` (default this solver's; :attr:`fast` for single-precision FFTs in B)."""
        out = np.empty_like(rhs)
        pre = self.obs_precond()
        apply = self.apply_S if system is None else (lambda X: self.apply_S(X, system))
        for cols in self._batches(rhs.shape[1], self.batch_obs()):
            X, info = batched_pcg(
                apply, np.ascontiguousarray(rhs[:, cols]), tol, self.maxiter(), pre, what,
                self.options.allow_nonconvergence,
            )  # fmt: skip
            out[:, cols] = X
            self._record(what, cols.stop - cols.start, "obs", info)
        return out

    def certified_forms(
        self, U: np.ndarray, offset: np.ndarray, sign: float, what: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Certified ``offset + sign · UᵀA⁻¹U`` (k, k) with ``A = S`` (obs) or ``I + K`` (χ).

        Column j is done when its certificate ``r_jᵀP⁻¹r_j`` (module docstring; ``P = I`` in χ
        space, since ``I + K ⪰ I``) is at most ``options.aggregate_tol`` (default
        ``options.tol``) times its estimated value; the returned matrix is an upper estimate
        (Loewner order) of the exact one, above it by at most the certificate on the diagonal.
        ``sign = -1`` gives posterior variances ``aᵀBa − uᵀS⁻¹u`` from the prior ones in
        ``offset``; ``sign = +1`` the χ-space form ``cᵀ(I + K)⁻¹c``. Returns the matrix and
        the certificates (k,).

        With ``fft_precision="auto"`` the first PCG pass uses single-precision FFTs in B
        (half the cost of its products); the residual the certificate rests on is then
        recomputed in double precision, and where the certificate is not yet reached the
        solve continues in double (mixed-precision iterative refinement): the result is
        certified exactly as without it.

        Linearly dependent columns (a city total that is the sum of its sub-period totals)
        are not solved: only a column basis of U is (pivoted QR), ``U = U_b C``; the other
        solutions and their residuals follow exactly (``X = X_b C``, ``R = R_b C + (U − U_b C)``)
        and their certificates are checked; where one is above the tolerance the basis is
        solved further, to a tighter tolerance.

        Raises
        ------
        ConvergenceError
            If a certificate stays above the tolerance within ``maxiter`` (unless
            ``allow_nonconvergence``).
        """
        obs = self.space == "obs" and U.shape[0] == self.problem.n_obs
        fast = self.fast
        if fast is None:
            apply_fast = None
        elif obs:
            apply_fast = lambda X: self.apply_S(X, fast)  # noqa: E731
        else:
            apply_fast = fast.hessian
        ctx = _FormContext(
            apply_A=self.apply_S if obs else self.system.hessian, apply_fast=apply_fast,
            pre=self.obs_precond() if obs else self.chi_precond(),
            obs=obs, sign=sign, what=what,
        )  # fmt: skip
        tol = self.options.aggregate_tol or self.options.tol
        diag = np.diag(offset).copy()
        basis, coef = _column_basis(U)
        Ub = np.ascontiguousarray(U[:, basis])
        E = U - Ub @ coef  # exactly representable part left out (rounding level)
        Xb, Rb = np.zeros_like(Ub), Ub.copy()
        tol_b = np.full(basis.size, tol)
        its = np.zeros(basis.size, dtype=int)
        history: list[float] = []
        for _ in range(_CERTIFY_RESTARTS):
            Xb, Rb = self._certify_columns(ctx, Ub, diag[basis], Xb, Rb, tol_b, its, history)
            X, Rt = Xb @ coef, Rb @ coef + E
            bounds = _FormBound(U, X, diag, sign, ctx.cert)(
                np.zeros_like(X), Rt, np.arange(U.shape[1])
            )
            bad = bounds > tol
            if not bad.any() or np.all(its >= self.maxiter()):
                break
            # tighten the basis columns the failing aggregates are made of
            worst = np.max(np.where(bad, bounds / tol, 1.0))
            used = np.any(np.abs(coef[:, bad]) > 0, axis=1)
            tol_b = np.where(used, tol_b / (2.0 * worst), tol_b)
        converged = check_convergence(
            float(np.max(bounds)), tol, int(its.max()), what, self.options.allow_nonconvergence,
            "certified relative error bound",
        )  # fmt: skip
        self._record(what, U.shape[1], "obs" if obs else "chi", {
            "iterations": int(its.max()), "residuals": history, "converged": converged,
            "final": float(np.max(bounds)), "columns_solved": int(basis.size),
        })  # fmt: skip
        _check_output(X, what)
        Q = U.T @ X + X.T @ Rt  # uᵀx + xᵀr (symmetrised below)
        if sign > 0:
            Q += Rt.T @ Rt  # χ space: the upper end of [q̂, q̂ + rᵀr]
        out = offset + sign * 0.5 * (Q + Q.T)
        return out, bounds

    def _certify_columns(self, ctx, U, diag, X, R, tol, its, history):
        """Continue PCG on each column of ``S X = U`` from (X, R) until its certificate is at
        most ``tol[j]`` (recomputed residual, restarting where rounding left it above); adds
        the iterations to ``its`` and the per-iteration measure to ``history``."""
        batch = self.batch_obs() if ctx.obs else self.batch()
        X, R = X.copy(), R.copy()
        for cols in self._batches(U.shape[1], batch):
            idx = np.arange(cols.start, cols.stop)
            Uc, Xc, Rc = U[:, cols], X[:, cols], R[:, cols]
            for attempt in range(_CERTIFY_RESTARTS + 1):
                scale = tol[idx] / tol[idx].max()  # per-column tolerances through the measure
                bound = _FormBound(Uc, Xc, diag[idx], ctx.sign, ctx.cert)
                fast = attempt == 0 and ctx.apply_fast is not None and its[idx].max() == 0
                dX, info = batched_pcg(
                    ctx.apply_fast if fast else ctx.apply_A, Rc, float(tol[idx].max()), max(1, self.maxiter() - int(its[idx].max())),
                    ctx.pre, ctx.what, check=False,
                    measure=lambda Xm, Rm, i, bound=bound, scale=scale: bound(Xm, Rm, i) / scale[i],
                )  # fmt: skip
                its[idx] += info["iterations"]
                history += info["residuals"]
                Xc = Xc + dX
                Rc = Uc - ctx.apply_A(Xc)  # recomputed, not recursive: the certificate rests on it
                b = _FormBound(Uc, Xc, diag[idx], ctx.sign, ctx.cert)(
                    np.zeros_like(Xc), Rc, np.arange(idx.size)
                )
                if np.all(b <= tol[idx]) or its[idx].max() >= self.maxiter():
                    break
            X[:, cols], R[:, cols] = Xc, Rc
        return X, R

    # ------------------------------------------------------------------ sampling
    def rto_samples(self, n: int, seed: int | None) -> np.ndarray:
        """``n`` randomize-then-optimize posterior samples (n, n_state) [state units]."""
        rng = np.random.default_rng(seed)
        s, R, p = self.system, self.problem.R, self.problem
        d = p.innovation()
        out = np.empty((n, p.n_state))
        b = self.batch()
        for a in range(0, n, b):
            m = min(b, n - a)
            chi0 = rng.standard_normal((s.q, m))
            eps = R.sqrt_matvec(rng.standard_normal((R.sqrt_dim, m)))
            rhs = chi0 + s.Lt(s.Ht(s.Rinv(d[:, None] + eps)))
            X = self.solve_whitened(rhs, "posterior samples (RTO)")
            out[a : a + m] = (s.L(X) + p.x_prior[:, None]).T
        return out

    def sampled_remainder(self, n: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Monte-Carlo estimate of the variance reduction the pairs miss, and its variance.

        See :meth:`inversion.lowrank.CGPosterior.corrected_std` for the estimator. Returns
        the mean remainder (n_state,) [state unit²] and the sample variance of its terms.

        Raises
        ------
        NotImplementedError
            When the basis is not in observation coordinates (n_obs >= sqrt_dim).
        """
        lz, s, R = self.lanczos, self.system, self.problem.R
        if lz.space != "obs" or lz.ritz_mz is None:
            raise NotImplementedError(
                "std='low-rank+sampled' needs the observation-space Lanczos basis (n_obs < "
                f"sqrt_dim; here n_obs={self.problem.n_obs}, sqrt_dim={s.q}); use "
                "std='sampled'"
            )
        rng = np.random.default_rng(seed)
        th, Zr, MZ = lz.ritz_values, lz.ritz_z, lz.ritz_mz
        # Monte-Carlo terms: single-precision FFTs where fft_precision="auto" (relative error
        # ~1e-7, far below the Monte-Carlo error of a few per cent)
        f = self.fast or s
        acc = np.zeros(self.problem.n_state)
        acc2 = np.zeros(self.problem.n_state)
        b = self.batch_obs()
        for a in range(0, n, b):
            m = min(b, n - a)
            Lxi = f.L(rng.standard_normal((s.q, m)))  # (n_state, m) ~ N(0, B)
            HLxi = s.H(Lxi)
            eps = R.sqrt_matvec(rng.standard_normal((R.sqrt_dim, m)))  # ~ N(0, R)
            w = self.solve_obs(
                eps - HLxi, "low-rank+sampled std (remainder samples)", self.options.sample_tol,
                system=f,
            )  # fmt: skip
            c = ((MZ.T @ s.Rinv(eps)) - th[:, None] * (Zr.T @ HLxi)) / (1.0 + th)[:, None]
            G = f.BX(s.Ht(np.hstack([w - Zr @ c, w + Zr @ c])))
            diff = -G[:, :m] * (2.0 * Lxi + G[:, m:])  # (L δ̃)² − (L δ)²
            acc += diff.sum(axis=1)
            acc2 += (diff * diff).sum(axis=1)
        rem = acc / n
        return rem, np.clip(acc2 / n - rem * rem, 0.0, None) * n / (n - 1)


class _FormContext:
    """What a certified solve needs: the product (and its single-precision twin, or None),
    preconditioner, certificate, sign, label."""

    def __init__(self, apply_A, apply_fast, pre, obs: bool, sign: float, what: str) -> None:
        self.apply_A, self.apply_fast, self.pre = apply_A, apply_fast, pre
        self.obs, self.sign, self.what = obs, sign, what
        if obs:
            self.cert = lambda Rm: _dots(Rm, pre(Rm))  # rᵀP⁻¹r ≥ rᵀS⁻¹r (S ⪰ P)
        else:
            self.cert = lambda Rm: _dots(Rm, Rm)  # rᵀr ≥ rᵀ(I + K)⁻¹r


def _column_basis(U: np.ndarray, rtol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a column basis of U and coefficients C with ``U ≈ U[:, basis] @ C``.

    Pivoted QR; a column is dependent when its pivot is below ``rtol`` times the largest.
    """
    k = U.shape[1]
    if k < 2:
        return np.arange(k), np.eye(k)
    R, piv = scipy.linalg.qr(U, mode="r", pivoting=True, check_finite=False)
    d = np.abs(np.diag(R))
    r = int(np.sum(d > rtol * d[0])) if d.size and d[0] > 0 else 0
    r = max(r, 1)
    if r == k:
        return np.arange(k), np.eye(k)
    coef = np.zeros((r, k))
    coef[:, piv[:r]] = np.eye(r)
    coef[:, piv[r:]] = scipy.linalg.solve_triangular(R[:r, :r], R[:r, r:k], check_finite=False)
    order = np.argsort(piv[:r])  # basis in the original column order
    return piv[:r][order], coef[order]


class _FormBound:
    """Relative certificate of a batch of quadratic forms, for :func:`batched_pcg`.

    The iterate is ``x = X0 + Xc`` with residual ``r`` (recursive during the iterations);
    the estimate is ``offset + sign (uᵀx + xᵀr)`` and the certificate ``cert(r)`` divided by
    its magnitude.
    """

    def __init__(self, U: np.ndarray, X0: np.ndarray, offset: np.ndarray, sign: float, cert):
        self.U, self.X0, self.offset, self.sign, self.cert = U, X0.copy(), offset, sign, cert

    def __call__(self, Xc: np.ndarray, Rc: np.ndarray, idx: np.ndarray) -> np.ndarray:
        x = self.X0[:, idx] + Xc
        value = self.offset[idx] + self.sign * (_dots(self.U[:, idx], x) + _dots(x, Rc))
        scale = np.maximum(np.abs(value), np.finfo(float).tiny * np.maximum(self.offset[idx], 1))
        return self.cert(Rc) / scale


def _dots(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Column-wise dot products (k,) of two (n, k) arrays."""
    return np.einsum("ij,ij->j", A, B)
