"""Matching footprint receptors to the receptor samples of observations, and ``assemble_h``.

Every observation is sampled by receptors (:func:`transport_models.sample_receptors`: a tower
by one point, a column by its levels, a lidar chord or range segment by points along the
beam). A footprint receptor (one row of the receptor-level ``H`` of
:func:`transport_models.assemble_receptors`) is matched to the sample with

* ``|Δt| <= time_tolerance``,
* ``|Δlat| <= position_tolerance`` and ``|Δlon| <= position_tolerance`` [degrees],
* ``|Δheight| <= height_tolerance`` [m above ground];

the nearest sample in these scaled units (Chebyshev distance) wins. The observation's row is
then ``Σ_s weight_s · H_receptor(s)`` with the sampler's weights, and an observation is
*complete* when every one of its samples has a footprint.

Receptors without a height (NaN ``receptor_height``):

* X-STILT column footprints are already averaging-kernel and pressure weighted (one per
  sounding, ``Σ_k h_k a_k footprint_k``): such a receptor matches a column observation as a
  whole (same time and position), with weight 1, and completes it.
* At a tower (one sample) the height is not compared; the match is counted in the report
  (``height_not_given``). Where two towers (inlets) share the time and position, such a
  receptor is ambiguous and left unmatched.

Receptors that match no observation are counted and reported, never an error (a shorter
period or a removed site must not break a working configuration). Two receptors for the
same sample are an error (the sensitivity would be counted twice).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from scipy.spatial import cKDTree

from inversion.state import StateVector
from transport_models.footprints import FootprintError

from ._assemble import AssemblyReport, assemble_receptors
from ._rows import apply_rows
from ._sampling import ReceptorSamples, SamplingOptions, sample_receptors

__all__ = ["FootprintOperator", "ObservationMatch", "assemble_h", "match_observations"]

log = logging.getLogger(__name__)

_EXAMPLES = 5


@dataclass
class ObservationMatch:
    """Footprint receptors matched to observations (:func:`match_observations`).

    Attributes
    ----------
    combination : scipy.sparse.csr_array
        (n_obs, n_receptor) [1]: ``H_obs = combination @ H_receptor``; rows of incomplete
        observations are empty.
    complete : numpy.ndarray of bool
        (n_obs,) every sample of the observation has a footprint.
    receptor_obs : numpy.ndarray of int
        (n_receptor,) observation of each receptor, -1 where unmatched.
    receptor_sample : numpy.ndarray of int
        (n_receptor,) sample of each receptor (index into ``samples``), -1 where unmatched or
        where the receptor covers a whole column.
    samples : ReceptorSamples
        The sampling design the receptors were matched to.
    report : dict
        Plain-JSON counts: receptors matched/unmatched (with examples), and per kind the
        observations complete/incomplete with the reasons.
    """

    combination: sp.csr_array
    complete: np.ndarray
    receptor_obs: np.ndarray
    receptor_sample: np.ndarray
    samples: ReceptorSamples
    report: dict[str, Any]

    @property
    def n_unmatched_receptors(self) -> int:
        """Number of receptors that match no observation."""
        return int((self.receptor_obs < 0).sum())


def _lon(lon: np.ndarray) -> np.ndarray:
    return (np.asarray(lon, float) + 180.0) % 360.0 - 180.0


def _describe(receptors: pd.DataFrame, rows: np.ndarray) -> list[str]:
    out = []
    for i in rows[:_EXAMPLES]:
        r = receptors.iloc[int(i)]
        out.append(
            f"{r.get('file', '?')} receptor {r.get('id', '?')} at {r['time']} "
            f"({float(r['lat']):.5f}, {float(r['lon']):.5f}, {float(r['height']):.6g} m)"
        )
    return out


def _duplicates(receptors: pd.DataFrame, key: np.ndarray, what: str) -> None:
    """Raise when two receptors share a key >= 0 (a sample or a whole column)."""
    used = key >= 0
    counts = np.bincount(key[used]) if used.any() else np.zeros(0, int)
    dup = np.flatnonzero(counts > 1)
    if dup.size:
        rows = np.flatnonzero(key == dup[0])
        raise FootprintError(
            f"{int(counts[dup].sum())} footprint receptors match {dup.size} {what}(s) more than "
            f"once (the sensitivity would be counted twice): {'; '.join(_describe(receptors, rows))}"
            "; give each receptor once (remove duplicated files) or narrow the tolerances"
        )


def match_observations(
    receptors: pd.DataFrame,
    obs: xr.Dataset,
    *,
    time_tolerance: str | pd.Timedelta = "1min",
    position_tolerance: float = 1e-3,
    height_tolerance: float = 1.0,
    sampling: SamplingOptions | None = None,
) -> ObservationMatch:
    """Match footprint receptors to the receptor samples of every observation.

    See the module docstring for the rules. Vectorised (k-d trees); no loop over observations.

    Parameters
    ----------
    receptors : pandas.DataFrame
        The receptor table of :func:`transport_models.assemble_receptors` (``time``, ``lat``,
        ``lon``, ``height`` [m above ground, NaN for column footprints]; ``kind``, ``id``,
        ``file`` for messages), one row per row of the receptor-level ``H``.
    obs : xarray.Dataset
        ObservationSet (any kinds; see :func:`transport_models.sample_receptors`).
    time_tolerance : str or pandas.Timedelta
        Largest time difference [anything ``pandas.Timedelta`` reads].
    position_tolerance : float
        Largest latitude and longitude difference [degrees].
    height_tolerance : float
        Largest height difference [m].
    sampling : SamplingOptions, optional
        The sampling design; must be the one the receptors were made with
        (:func:`transport_models.write_receptor_table`).

    Returns
    -------
    ObservationMatch

    Raises
    ------
    KeyError
        A receptor column is missing.
    ValueError
        Non-positive tolerances; bad observations (see ``sample_receptors``).
    FootprintError
        Two receptors match the same sample or the same column, or a column has both
        per-level and whole-column receptors.
    """
    for c in ("time", "lat", "lon", "height"):
        if c not in receptors.columns:
            raise KeyError(
                f"receptors: column {c!r} is missing; expected the receptor table of "
                "assemble_receptors (time, lat, lon, height, kind, id, file)"
            )
    tol_t = pd.Timedelta(time_tolerance).total_seconds()
    for name, v in (
        ("time_tolerance", tol_t),
        ("position_tolerance", position_tolerance),
        ("height_tolerance", height_tolerance),
    ):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name}: expected a positive tolerance, found {v}")
    samples = sample_receptors(obs, sampling)
    n_obs, n_rec = samples.n_obs, len(receptors)
    kind_obs = obs["kind"].values.astype(str)
    ot = obs["time"].values.astype("datetime64[ns]")
    ref = ot.min()

    def secs(t: np.ndarray) -> np.ndarray:
        return (np.asarray(t, "datetime64[ns]") - ref) / np.timedelta64(1, "s") / tol_t

    rt = secs(receptors["time"].to_numpy())
    rlat = receptors["lat"].to_numpy(float) / position_tolerance
    rlon = _lon(receptors["lon"].to_numpy(float)) / position_tolerance
    rh = receptors["height"].to_numpy(float)
    has_h = np.isfinite(rh)
    rec_sample = np.full(n_rec, -1, np.int64)
    rec_obs = np.full(n_rec, -1, np.int64)
    whole = np.zeros(n_rec, bool)
    bound = 1.0 + 1e-9

    q = np.flatnonzero(has_h)
    if q.size:
        tree = cKDTree(
            np.column_stack(
                [
                    secs(samples.time),
                    samples.lat / position_tolerance,
                    _lon(samples.lon) / position_tolerance,
                    samples.height / height_tolerance,
                ]
            )
        )
        pts = np.column_stack([rt[q], rlat[q], rlon[q], rh[q] / height_tolerance])
        dist, idx = tree.query(pts, p=np.inf, distance_upper_bound=bound)
        ok = np.isfinite(dist)
        rec_sample[q[ok]] = idx[ok]

    # receptors without a height: whole columns, or towers (one sample) by time and position
    targets = np.flatnonzero(np.isin(kind_obs, ("column", "tower")))
    q = np.flatnonzero(~has_h)
    n_ambiguous = 0
    if q.size and targets.size:
        tree = cKDTree(
            np.column_stack(
                [
                    secs(ot[targets]),
                    obs["lat"].values[targets] / position_tolerance,
                    _lon(obs["lon"].values[targets]) / position_tolerance,
                ]
            )
        )
        k = min(2, targets.size)
        dist, idx = tree.query(
            np.column_stack([rt[q], rlat[q], rlon[q]]), k=k, p=np.inf, distance_upper_bound=bound
        )
        dist, idx = dist.reshape(q.size, k), idx.reshape(q.size, k)
        first = np.isfinite(dist[:, 0])
        ambiguous = first & (np.isfinite(dist[:, 1]) if k > 1 else False)
        n_ambiguous = int(ambiguous.sum())
        ok = first & ~ambiguous
        o = targets[np.where(ok, idx[:, 0], 0)]
        is_col = ok & (kind_obs[o] == "column")
        is_tower = ok & (kind_obs[o] == "tower")
        rec_obs[q[is_col]] = o[is_col]
        whole[q[is_col]] = True
        ptr = samples.ptr
        rec_sample[q[is_tower]] = ptr[o[is_tower]]
    matched_sample = rec_sample >= 0
    rec_obs[matched_sample] = samples.obs[rec_sample[matched_sample]]

    _duplicates(receptors, rec_sample, "observation sample")
    _duplicates(receptors, np.where(whole, rec_obs, -1), "whole column")
    n_req = np.bincount(samples.obs, minlength=n_obs)
    n_got = np.bincount(rec_obs[matched_sample], minlength=n_obs)
    has_whole = np.bincount(rec_obs[whole], minlength=n_obs) > 0
    both = np.flatnonzero(has_whole & (n_got > 0))
    if both.size:
        rows = np.flatnonzero(np.isin(rec_obs, both[:1]))
        raise FootprintError(
            f"{both.size} column observation(s) have both a whole-column footprint (no "
            f"receptor height) and per-level footprints: {'; '.join(_describe(receptors, rows))}"
            "; give one or the other"
        )
    complete = has_whole | ((n_got == n_req) & (n_req > 0))

    # combination: per-sample weights, whole columns with weight 1, complete rows only
    m = np.flatnonzero(matched_sample | whole)
    w = np.where(whole[m], 1.0, samples.weight[np.maximum(rec_sample[m], 0)])
    keep = complete[rec_obs[m]]
    comb = sp.csr_array((w[keep], (rec_obs[m][keep], m[keep])), shape=(n_obs, n_rec), dtype=float)
    comb.sum_duplicates()

    report = _report(
        receptors, kind_obs, rec_obs, whole, has_h, n_req, n_got, complete, n_ambiguous
    )
    report["tolerances"] = {
        "time": str(pd.Timedelta(time_tolerance)),
        "position_deg": float(position_tolerance),
        "height_m": float(height_tolerance),
    }
    if report["receptors"]["unmatched"] or report["n_incomplete"]:
        log.warning(
            "footprints: %d of %d receptors match no observation; %d of %d observations have "
            "no complete footprint (dropped by the caller)",
            report["receptors"]["unmatched"],
            n_rec,
            report["n_incomplete"],
            n_obs,
        )
    return ObservationMatch(
        comb, complete, rec_obs, np.where(whole, -1, rec_sample), samples, report
    )


def _report(
    receptors: pd.DataFrame,
    kind_obs: np.ndarray,
    rec_obs: np.ndarray,
    whole: np.ndarray,
    has_h: np.ndarray,
    n_req: np.ndarray,
    n_got: np.ndarray,
    complete: np.ndarray,
    n_ambiguous: int,
) -> dict[str, Any]:
    unmatched = np.flatnonzero(rec_obs < 0)
    rkind = receptors["kind"].astype(str).to_numpy() if "kind" in receptors else None
    by_kind = {}
    for kind in np.unique(kind_obs):
        sel = kind_obs == kind
        none = sel & ~complete & (n_got == 0)
        by_kind[str(kind)] = {
            "observations": int(sel.sum()),
            "complete": int((sel & complete).sum()),
            "incomplete": int((sel & ~complete).sum()),
            "samples": int(n_req[sel].sum()),
            "receptors_matched": int(np.isin(rec_obs, np.flatnonzero(sel)).sum()),
            "reasons": {
                "no footprint receptor": int(none.sum()),
                "footprints for only some samples": int((sel & ~complete & (n_got > 0)).sum()),
            },
        }
    return {
        "receptors": {
            "total": int(rec_obs.size),
            "matched": int((rec_obs >= 0).sum()),
            "unmatched": int(unmatched.size),
            "whole_column": int(whole.sum()),
            "height_not_given": int(((rec_obs >= 0) & ~has_h & ~whole).sum()),
            "ambiguous_without_height": n_ambiguous,
            "unmatched_by_receptor_kind": (
                {
                    str(k): int(v)
                    for k, v in zip(*np.unique(rkind[unmatched], return_counts=True), strict=True)
                }
                if rkind is not None
                else {}
            ),
            "unmatched_examples": _describe(receptors, unmatched),
        },
        "observations": by_kind,
        "n_complete": int(complete.sum()),
        "n_incomplete": int((~complete).sum()),
    }


@dataclass
class FootprintOperator:
    """Observation operator from footprint files (:func:`assemble_h`).

    Attributes
    ----------
    H : scipy.sparse.csr_array
        (n_complete, state.size) [ppm per (µmol m-2 s-1)]: one row per complete observation,
        in observation order (``obs.isel(obs=complete)``); without observations one row per
        receptor. Extra-block columns are zero.
    complete : numpy.ndarray of bool
        (n_obs,) observations that have a complete footprint (all True without observations).
    report : dict
        The matching report (see :func:`match_observations`) plus ``"assembly"``.
    combination : scipy.sparse.csr_array or None
        (n_obs, n_receptor) receptor -> observation weights [1]; None without observations.
    assembly : AssemblyReport
        What the assembly read, dropped and cached.
    receptors : pandas.DataFrame
        The receptor table (one row per receptor).
    match : ObservationMatch or None
    """

    H: sp.csr_array
    complete: np.ndarray
    report: dict[str, Any]
    combination: sp.csr_array | None
    assembly: AssemblyReport
    receptors: pd.DataFrame
    match: ObservationMatch | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[Any]:
        """Transitional ``H, assembly_report = assemble_h(...)`` (deprecated).

        Raises when an observation has no complete footprint (the old behaviour), since ``H``
        then has fewer rows than the observation set.
        """
        warnings.warn(
            "unpacking assemble_h(...) as (H, report) is deprecated: use .H, .complete, "
            ".report and .assembly of the FootprintOperator",
            DeprecationWarning,
            stacklevel=2,
        )
        if not self.complete.all():
            bad = np.flatnonzero(~self.complete)
            raise FootprintError(
                f"{bad.size} observation(s) have no complete footprint (first: obs {bad[0]}); "
                f"report: {self.report.get('observations')}; use FootprintOperator.complete to "
                "drop them"
            )
        return iter((self.H, self.assembly))


def assemble_h(
    footprints: Sequence[str | Path | xr.DataArray],
    state: StateVector,
    obs: xr.Dataset | None = None,
    *,
    time_tolerance: str = "1min",
    position_tolerance: float = 1e-3,
    height_tolerance: float = 1.0,
    sampling: SamplingOptions | None = None,
    **kwargs: Any,
) -> FootprintOperator:
    """Observation operator ``H`` from footprint files, for observations of every kind.

    Assembles the receptor-level operator (:func:`assemble_receptors`), matches the
    receptors to the observations' samples (:func:`match_observations`) and combines them:
    ``H = combination[complete] @ H_receptor``. Observations without a complete footprint get
    no row: drop them with ``obs.isel(obs=np.flatnonzero(op.complete))`` and count them in QC
    (``op.report["observations"]``).

    Parameters
    ----------
    footprints : sequence of path or xarray.DataArray
        Footprint files.
    state : StateVector
    obs : xarray.Dataset, optional
        ObservationSet; without it the rows are the receptors in file order.
    time_tolerance, position_tolerance, height_tolerance, sampling
        See :func:`match_observations` [time; degrees; m].
    **kwargs
        Passed to :func:`assemble_receptors` (threshold, scheduler, cache_dir, ...).

    Returns
    -------
    FootprintOperator
    """
    op = assemble_receptors(footprints, state, **kwargs)
    if obs is None:
        n = op.H.shape[0]
        return FootprintOperator(
            op.H, np.ones(n, bool), {"assembly": op.report.to_dict()}, None, op.report,
            op.receptors,
        )  # fmt: skip
    m = match_observations(
        op.receptors, obs, time_tolerance=time_tolerance, position_tolerance=position_tolerance,
        height_tolerance=height_tolerance, sampling=sampling,
    )  # fmt: skip
    h = apply_rows(m.combination[np.flatnonzero(m.complete)], op.H)
    report = {**m.report, "assembly": op.report.to_dict()}
    return FootprintOperator(h, m.complete, report, m.combination, op.report, op.receptors, m)
