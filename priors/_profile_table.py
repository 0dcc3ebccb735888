"""Default temporal emission profiles per sector (local time), before normalisation.

Hour-of-day (index 0 = 00:00–01:00 local), day-of-week (index 0 = Monday) and month (index 0 =
January) factors of the TNO-MACC profiles for the SNAP sectors, Table 3-5 of

    Denier van der Gon, H., Hendriks, C., Kuenen, J., Segers, A., Visschedijk, A. (2011):
    Description of current temporal emission patterns and sensitivity of predicted AQ for
    temporal emission patterns. EU FP7 MACC deliverable report D_D-EMIS_1.3, TNO.

mapped as energy = SNAP 1 (public power), residential = SNAP 2 (residential, commercial and
other combustion), industry = SNAP 3 (industrial combustion), road = SNAP 7 (road transport).
Such sector profiles are also used to disaggregate annual fossil-fuel CO2 inventories in
time, e.g. Nassar et al. (2013, J. Geophys. Res. 118, 917–933) for ODIAC/CDIAC with hourly
and weekly scaling. The published two-decimal factors average to 1 within 1e-2; they are
renormalised to mean exactly 1 when loaded.

``total`` is a project-made composite (the equal-weight mean of the four sector shapes), for
inventories without a sector split; it is not a published profile. ``flat`` is constant.
"""

from __future__ import annotations

HOUR: dict[str, tuple[float, ...]] = {
    "energy": (
        0.79,
        0.72,
        0.72,
        0.71,
        0.74,
        0.80,
        0.92,
        1.08,
        1.19,
        1.22,
        1.21,
        1.21,
        1.17,
        1.15,
        1.14,
        1.13,
        1.10,
        1.07,
        1.04,
        1.02,
        1.02,
        1.01,
        0.96,
        0.88,
    ),
    "residential": (
        0.38,
        0.36,
        0.36,
        0.36,
        0.37,
        0.50,
        1.19,
        1.53,
        1.57,
        1.56,
        1.35,
        1.16,
        1.07,
        1.06,
        1.00,
        0.98,
        0.99,
        1.12,
        1.41,
        1.52,
        1.39,
        1.35,
        1.00,
        0.42,
    ),
    "industry": (
        0.75,
        0.75,
        0.78,
        0.82,
        0.88,
        0.95,
        1.02,
        1.09,
        1.16,
        1.22,
        1.28,
        1.30,
        1.22,
        1.24,
        1.25,
        1.16,
        1.08,
        1.01,
        0.95,
        0.90,
        0.85,
        0.81,
        0.78,
        0.75,
    ),
    "road": (
        0.19,
        0.09,
        0.06,
        0.05,
        0.09,
        0.22,
        0.86,
        1.84,
        1.86,
        1.41,
        1.24,
        1.20,
        1.32,
        1.44,
        1.45,
        1.59,
        2.03,
        2.08,
        1.51,
        1.06,
        0.74,
        0.62,
        0.61,
        0.44,
    ),
}

DOW: dict[str, tuple[float, ...]] = {
    "energy": (1.06, 1.06, 1.06, 1.06, 1.06, 0.85, 0.85),
    "residential": (1.08, 1.08, 1.08, 1.08, 1.08, 0.80, 0.80),
    "industry": (1.08, 1.08, 1.08, 1.08, 1.08, 0.80, 0.80),
    "road": (1.02, 1.06, 1.08, 1.10, 1.14, 0.81, 0.79),
}

MONTH: dict[str, tuple[float, ...]] = {
    "energy": (1.20, 1.15, 1.05, 1.00, 0.90, 0.85, 0.80, 0.87, 0.95, 1.00, 1.08, 1.15),
    "residential": (1.70, 1.50, 1.30, 1.00, 0.70, 0.40, 0.20, 0.40, 0.70, 1.05, 1.40, 1.65),
    "industry": (1.10, 1.08, 1.05, 1.00, 0.95, 0.90, 0.93, 0.95, 0.97, 1.00, 1.02, 1.05),
    "road": (0.88, 0.92, 0.98, 1.03, 1.05, 1.06, 1.01, 1.02, 1.06, 1.05, 1.01, 0.93),
}
