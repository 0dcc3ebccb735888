"""Network design: rank candidate additions to the observing network (towers, lidar scans,
satellite snapshots) by how much they reduce the posterior std of a total, with exact updates.

The posterior covariance does not depend on the data, so the effect of a candidate j (rows
H_j, errors R_j) on the target t = aᵀx is known before it is built. With
``z = [aᵀx; H_1 x; …; H_m x; o_new]`` (o_new: background offsets of new sites, prior std
``background.offsets.std_ppm``, independent of everything), the current posterior covariance
``Σ`` of z comes from one ``Posterior.aggregate_cov`` of the stacked weights. Observing
candidate j, ``y_j = M_j z + e_j``, conditions z exactly (Schur complement, the Kalman update
in the small space of z):

    Σ ← Σ − Σ M_jᵀ (M_j Σ M_jᵀ + R_j)⁻¹ M_j Σ,

so the greedy choice — at each step the candidate whose update leaves the smallest Var(t) —
and every step's std are exact, without re-solving the inversion. ``exhaustive`` evaluates
every subset of each size (at most 12 candidates). Candidates are independent of each other
and of the existing observations (their errors); their rows come from the run's transport
stage (plume model: built from the candidate's positions and times; footprints: the
candidate's footprint files).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
import xarray as xr

from cityflux import stages
from cityflux._timing import Timings

__all__ = [
    "CandidateRows",
    "DesignResult",
    "candidate_observations",
    "candidate_rows",
    "rank_candidates",
    "run_design",
    "target_row",
    "write_design",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class CandidateRows:
    """The rows a candidate adds to the inversion.

    Attributes
    ----------
    name, kind : str
    obs : xarray.Dataset
        The candidate's ObservationSet (values unused).
    H : scipy.sparse.csr_array
        (n_j, n_state) [ppm per state unit], with the columns of existing background offsets.
    R : numpy.ndarray
        (n_j, n_j) observation error covariance [ppm²] (the run's correlation rules).
    new_offsets : numpy.ndarray or None
        (n_j,) label of a background offset not in the state (a new site), "" where none.
    """

    name: str
    kind: str
    obs: xr.Dataset
    H: sp.csr_array
    R: np.ndarray
    new_offsets: np.ndarray | None


@dataclass(frozen=True)
class DesignResult:
    """Ranking of the candidates.

    Attributes
    ----------
    table : pandas.DataFrame
        ``rank``, ``candidate``, ``kind``, ``n_obs``, ``std_before_t``, ``std_after_t``,
        ``reduction_t``, ``reduction_percent`` (of the current std), ``cumulative_percent``,
        ``std_alone_t`` (the candidate added alone) [t CO2]. For ``exhaustive``: one line per
        subset size with the best subset (``candidate`` lists it).
    current_std : float
        Posterior std of the target with the current network [t CO2].
    prior_std : float
        Prior std of the target [t CO2].
    target : dict
        ``region``, ``sector``, ``period`` of the target row.
    method : str
    """

    table: pd.DataFrame
    current_std: float
    prior_std: float
    target: dict
    method: str


def target_row(labels: pd.DataFrame, region: str | None, sector: str, period: str | None) -> int:
    """Row of totals.csv designed for (the headline region's whole period by default).

    Raises
    ------
    KeyError
        If no row has this region, sector and period (the message lists what there is).
    """
    from cityflux.pipeline import headline_row

    lab = labels.reset_index(drop=True)
    if region is None:
        region = str(lab["region"].iloc[headline_row(lab)])
    period = str(lab["period"].iloc[0]) if period is None else period
    sel = (lab["region"] == region) & (lab["sector"] == sector) & (lab["period"] == period)
    if not sel.any():
        rows = sorted({f"{r}/{s}/{p}" for r, s, p in lab[["region", "sector", "period"]].values})
        raise KeyError(
            f"design.target: no total {region}/{sector}/{period}; choose one of {rows[:20]}"
        )
    return int(np.flatnonzero(sel.to_numpy())[0])


# ---------------------------------------------------------------------------------- candidates
def _local_days(time: Any) -> np.ndarray:
    start = time.edges[0].astype("datetime64[D]")
    end = (time.edges[-1] - np.timedelta64(1, "ns")).astype("datetime64[D]")
    return np.arange(start, end + np.timedelta64(1, "D")).astype("datetime64[ns]")


def _hourly_times(
    time: Any, hours_local: tuple[int, ...], lon: float
) -> tuple[np.ndarray, np.ndarray]:
    """UTC mid-hour times of the local-solar ``hours_local`` of every day in the period, and
    the index of their day."""
    days = _local_days(time)
    hrs = np.asarray(hours_local, float) + 0.5 - lon / 15.0
    t = (days[:, None] + (hrs * 3.6e12).astype("timedelta64[ns]")[None, :]).ravel()
    day = np.repeat(np.arange(days.size), hrs.size)
    keep = time.index(t) >= 0
    return t[keep], day[keep]


def candidate_observations(cand: Any, cfg: Any, grid: Any, time: Any) -> xr.Dataset:
    """The ObservationSet of a candidate (``design.candidates[i]``), values 0.

    Built candidates are on the run's target calibration scale; every candidate takes the
    run's error settings (``observation_errors``) and the background error
    (``background.error_ppm``); a candidate read from a file adds ``transport_ppm`` in
    quadrature to its transport error (as ``observations[].error_ppm`` does).

    Raises
    ------
    ValueError
        If the candidate has no observation inside the period or the domain.
    """
    import observations

    target = cfg.observation_errors.calibration_scale or "unspecified"
    if cand.path is not None:
        ds = observations.read(cand.path, format=cand.format, **cand.options)
    elif cand.kind == "column":
        cx, cy = grid.to_xy(np.array([cand.lon]), np.array([cand.lat]))
        half = 0.5 * cand.size_km * 1000.0
        ax = np.arange(-half, half + 1e-6, cand.spacing_km * 1000.0)
        sx, sy = (g.ravel() for g in np.meshgrid(ax, ax))
        lon, lat = grid.to_lonlat(cx[0] + sx, cy[0] + sy)
        inside = grid.contains_lonlat(lon, lat)
        lon, lat = lon[inside], lat[inside]
        n, lev = lon.size, cand.levels
        edges = np.linspace(1000.0, 50.0, lev + 1)  # hPa, surface first
        pw = (edges[:-1] - edges[1:]) / (edges[0] - edges[-1])
        ts = pd.Timestamp(cand.time)
        ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
        t = np.datetime64(ts, "ns")
        ds = observations.make_observation_set(
            np.zeros(n), np.full(n, t) + np.arange(n) * np.timedelta64(100, "ms"), "column",
            cand.name, lat, lon, 0.0,
            errors={"instrument": cand.error_ppm, "transport": cand.transport_ppm},
            extras={"group": np.zeros(n, int), "scale": np.full(n, target, dtype=object),
                    "averaging_kernel": np.ones((n, lev)),
                    "pressure_weight": np.broadcast_to(pw, (n, lev)).copy(),
                    "pressure": np.broadcast_to(0.5 * (edges[:-1] + edges[1:]), (n, lev)).copy(),
                    "co2_apriori": np.full((n, lev), 420.0)},
        )  # fmt: skip
    else:
        t, day = _hourly_times(time, cand.hours_local, cand.lon)
        n = t.size
        extras: dict[str, Any] = {"group": day, "scale": np.full(n, target, dtype=object)}
        lon, lat, alt = cand.lon, cand.lat, cand.alt
        if cand.kind == "lidar_path":
            extras.update(lat0=np.full(n, cand.lat), lon0=np.full(n, cand.lon),
                          alt0=np.full(n, cand.alt), lat1=np.full(n, cand.lat_end),
                          lon1=np.full(n, cand.lon_end), alt1=np.full(n, cand.alt_end))  # fmt: skip
            extras["group"] = np.arange(n)  # one scan per hour
            lon, lat = 0.5 * (cand.lon + cand.lon_end), 0.5 * (cand.lat + cand.lat_end)
            alt = 0.5 * (cand.alt + cand.alt_end)
        ds = observations.make_observation_set(
            np.zeros(n), t, cand.kind, cand.name, lat, lon, alt,
            errors={"instrument": cand.error_ppm, "transport": cand.transport_ppm},
            extras=extras,
        )  # fmt: skip
    t = ds["time"].values
    keep = (time.index(t) >= 0) & grid.contains_lonlat(ds["lon"].values, ds["lat"].values)
    if not keep.any():
        raise ValueError(
            f"design candidate {cand.name!r}: none of its {t.size} observations falls inside "
            "the period and the domain; check its position, hours or time"
        )
    attrs = dict(ds.attrs)
    ds = ds.isel(obs=np.flatnonzero(keep))
    ds.attrs = attrs
    ds = stages.apply_error_settings(ds, cfg.observation_errors)
    add = {}
    if cand.path is not None and cand.transport_ppm > 0:  # like observations[].error_ppm
        add["err_transport"] = np.hypot(ds["err_transport"].values, cand.transport_ppm)
    bg = cfg.background
    if bg.method != "none":
        if bg.error_ppm is None and bg.method != "constant":
            logger.warning(
                "design candidate %r: background.method=%s estimates the background error from "
                "data the candidate does not have yet; set background.error_ppm to include it",
                cand.name, bg.method,
            )  # fmt: skip
        add["err_background"] = np.hypot(ds["err_background"].values, bg.error_ppm or 0.0)
    if add:
        ds = ds.assign({k: ("obs", v, dict(ds[k].attrs)) for k, v in add.items()})
        ds.attrs = attrs
    return ds


def candidate_rows(cand: Any, cfg: Any, case: Any, met: Any) -> CandidateRows:
    """Rows of H (the run's transport stage), R and offset labels of one candidate."""
    obs = candidate_observations(cand, cfg, case.grid, case.time)
    tr_cfg = cfg.transport
    if cfg.transport.model != "plume":
        if cand.footprints is None:
            raise ValueError(
                f"design candidate {cand.name!r}: footprint transport needs the candidate's "
                "footprint files (design.candidates[].footprints: FOLDER)"
            )
        tr_cfg = cfg.transport.model_copy(update={"footprints": cand.footprints})
    tr = stages.transport_operator(obs, case.state, tr_cfg, met)
    obs = stages.drop_without_transport(obs, tr.keep, tr.report)
    pad = sp.csr_array((tr.H.shape[0], case.state.size - tr.H.shape[1]))
    h = sp.hstack([tr.H, pad], format="csr")
    h = sp.csr_array(h)
    new = None
    labels = stages.offset_labels(obs, cfg.background.offsets)
    if labels is not None:
        blk = case.state.blocks[stages.OFFSET_BLOCK]
        known = {str(v): i for i, v in enumerate(blk.labels)}
        idx = np.array([known.get(str(lab), -1) for lab in labels])
        rows = np.flatnonzero(idx >= 0)
        add = sp.csr_array((np.ones(rows.size), (rows, blk.slice.start + idx[rows])), shape=h.shape)
        h = sp.csr_array(h + add)
        new = np.where(idx >= 0, "", labels.astype(str))
    R = stages.observation_covariance(obs, cfg.observation_errors).to_dense()
    return CandidateRows(cand.name, str(obs["kind"].values[0]), obs, h, np.asarray(R), new)


# ---------------------------------------------------------------------------------- ranking
class _JointSpace:
    """Covariance of z = [t; candidate rows; new offsets] and each candidate's M_j, R_j."""

    def __init__(self, post: Any, a: Any, cands: list[CandidateRows], offset_var: float):
        W = sp.vstack([sp.csr_array(a).reshape(1, -1)] + [c.H for c in cands], format="csr")
        _, cov = post.aggregate_cov(W)
        labels = sorted({lab for c in cands if c.new_offsets is not None
                         for lab in c.new_offsets if lab})  # fmt: skip
        n0, nl = cov.shape[0], len(labels)
        self.sigma = np.zeros((n0 + nl, n0 + nl))
        self.sigma[:n0, :n0] = cov
        self.sigma[n0:, n0:] = offset_var * np.eye(nl)
        col = {lab: n0 + i for i, lab in enumerate(labels)}
        self.M, self.R = [], []
        start = 1
        for c in cands:
            n = c.H.shape[0]
            M = np.zeros((n, n0 + nl))
            M[np.arange(n), start + np.arange(n)] = 1.0
            if c.new_offsets is not None:
                for i, lab in enumerate(c.new_offsets):
                    if lab:
                        M[i, col[lab]] = 1.0
            self.M.append(M)
            self.R.append(c.R)
            start += n

    def variance_after(
        self, sigma: np.ndarray, js: list[int]
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Var(t) after observing candidates ``js``, and (P = Σ Mᵀ, factor of S) for updates."""
        M = np.vstack([self.M[j] for j in js])
        R = scipy.linalg.block_diag(*[self.R[j] for j in js])
        P = sigma @ M.T
        S = M @ P + R
        cf = scipy.linalg.cho_factor(S, lower=True, check_finite=False)
        v = float(sigma[0, 0] - P[0] @ scipy.linalg.cho_solve(cf, P[0], check_finite=False))
        return v, P, cf

    def update(self, sigma: np.ndarray, j: int) -> np.ndarray:
        _, P, cf = self.variance_after(sigma, [j])
        out = sigma - P @ scipy.linalg.cho_solve(cf, P.T, check_finite=False)
        return 0.5 * (out + out.T)


def rank_candidates(
    post: Any,
    weights: Any,
    candidates: list[CandidateRows],
    *,
    offset_std_ppm: float = 1.0,
    method: str = "greedy",
    max_selected: int | None = None,
    prior_var: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DesignResult:
    """Rank candidates by the reduction of the posterior std of ``weights @ x``.

    Parameters
    ----------
    post : inversion.Posterior
        The current network's posterior.
    weights : array_like or sparse
        (n_state,) weights of the target total [t CO2 per state unit].
    candidates : list of CandidateRows
    offset_std_ppm : float
        Prior std of the background offsets of new sites [ppm].
    method : str
        ``greedy`` or ``exhaustive``.
    max_selected : int, optional
        Rank at most this many (all by default).
    prior_var : float, optional
        Prior variance of the target [t CO2²] (for the table).
    progress : callable, optional
        ``progress(done, total)`` after each candidate evaluation step.

    Returns
    -------
    DesignResult
    """
    if not candidates:
        raise ValueError("design.candidates: no candidate to rank")
    a = np.asarray(sp.csr_array(weights).toarray() if sp.issparse(weights) else weights, float)
    a = a.reshape(1, -1)
    space = _JointSpace(post, a, candidates, offset_std_ppm**2)
    sigma = space.sigma
    current = float(np.sqrt(sigma[0, 0]))
    m = len(candidates)
    k = m if max_selected is None else min(max_selected, m)
    alone = [np.sqrt(space.variance_after(sigma, [j])[0]) for j in range(m)]
    rows = []
    if method == "greedy":
        left, std_prev = list(range(m)), current
        for step in range(k):
            var = [space.variance_after(sigma, [j])[0] for j in left]
            best = left[int(np.argmin(var))]
            std = float(np.sqrt(min(var)))
            rows.append((step + 1, candidates[best], std_prev, std, alone[best]))
            sigma = space.update(sigma, best)
            left.remove(best)
            std_prev = std
            if progress is not None:
                progress(step + 1, k)
    elif method == "exhaustive":
        std_prev = current
        for size in range(1, k + 1):
            best_v, best_js = np.inf, ()
            for js in combinations(range(m), size):
                v = space.variance_after(sigma, list(js))[0]
                if v < best_v:
                    best_v, best_js = v, js
            std = float(np.sqrt(best_v))
            names = "+".join(candidates[j].name for j in best_js)
            rows.append((size, names, std_prev, std, np.nan, best_js))
            std_prev = std
            if progress is not None:
                progress(size, k)
    else:
        raise ValueError(f"method: expected 'greedy' or 'exhaustive', found {method!r}")
    table = pd.DataFrame(
        {
            "rank": [r[0] for r in rows],
            "candidate": [r[1].name if isinstance(r[1], CandidateRows) else r[1] for r in rows],
            "kind": [r[1].kind if isinstance(r[1], CandidateRows)
                     else "+".join(candidates[j].kind for j in r[5]) for r in rows],
            "n_obs": [r[1].H.shape[0] if isinstance(r[1], CandidateRows)
                      else sum(candidates[j].H.shape[0] for j in r[5]) for r in rows],
            "std_before_t": [r[2] for r in rows],
            "std_after_t": [r[3] for r in rows],
        }
    )  # fmt: skip
    table["reduction_t"] = table["std_before_t"] - table["std_after_t"]
    table["reduction_percent"] = 100.0 * table["reduction_t"] / current
    table["cumulative_percent"] = 100.0 * (1.0 - table["std_after_t"] / current)
    table["std_alone_t"] = [r[4] for r in rows]
    prior_std = float(np.sqrt(prior_var)) if prior_var is not None else float("nan")
    return DesignResult(table, current, prior_std, {}, method)


# ---------------------------------------------------------------------------------- driver
def run_design(
    cfg: Any, progress: Progress | None = None, bar: Callable[[int, int], None] | None = None
) -> tuple[Any, DesignResult, list[CandidateRows]]:
    """Solve the configured case and rank ``cfg.design``'s candidates.

    Returns
    -------
    result : cityflux.pipeline.RunResult
        The current network's run (no per-kind comparison).
    design : DesignResult
    candidates : list of CandidateRows

    Raises
    ------
    ValueError
        If the configuration has no ``design`` section.
    """
    from cityflux import synthetic
    from cityflux.pipeline import RunResult, diagnostics, prepare_case, solve_case

    if cfg.design is None:
        raise ValueError("cityflux design needs a 'design:' section with candidates")
    step = progress or (lambda s: None)
    case, world = prepare_case(cfg, step)
    met = None
    if world is not None:
        met = world.met
        case = synthetic.observe(case, cfg, world)
    elif cfg.transport.model == "plume":
        met = stages.load_met(cfg.transport.met, cfg.period)
    step(f"solving the current network (n_state={case.state.size}, n_obs={case.y.size})")
    post = solve_case(case, cfg)
    totals, cov = stages.totals_table(
        post, case.B, case.x_prior, case.weights, case.labels, case.x_truth
    )
    result = RunResult(cfg, case, post, totals, cov, [], {}, {})
    result.diagnostics = diagnostics(case, cfg, post, totals, [], Timings())
    tg = cfg.design.target
    row = target_row(case.labels, tg.region, tg.sector, tg.period)
    cands = []
    for i, cand in enumerate(cfg.design.candidates):
        step(f"candidate {i + 1}/{len(cfg.design.candidates)}: {cand.name} (transport)")
        cands.append(candidate_rows(cand, cfg, case, met))
    step(f"ranking {len(cands)} candidates ({cfg.design.method})")
    res = rank_candidates(
        post, case.weights[[row]], cands, offset_std_ppm=cfg.background.offsets.std_ppm,
        method=cfg.design.method, max_selected=cfg.design.max_selected,
        prior_var=float(totals["prior_std"].iloc[row]) ** 2, progress=bar,
    )  # fmt: skip
    lab = case.labels.iloc[row]
    target = {"row": row, "region": str(lab["region"]), "sector": str(lab["sector"]),
              "period": str(lab["period"])}  # fmt: skip
    res = DesignResult(res.table, res.current_std, res.prior_std, target, res.method)
    return result, res, cands


def write_design(
    result: Any, design: DesignResult, cands: list[CandidateRows], out_dir: Any
) -> dict[str, Any]:
    """Write ``design.csv`` (the ranking), ``design_candidates.csv`` (positions) and
    ``design_map.png`` into ``out_dir``; return their paths."""
    from pathlib import Path

    from cityflux._files import atomic_write
    from cityflux.figures import RunView, design_map
    from cityflux.outputs import posterior_dataset

    out = Path(out_dir)
    table = design.table.copy()
    for k, v in design.target.items():
        table[f"target_{k}"] = v
    table["current_std_t"] = design.current_std
    table["prior_std_t"] = design.prior_std

    def first(c: CandidateRows, var: str) -> float:
        return float(c.obs[var].values[0]) if var in c.obs else float("nan")

    pos = pd.DataFrame(
        {
            "name": [c.name for c in cands],
            "kind": [c.kind for c in cands],
            "n_obs": [c.H.shape[0] for c in cands],
            "lon": [float(np.mean(c.obs["lon"].values)) for c in cands],
            "lat": [float(np.mean(c.obs["lat"].values)) for c in cands],
            "lon_min": [float(c.obs["lon"].min()) for c in cands],
            "lon_max": [float(c.obs["lon"].max()) for c in cands],
            "lat_min": [float(c.obs["lat"].min()) for c in cands],
            "lat_max": [float(c.obs["lat"].max()) for c in cands],
            **{v: [first(c, v) for c in cands] for v in ("lon0", "lat0", "lon1", "lat1")},
        }
    )
    paths = {
        "design.csv": atomic_write(
            out / "design.csv", lambda p: table.to_csv(p, index=False, float_format="%.10g")
        ),
        "design_candidates.csv": atomic_write(
            out / "design_candidates.csv", lambda p: pos.to_csv(p, index=False)
        ),
    }
    view = RunView.from_outputs(
        result, posterior_dataset(result, {}), result.case.observation_table(result.posterior.mean),
        result.diagnostics,
    )  # fmt: skip
    png = design_map(view, design.table if design.method == "greedy" else table.iloc[:0], pos)
    paths["design_map.png"] = atomic_write(out / "design_map.png", lambda p: p.write_bytes(png))
    return paths
