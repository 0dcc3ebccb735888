"""Calibration scales of CO2 mole fractions: stated uncertainties and published conversions.

Every observation records its calibration scale in ``scale`` (``"unspecified"`` when the file
does not say). :func:`convert_scale` puts the in-situ observations (tower, lidar) on one target
scale with the published conversion, or refuses to mix scales that have none, and
:func:`scale_uncertainty` gives the standard uncertainty a scale's maintainers state, used as
the default calibration error component.

Sources
-------
* WMO-CO2-X2007 -> WMO-CO2-X2019: ``X2019 = 1.00079 · X2007 − 0.142`` [ppm], the conversion
  NOAA GML (the WMO/GAW Central Calibration Laboratory) publishes on its CO2 scale page
  (CCL, "WMO CO2 Mole Fraction Scale"), +0.174 ppm at 400 ppm, consistent with Hall et al.
  (2021): "Revision of the World Meteorological Organization Global Atmosphere Watch
  (WMO/GAW) CO2 calibration scale", Atmos. Meas. Tech. 14, 3015–3032,
  doi:10.5194/amt-14-3015-2021 ("0.18 ppm greater than the previous scale at 400 ppm").
  It is a redefinition of the scale's assigned values, so it adds no uncertainty of its own
  within the scale's range (250–520 ppm, the range of the primary standards); values outside
  are converted with a warning.
* Standard uncertainty of the WMO-CO2-X2007 scale: 0.069 ppm (1 sigma), the uncertainty of
  its 15 manometrically calibrated primary standards (Zhao and Tans 2006, "Estimating
  uncertainty of the WMO mole fraction scale for carbon dioxide in air", J. Geophys. Res.
  111, D08S09, doi:10.1029/2005JD006003; also NOAA GML's X2007 scale page).
* WMO-CO2-X2019 re-evaluates the same primaries with the same manometer, two corrections and
  four new standards (Hall et al. 2021); we take the X2007 primaries' 0.069 ppm as its
  standard uncertainty until the CCL states another value. Override it with the
  configuration (``observation_errors.calibration``).

Column retrievals (OCO-2/OCO-3/GOSAT Lite, TCCON-tied) are tied to the WMO scale through the
TCCON aircraft calibration, not by a published conversion function; they keep their own
scale and are not converted.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ._schema import UNSPECIFIED_SCALE, validate_observation_set

__all__ = [
    "CALIBRATION_SCALES",
    "IN_SITU_KINDS",
    "CalibrationScale",
    "ScaleConversion",
    "ScaleConversionError",
    "convert_scale",
    "scale_conversion",
    "scale_uncertainty",
]

logger = logging.getLogger(__name__)

#: Kinds measured in situ against a gas calibration scale (converted by :func:`convert_scale`).
IN_SITU_KINDS = ("tower", "lidar_path", "lidar_profile")


class ScaleConversionError(ValueError):
    """Observations are on a calibration scale with no published conversion to the target."""


@dataclass(frozen=True)
class CalibrationScale:
    """A calibration scale and its stated standard uncertainty.

    Attributes
    ----------
    name : str
        Canonical name (``observations.normalise_scale`` spelling, e.g. ``"WMO CO2 X2019"``).
    standard_uncertainty_ppm : float
        Stated 1-sigma uncertainty of the scale [ppm].
    source : str
        Where the value comes from.
    """

    name: str
    standard_uncertainty_ppm: float
    source: str


@dataclass(frozen=True)
class ScaleConversion:
    """``target = slope · source + offset`` [ppm], valid on ``valid_range`` [ppm].

    Attributes
    ----------
    source, target : str
        Scale names.
    slope : float
        [1].
    offset : float
        [ppm].
    valid_range : tuple of float
        Mole fractions [ppm] the conversion was derived for.
    standard_uncertainty_ppm : float
        Uncertainty the conversion adds [ppm] (0 for a redefinition of assigned values).
    reference : str
    """

    source: str
    target: str
    slope: float
    offset: float
    valid_range: tuple[float, float]
    standard_uncertainty_ppm: float
    reference: str

    def __call__(self, value: np.ndarray) -> np.ndarray:
        """Values on the target scale [ppm]."""
        return self.slope * np.asarray(value, dtype=float) + self.offset

    def inverse(self) -> ScaleConversion:
        """The conversion back from the target to the source scale."""
        return ScaleConversion(
            self.target, self.source, 1.0 / self.slope, -self.offset / self.slope,
            (float(self(self.valid_range[0])), float(self(self.valid_range[1]))),
            self.standard_uncertainty_ppm, self.reference + " (inverted)",
        )  # fmt: skip


_HALL_2021 = "Hall et al. (2021), Atmos. Meas. Tech. 14, 3015, doi:10.5194/amt-14-3015-2021"
_ZHAO_TANS = "Zhao and Tans (2006), J. Geophys. Res. 111, D08S09, doi:10.1029/2005JD006003"

#: Scales with a stated standard uncertainty [ppm].
CALIBRATION_SCALES: dict[str, CalibrationScale] = {
    "WMO CO2 X2007": CalibrationScale(
        "WMO CO2 X2007", 0.069, f"uncertainty of the primary standards, {_ZHAO_TANS}"
    ),
    "WMO CO2 X2019": CalibrationScale(
        "WMO CO2 X2019",
        0.069,
        f"X2007 primaries' uncertainty ({_ZHAO_TANS}) for the same primaries re-evaluated "
        f"with the same manometer ({_HALL_2021})",
    ),
}

_CONVERSIONS = {
    ("WMO CO2 X2007", "WMO CO2 X2019"): ScaleConversion(
        "WMO CO2 X2007", "WMO CO2 X2019", 1.00079, -0.142, (250.0, 520.0), 0.0,
        f"NOAA GML CCL CO2 scale page, X2019 = 1.00079 X2007 - 0.142; {_HALL_2021}",
    ),
}  # fmt: skip


def scale_conversion(source: str, target: str) -> ScaleConversion | None:
    """The published conversion from ``source`` to ``target`` scale, or None if there is none.

    The identity for ``source == target``; conversions are also used in reverse.
    """
    if source == target:
        return ScaleConversion(source, target, 1.0, 0.0, (-np.inf, np.inf), 0.0, "same scale")
    if (source, target) in _CONVERSIONS:
        return _CONVERSIONS[(source, target)]
    if (target, source) in _CONVERSIONS:
        return _CONVERSIONS[(target, source)].inverse()
    return None


def scale_uncertainty(name: str) -> float | None:
    """Stated standard uncertainty [ppm] of scale ``name``, or None if we know none."""
    scale = CALIBRATION_SCALES.get(name)
    return None if scale is None else scale.standard_uncertainty_ppm


def convert_scale(
    ds: xr.Dataset,
    target: str,
    *,
    unspecified: str = "assume-target",
    kinds: tuple[str, ...] = IN_SITU_KINDS,
    default_error: bool = True,
) -> xr.Dataset:
    """Put the observations of ``kinds`` on the ``target`` calibration scale.

    Values [ppm] are converted with the published conversion; ``scale`` becomes ``target`` and
    the original is kept in ``scale_original``. The conversion's own uncertainty (if any) is
    added in quadrature to ``err_calibration``. A record of what was done is appended to
    ``attrs["scale_conversions"]`` (JSON list) and, for assumptions, ``attrs["warnings"]``.
    With ``default_error``, observations whose ``err_calibration`` is 0 (not stated) take the
    stated standard uncertainty of their scale (:data:`CALIBRATION_SCALES`), whatever their
    kind; scales without a stated uncertainty keep their value.

    Parameters
    ----------
    ds : xarray.Dataset
        ObservationSet of absolute mole fractions (not enhancements).
    target : str
        Target scale, e.g. ``"WMO CO2 X2019"``.
    unspecified : str
        For observations whose scale is ``"unspecified"``: ``"assume-target"`` (take them as on
        the target scale, with a warning) or ``"refuse"`` (raise).
    kinds : tuple of str
        Kinds converted (default the in-situ kinds; columns keep their own scale).
    default_error : bool
        Set ``err_calibration`` [ppm] to the scale's stated uncertainty where it is 0.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ScaleConversionError
        If an observation's scale has no published conversion to ``target``, or is unspecified
        with ``unspecified="refuse"``, or ``ds`` holds enhancements.
    ValueError
        If ``unspecified`` is not one of the two choices.
    """
    if unspecified not in ("assume-target", "refuse"):
        raise ValueError(
            f"unspecified: expected 'assume-target' or 'refuse', found {unspecified!r}"
        )
    scales = ds["scale"].values.astype(str)
    kind = ds["kind"].values.astype(str)
    sel = np.isin(kind, kinds)
    todo = sorted(set(scales[sel]) - {target})
    out = _converted(ds, target, todo, sel, unspecified) if todo else ds
    return _with_scale_uncertainty(out) if default_error else out


def _with_scale_uncertainty(ds: xr.Dataset) -> xr.Dataset:
    """``err_calibration`` [ppm] = the scale's stated uncertainty where it is 0."""
    scales = ds["scale"].values.astype(str)
    err = ds["err_calibration"].values.astype(float)
    u = np.array([scale_uncertainty(s) or 0.0 for s in scales], dtype=float)
    fill = (err == 0.0) & (u > 0.0)
    if not fill.any():
        return ds
    out = ds.assign(
        err_calibration=("obs", np.where(fill, u, err), dict(ds["err_calibration"].attrs))
    )
    out.attrs = dict(ds.attrs)
    return out


