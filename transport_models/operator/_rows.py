"""Row operators: observations as sparse linear combinations of receptor rows.

This module is the one place where the weights of the receptor samples of an observation are
defined; :func:`transport_models.sample_receptors` (plume model and footprint matching) and the
row operators below both call the ``*_weights`` functions.

- column (levels of a sounding): ``w_k = h_k a_k`` with pressure weights ``h_k`` (Σ h_k = 1)
  and column averaging kernel ``a_k`` (:func:`column_weights`);
- lidar chord (path-integrated) and each range segment of a lidar profile: the path-mean mole
  fraction, ``w_k = l_k / Σ_j l_j`` over the samples along the beam, ``l_k`` the path length
  each sample represents (:func:`length_weights`);
- IPDA column: ``w_k = IWF_k Δ_k / Σ_j IWF_j Δ_j`` with the integral weighting function
  ``IWF_k`` per unit thickness and the layer thickness ``Δ_k`` (pressure or height)
  (:func:`ipda_weights`). The observation readers store IPDA soundings as kind ``"column"``
  with these normalised weights as ``pressure_weight`` and ``averaging_kernel = 1``.

Each ``*_operator`` returns a combination matrix ``C`` (n_obs × n_receptor) [1]; the
observation operator is ``H_obs = C @ H_receptor`` (:func:`apply_rows`).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.sparse as sp
import xarray as xr

__all__ = [
    "apply_rows",
    "column_operator",
    "column_prior_term",
    "column_weights",
    "ipda_operator",
    "ipda_weights",
    "length_weights",
    "lidar_chord_operator",
    "lidar_profile_operator",
    "zero_rows",
]

log = logging.getLogger(__name__)

#: Default tolerance on Σ_k h_k = 1 for pressure weights [1] (Lite files store float32 weights).
PRESSURE_WEIGHT_ATOL = 1e-4


def warn(msg: str, stacklevel: int = 2) -> None:
    """Log ``msg`` and raise it as a ``UserWarning`` (the caller decides what the user sees)."""
    log.warning(msg)
    warnings.warn(msg, UserWarning, stacklevel=stacklevel + 1)


def _as_2d(name: str, a: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or (shape is not None and a.shape != shape):
        raise ValueError(f"{name}: expected shape {shape or '(n_obs, n_level)'}, found {a.shape}")
    return a


def _finite(name: str, a: np.ndarray, valid: np.ndarray | None = None) -> None:
    sub = a if valid is None else a[valid]
    if not np.isfinite(sub).all():
        raise ValueError(f"{name}: holds NaN/inf values; remove or fill the levels")


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


def column_weights(
    averaging_kernel: np.ndarray,
    pressure_weight: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    atol: float = PRESSURE_WEIGHT_ATOL,
    names: np.ndarray | None = None,
) -> np.ndarray:
    """Level weights ``h_k a_k`` [1] of column soundings.

    Parameters
    ----------
    averaging_kernel : numpy.ndarray
        (n_obs, n_level) normalised column averaging kernel ``a_k`` [1].
    pressure_weight : numpy.ndarray
        (n_obs, n_level) pressure weights ``h_k`` [1]: non-negative, summing to 1 over the
        valid levels of each sounding.
    valid : numpy.ndarray of bool, optional
        (n_obs, n_level) levels to use (padded levels are False); all when omitted.
    atol : float
        Tolerance on ``Σ_k h_k = 1`` [1].
    names : numpy.ndarray of str, optional
        (n_obs,) labels of the soundings for error messages.

    Returns
    -------
    numpy.ndarray
        (n_obs, n_level) weights [1], 0 on invalid levels.

    Raises
    ------
    ValueError
        Non-finite values on valid levels, negative pressure weights, or pressure weights whose
        sum differs from 1 by more than ``atol``.
    """
    h = _as_2d("pressure_weight", pressure_weight)
    a = _as_2d("averaging_kernel", averaging_kernel, h.shape)
    ok = np.ones(h.shape, bool) if valid is None else np.asarray(valid, bool)
    _finite("pressure_weight", h, ok)
    _finite("averaging_kernel", a, ok)
    label = (lambda i: str(names[i])) if names is not None else (lambda i: f"observation {i}")
    neg = ok & (h < 0)
    if neg.any():
        i, k = (int(v[0]) for v in np.nonzero(neg))
        raise ValueError(
            f"pressure_weight: {int(neg.sum())} negative level weight(s); {label(i)} has "
            f"{h[i, k]:.6g} at level {k}; pressure weights are layer fractions of the column (>= 0)"
        )
    s = np.where(ok, h, 0.0).sum(axis=1)
    off = np.abs(s - 1.0)
    if off.size and off.max() > atol:
        i = int(np.argmax(off))
        raise ValueError(
            f"pressure_weight: rows must sum to 1 (to {atol}); {label(i)} sums to {s[i]:.8g} "
            f"over its {int(ok[i].sum())} valid levels ({int((off > atol).sum())} sounding(s) "
            "off); check the level order, padding and units of the file"
        )
    return np.where(ok, h * a, 0.0)


def length_weights(group: np.ndarray, length: np.ndarray, n_groups: int) -> np.ndarray:
    """Path-mean weights ``l_k / Σ_{j in group} l_j`` [1] of samples along a beam.

    Parameters
    ----------
    group : numpy.ndarray of int
        (n_sample,) observation (chord or range segment) of each sample, in ``[0, n_groups)``.
    length : numpy.ndarray
        (n_sample,) path length each sample represents [m], finite and >= 0.
    n_groups : int

    Returns
    -------
    numpy.ndarray
        (n_sample,) weights [1]; they sum to 1 within each group.

    Raises
    ------
    ValueError
        Negative or non-finite lengths, or a group with no positive length.
    """
    length = np.asarray(length, dtype=float)
    if (length < 0).any() or not np.isfinite(length).all():
        raise ValueError("sample_length: expected finite, non-negative lengths [m]")
    tot = np.bincount(group, weights=length, minlength=n_groups)
    present = np.bincount(group, minlength=n_groups) > 0
    if (present & (tot <= 0)).any() or not present.all():
        g = int(np.flatnonzero(~present | (tot <= 0))[0])
        raise ValueError(
            f"group {g} has no samples with positive length; cannot average (a chord or range "
            "segment needs a positive path length)"
        )
    return length / tot[group]


def ipda_weights(weighting_function: np.ndarray, layer_thickness: np.ndarray) -> np.ndarray:
    """IPDA level weights ``IWF_k Δ_k / Σ_j IWF_j Δ_j`` [1].

    Parameters
    ----------
    weighting_function : numpy.ndarray
        (n_obs, n_level) integral weighting function per unit thickness [1/thickness unit],
        >= 0.
    layer_thickness : numpy.ndarray
        (n_obs, n_level) level thickness [Pa or m], >= 0.

    Returns
    -------
    numpy.ndarray
        (n_obs, n_level) weights [1] summing to 1 per sounding.
    """
    iwf = _as_2d("weighting_function", weighting_function)
    dz = _as_2d("layer_thickness", layer_thickness, iwf.shape)
    _finite("weighting_function", iwf)
    _finite("layer_thickness", dz)
    if (iwf < 0).any() or (dz < 0).any():
        raise ValueError(
            "weighting_function/layer_thickness: negative entries found; the integral weighting "
            "function and the layer thickness are non-negative"
        )
    w = iwf * dz
    tot = w.sum(axis=1)
    if (tot <= 0).any():
        raise ValueError(
            f"weighting_function: sounding {int(np.flatnonzero(tot <= 0)[0])} has a "
            "non-positive integral; check the weighting function and thickness"
        )
    return w / tot[:, None]


def column_operator(
    receptor_index: np.ndarray,
    averaging_kernel: np.ndarray,
    pressure_weight: np.ndarray,
    n_receptors: int,
    *,
    atol: float = PRESSURE_WEIGHT_ATOL,
) -> sp.csr_array:
    """Column rows ``Σ_k h_k a_k row_k`` from per-level receptors (:func:`column_weights`).

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
    atol : float
        Tolerance on the sum of the pressure weights [1].

    Returns
    -------
    scipy.sparse.csr_array
        (n_obs, n_receptors) combination matrix [1].
    """
    idx = _index("receptor_index", receptor_index, n_receptors)
    w = column_weights(averaging_kernel, pressure_weight, atol=atol)
    if w.shape != idx.shape:
        raise ValueError(f"receptor_index: expected shape {w.shape}, found {idx.shape}")
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    return _weighted(rows, idx.ravel(), w.ravel(), idx.shape[0], n_receptors)


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
    return _weighted(grp, idx, length_weights(grp, sample_length, n_obs), n_obs, n_receptors)


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
    w = length_weights(grp, np.asarray(sample_length, float)[ok], n_beams * nseg)
    return _weighted(grp, idx[ok], w, n_beams * nseg, n_receptors)


def ipda_operator(
    receptor_index: np.ndarray,
    weighting_function: np.ndarray,
    layer_thickness: np.ndarray,
    n_receptors: int,
) -> sp.csr_array:
    """IPDA column rows ``Σ_k IWF_k Δ_k row_k / Σ_k IWF_k Δ_k`` per sounding (:func:`ipda_weights`).

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
    w = ipda_weights(weighting_function, layer_thickness)
    if w.shape != idx.shape:
        raise ValueError(f"receptor_index: expected shape {w.shape}, found {idx.shape}")
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    return _weighted(rows, idx.ravel(), w.ravel(), idx.shape[0], n_receptors)


