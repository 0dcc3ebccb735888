"""Memory estimates of the large stages, refused against ``inversion.memory_budget_gib``.

Estimated before the work, from sizes known then: the prior stage (before the inputs are read
or generated: about :data:`PRIOR_ARRAYS` float64 arrays of the flux state — the prior, its
std, the state vector, the prior covariance's diagonal, the temporal disaggregation, the
synthetic truth) and the plume operator H (before the transport stage: each observation
sensitive to about half the cells of its time bin, CSR values and indices, per sector). The
solve is estimated and refused by the solver itself (``inversion.MemoryBudgetError``).
"""

from __future__ import annotations

import pandas as pd

from cityflux.config import CityfluxConfig
from inversion import MemoryBudgetError

__all__ = ["PRIOR_ARRAYS", "check_budget", "plume_h_bytes", "prior_bytes"]

#: float64 arrays of the flux state's size held at once by the prior stage.
PRIOR_ARRAYS = 10
GIB = 2**30


def _n_cells(cfg: CityfluxConfig) -> int:
    d = cfg.domain
    if d.is_lonlat:
        lon0, lat0, lon1, lat1 = d.bounds
        return round((lon1 - lon0) / d.resolution_deg) * round((lat1 - lat0) / d.resolution_deg)
    return int(d.nx) * int(d.ny)


def _n_sectors(cfg: CityfluxConfig) -> int:
    if cfg.synthetic is not None:
        return len(cfg.synthetic.sectors)
    return max(1, len({inv.sector or inv.path for inv in cfg.prior.inventories}))


def _nt(cfg: CityfluxConfig) -> int:
    p = cfg.period
    return int((pd.Timestamp(p.end) - pd.Timestamp(p.start)) / pd.Timedelta(p.step))


def prior_bytes(cfg: CityfluxConfig) -> tuple[int, int]:
    """(flux unknowns, estimated bytes) of the prior stage."""
    n = _n_sectors(cfg) * _nt(cfg) * _n_cells(cfg)
    return n, PRIOR_ARRAYS * 8 * n


def plume_h_bytes(cfg: CityfluxConfig, n_obs: int) -> int:
    """Estimated bytes of the plume H: half the cells of a bin per observation and sector."""
    return int(n_obs * _n_cells(cfg) * _n_sectors(cfg) * 12 // 2)


def check_budget(cfg: CityfluxConfig, stage: str, nbytes: int, detail: str) -> None:
    """Raise if ``nbytes`` exceeds ``inversion.memory_budget_gib``.

    Raises
    ------
    inversion.MemoryBudgetError
        With the estimate and the budget [GiB], the sizes behind it, and what to change.
    """
    budget = cfg.inversion.memory_budget_gib
    if nbytes <= budget * GIB:
        return
    raise MemoryBudgetError(
        f"{stage}: about {nbytes / GIB:.3g} GiB needed ({detail}) but "
        f"inversion.memory_budget_gib is {budget:g} GiB; use a coarser domain "
        "(domain.resolution_m, nx, ny), a longer period.step or a shorter period (cityflux "
        "batch), or raise inversion.memory_budget_gib if the machine has the memory"
    )
