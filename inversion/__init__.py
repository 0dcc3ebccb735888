"""cityflux inversion core: state space, covariance operators, solvers and posterior products."""

from .errors import (
    ConvergenceError,
    NonFiniteError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)
from .grid import Grid, GridMismatchError
from .state import FLUX_UNITS, StateBlock, StateVector, TimeAxis

__all__ = [
    "FLUX_UNITS",
    "ConvergenceError",
    "Grid",
    "GridMismatchError",
    "NonFiniteError",
    "NotPositiveDefiniteError",
    "ShapeMismatchError",
    "StateBlock",
    "StateVector",
    "TimeAxis",
]
