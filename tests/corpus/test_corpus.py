"""The standing corpus of broken inputs (``corpus_cases.py``, ``corpus_readers.py``): one
parametrised test.

Each case must end as expected: an exit code with a message naming the file, variable or dotted
key, "dropped and counted" in the QC report, or "stated" in the QC report's assumptions — never
a silent wrong answer, a raw traceback, a hang or an unclear message. No case is skipped.
``python tests/corpus/run_corpus.py`` prints the whole table.
"""

from __future__ import annotations

import re

import pytest
from corpus_cases import Case, all_cases, warned
from corpus_readers import BASES
from corpus_run import classify, run_case

CASES = all_cases()


def test_corpus_is_large_enough():
    assert len(CASES) >= 210


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


@pytest.mark.parametrize("base", sorted(BASES))
def test_reader_bases_run(base, tmp_path, fixtures_dir):
    """Each base of the new readers' cases is valid unbroken (``cityflux validate`` builds the
    whole case: exit 0 with observations used), so that a case fails because of what it
    breaks."""
    case = Case(f"base_{base}", BASES[base], lambda c, d, fx: None, warned(""), "validate")
    outcome = run_case(case, tmp_path / "case", fixtures_dir)
    assert outcome.code == 0, outcome.escaped or outcome.text[-2000:]
    n_obs = re.search(r"n_obs = (\d+)", " ".join(outcome.text.split()))
    assert n_obs is not None and int(n_obs.group(1)) >= 1, outcome.text[-2000:]
