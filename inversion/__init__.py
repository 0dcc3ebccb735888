"""cityflux inversion core: state space, covariance operators, solvers and posterior products.

>>> from inversion import Grid, TimeAxis, StateVector, covariance
>>> from inversion import LinearProblem, solve, Posterior
"""

from . import covariance
from .errors import (
    ConvergenceError,
    MemoryBudgetError,
    NonFiniteError,
    NonPositiveVarianceError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)
from .grid import Grid, GridMismatchError
from .lognormal import LognormalPosterior, LognormalProblem, solve_lognormal
from .posterior import Posterior
from .problem import LinearProblem
from .solve import METHODS, solve
from .state import FLUX_UNITS, StateBlock, StateVector, TimeAxis

__all__ = [
    "FLUX_UNITS",
    "METHODS",
    "ConvergenceError",
    "Grid",
    "GridMismatchError",
    "LinearProblem",
    "LognormalPosterior",
    "LognormalProblem",
    "MemoryBudgetError",
    "NonFiniteError",
    "NonPositiveVarianceError",
    "NotPositiveDefiniteError",
    "Posterior",
    "ShapeMismatchError",
    "StateBlock",
    "StateVector",
    "TimeAxis",
    "covariance",
    "solve",
    "solve_lognormal",
]
