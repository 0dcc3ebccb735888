"""Quality-control bookkeeping: every dropped record is counted with its reason."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

from ._exceptions import EmptyAfterQCError

__all__ = ["QCReport", "SourceQC", "qc_report"]

logger = logging.getLogger(__name__)


@dataclass
class SourceQC:
    """QC counts of one source (file).

    Attributes
    ----------
    source : str
        File name (or description) of the source.
    read : int
        Records read from the file.
    dropped : dict of str to int
        Records dropped, by reason.
    averaged : int
        Records that went into averages (hourly means, super-observations).
    kept : int
        Observations in the output (after averaging).
    assumptions : dict of str to str
        What the reader needed but the file does not carry as a variable (QC flag,
        uncertainty, time-stamp position, calibration scale), and where it took it from: the
        file's own metadata (named) or an explicit reader option.
    """

    source: str
    read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    averaged: int = 0
    kept: int = 0
    assumptions: dict[str, str] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        """Total number of dropped records."""
        return int(sum(self.dropped.values()))

    def summary(self) -> str:
        """One-line human-readable summary."""
        reasons = ", ".join(f"{k}: {v}" for k, v in self.dropped.items() if v) or "none"
        text = (
            f"{self.source}: read {self.read}, dropped {self.n_dropped} ({reasons}), "
            f"averaged {self.averaged}, kept {self.kept}"
        )
        if self.assumptions:
            text += "; " + "; ".join(f"{k}: {v}" for k, v in self.assumptions.items())
        return text


@dataclass
class QCReport:
    """QC report of an ObservationSet, one :class:`SourceQC` per source."""

    sources: list[SourceQC] = field(default_factory=list)

    def to_json(self) -> str:
        """Serialise to a JSON string (stored in ``ds.attrs["qc_report"]``)."""
        return json.dumps([asdict(s) for s in self.sources])

    @classmethod
    def from_json(cls, text: str) -> QCReport:
        """Parse the JSON string written by :meth:`to_json`."""
        return cls([SourceQC(**item) for item in json.loads(text)])

    @property
    def kept(self) -> int:
        """Observations kept over all sources."""
        return sum(s.kept for s in self.sources)

    @property
    def n_dropped(self) -> int:
        """Records dropped over all sources."""
        return sum(s.n_dropped for s in self.sources)

    def summary(self) -> str:
        """Multi-line human-readable summary."""
        return "\n".join(s.summary() for s in self.sources)


def qc_report(ds: xr.Dataset) -> QCReport:
    """Return the :class:`QCReport` attached to an ObservationSet.

    Parameters
    ----------
    ds : xarray.Dataset
        ObservationSet returned by a reader, :func:`combine` or a background function.

    Raises
    ------
    KeyError
        If ``ds.attrs`` has no ``"qc_report"`` (the set was not made by a reader).
    """
    if "qc_report" not in ds.attrs:
        raise KeyError("dataset has no attrs['qc_report']; it was not produced by a reader")
    return QCReport.from_json(ds.attrs["qc_report"])


def attach_report(ds: xr.Dataset, report: QCReport) -> xr.Dataset:
    """Store ``report`` in ``ds.attrs["qc_report"]`` and log it."""
    ds.attrs["qc_report"] = report.to_json()
    for src in report.sources:
        logger.info("QC %s", src.summary())
    return ds


class QCTracker:
    """Running keep-mask over the records of one source.

    ``drop(bad, reason)`` removes the records where ``bad`` is true among those still kept and
    counts them under ``reason``; nothing is dropped without a count.
    """

    def __init__(self, source: str, n_read: int) -> None:
        self.report = SourceQC(source=source, read=int(n_read))
        self.keep = np.ones(int(n_read), dtype=bool)

    def drop(self, bad: np.ndarray | bool, reason: str) -> int:
        """Drop the kept records flagged by ``bad``; return how many were dropped."""
        bad = np.broadcast_to(np.asarray(bad, dtype=bool), self.keep.shape)
        newly = bad & self.keep
        count = int(np.count_nonzero(newly))
        if count:
            self.report.dropped[reason] = self.report.dropped.get(reason, 0) + count
            self.keep &= ~newly
        return count

    def assume(self, key: str, text: str) -> None:
        """Record where the reader took ``key`` (QC flag, uncertainty, ...) from."""
        self.report.assumptions[key] = text
        logger.info("%s: %s: %s", self.report.source, key, text)

    @property
    def n_kept(self) -> int:
        """Records still kept."""
        return int(np.count_nonzero(self.keep))

    def require_nonempty(self) -> None:
        """Raise :class:`EmptyAfterQCError` when no record is left."""
        if self.n_kept == 0:
            reasons = ", ".join(f"{v} {k}" for k, v in self.report.dropped.items()) or "none"
            raise EmptyAfterQCError(
                f"{self.report.source}: no observation left after quality control: "
                f"{self.report.read} read, {self.report.n_dropped} dropped ({reasons}). "
                "Relax the selection (period, domain, hours, intake height, quality flag) or "
                "check the file."
            )
