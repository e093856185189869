"""Plan versions in a workspace: the ``plans`` table and the ``grid_versions`` layer.

Layout (docs/design.md, "Plan versions"): a non-spatial ``plans`` table, one
row per plan, and a ``grid_versions`` layer holding every plan's grids with
their ``plan_id``. The ``grids`` layer is a copy of the base plan in force
today, so readers of ``grids`` need not know about plans. A workspace without
``plans`` holds one implicit plan, its ``grids`` layer (:data:`LEGACY_PLAN_ID`).

:func:`~gridgeo.io.plans_write.save_plan` stores a draft,
:func:`~gridgeo.io.plans_write.adopt_plan` puts it in force, and
:func:`~gridgeo.io.plans_write.refresh_grids` brings the ``grids`` layer up to the
plan in force (:mod:`gridgeo.io.plans_write`); :func:`read_plans`,
:func:`read_plan` and :func:`plan_in_force` read them back, and
:func:`plans_version` tells cheaply whether any of this changed. A GeoPackage is
read through sqlite3 (:mod:`gridgeo.io._gpkg_read`): a serving worker re-reads
plans beside its live store. Every public name of both modules is also
importable from :mod:`gridgeo.io.workspace` and :mod:`gridgeo.io`.

Examples
--------
>>> import tempfile, os, geopandas as gpd, shapely
>>> from gridgeo.io import write_workspace
>>> grids = gpd.GeoDataFrame({"code": ["360722001001001"],
...     "community_code": ["360722001001"], "households": [480], "population": [1500]},
...     geometry=[shapely.box(114.9, 25.3, 114.91, 25.31)], crs="EPSG:4490")
>>> path = os.path.join(tempfile.mkdtemp(), "w.gpkg")
>>> write_workspace({"grids": grids}, path, layers=["grids"])
>>> [q.plan_id for q in read_plans(path)]
['legacy']
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from gridgeo.errors import InputError, NotFound
from gridgeo.io import _gpkg_read

if TYPE_CHECKING:  # partition sits right of io; the plan functions import it when called
    from gridgeo.partition.plan import Plan

__all__ = [
    "LEGACY_PLAN_ID",
    "PLAN_TABLES",
    "plan_in_force",
    "plans_version",
    "read_plan",
    "read_plans",
]

log = logging.getLogger(__name__)

#: Tables of plan versions; :func:`~gridgeo.io.workspace.read_workspace` skips them unless
#: named in ``only``.
PLAN_TABLES = ("plans", "grid_versions")

#: ``plan_id`` of the implicit plan of a workspace that has a ``grids`` layer and no
#: ``plans`` table: in force since ``datetime.date.min``, still in force.
LEGACY_PLAN_ID = "legacy"

_PLAN_COLUMNS = (
    "plan_id",
    "name",
    "level",
    "valid_from",
    "valid_to",
    "base_plan",
    "retired_codes",
    "columns",
    "crs",
)


def _layers_in(p: Path) -> list[str]:
    if not p.exists():
        return []
    # a GeoPackage through sqlite3, not GDAL: a serving worker re-reads plans beside its
    # live store, and GDAL's own SQLite would drop the store's locks (see _gpkg_read)
    listed = _gpkg_read.layers(p)
    if listed is not None:
        return listed
    try:
        return [str(row[0]) for row in pyogrio.list_layers(p)]
    except Exception as err:
        raise InputError(f"cannot open '{p}' as a GeoPackage or GDAL dataset: {err}") from err


def _read(p: Path, layer: str, *, where: str | None = None) -> pd.DataFrame:
    """A table of the workspace: through sqlite3 for a GeoPackage, else GDAL."""
    if _gpkg_read.is_geopackage_name(p):
        return _gpkg_read.read_table(p, layer, where=where)
    if layer == "plans":
        return pyogrio.read_dataframe(p, layer=layer, read_geometry=False, where=where)
    return gpd.read_file(p, layer=layer, engine="pyogrio", where=where)


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _text(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _plan_rows(p: Path) -> pd.DataFrame | None:
    """The ``plans`` table, or None when the workspace has none."""
    if "plans" not in _layers_in(p):
        return None
    table = _read(p, "plans")
    missing = [c for c in _PLAN_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"workspace '{p}': table 'plans' lacks column(s) {missing}")
    return table


def _legacy_plan(p: Path) -> Plan | None:
    from gridgeo.partition.plan import Plan

    if "grids" not in _layers_in(p):
        return None
    grids = _read(p, "grids")
    return Plan(
        plan_id=LEGACY_PLAN_ID,
        grids=grids,
        name="grids layer (before plan versions)",
        valid_from=date.min,
    )


def _restore(grids: pd.DataFrame, columns: list[list[str]]) -> pd.DataFrame:
    """A plan's own columns, in its order, with the dtypes it was saved with where possible."""
    names = [c for c, _ in columns]
    out = grids[[c for c in names if c in grids.columns] + [grids.geometry.name]]
    for col, dtype in columns:
        if col not in out.columns or out[col].isna().any():
            continue
        try:
            if np.dtype(dtype).kind in "biuf":
                out[col] = out[col].astype(dtype)
        except TypeError:  # not a numpy dtype (e.g. pandas' str): keep as read
            continue
    return out


