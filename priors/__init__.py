"""cityflux priors: inventory readers, conservative regridding, temporal profiles, point sources,
city/district masks and the prior uncertainty model.

All fluxes are CO2 in µmol m-2 s-1; totals are t CO2.
"""

from ._points import (
    POINT_UNITS,
    PointSourcePlacement,
    place_point_sources,
    point_rate_factor,
    read_point_sources,
)
from ._readers import read_edgar, read_geotiff, read_netcdf, read_odiac, read_vulcan
from ._regions import UMOL_TO_T_CO2, AggregationWeights, aggregation_weights, region_weights
from ._registry import (
    available_formats,
    inspect_inventory,
    inventory_formats,
    read_inventory,
    register_inventory_reader,
)
from ._regrid import CoverageError, Regridder, regrid
from ._summary import summarize_inventory
from ._temporal import ProfileError, TemporalProfiles, temporal_disaggregate, temporal_factors
from ._uncertainty import PriorUncertainty
from ._units import ACCEPTED_UNITS, M_C, M_CO2, UnitError, parse_units

__all__ = [
    "ACCEPTED_UNITS",
    "M_C",
    "M_CO2",
    "POINT_UNITS",
    "UMOL_TO_T_CO2",
    "AggregationWeights",
    "CoverageError",
    "PointSourcePlacement",
    "PriorUncertainty",
    "ProfileError",
    "Regridder",
    "TemporalProfiles",
    "UnitError",
    "aggregation_weights",
    "available_formats",
    "inspect_inventory",
    "inventory_formats",
    "parse_units",
    "place_point_sources",
    "point_rate_factor",
    "read_edgar",
    "read_geotiff",
    "read_inventory",
    "read_netcdf",
    "read_odiac",
    "read_point_sources",
    "read_vulcan",
    "region_weights",
    "register_inventory_reader",
    "regrid",
    "summarize_inventory",
    "temporal_disaggregate",
    "temporal_factors",
]
