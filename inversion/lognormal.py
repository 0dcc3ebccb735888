"""Non-negative inversion: a log-normal state solved by Gauss–Newton / Levenberg–Marquardt.

The state is ``u = (z, b)``: on the *positive* elements ``x = s ∘ exp(z)`` with a positive
scale ``s`` (the prior flux), elsewhere ``x = u`` (additive elements such as background
offsets). The prior is Gaussian in u, ``u ~ N(u_a, B_u)``, so x is log-normal and never
negative; the observations are ``y = H x(u) + e``, ``e ~ N(0, R)``. The mode minimises

    J(u) = ½ (u − u_a)ᵀ B_u⁻¹ (u − u_a) + ½ (y − H x(u))ᵀ R⁻¹ (y − H x(u)).

Each Gauss–Newton step is the linear-Gaussian problem linearised at the iterate u: Jacobian
``J = H diag(∂x/∂u)``, data ``y − H x(u) + J u``, solved by :func:`inversion.solve` with the
same operators (dense, obs-space, or matrix-free cg). Levenberg–Marquardt damping λ adds
``½ λ ‖u⁺ − u‖²_{B_u⁻¹}``, which is the same linear problem with prior mean
``(λ u + u_a)/(1 + λ)`` and covariance ``B_u/(1 + λ)``. B_u⁻¹ is never applied: every iterate
is kept as ``u = u_a + B_u v`` (v known from the linear solve), so the prior term of J is
``½ vᵀ(u − u_a)``.

At the mode u* the Laplace approximation is the Gaussian ``N(u*, A)`` with the Gauss–Newton
Hessian ``A⁻¹ = B_u⁻¹ + J*ᵀ R⁻¹ J*`` (the exact Hessian less the residual-curvature term
``Σ_i r_i ∇²h_i``): the linear posterior of the problem linearised at the mode
(:attr:`LognormalPosterior.laplace`). Each positive element is then log-normal with median
``s exp(z*)``.

Randomize-then-optimize samples (randomized maximum likelihood): each sample minimises J with
a perturbed prior mean ``u_a + B_u^{1/2} ξ`` and perturbed data ``y + R^{1/2} η``. The samples
start from one Gauss–Newton step from the mode (the linearised, Laplace sample) and are
optimised together by Newton–CG in whitened space with the exact Hessian, preconditioned by
the mode's Laplace (:mod:`inversion._newton`). In the linear limit (small prior std) their
distribution is the Gaussian posterior exactly. :meth:`LognormalPosterior.solve_batch` finds
the modes of many other data vectors the same way (OSSE draws).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.sparse.linalg import LinearOperator
from scipy.special import ndtri

from inversion._lognormal_problem import LognormalProblem, _ScaledCovariance, lognormal_moments
from inversion._newton import (
    Objectives,
    importance_samples,
    laplace_variances,
    minimise,
    weighted_quantiles,
)
from inversion.cg import CGOptions
from inversion.errors import ConvergenceError, ShapeMismatchError
from inversion.posterior import Posterior
from inversion.problem import LinearProblem
from inversion.solve import DEFAULT_MEMORY_BUDGET, solve

__all__ = [
    "LognormalOptions",
    "LognormalPosterior",
    "LognormalProblem",
    "SampleResult",
    "lognormal_moments",
    "solve_lognormal",
]

logger = logging.getLogger(__name__)

# Largest Levenberg–Marquardt damping before the optimisation is declared stuck.
_MAX_LAMBDA = 1e10
# Step halvings tried along a Gauss–Newton step before Levenberg–Marquardt damping.
_BACKTRACK = 4
# Relative rise of J within its rounding (accepted as no rise).
_COST_RTOL = 1e-12


@dataclass(frozen=True)
class LognormalOptions:
    """Settings of :func:`solve_lognormal` and of the RTO samples.

    Attributes
    ----------
    max_iter : int
        Most Gauss–Newton / Levenberg–Marquardt iterations for the mode.
    tol : float
        Convergence: the squared B_u⁻¹-norm of the last step ``‖Δu‖²_{B⁻¹}`` below ``tol``
        times n_obs [1].
    sample_max_iter : int
        Most mode-Hessian iterations of a sample before it is finished by its own
        Gauss–Newton optimisation.
    sample_tol : float
        Convergence of a sample: Newton decrement ``gᵀ A g`` below ``sample_tol`` times n_obs.
    batch : int
        Samples optimised together (columns of the batched products).
    """

    max_iter: int = 50
    tol: float = 1e-12
    sample_max_iter: int = 40
    sample_tol: float = 1e-10
    batch: int = 64

    def __post_init__(self) -> None:
        if self.max_iter < 1 or self.sample_max_iter < 1 or self.batch < 1:
            raise ValueError("max_iter, sample_max_iter and batch must be >= 1")
        if not (self.tol > 0 and self.sample_tol > 0):
            raise ValueError("tol and sample_tol must be > 0")


@dataclass(frozen=True)
class SampleResult:
    """Posterior samples: randomize-then-optimize (equal weights) or Laplace-proposal
    importance samples (``weights``).

    Attributes
    ----------
    values : numpy.ndarray
        (n, k) the aggregates ``weights @ x`` of each sample, or (n, n_state) the samples of x
        when no weights were given [x or aggregate units].
    n_samples : int
    iterations : numpy.ndarray
        (n,) mode-Hessian iterations of each sample.
    n_unconverged : int
        Samples whose Newton decrement stayed above the tolerance (their last iterate is
        used; a warning is logged).
    seed : int or None
    weights : numpy.ndarray or None
        (n,) self-normalised importance weights; None: equal weights (RTO).
    method : str
        ``rto`` or ``importance``.
    """

    values: np.ndarray
    n_samples: int
    iterations: np.ndarray
    n_unconverged: int
    seed: int | None
    weights: np.ndarray | None = None
    method: str = "rto"

    @property
    def effective_size(self) -> float:
        """Effective sample size ``1 / Σ w²`` (n for equal weights)."""
        if self.weights is None:
            return float(self.n_samples)
        return float(1.0 / np.sum(self.weights**2))

    def quantiles(self, q: Any) -> np.ndarray:
        """Quantiles (len(q), k) of the columns of ``values`` under the sample weights."""
        w = np.full(self.n_samples, 1.0 / self.n_samples) if self.weights is None else self.weights
        return weighted_quantiles(self.values, w, np.atleast_1d(np.asarray(q, dtype=float)))

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean (k,) and covariance (k, k) of the columns of ``values``."""
        w = np.full(self.n_samples, 1.0 / self.n_samples) if self.weights is None else self.weights
        mean = w @ self.values
        D = self.values - mean
        cov = (D * w[:, None]).T @ D / max(1.0 - np.sum(w**2), 1e-300)
        return mean, cov


