"""Fixtures of the observations tests."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Our own small fixture files (made by data/make_fixtures.py)."""
    return DATA
