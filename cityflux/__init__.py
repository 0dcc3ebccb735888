"""cityflux: gridded, time-resolved urban CO2 emissions with honest uncertainty.

The application package wires observations, transport, priors and the inversion core: run
configuration (:mod:`cityflux.config`), the synthetic city (:mod:`cityflux.osse`), the pipeline,
outputs, figures and the ``cityflux`` command line.
"""

from cityflux._version import __version__
from cityflux.config import CityfluxConfig, ConfigError, demo_config_path, load_config, parse_config
from cityflux.osse import SyntheticCity, build_synthetic_city
from cityflux.outputs import write_outputs
from cityflux.pipeline import KindResult, RunResult, kind_comparison, run, run_synthetic

__all__ = [
    "CityfluxConfig",
    "ConfigError",
    "KindResult",
    "RunResult",
    "SyntheticCity",
    "__version__",
    "build_synthetic_city",
    "demo_config_path",
    "kind_comparison",
    "load_config",
    "parse_config",
    "run",
    "run_synthetic",
    "write_outputs",
]
