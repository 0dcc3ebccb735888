"""The machine a benchmark ran on: CPU model, cores, BLAS/FFT threads, load average."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["describe_machine", "load_average"]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info

        return ", ".join(f"{i['internal_api']}={i['num_threads']}" for i in threadpool_info())
    except ImportError:
        return "threadpoolctl not installed"


def describe_machine() -> str:
    """One paragraph: CPU model, cores, Python, BLAS threads, numba threads, load average."""
    import numba
    import numpy as np

    return (
        f"machine: {_cpu_model()}; {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"numpy {np.__version__}; BLAS threads: {_blas_threads()}; numba threads: "
        f"{numba.config.NUMBA_NUM_THREADS}; load average at start: {load_average()}"
    )