class LognormalPosterior:
    """Mode, Laplace approximation and RTO samples of a :class:`LognormalProblem`.

    Made by :func:`solve_lognormal`. In x space (what writers of posterior fields and tables
    use): :attr:`mean` is the median of every element under the Laplace approximation
    (``x(u*)``: ``s exp(z*)`` on the positive elements, never negative), :attr:`std` the
    Laplace marginal std (log-normal on the positive elements), :meth:`quantiles` exact Laplace
    quantiles. Aggregates, sensitivities, innovations, χ² and DOFS are those of the problem
    linearised at the mode (:attr:`laplace`, the Laplace Gaussian in u), mapped to x by the
    chain rule ``∂x/∂u`` at the mode (delta method); asymmetric intervals of aggregates come
    from :meth:`aggregate_lognormal` (Laplace, log-normal) or :meth:`sample` (RTO).

    Attributes
    ----------
    problem : LognormalProblem
    mode : numpy.ndarray
        (n_state,) u* [1 on the positive elements].
    laplace : inversion.Posterior
        Linear posterior of the problem linearised at the mode: ``laplace.mean`` is one more
        Gauss–Newton step from u* (equal to it to the tolerance), its covariance the Laplace
        covariance of u.
    info : dict
        ``iterations``, ``converged``, ``cost`` (history), ``lambda`` (LM damping history),
        ``last_step_norm2`` (``‖Δu‖²_{B⁻¹}`` of the last step), ``seconds``.
    method : str
        ``"lognormal"`` + the linear solver of the steps.
    std_method : str
        ``"laplace-lognormal"``.
    """

    std_method = "laplace-lognormal"

    def __init__(
        self, problem: LognormalProblem, mode: np.ndarray, laplace: Posterior, info: dict
    ) -> None:
        self.problem = problem
        self.mode = mode
        self.laplace = laplace
        self.info = info
        self.method = f"lognormal ({laplace.method})"
        self.dual = np.asarray(info.get("dual", np.zeros_like(mode)))  # u* = u_a + B_u v*
        self._scale = problem.jacobian_scale(mode)
        # ∂x/∂u where `laplace` was linearised (the last iterate before the mode, within the
        # tolerance): the Jacobian of its S*, used wherever S* is
        self._scale_pre = problem.jacobian_scale(info.get("linearised_at", mode))

    def __repr__(self) -> str:
        return (
            f"LognormalPosterior(n_state={self.n_state}, n_obs={self.n_obs}, "
            f"iterations={self.info.get('iterations')}, chi2={self.chi2:.4g})"
        )

    # ------------------------------------------------------------------ sizes, diagnostics
    @property
    def n_state(self) -> int:
        """Number of state elements."""
        return self.problem.n_state

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return self.problem.n_obs

    @property
    def chi2(self) -> float:
        """Innovation χ²/n of the problem linearised at the mode (≈ 1 when B and R are right)."""
        return self.laplace.chi2

    @property
    def dofs(self) -> float:
        """Degrees of freedom for signal of the linearisation at the mode."""
        return self.laplace.dofs

    @property
    def innovation(self) -> np.ndarray:
        """Innovation of the linearisation at the mode, ``y − H x(u*) − J*(u_a − u*)`` [ppm]."""
        return self.laplace.innovation

    def solve_innovation_covariance(self, V: np.ndarray) -> np.ndarray:
        """``S*⁻¹ V`` with ``S* = J* B_u J*ᵀ + R`` at the mode."""
        return self.laplace.solve_innovation_covariance(V)

    def innovation_covariance_diag(self) -> np.ndarray:
        """Diagonal of ``S*`` [ppm²]."""
        return self.laplace.innovation_covariance_diag()

    # ------------------------------------------------------------------ x space
    @cached_property
    def mean(self) -> np.ndarray:
        """Median of every element under the Laplace approximation, ``x(u*)`` [x units]."""
        return self.problem.to_x(self.mode)

    @cached_property
    def u_std(self) -> np.ndarray:
        """Laplace std of u (n_state,) [1 on the positive elements]."""
        return self.laplace.std

    @cached_property
    def std(self) -> np.ndarray:
        """Laplace marginal std of x: ``x* sqrt(e^{σ²}(e^{σ²} − 1))`` on the positive elements
        (log-normal with median x* and log-std σ), the Gaussian std elsewhere [x units]."""
        s = self.u_std.copy()
        p = self.problem.positive
        v = s[p] ** 2
        s[p] = self.mean[p] * np.sqrt(np.exp(v) * np.expm1(v))
        return s

    @cached_property
    def expected(self) -> np.ndarray:
        """Laplace mean of x: ``x* exp(σ²/2)`` on the positive elements [x units]."""
        out = self.mean.copy()
        p = self.problem.positive
        out[p] *= np.exp(0.5 * self.u_std[p] ** 2)
        return out

    def quantiles(self, q: Any) -> np.ndarray:
        """Laplace quantiles of every element (q,) -> (len(q), n_state) [x units]."""
        q = np.atleast_1d(np.asarray(q, dtype=float))
        U = self.mode[None, :] + ndtri(q)[:, None] * self.u_std[None, :]
        return self.problem.to_x(U.T).T

    def _chain(self, weights: Any) -> tuple[Any, bool]:
        if scipy.sparse.issparse(weights):
            W = scipy.sparse.csr_array(weights, dtype=np.float64)
            return scipy.sparse.csr_array(W @ scipy.sparse.diags_array(self._scale)), False
        W = np.asarray(weights, dtype=np.float64)
        if W.shape[-1] != self.n_state:
            raise ShapeMismatchError(
                f"weights must have n_state={self.n_state} columns; found shape {W.shape}"
            )
        return W * self._scale, W.ndim == 1

    def aggregate(self, weights: Any) -> tuple[Any, Any]:
        """Aggregate at the mode ``W x*`` and its linearised (delta-method) std."""
        Wu, single = self._chain(weights)
        _, s = self.laplace.aggregate(Wu)
        m = np.asarray(weights @ self.mean).ravel()
        return (float(m[0]), float(s)) if single else (m, s)

    def aggregate_cov(self, weights: Any) -> tuple[np.ndarray, np.ndarray]:
        """Aggregates at the mode (k,) and their linearised covariance (k, k)."""
        Wu, _ = self._chain(weights)
        _, cov = self.laplace.aggregate_cov(Wu)
        return np.asarray(weights @ self.mean).ravel(), cov

    def observation_sensitivity(self, weights: Any) -> np.ndarray:
        """``S*⁻¹ J* B_u (W ∂x/∂u)ᵀ``: sensitivity of the linearised aggregates to the data."""
        Wu, _ = self._chain(weights)
        return self.laplace.observation_sensitivity(Wu)

    def aggregate_subset(self, weights: Any, obs_index: np.ndarray) -> tuple[Any, Any]:
        """Linearised aggregates from a subset of the observations (see
        ``Posterior.aggregate_subset``), shifted to the mode's aggregate."""
        Wu, single = self._chain(weights)
        m_u, s = self.laplace.aggregate_subset(Wu, obs_index)
        base = np.asarray(weights @ self.mean).ravel() - np.asarray(Wu @ self.mode).ravel()
        m = base + np.asarray(m_u).ravel()
        return (float(m[0]), float(s)) if single else (m, s)

    def means_for(self, y: np.ndarray) -> np.ndarray:
        """Not available: each data vector needs its own nonlinear optimisation."""
        raise NotImplementedError(
            "means_for: the log-normal posterior is nonlinear in the data; solve each data "
            "vector with solve_lognormal"
        )

    def aggregate_lognormal(self, weights: Any, p: float = 0.95) -> dict[str, np.ndarray]:
        """Laplace (delta-method in log space) distribution of positive aggregates.

        ``ln(W x) ≈ ln(W x*) + (W diag(∂x/∂u))(u − u*) / (W x*)``, so ``W x`` is log-normal
        with median ``T* = W x*`` and log-std ``σ = sd(W ∂x/∂u · u) / T*``.

        Returns
        -------
        dict
            ``median``, ``log_std``, ``low``, ``high`` (central ``p`` interval
            ``T* exp(∓ z σ)``), ``mean`` (``T* exp(σ²/2)``) and ``std`` [aggregate units].

        Raises
        ------
        ValueError
            If an aggregate at the mode is not > 0 (not a positive quantity).
        """
        Wu, _ = self._chain(weights)
        _, s = self.laplace.aggregate(Wu)
        T = np.atleast_1d(np.asarray(weights @ self.mean, dtype=float).ravel())
        s = np.atleast_1d(np.asarray(s, dtype=float))
        if np.any(T <= 0):
            i = int(np.argmax(T <= 0))
            raise ValueError(
                f"aggregate_lognormal: aggregate {i} is {T[i]!r} at the mode; a log-normal "
                "interval needs a positive aggregate (weights >= 0 on positive elements)"
            )
        sig = s / T
        z = float(ndtri(0.5 + 0.5 * p))
        v = sig**2
        return {
            "median": T, "log_std": sig, "low": T * np.exp(-z * sig), "high": T * np.exp(z * sig),
            "mean": T * np.exp(0.5 * v), "std": T * np.sqrt(np.exp(v) * np.expm1(v)),
        }  # fmt: skip

    # ------------------------------------------------------------------ RTO samples
    @cached_property
    def _objectives(self) -> Objectives:
        return Objectives(self.problem, self.laplace, self._scale_pre)

    @cached_property
    def _chi_star(self) -> np.ndarray:
        """Whitened mode ``Lᵀ v*`` (u* = u_a + L Lᵀ v*), (sqrt_dim, 1)."""
        return self._objectives.Lt(self.dual[:, None])

    def solve_batch(
        self,
        Y: np.ndarray,
        weights: Any,
        options: LognormalOptions | None = None,
        p: float = 0.95,
    ) -> dict[str, np.ndarray]:
        """Modes and Laplace aggregates for other data vectors (same H, B, R), batched.

        Each data vector's mode is found by Newton–CG preconditioned with this posterior's
        Laplace (:mod:`inversion._newton`; the same objective as :func:`solve_lognormal`, to
        the tolerance), then the Laplace log-normal of the aggregates at that mode (as
        :meth:`aggregate_lognormal`). Useful for OSSE draws: no new factorisation.

        Parameters
        ----------
        Y : numpy.ndarray
            (m, n_obs) data [ppm].
        weights : numpy.ndarray or scipy.sparse array
            (k, n_state) aggregate weights, >= 0 on the positive elements.
        options : LognormalOptions, optional
        p : float
            Probability of the central interval.

        Returns
        -------
        dict
            ``median``, ``log_std``, ``low``, ``high`` (m, k) [aggregate units]; ``chi2``
            (m,) = 2 J(u*)/n_obs (the innovation χ²/n of each linearisation at its mode);
            ``x`` (m, n_state) the modes in x; ``iterations`` (m,); ``n_unconverged``.
        """
        opt = options or self.info.get("options") or LognormalOptions()
        pr, ops = self.problem, self._objectives
        Y = np.atleast_2d(np.asarray(Y, dtype=float)).T
        m = Y.shape[1]
        xi = np.zeros((pr.B.sqrt_dim, m))
        chi0 = np.repeat(self._chi_star, m, axis=1)
        chi0 += ops.precondition(-ops.state(chi0, xi, Y)["grad"])
        chi, iters, bad = minimise(ops, chi0, xi, Y, opt.max_iter, opt.sample_tol * pr.n_obs)
        st = ops.state(chi, xi, Y)
        X = pr.to_x(st["U"])
        T = np.asarray(weights @ X, dtype=float).T  # (m, k)
        var = laplace_variances(ops, chi, Y, weights)
        sig = np.sqrt(np.maximum(var, 0.0)) / T
        z = float(ndtri(0.5 + 0.5 * p))
        if bad:
            logger.warning("solve_batch: %d of %d data vectors did not converge", bad, m)
        return {
            "median": T, "log_std": sig, "low": T * np.exp(-z * sig), "high": T * np.exp(z * sig),
            "chi2": 2.0 * st["cost"] / pr.n_obs, "x": X.T, "iterations": iters,
            "n_unconverged": bad,
        }  # fmt: skip

    def importance_sample(
        self, n: int, seed: int | None = 0, weights: Any = None, temper: float = 2.0
    ) -> SampleResult:
        """``n`` importance samples with a (tempered) Laplace approximation as proposal.

        Draws from the Gaussian at the mode with the Gauss–Newton precision
        ``B_u⁻¹ + J*ᵀ (c R)⁻¹ J*`` (c = ``temper``: the Laplace for c = 1, wider in the
        directions the data inform for c > 1, to reach the heavier tail of a skewed posterior)
        and weights each by the exact posterior over it
        (:func:`inversion._newton.importance_samples`): the weighted samples converge to the
        exact posterior (the Laplace and RTO do not, where the problem is nonlinear).
        ``SampleResult.effective_size`` says how many equal-weight samples they are worth.

        Parameters
        ----------
        n : int
            Number of samples (>= 2).
        seed : int, optional
        weights : numpy.ndarray or scipy.sparse array, optional
            (k, n_state): keep the aggregates ``weights @ x`` of the samples only.
        temper : float
            c >= 1 (one more linear solve with ``c R`` when c > 1).

        Returns
        -------
        SampleResult
        """
        if n < 2:
            raise ValueError(f"importance_sample: n must be >= 2, found {n}")
        if temper < 1.0:
            raise ValueError(f"importance_sample: temper must be >= 1, found {temper}")
        ops = self._objectives
        if temper != 1.0:
            lp = self.laplace.problem
            kw = dict(self.info.get("solve_kwargs", {}))
            R = _ScaledCovariance(lp.R, temper)
            pre = solve(LinearProblem(H=lp.H, x_prior=lp.x_prior, y=lp.y, B=lp.B, R=R), **kw)
            ops = Objectives(self.problem, pre, self._scale_pre)
        U, w = importance_samples(
            ops, self._chi_star[:, 0], self.problem.y, n, np.random.default_rng(seed), temper
        )
        X = self.problem.to_x(U)
        values = (X.T if weights is None else np.asarray(weights @ X).T).copy()
        res = SampleResult(values, n, np.zeros(n, int), 0, seed, weights=w, method="importance")
        logger.info("importance sampling: %d samples, effective size %.1f", n, res.effective_size)
        return res

    def sample(
        self,
        n: int,
        seed: int | None = 0,
        weights: Any = None,
        options: LognormalOptions | None = None,
    ) -> SampleResult:
        """``n`` randomize-then-optimize samples (batched Newton–CG, :mod:`inversion._rto`).

        Each sample minimises J with a perturbed prior mean ``u_a + B_u^{1/2} ξ`` and perturbed
        data ``y + R^{1/2} η``; in the linear limit their distribution is the Gaussian
        posterior exactly.

        Parameters
        ----------
        n : int
            Number of samples (>= 2).
        seed : int, optional
        weights : numpy.ndarray or scipy.sparse array, optional
            (k, n_state): return the aggregates ``weights @ x`` of each sample (memory
            ``n·k``) instead of the samples of x (``n·n_state``).
        options : LognormalOptions, optional
            ``sample_max_iter``, ``sample_tol`` and ``batch`` (default: the mode's options).

        Returns
        -------
        SampleResult
        """
        if n < 2:
            raise ValueError(f"sample: n must be >= 2, found {n}")
        opt = options or self.info.get("options") or LognormalOptions()
        rng = np.random.default_rng(seed)
        pr = self.problem
        out: list[np.ndarray] = []
        iters = np.zeros(n, dtype=int)
        n_bad = 0
        t0 = time.perf_counter()
        ops = self._objectives
        chi_star = self._chi_star
        for a in range(0, n, opt.batch):
            m = min(opt.batch, n - a)
            xi = rng.standard_normal((pr.B.sqrt_dim, m))
            eta = rng.standard_normal((pr.R.sqrt_dim, m))
            Y = pr.y[:, None] + np.asarray(pr.R.sqrt_matvec(eta))
            chi0 = np.repeat(chi_star, m, axis=1)
            chi0 += ops.precondition(-ops.state(chi0, xi, Y)["grad"])  # linearised sample
            chi, it, bad = minimise(
                ops, chi0, xi, Y, opt.sample_max_iter, opt.sample_tol * pr.n_obs
            )
            U = pr.u_prior[:, None] + ops.L(chi)
            iters[a : a + m] = it
            n_bad += bad
            X = pr.to_x(U)
            out.append((X.T if weights is None else np.asarray(weights @ X).T).copy())
        if n_bad:
            logger.warning(
                "RTO: %d of %d samples did not reach the tolerance %.3g in %d Newton "
                "iterations; their last iterates are used", n_bad, n,
                opt.sample_tol * pr.n_obs, opt.sample_max_iter,
            )  # fmt: skip
        logger.info(
            "RTO: %d samples in %.3g s (mean %.1f Newton iterations)",
            n, time.perf_counter() - t0, iters.mean(),
        )  # fmt: skip
        return SampleResult(np.vstack(out), n, iters, n_bad, seed)


