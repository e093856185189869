"""Base grids of the demo county, and the final exact hierarchy grid ⊂ community ⊂ town ⊂ county.

Examples
--------
>>> from gridgeo._demo.territory import build_territory
>>> from gridgeo._demo.people import build_buildings
>>> rng = np.random.default_rng(0)
>>> t = build_territory(rng, 0.3)
>>> h = build_grids(t, build_buildings(t, rng, 0.3), rng, 0.3)
>>> len(h.grids) == max(t.n_urban + t.n_rural, round(60 * 0.3))
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from gridgeo._demo.common import cut_faces, kmeans, merge_faces, reading_order, snap_to_points
from gridgeo._demo.people import Buildings
from gridgeo._demo.territory import Territory

__all__ = ["Hierarchy", "allocate", "build_grids"]

log = logging.getLogger(__name__)

#: Base grids at scale 1 (Xinfeng's 60 basic grids).
N_GRIDS = 60


@dataclass
class Hierarchy:
    """Exactly nested polygons (local metres) and the building → grid map."""

    grids: list[BaseGeometry]
    grid_community: NDArray[np.intp]
    grid_serial: NDArray[np.intp]  # 1-based, reading order within the community
    communities: list[BaseGeometry]
    towns: list[BaseGeometry]
    county: BaseGeometry
    building_grid: NDArray[np.intp]


def allocate(households: NDArray[np.int64], total: int) -> NDArray[np.intp]:
    """Grids per community: at least one each, the rest by highest households per grid.

    Examples
    --------
    >>> allocate(np.array([1000, 250, 250]), 5).tolist()
    [3, 1, 1]
    """
    k = np.ones(len(households), dtype=np.intp)
    hh = np.asarray(households, dtype=np.float64)
    for _ in range(max(0, total - len(k))):
        k[np.argmax(hh / k)] += 1
    return k


def _grid_centres(
    xy: NDArray[np.float64], hh: NDArray[np.int64], k: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """``k`` distinct building positions near the household-weighted k-means centres."""
    centres, _ = kmeans(xy, k, rng, weights=hh.astype(np.float64))
    return xy[snap_to_points(centres, xy)]


def _block_grids(
    blocks: NDArray[np.object_],
    xy: NDArray[np.float64],
    hh: NDArray[np.int64],
    k: int,
    rng: np.random.Generator,
) -> NDArray[np.intp] | None:
    """Grid (0..k-1) of each street block: household-weighted k-means of block centres.

    So urban grids are unions of whole blocks and their edges run along streets.
    ``None`` when fewer than ``k`` blocks are inhabited or a grid would get no block.
    """
    i, j = shapely.STRtree(blocks).query(shapely.points(xy), predicate="within")
    block_hh = np.bincount(j, weights=hh[i], minlength=len(blocks)).astype(np.float64)
    full = np.flatnonzero(block_hh > 0)
    if len(full) < k:
        return None
    cxy = shapely.get_coordinates(shapely.centroid(blocks))
    centres, _ = kmeans(cxy[full], k, rng, weights=block_hh[full])
    _, label = cKDTree(centres).query(cxy)
    if len(np.unique(label[full])) < k:
        return None
    return np.asarray(label, dtype=np.intp)


def build_grids(t: Territory, b: Buildings, rng: np.random.Generator, scale: float) -> Hierarchy:
    """Cut each community into grids, exactly.

    In the seat a grid is a union of whole street blocks (household-weighted
    k-means of the blocks); in villages, and as a fallback, the Voronoi cells of
    household-weighted centres (snapped to buildings) cut the community.

    Examples
    --------
    >>> from gridgeo._demo.territory import build_territory
    >>> from gridgeo._demo.people import build_buildings
    >>> rng = np.random.default_rng(2)
    >>> t = build_territory(rng, 0.3)
    >>> h = build_grids(t, build_buildings(t, rng, 0.3), rng, 0.3)
    >>> import math
    >>> math.isclose(sum(g.area for g in h.grids), h.county.area, rel_tol=1e-9)
    True
    """
    n_comm = len(t.communities)
    hh_comm = np.bincount(b.community, weights=b.households, minlength=n_comm)
    n_bld = np.bincount(b.community, minlength=n_comm)
    k = np.minimum(allocate(hh_comm.astype(np.int64), max(n_comm, round(N_GRIDS * scale))), n_bld)
    offset = np.concatenate([[0], np.cumsum(k)])
    centres: list[NDArray[np.float64]] = []
    lines: list[BaseGeometry] = [shapely.boundary(c) for c in t.communities]
    by_block: dict[int, tuple[shapely.STRtree, NDArray[np.intp]]] = {}
    for c in range(n_comm):
        mine = b.community == c
        cen = _grid_centres(b.xy[mine], b.households[mine], int(k[c]), rng)
        centres.append(cen)
        if k[c] > 1 and c < t.n_urban:
            blocks = t.blocks[t.block_community == c]
            label = _block_grids(blocks, b.xy[mine], b.households[mine], int(k[c]), rng)
            if label is not None:
                by_block[c] = (shapely.STRtree(blocks), label)
                lines.extend(shapely.boundary(blocks))
                continue
        if k[c] > 1:
            comm = t.communities[c]
            cells = shapely.get_parts(
                shapely.voronoi_polygons(
                    shapely.multipoints(cen), extend_to=shapely.buffer(comm, 100.0)
                )
            )
            lines.append(
                shapely.intersection(
                    shapely.union_all(shapely.boundary(cells)), shapely.buffer(comm, 5.0)
                )
            )
    faces, xy = cut_faces(t.outline, lines)

    comm_tree = shapely.STRtree(np.asarray(t.communities, dtype=object))
    pts = shapely.points(xy)
    face_comm = np.full(len(faces), -1, dtype=np.intp)
    i, j = comm_tree.query(pts, predicate="within")
    face_comm[i] = j
    lost = face_comm < 0
    if lost.any():
        face_comm[lost] = comm_tree.query_nearest(np.asarray(pts)[lost], all_matches=False)[1]
    face_grid = np.empty(len(faces), dtype=np.intp)
    for c in range(n_comm):
        mine = face_comm == c
        if not mine.any():
            continue
        face_grid[mine] = offset[c] + cKDTree(centres[c]).query(xy[mine])[1]
        if c in by_block:
            tree, label = by_block[c]
            idx = np.flatnonzero(mine)
            fi, bi = tree.query(shapely.points(xy[idx]), predicate="within")
            face_grid[idx[fi]] = offset[c] + label[bi]
    n_grids = int(offset[-1])
    grids = merge_faces(faces, face_grid, n_grids)
    communities = merge_faces(faces, face_comm, n_comm)
    towns = merge_faces(faces, t.town_of[face_comm], t.n_towns)
    county = shapely.coverage_union_all(faces)
    grid_comm = np.repeat(np.arange(n_comm), k)
    empty = shapely.is_empty(np.asarray(grids, dtype=object))
    if empty.any():  # cannot happen: each centre is a building inside its own cell
        raise RuntimeError(f"demo grids {np.flatnonzero(empty).tolist()} got no area")

    gxy = shapely.get_coordinates(shapely.point_on_surface(np.asarray(grids, dtype=object)))
    serial = np.empty(n_grids, dtype=np.intp)
    for c in range(n_comm):
        sl = slice(offset[c], offset[c + 1])
        serial[sl] = 1 + reading_order(gxy[sl, 0], gxy[sl, 1])

    grid_tree = shapely.STRtree(np.asarray(grids, dtype=object))
    bpts = shapely.points(b.xy)
    bi, bj = grid_tree.query(bpts, predicate="intersects")
    first = np.unique(bi, return_index=True)[1]
    building_grid = np.full(len(b.xy), -1, dtype=np.intp)
    building_grid[bi[first]] = bj[first]
    lost = building_grid < 0
    if lost.any():
        building_grid[lost] = grid_tree.query_nearest(np.asarray(bpts)[lost], all_matches=False)[1]
    moved = grid_comm[building_grid] != b.community
    if moved.any():
        log.warning("%d demo buildings fell on a community edge and were reassigned", moved.sum())
        b.community = grid_comm[building_grid]
    return Hierarchy(
        grids=grids,
        grid_community=grid_comm,
        grid_serial=serial,
        communities=communities,
        towns=towns,
        county=county,
        building_grid=building_grid,
    )
