"""Hyperparameters of the error covariances by maximum marginal likelihood (ML, REML).

The innovations ``d = y − H x_a`` of a linear-Gaussian inversion are Gaussian with covariance

    S(φ) = Σ_c exp(e_c · φ) M_c(φ_ℓ),      M_c = H B_c Hᵀ (a block of B) or a part of R,

where φ are the logarithms of the hyperparameters relative to their configured values
(a prior-error scale s multiplies a block's std, so its factor is s² = exp(2 φ); a
model-data mismatch scale multiplies the observation errors of its kind or site; lengths
change the correlation of the flux blocks, which are then rebuilt by the caller's own
builder). Scale-only parameters cost no new B products: the blocks ``H B_c Hᵀ`` are formed
once and S is their weighted sum.

**ML** maximises ``log N(d; 0, S)``. **REML** (restricted maximum likelihood, Patterson &
Thompson 1971) applies when the prior *mean* is estimated too, ``x_a → x_a + X β`` with β
flat (e.g. one scale on each sector's prior flux, ``X`` its columns): the likelihood of the
contrasts of d free of β,

    ℓ_R = −½ [(n − q) log 2π + log|S| + log|Fᵀ S⁻¹ F| + dᵀ P d],   F = H X,
    P = S⁻¹ − S⁻¹ F (Fᵀ S⁻¹ F)⁻¹ Fᵀ S⁻¹,

which removes the downward bias of ML variance estimates that estimate a mean. Gradients
are ``∂ℓ/∂φ = −½ tr(P ∂S) + ½ (Pd)ᵀ ∂S (Pd)`` (P = S⁻¹ for ML); length derivatives of the
rebuilt blocks are taken by a five-point stencil in log length (error O(h⁴), stated).

Three ways to evaluate (``method``):

- ``exact``: S assembled and factored (Cholesky), log-determinant from the factor, traces
  from the explicit P (LAPACK ``potri``): exact to rounding.
- ``hybrid``: the same Cholesky for the value (exact), the gradient's traces by Hutchinson's
  estimator with fixed probes through that factor (O(n² N) instead of O(n³)); the gradient's
  standard error is stated.
- ``stochastic``: S never formed; conjugate gradients with the blocks' products give
  ``S⁻¹ d`` and, from the same iterations, the stochastic-Lanczos log-determinant and the
  Hutchinson traces (:mod:`inversion._slq`); value and gradient carry standard errors.

:func:`fit_hyperparameters` maximises ℓ (plus an optional Gaussian hyperprior on φ, which
keeps a variance the data cannot separate from zero off the boundary and makes the posterior
of φ proper) by L-BFGS-B within bounds, each variable scaled by the square root of its
average information (AI, Gilmour, Thompson & Cullis 1995: ``½ (∂ᵢS Pd)ᵀ P (∂ⱼS Pd)``, the
mean of the observed and expected information, from a few solves). The approximate posterior
of φ is ``N(φ̂, I⁻¹)`` with I the observed information (finite differences of the gradient;
the AI for ``hybrid``, where each gradient costs a Cholesky); aggregates (totals) are
propagated over it by quadrature (:func:`propagate`): a mixture of Gaussians whose mean,
covariance and quantiles replace the plug-in values.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize

from inversion._hyper_blocks import (
    Block,
    LowRank,
    VarianceModel,
    _add_to,
    _Combo,
    _diag_of,
    _matmat,
    _trace_with,
    blas_threads_for,
    projected_block,
    sparse_covariance,
)
from inversion._hyper_propagate import (
    Propagation,
    aggregates_at,
    mixture_quantiles,
    propagate,
    quadrature_nodes,
)
from inversion._slq import cg_lanczos, probe_estimate, quadrature, rademacher
from inversion.errors import NotPositiveDefiniteError, ShapeMismatchError
from inversion.problem import cho_factor_checked

__all__ = [
    "METHODS",
    "Block",
    "Evaluation",
    "HyperFit",
    "LowRank",
    "MarginalLikelihood",
    "Propagation",
    "VarianceModel",
    "aggregates_at",
    "blas_threads_for",
    "fit_hyperparameters",
    "mixture_quantiles",
    "profile_likelihood",
    "projected_block",
    "propagate",
    "quadrature_nodes",
    "sparse_covariance",
]

logger = logging.getLogger(__name__)

METHODS = ("exact", "hybrid", "stochastic")
_LOG_2PI = float(np.log(2.0 * np.pi))
#: Step [log units] of the finite-difference Hessian (observed information).
HESSIAN_STEP = 1e-3
#: An estimate within this distance [log units] of a bound is reported as at the bound.
BOUND_TOL = 1e-4


# ---------------------------------------------------------------------------------- factors
class _DenseFactor:
    """S assembled and factored (exact and hybrid methods)."""

    def __init__(self, blocks: Sequence[Block], f: np.ndarray, F: np.ndarray | None) -> None:
        n = blocks[0].M.shape[0]
        S = np.zeros((n, n))
        for b, fc in zip(blocks, f, strict=True):
            _add_to(S, float(fc), b.M)
        self.chol = cho_factor_checked(S, name="S(θ) = Σ factor · H B_c Hᵀ + R(θ)")
        self.logdet = 2.0 * float(np.sum(np.log(np.diag(self.chol[0]))))
        self.logdet_se = 0.0
        self._reml(F)

    def _reml(self, F: np.ndarray | None) -> None:
        self.F = F
        if F is None:
            return
        self.SiF = self.solve(F)
        A = F.T @ self.SiF
        self.cA = cho_factor_checked(A, name="Fᵀ S⁻¹ F (REML design)")
        self.logdet_A = 2.0 * float(np.sum(np.log(np.diag(self.cA[0]))))

    def solve(self, V: np.ndarray) -> np.ndarray:
        return scipy.linalg.cho_solve(self.chol, V, check_finite=False)

    def project(self, V: np.ndarray) -> np.ndarray:
        """P V (= S⁻¹ V for ML)."""
        X = self.solve(V)
        if self.F is not None:
            X = X - self.SiF @ scipy.linalg.cho_solve(self.cA, self.SiF.T @ V)
        return X

    def explicit_P(self) -> np.ndarray:
        c, lower = self.chol
        inv, info = scipy.linalg.lapack.dpotri(c, lower=lower)
        if info != 0:
            raise NotPositiveDefiniteError(f"S⁻¹ from its Cholesky factor failed (info {info})")
        tri = np.tril(inv) if lower else np.triu(inv)
        P = tri + tri.T
        P[np.diag_indices_from(P)] *= 0.5
        if self.F is not None:
            P -= self.SiF @ scipy.linalg.cho_solve(self.cA, self.SiF.T)
        return P


class _CGFactor:
    """S by its products only: CG solves, SLQ log-determinant (stochastic method)."""

    def __init__(
        self, blocks: Sequence[Block], f: np.ndarray, F: np.ndarray | None, d: np.ndarray,
        Z: np.ndarray, tol: float, maxiter: int,
    ) -> None:  # fmt: skip
        n = d.size
        D = np.zeros(n)
        for b, fc in zip(blocks, f, strict=True):
            dg = _diag_of(b)
            if dg is not None:
                D += fc * dg
        D = np.where(D > 0, D, 1.0)
        self.s = 1.0 / np.sqrt(D)
        self.blocks, self.f, self.tol, self.maxiter = blocks, f, tol, maxiter
        cols = [Z, (self.s * d)[:, None]]
        if F is not None:
            cols.append(self.s[:, None] * F)
        cg = cg_lanczos(self._op, np.hstack(cols), tol=tol, maxiter=maxiter, what="S̃")
        N = Z.shape[1]
        self.AiZ = cg.X[:, :N]
        self.Z = Z
        est = probe_estimate(quadrature(cg, np.arange(N), np.full(N, float(n)), np.log))
        self.logdet = float(np.sum(np.log(D))) + est.value
        self.logdet_se = est.std_error
        self.iterations = int(cg.iterations.max())
        self._alpha_d = self.s * cg.X[:, N]
        self._d = d
        self.F = F
        if F is not None:
            self.SiF = self.s[:, None] * cg.X[:, N + 1 :]
            A = F.T @ self.SiF
            A = 0.5 * (A + A.T)
            self.cA = cho_factor_checked(A, name="Fᵀ S⁻¹ F (REML design)")
            self.logdet_A = 2.0 * float(np.sum(np.log(np.diag(self.cA[0]))))

    def _op(self, V: np.ndarray) -> np.ndarray:
        sV = self.s[:, None] * V
        out = np.zeros_like(V)
        for b, fc in zip(self.blocks, self.f, strict=True):
            out += fc * _matmat(b.M, sV)
        return self.s[:, None] * out

    def solve(self, V: np.ndarray) -> np.ndarray:
        V2 = V if V.ndim == 2 else V[:, None]
        cg = cg_lanczos(self._op, self.s[:, None] * V2, tol=self.tol, maxiter=self.maxiter)
        X = self.s[:, None] * cg.X
        return X if V.ndim == 2 else X[:, 0]

    def project(self, V: np.ndarray) -> np.ndarray:
        X = self.solve(V)
        if self.F is not None:
            X = X - self.SiF @ scipy.linalg.cho_solve(self.cA, self.SiF.T @ V)
        return X

    def project_d(self) -> np.ndarray:
        X = self._alpha_d
        if self.F is not None:
            X = X - self.SiF @ scipy.linalg.cho_solve(self.cA, self.SiF.T @ self._d)
        return X


@dataclass(frozen=True)
class Evaluation:
    """The objective (log marginal likelihood plus log hyperprior) and its gradient at φ.

    Attributes
    ----------
    value : float
        ``ℓ(φ) + log π(φ)`` (ML or REML likelihood; π the hyperprior, 0 without one) [nats].
    grad : numpy.ndarray
        (n_params,) its gradient.
    value_se, grad_se : float, numpy.ndarray
        Standard errors of the stochastic estimates (0 where exact).
    log_prior : float
        ``log π(φ)`` [nats] (so ``value − log_prior`` is the log-likelihood).
    """

    value: float
    grad: np.ndarray
    value_se: float = 0.0
    grad_se: np.ndarray = field(default_factory=lambda: np.zeros(0))
    log_prior: float = 0.0

    @property
    def loglik(self) -> float:
        """ℓ(φ) [nats]."""
        return self.value - self.log_prior


class MarginalLikelihood:
    """The log marginal likelihood ℓ(φ) of the innovations (ML, or REML with a design).

    Parameters
    ----------
    model : VarianceModel
    d : numpy.ndarray
        (n_obs,) innovations ``y − H x_a`` [ppm].
    design : numpy.ndarray, optional
        (n_obs, q) ``F = H X`` of an estimated prior mean ``x_a + X β`` (REML); None: ML.
    method : {"exact", "hybrid", "stochastic"}
        See the module docstring.
    probes : int
        Rademacher probes of the hybrid and stochastic methods (fixed for the object, so ℓ
        and its gradient are smooth functions of φ).
    seed : int
        Seed of the probes.
    tol, maxiter : float, int
        CG relative residual and iteration cap (stochastic method).
    prior_std : array_like, optional
        Standard deviation of a Gaussian hyperprior on each φ (mean 0: the configured values)
        [log units]; ``inf`` or None: none (pure ML/REML). With it, the objective is the log
        posterior of φ, which keeps a variance the data cannot separate from zero off the
        boundary and makes the posterior of φ proper.

    Raises
    ------
    ValueError
        For an unknown method, or a design with as many columns as observations.
    """

    def __init__(
        self, model: VarianceModel, d: np.ndarray, *, design: np.ndarray | None = None,
        method: str = "exact", probes: int = 64, seed: int = 0, tol: float = 1e-6,
        maxiter: int | None = None, prior_std: Any = None,
    ) -> None:  # fmt: skip
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, found {method!r}")
        self.model = model
        self.d = np.asarray(d, dtype=float).ravel()
        n = self.d.size
        if n != model.n_obs:
            raise ShapeMismatchError(f"d: expected {model.n_obs} innovations, found {n}")
        self.F = None if design is None else np.asarray(design, dtype=float).reshape(n, -1)
        self.q = 0 if self.F is None else self.F.shape[1]
        if self.q >= n:
            raise ValueError(f"REML design has {self.q} columns for {n} observations")
        self.method = method
        self.probes = int(probes)
        self.tol = float(tol)
        self.maxiter = int(maxiter) if maxiter is not None else max(100, 2 * n)
        self.Z = (
            None if method == "exact" else rademacher(n, self.probes, np.random.default_rng(seed))
        )
        self._last: tuple[bytes, Any] | None = None
        self.n_evaluations = 0
        P_ = model.n_params
        tau = np.full(P_, np.inf) if prior_std is None else np.broadcast_to(
            np.asarray(prior_std, dtype=float), (P_,)
        ).copy()  # fmt: skip
        if np.any(tau <= 0):
            raise ValueError(f"prior_std must be > 0 (or inf: no hyperprior), found {tau}")
        self.prior_precision = np.where(np.isfinite(tau), 1.0 / tau**2, 0.0)
        finite = np.isfinite(tau)
        self._prior_const = -0.5 * float(np.sum(_LOG_2PI + 2 * np.log(tau[finite])))

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return self.d.size

    def factor(self, phi: np.ndarray) -> Any:
        """The factorisation of S(φ) (cached for the last φ)."""
        phi = np.asarray(phi, dtype=float)
        key = phi.tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        blocks, f = self.model.blocks_at(phi), self.model.factors(phi)
        if self.method == "stochastic":
            fac = _CGFactor(blocks, f, self.F, self.d, self.Z, self.tol, self.maxiter)
        else:
            fac = _DenseFactor(blocks, f, self.F)
        self._last = (key, fac)
        return fac

    def __call__(self, phi: np.ndarray, grad: bool = True) -> Evaluation:
        """ℓ(φ) + log π(φ) and (if ``grad``) its gradient, with their standard errors."""
        phi = np.asarray(phi, dtype=float)
        ev = self._loglik(phi, grad)
        if not self.prior_precision.any():
            return ev
        lp = self._prior_const - 0.5 * float(np.sum(self.prior_precision * phi**2))
        return dataclasses.replace(
            ev, value=ev.value + lp, grad=ev.grad - self.prior_precision * phi, log_prior=lp
        )

    def _loglik(self, phi: np.ndarray, grad: bool) -> Evaluation:
        self.n_evaluations += 1
        fac = self.factor(phi)
        Pd = fac.project_d() if self.method == "stochastic" else fac.project(self.d)
        quad = float(self.d @ Pd)
        logdet = fac.logdet + (fac.logdet_A if self.F is not None else 0.0)
        value = -0.5 * ((self.n_obs - self.q) * _LOG_2PI + logdet + quad)
        value_se = 0.5 * fac.logdet_se
        P_ = self.model.n_params
        if not grad:
            return Evaluation(value, np.full(P_, np.nan), value_se, np.zeros(P_))
        used, mats = self._derivative_terms(phi)
        E, f = self.model.exponents, self.model.factors(phi)
        tr, tr_probe = self._traces(fac, mats)
        qf = np.array([float(Pd @ _matmat(M, Pd)) for M in mats])
        g = np.zeros(P_)
        k = used.size
        g += E[used].T @ (f[used] * 0.5 * (qf[:k] - tr[:k]))
        g[self.model.length_params] = 0.5 * (qf[k:] - tr[k:])
        g_se = np.zeros(P_)
        if tr_probe is not None:
            per = np.zeros((P_, tr_probe.shape[1]))
            per += E[used].T @ (f[used, None] * 0.5 * tr_probe[:k])
            per[self.model.length_params] = 0.5 * tr_probe[k:]
            g_se = per.std(axis=1, ddof=1) / np.sqrt(per.shape[1])
        return Evaluation(value, g, value_se, g_se)

    def _derivative_terms(self, phi: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        """The blocks with a scale exponent, then ``Σ_c f_c ∂M_c/∂φ_ℓ`` per length."""
        blocks, f = self.model.blocks_at(phi), self.model.factors(phi)
        used = np.flatnonzero(np.any(self.model.exponents != 0, axis=1))
        mats = [blocks[c].M for c in used]
        for j in range(self.model.length_params.size):
            dM = self.model.length_derivative(phi, j)
            mats.append(_Combo(tuple((float(f[c]), m) for c, m in enumerate(dM) if m is not None)))
        return used, mats

    def average_information(self, phi: np.ndarray) -> np.ndarray:
        """The average information ``AI = ½ Uᵀ P U``, ``U[:, i] = ∂S/∂φᵢ P d`` (Gilmour,
        Thompson & Cullis 1995), plus the hyperprior's precision: the mean of the observed and
        expected information, from solves with P of P vectors only (no trace), so it is as
        exact as the factorisation.

        Returns
        -------
        numpy.ndarray
            (P, P)
        """
        phi = np.asarray(phi, dtype=float)
        fac = self.factor(phi)
        Pd = fac.project_d() if self.method == "stochastic" else fac.project(self.d)
        used, mats = self._derivative_terms(phi)
        E, f = self.model.exponents, self.model.factors(phi)
        MPd = np.column_stack([_matmat(M, Pd) for M in mats]) if mats else np.zeros((Pd.size, 0))
        P_ = self.model.n_params
        U = np.zeros((Pd.size, P_))
        k = used.size
        U += MPd[:, :k] @ (E[used] * f[used, None])
        U[:, self.model.length_params] = MPd[:, k:]
        AI = 0.5 * U.T @ fac.project(U)
        return 0.5 * (AI + AI.T) + np.diag(self.prior_precision)

    def _traces(self, fac: Any, mats: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """tr(P M) of each matrix, and the per-probe values when estimated."""
        if self.method == "exact":
            P = fac.explicit_P()
            return np.array([_trace_with(P, M) for M in mats]), None
        Z = self.Z
        if self.method == "hybrid":
            PZ = fac.project(Z)
            per = np.array([np.einsum("ij,ij->j", PZ, _matmat(M, Z)) for M in mats])
            return per.mean(axis=1), per
        s = fac.s[:, None]
        per = np.array([np.einsum("ij,ij->j", fac.AiZ, s * _matmat(M, s * Z)) for M in mats])
        tr = per.mean(axis=1)
        if self.F is not None:  # tr(P M) = tr(S⁻¹ M) − tr((Fᵀ S⁻¹ F)⁻¹ (S⁻¹F)ᵀ M S⁻¹F), exact
            for i, M in enumerate(mats):
                K = fac.SiF.T @ _matmat(M, fac.SiF)
                tr[i] -= float(np.trace(scipy.linalg.cho_solve(fac.cA, K)))
        return tr, per

    def beta(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """GLS estimate β̂ of the prior-mean coefficients and its covariance (REML), or None."""
        if self.F is None:
            return None
        fac = self.factor(phi)
        Vb = scipy.linalg.cho_solve(fac.cA, np.eye(self.q))
        return Vb @ (fac.SiF.T @ self.d), Vb


# ---------------------------------------------------------------------------------- fitting
@dataclass(frozen=True, eq=False)
class HyperFit:
    """Maximum (restricted) marginal likelihood estimate of the hyperparameters.

    Attributes
    ----------
    names : tuple of str
    phi : numpy.ndarray
        (P,) estimates of log(θ / θ_configured).
    cov : numpy.ndarray
        (P, P) covariance of φ̂: the inverse observed information over the parameters that
        are free, inside their bounds and identifiable (zero rows elsewhere).
    information : numpy.ndarray
        (P, P) observed information ``−∂²ℓ/∂φ²`` (finite differences of the gradient).
    loglik, loglik_se : float
        ℓ(φ̂) and its standard error (stochastic method).
    log_prior : float
        log π(φ̂) of the hyperprior (0 without one).
    hyperprior : bool
        Whether the objective had a hyperprior (then ``cov`` is that of the posterior of φ).
    grad, grad_se : numpy.ndarray
        Gradient at φ̂ and its standard error (hybrid, stochastic).
    bounds : numpy.ndarray
        (P, 2) bounds on φ.
    free : numpy.ndarray of bool
        Estimated (True) or held at the configured value.
    at_bound, flat : numpy.ndarray of bool
        At a bound (the maximum lies outside) / not identifiable (standard error of φ above
        the threshold, or a direction of zero information).
    converged : bool
    message : str
    n_iterations, n_evaluations : int
    method : str
    """

    names: tuple[str, ...]
    phi: np.ndarray
    cov: np.ndarray
    information: np.ndarray
    loglik: float
    loglik_se: float
    log_prior: float
    hyperprior: bool
    grad: np.ndarray
    grad_se: np.ndarray
    bounds: np.ndarray
    free: np.ndarray
    at_bound: np.ndarray
    flat: np.ndarray
    converged: bool
    message: str
    n_iterations: int
    n_evaluations: int
    method: str

    @property
    def se(self) -> np.ndarray:
        """(P,) standard errors of φ̂ (posterior ones with a hyperprior; inf for flat ones
        without; NaN for fixed or bound-limited ones)."""
        se = np.sqrt(np.clip(np.diag(self.cov), 0, None))
        se[~self.free | self.at_bound] = np.nan
        if not self.hyperprior:
            se[self.flat] = np.inf
        return se

    @property
    def propagated(self) -> np.ndarray:
        """(P,) parameters whose uncertainty is propagated: free and inside their bounds, and
        identifiable by the data unless a hyperprior makes their posterior proper."""
        out = self.free & ~self.at_bound
        return out if self.hyperprior else out & ~self.flat


def _optimise(lik, phi0, free, bounds, maxiter) -> tuple[np.ndarray, str, int, bool]:
    """L-BFGS-B (exact method), AI-Newton where each evaluation costs a Cholesky or CG solves."""
    if lik.method == "exact":
        return _lbfgsb(lik, phi0, free, bounds, maxiter)
    return _ai_newton(lik, phi0, free, bounds, maxiter)


def _lbfgsb(lik, phi0, free, bounds, maxiter) -> tuple[np.ndarray, str, int, bool]:
    """L-BFGS-B on ``x = D φ`` (free parameters), D = sqrt(diag AI(φ₀)): each variable in
    units of its own standard error, so the quasi-Newton steps start well scaled."""
    x0 = np.clip(phi0[free], bounds[free, 0], bounds[free, 1])
    start = phi0.copy()
    start[free] = x0
    ai = np.diag(lik.average_information(start))[free]
    D = np.sqrt(np.clip(ai, 1e-8 * max(float(ai.max()), 1.0), None))

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        phi = phi0.copy()
        phi[free] = x / D
        ev = lik(phi)
        return -ev.value, -ev.grad[free] / D

    res = scipy.optimize.minimize(
        fun, x0 * D, jac=True, method="L-BFGS-B", bounds=bounds[free] * D[:, None],
        options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-6, "maxcor": 20},
    )  # fmt: skip
    phi = phi0.copy()
    phi[free] = np.clip(res.x / D, bounds[free, 0], bounds[free, 1])
    return phi, str(res.message), int(res.nit), bool(res.success)


#: AI-Newton stops when the Newton step is below this many standard errors.
NEWTON_TOL = 0.01


def _ai_newton(lik, phi0, free, bounds, maxiter) -> tuple[np.ndarray, str, int, bool]:
    """Newton steps ``Δφ = AI⁻¹ ∇ℓ`` with step halving, projected on the bounds (the AI-REML
    algorithm of Gilmour et al. 1995): one factorisation per step, where L-BFGS-B's line
    searches on a gradient with Monte-Carlo noise take several. Stops when the step (its
    Newton decrement, in standard errors) is below :data:`NEWTON_TOL`, or below the
    gradient's own standard error (in the same units)."""
    lo, hi = bounds[:, 0], bounds[:, 1]
    phi = np.clip(phi0, lo, hi)
    ev = lik(phi)
    for it in range(1, maxiter + 1):
        g = ev.grad
        act = free & ~((phi <= lo) & (g < 0)) & ~((phi >= hi) & (g > 0))
        if not act.any():
            return phi, "CONVERGENCE: every free parameter at a bound", it - 1, True
        AI = lik.average_information(phi)[np.ix_(act, act)]
        step = np.linalg.solve(AI, g[act])
        dec = float(np.sqrt(max(g[act] @ step, 0.0)))
        noise = (
            float(np.sqrt(np.sum(ev.grad_se[act] ** 2 / np.diag(AI)))) if ev.grad_se.size else 0.0
        )
        if dec < max(NEWTON_TOL, noise):
            return phi, f"CONVERGENCE: Newton decrement {dec:.2g} standard errors", it - 1, True
        t = 1.0
        while True:
            cand = phi.copy()
            cand[act] = np.clip(phi[act] + t * step, lo[act], hi[act])
            ev_c = lik(cand)
            if ev_c.value >= ev.value - 2.0 * ev_c.value_se or t < 1 / 32:
                break
            t /= 2
        phi, ev = cand, ev_c
    return phi, f"no convergence in {maxiter} Newton steps", maxiter, False


