"""Writing plan versions into a workspace: save a draft, adopt it, refresh ``grids``.

The layout and the readers are in :mod:`gridgeo.io.plans`. Every write goes
through GDAL under :func:`~gridgeo.io.store.gpkg.exclusive_writer`, the lock the
workspace's live incident store takes, so that a plan adopted while the service
takes reports waits for the report being written instead of failing on SQLite's
lock.

Examples
--------
>>> from gridgeo.io.plans import _example
>>> from gridgeo.partition import Plan
>>> path, grids = _example(legacy=False)
>>> save_plan(path, Plan.from_grids(grids, plan_id="base-2027"))
>>> adopt_plan(path, "base-2027", valid_from="2027-01-01", today="2026-06-01").valid_from
datetime.date(2027, 1, 1)
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
from gridgeo.io.plans import (
    _PLAN_COLUMNS,
    _example,  # noqa: F401  (the doctests' set-up)
    _existing,
    _iso,
    _plan_rows,
    read_plans,
)
from gridgeo.io.store.gpkg import exclusive_writer

if TYPE_CHECKING:  # partition sits right of io; the plan functions import it when called
    from gridgeo.partition.plan import Plan

__all__ = ["adopt_plan", "refresh_grids", "save_plan"]

log = logging.getLogger(__name__)


def save_plan(path: str | os.PathLike[str], plan: Plan, *, overwrite: bool = False) -> None:
    """Store a plan in a workspace (``plans`` table, ``grid_versions`` layer).

    Usually the plan is a draft, made in force later by :func:`adopt_plan`. A
    plan with dates may be saved when no other plan of its level overlaps
    them. The first plan saved into a workspace that has a ``grids`` layer and
    no ``plans`` table stores that layer first as the implicit plan
    :data:`LEGACY_PLAN_ID`, so that its history is kept. The ``grids`` layer is
    not changed (see :func:`adopt_plan`). The file is created if missing.

    Parameters
    ----------
    path
        The workspace GeoPackage.
    plan
        The plan. Base plans must make a valid ``grids`` layer
        (:data:`~gridgeo.io.workspace.SCHEMA`: 15-digit codes, ``community_code``, ``households``,
        ``population``).
    overwrite
        Replace a stored plan of the same ``plan_id``.

    Raises
    ------
    InputError
        If the ``plan_id`` exists (and not ``overwrite``), if the plan's dates
        overlap another plan of its level, or if it holds a code that a stored
        plan of its level retired (codes are never reused: build it with
        ``previous=``).
    ValidationError
        If a base plan's grids are not a valid ``grids`` layer.

    Examples
    --------
    >>> from gridgeo.partition import Plan
    >>> path, grids = _example(legacy=False)  # no file yet; see the module example
    >>> save_plan(path, Plan.from_grids(grids, plan_id="base-2025", name="2025 grids"))
    >>> [(q.plan_id, q.is_draft) for q in read_plans(path)]
    [('base-2025', True)]
    """
    from gridgeo.partition.plan import Plan

    if not isinstance(plan, Plan):
        raise InputError(f"plan must be a gridgeo.partition.Plan, not {type(plan).__name__}")
    if plan.level == "base":
        from gridgeo.io.workspace import validate_workspace  # imports this module

        validate_workspace(
            {"grids": plan.grids}, layers=["grids"], what=f"plan {plan.plan_id!r} as a grids layer"
        )
    p = Path(path)
    stored = read_plans(p) if p.exists() else []
    if any(q.plan_id == plan.plan_id for q in stored) and not overwrite:
        raise InputError(
            f"workspace '{p}' already has plan {plan.plan_id!r}; pass overwrite=True "
            "to replace it, or choose another plan_id"
        )
    others = [q for q in stored if q.plan_id != plan.plan_id]
    same = [q for q in others if q.level == plan.level]
    _check_overlap(plan, same)
    retired = {c: q.plan_id for q in same for c in q.retired_codes}
    again = sorted(set(plan.codes) & set(retired))
    if again:
        raise InputError(
            f"plan {plan.plan_id!r} holds codes {again[:5]} that plan {retired[again[0]]!r} "
            "retired; codes are never reused: build the plan with previous=<the plans before>"
        )
    # the first plan saved keeps the legacy grids layer (read as a plan) as a plan of its own
    _write_plans(p, [*others, plan])
    log.info("saved plan %r (%s, %d grids) in %s", plan.plan_id, plan.level, len(plan.grids), p)


def _check_overlap(plan: Plan, same_level: list[Plan]) -> None:
    if plan.valid_from is None:
        return
    end = plan.valid_to or date.max
    for q in same_level:
        if q.valid_from is None:
            continue
        if q.valid_from < end and plan.valid_from < (q.valid_to or date.max):
            raise InputError(
                f"plan {plan.plan_id!r} ({plan.valid_from}..{plan.valid_to or ''}) overlaps "
                f"{q.level} plan {q.plan_id!r} ({q.valid_from}..{q.valid_to or ''}); save it "
                "as a draft (valid_from=None) and adopt it with adopt_plan"
            )


def _write_plans(p: Path, plans: list[Plan]) -> None:
    """Rewrite ``grid_versions`` then ``plans`` (a reader ignores grids of unlisted plans)."""
    frames = []
    crs = None
    for plan in plans:
        g = plan.grids
        crs = crs or g.crs
        g = g.to_crs(crs) if not g.crs.equals(crs) else g
        g = g.assign(plan_id=plan.plan_id)
        for col in g.columns:  # 0/1 survive the union with other plans' columns (NULL there)
            if col != g.geometry.name and pd.api.types.is_bool_dtype(g[col]):
                g[col] = g[col].astype(np.int8)
        g["members"] = (
            None
            if plan.members is None
            else [json.dumps(list(plan.members[c]), ensure_ascii=False) for c in g["code"]]
        )
        frames.append(g)
    versions = pd.concat(frames, ignore_index=True)
    front = ["plan_id", "code", "members"]
    versions = gpd.GeoDataFrame(
        versions[front + [c for c in versions.columns if c not in front]],
        geometry=versions.geometry.name,
        crs=crs,
    )
    p.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        [
            {
                "plan_id": q.plan_id,
                "name": q.name,
                "level": q.level,
                "valid_from": _iso(q.valid_from),
                "valid_to": _iso(q.valid_to),
                "base_plan": q.base_plan,
                "retired_codes": json.dumps(sorted(q.retired_codes), ensure_ascii=False),
                "columns": json.dumps(_dtypes(q.grids)),
                "crs": q.grids.crs.to_string(),
            }
            for q in plans
        ],
        columns=list(_PLAN_COLUMNS),
    ).astype(object)
    with exclusive_writer(p):  # a live store may be writing reports into the workspace
        versions.to_file(p, layer="grid_versions", driver="GPKG", engine="pyogrio")
        pyogrio.write_dataframe(table, p, layer="plans", driver="GPKG")


def _dtypes(grids: gpd.GeoDataFrame) -> list[list[str]]:
    return [[c, str(grids[c].dtype)] for c in grids.columns if c != grids.geometry.name]


def adopt_plan(
    path: str | os.PathLike[str],
    plan_id: str,
    *,
    valid_from: date | str,
    today: date | str | None = None,
) -> Plan:
    """Make a stored draft the plan in force from ``valid_from``, closing the one before.

    The adopted plan of the same level that was in force at ``valid_from``
    ends then (its ``valid_to`` becomes ``valid_from``). When the plan is a
    base plan in force ``today``, the ``grids`` layer is rewritten to it, so
    that every reader of ``grids`` sees the grids in force; a plan adopted
    from a later day reaches ``grids`` through :func:`refresh_grids` on or
    after that day. Business plans never change ``grids``.

    Parameters
    ----------
    path
        The workspace GeoPackage.
    plan_id
        A stored draft (see :func:`save_plan`).
    valid_from
        First day in force.
    today
        The day that decides whether ``grids`` is rewritten (default: the
        machine's local date).

    Returns
    -------
    Plan
        The adopted plan, with its ``valid_from``.

    Raises
    ------
    NotFound
        If the workspace or the plan does not exist.
    InputError
        If the plan is already adopted, or an adopted plan of its level starts
        on or after ``valid_from`` (plans are adopted in date order).

    Examples
    --------
    >>> from gridgeo.partition import Plan
    >>> path, grids = _example(legacy=True)  # one grid; see the module example
    >>> new = grids.assign(code="360722001001002", households=490)
    >>> save_plan(path, Plan.from_grids(new, plan_id="base-2026", retired_codes=grids["code"]))
    >>> adopt_plan(path, "base-2026", valid_from="2026-01-01", today="2026-03-01")
    Plan('base-2026', level='base', 1 grids, in force 2026-01-01..)
    >>> [(q.plan_id, str(q.valid_to)) for q in read_plans(path)]
    [('legacy', '2026-01-01'), ('base-2026', 'None')]
    >>> from gridgeo.io import read_workspace
    >>> read_workspace(path, layers=["grids"])["grids"]["code"].tolist()
    ['360722001001002']
    """
    from gridgeo.partition.plan import as_date

    start = as_date(valid_from, "valid_from")
    if start is None:
        raise InputError("valid_from was None; give the first day the plan is in force")
    day = as_date(today, "today") or date.today()
    p = _existing(path)
    plans = read_plans(p)
    target = next((q for q in plans if q.plan_id == plan_id), None)
    if target is None:
        raise NotFound(
            f"workspace '{p}' has no plan {plan_id!r}; its plans are {[q.plan_id for q in plans]}"
        )
    if not target.is_draft:
        raise InputError(
            f"plan {plan_id!r} is already adopted (in force {target.valid_from}.."
            f"{target.valid_to or ''}); save a new plan to change the grids"
        )
    same = [q for q in plans if q.level == target.level and not q.is_draft]
    later = [q for q in same if q.valid_from >= start]
    if later:
        raise InputError(
            f"{target.level} plan {later[0].plan_id!r} is in force from {later[0].valid_from}, "
            f"not before {start}; adopt plans in date order (valid_from after "
            f"{max(q.valid_from for q in same)})"
        )
    adopted = target.replace(valid_from=start)
    out = []
    for q in plans:
        if q.plan_id == plan_id:
            q = adopted
        elif q in same and (q.valid_to is None or q.valid_to > start):
            q = q.replace(valid_to=start)
            log.info("plan %r ends on %s", q.plan_id, start)
        out.append(q)
    writes_grids = adopted.level == "base" and adopted.in_force(day)
    if writes_grids:
        from gridgeo.io.workspace import validate_workspace  # imports this module

        validate_workspace(
            {"grids": adopted.grids}, layers=["grids"], what=f"plan {plan_id!r} as a grids layer"
        )
    _write_plans(p, out)
    if writes_grids:
        _write_grids(p, adopted)
    log.info("adopted plan %r from %s", plan_id, start)
    return adopted


def refresh_grids(path: str | os.PathLike[str], *, today: date | str | None = None) -> Plan | None:
    """Rewrite the ``grids`` layer to the base plan in force ``today`` (default: today).

    :func:`adopt_plan` does this when the plan is in force on adoption; call
    this on or after the ``valid_from`` of a plan adopted ahead of time (the
    service may call it at start-up).

    Returns
    -------
    Plan or None
        The plan written, or None when no base plan is in force (``grids`` is
        left as it is) or the workspace has only the implicit legacy plan.

    Examples
    --------
    >>> from gridgeo.partition import Plan
    >>> path, grids = _example(legacy=False)  # no file yet; see the module example
    >>> save_plan(path, Plan.from_grids(grids, plan_id="base-2027"))
    >>> _ = adopt_plan(path, "base-2027", valid_from="2027-01-01", today="2026-06-01")
    >>> "grids" in pyogrio.list_layers(path)[:, 0]  # adopted ahead: not in grids yet
    False
    >>> refresh_grids(path, today="2027-01-01").plan_id
    'base-2027'
    >>> from gridgeo.io import read_workspace
    >>> read_workspace(path, only=["grids"])["grids"]["households"].tolist()
    [480]
    """
    from gridgeo.partition.plan import as_date

    day = as_date(today, "today") or date.today()
    p = _existing(path)
    if _plan_rows(p) is None:
        return None
    plan = next((q for q in read_plans(p) if q.level == "base" and q.in_force(day)), None)
    if plan is not None:
        _write_grids(p, plan)
    return plan


def _write_grids(p: Path, plan: Plan) -> None:
    with exclusive_writer(p):
        plan.grids.to_file(p, layer="grids", driver="GPKG", engine="pyogrio")
    log.info("layer 'grids' of %s is now plan %r", p, plan.plan_id)
