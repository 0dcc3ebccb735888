"""cityflux transport: footprint readers, the Gaussian plume model and observation-operator assembly.

Footprints are sensitivities in ppm per (µmol m-2 s-1), integrated over each layer (back-hour) and,
once assembled into H, over each state time step.
"""

from .footprints import (
    FOOTPRINT_UNITS,
    FootprintError,
    FootprintWarning,
    available_formats,
    inspect_footprint,
    read_boundary_sensitivity,
    read_footprint,
    register_footprint_reader,
    write_footprint,
)
from .operator import (
    AssemblyReport,
    ConservativeRegridder,
    ReceptorOperator,
    add_block,
    apply_rows,
    assemble_h,
    assemble_receptors,
    boundary_block,
    column_operator,
    conservative_regridder,
    ipda_operator,
    lidar_chord_operator,
    lidar_profile_operator,
    offset_block,
)
from .plume import PlumeMet, PlumeOptions, footprint, plume_operator

__all__ = [
    "FOOTPRINT_UNITS",
    "AssemblyReport",
    "ConservativeRegridder",
    "FootprintError",
    "FootprintWarning",
    "PlumeMet",
    "PlumeOptions",
    "ReceptorOperator",
    "add_block",
    "apply_rows",
    "assemble_h",
    "assemble_receptors",
    "available_formats",
    "boundary_block",
    "column_operator",
    "conservative_regridder",
    "footprint",
    "inspect_footprint",
    "ipda_operator",
    "lidar_chord_operator",
    "lidar_profile_operator",
    "offset_block",
    "plume_operator",
    "read_boundary_sensitivity",
    "read_footprint",
    "register_footprint_reader",
    "write_footprint",
]
