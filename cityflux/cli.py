"""The ``cityflux`` command line: ``demo``, ``run CONFIG.yaml`` and ``validate CONFIG.yaml``.

Thin by design: parse arguments, load the configuration, call the pipeline, show progress and
a summary with rich. Configuration problems and missing files exit with code 2 and a message
naming the key; a run that stops on its inputs (unreadable or empty data, a solver that does
not converge or does not fit memory) exits with code 3, the error's type and message, and
the traceback with ``-v``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cityflux._version import __version__
from cityflux.config import (
    CityfluxConfig,
    ConfigError,
    check_inputs,
    config_hash,
    demo_config_path,
    load_config,
)
from inversion.errors import ConvergenceError, MemoryBudgetError

__all__ = ["main"]

EXIT_CONFIG = 2  # configuration problems and missing files: nothing was run
EXIT_INPUT = 3  # the run stopped on its inputs (bad data, empty after QC, solver limits)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cityflux",
        description="Urban CO2 emission inversion with honest uncertainty.",
    )
    p.add_argument("--version", action="version", version=f"cityflux {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the embedded synthetic city end to end")
    demo.add_argument("--out", type=Path, default=None, help="output folder (default from config)")
    demo.add_argument("--seed", type=int, default=None, help="random seed of the synthetic city")
    demo.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    run = sub.add_parser("run", help="run the inversion a YAML configuration describes")
    run.add_argument("config", type=Path)
    run.add_argument("--out", type=Path, default=None, help="override output.dir")
    val = sub.add_parser("validate", help="check a configuration and its inputs without running")
    val.add_argument("config", type=Path)
    inv = sub.add_parser("inventory", help="inspect emission inventories")
    inv_sub = inv.add_subparsers(dest="inventory_command", required=True)
    summ = inv_sub.add_parser("summarize", help="totals per sector, region and month [t CO2]")
    summ.add_argument("path", type=Path, help="inventory file")
    summ.add_argument("--format", default=None, help="inventory format (auto-detected if omitted)")
    summ.add_argument("--regions", type=Path, default=None, help="region polygons file")
    summ.add_argument("--name-column", default=None, help="column of the region names")
    summ.add_argument(
        "--bbox", type=float, nargs=4, default=None, metavar=("LON0", "LAT0", "LON1", "LAT1"),
        help="read only the cells intersecting this box [degrees]",
    )  # fmt: skip
    summ.add_argument("--csv", type=Path, default=None, help="also write the table to this CSV")
    return p


def _config_error(console: Console, err: Exception) -> int:
    console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
    return EXIT_CONFIG


def _run_error(console: Console, err: BaseException, verbose: bool) -> int:
    console.print(
        f"[bold red]error[/] ({type(err).__name__}): {err}", highlight=False, soft_wrap=True
    )
    if verbose:
        import traceback

        console.print("".join(traceback.format_exception(err)), highlight=False, markup=False)
    else:
        console.print("run with -v for the traceback", style="dim")
    return EXIT_INPUT


def _load(console: Console, path: Path) -> tuple[CityfluxConfig | None, str | None]:
    try:
        cfg = load_config(path)
    except (ConfigError, FileNotFoundError) as err:
        _config_error(console, err)
        return None, None
    problems = check_inputs(cfg)
    if problems:
        lines = "\n".join(f"  {k}: {m}" for k, m in problems)
        _config_error(console, ConfigError(f"invalid inputs in {path}:\n{lines}", problems))
        return None, None
    return cfg, path.read_text(encoding="utf-8")


def _execute(console: Console, cfg: CityfluxConfig, config_text: str, out: Path, figures: bool):
    from cityflux.outputs import write_outputs
    from cityflux.pipeline import run

    t_start = time.perf_counter()
    with console.status("starting", spinner="dots") as status:

        def progress(step: str) -> None:
            console.log(step)
            status.update(f"[bold]{step}")

        result = run(cfg, progress)
        progress(f"writing outputs to {out}")
        paths = write_outputs(result, out, config_text=config_text, figures=figures)
    if result.is_synthetic:
        console.print(_summary_table(result))
    else:
        from cityflux._cli_tables import qc_table, real_totals_table

        console.print(qc_table(result.diagnostics["qc"]))
        console.print(real_totals_table(result.totals))
    d = result.diagnostics
    console.print(
        f"chi2/n = {d['chi2']:.3f}, DOFS = {d['dofs']:.1f}, n_obs = {d['n_obs']}, "
        f"solver = {d['solver_method']}, config hash {config_hash(cfg)[:12]}"
    )
    console.print(f"wrote {len(paths)} files to {out} in {time.perf_counter() - t_start:.1f} s")
    return 0


def _summary_table(result) -> Table:
    c = result.diagnostics["city_total_t"]
    table = Table(title="City total over the period \\[kt CO2]")
    for col in ("estimate", "total", "± std (k=1)", "error reduction"):
        table.add_column(col, justify="right" if col != "estimate" else "left")
    table.add_row("truth", f"{c['truth'] / 1e3:.2f}", "", "")
    table.add_row("prior", f"{c['prior'] / 1e3:.2f}", f"{c['prior_std'] / 1e3:.2f}", "")
    for r in result.by_kind:
        name = "combined" if len(r.kinds) > 1 else f"{r.kinds[0]} only"
        table.add_row(
            f"posterior: {name}",
            f"{r.posterior / 1e3:.2f}",
            f"{r.posterior_std / 1e3:.2f}",
            f"{100 * r.error_reduction:.0f} %",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cityflux`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    console = Console(stderr=False)
    if args.command == "validate":
        cfg, _ = _load(console, args.config)
        if cfg is None:
            return EXIT_CONFIG
        console.print(
            f"[green]ok[/]: {args.config} is valid (config hash {config_hash(cfg)[:12]}, "
            f"{len(cfg.observations)} observation source(s), "
            f"synthetic={'yes' if cfg.synthetic else 'no'})"
        )
        return 0
    if args.command == "inventory":
        from cityflux._cli_tables import summarize_inventory_command

        return summarize_inventory_command(console, args)
    if args.command == "demo":
        path = demo_config_path()
        cfg, text = _load(console, path)
        if cfg is None:  # pragma: no cover - the packaged demo is tested
            return EXIT_CONFIG
        updates = {}
        if args.seed is not None:
            if args.seed < 0:
                return _config_error(console, ConfigError("--seed must be >= 0"))
            updates["synthetic"] = cfg.synthetic.model_copy(update={"seed": args.seed})
        out = args.out if args.out is not None else cfg.output.dir
        updates["output"] = cfg.output.model_copy(update={"dir": out})
        cfg = cfg.model_copy(update=updates)
        return _execute(console, cfg, text, out, figures=not args.no_figures and cfg.output.figures)
    cfg, text = _load(console, args.config)
    if cfg is None:
        return EXIT_CONFIG
    if args.out is not None:
        cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"dir": args.out})})
    try:
        return _execute(console, cfg, text, cfg.output.dir, figures=cfg.output.figures)
    except (ConfigError, FileNotFoundError) as err:
        return _config_error(console, err)
    except (NotImplementedError, KeyError, ValueError, ConvergenceError, MemoryBudgetError) as err:
        return _run_error(console, err, args.verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
