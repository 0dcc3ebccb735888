"""A local metric frame for the plume geometry: cell sources and receptors in metres."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyproj

from inversion.grid import Grid

__all__ = ["MetricFrame"]

logger = logging.getLogger(__name__)
_EARTH_RADIUS_M = 6371008.8


@dataclass(frozen=True, eq=False)
class MetricFrame:
    """Planar coordinates [m] in which plume distances are computed.

    * Projected grids: the grid CRS itself, scaled to metres (map-scale errors of the
      projection are ignored; for the azimuthal-equidistant city grids of
      :meth:`inversion.grid.Grid.local` they are < 0.1 % within 100 km).
    * Geographic grids: a local azimuthal-equidistant projection (WGS84) centred on the grid
      centre, so distances from the centre are exact and planar distances between points of a
      city-sized domain match great-circle ones to < 0.1 %.

    Wind directions are given relative to true north; the frame's "north" (its +y axis) differs
    from true north by the meridian convergence ``north_bearing`` measured at the grid centre,
    which is applied as one domain-uniform rotation (0 for an aeqd frame centred on the grid).
    """

    grid: Grid

    @cached_property
    def _centre_lonlat(self) -> tuple[float, float]:
        g = self.grid
        xc = 0.5 * (g.x_edges[0] + g.x_edges[-1])
        yc = 0.5 * (g.y_edges[0] + g.y_edges[-1])
        lon, lat = g.to_lonlat(xc, yc)
        return float(lon), float(lat)

    @cached_property
    def crs(self) -> pyproj.CRS:
        """The frame's CRS (metres)."""
        if not self.grid.is_geographic:
            return self.grid.crs
        lon, lat = self._centre_lonlat
        return pyproj.CRS.from_proj4(
            f"+proj=aeqd +lat_0={lat} +lon_0={lon} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
        )

    @cached_property
    def _factor(self) -> float:
        return 1.0 if self.grid.is_geographic else self.crs.axis_info[0].unit_conversion_factor

    @cached_property
    def _from_lonlat(self) -> pyproj.Transformer:
        return pyproj.Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    def from_lonlat(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Frame coordinates [m] of longitude/latitude [degrees]."""
        x, y = self._from_lonlat.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x) * self._factor, np.asarray(y) * self._factor

    @cached_property
    def north_bearing(self) -> float:
        """Bearing of true north in the frame at the grid centre [degrees clockwise from +y]."""
        lon, lat = self._centre_lonlat
        d = 0.01 if lat < 89.0 else -0.01
        x, y = self.from_lonlat([lon, lon], [lat, lat + d])
        gamma = float(
            np.degrees(np.arctan2(np.sign(d) * (x[1] - x[0]), np.sign(d) * (y[1] - y[0])))
        )
        if abs(gamma) > 1e-6:
            logger.debug("plume frame: meridian convergence %.4f deg at the grid centre", gamma)
        return gamma

    @cached_property
    def spacing(self) -> float:
        """Smallest cell size [m] (square root of the smallest cell area)."""
        return float(np.sqrt(np.min(self.grid.cell_area)))

    def sources(self, subcell: int, area_model: bool) -> dict[str, np.ndarray]:
        """Sub-sources of every cell, cell-major (C order over (y, x)), ``subcell²`` per cell.

        Returns a dict with ``x``, ``y`` [m], ``area`` [m²] (cell area / subcell²) and the
        sub-cell side lengths ``sa``, ``sb`` [m] along frame x and y (zeros when
        ``area_model`` is False, i.e. point sources).
        """
        g = self.grid
        n = int(subcell)
        off = (np.arange(n) + 0.5) / n - 0.5  # sub-cell centres in units of a cell
        ox, oy = np.meshgrid(off, off)  # (n, n): sub-rows, sub-columns
        gx = g.x[None, :, None, None] + g.dx * ox[None, None]  # (1, nx, n, n)
        gy = g.y[:, None, None, None] + g.dy * oy[None, None]  # (ny, 1, n, n)
        gx, gy = np.broadcast_arrays(gx, gy)
        gx = gx.reshape(g.size, n * n)
        gy = gy.reshape(g.size, n * n)
        area = np.repeat(g.cell_area.reshape(-1, 1) / (n * n), n * n, axis=1)
        if g.is_geographic:
            x, y = self.from_lonlat(gx, gy)
            rad = np.pi / 180.0 * _EARTH_RADIUS_M
            sa = g.dx / n * rad * np.cos(np.radians(gy))
            sb = np.full(gy.shape, abs(g.dy) / n * rad)
        else:
            x, y = gx * self._factor, gy * self._factor
            sa = np.full(gx.shape, g.dx / n * self._factor)
            sb = np.full(gx.shape, abs(g.dy) / n * self._factor)
        if not area_model:
            sa = np.zeros_like(sa)
            sb = np.zeros_like(sb)
        return {
            "x": np.ascontiguousarray(x.ravel(), dtype=float),
            "y": np.ascontiguousarray(y.ravel(), dtype=float),
            "area": np.ascontiguousarray(area.ravel(), dtype=float),
            "sa": np.ascontiguousarray(sa.ravel(), dtype=float),
            "sb": np.ascontiguousarray(sb.ravel(), dtype=float),
        }
