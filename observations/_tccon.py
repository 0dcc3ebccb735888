"""TCCON public netCDF files (GGG2020 ``*.public.qc.nc``) as column observations.

Layout (TCCON GGG2020 data description; ``TCCON/py_tccon_netcdf`` writer; the GGG2020 file
headers published with each site record, e.g. ``iz20140102_20210908.public.qc.nc``): dimension
``time`` (one spectrum each), ``prior_altitude`` and ``ak_altitude`` (the same 0–70 km grid,
ascending, 51 levels); ``xco2`` [ppm] with ``wmo_or_analogous_scale``, its error ``xco2_error``;
scale-converted variants such as ``xco2_x2019`` (error ``xco2_error_x2019``); ``ak_xco2(time,
ak_altitude)`` column averaging kernel; ``ak_pressure(ak_altitude)`` (median pressure of the AK
grid) ; ``prior_co2(time, prior_altitude)`` (wet mole fraction per its ``standard_name``),
``prior_h2o``, ``prior_pressure``, ``prior_gravity``; optional ``integration_operator(time,
prior_altitude)``; ``lat``, ``long``, ``zobs`` [km], ``pout`` [hPa] surface pressure.

Mapping to the column schema (levels surface -> top = the file's altitude order):

* ``averaging_kernel`` = ``ak_xco2``;
* ``co2_apriori`` = ``prior_co2`` made dry (``/(1 - prior_h2o)``) when its ``standard_name``
  says wet;
* ``pressure`` = ``prior_pressure`` (else ``ak_pressure``, noted);
* ``pressure_weight`` = ``integration_operator`` normalised to 1 (not from GGG2020 revision R0,
  whose operator is wrong per the TCCON wiki), else the pressure-weight method: layer
  thickness dp_j = p_j - p_{j+1} with p clipped at the surface pressure ``pout`` (levels below
  the surface get 0), divided by g_j (1 + q_j M_H2O/M_air) when ``prior_gravity``/``prior_h2o``
  exist, normalised to 1.  Which one was used is recorded in the QC report.

GGG2014 files (``xco2_ppm``, kernels tabulated by solar zenith angle on ``ak_zenith``) are
refused with a message: GGG2014 is superseded by GGG2020.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from ingest import FileProbe, length_factor, pressure_factor

from ._columns import ColumnOptions, ColumnRecords, finalize_column
from ._exceptions import MissingVariableError, ObservationFormatError
from ._io import decode_cf_time, get_var, normalise_scale, open_netcdf, read_float, to_ppm_factor
from ._registry import register_reader

__all__ = ["read_tccon"]

M_H2O, M_AIR = 18.0153, 28.9647  # [g mol-1]
_VARIANT = re.compile(r"^x{sp}(_x\d{{4}}[a-z]?)?$")


def _sniff_tccon(probe: FileProbe) -> bool:
    if not probe.is_netcdf:
        return False
    ggg2020 = probe.has("ak_altitude", "prior_altitude") and any(
        k.startswith("ak_x") for k in probe.variables
    )
    ggg2014 = ("ak_zenith" in probe.dims or probe.has("ak_zenith")) and any(
        k.endswith("_ppm") for k in probe.variables
    )
    return ggg2020 or ggg2014


def _variants(nc, species: str) -> dict[str, str]:
    """Variable name -> calibration scale of the X<species> variants in the file."""
    pat = re.compile(_VARIANT.pattern.format(sp=re.escape(species)))
    out = {}
    for name, var in nc.variables.items():
        if pat.match(name):
            scale = getattr(var, "wmo_or_analogous_scale", "")
            if not scale and "_x" in name:
                scale = f"WMO {species.upper()} {name.rsplit('_', 1)[1].upper()}"
            out[name] = normalise_scale(scale) if scale else "unspecified"
    return out


def _choose(variants: dict[str, str], scale: str | None, path: Path, species: str, notes) -> str:
    listed = ", ".join(f"{k} ({v})" for k, v in variants.items())
    if not variants:
        raise MissingVariableError(f"{path}: no 'x{species}' variable in this TCCON file")
    if scale is None:
        if len(variants) > 1:
            raise ObservationFormatError(
                f"{path}: the file carries x{species} on several calibration scales: {listed}; "
                "choose one explicitly with scale='X2019' (scale name) or scale='xco2_x2019' "
                "(variable name), or scale='native' for the unsuffixed variable"
            )
        name = next(iter(variants))
        notes["calibration scale"] = f"{variants[name]} (the only variant, {name!r})"
        return name
    want = str(scale).strip()
    if want.lower() == "native" and f"x{species}" in variants:
        name = f"x{species}"
    elif want in variants:
        name = want
    else:
        norm = normalise_scale(want if want.upper().startswith("WMO") else f"WMO {want}")
        hits = [k for k, v in variants.items() if v in (norm, normalise_scale(want))]
        if not hits:
            raise ObservationFormatError(
                f"{path}: scale={scale!r} matches none of the x{species} variants in the file: "
                f"{listed}"
            )
        name = hits[0]
    notes["calibration scale"] = f"{variants[name]} (variable {name!r}, option scale={scale!r})"
    return name


def _error_var(nc, name: str, species: str, path: Path):
    for cand in (f"{name}_error", name.replace(f"x{species}", f"x{species}_error", 1)):
        if cand in nc.variables:
            return nc.variables[cand]
    raise MissingVariableError(
        f"{path}: no error variable for {name!r} (looked for '{name}_error' and "
        f"'{name.replace(f'x{species}', f'x{species}_error', 1)}')"
    )


def _pressure_weights(nc, path: Path, pressure, pout, h2o_dry, notes) -> np.ndarray:
    attrs = {k: str(nc.getncattr(k)) for k in nc.ncattrs()}
    revision_r0 = attrs.get("file_format_version", "").startswith("2020") and attrs.get(
        "data_revision", ""
    ).upper() in ("R0", "")
    if "integration_operator" in nc.variables and not revision_r0:
        io = read_float(nc.variables["integration_operator"], path)
        if "wet" in str(getattr(nc.variables["integration_operator"], "description", "")).lower():
            io = io / (1.0 + h2o_dry)
        notes["pressure weights"] = "variable 'integration_operator' normalised to sum 1"
        return io / io.sum(axis=1, keepdims=True)
    p = np.minimum(pressure, pout[:, None])
    dp = np.concatenate([p[:, :-1] - p[:, 1:], p[:, -1:]], axis=1)
    how = "layer thickness dp (pressure clipped at the surface pressure 'pout')"
    if "prior_gravity" in nc.variables:
        g = read_float(nc.variables["prior_gravity"], path)
        dp = dp / (g * (1.0 + h2o_dry * M_H2O / M_AIR))
        how += " / (g (1 + q M_H2O/M_air))"
    reason = "GGG2020.R0 operator is wrong" if revision_r0 else "no integration_operator"
    notes["pressure weights"] = f"pressure-weight method ({reason}): {how}, normalised to 1"
    return dp / dp.sum(axis=1, keepdims=True)


@register_reader(
    "tccon",
    sniff=_sniff_tccon,
    priority=60,
    description="TCCON public netCDF (GGG2020 *.public.qc.nc): XCO2 with kernel and prior",
)
def read_tccon(
    path: Path,
    *,
    species: str = "co2",
    scale: str | None = None,
    start: str | None = None,
    end: str | None = None,
    drop_extrapolated_ak: bool = True,
    superobs: float | None = None,
    correlated_error: float = 0.0,
    overpass_gap: float = 600.0,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read a TCCON GGG2020 public file (kind "column", levels surface -> top).

    Parameters
    ----------
    path : Path
        ``xxYYYYMMDD_YYYYMMDD.public.qc.nc``.
    species : str
        Gas (``"co2"``; ``"ch4"``, ``"co"`` read the same way, values in ppm).
    scale : str, optional
        Calibration-scale variant: ``"X2019"`` / ``"WMO CO2 X2019"``, a variable name
        (``"xco2_x2019"``) or ``"native"`` (the unsuffixed ``xco2``). Required when the file
        carries more than one variant; recorded in ``scale`` and ``attrs["calibration_scale"]``.
    start, end : str, optional
        Period [start, end), UTC.
    drop_extrapolated_ak : bool
        Drop spectra with ``|extrapolation_flags_ak_x<gas>| == 2`` (kernel extrapolated).
    superobs, correlated_error, overpass_gap, err_calibration, err_transport
        As :func:`read_oco_lite` (errors in ppm, gap in s).

    Returns
    -------
    xarray.Dataset
        ObservationSet, kind "column", ``alt`` = ``zobs`` [m asl]; site = the 2-letter TCCON id.

    Raises
    ------
    ingest.ReaderError
        GGG2014 files, ambiguous or unknown scale variants, AK and prior grids that differ.
    """
    path = Path(path)
    notes: dict[str, str] = {}
    with open_netcdf(path) as nc:
        if f"x{species}_ppm" in nc.variables or "ak_zenith" in nc.dimensions:
            raise ObservationFormatError(
                f"{path}: a TCCON GGG2014 public file (found 'x{species}_ppm', kernels tabulated "
                "on 'ak_zenith'); GGG2014 is superseded by the GGG2020 release: download the "
                "GGG2020 file ('*.public.qc.nc') of this site"
            )
        name = _choose(_variants(nc, species), scale, path, species, notes)
        xv = nc.variables[name]
        fac = to_ppm_factor(getattr(xv, "units", None), where=f"{path}: variable {name!r}")
        value = read_float(xv, path) * fac
        ev = _error_var(nc, name, species, path)
        ev_name = ev.name
        unc = read_float(ev, path) * to_ppm_factor(
            getattr(ev, "units", None), where=f"{path}: {ev.name}"
        )
        tv = get_var(nc, "time", path)
        time = decode_cf_time(read_float(tv, path), tv.units, where=str(path))
        n = value.size
        ak = read_float(get_var(nc, f"ak_x{species}", path), path)
        prior_v = get_var(nc, f"prior_{species}", path)
        prior = read_float(prior_v, path) * to_ppm_factor(
            prior_v.units, where=f"{path}: prior_{species}"
        )
        if ak.shape != prior.shape:
            raise ObservationFormatError(
                f"{path}: ak_x{species} {ak.shape} and prior_{species} {prior.shape} are on "
                "different vertical grids; this reader needs ak_altitude == prior_altitude"
            )
        h2o_wet = (
            read_float(nc.variables["prior_h2o"], path) if "prior_h2o" in nc.variables else None
        )
        h2o_dry = 0.0 if h2o_wet is None else h2o_wet / (1.0 - h2o_wet)
        if "wet" in str(getattr(prior_v, "standard_name", "")).lower():
            if h2o_wet is None:
                raise MissingVariableError(
                    f"{path}: prior_{species} is a wet mole fraction but 'prior_h2o' is missing"
                )
            prior = prior / (1.0 - h2o_wet)
            notes["prior profile"] = f"prior_{species} (wet) made dry: / (1 - prior_h2o)"
        if "prior_pressure" in nc.variables:
            pv = nc.variables["prior_pressure"]
            pressure = read_float(pv, path) * pressure_factor(
                pv.units, where=f"{path}: prior_pressure"
            )
        else:
            pv = get_var(nc, "ak_pressure", path)
            pressure = np.broadcast_to(
                read_float(pv, path) * pressure_factor(pv.units, where=f"{path}: ak_pressure"),
                ak.shape,
            ).copy()
            notes["pressure"] = "ak_pressure (median pressure of the AK grid; no prior_pressure)"
        pout = (
            read_float(nc.variables["pout"], path)
            * pressure_factor(nc.variables["pout"].units, where=f"{path}: pout")
            if "pout" in nc.variables
            else pressure[:, 0]
        )
        pw = _pressure_weights(nc, path, pressure, pout, h2o_dry, notes)
        lat = read_float(get_var(nc, "lat", path), path)
        lon = read_float(get_var(nc, "long", path), path)
        zv = nc.variables.get("zobs")
        alt = (
            np.zeros(n)
            if zv is None
            else read_float(zv, path)
            * length_factor(getattr(zv, "units", "km"), where=f"{path}: zobs")
        )
        flag = np.zeros(n)
        if "flag" in nc.variables:
            flag = read_float(nc.variables["flag"], path)
        ext = f"extrapolation_flags_ak_x{species}"
        if drop_extrapolated_ak and ext in nc.variables:
            flag = np.where(np.abs(read_float(nc.variables[ext], path)) == 2, 1.0, flag)
            notes["quality"] = f"'flag' == 0 and |{ext}| != 2 (option drop_extrapolated_ak)"
        gattrs = {k: str(nc.getncattr(k)) for k in nc.ncattrs()}
    m = re.match(r"^([a-z]{2})\d{8}_\d{8}", path.name)
    site = m.group(1) if m else gattrs.get("short_location", path.stem)
    chosen_scale = notes["calibration scale"].split(" (")[0]
    rec = ColumnRecords(
        source=str(path), time=time, value=value, unc=unc, flag=flag, lat=lat, lon=lon,
        alt=alt, ak=ak, pw=pw, apriori=prior, pressure=pressure,
        site=np.full(n, site, dtype=object), scale=chosen_scale,
        attrs={"source_file": path.name, "platform": "TCCON", "calibration_scale": chosen_scale,
               "x_variable": name, "file_format_version": gattrs.get("file_format_version", "")},
        species=species, assumptions=notes, unc_name=ev_name,
        pw_name="pressure weights (computed from the prior pressures)",
    )  # fmt: skip
    opts = ColumnOptions(
        quality_flag=0, bbox=None, start=start, end=end, superobs=superobs,
        correlated_error=correlated_error, overpass_gap=overpass_gap,
        err_calibration=err_calibration, err_transport=err_transport,
    )  # fmt: skip
    return finalize_column(rec, opts)
