"""Write the small fixture files of our own formats (observations/FORMATS.md) into this folder.

Run: ``python tests/observations/data/make_fixtures.py``.  Deterministic (fixed seed); the
files are committed next to this script.  Known values used by the tests are documented inline.
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np

HERE = Path(__file__).resolve().parent
EPOCH = "seconds since 1970-01-01 00:00:00"
T0 = 1_500_000_000  # 2017-07-14T02:40:00Z


def tower_csv(path: Path) -> None:
    """Two hours of 4 quarter-hour records each, site TWR, intake 50 m (and one 10 m record).

    Hour 1 values 410, 411, 412, 413 (mean 411.5); hour 2: 420 x3 + flagged 999 (dropped).
    """
    lines = [
        "# cityflux tower CSV v1",
        "time,site,lat,lon,intake_height,value,value_unc,flag,scale",
    ]
    vals = [410, 411, 412, 413, 420, 420, 420, 999]
    for i, v in enumerate(vals):
        minute = 15 * (i % 4)
        hour = 12 + i // 4
        flag = 1 if v == 999 else 0
        lines.append(
            f"2020-06-01T{hour:02d}:{minute:02d}:00Z,TWR,40.0,-105.0,50,{v},0.1,{flag},WMO CO2 X2019"
        )
    lines.append("2020-06-01T12:00:00Z,TWR,40.0,-105.0,10,500,0.1,0,WMO CO2 X2019")
    path.write_text("\n".join(lines) + "\n")


def lidar_path(csv_path: Path, nc_path: Path) -> None:
    """Two scans of three chords from a roof-top lidar at (40.0, -105.0, 1600 m asl)."""
    n = 6
    t0 = np.array([T0 + 600 * (i // 3) + 60 * (i % 3) for i in range(n)], dtype="float64")
    lat1 = 40.0 + 0.01 * np.arange(1, n + 1)
    xco2 = 415.0 + np.arange(n, dtype="float64")
    flag = np.array([0, 0, 0, 0, 0, 1])
    rows = [
        "time_start,time_end,site,lat0,lon0,alt0,lat1,lon1,alt1,xco2,xco2_uncertainty,flag,scan_id,scale"
    ]
    for i in range(n):
        ts = np.datetime64(int(t0[i]), "s")
        te = np.datetime64(int(t0[i] + 30), "s")
        rows.append(
            f"{ts}Z,{te}Z,LID,40.0,-105.0,1600,{lat1[i]:.4f},-104.99,1650,{xco2[i]},0.5,"
            f"{flag[i]},{i // 3},WMO CO2 X2019"
        )
    csv_path.write_text("\n".join(rows) + "\n")
    with netCDF4.Dataset(nc_path, "w") as nc:
        nc.cityflux_format = "lidar_path"
        nc.site = "LID"
        nc.calibration_scale = "WMO CO2 X2019"
        nc.createDimension("chord", n)

        def var(name, data, units=None):
            v = nc.createVariable(name, "f8", ("chord",))
            v[:] = data
            if units:
                v.units = units

        var("time_start", t0, EPOCH)
        var("time_end", t0 + 30, EPOCH)
        for name, data, u in (
            ("lat0", np.full(n, 40.0), "degrees_north"),
            ("lon0", np.full(n, -105.0), "degrees_east"),
            ("alt0", np.full(n, 1600.0), "m"),
            ("lat1", lat1, "degrees_north"),
            ("lon1", np.full(n, -104.99), "degrees_east"),
            ("alt1", np.full(n, 1650.0), "m"),
            ("xco2", xco2, "ppm"),
            ("xco2_uncertainty", np.full(n, 0.5), "ppm"),
            ("flag", flag, None),
            ("scan_id", np.arange(n) // 3, None),
        ):
            var(name, data, u)


def lidar_profile(path: Path) -> None:
    """Two profiles x 4 segments (500 m each) along a beam, azimuth 90 deg, elevation 0 deg.

    Segment 2 of profile 1 is flagged; co2 = 420 + profile + 0.1 * segment.
    """
    with netCDF4.Dataset(path, "w") as nc:
        nc.cityflux_format = "lidar_profile"
        nc.site = "RRL"
        nc.calibration_scale = "WMO CO2 X2019"
        nc.createDimension("profile", 2)
        nc.createDimension("segment", 4)
        for name, val, u in (
            ("lat0", [40.0, 40.0], "degrees_north"),
            ("lon0", [-105.0, -105.0], "degrees_east"),
            ("alt0", [1600.0, 1600.0], "m"),
            ("azimuth", [90.0, 90.0], "degree"),
            ("elevation", [0.0, 0.0], "degree"),
            ("time_start", [T0, T0 + 300], EPOCH),
            ("time_end", [T0 + 60, T0 + 360], EPOCH),
        ):
            v = nc.createVariable(name, "f8", ("profile",))
            v[:] = val
            v.units = u
        for name, val in (
            ("range_start", [0, 500, 1000, 1500]),
            ("range_end", [500, 1000, 1500, 2000]),
        ):
            v = nc.createVariable(name, "f8", ("segment",))
            v[:] = val
            v.units = "m"
        co2 = 420.0 + np.arange(2)[:, None] + 0.1 * np.arange(4)[None, :]
        v = nc.createVariable("co2", "f8", ("profile", "segment"))
        v[:] = co2
        v.units = "ppm"
        v = nc.createVariable("co2_uncertainty", "f8", ("profile", "segment"))
        v[:] = np.full((2, 4), 1.0)
        v.units = "ppm"
        flag = np.zeros((2, 4), dtype="i1")
        flag[1, 2] = 1
        nc.createVariable("flag", "i1", ("profile", "segment"))[:] = flag


def _levels_file(path: Path, fmt: str, weight_name: str, with_prior: bool) -> None:
    """Column layout: 8 soundings x 5 levels, stored top -> surface (level_order attr).

    Soundings 0-3 in overpass A (1 s apart), 4-7 in overpass B (2 h later); sounding 6 has
    quality_flag 1; sounding 7 lies outside the box (-106, 39, -104, 41).
    """
    n, nl = 8, 5
    rng = np.random.default_rng(42)
    with netCDF4.Dataset(path, "w") as nc:
        nc.cityflux_format = fmt
        nc.platform = "TanSat-like" if fmt == "column" else "DQ-1 ACDL-like"
        nc.calibration_scale = "TCCON GGG2020"
        nc.level_order = "top_to_surface"
        nc.createDimension("sounding", n)
        nc.createDimension("level", nl)
        t = np.r_[T0 + np.arange(4), T0 + 7200 + np.arange(4)].astype("f8")
        lat = np.r_[40.0, 40.01, 40.02, 40.03, 40.0, 40.001, 40.002, 45.0]
        lon = np.r_[-105.0, -105.0, -105.0, -105.0, -104.95, -104.95, -104.95, -104.95]
        one = {
            "time": (t, EPOCH),
            "latitude": (lat, "degrees_north"),
            "longitude": (lon, "degrees_east"),
            "xco2": (410.0 + np.arange(n), "ppm"),
            "xco2_uncertainty": (np.full(n, 1.0), "ppm"),
            "surface_altitude": (np.full(n, 1600.0), "m"),
        }
        for name, (data, units) in one.items():
            v = nc.createVariable(name, "f8", ("sounding",))
            v[:] = data
            v.units = units
        nc.createVariable("quality_flag", "i1", ("sounding",))[:] = (np.arange(n) == 6).astype("i1")
        pres_top_down = np.linspace(0.1, 840.0, nl)[None, :].repeat(n, 0)
        w = np.diff(np.r_[0.0, pres_top_down[0]]) + rng.uniform(0, 1e-3, nl)
        w = (w / w.sum())[None, :].repeat(n, 0)
        block = {"pressure": (pres_top_down, "hPa"), weight_name: (w, "1")}
        if with_prior:
            block["averaging_kernel"] = (np.linspace(0.5, 1.0, nl)[None, :].repeat(n, 0), "1")
            block["co2_apriori"] = (np.linspace(400.0, 412.0, nl)[None, :].repeat(n, 0), "ppm")
        for name, (data, units) in block.items():
            v = nc.createVariable(name, "f8", ("sounding", "level"))
            v[:] = data
            v.units = units


def main() -> None:
    tower_csv(HERE / "tower_small.csv")
    lidar_path(HERE / "lidar_path.csv", HERE / "lidar_path.nc")
    lidar_profile(HERE / "lidar_profile.nc")
    _levels_file(HERE / "column_generic.nc", "column", "pressure_weight", with_prior=True)
    _levels_file(HERE / "ipda_small.nc", "ipda", "weighting_function", with_prior=False)


if __name__ == "__main__":
    main()
