"""Stages of a real-data run, each a small function taking the part of the configuration it
needs: observations (:func:`read_observations`, :func:`remove_background`,
:func:`observation_covariance`), transport (:func:`plume_flux_operator`,
:func:`footprint_operator`, :func:`with_offsets`), prior (:func:`build_grid`,
:func:`prior_flux`, :func:`prior_std`, :func:`prior_covariance`) and totals
(:func:`region_fractions`, :func:`aggregation_rows`, :func:`totals_table`)."""

from cityflux.stages._obs import (
    append_qc,
    apply_error_settings,
    error_budget,
    error_quadratic_forms,
    input_checksums,
    observation_covariance,
    qc_summary,
    read_observations,
    remove_background,
)
from cityflux.stages._prior import build_grid, prior_covariance, prior_flux, prior_std
from cityflux.stages._totals import aggregation_rows, region_fractions, totals_table
from cityflux.stages._transport import (
    OFFSET_BLOCK,
    footprint_operator,
    load_met,
    offset_labels,
    plume_flux_operator,
    with_offsets,
)

__all__ = [
    "OFFSET_BLOCK",
    "aggregation_rows",
    "append_qc",
    "apply_error_settings",
    "build_grid",
    "error_budget",
    "error_quadratic_forms",
    "footprint_operator",
    "input_checksums",
    "load_met",
    "observation_covariance",
    "offset_labels",
    "plume_flux_operator",
    "prior_covariance",
    "prior_flux",
    "prior_std",
    "qc_summary",
    "read_observations",
    "region_fractions",
    "remove_background",
    "totals_table",
    "with_offsets",
]
