"""The cityflux version, read from the installed distribution (source checkouts fall back)."""

from __future__ import annotations

from importlib import metadata

__all__ = ["__version__"]

try:
    __version__ = metadata.version("cityflux")
except metadata.PackageNotFoundError:  # running from a source checkout that is not installed
    __version__ = "0.1.0+source"
