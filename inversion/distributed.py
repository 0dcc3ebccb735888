"""Scale-out helpers: independent inversion windows on dask, and cluster clients for HPC.

``solve(..., method="cg", client=c)`` runs the ``H``/``Hᵀ`` products over row blocks on a
dask cluster; :func:`solve_windows` maps :func:`~inversion.solve.solve` over independent
windows. :func:`make_client` builds a ``dask.distributed`` client from a small
:class:`ClusterConfig`: a ``LocalCluster``, or SLURM/PBS through ``dask-jobqueue`` (the
``hpc`` extra: ``pip install cityflux[hpc]``; imported only when asked for).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CLUSTER_KINDS", "ClusterConfig", "make_client", "solve_windows"]

logger = logging.getLogger(__name__)

CLUSTER_KINDS = ("local", "slurm", "pbs")


@dataclass(frozen=True)
class ClusterConfig:
    """Where to run.

    Parameters
    ----------
    kind : {"local", "slurm", "pbs"}
        ``LocalCluster`` or a dask-jobqueue cluster.
    cores : int
        Cores per worker (job).
    memory : str
        Memory per worker (job), e.g. ``"16GB"``.
    walltime : str
        Job wall time ``"HH:MM:SS"`` (SLURM/PBS).
    jobs : int
        Number of workers (local) or batch jobs to start.
    queue : str, optional
        Partition / queue name (SLURM/PBS).
    processes : bool
        Local cluster only: worker processes (True) or threads in this process (False).
    """

    kind: str = "local"
    cores: int = 1
    memory: str = "4GB"
    walltime: str = "01:00:00"
    jobs: int = 1
    queue: str | None = None
    processes: bool = True

    def __post_init__(self) -> None:
        if self.kind not in CLUSTER_KINDS:
            raise ValueError(
                f"ClusterConfig.kind must be one of {CLUSTER_KINDS}; found {self.kind!r}"
            )
        if self.cores < 1 or self.jobs < 1:
            raise ValueError(
                f"ClusterConfig.cores and .jobs must be >= 1; found {self.cores}, {self.jobs}"
            )


def make_client(config: ClusterConfig) -> Any:
    """A ``distributed.Client`` for ``config`` (close it, and its cluster, when done).

    Raises
    ------
    ImportError
        For ``kind`` "slurm"/"pbs" when dask-jobqueue is not installed (the ``hpc`` extra).
    """
    from distributed import Client, LocalCluster

    if config.kind == "local":
        cluster = LocalCluster(
            n_workers=config.jobs,
            threads_per_worker=config.cores,
            memory_limit=config.memory,
            processes=config.processes,
        )
        return Client(cluster)
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ImportError(
            f"ClusterConfig(kind={config.kind!r}) needs dask-jobqueue; install the hpc extra: "
            "pip install 'cityflux[hpc]' (or pip install dask-jobqueue)"
        ) from exc
    cls = dask_jobqueue.SLURMCluster if config.kind == "slurm" else dask_jobqueue.PBSCluster
    cluster = cls(
        cores=config.cores, memory=config.memory, walltime=config.walltime, queue=config.queue
    )
    cluster.scale(jobs=config.jobs)
    logger.info("make_client: %s cluster with %d job(s) requested", config.kind, config.jobs)
    return Client(cluster)


def _solve_one(problem: Any, method: str, kwargs: dict) -> Any:
    from inversion.solve import solve

    return solve(problem, method, **kwargs)


def solve_windows(
    problems: Sequence[Any],
    method: str = "auto",
    *,
    client: Any = None,
    **solve_kwargs: Any,
) -> list[Any]:
    """Solve independent windows, on a dask client when given (in order of ``problems``).

    Parameters
    ----------
    problems : sequence of LinearProblem
        One problem per window.
    method : str
        Passed to :func:`~inversion.solve.solve`.
    client : distributed.Client, optional
        Map the solves over its workers; without it, solve one after the other here.
    **solve_kwargs
        ``memory_budget``, ``chunk_size``, ``cg`` of :func:`~inversion.solve.solve`.

    Returns
    -------
    list of Posterior
    """
    if client is None:
        return [_solve_one(p, method, solve_kwargs) for p in problems]
    futs = client.map(
        _solve_one,
        list(problems),
        [method] * len(problems),
        [solve_kwargs] * len(problems),
        pure=False,
    )
    return client.gather(futs)
