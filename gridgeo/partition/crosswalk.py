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

This module holds :func:`crosswalk` and its input checks; the per-grid tables
(:func:`grid_changes`, :func:`grid_predecessors`) live in
:mod:`gridgeo.partition.lineage`, the group crosswalk (:func:`group_crosswalk`,
:func:`plan_diff`) in :mod:`gridgeo.partition.groupdiff`, and the array kernels
with the label vocabulary (:data:`CHANGES`, :data:`SAME_IOU`, :data:`MIN_SHARE`)
in ``gridgeo.partition._overlay``; every name is importable from here.

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
from gridgeo.partition._overlay import (
    CHANGES,
    MIN_SHARE,
    SAME_IOU,
    _changes,
    _codes,
    _group_sum,
    _locate,
    _metric_area,
    _outside,
    _polygon_pairs,
    _positions,
)
from gridgeo.partition.groupdiff import group_crosswalk, plan_diff
from gridgeo.partition.lineage import grid_changes, grid_predecessors

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

_POINT_KINDS = {"Point"}
_UNIT_KINDS = {"Point", "Polygon", "MultiPolygon"}
_GRID_KINDS = {"Polygon", "MultiPolygon"}
_TYPE_NAMES = dict(
    enumerate(
        [
            "Point",
            "LineString",
            "LinearRing",
            "Polygon",
            "MultiPoint",
            "MultiLineString",
            "MultiPolygon",
            "GeometryCollection",
        ]
    )
)


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
        problems.append(f"{what}: grids {list(map(str, codes[empty]))[:5]} have no geometry")
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


def _points_problems(frame: Any, what: str, kinds: set[str], columns: tuple[str, ...]) -> list[str]:
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
    sig = both & ((cols["area_share_old"] >= min_share) | (cols["area_share_new"] >= min_share))
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