def fit_hyperparameters(
    lik: MarginalLikelihood,
    bounds: Any,
    *,
    phi0: np.ndarray | None = None,
    free: np.ndarray | None = None,
    maxiter: int = 200,
    flat_se: float = 1.0,
    hessian_step: float = HESSIAN_STEP,
) -> HyperFit:
    """Maximise ℓ(φ) within bounds; standard errors from the observed information.

    The exact method uses L-BFGS-B (each variable scaled by its average information); the
    hybrid and stochastic ones, whose gradients carry Monte-Carlo noise and whose evaluations
    cost a factorisation or CG solves, use AI-Newton steps (:func:`_ai_newton`).

    Parameters
    ----------
    lik : MarginalLikelihood
    bounds : array_like
        (P, 2) lower and upper bounds on φ = log(θ / θ_configured).
    phi0 : numpy.ndarray, optional
        Start (default 0: the configured values), clipped into the bounds; fixed parameters
        keep this value.
    free : numpy.ndarray of bool, optional
        Which parameters are estimated (default: all).
    maxiter : int
        Iteration cap.
    flat_se : float
        A standard error of φ above this [log units] flags the parameter as not identifiable.
    hessian_step : float
        Step of the finite-difference Hessian [log units].

    Returns
    -------
    HyperFit
    """
    with blas_threads_for(lik.n_obs):
        return _fit(lik, bounds, phi0, free, maxiter, flat_se, hessian_step)


