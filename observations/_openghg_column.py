"""Column files in the layout OpenGHG standardises satellite and TCCON columns to.

Layout (``openghg/standardise/column/_openghg.py`` and ``_tccon.py``; the GOSAT fixture
``openghg_gosat-fts_gosat_20160101_ch4-column.nc``): dims ``time`` (sounding) and ``lev``;
``x<sp>`` and ``x<sp>_uncertainty`` with units such as ``"1e-9"`` (a scale factor of mol mol-1);
``lat``/``lon`` per sounding (satellites) or global ``latitude``/``longitude`` (sites);
``pressure_levels``, ``pressure_weights``, ``x<sp>_averaging_kernel``,
``<sp>_profile_apriori`` on ``(time, lev)``; global ``platform``/``site``, and
``calibration_scale`` when known.  Files are already quality-filtered (OpenGHG keeps flag 0).

The species is the one the file holds (``x<sp>``); cityflux inverts CO2, so another species is
refused unless asked for with ``species=`` (it is then read the same way, in ppm).  Level order
follows the pressures (decreasing = surface first; otherwise reversed).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from ingest import FileProbe, pressure_factor

from ._columns import ColumnOptions, ColumnRecords, finalize_column, surface_first
from ._exceptions import ObservationFormatError
from ._io import decode_cf_time, get_var, normalise_scale, open_netcdf, read_float, to_ppm_factor
from ._registry import register_reader

__all__ = ["read_openghg_column"]

_X = re.compile(r"^x([a-z0-9]+)$")


def _species_in(names) -> list[str]:
    return [
        m.group(1)
        for n in names
        if (m := _X.match(n)) and f"x{m.group(1)}_averaging_kernel" in names
    ]


def _sniff(probe: FileProbe) -> bool:
    names = set(probe.variables)
    return probe.is_netcdf and "pressure_weights" in names and bool(_species_in(names))


@register_reader(
    "openghg_column",
    sniff=_sniff,
    priority=55,
    description="column file standardised by OpenGHG (x<gas>, pressure_weights, kernel on lev)",
)
def read_openghg_column(
    path: Path,
    *,
    species: str = "co2",
    scale: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    start: str | None = None,
    end: str | None = None,
    superobs: float | None = None,
    correlated_error: float = 0.0,
    overpass_gap: float = 600.0,
    err_calibration: float = 0.0,
    err_transport: float = 0.0,
) -> xr.Dataset:
    """Read an OpenGHG-standardised column file (kind "column", levels surface -> top).

    Parameters
    ----------
    path : Path
        NetCDF file with ``x<sp>``, ``pressure_weights``, ``x<sp>_averaging_kernel``, ...
    species : str
        The gas to read (default ``"co2"``); a file holding another gas is refused with a
        message naming it (pass ``species="ch4"`` to read a CH4 file, values in ppm).
    scale : str, optional
        Calibration-scale name when the file has no ``calibration_scale`` attribute.
    bbox, start, end, superobs, correlated_error, overpass_gap, err_calibration, err_transport
        As :func:`read_oco_lite`.

    Returns
    -------
    xarray.Dataset
        ObservationSet, kind "column"; site = the file's ``site`` or ``platform``.
    """
    path = Path(path)
    notes: dict[str, str] = {}
    with open_netcdf(path) as nc:
        held = _species_in(set(nc.variables))
        if species not in held:
            raise ObservationFormatError(
                f"{path}: the file holds {[f'x{s}' for s in held]} ({', '.join(s.upper() for s in held)}), "
                f"not x{species}; cityflux inverts CO2 — pass species={held[0]!r} to read this "
                "file anyway (values in ppm), or use a CO2 column file"
            )
        xv = get_var(nc, f"x{species}", path)
        fac = to_ppm_factor(getattr(xv, "units", None), where=f"{path}: variable 'x{species}'")
        value = read_float(xv, path) * fac
        uv = get_var(nc, f"x{species}_uncertainty", path)
        unc = read_float(uv, path) * to_ppm_factor(
            getattr(uv, "units", None), where=f"{path}: x{species}_uncertainty"
        )
        tv = get_var(nc, "time", path)
        time = decode_cf_time(read_float(tv, path), tv.units, where=str(path))
        n = value.size
        pv = get_var(nc, "pressure_levels", path)
        pressure = read_float(pv, path) * pressure_factor(
            getattr(pv, "units", "hPa"), where=f"{path}: pressure_levels"
        )
        pw = read_float(get_var(nc, "pressure_weights", path), path)
        ak = read_float(get_var(nc, f"x{species}_averaging_kernel", path), path)
        av = get_var(nc, f"{species}_profile_apriori", path)
        prior = read_float(av, path) * to_ppm_factor(
            getattr(av, "units", None), where=f"{path}: {av.name}"
        )
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
        if "lat" in nc.variables and "lon" in nc.variables:
            lat = read_float(nc.variables["lat"], path)
            lon = read_float(nc.variables["lon"], path)
        elif "latitude" in attrs and "longitude" in attrs:
            lat = np.full(n, float(attrs["latitude"]))
            lon = np.full(n, float(attrs["longitude"]))
            notes["position"] = "global attributes latitude/longitude (site column)"
        else:
            raise ObservationFormatError(
                f"{path}: no 'lat'/'lon' variables and no global 'latitude'/'longitude'"
            )
    # site columns (OpenGHG's TCCON output) carry one pressure grid for all soundings: broadcast
    nlev = max(a.shape[-1] for a in (pressure, pw, ak, prior))
    pressure, pw, ak, prior = (
        np.broadcast_to(a, (n, nlev)).copy() for a in (pressure, pw, ak, prior)
    )
    lev = surface_first(
        {"pressure": pressure, "pw": pw, "ak": ak, "prior": prior}, "surface_to_top", notes
    )
    pressure, pw, ak, prior = lev["pressure"], lev["pw"], lev["ak"], lev["prior"]
    if scale is not None:
        chosen = normalise_scale(scale)
        notes["calibration scale"] = f"{chosen} (option scale)"
    elif attrs.get("calibration_scale"):
        chosen = normalise_scale(attrs["calibration_scale"])
        notes["calibration scale"] = f"{chosen} (global attribute calibration_scale)"
    else:
        chosen = "unspecified"
        notes["calibration scale"] = "not stated in the file (pass scale=... to record it)"
    site = str(attrs.get("site") or attrs.get("platform") or attrs.get("satellite") or "satellite")
    rec = ColumnRecords(
        source=str(path), time=time, value=value, unc=unc, flag=np.zeros(n), lat=lat, lon=lon,
        alt=np.zeros(n), ak=ak, pw=pw, apriori=prior, pressure=pressure,
        site=np.full(n, site, dtype=object), scale=chosen,
        attrs={"source_file": path.name, "platform": str(attrs.get("platform", site))},
        species=species, assumptions=notes, unc_name=f"x{species}_uncertainty",
        pw_name="pressure_weights",
    )  # fmt: skip
    notes.setdefault("surface altitude", "not in the file; alt = 0 m asl")
    opts = ColumnOptions(
        quality_flag=None, bbox=bbox, start=start, end=end, superobs=superobs,
        correlated_error=correlated_error, overpass_gap=overpass_gap,
        err_calibration=err_calibration, err_transport=err_transport,
    )  # fmt: skip
    return finalize_column(rec, opts)
