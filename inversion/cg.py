"""Matrix-free solver in the whitened control variable: Lanczos-CG and batched PCG.

With ``x = x_a + L χ``, ``L Lᵀ = B`` (``B.sqrt_matvec``; L is n_state × sqrt_dim), the
posterior mean minimises

    J(χ) = ½ χᵀχ + ½ (H L χ − d)ᵀ R⁻¹ (H L χ − d),     d = y − H x_a,

whose Hessian is ``I + K`` with ``K = Lᵀ Hᵀ R⁻¹ H L`` (sqrt_dim × sqrt_dim, rank ≤ n_obs).

Mean and spectrum
    Conjugate gradients on ``(I + K) χ = b``, ``b = Lᵀ Hᵀ R⁻¹ d``, run as its equivalent
    Lanczos process with full reorthogonalisation (CG–Lanczos equivalence: the CG iterate after
    j steps is ``χ_j = V_j (I + T_j)⁻¹ ‖b‖ e₁`` and its residual norm is ``β_j |e_jᵀ s_j|``).
    Every Krylov vector of ``K`` started from ``b`` lies in ``range(Lᵀ Hᵀ)``, so each one is
    stored by its observation-space coordinates z (``v = Lᵀ Hᵀ z``, n_obs numbers instead of
    sqrt_dim); inner products are ``⟨v, v'⟩ = zᵀ (H B Hᵀ) z'`` and ``K v = Lᵀ Hᵀ (R⁻¹ H B Hᵀ z)``.
    One ``H B Hᵀ`` product per iteration; the Ritz pairs (θ_i, v_i) of T_j are the leading
    eigenpairs of K used for the low-rank posterior covariance and the DOFS estimate.
Complete spectrum (``rank="full"``)
    The nonzero eigenvalues of K are those of the pencil ``(M, R)`` with ``M = H B Hᵀ``
    (``M z = θ R z`` gives ``K v = θ v`` for ``v = Lᵀ Hᵀ z``). When n_obs < sqrt_dim and M fits
    in memory, :func:`inversion.cg_spectrum.obs_space_spectrum` forms M by batched
    products (columns of ``B Hᵀ`` in observation chunks) and solves the pencil with LAPACK:
    all n_obs eigenpairs, exact to rounding, at the cost of n_obs batched products instead of
    n_obs sequential Lanczos steps.
Other right-hand sides (aggregates, randomize-then-optimize samples)
    :func:`batched_pcg`: preconditioned CG on many columns, each with its own step lengths,
    all sharing one batched product per iteration; the solves themselves (preconditioners,
    certified quadratic forms, samples) are in :mod:`inversion.cg_solver`.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from inversion.errors import ConvergenceError, MemoryBudgetError, NotPositiveDefiniteError
from inversion.problem import LinearProblem, _check_output

__all__ = [
    "CGOptions",
    "LanczosResult",
    "WhitenedSystem",
    "batched_pcg",
    "check_convergence",
    "lanczos_cg",
]

logger = logging.getLogger(__name__)

#: Seconds between progress lines of a running solve (INFO; ``cityflux -v`` shows them).
PROGRESS_SECONDS = 10.0


class _Progress:
    """Logs a running solve's state at INFO at most every :data:`PROGRESS_SECONDS`, so a
    long solve (minutes at the regional size) shows that it advances and how fast."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.t0 = self.last = time.perf_counter()

    def tick(self, it: int, error: float, tol: float, left: int = -1, total: int = 0) -> None:
        """One line if due: iteration, error against ``tol``, and ``left`` of ``total``
        columns still running (batched solves; ``left < 0``: not shown)."""
        now = time.perf_counter()
        if now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        cols = f", {left}/{total} columns left" if left >= 0 else ""
        logger.info(
            "%s: iteration %d, error %.2e (target %.1e)%s, %.0f s",
            self.what, it, error, tol, cols, now - self.t0,
        )  # fmt: skip