def _plans_from(p: Path, rows: pd.DataFrame, ids: list[str] | None = None) -> list[Plan]:
    from gridgeo.partition.plan import Plan

    if ids is not None:
        rows = rows[rows["plan_id"].isin(ids)]
    if not len(rows):
        return []
    quoted = ", ".join("'" + str(i).replace("'", "''") + "'" for i in rows["plan_id"])
    versions = _read(p, "grid_versions", where=f"plan_id IN ({quoted})")
    plans = []
    for row in rows.itertuples(index=False):
        mine = versions[versions["plan_id"] == row.plan_id].drop(columns="plan_id")
        members = None
        if row.level == "business":
            members = {str(c): tuple(json.loads(m)) for c, m in zip(mine["code"], mine["members"])}
        grids = _restore(mine.drop(columns="members"), json.loads(row.columns))
        crs = _text(row.crs)
        if crs is not None and grids.crs is not None and not grids.crs.equals(crs):
            grids = grids.to_crs(crs)
        plans.append(
            Plan(
                plan_id=str(row.plan_id),
                grids=grids.reset_index(drop=True),
                level=str(row.level),
                name=_text(row.name) or "",
                valid_from=_text(row.valid_from),
                valid_to=_text(row.valid_to),
                members=members,
                retired_codes=frozenset(json.loads(row.retired_codes or "[]")),
                base_plan=_text(row.base_plan),
            )
        )
    return plans


def _sort_key(plan: Plan) -> tuple[int, bool, date, str]:
    from gridgeo.partition.plan import LEVELS

    start = plan.valid_from or date.max
    return (LEVELS.index(plan.level), plan.valid_from is None, start, plan.plan_id)


def plans_version(path: str | os.PathLike[str]) -> tuple[object, ...]:
    """A cheap fingerprint of a workspace's plans: it changes when a plan is saved or adopted.

    It is the ``last_change`` stamp that GDAL writes in ``gpkg_contents`` for
    the ``plans``, ``grid_versions`` and ``grids`` tables, with each plan's
    dates (which tell an adoption even where ``OGR_CURRENT_DATE`` froze the
    stamps): two small SQLite queries, about a millisecond, so a service can
    poll it every few seconds and call :func:`read_plans` only when it
    changed. Writes to other layers (incidents, zones) do not change it. For a
    file that is not a GeoPackage, it is the file's modification time and size.

    Parameters
    ----------
    path
        The workspace GeoPackage.

    Returns
    -------
    tuple
        Compare it with an earlier one; equal means unchanged.

    Raises
    ------
    NotFound
        If the file does not exist.

    Examples
    --------
    >>> from gridgeo.io import save_plan
    >>> from gridgeo.partition import Plan
    >>> path, grids = _example(legacy=True)  # one grid; see the module example
    >>> before = plans_version(path)
    >>> before == plans_version(path)
    True
    >>> save_plan(path, Plan.from_grids(grids.assign(code="360722001001002"), plan_id="b2",
    ...                                 retired_codes=grids["code"]))
    >>> before == plans_version(path)
    False
    """
    p = _existing(path)
    with _gpkg_read.connect(p) as con:
        if con is None:  # not a GeoPackage (another file GDAL reads)
            st = p.stat()
            return ("file", st.st_mtime_ns, st.st_size)
        rows = con.execute(
            "SELECT table_name, last_change FROM gpkg_contents "
            "WHERE table_name IN ('grids', 'plans', 'grid_versions') ORDER BY table_name"
        ).fetchall()
        if any(name == "plans" for name, _ in rows):  # also if the stamps are frozen
            rows += con.execute(
                'SELECT plan_id, valid_from, valid_to FROM "plans" ORDER BY plan_id'
            ).fetchall()
    return tuple(rows)