def _fit(lik, bounds, phi0, free, maxiter, flat_se, hessian_step) -> HyperFit:
    P = lik.model.n_params
    bounds = np.asarray(bounds, dtype=float).reshape(P, 2)
    if np.any(bounds[:, 0] >= bounds[:, 1]):
        bad = [lik.model.names[i] for i in np.flatnonzero(bounds[:, 0] >= bounds[:, 1])]
        raise ValueError(f"hyperparameter bounds: lower >= upper for {bad}")
    free = np.ones(P, bool) if free is None else np.asarray(free, bool)
    phi0 = np.zeros(P) if phi0 is None else np.array(phi0, dtype=float)
    phi0 = np.clip(phi0, bounds[:, 0], bounds[:, 1])
    n0 = lik.n_evaluations
    if free.any():
        phi, message, nit, success = _optimise(lik, phi0, free, bounds, maxiter)
    else:
        phi, message, nit, success = phi0, "nothing to estimate", 0, True
    ev = lik(phi)
    span = bounds[:, 1] - bounds[:, 0]
    at_bound = free & (
        (phi - bounds[:, 0] < BOUND_TOL * np.maximum(span, 1)) & (ev.grad < 0)
        | (bounds[:, 1] - phi < BOUND_TOL * np.maximum(span, 1)) & (ev.grad > 0)
    )
    if lik.method == "hybrid":  # each gradient costs a Cholesky: the average information
        info = lik.average_information(phi)
        info[~free] = 0.0
        info[:, ~free] = 0.0
    else:
        info = _observed_information(lik, phi, free, hessian_step)
    cov, flat = _covariance(info, free & ~at_bound, flat_se, lik.prior_precision)
    inner = free & ~at_bound
    if not success and ev.grad_se.size and inner.any():
        # a stochastic gradient cannot reach gtol: accept a gradient within 3 standard errors
        success = bool(np.all(np.abs(ev.grad[inner]) <= 3 * ev.grad_se[inner] + 1e-6))
        if success:
            message += " (gradient within 3 standard errors of its estimate: converged)"
    return HyperFit(
        names=lik.model.names, phi=phi, cov=cov, information=info, loglik=ev.loglik,
        log_prior=ev.log_prior, hyperprior=bool(lik.prior_precision.any()),
        loglik_se=ev.value_se, grad=ev.grad, grad_se=ev.grad_se if ev.grad_se.size else np.zeros(P),
        bounds=bounds, free=free, at_bound=at_bound, flat=flat, converged=success,
        message=message, n_iterations=nit, n_evaluations=lik.n_evaluations - n0,
        method=lik.method,
    )  # fmt: skip


