"""The standing corpus of broken inputs (``corpus_cases.py``): one parametrised test.

Each case must end as expected: an exit code with a message naming the file, variable or dotted
key, or "dropped and counted" in the QC report — never a silent wrong answer, a raw traceback,
a hang or an unclear message. ``python tests/corpus/run_corpus.py`` prints the whole table.
"""

from __future__ import annotations

import pytest
from corpus_cases import all_cases, classify, run_case

#: Cases whose correct outcome needs changes inside the readers (observations/,
#: transport_models/footprints/, priors/ readers), being refactored on the readers branch. The
#: expected outcome in the corpus is the correct one; remove a name here once it passes.
NEEDS_READERS_BRANCH = {
    "obspack_option_wrong_type": "option hours='noon' gives 'too many values to unpack'",
    "tower_csv_unc_negative": "the reader squares value_unc in its hourly means: sign lost",
    "tower_csv_unc_negative_small": "the reader squares value_unc in its hourly means",
    "edgar_bbox_wrong_length": "bbox of 2 numbers gives IndexError",
    "edgar_lon_shifted_out_of_range": "longitudes beyond 360 are wrapped, not refused",
    "stilt_cell_1e30": "absurd footprint value outside the domain is not refused by the reader",
    "stilt_time_units_garbage": "time units 'bananas' are not refused by the STILT reader",
    "stilt_lat_lon_swapped": "swapped footprint axes end as 'uncovered domain', no file named",
    "stilt_lat_beyond_90": "footprint latitudes beyond 90 end as 'uncovered domain', no file",
    "stilt_unknown_option": "footprint reader options are not checked (TypeError)",
}

CASES = all_cases()


def test_corpus_is_large_enough():
    assert len(CASES) >= 150
    assert set(NEEDS_READERS_BRANCH) <= {c.name for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_input(case, tmp_path, fixtures_dir):
    if case.name in NEEDS_READERS_BRANCH:
        pytest.skip(f"needs the readers branch: {NEEDS_READERS_BRANCH[case.name]}")
    outcome = run_case(case, tmp_path / "case", fixtures_dir)
    verdict = classify(case, outcome)
    assert verdict == "ok", (
        f"{case.name}: {verdict}; expected exit {case.expect.exit} with "
        f"{case.expect.fragment!r}{' (dropped)' if case.expect.dropped else ''}, got exit "
        f"{outcome.code}: {outcome.escaped or outcome.text[-2000:]}"
    )
