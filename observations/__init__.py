"""Observation readers and QC -> ObservationSet (``xarray.Dataset``, dim ``"obs"``, ppm).

Read with :func:`read` (format auto-detected or named: see :func:`available_formats`), combine
with :func:`combine`, inspect the QC with :func:`qc_report`.  Conventions: ``_schema.py``; file
layouts of our own formats: ``FORMATS.md``.
"""

from . import (  # noqa: F401  (import registers the readers)
    _columns,
    _lidar,
    _obspack,
    _openghg_column,
    _tccon,
    _tower,
)
from ._background import background_curtain, background_quantile, background_upwind
from ._budget import (
    CORRELATION_LENGTHS,
    CorrelationGroups,
    check_scales,
    combine,
    correlation_groups,
    set_errors,
)
from ._exceptions import (
    EmptyAfterQCError,
    MissingVariableError,
    ObservationFormatError,
    ScaleMismatchWarning,
    UnitsError,
)
from ._qc import QCReport, SourceQC, qc_report
from ._registry import (
    ObservationReader,
    available_formats,
    detect_format,
    inspect,
    read,
    reader_options,
    register_reader,
)
from ._scales import (
    CALIBRATION_SCALES,
    ScaleConversionError,
    convert_scale,
    scale_conversion,
    scale_uncertainty,
)
from ._schema import (
    ERROR_COMPONENTS,
    KINDS,
    make_observation_set,
    total_error,
    validate_observation_set,
)
from ._tower_core import local_solar_hour

__all__ = [
    "CALIBRATION_SCALES",
    "CORRELATION_LENGTHS",
    "ERROR_COMPONENTS",
    "KINDS",
    "CorrelationGroups",
    "EmptyAfterQCError",
    "MissingVariableError",
    "ObservationFormatError",
    "ObservationReader",
    "QCReport",
    "ScaleConversionError",
    "ScaleMismatchWarning",
    "SourceQC",
    "UnitsError",
    "available_formats",
    "background_curtain",
    "background_quantile",
    "background_upwind",
    "check_scales",
    "combine",
    "convert_scale",
    "correlation_groups",
    "detect_format",
    "inspect",
    "local_solar_hour",
    "make_observation_set",
    "qc_report",
    "read",
    "reader_options",
    "register_reader",
    "scale_conversion",
    "scale_uncertainty",
    "set_errors",
    "total_error",
    "validate_observation_set",
]
