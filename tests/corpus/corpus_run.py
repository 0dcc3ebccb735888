"""Running a corpus case (``corpus_cases.Case``) through ``cityflux.cli.main`` in this process and
judging its outcome: ok, silent wrong, raw traceback, hang or unclear."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from corpus_cases import BASES, HANG_S, Case


@dataclass
class Outcome:
    code: int | None  # None: an exception escaped (raw traceback) or the case hung
    text: str
    escaped: str | None = None
    hung: bool = False
    diagnostics: dict | None = None


def prepare(case: Case, d: Path, fx: Path) -> list[str]:
    """Write the case's files and configuration into ``d``; return the CLI arguments."""
    d.mkdir(parents=True, exist_ok=True)
    data = (BASES[case.base] if isinstance(case.base, str) else case.base)(fx, d)
    cfg = d / "config.yaml"
    args = list(case.args)
    if args[:1] == ["--raw"]:
        cfg.write_text(args[1], encoding="utf-8")
        args = args[2:]
    else:
        case.edit(data, d, fx)
        cfg.write_text(yaml.safe_dump(copy.deepcopy(data), sort_keys=False), encoding="utf-8")
    if case.command == "batch":
        args += ["--set", "batch.cluster.processes=false", "--set", "batch.cluster.workers=1"]
    if case.command == "validate":
        return ["validate", str(cfg), *args]
    return [case.command, str(cfg), "--out", str(d / "out"), *args]


class _HangError(Exception):
    pass


def run_case(case: Case, d: Path, fx: Path) -> Outcome:
    """Run the case through ``cityflux.cli.main`` in this process (stdout and stderr captured)."""
    from cityflux.cli import main

    argv = prepare(case, d, fx)
    buf = io.StringIO()

    def alarm(signum: int, frame: Any) -> None:
        raise _HangError

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            code = main(argv)
    except _HangError:
        return Outcome(None, buf.getvalue(), hung=True)
    except SystemExit as err:  # argparse
        code = int(err.code or 0)
    except BaseException as err:
        return Outcome(None, buf.getvalue(), escaped=f"{type(err).__name__}: {err}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    diag_path = d / "out" / "diagnostics.json"
    diag = json.loads(diag_path.read_text()) if code == 0 and diag_path.is_file() else None
    return Outcome(code, _scrub(buf.getvalue(), d), diagnostics=diag)


def _scrub(text: str, d: Path) -> str:
    """The output with the case folder written ``<case>`` (also where the console wrapped it)."""
    folder = str(d)
    text = text.replace(folder, "<case>")
    flat = " ".join(text.split())
    return flat.replace(folder, "<case>") if folder in flat else text


def classify(case: Case, o: Outcome) -> str:
    """``ok``, ``silent wrong``, ``raw traceback``, ``hang`` or ``unclear``."""
    if o.hung:
        return "hang"
    if o.escaped is not None:
        return "raw traceback"
    exp = case.expect
    text = " ".join(o.text.split()).lower()
    if exp.dropped or exp.warned:
        if o.code != 0:
            return "unclear"
        qc = (o.diagnostics or {}).get("qc", {})
        if exp.dropped:
            told = [
                reason
                for s in qc.get("sources", [])
                for reason, n in s.get("dropped", {}).items()
                if n > 0 and "selection" not in s.get("source", "")
            ]
        else:
            told = [
                f"{k}: {v}" for s in qc.get("sources", []) for k, v in s["assumptions"].items()
            ] + [str(w) for w in qc.get("warnings", [])]
        found = any(all(p.lower() in r.lower() for p in exp.parts) for r in told)
        return "ok" if found else "silent wrong"
    if o.code == 0:
        return "silent wrong"
    if "traceback (most recent call last)" in text:
        return "raw traceback"
    if o.code != exp.exit or not all(p.lower() in text for p in exp.parts):
        return "unclear"
    return "ok"
