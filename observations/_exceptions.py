"""Exception and warning classes of the observations package.

The reader errors are the shared taxonomy of :mod:`ingest` (one hierarchy for observations,
footprints and inventories); the names below are kept for existing code:
``ObservationFormatError`` is :class:`ingest.ReaderError`, ``UnitsError`` and
``MissingVariableError`` are the :mod:`ingest` classes.
"""

from __future__ import annotations

from ingest import MissingVariableError, ReaderError, UnitsError

__all__ = [
    "EmptyAfterQCError",
    "MissingVariableError",
    "ObservationFormatError",
    "ScaleMismatchWarning",
    "UnitsError",
]

#: A file or dataset does not follow the format its reader expects (:class:`ingest.ReaderError`).
ObservationFormatError = ReaderError


class EmptyAfterQCError(ReaderError):
    """No observation is left after quality control; the message lists the drop counts."""


class ScaleMismatchWarning(UserWarning):
    """Calibration scales disagree between sites that are combined."""
