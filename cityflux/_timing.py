"""Wall and CPU time of the stages of a run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Timings"]


@dataclass
class Timings:
    """Wall-clock and process CPU time per stage [s] (CPU counts every thread of the process).

    Example
    -------
    >>> t = Timings()
    >>> with t.stage("solve"):
    ...     pass
    >>> sorted(t.wall)
    ['solve']
    """

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (added to any time already recorded for it)."""
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
