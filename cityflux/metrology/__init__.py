"""What a metrology centre signs: the GUM uncertainty budget of the totals, inventory
verification (ISO 13528 scores), calibration-scale traceability, network design and the
self-contained run report."""

from cityflux.metrology._budget import (
    BUDGET_COLUMNS,
    COVERAGE_FACTOR,
    GUM_TYPES,
    Budget,
    coverage_interval,
    uncertainty_budget,
)
from cityflux.metrology._traceability import observation_scale_columns, scale_summary
from cityflux.metrology._verification import SCORE_COLUMNS, Verification, scores, verify_totals

__all__ = [
    "BUDGET_COLUMNS",
    "COVERAGE_FACTOR",
    "GUM_TYPES",
    "SCORE_COLUMNS",
    "Budget",
    "Verification",
    "coverage_interval",
    "observation_scale_columns",
    "scale_summary",
    "scores",
    "uncertainty_budget",
    "verify_totals",
]
