"""Unit conversion of inventory emissions to the cityflux flux unit [µmol m-2 s-1].

One place converts every inventory unit (MetPy-style "units at the boundary"): the string is
parsed by the shared units parser (:func:`ingest.parse_units`: any spelling of an amount or mass
per area per time, ``/``, ``per``, exponents, ``tonne``, ``µ``) and must come out as
amount x area^-1 x time^-1; anything else raises :class:`UnitError` (:class:`ingest.UnitsError`)
with examples. :data:`ACCEPTED_UNITS` lists the canonical spellings as examples.

Mass units name the species they count: ``kg m-2 s-1`` (EDGAR) is kg CO2; ``tC`` / ``kgC`` / ``gC``
count carbon (1 mol C = 1 mol CO2 emitted as CO2). Per-cell units (``tC cell-1 month-1``, ODIAC)
need the cell area and the duration of the month, which the caller supplies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest import MOLAR_MASS, UnitsError
from ingest import parse_units as _parse

__all__ = [
    "ACCEPTED_UNITS",
    "M_C",
    "M_CO2",
    "UnitError",
    "UnitSpec",
    "parse_units",
    "umol_per_s_to_t_co2",
]

#: Molar mass of CO2 [g mol-1].
M_CO2 = 44.0095
#: Molar mass of carbon [g mol-1].
M_C = 12.011
#: Seconds in a (non-leap, 365-day) year [s], used for ``yr-1`` when the calendar year is unknown.
SECONDS_PER_YEAR_365 = 365 * 86400.0

#: µmol s-1 -> t CO2 s-1: 1e-6 mol/µmol · 44.0095 g/mol · 1e-6 t/g.
umol_per_s_to_t_co2 = 1e-6 * M_CO2 * 1e-6


#: A unit string that cannot be converted (the shared :class:`ingest.UnitsError`).
UnitError = UnitsError


@dataclass(frozen=True)
class UnitSpec:
    """A parsed inventory unit.

    ``value [unit] * factor`` gives µmol CO2 per ``area`` per ``time``:

    - ``area``: ``"m2"`` (already per m²) or ``"cell"`` (divide by the cell area [m²]);
    - ``time``: ``"s"`` (already per second; hours and days are folded into ``factor``),
      ``"yr"`` or ``"month"`` (divide by the seconds of that period; the caller knows the
      calendar).
    """

    canonical: str
    factor: float
    area: str
    time: str


_MOL = {"umol": 1.0, "nmol": 1e-3, "mmol": 1e3, "mol": 1e6, "kmol": 1e9}
# grams of the counted species -> µmol CO2
_MASS = {
    "gCO2": 1e6 / M_CO2,
    "kgCO2": 1e9 / M_CO2,
    "tCO2": 1e12 / M_CO2,
    "ktCO2": 1e15 / M_CO2,
    "MtCO2": 1e18 / M_CO2,
    "gC": 1e6 / M_C,
    "kgC": 1e9 / M_C,
    "tC": 1e12 / M_C,
    "ktC": 1e15 / M_C,
    "MtC": 1e18 / M_C,
}
_AREA = {"m-2": ("m2", 1.0), "km-2": ("m2", 1e-6), "cell-1": ("cell", 1.0)}
_TIME = {"s-1": "s", "h-1": "h", "d-1": "d", "yr-1": "yr", "month-1": "month"}


def _build_table() -> dict[str, UnitSpec]:
    table: dict[str, UnitSpec] = {}
    amounts = dict(_MOL)
    amounts.update(_MASS)
    # bare mass units are CO2 mass (EDGAR "kg m-2 s-1")
    amounts.update({"g": _MASS["gCO2"], "kg": _MASS["kgCO2"], "t": _MASS["tCO2"]})
    for amount, f_amount in amounts.items():
        for area, (kind, f_area) in _AREA.items():
            for tunit, tkind in _TIME.items():
                key = f"{amount} {area} {tunit}"
                table[key] = UnitSpec(key, f_amount * f_area, kind, tkind)
    return table


#: Canonical unit strings accepted by every reader (after canonicalisation; aliases such as
#: ``"kg/m2/s"``, ``"µmol m-2 s-1"``, ``"tC/km2/yr"``, ``"t C per cell per month"`` map onto these).
ACCEPTED_UNITS: dict[str, UnitSpec] = _build_table()


def parse_units(units: str | None, *, where: str = "data") -> UnitSpec:
    """Parse an inventory unit string.

    Parameters
    ----------
    units : str or None
        Unit string as found in the file (e.g. ``"kg m-2 s-1"``, ``"tC/km2/yr"``).
    where : str
        What the units belong to (file and variable), used in error messages.

    Returns
    -------
    UnitSpec

    Raises
    ------
    UnitError
        If ``units`` is missing or not an amount per area per time (the message gives examples).
    """
    examples = (
        "umol m-2 s-1, mol m-2 s-1, kg m-2 s-1 (kg CO2), g m-2 s-1, kgC m-2 s-1, "
        "tC km-2 yr-1, tCO2 km-2 yr-1, tC km-2 h-1, tC cell-1 month-1, tCO2 cell-1 yr-1 "
        "(any of umol/mol/g/kg/t/kt/Mt with C or CO2, per m-2/km-2/cell-1, per s-1/h-1/d-1/"
        "yr-1/month-1; '/' and 'per' forms such as 'tC/km2/yr' are accepted)"
    )
    if units is None or not str(units).strip():
        raise UnitError(
            f"{where}: no units attribute found; pass units=... to the reader. Accepted: {examples}"
        )
    try:
        p = _parse(units, where=where)
    except UnitsError as err:
        raise UnitError(f"{err}; cannot convert to umol m-2 s-1. Accepted: {examples}") from None
    dims = dict(p.dims)
    amount = next((k for k in ("mol", "g") if dims.get(k) == 1), None)
    area = "m2" if dims.get("m") == -2 else ("cell" if dims.get("cell") == -1 else None)
    time = next((k for k in ("s", "yr", "month") if dims.get(k) == -1), None)
    expected = {amount: 1, "m" if area == "m2" else "cell": -2 if area == "m2" else -1, time: -1}
    if amount is None or area is None or time is None or dims != expected:
        raise UnitError(
            f"{where}: cannot convert units {units!r} (read as {p.canonical!r}: {p.describe()}) "
            f"to umol m-2 s-1. Accepted: {examples}"
        )
    if amount == "mol":
        factor = p.factor * 1e6
    else:
        factor = p.factor / MOLAR_MASS[p.species or "co2"] * 1e6
    return UnitSpec(p.canonical, factor, area, time)


def seconds_of(time: str, *, seconds_per_year: float = SECONDS_PER_YEAR_365) -> float | None:
    """Seconds in the time unit of a :class:`UnitSpec` (``None`` for ``"month"``)."""
    return {"s": 1.0, "yr": seconds_per_year, "month": None}[time]


def rate_factor(units: str | None, *, where: str) -> float:
    """Factor converting an emission rate (amount per time) to µmol CO2 s-1 (yr = 365 days).

    Raises
    ------
    UnitError
        If ``units`` is missing or not an amount (mol, or mass of C or CO2) per time.
    """
    accepted = (
        "accepted: <amount> <time>, amount one of umol/mol/g/kg/t/kt/Mt with C or CO2 "
        "(e.g. 'tCO2', 'ktC'), time one of s-1/h-1/d-1/yr-1 (e.g. 'tCO2 yr-1', 'kg CO2/s'); "
        "yr = 365 days"
    )
    if units is None or not str(units).strip():
        raise UnitError(f"{where}: emission units missing; pass units= (one of e.g. 'tCO2 yr-1')")
    try:
        p = _parse(units, where=where)
    except UnitsError as err:
        raise UnitError(f"{err}; {accepted}") from None
    dims = dict(p.dims)
    amount = next((k for k in ("mol", "g") if dims.get(k) == 1), None)
    time = next((k for k in ("s", "yr") if dims.get(k) == -1), None)
    if amount is None or time is None or dims != {amount: 1, time: -1}:
        raise UnitError(
            f"{where}: cannot convert emission units {units!r} (read as {p.canonical!r}) to "
            f"umol s-1; {accepted}"
        )
    f = p.factor * 1e6 if amount == "mol" else p.factor / MOLAR_MASS[p.species or "co2"] * 1e6
    return f / (SECONDS_PER_YEAR_365 if time == "yr" else 1.0)


def to_flux(
    values: np.ndarray,
    spec: UnitSpec,
    *,
    cell_area: np.ndarray | None = None,
    period_seconds: float | np.ndarray | None = None,
    where: str = "data",
) -> np.ndarray:
    """Convert ``values`` in ``spec`` units to µmol m-2 s-1.

    ``cell_area`` [m²] is needed for per-cell units; ``period_seconds`` [s] overrides the length of
    ``yr`` and is required for ``month`` (broadcast against ``values``).
    """
    out = np.asarray(values, dtype=float) * spec.factor
    if spec.area == "cell":
        if cell_area is None:
            raise UnitError(f"{where}: per-cell units {spec.canonical!r} need the cell areas")
        out = out / cell_area
    if spec.time in ("yr", "month") and period_seconds is not None:
        out = out / period_seconds
    elif spec.time == "month":
        raise UnitError(
            f"{where}: units {spec.canonical!r} are per month but the month is unknown; "
            "pass period=(start, end) or a file name with YYMM"
        )
    else:
        out = out / seconds_of(spec.time)
    return out
