"""Batch on worker processes: the same results as on threads (<= 1e-12), and a worker killed
while it runs a window is replaced and the window rescheduled (a dying worker is not a failed
batch)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import xarray as xr

from cityflux._runfolder import verify
from cityflux.batch import plan_windows, run_batch


def _flux(path):
    with xr.open_dataset(path) as ds:
        return {v: ds[v].values.copy() for v in ("flux_posterior", "flux_posterior_std")}


def test_processes_match_threads_and_survive_a_killed_worker(make_small_config, tmp_path):
    from distributed import Client, LocalCluster

    cfg = make_small_config(
        "domain.nx=8", "domain.ny=8", "domain.resolution_m=2000",
        "period.end=2024-06-07T00:00:00", "batch.window=1D", "batch.overlap=1D",
    )  # fmt: skip
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as c,
        Client(c, set_as_default=False) as client,
    ):
        run_batch(cfg, tmp_path / "threads", client=client)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as c,
        Client(c, set_as_default=False) as client,
    ):
        pids = client.run(os.getpid)
        done: list = []
        worker = threading.Thread(
            target=lambda: done.append(run_batch(cfg, tmp_path / "proc", client=client))
        )
        worker.start()
        deadline = time.monotonic() + 120
        busy: dict = {}
        while time.monotonic() < deadline and not busy:
            busy = {a: ks for a, ks in client.processing().items() if ks}
            time.sleep(0.02)
        assert busy, "no window started on the process workers"
        addr, keys = next(iter(busy.items()))
        killed_at = time.time()
        os.kill(pids[addr], signal.SIGKILL)
        worker.join(timeout=300)
        assert done, "the batch did not finish after a worker was killed"
        assert set(client.run(os.getpid).values()) != set(pids.values())  # a new worker
    res = done[0]
    assert [o.status for o in res.outcomes] == ["done"] * 4
    killed = [w for w in plan_windows(cfg) if any(w.name in k for k in keys)]
    assert killed, keys
    for w in killed:  # the window that was running on the killed worker was run again
        m = tmp_path / "proc" / "windows" / w.name / "manifest.json"
        assert verify(m.parent) is not None and m.stat().st_mtime > killed_at
    a, b = _flux(tmp_path / "threads" / "posterior.nc"), _flux(tmp_path / "proc" / "posterior.nc")
    for v in a:
        scale = np.abs(a[v]).max()
        print(f"{v}: max |processes - threads| / max|x| = {np.abs(b[v] - a[v]).max() / scale:.2e}")
        np.testing.assert_allclose(b[v], a[v], rtol=0, atol=1e-12 * scale, err_msg=v)
