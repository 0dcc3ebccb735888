"""Exception and warning classes of the observations package."""

from __future__ import annotations

__all__ = [
    "EmptyAfterQCError",
    "MissingVariableError",
    "ObservationFormatError",
    "ScaleMismatchWarning",
    "UnitsError",
]


class ObservationFormatError(ValueError):
    """A file or dataset does not follow the format its reader expects."""


class MissingVariableError(KeyError, ObservationFormatError):
    """A required variable (or column) is absent.

    Subclasses both ``KeyError`` (a name was not found) and ``ValueError`` (the input is malformed).
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnitsError(ObservationFormatError):
    """A ``units`` attribute cannot be converted to the units the package uses."""


class EmptyAfterQCError(ObservationFormatError):
    """No observation is left after quality control; the message lists the drop counts."""


class ScaleMismatchWarning(UserWarning):
    """Calibration scales disagree between sites that are combined."""
