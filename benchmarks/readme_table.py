"""Turn benchmark JSON records (``--json`` of each benchmark) into the README's markdown tables.

Each record becomes: the command that made it, the machine and the load average at its start
and end, and one table per ``table`` name of the ``display`` columns of its results, in the
order recorded.
Nothing is typed by hand: the README's benchmark tables are pasted from this output.

Usage::

    python benchmarks/readme_table.py results/*.json > /tmp/tables.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|")


def table(record: dict, only: list[str] | None = None) -> str:
    """Markdown for one benchmark record (only the tables named in ``only``, if given)."""
    m = record["machine"]
    lines = [
        f"`{record['command']}`",
        "",
        f"{m['cpu']}, {m['cores']} cores ({m['cpus_usable']} usable), BLAS {m['blas_threads']}, "
        f"FFT workers {m['fft_workers']}, numba threads {m['numba_threads']}; load average "
        f"(1/5/15 min) {record['load_start']} at the start, {record.get('load_end')} at the "
        f"end; {record['started']}.",
        "",
    ]
    groups: dict[str, list[dict]] = {}
    for r in record["results"]:
        if "display" in r and (only is None or r.get("table", "") in only):
            groups.setdefault(r.get("table", ""), []).append(r["display"])
    for name, rows in groups.items():
        if name:
            lines += [f"*{name}*", ""]
        cols: list[str] = []
        for r in rows:
            cols += [c for c in r if c not in cols]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in rows:
            lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
        lines.append("")
    notes = [r["note"] for r in record["results"] if "note" in r]
    lines += ["", *notes] if notes else []
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", help="JSON records written by the benchmarks' --json")
    ap.add_argument("--tables", nargs="+", help="print only the tables with these names")
    args = ap.parse_args(argv)
    for f in args.files:
        print(table(json.loads(Path(f).read_text()), args.tables))


if __name__ == "__main__":
    main()
