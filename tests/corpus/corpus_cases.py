"""The standing corpus of broken inputs: each case makes its files from the real fixtures in
../shared/fixtures (or small synthetic files), a configuration, and states the outcome expected
from ``cityflux run`` (or ``validate`` / ``batch``): an exit code with a message fragment that
names the file, variable or dotted key, or "dropped and counted" (exit 0 with a QC drop whose
reason contains the fragment).

Used by ``test_corpus.py`` (one parametrised test) and by ``python tests/corpus/run_corpus.py``
(running a case and judging its outcome: ``corpus_run.py``), which prints the outcome table (ok / silent wrong / raw traceback / hang / unclear). The cases of
configurations are in ``corpus_config.py``, those of the readers added by the readers refactor
(TCCON, OpenGHG columns, Lite files, NAME, PARIS, FLEXPART) in ``corpus_readers.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import yaml

HTM = "insitu/co2_htm_tower-insitu_424_allvalid-150magl_small.nc"
EDGAR = "inventories/edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc"
STILT = "stilt/pystilt_r_foot_201512100000_-112_40.5_5.nc"
SLC = "boundaries/clickthathood_salt-lake-city.geojson"
FP_NAME = "201512100000_-112_40.5_5_foot.nc"
CSV_HEAD = "time,site,lat,lon,intake_height,value,value_unc\n"
CSV_ROW = "2015-12-10T00:00:00Z,RCP,40.5,-112.0,5,415.3,0.2\n"
HANG_S = 60  # a case still running after this long is a hang


@dataclass(frozen=True)
class Expect:
    """``exit``: expected exit code; ``fragment``: text the output must contain (case-blind;
    a tuple: every part), with the case's own folder replaced by ``<case>`` so that a fragment
    never matches the case's name; ``dropped``: for exit 0, a QC drop reason that must be
    counted (contains ``fragment``); ``warned``: for exit 0, an assumption or warning of the QC
    report in diagnostics.json that contains ``fragment`` (the user is told, not silent)."""

    exit: int
    fragment: str | tuple[str, ...]
    dropped: bool = False
    warned: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        return (self.fragment,) if isinstance(self.fragment, str) else self.fragment


def error(code: int, *fragments: str) -> Expect:
    return Expect(code, fragments[0] if len(fragments) == 1 else fragments)


def dropped(reason: str) -> Expect:
    return Expect(0, reason, dropped=True)


def warned(fragment: str) -> Expect:
    return Expect(0, fragment, warned=True)


Edit = Callable[[dict, Path, Path], Any]


@dataclass(frozen=True)
class Case:
    name: str
    base: str | Callable[[Path, Path], dict]  # a name in BASES, or base(fixtures, folder)
    edit: Edit  # edit(config data, case folder, fixtures) may write files; returns nothing
    expect: Expect
    command: str = "run"
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:  # names become folder names: no spaces
        object.__setattr__(self, "name", self.name.replace(" ", "_"))


# --------------------------------------------------------------------------- base configs
def tower_base(fx: Path, d: Path) -> dict:
    return {
        "name": "corpus-tower",
        "domain": {"center_lon": 13.4189, "center_lat": 56.0976, "nx": 6, "ny": 6,
                   "resolution_m": 4000.0},
        "period": {"start": "2016-12-13T00:00:00", "end": "2016-12-17T00:00:00", "step": "1D"},
        "prior": {"inventories": [{"path": str(fx / EDGAR), "format": "edgar"}],
                  "relative_std": 0.5, "floor_std": 0.01,
                  "temporal": {"profile_for": {"total": "flat"}}},
        "observations": [{"path": str(fx / HTM), "format": "obspack",
                          "options": {"hours": [10, 18]}, "error_ppm": 2.0}],
        "background": {"method": "constant", "value_ppm": 400.0, "error_ppm": 1.0},
        "transport": {"model": "plume", "met": {"wind_speed": 5.0, "wind_direction": 250.0,
                      "boundary_layer_height": 800.0, "stability": "D"}},
        "inversion": {"method": "obs-space", "spatial_length_km": 6.0,
                      "temporal_length_h": 24.0},
        "output": {"dir": str(d / "out"), "figures": False},
    }  # fmt: skip


def stilt_base(fx: Path, d: Path) -> dict:
    (d / "footprints").mkdir(exist_ok=True)
    (d / "footprints" / FP_NAME).write_bytes((fx / STILT).read_bytes())
    (d / "obs.csv").write_text(CSV_HEAD + CSV_ROW, encoding="utf-8")
    return {
        "name": "corpus-stilt",
        "domain": {"bounds": [-112.2, 40.4, -111.8, 40.8], "resolution_deg": 0.05},
        "period": {"start": "2015-12-09T12:00:00", "end": "2015-12-10T06:00:00", "step": "6h"},
        "prior": {"inventories": [{"path": str(fx / EDGAR), "format": "edgar",
                                   "options": {"bbox": [-113.0, 40.0, -111.0, 41.0]}}],
                  "temporal": {"profile_for": {"total": "flat"}}},
        "observations": [{"path": str(d / "obs.csv"), "format": "tower_csv", "error_ppm": 2.0}],
        "background": {"method": "constant", "value_ppm": 410.0, "error_ppm": 1.0},
        "transport": {"model": "footprints", "footprints": str(d / "footprints"),
                      "threshold": 0.0, "time_tolerance": "30min"},
        "output": {"dir": str(d / "out"), "figures": False},
    }  # fmt: skip


def synth_base(fx: Path, d: Path) -> dict:
    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "examples" / "osse_small.yaml").read_text(encoding="utf-8"))
    data["domain"].update(nx=8, ny=8, resolution_m=2000.0)
    data["period"].update(start="2024-06-03T00:00:00", end="2024-06-05T00:00:00")
    data["output"] = {"dir": str(d / "out"), "figures": False}
    return data


BASES = {"tower": tower_base, "stilt": stilt_base, "synth": synth_base}


# --------------------------------------------------------------------------- file makers
def _nc(src: Path, dst: Path, change: Callable[[xr.Dataset], xr.Dataset]) -> Path:
    with xr.open_dataset(src, decode_times=False) as ds:
        out = change(ds.load())
    out.to_netcdf(dst)
    return dst


def obs_nc(change: Callable[[xr.Dataset], xr.Dataset]) -> Edit:
    """Replace the tower observation file by a changed copy of the HTM ObsPack file."""

    def edit(c: dict, d: Path, fx: Path) -> None:
        c["observations"][0]["path"] = str(_nc(fx / HTM, d / "htm.nc", change))

    return edit


def inv_nc(change: Callable[[xr.Dataset], xr.Dataset]) -> Edit:
    def edit(c: dict, d: Path, fx: Path) -> None:
        name = "edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.nc"
        c["prior"]["inventories"][0]["path"] = str(_nc(fx / EDGAR, d / name, change))

    return edit


def fp_nc(change: Callable[[xr.Dataset], xr.Dataset]) -> Edit:
    def edit(c: dict, d: Path, fx: Path) -> None:
        _nc(fx / STILT, d / "footprints" / FP_NAME, change)

    return edit


def obs_csv(rows: str, head: str = CSV_HEAD) -> Edit:
    def edit(c: dict, d: Path, fx: Path) -> None:
        (d / "obs.csv").write_text(head + rows, encoding="utf-8")

    return edit


def raw_file(which: str, data: bytes | Callable[[bytes], bytes]) -> Edit:
    """Replace an input by raw bytes (or a function of the original's bytes)."""

    def edit(c: dict, d: Path, fx: Path) -> None:
        if which == "obs":
            src, key = fx / HTM, ("observations", 0)
        elif which == "inv":
            src, key = fx / EDGAR, ("prior", "inventories", 0)
        else:
            src, key = fx / STILT, None
        blob = data(src.read_bytes()) if callable(data) else data
        if key is None:
            (d / "footprints" / FP_NAME).write_bytes(blob)
            return
        dst = d / f"{which}_broken.nc"
        dst.write_bytes(blob)
        node = c
        for k in key:
            node = node[k]
        node["path"] = str(dst)

    return edit


def setv(var: str, value: Any, index: Any = 0) -> Callable[[xr.Dataset], xr.Dataset]:
    def change(ds: xr.Dataset) -> xr.Dataset:
        arr = ds[var].values.copy()
        if index is None:
            arr[...] = value
        else:
            arr.reshape(-1)[index] = value
        ds[var] = (ds[var].dims, arr, ds[var].attrs)
        return ds

    return change


def attr(var: str, key: str, value: Any) -> Callable[[xr.Dataset], xr.Dataset]:
    def change(ds: xr.Dataset) -> xr.Dataset:
        if value is None:
            ds[var].attrs.pop(key, None)
        else:
            ds[var].attrs[key] = value
        return ds

    return change


def conf(path: str, value: Any) -> Edit:
    """Set a dotted key of the configuration (``a.b[0].c``); value None deletes it."""

    def edit(c: dict, d: Path, fx: Path) -> None:
        parts: list[Any] = []
        for piece in path.split("."):
            name, *idx = piece.replace("]", "").split("[")
            parts.append(name)
            parts.extend(int(i) for i in idx)
        node = c
        for p in parts[:-1]:
            if isinstance(p, str) and p not in node:
                node[p] = {}
            node = node[p]
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value

    return edit


def chain(*edits: Edit) -> Edit:
    def edit(c: dict, d: Path, fx: Path) -> None:
        for e in edits:
            e(c, d, fx)

    return edit


def whole(change: Callable[[dict], Any]) -> Edit:
    def edit(c: dict, d: Path, fx: Path) -> None:
        change(c)

    return edit


def _swap_latlon(ds: xr.Dataset) -> xr.Dataset:
    return ds.rename({"lat": "lon_tmp", "lon": "lat"}).rename({"lon_tmp": "lon"})


def _same_times(ds: xr.Dataset) -> xr.Dataset:
    t = ds["time"].values.copy()
    t[1] = t[0]
    return ds.assign_coords(time=("time", t, ds["time"].attrs))


def _scale_coord(name: str, factor: float) -> Callable[[xr.Dataset], xr.Dataset]:
    def change(ds: xr.Dataset) -> xr.Dataset:
        return ds.assign_coords({name: (name, ds[name].values * factor, ds[name].attrs)})

    return change


def _shift_coord(name: str, offset: float) -> Callable[[xr.Dataset], xr.Dataset]:
    def change(ds: xr.Dataset) -> xr.Dataset:
        return ds.assign_coords({name: (name, ds[name].values + offset, ds[name].attrs)})

    return change


def _nan_coord(name: str) -> Callable[[xr.Dataset], xr.Dataset]:
    def change(ds: xr.Dataset) -> xr.Dataset:
        v = ds[name].values.astype(float)
        v[3] = np.nan
        return ds.assign_coords({name: (name, v, ds[name].attrs)})

    return change


def _swap_vars(a: str, b: str) -> Callable[[xr.Dataset], xr.Dataset]:
    return lambda ds: ds.rename({a: "swap_tmp"}).rename({b: a}).rename({"swap_tmp": b})


def _twice(section: str, copy: bool) -> Edit:
    """List the first source of ``section`` (dotted) twice, the second time as a copy."""

    def edit(c: dict, d: Path, fx: Path) -> None:
        node = c
        for k in section.split("."):
            node = node[k]
        again = dict(node[0])
        if copy:
            src = Path(again["path"])
            again["path"] = str(d / f"copy_{src.name}")
            Path(again["path"]).write_bytes(src.read_bytes())
        node.append(again)

    return edit


def _points(rows: str, options: dict) -> Edit:
    def edit(c: dict, d: Path, fx: Path) -> None:
        (d / "points.csv").write_text("name,lon,lat,emission,units,sector\n" + rows)
        c["prior"]["point_sources"] = {"path": str(d / "points.csv"), "options": options}

    return edit


def _drop(var: str) -> Callable[[xr.Dataset], xr.Dataset]:
    return lambda ds: ds.drop_vars(var)


def _rename(old: str, new: str) -> Callable[[xr.Dataset], xr.Dataset]:
    return lambda ds: ds.rename({old: new})


def inv_dir(c: dict, d: Path, fx: Path) -> None:
    (d / "inventory_dir.nc").mkdir()
    c["prior"]["inventories"][0]["path"] = str(d / "inventory_dir.nc")


def _obs_dir(c: dict, d: Path, fx: Path) -> None:
    (d / "obs_dir.nc").mkdir()
    c["observations"][0]["path"] = str(d / "obs_dir.nc")


def _empty_fp_folder(c: dict, d: Path, fx: Path) -> None:
    (d / "footprints" / FP_NAME).unlink()


def _met_csv(text: str) -> Edit:
    def edit(c: dict, d: Path, fx: Path) -> None:
        (d / "met.csv").write_text(text, encoding="utf-8")
        c["transport"]["met"] = {"path": str(d / "met.csv")}

    return edit


MET_HEAD = "time,wind_speed,wind_direction,boundary_layer_height,stability\n"


def _met_rows(row: str) -> str:
    return MET_HEAD + "".join(
        row.replace("T00", f"T{h:02d}").replace("DAY", f"{13 + day}")
        for day in range(4)
        for h in range(24)
    )


def _regions(text: str | None, name_column: str = "name") -> Edit:
    def edit(c: dict, d: Path, fx: Path) -> None:
        path = d / "regions.geojson"
        if text is None:
            path = fx / SLC
        else:
            path.write_text(text, encoding="utf-8")
        c["regions"] = {"path": str(path), "name_column": name_column}

    return edit


def _varying_negative(var: str) -> Callable[[xr.Dataset], xr.Dataset]:
    """``var`` of records 0..9 set to distinct negative values (corrupt, not a sentinel)."""

    def change(ds: xr.Dataset) -> xr.Dataset:
        arr = ds[var].values.copy()
        arr[:10] = -np.linspace(1e-7, 1e-6, 10)
        ds[var] = (ds[var].dims, arr, ds[var].attrs)
        return ds

    return change


def _htm_one_value(v: float) -> Callable[[xr.Dataset], xr.Dataset]:
    """Set the value of records 40..43 (a midday hour inside the period) to ``v`` [mol mol-1]."""

    def change(ds: xr.Dataset) -> xr.Dataset:
        arr = ds["value"].values.copy()
        arr[40:44] = v
        ds["value"] = (ds["value"].dims, arr, ds["value"].attrs)
        return ds

    return change


def _near_city(v: float) -> Callable[[xr.Dataset], xr.Dataset]:
    """EDGAR cells within 3 degrees of Hyltemossa set to ``v`` [kg m-2 s-1]."""

    def change(ds: xr.Dataset) -> xr.Dataset:
        near = (abs(ds.lat - 56.1) < 3) & (abs(ds.lon - 13.4) < 3)
        return ds.assign(emi_co2=ds["emi_co2"].where(~near, v))

    return change


def _cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    # ---- observations: ObsPack file values (per record plausibility; dropped and counted)
    for v in (np.inf, -np.inf):  # the reader drops them as missing values (counted)
        add(Case(f"obspack_value_{v:g}", "tower", obs_nc(_htm_one_value(v)),
                 dropped("missing value")))  # fmt: skip
    for v in (1e30, 1e-2, -4e-4, 0.0, 3e-5, 5.0, 2e-4, 1.6e-3):
        add(Case(f"obspack_value_{v:g}", "tower", obs_nc(_htm_one_value(v)),
                 dropped("implausible")))  # fmt: skip
    add(Case("obspack_value_nan", "tower", obs_nc(_htm_one_value(np.nan)), dropped("")))
    add(Case("obspack_all_values_absurd", "tower", obs_nc(setv("value", 1e30, None)),
             error(3, "htm.nc")))  # fmt: skip
    add(Case("obspack_all_values_nan", "tower", obs_nc(setv("value", np.nan, None)),
             error(3, "htm.nc")))  # fmt: skip
    for u in (None, "furlongs", "", "K", "ppm ppm"):
        add(Case(f"obspack_value_units_{u}", "tower", obs_nc(attr("value", "units", u)),
                 error(3, "htm.nc", "variable 'value'")))  # fmt: skip
    add(Case("obspack_value_units_ppm", "tower", obs_nc(attr("value", "units", "ppm")),
             error(3, "htm.nc", "variable 'value'", "'ppm'", "plausible")))  # fmt: skip
    add(Case("obspack_value_units_ppb_scaled_wrong", "tower",
             obs_nc(attr("value", "units", "nmol mol-1")), error(3, "htm.nc")))  # fmt: skip
    for var in ("value", "time", "latitude", "longitude"):
        add(Case(f"obspack_missing_{var}", "tower", obs_nc(_drop(var)), error(3, "htm.nc")))
    add(Case("obspack_time_units_garbage", "tower", obs_nc(attr("time", "units", "bananas")),
             error(3, "htm.nc")))  # fmt: skip
    add(Case("obspack_time_units_missing", "tower", obs_nc(attr("time", "units", None)),
             error(3, "htm.nc")))  # fmt: skip
    add(Case("obspack_all_outside_period", "tower",
             conf("period", {"start": "2020-01-01T00:00:00", "end": "2020-01-03T00:00:00",
                             "step": "1D"}), error(3, "none of the")))  # fmt: skip
    add(Case("obspack_latitude_200", "tower", obs_nc(setv("latitude", 200.0, None)),
             error(3, "latitude")))  # fmt: skip
    # one repeated negative std is a missing-value sentinel (stated); varying ones are corrupt
    add(Case("obspack_negative_unc", "tower", obs_nc(setv("value_std_dev", -1e-6, None)),
             warned("value_std_dev sentinels")))  # fmt: skip
    add(Case("obspack_negative_unc_varying", "tower", obs_nc(_varying_negative("value_std_dev")),
             error(3, "htm.nc", "variable 'value_std_dev'", "negative")))  # fmt: skip
    # truncated, empty, garbage, wrong kind of file, directory
    add(Case("obspack_truncated_half", "tower", raw_file("obs", lambda b: b[: len(b) // 2]),
             error(3, "obs_broken.nc")))  # fmt: skip
    add(Case("obspack_truncated_header", "tower", raw_file("obs", lambda b: b[:100]),
             error(3, "obs_broken.nc")))  # fmt: skip
    add(Case("obspack_empty_file", "tower", raw_file("obs", b""), error(3, "obs_broken.nc")))
    add(Case("obspack_random_bytes", "tower",
             raw_file("obs", bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8))),
             error(3, "obs_broken.nc")))  # fmt: skip
    add(Case("obspack_text_file", "tower", raw_file("obs", b"time,value\n1,2\n"),
             error(3, "obs_broken.nc")))  # fmt: skip
    add(Case("obspack_path_is_directory", "tower", _obs_dir, error(2, "obs_dir.nc")))
    add(Case("obspack_missing_file", "tower", conf("observations[0].path", "/nonexistent.nc"),
             error(2, "observations[0].path")))  # fmt: skip
    # reader options
    add(Case("obspack_unknown_option", "tower", conf("observations[0].options", {"bogus": 1}),
             error(2, "observations[0].options")))  # fmt: skip
    add(Case("obspack_option_wrong_type", "tower",
             conf("observations[0].options", {"hours": "noon"}),
             error(2, "observations[0].options", "'hours'")))  # fmt: skip
    add(Case("obspack_option_species_ch4", "tower",
             conf("observations[0].options", {"species": "ch4"}), error(3, "ch4")))  # fmt: skip
    add(Case("obspack_option_intake_list", "tower",
             conf("observations[0].options", {"intake_height": [1, 2]}),
             error(2, "observations[0].options", "'intake_height'")))  # fmt: skip
    add(Case("obspack_icos_smr_varying_negative", "tower", obs_nc(_varying_negative("icos_SMR")),
             error(3, "htm.nc", "variable 'icos_SMR'")))  # fmt: skip
    add(Case("obspack_lat_lon_swapped", "tower", obs_nc(_swap_vars("latitude", "longitude")),
             error(3, "htm.nc", "outside the domain")))  # fmt: skip
    # the same data twice would count twice (once exit 0 with 64 observations)
    add(Case("obspack_listed_twice", "tower", _twice("observations", copy=False),
             error(3, "co2_htm", "more than one source")))  # fmt: skip
    add(Case("obspack_copy_listed_twice", "tower", _twice("observations", copy=True),
             error(3, "copy_co2_htm", "more than one source")))  # fmt: skip
    add(Case("obspack_wrong_format_name", "tower", conf("observations[0].format", "obspak"),
             error(2, "observations[0].format")))  # fmt: skip
    add(Case("obspack_format_mismatch_csv", "tower", conf("observations[0].format",
             "tower_csv"), error(3, "htm.nc" if False else "co2_htm")))  # fmt: skip
    add(Case("obs_error_ppm_negative", "tower", conf("observations[0].error_ppm", -2.0),
             error(2, "observations[0].error_ppm")))  # fmt: skip
    add(Case("obs_error_ppm_zero", "tower", conf("observations[0].error_ppm", 0.0),
             error(2, "observations[0].error_ppm")))  # fmt: skip
    # ---- observations: tower CSV (text edits of the STILT-receptor tower)
    row = CSV_ROW.strip()
    for name, line, exp in (
        ("value_text", row.replace("415.3", "abc"), error(3, "obs.csv")),
        ("value_empty", row.replace("415.3", ""), error(3, "obs.csv")),
        ("value_1e30", row.replace("415.3", "1e30"), error(3, "obs.csv")),
        ("value_10000", row.replace("415.3", "10000"), error(3, "obs.csv")),
        ("value_negative", row.replace("415.3", "-415.3"), error(3, "obs.csv")),
        ("value_nan", row.replace("415.3", "nan"), error(3, "obs.csv")),
        ("value_inf", row.replace("415.3", "inf"), error(3, "obs.csv")),
        ("unc_negative", row.replace(",0.2", ",-0.2"), error(3, "obs.csv", "'value_unc'", "row")),
        ("unc_nan", row.replace(",0.2", ",nan"), error(3, "obs.csv", "missing uncertainty")),
        ("unc_huge", row.replace(",0.2", ",1e6"), error(3, "obs.csv")),
        ("time_garbage", row.replace("2015-12-10T00:00:00Z", "yesterday"), error(3, "obs.csv")),
        ("time_empty", row.replace("2015-12-10T00:00:00Z", ""), error(3, "obs.csv")),
        ("lat_95", row.replace("40.5", "95"), error(3, "obs.csv")),
        ("lon_400", row.replace("-112.0", "400"), error(3, "obs.csv")),
        ("lat_text", row.replace("40.5", "north"), error(3, "obs.csv")),
        ("height_negative", row.replace(",5,", ",-5,"), error(3, "obs.csv")),
        ("unc_negative_small", row.replace(",0.2", ",-1e-9"), error(3, "obs.csv", "'value_unc'")),
    ):
        add(Case(f"tower_csv_{name}", "stilt", obs_csv(line + "\n"), exp))
    good = CSV_ROW
    second = CSV_ROW.replace("T00:00:00Z", "T01:00:00Z")
    add(Case("tower_csv_unc_empty_one_row", "stilt", obs_csv(good + second.replace(",0.2", ",")),
             dropped("missing uncertainty")))  # fmt: skip
    add(Case("tower_csv_lon_nan_one_row", "stilt",
             obs_csv(good + second.replace("-112.0", "nan")), dropped("missing position")))  # fmt: skip
    add(Case("tower_csv_std_negative", "stilt",
             obs_csv(good.strip() + ",-0.3\n", CSV_HEAD.strip() + ",std\n"),
             error(3, "obs.csv", "'std'")))  # fmt: skip
    add(Case("tower_csv_header_only", "stilt", obs_csv(""), error(3, "obs.csv")))
    add(Case("tower_csv_missing_value_column", "stilt",
             obs_csv("2015-12-10T00:00:00Z,RCP,40.5,-112.0,5,0.2\n",
                     "time,site,lat,lon,intake_height,value_unc\n"), error(3, "value")))  # fmt: skip
    add(Case("tower_csv_missing_time_column", "stilt",
             obs_csv("RCP,40.5,-112.0,5,415.3,0.2\n", "site,lat,lon,intake_height,value,value_unc\n"),
             error(3, "time")))  # fmt: skip
    add(
        Case(
            "tower_csv_semicolons",
            "stilt",
            obs_csv(good.replace(",", ";"), CSV_HEAD.replace(",", ";")),
            error(3, "obs.csv"),
        )
    )
    add(Case("tower_csv_ragged_row", "stilt", obs_csv(good.strip() + ",7,8\n"),
             error(3, "obs.csv")))  # fmt: skip
    add(Case("tower_csv_binary", "stilt", obs_csv("\x00\x01\x02garbage\n"), error(3, "obs.csv")))
    add(
        Case(
            "tower_csv_outside_domain",
            "stilt",
            obs_csv(good.replace("40.5,-112.0", "10.0,10.0")),
            error(3, "none of the"),
        )
    )
    add(Case("tower_csv_units_bogus", "stilt", conf("observations[0].options", {"units": "furlong"}),
             error(3, "furlong")))  # fmt: skip
    # ---- inventories (EDGAR copies)
    for v, tag in ((1e30, "1e30"), (np.nan, "nan"), (np.inf, "inf"), (-1.0, "minus1")):
        add(
            Case(
                f"edgar_cell_{tag}",
                "tower",
                inv_nc(setv("emi_co2", v, 0)),
                error(3, "emi_co2" if tag in ("nan", "inf", "minus1") else "absurd"),
            )
        )
    add(Case("edgar_all_nan", "tower", inv_nc(setv("emi_co2", np.nan, None)),
             error(3, "emi_co2")))  # fmt: skip
    add(Case("edgar_lat_beyond_90", "tower", inv_nc(_scale_coord("lat", 2.0)),
             error(3, "lat")))  # fmt: skip
    add(Case("edgar_lat_lon_swapped", "tower", inv_nc(_swap_latlon), error(3, "lat")))
    add(Case("edgar_lon_shifted_out_of_range", "tower", inv_nc(_scale_coord("lon", 3.0)),
             error(3, "edgar_v6.0", "coordinate 'lon'")))  # fmt: skip
    for u in (None, "furlongs", "kg m-2", ""):
        add(Case(f"edgar_units_{u}", "tower", inv_nc(attr("emi_co2", "units", u)),
                 error(3, "units")))  # fmt: skip
    add(Case("edgar_cell_1e30_near_city", "tower", inv_nc(_near_city(1e30)), error(3, "absurd")))
    add(Case("edgar_cell_1e9_near_city", "tower", inv_nc(_near_city(1e9)), error(3, "absurd")))
    add(Case("edgar_truncated", "tower", raw_file("inv", lambda b: b[: len(b) // 2]),
             error(3, "inv_broken.nc")))  # fmt: skip
    add(Case("edgar_empty_file", "tower", raw_file("inv", b""), error(3, "inv_broken.nc")))
    add(Case("edgar_text_file", "tower", raw_file("inv", b"lat,lon,flux\n"),
             error(3, "inv_broken.nc")))  # fmt: skip
    add(Case("edgar_path_is_directory", "tower", inv_dir,
             error(2, "prior.inventories[0].path")))  # fmt: skip
    add(Case("edgar_missing_file", "tower", conf("prior.inventories[0].path", "/nonexistent.nc"),
             error(2, "prior.inventories[0].path")))  # fmt: skip
    add(Case("edgar_unknown_option", "tower", conf("prior.inventories[0].options", {"bogus": 1}),
             error(2, "prior.inventories[0].options")))  # fmt: skip
    add(
        Case(
            "edgar_bbox_wrong_length",
            "tower",
            conf("prior.inventories[0].options", {"bbox": [1, 2]}),
            error(2, "prior.inventories[0].options", "'bbox'"),
        )
    )
    add(Case("edgar_bbox_outside", "tower",
             conf("prior.inventories[0].options", {"bbox": [100, -10, 110, 0]}),
             error(3, "edgar")))  # fmt: skip
    add(Case("edgar_option_year_text", "tower",
             conf("prior.inventories[0].options", {"year": "twenty"}),
             error(2, "prior.inventories[0].options", "'year'")))  # fmt: skip
    add(Case("edgar_lon_nan", "tower", inv_nc(_nan_coord("lon")),
             error(3, "edgar_v6.0", "coordinate 'lon'")))  # fmt: skip
    # the same inventory twice would be summed twice (once exit 0 with twice the prior)
    add(Case("edgar_listed_twice", "tower", _twice("prior.inventories", copy=False),
             error(2, "prior.inventories[1]", "counted twice")))  # fmt: skip
    add(Case("edgar_copy_listed_twice", "tower", _twice("prior.inventories", copy=True),
             error(2, "prior.inventories[1]", "copy_edgar", "counted twice")))  # fmt: skip
    add(Case("edgar_unknown_format", "tower", conf("prior.inventories[0].format", "edger"),
             error(2, "prior.inventories[0].format")))  # fmt: skip
    add(Case("edgar_wrong_format_odiac", "tower", conf("prior.inventories[0].format", "odiac"),
             error(3, "edgar_v6")))  # fmt: skip
    # ---- point sources (a CSV beside the EDGAR prior; one plant at Hyltemossa)
    plant = "P1,13.42,56.10,1.0,Mt CO2 yr-1,energy\n"
    for name, rows, options, exp in (
        ("lon_lat_swapped", "P1,56.10,13.42,1.0,Mt CO2 yr-1,energy\n", {},
         error(3, "points.csv", "none of the 1 point sources")),
        ("lat_95", plant.replace("56.10", "95.0"), {}, error(3, "points.csv", "beyond ±90")),
        ("absurd", plant.replace(",1.0,", ",1e30,"), {}, error(3, "points.csv", "absurd")),
        ("nan", plant.replace(",1.0,", ",nan,"), {}, error(3, "points.csv", "non-finite")),
        ("negative", plant.replace(",1.0,", ",-1.0,"), {}, error(3, "points.csv", "negative")),
        ("units_unknown", plant.replace("Mt CO2 yr-1", "furlongs yr-1"), {},
         error(3, "points.csv", "furlongs")),
        ("unknown_option", plant, {"bogus": 1}, error(2, "prior.point_sources.options", "bogus")),
    ):  # fmt: skip
        add(Case(f"points_{name}", "tower", _points(rows, options), exp))
    # ---- footprints (STILT copies)
    for v, tag in ((1e30, "1e30"), (np.nan, "nan"), (np.inf, "inf"), (-1.0, "negative")):
        add(Case(f"stilt_cell_{tag}", "stilt", fp_nc(setv("foot", v, 20000)),
                 error(3, FP_NAME, "'foot'")))  # fmt: skip
    add(Case("stilt_cell_1e30_in_domain", "stilt", fp_nc(setv("foot", 1e30, 109 * 200 + 100)),
             error(3, "absurd")))  # fmt: skip
    add(Case("stilt_cell_1e5_in_domain", "stilt", fp_nc(setv("foot", 1e5, 109 * 200 + 100)),
             error(3, "absurd")))  # fmt: skip
    add(Case("stilt_all_nan", "stilt", fp_nc(setv("foot", np.nan, None)), error(3, FP_NAME)))
    add(Case("stilt_identical_layer_times", "stilt", fp_nc(_same_times), error(3, "layer")))
    add(Case("stilt_time_units_garbage", "stilt", fp_nc(attr("time", "units", "bananas")),
             error(3, FP_NAME, "'bananas'")))  # fmt: skip
    add(Case("stilt_lat_lon_swapped", "stilt", fp_nc(_swap_latlon),
             error(3, FP_NAME, "coordinate y (latitude)")))  # fmt: skip
    add(Case("stilt_lat_beyond_90", "stilt", fp_nc(_scale_coord("lat", 3.0)),
             error(3, FP_NAME, "coordinate y (latitude)")))  # fmt: skip
    add(Case("stilt_lon_beyond_360", "stilt", fp_nc(_shift_coord("lon", 720.0)),
             error(3, FP_NAME, "coordinate x (longitude)")))  # fmt: skip
    add(Case("stilt_units_pmol", "stilt", fp_nc(attr("foot", "units", "ppm (pmol-1 m2 s)")),
             error(3, FP_NAME, "absurd")))  # fmt: skip
    add(Case("stilt_option_wrong_type", "stilt",
             conf("transport.footprint_options", {"backtime_hours": "long"}),
             error(2, "transport.footprint_options", "'backtime_hours'")))  # fmt: skip
    add(Case("stilt_variable_renamed", "stilt", fp_nc(_rename("foot", "bar")), error(3, FP_NAME)))
    add(Case("stilt_truncated", "stilt", raw_file("fp", lambda b: b[: len(b) // 2]),
             error(3, FP_NAME)))  # fmt: skip
    add(Case("stilt_empty_file", "stilt", raw_file("fp", b""), error(3, FP_NAME)))
    add(Case("stilt_text_file", "stilt", raw_file("fp", b"not a footprint\n"),
             error(3, FP_NAME)))  # fmt: skip
    add(Case("stilt_folder_empty", "stilt", _empty_fp_folder, error(2, "transport.footprints")))
    add(Case("stilt_folder_missing", "stilt", conf("transport.footprints", "/nonexistent"),
             error(2, "transport.footprints")))  # fmt: skip
    add(Case("stilt_unknown_format", "stilt", conf("transport.footprint_format", "stilty"),
             error(2, "transport.footprint_format")))  # fmt: skip
    add(Case("stilt_unknown_option", "stilt", conf("transport.footprint_options", {"bogus": 1}),
             error(2, "transport.footprint_options", "bogus")))  # fmt: skip
    add(
        Case(
            "stilt_no_receptor_match",
            "stilt",
            obs_csv(CSV_ROW.replace("T00:00:00Z", "T03:00:00Z")),
            error(3, "receptor"),
        )
    )
    # ---- met CSV
    ok_row = "2016-12-DAYT00:00:00,5,250,800,D\n"
    add(Case("met_missing_column", "tower", _met_csv("time,wind_speed\n2016-12-13T00:00,5\n"),
             error(3, "met.csv")))  # fmt: skip
    for name, r in (
        ("wind_negative", ok_row.replace(",5,", ",-5,")),
        ("wind_nan", ok_row.replace(",5,", ",nan,")),
        ("blh_zero", ok_row.replace(",800,", ",0,")),
        ("stability_Z", ok_row.replace(",D", ",Z")),
        ("direction_text", ok_row.replace(",250,", ",west,")),
        ("time_garbage", ok_row.replace("2016-12-DAYT00:00:00", "soon")),
    ):
        add(Case(f"met_{name}", "tower", _met_csv(_met_rows(r)), error(3, "met.csv")))
    add(Case("met_hours_missing", "tower", _met_csv(MET_HEAD + "2016-12-13T00:00:00,5,250,800,D\n"),
             error(3, "met")))  # fmt: skip
    add(Case("met_empty", "tower", _met_csv(""), error(3, "met.csv")))
    # physically impossible met and units mistakes (once exit 0)
    for name, r, what in (
        ("wind_150", ok_row.replace(",5,", ",150,"), "wind_speed"),
        ("blh_50000", ok_row.replace(",800,", ",50000,"), "boundary_layer_height"),
        ("pressure_pa", ok_row.replace(",D", ",D,101325"), "pressure"),
        ("temperature_celsius", ok_row.replace(",D", ",D,15"), "temperature"),
    ):
        head = MET_HEAD.strip() + {"pressure_pa": ",pressure", "temperature_celsius":
                                   ",temperature"}.get(name, "") + "\n"  # fmt: skip
        rows = _met_rows(r).split("\n", 1)[1]
        add(Case(f"met_{name}", "tower", _met_csv(head + rows), error(3, "met.csv", what)))
    for v in (4000.0, 0.0004):
        add(Case(f"background_value_{v:g}", "tower", conf("background.value_ppm", v),
                 error(2, "background.value_ppm", "plausible")))  # fmt: skip
    # ---- regions
    add(Case("regions_not_json", "tower", _regions("{not json"), error(3, "regions.geojson")))
    add(Case("regions_no_features", "tower",
             _regions('{"type": "FeatureCollection", "features": []}'),
             error(3, "regions.geojson")))  # fmt: skip
    add(Case("regions_name_column_missing", "tower", _regions(None, "nom"), error(3, "nom")))
    add(Case("regions_outside_domain", "tower", _regions(None), error(3, "region")))
    return out


def all_cases() -> list[Case]:
    """Every case of the corpus (names are unique)."""
    from corpus_config import config_cases
    from corpus_readers import reader_cases

    cases = _cases() + config_cases() + reader_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    return cases
