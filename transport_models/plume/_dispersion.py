"""Dispersion coefficients σy(x), σz(x) of the Gaussian plume (Briggs 1973).

Both schemes use the interpolation formulas of Briggs (1973), as tabulated in standard
textbooks (Seinfeld & Pandis, *Atmospheric Chemistry and Physics*, "Formulas recommended by
Briggs (1973) for σy(x) and σz(x)"; Hanna, Briggs & Hosker 1982, *Handbook on Atmospheric
Diffusion*). Every entry has the form

    σ(x) = a · x · (1 + b · x) ** p        [m],  x = downwind distance [m]

``"briggs-rural"`` (open country) is Briggs's fit to the Pasquill–Gifford curves:

=====  =============================  ==============================
class  σy [m]                         σz [m]
=====  =============================  ==============================
A      0.22 x (1 + 0.0001 x)^-1/2     0.20 x
B      0.16 x (1 + 0.0001 x)^-1/2     0.12 x
C      0.11 x (1 + 0.0001 x)^-1/2     0.08 x (1 + 0.0002 x)^-1/2
D      0.08 x (1 + 0.0001 x)^-1/2     0.06 x (1 + 0.0015 x)^-1/2
E      0.06 x (1 + 0.0001 x)^-1/2     0.03 x (1 + 0.0003 x)^-1
F      0.04 x (1 + 0.0001 x)^-1/2     0.016 x (1 + 0.0003 x)^-1
=====  =============================  ==============================

``"briggs-urban"`` is Briggs's fit to the McElroy–Pooler (St. Louis) urban data:

=====  =============================  ==============================
class  σy [m]                         σz [m]
=====  =============================  ==============================
A–B    0.32 x (1 + 0.0004 x)^-1/2     0.24 x (1 + 0.001 x)^+1/2
C      0.22 x (1 + 0.0004 x)^-1/2     0.20 x
D      0.16 x (1 + 0.0004 x)^-1/2     0.14 x (1 + 0.0003 x)^-1/2
E–F    0.11 x (1 + 0.0004 x)^-1/2     0.08 x (1 + 0.0015 x)^-1/2
=====  =============================  ==============================

The formulas are fitted for 100 m < x < 10 km; closer and farther they are extrapolated.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DISPERSION_SCHEMES", "STABILITY_CLASSES", "dispersion_coefficients", "sigma"]

STABILITY_CLASSES = ("A", "B", "C", "D", "E", "F")

_H = -0.5
#: scheme -> (coefficients of σy, coefficients of σz), each (6 classes, (a, b, p)).
_TABLES: dict[str, tuple[tuple[tuple[float, float, float], ...], ...]] = {
    "briggs-rural": (
        tuple((a, 1e-4, _H) for a in (0.22, 0.16, 0.11, 0.08, 0.06, 0.04)),
        (
            (0.20, 0.0, 0.0),
            (0.12, 0.0, 0.0),
            (0.08, 2e-4, _H),
            (0.06, 1.5e-3, _H),
            (0.03, 3e-4, -1.0),
            (0.016, 3e-4, -1.0),
        ),
    ),
    "briggs-urban": (
        tuple((a, 4e-4, _H) for a in (0.32, 0.32, 0.22, 0.16, 0.11, 0.11)),
        (
            (0.24, 1e-3, 0.5),
            (0.24, 1e-3, 0.5),
            (0.20, 0.0, 0.0),
            (0.14, 3e-4, _H),
            (0.08, 1.5e-3, _H),
            (0.08, 1.5e-3, _H),
        ),
    ),
}

DISPERSION_SCHEMES = tuple(_TABLES)


def dispersion_coefficients(dispersion: str) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient tables of a dispersion scheme.

    Parameters
    ----------
    dispersion : {"briggs-urban", "briggs-rural"}
        Scheme name.

    Returns
    -------
    coef_y, coef_z : numpy.ndarray
        ``(6, 3)`` arrays of ``(a, b, p)`` for classes A–F, such that
        ``σ = a x (1 + b x) ** p`` [m] with ``x`` in m.

    Raises
    ------
    ValueError
        For an unknown scheme name.
    """
    try:
        ty, tz = _TABLES[dispersion]
    except (KeyError, TypeError):
        raise ValueError(
            f"dispersion: unknown scheme {dispersion!r}; expected one of {list(_TABLES)}"
        ) from None
    return np.array(ty, dtype=float), np.array(tz, dtype=float)


def sigma(x: np.ndarray, coef: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Evaluate ``σ = a x (1 + b x) ** p`` [m] for downwind distances ``x`` [m] > 0.

    ``coef`` is a ``(6, 3)`` table from :func:`dispersion_coefficients`; ``cls`` holds class
    indices 0–5 (A–F), broadcastable against ``x``.
    """
    c = coef[np.asarray(cls)]
    a, b, p = c[..., 0], c[..., 1], c[..., 2]
    return a * x * (1.0 + b * x) ** p
