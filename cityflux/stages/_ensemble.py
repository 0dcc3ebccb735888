"""The ``transport_ensemble`` component of R (``transport.ensemble``).

:func:`cityflux.ensemble.ensemble_transport` builds the flux block of H of every member (perturbed plume met,
:func:`cityflux.ensemble.met_members`, or one footprint folder per member), one at a time,
keeps their mean H̄ and the anomalies ``(H_m − H̄) X`` of the prior flux and of K draws of the
prior flux error (``X = [x_prior, B^{1/2} ξ_1 … ξ_K]``), scaled so that

    R_ens = f · T ∘ (A Aᵀ),    A Aᵀ = Σ_m (a_m a_mᵀ + (1/K) Σ_k b_mk b_mkᵀ) / (M − 1)

(see :class:`cityflux.config.EnsembleConfig`). :func:`attach_ensemble` stores A on the
ObservationSet (``transport_ensemble_anomaly`` [ppm], dims ``obs`` ×
``transport_ensemble_column``, with the localisation in its attributes), so that every R built
from the observations (:func:`cityflux.stages.observation_covariance`, subsets of them, the
uncertainty budget) carries the component; :func:`ensemble_covariance` makes the localised
sparse ``R_ens`` (:func:`inversion.ensemble.localised_ensemble_covariance`) and
:func:`add_to_covariance` merges it into R's blocks.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from scipy.sparse.csgraph import connected_components

from cityflux.config import EnsembleConfig
from inversion.covariance import BlockDiagonalCovariance, DenseCovariance, DiagonalCovariance
from inversion.ensemble import localised_ensemble_covariance

__all__ = [
    "COMPONENT",
    "ENSEMBLE_DIM",
    "ENSEMBLE_VAR",
    "add_to_covariance",
    "attach_ensemble",
    "ensemble_covariance",
]

logger = logging.getLogger(__name__)

#: ObservationSet variable holding the scaled anomalies [ppm], and its second dimension.
ENSEMBLE_VAR = "transport_ensemble_anomaly"
ENSEMBLE_DIM = "transport_ensemble_column"
#: Name of the error component (budget source ``obs_transport_ensemble``).
COMPONENT = "transport_ensemble"

#: Largest block of R (observations tied together by the localisation) held dense.
MAX_BLOCK_OBS = 12_000


def attach_ensemble(obs: xr.Dataset, anomalies: np.ndarray, cfg: EnsembleConfig) -> xr.Dataset:
    """``obs`` with the scaled anomalies and their localisation (see the module docstring)."""
    loc = cfg.localisation
    attrs = {
        "units": "ppm",
        "long_name": "scaled anomalies of the transport ensemble: R_ens = T ∘ (A Aᵀ)",
        "localisation_kind": loc.kind,
        "localisation_time_h": loc.time_h,
        "localisation_distance_km": "none" if loc.distance_km is None else loc.distance_km,
        "localisation_within": loc.within,
        "members": cfg.n_members,
        "flux_samples": cfg.flux_samples,
        "inflation": cfg.inflation_factor,
    }
    out = obs.assign({ENSEMBLE_VAR: (("obs", ENSEMBLE_DIM), np.asarray(anomalies), attrs)})
    out.attrs = dict(obs.attrs)
    return out


def ensemble_covariance(ds: xr.Dataset) -> sp.csr_array | None:
    """The localised ``R_ens`` [ppm²] of the anomalies on ``ds`` (None without them)."""
    if ENSEMBLE_VAR not in ds:
        return None
    var = ds[ENSEMBLE_VAR]
    a = var.attrs
    dist = a.get("localisation_distance_km", "none")
    groups = None
    if a.get("localisation_within") == "groups":
        labels = pd.Series(ds["kind"].values.astype(str)) + ":" + ds["group"].values.astype(str)
        groups = pd.factorize(labels)[0]
    hours = ds["time"].values.astype("datetime64[ns]").astype("int64") / 3.6e12
    return localised_ensemble_covariance(
        var.values, hours - hours.min(initial=0.0), ds["lat"].values, ds["lon"].values,
        time_length_h=float(a["localisation_time_h"]),
        distance_km=None if str(dist) == "none" else float(dist),
        kind=str(a["localisation_kind"]), groups=groups,
    )  # fmt: skip


def _as_sparse(cov: Any) -> sp.csr_array:
    """A Diagonal, Dense or BlockDiagonal covariance operator as a sparse matrix."""
    if isinstance(cov, DiagonalCovariance):
        return sp.csr_array(sp.diags_array(cov.diag()))
    if isinstance(cov, DenseCovariance):
        return sp.csr_array(cov.to_dense(max_size=cov.n))
    rows, cols, vals, start = [], [], [], 0
    index = cov.index if cov.index is not None else np.arange(cov.n)
    for b in cov.blocks:
        pos = index[start : start + b.n]
        blk = _as_sparse(b).tocoo()
        rows.append(pos[blk.row])
        cols.append(pos[blk.col])
        vals.append(blk.data)
        start += b.n
    return sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=cov.shape
    )


def add_to_covariance(base: Any, extra: sp.csr_array) -> BlockDiagonalCovariance:
    """``base + extra`` as a block-diagonal covariance: one dense block per set of
    observations tied together by either (connected components), the rest diagonal.

    Raises
    ------
    ValueError
        If a block would exceed :data:`MAX_BLOCK_OBS` observations (names
        ``transport.ensemble.localisation``).
    """
    total = sp.csr_array(_as_sparse(base) + extra)
    n_comp, label = connected_components(total, directed=False)
    sizes = np.bincount(label, minlength=n_comp)
    if sizes.max() > MAX_BLOCK_OBS:
        raise ValueError(
            f"transport.ensemble.localisation: the localisation ties {int(sizes.max())} "
            f"observations into one block of R (more than {MAX_BLOCK_OBS}); shorten time_h / "
            "distance_km or set within: groups"
        )
    single = np.flatnonzero(sizes[label] == 1)
    blocks, order = [], []
    if single.size:
        blocks.append(DiagonalCovariance(total.diagonal()[single], name="R (independent)"))
        order.append(single)
    multi = np.flatnonzero(sizes > 1)
    members = np.argsort(label, kind="stable")
    bounds = np.r_[0, np.cumsum(sizes)]
    for c in multi:
        idx = members[bounds[c] : bounds[c + 1]]
        blocks.append(DenseCovariance(total[idx][:, idx].toarray(), name=f"R block {int(c)}"))
        order.append(idx)
    return BlockDiagonalCovariance(blocks, index=np.concatenate(order))
