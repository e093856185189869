"""Crosswalks between two grid plans: which old grid became which new grid, and what moved.

A crosswalk has one row per intersection of an old grid and a new grid, as the
US Census relationship files do, with the shared area measured in a metric CRS.
Because gridgeo holds the buildings and the incident points, it goes beyond
areal weights (NHGIS): households, population and incidents are *moved*
exactly, by locating every building (its representative point) and every
incident in the old plan and in the new one with the
:class:`~gridgeo.assign.Locator`. Each old grid is labelled with what became
of it, in the manner of the Eurostat NUTS correspondence tables
(:data:`CHANGES`).

:func:`plan_diff` compares two business plans over the same base grids (grid →
group assignments, no geometry): it is the same crosswalk with base grids as the
units moved, plus a one-to-one matching of new groups to old ones.

Examples
--------
>>> import geopandas as gpd, shapely
>>> old = gpd.GeoDataFrame({"code": ["A", "B"]}, crs="EPSG:4549",
...     geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
>>> new = gpd.GeoDataFrame({"code": ["A", "C", "D"]}, crs="EPSG:4549", geometry=[
...     shapely.box(0, 0, 100, 100), shapely.box(100, 0, 150, 100), shapely.box(150, 0, 200, 100)])
>>> cw = crosswalk(old, new)
>>> for row in cw[["old_code", "new_code", "area_m2", "area_share_old", "change"]].values:
...     print(*row)
A A 10000.0 1.0 unchanged
B C 5000.0 0.5 split
B D 5000.0 0.5 split
"""

from __future__ import annotations

import logging
import numbers
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray

from gridgeo.crs import metric_crs
from gridgeo.errors import CRSError, InputError, ValidationError

__all__ = [
    "CHANGES",
    "MIN_SHARE",
    "SAME_IOU",
    "crosswalk",
    "grid_changes",
    "grid_predecessors",
    "group_crosswalk",
    "plan_diff",
    "plan_grids",
]

log = logging.getLogger(__name__)

CHANGES = ("unchanged", "recoded", "split", "merged", "redrawn", "retired")
"""The labels of an old grid, in the order of :func:`crosswalk`'s docstring."""

SAME_IOU = 0.99
"""An old grid and its only partner are the same grid when their area IoU is at least this.

It is the threshold at which ``make_grids(previous=…)`` keeps a grid's code (issue 15).
"""

MIN_SHARE = 0.01
"""Default share below which a pair of grids is a sliver, not a relationship (see ``min_share``)."""

_AREA_EPS = 1e-9  # relative: area sums within this of a grid's area are rounding noise
_SEGMENT_DEG = 0.001  # densify lon/lat edges to this before measuring areas in metres
_POINT_KINDS = {"Point"}
_UNIT_KINDS = {"Point", "Polygon", "MultiPolygon"}
_GRID_KINDS = {"Polygon", "MultiPolygon"}
_TYPE_NAMES = dict(enumerate(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint",
                              "MultiLineString", "MultiPolygon", "GeometryCollection"]))


# ---- inputs ------------------------------------------------------------------------------


def plan_grids(plan: Any, *, what: str = "plan") -> tuple[gpd.GeoDataFrame, str]:
    """The grids of a plan, and how to name the plan.

    Parameters
    ----------
    plan
        A grid GeoDataFrame, or anything with a ``.grids`` GeoDataFrame attribute
        (a :class:`gridgeo.partition.plan.Plan`), duck-typed.
    what
        How to call ``plan`` in an error message.

    Returns
    -------
    tuple
        The grids, and a label: the plan's ``plan_id`` (or its ``name``), else
        ``"grids layer"`` for a bare GeoDataFrame (or ``attrs["plan_id"]`` when set).

    Raises
    ------
    InputError
        If ``plan`` is neither.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"code": ["A"]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4549")
    >>> plan_grids(g)[1]
    'grids layer'
    >>> class P:
    ...     plan_id, name, grids = "2025-business", "17 business grids", g
    >>> plan_grids(P())[1]
    '2025-business'
    """
    if isinstance(plan, gpd.GeoDataFrame):
        label = plan.attrs.get("plan_id") or plan.attrs.get("name") or "grids layer"
        return plan, str(label)
    grids = getattr(plan, "grids", None)
    if not isinstance(grids, gpd.GeoDataFrame):
        raise InputError(
            f"{what} must be a grid GeoDataFrame or a plan with a .grids GeoDataFrame, "
            f"not {type(plan).__name__}"
        )
    label = getattr(plan, "plan_id", None) or getattr(plan, "name", None) or "grids layer"
    return grids, str(label)


def _grid_problems(grids: gpd.GeoDataFrame, what: str, key: str) -> list[str]:
    if key not in grids.columns:
        cols = [c for c in grids.columns if c != grids.geometry.name]
        return [f"{what}: key column {key!r} is missing; columns are {cols} (pass key=)"]
    problems = []
    if len(grids) == 0:
        problems.append(f"{what}: no grids")
    codes = grids[key]
    if codes.isna().any():
        rows = list(grids.index[codes.isna().to_numpy()][:5])
        problems.append(f"{what}: {key!r} is missing at rows {rows}")
    text = codes.dropna().astype(str)
    dup = text[text.duplicated(keep=False)]
    if len(dup):
        problems.append(f"{what}: duplicate codes in {key!r}: {sorted(set(dup))[:5]}")
    geom = grids.geometry
    empty = (geom.isna() | geom.is_empty).to_numpy()
    if empty.any():
        problems.append(
            f"{what}: grids {list(map(str, codes[empty]))[:5]} have no geometry"
        )
    kinds = set(geom[~empty].geom_type)
    if not kinds <= _GRID_KINDS:
        problems.append(f"{what}: grids must be polygons; found {sorted(kinds)}")
    else:
        bad = ~empty & ~geom.is_valid.to_numpy()
        if bad.any():
            problems.append(
                f"{what}: invalid geometry for grids {list(map(str, codes[bad]))[:5]}; "
                "repair them (shapely.make_valid)"
            )
    return problems


