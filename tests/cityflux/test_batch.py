"""``cityflux batch``: windows, resumable runs, stitched core results, failing windows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from cityflux._runfolder import read_manifest, verify
from cityflux.batch import keep_dask_scheduler, plan_windows, run_batch
from cityflux.cli import main
from cityflux.config import ConfigError, load_config
from cityflux.outputs import write_outputs
from cityflux.pipeline import run

TINY = ("domain.nx=8", "domain.ny=8", "domain.resolution_m=2000")
M_CO2 = 44.0095e-12  # t CO2 per µmol


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with keep_dask_scheduler(), LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster, set_as_default=False) as c:  # fmt: skip
        yield c


def _cfg(make_small_config, *sets):
    return make_small_config(*TINY, *sets)


def _data(path):
    with xr.open_dataset(path) as ds:
        return {v: ds[v].values.copy() for v in ds.data_vars}


def test_plan_windows_tiles_the_period(make_small_config):
    cfg = _cfg(make_small_config, "batch.window=2D", "batch.overlap=1D", "batch.lag=1D")
    w = plan_windows(cfg)  # period 2024-06-03 .. 06-08
    assert [(x.core_start.day, x.core_end.day) for x in w] == [(3, 5), (5, 7), (7, 8)]
    assert [(x.start.day, x.end.day) for x in w] == [(3, 6), (4, 8), (6, 8)]
    with pytest.raises(ConfigError, match=r"batch\.window"):
        plan_windows(_cfg(make_small_config, "batch.window=36h"))


def test_one_window_batch_is_the_run(make_small_config, client, tmp_path):
    cfg = _cfg(make_small_config, "period.end=2024-06-05T00:00:00", "batch.window=2D")
    res = run_batch(cfg, tmp_path / "b", client=client)
    assert [o.status for o in res.outcomes] == ["done"]
    write_outputs(run(cfg), tmp_path / "r", figures=False)
    a, b = _data(tmp_path / "b" / "posterior.nc"), _data(tmp_path / "r" / "posterior.nc")
    for v in ("flux_prior", "flux_posterior", "flux_posterior_std", "flux_truth"):
        np.testing.assert_array_equal(a[v], b[v], err_msg=v)
    t = pd.read_csv(tmp_path / "b" / "totals.csv")
    r = pd.read_csv(tmp_path / "r" / "totals.csv")
    core = t[t["window"] == "0"].reset_index(drop=True)
    np.testing.assert_allclose(core["posterior"], r["posterior"], rtol=1e-12)
    np.testing.assert_allclose(core["posterior_std"], r["posterior_std"], rtol=1e-12)


def test_windows_in_one_process_run_one_at_a_time(make_small_config, client, tmp_path,
                                                   monkeypatch):  # fmt: skip
    """netCDF-C is not thread-safe: the 2-thread in-process cluster must not run two windows at
    once (it crashed the process with a segfault when it did)."""
    import threading
    import time

    import cityflux.batch as batch

    spans, real = [], batch.run_window

    def timed(*args):
        t0 = time.perf_counter()
        time.sleep(0.3)  # long enough for the second thread to start its window meanwhile
        out = real(*args)
        spans.append((t0, time.perf_counter(), threading.get_ident()))
        return out

    monkeypatch.setattr(batch, "run_window", timed)
    cfg = _cfg(make_small_config, "period.end=2024-06-05T00:00:00", "batch.window=1D")
    res = run_batch(cfg, tmp_path / "b", client=client)
    assert [o.status for o in res.outcomes] == ["done", "done"]
    (_, a1, _), (b0, _, _) = sorted(spans)
    assert a1 <= b0, f"windows overlapped in time: {spans}"


@pytest.fixture(scope="module")
def overlapped(make_small_config, client, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "b"
    cfg = _cfg(make_small_config, "period.end=2024-06-06T00:00:00", "batch.window=1D",
               "batch.overlap=1D", "batch.lag=1D")  # fmt: skip
    seen = []
    res = run_batch(cfg, out, client=client, progress=lambda d, n, o: seen.append((d, n)))
    assert not res.failed and seen[0] == (0, 3) and seen[-1] == (3, 3)
    return cfg, out


def test_stitched_posterior_takes_each_window_core(overlapped):
    cfg, out = overlapped
    with xr.open_dataset(out / "posterior.nc") as ds:
        times = pd.DatetimeIndex(ds["time"].values)
        assert list(times.day) == [3, 4, 5]
        assert list(ds["window_index"].values) == [0, 1, 2]
        assert ds.attrs["Conventions"] == "CF-1.10"
        for w in plan_windows(cfg):
            with xr.open_dataset(out / "windows" / w.name / "posterior.nc") as wd:
                np.testing.assert_array_equal(
                    ds["flux_posterior"].sel(time=w.core_start).values,
                    wd["flux_posterior"].sel(time=w.core_start).values,
                )
                assert wd.sizes["time"] == (w.end - w.start).days  # solved with overlap/lag


def test_core_totals_match_a_hand_sum_of_the_stitched_flux(overlapped):
    _, out = overlapped
    t = pd.read_csv(out / "totals.csv")
    with xr.open_dataset(out / "posterior.nc") as ds:
        flux = ds["flux_posterior"].sum("sector")  # [µmol m-2 s-1]
        per_day = (flux * ds["cell_area"]).sum(("y", "x")).values * 86400 * M_CO2
    dom = t[(t["region"] == "domain") & (t["window"] != "all") & t["period"].str.contains("/")]
    np.testing.assert_allclose(dom["posterior"].to_numpy(), per_day, rtol=1e-9)
    whole = t[(t["region"] == "domain") & (t["window"] == "all")].iloc[0]
    assert whole["posterior"] == pytest.approx(per_day.sum(), rel=1e-9)
    # windows' covariance unknown: the bound for fully correlated windows, and the independent case
    assert whole["posterior_std"] == pytest.approx(dom["posterior_std"].sum(), rel=1e-9)
    assert whole["posterior_std_if_independent"] == pytest.approx(
        np.sqrt((dom["posterior_std"] ** 2).sum()), rel=1e-9
    )
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["n_windows"] == 3 and "fully correlated" in diag["totals_combination"]
    m = verify(out)
    assert m["kind"] == "batch" and m["folders"] == ["windows"] and len(m["windows"]) == 3


def test_rerun_skips_finished_and_redoes_stale_windows(overlapped, client):
    cfg, out = overlapped
    before = _data(out / "posterior.nc")
    names = [w.name for w in plan_windows(cfg)]
    mtimes = {n: (out / "windows" / n / "manifest.json").stat().st_mtime_ns for n in names}
    res = run_batch(cfg, out, client=client)
    assert [o.status for o in res.outcomes] == ["finished"] * 3
    # an altered output makes its window stale: only that one is redone
    with open(out / "windows" / names[1] / "totals.csv", "a", encoding="utf-8") as fh:
        fh.write("\n")
    res = run_batch(cfg, out, client=client)
    assert [o.status for o in res.outcomes] == ["finished", "done", "finished"]
    for n in (names[0], names[2]):
        assert (out / "windows" / n / "manifest.json").stat().st_mtime_ns == mtimes[n]
    after = _data(out / "posterior.nc")
    for v in before:
        np.testing.assert_array_equal(before[v], after[v], err_msg=v)
    # a science change makes every window stale
    other = cfg.model_copy(update={"prior": cfg.prior.model_copy(update={"relative_std": 0.4})})
    res = run_batch(other, out, client=client)
    assert [o.status for o in res.outcomes] == ["done"] * 3


def test_failing_window_is_reported_while_the_others_finish(fixtures_dir, tmp_path, capsys):
    htm = fixtures_dir / "insitu/co2_htm_tower-insitu_424_allvalid-150magl_small.nc"
    edgar = (
        fixtures_dir / "inventories/edgar_v6.0_CO2_excl_short-cycle_org_C_2015_TOTALS.5.3x5.1.nc"
    )
    data = {
        "domain": {"center_lon": 13.4189, "center_lat": 56.0976, "nx": 4, "ny": 4,
                   "resolution_m": 4000.0},
        "period": {"start": "2016-12-11T00:00:00", "end": "2016-12-15T00:00:00", "step": "1D"},
        "prior": {"inventories": [{"path": str(edgar), "format": "edgar"}],
                  "temporal": {"profile_for": {"total": "flat"}}},
        "observations": [{"path": str(htm), "format": "obspack", "error_ppm": 2.0}],
        "background": {"method": "constant", "value_ppm": 400.0, "error_ppm": 1.0},
        "transport": {"met": {"wind_speed": 5.0, "wind_direction": 250.0,
                              "boundary_layer_height": 800.0, "stability": "D"}},
        "batch": {"window": "1D", "retries": 1, "cluster": {"processes": False, "workers": 1}},
    }  # fmt: skip
    path = tmp_path / "tower.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "b"
    assert main(["batch", str(path), "--out", str(out)]) == 3
    text = capsys.readouterr().out
    assert "2 of 4 window(s) failed" in " ".join(text.split())
    failed = json.loads((out / "failed_windows.json").read_text())
    assert [f["name"][:5] for f in failed] == ["w0000", "w0001"]  # 11 and 12 Dec: no data
    assert all("none of the" in f["error"] for f in failed)
    for name in ("w0002_20161213T0000", "w0003_20161214T0000"):
        assert verify(out / "windows" / name) is not None
    assert read_manifest(out) is None and not (out / "posterior.nc").exists()
    # the rerun redoes only the failed windows (which still fail): the finished are skipped
    cfg = load_config(path)
    res = run_batch(cfg, out)
    assert [o.status for o in res.outcomes] == ["failed", "failed", "finished", "finished"]


def test_transient_errors_are_retried_input_errors_are_not(make_small_config, client, tmp_path,
                                                           monkeypatch):  # fmt: skip
    import cityflux.batch as batch

    cfg = _cfg(make_small_config, "period.end=2024-06-06T00:00:00", "batch.window=1D",
               "batch.retries=2")  # fmt: skip
    attempts: dict[str, int] = {}
    real = batch.run_window

    def flaky(cfg, window, folder, config_text=None):
        attempts[window.name] = attempts.get(window.name, 0) + 1
        if window.index == 0 and attempts[window.name] == 1:
            raise OSError("NFS hiccup")  # transient: retried
        if window.index == 1:
            raise ValueError("bad data in this window")  # the same every time: not retried
        return real(cfg, window, folder, config_text)

    monkeypatch.setattr(batch, "run_window", flaky)
    res = run_batch(cfg, tmp_path / "b", client=client)
    assert [o.status for o in res.outcomes] == ["done", "failed", "done"]
    assert res.outcomes[1].error == "ValueError: bad data in this window"
    names = [w.name for w in plan_windows(cfg)]
    assert attempts == {names[0]: 2, names[1]: 1, names[2]: 1}


def test_existing_scheduler_address(make_small_config, client, tmp_path):
    addr = client.scheduler.address
    cfg = _cfg(make_small_config, "period.end=2024-06-05T00:00:00", "batch.window=1D",
               "batch.cluster.kind=address", f"batch.cluster.address={addr}")  # fmt: skip
    res = run_batch(cfg, tmp_path / "b")  # opens its own client on the running scheduler
    assert [o.status for o in res.outcomes] == ["done", "done"]
    assert client.scheduler_info()["workers"], "the scheduler was closed with the batch client"


def test_window_folders_skip_the_report_and_cityflux_report_writes_it(overlapped):
    """Rendering the report's figures was most of a small window's time: windows have every
    output but report.html, and `cityflux report` makes it on demand."""
    _, out = overlapped
    w = sorted((out / "windows").iterdir())[0]
    assert (w / "posterior.nc").is_file() and not (w / "report.html").exists()
    assert "report.html" not in read_manifest(w)["outputs"]
    assert main(["report", str(w)]) == 0
    html = (w / "report.html").read_text(encoding="utf-8")
    assert "<img" in html and "data:image/png;base64," in html
    assert verify(w) is not None  # the added report does not invalidate the sealed window
