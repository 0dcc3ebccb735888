r"""FLEXPART native NetCDF output (``grid_time_*.nc``) of backward runs.

Unit conversion
---------------
For a backward run with ``IND_SOURCE=1`` (mass) and ``IND_RECEPTOR=2`` (mass mixing ratio),
``spec<NNN>_mr`` is a source-receptor relationship :math:`S` in s m3 kg-1 per output cell and
interval: the receptor's mass mixing ratio :math:`q` [kg kg-1] responds to a volumetric mass
source :math:`s` [kg m-3 s-1] in that cell as :math:`q = \sum S\,s`
(Seibert & Frank, 2004; FLEXPART 10.4 manual, Pisso et al., 2019, GMD 12, 4955).

A surface flux :math:`F_m` [kg m-2 s-1] is mixed into the lowest output layer of height
:math:`h` [m] (the top of the first ``OUTHEIGHTS`` level, the file's ``height[0]``), so
:math:`s = F_m / h`. With the molar flux :math:`F` [µmol m-2 s-1],
:math:`F_m = 10^{-6}\,M_{CO2}\,F` [kg m-2 s-1], and the molar mixing ratio
:math:`\chi = 10^{6}\,q\,M_{air}/M_{CO2}` [ppm]:

.. math::

    \chi\,[\mathrm{ppm}] = 10^{6}\,\frac{M_{air}}{M_{CO2}}\;\frac{S}{h}\;10^{-6}\,M_{CO2}\,F
              = \frac{S\,[\mathrm{s\,m^3\,kg^{-1}}]}{h\,[\mathrm{m}]}\;
                M_{air}\,[\mathrm{kg\,mol^{-1}}]\;F\,[\mathrm{\mu mol\,m^{-2}\,s^{-1}}]

so footprint [ppm per (µmol m-2 s-1)] = S / h · M_air, with units
s m3 kg-1 · m-1 · kg mol-1 = s m2 mol-1 = (mol mol-1)/(mol m-2 s-1) = ppm/(µmol m-2 s-1).
The tracer's molar mass cancels. ``M_air = 0.0289644`` kg mol-1 (dry air).

Time: in a backward run every output time ``t`` closes an averaging interval of
``|loutaver|`` seconds that runs back in time from ``t + |loutstep|`` to ``t``; the stamp is
therefore the **start** of the layer ``[t, t + |loutstep|)``. Layers are returned in increasing
time. Each release (``pointspec``) is one receptor: dims ``(receptor, time, y, x)``; receptor
time = middle of ``[RELSTART, RELEND]`` after the simulation reference ``iedate/ietime``,
position = centre of the release box, height = middle of ``[RELZZ1, RELZZ2]`` [m agl], with the
bounds in ``receptor_height_bottom/top``. Age classes are summed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ingest import FileProbe, UnitsError, parse_units

from ._common import (
    FootprintError,
    build_footprint,
    check_layer_times,
    check_layers,
    decoded_times,
    load_values,
    open_dataset,
    require,
)

__all__ = ["M_AIR", "read_flexpart"]

#: Molar mass of dry air [kg mol-1].
M_AIR = 0.0289644


def _ref_time(attrs: dict[str, Any], path: Path) -> np.datetime64:
    try:
        date, time = int(attrs["iedate"]), int(attrs["ietime"])
    except KeyError as err:
        raise FootprintError(
            f"{path}: FLEXPART global attribute {err} is missing; it is needed for receptor times"
        ) from None
    return pd.to_datetime(f"{date:08d}{time:06d}", format="%Y%m%d%H%M%S").to_datetime64()


def read_flexpart(
    path: str | Path, *, species: int = 1, kind: str = "tower", m_air: float = M_AIR
) -> Any:
    """Read a FLEXPART backward-run ``grid_time_*.nc`` as footprints.

    Parameters
    ----------
    path : str or Path
        FLEXPART NetCDF output file.
    species : int
        Species number (``spec001_mr`` is 1).
    kind : str
        Receptor kind recorded for every release.
    m_air : float
        Molar mass of air [kg mol-1].

    Returns
    -------
    xarray.DataArray
        ``(receptor, time, y, x)`` footprint [ppm per (µmol m-2 s-1)] of the lowest output layer.

    Raises
    ------
    FootprintError
        Forward runs, units other than ``s m3 kg-1``, NaN, irregular layers, corrupt files.
    """
    path = Path(path)
    var = f"spec{species:03d}_mr"
    if FileProbe(path).container not in ("netcdf3", "hdf5"):
        raise FootprintError(
            f"{path}: not a NetCDF file ({FileProbe(path).describe()}); this reader reads the "
            "FLEXPART NetCDF output (grid_time_*.nc): rerun FLEXPART with NetCDF output "
            "(IOUT >= 9 in COMMAND) or convert the binary grid files first"
        )
    with open_dataset(path) as ds:
        require(ds, [var, "height", "RELLNG1", "RELLAT1", "RELZZ1", "RELSTART"], path, "flexpart")
        if int(ds.attrs.get("ldirect", -1)) != -1:
            raise FootprintError(
                f"{path}: ldirect={ds.attrs.get('ldirect')} is a forward run; footprints need a "
                "backward run (LDIRECT=-1)"
            )
        da = ds[var]
        units = str(da.attrs.get("units", "")).strip()
        try:
            parsed = parse_units(units, where=f"{path}: variable {var!r}")
        except UnitsError:
            parsed = None
        if parsed is None or parsed.dims != {"s": 1, "m": 3, "g": -1}:
            raise UnitsError(
                f"{path}: {var} has units {units!r}; only a source-receptor relationship in "
                "s m3 kg-1 (IND_SOURCE=1, IND_RECEPTOR=2) can be converted to ppm per "
                "(µmol m-2 s-1); rerun FLEXPART with IND_RECEPTOR=2"
            )
        to_s_m3_kg = parsed.factor * 1e3  # the parser's base is s m3 g-1
        h = float(ds["height"].values[0])
        if not h > 0:
            raise FootprintError(f"{path}: lowest output height {h} m is not positive")
        if "nageclass" in da.dims:
            da = da.sum("nageclass", skipna=False)  # NaN stays NaN: refused below
        da = da.isel(height=0).transpose("pointspec", "time", "latitude", "longitude")
        times = decoded_times(ds["time"].values, "time", ds["time"].attrs.get("units"), path)
        values = load_values(da, path)
        x, y = ds["longitude"].values, ds["latitude"].values
        ref = _ref_time(ds.attrs, path)
        rel = {k: ds[k].values for k in ("RELLNG1", "RELLNG2", "RELLAT1", "RELLAT2")}
        z1, z2 = ds["RELZZ1"].values, ds["RELZZ2"].values
        rs, re_ = ds["RELSTART"].values, ds["RELEND"].values
        step_s = abs(int(ds.attrs.get("loutstep", 0)))
        names = (
            [s.decode().strip() if isinstance(s, bytes) else str(s) for s in ds["RELCOM"].values]
            if "RELCOM" in ds
            else [f"release_{i + 1}" for i in range(values.shape[0])]
        )
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[:, order]
    step = np.timedelta64(step_s, "s") if step_s else times[1] - times[0]
    check_layer_times(times, step, path)
    factor = to_s_m3_kg * m_air / h
    check_layers(values, path, var, factor=factor, y=y, x=x, starts=times)
    values = (values.astype(np.float64) * factor).astype(np.float32)
    mid = (rs.astype("int64") + re_.astype("int64")) // 2
    rec = {
        "time": ref + mid.astype("timedelta64[s]"),
        "lon": 0.5 * (rel["RELLNG1"] + rel["RELLNG2"]),
        "lat": 0.5 * (rel["RELLAT1"] + rel["RELLAT2"]),
        "height": 0.5 * (z1 + z2),
        "kind": np.full(values.shape[0], kind),
        "id": [f"{path.name}#{i}:{n}" for i, n in enumerate(names)],
    }
    fp = build_footprint(
        values,
        x=x,
        y=y,
        crs="EPSG:4326",
        time=times,
        layer_seconds=float(step / np.timedelta64(1, "s")),
        receptor=rec,
        path=path,
        fmt="flexpart",
        extra_attrs={"surface_layer_height_m": h, "m_air_kg_per_mol": m_air},
    )
    return fp.assign_coords(
        receptor_height_bottom=("receptor", z1.astype(float)),
        receptor_height_top=("receptor", z2.astype(float)),
    )
