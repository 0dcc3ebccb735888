"""Row operators: observations as sparse linear combinations of receptor rows.

Each function returns a combination matrix ``C`` (n_obs × n_receptor) [1]; the observation
operator is ``H_obs = C @ H_receptor`` (:func:`apply_rows`).

- column (in-situ levels of a sounding): ``row = Σ_k w_k a_k row_k`` with pressure weights
  ``w_k`` (Σ w_k = 1) and averaging kernel ``a_k``;
- lidar chord (path-integrated): the path-mean mole fraction, ``row = Σ_k l_k row_k / Σ_k l_k``
  over the sample receptors along the beam, ``l_k`` the path length each sample represents;
- lidar profile: the same length-weighted mean within each range segment;
- IPDA column: ``row = Σ_k IWF_k Δ_k row_k / Σ_k IWF_k Δ_k`` with the integral weighting
  function ``IWF_k`` and the layer thickness ``Δ_k`` (pressure or height).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "apply_rows",
    "column_operator",
    "ipda_operator",
    "lidar_chord_operator",
    "lidar_profile_operator",
]


def _as_2d(name: str, a: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or (shape is not None and a.shape != shape):
        raise ValueError(f"{name}: expected shape {shape or '(n_obs, n_level)'}, found {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: holds NaN/inf values; remove or fill the levels")
    return a


def _index(name: str, idx: np.ndarray, n_receptors: int) -> np.ndarray:
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer receptor indices, found dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= n_receptors):
        raise ValueError(
            f"{name}: receptor indices must lie in [0, {n_receptors}), found "
            f"[{idx.min()}, {idx.max()}]; match every level to a receptor first"
        )
    return idx.astype(np.int64)


def _weighted(
    rows: np.ndarray, idx: np.ndarray, w: np.ndarray, n_rows: int, n_receptors: int
) -> sp.csr_array:
    c = sp.csr_array((w, (rows, idx)), shape=(n_rows, n_receptors))
    c.sum_duplicates()
    return c


def column_operator(
    receptor_index: np.ndarray,
    averaging_kernel: np.ndarray,
    pressure_weight: np.ndarray,
    n_receptors: int,
    *,
    atol: float = 1e-6,
) -> sp.csr_array:
    """Column rows ``Σ_k w_k a_k row_k`` from per-level receptors.

    Parameters
    ----------
    receptor_index : numpy.ndarray of int
        (n_obs, n_level) receptor row of each level.
    averaging_kernel : numpy.ndarray
        (n_obs, n_level) column averaging kernel [1].
    pressure_weight : numpy.ndarray
        (n_obs, n_level) pressure weights [1], each row summing to 1.
    n_receptors : int
        Number of receptor rows.

    Returns
    -------
    scipy.sparse.csr_array
        (n_obs, n_receptors) combination matrix [1].
    """
    idx = _index("receptor_index", receptor_index, n_receptors)
    a = _as_2d("averaging_kernel", averaging_kernel, idx.shape)
    w = _as_2d("pressure_weight", pressure_weight, idx.shape)
    s = w.sum(axis=1)
    if np.abs(s - 1).max(initial=0) > atol:
        i = int(np.argmax(np.abs(s - 1)))
        raise ValueError(
            f"pressure_weight: rows must sum to 1 (to {atol}); observation {i} sums to {s[i]:.8g}"
        )
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    return _weighted(rows, idx.ravel(), (w * a).ravel(), idx.shape[0], n_receptors)


def _length_mean(
    group: np.ndarray, idx: np.ndarray, length: np.ndarray, n_groups: int, n_receptors: int
) -> sp.csr_array:
    if (length < 0).any() or not np.isfinite(length).all():
        raise ValueError("sample_length: expected finite, non-negative lengths [m]")
    tot = np.bincount(group, weights=length, minlength=n_groups)
    if (tot <= 0).any():
        g = int(np.flatnonzero(tot <= 0)[0])
        raise ValueError(f"group {g} has no samples with positive length; cannot average")
    return _weighted(group, idx, length / tot[group], n_groups, n_receptors)


def lidar_chord_operator(
    sample_obs: np.ndarray,
    sample_receptor: np.ndarray,
    sample_length: np.ndarray,
    n_obs: int,
    n_receptors: int,
) -> sp.csr_array:
    """Path-mean rows of lidar chords: ``Σ_k l_k row_k / Σ_k l_k`` per chord.

    Parameters
    ----------
    sample_obs : numpy.ndarray of int
        (n_sample,) chord (observation) of each sample receptor along the beam.
    sample_receptor : numpy.ndarray of int
        (n_sample,) receptor row of each sample.
    sample_length : numpy.ndarray
        (n_sample,) path length represented by each sample [m].
    n_obs, n_receptors : int

    Returns
    -------
    scipy.sparse.csr_array
        (n_obs, n_receptors) [1]; rows sum to 1.
    """
    idx = _index("sample_receptor", sample_receptor, n_receptors)
    grp = _index("sample_obs", sample_obs, n_obs)
    return _length_mean(grp, idx, np.asarray(sample_length, float), n_obs, n_receptors)


def lidar_profile_operator(
    sample_beam: np.ndarray,
    sample_range: np.ndarray,
    sample_length: np.ndarray,
    sample_receptor: np.ndarray,
    segment_edges: np.ndarray,
    n_beams: int,
    n_receptors: int,
) -> sp.csr_array:
    """Range-resolved lidar rows: length-weighted mean of samples in each range segment.

    Rows are ordered beam-major: ``row = beam * n_segment + segment`` with
    ``n_segment = len(segment_edges) - 1``; a sample at range ``r`` [m] belongs to the segment
    ``[edge_m, edge_{m+1})``. Samples outside all segments are ignored.
    """
    edges = np.asarray(segment_edges, float)
    if edges.ndim != 1 or edges.size < 2 or (np.diff(edges) <= 0).any():
        raise ValueError(f"segment_edges: expected increasing edges [m], found {edges}")
    nseg = edges.size - 1
    seg = np.searchsorted(edges, np.asarray(sample_range, float), side="right") - 1
    ok = (seg >= 0) & (seg < nseg)
    beam = _index("sample_beam", sample_beam, n_beams)
    idx = _index("sample_receptor", sample_receptor, n_receptors)
    grp = beam[ok] * nseg + seg[ok]
    return _length_mean(
        grp, idx[ok], np.asarray(sample_length, float)[ok], n_beams * nseg, n_receptors
    )


def ipda_operator(
    receptor_index: np.ndarray,
    weighting_function: np.ndarray,
    layer_thickness: np.ndarray,
    n_receptors: int,
) -> sp.csr_array:
    """IPDA column rows ``Σ_k IWF_k Δ_k row_k / Σ_k IWF_k Δ_k`` per sounding.

    Parameters
    ----------
    receptor_index : numpy.ndarray of int
        (n_obs, n_level) receptor row of each level.
    weighting_function : numpy.ndarray
        (n_obs, n_level) integral weighting function per unit thickness [1/thickness unit].
    layer_thickness : numpy.ndarray
        (n_obs, n_level) level thickness [Pa or m].
    n_receptors : int
    """
    idx = _index("receptor_index", receptor_index, n_receptors)
    iwf = _as_2d("weighting_function", weighting_function, idx.shape)
    dz = _as_2d("layer_thickness", layer_thickness, idx.shape)
    w = iwf * dz
    tot = w.sum(axis=1)
    if (tot <= 0).any():
        raise ValueError(
            f"weighting_function: sounding {int(np.flatnonzero(tot <= 0)[0])} has a "
            "non-positive integral; check the weighting function and thickness"
        )
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    return _weighted(rows, idx.ravel(), (w / tot[:, None]).ravel(), idx.shape[0], n_receptors)


def apply_rows(combination: sp.csr_array, h_receptor: sp.csr_array) -> sp.csr_array:
    """``H_obs = C @ H_receptor`` as a CSR array."""
    if combination.shape[1] != h_receptor.shape[0]:
        raise ValueError(
            f"combination has {combination.shape[1]} columns but H has {h_receptor.shape[0]} "
            "receptor rows"
        )
    return sp.csr_array(combination @ h_receptor)
