"""The run's log file (``run.log`` in the run folder) and the CLI's live status from the
libraries' progress messages."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["run_log", "status_from_logs"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def run_log(path: Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Log every record of ``level`` and above to ``path`` while the block runs.

    The root logger is lowered to ``level`` for the block; handlers already attached (the
    console's) keep their threshold, so the console shows no more than before.

    Yields
    ------
    logging.Logger
        The ``cityflux.run`` logger (for the progress steps).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    old = root.level
    kept = [(h, h.level) for h in root.handlers]
    for h, lvl in kept:
        if lvl == logging.NOTSET:
            h.setLevel(old)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(min(old, level) if old != logging.NOTSET else level)
    try:
        yield logging.getLogger("cityflux.run")
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(old)
        for h, lvl in kept:
            h.setLevel(lvl)


class _StatusHandler(logging.Handler):
    def __init__(self, status: Any) -> None:
        super().__init__(logging.INFO)
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("cityflux.run"):
            return
        try:
            self.status.update(f"[bold]{record.getMessage()[:120]}")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def status_from_logs(status: Any) -> Iterator[None]:
    """Show the libraries' INFO messages (e.g. the streamed std map's progress) in a rich
    status line while the block runs."""
    handler = _StatusHandler(status)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
