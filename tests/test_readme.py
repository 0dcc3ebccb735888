"""The README stays true: its test command is what CI runs, and its figures exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_exactly_the_readme_test_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    test_cmd = next(b for b in blocks if "pytest" in b)
    assert "\n" not in test_cmd, "the quick start test command must be one line"
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci_lines


def test_quick_start_has_exactly_two_commands_demo_and_tests():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    quick = blocks[:2]
    assert any("cityflux demo" in b for b in quick)
    assert any("pytest" in b for b in quick)


def test_readme_figures_exist():
    text = (ROOT / "README.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert figures
    for fig in figures:
        assert (ROOT / fig).is_file(), fig
