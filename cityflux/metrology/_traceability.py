"""Traceability of the observations: which calibration scale each is on, what was converted,
and the stated uncertainty the calibration error component took (``observations.convert_scale``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import observations

__all__ = ["observation_scale_columns", "scale_summary"]


def scale_summary(obs: xr.Dataset, target: str | None) -> dict[str, Any]:
    """Calibration scales of the observations of a run, as plain JSON.

    Parameters
    ----------
    obs : xarray.Dataset
        The run's ObservationSet (``scale``, optional ``scale_original``, ``err_calibration``
        [ppm]).
    target : str or None
        ``observation_errors.calibration_scale`` (None: no conversion asked).

    Returns
    -------
    dict
        ``target``; ``scales``: one entry per (kind, scale, original scale) with ``n_obs``,
        ``converted`` (bool), ``assumed`` (no scale stated, taken as the target),
        ``stated_uncertainty_ppm`` and its ``source`` (None when unknown) and
        ``err_calibration_rms_ppm`` and the ``conversion`` applied (slope, offset [ppm],
        reference).
    """
    n = obs.sizes["obs"]
    kind = obs["kind"].values.astype(str)
    scale = obs["scale"].values.astype(str)
    orig = _original(obs, scale)
    err = obs["err_calibration"].values.astype(float)
    df = pd.DataFrame({"kind": kind, "scale": scale, "original": orig, "err2": err * err})
    rows = []
    for (k, s, o), grp in df.groupby(["kind", "scale", "original"], sort=True):
        info = observations.CALIBRATION_SCALES.get(s)
        conv = observations.scale_conversion(o, s) if o not in (s, "unspecified") else None
        rows.append(
            {
                "kind": str(k),
                "scale": str(s),
                "original_scale": str(o),
                "n_obs": len(grp),
                "converted": bool(o != s and o != "unspecified"),
                "assumed": bool(o == "unspecified" and s != "unspecified"),
                "stated_uncertainty_ppm": None if info is None else info.standard_uncertainty_ppm,
                "source": None if info is None else info.source,
                "err_calibration_rms_ppm": float(np.sqrt(grp["err2"].mean())),
                "conversion": None
                if conv is None
                else {"slope": conv.slope, "offset_ppm": conv.offset, "reference": conv.reference},
            }
        )
    return {
        "target": target,
        "n_obs": int(n),
        "scales": rows,
        "note": (
            "in-situ observations (tower, lidar) are converted to the target scale by the "
            "published conversion (observations.convert_scale); columns keep their own scale. "
            "The calibration component is each scale's stated standard uncertainty where the "
            "data state none; it is treated as independent between observations unless "
            "observation_errors.correlated_components lists 'calibration'."
        ),
    }


def observation_scale_columns(obs: xr.Dataset) -> dict[str, np.ndarray]:
    """Per-observation columns for observations.csv: ``calibration_scale``,
    ``calibration_scale_original`` and ``err_calibration_ppm``."""
    scale = obs["scale"].values.astype(str)
    orig = _original(obs, scale)
    return {
        "calibration_scale": scale,
        "calibration_scale_original": orig,
        "err_calibration_ppm": obs["err_calibration"].values.astype(float),
    }


def _original(obs: xr.Dataset, scale: np.ndarray) -> np.ndarray:
    """Scale as read (``scale_original``; sets combined without it have "" there)."""
    if "scale_original" not in obs:
        return scale
    orig = obs["scale_original"].values.astype(str)
    return np.where(orig == "", scale, orig)
