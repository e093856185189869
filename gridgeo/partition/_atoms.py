"""Atoms: the small polygons grids are built from.

A community is first cut by the barrier lines (streets, rivers) into blocks,
then each block is tessellated by the Voronoi cells of the units (buildings)
inside it. Every atom is a single polygon; the atoms of a community tile it.
Grids are unions of atoms, so grid edges can only run along barriers or
between buildings, never through one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["community_atoms"]

_MIN_AREA_M2 = 1e-6
_GRID_M = 1e-3  # precision grid of atom coordinates, metres


def _blocks(
    region: shapely.Geometry, barriers: NDArray[np.object_] | None
) -> list[shapely.Geometry]:
    """Cut ``region`` by barrier lines into single polygons (blocks)."""
    if barriers is None or len(barriers) == 0:
        return [p for p in shapely.get_parts(region) if p.area > _MIN_AREA_M2]
    lines = shapely.intersection(barriers, region)
    lines = lines[~shapely.is_empty(lines)]
    if len(lines) == 0:
        return [p for p in shapely.get_parts(region) if p.area > _MIN_AREA_M2]
    edges = shapely.union_all(np.concatenate([[shapely.boundary(region)], lines]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    # keep the faces inside the region (polygonize also closes holes)
    inside = shapely.intersection(faces, region)
    blocks: list[shapely.Geometry] = []
    for f in inside:
        blocks.extend(
            p for p in shapely.get_parts(f) if p.geom_type == "Polygon" and p.area > _MIN_AREA_M2
        )
    covered = shapely.union_all(blocks) if blocks else shapely.Polygon()
    rest = shapely.difference(region, covered)
    blocks.extend(
        p for p in shapely.get_parts(rest) if p.geom_type == "Polygon" and p.area > _MIN_AREA_M2
    )
    return blocks


def community_atoms(
    region: shapely.Geometry,
    points: NDArray[np.float64],
    barriers: NDArray[np.object_] | None,
) -> tuple[list[shapely.Geometry], NDArray[np.int64], NDArray[np.int64]]:
    """Tessellate ``region`` into atoms, one per distinct unit location, plus empty atoms.

    Parameters
    ----------
    region
        The community (metric CRS), minus any exclusive areas.
    points
        ``(n, 2)`` unit locations inside ``region``.
    barriers
        Barrier lines (metric CRS) or None.

    Returns
    -------
    atoms
        Single polygons tiling ``region``.
    owner
        For each unit, the index of the atom that holds it.
    block
        For each atom, the index of the block (between barriers) it lies in.
    """
    blocks = _blocks(region, barriers)
    n = len(points)
    owner = np.full(n, -1, dtype=np.int64)
    atoms: list[shapely.Geometry] = []
    atom_block: list[int] = []
    if not blocks:
        return atoms, owner, np.empty(0, dtype=np.int64)
    block_arr = np.array(blocks, dtype=object)
    tree = shapely.STRtree(block_arr)
    pts: Any = shapely.points(points) if n else np.empty(0, dtype=object)
    # each unit into one block: the first covering block, else the nearest
    block_of = np.full(n, -1, dtype=np.int64)
    if n:
        pi, bi = tree.query(pts, predicate="covered_by")
        first = np.full(n, -1, dtype=np.int64)
        order = np.lexsort((bi, pi))
        pi, bi = pi[order], bi[order]
        uniq, idx = np.unique(pi, return_index=True)
        first[uniq] = bi[idx]
        missing = np.flatnonzero(first < 0)
        if len(missing):
            near = tree.query_nearest(pts[missing], return_distance=False)
            first[missing[near[0]]] = near[1]
        block_of = first
    for b, block in enumerate(blocks):
        members = np.flatnonzero(block_of == b)
        if len(members) == 0:
            atoms.append(block)
            atom_block.append(b)
            continue
        xy = points[members]
        uniq_xy, inverse = np.unique(np.round(xy, 3), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        if len(uniq_xy) == 1:
            owner[members] = len(atoms)
            atoms.append(block)
            atom_block.append(b)
            continue
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(uniq_xy), extend_to=block)
        )
        # voronoi_polygons does not keep input order: match cells to sites
        site_pts: Any = shapely.points(uniq_xy)
        ctree = shapely.STRtree(cells)
        si, ci = ctree.query(site_pts, predicate="within")
        cell_of_site = np.full(len(uniq_xy), -1, dtype=np.int64)
        cell_of_site[si] = ci
        lost = np.flatnonzero(cell_of_site < 0)
        if len(lost):
            near = ctree.query_nearest(site_pts[lost], return_distance=False)
            cell_of_site[lost[near[0]]] = near[1]
        clipped = shapely.intersection(cells[cell_of_site], block)
        base = len(atoms)
        extra: list[shapely.Geometry] = []
        for s, geom in enumerate(clipped):
            parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
            if not parts:
                parts = [shapely.buffer(site_pts[s], 0.01)]
            # the part holding the site is the atom; other parts become empty atoms
            hold = (
                int(np.argmax([p.distance(site_pts[s]) == 0 for p in parts]))
                if len(parts) > 1
                else 0
            )
            atoms.append(parts[hold])
            extra.extend(p for i, p in enumerate(parts) if i != hold and p.area > _MIN_AREA_M2)
        owner[members] = base + inverse
        atoms.extend(extra)
        atom_block.extend([b] * (len(atoms) - len(atom_block)))
    # Snap every atom to one 1 mm grid, so that edges computed twice (once for
    # each neighbour) coincide exactly and unions of atoms have no hairline gaps.
    snapped = shapely.set_precision(np.array(atoms, dtype=object), _GRID_M)
    keep = ~shapely.is_empty(snapped)
    remap = np.cumsum(keep) - 1
    owner = np.where(owner >= 0, remap[np.maximum(owner, 0)], -1)
    kept_block = np.asarray(atom_block, dtype=np.int64)[keep]
    out: list[shapely.Geometry] = []
    pieces: list[shapely.Geometry] = []
    piece_block: list[int] = []
    for g, b in zip(snapped[keep], kept_block):
        parts = [q for q in shapely.get_parts(g) if q.geom_type == "Polygon"]
        if len(parts) <= 1:
            out.append(parts[0] if parts else g)
            continue
        parts.sort(key=lambda q: -q.area)
        out.append(parts[0])
        pieces.extend(parts[1:])  # snapped off: empty atoms of their own
        piece_block.extend([int(b)] * (len(parts) - 1))
    return out + pieces, owner, np.concatenate([kept_block, np.asarray(piece_block, np.int64)])
