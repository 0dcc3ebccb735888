"""Checks of the input files a configuration names (used by ``cityflux validate`` and ``run``).

Each problem is ``(dotted config key, message)``; the message names the file, what is wrong and
how to fix it. Nothing is read beyond what format detection needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cityflux._config_batch import DEFAULT_BOUNDS_PPM

if TYPE_CHECKING:  # pragma: no cover
    from cityflux.config import CityfluxConfig

__all__ = ["input_problems"]


def _missing(key: str, path: Path, what: str = "file") -> tuple[str, str]:
    if path.is_dir() and what == "file":
        return (key, f"{str(path)!r} is a directory, expected a file; give the file (or a glob)")
    return (key, f"{what} {str(path)!r} does not exist; fix the path")


def _observation_problems(cfg: CityfluxConfig) -> list[tuple[str, str]]:
    import observations

    formats = set(observations.available_formats())
    out: list[tuple[str, str]] = []
    for i, src in enumerate(cfg.observations):
        key = f"observations[{i}]"
        if src.format is not None and src.format not in formats:
            out.append(
                (f"{key}.format", f"unknown format {src.format!r}; available: {sorted(formats)}")
            )
            continue
        files = src.files()
        if not files:
            out.append((f"{key}.path", f"no file matches {str(src.path)!r}; fix the path or glob"))
        for path in files:
            if path.is_dir():
                out.append((f"{key}.path", f"{str(path)!r} is a folder, not a file; give a file, "
                            "a list of files or a glob such as DIR/*.nc"))  # fmt: skip
            elif not path.is_file():
                out.append(_missing(f"{key}.path", path))
            elif src.format is None:
                try:
                    observations.detect_format(path)
                except (ValueError, OSError) as err:
                    out.append((f"{key}.format", f"{err}; set format: to one of {sorted(formats)}"))
    return out


def _transport_problems(cfg: CityfluxConfig) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    tr = cfg.transport
    if tr.met is not None and tr.met.path is not None and not tr.met.path.is_file():
        out.append(_missing("transport.met.path", tr.met.path))
    for i, member in enumerate(tr.member_configs()):  # footprint ensemble: every folder
        if not member.footprint_files():
            out.append((f"transport.ensemble.footprints[{i}]",
                        f"{str(member.footprints)!r} has no footprint file (pattern "
                        f"{tr.footprint_pattern!r}) or does not exist; fix the path"))  # fmt: skip
    if tr.model != "footprints" or tr.footprints is None:
        return out
    from transport_models import footprints as fp

    formats = fp.available_formats()
    if tr.footprint_format is not None and tr.footprint_format not in formats:
        msg = f"unknown footprint format {tr.footprint_format!r}; available: {formats}"
        return [*out, ("transport.footprint_format", msg)]
    files = tr.footprint_files()
    if not files:
        what = "folder" if tr.footprints.is_dir() else "path"
        msg = (
            f"{what} {str(tr.footprints)!r} has no footprint file (pattern "
            f"{tr.footprint_pattern!r}) or does not exist; fix the path or the pattern"
        )
        return [*out, ("transport.footprints", msg)]
    if tr.footprint_format is None:
        for path in files:
            try:
                fp.detect_format(path)
            except (ValueError, OSError) as err:
                out.append(
                    (
                        "transport.footprint_format",
                        f"{err}; set footprint_format: (one of {formats})",
                    )
                )
    return out


def _prior_problems(cfg: CityfluxConfig) -> list[tuple[str, str]]:
    import priors

    out: list[tuple[str, str]] = []
    formats = priors.inventory_formats()
    for i, inv in enumerate(cfg.prior.inventories):
        key = f"prior.inventories[{i}]"
        if inv.path.is_dir() and inv.path.suffix != ".zarr":
            out.append((f"{key}.path", f"{str(inv.path)!r} is a folder, not an inventory file; "
                        "give the file's path"))  # fmt: skip
        elif not (inv.path.is_file() or inv.path.is_dir()):
            out.append(_missing(f"{key}.path", inv.path))
        if inv.format is not None and inv.format not in formats:
            out.append(
                (f"{key}.format", f"unknown inventory format {inv.format!r}; available: {formats}")
            )
    ps = cfg.prior.point_sources
    if ps is not None and not ps.path.is_file():
        out.append(_missing("prior.point_sources.path", ps.path))
    prof = cfg.prior.temporal.profile_path()
    if prof is not None and not prof.is_file():
        out.append(_missing("prior.temporal.profiles", prof))
    if cfg.synthetic is None and not cfg.prior.inventories:
        out.append(
            ("prior.inventories", "real-data runs need at least one inventory; list one or more")
        )
    return out


def _background_problems(cfg: CityfluxConfig) -> list[tuple[str, str]]:
    """A constant background outside every kind's plausible range (``qc.bounds_ppm``): a value
    in the wrong units (0.0004 for 400 ppm) or a typo would make every enhancement absurd."""
    bg = cfg.background
    if bg.method != "constant" or bg.value_ppm is None:
        return []
    qc = cfg.qc
    lo = min(qc.bounds(k)[0] for k in DEFAULT_BOUNDS_PPM)
    hi = max(qc.bounds(k)[1] for k in DEFAULT_BOUNDS_PPM)
    if lo <= bg.value_ppm <= hi:
        return []
    msg = (
        f"{bg.value_ppm:g} ppm lies outside the plausible CO2 mole fractions [{lo:g}, {hi:g}] "
        "ppm of every observation kind (qc.bounds_ppm); the background is a mole fraction in "
        "ppm (400 ppm, not 0.0004 mol mol-1)"
    )
    return [("background.value_ppm", msg)]


def input_problems(cfg: CityfluxConfig) -> list[tuple[str, str]]:
    """Every problem with the input files of ``cfg`` (empty list when all is well), and a
    constant background outside the plausible range of the observations."""
    out = _observation_problems(cfg) + _transport_problems(cfg) + _prior_problems(cfg)
    out += _background_problems(cfg)
    if cfg.regions is not None and not (cfg.regions.path.is_file() or cfg.regions.path.is_dir()):
        out.append(_missing("regions.path", cfg.regions.path))
    from cityflux._config_metrology import metrology_input_problems

    return out + metrology_input_problems(cfg.verification, cfg.design)