def _points_problems(
    frame: Any, what: str, kinds: set[str], columns: tuple[str, ...]
) -> list[str]:
    if not isinstance(frame, (gpd.GeoDataFrame, gpd.GeoSeries)):
        return [f"{what} must be a GeoDataFrame or GeoSeries, not {type(frame).__name__}"]
    problems = []
    if frame.crs is None:
        problems.append(f"{what} have no CRS; set one (e.g. .set_crs('EPSG:4490'))")
    # on the numpy array: geopandas' geom_type is an arrow string array, ~3 s per 1M rows
    arr = (frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame).to_numpy()
    empty = shapely.is_missing(arr) | shapely.is_empty(arr)
    if empty.any():
        problems.append(f"{what}: no geometry at rows {list(frame.index[empty][:5])}")
    found = {_TYPE_NAMES[int(t)] for t in np.unique(shapely.get_type_id(arr[~empty]))}
    if not found <= kinds:
        problems.append(f"{what} must be {' or '.join(sorted(kinds))}; found {sorted(found)}")
    for col in columns:
        if not isinstance(frame, gpd.GeoDataFrame) or col not in frame.columns:
            have = list(frame.columns) if isinstance(frame, gpd.GeoDataFrame) else []
            problems.append(f"{what}: column {col!r} is missing; columns are {have}")
            continue
        values = frame[col]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            problems.append(f"{what}: column {col!r} has dtype {values.dtype}; it must be numeric")
            continue
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            problems.append(
                f"{what}: column {col!r} has {int(bad.sum())} missing, infinite or negative "
                f"values (rows {list(frame.index[bad][:5])})"
            )
    return problems


def _validate(
    old: gpd.GeoDataFrame,
    new: gpd.GeoDataFrame,
    units: Any,
    incidents: Any,
    key: str,
    min_share: Any,
) -> None:
    for what, grids in (("old", old), ("new", new)):
        if grids.crs is None:
            raise CRSError(f"the {what} grids have no CRS; set one, e.g. .set_crs('EPSG:4490')")
    problems = _grid_problems(old, "old grids", key) + _grid_problems(new, "new grids", key)
    if units is not None:
        problems += _points_problems(units, "units", _UNIT_KINDS, ("households", "population"))
    if incidents is not None:
        problems += _points_problems(incidents, "incidents", _POINT_KINDS, ())
    if (
        isinstance(min_share, bool)
        or not isinstance(min_share, numbers.Real)
        or not 0 <= min_share < 1
    ):
        problems.append(f"min_share was {min_share!r}; give a share from 0 to below 1")
    if problems:
        raise ValidationError(problems, what="crosswalk input")


def _metric(grids: gpd.GeoDataFrame) -> pyproj.CRS:
    """The grids' own CRS when projected, else the metric CRS chosen for them."""
    crs = pyproj.CRS(grids.crs)
    return crs if crs.is_projected else metric_crs(grids)


# ---- pairs -------------------------------------------------------------------------------


def _polygon_pairs(
    og: NDArray[np.object_], ng: NDArray[np.object_]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.object_]]:
    """Every (old, new) pair of grids sharing a positive area, and their intersection.

    Only the pairs that need it are intersected: neighbours that merely touch are
    dropped, and a grid inside the other (an unchanged grid, a piece of a split
    grid) is its own intersection. Pieces thinner than 1e-9 of both grids' areas
    are rounding noise (e.g. where a re-cut grid's edge gained a vertex), not pairs.
    """
    tree = shapely.STRtree(ng)
    oi, ni = tree.query(og, predicate="intersects")
    shapely.prepare(og)
    shapely.prepare(ng)
    a, b = og[oi], ng[ni]
    keep = ~shapely.touches(a, b)
    oi, ni, a, b = oi[keep], ni[keep], a[keep], b[keep]
    pieces = np.empty(len(oi), dtype=object)
    new_in_old = shapely.covers(a, b)
    pieces[new_in_old] = b[new_in_old]
    old_in_new = ~new_in_old & shapely.covers(b, a)
    pieces[old_in_new] = a[old_in_new]
    rest = ~new_in_old & ~old_in_new
    pieces[rest] = shapely.intersection(a[rest], b[rest])
    area = shapely.area(pieces)
    keep = area > _AREA_EPS * np.minimum(shapely.area(a), shapely.area(b))
    return oi[keep].astype(np.int64), ni[keep].astype(np.int64), pieces[keep]


def _outside(
    geoms: NDArray[np.object_],
    others: NDArray[np.object_],
    mine: NDArray[np.int64],
    theirs: NDArray[np.int64],
    pieces: NDArray[np.object_],
) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
    """Grids of one plan with area in no grid of the other plan, and that part (exact).

    Where the shared pieces' areas sum to the grid's area (within rounding),
    nothing is outside; elsewhere the part is the grid minus the union of its
    partners, so overlapping partners do not count twice.
    """
    areas = shapely.area(geoms)
    covered = np.bincount(mine, weights=shapely.area(pieces), minlength=len(geoms))
    todo = np.flatnonzero(areas - covered > _AREA_EPS * areas)
    rest = geoms[todo].copy()
    for k, i in enumerate(todo):
        partners = others[theirs[mine == i]]
        if len(partners):
            rest[k] = shapely.difference(geoms[i], shapely.union_all(partners))
    keep = shapely.area(rest) > _AREA_EPS * areas[todo]
    return todo[keep].astype(np.int64), rest[keep]


