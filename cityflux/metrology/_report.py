"""The run report: one self-contained ``report.html`` (figures embedded as data URIs, no
external resource) that someone who did not run the inversion can read: the maps, the totals
with their intervals, the uncertainty budget, the verification scores, the traceability of
the observations, the diagnostics, the QC counts and the provenance.

Everything comes from the run folder's files (through :class:`cityflux.figures.RunView`), so
``cityflux report RUN_DIR`` rebuilds the same report a run writes.
"""

from __future__ import annotations

import base64
import html
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cityflux._files import atomic_write, sha256_file
from cityflux.figures import RunView, render_figures

__all__ = ["build_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1b1b;
line-height:1.45;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:1.2em 2em 3em;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:2em}nav a{margin-right:1em}table{border-collapse:collapse;font-size:.85em;
margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#444}
.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em .8em;font-size:.9em}
pre{background:#f5f5f5;padding:.8em;overflow:auto;font-size:.8em;max-height:30em}
.key{font-size:1.15em}.muted{color:#666;font-size:.85em}
"""

# Marks images that did not load (a reader sees it; the test reads data-images).
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) {
      bad++; imgs[i].insertAdjacentHTML('afterend', '<p class="bad">figure failed to load</p>');
    }
  }
  document.body.setAttribute('data-images', imgs.length + ' ' + bad);
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, digits: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _e(x)
    if not np.isfinite(v):
        return "–"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.{digits}g}"
    return f"{v:,.{max(digits - len(str(int(abs(v)))), 0)}f}" if abs(v) >= 1 else f"{v:.{digits}g}"


def _table(df: pd.DataFrame, left: tuple[str, ...] = (), digits: int = 4) -> str:
    cols = list(df.columns)
    head = "".join(f'<th class="{"l" if c in left else ""}">{_e(c)}</th>' for c in cols)
    body = []
    for row in df.astype(object).itertuples(index=False):  # object: ints stay ints
        cells = []
        for c, v in zip(cols, row, strict=True):
            if c in left or isinstance(v, str | bool | np.bool_):
                cells.append(f'<td class="l">{_e(v)}</td>')
            elif isinstance(v, int | np.integer):
                cells.append(f"<td>{int(v):,}</td>")
            else:
                cells.append(f"<td>{_num(v, digits)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(figs: dict[str, bytes], name: str, caption: str) -> str:
    if name not in figs:
        return ""
    data = base64.b64encode(figs[name]).decode("ascii")
    return (
        f'<figure><img alt="{_e(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("cityflux", "numpy", "scipy", "xarray", "pandas", "netCDF4", "matplotlib",
                "pyproj"):  # fmt: skip
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _summary(view: RunView) -> str:
    d, t = view.diagnostics, view.totals
    city = d.get("city_total_t", {})
    row = t[(t["region"] == city.get("region")) & (t["sector"] == city.get("sector", "all"))]
    row = row[row["period"] == city.get("period")] if "period" in city else row
    r = row.iloc[0] if not row.empty else t.iloc[0]
    u = float(r["posterior_std"])
    lo, hi = r["posterior"] - 1.959964 * u, r["posterior"] + 1.959964 * u
    if "posterior_q025" in r:  # log-normal posterior: its quantiles (asymmetric)
        lo, hi = float(r["posterior_q025"]), float(r["posterior_q975"])
    red = 1.0 - u / float(r["prior_std"])
    kind = "synthetic city (OSSE): the truth is known" if view.is_synthetic() else "real data"
    truth = ""
    if "truth" in r and np.isfinite(r["truth"]):
        inside = lo <= r["truth"] <= hi
        truth = (
            f"<li>truth {_num(r['truth'])} t CO2, "
            f"<span class='{'ok' if inside else 'bad'}'>{'inside' if inside else 'outside'}"
            f"</span> the 95 % interval</li>"
        )
    return f"""
<p class="key">Headline total, <b>{_e(r["region"])}</b>, {_e(r["period"])}:
<b>{_num(r["posterior"])} t CO2</b>, standard uncertainty u = {_num(u)} t,
expanded uncertainty U = {_num(2 * u)} t (k = 2),
95 % coverage interval [{_num(lo)}, {_num(hi)}] t{_interval_note(r)}.</p>
<ul><li>prior {_num(r["prior"])} ± {_num(r["prior_std"])} t (1σ); the observations reduce the
uncertainty by {100 * red:.0f} %</li>{truth}
<li>{_e(kind)}; {d.get("n_obs")} observations {_e(d.get("n_obs_by_kind"))}, {d.get("n_state")}
unknowns, solver {_e(d.get("solver_method"))} (std {_e(d.get("std_method"))})</li>
<li>innovation χ²/n = {_num(d.get("chi2"), 3)} (about 1 when the assumed uncertainties match
the data), degrees of freedom for signal {_num(d.get("dofs"), 3)}</li></ul>"""


def _interval_note(r: pd.Series) -> str:
    if "posterior_q025" not in r:
        return ""
    return (
        " (quantiles of the non-negative, log-normal posterior: not symmetric about the "
        "median, which is the estimate shown)"
    )


def _totals_section(view: RunView) -> str:
    t = view.totals.copy()
    z = 1.959964
    out = t[["region", "sector", "period", "prior", "prior_std", "posterior", "posterior_std"]]
    out = out.rename(columns={"prior_std": "prior u", "posterior_std": "u"})
    out["U (k=2)"] = 2 * t["posterior_std"]
    lognormal = "posterior_q025" in t
    out["95 % low"] = t["posterior_q025"] if lognormal else t["posterior"] - z * t["posterior_std"]
    out["95 % high"] = t["posterior_q975"] if lognormal else t["posterior"] + z * t["posterior_std"]
    out["reduction %"] = 100 * (1 - t["posterior_std"] / t["prior_std"])
    if "truth" in t:
        out["truth"] = t["truth"]
    return (
        "<p>Every total of totals.csv [t CO2 over the period or day]: prior and posterior with "
        "their standard uncertainties (1σ), the expanded uncertainty U = 2u and the 95 % "
        + (
            "coverage interval: the 2.5 % and 97.5 % quantiles of the non-negative (log-normal) "
            "posterior, asymmetric about its median (the posterior shown).</p>"
            if lognormal
            else "coverage interval of the Gaussian posterior (±1.96u, JCGM 101).</p>"
        )
        + _table(out, left=("region", "sector", "period"))
    )


def _budget_section(view: RunView, figs: dict[str, bytes]) -> str:
    b = view.budget
    if b is None or b.empty:
        return "<p>No uncertainty budget in this run folder (budget.csv missing).</p>"
    whole = view.totals["period"].iloc[0]
    rows = view.totals[view.totals["period"] == whole]["row"].tolist()
    sub = b[b["row"].isin(rows)]
    pivot = sub.pivot_table(index="row", columns="source", values="share", sort=False) * 100
    lab = view.totals.set_index("row").loc[pivot.index, ["region", "sector"]]
    table = pd.concat([lab.reset_index(drop=True), pivot.reset_index(drop=True)], axis=1)
    types = b.drop_duplicates("source")[["source", "type"]]
    return (
        "<p>The posterior variance of each total split by source (JCGM 100 law of propagation "
        "for the linear model, exact): the prior flux and background offsets, and each "
        "observation-error component, through the sensitivity g = Kᵀa of the total to the "
        "observations. Shares in % of the variance; budget.csv has every total (variance in "
        "t², type A/B).</p>"
        + _figure(figs, "budget.png", "Uncertainty budget of the whole-period totals.")
        + _table(table, left=("region", "sector"), digits=3)
        + "<p>GUM evaluation type of each source:</p>"
        + _table(types, left=("source", "type"))
    )


def _verification_section(view: RunView, figs: dict[str, bytes]) -> str:
    v = view.verification
    if v is None or v.empty:
        return "<p>No inventory was scored (verification.csv missing).</p>"
    cols = ["inventory", "region", "sector", "period", "posterior_t", "inventory_t",
            "u_difference_t", "zeta", "En", "zeta_satisfactory", "En_satisfactory", "independent"]  # fmt: skip
    notes = v.drop_duplicates("inventory")[["inventory", "note"]]
    n_bad = int((~v["En_satisfactory"].astype(bool)).sum())
    return (
        "<p>ISO 13528 scores of the posterior totals against each inventory: "
        "ζ = (x − y)/u_d and E_n = (x − y)/(2u_d), with u_d the standard uncertainty of the "
        "difference; |ζ| ≤ 2 and |E_n| ≤ 1 are satisfactory. "
        f"<b>{n_bad}</b> of {len(v)} scores have |E_n| &gt; 1.</p>"
        + _figure(figs, "verification.png", "Totals with expanded uncertainties and scores.")
        + '<div class="note">'
        + "".join(f"<p><b>{_e(r.inventory)}</b>: {_e(r.note)}</p>" for r in notes.itertuples())
        + "</div>"
        + _table(v[cols], left=("inventory", "region", "sector", "period"))
    )


def _traceability_section(view: RunView) -> str:
    sc = view.diagnostics.get("calibration_scales")
    if not sc:
        return "<p>No calibration-scale record in diagnostics.json.</p>"
    rows = pd.DataFrame(sc["scales"])
    keep = [c for c in ("kind", "original_scale", "scale", "n_obs", "converted", "assumed",
                        "stated_uncertainty_ppm", "err_calibration_rms_ppm") if c in rows]  # fmt: skip
    refs = sorted({str(r) for r in rows.get("source", []) if r})
    convs = sorted({c["reference"] for c in rows.get("conversion", []) if isinstance(c, dict)})
    return (
        f"<p>Target calibration scale: <b>{_e(sc.get('target'))}</b>. {_e(sc.get('note', ''))}</p>"
        + _table(rows[keep], left=("kind", "original_scale", "scale"))
        + "".join(f"<p class='muted'>stated uncertainty: {_e(r)}</p>" for r in refs)
        + "".join(f"<p class='muted'>conversion: {_e(r)}</p>" for r in convs)
    )


def _diagnostics_section(view: RunView, figs: dict[str, bytes]) -> str:
    d, obs = view.diagnostics, view.observations
    parts = [
        "<p>Innovation χ² per observation group: the mean of dᵢ(S⁻¹d)ᵢ over the group's "
        "observations (d = y − H x_a), whose expectation is 1 when B and R are right; "
        "residuals y − H x̂ [ppm].</p>"
    ]
    if "chi2_contribution" in obs:
        g = obs.assign(res=obs["observed_ppm"] - obs["posterior_modelled_ppm"])
        tab = g.groupby(["kind", "site"]).agg(
            n_obs=("res", "size"), chi2=("chi2_contribution", "mean"),
            residual_mean_ppm=("res", "mean"),
            residual_rms_ppm=("res", lambda r: float(np.sqrt(np.mean(r**2)))),
        ).reset_index()  # fmt: skip
        by_kind = g.groupby("kind").agg(n_obs=("res", "size"), chi2=("chi2_contribution", "mean"))
        parts.append(_table(by_kind.reset_index(), left=("kind",)))
        parts.append(_table(tab.iloc[:60], left=("kind", "site")))
        if len(tab) > 60:
            parts.append(f"<p class='muted'>{len(tab) - 60} more groups in observations.csv</p>")
    parts.append(
        _table(
            pd.DataFrame(
                [
                    {
                        "χ²/n": d.get("chi2"),
                        "DOFS": d.get("dofs"),
                        "DOFS is an estimate": d.get("dofs_is_estimate"),
                        "n_obs": d.get("n_obs"),
                        "n_state": d.get("n_state"),
                    }
                ]
            )
        )
    )
    parts.append(_figure(figs, "obs_fit.png", "Observed against modelled (prior, posterior)."))
    return "".join(parts)


def _qc_section(view: RunView) -> str:
    qc = view.diagnostics.get("qc", {})
    rows = [
        {"source": s["source"], "read": s["read"], "kept": s["kept"],
         "dropped": sum(s["dropped"].values()), "why": "; ".join(
             f"{k}: {v}" for k, v in s["dropped"].items())}
        for s in qc.get("sources", [])
    ]  # fmt: skip
    warn = "".join(f"<li>{_e(w)}</li>" for w in qc.get("warnings", []))
    return (
        f"<p>{qc.get('n_kept')} observations kept, {qc.get('n_dropped')} dropped by QC.</p>"
        + (_table(pd.DataFrame(rows), left=("source", "why")) if rows else "")
        + (f"<p>Warnings:</p><ul>{warn}</ul>" if warn else "")
    )


def _provenance_section(view: RunView, run_dir: Path | None) -> str:
    d = view.diagnostics
    parts = [
        f"<p>config hash <code>{_e(d.get('config_hash'))}</code>, cityflux "
        f"{_e(d.get('cityflux_version'))}.</p>"
    ]
    checks = d.get("input_checksums", {})
    if checks:
        parts.append("<p>Inputs (SHA-256):</p>")
        parts.append(
            _table(
                pd.DataFrame({"input": list(checks), "sha256": list(checks.values())}),
                left=("input", "sha256"),
            )
        )
    parts.append("<p>Software:</p>")
    parts.append(_table(pd.DataFrame([_versions()]).T.reset_index().set_axis(
        ["package", "version"], axis=1), left=("package", "version")))  # fmt: skip
    if run_dir is not None:
        files = sorted(p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        files = [p for p in files if p.name not in ("report.html", "run.log")]  # still growing
        parts.append("<p>Files of the run folder:</p>")
        parts.append(_table(pd.DataFrame({
            "file": [p.name for p in files], "bytes": [p.stat().st_size for p in files],
            "sha256": [sha256_file(p) for p in files]}), left=("file", "sha256")))  # fmt: skip
        for name in ("config.yaml", "config.resolved.yaml"):
            if (run_dir / name).is_file():
                text = (run_dir / name).read_text(encoding="utf-8")
                parts.append(f"<p>{_e(name)}:</p><pre>{_e(text)}</pre>")
                break
    timings = d.get("timings_s")
    if timings:
        parts.append("<p>Wall time per stage [s]:</p>")
        parts.append(_table(pd.DataFrame([timings])))
    return "".join(parts)


def build_report(
    view: RunView, figures: dict[str, bytes] | None = None, run_dir: str | Path | None = None
) -> str:
    """The report's HTML text.

    Parameters
    ----------
    view : RunView
    figures : dict of str to bytes, optional
        PNG bytes by name (:func:`cityflux.figures.render_figures`); rendered when omitted.
    run_dir : path, optional
        The run folder (for the list of files, their checksums and the configuration text).
    """
    figs = render_figures(view) if figures is None else figures
    rd = Path(run_dir) if run_dir is not None else None
    when = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("summary", "Summary", _summary(view)),
        ("maps", "Maps", _figure(figs, "maps.png", (
            "Period-mean fluxes [µmol m-2 s-1] on the state grid in longitude/latitude; black "
            "outline: the reporting regions; markers: the observing network by kind.")) +
         _figure(figs, "uncertainty_reduction.png", (
            "Uncertainty reduction per cell, 1 − σ_post/σ_prior (per-step std, sectors in "
            "quadrature, period average), with the observing network."))),
        ("totals", "Totals", _figure(figs, "totals.png", "Totals with 95 % intervals.")
         + _totals_section(view)),
        ("budget", "Uncertainty budget", _budget_section(view, figs)),
        ("verification", "Inventory verification", _verification_section(view, figs)),
        ("traceability", "Traceability of the observations", _traceability_section(view)),
        ("diagnostics", "Diagnostics", _diagnostics_section(view, figs)),
        ("qc", "Quality control", _qc_section(view)),
        ("provenance", "Provenance", _provenance_section(view, rd)),
    ]  # fmt: skip
    nav = "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t, _ in sections)
    body = "".join(f'<section id="{k}"><h2>{_e(t)}</h2>{c}</section>' for k, t, c in sections)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>cityflux report: {_e(view.name)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>cityflux report: {_e(view.name)}</h1>"
        f"<p class='muted'>written {when}; totals in t CO2, fluxes in µmol m-2 s-1, "
        f"mole fractions in ppm; uncertainties are 1σ unless marked U (k = 2).</p>"
        f"<nav>{nav}</nav>{body}</main><script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(
    view: RunView, run_dir: str | Path, figures: dict[str, bytes] | None = None
) -> Path:
    """Write ``report.html`` into ``run_dir`` atomically; return its path."""
    rd = Path(run_dir)
    text = build_report(view, figures, rd)
    return atomic_write(rd / "report.html", lambda p: p.write_text(text, encoding="utf-8"))
