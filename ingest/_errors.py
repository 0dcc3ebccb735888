"""The error taxonomy shared by every reader package (observations, transport_models, priors).

Every error subclasses the builtin that fits and says which file, which variable, what was
expected, what was found and how to fix it:

* :class:`ReaderError` (``ValueError``): a file cannot be read as its format says;
* :class:`UnitsError`: a ``units`` string that cannot be converted to the package's unit;
* :class:`MissingVariableError` (also ``KeyError``): a required variable / column is absent;
* :class:`FormatDetectionError`: no registered format recognises a file;
* :class:`UnknownFormatError` (also ``KeyError``): a format name that is not registered;
* :class:`ReaderOptionError` (also ``TypeError``): an option the reader does not accept.
"""

from __future__ import annotations

__all__ = [
    "FormatDetectionError",
    "MissingVariableError",
    "ReaderError",
    "ReaderOptionError",
    "UnitsError",
    "UnknownFormatError",
]


class ReaderError(ValueError):
    """A file (or dataset) does not follow the format its reader expects."""


class UnitsError(ReaderError):
    """A ``units`` string that cannot be converted to the unit the package uses."""


class _KeyLikeError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingVariableError(_KeyLikeError, ReaderError):
    """A required variable (or column) is absent (a ``KeyError`` and a ``ValueError``)."""


class FormatDetectionError(ReaderError):
    """No registered format recognises a file; the message says what the file holds."""


class UnknownFormatError(_KeyLikeError, ReaderError):
    """A format name that is not registered (a ``KeyError`` and a ``ValueError``)."""


class ReaderOptionError(ReaderError, TypeError):
    """A reader option the reader does not accept (names the option and the accepted ones)."""
