"""Run openghg_inversions (the peer) on the synthetic problem of ``peer_openghg.py``; peer venv only.

Executed by ``benchmarks/peer_openghg.py`` with the peer's interpreter, never imported by
cityflux. It only calls the peer's public API:

1. points ``HOME`` at ``<work>/home`` *before* importing openghg and writes a throw-away
   ``~/.openghg/openghg.conf`` whose single "user" object store is ``<work>/store`` (the user's
   real config is never read or written);
2. writes the problem (``--problem``, an ``.npz`` made by ``peer_openghg.py``) as OpenGHG-format
   files: one surface time series per tower (``source_format="openghg"``), NAME-like
   footprints ``fp(lat, lon, time)`` [(mol/mol)/(mol m-2 s-1)] with the ACRG layout
   (met variables, ``particle_locations_n/e/s/w``), a static flux [mol m-2 s-1] and uniform
   boundary conditions ``vmr_n/e/s/w`` [mol/mol], and standardises them into the store;
3. ``--stage basis``: makes the peer's own basis regions (``make_basis_functions`` with
   ``--basis-algorithm``) and prints their labels, so that cityflux can solve on exactly them;
4. ``--stage all``: times ``openghg_inversions.hbmcmc.hbmcmc.fixedbasisMCMC`` (PyMC MCMC) on
   the peer's basis or, with ``--basis-labels`` (a .npy of integer labels 1..N on (lat, lon)),
   on that basis (written as a legacy flat basis file: ``fp_basis_case``), and computes the
   posterior city total from every draw of the scaling factors.

Prints one JSON line (the last line of stdout) with the timings (store set-up, the whole
inversion call, PyMC's own sampling time), the city total (mean, std, central 95 % interval
of the draws) and MCMC diagnostics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np


def _setup_home(work: Path) -> Path:
    home = work / "home"
    store = work / "store"
    (home / ".openghg").mkdir(parents=True, exist_ok=True)
    store.mkdir(parents=True, exist_ok=True)
    conf = (
        f'user_id = "{uuid.uuid4()}"\nconfig_version = "2"\n\n'
        f'[object_store.user]\npath = "{store}"\npermissions = "rw"\n'
    )
    (home / ".openghg" / "openghg.conf").write_text(conf)
    os.environ["HOME"] = str(home)
    return store


def _write_inputs(p: dict, work: Path, species: str) -> dict:
    """Write OpenGHG-format netCDF inputs; return their paths."""
    import pandas as pd
    import xarray as xr

    lat, lon = p["lat"], p["lon"]
    times = pd.to_datetime(p["times"].astype("datetime64[ns]"))
    sites = [str(s) for s in p["sites"]]
    files: dict = {"obs": {}, "fp": {}}
    nt, ny, nx = times.size, lat.size, lon.size
    height = np.array([500.0], dtype="float32")
    for k, site in enumerate(sites):
        fp = p["fp"][k]  # (time, lat, lon), ppm per µmol m-2 s-1 == (mol/mol)/(mol m-2 s-1)
        pl = 1.0 / 4.0  # particles leave through each edge equally (vmr from uniform BCs)
        ones_t = np.ones(nt, dtype="float32")
        ds = xr.Dataset(
            {
                "fp": (("lat", "lon", "time"), np.moveaxis(fp, 0, -1).astype("float32")),
                "temperature": ("time", 12.0 * ones_t),
                "pressure": ("time", 1000.0 * ones_t),
                "wind_speed": ("time", p["wind_speed"].astype("float32")),
                "wind_direction": ("time", p["wind_dir"].astype("float32")),
                "PBLH": ("time", 800.0 * ones_t),
                "release_lon": ("time", float(p["site_lon"][k]) * ones_t),
                "release_lat": ("time", float(p["site_lat"][k]) * ones_t),
                "particle_locations_n": (
                    ("height", "lon", "time"), np.full((1, nx, nt), pl / nx, "float32")),
                "particle_locations_e": (
                    ("height", "lat", "time"), np.full((1, ny, nt), pl / ny, "float32")),
                "particle_locations_s": (
                    ("height", "lon", "time"), np.full((1, nx, nt), pl / nx, "float32")),
                "particle_locations_w": (
                    ("height", "lat", "time"), np.full((1, ny, nt), pl / ny, "float32")),
            },
            coords={"time": times, "lat": lat.astype("float32"), "lon": lon.astype("float32"),
                    "height": height, "lev": np.array([b"F"])},
        )  # fmt: skip
        units = {"fp": "(mol/mol)/(mol/m2/s)", "temperature": "C", "pressure": "hPa",
                 "wind_speed": "m/s", "wind_direction": "degrees", "PBLH": "m",
                 "release_lon": "Degrees_east", "release_lat": "Degrees_north"}  # fmt: skip
        units.update({f"particle_locations_{d}": "" for d in "nesw"})
        for v, u in units.items():
            ds[v].attrs["units"] = u
        f = work / f"fp_{site}.nc"
        ds.to_netcdf(f)
        files["fp"][site] = f
        # observations: mole fraction in the species' default unit (1e-9 mol/mol for ch4)
        scale = float(p["obs_unit_factor"])
        obs = xr.Dataset(
            {
                species: ("time", p["y_total_ppm"][k] * scale),
                f"{species}_variability": ("time", np.full(nt, float(p["noise_ppm"]) * scale)),
            },
            coords={"time": times},
            attrs={
                "site": site, "species": species, "network": "SYNTH", "inlet": "100m",
                "instrument": "synthetic", "sampling_period": "3600",
                "calibration_scale": "SYNTH", "data_owner": "cityflux",
                "data_owner_email": "none", "station_longitude": float(p["site_lon"][k]),
                "station_latitude": float(p["site_lat"][k]), "station_height_masl": 0.0,
                "station_long_name": f"synthetic tower {site}",
            },
        )  # fmt: skip
        obs[species].attrs["units"] = "1e-9"
        obs[f"{species}_variability"].attrs["units"] = "1e-9"
        f = work / f"obs_{site}.nc"
        obs.to_netcdf(f)
        files["obs"][site] = f
    month = times[0].to_period("M").to_timestamp()
    flux = xr.Dataset(
        {"flux": (("lat", "lon", "time"), (p["x_prior"] * 1e-6)[:, :, None])},
        coords={"lat": lat, "lon": lon, "time": [month]},
    )
    flux["flux"].attrs["units"] = "mol/m2/s"
    files["flux"] = work / "flux.nc"
    flux.to_netcdf(files["flux"])
    bg = float(p["background_ppm"]) * 1e-6
    bc = xr.Dataset(
        {
            "vmr_n": (("height", "lon", "time"), np.full((1, nx, 1), bg)),
            "vmr_e": (("height", "lat", "time"), np.full((1, ny, 1), bg)),
            "vmr_s": (("height", "lon", "time"), np.full((1, nx, 1), bg)),
            "vmr_w": (("height", "lat", "time"), np.full((1, ny, 1), bg)),
        },
        coords={"height": height, "lat": lat, "lon": lon, "time": [month]},
    )
    for v in bc.data_vars:
        bc[v].attrs["units"] = "mol/mol"
    files["bc"] = work / "bc.nc"
    bc.to_netcdf(files["bc"])
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", required=True, help=".npz written by peer_openghg.py")
    ap.add_argument("--work", required=True, help="empty scratch folder (store + fake HOME)")
    ap.add_argument("--species", default="ch4")
    ap.add_argument("--domain", default="CITYSYNTH")
    ap.add_argument("--nbasis", type=int, default=50)
    ap.add_argument("--basis-algorithm", default="weighted")
    ap.add_argument("--nit", type=int, default=2000)
    ap.add_argument("--burn", type=int, default=500)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--nchain", type=int, default=2)
    ap.add_argument("--model-error", default="none", choices=["none", "hierarchical"])
    ap.add_argument("--stage", default="all", choices=["store", "merged", "basis", "all"])
    ap.add_argument("--basis-labels", help=".npy of int labels (lat, lon), 1..N: the basis")
    ap.add_argument("--bc-sigma", type=float, default=0.01, help="BC scaling-factor prior std")
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    t_all = time.perf_counter()
    _setup_home(work)
    p = dict(np.load(args.problem, allow_pickle=False))
    out: dict = {"stage": "import"}

    def fail(stage: str, exc: BaseException) -> int:
        import traceback

        traceback.print_exc()
        out.update(ok=False, stage=stage, error=f"{type(exc).__name__}: {exc}")
        print(json.dumps(out))
        return 0

    try:
        import openghg
        import openghg_inversions
        from openghg.standardise import (
            standardise_bc,
            standardise_flux,
            standardise_footprint,
            standardise_surface,
        )
        from openghg_inversions.hbmcmc.hbmcmc import fixedbasisMCMC
    except Exception as exc:
        return fail("import", exc)
    out["versions"] = {
        "openghg": getattr(openghg, "__version__", "?"),
        "openghg_inversions": getattr(openghg_inversions, "__version__", "?"),
    }
    t0 = time.perf_counter()
    sp, dom = args.species, args.domain
    stage = "write inputs"
    try:
        files = _write_inputs(p, work, sp)
        for site, f in files["obs"].items():
            stage = f"standardise_surface({site})"
            standardise_surface(source_format="openghg", network="SYNTH", site=site,
                                filepath=f, inlet="100m", verify_site_code=False,
                                store="user")  # fmt: skip
        for site, f in files["fp"].items():
            stage = f"standardise_footprint({site})"
            standardise_footprint(filepath=f, model="SYNTHNAME", domain=dom, site=site,
                                  inlet="100m", species=sp, met_model="synthetic",
                                  source_format="acrg_org", store="user")  # fmt: skip
        stage = "standardise_flux"
        standardise_flux(filepath=files["flux"], species=sp, source="synthprior", domain=dom,
                         store="user")  # fmt: skip
        stage = "standardise_bc"
        standardise_bc(filepath=files["bc"], species=sp, bc_input="uniform", domain=dom,
                       store="user")  # fmt: skip
    except Exception as exc:
        return fail(stage, exc)
    out["t_store"] = time.perf_counter() - t0
    if args.stage == "store":
        out["ok"] = True
        print(json.dumps(out))
        return 0
    times = p["times"].astype("datetime64[ns]")
    end = str(times[-1] + np.timedelta64(1, "h"))
    kw = dict(
        species=sp, sites=[str(s) for s in p["sites"]], domain=dom, averaging_period=None,
        start_date=str(times[0]), end_date=end, outputpath=str(work / "out"),
        outputname="synth", emissions_name=["synthprior"], inlet=["100m"] * len(p["sites"]),
        met_model="synthetic", fp_model="SYNTHNAME", bc_input="uniform",
        basis_algorithm=args.basis_algorithm, nbasis=args.nbasis, bc_basis_case="NESW",
        xprior={"pdf": "normal", "mu": 1.0, "sigma": float(p["rel_sigma"])},
        bcprior={"pdf": "normal", "mu": 1.0, "sigma": float(args.bc_sigma)},
        # RHIME model error: eps = sqrt(mf_error² + (sigma |H x|)^1.99), sigma relative
        sigprior={"pdf": "uniform", "lower": 0.001, "upper": 0.1},
        nit=args.nit, burn=args.burn, tune=args.tune, nchain=args.nchain,
        averaging_error=False, min_error=0.0,
    )  # fmt: skip
    if args.model_error == "none":  # the synthetic data have none: obs error = mf_error only
        kw["no_model_error"] = True
    if args.basis_labels:  # a given basis: a legacy flat basis file, loaded by basis case
        labels = np.load(args.basis_labels)
        bdir = work / "basis"
        (bdir / dom).mkdir(parents=True, exist_ok=True)
        import xarray as xr

        basis = xr.Dataset(
            {"basis": (("lat", "lon", "time"), labels[:, :, None].astype("float64"))},
            coords={"lat": p["lat"].astype("float32"), "lon": p["lon"].astype("float32"),
                    "time": [np.datetime64(str(times[0]), "ns")]},
        )  # fmt: skip
        basis.to_netcdf(bdir / dom / f"cityfluxbasis_{dom}.nc")
        kw.update(
            fp_basis_case="cityfluxbasis", basis_directory=str(bdir), nbasis=int(labels.max())
        )
        kw["basis_algorithm"] = None
    (work / "out").mkdir(exist_ok=True)
    if args.stage == "basis":
        try:
            from openghg_inversions.basis._wrapper import make_basis_functions

            fp_all = fixedbasisMCMC(**kw, output_format="merged_data")
            bf = make_basis_functions(
                fp_all=fp_all, species=sp, domain=dom, start_date=kw["start_date"],
                emissions_name=kw["emissions_name"], nbasis=args.nbasis,
                basis_algorithm=args.basis_algorithm,
            )  # fmt: skip
            flat = bf.operator.basis_flat
            flat = flat.squeeze(drop=True).transpose("lat", "lon")
        except Exception as exc:
            return fail("make_basis_functions", exc)
        out["labels"] = np.asarray(flat.values).astype(int).tolist()
        out["ok"] = True
        print(json.dumps(out))
        return 0
    if args.stage == "merged":
        try:
            fp_all = fixedbasisMCMC(**kw, output_format="merged_data")
        except Exception as exc:
            return fail("fixedbasisMCMC(output_format='merged_data')", exc)
        out["merged_keys"] = [str(k) for k in fp_all]
        out["ok"] = True
        print(json.dumps(out, default=str))
        return 0
    t0 = time.perf_counter()
    try:
        inv = fixedbasisMCMC(**kw, output_format="inv_out")
    except Exception as exc:
        return fail("fixedbasisMCMC(output_format='inv_out')", exc)
    out["t_inversion"] = time.perf_counter() - t0
    try:
        out["t_sampling"] = float(inv.trace.posterior.attrs["sampling_time"])
    except (AttributeError, KeyError, TypeError, ValueError):
        out["t_sampling"] = None
    out["settings"] = {
        k: kw[k]
        for k in (
            "nbasis",
            "basis_algorithm",
            "nit",
            "burn",
            "tune",
            "nchain",
            "xprior",
            "bcprior",
            "sigprior",
        )
    }
    out["settings"]["model_error"] = args.model_error  # fmt: skip
    out["inv_type"] = type(inv).__name__
    out.update(_city_total(inv, p))
    out["t_total"] = time.perf_counter() - t_all
    out["ok"] = True
    print(json.dumps(out, default=float))
    return 0


def _city_total(inv, p: dict) -> dict:
    """Posterior mean/std of the city total [kt CO2 over the period] from the scaling-factor trace.

    Every posterior draw of the scaling factors ``x`` is mapped to the grid with the peer's
    flux-weighted basis (``BasisFunctions.interpolate(..., flux=True)``: prior flux x factor of
    the cell's basis function) and summed over the city disc with cell areas and seconds.
    """
    post = inv.trace.posterior
    name = inv.variable_name("flux_scale")
    x = post[name].stack(sample=("chain", "draw"))
    flux = inv.basis_functions.interpolate(x, flux=True)  # [mol m-2 s-1] on (lat, lon)
    other = [d for d in flux.dims if d not in ("lat", "lon", "sample")]
    if other:
        flux = flux.sum(other)
    w = (p["city"] * p["area"]) * float(p["seconds"]) * 44.01e-3 * 1e-6  # mol -> kt CO2
    flux = flux.transpose("lat", "lon", "sample")
    tot = np.einsum("yx,yxs->s", w, np.asarray(flux.values, dtype=float))
    prior = float((w * p["x_prior"] * 1e-6).sum())
    n_basis = int(x.sizes[next(d for d in x.dims if d != "sample")])
    ess = None
    try:
        import arviz as az

        ess = float(az.ess(post[[name]])[name].min())
        rhat = float(az.rhat(post[[name]])[name].max())
    except Exception:
        rhat = None
    lo, hi = np.percentile(tot, [2.5, 97.5])
    return {
        "total": float(tot.mean()), "std": float(tot.std(ddof=1)), "prior_total": prior,
        "q025": float(lo), "q975": float(hi),
        "n_basis": n_basis, "n_samples": int(tot.size), "ess_min": ess, "rhat_max": rhat,
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
