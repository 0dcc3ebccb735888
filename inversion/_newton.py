"""Batched Newton–CG for many log-normal objectives at once (RTO samples, OSSE draws).

Column j minimises, over the whitened variable χ (``u = u_a + L χ``, ``L Lᵀ = B_u``),

    F_j(χ) = ½ ‖χ − ξ_j‖² + ½ (y_j − H x(u))ᵀ R⁻¹ (y_j − H x(u)),

(ξ_j = 0 and y_j the data: the mode; ξ_j, η_j ~ N(0, I) and y_j = y + R^{1/2} η_j: a
randomize-then-optimize sample). Its exact Hessian is ``I + Lᵀ (Jᵀ R⁻¹ J − diag(d)) L`` with
``J = H diag(∂x/∂u)`` and the residual curvature ``d = ∂x/∂u ∘ Hᵀ R⁻¹ r`` on the log-normal
elements (∂²x/∂z² = x); dropping d gives the Gauss–Newton Hessian. Each Newton step is solved
by preconditioned CG, the preconditioner being the inverse Gauss–Newton Hessian of one
linearisation ``(I + Lᵀ J₀ᵀ R⁻¹ J₀ L)⁻¹ = I − Lᵀ J₀ᵀ S₀⁻¹ J₀ L`` (Woodbury, from that linear
posterior's factorisation of ``S₀``), then a backtracking (Armijo) line search; a direction of
negative curvature ends the inner solve (the preconditioned steepest descent if it is the
first). Columns are optimised together until their Newton decrement ``−gᵀδ`` is below the
tolerance. :func:`laplace_variances` solves with the Gauss–Newton Hessian at each column's
mode: ``qᵀ (I + Lᵀ Jᵀ R⁻¹ J L)⁻¹ q`` is the Laplace variance of an aggregate ``wᵀu`` with
``q = Lᵀ w``. :func:`importance_samples` draws from the Gaussian ``N(χ*, A₀)`` of the
preconditioner's linearisation, ``A₀ = (I + Lᵀ J₀ᵀ R⁻¹ J₀ L)⁻¹`` (exactly, as linearised RTO:
``δ = A₀ (ξ + Lᵀ J₀ᵀ R⁻¹ e)``, ``e ~ N(0, R)``), centred on a mode χ*, and weights each by the
exact posterior over the proposal, ``log w = −F(χ) + ½ δᵀ A₀⁻¹ δ`` with
``δᵀ A₀⁻¹ δ = ‖δ‖² + ‖J₀ L δ‖²_{R⁻¹}``: self-normalised importance sampling, consistent for the
exact posterior as the sample count grows (its effective size ``1 / Σ w²`` is reported).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from inversion._lognormal_problem import _MAX_LOG

__all__ = [
    "Objectives",
    "importance_samples",
    "laplace_variances",
    "minimise",
    "weighted_quantiles",
]

logger = logging.getLogger(__name__)

# Relative residual of the inner (preconditioned) CG solve of a Newton step.
NEWTON_RTOL = 1e-2
# Most inner CG iterations per solve.
_INNER_MAXITER = 100
# Step halvings of the Armijo line search.
_LINE_SEARCH = 30


class Objectives:
    """Operators of a batch of objectives (columns) of a ``LognormalProblem``.

    Parameters
    ----------
    pr : LognormalProblem
    pre : inversion.Posterior
        Linear posterior of a linearisation (its ``solve_innovation_covariance`` applies S₀⁻¹).
    s_pre : numpy.ndarray
        (n_state,) ∂x/∂u of that linearisation (J₀ = H diag(s_pre)).
    """

    def __init__(self, pr: Any, pre: Any, s_pre: np.ndarray, temper: float = 1.0) -> None:
        self.pr, self.pre, self.temper = pr, pre, float(temper)
        self.B = pr.B
        self.s_pre = np.asarray(s_pre, dtype=float)[:, None]

    def L(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.B.sqrt_matvec(X), dtype=float)

    def Lt(self, V: np.ndarray) -> np.ndarray:
        return np.asarray(self.B.sqrt_rmatvec(V), dtype=float)

    def precondition(self, G: np.ndarray) -> np.ndarray:
        """``(I + Lᵀ J₀ᵀ (cR)⁻¹ J₀ L)⁻¹ G`` by Woodbury with ``S₀ = J₀ B J₀ᵀ + c R`` (c: the
        temper of the preconditioner's posterior, 1 for a Laplace)."""
        pr = self.pr
        V = self.pre.solve_innovation_covariance(pr.H_matmat(self.s_pre * self.L(G)))
        return G - self.Lt(self.s_pre * pr.Ht_matmat(V))

    def state(self, chi: np.ndarray, xi: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
        """u, cost, gradient and curvature terms at χ (columns)."""
        pr = self.pr
        U = pr.u_prior[:, None] + self.L(chi)
        s_u = pr.jacobian_scale(U)
        r = Y - pr.H_matmat(pr.to_x(U))
        rho = pr.r_inv(r)
        Htrho = pr.Ht_matmat(rho)
        d = np.where(pr.positive[:, None], s_u * Htrho, 0.0)
        cost = 0.5 * (np.sum((chi - xi) ** 2, axis=0) + np.sum(r * rho, axis=0))
        grad = (chi - xi) - self.Lt(s_u * Htrho)
        return {"U": U, "s_u": s_u, "d": d, "cost": cost, "grad": grad}

    def cost(self, chi: np.ndarray, xi: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """F at χ (columns); +inf where exp(z) would overflow."""
        pr = self.pr
        U = pr.u_prior[:, None] + self.L(chi)
        out = np.full(chi.shape[1], np.inf)
        ok = np.all(np.abs(U[pr.positive]) <= _MAX_LOG, axis=0)
        if ok.any():
            r = Y[:, ok] - pr.H_matmat(pr.to_x(U[:, ok]))
            out[ok] = 0.5 * (
                np.sum((chi[:, ok] - xi[:, ok]) ** 2, axis=0) + np.sum(r * pr.r_inv(r), axis=0)
            )
        return out

    def hessian(self, st: dict[str, np.ndarray], P: np.ndarray, exact: bool) -> np.ndarray:
        """Hessian of F (exact, or Gauss–Newton) times P (columns)."""
        pr = self.pr
        LP = self.L(P)
        JtRJ = st["s_u"] * pr.Ht_matmat(pr.r_inv(pr.H_matmat(st["s_u"] * LP)))
        return P + self.Lt(JtRJ - st["d"] * LP if exact else JtRJ)


def _pcg(
    ops: Objectives, st: dict[str, np.ndarray], rhs: np.ndarray, rtol: float, exact: bool
) -> tuple[np.ndarray, int]:
    """Preconditioned CG on every column at once; columns that converge or meet negative
    curvature are frozen (at negative curvature on the first iteration: the preconditioned
    right-hand side)."""
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = ops.precondition(r)
    p = z.copy()
    rz = np.sum(r * z, axis=0)
    rz0 = rz.copy()
    active = rz > 0
    k = 0
    for k in range(1, _INNER_MAXITER + 1):
        if not active.any():
            break
        Ap = ops.hessian(st, p, exact)
        curv = np.sum(p * Ap, axis=0)
        neg = active & (curv <= 0)
        if neg.any():
            if k == 1:
                x[:, neg] = z[:, neg]
            active &= ~neg
        alpha = np.where(active, rz / np.where(active, curv, 1.0), 0.0)
        x += alpha * p
        r -= alpha * Ap
        z = ops.precondition(r)
        rz_new = np.sum(r * z, axis=0)
        beta = np.where(active, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        p = np.where(active, z + beta * p, p)
        rz = np.where(active, rz_new, rz)
        active &= rz_new > (rtol**2) * rz0
    return x, k


def minimise(
    ops: Objectives,
    chi: np.ndarray,
    xi: np.ndarray,
    Y: np.ndarray,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise the objectives of the columns from ``chi`` (Newton–CG, Armijo line search).

    Parameters
    ----------
    ops : Objectives
    chi : numpy.ndarray
        (sqrt_dim, m) starting points (not modified).
    xi : numpy.ndarray
        (sqrt_dim, m) whitened prior perturbations (0 for the mode).
    Y : numpy.ndarray
        (n_obs, m) data [ppm].
    max_iter : int
        Most Newton iterations.
    tol : float
        Newton decrement ``−gᵀδ`` below which a column has converged [1].

    Returns
    -------
    chi : numpy.ndarray
        (sqrt_dim, m) minimisers.
    iterations : numpy.ndarray
        (m,) Newton iterations of each column.
    n_unconverged : int
        Columns still above the tolerance (or whose line search failed); their last iterate
        is returned.
    """
    chi = chi.copy()
    m = chi.shape[1]
    iters = np.zeros(m, dtype=int)
    active = np.ones(m, dtype=bool)
    failed = np.zeros(m, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        st = ops.state(chi[:, idx], xi[:, idx], Y[:, idx])
        delta, _ = _pcg(ops, st, -st["grad"], NEWTON_RTOL, exact=True)
        slope = np.sum(st["grad"] * delta, axis=0)  # gᵀδ < 0 for a descent direction
        conv = -slope <= tol
        t = np.ones(idx.size)
        new = chi[:, idx] + delta
        c_new = ops.cost(new, xi[:, idx], Y[:, idx])
        for _half in range(_LINE_SEARCH):
            bad = ~(c_new <= st["cost"] + 1e-4 * t * slope) & ~conv
            if not bad.any():
                break
            t[bad] *= 0.5
            new[:, bad] = chi[:, idx[bad]] + t[bad] * delta[:, bad]
            c_new[bad] = ops.cost(new[:, bad], xi[:, idx[bad]], Y[:, idx[bad]])
        better = c_new <= st["cost"]
        chi[:, idx[better]] = new[:, better]
        iters[idx] += 1
        active[idx[conv]] = False
        stuck = ~conv & ~better  # no descent along the Newton direction: give up on it
        failed[idx[stuck]] = True
        active[idx[stuck]] = False
    return chi, iters, int(failed.sum() + active.sum())


def laplace_variances(
    ops: Objectives, chi: np.ndarray, Y: np.ndarray, W: np.ndarray, rtol: float = 1e-3
) -> np.ndarray:
    """Laplace (Gauss–Newton) variances of aggregates at each column's mode.

    Parameters
    ----------
    ops : Objectives
    chi : numpy.ndarray
        (sqrt_dim, m) the modes.
    Y : numpy.ndarray
        (n_obs, m) their data (for the curvature state; not used by the Gauss–Newton Hessian).
    W : numpy.ndarray
        (k, n_state) aggregate weights in x [aggregate units per x unit].
    rtol : float
        Relative residual of the CG solves (the variances are accurate to about its square).

    Returns
    -------
    numpy.ndarray
        (m, k) variances of ``W x`` linearised at each mode, ``(W ∂x/∂u) A (W ∂x/∂u)ᵀ``
        [aggregate units²].
    """
    m, k = chi.shape[1], W.shape[0]
    st = ops.state(chi, np.zeros_like(chi), Y)
    rep = {key: np.repeat(val, k, axis=1) for key, val in st.items() if val.ndim == 2}
    Wd = np.asarray(W.toarray() if hasattr(W, "toarray") else W, dtype=float)
    Wu = np.repeat(st["s_u"], k, axis=1) * np.tile(Wd.T, (1, m))  # column (j, a): w_a ∘ s_j
    Q = ops.Lt(Wu)
    C, _ = _pcg(ops, rep, Q, rtol, exact=False)
    return np.sum(Q * C, axis=0).reshape(m, k)


def importance_samples(
    ops: Objectives,
    chi_star: np.ndarray,
    y: np.ndarray,
    n: int,
    rng: np.random.Generator,
    temper: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Laplace-proposal importance samples of one objective (see the module docstring).

    Parameters
    ----------
    ops : Objectives
        Its preconditioner's linearisation defines the proposal covariance A₀.
    chi_star : numpy.ndarray
        (sqrt_dim,) the mode (centre of the proposal).
    y : numpy.ndarray
        (n_obs,) the data [ppm].
    n : int
        Number of samples.
    rng : numpy.random.Generator
    temper : float
        c ≥ 1: the proposal's data weight is 1/c (its S₀ must then be ``J₀ B J₀ᵀ + c R``):
        wider than the Laplace in the directions the data inform, for skewed posteriors.

    Returns
    -------
    U : numpy.ndarray
        (n_state, n) the samples of u.
    weights : numpy.ndarray
        (n,) self-normalised importance weights (sum 1).
    """
    pr = ops.pr
    xi = rng.standard_normal((pr.B.sqrt_dim, n))
    e = np.sqrt(temper) * np.asarray(pr.R.sqrt_matvec(rng.standard_normal((pr.R.sqrt_dim, n))))
    G = xi + ops.Lt(ops.s_pre * pr.Ht_matmat(pr.r_inv(e))) / temper
    delta = ops.precondition(G)
    chi = chi_star[:, None] + delta
    JLd = pr.H_matmat(ops.s_pre * ops.L(delta))
    log_q = -0.5 * (np.sum(delta**2, axis=0) + np.sum(JLd * pr.r_inv(JLd), axis=0) / temper)
    Y = np.repeat(y[:, None], n, axis=1)
    log_p = -ops.cost(chi, np.zeros_like(chi), Y)
    lw = log_p - log_q
    lw = np.where(np.isfinite(lw), lw, -np.inf)
    w = np.exp(lw - lw.max())
    return pr.u_prior[:, None] + ops.L(chi), w / w.sum()


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles ``q`` of the columns of ``values`` (n, k) under sample ``weights`` (n,)
    (interpolated in the weighted empirical distribution, mid-point rule)."""
    order = np.argsort(values, axis=0)
    v = np.take_along_axis(values, order, axis=0)
    w = weights[order]
    c = np.cumsum(w, axis=0) - 0.5 * w
    return np.array(
        [[np.interp(qq, c[:, j], v[:, j]) for j in range(v.shape[1])] for qq in np.atleast_1d(q)]
    )
