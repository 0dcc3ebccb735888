"""Exceptions raised by the inversion core.

Every error subclasses the builtin that fits, so callers can catch ``ValueError`` without
knowing cityflux, and every message names the argument, what was expected and what was found.
"""

from __future__ import annotations

__all__ = [
    "ConvergenceError",
    "MemoryBudgetError",
    "NonFiniteError",
    "NonPositiveVarianceError",
    "NotPositiveDefiniteError",
    "ShapeMismatchError",
]


class ShapeMismatchError(ValueError):
    """An array or operator does not have the shape the problem requires."""


class NonFiniteError(ValueError):
    """An input holds NaN or infinite values, or a non-positive variance."""


class NotPositiveDefiniteError(ValueError):
    """A covariance (or the innovation covariance S = H B Hᵀ + R) is not positive definite."""


class ConvergenceError(RuntimeError):
    """An iterative solver did not reach its tolerance within the iteration cap."""


class NonPositiveVarianceError(NonFiniteError):
    """A covariance has a zero or negative variance on its diagonal."""


class MemoryBudgetError(MemoryError):
    """A requested product would need more memory than the solver's memory budget allows."""
