"""Correlation between the state's time steps."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from inversion.covariance._base import check_finite_array
from inversion.covariance._correlation import check_kind, check_length, correlation_function
from inversion.covariance._simple import DenseCovariance
from inversion.errors import ShapeMismatchError

__all__ = ["TemporalCorrelation"]


class TemporalCorrelation(DenseCovariance):
    """Correlation between state time steps, an explicit small (nt, nt) matrix.

    C_t[i, j] = ρ(|t_i - t_j| / τ), exponential exp(-|Δt|/τ) by default. Give either the step
    centres ``times_hours`` or ``nt`` and ``step_hours`` (equally spaced steps).

    The exponential kernel on equally spaced steps is Markov: C_t[i, j] = r^|i−j| with
    r = exp(−Δt/τ) (:attr:`markov_rho`), whose inverse is tridiagonal. Kronecker priors then
    apply C_t and its Cholesky factor by O(nt) recursions instead of (nt, nt) products.

    Parameters
    ----------
    tau_hours : float
        Correlation time τ [h], > 0.
    nt : int, optional
        Number of equally spaced steps.
    step_hours : float, optional
        Step length [h] (with ``nt``).
    times_hours : array_like, optional
        Step centres [h], strictly increasing (instead of ``nt``/``step_hours``).
    kind : {"exponential", "gaussian", "matern32"}
        Correlation function of the lag.

    Raises
    ------
    ValueError
        (subclasses) for inconsistent or invalid arguments.
    """

    def __init__(
        self,
        tau_hours: float,
        *,
        nt: int | None = None,
        step_hours: float | None = None,
        times_hours: ArrayLike | None = None,
        kind: str = "exponential",
    ) -> None:
        tau = check_length(tau_hours, "tau_hours", "h")
        check_kind(kind)
        if times_hours is not None:
            if nt is not None or step_hours is not None:
                raise ValueError("give either times_hours, or nt and step_hours, not both")
            t = np.asarray(times_hours, dtype=np.float64)
            if t.ndim != 1 or t.size == 0:
                raise ShapeMismatchError(
                    f"times_hours must be a non-empty 1-D array [h]; found shape {t.shape}"
                )
            check_finite_array(t, "times_hours")
            if np.any(np.diff(t) <= 0):
                i = int(np.flatnonzero(np.diff(t) <= 0)[0])
                raise ValueError(
                    f"times_hours must be strictly increasing; found {float(t[i])!r} then "
                    f"{float(t[i + 1])!r} at index {i + 1}"
                )
        else:
            if nt is None or step_hours is None:
                raise ValueError("give times_hours, or both nt and step_hours")
            if int(nt) != nt or nt < 1:
                raise ShapeMismatchError(f"nt must be a positive integer; found {nt!r}")
            step = check_length(step_hours, "step_hours", "h")
            t = np.arange(int(nt)) * step
        self.tau_hours = tau
        self.times_hours = t
        self.kind = kind
        steps = np.diff(t)
        regular = steps.size == 0 or bool(np.all(np.abs(steps - steps[0]) <= 1e-12 * steps[0]))
        #: r = exp(−Δt/τ) when C_t[i, j] = r^|i−j| (exponential kernel, equal steps), else None.
        self.markov_rho: float | None = None
        if kind == "exponential" and regular:
            self.markov_rho = float(np.exp(-steps[0] / tau)) if steps.size else 0.0
        super().__init__(
            correlation_function(t[:, None] - t[None, :], tau, kind), name="temporal correlation"
        )
