"""Run the corpus and print the outcome of every case and the counts per class.

Usage: python tests/corpus/run_corpus.py [OUT_DIR] [--only NAME ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from corpus_cases import all_cases
from corpus_run import classify, run_case


def main(argv: list[str]) -> int:
    only = set(argv[argv.index("--only") + 1 :]) if "--only" in argv else None
    root = Path(argv[0]) if argv and not argv[0].startswith("--") else Path(tempfile.mkdtemp())
    fx = Path(
        os.environ.get(
            "CORPUS_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures"
        )
    )
    counts: Counter[str] = Counter()
    for case in all_cases():
        if only and case.name not in only:
            continue
        o = run_case(case, root / case.name, fx)
        cls = classify(case, o)
        counts[cls] += 1
        msg = o.escaped or " ".join(o.text.split())[-300:]
        print(f"{cls:14s} {case.name:48s} exit={o.code} | {msg}", flush=True)
    print(dict(counts), "total", sum(counts.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