def _step(
    pr: LognormalProblem,
    u: np.ndarray,
    v: np.ndarray,
    lam: float,
    u_prior: np.ndarray,
    y: np.ndarray,
    kw: dict,
) -> tuple[Posterior, np.ndarray, np.ndarray]:
    """One Levenberg–Marquardt step (λ = 0: Gauss–Newton) from ``u = u_prior + B v``."""
    J = pr.jacobian(u)
    Ju = np.asarray(J.matvec(u) if isinstance(J, LinearOperator) else J @ u, dtype=float)
    y_lin = y - pr.forward(u) + Ju
    if lam == 0.0:
        B, m = pr.B, u_prior
    else:
        B, m = _ScaledCovariance(pr.B, 1.0 / (1.0 + lam)), (lam * u + u_prior) / (1.0 + lam)
    post = solve(LinearProblem(H=J, x_prior=m, y=y_lin, B=B, R=pr.R), **kw)
    alpha = post.solve_innovation_covariance(post.innovation)
    v_new = (lam * v + post.problem.Ht_matmat(alpha)) / (1.0 + lam)
    return post, post.mean, v_new


def _optimise(
    pr: LognormalProblem,
    u_prior: np.ndarray,
    y: np.ndarray,
    opt: LognormalOptions,
    kw: dict,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, Posterior, dict]:
    """Minimise J with prior mean ``u_prior`` and data ``y`` by Levenberg–Marquardt.

    Returns the mode, the linear posterior linearised at it and the iteration record.
    """
    u, v = (u_prior.copy(), np.zeros_like(u_prior)) if start is None else start
    cost = float(pr.cost(u, v, u_prior, y))
    lam = 0.0
    record: dict[str, Any] = {"cost": [cost], "lambda": [], "converged": False}
    tol = opt.tol * pr.n_obs
    laplace = None
    it = 0
    for it in range(1, opt.max_iter + 1):
        post, u_new, v_new = _step(pr, u, v, lam, u_prior, y, kw)
        record["lambda"].append(lam)
        du, dv = u_new - u, v_new - v
        step2 = abs(float(np.dot(dv, du)))  # ‖Δu‖²_{B⁻¹} of the proposed step
        noise = _COST_RTOL * max(1.0, abs(cost))  # rounding of J: not a rise
        if lam == 0.0 and step2 <= tol:  # converged: the step is below the tolerance
            record["linearised_at"] = u
            c_new = float(pr.cost(u_new, v_new, u_prior, y))
            if c_new <= cost + noise:
                u, v, cost = u_new, v_new, c_new
            record.update(converged=True, last_step_norm2=step2)
            record["cost"].append(cost)
            laplace = post  # linearised at the previous iterate, within the tolerance of u
            break
        t, c_new = 1.0, float(pr.cost(u_new, v_new, u_prior, y))
        for _ in range(_BACKTRACK):  # backtrack along the step before damping
            if c_new <= cost + noise:
                break
            t *= 0.5
            c_new = float(pr.cost(u + t * du, v + t * dv, u_prior, y))
        if c_new <= cost + noise:
            u, v, cost = u + t * du, v + t * dv, c_new
            record["cost"].append(cost)
            record["last_step_norm2"] = t * t * step2
            lam = 0.0 if lam <= 1e-3 else lam / 10.0
            continue
        lam = 1.0 if lam == 0.0 else lam * 10.0
        if lam > _MAX_LAMBDA:
            raise ConvergenceError(
                f"log-normal inversion: Levenberg–Marquardt damping exceeded {_MAX_LAMBDA:g} "
                f"after {it} iterations (cost {cost:.6g}); the problem is too nonlinear for the "
                "prior: check the prior std and the observation errors"
            )
    record["iterations"] = it
    if laplace is None:
        raise ConvergenceError(
            f"log-normal inversion: no convergence in {opt.max_iter} iterations (last step "
            f"‖Δu‖²_B⁻¹ = {record.get('last_step_norm2', np.nan):.3g}, tolerance {tol:.3g}); "
            "raise inversion.lognormal.max_iter or tol"
        )
    record["dual"] = v
    return u, laplace, record


