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
from cityflux.metrology._design import (
    CandidateRows,
    DesignResult,
    candidate_observations,
    candidate_rows,
    rank_candidates,
    run_design,
    target_row,
    write_design,
)
from cityflux.metrology._outputs import (
    metrology_diagnostics,
    observation_columns,
    write_budget,
    write_figures_and_report,
    write_verification,
)
from cityflux.metrology._report import build_report, write_report
from cityflux.metrology._traceability import observation_scale_columns, scale_summary
from cityflux.metrology._verification import SCORE_COLUMNS, Verification, scores, verify_totals

__all__ = [
    "BUDGET_COLUMNS",
    "COVERAGE_FACTOR",
    "GUM_TYPES",
    "SCORE_COLUMNS",
    "Budget",
    "CandidateRows",
    "DesignResult",
    "Verification",
    "build_report",
    "candidate_observations",
    "candidate_rows",
    "coverage_interval",
    "metrology_diagnostics",
    "observation_columns",
    "observation_scale_columns",
    "rank_candidates",
    "run_design",
    "scale_summary",
    "scores",
    "target_row",
    "uncertainty_budget",
    "verify_totals",
    "write_budget",
    "write_design",
    "write_figures_and_report",
    "write_report",
    "write_verification",
]
