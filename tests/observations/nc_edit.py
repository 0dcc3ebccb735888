"""Copy a NetCDF file with netCDF4, dropping or editing variables and attributes (test helper).

Used to derive the variants of real files that no sample is at hand for (an ObsPack without a
QC flag, a time variable without comment, ...): everything not edited is copied unchanged,
including fill values, groups and attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import netCDF4


def _copy_group(a: Any, b: Any, drop: set[str], attrs: dict[str, dict[str, Any]]) -> None:
    b.setncatts({k: a.getncattr(k) for k in a.ncattrs()})
    for name, value in attrs.get("/", {}).items():
        if value is None:
            b.delncattr(name) if name in b.ncattrs() else None
        else:
            b.setncattr(name, value)
    for d in a.dimensions.values():
        b.createDimension(d.name, None if d.isunlimited() else len(d))
    for v in a.variables.values():
        if v.name in drop:
            continue
        fill = v.getncattr("_FillValue") if "_FillValue" in v.ncattrs() else None
        nv = b.createVariable(v.name, v.datatype, v.dimensions, fill_value=fill)
        va = {k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"}
        for k, val in attrs.get(v.name, {}).items():
            if val is None:
                va.pop(k, None)
            else:
                va[k] = val
        nv.setncatts(va)
        v.set_auto_maskandscale(False)
        nv.set_auto_maskandscale(False)
        nv[...] = v[...]
    for g in a.groups.values():
        _copy_group(g, b.createGroup(g.name), drop, {})


def rewrite(
    src: Path,
    dst: Path,
    *,
    drop: Iterable[str] = (),
    attrs: dict[str, dict[str, Any]] | None = None,
    edit: Callable[[netCDF4.Dataset], None] | None = None,
) -> Path:
    """Copy ``src`` to ``dst`` without the variables in ``drop``.

    ``attrs`` maps a variable name (``"/"`` for global) to attributes to set (None deletes);
    ``edit(nc)`` then runs on the new file (open for writing) to change values.
    """
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w", format=a.data_model) as b:
        _copy_group(a, b, set(drop), dict(attrs or {}))
    if edit is not None:
        with netCDF4.Dataset(dst, "a") as nc:
            edit(nc)
    return dst
