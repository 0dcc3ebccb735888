"""retain_freed_memory: freed large arrays stay in the process (glibc), checked by the RSS."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from inversion import retain_freed_memory

_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from inversion import retain_freed_memory

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    applied = retain_freed_memory() if sys.argv[1] == "retain" else None
    base = rss_mb()
    a = np.ones(50_000_000)  # 400 MB, touched
    del a
    print(applied, rss_mb() - base)
    """
)


def _run(mode: str) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_freed_array_stays_resident_only_when_retained():
    applied, kept = _run("retain")
    assert applied == "True"
    assert kept > 350  # MB: the freed 400 MB array is kept for reuse
    _, default_kept = _run("default")
    assert default_kept < 50  # glibc's default returns it to the OS at once


def test_threshold_out_of_range_is_refused():
    with pytest.raises(ValueError, match="mmap_threshold_bytes"):
        retain_freed_memory(2**31)
    with pytest.raises(ValueError, match="mmap_threshold_bytes"):
        retain_freed_memory(0)
