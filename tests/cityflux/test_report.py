"""The metrology files of a run folder: report.html in headless Chromium, `cityflux report`,
GeoTIFF maps, budget.csv, the innovation χ² columns of observations.csv and run.log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cityflux.cli import main
from tests.cityflux._checks import chromium, open_in_chromium

SECTIONS = ("summary", "maps", "totals", "budget", "verification", "traceability",
            "diagnostics", "qc", "provenance")  # fmt: skip


OSSE_SMALL = Path(__file__).resolve().parents[2] / "examples" / "osse_small.yaml"


@pytest.fixture(scope="module")
def small_run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "out"
    args = ["run", str(OSSE_SMALL), "--out", str(out), "--set", "output.figures=true"]
    assert main(args) == 0
    return out


def _images(text: str) -> list[str]:
    return re.findall(r"<img [^>]*src=\"([^\"]*)\"", text)


def test_report_is_self_contained(small_run_dir):
    text = (small_run_dir / "report.html").read_text(encoding="utf-8")
    for sec in SECTIONS:
        assert f'<section id="{sec}">' in text, sec
    srcs = _images(text)
    assert len(srcs) >= 6  # maps, reduction, totals, budget, verification, obs fit
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(src|href)=\"(https?:|//|file:)", text)  # nothing fetched
    # what someone who did not run it needs: the headline with u, U and the interval
    assert "expanded uncertainty U" in text and "95 % coverage interval" in text
    assert "WMO CO2 X2019" in text and "sha256" in text.lower()


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (CI installs it)")
def test_report_opens_in_headless_chromium_without_errors(small_run_dir):
    path = small_run_dir / "report.html"
    dom, console = open_in_chromium(path)
    assert console == [], console
    n = len(_images(path.read_text(encoding="utf-8")))
    m = re.search(r'data-images="(\d+) (\d+)"', dom)
    assert m is not None, "the load event did not run"
    assert (int(m.group(1)), int(m.group(2))) == (n, 0)  # every image loaded


def test_cityflux_report_rebuilds_it_from_the_files(small_run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_run_dir, copy)
    for png in copy.glob("*.png"):
        png.unlink()  # the report draws its figures from posterior.nc and the tables
    (copy / "report.html").unlink()
    assert main(["report", str(copy)]) == 0
    new = (copy / "report.html").read_text(encoding="utf-8")
    old = (small_run_dir / "report.html").read_text(encoding="utf-8")
    assert len(_images(new)) == len(_images(old))
    for sec in SECTIONS:
        assert f'<section id="{sec}">' in new
    assert main(["report", str(tmp_path / "nothing")]) == 2  # not a run folder


def test_geotiffs_match_posterior_nc(small_run_dir):
    import rasterio

    with xr.open_dataset(small_run_dir / "posterior.nc") as ds:
        flux = ds["flux_posterior"].values  # (sector, time, y, x), y south -> north
        std = ds["flux_posterior_std"].values
        x, y = ds["x"].values, ds["y"].values
        wkt = ds["crs"].attrs["crs_wkt"]
        sectors = [str(s) for s in ds["sector_name"].values]
        nt = ds.sizes["time"]
    for stem, ref in (("flux_posterior_mean", flux), ("flux_posterior_std", std)):
        with rasterio.open(small_run_dir / f"{stem}_{sectors[0]}.tif") as tif:
            assert tif.count == nt
            assert tif.crs == rasterio.crs.CRS.from_wkt(wkt)
            assert tif.tags()["units"] == "umol m-2 s-1"
            assert tif.descriptions[0].startswith("2024-06-03T00:00Z/")
            data = tif.read()
            # the cell at (y[j], x[i]): rasterio's index of the cell centre's coordinates
            for j, i in ((0, 0), (3, 7), (len(y) - 1, 2)):
                row, col = tif.index(x[i], y[j])
                np.testing.assert_allclose(data[:, row, col], ref[0, :, j, i], rtol=1e-6)


def test_budget_csv_and_chi2_columns(small_run_dir):
    budget = pd.read_csv(small_run_dir / "budget.csv")
    totals = pd.read_csv(small_run_dir / "totals.csv")
    total = budget.groupby("row")["variance_t2"].sum()
    np.testing.assert_allclose(total.to_numpy(), totals["posterior_std"] ** 2, rtol=1e-9)
    assert set(budget["type"]) <= {"A", "B"}
    np.testing.assert_allclose(budget.groupby("row")["share"].sum(), 1.0, rtol=1e-12)
    obs = pd.read_csv(small_run_dir / "observations.csv")
    diag = json.loads((small_run_dir / "diagnostics.json").read_text())
    # Σ dᵢ (S⁻¹d)ᵢ / n is the innovation χ²/n of the run
    assert obs["chi2_contribution"].mean() == pytest.approx(diag["chi2"], rel=1e-8)
    np.testing.assert_allclose(
        obs["innovation_ppm"], obs["observed_ppm"] - obs["prior_modelled_ppm"], atol=1e-6
    )
    h = diag["headline_uncertainty"]
    assert h["expanded_uncertainty_k2_t"] == pytest.approx(2 * h["standard_uncertainty_t"])
    assert sum(h["budget_shares"].values()) == pytest.approx(1.0, rel=1e-12)


def test_run_log(small_run_dir):
    log = (small_run_dir / "run.log").read_text(encoding="utf-8")
    assert "solving the inversion" in log and "uncertainty budget" in log
    assert "INFO inversion.solve" in log  # the libraries' records, not only the CLI's steps
