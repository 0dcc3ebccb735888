"""Steady Gaussian plume footprints computed backwards from receptors.

The built-in transport model of cityflux: each grid cell is a ground-level source, receptors
are tower inlets, satellite columns (averaging-kernel weighted) and lidar chords; footprints
are in ppm per (µmol m-2 s-1) on the inversion grid and time steps.
"""

from ._dispersion import DISPERSION_SCHEMES, STABILITY_CLASSES, dispersion_coefficients
from ._met import PlumeMet
from ._operator import FOOTPRINT_UNITS, PlumeOptions, footprint, plume_operator

__all__ = [
    "DISPERSION_SCHEMES",
    "FOOTPRINT_UNITS",
    "STABILITY_CLASSES",
    "PlumeMet",
    "PlumeOptions",
    "dispersion_coefficients",
    "footprint",
    "plume_operator",
]
