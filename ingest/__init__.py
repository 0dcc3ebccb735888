"""Ground floor shared by the reader packages: units, errors, the format registry, inspection.

``observations``, ``transport_models`` and ``priors`` all read files the same way: a
:class:`Registry` of readers by format name with sniffing (:class:`FileProbe`), reader options
checked against the reader's signature, one units parser (:func:`parse_units`) and one error
taxonomy (:class:`ReaderError` and its subclasses). Each package's ``inspect`` function returns an
:class:`Inspection`. Imports numpy, xarray and netCDF4 only (no other cityflux package).
"""

from ._errors import (
    FormatDetectionError,
    MissingVariableError,
    ReaderError,
    ReaderOptionError,
    UnitsError,
    UnknownFormatError,
)
from ._inspect import Inspection, bbox_of, time_range_of
from ._open import open_dataset, open_netcdf
from ._registry import FileProbe, ReaderEntry, Registry, VarInfo
from ._units import (
    FOOTPRINT_DIMS,
    MOLAR_MASS,
    ParsedUnits,
    footprint_factor,
    length_factor,
    mole_fraction_factor,
    parse_units,
    pressure_factor,
)

__all__ = [
    "FOOTPRINT_DIMS",
    "MOLAR_MASS",
    "FileProbe",
    "FormatDetectionError",
    "Inspection",
    "MissingVariableError",
    "ParsedUnits",
    "ReaderEntry",
    "ReaderError",
    "ReaderOptionError",
    "Registry",
    "UnitsError",
    "UnknownFormatError",
    "VarInfo",
    "bbox_of",
    "footprint_factor",
    "length_factor",
    "mole_fraction_factor",
    "open_dataset",
    "open_netcdf",
    "parse_units",
    "pressure_factor",
    "time_range_of",
]
