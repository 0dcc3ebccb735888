"""cityflux inversion core: state space, covariance operators, solvers and posterior products.

>>> from inversion import Grid, TimeAxis, StateVector, covariance
>>> from inversion import LinearProblem, solve, Posterior, CGOptions
"""

from . import covariance
from ._memory import retain_freed_memory
from .cg import CGOptions
from .errors import (
    ConvergenceError,
    MemoryBudgetError,
    NonFiniteError,
    NonPositiveVarianceError,
    NotPositiveDefiniteError,
    ShapeMismatchError,
)
from .grid import Grid, GridMismatchError
from .local_std import LocalStd, local_posterior_std
from .lognormal import LognormalPosterior, LognormalProblem, solve_lognormal
from .lowrank import CGPosterior
from .posterior import Posterior
from .problem import LinearProblem
from .solve import DEFAULT_MEMORY_BUDGET, METHODS, solve
from .state import FLUX_UNITS, StateBlock, StateVector, TimeAxis

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "FLUX_UNITS",
    "METHODS",
    "CGOptions",
    "CGPosterior",
    "ConvergenceError",
    "Grid",
    "GridMismatchError",
    "LinearProblem",
    "LocalStd",
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
    "local_posterior_std",
    "retain_freed_memory",
    "solve",
    "solve_lognormal",
]
