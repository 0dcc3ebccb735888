"""Configuration of the matrix-free ``cg`` solver (``inversion.cg``): tolerances, the
Lanczos rank and the std map (low-rank, sampled, local windows)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from cityflux._config_base import Section

__all__ = ["CGConfig"]


class CGConfig(Section):
    """Settings of the matrix-free ``cg`` solver (see ``inversion.cg.CGOptions``).

    ``tol`` is the relative residual of every CG solve; ``rank`` the least number of Lanczos
    steps kept for the low-rank posterior std, ``full`` for the complete spectrum (exact std
    map; about 4 · n_obs² · 8 bytes) or ``auto`` (default: the complete spectrum when the std
    map is made, if it fits the memory budget, else the Ritz pairs with a warning); ``std``
    chooses the std map: ``low-rank`` (exact with the complete spectrum, an upper bound from
    Ritz pairs), ``low-rank+sampled`` (low-rank plus an unbiased Monte-Carlo estimate of the
    missing reduction from ``n_samples`` draws, with standard errors) or ``sampled``
    (randomize-then-optimize, ``n_samples`` draws). ``std_pairs``: where the complete spectrum
    is not computed (it does not fit), the low-rank map uses this many randomized block Lanczos
    pairs instead of the Ritz pairs of the mean's run (memory about 3 · n_obs · std_pairs · 8
    bytes); with ``std: low-rank+sampled`` the map is then unbiased with a stated error per
    cell. ``std: local``: where no spectrum fits (10⁵ observations and more), the exact std of
    each tile of ``local_tile`` [cells, steps] given the observations whose footprints touch
    it widened by ``local_halo`` [cells, steps; default three spatial correlation lengths and
    one temporal e-folding time]: an upper bound, compared with the exact std at
    ``local_check`` sampled cells (median and max excess in ``std_method``; a warning above
    5 %; a sample, so the largest excess over all cells can be higher); projected grids only.
    ``aggregate_tol``: the certified relative error of the totals' variances [1]
    (default ``tol``; 1e-6 certifies their std to 5e-7 in fewer iterations).
    """

    tol: float = Field(default=1e-8, gt=0.0, lt=1.0)
    aggregate_tol: float | None = Field(default=None, gt=0.0, lt=1.0)
    maxiter: int | None = Field(default=None, ge=1)
    rank: Literal["auto", "full"] | Annotated[int, Field(ge=0)] = "auto"
    std: Literal["low-rank", "low-rank+sampled", "sampled", "local"] = "low-rank"
    std_pairs: int | None = Field(default=None, ge=1)
    local_halo: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="[grid cells, time steps]"
    )
    local_tile: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = Field(
        default=(20, 6), description="[grid cells, time steps]"
    )
    local_check: int = Field(default=16, ge=0)
    n_samples: int = Field(default=100, ge=2)
    seed: int = Field(default=0, ge=0)
    allow_nonconvergence: bool = False

    def options(self) -> Any:
        """The ``inversion.cg.CGOptions`` of these settings."""
        from inversion.cg import CGOptions

        return CGOptions(**self.model_dump())