STD_MODES = ("low-rank", "low-rank+sampled", "sampled", "local")
# Lanczos stops when β_j ≤ this × (|α_j| + β_{j−1}): the Krylov space is invariant.
_EXHAUSTED_RTOL = 1e-10


@dataclass(frozen=True)
class CGOptions:
    """Settings of the ``cg`` solver.

    Parameters
    ----------
    tol : float
        Relative residual ``‖b − (I+K) χ‖ / ‖b‖`` at which every CG solve stops [1], and the
        certified relative error of aggregate variances unless ``aggregate_tol`` is given.
    aggregate_tol : float, optional
        Certified relative error of the aggregate variances [1] (the std then to half of
        it): their solves stop when the certificate (an upper bound of the actual error)
        reaches it. E.g. 1e-6 certifies the std of a total to 5e-7 in fewer iterations than
        the default ``tol``.
    maxiter : int, optional
        Iteration cap of every solve; default ``min(n_obs + 1, 2000)`` for the mean (Krylov
        space of K has dimension ≤ n_obs) and ``max(100, that)`` for the batched solves.
    rank : int, "auto" or "full", optional
        Pairs behind the low-rank covariance. An int is the least number of Lanczos steps
        (Ritz pairs); the process continues past the convergence of the mean until it has
        them (0: stop at convergence). ``"full"`` (or an int ≥ n_obs) asks for the complete
        spectrum: K has rank ≤ n_obs, so the low-rank std is then exact. With the
        observation-space basis (n_obs < sqrt_dim) it is computed from ``H B Hᵀ`` formed by
        batched products and one generalised eigendecomposition (about 4 · n_obs² · 8 bytes,
        checked against the budget) instead of n_obs sequential Lanczos steps. ``"auto"``
        (default) stops Lanczos at convergence and computes the complete spectrum when the
        std map is first asked for, if it fits the memory budget; otherwise the map uses the
        Ritz pairs of the mean's run (an upper bound) and a warning says so.
    allow_nonconvergence : bool
        If True, a solve that misses ``tol`` within ``maxiter`` warns (RuntimeWarning) and
        records its residual in ``post.info`` instead of raising ConvergenceError.
    std : {"low-rank", "low-rank+sampled", "sampled", "local"}
        How ``post.std`` is computed: the Ritz-pair low-rank map (an upper bound, exact with
        the full spectrum), the low-rank map plus a Monte-Carlo estimate of the variance
        reduction it misses (unbiased, with a stated standard error; observation-space
        Lanczos only), randomize-then-optimize samples, or local windows
        (:meth:`CGPosterior.local_std`: the exact std given the observations near each tile,
        an upper bound, checked against certified solves at ``local_check`` cells; for
        10⁵ observations and more, where no spectrum fits).
    n_samples : int
        Number of samples for ``std="sampled"`` and ``std="low-rank+sampled"``.
    sample_tol : float
        Relative residual of the solves behind the samples of ``std="low-rank+sampled"``
        [1]. Their error is far below the Monte-Carlo error: against 1e-10, the default moves
        the corrected map by less than 1 % of its stated standard error (a test checks it).
    seed : int, optional
        Seed of the samples.
    precondition : bool
        Use the Ritz-pair spectral preconditioner in the batched solves.
    batch : int
        Most right-hand sides solved together (memory: about 6 · sqrt_dim · batch · 8 bytes),
        and the block size of the block Lanczos behind ``std_pairs``.
    std_pairs : int, optional
        Where the complete spectrum is not computed (it does not fit, or ``rank`` is an int),
        the std map (``std="low-rank"`` or ``"low-rank+sampled"``) uses this many pairs from
        a randomized block Lanczos run (batched products, :func:`inversion.cg_spectrum.
        block_lanczos_spectrum`) instead of the Ritz pairs of the mean's run. None (default):
        the mean's Ritz pairs.
    local_halo : (int, int), optional
        Window halo of ``std="local"`` in grid cells and time steps beyond each tile; None
        (default): three spatial correlation lengths and one temporal e-folding time
        (:func:`inversion.local_std.auto_halo`).
    local_tile : (int, int)
        Tile of ``std="local"`` in grid cells (y and x) and time steps, solved from one window.
    local_check : int
        Grid cells at which ``std="local"`` is compared with the exact std by certified
        solves; their excess is recorded in ``post.info["local_check"]`` and (median, max)
        in ``std_method``, and warned about above 5 %. A sample: the map's largest excess
        over all cells can be higher.
    fft_precision : {"auto", "double"}
        ``"auto"``: products that feed an approximate result whose tolerance is far above
        the single-precision error (relative ~1e-7) use single-precision FFTs
        (:meth:`CovarianceOperator.with_precision`, about twice as fast): the block Lanczos
        pairs of ``std_pairs``, the low-rank map from pairs other than the complete
        spectrum, the Monte-Carlo terms of ``std="low-rank+sampled"``, and
        the first pass of the aggregate solves, whose certificate is then recomputed and
        reached in double precision. The mean, the complete spectrum and the RTO samples
        use double. ``"double"``: every product in double precision.
    """

    tol: float = 1e-8
    aggregate_tol: float | None = None
    maxiter: int | None = None
    rank: int | str = "auto"
    allow_nonconvergence: bool = False
    std: str = "low-rank"
    n_samples: int = 100
    sample_tol: float = 1e-4
    seed: int | None = 0
    precondition: bool = True
    batch: int = 16
    std_pairs: int | None = None
    local_halo: tuple[int, int] | None = None
    local_tile: tuple[int, int] = (20, 6)
    local_check: int = 16
    fft_precision: str = "auto"

    def __post_init__(self) -> None:
        if not (0 < self.tol < 1):
            raise ValueError(f"CGOptions.tol must be in (0, 1); found {self.tol!r}")
        if self.aggregate_tol is not None and not (0 < self.aggregate_tol < 1):
            raise ValueError(
                f"CGOptions.aggregate_tol must be None or in (0, 1); found {self.aggregate_tol!r}"
            )
        if self.maxiter is not None and self.maxiter < 1:
            raise ValueError(f"CGOptions.maxiter must be >= 1; found {self.maxiter!r}")
        if self.rank not in ("full", "auto") and (
            isinstance(self.rank, (bool, str)) or not isinstance(self.rank, (int, np.integer))
            or self.rank < 0
        ):  # fmt: skip
            raise ValueError(
                f"CGOptions.rank must be an int >= 0, 'auto' or 'full'; found {self.rank!r}"
            )
        if self.std not in STD_MODES:
            raise ValueError(f"CGOptions.std must be one of {STD_MODES}; found {self.std!r}")
        if not (0 < self.sample_tol < 1):
            raise ValueError(f"CGOptions.sample_tol must be in (0, 1); found {self.sample_tol!r}")
        if self.n_samples < 2:
            raise ValueError(f"CGOptions.n_samples must be >= 2; found {self.n_samples!r}")
        if self.batch < 1:
            raise ValueError(f"CGOptions.batch must be >= 1; found {self.batch!r}")
        if self.std_pairs is not None and (
            isinstance(self.std_pairs, bool) or not isinstance(self.std_pairs, (int, np.integer))
            or self.std_pairs < 1
        ):  # fmt: skip
            raise ValueError(
                f"CGOptions.std_pairs must be None or an int >= 1; found {self.std_pairs!r}"
            )
        for name, pair, least in (("local_halo", self.local_halo, 0),
                                  ("local_tile", self.local_tile, 1)):  # fmt: skip
            if pair is None and name == "local_halo":
                continue
            if (
                not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                           and v >= least for v in pair)
            ):  # fmt: skip
                raise ValueError(
                    f"CGOptions.{name} must be two ints >= {least} (grid cells, time steps); "
                    f"found {pair!r}"
                )
        if isinstance(self.local_check, bool) or not isinstance(
            self.local_check, (int, np.integer)
        ) or self.local_check < 0:  # fmt: skip
            raise ValueError(
                f"CGOptions.local_check must be an int >= 0; found {self.local_check!r}"
            )
        if self.fft_precision not in ("auto", "double"):
            raise ValueError(
                f"CGOptions.fft_precision must be 'auto' or 'double'; found {self.fft_precision!r}"
            )


