"""Side-by-side with openghg_inversions (the peer), run in a SEPARATE virtual environment.

The peer is never a cityflux dependency. Install it apart (Python >= 3.10)::

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install openghg-inversions

then ``python benchmarks/peer_openghg.py --peer-python /tmp/peer/bin/python``. Without the peer
interpreter the cityflux half runs and the peer half prints a SKIP line (exit code 0).

The synthetic problem (seeded, ``--seed``) is one the peer can take as it is:

- a lat-lon grid (``--ny`` x ``--nx`` cells of 0.02° x 0.03°, about 2.2 km) around a city;
  a static prior flux [µmol m-2 s-1] (diffuse 1 plus a Gaussian city core); the truth is
  prior + correlated error, ``x = x_a + B^1/2 z`` with B = D C_s D, D = ``--rel-sigma`` x prior
  and C_s exponential with ``--length-km``;
- ``--n-sites`` towers, hourly for ``--days`` days, with NAME-like footprints
  fp(time, lat, lon) [ppm per µmol m-2 s-1 == (mol/mol)/(mol m-2 s-1)]: an upwind plume that
  widens with distance, wind direction a seeded random walk;
- y = background + H x_true + noise (``--noise-ppm``); H is the footprint rows.

cityflux solves the full-grid state (one unknown per cell) with B and R as above, by
``obs-space`` and by ``cg``. The peer (``benchmarks/_peer_openghg_driver.py``, run with
``--peer-python`` in a subprocess with HOME pointed at a scratch folder so that a throw-away
OpenGHG config and object store are used) standardises the same obs, footprints, flux and
uniform boundary conditions into an OpenGHG object store and runs
``openghg_inversions.hbmcmc.hbmcmc.fixedbasisMCMC`` (``--nbasis`` basis functions by its
``--basis-algorithm``, scaling-factor prior N(1, rel_sigma²), MCMC ``--nit/--burn/--tune``,
``--nchain`` chains). Both report wall time and the error of the posterior city total (flux
x cell area x period over the city disc) against the truth.

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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DLAT, DLON, LAT0, LON0 = 0.02, 0.03, 48.55, 1.90
EARTH_R_KM = 6371.0
M_CO2 = 44.01e-3  # kg/mol
# openghg.retrieve.get_obs_surface accepts only site codes listed in openghg_defs' site_info.json
# (no override), so the synthetic towers borrow existing codes as labels; their coordinates in
# the store are the synthetic ones (station_latitude/longitude, release_lat/lon).
SITE_LABELS = ("TAC", "MHD", "RGL", "BSD", "HFD", "WAO", "TTA", "CBW", "LUT", "KIT")


def make_problem(args) -> dict:
    """The seeded synthetic problem, as plain arrays (also handed to the peer as .npz)."""
    from inversion.covariance import kronecker_prior

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
    B = kronecker_prior(
        (args.rel_sigma * x_prior)[None, None], (ny, nx), (dy_km, dx_km), "exponential",
        args.length_km, nt=1, step_hours=24.0 * args.days, tau_hours=None,
    )  # fmt: skip
    truth = x_prior.ravel() + B.sqrt_matvec(rng.standard_normal(B.sqrt_dim))
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
    H = fp.reshape(args.n_sites * nt, ny * nx)
    noise = args.noise_ppm * rng.standard_normal(H.shape[0])
    y_enh = H @ truth + noise
    t0 = np.datetime64("2024-06-03T00:00", "ns")
    return {
        "lat": lat, "lon": lon, "area": area, "x_prior": x_prior, "truth": truth.reshape(ny, nx),
        "city": city, "fp": fp, "H": H, "y_enh": y_enh,
        "y_total_ppm": (args.background_ppm + y_enh).reshape(args.n_sites, nt),
        "times": (t0 + np.arange(nt) * np.timedelta64(1, "h")).astype("int64"),
        "sites": np.array(SITE_LABELS[: args.n_sites]),
        "site_lat": LAT0 + DLAT * ny / 2 + sy / (np.deg2rad(1) * EARTH_R_KM),
        "site_lon": LON0 + DLON * nx / 2 + sx / (np.deg2rad(1) * EARTH_R_KM * coslat),
        "wind_dir": wind_dir, "wind_speed": wind_speed, "noise_ppm": args.noise_ppm,
        "background_ppm": args.background_ppm, "rel_sigma": args.rel_sigma,
        "seconds": 3600.0 * nt, "obs_unit_factor": 1e3, "B": B,
    }  # fmt: skip


def city_weights(p: dict) -> np.ndarray:
    """Weights turning a flux map [µmol m-2 s-1] into the city total [kt CO2 over the period]."""
    return (p["city"] * p["area"]).ravel() * p["seconds"] * 1e-6 * M_CO2 * 1e-6


def run_cityflux(p: dict, method: str) -> dict:
    import scipy.sparse as sp

    from inversion.covariance import DiagonalCovariance
    from inversion.problem import LinearProblem
    from inversion.solve import solve

    t0 = time.perf_counter()
    H = sp.csr_array(p["H"])
    problem = LinearProblem(
        H=H, x_prior=p["x_prior"].ravel(), y=p["y_enh"], B=p["B"],
        R=DiagonalCovariance(np.full(H.shape[0], p["noise_ppm"] ** 2)),
    )  # fmt: skip
    post = solve(problem, method)
    m, s = post.aggregate(city_weights(p)[None])
    return {"t": time.perf_counter() - t0, "total": float(m[0]), "std": float(s[0])}


def run_peer(p: dict, args) -> dict:
    peer = Path(args.peer_python)
    if not peer.exists():
        return {"skip": f"openghg-inversions is not installed at {peer}; create the peer venv: "
                "python3 -m venv /tmp/peer && /tmp/peer/bin/pip install openghg-inversions"}  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="cityflux_peer_"))
    keep = ("lat", "lon", "x_prior", "fp", "y_total_ppm", "times", "sites", "site_lat",
            "site_lon", "wind_dir", "wind_speed", "noise_ppm", "background_ppm", "rel_sigma",
            "obs_unit_factor", "area", "city", "seconds")  # fmt: skip
    np.savez(work / "problem.npz", **{k: np.asarray(p[k]) for k in keep})
    cmd = [
        str(peer), str(ROOT / "benchmarks" / "_peer_openghg_driver.py"),
        "--problem", str(work / "problem.npz"), "--work", str(work),
        "--species", args.peer_species, "--nbasis", str(args.nbasis),
        "--basis-algorithm", args.basis_algorithm, "--nit", str(args.nit),
        "--burn", str(args.burn), "--tune", str(args.tune), "--nchain", str(args.nchain),
        "--stage", args.peer_stage, "--model-error", args.peer_model_error,
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", default="/tmp/peer/bin/python")
    ap.add_argument("--peer-species", default="ch4")
    ap.add_argument("--peer-stage", default="all", choices=["store", "merged", "all"])
    ap.add_argument("--peer-model-error", default="none", choices=["none", "hierarchical"],
                    help="none: the peer's likelihood uses the true obs error only (as cityflux); "
                    "hierarchical: its RHIME model error sigma·|Hx|, sigma ~ U(0.001, 0.1)")  # fmt: skip
    ap.add_argument("--peer-timeout", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ny", type=int, default=30)
    ap.add_argument("--nx", type=int, default=36)
    ap.add_argument("--n-sites", type=int, default=5, choices=range(1, len(SITE_LABELS) + 1))
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--site-km", type=float, default=12.0)
    ap.add_argument("--city-km", type=float, default=15.0)
    ap.add_argument("--rel-sigma", type=float, default=0.5)
    ap.add_argument("--length-km", type=float, default=10.0)
    ap.add_argument("--noise-ppm", type=float, default=1.0)
    ap.add_argument("--background-ppm", type=float, default=420.0)
    ap.add_argument("--nbasis", type=int, default=50)
    ap.add_argument("--basis-algorithm", default="weighted")
    ap.add_argument("--nit", type=int, default=2000)
    ap.add_argument("--burn", type=int, default=500)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--nchain", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="print the peer's stderr tail")
    ap.add_argument("--keep-work", action="store_true", help="keep the peer's scratch store")
    args = ap.parse_args(argv)
    p = make_problem(args)
    w = city_weights(p)
    true_total, prior_total = float(w @ p["truth"].ravel()), float(w @ p["x_prior"].ravel())
    print(
        f"problem: {args.ny}x{args.nx} cells, {args.n_sites} towers x {24 * args.days} h = "
        f"{p['H'].shape[0]} obs; city total truth {true_total:.4g} kt CO2, prior "
        f"{prior_total:.4g} (error {prior_total - true_total:+.3g})"
    )
    rows = []
    for method in ("obs-space", "cg"):
        r = run_cityflux(p, method)
        rows.append((f"cityflux {method} (full grid, {p['H'].shape[1]} unknowns)", r))
    peer = run_peer(p, args)
    if "skip" in peer:
        print(f"SKIP peer: {peer['skip']}")
    elif not peer.get("ok"):
        print(f"peer FAILED at {peer.get('stage')}: {peer.get('error')}  (scratch {peer['work']})")
    elif "total" in peer:
        rows.append((f"openghg_inversions fixedbasisMCMC ({peer.get('n_basis', '?')} basis fns)",
                     {"t": peer["t_inversion"], "total": peer["total"], "std": peer["std"]}))  # fmt: skip
    else:
        print(f"peer: {peer}")
    print(f"{'method':<58} {'wall s':>9} {'city total':>11} {'± std':>8} {'error':>9}")
    for label, r in rows:
        print(
            f"{label:<58} {r['t']:9.3f} {r['total']:11.4g} {r['std']:8.3g} "
            f"{r['total'] - true_total:+9.3g}"
        )
    if len(rows) == 3:
        peer_r = rows[2][1]
        for label, r in rows[:2]:
            print(
                f"peer/{label.split(' (')[0]}: wall-time ratio {peer_r['t'] / r['t']:.0f}x "
                f"(peer incl. store setup {peer['t_total'] / r['t']:.0f}x); |error| "
                f"{abs(r['total'] - true_total):.3g} vs peer {abs(peer_r['total'] - true_total):.3g}"
            )
        print(f"peer settings: {json.dumps(peer.get('settings', {}))}; store setup "
              f"{peer.get('t_store', float('nan')):.1f} s, subprocess {peer['t_subprocess']:.1f} s")  # fmt: skip
        print(f"peer MCMC diagnostics (scaling factors): min ESS {peer.get('ess_min')}, "
              f"max R-hat {peer.get('rhat_max')}, {peer.get('n_samples')} posterior draws; "
              f"peer prior city total {peer.get('prior_total', float('nan')):.4g}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
