"""Assembly of the observation operator H from footprints, row operators and background blocks.

``H`` is a ``scipy.sparse.csr_array`` (obs × state) in ppm per (µmol m-2 s-1) for the flux
block (sector, time, y, x), with extra blocks for background parameters.
"""

from ._assemble import DEFAULT_THRESHOLD, AssemblyReport, ReceptorOperator, assemble_receptors
from ._background import add_block, boundary_block, offset_block
from ._match import assemble_h, match_receptors
from ._regrid import ConservativeRegridder, conservative_regridder
from ._rows import (
    apply_rows,
    column_operator,
    ipda_operator,
    lidar_chord_operator,
    lidar_profile_operator,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "AssemblyReport",
    "ConservativeRegridder",
    "ReceptorOperator",
    "add_block",
    "apply_rows",
    "assemble_h",
    "assemble_receptors",
    "boundary_block",
    "column_operator",
    "conservative_regridder",
    "ipda_operator",
    "lidar_chord_operator",
    "lidar_profile_operator",
    "match_receptors",
    "offset_block",
]
