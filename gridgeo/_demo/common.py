"""Shared helpers of the demo generator: metric frame, k-means, sampling, exact partitions.

Examples
--------
>>> import shapely
>>> lon, lat = xy_to_lonlat(np.array([0.0]), np.array([0.0]))
>>> float(lon[0]), float(lat[0])
(114.93, 25.4)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

__all__ = [
    "LAT0",
    "LON0",
    "cut_faces",
    "kmeans",
    "merge_faces",
    "partition",
    "reading_order",
    "sample_in",
    "snap_to_points",
    "to_lonlat",
    "xy_to_lonlat",
]

#: Nominal centre of the demo county (Xinfeng, Jiangxi), degrees.
LON0, LAT0 = 114.93, 25.40
#: Metres per degree at LAT0 (ellipsoidal series), used by the affine map to lon/lat.
M_PER_DEG_LON = 100_622.0
M_PER_DEG_LAT = 110_779.0

#: Precision (m) to which partition edges are noded: no two vertices closer, so the
#: affine map to degrees cannot fold a face.
GRID_M = 1e-6

Array = NDArray[np.float64]


def xy_to_lonlat(x: Array, y: Array) -> tuple[Array, Array]:
    """Local metres → lon/lat (EPSG:4490) by the affine map of the demo frame.

    Examples
    --------
    >>> lon, lat = xy_to_lonlat(np.array([M_PER_DEG_LON]), np.array([0.0]))
    >>> round(float(lon[0]), 6)
    115.93
    """
    return (
        np.asarray(x, dtype=np.float64) / M_PER_DEG_LON + LON0,
        np.asarray(y, dtype=np.float64) / M_PER_DEG_LAT + LAT0,
    )


def to_lonlat(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Map geometries from local metres to lon/lat; shared vertices stay identical.

    Examples
    --------
    >>> g = to_lonlat(np.array([shapely.box(0, 0, 1000, 1000)]))
    >>> [round(v, 4) for v in g[0].bounds]
    [114.93, 25.4, 114.9399, 25.409]
    """
    scale = np.array([1.0 / M_PER_DEG_LON, 1.0 / M_PER_DEG_LAT])
    offset = np.array([LON0, LAT0])
    return np.asarray(shapely.transform(geoms, lambda c: c * scale + offset), dtype=object)


def kmeans(
    points: Array,
    k: int,
    rng: np.random.Generator,
    *,
    weights: Array | None = None,
    iters: int = 25,
) -> tuple[Array, NDArray[np.intp]]:
    """Weighted Lloyd k-means with k-means++ start; empty clusters re-seeded far away.

    Returns ``(centres (k, 2), labels (n,))``. Requires ``1 <= k <= len(points)``.

    Examples
    --------
    >>> pts = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], dtype=float)
    >>> c, lab = kmeans(pts, 2, np.random.default_rng(0))
    >>> sorted(c[:, 0].tolist()), len(set(lab[:2])), bool(lab[0] != lab[2])
    ([0.0, 10.0], 1, True)
    """
    n = len(points)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    first = rng.choice(n, p=w / w.sum())
    centres = [points[first]]
    d2 = np.sum((points - points[first]) ** 2, axis=1)
    for _ in range(1, k):
        p = d2 * w
        i = int(rng.choice(n, p=p / p.sum())) if p.sum() > 0 else int(rng.integers(n))
        centres.append(points[i])
        d2 = np.minimum(d2, np.sum((points - points[i]) ** 2, axis=1))
    c = np.array(centres, dtype=np.float64)
    labels = np.zeros(n, dtype=np.intp)
    for _ in range(iters):
        dist, labels = cKDTree(c).query(points)
        mass = np.bincount(labels, weights=w, minlength=k)
        sx = np.bincount(labels, weights=w * points[:, 0], minlength=k)
        sy = np.bincount(labels, weights=w * points[:, 1], minlength=k)
        empty = mass == 0
        new = c.copy()
        new[~empty, 0] = sx[~empty] / mass[~empty]
        new[~empty, 1] = sy[~empty] / mass[~empty]
        if empty.any():
            far = np.argsort(-dist)[: int(empty.sum())]
            new[empty] = points[far]
        if np.allclose(new, c):
            break
        c = new
    _, labels = cKDTree(c).query(points)
    return c, np.asarray(labels, dtype=np.intp)


def snap_to_points(centres: Array, points: Array) -> NDArray[np.intp]:
    """Index of a distinct point nearest each centre (greedy, in centre order).

    Examples
    --------
    >>> snap_to_points(np.array([[0.0, 0.0], [0.1, 0.0]]), np.array([[0.0, 0], [5, 0]])).tolist()
    [0, 1]
    """
    k = len(centres)
    kk = min(len(points), max(k + 1, 8))
    _, cand = cKDTree(points).query(centres, k=kk)
    cand = np.atleast_2d(cand)
    used: set[int] = set()
    out = np.empty(k, dtype=np.intp)
    for i in range(k):
        choice = next((int(j) for j in cand[i] if int(j) not in used), None)
        if choice is None:  # all near candidates taken: nearest unused overall
            free = np.setdiff1d(np.arange(len(points)), np.fromiter(used, dtype=np.intp))
            choice = int(free[np.argmin(np.sum((points[free] - centres[i]) ** 2, axis=1))])
        used.add(choice)
        out[i] = choice
    return out


