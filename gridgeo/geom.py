"""Small vectorised geometry helpers shared by the packages.

All measures are taken in the metric CRS of the data (:func:`gridgeo.crs.metric_crs`),
never in degrees.

Examples
--------
>>> import geopandas as gpd, shapely
>>> g = gpd.GeoSeries([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(5, 5, 6, 6)],
...                   crs="EPSG:4549")
>>> adjacency(g).toarray().astype(int).tolist()
[[0, 1, 0], [1, 0, 0], [0, 0, 0]]
>>> polsby_popper(g).round(3).tolist()
[0.785, 0.785, 0.785]
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import scipy.sparse as sp
import shapely
from numpy.typing import NDArray

from gridgeo.crs import metric_crs
from gridgeo.errors import CRSError, InputError

__all__ = [
    "DEFAULT_TOLERANCE_M",
    "adjacency",
    "area_km2",
    "polsby_popper",
    "shared_boundaries",
    "to_metric",
]

DEFAULT_TOLERANCE_M = 0.01
"""Boundaries closer than this (metres) are matched as shared by :func:`adjacency`."""


def to_metric(data: gpd.GeoDataFrame | gpd.GeoSeries) -> gpd.GeoDataFrame | gpd.GeoSeries:
    """Return ``data`` projected to its metric CRS (a copy; a no-op if already projected).

    Raises
    ------
    CRSError
        If ``data`` has no CRS.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> s = gpd.GeoSeries([shapely.box(120, 30, 120.01, 30.01)], crs="EPSG:4490")
    >>> to_metric(s).crs.to_epsg()
    4549
    """
    if data.crs is None:
        raise CRSError("the data has no CRS; set one (e.g. gdf.set_crs('EPSG:4490'))")
    if data.crs.is_projected:
        return data
    return data.to_crs(metric_crs(data))


def area_km2(data: gpd.GeoDataFrame | gpd.GeoSeries) -> NDArray[np.float64]:
    """Area of each geometry in km², measured in the metric CRS.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> area_km2(gpd.GeoSeries([shapely.box(0, 0, 1000, 2000)], crs="EPSG:4549")).tolist()
    [2.0]
    """
    return np.asarray(to_metric(data).area, dtype=np.float64) / 1e6


def polsby_popper(data: gpd.GeoDataFrame | gpd.GeoSeries) -> NDArray[np.float64]:
    """Polsby–Popper compactness 4πA/P² of each geometry (1 for a disc, 0 for empty).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> polsby_popper(gpd.GeoSeries([shapely.box(0, 0, 4, 1)], crs="EPSG:4549")).round(3).tolist()
    [0.503]
    """
    m = to_metric(data)
    area = np.asarray(m.area, dtype=np.float64)
    perim = np.asarray(m.length, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pp = np.where(perim > 0, 4.0 * np.pi * area / (perim * perim), 0.0)
    return pp


def adjacency(
    data: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    min_shared_m: float = 0.0,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
) -> sp.csr_matrix:
    """Rook adjacency of polygons: ``A[i, j]`` is the shared boundary length in metres.

    Two polygons are neighbours when they share a boundary longer than
    ``min_shared_m`` (corner contacts share length 0 and are never neighbours).
    Boundaries count as shared where they run within ``tolerance_m`` of each other,
    measured in the metric CRS: polygons cut separately (each community's grids
    are noded on their own 1 mm grid by :func:`~gridgeo.partition.make_grids`)
    meet along edges whose vertices differ by fractions of a millimetre, or that
    have vertices on one side only; see :func:`shared_boundaries`.

    Parameters
    ----------
    data
        Polygons with a CRS.
    min_shared_m
        Minimum shared boundary length for an edge.
    tolerance_m
        Boundaries closer than this many metres are matched as one (default 1 cm);
        ``0`` requires exactly matching segments.

    Returns
    -------
    scipy.sparse.csr_matrix
        Symmetric ``n × n``, zero diagonal, in positional order of ``data``.

    Raises
    ------
    InputError
        If ``tolerance_m`` is negative or not finite.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoSeries([shapely.box(0, 0, 1, 1), shapely.box(1, 1, 2, 2)], crs="EPSG:4549")
    >>> adjacency(g).nnz
    0

    An edge with an extra vertex 0.3 mm off it still counts in full:

    >>> bent = shapely.Polygon([(1, 0), (2, 0), (2, 1), (1, 1), (1.0003, 0.5)])
    >>> g = gpd.GeoSeries([shapely.box(0, 0, 1, 1), bent], crs="EPSG:4549")
    >>> round(float(adjacency(g)[0, 1]), 3), float(adjacency(g, tolerance_m=0)[0, 1])
    (1.0, 0.0)
    """
    m = to_metric(data)
    geoms = np.asarray(m.geometry.values if isinstance(m, gpd.GeoDataFrame) else m.values)
    return shared_boundaries(geoms, min_shared=min_shared_m, tolerance=tolerance_m)


def shared_boundaries(
    geoms: NDArray[np.object_],
    *,
    min_shared: float = 0.0,
    tolerance: float = DEFAULT_TOLERANCE_M,
) -> sp.csr_matrix:
    """Rook adjacency of an array of polygons already in a metric CRS.

    ``A[i, j]`` is the length of the boundary ``i`` and ``j`` share, kept when
    it exceeds ``min_shared`` (in the units of the coordinates).

    With ``tolerance > 0`` the two boundaries are first noded against each other:
    ``i``'s ring is snapped to ``j``'s (``shapely.snap``: vertices within
    ``tolerance`` of ``j``'s vertices move onto them, and ``j``'s vertices are
    inserted into ``i``'s segments), then ``j``'s ring is snapped to that result,
    which inserts ``i``'s remaining vertices into ``j``'s segments. Along the
    common stretch both rings then have the same vertices, and their exact
    intersection measures it. A plain intersection would find only points where
    one side has a vertex the other lacks or the sides differ by a rounding error.
    Rounding both rings to a ``tolerance`` grid instead (``grid_size``) loses the
    segments next to a vertex that rounds across a pixel edge. With
    ``tolerance=0`` the segments must match exactly.

    Examples
    --------
    >>> import numpy as np, shapely
    >>> g = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    >>> shared_boundaries(g).toarray().tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    if not np.isfinite(tolerance) or tolerance < 0:
        raise InputError(f"tolerance must be a finite number of metres >= 0, got {tolerance!r}")
    n = len(geoms)
    tree = shapely.STRtree(geoms)
    # bounding-box candidates only (boxes grown by the tolerance): the intersection
    # below is the exact test, and an "intersects" predicate here would cost as much again
    if tolerance > 0:
        x0, y0, x1, y1 = shapely.bounds(geoms).T
        boxes = shapely.box(x0 - tolerance, y0 - tolerance, x1 + tolerance, y1 + tolerance)
        left, right = tree.query(boxes)
    else:
        left, right = tree.query(geoms)
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left) == 0:
        return sp.csr_matrix((n, n))
    rings = shapely.boundary(geoms)  # once per polygon, not once per pair
    a, b = rings[left], rings[right]
    if tolerance > 0:
        a = shapely.snap(a, b, tolerance)
        b = shapely.snap(b, a, tolerance)
    shared = shapely.length(shapely.intersection(a, b))
    ok = shared > min_shared
    rows = np.concatenate([left[ok], right[ok]])
    cols = np.concatenate([right[ok], left[ok]])
    vals = np.concatenate([shared[ok], shared[ok]])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