def apply_rows(combination: sp.csr_array, h_receptor: sp.csr_array) -> sp.csr_array:
    """``H_obs = C @ H_receptor`` as a CSR array."""
    if combination.shape[1] != h_receptor.shape[0]:
        raise ValueError(
            f"combination has {combination.shape[1]} columns but H has {h_receptor.shape[0]} "
            "receptor rows"
        )
    return sp.csr_array(combination @ h_receptor)


def column_prior_term(
    obs: xr.Dataset, background: float | np.ndarray | xr.DataArray | None = None
) -> np.ndarray:
    """Per-sounding apriori (and background) term of the column enhancement formulation [ppm].

    The retrieved column of OCO-2/OCO-3/GOSAT Lite files and TCCON-style retrievals is (OCO-2
    L2 Lite / TCCON documentation, linearised retrieval)::

        XCO2_ret = Σ_k h_k (1 - a_k) x_a,k + Σ_k h_k a_k x_k

    with pressure weights ``h_k``, the normalised column averaging kernel ``a_k``, the
    retrieval's prior profile ``x_a,k`` (``co2_apriori``) and the true profile ``x_k``.
    Writing the true profile as a background profile plus the enhancement from the fluxes,
    ``x_k = b_k + (H_k F)``, gives::

        XCO2_ret = [Σ_k h_k (1 - a_k) x_a,k + Σ_k h_k a_k b_k] + Σ_k h_k a_k (H_k F)

    The last term is what the column rows of ``H`` compute (:func:`column_weights`, the
    plume's level integration, per-level footprints combined by :func:`match_observations`).
    **The caller must subtract this function's result from the observed XCO2** to form the
    enhancement ``y = XCO2_obs - column_prior_term(obs, background)`` related to ``H F``.
    Without ``background`` only ``Σ h_k (1 - a_k) x_a,k`` is returned, and the caller must
    still subtract the background as the instrument sees it, ``Σ h_k a_k b_k`` (for a
    uniform background ``b``: ``b Σ h_k a_k``, not ``b``). X-STILT column footprints already
    include ``h_k a_k``; the apriori term is the same. IPDA columns (``a_k = 1``,
    ``x_a = 0``) give ``Σ h_k b_k``.

    Parameters
    ----------
    obs : xarray.Dataset
        ObservationSet; only observations of kind ``"column"`` are used. Needs
        ``averaging_kernel``, ``pressure_weight`` and ``co2_apriori`` [ppm] on
        ``(obs, level)`` (NaN-padded levels are skipped).
    background : float or array_like, optional
        Background mole fraction [ppm]: a scalar, ``(n_obs,)`` per sounding, or ``(n_obs,
        n_level)`` profiles.

    Returns
    -------
    numpy.ndarray
        ``(n_obs,)`` term [ppm]; NaN for observations that are not columns.

    Raises
    ------
    KeyError
        A needed variable is missing.
    ValueError
        Bad pressure weights (see :func:`column_weights`) or a background of the wrong shape.
    """
    n = obs.sizes["obs"]
    out = np.full(n, np.nan)
    rows = np.flatnonzero(obs["kind"].values.astype(str) == "column")
    if not rows.size:
        return out
    need = ("averaging_kernel", "pressure_weight", "co2_apriori")
    missing = [v for v in need if v not in obs]
    if missing:
        raise KeyError(f"obs: column observations need variables {list(need)}; missing {missing}")
    ak, pw, xa = (np.asarray(obs[v].values[rows], float).reshape(rows.size, -1) for v in need)
    valid = np.isfinite(pw) & np.isfinite(ak) & np.isfinite(xa)
    w = column_weights(ak, pw, valid)  # h_k a_k, checked; 0 on padded levels
    h = np.where(valid, pw, 0.0)
    out[rows] = (np.where(valid, (h - w) * xa, 0.0)).sum(axis=1)
    if background is not None:
        b = np.asarray(background, dtype=float)
        if b.ndim == 0:
            b = np.full(ak.shape, float(b))
        elif b.shape == (n,):
            b = np.repeat(b[rows, None], ak.shape[1], axis=1)
        elif b.ndim == 2 and b.shape[0] == n and b.shape[1] == ak.shape[1]:
            b = b[rows]
        else:
            raise ValueError(
                f"background: expected a scalar, ({n},) or ({n}, {ak.shape[1]}) values [ppm], "
                f"found shape {b.shape}"
            )
        if not np.isfinite(b[valid]).all():
            raise ValueError("background: holds NaN/inf values on valid levels")
        out[rows] += (w * np.where(valid, b, 0.0)).sum(axis=1)
    return out


