"""`cityflux run` with footprints for every observation kind, end to end.

For each kind, an observation file in a reader's format (tower CSV, generic column, IPDA, lidar
path, lidar profile) -> `cityflux receptors` writes the receptor table -> a stand-in Lagrangian
model writes one footprint per receptor (the real STILT fixture, moved onto the observations'
area and scaled by a factor particular to the receptor, so a swapped or mis-weighted sample
shows) -> `cityflux run`. Each observation's prior flux enhancement (its H row applied to the
prior) is checked against a hand computation from the footprint files (netCDF4) and the
prior flux in posterior.nc: Σ over samples of weight × Σ over layers and cells of footprint ×
flux, with the layers summed into the 3-h bins and the 0.01° cells into the 0.05° grid. The
weights are taken from the documented rules (1 for a tower, pressure weight × averaging kernel
from the column file, 1/n along a chord), independently of the sampler.
"""

from __future__ import annotations

import math
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr
import yaml

from cityflux.cli import main
from transport_models import read_footprint, write_footprint

STILT = "stilt/pystilt_r_foot_201512100000_-112_40.5_5.nc"
EDGAR = "inventories/edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc"
LON0, LAT0 = -105.2, 39.8  # south-west corner of the 0.5° x 0.5° domain
SURFACE = 1590.0  # m asl, ground of the lidar (its heights are above sea level)
CHORD_SPACING = 400.0  # m