def _observed_information(lik, phi, free, h) -> np.ndarray:
    P = phi.size
    Hm = np.zeros((P, P))
    for i in np.flatnonzero(free):
        e = np.zeros(P)
        e[i] = h
        Hm[:, i] = (lik(phi + e).grad - lik(phi - e).grad) / (2 * h)
    Hm = 0.5 * (Hm + Hm.T)
    Hm[~free] = 0.0
    Hm[:, ~free] = 0.0
    return -Hm


def _covariance(
    info: np.ndarray, use: np.ndarray, flat_se: float, prior_precision: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse information over ``use``, and the parameters the *data* do not identify
    (standard error of the likelihood alone above ``flat_se``, or no information at all)."""
    P = info.shape[0]
    cov = np.zeros((P, P))
    flat = np.zeros(P, bool)
    idx = np.flatnonzero(use)
    if not idx.size:
        return cov, flat
    sub = info[np.ix_(idx, idx)]
    lam, V = np.linalg.eigh(sub)
    tiny = lam <= max(float(np.abs(lam).max()), 1.0) * 1e-10
    for k in np.flatnonzero(tiny):  # directions without information
        flat[idx[np.abs(V[:, k]) > 0.3]] = True
    cov[np.ix_(idx, idx)] = (V[:, ~tiny] / lam[~tiny]) @ V[:, ~tiny].T
    lik = sub - np.diag(prior_precision[idx])  # the data's own information
    lam_l, V_l = np.linalg.eigh(lik)
    keep = lam_l > max(float(np.abs(lam_l).max()), 1.0) * 1e-10
    with np.errstate(divide="ignore"):
        var_l = np.where(keep.any(), np.sum(V_l[:, keep] ** 2 / lam_l[keep], axis=1), np.inf)
    var_l = np.where(np.abs(V_l[:, ~keep]).max(axis=1, initial=0) > 0.3, np.inf, var_l)
    flat[idx] |= np.sqrt(var_l) > flat_se
    return cov, flat


def profile_likelihood(
    lik: MarginalLikelihood, fit: HyperFit, index: int, values: np.ndarray, maxiter: int = 100
) -> np.ndarray:
    """The objective (ℓ plus the log hyperprior, if any) maximised over the other free
    parameters, for φ[index] fixed at each of ``values``.

    Returns
    -------
    numpy.ndarray
        (len(values),) profile of the objective [nats].
    """
    with blas_threads_for(lik.n_obs):
        return _profile(lik, fit, index, values, maxiter)


def _profile(lik, fit, index, values, maxiter) -> np.ndarray:
    free = fit.free.copy()
    free[index] = False
    out = np.empty(len(values))
    start = fit.phi.copy()
    for i, v in enumerate(values):
        start[index] = v
        if free.any():
            phi = _optimise(lik, start, free, fit.bounds, maxiter)[0]
            start = phi
        else:
            phi = start
        out[i] = lik(phi, grad=False).value
    return out
