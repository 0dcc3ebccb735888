"""Configuration sections for batch runs (``batch:``) and per-record plausibility (``qc:``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cityflux._config_base import Section, duration

__all__ = ["DEFAULT_BOUNDS_PPM", "BatchConfig", "ClusterSection", "QCConfig"]

#: Plausible CO2 mole fractions per observation kind [ppm]: values outside are dropped.
DEFAULT_BOUNDS_PPM: dict[str, tuple[float, float]] = {
    "tower": (250.0, 1500.0),
    "column": (300.0, 600.0),
    "lidar_path": (250.0, 2000.0),
    "lidar_profile": (250.0, 2000.0),
}


class QCConfig(Section):
    """Per-record plausibility of the observations as read (before background removal).

    ``bounds_ppm`` [ppm] per kind replaces the defaults of :data:`DEFAULT_BOUNDS_PPM` (tower
    250–1500, column 300–600, lidar 250–2000): records outside are dropped and counted in the
    QC report. ``max_error_ppm`` [ppm]: a record whose total error exceeds it is dropped;
    records with a non-finite value or error are always dropped.
    """

    bounds_ppm: dict[str, tuple[float, float]] = Field(default_factory=dict)
    max_error_ppm: float = Field(default=100.0, gt=0.0, description="[ppm]")

    @field_validator("bounds_ppm")
    @classmethod
    def _check_bounds(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        unknown = sorted(set(value) - set(DEFAULT_BOUNDS_PPM))
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; use some of {sorted(DEFAULT_BOUNDS_PPM)}")
        for kind, (lo, hi) in value.items():
            if not lo < hi:
                raise ValueError(f"{kind}: expected [low, high] with low < high, found {[lo, hi]}")
        return value

    def bounds(self, kind: str) -> tuple[float, float]:
        """Plausible range [ppm] of ``kind``."""
        return tuple(self.bounds_ppm.get(kind, DEFAULT_BOUNDS_PPM[kind]))  # type: ignore[return-value]


class ClusterSection(Section):
    """Where a batch runs (``batch.cluster``).

    ``local`` (default): a ``dask.distributed.LocalCluster`` of ``workers`` processes (or
    threads with ``processes: false``) of ``threads_per_worker`` threads each, ``memory`` per
    worker. Windows run in parallel across worker processes only: in one process they run one at
    a time (netCDF-C and HDF5 are not thread-safe), so ``processes: false`` or more than one
    thread per worker adds no parallelism between windows. ``slurm`` / ``pbs``: ``jobs`` batch jobs of ``cores`` cores, ``memory`` and
    ``walltime`` each, in ``queue`` (dask-jobqueue, the ``hpc`` extra). ``address``: an existing
    scheduler (``tcp://host:8786``).
    """

    kind: Literal["local", "slurm", "pbs", "address"] = "local"
    address: str | None = None
    workers: int | None = Field(default=None, ge=1, description="local workers (default: cores)")
    threads_per_worker: int = Field(default=1, ge=1)
    processes: bool = True
    cores: int = Field(default=1, ge=1, description="cores per job (slurm/pbs)")
    memory: str = "4GB"
    walltime: str = "01:00:00"
    queue: str | None = None
    jobs: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _address(self) -> ClusterSection:
        if (self.kind == "address") != (self.address is not None):
            raise ValueError(
                "kind: address needs 'address: tcp://HOST:PORT' (and 'address' is only for "
                "kind: address)"
            )
        return self


class BatchConfig(Section):
    """A long period as windows (``cityflux batch``).

    The period is cut into consecutive cores of ``window``; each window is solved over its core
    widened by ``overlap`` before (spin-up: emissions before the core seen by its
    observations) and ``lag`` after (observations after the core that still see its
    emissions), clipped to the period. Only each window's core enters the stitched results.
    A failing window is retried ``retries`` times.
    """

    window: str = "7D"
    overlap: str = "0D"
    lag: str = "0D"
    retries: int = Field(default=2, ge=0, le=10)
    cluster: ClusterSection = ClusterSection()

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return duration(value, "a window length", example="'7D' or '12h'")

    @field_validator("overlap", "lag")
    @classmethod
    def _extra(cls, value: str) -> str:
        return duration(value, "a duration", allow_zero=True, example="'1D' or '0D'")
