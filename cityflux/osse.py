"""The OSSE harness: many synthetic truths through the path of ``cityflux run``.

:func:`run_osse` builds the synthetic case once (inputs, H, B, R: the network and the met stay
fixed), solves it once, then draws N truths and observation vectors from the TRUE covariances
(``synthetic.truth``) and gets each draw's posterior by reusing the factorisation
(``Posterior.means_for``), so a draw of a small case costs milliseconds. It reports, per draw
and per row of totals.csv, the truth, prior, posterior and posterior std, the draw's χ²/n,
and the coverage of the 68 % and 95 % intervals.

Example
-------
>>> from cityflux.config import load_config
>>> res = run_osse(load_config("examples/osse_small.yaml"), draws=300)  # doctest: +SKIP
>>> res.coverage(0.95)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from cityflux import stages
from cityflux._timing import Timings
from cityflux.config import CityfluxConfig
from cityflux.diagnostics import group_statistics, innovation_precision
from cityflux.pipeline import headline_row, prepare_case, solve_case

__all__ = ["OsseResult", "run_osse"]

logger = logging.getLogger(__name__)

#: Columns of osse.csv.
COLUMNS = (
    "draw", "row", "region", "sector", "period", "truth", "prior", "posterior", "posterior_std",
    "chi2",
)  # fmt: skip

#: Extra columns of osse.csv when the hyperparameters are estimated per draw.
HYPER_COLUMNS = (
    "lower_95", "upper_95", "lower_68", "upper_68", "posterior_plugin", "posterior_std_plugin",
)  # fmt: skip

#: Draws per vectorised batch (bounds the (batch, n_state) arrays held at once).
BATCH = 64


@dataclass(eq=False)
class OsseResult:
    """Draws of an OSSE and their summary.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per draw and per row of totals.csv: ``draw``, ``row``, ``region``, ``sector``,
        ``period``, ``truth``, ``prior``, ``posterior``, ``posterior_std`` [t CO2] and the
        draw's ``chi2`` (χ²/n of the innovations).
    headline : int
        Row of totals.csv of the headline (city) total.
    n_state, n_obs : int
    n_obs_by_kind : dict of str to int
    sites : pandas.DataFrame or None
        One row per draw and per site: leave-one-site-out ``chi2_per_n``, ``offset_ppm``,
        ``offset_sd_ppm`` and ``flagged`` (:mod:`cityflux.diagnostics`); None where the
        posterior has no factorisation of S (cg) or is log-normal.
    timings : Timings
        Wall and CPU time [s] of the set-up, the solve and the draws.
    hyperparameters : pandas.DataFrame or None
        With ``inversion.hyperparameters.estimate``: one row per draw, the draw's estimate
        of each hyperparameter [its units] and ``converged``, ``any_at_bound``, ``any_flat``,
        ``loglik``; the table then holds each draw's propagated totals (``posterior``,
        ``posterior_std``, the mixture's ``lower_95`` … ``upper_68``) and the plug-in ones
        (``posterior_plugin``, ``posterior_std_plugin``).
    negative_cells : numpy.ndarray or None
        (n_draws,) flux cells with a negative posterior (the mean of the Gaussian posterior,
        the mode of the log-normal one) in each draw.
    interval : str
        ``gaussian`` (posterior ± z·std) or ``lognormal-<totals>`` (the quantile columns
        ``posterior_q025`` … ``posterior_q975`` of the log-normal posterior, asymmetric, from
        ``inversion.lognormal.totals``: ``laplace``, ``importance`` or ``rto``).
    """

    table: pd.DataFrame
    headline: int
    n_state: int
    n_obs: int
    n_obs_by_kind: dict[str, int]
    sites: pd.DataFrame | None = None
    timings: Timings = field(default_factory=Timings)
    hyperparameters: pd.DataFrame | None = None
    negative_cells: np.ndarray | None = None
    interval: str = "gaussian"

    def flag_rates(self) -> pd.Series:
        """Share of draws in which each site is flagged as inconsistent [1]."""
        if self.sites is None:
            return pd.Series(dtype=float)
        return self.sites.groupby("site")["flagged"].mean()

    @property
    def n_draws(self) -> int:
        """Number of draws."""
        return int(self.table["draw"].nunique())

    def coverage(self, level: float, row: int | None = None, *, plugin: bool = False) -> float:
        """Share of draws whose central ``level`` interval of ``row`` holds the truth [1].

        ``row`` defaults to the headline (city) total; intervals are Gaussian,
        ``posterior ± z·posterior_std`` with ``z`` the ``(1 + level)/2`` normal quantile; with
        estimated hyperparameters and a level of 0.68 or 0.95, the mixture's own quantiles
        (``lower_*``, ``upper_*``); for a log-normal posterior, its quantile columns (levels 0.68
        and 0.95). ``plugin``: the Gaussian interval of the plug-in estimate alone.

        Raises
        ------
        ValueError
            For a log-normal posterior at a level without quantile columns.
        """
        t = self.table[self.table["row"] == (self.headline if row is None else row)]
        tag = {0.68: "68", 0.95: "95"}.get(round(level, 6))
        if plugin:
            z = special.ndtri(0.5 + 0.5 * level)
            err = np.abs(t["posterior_plugin"] - t["truth"])
            return float(np.mean(err <= z * t["posterior_std_plugin"]))
        if self.interval != "gaussian":
            cols = {"95": ("posterior_q025", "posterior_q975"),
                    "68": ("posterior_q16", "posterior_q84")}  # fmt: skip
            if tag not in cols:
                raise ValueError(
                    f"coverage: the log-normal OSSE has the 68 % and 95 % quantiles, not {level}"
                )
            lo, hi = cols[tag]
            return float(np.mean((t[lo] <= t["truth"]) & (t["truth"] <= t[hi])))
        if tag is not None and f"lower_{tag}" in t:
            inside = (t[f"lower_{tag}"] <= t["truth"]) & (t["truth"] <= t[f"upper_{tag}"])
            return float(np.mean(inside))
        z = special.ndtri(0.5 + 0.5 * level)
        return float(np.mean(np.abs(t["posterior"] - t["truth"]) <= z * t["posterior_std"]))

    @property
    def mean_chi2(self) -> float:
        """Mean over draws of χ²/n."""
        return float(self.table.groupby("draw")["chi2"].first().mean())

    def summary(self) -> dict[str, float]:
        """Coverage of the headline total (68 %, 95 %), mean χ²/n, number of draws, the mean
        number of negative flux cells of the posterior per draw; with estimated hyperparameters
        also the plug-in coverage and the share of draws whose fit converged / hit a bound / had
        a parameter it could not identify."""
        out = {
            "n_draws": self.n_draws,
            "coverage_68": self.coverage(0.68),
            "coverage_95": self.coverage(0.95),
            "mean_chi2": self.mean_chi2,
        }
        if self.negative_cells is not None:
            out["negative_cells_mean"] = float(np.mean(self.negative_cells))
        if self.hyperparameters is not None:
            h = self.hyperparameters
            out["coverage_95_plugin"] = self.coverage(0.95, plugin=True)
            out["coverage_68_plugin"] = self.coverage(0.68, plugin=True)
            for c in ("converged", "any_at_bound", "any_flat"):
                out[f"share_{c}"] = float(h[c].mean())
        return out


def run_osse(
    cfg: CityfluxConfig,
    draws: int,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> OsseResult:
    """Run ``draws`` synthetic truths through the case of ``cfg``.

    Parameters
    ----------
    cfg : CityfluxConfig
        A configuration with a ``synthetic`` section.
    draws : int
        Number of draws (>= 1).
    seed : int
        Seed of the truths and observation errors (the city itself is seeded by
        ``synthetic.seed``).
    progress : callable, optional
        ``progress(done, total)`` after each batch of draws.

    Returns
    -------
    OsseResult

    Raises
    ------
    ValueError
        If ``cfg`` has no ``synthetic`` section, ``draws`` < 1, or hyperparameters are
        estimated with a log-normal posterior.
    """
    from cityflux import synthetic

    if cfg.synthetic is None:
        raise ValueError("osse: the configuration has no 'synthetic' section; add one")
    if draws < 1:
        raise ValueError(f"osse: --draws must be >= 1, found {draws}")
    if cfg.inversion.positivity == "lognormal" and cfg.inversion.hyperparameters.active:
        raise ValueError(
            "osse: inversion.hyperparameters.estimate with inversion.positivity=lognormal is not "
            "supported: the draws of a log-normal posterior do not re-estimate the "
            "hyperparameters; set one of them off (cityflux run supports both, plug-in)"
        )
    timings = Timings()
    with timings.stage("setup"):
        case, world = prepare_case(cfg)
        model = synthetic.truth_model(case, cfg, world)
        x0, y0 = model.draw(case, 1, np.random.default_rng([seed, 4]))
        case = case.with_data(y0[0], x0[0])
    rng = np.random.default_rng([seed, 3])
    lognormal = cfg.inversion.positivity == "lognormal"
    with timings.stage("solve"):
        if lognormal:
            from cityflux import positivity

            prior = positivity.log_prior(case, cfg)
            post = positivity.solve_positive(case, cfg, prior)
            x_prior = prior.x_mean
        else:
            post, x_prior = solve_case(case, cfg), case.x_prior
        totals, _ = stages.totals_table(post, case.B, x_prior, case.weights, case.labels)
    setup = None
    if cfg.inversion.hyperparameters.active:  # each draw estimates its own hyperparameters
        from cityflux.hyper import hyper_setup

        with timings.stage("hyperparameter blocks"):
            setup = hyper_setup(case, cfg)
    with timings.stage("draws"):
        if lognormal:
            hyper = None
            table, sites, negative = _draws_lognormal(
                case, model, post, totals, draws, rng, progress, cfg
            )
        else:
            table, sites, negative, hyper = _draws(
                case, model, post, totals, draws, rng, progress, setup
            )
    logger.info("osse: %d draws in %.2f s", draws, timings.wall["draws"])
    return OsseResult(
        table=table,
        headline=headline_row(case.labels),
        n_state=int(case.state.size),
        n_obs=int(case.y.size),
        n_obs_by_kind=case.n_obs_by_kind,
        sites=sites,
        timings=timings,
        hyperparameters=hyper,
        negative_cells=negative,
        interval=f"lognormal-{cfg.inversion.lognormal.totals}" if lognormal else "gaussian",
    )


def _site_table(post, case, Y: np.ndarray, first: int, P) -> pd.DataFrame | None:
    if post.method == "cg":
        return None
    st = group_statistics(post, case.obs["site"].values, (Y - case.H @ case.x_prior).T, P=P)
    g, m = st.chi2.shape
    return pd.DataFrame(
        {
            "draw": np.tile(np.arange(first, first + m), g),
            "site": np.repeat(st.labels, m),
            "chi2_per_n": (st.chi2 / st.n[:, None]).ravel(),
            "offset_ppm": st.bias.ravel(),
            "offset_sd_ppm": np.repeat(st.bias_sd, m),
            "flagged": st.flagged().ravel(),
        }
    )


def _hyper_columns(setup, Y: np.ndarray, start: int) -> tuple[dict, pd.DataFrame]:
    """Per-draw estimates and propagated totals (``cityflux.hyper.osse_draws``)."""
    from cityflux.hyper import DRAW_FLAGS, osse_draws

    res = osse_draws(setup, Y)
    values = np.array([p.configured for p in setup.params]) * np.exp(res["phi"])
    est = pd.DataFrame(values, columns=setup.names)
    est.insert(0, "draw", np.arange(start, start + Y.shape[0]))
    for c in DRAW_FLAGS:
        est[c] = res[c]
    cols = {c: res[c].ravel() for c in HYPER_COLUMNS}
    cols["posterior"], cols["posterior_std"] = (
        res["posterior"].ravel(),
        res["posterior_std"].ravel(),
    )
    return cols, est


def _draws(case, model, post, totals, draws, rng, progress, setup=None):
    W = case.weights
    k = W.shape[0]
    std = totals["posterior_std"].to_numpy()
    parts, site_parts, hyper_parts, negative = [], [], [], []
    P = innovation_precision(post) if post.method != "cg" else None
    nf = case.state.n_flux
    for start in range(0, draws, BATCH):
        n = min(BATCH, draws - start)
        X, Y = model.draw(case, n, rng, first=start)
        site_parts.append(_site_table(post, case, Y, start, P))
        means = post.means_for(Y)
        negative.append((means[:, :nf] < 0).sum(axis=1))
        chi2 = np.atleast_1d(post.chi2_for(Y))
        part = pd.DataFrame(
            {
                "draw": np.repeat(np.arange(start, start + n), k),
                "row": np.tile(np.arange(k), n),
                "truth": np.asarray(W @ X.T).T.ravel(),
                "posterior": np.asarray(W @ means.T).T.ravel(),
                "chi2": np.repeat(chi2, k),
            }
        )
        if setup is not None:
            cols, est = _hyper_columns(setup, Y, start)
            for c, v in cols.items():
                part[c] = v
            hyper_parts.append(est)
        parts.append(part)
        if progress is not None:
            progress(start + n, draws)
    table = _labelled(parts, totals)
    if setup is None:
        table["posterior_std"] = std[table["row"].to_numpy()]
    sites = None if site_parts[0] is None else pd.concat(site_parts, ignore_index=True)
    extra = list(HYPER_COLUMNS) if setup is not None else []
    hyper = pd.concat(hyper_parts, ignore_index=True) if hyper_parts else None
    return table[[*COLUMNS, *extra]], sites, np.concatenate(negative), hyper


#: Quantile columns of a log-normal OSSE (probabilities).
LOGNORMAL_QUANTILES = {"posterior_q025": 0.025, "posterior_q16": 0.16, "posterior_q84": 0.84,
                       "posterior_q975": 0.975}  # fmt: skip


def _sampled_draws(case, cfg, Y: np.ndarray) -> dict[str, np.ndarray]:
    """Each draw's own log-normal posterior and sampled totals (``totals: rto/importance``)."""
    from cityflux import positivity

    prior = positivity.log_prior(case, cfg)
    out = {"posterior": [], "posterior_std": [], "chi2": [], "negative": [], "q": []}
    for y in Y:
        c = case.with_data(y)
        post = positivity.solve_positive(c, cfg, prior)
        t, _, _ = positivity.totals_table(post, prior, c, cfg)
        out["posterior"].append(t["posterior"].to_numpy())
        out["posterior_std"].append(t["posterior_std"].to_numpy())
        out["q"].append(t[list(LOGNORMAL_QUANTILES)].to_numpy())
        out["chi2"].append(post.chi2)
        out["negative"].append(int((post.mean[: case.state.n_flux] < 0).sum()))
    return {k: np.array(v) for k, v in out.items()}


