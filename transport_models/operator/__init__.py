"""Assembly of the observation operator H from footprints, row operators and background blocks.

``H`` is a ``scipy.sparse.csr_array`` (obs × state) in ppm per (µmol m-2 s-1) for the flux
block (sector, time, y, x), with extra blocks for background parameters.
"""

from ._assemble import DEFAULT_THRESHOLD, AssemblyReport, ReceptorOperator, assemble_receptors
from ._background import add_block, boundary_block, boundary_operator, offset_block
from ._match import FootprintOperator, ObservationMatch, assemble_h, match_observations
from ._regrid import ConservativeRegridder, conservative_regridder
from ._rows import (
    apply_rows,
    column_operator,
    column_prior_term,
    column_weights,
    ipda_operator,
    ipda_weights,
    length_weights,
    lidar_chord_operator,
    lidar_profile_operator,
    zero_rows,
)
from ._sampling import (
    ReceptorSamples,
    SamplingOptions,
    sample_receptors,
    write_receptor_table,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "AssemblyReport",
    "ConservativeRegridder",
    "FootprintOperator",
    "ObservationMatch",
    "ReceptorOperator",
    "ReceptorSamples",
    "SamplingOptions",
    "add_block",
    "apply_rows",
    "assemble_h",
    "assemble_receptors",
    "boundary_block",
    "boundary_operator",
    "column_operator",
    "column_prior_term",
    "column_weights",
    "conservative_regridder",
    "ipda_operator",
    "ipda_weights",
    "length_weights",
    "lidar_chord_operator",
    "lidar_profile_operator",
    "match_observations",
    "offset_block",
    "sample_receptors",
    "write_receptor_table",
    "zero_rows",
]
