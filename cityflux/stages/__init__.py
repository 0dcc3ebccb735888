"""Stages of every run (real data and the synthetic city), each a small function taking the part of the configuration it
needs: observations (:func:`read_observations`, :func:`remove_background`,
:func:`observation_covariance`, :func:`attach_ensemble`), transport (:func:`transport_operator`,
:func:`drop_without_transport`, :func:`full_operator`), prior (:func:`build_grid`,
:func:`prior_flux`, :func:`prior_std`, :func:`prior_covariance`) and totals
(:func:`region_fractions`, :func:`aggregation_rows`, :func:`totals_table`)."""

from cityflux.stages._bias import BIAS_BLOCK, extra_prior_std, site_bias_block
from cityflux.stages._ensemble import (
    ENSEMBLE_VAR,
    add_to_covariance,
    attach_ensemble,
    ensemble_covariance,
)
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
    BOUNDARY_BLOCK,
    OFFSET_BLOCK,
    TransportResult,
    drop_without_transport,
    full_operator,
    load_met,
    offset_labels,
    transport_operator,
)

__all__ = [
    "BIAS_BLOCK",
    "BOUNDARY_BLOCK",
    "ENSEMBLE_VAR",
    "OFFSET_BLOCK",
    "TransportResult",
    "add_to_covariance",
    "aggregation_rows",
    "append_qc",
    "apply_error_settings",
    "attach_ensemble",
    "build_grid",
    "drop_without_transport",
    "ensemble_covariance",
    "error_budget",
    "error_quadratic_forms",
    "extra_prior_std",
    "full_operator",
    "input_checksums",
    "load_met",
    "observation_covariance",
    "offset_labels",
    "prior_covariance",
    "prior_flux",
    "prior_std",
    "qc_summary",
    "read_observations",
    "region_fractions",
    "remove_background",
    "site_bias_block",
    "totals_table",
    "transport_operator",
]