class WhitenedSystem:
    """Products of the whitened problem: L, Lᵀ, H, Hᵀ, R⁻¹, ``M = H B Hᵀ`` and ``I + K``.

    Parameters
    ----------
    problem : LinearProblem
        The problem.
    B : CovarianceOperator, optional
        The prior covariance for the products (e.g. its single-precision twin,
        :meth:`~inversion.covariance.CovarianceOperator.with_precision`); default
        ``problem.B``.

    Raises
    ------
    TypeError
        If ``B`` has no square root (``sqrt_matvec``/``sqrt_rmatvec``/``sqrt_dim``) or ``R``
        has no ``inv_matvec``.
    """

    def __init__(self, problem: LinearProblem, B: Any = None) -> None:
        B = problem.B if B is None else B
        R = problem.R
        missing = [a for a in ("sqrt_matvec", "sqrt_rmatvec", "sqrt_dim") if not hasattr(B, a)]
        if missing:
            raise TypeError(
                f"the 'cg' solver needs B = L Lᵀ with {', '.join(missing)}; B is "
                f"{type(B).__name__}. Give B as an inversion.covariance operator (e.g. "
                f"KroneckerCovariance, DenseCovariance) or use method='obs-space'"
            )
        if not hasattr(R, "inv_matvec"):
            raise TypeError(
                f"the 'cg' solver needs R⁻¹ products (R.inv_matvec); R is {type(R).__name__}. "
                f"Give R as a DiagonalCovariance, DenseCovariance or BlockDiagonalCovariance, or "
                f"use method='obs-space'"
            )
        self.problem = problem
        self.B = B
        self.q = int(B.sqrt_dim)
        self.n_matvec = 0  # Hessian-equivalent products (H and Hᵀ pairs), for reports

    def L(self, W: np.ndarray) -> np.ndarray:
        return np.asarray(self.B.sqrt_matvec(W), dtype=np.float64)

    def Lt(self, V: np.ndarray) -> np.ndarray:
        return np.asarray(self.B.sqrt_rmatvec(V), dtype=np.float64)

    def H(self, X: np.ndarray) -> np.ndarray:
        return self.problem.H_matmat(X)

    def Ht(self, V: np.ndarray) -> np.ndarray:
        return self.problem.Ht_matmat(V)

    def Rinv(self, V: np.ndarray) -> np.ndarray:
        return np.asarray(self.problem.R.inv_matvec(V), dtype=np.float64)

    def BX(self, X: np.ndarray) -> np.ndarray:
        """``B X`` (n_state,) or (n_state, k) with this system's B (perhaps single-precision)."""
        return np.asarray(self.B.matmat(X) if X.ndim == 2 else self.B.matvec(X), np.float64)

    def M(self, Z: np.ndarray) -> np.ndarray:
        """``H B Hᵀ Z`` (n_obs,) or (n_obs, k)."""
        self.n_matvec += 1 if Z.ndim == 1 else Z.shape[1]
        return self.H(self.BX(self.Ht(Z)))

    def hessian(self, X: np.ndarray) -> np.ndarray:
        """``(I + K) X`` for X (q, m)."""
        self.n_matvec += X.shape[1]
        out = self.Lt(self.Ht(self.Rinv(self.H(self.L(X)))))
        out += X
        return out


