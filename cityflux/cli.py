"""The ``cityflux`` command line: ``demo``, ``run``, ``osse``, ``batch``, ``validate``,
``receptors``, ``design``, ``report`` and ``inventory``.

Thin by design: parse arguments, load the configuration (with ``--set KEY=VALUE`` overrides),
check the output folder, call the pipeline, show progress and a summary with rich.
Configuration problems, missing files and an unusable output folder exit with code 2 and a
message naming the key or path, before any work; a run that stops on its inputs (unreadable or
empty data, a solver that does not converge or does not fit memory) exits with code 3, the
error's type and message, and the traceback with ``-v``. No other exception reaches the user
as a raw traceback: anything unexpected also exits with code 3 and its type and message.

Heavy modules (numpy, xarray, the libraries) are imported only by the command that needs them,
so ``cityflux --help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cityflux._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from cityflux.config import CityfluxConfig

__all__ = ["main"]

EXIT_CONFIG = 2  # configuration problems and missing files: nothing was run
EXIT_INPUT = 3  # the run stopped on its inputs (bad data, empty after QC, solver limits)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
        help="log at INFO level and show tracebacks",
    )  # fmt: skip
    return common


def _with_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a dotted config key (YAML value), e.g. --set inversion.method=cg; "
        "repeatable",
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(
        prog="cityflux",
        description="Urban CO2 emission inversion with honest uncertainty.",
        parents=[common],
    )
    p.add_argument("--version", action="version", version=f"cityflux {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", parents=[common], help="run the embedded synthetic city end to end"
    )
    demo.add_argument("--out", type=Path, default=None, help="output folder (default from config)")
    demo.add_argument("--seed", type=int, default=None, help="random seed of the synthetic city")
    demo.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    _with_set(demo)
    run = sub.add_parser(
        "run", parents=[common], help="run the inversion a YAML configuration describes"
    )
    run.add_argument("config", type=Path)
    run.add_argument("--out", type=Path, default=None, help="override output.dir")
    _with_set(run)
    osse = sub.add_parser(
        "osse", parents=[common], help="N synthetic truths through the run's path: coverage, χ²"
    )
    osse.add_argument("config", type=Path, help="configuration with a 'synthetic' section")
    osse.add_argument("--draws", type=int, required=True, help="number of synthetic truths")
    osse.add_argument("--out", type=Path, required=True, help="output folder (osse.csv)")
    osse.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    _with_set(osse)
    batch = sub.add_parser(
        "batch", parents=[common],
        help="a long period as windows on dask (resumable: finished windows are skipped)",
    )  # fmt: skip
    batch.add_argument("config", type=Path)
    batch.add_argument("--out", type=Path, default=None, help="batch folder (default output.dir)")
    _with_set(batch)
    val = sub.add_parser(
        "validate",
        parents=[common],
        help="check a configuration, open every input and build the case (all but the solve)",
    )
    val.add_argument("config", type=Path)
    _with_set(val)
    rec = sub.add_parser(
        "receptors", parents=[common],
        help="write the receptors (time, lat, lon, height) to run a Lagrangian model for",
    )  # fmt: skip
    rec.add_argument("config", type=Path)
    rec.add_argument("--out", type=Path, required=True, help="CSV file to write")
    _with_set(rec)
    des = sub.add_parser(
        "design", parents=[common],
        help="rank candidate additions to the network by the reduction of a total's std",
    )  # fmt: skip
    des.add_argument("config", type=Path, help="configuration with a 'design' section")
    des.add_argument("--out", type=Path, default=None, help="output folder (default output.dir)")
    _with_set(des)
    rep = sub.add_parser(
        "report", parents=[common], help="(re)write report.html of a finished run folder"
    )
    rep.add_argument("run_dir", type=Path, help="folder a run wrote (cityflux run / demo)")
    inv = sub.add_parser("inventory", parents=[common], help="inspect emission inventories")
    inv_sub = inv.add_subparsers(dest="inventory_command", required=True)
    summ = inv_sub.add_parser(
        "summarize", parents=[common], help="totals per sector, region and month [t CO2]"
    )
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
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
    return EXIT_CONFIG


def _run_error(console: Console, err: BaseException, verbose: bool) -> int:
    from rich.markup import escape

    console.print(
        f"[bold red]error[/] ({type(err).__name__}): {escape(str(err))}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    if verbose:
        import traceback

        console.print("".join(traceback.format_exception(err)), highlight=False, markup=False)
    else:
        console.print("run with -v for the traceback", style="dim")
    return EXIT_INPUT


def _load(
    console: Console, path: Path, overrides: list[str], skip: tuple[str, ...] = ()
) -> tuple[CityfluxConfig | None, str | None]:
    from cityflux.config import ConfigError, check_inputs, load_config

    try:
        cfg = load_config(path, overrides)
    except (ConfigError, FileNotFoundError) as err:
        _config_error(console, err)
        return None, None
    problems = [(k, m) for k, m in check_inputs(cfg) if not k.startswith(skip)]
    if problems:
        lines = "\n".join(f"  {k}: {m}" for k, m in problems)
        _config_error(console, ConfigError(f"invalid inputs in {path}:\n{lines}", problems))
        return None, None
    return cfg, path.read_text(encoding="utf-8")


def _execute(console: Console, cfg: CityfluxConfig, config_text: str, out: Path, figures: bool):
    from cityflux._cli_tables import kind_table, qc_table, real_totals_table
    from cityflux._runfolder import check_out_dir
    from cityflux._runlog import run_log, status_from_logs
    from cityflux.config import config_hash
    from cityflux.outputs import RUN_FILES, write_outputs
    from cityflux.pipeline import run

    check_out_dir(out, RUN_FILES)  # before the solve, not after
    t_start = time.perf_counter()
    with (
        run_log(out / "run.log") as log,
        console.status("starting", spinner="dots") as status,
        status_from_logs(status),
    ):

        def progress(step: str) -> None:
            console.log(step)
            log.info(step)
            status.update(f"[bold]{step}")

        result = run(cfg, progress)
        progress(f"writing outputs to {out}")
        paths = write_outputs(result, out, config_text=config_text, figures=figures)
        paths["run.log"] = out / "run.log"
    d = result.diagnostics
    console.print(qc_table(d["qc"]))
    if result.by_kind:
        console.print(kind_table(result))
    console.print(real_totals_table(result.totals))
    console.print(
        f"chi2/n = {d['chi2']:.3f}, DOFS = {d['dofs']:.1f}, n_obs = {d['n_obs']}, "
        f"solver = {d['solver_method']}, config hash {config_hash(cfg)[:12]}"
    )
    console.print(f"wrote {len(paths)} files to {out} in {time.perf_counter() - t_start:.1f} s")
    return 0


def _osse(console: Console, cfg: CityfluxConfig, args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from cityflux._runfolder import check_out_dir, commit, new_staging
    from cityflux.config import config_hash
    from cityflux.osse import run_osse

    if cfg.synthetic is None:
        return _config_error(
            console, ValueError(f"{args.config}: osse needs a 'synthetic' section")
        )
    if args.draws < 1:
        return _config_error(console, ValueError(f"--draws must be >= 1, found {args.draws}"))
    check_out_dir(
        args.out, ("osse.csv", "osse_sites.csv", "osse_hyperparameters.csv", "config.yaml")
    )
    cols = (TextColumn("draws"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*cols, TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("draws", total=args.draws)
        res = run_osse(
            cfg, args.draws, seed=args.seed, progress=lambda d, n: bar.update(task, completed=d)
        )
    staging = new_staging(args.out)
    res.table.to_csv(staging / "osse.csv", index=False, float_format="%.10g")
    if res.sites is not None:
        res.sites.to_csv(staging / "osse_sites.csv", index=False, float_format="%.8g")
    if res.hyperparameters is not None:
        res.hyperparameters.to_csv(
            staging / "osse_hyperparameters.csv", index=False, float_format="%.8g"
        )
    (staging / "config.yaml").write_text(args.config.read_text(encoding="utf-8"), encoding="utf-8")
    commit(
        staging, kind="osse", config_hash=config_hash(cfg), input_checksums={},
        extra={"draws": args.draws, "seed": args.seed},
    )  # fmt: skip
    path = args.out / "osse.csv"
    s = res.summary()
    h = res.table[res.table["row"] == res.headline].iloc[0]
    console.print(
        f"{s['n_draws']} draws, n_state = {res.n_state}, n_obs = {res.n_obs} "
        f"{res.n_obs_by_kind}; headline total: {h['region']} {h['period']}"
    )
    console.print(
        f"coverage of the 68 % interval {s['coverage_68']:.3f}, of the 95 % interval "
        f"{s['coverage_95']:.3f} ({res.interval}); mean chi2/n {s['mean_chi2']:.3f}; "
        f"negative flux cells per draw {s.get('negative_cells_mean', float('nan')):.1f}"
    )
    if res.hyperparameters is not None:
        from rich.markup import escape

        hh = res.hyperparameters
        names = [c for c in hh.columns if c not in ("draw", "converged", "any_at_bound",
                                                     "any_flat", "loglik")]  # fmt: skip
        console.print(
            "estimated per draw (median): "
            + ", ".join(f"{escape(c)} {hh[c].median():.3g}" for c in names)
            + f"; plug-in coverage 68 % {s['coverage_68_plugin']:.3f}, 95 % "
            f"{s['coverage_95_plugin']:.3f}; converged {s['share_converged']:.2f}, at a bound "
            f"{s['share_any_at_bound']:.2f}, not identifiable {s['share_any_flat']:.2f}"
        )
    if res.sites is not None:
        rates = res.flag_rates()
        console.print(
            "sites flagged as inconsistent (share of draws): "
            + ", ".join(f"{k} {v:.2f}" for k, v in rates.sort_values(ascending=False).items())
        )
    console.print(f"wrote {path} ({len(res.table)} rows) in {sum(res.timings.wall.values()):.1f} s")
    return 0


def _validate(console: Console, cfg: CityfluxConfig, path: Path) -> int:
    """Open every input and build the case with the stages of ``run`` (everything but the
    solve), so that ``run`` never stops on an input that ``validate`` passed."""
    from cityflux._cli_tables import qc_table
    from cityflux.config import config_hash
    from cityflux.pipeline import prepare_case

    with console.status("opening every input", spinner="dots") as status:
        case, _ = prepare_case(cfg, lambda step: status.update(f"[bold]{step}"))
    rep = case.reports
    console.print(qc_table(rep["qc"]))
    tr = rep["transport"]
    extra = ""
    if tr.get("model") == "footprints":
        m = tr["matching"]
        extra = (
            f", {tr['n_files']} footprint file(s): {m['receptors']['matched']} of "
            f"{m['receptors']['total']} receptors used, {m['n_incomplete']} observation(s) "
            "without a complete footprint set dropped"
        )
    console.print(
        f"[green]ok[/]: {path} is valid and its inputs open (config hash "
        f"{config_hash(cfg)[:12]}, synthetic={'yes' if cfg.synthetic else 'no'}): "
        f"n_obs = {case.y.size} {case.n_obs_by_kind}, n_state = {case.state.size}, "
        f"transport {tr.get('model')} with {tr.get('zero_rows', 0)} zero row(s){extra}"
    )
    return 0


def _receptors(console: Console, cfg: CityfluxConfig, out: Path) -> int:
    import transport_models
    from cityflux.pipeline import receptor_samples

    if out.is_dir():
        return _config_error(console, ValueError(f"--out {out} is a directory; give a CSV file"))
    samples = receptor_samples(cfg)
    path = transport_models.write_receptor_table(samples, out)
    t = samples.to_dataframe()
    kinds = t.groupby("kind")["obs"].nunique().to_dict()
    console.print(
        f"wrote {path}: {len(t)} receptors for {samples.n_obs} observations {kinds}; run the "
        "footprints for these receptors, keep transport.sampling unchanged, then cityflux run"
    )
    return 0


def _report(console: Console, run_dir: Path) -> int:
    from cityflux.figures import RunView
    from cityflux.metrology import write_report

    t0 = time.perf_counter()
    with console.status(f"reading {run_dir}", spinner="dots"):
        path = write_report(RunView.from_dir(run_dir), run_dir)
    console.print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    return 0


def _design(console: Console, cfg: CityfluxConfig, out: Path) -> int:
    from rich.progress import BarColumn, Progress, TextColumn
    from rich.table import Table

    from cityflux.metrology import run_design, write_design

    if cfg.design is None:
        return _config_error(console, ValueError("cityflux design needs a 'design:' section"))
    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    )
    with Progress(*cols, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def step(msg: str) -> None:
            console.log(msg)
            bar.update(task, description=msg)

        def ranked(done: int, total: int) -> None:
            bar.update(task, description="ranking", completed=done, total=total)

        result, res, cands = run_design(cfg, step, ranked)
        paths = write_design(result, res, cands, out)
    t = Table(title=f"Candidates ranked by the std of {res.target['region']}/"
              f"{res.target['sector']}/{res.target['period']} [t CO2] ({res.method})")  # fmt: skip
    for c in ("rank", "candidate", "kind", "n_obs", "std after", "reduction", "cumulative"):
        t.add_column(c, justify="left" if c in ("candidate", "kind") else "right")
    for r in res.table.itertuples():
        t.add_row(str(r.rank), str(r.candidate), str(r.kind), str(r.n_obs),
                  f"{r.std_after_t:,.1f}", f"{r.reduction_percent:.1f} %",
                  f"{r.cumulative_percent:.1f} %")  # fmt: skip
    console.print(t)
    console.print(
        f"current network: std {res.current_std:,.1f} t (prior {res.prior_std:,.1f} t); wrote "
        f"{', '.join(paths)} to {out}"
    )
    return 0


def _dispatch(console: Console, args: argparse.Namespace) -> int:
    from cityflux.config import ConfigError, demo_config_path

    overrides = list(getattr(args, "overrides", []))
    if args.command == "report":
        return _report(console, args.run_dir)
    if args.command == "inventory":
        from cityflux._cli_tables import summarize_inventory_command

        return summarize_inventory_command(console, args)
    if args.command == "demo":
        if args.seed is not None:
            if args.seed < 0:
                return _config_error(console, ConfigError("--seed must be >= 0"))
            overrides.insert(0, f"synthetic.seed={args.seed}")
        cfg, text = _load(console, demo_config_path(), overrides)
        if cfg is None:
            return EXIT_CONFIG
        out = args.out if args.out is not None else cfg.output.dir
        cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"dir": out})})
        return _execute(console, cfg, text, out, figures=not args.no_figures and cfg.output.figures)
    # the receptors are what the footprints are run for: they need not exist yet
    skip = ("transport.footprint",) if args.command == "receptors" else ()
    cfg, text = _load(console, args.config, overrides, skip)
    if cfg is None:
        return EXIT_CONFIG
    if args.command == "validate":
        return _validate(console, cfg, args.config)
    if args.command == "osse":
        return _osse(console, cfg, args)
    if args.command == "receptors":
        return _receptors(console, cfg, args.out)
    if args.command == "design":
        return _design(console, cfg, args.out if args.out is not None else cfg.output.dir)
    if args.command == "batch":
        from cityflux._cli_batch import batch_command

        return batch_command(
            console, cfg, text, args.out or cfg.output.dir, bool(getattr(args, "verbose", False))
        )
    if args.out is not None:
        cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"dir": args.out})})
    return _execute(console, cfg, text, cfg.output.dir, figures=cfg.output.figures)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cityflux`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from rich.console import Console

    from inversion import retain_freed_memory

    # large arrays freed by one solver iteration are reused by the next instead of being
    # faulted in afresh (0.09-0.56 s per 320 MB array on VMs with free page reporting,
    # 16 ms reused: benchmarks/b_floor.py)
    retain_freed_memory()
    console = Console(stderr=False)
    from cityflux._runfolder import OutputFolderError
    from cityflux.config import ConfigError
    from ingest import ReaderOptionError

    try:
        return _dispatch(console, args)
    except (ConfigError, FileNotFoundError, ReaderOptionError, OutputFolderError) as err:
        return _config_error(console, err)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: no result was written (rerun to resume)")
        return 130
    except Exception as err:  # every other stop: its type and reason, the traceback with -v
        return _run_error(console, err, verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
