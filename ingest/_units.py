"""One units parser for every reader: mole fractions, footprints, fluxes and emission rates.

A units string is parsed into a multiplicative ``factor`` and integer exponents of the base
dimensions (``mol``, ``g``, ``m``, ``s``, plus the calendar-dependent ``yr`` and ``month`` and the
per-grid-cell ``cell``), e.g. ``"ppm (umol-1 m2 s)"`` -> factor 1, ``{mol: -1, m: 2, s: 1}``.

Grammar (UDUNITS-like, with one deliberate difference): factors written side by side (space,
``.`` or ``*``) multiply; ``/`` and the word ``per`` divide by everything that follows up to
the next ``/`` (so ``"ppm per umol m-2 s-1"`` and ``"kg/m2/s"`` read as intended); parentheses
group; an integer exponent follows a symbol directly (``m-2``, ``m^-2``, ``m**-2``, ``m²``);
bare numbers (``1e-9``) are scale factors; a species written after a mass or amount
(``tC``, ``kg CO2``, ``kg(C)``) says what the mass counts.

Dimensionless results (``mol mol-1``, ``ppm``, ``1e-9``, ``1``) are mole fractions in mol mol-1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._errors import UnitsError

__all__ = [
    "FOOTPRINT_DIMS",
    "MOLAR_MASS",
    "ParsedUnits",
    "footprint_factor",
    "length_factor",
    "mole_fraction_factor",
    "parse_units",
    "pressure_factor",
]

#: Molar masses [g mol-1] of the species a mass unit can count (1 mol C emitted = 1 mol CO2).
MOLAR_MASS = MappingProxyType({"co2": 44.0095, "c": 12.011, "ch4": 16.0425, "co": 28.0101})

#: Dimensions of a footprint: ppm per (µmol m-2 s-1) = mol-1 m2 s.
FOOTPRINT_DIMS = MappingProxyType({"mol": -1, "m": 2, "s": 1})

# symbol -> (factor, dimension or None for dimensionless)
_SYMBOLS: dict[str, tuple[float, str | None]] = {
    "mol": (1.0, "mol"),
    "kmol": (1e3, "mol"),
    "mmol": (1e-3, "mol"),
    "umol": (1e-6, "mol"),
    "nmol": (1e-9, "mol"),
    "pmol": (1e-12, "mol"),
    "g": (1.0, "g"),
    "kg": (1e3, "g"),
    "mg": (1e-3, "g"),
    "Mg": (1e6, "g"),
    "t": (1e6, "g"),
    "kt": (1e9, "g"),
    "Gg": (1e9, "g"),
    "Mt": (1e12, "g"),
    "Tg": (1e12, "g"),
    "Gt": (1e15, "g"),
    "Pg": (1e15, "g"),
    "m": (1.0, "m"),
    "km": (1e3, "m"),
    "cm": (1e-2, "m"),
    "s": (1.0, "s"),
    "min": (60.0, "s"),
    "h": (3600.0, "s"),
    "d": (86400.0, "s"),
    "yr": (1.0, "yr"),
    "month": (1.0, "month"),
    "cell": (1.0, "cell"),
    "ppm": (1e-6, None),
    "ppmv": (1e-6, None),
    "ppb": (1e-9, None),
    "ppbv": (1e-9, None),
    "ppt": (1e-12, None),
    "pptv": (1e-12, None),
    "%": (1e-2, None),
    "percent": (1e-2, None),
    "Pa": (1e3, "pressure"),
    "hPa": (1e5, "pressure"),
    "kPa": (1e6, "pressure"),
    "mbar": (1e5, "pressure"),
    "mb": (1e5, "pressure"),
    "bar": (1e8, "pressure"),
    "atm": (101325e3, "pressure"),
    "none": (1.0, None),
    "unitless": (1.0, None),
    "dimensionless": (1.0, None),
}

# derived dimensions in base units (pressure: kg m-1 s-2 = 1e3 g m-1 s-2)
_DIMS = {"pressure": {"g": 1, "m": -1, "s": -2}}

# words (lower case) -> symbol
_WORDS: dict[str, str] = {
    **{w: "mol" for w in ("mole", "moles", "mols")},
    **{w: "umol" for w in ("micromol", "micromole", "micromoles", "micromols")},
    **{w: "nmol" for w in ("nanomol", "nanomole", "nanomoles", "nanomols")},
    **{w: "pmol" for w in ("picomol", "picomole", "picomoles")},
    **{w: "mmol" for w in ("millimol", "millimole", "millimoles")},
    **{w: "kmol" for w in ("kilomol", "kilomole", "kilomoles")},
    **{w: "g" for w in ("gram", "grams", "gm")},
    **{w: "kg" for w in ("kilogram", "kilograms", "kgs")},
    **{w: "t" for w in ("tonne", "tonnes", "ton", "tons")},
    **{w: "Mg" for w in ("megagram", "megagrams")},
    **{w: "kt" for w in ("kilotonne", "kilotonnes", "kiloton", "kilotons", "kton", "ktons")},
    **{w: "Mt" for w in ("megatonne", "megatonnes", "megaton", "megatons")},
    **{w: "Gg" for w in ("gigagram", "gigagrams")},
    **{w: "Tg" for w in ("teragram", "teragrams")},
    **{w: "m" for w in ("meter", "meters", "metre", "metres")},
    **{w: "km" for w in ("kilometer", "kilometers", "kilometre", "kilometres")},
    **{w: "s" for w in ("sec", "secs", "second", "seconds")},
    **{w: "min" for w in ("minute", "minutes", "mins")},
    **{w: "h" for w in ("hr", "hrs", "hour", "hours")},
    **{w: "d" for w in ("day", "days")},
    **{w: "yr" for w in ("a", "y", "yrs", "year", "years", "annum")},
    **{w: "month" for w in ("mon", "mo", "months")},
    **{w: "cell" for w in ("cells", "gridcell", "gridcells", "pixel", "pixels")},
    **{w: "hPa" for w in ("hectopascal", "hectopascals", "millibar", "millibars")},
    **{w: "Pa" for w in ("pascal", "pascals")},
}
# words that carry no unit information ("metric tonne", "mol mol-1 dry air", "grid cell")
_IGNORED = frozenset({"metric", "dry", "air", "of", "in", "grid", "dryair"})
_SPECIES = {"co2": "co2", "c": "c", "carbon": "c", "ch4": "ch4", "co": "co"}
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_AMOUNT = r"Mt|Gt|Tg|Pg|Gg|Mg|kt|kg|mg|g|t|tonnes?|tons?|[kmunp]?mol(?:e|es)?"
_GLUED = re.compile(
    rf"(?<![A-Za-z])({_AMOUNT})\s*\(?\s*(?i:(co2|ch4|co|carbon|c))\s*\)?(?![A-Za-z0-9])"
)
_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<species>#[A-Za-z0-9]+)"
    r"|(?P<word>[A-Za-z_%]+)(?:(?:\^|\*\*)?(?P<exp>[+-]?\d+)(?![.\deE]))?"
    r"|(?P<op>[()/*.])(?:(?<=\))(?:\^|\*\*)?(?P<pexp>[+-]?\d+))?"
    r")"
)


@dataclass(frozen=True)
class ParsedUnits:
    """A parsed units string: ``value [text] = value * factor [base units with dims]``.

    Attributes
    ----------
    text : str
        The string as found.
    factor : float
        Multiplier to the base units (mol, g, m, s, yr, month, cell).
    dims : dict of str to int
        Non-zero exponents of the base dimensions.
    species : str or None
        Species named after a mass or amount (``"c"``, ``"co2"``), lower case.
    canonical : str
        Normalised spelling (``"tC km-2 yr-1"``).
    """

    text: str
    factor: float
    dims: dict[str, int] = field(default_factory=dict)
    species: str | None = None
    canonical: str = ""

    def describe(self) -> str:
        """Human-readable form: ``"1e-06 x mol-1 m2 s"``."""
        body = " ".join(f"{k}{'' if v == 1 else v}" for k, v in sorted(self.dims.items()))
        return f"{self.factor:g} x {body or '(dimensionless)'}"


class _Q:
    """Intermediate product: factor, dims, species, canonical leaves."""

    def __init__(self, factor=1.0, dims=None, species=None, leaves=None):
        self.factor = factor
        self.dims = dict(dims or {})
        self.species = species
        self.leaves = list(leaves or [])

    def mul(self, other: _Q) -> _Q:
        dims = dict(self.dims)
        for k, v in other.dims.items():
            dims[k] = dims.get(k, 0) + v
        return _Q(self.factor * other.factor, {k: v for k, v in dims.items() if v},
                  self.species or other.species, self.leaves + other.leaves)  # fmt: skip

    def pow(self, n: int) -> _Q:
        leaves = [(sym, sp, e * n) for sym, sp, e in self.leaves]
        return _Q(self.factor**n, {k: v * n for k, v in self.dims.items()}, self.species, leaves)


def _tokens(text: str, where: str) -> list[tuple[str, str, int | None]]:
    s = text.translate(_SUPERSCRIPTS).replace("µ", "u").replace("μ", "u")
    s = re.sub(r"(?i)\bmicro\s*mol(?:es|e|s)?\b", "umol", s)
    s = re.sub(r"(?i)\bper\b", "/", s)
    s = _GLUED.sub(lambda m: f"{m.group(1)} #{m.group(2)}", s)
    out: list[tuple[str, str, int | None]] = []
    pos = 0
    while pos < len(s):
        if s[pos:].strip() == "":
            break
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise UnitsError(f"{where}: cannot parse units {text!r} at {s[pos:]!r}")
        pos = m.end()
        if m.group("num") is not None:
            out.append(("num", m.group("num"), None))
        elif m.group("species") is not None:
            out.append(("word", m.group("species"), None))
        elif m.group("word") is not None:
            exp = m.group("exp")
            out.append(("word", m.group("word"), int(exp) if exp else None))
        else:
            pexp = m.group("pexp")
            out.append(("op", m.group("op"), int(pexp) if pexp else None))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str, int | None]], text: str, where: str):
        self.toks, self.i, self.text, self.where = tokens, 0, text, where

    def _fail(self, what: str) -> UnitsError:
        return UnitsError(f"{self.where}: cannot parse units {self.text!r}: {what}")

    def peek(self) -> tuple[str, str, int | None] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def expr(self) -> _Q:
        q = self.term()
        while (t := self.peek()) is not None and t == ("op", "/", None):
            self.i += 1
            q = q.mul(self.term().pow(-1))
        return q

    def term(self) -> _Q:
        q = self.factor()
        if q is None:
            raise self._fail("expected a unit")
        while (t := self.peek()) is not None and not (t[0] == "op" and t[1] in "/)"):
            if t[0] == "op" and t[1] in "*.":
                self.i += 1
                continue
            nxt = self.factor()
            if nxt is None:
                break
            q = q.mul(nxt)
        return q

    def factor(self) -> _Q | None:
        t = self.peek()
        if t is None:
            return None
        kind, val, exp = t
        self.i += 1
        if kind == "num":
            f = float(val)
            return _Q(f, leaves=[(f"{f:g}", None, 1)])
        if kind == "op" and val == "(":
            q = self.expr()
            close = self.peek()
            if close is None or close[:2] != ("op", ")"):
                raise self._fail("unbalanced parentheses")
            self.i += 1
            return q.pow(close[2]) if close[2] is not None else q
        if kind == "word":
            return self._word(val, exp)
        raise self._fail(f"unexpected {val!r}")

    def _word(self, val: str, exp: int | None) -> _Q:
        if val.startswith("#"):
            raise self._fail(f"species {val[1:]!r} without a mass or amount before it")
        if val.lower() in _IGNORED:
            return _Q()
        sym = val if val in _SYMBOLS else _WORDS.get(val.lower(), val.lower())
        if sym not in _SYMBOLS:
            raise self._fail(f"unknown unit {val!r}")
        f, dim = _SYMBOLS[sym]
        q = _Q(f, _DIMS.get(dim, {dim: 1}) if dim else {}, leaves=[(sym, None, 1)])
        nxt = self.peek()
        if nxt is not None and nxt[0] == "word" and nxt[1].startswith("#"):
            self.i += 1
            sp = _SPECIES[nxt[1][1:].lower()]
            q.species, q.leaves = sp, [(sym, sp, 1)]
            if nxt[2] is not None:
                exp = nxt[2]
        return q.pow(exp) if exp is not None else q


def _canonical(leaves: list[tuple[str, str | None, int]]) -> str:
    names = {"co2": "CO2", "c": "C", "ch4": "CH4", "co": "CO"}
    parts = []
    for sym, sp, e in leaves:
        if sym in ("1", "none", "unitless", "dimensionless"):
            continue
        tag = names.get(sp, "") if sp and _SYMBOLS.get(sym, (0, None))[1] == "g" else ""
        parts.append(f"{sym}{tag}{'' if e == 1 else e}")
    return " ".join(parts) or "1"


def parse_units(units: Any, *, where: str = "units") -> ParsedUnits:
    """Parse a units string.

    Parameters
    ----------
    units : str
        Units as found in a file (``"mol mol-1"``, ``"ppm (umol-1 m2 s)"``, ``"tC/km2/yr"``).
    where : str
        File and variable the units belong to, used in error messages.

    Returns
    -------
    ParsedUnits

    Raises
    ------
    UnitsError
        If ``units`` is missing, empty or not parseable (the message names ``where``).
    """
    if units is None or not str(units).strip():
        raise UnitsError(f"{where}: no units attribute found")
    text = str(units).strip()
    parser = _Parser(_tokens(text, where), text, where)
    q = parser.expr()
    if parser.peek() is not None:
        raise parser._fail(f"unexpected {parser.peek()[1]!r}")
    return ParsedUnits(text, float(q.factor), q.dims, q.species, _canonical(q.leaves))


def mole_fraction_factor(units: Any, *, where: str) -> float:
    """Factor converting a mole fraction in ``units`` to ppm (µmol mol-1).

    ``mol mol-1``, ``1`` and bare numbers (``1e-9``) are fractions of one mol mol-1;
    ``ppm``/``ppb``/``ppt``, ``umol mol-1``, ``nanomol mol-1`` are converted.

    Raises
    ------
    UnitsError
        If the units are missing, unparseable or not dimensionless.
    """
    expected = (
        "expected a mole fraction such as 'mol mol-1', 'ppm', 'umol mol-1', 'nmol mol-1'/'ppb' "
        "or a scale factor such as '1e-9'. Fix the file's units attribute or pass units=... to "
        "the reader"
    )
    try:
        p = parse_units(units, where=where)
    except UnitsError as err:
        raise UnitsError(f"{err}; {expected}") from None
    if p.dims:
        raise UnitsError(
            f"{where}: units {units!r} are not a mole-fraction unit this reader converts (read "
            f"as {p.describe()}); {expected}"
        )
    return p.factor * 1e6


def pressure_factor(units: Any, *, where: str) -> float:
    """Factor converting a pressure in ``units`` (Pa, hPa, mbar, atm, ...) to hPa.

    Raises
    ------
    UnitsError
        If the units are missing, unparseable or not a pressure.
    """
    p = parse_units(units, where=where)
    if p.dims != _DIMS["pressure"]:
        raise UnitsError(
            f"{where}: units {units!r} are not a pressure (read as {p.describe()}); expected "
            "'hPa', 'Pa', 'mbar' or 'atm'"
        )
    return p.factor / 1e5


def length_factor(units: Any, *, where: str) -> float:
    """Factor converting a length in ``units`` (m, km) to m.

    Raises
    ------
    UnitsError
        If the units are missing, unparseable or not a length.
    """
    p = parse_units(units, where=where)
    if p.dims != {"m": 1}:
        raise UnitsError(
            f"{where}: units {units!r} are not a length (read as {p.describe()}); expected 'm' or 'km'"
        )
    return p.factor


def footprint_factor(units: Any, *, where: str) -> float:
    """Factor converting a footprint in ``units`` to ppm per (µmol m-2 s-1).

    Any spelling of mol-1 m2 s works: ``"ppm (umol-1 m2 s)"`` (R-STILT),
    ``"ppm per (micromol m-2 s-1)"`` (ICOS STILT), ``"(mol/mol)/(mol/m2/s)"`` (NAME),
    ``"s m2 mol-1"``, ``"ppb/(umol m-2 s-1)"`` (factor 1e-3).

    Raises
    ------
    UnitsError
        If the units are missing, unparseable or not mole fraction per molar flux.
    """
    expected = "expected mole fraction per molar flux, e.g. 'ppm (umol-1 m2 s)' or 'ppm per (umol m-2 s-1)'"
    if units is None or not str(units).strip():
        raise UnitsError(
            f"{where}: no 'units' attribute; {expected}; add the attribute to a copy of the file"
        )
    try:
        p = parse_units(units, where=where)
    except UnitsError as err:
        raise UnitsError(f"{err}; {expected}") from None
    if p.dims != dict(FOOTPRINT_DIMS):
        raise UnitsError(
            f"{where}: units {units!r} cannot be converted to ppm per (umol m-2 s-1) (read as "
            f"{p.describe()}); {expected}; fix the attribute or register a reader for this format"
        )
    return p.factor