def _converted(
    ds: xr.Dataset, target: str, todo: list[str], sel: np.ndarray, unspecified: str
) -> xr.Dataset:
    scales = ds["scale"].values.astype(str)
    sites = ds["site"].values.astype(str)
    if ds.attrs.get("quantity") == "enhancement":
        raise ScaleConversionError(
            f"convert_scale: the observations are enhancements above a background; convert "
            f"the absolute mole fractions (scales {todo}) to {target!r} before removing it"
        )
    value = ds["value"].values.astype(float).copy()
    err_cal = ds["err_calibration"].values.astype(float).copy()
    new_scale = scales.copy()
    records = json.loads(ds.attrs.get("scale_conversions", "[]"))
    msgs = json.loads(ds.attrs.get("warnings", "[]"))
    for name in todo:
        m = sel & (scales == name)
        where = f"sites {sorted(set(sites[m].tolist()))}"
        if name == UNSPECIFIED_SCALE:
            if unspecified == "refuse":
                raise ScaleConversionError(
                    f"{int(m.sum())} observations ({where}) state no calibration scale; give "
                    f"the scale in the file or reader options, or allow "
                    f"observation_errors.unspecified_scale: assume-target"
                )
            msg = (
                f"{int(m.sum())} observations ({where}) state no calibration scale; assumed "
                f"to be on {target}"
            )
            msgs.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
            logger.warning(msg)
            records.append({"from": name, "to": target, "n_obs": int(m.sum()), "assumed": True})
            new_scale[m] = target
            continue
        conv = scale_conversion(name, target)
        if conv is None:
            raise ScaleConversionError(
                f"{int(m.sum())} observations ({where}) are on the calibration scale {name!r}, "
                f"which has no published conversion to {target!r}; convert them before the "
                f"run or set observation_errors.calibration_scale to {name!r} (and convert "
                f"the others). Known conversions: {[f'{a} -> {b}' for a, b in _CONVERSIONS]}"
            )
        lo, hi = conv.valid_range
        out_of_range = m & ((value < lo) | (value > hi))
        if out_of_range.any():
            msg = (
                f"{int(out_of_range.sum())} observations ({where}) lie outside {lo:g}–{hi:g} "
                f"ppm, the range of the {name} -> {target} conversion; converted by "
                f"extrapolation"
            )
            msgs.append(msg)
            logger.warning(msg)
        value[m] = conv(value[m])
        err_cal[m] = np.hypot(err_cal[m], conv.standard_uncertainty_ppm)
        new_scale[m] = target
        records.append(
            {"from": name, "to": target, "n_obs": int(m.sum()), "slope": conv.slope,
             "offset_ppm": conv.offset, "reference": conv.reference, "assumed": False}
        )  # fmt: skip
    out = ds.assign(
        value=("obs", value, dict(ds["value"].attrs)),
        err_calibration=("obs", err_cal, dict(ds["err_calibration"].attrs)),
        scale=("obs", new_scale.astype(str)),
        scale_original=("obs", scales.astype(str)),
    )
    out.attrs = dict(ds.attrs)
    out.attrs["scale_conversions"] = json.dumps(records)
    out.attrs["warnings"] = json.dumps(msgs)
    out.attrs["calibration_scale"] = target
    return validate_observation_set(out)
