"""Footprint readers: STILT, X-STILT, FLEXPART, NAME (OpenGHG, PARIS) and our own layout.

Every reader returns an :class:`xarray.DataArray` ``(time, y, x)`` or
``(receptor, time, y, x)`` in ppm per (µmol m-2 s-1) per layer (see FORMAT.md).
"""

from ._common import (
    ABSURD_SENSITIVITY,
    FOOTPRINT_UNITS,
    FootprintError,
    FootprintWarning,
    build_footprint,
    layer_bounds,
    layer_start_times,
)
from ._flexpart import M_AIR, read_flexpart
from ._generic import read_generic, write_footprint
from ._name import read_boundary_sensitivity, read_name, read_paris
from ._registry import (
    FootprintReader,
    available_formats,
    detect_format,
    inspect_footprint,
    read_footprint,
    register_footprint_reader,
)
from ._stilt import parse_stilt_name, read_stilt, read_xstilt

__all__ = [
    "ABSURD_SENSITIVITY",
    "FOOTPRINT_UNITS",
    "M_AIR",
    "FootprintError",
    "FootprintReader",
    "FootprintWarning",
    "available_formats",
    "build_footprint",
    "detect_format",
    "inspect_footprint",
    "layer_bounds",
    "layer_start_times",
    "parse_stilt_name",
    "read_boundary_sensitivity",
    "read_flexpart",
    "read_footprint",
    "read_generic",
    "read_name",
    "read_paris",
    "read_stilt",
    "read_xstilt",
    "register_footprint_reader",
    "write_footprint",
]
