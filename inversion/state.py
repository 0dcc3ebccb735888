"""Time axis and state vector of the inversion.

The state vector is a sequence of blocks. The first is always the gridded flux, shaped
``(sector, time, y, x)`` and flattened in C order; extra parameter blocks (background offsets,
satellite biases, point sources kept as separate elements) follow in the order given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .grid import Grid

__all__ = ["FLUX_UNITS", "StateBlock", "StateVector", "TimeAxis"]

#: Units of the flux block, written UDUNITS-style in files: µmol m-2 s-1.
FLUX_UNITS = "umol m-2 s-1"


def _utc_ns(values: Any, name: str) -> np.ndarray:
    """Convert times to naive UTC datetime64[ns]; tz-aware inputs are converted to UTC."""
    arr = np.atleast_1d(values)
    if arr.dtype.kind in "OUS":
        idx = pd.DatetimeIndex(pd.to_datetime(arr, format="ISO8601"))
    else:
        idx = pd.DatetimeIndex(arr)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    out = idx.values.astype("datetime64[ns]")
    if np.isnat(out).any():
        raise ValueError(f"{name}: found NaT at index {int(np.flatnonzero(np.isnat(out))[0])}")
    return out


@dataclass(frozen=True, eq=False)
class TimeAxis:
    """Half-open UTC time bins ``[edges[i], edges[i+1])``.

    Parameters
    ----------
    edges : array-like of datetime64
        Strictly increasing bin edges (nt + 1,), UTC.

    Examples
    --------
    >>> t = TimeAxis.regular("2024-06-01", "2024-06-08", "6h")
    >>> t.nt
    28
    """

    edges: np.ndarray

    def __post_init__(self) -> None:
        edges = _utc_ns(self.edges, "edges")
        if edges.size < 2:
            raise ValueError(f"edges: need at least 2 edges (one bin), found {edges.size}")
        if not (np.diff(edges) > np.timedelta64(0, "ns")).all():
            bad = int(np.flatnonzero(np.diff(edges) <= np.timedelta64(0, "ns"))[0])
            raise ValueError(
                f"edges: must increase strictly; edge {bad + 1} ({edges[bad + 1]}) is not after "
                f"edge {bad} ({edges[bad]})"
            )
        edges.setflags(write=False)
        object.__setattr__(self, "edges", edges)

    @classmethod
    def regular(cls, start: Any, end: Any, freq: str | pd.Timedelta) -> TimeAxis:
        """Bins of length ``freq`` (e.g. ``"1h"``, ``"6h"``, ``"1D"``) from ``start`` to ``end``.

        ``end - start`` must be a whole number of steps.
        """
        start_, end_ = _utc_ns([start, end], "start/end")
        step = pd.Timedelta(freq).to_timedelta64().astype("timedelta64[ns]")
        n = (end_ - start_) / step
        if n < 1 or n != int(n):
            raise ValueError(
                f"the period {start_} – {end_} is not a whole number of {freq} steps "
                f"(found {float(n):.6g}); adjust start, end or freq"
            )
        return cls(start_ + step * np.arange(int(n) + 1))

    @property
    def nt(self) -> int:
        """Number of time bins."""
        return self.edges.size - 1

    @property
    def starts(self) -> np.ndarray:
        """Bin starts (nt,) [datetime64[ns], UTC]."""
        return self.edges[:-1]

    @property
    def ends(self) -> np.ndarray:
        """Bin ends (nt,) [datetime64[ns], UTC], exclusive."""
        return self.edges[1:]

    @property
    def centers(self) -> np.ndarray:
        """Bin midpoints (nt,) [datetime64[ns], UTC]."""
        return self.starts + (self.ends - self.starts) // 2

    @property
    def seconds(self) -> np.ndarray:
        """Bin durations (nt,) [s]."""
        return (np.diff(self.edges) / np.timedelta64(1, "s")).astype(float)

    @property
    def hours(self) -> np.ndarray:
        """Bin durations (nt,) [h]."""
        return self.seconds / 3600.0

    @property
    def center_hours(self) -> np.ndarray:
        """Bin midpoints as hours since the first edge (nt,) [h], for temporal correlations."""
        return ((self.centers - self.edges[0]) / np.timedelta64(1, "s")) / 3600.0

    @property
    def period(self) -> tuple[np.datetime64, np.datetime64]:
        """``(first edge, last edge)`` of the whole axis."""
        return self.edges[0], self.edges[-1]

    def index(self, times: Any) -> np.ndarray:
        """Bin index of each time (half-open bins); ``-1`` for times outside the axis."""
        t = _utc_ns(times, "times")
        i = np.searchsorted(self.edges, t, side="right") - 1
        return np.where((i >= 0) & (i < self.nt), i, -1)

    def coords(self) -> dict[str, Any]:
        """``time`` (bin starts) and ``time_bnds`` for xarray objects, CF style."""
        return {
            "time": (
                "time",
                self.starts,
                {"long_name": "start of time bin", "bounds": "time_bnds"},
            ),
        }

    def bounds_array(self) -> xr.DataArray:
        """CF ``time_bnds`` (time, nv=2) [datetime64[ns]]."""
        return xr.DataArray(np.stack([self.starts, self.ends], axis=1), dims=("time", "nv"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeAxis):
            return NotImplemented
        return self.edges.shape == other.edges.shape and bool((self.edges == other.edges).all())

    def __hash__(self) -> int:
        return hash(self.edges.tobytes())

    def __repr__(self) -> str:
        return f"TimeAxis(nt={self.nt}, {self.edges[0]} – {self.edges[-1]})"


@dataclass(frozen=True)
class StateBlock:
    """One block of the state vector: a name, a slice and labels for its elements."""

    name: str
    start: int
    size: int
    labels: tuple[str, ...] | None = None
    units: str = ""

    @property
    def slice(self) -> slice:
        """Slice of this block in the full state vector."""
        return slice(self.start, self.start + self.size)


class StateVector:
    """Layout of the inversion state: a flux block and optional extra parameter blocks.

    Parameters
    ----------
    grid : Grid
        Horizontal grid of the flux block.
    time : TimeAxis
        State time steps.
    sectors : sequence of str
        Sector names; the flux block is ``(sector, time, y, x)`` in C order.
    extra : mapping of str to int or sequence of str, optional
        Extra blocks appended after the flux, in order: a number of elements, or their labels
        (e.g. ``{"background": ["site_A", "site_B"]}``).
    extra_units : mapping of str to str, optional
        Units of the extra blocks (e.g. ``{"background": "ppm"}``).
    """

    def __init__(
        self,
        grid: Grid,
        time: TimeAxis,
        sectors: Sequence[str] = ("total",),
        extra: Mapping[str, int | Sequence[str]] | None = None,
        extra_units: Mapping[str, str] | None = None,
    ) -> None:
        sectors = tuple(str(s) for s in sectors)
        if not sectors or len(set(sectors)) != len(sectors):
            raise ValueError(f"sectors: expected unique, non-empty names, found {sectors!r}")
        self.grid = grid
        self.time = time
        self.sectors = sectors
        blocks = [StateBlock("flux", 0, len(sectors) * time.nt * grid.size, None, FLUX_UNITS)]
        units = dict(extra_units or {})
        for name, spec in (extra or {}).items():
            if name in {b.name for b in blocks}:
                raise ValueError(f"extra: block name {name!r} is used twice")
            if isinstance(spec, int | np.integer):
                size, labels = int(spec), tuple(f"{name}_{i}" for i in range(int(spec)))
            else:
                labels = tuple(str(s) for s in spec)
                size = len(labels)
            if size < 1:
                raise ValueError(f"extra[{name!r}]: expected at least one element, found {size}")
            start = blocks[-1].start + blocks[-1].size
            blocks.append(StateBlock(name, start, size, labels, units.get(name, "")))
        self.blocks: dict[str, StateBlock] = {b.name: b for b in blocks}

    # ------------------------------------------------------------------ sizes
    @property
    def flux_shape(self) -> tuple[int, int, int, int]:
        """``(n_sector, nt, ny, nx)``."""
        return (len(self.sectors), self.time.nt, *self.grid.shape)

    @property
    def n_flux(self) -> int:
        """Number of flux elements."""
        return self.blocks["flux"].size

    @cached_property
    def size(self) -> int:
        """Total number of state elements."""
        last = list(self.blocks.values())[-1]
        return last.start + last.size

    def __len__(self) -> int:
        return self.size

    def slice(self, name: str) -> slice:
        """Slice of block ``name`` in the full vector."""
        try:
            return self.blocks[name].slice
        except KeyError:
            raise KeyError(
                f"state block {name!r} does not exist; blocks are {list(self.blocks)}"
            ) from None

    def flux_index(self, sector: Any, t: Any, iy: Any, ix: Any) -> np.ndarray:
        """Flat state indices of flux elements (vectorised over broadcastable index arrays)."""
        return np.ravel_multi_index(
            (np.asarray(sector), np.asarray(t), np.asarray(iy), np.asarray(ix)), self.flux_shape
        )

    # ------------------------------------------------------------------ flatten / unflatten
    def flatten(
        self,
        flux: xr.DataArray | np.ndarray,
        extra: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Flatten a flux field (and extra blocks) to a state vector.

        Parameters
        ----------
        flux : xarray.DataArray or numpy.ndarray
            CO2 flux [µmol m-2 s-1], shape ``(sector, time, y, x)``; a DataArray is transposed
            to that order and its sizes checked.
        extra : mapping, optional
            Values of the extra blocks; missing blocks are zero.

        Returns
        -------
        numpy.ndarray
            State vector (size,) [float64].
        """
        if isinstance(flux, xr.DataArray):
            units = flux.attrs.get("units")
            if units is not None and units.replace("µ", "u") != FLUX_UNITS:
                raise ValueError(
                    f"flux: expected units {FLUX_UNITS!r}, found {units!r}; convert at read time"
                )
            if "sector" not in flux.dims:
                flux = flux.expand_dims(sector=[self.sectors[0]])
            flux = flux.transpose("sector", "time", "y", "x").values
        flux = np.asarray(flux, dtype=float)
        if flux.shape != self.flux_shape:
            raise ValueError(
                f"flux: expected shape (sector, time, y, x) = {self.flux_shape}, found {flux.shape}"
            )
        out = np.zeros(self.size)
        out[self.slice("flux")] = flux.ravel()
        for name, values in (extra or {}).items():
            block = self.blocks.get(name)
            if block is None or name == "flux":
                raise KeyError(f"extra: unknown block {name!r}; blocks are {list(self.blocks)}")
            values = np.asarray(values, dtype=float).ravel()
            if values.size != block.size:
                raise ValueError(
                    f"extra[{name!r}]: expected {block.size} values, found {values.size}"
                )
            out[block.slice] = values
        return out

    def unflatten(self, x: np.ndarray, name: str = "flux") -> xr.Dataset:
        """Turn a state vector (size,) into an xarray Dataset with coordinates and units.

        The flux is a ``(sector, time, y, x)`` variable named ``name`` [µmol m-2 s-1] with 1-D
        ``y``/``x``, 2-D ``lat``/``lon``, ``time`` (bin starts) and ``time_bnds``; each extra
        block ``b`` becomes a variable ``f"{name}_{b}"`` along a dim ``b``.
        """
        x = np.asarray(x, dtype=float)
        if x.shape != (self.size,):
            raise ValueError(f"x: expected shape ({self.size},), found {x.shape}")
        flux = x[self.slice("flux")].reshape(self.flux_shape)
        coords: dict[str, Any] = {"sector": ("sector", list(self.sectors))}
        coords.update(self.time.coords())
        coords.update(self.grid.coords())
        ds = xr.Dataset(
            {
                name: (
                    ("sector", "time", "y", "x"),
                    flux,
                    {"units": FLUX_UNITS, "long_name": f"CO2 flux ({name})"},
                ),
                "time_bnds": self.time.bounds_array(),
            },
            coords=coords,
        )
        for block in list(self.blocks.values())[1:]:
            ds[f"{name}_{block.name}"] = xr.DataArray(
                x[block.slice],
                dims=(block.name,),
                coords={block.name: list(block.labels or ())},
                attrs={"units": block.units},
            )
        return ds

    def __repr__(self) -> str:
        blocks = ", ".join(f"{b.name}={b.size}" for b in self.blocks.values())
        return f"StateVector(size={self.size}: {blocks}; flux shape {self.flux_shape})"
