"""Independent checkers of the outputs, shared by the cityflux tests: the IOOS compliance-checker
for CF, and headless Chromium for the HTML report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path


def cf_failures(path: Path, version: str = "1.10") -> tuple[list[str], list[str]]:
    """(errors, other findings) of the IOOS compliance-checker's CF test on ``path``.

    Errors are the high-priority failures (what the checker prints under "Errors"); the other
    findings are the medium- and low-priority ones and any exception a check raised.
    """
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite().load_all_available_checkers()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "cc.json"
        ComplianceChecker.run_checker(
            str(path), [f"cf:{version}"], 0, "normal",
            output_filename=str(report), output_format="json",
        )  # fmt: skip
        result = json.loads(report.read_text())[f"cf:{version}"]
    errors, others = [], []
    for level, out in (("high_priorities", errors), ("medium_priorities", others),
                       ("low_priorities", others)):  # fmt: skip
        for item in result[level]:
            if item["value"][0] < item["value"][1]:
                out.extend(f"{item['name']}: {m}" for m in item["msgs"] or ["(failed)"])
    others.extend(f"exception: {e}" for e in (result.get("errors") or {}))
    return errors, others
