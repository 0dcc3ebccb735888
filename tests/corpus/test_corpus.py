"""The standing corpus of broken inputs (``corpus_cases.py``, ``corpus_readers.py``): one
parametrised test.

Each case must end as expected: an exit code with a message naming the file, variable or dotted
key, "dropped and counted" in the QC report, or "stated" in the QC report's assumptions — never
a silent wrong answer, a raw traceback, a hang or an unclear message. No case is skipped.
``python tests/corpus/run_corpus.py`` prints the whole table.
"""

from __future__ import annotations

import pytest
from corpus_cases import all_cases, classify, run_case

CASES = all_cases()


def test_corpus_is_large_enough():
    assert len(CASES) >= 150


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_input(case, tmp_path, fixtures_dir):
    outcome = run_case(case, tmp_path / "case", fixtures_dir)
    verdict = classify(case, outcome)
    kind = " (dropped)" if case.expect.dropped else " (stated)" if case.expect.warned else ""
    assert verdict == "ok", (
        f"{case.name}: {verdict}; expected exit {case.expect.exit} with "
        f"{case.expect.fragment!r}{kind}, got exit "
        f"{outcome.code}: {outcome.escaped or outcome.text[-2000:]}"
    )