def zero_rows(
    h: sp.sparray | np.ndarray, *, labels: np.ndarray | None = None, warn_user: bool = True
) -> np.ndarray:
    """Indices of the rows of ``h`` with no non-zero entry, with a warning when there are any.

    A row of zeros is an observation that sees none of the state (receptor above the mixing
    layer, upwind of the domain, outside the time axis): it carries no information and usually
    means a geometry or configuration error.

    Parameters
    ----------
    h : scipy.sparse array or numpy.ndarray
        (n_obs, n_state) operator.
    labels : numpy.ndarray of str, optional
        (n_obs,) labels (e.g. site names) quoted in the warning.
    warn_user : bool
        Log and warn when there are zero rows (False: only count, e.g. for diagnostics after
        the plume operator has warned).

    Returns
    -------
    numpy.ndarray of int
        Row indices (empty when every row sees the state).
    """
    if sp.issparse(h):
        a = sp.csr_array(h)
        entry_row = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        nz = np.bincount(entry_row[a.data != 0], minlength=a.shape[0])
    else:
        nz = np.count_nonzero(np.asarray(h), axis=1)
    rows = np.flatnonzero(np.asarray(nz) == 0)
    if rows.size and warn_user:
        names = "" if labels is None else f" ({', '.join(map(str, np.asarray(labels)[rows[:5]]))})"
        msg = (
            f"{rows.size} of {h.shape[0]} observation row(s) have zero sensitivity to every "
            f"state element{names}: check the receptor heights against the mixing height, the "
            "wind direction and the time axis"
        )
        warn(msg)
    return rows