@dataclass
class LanczosResult:
    """Outcome of :func:`lanczos_cg`."""

    chi_coef: np.ndarray  # coordinates of the CG solution (χ = Lᵀ Hᵀ z, or χ itself)
    ritz_values: np.ndarray  # θ (k,), descending
    ritz_z: np.ndarray  # (dim, k) coordinates of the orthonormal Ritz vectors
    residuals: list[float]
    iterations: int
    converged: bool
    bt_chi: float  # bᵀ χ
    d_rinv_d: float  # dᵀ R⁻¹ d
    space: str  # "obs": z-coordinates (v = Lᵀ Hᵀ z); "chi": v itself
    ritz_mz: np.ndarray | None = None  # (n_obs, k) M z_i = H L v_i of the Ritz vectors ("obs")
    complete: bool = False  # the Ritz pairs are the complete spectrum of K (exact)

    def L_of(self, system: WhitenedSystem, C: np.ndarray) -> np.ndarray:
        """``L v`` for vectors given by coordinates C (dim, m): ``B Hᵀ C`` or ``L C``, with
        the products of ``system`` (its B may be the single-precision twin)."""
        if self.space == "obs":
            return system.BX(system.Ht(C))
        return system.L(C)

    def chi_of(self, system: WhitenedSystem, C: np.ndarray) -> np.ndarray:
        """``v`` (sqrt_dim, m) for coordinates C: ``Lᵀ Hᵀ C`` or C."""
        return system.Lt(system.Ht(C)) if self.space == "obs" else C

    def coords_dot(self, system: WhitenedSystem, C: np.ndarray, X: np.ndarray) -> np.ndarray:
        """``Vᵀ X`` for V given by coordinates C (dim, k) and X (sqrt_dim, m)."""
        if self.space == "obs":
            return C.T @ system.H(system.L(X))
        return C.T @ X


