"""Prior uncertainty model: fractional per-sector std with a floor, and correlation parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import xarray as xr

SPATIAL_KINDS = (
    "exponential",
    "gaussian",
    "matern32",
    "matern52",
    "separable_exponential",
    "none",
)
TEMPORAL_KINDS = ("exponential", "gaussian", "none")


@dataclass(frozen=True)
class PriorUncertainty:
    """Prior error model handed to ``inversion.covariance`` by the application.

    std = max(fraction[sector] · |prior|, floor) [µmol m-2 s-1]; the correlations are described
    by their kind and length scales (the covariance operator itself is built elsewhere).

    Parameters
    ----------
    fraction : float or mapping of str to float
        Relative error (e.g. 0.5 = 50 %), one value or per sector; with a mapping, sectors not
        listed use ``default_fraction``.
    floor : float
        Minimum std [µmol m-2 s-1], so cells with zero prior can still change; must be > 0 if
        the prior has zeros.
    default_fraction : float
        Relative error of sectors not listed in ``fraction``.
    spatial_kind : str
        One of ``exponential``, ``gaussian``, ``matern32``, ``matern52``,
        ``separable_exponential`` (exp(−(|Δy| + |Δx|)/L) along the grid axes), ``none``.
    length_km : float
        Spatial correlation length [km] (great-circle).
    temporal_kind : str
        One of ``exponential``, ``gaussian``, ``none``.
    tau_hours : float
        Temporal correlation time [h].
    """

    fraction: float | Mapping[str, float] = 0.5
    floor: float = 0.0
    default_fraction: float = 0.5
    spatial_kind: str = "exponential"
    length_km: float = 5.0
    temporal_kind: str = "exponential"
    tau_hours: float = 24.0
    _fractions: Mapping[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frac = self.fraction
        table = dict(frac) if isinstance(frac, Mapping) else {}
        values = (
            list(table.values())
            + [self.default_fraction]
            + ([] if isinstance(frac, Mapping) else [float(frac)])
        )
        for v in values:
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"fraction: expected positive relative errors, found {v!r}")
        if isinstance(frac, Mapping):
            object.__setattr__(self, "fraction", MappingProxyType(dict(table)))
        if not (np.isfinite(self.floor) and self.floor >= 0):
            raise ValueError(
                f"floor: expected a non-negative std [umol m-2 s-1], found {self.floor!r}"
            )
        if self.spatial_kind not in SPATIAL_KINDS:
            raise ValueError(
                f"spatial_kind: expected one of {SPATIAL_KINDS}, found {self.spatial_kind!r}"
            )
        if self.temporal_kind not in TEMPORAL_KINDS:
            raise ValueError(
                f"temporal_kind: expected one of {TEMPORAL_KINDS}, found {self.temporal_kind!r}"
            )
        for name in ("length_km", "tau_hours"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a positive value, found {v!r}")
        object.__setattr__(self, "_fractions", MappingProxyType(table))

    def fraction_for(self, sector: str) -> float:
        """Relative error of ``sector``."""
        if isinstance(self.fraction, Mapping):
            return float(self._fractions.get(sector, self.default_fraction))
        return float(self.fraction)

    def std(self, prior: xr.DataArray) -> xr.DataArray:
        """Prior error std, same shape as ``prior`` (sector, …) [µmol m-2 s-1].

        Raises
        ------
        ValueError
            If any std is not positive (zero prior with ``floor=0``) or the prior is not finite.
        """
        if "sector" not in prior.dims:
            prior = prior.expand_dims(sector=["total"])
        values = np.asarray(prior.values, dtype=float)
        if not np.isfinite(values).all():
            raise ValueError(f"prior: {int((~np.isfinite(values)).sum())} non-finite values")
        ax = prior.dims.index("sector")
        fr = np.array([self.fraction_for(str(s)) for s in prior["sector"].values])
        shape = [1] * values.ndim
        shape[ax] = fr.size
        std = np.maximum(fr.reshape(shape) * np.abs(values), self.floor)
        if (std <= 0).any():
            raise ValueError(
                f"prior std is zero in {int((std <= 0).sum())} of {std.size} elements (zero prior "
                "and floor=0); set floor > 0 [umol m-2 s-1], e.g. 0.1"
            )
        out = prior.copy(data=std)
        out.name = "flux_prior_std"
        out.attrs = {"units": "umol m-2 s-1", "long_name": "prior CO2 flux error std"}
        return out
