"""Shared fixtures of the cityflux application tests: a small synthetic city."""

from __future__ import annotations

import pytest

from cityflux.config import demo_config_path, load_config


def small_config(**synthetic):
    """The demo configuration shrunk to a 20 x 20 km city (10 towers, 4 overpasses), one week."""
    cfg = load_config(demo_config_path())
    syn = cfg.synthetic.model_copy(
        update={
            "snapshot_size_km": 16.0,
            "core_radius_km": 3.0,
            "n_towers": 10,
            "n_overpasses": 4,
            **synthetic,
        }
    )
    return cfg.model_copy(
        update={
            "domain": cfg.domain.model_copy(update={"nx": 20, "ny": 20}),
            "inversion": cfg.inversion.model_copy(update={"spatial_length_km": 4.0}),
            "synthetic": syn,
        }
    )


@pytest.fixture(scope="session")
def small_city():
    from cityflux.osse import build_synthetic_city

    return build_synthetic_city(small_config())


@pytest.fixture(scope="session")
def make_small_config():
    """The :func:`small_config` factory, for tests that vary its settings."""
    return small_config
