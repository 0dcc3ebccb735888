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
    from compliance_checker.cf import cf_1_10
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    assert version == "1.10", "only the CF-1.10 checker is registered here"
    CheckSuite.checkers["cf:1.10"] = cf_1_10.CF1_10Check  # not the deprecated IOOS SOS ones
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "cc.json"
        _, raised = ComplianceChecker.run_checker(
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
    if raised:  # a check that raised could not judge the file (printed by the checker)
        others.append("a CF check raised an exception")
    return errors, others


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


def chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def open_in_chromium(html: Path, timeout: float = 120.0) -> tuple[str, list[str]]:
    """Load ``html`` in headless Chromium (fresh profile, no network) and return the DOM after
    the load event and every console line Chromium logged (messages, errors, exceptions)."""
    import re
    import subprocess

    exe = chromium()
    assert exe is not None
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
             "--v=0", "--virtual-time-budget=10000", "--dump-dom", Path(html).resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if re.search(r":CONSOLE[(:]", ln)]
    return proc.stdout, console
