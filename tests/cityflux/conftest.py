"""Shared fixtures of the cityflux application tests: the small synthetic city of
``examples/osse_small.yaml`` (about 2,000 unknowns, 200 observations of three kinds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityflux.config import load_config

OSSE_SMALL = Path(__file__).resolve().parents[2] / "examples" / "osse_small.yaml"


def small_config(*overrides: str, **synthetic):
    """The small synthetic city, with ``--set``-style overrides and synthetic settings."""
    sets = list(overrides) + [f"synthetic.{k}={v}" for k, v in synthetic.items()]
    return load_config(OSSE_SMALL, sets)


def small_case_for(cfg):
    """The case of ``cfg`` with one synthetic truth and its observations."""
    from cityflux import synthetic
    from cityflux.pipeline import prepare_case

    case, world = prepare_case(cfg)
    return synthetic.observe(case, cfg, world), world


@pytest.fixture(scope="session")
def small_case():
    return small_case_for(small_config())[0]


@pytest.fixture(scope="session")
def make_small_config():
    """The :func:`small_config` factory, for tests that vary its settings."""
    return small_config


@pytest.fixture(scope="session")
def make_small_case():
    """The :func:`small_case_for` factory: (case with a truth, synthetic world) of a config."""
    return small_case_for
