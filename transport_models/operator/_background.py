"""Background parameters: boundary (curtain) sensitivities and per-group offsets.

Both give blocks of ``H`` in the extra-state columns: a boundary block maps curtain mole
fractions [ppm] to observations (sensitivity [ppm per ppm], the fraction of particles leaving
through each curtain), an offset block adds one background offset [ppm] per group (site,
overpass, scan) with sensitivity 1 ppm per ppm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import xarray as xr

from inversion.state import StateVector

__all__ = ["add_block", "boundary_block", "offset_block"]


def boundary_block(
    sensitivity: xr.DataArray | np.ndarray, combination: sp.csr_array | None = None
) -> sp.csr_array:
    """Boundary sensitivity block (n_obs, n_bc) [ppm per ppm].

    Parameters
    ----------
    sensitivity : xarray.DataArray or numpy.ndarray
        (n_receptor, n_bc) curtain sensitivities per receptor (e.g. from
        ``read_boundary_sensitivity``).
    combination : scipy.sparse.csr_array, optional
        (n_obs, n_receptor) receptor -> observation matrix (matching or row operator);
        identity when omitted.
    """
    s = np.asarray(sensitivity, dtype=float)
    if s.ndim != 2 or not np.isfinite(s).all():
        raise ValueError(
            f"sensitivity: expected a finite (n_receptor, n_bc) array, found {s.shape}"
        )
    b = sp.csr_array(s)
    return b if combination is None else sp.csr_array(combination @ b)


def offset_block(groups: Sequence[object] | np.ndarray) -> tuple[sp.csr_array, list[str]]:
    """Indicator block (n_obs, n_groups) [ppm per ppm] with one column per distinct group.

    Returns the block and the group labels (sorted), e.g. for ``StateVector(extra=...)``.
    """
    g = np.asarray(groups).astype(str)
    labels, inv = np.unique(g, return_inverse=True)
    n = g.size
    block = sp.csr_array((np.ones(n), (np.arange(n), inv)), shape=(n, labels.size))
    return block, [str(x) for x in labels]


def add_block(h: sp.csr_array, state: StateVector, name: str, block: sp.csr_array) -> sp.csr_array:
    """Return ``h`` with ``block`` placed in the columns of the state's extra block ``name``."""
    sl = state.slice(name)
    if block.shape != (h.shape[0], sl.stop - sl.start):
        raise ValueError(
            f"block {name!r}: expected shape {(h.shape[0], sl.stop - sl.start)}, "
            f"found {block.shape}"
        )
    coo = sp.coo_array(block)
    placed = sp.csr_array((coo.data, (coo.row, coo.col + sl.start)), shape=h.shape)
    return sp.csr_array(h + placed)