def check_convergence(
    residual: float,
    tol: float,
    iterations: int,
    what: str,
    allow: bool,
    measure: str = "relative residual",
) -> bool:
    """Raise ConvergenceError (or warn if ``allow``) when ``residual > tol``; True if converged."""
    if residual <= tol:
        return True
    msg = (
        f"{what}: CG did not converge in {iterations} iterations: {measure} "
        f"{residual:.3e} > tol={tol:.1e}; raise CGOptions.maxiter, loosen CGOptions.tol, or "
        f"check that B and R are well scaled"
    )
    if not allow:
        raise ConvergenceError(msg)
    warnings.warn(msg + " (allow_nonconvergence=True: result kept)", RuntimeWarning, stacklevel=3)
    return False


def lanczos_cg(
    system: WhitenedSystem,
    d: np.ndarray,
    tol: float,
    maxiter: int,
    rank: int,
    memory_budget: float,
    allow_nonconvergence: bool,
) -> LanczosResult:
    """CG for ``(I + K) χ = Lᵀ Hᵀ R⁻¹ d`` as Lanczos with full reorthogonalisation.

    Stops when the relative residual is ≤ ``tol`` and at least ``rank`` steps are made, when
    the Krylov space is exhausted (β ≈ 0), or at ``maxiter`` (ConvergenceError unless
    ``allow_nonconvergence``).
    """
    n_obs = d.size
    maxiter = int(min(maxiter, n_obs + 1, system.q + 1))
    g = system.Rinv(d)
    d_rinv_d = float(d @ g)
    # Krylov vectors by their obs-space coordinates z (v = Lᵀ Hᵀ z, metric M = H B Hᵀ) when
    # n_obs < sqrt_dim, else directly in χ (metric I): the smaller of the two is stored.
    space = "obs" if n_obs < system.q else "chi"
    if space == "obs":
        Mg = system.M(g)
        beta0_sq = float(g @ Mg)
    else:
        g = system.Lt(system.Ht(g))
        Mg = g
        beta0_sq = float(g @ g)
    dim = g.size
    if beta0_sq <= 0.0:  # d ⟂ range(H L): the mean is the prior
        return LanczosResult(np.zeros(dim), np.zeros(0), np.zeros((dim, 0)), [0.0], 0, True,
                             0.0, d_rinv_d, space, np.zeros((dim, 0)))  # fmt: skip
    need = 8.0 * (1 if space == "chi" else 2) * (maxiter + 1) * dim
    if need > memory_budget:
        raise MemoryBudgetError(
            f"the Lanczos basis ({maxiter + 1} vectors of {dim} in {space}-space coordinates) "
            f"needs {need / 2**20:.1f} MiB, more than memory_budget="
            f"{memory_budget / 2**20:.1f} MiB; lower CGOptions.maxiter or raise memory_budget"
        )
    beta0 = np.sqrt(beta0_sq)
    Z = np.zeros((maxiter + 1, dim))
    MZ = np.zeros((maxiter + 1, dim)) if space == "obs" else Z
    Z[0] = g / beta0
    if space == "obs":
        MZ[0] = Mg / beta0
    alphas: list[float] = []
    betas: list[float] = []
    residuals = [1.0]
    progress = _Progress("posterior mean (Lanczos-CG)")
    s = np.zeros(0)
    j = 0
    exhausted = False
    for j in range(1, maxiter + 1):
        if space == "obs":
            t = system.Rinv(MZ[j - 1])
        else:
            t = system.hessian(Z[j - 1][:, None])[:, 0] - Z[j - 1]
        alphas.append(float(MZ[j - 1] @ t))
        scale = abs(alphas[-1]) + (betas[-1] if betas else 0.0)  # ~ ‖T‖ locally
        for _ in range(2):  # full reorthogonalisation in the M inner product, twice
            t -= (MZ[:j] @ t) @ Z[:j]
        Mt = system.M(t) if space == "obs" else t  # exact: the stored M Z never drifts
        beta_sq = float(t @ Mt)
        beta = np.sqrt(max(beta_sq, 0.0))
        exhausted = beta <= _EXHAUSTED_RTOL * scale  # Krylov space invariant (dim ≤ n_obs)
        try:
            s_new = _tridiag_solve(np.asarray(alphas), np.asarray(betas), beta0)
        except np.linalg.LinAlgError:
            # T lost definiteness: the basis is rank-deficient to working precision (its last
            # vector has ~zero M-norm), i.e. the Krylov space is exhausted. Keep j - 1 steps.
            alphas.pop()
            if not alphas:
                raise NotPositiveDefiniteError(
                    "Lanczos-CG: the first Lanczos step is not positive definite; check that "
                    "B and R are positive definite"
                ) from None
            logger.warning(
                "Lanczos-CG: basis numerically exhausted after %d steps (tridiagonal matrix "
                "lost definiteness); stopping there", len(alphas),
            )  # fmt: skip
            exhausted = True
            break
        s = s_new
        res = beta * abs(s[-1]) / beta0
        residuals.append(res)
        progress.tick(j, res, tol)
        if exhausted or (res <= tol and j >= rank) or j == maxiter:
            break
        betas.append(beta)
        Z[j] = t / beta
        if space == "obs":
            MZ[j] = Mt / beta
    k = len(alphas)
    converged = check_convergence(
        residuals[-1], tol, k, "posterior mean (Lanczos-CG)", allow_nonconvergence
    )
    theta, Y = scipy.linalg.eigh_tridiagonal(np.asarray(alphas), np.asarray(betas[: k - 1]))
    order = np.argsort(theta)[::-1]
    theta, Y = np.clip(theta[order], 0.0, None), Y[:, order]
    logger.info(
        "Lanczos-CG: %d iterations, relative residual %.2e (tol %.1e), θ_max=%.3g, θ_min=%.3g%s",
        k, residuals[-1], tol, theta[0], theta[-1], " (Krylov space exhausted)" if exhausted else "",
    )  # fmt: skip
    Zk = Z[:k]
    return LanczosResult(
        chi_coef=Zk.T @ s,
        ritz_values=theta,
        ritz_z=Zk.T @ Y,
        residuals=residuals,
        iterations=k,
        converged=converged,
        bt_chi=float(beta0 * s[0]),
        d_rinv_d=d_rinv_d,
        space=space,
        ritz_mz=MZ[:k].T @ Y if space == "obs" else None,
    )


