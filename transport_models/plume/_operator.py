"""Gaussian plume footprints and the observation operator H on the inversion grid."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import xarray as xr

from inversion.grid import Grid
from inversion.state import StateVector, TimeAxis
from transport_models.operator._rows import zero_rows
from transport_models.operator._sampling import SamplingOptions

from . import _kernels
from ._dispersion import dispersion_coefficients
from ._frame import MetricFrame
from ._met import PlumeMet
from ._receptors import ReceptorPoints, build_receptors

__all__ = ["FOOTPRINT_UNITS", "PlumeOptions", "footprint", "plume_operator"]

logger = logging.getLogger(__name__)

FOOTPRINT_UNITS = "ppm per (umol m-2 s-1)"
_ENGINES = {"numba": _kernels.plume_rows_numba, "numpy": _kernels.plume_rows_numpy}
_MAX_DENSE = 4_000_000  # rows × cells of one dense block (32 MB)
_MAX_PAIRS_NUMPY = 1_000_000  # points × sub-sources of one numpy block


@dataclass(frozen=True)
class PlumeOptions:
    """Numerical options of the plume footprint.

    Parameters
    ----------
    cell_model : {"point", "area"}
        ``"point"``: each (sub-)cell is a point source at its centre (the textbook formula).
        ``"area"``: the crosswind Gaussian is integrated exactly over the (sub-)cell's
        crosswind extent (rectangle projected on the crosswind axis), the downwind distance
        is that of the centre. ``"area"`` is far more accurate on coarse grids near receptors.
    subcell : int
        Each cell is split into ``subcell × subcell`` equal sub-cells (midpoint rule over the
        cell); 1 = one source per cell.
    release_height : float
        Source height h [m above ground], 0 for surface emitters; must be below every zi.
    surface_altitude : float, optional
        Flat-terrain ground altitude [m asl] subtracted from heights referenced "asl" (lidar
        end points), where the ObservationSet has no per-observation ``surface_altitude``
        variable [m asl]. None: 0 m asl, with a warning when an asl height needs it. A
        receptor below the ground is an error.
    chord_step : float
        Lidar chord sample spacing as a fraction of the grid cell size.
    min_chord_points : int
        Minimum number of sample points on a chord.
    """

    cell_model: str = "point"
    subcell: int = 1
    release_height: float = 0.0
    surface_altitude: float | None = None
    chord_step: float = 0.25
    min_chord_points: int = 5

    def __post_init__(self) -> None:
        if self.cell_model not in ("point", "area"):
            raise ValueError(
                f"PlumeOptions.cell_model: expected 'point' or 'area', found {self.cell_model!r}"
            )
        if int(self.subcell) != self.subcell or self.subcell < 1:
            raise ValueError(
                f"PlumeOptions.subcell: expected an integer >= 1, found {self.subcell}"
            )
        if not (np.isfinite(self.release_height) and self.release_height >= 0):
            raise ValueError(
                f"PlumeOptions.release_height: expected >= 0 m, found {self.release_height}"
            )
        if not (self.chord_step > 0 and self.min_chord_points >= 1):
            raise ValueError(
                "PlumeOptions: chord_step must be > 0 and min_chord_points >= 1, found "
                f"{self.chord_step}, {self.min_chord_points}"
            )


def _rows(
    obs: xr.Dataset,
    grid: Grid,
    time: TimeAxis,
    met: PlumeMet,
    dispersion: str,
    engine: str,
    options: PlumeOptions,
) -> tuple[ReceptorPoints, Iterator[tuple[slice, np.ndarray]]]:
    """Receptors and an iterator of (row slice, dense footprint block (rows, n_cell))."""
    if engine not in _ENGINES:
        raise ValueError(f"engine: expected one of {list(_ENGINES)}, found {engine!r}")
    if not isinstance(met, PlumeMet):
        raise TypeError(f"met: expected a PlumeMet, found {type(met).__name__}")
    cy, cz = dispersion_coefficients(dispersion)
    h = float(options.release_height)
    if (met.boundary_layer_height <= h).any():
        j = int(np.argmax(met.boundary_layer_height <= h))
        raise ValueError(
            f"met: boundary-layer height {met.boundary_layer_height[j]} m at hour {met.times[j]} "
            f"is not above the release height {h} m"
        )
    frame = MetricFrame(grid)
    sampling = SamplingOptions(
        surface_altitude=options.surface_altitude,
        chord_spacing=options.chord_step * frame.spacing,
        min_chord_points=options.min_chord_points,
    )
    rec = build_receptors(obs, grid, frame, time, met, sampling)
    src = frame.sources(options.subcell, options.cell_model == "area")
    nsub = int(options.subcell) ** 2
    bearing = np.radians(met.wind_direction + 180.0 + frame.north_bearing)
    ux_h, uy_h = np.sin(bearing), np.cos(bearing)
    scale_h = 1.0 / met.air_molar_density
    cls_h = met.stability_index.astype(np.int64)
    kernel = _ENGINES[engine]

    counts = np.diff(rec.ptr)
    if engine == "numba":
        cost = np.full(counts.size, grid.size)
        limit = _MAX_DENSE
    else:
        cost = counts * src["x"].size + grid.size
        limit = _MAX_PAIRS_NUMPY
    # greedy row blocks whose cost stays under the limit (at least one row per block)
    csum = np.cumsum(cost)
    bounds = [0]
    while bounds[-1] < counts.size:
        base = csum[bounds[-1] - 1] if bounds[-1] else 0
        stop = int(np.searchsorted(csum, base + limit, side="right"))
        bounds.append(max(stop, bounds[-1] + 1))

    def blocks() -> Iterator[tuple[slice, np.ndarray]]:
        for a, b in itertools.pairwise(bounds):
            hr = rec.hour[a:b]
            p0, p1 = rec.ptr[a], rec.ptr[b]
            block = kernel(
                rec.x[p0:p1],
                rec.y[p0:p1],
                rec.z[p0:p1],
                rec.za[p0:p1],
                rec.zb[p0:p1],
                rec.hs[p0:p1],
                rec.w[p0:p1],
                rec.ptr[a : b + 1] - p0,
                ux_h[hr],
                uy_h[hr],
                met.wind_speed[hr],
                met.boundary_layer_height[hr],
                cls_h[hr],
                scale_h[hr],
                src["x"],
                src["y"],
                src["area"],
                src["sa"],
                src["sb"],
                nsub,
                cy,
                cz,
                h,
            )
            if not np.isfinite(block).all():
                raise FloatingPointError(
                    f"plume footprint: non-finite values in rows {a}-{b - 1}; a receptor sits "
                    "on a ground-level source point (use a receptor height > 0)"
                )
            yield slice(a, b), block

    return rec, blocks()


def _row_labels(obs: xr.Dataset) -> np.ndarray:
    site = obs["site"].values.astype(str) if "site" in obs else np.full(obs.sizes["obs"], "?")
    return np.char.add(np.char.add(site, " @ "), np.datetime_as_string(obs["time"].values, "m"))


def plume_operator(
    obs: xr.Dataset,
    grid: Grid,
    time: TimeAxis,
    met: PlumeMet,
    *,
    sectors: int | StateVector = 1,
    dispersion: str = "briggs-urban",
    engine: str = "numba",
    threshold: float = 0.0,
    options: PlumeOptions | None = None,
) -> sp.csr_array:
    """Observation operator H of the steady Gaussian plume (flux columns only).

    Each grid cell is a ground-level area source of flux F [µmol m-2 s-1], i.e. an emission
    rate Q = F·A [µmol s-1] (A = cell area [m²]) released at the cell centre (see
    :class:`PlumeOptions` for sub-cell sampling and crosswind area integration). The
    concentration at a receptor follows the reflected, capped Gaussian plume with Briggs
    (1973) dispersion (see :mod:`transport_models.plume._kernels`) and is converted to a mole
    fraction with the air molar density n = p / (R T) of the met hour, so that::

        H[obs, (s, t, cell)] = A · (c / Q) / n      [ppm per (µmol m-2 s-1)]

    Time: an observation at time t sees the emissions of the state time bin containing t only
    (steady state within the hour, meteorology of the hour containing t); all other time bins
    of its row are 0. The same footprint appears for every sector (surface emitters).

    Receptors: the samples of :func:`transport_models.sample_receptors` (towers one point,
    lidar chords and range segments points along the beam, heights above sea level converted
    to above ground with the surface altitude); a column row integrates the plume over each
    level's pressure interval, from the sounding's surface pressure to the top of the
    atmosphere, weighted by ``pressure_weight · averaging_kernel``. Rows with zero
    sensitivity to every cell (receptor above the mixing layer, upwind of the city) are
    counted and warned about (:func:`transport_models.zero_rows` gives them).

    Parameters
    ----------
    obs : xarray.Dataset
        ObservationSet (dim ``"obs"``): ``time``, ``kind``, ``site``, ``lat``, ``lon``, ``alt``
        [m], plus ``pressure`` [hPa], ``pressure_weight``, ``averaging_kernel`` (obs, level)
        and optionally ``surface_pressure`` [hPa] for columns, ``lat0, lon0, alt0, lat1, lon1,
        alt1`` for lidar chords/segments, optionally ``surface_altitude`` [m asl].
    grid : inversion.Grid
        Inversion grid. Geographic grids are handled in a local azimuthal-equidistant frame
        centred on the grid.
    time : inversion.TimeAxis
        State time bins.
    met : PlumeMet
        Hourly, domain-uniform meteorology.
    sectors : int or inversion.StateVector
        Number of sectors, or a StateVector whose grid and time must match; extra blocks of the
        StateVector are not included (the caller hstacks their columns).
    dispersion : {"briggs-urban", "briggs-rural"}
        Dispersion scheme (:mod:`transport_models.plume._dispersion`).
    engine : {"numba", "numpy"}
        Kernel implementation.
    threshold : float
        Entries <= threshold [ppm per (µmol m-2 s-1)] are dropped from the sparse matrix
        (0 drops the exact zeros of upwind cells).
    options : PlumeOptions, optional
        Numerical options.

    Returns
    -------
    scipy.sparse.csr_array
        H of shape ``(n_obs, n_sector · nt · ny · nx)`` in the flux-block layout
        ``(sector, time, y, x)`` C order [ppm per (µmol m-2 s-1)].

    Raises
    ------
    ValueError
        Bad inputs; the message names the receptor or met hour (see ``build_receptors``).
    """
    options = options or PlumeOptions()
    if isinstance(sectors, StateVector):
        if sectors.grid != grid or sectors.time != time:
            raise ValueError(
                "sectors: the StateVector's grid/time differ from the grid/time passed "
                f"({sectors.grid!r} vs {grid!r}; {sectors.time!r} vs {time!r})"
            )
        n_sector = len(sectors.sectors)
    else:
        n_sector = int(sectors)
        if n_sector < 1 or n_sector != sectors:
            raise ValueError(
                f"sectors: expected an integer >= 1 or a StateVector, found {sectors!r}"
            )
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold: expected a finite value >= 0, found {threshold}")
    rec, blocks = _rows(obs, grid, time, met, dispersion, engine, options)
    ncell, nt = grid.size, time.nt
    data, rows, cols = [], [], []
    for sl, block in blocks:
        r, c = np.nonzero(block > threshold)
        v = block[r, c]
        r = r + sl.start
        base = rec.state_bin[r] * ncell + c
        for s in range(n_sector):
            data.append(v)
            rows.append(r)
            cols.append(base + s * nt * ncell)
    data_a = np.concatenate(data)
    H = sp.csr_array(
        (data_a, (np.concatenate(rows), np.concatenate(cols))),
        shape=(rec.n_obs, n_sector * nt * ncell),
    )
    H.sort_indices()
    zero_rows(H, labels=_row_labels(obs))
    logger.info(
        "plume operator: %d obs x %d flux columns, %d non-zeros (%d receptor points)",
        H.shape[0],
        H.shape[1],
        H.nnz,
        rec.x.size,
    )
    return H


def footprint(
    obs: xr.Dataset,
    grid: Grid,
    time: TimeAxis,
    met: PlumeMet,
    *,
    dispersion: str = "briggs-urban",
    engine: str = "numba",
    options: PlumeOptions | None = None,
) -> xr.DataArray:
    """Plume footprint of each observation as a map (obs, y, x), for plotting and checks.

    Same model and arguments as :func:`plume_operator`; the map of observation ``i`` is its
    sensitivity to the flux of state time bin ``state_bin[i]`` (a coordinate), all other bins
    being 0.

    Returns
    -------
    xarray.DataArray
        Footprint (obs, y, x) [ppm per (µmol m-2 s-1)] with the grid's ``y``, ``x``, ``lat``,
        ``lon`` coordinates and per-obs ``time``, ``site``, ``kind`` and ``state_bin``.
    """
    rec, blocks = _rows(obs, grid, time, met, dispersion, engine, options or PlumeOptions())
    out = np.zeros((rec.n_obs, grid.size))
    for sl, block in blocks:
        out[sl] = block
    zero_rows(out, labels=_row_labels(obs))
    coords = dict(grid.coords())
    coords["state_bin"] = ("obs", rec.state_bin)
    for name in ("time", "site", "kind"):
        if name in obs:
            coords[name] = ("obs", obs[name].values)
    return xr.DataArray(
        out.reshape(rec.n_obs, *grid.shape),
        dims=("obs", "y", "x"),
        coords=coords,
        name="footprint",
        attrs={
            "units": FOOTPRINT_UNITS,
            "long_name": "Gaussian plume footprint (sensitivity of the mole fraction to the flux)",
            "dispersion": dispersion,
        },
    )
