"""cityflux: gridded, time-resolved urban CO2 emissions with honest uncertainty.

The application package wires observations, transport, priors and the inversion core: the run
configuration (:mod:`cityflux.config`), the case and its stages (:mod:`cityflux.case`), the one
pipeline (:mod:`cityflux.pipeline`), the synthetic city (:mod:`cityflux.synthetic`) and the
OSSE harness (:mod:`cityflux.osse`), outputs, figures and the ``cityflux`` command line.

Names are imported on first use, so that ``import cityflux`` (and the command line's
``--help``) does not load the numerical stack.
"""

from __future__ import annotations

import importlib
from typing import Any

from cityflux._version import __version__

_LAZY = {
    "CityfluxConfig": "cityflux.config",
    "ConfigError": "cityflux.config",
    "demo_config_path": "cityflux.config",
    "load_config": "cityflux.config",
    "parse_config": "cityflux.config",
    "Case": "cityflux.case",
    "CaseInputs": "cityflux.case",
    "build_case": "cityflux.case",
    "read_inputs": "cityflux.case",
    "KindResult": "cityflux.pipeline",
    "RunResult": "cityflux.pipeline",
    "kind_comparison": "cityflux.pipeline",
    "run": "cityflux.pipeline",
    "OsseResult": "cityflux.osse",
    "run_osse": "cityflux.osse",
    "write_outputs": "cityflux.outputs",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cityflux' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
