"""Per-cell edge lists for the compiled exact test of boundary cells.

For every boundary cell of a lookup table and every zone that meets it, this
collects the zone's edges that can meet the cell, and a reference point in the
cell whose status (in or out of the zone) shapely decides once, exactly. The
kernel :func:`gridgeo.assign._kernels.exact_lookup` then answers a point of the
cell by counting the edges the segment from the point to the reference point
crosses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["CellEdges", "cell_edges"]

# reference point inside each cell, as a fraction of the cell; off-centre so that it
# does not line up with the round coordinates of axis-aligned zones
_REF_FX, _REF_FY = 0.5371, 0.4629


@dataclass(frozen=True)
class CellEdges:
    """Edges and reference points per (boundary cell, candidate zone) pair ``k``."""

    edge_ptr: NDArray[np.int64]  # CSR over k
    edges: NDArray[np.float64]  # (m, 4): ax, ay, bx, by
    ref: NDArray[np.float64]  # (K, 2)
    ref_in: NDArray[np.bool_]  # (K,)


def cell_edges(
    geoms: NDArray[np.object_],
    x0: float,
    y0: float,
    dx: float,
    dy: float,
    nx: int,
    ny: int,
    cand_ptr: NDArray[np.int64],
    cand: NDArray[np.int32],
) -> CellEdges:
    """Collect, for each candidate pair of the table, the zone's edges that meet the cell.

    An edge is listed for every cell its bounding box overlaps, with cell indices
    computed by the same floor formula as the lookup, so any edge that meets a
    segment inside the cell is listed for that cell.
    """
    ncell = nx * ny
    kcount = np.diff(cand_ptr)
    cell_of_k = np.repeat(np.arange(ncell, dtype=np.int64), kcount)
    nk = len(cand)
    parts, zone_of_part = shapely.get_parts(geoms, return_index=True)  # get_rings: polygons
    rings, part_of_ring = shapely.get_rings(parts, return_index=True)
    zone_of_ring = zone_of_part[part_of_ring]
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[:-1] == ring_of[1:]
    a, b = xy[:-1][same], xy[1:][same]
    zone = zone_of_ring[ring_of[:-1][same]].astype(np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    ix0 = np.clip(np.floor((lo[:, 0] - x0) / dx), 0, nx - 1).astype(np.int64)
    ix1 = np.clip(np.floor((hi[:, 0] - x0) / dx), 0, nx - 1).astype(np.int64)
    iy0 = np.clip(np.floor((lo[:, 1] - y0) / dy), 0, ny - 1).astype(np.int64)
    iy1 = np.clip(np.floor((hi[:, 1] - y0) / dy), 0, ny - 1).astype(np.int64)
    wx = ix1 - ix0 + 1
    span = wx * (iy1 - iy0 + 1)
    seg = np.repeat(np.arange(len(a)), span)
    local = np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span)
    oy, ox = np.divmod(local, wx[seg])
    cell = (iy0[seg] + oy) * nx + (ix0[seg] + ox)
    # the pair k = (cell, zone) in the table's candidate list, if the zone is a candidate
    zmax = len(geoms)
    kkey = cell_of_k * zmax + cand.astype(np.int64)
    key = cell * zmax + zone[seg]
    k = np.minimum(np.searchsorted(kkey, key), max(nk - 1, 0))
    hit = kkey[k] == key if nk else np.zeros(len(key), dtype=bool)
    k, seg = k[hit], seg[hit]
    order = np.argsort(k, kind="stable")
    k, seg = k[order], seg[order]
    edge_ptr = np.zeros(nk + 1, dtype=np.int64)
    np.cumsum(np.bincount(k, minlength=nk), out=edge_ptr[1:])
    edges = np.ascontiguousarray(np.concatenate([a[seg], b[seg]], axis=1))
    cy, cx = np.divmod(cell_of_k, nx)
    ref = np.column_stack([x0 + (cx + _REF_FX) * dx, y0 + (cy + _REF_FY) * dy])
    ref_in = shapely.covers(geoms[cand], shapely.points(ref)) if nk else np.zeros(0, dtype=bool)
    return CellEdges(edge_ptr, edges, np.ascontiguousarray(ref), np.asarray(ref_in, dtype=bool))
