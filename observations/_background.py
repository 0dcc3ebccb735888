"""Background removal: upwind site, chosen quantile, and a curtain/boundary hook.

Each function returns a new ObservationSet whose ``value`` is the enhancement [ppm] above the
background, with ``background`` [ppm] kept as a variable, the background uncertainty in
``err_background`` and every dropped record counted in the QC report.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import xarray as xr

from ._exceptions import ObservationFormatError
from ._qc import QCReport, QCTracker, attach_report, qc_report
from ._schema import total_error, validate_observation_set

__all__ = ["background_curtain", "background_quantile", "background_upwind"]


def _apply(ds: xr.Dataset, bg: np.ndarray, err: np.ndarray, qc: QCTracker, method: str):
    qc.drop(~np.isfinite(bg) | ~np.isfinite(err), "no background available")
    qc.require_nonempty()
    k = qc.keep
    out = ds.isel(obs=np.flatnonzero(k)).copy()
    out["background"] = ("obs", bg[k], {"units": "ppm", "long_name": f"background ({method})"})
    out["value"] = ("obs", out["value"].values - bg[k], {"units": "ppm",
                    "long_name": "enhancement above background"})  # fmt: skip
    prev = out["err_background"].values
    out["err_background"] = ("obs", np.sqrt(prev**2 + err[k] ** 2), {"units": "ppm"})
    qc.report.kept = int(k.sum())
    report = qc_report(ds) if "qc_report" in ds.attrs else QCReport()
    report.sources.append(qc.report)
    out.attrs["background_method"] = method
    out.attrs["quantity"] = "enhancement"
    return attach_report(validate_observation_set(out), report)


def background_upwind(
    ds: xr.Dataset, site: str, *, err_background: float | None = None
) -> xr.Dataset:
    """Subtract the hourly value of an upwind (background) site.

    Parameters
    ----------
    ds : xarray.Dataset
        Hourly-averaged tower ObservationSet containing ``site`` and the receptor sites.
    site : str
        Background site; its records are removed from the output (counted).
    err_background : float, optional
        Background uncertainty [ppm]; default the background site's total error at that hour.

    Returns
    -------
    xarray.Dataset
        Enhancements of the other sites at hours where the background site has a value;
        hours without one are dropped and counted.
    """
    sites = ds["site"].values.astype(str)
    is_bg = sites == site
    if not is_bg.any():
        raise ObservationFormatError(
            f"background_upwind: site {site!r} not in the set (sites: {np.unique(sites).tolist()})"
        )
    t = ds["time"].values
    bg_series = pd.Series(ds["value"].values[is_bg], index=t[is_bg])
    if bg_series.index.has_duplicates:
        raise ObservationFormatError(
            f"background_upwind: site {site!r} has several values per time (several intakes?); "
            "read it with one intake_height"
        )
    tot = total_error(ds).values
    err_series = pd.Series(tot[is_bg], index=t[is_bg])
    bg = bg_series.reindex(t).to_numpy()
    err = (
        np.full(t.size, float(err_background))
        if err_background is not None
        else err_series.reindex(t).to_numpy()
    )
    qc = QCTracker(f"background_upwind({site})", ds.sizes["obs"])
    qc.drop(is_bg, "background site itself")
    return _apply(ds, bg, err, qc, f"upwind site {site}")


def background_quantile(
    ds: xr.Dataset,
    q: float = 0.1,
    *,
    window: str = "1D",
    per_site: bool = False,
    min_count: int = 5,
    err_background: float | None = None,
) -> xr.Dataset:
    """Background = ``q``-quantile of the values in each time window (e.g. 10th percentile/day).

    Parameters
    ----------
    q : float
        Quantile in (0, 1).
    window : str
        Pandas frequency of the UTC windows (``"1D"``, ``"6h"``).
    per_site : bool
        One background per site and window (else one for all sites).
    min_count : int
        Windows with fewer values are dropped (counted).
    err_background : float, optional
        Background uncertainty [ppm]; default the standard deviation of the window's values at
        or below the quantile (spread of the "clean" values), taken over at least the two
        lowest values so that it is defined in small windows (with q = 0.1, fewer than 20
        values leave only one value below the quantile).
    """
    if not 0 < q < 1:
        raise ValueError(f"background_quantile: q={q}, expected 0 < q < 1")
    val = ds["value"].values
    win = pd.DatetimeIndex(ds["time"].values).floor(window)
    keys = [win, ds["site"].values.astype(str)] if per_site else [win]
    df = pd.DataFrame({"v": val}, index=pd.MultiIndex.from_arrays(keys))
    g = df.groupby(level=list(range(len(keys))))["v"]
    bg = g.transform(lambda s: s.quantile(q)).to_numpy()
    cnt = g.transform("size").to_numpy()
    lowest_two = g.rank(method="first").to_numpy() <= 2
    low = pd.Series(np.where((val <= bg) | lowest_two, val, np.nan), index=df.index)
    spread = low.groupby(level=list(range(len(keys)))).transform("std").to_numpy()
    err = np.full(val.size, float(err_background)) if err_background is not None else spread
    qc = QCTracker(f"background_quantile(q={q}, window={window})", val.size)
    qc.drop(cnt < min_count, f"window with fewer than {min_count} values")
    if err_background is None:
        qc.drop(~np.isfinite(spread), "background spread undefined (window of one value)")
    return _apply(ds, bg, err, qc, f"quantile {q} per {window}")


def background_curtain(
    ds: xr.Dataset,
    sampler: Callable[[xr.Dataset], tuple[np.ndarray, np.ndarray]],
) -> xr.Dataset:
    """Hook for a curtain / boundary-condition background.

    Parameters
    ----------
    sampler : callable
        ``sampler(ds) -> (background, uncertainty)``, arrays (n_obs,) [ppm], e.g. a global
        model curtain sampled at the domain boundary where each observation's back-trajectories
        leave the domain (done by ``transport_models``).  NaN marks "no background" (dropped
        and counted).
    """
    bg, err = sampler(ds)
    bg, err = np.asarray(bg, dtype="float64"), np.asarray(err, dtype="float64")
    n = ds.sizes["obs"]
    if bg.shape != (n,) or err.shape != (n,):
        raise ObservationFormatError(
            f"background_curtain: sampler returned shapes {bg.shape}, {err.shape}; expected "
            f"({n},) each"
        )
    if (err[np.isfinite(err)] < 0).any():
        raise ObservationFormatError("background_curtain: negative background uncertainty")
    qc = QCTracker("background_curtain", n)
    return _apply(ds, bg, err, qc, "curtain")