def _draws_lognormal(case, model, post, totals, draws, rng, progress, cfg):
    """Draws through the log-normal posterior. ``totals: laplace``: each draw's mode by
    Newton–CG preconditioned with the first solve's Laplace, totals from the Laplace log-normal
    at that mode (batched, fast). ``rto`` / ``importance``: each draw solved and sampled as
    ``cityflux run`` does (about a second per draw and 1,000 samples)."""
    W = case.weights
    k = W.shape[0]
    nf = case.state.n_flux
    options = cfg.inversion.lognormal.options()
    sampled = cfg.inversion.lognormal.totals != "laplace"
    if sampled:
        logger.warning(
            "osse: inversion.lognormal.totals=%s solves and samples every draw (%d samples "
            "each); set inversion.lognormal.totals=laplace for a fast OSSE",
            cfg.inversion.lognormal.totals, cfg.inversion.lognormal.n_samples,
        )  # fmt: skip
    parts, negative = [], []
    for start in range(0, draws, BATCH):
        n = min(BATCH, draws - start)
        X, Y = model.draw(case, n, rng, first=start)
        cols = {
            "draw": np.repeat(np.arange(start, start + n), k),
            "row": np.tile(np.arange(k), n),
            "truth": np.asarray(W @ X.T).T.ravel(),
        }
        if sampled:
            out = _sampled_draws(case, cfg, Y)
            negative.append(out["negative"])
            cols.update(posterior=out["posterior"].ravel(),
                        posterior_std=out["posterior_std"].ravel(),
                        chi2=np.repeat(out["chi2"], k))  # fmt: skip
            for j, name in enumerate(LOGNORMAL_QUANTILES):
                cols[name] = out["q"][:, :, j].ravel()
        else:
            out = post.solve_batch(Y, W, options)
            negative.append((out["x"][:, :nf] < 0).sum(axis=1))
            T, sig = out["median"], out["log_std"]
            cols["posterior"] = T.ravel()
            cols["posterior_std"] = (T * np.sqrt(np.exp(sig**2) * np.expm1(sig**2))).ravel()
            cols["chi2"] = np.repeat(out["chi2"], k)
            for name, p in LOGNORMAL_QUANTILES.items():
                cols[name] = (T * np.exp(special.ndtri(p) * sig)).ravel()
        parts.append(pd.DataFrame(cols))
        if progress is not None:
            progress(start + n, draws)
    table = _labelled(parts, totals)
    return table[[*COLUMNS, *LOGNORMAL_QUANTILES]], None, np.concatenate(negative)


def _labelled(parts: list[pd.DataFrame], totals: pd.DataFrame) -> pd.DataFrame:
    """The draws' rows with the region, sector, period and prior of their row of totals."""
    table = pd.concat(parts, ignore_index=True)
    rows = table["row"].to_numpy()
    labels = totals[["region", "sector", "period"]].to_numpy()
    for j, name in enumerate(("region", "sector", "period")):
        table.insert(2 + j, name, labels[rows, j])
    table["prior"] = totals["prior"].to_numpy()[rows]
    return table