KINDS = {
    # kind: (file, format, period start, period end)
    "tower": ("tower_small.csv", "tower_csv", "2020-06-01T03:00:00", "2020-06-01T18:00:00"),
    "column": ("column_generic.nc", "column_nc", "2017-07-13T18:00:00", "2017-07-14T06:00:00"),
    "ipda": ("ipda_small.nc", "ipda", "2017-07-13T18:00:00", "2017-07-14T06:00:00"),
    "lidar_path": ("lidar_path.nc", "lidar_path", "2017-07-13T18:00:00", "2017-07-14T06:00:00"),
    "lidar_profile": (
        "lidar_profile.nc", "lidar_profile", "2017-07-13T18:00:00", "2017-07-14T06:00:00",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def base(fixtures_dir):
    """(6 layers, 50, 50) float32 sensitivities of the STILT fixture (netCDF4 parse)."""
    with netCDF4.Dataset(fixtures_dir / STILT) as nc:
        return np.asarray(nc["foot"][:, 50:100, 50:100], dtype=np.float32)


def _footprints(table: pd.DataFrame, base: np.ndarray, folder, stilt) -> np.ndarray:
    """One footprint file per receptor row: the base moved to the domain and scaled."""
    template = read_footprint(stilt).isel(y=slice(50, 100), x=slice(50, 100))
    template = template.assign_coords(
        x=LON0 + 0.005 + 0.01 * np.arange(50), y=LAT0 + 0.005 + 0.01 * np.arange(50)
    )
    scale = 1.0 + 0.113 * np.arange(len(table)) + 0.007 * np.arange(len(table)) ** 2
    folder.mkdir()
    for i, r in table.iterrows():
        t = pd.Timestamp(r["time"]).tz_localize(None)
        layers = t.floor("h") - pd.to_timedelta(np.arange(6, 0, -1), "h")
        fp = template.copy(data=(base * scale[i]).astype(np.float32))
        fp = fp.assign_coords(
            time=layers.to_numpy(), receptor_time=np.datetime64(t, "ns"),
            receptor_lat=float(r["lat"]), receptor_lon=float(r["lon"]),
            receptor_height=float(r["height_agl"]), receptor_kind=str(r["kind"]),
            receptor_id=str(r["id"]),
        )  # fmt: skip
        if "layer_end" in fp.coords:
            fp = fp.assign_coords(layer_end=("time", (layers + pd.Timedelta("1h")).to_numpy()))
        write_footprint(fp, folder / f"fp_{i:04d}.nc")
    return scale


def _config(fixtures_dir, data_dir, kind, tmp) -> dict:
    name, fmt, start, end = KINDS[kind]
    return {
        "name": f"footprints-{kind}",
        "domain": {"bounds": [LON0, LAT0, LON0 + 0.5, LAT0 + 0.5], "resolution_deg": 0.05},
        "period": {"start": start, "end": end, "step": "3h"},
        "prior": {
            "inventories": [{"path": str(fixtures_dir / EDGAR), "format": "edgar",
                             "options": {"bbox": [-107.0, 38.0, -103.0, 42.0]}}],
            "temporal": {"profile_for": {"total": "flat"}},
        },
        "observations": [{"path": str(data_dir / name), "format": fmt, "error_ppm": 1.0}],
        "background": {"method": "constant", "value_ppm": 400.0, "error_ppm": 1.0},
        "transport": {
            "model": "footprints", "footprints": str(tmp / "footprints"), "threshold": 0.0,
            "time_tolerance": "1s", "height_tolerance": 0.5, "surface_altitude_m": SURFACE,
            "sampling": {"chord_spacing_m": CHORD_SPACING, "min_chord_points": 3},
        },
        "inversion": {"method": "obs-space", "spatial_length_km": 10.0},
        "output": {"dir": str(tmp / "out"), "figures": False},
    }  # fmt: skip


def _hand_weights(kind: str, data_dir, obs: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Weight of each receptor row from the documented rules (not from the sampler)."""
    w = np.full(len(table), np.nan)
    if kind == "tower":
        return np.ones(len(table))
    if kind in ("column", "ipda"):
        with netCDF4.Dataset(data_dir / KINDS[kind][0]) as nc:
            lat, lon = np.asarray(nc["latitude"][:]), np.asarray(nc["longitude"][:])
            if kind == "column":
                lev = np.asarray(nc["pressure_weight"][:]) * np.asarray(nc["averaging_kernel"][:])
            else:
                lev = None
        for o in range(len(obs)):
            rows = np.flatnonzero(table["obs"] == o)
            s = int(np.argmin(np.hypot(lat - obs["lat"][o], lon - obs["lon"][o])))
            if lev is None:  # IPDA: the reader's normalised weighting (sums to 1, checked)
                w[rows] = table["weight"].to_numpy()[rows]
            else:  # file levels top to surface; samples surface first
                w[rows] = lev[s][::-1][table["sample"].to_numpy()[rows]]
        return w
    geod = pyproj.Geod(ellps="WGS84")
    for o in range(len(obs)):
        rows = np.flatnonzero(table["obs"] == o)
        a = table.iloc[rows]
        # length of the chord or segment from its first and last sample (midpoint rule)
        n = rows.size
        d = geod.inv(a["lon"].iloc[0], a["lat"].iloc[0], a["lon"].iloc[-1], a["lat"].iloc[-1])[2]
        dz = a["height_agl"].iloc[-1] - a["height_agl"].iloc[0]
        length = math.hypot(d, dz) * n / max(n - 1, 1)
        assert n == max(3, math.ceil(length / CHORD_SPACING - 1e-9)), (o, n, length)
        w[rows] = 1.0 / n
    return w


@pytest.mark.parametrize("kind", list(KINDS))
def test_run_with_footprints_for_every_kind(kind, fixtures_dir, tmp_path, base):
    data_dir = Path(__file__).resolve().parents[1] / "observations" / "data"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(fixtures_dir, data_dir, kind, tmp_path)), "utf-8")
    assert main(["receptors", str(cfg), "--out", str(tmp_path / "receptors.csv")]) == 0
    table = pd.read_csv(tmp_path / "receptors.csv")
    scale = _footprints(table, base, tmp_path / "footprints", fixtures_dir / STILT)
    assert main(["run", str(cfg)]) == 0
    out = tmp_path / "out"
    obs = pd.read_csv(out / "observations.csv")
    assert table["obs"].nunique() == len(obs) > 0  # every observation has its footprints
    with xr.open_dataset(out / "posterior.nc") as ds:
        flux = ds["flux_prior"].values.sum(axis=0)  # (bin, 10, 10), one sector
        starts = pd.DatetimeIndex(ds["time"].values)
    w = _hand_weights(kind, data_dir, obs, table)
    assert np.all(w > 0)
    hand = np.zeros(len(obs))
    for i, r in table.iterrows():
        with netCDF4.Dataset(tmp_path / "footprints" / f"fp_{i:04d}.nc") as nc:
            fp = np.asarray(nc["footprint"][:], dtype=np.float64)
        assert np.allclose(fp, base * np.float32(scale[i]), rtol=1e-6)
        t = pd.Timestamp(r["time"]).tz_localize(None).floor("h")
        layers = t - pd.to_timedelta(np.arange(6, 0, -1), "h")
        bins = starts.get_indexer(layers.floor("3h"))
        assert (bins >= 0).all()
        coarse = fp.reshape(6, 10, 5, 10, 5).sum(axis=(2, 4))
        hand[int(r["obs"])] += w[i] * np.einsum("lyx,lyx->", coarse, flux[bins])
    np.testing.assert_allclose(obs["prior_flux_enhancement_ppm"], hand, rtol=1e-10)
    d = yaml.safe_load((out / "diagnostics.json").read_text())
    assert d["transport"]["matching"]["receptors"]["unmatched"] == 0
    assert d["transport"]["zero_rows"] == 0


NAME_TAC = "name/openghg_TAC-100magl_UKV_TEST_201607.nc"
TAC_LAT, TAC_LON = 52.51776123, 1.13873291


def test_run_with_boundary_inflow_from_name_particle_locations(fixtures_dir, tmp_path):
    """transport.boundary: the NAME particle-location fractions become a state block per side,
    height band and day; its H block equals a hand sum of the file (netCDF4) and the run
    writes the curtains' prior and posterior to posterior.nc and diagnostics.json."""
    from cityflux.config import load_config
    from cityflux.pipeline import prepare_case
    from cityflux.stages import BOUNDARY_BLOCK

    fp_dir = tmp_path / "footprints"
    fp_dir.mkdir()
    (fp_dir / Path(NAME_TAC).name).write_bytes((fixtures_dir / NAME_TAC).read_bytes())
    csv = tmp_path / "tac.csv"
    rows = "".join(
        f"2016-07-01T0{h}:00:00Z,TAC,{TAC_LAT},{TAC_LON},100,{405 + h},0.2\n" for h in range(3)
    )
    csv.write_text("time,site,lat,lon,intake_height,value,value_unc\n" + rows, "utf-8")
    data = {
        "name": "tac-boundary",
        "domain": {"bounds": [-0.5, 51.2, 3.5, 53.8], "resolution_deg": 0.1},
        "period": {"start": "2016-06-30T00:00:00", "end": "2016-07-01T06:00:00", "step": "6h"},
        "prior": {
            "inventories": [{"path": str(fixtures_dir / EDGAR), "format": "edgar",
                             "options": {"bbox": [-2.0, 50.0, 5.0, 55.0]}}],
            "temporal": {"profile_for": {"total": "flat"}},
        },
        # the CSV's stamps are the receptor times of the NAME releases: stated, not shifted
        "observations": [{"path": str(csv), "format": "tower_csv", "error_ppm": 1.0,
                          "options": {"time_stamp": "midpoint"}}],
        "background": {"method": "constant", "value_ppm": 400.0, "error_ppm": 1.0},
        "transport": {
            "model": "footprints", "footprints": str(fp_dir), "threshold": 0.0,
            "footprint_options": {"back_hours": 24},
            "boundary": {"bands_m": [0.0, 2000.0, 20000.0], "window": "1D", "std_ppm": 2.0},
        },
        "inversion": {"method": "obs-space", "spatial_length_km": 20.0},
        "output": {"dir": str(tmp_path / "out"), "figures": False},
    }  # fmt: skip
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(data), "utf-8")
    case, _ = prepare_case(load_config(cfg_path))
    blk = case.state.blocks[BOUNDARY_BLOCK]
    H = case.H[:, blk.slice].toarray()
    # hand: per side, the particle fractions of the levels whose height lies in each band
    with netCDF4.Dataset(fixtures_dir / NAME_TAC) as nc:
        heights = np.asarray(nc["height"][:])
        band = np.searchsorted([0.0, 2000.0, 20000.0], heights, side="right") - 1
        for j, label in enumerate(blk.labels):
            side = label[0]
            b = 0 if "0m-2000m" in label else 1
            frac = np.asarray(nc[f"particle_locations_{side}"][:], dtype=np.float64)
            hand = frac[band == b].sum(axis=(0, 1))  # (3 receptors)
            np.testing.assert_allclose(H[:, j], hand, rtol=1e-10, atol=1e-15)
    assert len(blk.labels) == 8  # 4 sides x 2 bands x 1 day
    assert np.all(H.sum(axis=1) <= 1 + 1e-3) and np.all(H.sum(axis=1) > 0)
    assert main(["run", str(cfg_path)]) == 0
    out = tmp_path / "out"
    with xr.open_dataset(out / "posterior.nc") as ds:
        assert list(ds["curtain_name"].values) == list(blk.labels)
        np.testing.assert_allclose(ds["boundary_prior"].values, 0.0)
        np.testing.assert_allclose(ds["boundary_prior_std"].values, 2.0)
        assert np.all(ds["boundary_posterior_std"].values <= 2.0 + 1e-12)
    d = yaml.safe_load((out / "diagnostics.json").read_text())
    assert set(d["boundary_curtains_posterior_ppm"]) == set(blk.labels)
    assert d["transport"]["boundary"]["n_curtains"] == 8