def read_plans(path: str | os.PathLike[str]) -> list[Plan]:
    """Every plan of a workspace: base plans, then business plans, each by ``valid_from``.

    Drafts (not yet adopted) come after the adopted plans of their level. A
    workspace with a ``grids`` layer and no ``plans`` table holds one implicit
    base plan, ``plan_id`` :data:`LEGACY_PLAN_ID`, in force since
    ``datetime.date.min`` and still in force.

    Parameters
    ----------
    path
        The workspace GeoPackage.

    Returns
    -------
    list of Plan

    Raises
    ------
    NotFound
        If the file does not exist.
    InputError
        If GDAL cannot open it, or its ``plans`` table lacks a column.

    Examples
    --------
    >>> path, grids = _example(legacy=True)  # one grid; see the module example
    >>> read_plans(path)
    [Plan('legacy', level='base', 1 grids, in force 0001-01-01..)]
    """
    p = _existing(path)
    rows = _plan_rows(p)
    if rows is None:
        legacy = _legacy_plan(p)
        return [] if legacy is None else [legacy]
    return sorted(_plans_from(p, rows), key=_sort_key)


def read_plan(path: str | os.PathLike[str], plan_id: str) -> Plan:
    """One plan of a workspace, by ``plan_id`` (reads only that plan's grids).

    Raises
    ------
    NotFound
        If the file or the plan does not exist; the message lists the plans.

    Examples
    --------
    >>> path, grids = _example(legacy=True)  # one grid; see the module example
    >>> read_plan(path, "legacy").grids["households"].tolist()
    [480]
    >>> read_plan(path, "2026")
    Traceback (most recent call last):
    ...
    gridgeo.errors.NotFound: workspace ... has no plan '2026'; its plans are ['legacy']
    """
    p = _existing(path)
    rows = _plan_rows(p)
    if rows is None:
        legacy = _legacy_plan(p)
        known = [] if legacy is None else [legacy]
    else:
        known = _plans_from(p, rows, [plan_id])
        if not known:
            raise NotFound(
                f"workspace '{p}' has no plan {plan_id!r}; its plans are "
                f"{sorted(map(str, rows['plan_id']))}"
            )
    for plan in known:
        if plan.plan_id == plan_id:
            return plan
    raise NotFound(
        f"workspace '{p}' has no plan {plan_id!r}; its plans are {[q.plan_id for q in known]}"
    )


def plan_in_force(
    path: str | os.PathLike[str], on: date | str | None = None, *, level: str = "base"
) -> Plan:
    """The plan of ``level`` in force on a day (default: today).

    Parameters
    ----------
    path
        The workspace GeoPackage.
    on
        The day (a datetime or ISO string is read as its day); ``None``: today
        (the machine's local date).
    level
        ``"base"`` or ``"business"``.

    Raises
    ------
    NotFound
        If no plan of ``level`` is in force that day; the message lists the
        adopted plans and their dates.
    InputError
        For a bad ``level`` or date.

    Examples
    --------
    >>> path, grids = _example(legacy=True)  # one grid; see the module example
    >>> plan_in_force(path, "2025-06-01").plan_id
    'legacy'
    """
    from gridgeo.partition.plan import LEVELS, as_date

    if level not in LEVELS:
        raise InputError(f"level was {level!r}; expected one of {LEVELS}")
    day = as_date(on, "on") or date.today()
    plans = [q for q in read_plans(path) if q.level == level]
    for plan in plans:
        if plan.in_force(day):
            return plan
    adopted = [f"{q.plan_id} ({q.valid_from}..{q.valid_to or ''})" for q in plans if q.valid_from]
    raise NotFound(
        f"no {level} plan of workspace '{Path(path)}' is in force on {day}; adopted: "
        f"{adopted or 'none'}"
    )


def _example(*, legacy: bool) -> tuple[str, gpd.GeoDataFrame]:
    """The doctests' set-up: a path in a new temporary folder and one grid (as in the module
    example), written there as the ``grids`` layer when ``legacy``, else not written."""
    import tempfile

    import shapely

    from gridgeo.io.workspace import write_workspace

    grids = gpd.GeoDataFrame(
        {
            "code": ["360722001001001"],
            "community_code": ["360722001001"],
            "households": [480],
            "population": [1500],
        },
        geometry=[shapely.box(114.9, 25.3, 114.91, 25.31)],
        crs="EPSG:4490",
    )
    path = os.path.join(tempfile.mkdtemp(), "w.gpkg")
    if legacy:
        write_workspace({"grids": grids}, path, layers=["grids"])
    return path, grids


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise NotFound(f"workspace file '{p}' does not exist")
    return p
