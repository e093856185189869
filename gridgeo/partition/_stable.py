"""Stable codes: keep the code of an unchanged grid, issue never-used serials otherwise.

Shared by ``make_grids(..., previous=)`` and ``regroup(..., previous=)``. A new
grid keeps the code of a grid of the latest previous plan, in the same class
(community, or regroup's code prefix), when both hold the same set of units or
their geometries overlap with IoU ≥ :data:`MIN_IOU`; the matching is one to one.
Every other grid gets the next serial above the largest serial its class has
ever used (:func:`gridgeo.partition.plan.used_codes`), so no code comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray

from gridgeo.errors import InputError
from gridgeo.partition.plan import Plan, PlanLike, as_sequence, used_codes

__all__ = ["MIN_IOU", "History", "fresh_serials", "history", "keep_codes"]

#: Two grids are the same grid when their intersection over union reaches this.
MIN_IOU = 0.99


@dataclass(frozen=True)
class History:
    """What ``previous=`` brings: the latest grids, their members, and every code used."""

    grids: gpd.GeoDataFrame
    members: dict[str, frozenset[str]] | None
    used: frozenset[str]


def history(
    previous: PlanLike | Sequence[PlanLike] | None, *, level: str, where: str
) -> History | None:
    """Read ``previous`` (a plan, grids, or a sequence of them, oldest first).

    The last item is the plan the new grids are compared with; all of them
    contribute used codes.

    Raises
    ------
    InputError
        If ``previous`` is empty, holds something else than plans and grids,
        or the latest plan is of another level.
    """
    items = as_sequence(previous)
    if previous is None:
        return None
    if not items:
        raise InputError(f"{where}: previous is an empty sequence; give a plan or None")
    latest = items[-1]
    members: dict[str, frozenset[str]] | None = None
    if isinstance(latest, Plan):
        if latest.level != level:
            raise InputError(
                f"{where}: previous plan {latest.plan_id!r} is a {latest.level} plan; "
                f"give a {level} plan"
            )
        grids = latest.grids
        if latest.members is not None:
            members = {c: frozenset(ms) for c, ms in latest.members.items()}
    else:
        grids = latest
        if "members" in grids.columns:
            members = {
                str(c): frozenset(map(str, ms)) for c, ms in zip(grids["code"], grids["members"])
            }
    return History(grids=grids, members=members, used=used_codes(items))


def keep_codes(
    new_geoms: NDArray[np.object_],
    new_class: NDArray[np.object_],
    prev_geoms: NDArray[np.object_],
    prev_codes: NDArray[np.object_],
    prev_class: NDArray[np.object_],
    *,
    new_units: Sequence[frozenset[str]] | None = None,
    prev_units: Sequence[frozenset[str] | None] | None = None,
) -> NDArray[np.object_]:
    """The previous code each new grid keeps, or None (one to one, within a class).

    Geometries must share a metric CRS. A pair holding the same non-empty set of
    units matches first; then pairs by decreasing IoU ≥ :data:`MIN_IOU`.

    Examples
    --------
    >>> a = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], dtype=object)
    >>> b = np.array([shapely.box(1, 0, 2, 1.001), shapely.box(0, 0, 1, 0.5)], dtype=object)
    >>> keep_codes(a, np.array(["c", "c"]), b, np.array(["x", "y"]), np.array(["c", "c"]))
    array([None, 'x'], dtype=object)
    """
    out = np.full(len(new_geoms), None, dtype=object)
    if not len(new_geoms) or not len(prev_geoms):
        return out
    pairs: list[tuple[float, int, int]] = []
    if new_units is not None and prev_units is not None:
        where: dict[frozenset[str], list[int]] = {}
        for j, units in enumerate(prev_units):
            if units:
                where.setdefault(units, []).append(j)
        for i, units in enumerate(new_units):
            for j in where.get(units, []) if units else []:
                if new_class[i] == prev_class[j]:
                    pairs.append((2.0, i, j))
    tree = shapely.STRtree(prev_geoms)
    ni, pj = tree.query(new_geoms, predicate="intersects")
    same = new_class[ni] == prev_class[pj]
    ni, pj = ni[same], pj[same]
    if len(ni):
        inter = shapely.area(shapely.intersection(new_geoms[ni], prev_geoms[pj]))
        union = shapely.area(new_geoms[ni]) + shapely.area(prev_geoms[pj]) - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        ok = iou >= MIN_IOU
        pairs.extend(zip(iou[ok].tolist(), ni[ok].tolist(), pj[ok].tolist()))
    taken_new: set[int] = set()
    taken_prev: set[int] = set()
    for _, i, j in sorted(pairs, key=lambda t: (-t[0], t[1], t[2])):
        if i in taken_new or j in taken_prev:
            continue
        out[i] = str(prev_codes[j])
        taken_new.add(i)
        taken_prev.add(j)
    return out


def fresh_serials(
    prefix: str, used: frozenset[str] | set[str], n: int, *, digits: int | None = None
) -> list[int]:
    """``n`` serials above every serial used with ``prefix`` (``prefix`` + ``digits`` digits).

    Examples
    --------
    >>> fresh_serials("360722001001", {"360722001001003", "360722001002009"}, 2)
    [4, 5]
    """
    top = 0
    for code in used:
        if code.startswith(prefix):
            rest = code[len(prefix) :]
            if rest.isdigit() and (digits is None or len(rest) == digits):
                top = max(top, int(rest))
    return list(range(top + 1, top + 1 + n))