def sample_in(
    polygon: BaseGeometry, n: int, rng: np.random.Generator, *, max_rounds: int = 200
) -> Array:
    """``n`` uniform random points inside ``polygon`` (rejection sampling), shape (n, 2).

    Examples
    --------
    >>> p = sample_in(shapely.box(0, 0, 2, 1), 50, np.random.default_rng(0))
    >>> p.shape, bool((p[:, 0] < 2).all() and (p[:, 1] < 1).all())
    ((50, 2), True)
    """
    if n <= 0:
        return np.empty((0, 2))
    shapely.prepare(polygon)
    x0, y0, x1, y1 = polygon.bounds
    frac = max(polygon.area / max((x1 - x0) * (y1 - y0), 1e-12), 0.01)
    got: list[Array] = []
    have = 0
    for _ in range(max_rounds):
        m = int((n - have) / frac * 1.3) + 16
        x = rng.uniform(x0, x1, m)
        y = rng.uniform(y0, y1, m)
        ok = shapely.contains_xy(polygon, x, y)
        pts = np.column_stack([x[ok], y[ok]])
        got.append(pts)
        have += len(pts)
        if have >= n:
            break
    pts = np.concatenate(got)[:n]
    if len(pts) < n:  # vanishing polygon: fall back to its representative point
        rp = shapely.point_on_surface(polygon)
        pad = np.repeat([[rp.x, rp.y]], n - len(pts), axis=0)
        pts = np.concatenate([pts, pad])
    return pts


def reading_order(x: Array, y: Array) -> NDArray[np.intp]:
    """0-based serials in reading order: rows north→south, west→east within a row.

    Points are cut into ``round(sqrt(n))`` rows of equal count by latitude.

    Examples
    --------
    >>> reading_order(np.array([0.0, 1, 0, 1]), np.array([1.0, 1, 0, 0])).tolist()
    [0, 1, 2, 3]
    """
    n = len(x)
    if n == 0:
        return np.empty(0, dtype=np.intp)
    n_rows = max(1, round(np.sqrt(n)))
    by_y = np.argsort(-np.asarray(y), kind="stable")
    row = np.empty(n, dtype=np.intp)
    row[by_y] = np.arange(n) * n_rows // n
    order = np.lexsort((np.asarray(x), row))
    serial = np.empty(n, dtype=np.intp)
    serial[order] = np.arange(n)
    return serial


def partition(
    region: BaseGeometry,
    lines: Sequence[BaseGeometry],
    label: Callable[[Array], NDArray[np.intp]],
    n_labels: int,
) -> list[BaseGeometry]:
    """Cut ``region`` by ``lines`` into faces, label them, and merge faces per label.

    The region's boundary and all lines are noded together and polygonized, so
    faces share identical edges and the merged parts tile the region exactly
    (coverage union, no new vertices). ``label(xy)`` maps the faces'
    representative points (m, 2) to labels in ``0..n_labels-1``.

    Returns
    -------
    list of shapely geometries
        One (Multi)Polygon per label; an empty Polygon where a label got no face.

    Examples
    --------
    >>> parts = partition(shapely.box(0, 0, 2, 1), [shapely.LineString([(1, -1), (1, 2)])],
    ...                   lambda xy: (xy[:, 0] > 1).astype(int), 2)
    >>> [p.area for p in parts]
    [1.0, 1.0]
    """
    faces, xy = cut_faces(region, lines)
    return merge_faces(faces, label(xy), n_labels)


def cut_faces(
    region: BaseGeometry, lines: Sequence[BaseGeometry]
) -> tuple[NDArray[np.object_], Array]:
    """Faces of ``region`` cut by ``lines`` (noded, polygonized) and a point inside each.

    Edges are noded on a :data:`GRID_M` precision grid.

    Examples
    --------
    >>> faces, xy = cut_faces(shapely.box(0, 0, 2, 1), [shapely.LineString([(1, -1), (1, 2)])])
    >>> len(faces), xy.shape
    (2, (2, 2))
    """
    edges = shapely.union_all(
        np.concatenate([[shapely.boundary(region)], np.asarray(lines, dtype=object)]),
        grid_size=GRID_M,
    )
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    faces = faces[shapely.area(faces) > 0]
    xy = shapely.get_coordinates(shapely.point_on_surface(faces))
    shapely.prepare(region)
    inside = shapely.contains_xy(region, xy[:, 0], xy[:, 1])
    return faces[inside], xy[inside]


def merge_faces(
    faces: NDArray[np.object_], labels: NDArray[np.intp], n_labels: int
) -> list[BaseGeometry]:
    """Coverage union of the faces of each label ``0..n_labels-1`` (empty Polygon if none).

    Examples
    --------
    >>> f = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    >>> [g.area for g in merge_faces(f, np.array([0, 0]), 2)]
    [2.0, 0.0]
    """
    labels = np.asarray(labels, dtype=np.intp)
    order = np.argsort(labels, kind="stable")
    labels, faces = labels[order], faces[order]
    starts = np.searchsorted(labels, np.arange(n_labels + 1))
    out: list[BaseGeometry] = []
    for i in range(n_labels):
        group = faces[starts[i] : starts[i + 1]]
        if len(group) == 0:
            out.append(shapely.Polygon())
        elif len(group) == 1:
            out.append(group[0])
        else:
            out.append(shapely.coverage_union_all(group))
    return out