def _tridiag_solve(alphas: np.ndarray, betas: np.ndarray, beta0: float) -> np.ndarray:
    """Solve ``(I + T) s = β₀ e₁`` with T = tridiag(betas, alphas, betas) (SPD)."""
    m = alphas.size
    if m == 1:
        return np.array([beta0 / (1.0 + alphas[0])])
    ab = np.zeros((2, m))
    ab[0, 1:] = betas[: m - 1]
    ab[1] = 1.0 + alphas
    rhs = np.zeros(m)
    rhs[0] = beta0
    return scipy.linalg.solveh_banded(ab, rhs, check_finite=False)


def batched_pcg(
    apply_A: Any,
    rhs: np.ndarray,
    tol: float,
    maxiter: int,
    precond: Any = None,
    what: str = "batched solve",
    allow_nonconvergence: bool = False,
    measure: Any = None,
    check: bool = True,
) -> tuple[np.ndarray, dict]:
    """Preconditioned CG on m independent right-hand sides with shared (batched) products.

    Parameters
    ----------
    apply_A : callable
        ``(q, m') -> (q, m')`` SPD product.
    rhs : numpy.ndarray
        (q, m) right-hand sides.
    tol, maxiter : float, int
        Relative residual per column and iteration cap.
    precond : callable, optional
        ``(q, m') -> (q, m')`` SPD preconditioner (inverse approximation).
    measure : callable, optional
        ``measure(X_cols, R_cols, idx) -> (m',)``: the per-column error compared with ``tol``
        in place of the relative residual ``‖r‖/‖b‖`` (e.g. a certified bound on the error
        of a quadratic form, as :meth:`inversion.cg_solver.CGSolver.certified_forms` uses).
    check : bool
        Raise ConvergenceError (or warn) when the final measure exceeds ``tol``; False
        leaves it to the caller (``info["converged"]`` says).

    Returns
    -------
    X : numpy.ndarray
        (q, m) solutions.
    info : dict
        ``iterations``, ``residuals`` (max error measure over the columns, per iteration: the
        relative residual unless ``measure`` is given), ``converged``, ``final``.
    """
    q, m = rhs.shape
    X = np.zeros((q, m))
    bnorm = np.linalg.norm(rhs, axis=0)
    active = bnorm > 0
    Rm = rhs.copy()
    Zm = precond(Rm) if precond is not None else Rm.copy()
    P = Zm.copy()
    rz = np.einsum("ij,ij->j", Rm, Zm)
    safe = np.where(active, bnorm, 1.0)
    progress = _Progress(what)
    history = [float(np.max(np.where(active, 1.0, 0.0))) if m else 0.0]
    it = 0
    for it in range(1, maxiter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            it -= 1
            break
        AP = apply_A(np.ascontiguousarray(P[:, idx]))
        alpha = rz[idx] / np.einsum("ij,ij->j", P[:, idx], AP)
        X[:, idx] += P[:, idx] * alpha
        Rm[:, idx] -= AP * alpha
        rel = np.zeros(m)
        if measure is None:
            rel[idx] = np.linalg.norm(Rm[:, idx], axis=0) / safe[idx]
        else:
            rel[idx] = measure(X[:, idx], Rm[:, idx], idx)
        history.append(float(np.max(rel[idx])))
        active = active & (rel > tol)
        progress.tick(it, history[-1], tol, int(np.count_nonzero(active)), m)
        if not active.any():
            break
        idx = np.flatnonzero(active)
        Zi = precond(np.ascontiguousarray(Rm[:, idx])) if precond is not None else Rm[:, idx]
        rz_new = np.einsum("ij,ij->j", Rm[:, idx], Zi)
        P[:, idx] = Zi + P[:, idx] * (rz_new / rz[idx])
        rz[idx] = rz_new
    if not m:
        final = 0.0
    elif measure is None:
        final = float(np.max(np.linalg.norm(Rm, axis=0) / safe))
    else:
        final = float(np.max(np.where(bnorm > 0, measure(X, Rm, np.arange(m)), 0.0)))
    if check:
        converged = check_convergence(
            final, tol, it, what, allow_nonconvergence, "relative residual" if measure is None
            else "relative error bound"
        )  # fmt: skip
    else:
        converged = final <= tol
    _check_output(X, what)
    return X, {"iterations": it, "residuals": history, "converged": converged, "final": final}
