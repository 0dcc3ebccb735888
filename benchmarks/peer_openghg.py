"""A fair comparison with openghg_inversions (the peer), run in a SEPARATE virtual environment.

The peer is never a cityflux dependency. Install it apart (Python >= 3.10)::

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install openghg-inversions

then ``python benchmarks/peer_openghg.py --peer-python /tmp/peer/bin/python``. Without the peer
interpreter the cityflux half runs and the peer half prints a SKIP line (exit code 0).

Both codes solve the SAME problem, with the same state, prior and likelihood:

- geometry (seeded, ``--seed``): a lat-lon grid (``--ny`` x ``--nx`` cells of 0.02° x 0.03°,
  about 2.2 km) around a city, a static prior flux [µmol m-2 s-1] (diffuse 1 plus a Gaussian
  city core), ``--n-sites`` towers with hourly NAME-like footprints for ``--days`` days
  [ppm per µmol m-2 s-1] (an upwind plume that widens with distance; wind direction a seeded
  random walk), uniform boundary conditions of ``--background-ppm``;
- state: scaling factors of the prior flux on basis regions, ``x = x_a ∘ f[label]``, plus the
  peer's four boundary-condition factors (N, E, S, W; each edge carries a quarter of the
  background in this geometry). Config ``basis``: the peer's own regions (its
  ``--basis-algorithm`` with ``--nbasis``, made once by the peer and handed to both codes);
  config ``pixel``: one factor per grid cell (a diagonal prior at pixel resolution);
- prior: factors ~ N(1, ``--rel-sigma``²) independent (the peer's ``xprior`` "normal"), BC
  factors ~ N(1, ``--bc-sigma``²); likelihood: y = background + H x + e, e ~ N(0,
  ``--noise-ppm``²) (the peer without model error);
- for each of ``--seeds`` seeds, the truth is drawn from that prior (so a correct solver
  covers it 95 % of the time) and the observations from the truth.

cityflux solves the linear-Gaussian problem exactly (``solve(method="auto")``: dense at these
sizes); the peer (``benchmarks/_peer_openghg_driver.py``, a subprocess with HOME pointed at a
scratch folder) standardises the inputs into a throw-away OpenGHG store and runs
``fixedbasisMCMC`` (``--nit/--burn/--tune/--nchain``). Reported per config: RMSE of the city
total over the seeds, coverage of each code's 95 % interval (cityflux ±1.96 σ, exact; the
peer's central 95 % of its draws), and wall time split into set-up (cityflux: operators; the
peer: object store), compile + preparation (the peer's inversion call minus PyMC's sampling
time) and sampling / solve.

Species label: the peer treats "co2" as needing time-resolved (``H_back``) footprints and
fluxes, which this static problem has no use for, so the peer's store carries the problem
under the label ``--peer-species`` (default "ch4", obs written in its unit, 1e-9 mol/mol; the
numbers are the CO2 problem's, scaled 1000). The mathematics (linear, Gaussian) is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "benchmarks")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _machine import Run, add_json_argument  # noqa: E402

DLAT, DLON, LAT0, LON0 = 0.02, 0.03, 48.55, 1.90
EARTH_R_KM = 6371.0
M_CO2 = 44.01e-3  # kg/mol
# openghg.retrieve.get_obs_surface accepts only site codes listed in openghg_defs' site_info.json
# (no override), so the synthetic towers borrow existing codes as labels; their coordinates in
# the store are the synthetic ones (station_latitude/longitude, release_lat/lon).
SITE_LABELS = ("TAC", "MHD", "RGL", "BSD", "HFD", "WAO", "TTA", "CBW", "LUT", "KIT")


def make_geometry(args) -> dict:
    """The seeded grid, prior flux, towers and footprints (also handed to the peer as .npz)."""
    rng = np.random.default_rng(args.seed)
    ny, nx = args.ny, args.nx
    # float32-exact coordinates: the peer stores footprint coordinates as float32 and aligns
    # flux/boundary-condition grids on them exactly
    lat = (LAT0 + DLAT * (np.arange(ny) + 0.5)).astype(np.float32).astype(np.float64)
    lon = (LON0 + DLON * (np.arange(nx) + 0.5)).astype(np.float32).astype(np.float64)
    dy_km = np.deg2rad(DLAT) * EARTH_R_KM
    coslat = np.cos(np.deg2rad(lat.mean()))
    dx_km = np.deg2rad(DLON) * EARTH_R_KM * coslat
    area = (  # exact spherical cell areas [m2]
        (EARTH_R_KM * 1e3) ** 2 * np.deg2rad(DLON)
        * np.abs(np.sin(np.deg2rad(lat + DLAT / 2)) - np.sin(np.deg2rad(lat - DLAT / 2)))
    )[:, None] * np.ones((1, nx))  # fmt: skip
    yk = (np.arange(ny) - (ny - 1) / 2) * dy_km
    xk = (np.arange(nx) - (nx - 1) / 2) * dx_km
    r = np.hypot(yk[:, None], xk[None, :])
    x_prior = 1.0 + 25.0 * np.exp(-0.5 * (r / 6.0) ** 2)  # µmol m-2 s-1
    city = r <= args.city_km
    # towers on a ring around the centre; hourly footprints
    nt = 24 * args.days
    ang = 2 * np.pi * (np.arange(args.n_sites) + 0.5) / args.n_sites
    sy, sx = args.site_km * np.sin(ang), args.site_km * np.cos(ang)
    wind_dir = np.mod(225.0 + np.cumsum(rng.normal(0.0, 15.0, nt)), 360.0)  # from, degrees
    wind_speed = rng.uniform(2.0, 8.0, nt)
    th = np.deg2rad(wind_dir)
    uy, ux = np.cos(th), np.sin(th)  # unit vector pointing upwind (where air comes from)
    dyc = yk[None, None, :, None] - sy[:, None, None, None]  # (site, 1, y, 1)
    dxc = xk[None, None, None, :] - sx[:, None, None, None]
    s = dyc * uy[None, :, None, None] + dxc * ux[None, :, None, None]  # upwind distance km
    c = -dyc * ux[None, :, None, None] + dxc * uy[None, :, None, None]  # crosswind km
    width = 1.0 + 0.25 * np.clip(s, 0, None)
    fp = np.where(s > -1.0, np.exp(-0.5 * (c / width) ** 2) / (1.0 + np.clip(s, 0, None)), 0.0)
    fp *= (0.6 / wind_speed)[None, :, None, None] * (area / area.mean())[None, None]
    fp = fp.astype(np.float64)  # (site, time, y, x) ppm per µmol m-2 s-1
    t0 = np.datetime64("2024-06-03T00:00", "ns")
    return {
        "lat": lat, "lon": lon, "area": area, "x_prior": x_prior, "city": city, "fp": fp,
        "H": fp.reshape(args.n_sites * nt, ny * nx),
        "times": (t0 + np.arange(nt) * np.timedelta64(1, "h")).astype("int64"),
        "sites": np.array(SITE_LABELS[: args.n_sites]),
        "site_lat": LAT0 + DLAT * ny / 2 + sy / (np.deg2rad(1) * EARTH_R_KM),
        "site_lon": LON0 + DLON * nx / 2 + sx / (np.deg2rad(1) * EARTH_R_KM * coslat),
        "wind_dir": wind_dir, "wind_speed": wind_speed, "noise_ppm": args.noise_ppm,
        "background_ppm": args.background_ppm, "rel_sigma": args.rel_sigma,
        "seconds": 3600.0 * nt, "obs_unit_factor": 1e3,
    }  # fmt: skip


def draw_case(g: dict, labels: np.ndarray, args, seed: int) -> dict:
    """Truth from the shared prior and observations from it, for one seed."""
    rng = np.random.default_rng([args.seed, seed])
    n = int(labels.max())
    f = 1.0 + args.rel_sigma * rng.standard_normal(n)
    bc = 1.0 + args.bc_sigma * rng.standard_normal(4)
    truth = g["x_prior"] * f[labels - 1]
    y = (
        args.background_ppm * bc.mean() + g["H"] @ truth.ravel()
        + args.noise_ppm * rng.standard_normal(g["H"].shape[0])
    )  # fmt: skip
    return {"truth": truth, "y_total": y, "f": f, "bc": bc}


def city_weights(p: dict) -> np.ndarray:
    """Weights turning a flux map [µmol m-2 s-1] into the city total [kt CO2 over the period]."""
    return (p["city"] * p["area"]).ravel() * p["seconds"] * 1e-6 * M_CO2 * 1e-6


def run_cityflux(g: dict, labels: np.ndarray, y_total: np.ndarray, args) -> dict:
    """cityflux on the factor state (basis factors + 4 BC factors): set-up and solve timed."""
    import scipy.sparse as sp

    from inversion import LinearProblem, solve
    from inversion.covariance import DiagonalCovariance

    t0 = time.perf_counter()
    n = int(labels.max())
    cells = labels.size
    basis = sp.csr_array(
        (g["x_prior"].ravel(), (np.arange(cells), labels.ravel() - 1)), shape=(cells, n)
    )  # x = x_a ∘ f[label]: column j is the prior flux on region j
    H = np.hstack([np.asarray(sp.csr_array(g["H"]) @ basis.toarray()),
                   np.full((g["H"].shape[0], 4), args.background_ppm / 4.0)])  # fmt: skip
    var = np.r_[np.full(n, args.rel_sigma**2), np.full(4, args.bc_sigma**2)]
    problem = LinearProblem(
        H=H, x_prior=np.ones(n + 4), y=y_total, B=DiagonalCovariance(var),
        R=DiagonalCovariance(np.full(H.shape[0], args.noise_ppm**2)),
    )  # fmt: skip
    a = np.r_[basis.T @ city_weights(g), np.zeros(4)]  # city total [kt] per factor
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    post = solve(problem, "auto")
    total, std = post.aggregate(a)
    return {"t_setup": t_setup, "t_solve": time.perf_counter() - t0, "method": post.method,
            "total": total, "std": std, "lo": total - 1.96 * std, "hi": total + 1.96 * std}  # fmt: skip


def run_peer(p: dict, args, stage: str = "all", labels: np.ndarray | None = None) -> dict:
    peer = Path(args.peer_python)
    if not peer.exists():
        return {"skip": f"openghg-inversions is not installed at {peer}; create the peer venv: "
                "python3 -m venv /tmp/peer && /tmp/peer/bin/pip install openghg-inversions"}  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="cityflux_peer_"))
    keep = ("lat", "lon", "x_prior", "fp", "y_total_ppm", "times", "sites", "site_lat",
            "site_lon", "wind_dir", "wind_speed", "noise_ppm", "background_ppm", "rel_sigma",
            "obs_unit_factor", "area", "city", "seconds")  # fmt: skip
    np.savez(work / "problem.npz", **{k: np.asarray(p[k]) for k in keep})
    extra = []
    if labels is not None:
        np.save(work / "labels.npy", labels)
        extra = ["--basis-labels", str(work / "labels.npy")]
    cmd = [
        str(peer), str(ROOT / "benchmarks" / "_peer_openghg_driver.py"),
        "--problem", str(work / "problem.npz"), "--work", str(work),
        "--species", args.peer_species, "--nbasis", str(args.nbasis),
        "--basis-algorithm", args.basis_algorithm, "--nit", str(args.nit),
        "--burn", str(args.burn), "--tune", str(args.tune), "--nchain", str(args.nchain),
        "--stage", stage, "--model-error", "none", "--bc-sigma", str(args.bc_sigma), *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(work / "home")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.peer_timeout)
    wall = time.perf_counter() - t0
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        out = {"ok": False, "stage": "subprocess", "error": res.stderr.strip()[-2000:]}
    out["t_subprocess"] = wall
    out["work"] = str(work)
    if out.get("ok") and not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    if args.verbose:
        print(res.stderr[-6000:])
    return out


def summarise(rows: list[dict], code: str) -> dict:
    err = np.array([r[code]["total"] - r["truth_total"] for r in rows])
    cover = np.array([r[code]["lo"] <= r["truth_total"] <= r[code]["hi"] for r in rows])
    width = np.array([r[code]["hi"] - r[code]["lo"] for r in rows])
    return {"rmse": float(np.sqrt(np.mean(err**2))), "bias": float(err.mean()),
            "coverage": float(cover.mean()), "width": float(np.median(width)), "n": len(rows)}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", default="/tmp/peer/bin/python")
    ap.add_argument("--peer-species", default="ch4")
    ap.add_argument("--peer-timeout", type=float, default=3600.0)
    ap.add_argument("--configs", nargs="+", default=["basis", "pixel"], choices=["basis", "pixel"])
    ap.add_argument("--seeds", type=int, default=20, help="truths drawn per config")
    ap.add_argument(
        "--cityflux-seeds", type=int, default=0,
        help="further truths solved by cityflux alone (seeds after --seeds), to resolve its "
        "coverage more finely than the peer's time allows (binomial sd 0.05 at 20 seeds)",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=7, help="geometry seed")
    ap.add_argument("--ny", type=int, default=30)
    ap.add_argument("--nx", type=int, default=36)
    ap.add_argument("--n-sites", type=int, default=5, choices=range(1, len(SITE_LABELS) + 1))
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--site-km", type=float, default=12.0)
    ap.add_argument("--city-km", type=float, default=15.0)
    ap.add_argument("--rel-sigma", type=float, default=0.5)
    ap.add_argument("--bc-sigma", type=float, default=0.01)
    ap.add_argument("--noise-ppm", type=float, default=1.0)
    ap.add_argument("--background-ppm", type=float, default=420.0)
    ap.add_argument("--nbasis", type=int, default=50)
    ap.add_argument("--basis-algorithm", default="weighted")
    ap.add_argument("--nit", type=int, default=2000)
    ap.add_argument("--burn", type=int, default=500)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--nchain", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="print the peer's stderr tail")
    ap.add_argument("--keep-work", action="store_true", help="keep the peer's scratch stores")
    add_json_argument(ap)
    args = ap.parse_args(argv)
    bench = Run("peer_openghg", argv, args.json)
    g = make_geometry(args)
    w = city_weights(g)
    have_peer = Path(args.peer_python).exists()
    if not have_peer:
        print(f"SKIP peer: openghg-inversions is not installed at {args.peer_python}; create "
              "the peer venv: python3 -m venv /tmp/peer && /tmp/peer/bin/pip install "
              "openghg-inversions (cityflux half only)")  # fmt: skip
    print(f"geometry: {args.ny}x{args.nx} cells, {args.n_sites} towers x {24 * args.days} h = "
          f"{g['H'].shape[0]} obs; {args.seeds} truths per config drawn from the shared prior")  # fmt: skip
    for config in args.configs:
        if config == "pixel":
            labels = np.arange(1, args.ny * args.nx + 1).reshape(args.ny, args.nx)
        else:
            if not have_peer:
                print("SKIP basis config: the peer makes the basis regions")
                continue
            b = run_peer({**g, "y_total_ppm": np.full((args.n_sites, g["times"].size), 420.0)},
                         args, stage="basis")  # fmt: skip
            if not b.get("ok"):
                print(f"peer basis FAILED at {b.get('stage')}: {b.get('error')}")
                continue
            labels = np.asarray(b["labels"], dtype=int)
            labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape) + 1
        n = int(labels.max())
        rows = []
        for seed in range(args.seeds):
            case = draw_case(g, labels, args, seed)
            row = {"seed": seed, "truth_total": float(w @ case["truth"].ravel())}
            row["cityflux"] = run_cityflux(g, labels, case["y_total"], args)
            if have_peer:
                y2 = case["y_total"].reshape(args.n_sites, -1)
                pr = run_peer({**g, "y_total_ppm": y2}, args, labels=labels)
                if not pr.get("ok"):
                    print(f"peer FAILED at {pr.get('stage')}: {pr.get('error')} ({pr['work']})")
                    break
                pr.update(lo=pr["q025"], hi=pr["q975"])
                row["peer"] = pr
            rows.append(row)
            c, pr = row["cityflux"], row.get("peer")
            print(
                f"[{config} n={n} seed {seed}] truth {row['truth_total']:.4g} | cityflux "
                f"{c['total']:.4g} ± {c['std']:.3g} ({c['method']}, set-up {c['t_setup']:.3f} s, "
                f"solve {c['t_solve']:.4f} s)"
                + ("" if pr is None else f" | peer {pr['total']:.4g} ± {pr['std']:.3g} "
                   f"(store {pr['t_store']:.1f} s, inversion {pr['t_inversion']:.1f} s, sampling "
                   f"{pr['t_sampling'] or float('nan'):.1f} s; ESS min {pr['ess_min']:.0f}, R-hat "
                   f"max {pr['rhat_max']:.3f})"),
                flush=True,
            )  # fmt: skip
            bench.add(table=f"{config}: per seed", config=config, **_plain_row(row))
        if not rows:
            continue
        codes = ["cityflux"] + (["peer"] if "peer" in rows[0] else [])
        for code in codes:
            sm = summarise(rows, code)
            if code == "cityflux":
                t_set = np.median([r["cityflux"]["t_setup"] for r in rows])
                t_comp = 0.0
                t_run = np.median([r["cityflux"]["t_solve"] for r in rows])
            else:
                t_set = np.median([r["peer"]["t_store"] for r in rows])
                t_samp = [r["peer"]["t_sampling"] or np.nan for r in rows]
                t_run = np.median(t_samp)
                t_comp = np.median(
                    [r["peer"]["t_inversion"] - s for r, s in zip(rows, t_samp, strict=True)]
                )
            print(f"[{config}] {code}: RMSE of the city total {sm['rmse']:.3g} kt (bias "
                  f"{sm['bias']:+.3g}), 95 % coverage {sm['coverage']:.2f} over {sm['n']} seeds, "
                  f"median interval width {sm['width']:.3g}; median set-up {t_set:.3f} s, "
                  f"compile + preparation {t_comp:.2f} s, sampling / solve {t_run:.4f} s")  # fmt: skip
            bench.add(table="summary", config=config, code=code, **sm, display={
                "config": f"{config} ({n} factors + 4 BC)", "code": code,
                "RMSE city total [kt]": f"{sm['rmse']:.3g}", "bias [kt]": f"{sm['bias']:+.3g}",
                "95 % coverage": f"{sm['coverage']:.2f} ({sm['n']} seeds)",
                "interval width [kt]": f"{sm['width']:.3g}",
                "set-up [s]": f"{t_set:.3f}", "compile + prep [s]": f"{t_comp:.1f}",
                "sampling / solve [s]": f"{t_run:.4f}",
            })  # fmt: skip
        if args.cityflux_seeds:
            alone = [
                {"truth_total": float(w @ case["truth"].ravel()),
                 "cityflux": run_cityflux(g, labels, case["y_total"], args)}
                for case in (draw_case(g, labels, args, s)
                             for s in range(args.seeds, args.seeds + args.cityflux_seeds))
            ]  # fmt: skip
            sm = summarise(rows + alone, "cityflux")
            sd = np.sqrt(0.95 * 0.05 / sm["n"])
            print(f"[{config}] cityflux over {sm['n']} seeds (the {args.seeds} above and "
                  f"{args.cityflux_seeds} more): RMSE {sm['rmse']:.3g} kt, 95 % coverage "
                  f"{sm['coverage']:.3f} (binomial sd {sd:.3f})")  # fmt: skip
            bench.add(table="cityflux coverage", config=config, code="cityflux", **sm, display={
                "config": f"{config} ({n} factors + 4 BC)", "seeds": str(sm["n"]),
                "RMSE city total [kt]": f"{sm['rmse']:.3g}",
                "95 % coverage": f"{sm['coverage']:.3f} (binomial sd {sd:.3f})",
            })  # fmt: skip
        if "peer" in rows[0]:
            ratio = np.median([r["peer"]["t_inversion"] / r["cityflux"]["t_solve"] for r in rows])
            ratio_all = np.median([(r["peer"]["t_store"] + r["peer"]["t_inversion"])
                                   / (r["cityflux"]["t_setup"] + r["cityflux"]["t_solve"])
                                   for r in rows])  # fmt: skip
            print(f"[{config}] peer inversion call / cityflux solve: {ratio:.0f}x (median); "
                  f"with set-up on both sides: {ratio_all:.0f}x")  # fmt: skip
            bench.add(table="speed", config=config, display={
                "config": config, "peer inversion / cityflux solve": f"{ratio:.0f}x",
                "with set-up on both sides": f"{ratio_all:.0f}x",
            })  # fmt: skip
    bench.finish()
    return 0


def _plain_row(row: dict) -> dict:
    keep = ("total", "std", "lo", "hi", "t_setup", "t_solve", "t_store", "t_inversion",
            "t_sampling", "ess_min", "rhat_max", "method")  # fmt: skip
    out = {"seed": row["seed"], "truth_total": row["truth_total"]}
    for code in ("cityflux", "peer"):
        if code in row:
            out[code] = {k: row[code].get(k) for k in keep if k in row[code]}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
