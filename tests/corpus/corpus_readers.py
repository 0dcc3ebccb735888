"""Corpus cases for the readers added by the readers refactor: TCCON, OpenGHG columns, OCO /
ACOS Lite, NAME (OpenGHG and PARIS layouts) and FLEXPART footprints, each broken in the ways
files break in practice (missing variable, wrong units, truncated, all-NaN, swapped dims,
undecodable times). The bases are small working cases (their unbroken run exits 0, checked by
``test_corpus.py::test_reader_bases_run``); ``corpus_cases.all_cases`` adds these cases.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import xarray as xr
from corpus_cases import EDGAR, Case, Edit, conf, error, warned

DATA = Path(__file__).resolve().parents[1] / "observations" / "data"
TCCON = "pa20190701_20190701.public.qc.nc"
OCO3 = "oco3_LtCO2_200505_B10400Br_test.nc4"
ACOS = "satellite/acos_LtCO2_090901_v205205_B9213A_200310212449s.nc4"
GOSAT = "columns/openghg_gosat-fts_gosat_20160101_ch4-column.nc"
NAME = "name/openghg_TAC-100magl_UKV_TEST_201607.nc"
PARIS = "name/openghg_MHD-10magl_NAME_UKV_TEST_inert_PARIS-format_201301.nc"
FLEXPART = "flexpart/grid_time_20091130210000.nc"
CSV_HEAD = "time,site,lat,lon,intake_height,value,value_unc\n"
MET = {"wind_speed": 5.0, "wind_direction": 250.0, "boundary_layer_height": 800.0,
       "stability": "D"}  # fmt: skip


def _common(d: Path, inv_bbox: list[float]) -> dict:
    return {
        "prior": {"inventories": [{"path": "", "format": "edgar",
                                   "options": {"bbox": inv_bbox}}],
                  "relative_std": 0.5, "floor_std": 0.01,
                  "temporal": {"profile_for": {"total": "flat"}}},
        "background": {"method": "constant", "value_ppm": 400.0, "error_ppm": 1.0},
        "output": {"dir": str(d / "out"), "figures": False},
    }  # fmt: skip


def _column_base(
    name: str, src: Callable[[Path, Path], Path], center: tuple[float, float], day: str,
    options: dict, res_m: float = 4000.0,
) -> Callable[[Path, Path], dict]:  # fmt: skip
    """A plume case around ``center`` (lon, lat) on ``day`` with one column file."""

    def base(fx: Path, d: Path) -> dict:
        cfg = _common(d, [center[0] - 3, center[1] - 3, center[0] + 3, center[1] + 3])
        cfg["prior"]["inventories"][0]["path"] = str(fx / EDGAR)
        start = np.datetime64(day, "D")
        return {
            "name": f"corpus-{name}",
            "domain": {"center_lon": center[0], "center_lat": center[1], "nx": 8, "ny": 8,
                       "resolution_m": res_m},
            "period": {"start": f"{start}T00:00:00", "end": f"{start + 1}T00:00:00",
                       "step": "6h"},
            **cfg,
            "observations": [{"path": str(src(fx, d)), "format": name, "options": options,
                              "error_ppm": 1.0}],
            "transport": {"model": "plume", "met": MET},
            "inversion": {"method": "obs-space", "spatial_length_km": 6.0,
                          "temporal_length_h": 24.0},
        }  # fmt: skip

    return base


def _footprint_base(
    fmt: str, src: str, bounds: list[float], res_deg: float, period: tuple[str, str, str],
    receptor: tuple[str, float, float, float], times: list[str], options: dict,
    crop: bool = True,
) -> Callable[[Path, Path], dict]:  # fmt: skip
    """A footprint case: the file ``src`` alone in the footprint folder, tower CSV rows at its
    receptor (site, lat, lon, height [m agl]) at ``times`` (representative, UTC); ``crop``
    False keeps a receptor outside the domain (the PARIS TEST file's grid does not hold its
    own site)."""

    def base(fx: Path, d: Path) -> dict:
        (d / "footprints").mkdir(exist_ok=True)
        shutil.copyfile(fx / src, d / "footprints" / Path(src).name)
        site, lat, lon, z = receptor
        rows = "".join(f"{t},{site},{lat},{lon},{z},410.5,0.2\n" for t in times)
        (d / "obs.csv").write_text(CSV_HEAD + rows, encoding="utf-8")
        cfg = _common(d, [bounds[0] - 2, bounds[1] - 2, bounds[2] + 2, bounds[3] + 2])
        cfg["prior"]["inventories"][0]["path"] = str(fx / EDGAR)
        return {
            "name": f"corpus-{fmt}",
            "domain": {"bounds": bounds, "resolution_deg": res_deg},
            "period": dict(zip(("start", "end", "step"), period, strict=True)),
            **cfg,
            "observations": [{"path": str(d / "obs.csv"), "format": "tower_csv",
                              "options": {"time_stamp": "midpoint"}, "error_ppm": 2.0,
                              "crop": crop}],
            "transport": {"model": "footprints", "footprints": str(d / "footprints"),
                          "footprint_format": fmt, "footprint_options": options,
                          "threshold": 0.0, "time_tolerance": "10min"},
        }  # fmt: skip

    return base


def _gosat_co2(fx: Path, d: Path) -> Path:
    """The OpenGHG GOSAT column file (CH4) made a CO2 file of the same layout: x<gas> names,
    values x 410/1790, units 1e-6 (OpenGHG writes scale-factor units such as "1e-9")."""
    out = d / "gosat-fts_gosat_20160101_co2-column.nc"
    if not out.exists():
        with xr.open_dataset(fx / GOSAT) as ds:
            ds = ds.load()
        f = 410.0 / 1790.0
        for v in ("xch4", "xch4_uncertainty", "ch4_profile_apriori"):
            ds[v] = ds[v] * f
            ds[v].attrs["units"] = "1e-6"
        ds = ds.rename({"xch4": "xco2", "xch4_uncertainty": "xco2_uncertainty",
                        "ch4_profile_apriori": "co2_profile_apriori",
                        "xch4_averaging_kernel": "xco2_averaging_kernel"})  # fmt: skip
        ds.to_netcdf(out)
    return out


# GOSAT soundings at (3.19 N, 58.19 W) and (2.36 N, 58.37 W) on 2016-01-01 16:33 UTC; ACOS
# soundings at (32.32 N, 164.81 W) and (32.05 N, 164.88 W) on 2009-09-01 00:01 UTC
BASES: dict[str, Callable[[Path, Path], dict]] = {
    "tccon": _column_base("tccon", lambda fx, d: DATA / TCCON, (-118.2, 34.07), "2019-07-01",
                          {"scale": "X2019"}),
    "oco3": _column_base("oco_lite", lambda fx, d: DATA / OCO3, (-118.2, 34.07), "2020-05-05",
                         {}),
    "acos": _column_base("oco_lite", lambda fx, d: fx / ACOS, (-164.84, 32.19), "2009-09-01", {},
                         res_m=10000.0),
    "ogcol": _column_base("openghg_column", _gosat_co2, (-58.28, 2.77), "2016-01-01", {},
                          res_m=15000.0),
    "name": _footprint_base(
        "name", NAME, [0.2, 51.6, 2.2, 53.6], 0.25,
        ("2016-06-30T18:00:00", "2016-07-01T06:00:00", "6h"),
        ("TAC", 52.51776123, 1.13873291, 100.0),
        ["2016-07-01T00:00:00Z", "2016-07-01T01:00:00Z", "2016-07-01T02:00:00Z"],
        {"back_hours": 6},
    ),
    "paris": _footprint_base(
        "paris", PARIS, [0.2, 51.6, 2.2, 53.6], 0.25,
        ("2012-12-31T18:00:00", "2013-01-01T06:00:00", "6h"),
        ("MHD", 53.32611084, -9.90386963, 10.0),
        ["2013-01-01T00:00:00Z", "2013-01-01T01:00:00Z", "2013-01-01T02:00:00Z"],
        {"back_hours": 6}, crop=False,
    ),
    "flexpart": _footprint_base(
        "flexpart", FLEXPART, [150.0, -35.5, 152.0, -33.5], 0.25,
        ("2009-11-16T00:00:00", "2009-12-01T00:00:00", "1D"),
        ("WOL", -34.40599823, 150.87896729, 250.0), ["2009-11-30T20:00:00Z"], {},
    ),
}  # fmt: skip


# --------------------------------------------------------------------------- file edits
def _obs_copy(name: str, edit: Callable[[netCDF4.Dataset], None] | None = None,
              blob: Callable[[bytes], bytes] | None = None) -> Edit:  # fmt: skip
    """Replace the base's observation file by an edited copy named ``name`` (netCDF4 edits in
    place keep groups; ``blob`` edits the raw bytes instead)."""

    def run(c: dict, d: Path, fx: Path) -> None:
        src = Path(c["observations"][0]["path"])
        dst = d / name
        if blob is not None:
            dst.write_bytes(blob(src.read_bytes()))
        else:
            shutil.copyfile(src, dst)
            with netCDF4.Dataset(dst, "a") as nc:
                edit(nc)
        c["observations"][0]["path"] = str(dst)

    return run


def _fp_copy(edit: Callable[[netCDF4.Dataset], None] | None = None,
             blob: Callable[[bytes], bytes] | None = None) -> Edit:  # fmt: skip
    """Edit the base's footprint file in its folder (in place: it is the case's own copy)."""

    def run(c: dict, d: Path, fx: Path) -> None:
        (path,) = (d / "footprints").iterdir()
        if blob is not None:
            path.write_bytes(blob(path.read_bytes()))
            return
        with netCDF4.Dataset(path, "a") as nc:
            edit(nc)

    return run


def _rename(*pairs: tuple[str, str]) -> Callable[[netCDF4.Dataset], None]:
    def edit(nc: netCDF4.Dataset) -> None:
        for old, new in pairs:
            nc.renameVariable(old, new)

    return edit


def _units(var: str, units: str | None) -> Callable[[netCDF4.Dataset], None]:
    def edit(nc: netCDF4.Dataset) -> None:
        if units is None:
            nc[var].delncattr("units")
        else:
            nc[var].units = units

    return edit


def _fill(var: str, value: float, index: Any = Ellipsis) -> Callable[[netCDF4.Dataset], None]:
    def edit(nc: netCDF4.Dataset) -> None:
        v = nc[var]
        v.set_auto_mask(False)
        arr = np.array(v[...], dtype=float)
        arr[index] = value
        v[...] = arr

    return edit


def _scale(var: str, factor: float) -> Callable[[netCDF4.Dataset], None]:
    def edit(nc: netCDF4.Dataset) -> None:
        v = nc[var]
        v.set_auto_mask(False)
        v[...] = np.array(v[...], dtype=float) * factor

    return edit


def _flip(*names: str) -> Callable[[netCDF4.Dataset], None]:
    """Reverse the level axis (last) of ``names``: levels in the wrong order."""

    def edit(nc: netCDF4.Dataset) -> None:
        for n in names:
            nc[n].set_auto_mask(False)
            nc[n][...] = np.array(nc[n][...])[..., ::-1]

    return edit


def _swap(a: str, b: str) -> Callable[[netCDF4.Dataset], None]:
    return _rename((a, "tmp_swap"), (b, a), ("tmp_swap", b))


def _chain(*edits: Callable[[netCDF4.Dataset], None]) -> Callable[[netCDF4.Dataset], None]:
    def edit(nc: netCDF4.Dataset) -> None:
        for e in edits:
            e(nc)

    return edit


def _same_first_times(var: str) -> Callable[[netCDF4.Dataset], None]:
    """The second time stamp set to the first (duplicated layers or receptors)."""

    def edit(nc: netCDF4.Dataset) -> None:
        v = nc[var]
        v.set_auto_mask(False)
        t = np.array(v[...])
        t[1] = t[0]
        v[...] = t

    return edit


def _half(b: bytes) -> bytes:
    return b[: len(b) // 2]


def reader_cases() -> list[Case]:
    """The corpus cases of the new readers (about 50)."""
    out: list[Case] = []
    add = out.append
    # ---- TCCON GGG2020 (built file of the public layout)
    t = "tccon.nc"
    for name, edit, exp in (
        ("missing_xco2", _rename(("xco2", "a"), ("xco2_x2019", "b")), error(3, t, "xco2")),
        ("units_kelvin", _units("xco2_x2019", "K"), error(3, t, "'K'")),
        ("units_ppb", _units("xco2_x2019", "ppb"), error(3, t, "implausible")),
        ("all_nan", _fill("xco2_x2019", np.nan), error(3, t)),
        ("time_units_garbage", _units("time", "bananas"), error(3, t, "bananas")),
        ("ak_missing", _rename(("ak_xco2", "ak_other")), error(3, t, "ak_xco2")),
        ("lat_lon_swapped", _swap("lat", "long"), error(3, t, "implausible position")),
    ):
        add(Case(f"tccon_{name}", BASES["tccon"], _obs_copy(t, edit), exp))
    add(Case("tccon_truncated", BASES["tccon"], _obs_copy(t, blob=_half), error(3, t, "truncated")))
    add(Case("tccon_scale_not_chosen", BASES["tccon"], conf("observations[0].options", {}),
             error(3, "scale")))  # fmt: skip
    add(Case("tccon_option_wrong_type", BASES["tccon"], conf("observations[0].options", {"scale": 2019}),
             error(2, "observations[0].options", "'scale'")))  # fmt: skip
    # ---- OCO-3 Lite (built file of the Lite layout, with the Sounding group)
    o = "oco3_lite.nc4"
    for name, edit, exp in (
        ("missing_uncertainty", _rename(("xco2_uncertainty", "u")),
         error(3, o, "xco2_uncertainty")),
        ("units_ppb", _units("xco2", "ppb"), error(3, o, "implausible")),
        ("all_nan", _fill("xco2", np.nan), error(3, o, "missing xco2")),
        ("all_flagged", _fill("xco2_quality_flag", 1), error(3, o, "quality flag")),
        ("kernel_all_nan", _fill("xco2_averaging_kernel", np.nan), error(3, o, "kernel")),
        ("lat_lon_swapped", _swap("latitude", "longitude"), error(3, o, "implausible position")),
        ("negative_uncertainty", _scale("xco2_uncertainty", -1.0),
         error(3, o, "'xco2_uncertainty'", "negative")),
        ("levels_reversed", _flip("pressure_levels", "pressure_weight", "xco2_averaging_kernel",
                                  "co2_profile_apriori"), warned("level order")),
        ("pressure_weight_doubled", _scale("pressure_weight", 2.0),
         error(3, o, "'pressure_weight'", "sum to 1")),
    ):  # fmt: skip
        add(Case(f"oco3_{name}", BASES["oco3"], _obs_copy(o, edit), exp))
    add(Case("oco3_truncated", BASES["oco3"], _obs_copy(o, blob=_half), error(3, o, "truncated")))
    add(Case("oco3_unknown_operation_mode", BASES["oco3"],
             conf("observations[0].options", {"operation_modes": ["XX"]}),
             error(3, "oco3_LtCO2", "operation mode")))  # fmt: skip
    # ---- ACOS GOSAT Lite (real file)
    a = "acos_lite.nc4"
    add(Case("acos_truncated", BASES["acos"], _obs_copy(a, blob=_half), error(3, a, "truncated")))
    add(Case("acos_time_units_garbage", BASES["acos"], _obs_copy(a, _units("time", "bananas")),
             error(3, a, "bananas")))  # fmt: skip
    add(Case("acos_operation_modes", BASES["acos"],
             conf("observations[0].options", {"operation_modes": ["SAM"]}),
             error(3, "acos_LtCO2", "operation_mode")))  # fmt: skip
    add(Case("acos_bbox_wrong_length", BASES["acos"],
             conf("observations[0].options", {"bbox": [-165, 32]}),
             error(2, "observations[0].options", "'bbox'")))  # fmt: skip
    # ---- OpenGHG column layout (the GOSAT file made CO2)
    g = "gosat_broken.nc"
    for name, edit, exp in (
        ("missing_pressure_weights", _rename(("pressure_weights", "pw")),
         error(3, g, "pressure_weights")),
        ("units_missing", _units("xco2", None), error(3, g, "xco2", "units")),
        ("all_nan", _fill("xco2", np.nan), error(3, g, "missing xco2")),
        ("lat_lon_missing", _rename(("lat", "la"), ("lon", "lo")), error(3, g, "'lat'")),
    ):  # fmt: skip
        add(Case(f"ogcol_{name}", BASES["ogcol"], _obs_copy(g, edit), exp))
    add(Case("ogcol_truncated", BASES["ogcol"], _obs_copy(g, blob=_half), error(3, g, "truncated")))
    add(Case("ogcol_levels_top_first", BASES["ogcol"],
             _obs_copy(g, _flip("pressure_levels", "pressure_weights", "xco2_averaging_kernel",
                                "co2_profile_apriori")), warned("level order")))  # fmt: skip
    add(Case("ogcol_ch4_file_as_co2", BASES["ogcol"],
             lambda c, d, fx: c["observations"][0].update(path=str(fx / GOSAT)),
             error(3, "xch4", "species=")))  # fmt: skip
    # ---- NAME footprints (OpenGHG layout) and PARIS
    n = Path(NAME).name
    for name, edit, exp in (
        ("missing_fp", _rename(("fp", "fq")), error(3, n, "fp")),
        ("units_wrong", _units("fp", "kg m-2"), error(3, n, "'kg m-2'")),
        ("all_nan", _fill("fp", np.nan), error(3, n, "NaN")),
        ("time_units_garbage", _units("time", "bananas"), error(3, n, "bananas")),
        ("lat_lon_swapped", _swap("lat", "lon"), error(3, n, "uncovered")),
        ("absurd_cell", _fill("fp", 1e12, (5, 5, 0)), error(3, n, "absurd")),
        ("identical_receptor_times", _same_first_times("time"), error(3, n, "each receptor once")),
    ):
        add(Case(f"name_{name}", BASES["name"], _fp_copy(edit), exp))
    add(Case("name_truncated", BASES["name"], _fp_copy(blob=_half), error(3, n, "truncated")))
    add(Case("name_hitres_missing", BASES["name"],
             conf("transport.footprint_options", {"hitres": True, "back_hours": 6}),
             error(3, n, "fp_HiTRes")))  # fmt: skip
    add(Case("name_option_wrong_type", BASES["name"],
             conf("transport.footprint_options", {"back_hours": "long"}),
             error(2, "transport.footprint_options", "'back_hours'")))  # fmt: skip
    p = Path(PARIS).name
    for name, edit, exp in (
        ("missing_srr", _rename(("srr", "s")), error(3, p, "'srr'")),
        ("units_wrong", _units("srr", "ppm"), error(3, p, "'ppm'")),
        ("all_nan", _fill("srr", np.nan), error(3, p, "NaN")),
        ("latitude_scaled", _scale("latitude", 3.0), error(3, p, "coordinate y")),
    ):
        add(Case(f"paris_{name}", BASES["paris"], _fp_copy(edit), exp))
    # ---- FLEXPART backward run
    f = Path(FLEXPART).name
    for name, edit, exp in (
        ("units_seconds", _units("spec001_mr", "s"), error(3, f, "IND_RECEPTOR=2")),
        ("forward_run", lambda nc: nc.setncattr("ldirect", 1), error(3, f, "forward")),
        ("missing_release_lat", _rename(("RELLAT1", "RL")), error(3, f, "RELLAT1")),
        ("time_units_garbage", _units("time", "bananas"), error(3, f, "bananas")),
        ("all_nan", _fill("spec001_mr", np.nan), error(3, f, "NaN")),
        ("latitude_beyond_90", _scale("latitude", 3.0), error(3, f, "coordinate y")),
        ("identical_layer_times", _same_first_times("time"), error(3, f, "back-layers")),
    ):
        add(Case(f"flexpart_{name}", BASES["flexpart"], _fp_copy(edit), exp))
    add(
        Case(
            "flexpart_truncated", BASES["flexpart"], _fp_copy(blob=_half), error(3, f, "truncated")
        )
    )
    return out
