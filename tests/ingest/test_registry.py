"""The shared registry: probes, detection messages, option checks."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest

from ingest import (
    FileProbe,
    FormatDetectionError,
    ReaderError,
    ReaderOptionError,
    Registry,
    UnknownFormatError,
)


def _reader(path, *, alpha=1, beta="x"):
    return (path.name, alpha, beta)


@pytest.fixture
def reg():
    r = Registry("widget")
    r.register("wid", _reader, sniff=lambda p: p.is_netcdf and p.has("w"), description="widgets")
    r.register("txt", _reader, sniff=lambda p: p.text_lines(1) == ["WIDGET"], priority=10)
    return r


def test_detect_read_and_options(reg, tmp_path):
    p = tmp_path / "a.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("n", 2)
        nc.createVariable("w", "f4", ("n",))[:] = 1
    assert reg.detect(p) == "wid"
    assert reg.read(p, alpha=3) == ("wid", ("a.nc", 3, "x"))
    with pytest.raises(
        ReaderOptionError,
        match=r"'wid' does not accept option\(s\) \['gamma'\]; accepted options: \['alpha', 'beta'\]",
    ):
        reg.read(p, gamma=2)
    with pytest.raises(UnknownFormatError, match="unknown widget format 'nope'"):
        reg.read(p, format="nope")
    t = tmp_path / "b.txt"
    t.write_text("WIDGET\n")
    assert reg.detect(t) == "txt"
    assert list(reg.formats()) == ["wid", "txt"]


def test_detection_messages(reg, tmp_path):
    other = tmp_path / "other.nc"
    with netCDF4.Dataset(other, "w") as nc:
        nc.createDimension("n", 2)
        nc.createVariable("zz", "f4", ("n",))[:] = 1
    with pytest.raises(FormatDetectionError) as err:
        reg.detect(other)
    msg = str(err.value)
    assert "other.nc" in msg and "variables [zz]" in msg and "corrupt" not in msg
    assert "wid (widgets)" in msg
    trunc = tmp_path / "trunc.nc"
    trunc.write_bytes(other.read_bytes()[:200])
    with pytest.raises(FormatDetectionError, match=r"cannot be opened.*corrupt or truncated"):
        reg.detect(trunc)
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(FormatDetectionError, match="an empty file"):
        reg.detect(empty)
    with pytest.raises(ReaderError, match="is a directory"):
        reg.detect(tmp_path)
    with pytest.raises(FileNotFoundError, match="widget file not found"):
        reg.detect(tmp_path / "none.nc")


def test_probe_reads_groups_once(tmp_path):
    p = tmp_path / "g.nc4"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("n", 2)
        nc.createGroup("Sounding").createVariable("operation_mode", "i1", ("n",))[:] = 4
        nc.Platform = "OCO-3"
    probe = FileProbe(p)
    assert probe.container == "hdf5" and probe.has("Sounding/operation_mode")
    assert probe.attrs["Platform"] == "OCO-3" and probe.dims == {"n": 2}


def _typed(path, *, hours: tuple[float, float] | None = None, n: int = 1, tag: str = "a"):
    return (hours, n, tag)


def test_option_values_checked_against_annotations(tmp_path):
    """A reader option of the wrong type or shape is refused before the file is read, naming
    the option, what was expected and what was found; fitting values reach the reader as
    given (a YAML list fits a tuple)."""
    r = Registry("widget")
    r.register("typed", _typed)
    p = tmp_path / "a.txt"
    p.write_text("x\n")
    assert r.read(p, "typed", hours=[10, 18], n=np.int64(3)) == ("typed", ([10, 18], 3, "a"))
    for key, value, found in (
        ("hours", "noon", "'noon'"),
        ("hours", [1, 2, 3], r"\[1, 2, 3\]"),
        ("n", 1.5, "1.5"),
        ("tag", 4, "4"),
    ):
        with pytest.raises(
            ReaderOptionError, match=rf"option '{key}' = {found} has the wrong type.*expected"
        ):
            r.read(p, "typed", **{key: value})
    assert isinstance(ReaderOptionError("x"), TypeError)