def solve_lognormal(
    problem: LognormalProblem,
    method: str = "auto",
    *,
    options: LognormalOptions | None = None,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    chunk_size: int | None = None,
    cg: CGOptions | None = None,
) -> LognormalPosterior:
    """Mode and Laplace posterior of a log-normal problem (Levenberg–Marquardt).

    Parameters
    ----------
    problem : LognormalProblem
    method : {"auto", "dense", "obs-space", "cg"}
        Linear solver of every Gauss–Newton step (:func:`inversion.solve`).
    options : LognormalOptions, optional
    memory_budget, chunk_size, cg
        As :func:`inversion.solve`.

    Returns
    -------
    LognormalPosterior

    Raises
    ------
    ConvergenceError
        If the iterations do not converge within ``options.max_iter`` or the damping grows
        without bound.
    """
    opt = options or LognormalOptions()
    kw = {"method": method, "memory_budget": memory_budget, "chunk_size": chunk_size, "cg": cg}
    t0 = time.perf_counter()
    mode, laplace, record = _optimise(problem, problem.u_prior, problem.y, opt, kw)
    record["seconds"] = time.perf_counter() - t0
    record["options"] = opt
    record["solve_kwargs"] = kw
    logger.info(
        "solve_lognormal: %d iterations, cost %.6g -> %.6g, %.3g s",
        record["iterations"], record["cost"][0], record["cost"][-1], record["seconds"],
    )  # fmt: skip
    return LognormalPosterior(problem, mode, laplace, record)