def _metric_area(
    geoms: NDArray[np.object_], src: pyproj.CRS, dst: pyproj.CRS
) -> NDArray[np.float64]:
    """Areas in m² of (multi)polygons in ``src``, measured in the metric CRS ``dst``.

    A straight edge in degrees is not straight in metres: the rings of lon/lat
    geometries get a vertex every 0.001° (~100 m) before projecting, so that a
    grid of a few hundred metres and the pieces cut from it agree on their area
    to ~1e-7 (without it, ~1e-5). Rings are densified as lines: GEOS repairs a
    densified polygon that became invalid with ``buffer(0)``, which can drop most
    of a near-degenerate sliver.
    """
    if src == dst:
        return np.asarray(shapely.area(geoms), dtype=np.float64)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    if src.is_geographic:
        rings = shapely.segmentize(rings, _SEGMENT_DEG)
    tr = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    rings = shapely.transform(rings, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    ring_area = shapely.area(shapely.polygons(rings))
    shell = np.zeros(len(rings), dtype=bool)
    shell[np.unique(ring_part, return_index=True)[1]] = True  # each part's first ring
    signed = np.where(shell, ring_area, -ring_area)
    return np.bincount(owner[ring_part], weights=signed, minlength=len(geoms))


def _representative(
    frame: gpd.GeoDataFrame | gpd.GeoSeries,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """x, y of points as they are, of polygons at a point surely inside them.

    The polygons' points are :func:`shapely.point_on_surface`, in the frame's CRS.
    """
    arr = (frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame).to_numpy()
    poly = shapely.get_type_id(arr) != 0
    if poly.any():
        arr = arr.copy()
        arr[poly] = shapely.point_on_surface(arr[poly])
    xy = shapely.get_coordinates(arr)  # one row per point: none is empty (validated)
    return xy[:, 0], xy[:, 1]


def _locate(
    loc: Any,
    frame: gpd.GeoDataFrame | gpd.GeoSeries,
    opos: NDArray[np.int64],
    npos: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Position of each point's old and new grid (input row order), -1 outside."""
    x, y = _representative(frame)
    found = loc.locate(x, y, crs=frame.crs)
    o = opos[found["old"].cat.codes.to_numpy()]
    n = npos[found["new"].cat.codes.to_numpy()]
    return o, n


def _positions(loc: Any, layer: str, codes: NDArray[np.object_]) -> NDArray[np.int64]:
    """Input row of each of the locator's keys, with -1 appended for 'no zone' (code -1)."""
    where = pd.Index(codes.astype(str)).get_indexer(loc.keys(layer).astype(str))
    return np.append(where, -1).astype(np.int64)


def _group_sum(
    ids: NDArray[np.int64], weights: NDArray[np.float64], space: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The distinct pair ids among ``ids`` (points of zero weight too) and their sums."""
    if space <= 1 << 24:  # a dense count is ~10x faster than sorting a million ids
        seen = np.flatnonzero(np.bincount(ids, minlength=space))
        return seen, np.bincount(ids, weights=weights, minlength=space)[seen]
    uniq, inv = np.unique(ids, return_inverse=True)
    return uniq, np.bincount(inv, weights=weights, minlength=len(uniq))


def _changes(
    o: NDArray[np.int64],
    n: NDArray[np.int64],
    iou: NDArray[np.float64],
    same_code: NDArray[np.bool_],
    n_old: int,
    n_new: int,
    same_iou: float,
) -> NDArray[np.object_]:
    """The label of every old grid from its significant (old, new) pairs (both >= 0)."""
    deg_o = np.bincount(o, minlength=n_old)
    deg_n = np.bincount(n, minlength=n_new)
    exclusive = deg_n[n] == 1  # the new grid of the pair takes from this old grid only
    shares_out = np.bincount(o, weights=~exclusive, minlength=n_old) > 0
    # the new grid takes part of an old grid that also went elsewhere
    takes_part = np.bincount(n, weights=deg_o[o] > 1, minlength=n_new) > 0
    label = np.full(n_old, "redrawn", dtype=object)
    label[deg_o == 0] = "retired"
    label[(deg_o >= 2) & ~shares_out] = "split"
    only = deg_o[o] == 1
    po, pn = o[only], n[only]
    shared = deg_n[pn] > 1
    label[po[shared & ~takes_part[pn]]] = "merged"
    same = ~shared & (iou[only] >= same_iou)
    label[po[same]] = np.where(same_code[only][same], "unchanged", "recoded")
    return label


def _codes(values: NDArray[np.object_], pos: NDArray[np.int64]) -> Any:
    """``values[pos]`` as an object array, ``<NA>`` where ``pos`` is -1."""
    out = np.empty(len(pos), dtype=object)
    out[:] = pd.NA
    out[pos >= 0] = values[pos[pos >= 0]]
    return pd.array(out, dtype=object)


# ---- crosswalk ---------------------------------------------------------------------------


def crosswalk(
    old: Any,
    new: Any,
    *,
    units: gpd.GeoDataFrame | None = None,
    incidents: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    key: str = "code",
    min_share: float = MIN_SHARE,
) -> pd.DataFrame:
    """One row per intersection of an old grid and a new grid, with what moved across it.

    Grids are intersected in the old plan's CRS (the new plan is brought to
    it); the areas of the grids and of the pieces are measured in a metric CRS:
    the old grids' own CRS when it is projected, else the CGCS2000 3-degree
    Gauss–Krüger zone (or UTM zone) chosen for them
    (:func:`gridgeo.crs.metric_crs`), never in degrees. Households,
    population and incidents are moved exactly: each building (a point, or a
    polygon's :func:`shapely.point_on_surface`) and each incident is located in
    both plans by one :class:`~gridgeo.assign.Locator` (a point on a shared
    edge goes to the grid whose code sorts first, as everywhere in gridgeo).

    **Labels.** A pair of grids is *significant* when their shared area is at
    least ``min_share`` of the old grid's or of the new grid's area, or (with
    ``units``) when their shared households are at least ``min_share`` of
    either grid's; thinner pairs are slivers (rows in the table, but no
    relationship). Each old grid is labelled from its significant pairs:

    ``unchanged``
        One significant partner, which has no other significant predecessor,
        with an area IoU of at least :data:`SAME_IOU` (0.99) and the same code.
    ``recoded``
        As ``unchanged``, but the new grid has another code.
    ``split``
        Two or more significant partners, each of them made from this old grid
        alone (every other predecessor a sliver).
    ``merged``
        One significant partner, which is made of this and other whole old
        grids (each of its significant predecessors has it as only partner).
    ``redrawn``
        Anything else, a moved boundary: the only partner, but with an IoU
        below 0.99; or parts going to new grids that also take parts of other
        old grids (one grid split and a neighbour's part merged in).
    ``retired``
        No significant partner: the grid's territory left the plan (it lies
        outside every new grid, or only slivers of it are inside).

    Parameters
    ----------
    old, new
        The two plans: grid GeoDataFrames (polygons with a CRS and unique codes
        in ``key``), or anything with a ``.grids`` GeoDataFrame (a ``Plan``).
    units
        Buildings: points or polygons with ``households`` and ``population``.
    incidents
        Incident points (a GeoDataFrame or GeoSeries with a CRS).
    key
        Column of grid codes, in both plans.
    min_share
        Share (from 0 to below 1) below which a pair is a sliver for the labels.

    Returns
    -------
    pandas.DataFrame
        One row per pair sharing a positive area or a located point, ordered by
        old grid then new grid (in the plans' row order; ``<NA>`` last):

        - ``old_code``, ``new_code``: ``<NA>`` for area or points outside that
          plan: ``(old, <NA>)`` is the part of an old grid in no new grid,
          ``(<NA>, new)`` the part of a new grid in no old grid, and
          ``(<NA>, <NA>)`` the points outside both (its area is NaN). Nothing is
          dropped.
        - ``area_m2``: the shared area (0 for a pair that shares only points
          on an edge).
        - ``area_share_old``, ``area_share_new``: ``area_m2`` over the old
          (new) grid's area; NaN where that code is ``<NA>``. Where neither plan
          has overlapping grids, each sums to 1 per grid (exactly in a
          projected CRS; for lon/lat grids, whose straight edges in degrees
          are slightly curved in metres, to within ~1e-7 of a grid of a few
          hundred metres: a few dm²).
        - with ``units``: ``households`` and ``population`` located in both.
        - with ``incidents``: ``incidents``, the count located in both.
        - ``change``: the label of the row's old grid (``<NA>`` when
          ``old_code`` is ``<NA>``).

        ``attrs`` holds only scalars, so that ordinary pandas operations
        (``round``, ``merge``, ``concat``, ``to_csv``) work on the crosswalk:
        ``crs`` (the metric CRS of the areas), ``old_plan`` and ``new_plan``
        (see :func:`plan_grids`) and ``min_share``. The per-grid tables (each old
        grid's successors, each new grid's predecessors) are
        :func:`grid_changes` and :func:`grid_predecessors` of the crosswalk.

    Raises
    ------
    CRSError
        If a plan has no CRS.
    ValidationError
        Listing every problem found: a missing ``key`` column, missing or
        duplicate codes, missing, non-polygon or invalid grid geometry, units
        without numeric ``households``/``population`` (or with missing or
        negative values), non-point incidents, inputs without a CRS, a bad
        ``min_share``.
    InputError
        If a plan is neither a GeoDataFrame nor has ``.grids``.

    Examples
    --------
    Grids ``A`` and ``B`` merged into ``AB``; ``C`` kept its ground as ``C2``;
    one building moved, with its 7 households, from ``B`` into ``AB``:

    >>> import geopandas as gpd, shapely
    >>> box = shapely.box
    >>> old = gpd.GeoDataFrame({"code": ["A", "B", "C"]}, crs="EPSG:4549",
    ...     geometry=[box(0, 0, 100, 100), box(100, 0, 200, 100), box(200, 0, 300, 100)])
    >>> new = gpd.GeoDataFrame({"code": ["AB", "C2"]}, crs="EPSG:4549",
    ...     geometry=[box(0, 0, 200, 100), box(200, 0, 300, 100)])
    >>> units = gpd.GeoDataFrame({"households": [7, 3], "population": [20, 9]},
    ...     geometry=[shapely.Point(150, 50), shapely.Point(250, 50)], crs="EPSG:4549")
    >>> cw = crosswalk(old, new, units=units)
    >>> cw[["old_code", "new_code", "households", "change"]].values.tolist()
    [['A', 'AB', 0, 'merged'], ['B', 'AB', 7, 'merged'], ['C', 'C2', 3, 'recoded']]
    >>> grid_changes(cw)["successors"].tolist()
    [('AB',), ('AB',), ('C2',)]
    """
    old_grids, old_label = plan_grids(old, what="old")
    new_grids, new_label = plan_grids(new, what="new")
    _validate(old_grids, new_grids, units, incidents, key, min_share)
    crs = _metric(old_grids)
    # shapes are cut in the plans' own CRS, the one the points are located in; each
    # piece is then measured in metres
    work = pyproj.CRS(old_grids.crs)
    og = old_grids.geometry.to_numpy()
    ng = new_grids.geometry.to_crs(work).to_numpy()
    ocodes = old_grids[key].to_numpy(dtype=object)
    ncodes = new_grids[key].to_numpy(dtype=object)
    n_old, n_new = len(og), len(ng)
    oarea, narea = _metric_area(og, work, crs), _metric_area(ng, work, crs)

    # areas: intersecting pairs, then the parts of each grid outside the other plan
    oi, ni, pieces = _polygon_pairs(og, ng)
    out_o, rest_o = _outside(og, ng, oi, ni, pieces)
    out_n, rest_n = _outside(ng, og, ni, oi, pieces)
    po = np.concatenate([oi, out_o, np.full(len(out_n), -1)])
    pn = np.concatenate([ni, np.full(len(out_o), -1), out_n])
    parea = _metric_area(np.concatenate([pieces, rest_o, rest_n]), work, crs)

    # points: located in both plans at once
    sums: dict[str, tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]] = {}
    if units is not None or incidents is not None:
        from gridgeo.assign import Locator

        layers = {
            "old": gpd.GeoDataFrame({key: ocodes.astype(str)}, geometry=og, crs=work),
            "new": gpd.GeoDataFrame({key: ncodes.astype(str)}, geometry=ng, crs=work),
        }
        cells = int(np.clip(16 * max(n_old, n_new), 4096, 65_536))
        loc = Locator(layers, key=key, cells=cells)
        opos, npos = _positions(loc, "old", ocodes), _positions(loc, "new", ncodes)
        if units is not None:
            uo, un = _locate(loc, units, opos, npos)
            for col in ("households", "population"):
                sums[col] = (uo, un, units[col].to_numpy(dtype=np.float64))
        if incidents is not None:
            io_, in_ = _locate(loc, incidents, opos, npos)
            sums["incidents"] = (io_, in_, np.ones(len(io_)))

    # one id per (old, new) pair, -1 shifted to 0
    def pid(o: NDArray[np.int64], n: NDArray[np.int64]) -> NDArray[np.int64]:
        return (o + 1) * (n_new + 1) + (n + 1)

    space = (n_old + 1) * (n_new + 1)
    area_ids = pid(po, pn)
    grouped = {name: _group_sum(pid(o, n), w, space) for name, (o, n, w) in sums.items()}
    uniq = np.unique(np.concatenate([area_ids, *(ids for ids, _ in grouped.values())]))
    m = len(uniq)
    ro, rn = uniq // (n_new + 1) - 1, uniq % (n_new + 1) - 1
    area = np.zeros(m)
    np.add.at(area, np.searchsorted(uniq, area_ids), parea)
    area[(ro < 0) & (rn < 0)] = np.nan
    cols: dict[str, Any] = {
        "old_code": _codes(ocodes, ro),
        "new_code": _codes(ncodes, rn),
        "area_m2": area,
        "area_share_old": np.where(ro >= 0, area / oarea[np.maximum(ro, 0)], np.nan),
        "area_share_new": np.where(rn >= 0, area / narea[np.maximum(rn, 0)], np.nan),
    }
    for name, (ids, sub) in grouped.items():
        total = np.zeros(m)
        total[np.searchsorted(uniq, ids)] = sub
        integer = units is None or name == "incidents" or pd.api.types.is_integer_dtype(units[name])
        cols[name] = total.round().astype(np.int64) if integer else total

    # labels from the significant pairs
    both = (ro >= 0) & (rn >= 0)
    sig = both & (
        (cols["area_share_old"] >= min_share) | (cols["area_share_new"] >= min_share)
    )
    if units is not None:
        hh = cols["households"].astype(np.float64)
        hh_o = np.bincount(ro[ro >= 0], weights=hh[ro >= 0], minlength=n_old)
        hh_n = np.bincount(rn[rn >= 0], weights=hh[rn >= 0], minlength=n_new)
        with np.errstate(divide="ignore", invalid="ignore"):
            by_hh = (hh / hh_o[np.maximum(ro, 0)] >= min_share) | (
                hh / hh_n[np.maximum(rn, 0)] >= min_share
            )
        sig |= both & (area > 0) & by_hh
    so, sn = ro[sig], rn[sig]
    iou = area[sig] / (oarea[so] + narea[sn] - area[sig])
    same = ocodes[so].astype(str) == ncodes[sn].astype(str)
    labels = _changes(so, sn, iou, same, n_old, n_new, SAME_IOU)
    cols["change"] = _codes(labels, ro)

    frame = pd.DataFrame(cols)
    # old grid then new grid in row order, <NA> (-1) last
    order = np.lexsort((np.where(rn < 0, n_new, rn), np.where(ro < 0, n_old, ro)))
    frame = frame.iloc[order].reset_index(drop=True)
    # scalars only: pandas deep-copies and compares attrs in its operations (a frame
    # in attrs breaks merge and round); the per-grid tables are grid_changes() and
    # grid_predecessors(), computed from the rows
    frame.attrs.update(
        crs=crs.to_string(),
        old_plan=old_label,
        new_plan=new_label,
        min_share=float(min_share),
    )
    log.info(
        "crosswalk %s -> %s: %d pairs; %s",
        old_label,
        new_label,
        len(frame),
        pd.Series(labels).value_counts().to_dict(),
    )
    return frame


_ROW_COLUMNS = ("old_code", "new_code", "area_m2", "area_share_old", "area_share_new", "change")


def _significant(cw: pd.DataFrame, min_share: float | None, what: str) -> pd.DataFrame:
    """The rows of ``cw`` that are relationships, with their ``iou``, in row order."""
    missing = [c for c in _ROW_COLUMNS if c not in cw.columns]
    if missing:
        raise InputError(
            f"{what} needs a crosswalk (from crosswalk()); columns {missing} are missing, "
            f"columns are {list(cw.columns)}"
        )
    if min_share is None:
        min_share = cw.attrs.get("min_share", MIN_SHARE)
    if not isinstance(min_share, numbers.Real) or not 0 <= min_share < 1:
        raise InputError(f"min_share was {min_share!r}; expected a number from 0 to below 1")
    rows = pd.DataFrame(
        {
            "old": cw["old_code"].astype(object).to_numpy(),
            "new": cw["new_code"].astype(object).to_numpy(),
            "area": cw["area_m2"].to_numpy(np.float64),
            "share_old": cw["area_share_old"].to_numpy(np.float64),
            "share_new": cw["area_share_new"].to_numpy(np.float64),
        }
    )
    both = (rows["old"].notna() & rows["new"].notna()).to_numpy()
    sig = both & (
        (rows["share_old"].to_numpy() >= min_share) | (rows["share_new"].to_numpy() >= min_share)
    )
    if "households" in cw.columns:  # as crosswalk(units=...) labels: by households too
        hh = cw["households"].to_numpy(np.float64)
        frame = rows.assign(hh=hh)
        hh_o = frame.groupby("old", dropna=True)["hh"].transform("sum").to_numpy()
        hh_n = frame.groupby("new", dropna=True)["hh"].transform("sum").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            by_hh = (hh / hh_o >= min_share) | (hh / hh_n >= min_share)
        sig |= both & (rows["area"].to_numpy() > 0) & by_hh
    out = rows[sig].copy()
    # area IoU = A / (A_old + A_new - A) with A_old = A / share_old, A_new = A / share_new
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = 1.0 / (1.0 / out["share_old"] + 1.0 / out["share_new"] - 1.0)
    out["iou"] = np.where(out["area"] > 0, iou, 0.0)
    return out


def _ranked(sig: pd.DataFrame, mine: str, theirs: str, share: str) -> pd.DataFrame:
    """``sig`` ordered by ``mine`` (first appearance), then largest ``share`` first."""
    first = pd.Index(pd.unique(sig[mine].to_numpy(dtype=object))).get_indexer(sig[mine])
    order = np.lexsort((-sig[share].to_numpy(), first))  # stable: row order breaks ties
    return sig.iloc[order]


def grid_changes(cw: pd.DataFrame, *, min_share: float | None = None) -> pd.DataFrame:
    """What became of each old grid of a crosswalk: its label, successors and IoU.

    Computed from the rows of :func:`crosswalk`'s result (pass all of them: a grid
    whose rows were filtered out is missing here), with the same rule for
    relationships as its labels: a pair sharing at least ``min_share`` of either
    grid's area, or (when the crosswalk has ``households``) a pair sharing area
    and at least ``min_share`` of either grid's households.

    Parameters
    ----------
    cw
        A crosswalk, as :func:`crosswalk` returns it.
    min_share
        Default: the crosswalk's ``attrs["min_share"]``, else :data:`MIN_SHARE`.

    Returns
    -------
    pandas.DataFrame
        One row per old grid, in the old plan's row order: ``code``, ``change``
        (as in the rows), ``successors`` (tuple of the new codes of its
        relationships, largest share of the old grid first; ``()`` for a retired
        grid) and ``iou`` (area IoU with its first successor, 0 if none).

    Raises
    ------
    InputError
        If ``cw`` lacks a crosswalk column, or ``min_share`` is not from 0 to below 1.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> old = gpd.GeoDataFrame({"code": ["A", "B"]}, crs="EPSG:4549",
    ...     geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
    >>> new = gpd.GeoDataFrame({"code": ["A", "C", "D"]}, crs="EPSG:4549", geometry=[
    ...     shapely.box(0, 0, 100, 100), shapely.box(100, 0, 170, 100),
    ...     shapely.box(170, 0, 200, 100)])
    >>> grid_changes(crosswalk(old, new)).values.tolist()
    [['A', 'unchanged', ('A',), 1.0], ['B', 'split', ('C', 'D'), 0.7]]
    """
    sig = _significant(cw, min_share, "grid_changes")
    codes = pd.unique(cw["old_code"].dropna().astype(object).to_numpy())
    change = (
        pd.Series(cw["change"].astype(object).to_numpy(), index=cw["old_code"].astype(object))
        .loc[lambda c: c.index.notna()]
        .groupby(level=0, sort=False)
        .first()
    )
    succ: dict[Any, tuple[Any, ...]] = {}
    best: dict[Any, float] = {}
    for old, new, iou in _ranked(sig, "old", "new", "share_old")[["old", "new", "iou"]].values:
        if old not in succ:
            succ[old], best[old] = (), float(iou)
        succ[old] = (*succ[old], new)
    return pd.DataFrame(
        {
            "code": pd.array(codes, dtype=cw["old_code"].dtype),
            "change": pd.array(change.reindex(codes).to_numpy(), dtype=cw["change"].dtype),
            "successors": [succ.get(c, ()) for c in codes],
            "iou": np.array([best.get(c, 0.0) for c in codes], dtype=np.float64),
        }
    )


def grid_predecessors(cw: pd.DataFrame, *, min_share: float | None = None) -> pd.DataFrame:
    """Where each new grid of a crosswalk came from: the old grids it took ground from.

    Computed from the rows of :func:`crosswalk`'s result, with the relationships of
    :func:`grid_changes`.

    Parameters
    ----------
    cw
        A crosswalk, as :func:`crosswalk` returns it.
    min_share
        Default: the crosswalk's ``attrs["min_share"]``, else :data:`MIN_SHARE`.

    Returns
    -------
    pandas.DataFrame
        One row per new grid, in order of first appearance in the rows (which are
        ordered by old grid, so new ground with no old grid comes last): ``code``
        and ``predecessors`` (tuple of old codes, largest share of the new grid
        first; ``()`` for new ground).

    Raises
    ------
    InputError
        If ``cw`` lacks a crosswalk column, or ``min_share`` is not from 0 to below 1.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> old = gpd.GeoDataFrame({"code": ["A", "B"]}, crs="EPSG:4549",
    ...     geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)])
    >>> new = gpd.GeoDataFrame({"code": ["AB", "N"]}, crs="EPSG:4549", geometry=[
    ...     shapely.box(0, 0, 200, 100), shapely.box(200, 0, 300, 100)])
    >>> grid_predecessors(crosswalk(old, new)).values.tolist()
    [['AB', ('A', 'B')], ['N', ()]]
    """
    sig = _significant(cw, min_share, "grid_predecessors")
    codes = pd.unique(cw["new_code"].dropna().astype(object).to_numpy())
    pred: dict[Any, tuple[Any, ...]] = {}
    for new, old in _ranked(sig, "new", "old", "share_new")[["new", "old"]].values:
        pred[new] = (*pred.get(new, ()), old)
    return pd.DataFrame(
        {
            "code": pd.array(codes, dtype=cw["new_code"].dtype),
            "predecessors": [pred.get(c, ()) for c in codes],
        }
    )


# ---- plan_diff ---------------------------------------------------------------------------


def _assignment(plan: Any, what: str) -> pd.Series:
    if isinstance(plan, pd.Series):
        return plan
    assignment = getattr(plan, "assignment", None)
    if not isinstance(assignment, pd.Series):
        raise InputError(
            f"plan {what!r} must be a Series grid code -> group code, or a business plan "
            f"with an .assignment Series, not {type(plan).__name__}"
        )
    return assignment


def _group_pairs(
    before: Any, after: Any, weights: pd.Series | None
) -> tuple[pd.DataFrame, pd.DataFrame, NDArray[np.object_], NDArray[np.int64]]:
    """Per grid frame (before, after, weight), the group crosswalk, labels, before index."""
    before, after = _assignment(before, "before"), _assignment(after, "after")
    for name, plan in (("before", before), ("after", after)):
        if plan.index.duplicated().any():
            dup = sorted(map(str, plan.index[plan.index.duplicated()]))[:5]
            raise InputError(f"plan {name!r} lists grids more than once: {dup}")
    codes = before.index.union(after.index, sort=False)
    out = pd.DataFrame(
        {"before": before.reindex(codes), "after": after.reindex(codes)}, index=codes
    ).astype(object)
    if weights is None:
        wt = pd.Series(1.0, index=codes)
    else:
        missing = codes.difference(weights.index)
        if len(missing):
            raise InputError(f"weights lack grids {sorted(map(str, missing))[:5]}")
        wt = weights.reindex(codes).astype(float)
    out["weight"] = wt.to_numpy()

    # the crosswalk of the groups, the base grids being the units moved
    old_groups = pd.unique(before.dropna().to_numpy(dtype=object))
    new_groups = pd.unique(after.dropna().to_numpy(dtype=object))
    o = pd.Index(old_groups).get_indexer(out["before"]).astype(np.int64)
    n = pd.Index(new_groups).get_indexer(out["after"]).astype(np.int64)
    pairs = (
        pd.DataFrame({"o": o, "n": n, "grids": 1, "weight": out["weight"].to_numpy()})
        .groupby(["o", "n"], sort=True)[["grids", "weight"]]
        .sum()
        .reset_index()
    )
    po, pn = pairs["o"].to_numpy(np.int64), pairs["n"].to_numpy(np.int64)
    count = pairs["grids"].to_numpy(np.float64)
    size_o = np.bincount(o[o >= 0], minlength=len(old_groups)).astype(np.float64)
    size_n = np.bincount(n[n >= 0], minlength=len(new_groups)).astype(np.float64)
    both = (po >= 0) & (pn >= 0)
    bo, bn = po[both], pn[both]
    iou = count[both] / (size_o[bo] + size_n[bn] - count[both])
    same = old_groups[bo].astype(str) == new_groups[bn].astype(str)
    labels = _changes(bo, bn, iou, same, len(old_groups), len(new_groups), 1.0)
    w = pairs["weight"].to_numpy(np.float64)
    w_o = np.bincount(po[po >= 0], weights=w[po >= 0], minlength=len(old_groups))
    w_n = np.bincount(pn[pn >= 0], weights=w[pn >= 0], minlength=len(new_groups))
    with np.errstate(divide="ignore", invalid="ignore"):
        cw = pd.DataFrame(
            {
                "old_code": _codes(old_groups, po),
                "new_code": _codes(new_groups, pn),
                "grids": pairs["grids"].to_numpy(np.int64),
                "weight": w,
                "weight_share_old": np.where(po >= 0, w / w_o[np.maximum(po, 0)], np.nan),
                "weight_share_new": np.where(pn >= 0, w / w_n[np.maximum(pn, 0)], np.nan),
                "change": _codes(labels, po),
            }
        )
    # order: old groups, then new groups, in order of appearance; <NA> last
    order = np.lexsort(
        (np.where(pn < 0, len(new_groups), pn), np.where(po < 0, len(old_groups), po))
    )
    cw = cw.iloc[order].reset_index(drop=True)

    return out, cw, labels, o


def group_crosswalk(
    before: pd.Series, after: pd.Series, *, weights: pd.Series | None = None
) -> pd.DataFrame:
    """The crosswalk of two groupings of the same base grids, with the grids as units.

    What :func:`plan_diff` shows per grid, per pair of groups: one row per (before
    group, after group) pair sharing grids, each before group labelled as in
    :func:`crosswalk` (a group is ``unchanged`` or ``recoded`` only when its
    members are exactly those of one after group).

    Parameters
    ----------
    before, after
        Plans, as for :func:`plan_diff`.
    weights
        Series indexed by grid code (e.g. households); 1 per grid when omitted.

    Returns
    -------
    pandas.DataFrame
        Columns ``old_code``, ``new_code``, ``grids``, ``weight``,
        ``weight_share_old``, ``weight_share_new``, ``change`` (``<NA>`` for grids
        in one plan only), ordered by before group then after group, in order of
        appearance, ``<NA>`` last.

    Raises
    ------
    InputError
        As :func:`plan_diff`.

    Examples
    --------
    >>> import pandas as pd
    >>> b = pd.Series({"a": "G1", "b": "G1", "c": "G2", "d": "G3"})
    >>> a = pd.Series({"a": "X", "b": "Y", "c": "Z", "d": "Z"})
    >>> for row in group_crosswalk(b, a)[["old_code", "new_code", "grids", "change"]].values:
    ...     print(*row)
    G1 X 1 split
    G1 Y 1 split
    G2 Z 1 merged
    G3 Z 1 merged
    """
    return _group_pairs(before, after, weights)[1]


def plan_diff(
    before: pd.Series, after: pd.Series, *, weights: pd.Series | None = None
) -> pd.DataFrame:
    """Which grids changed group between two plans, and how much workload moved.

    This is the crosswalk of two groupings of the same base grids, with the base
    grids as the units moved (:func:`group_crosswalk`: one row per (before
    group, after group) pair sharing grids), each before group labelled as in
    :func:`crosswalk` (a group is ``unchanged`` or ``recoded`` only when its
    members are exactly those of one after group). Group codes of two plans need
    not share a vocabulary (``G01`` of a 17-group plan is not ``G01`` of an
    11-group plan), so each group of ``after`` is also matched to the group of
    ``before`` it shares the most weight with (a one-to-one assignment; unmatched
    new groups match nothing). A grid has *moved* when its ``after`` group is
    not matched to its ``before`` group.

    Parameters
    ----------
    before, after
        Plans: Series indexed by grid code with the group code as value (e.g.
        ``groups.attrs["assignment"]``), or business plans with such an
        ``.assignment`` (a ``Plan``).
    weights
        Series indexed by grid code (e.g. households); 1 per grid when omitted.

    Returns
    -------
    pandas.DataFrame
        One row per grid code of either plan (none dropped), indexed by code, with
        ``before``, ``after``, ``matched`` (the ``before`` group that ``after`` group
        continues, or ``<NA>``), ``moved`` (bool), ``weight`` and ``change`` (the
        label of the ``before`` group, ``<NA>`` for a grid not in ``before``).
        ``attrs`` holds ``n_moved`` and ``weight_moved`` (scalars only, so that
        pandas operations work on the result); the per-group pairs are
        :func:`group_crosswalk` of the same plans.

    Raises
    ------
    InputError
        If a plan has duplicate grid codes or ``weights`` lacks a grid, or is
        neither a Series nor has an ``.assignment`` Series.

    Examples
    --------
    >>> import pandas as pd
    >>> b = pd.Series({"a": "G1", "b": "G1", "c": "G2", "d": "G3"})
    >>> a = pd.Series({"a": "X", "b": "X", "c": "Y", "d": "Y"})
    >>> d = plan_diff(b, a, weights=pd.Series({"a": 10, "b": 20, "c": 30, "d": 5}))
    >>> d["matched"].tolist(), d["moved"].tolist(), d.attrs["weight_moved"]
    (['G1', 'G1', 'G2', 'G2'], [False, False, False, True], 5.0)
    >>> d["change"].tolist()
    ['recoded', 'recoded', 'merged', 'merged']
    """
    from scipy.optimize import linear_sum_assignment

    out, _, labels, o = _group_pairs(before, after, weights)
    # each after group continues the before group it shares the most weight with
    pairs_in_both = out.dropna(subset=["before", "after"])
    shared = pairs_in_both.groupby(["after", "before"])["weight"].sum().unstack(fill_value=0)
    ri, ci = linear_sum_assignment(shared.to_numpy(), maximize=True)
    match = dict(zip(shared.index[ri], shared.columns[ci]))
    out["matched"] = pd.array([match.get(g, pd.NA) for g in out["after"]], dtype=object)
    out["moved"] = [
        not (pd.notna(b) and pd.notna(m) and b == m) for b, m in zip(out["before"], out["matched"])
    ]
    out["change"] = _codes(labels, o)
    out = out[["before", "after", "matched", "moved", "weight", "change"]]
    out.attrs["n_moved"] = int(out["moved"].sum())
    out.attrs["weight_moved"] = float(out.loc[out["moved"], "weight"].sum())
    return out
