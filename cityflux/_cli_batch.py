"""``cityflux batch``: plan, progress bar over windows with ETA, summary and failures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from cityflux.batch import WindowOutcome
    from cityflux.config import CityfluxConfig

__all__ = ["batch_command"]


def batch_command(
    console: Console, cfg: CityfluxConfig, config_text: str, out: Path, verbose: bool = False
) -> int:
    """Run the batch of ``cfg`` into ``out``; 0 when every window finished, 3 otherwise."""
    import logging

    import distributed  # noqa: F401  (configures its loggers on import; quiet them after)

    if not verbose:  # distributed logs every worker start and stop at INFO
        logging.getLogger("distributed").setLevel(logging.ERROR)
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from cityflux._runfolder import check_out_dir
    from cityflux.batch import BATCH_FILES, plan_windows, run_batch

    check_out_dir(out, BATCH_FILES)  # before any work
    windows = plan_windows(cfg)
    b = cfg.batch
    console.print(
        f"batch: {len(windows)} window(s) of {b.window} (overlap {b.overlap}, lag {b.lag}) on a "
        f"{b.cluster.kind} cluster; writing to {out}"
    )
    t0 = time.perf_counter()
    cols = (
        TextColumn("windows"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
    )  # fmt: skip
    with Progress(*cols, console=console, transient=True) as bar:
        task = bar.add_task("windows", total=len(windows), last="")

        def progress(done: int, total: int, outcome: WindowOutcome | None) -> None:
            if outcome is None:  # finished windows of an earlier run
                bar.reset(task, total=total, completed=done, last=f"{done} already finished")
                if done:
                    console.log(f"{done} of {total} window(s) already finished: skipped")
                return
            bar.update(task, completed=done, last=f"{outcome.window.name} {outcome.status}")
            if outcome.status == "failed":
                console.log(
                    f"[red]window {outcome.window.name} failed[/]: {escape(outcome.error or '')}"
                )

        result = run_batch(cfg, out, config_text=config_text, progress=progress)
    counts = {
        s: sum(o.status == s for o in result.outcomes) for s in ("finished", "done", "failed")
    }
    wall = time.perf_counter() - t0
    if result.failed:
        table = Table("window", "core", "error", title="failed windows")
        for o in result.failed:
            table.add_row(o.window.name, o.window.core_label, escape(o.error or ""))
        console.print(table)
        console.print(
            f"[bold red]error[/]: {counts['failed']} of {len(windows)} window(s) failed (input "
            f"errors at once, others after {b.retries} retries); the others are written under "
            f"{out / 'windows'}. Fix the cause and rerun the same command: finished windows are "
            "skipped (failed_windows.json lists the errors).",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
        return 3
    console.print(
        f"{len(windows)} window(s): {counts['done']} run, {counts['finished']} already finished;"
        f" stitched {len(result.paths)} files into {out} in {wall:.1f} s"
    )
    return 0
