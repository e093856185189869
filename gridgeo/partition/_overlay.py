"""The array kernels of :mod:`gridgeo.partition.crosswalk`, and the vocabulary of its labels.

Plain arrays in, arrays out: the (old, new) pairs of grids sharing area and
their pieces (:func:`_polygon_pairs`, :func:`_outside`), areas in metres
(:func:`_metric_area`), points located in both plans (:func:`_locate`), sums per
pair (:func:`_group_sum`) and the label of each old grid (:func:`_changes`),
which :func:`~gridgeo.partition.crosswalk.crosswalk` and
:func:`~gridgeo.partition.groupdiff.group_crosswalk` share. The public constants
are re-exported by :mod:`gridgeo.partition.crosswalk`.

Examples
--------
>>> import numpy as np, shapely
>>> old = np.array([shapely.box(0, 0, 2, 1)])
>>> new = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
>>> oi, ni, pieces = _polygon_pairs(old, new)
>>> oi.tolist(), ni.tolist(), shapely.area(pieces).tolist()
([0, 0], [0, 1], [1.0, 1.0])
>>> _changes(oi, ni, np.array([0.5, 0.5]), np.array([False, False]), 1, 2, SAME_IOU).tolist()
['split']
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray

__all__ = ["CHANGES", "MIN_SHARE", "SAME_IOU"]

CHANGES = ("unchanged", "recoded", "split", "merged", "redrawn", "retired")
"""The labels of an old grid, in the order of the docstring of
:func:`~gridgeo.partition.crosswalk.crosswalk`."""

SAME_IOU = 0.99
"""An old grid and its only partner are the same grid when their area IoU is at least this.

It is the threshold at which ``make_grids(previous=…)`` keeps a grid's code (issue 15).
"""

MIN_SHARE = 0.01
"""Default share below which a pair of grids is a sliver, not a relationship (see ``min_share``)."""

_AREA_EPS = 1e-9  # relative: area sums within this of a grid's area are rounding noise
_SEGMENT_DEG = 0.001  # densify lon/lat edges to this before measuring areas in metres


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
