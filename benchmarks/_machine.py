"""What every benchmark prints and records: the machine, its load, repeated timings, JSON.

``machine()`` describes the CPU (model, cores, the CPUs this process may use), the thread
counts of BLAS (threadpoolctl, when installed), numba and the FFTs (``inversion``'s choice),
memory and library versions. ``Run`` wraps a benchmark: it records the load average at the
start and the end, collects named results, prints a header and a footer, and writes
everything to a JSON file (``--json``) that ``benchmarks/readme_table.py`` turns into the
README tables. ``timed(fn, repeat)`` returns the median wall time of ``repeat`` runs and all
of them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages (runnable processes; 2 cores busy = 2.0)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def blas_threads() -> str:
    """BLAS library and thread count, from threadpoolctl if installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    libs = [f"{i.get('internal_api')} {i.get('num_threads')}" for i in threadpool_info()]
    return ", ".join(libs) or "none found"


def machine() -> dict[str, Any]:
    """Description of this machine and process (JSON-serialisable)."""
    import numba
    import numpy as np
    import scipy

    from inversion.covariance._grid import fft_workers

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cpus_usable": affinity,
        "blas_threads": blas_threads(),
        "numba_threads": numba.get_num_threads(),
        "fft_workers": fft_workers(16),
        "mem_gib": _mem_total_gib(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


def timed(fn, repeat: int, setup=None) -> tuple[float, list[float]]:
    """Median wall time [s] of ``repeat`` calls of ``fn`` and the list of all of them
    (``setup()``, untimed, before each call)."""
    times = []
    for _ in range(max(1, repeat)):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


class Run:
    """One benchmark run: machine, load at start and end, results, JSON output.

    Parameters
    ----------
    name : str
        Benchmark name (the script).
    argv : list of str or None
        Its command-line arguments (recorded with the results, so each figure has its
        command); None: this process's (``sys.argv[1:]``).
    json_path : str, optional
        Where to write the JSON record at :meth:`finish`.
    """

    def __init__(self, name: str, argv: list[str] | None, json_path: str | None) -> None:
        argv = sys.argv[1:] if argv is None else list(argv)
        self.record: dict[str, Any] = {
            "benchmark": name,
            "command": " ".join(["python", f"benchmarks/{name}.py", *argv]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "load_start": load_average(),
            "results": [],
        }
        self.json_path = json_path
        m = self.record["machine"]
        print(
            f"machine: {m['cpu']}, {m['cores']} cores ({m['cpus_usable']} usable), "
            f"{m['mem_gib']:.0f} GiB; BLAS {m['blas_threads']}; numba threads "
            f"{m['numba_threads']}; FFT workers {m['fft_workers']}; numpy {m['numpy']}, scipy "
            f"{m['scipy']}\nload average at start (1/5/15 min): {self.record['load_start']}",
            flush=True,
        )

    def add(self, **result: Any) -> None:
        """Record one result (a row of the benchmark's table)."""
        result.setdefault("load", load_average())
        self.record["results"].append(_plain(result))

    def finish(self) -> dict[str, Any]:
        """Print the final load and write the JSON record."""
        self.record["load_end"] = load_average()
        print(f"load average at end (1/5/15 min): {self.record['load_end']}", flush=True)
        if self.json_path:
            Path(self.json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(self.json_path).write_text(json.dumps(self.record, indent=1))
            print(f"results written to {self.json_path}")
        return self.record


def _plain(obj: Any) -> Any:
    """JSON-friendly copy: numpy scalars and arrays to Python numbers and lists."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def add_json_argument(parser) -> None:
    """The ``--json PATH`` option every benchmark takes."""
    parser.add_argument(
        "--json", metavar="PATH", help="write the machine, load and results to this JSON file"
    )


if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
