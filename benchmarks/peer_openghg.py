"""Side-by-side with openghg_inversions (the peer), run in a SEPARATE virtual environment.

The peer is never a cityflux dependency. Install it apart::

    python -m venv /tmp/peer && /tmp/peer/bin/pip install openghg-inversions

then ``python benchmarks/peer_openghg.py --peer-python /tmp/peer/bin/python``.

What is compared: the synthetic problem of ``benchmarks/urban_scale.py --cases quick`` reduced
to what openghg_inversions can take: a basis-function state (the grid aggregated into
``--n-basis`` square regions, one scaling factor each, as its "quadtree"/"weighted" bases do)
and NAME-like footprints (the rows of H, per basis region). cityflux solves the same reduced
problem (obs-space) and its full-resolution one (cg); each tool's wall time and city-total
error against the synthetic truth are printed side by side.

Limitation (stated, not faked): openghg_inversions' entry points (``fixedbasisMCMC`` and
``hbmcmc``) read observations, footprints, fluxes and boundary conditions from OpenGHG
object stores (``openghg.retrieve``) built from real data files with site/species/domain
metadata; its PyMC model is then run by MCMC. A synthetic in-memory H cannot be handed to it
without first standing up an OpenGHG object store of NAME footprint files for invented sites,
which this script does not do offline. So when the peer is installed, the script reports its
version and runs only what is callable without a store (the RHIME PyMC model builder, if its
import path exists in that version); otherwise it prints a skip message and exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

_PROBE = r"""
import json, importlib
out = {}
try:
    import openghg_inversions as m
    out["version"] = getattr(m, "__version__", "?")
    for name in ("openghg_inversions.hbmcmc.inversion_pymc", "openghg_inversions.hbmcmc.hbmcmc"):
        try:
            importlib.import_module(name); out.setdefault("modules", []).append(name)
        except Exception as exc:
            out.setdefault("errors", []).append(f"{name}: {type(exc).__name__}: {exc}")
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def reduced_problem(n_basis: int):
    """The quick urban case aggregated to n_basis x n_basis square basis regions (time-summed)."""
    from urban_scale import make_problem, weights

    problem, dims, truth = make_problem("quick", None)
    ny, nx, nt, ns = dims
    by, bx = np.arange(ny) * n_basis // ny, np.arange(nx) * n_basis // nx
    region = (by[:, None] * n_basis + bx[None, :]).ravel()
    col_region = np.tile(region, nt * ns)
    import scipy.sparse as sp

    P = sp.csr_array(
        (np.ones(col_region.size), (np.arange(col_region.size), col_region)),
        shape=(col_region.size, n_basis**2),
    )
    return problem, truth, P, weights(dims)[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", default="/tmp/peer/bin/python")
    ap.add_argument("--n-basis", type=int, default=6)
    args = ap.parse_args(argv)
    from inversion.covariance import DiagonalCovariance
    from inversion.problem import LinearProblem
    from inversion.solve import solve

    problem, truth, P, w = reduced_problem(args.n_basis)
    true_total = float(w @ truth)
    t0 = time.perf_counter()
    full = solve(problem, "cg")
    t_full = time.perf_counter() - t0
    # basis-function (scaling factor) problem: x = x_a * (1 + P s), s ~ N(0, 0.5²)
    Hb = problem.H @ (P.multiply(problem.x_prior[:, None])).tocsc()
    red = LinearProblem(
        H=Hb, x_prior=np.zeros(Hb.shape[1]), y=problem.y - problem.H @ problem.x_prior,
        B=DiagonalCovariance(np.full(Hb.shape[1], 0.25)), R=problem.R,
    )  # fmt: skip
    t0 = time.perf_counter()
    basis = solve(red, "obs-space")
    t_basis = time.perf_counter() - t0
    total_full = full.aggregate(w)
    wb = (w * problem.x_prior) @ P
    total_basis = basis.aggregate(wb)
    total_basis = (float(w @ problem.x_prior) + total_basis[0], total_basis[1])
    print(f"truth city total {true_total:.5g}; prior {w @ problem.x_prior:.5g}")
    for label, t, (m, s) in (
        (f"cityflux cg (full grid, {problem.n_state:,} unknowns)", t_full, total_full),
        (f"cityflux obs-space ({args.n_basis}x{args.n_basis} basis scaling factors)", t_basis,
         total_basis),
    ):  # fmt: skip
        print(f"{label:<58} {t:7.3f} s  total {m:9.5g} ± {s:7.4g}  error {m - true_total:+8.4g}")
    peer = Path(args.peer_python)
    if not peer.exists():
        print(
            f"SKIP peer: openghg-inversions is not installed at {peer}; install it in a separate "
            "venv: python -m venv /tmp/peer && /tmp/peer/bin/pip install openghg-inversions"
        )
        return 0
    res = subprocess.run([str(peer), "-c", _PROBE], capture_output=True, text=True, timeout=300)
    try:
        info = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        info = {"error": res.stderr.strip()[-500:]}
    print(f"peer openghg_inversions: {info}")
    print(
        "SKIP peer run: its inversions (fixedbasisMCMC/hbmcmc) read obs, footprints, fluxes and "
        "boundary conditions from OpenGHG object stores of real NAME/obs files; no offline "
        "synthetic comparison is made (see the module docstring)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
