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
import scipy.sparse as sp
import shapely
from numpy.typing import NDArray

__all__ = ["GRID_M", "community_atoms"]

_MIN_AREA_M2 = 1e-6
GRID_M = 1e-3  # precision grid of atom coordinates, metres


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
    polygons: NDArray[np.object_] | None = None,
) -> tuple[list[shapely.Geometry], NDArray[np.int64], NDArray[np.int64], sp.csr_matrix]:
    """Tessellate ``region`` into atoms, one per distinct unit location, plus empty atoms.

    With ``polygons`` (units that are blocks), each unit's polygon clipped to the
    region is its atom and the land no unit covers makes empty atoms; barriers
    then only tell which block (between streets) each atom lies in.

    Parameters
    ----------
    region
        The community (metric CRS), minus any exclusive areas.
    points
        ``(n, 2)`` unit locations inside ``region``.
    barriers
        Barrier lines (metric CRS) or None.
    polygons
        The units' polygons (metric CRS, not overlapping), or None to build
        Voronoi atoms around ``points``.

    Returns
    -------
    atoms
        Single polygons tiling ``region``.
    owner
        For each unit, the index of the atom that holds it.
    block
        For each atom, the index of the block (between barriers) it lies in.
    adjacency
        Symmetric CSR matrix of the boundary length (metres) each pair of atoms shares.
    """
    blocks = _blocks(region, barriers)
    n = len(points)
    owner = np.full(n, -1, dtype=np.int64)
    atoms: list[shapely.Geometry] = []
    atom_block: list[int] = []
    if not blocks:
        return atoms, owner, np.empty(0, dtype=np.int64), sp.csr_matrix((0, 0))
    block_arr = np.array(blocks, dtype=object)
    tree = shapely.STRtree(block_arr)
    pts: Any = shapely.points(points) if n else np.empty(0, dtype=object)
    block_of = _block_of(tree, pts)
    if polygons is not None:
        return _polygon_atoms(region, np.asarray(polygons, dtype=object), block_of, points, tree)
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
        parts, part_site = shapely.get_parts(clipped, return_index=True)
        poly = shapely.get_type_id(parts) == 3
        parts, part_site = parts[poly], part_site[poly]
        n_parts = np.bincount(part_site, minlength=len(uniq_xy))
        first = np.searchsorted(part_site, np.arange(len(uniq_xy)))
        cell_atoms = np.empty(len(uniq_xy), dtype=object)
        single = n_parts == 1
        cell_atoms[single] = parts[first[single]]
        extra: list[shapely.Geometry] = []
        for s in np.flatnonzero(~single):
            mine = list(parts[first[s] : first[s] + n_parts[s]])
            if not mine:
                cell_atoms[s] = shapely.buffer(site_pts[s], 0.01)
                continue
            # the part holding the site is the atom; other parts become empty atoms
            hold = int(np.argmax([p.distance(site_pts[s]) == 0 for p in mine]))
            cell_atoms[s] = mine[hold]
            extra.extend(p for i, p in enumerate(mine) if i != hold and p.area > _MIN_AREA_M2)
        atoms.extend(cell_atoms)
        owner[members] = base + inverse
        atoms.extend(extra)
        atom_block.extend([b] * (len(atoms) - len(atom_block)))
    return _noded(
        np.array(atoms, dtype=object), owner, np.asarray(atom_block, np.int64), region, points
    )


def _block_of(tree: shapely.STRtree, pts: NDArray[np.object_]) -> NDArray[np.int64]:
    """Each point into one block: the first covering block, else the nearest."""
    n = len(pts)
    first = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return first
    pi, bi = tree.query(pts, predicate="covered_by")
    order = np.lexsort((bi, pi))
    pi, bi = pi[order], bi[order]
    uniq, idx = np.unique(pi, return_index=True)
    first[uniq] = bi[idx]
    missing = np.flatnonzero(first < 0)
    if len(missing):
        near = tree.query_nearest(pts[missing], return_distance=False)
        first[missing[near[0]]] = near[1]
    return first


def _polygon_atoms(
    region: shapely.Geometry,
    polygons: NDArray[np.object_],
    block: NDArray[np.int64],
    points: NDArray[np.float64],
    tree: shapely.STRtree,
) -> tuple[list[shapely.Geometry], NDArray[np.int64], NDArray[np.int64], sp.csr_matrix]:
    """Atoms from unit polygons (blocks): each clipped to the region, plus the land left."""
    shapely.prepare(region)
    clipped = np.array(polygons, dtype=object)
    out = ~shapely.covered_by(clipped, region)
    clipped[out] = shapely.intersection(clipped[out], region)
    mixed = np.flatnonzero(shapely.get_type_id(clipped) == 7)  # polygons with stray lines
    for i in mixed:
        polys = [p for p in shapely.get_parts(clipped[i]) if p.geom_type == "Polygon"]
        clipped[i] = shapely.multipolygons(polys) if polys else shapely.Polygon()
    owner = np.arange(len(polygons), dtype=np.int64)
    fast = _clean_coverage(clipped, region, tree, block)
    if fast is not None:
        atoms, block, adj = fast
        return list(atoms), owner, block, adj
    # else the land no unit covers comes out of the noding as faces no atom holds
    return _noded(clipped, owner, block, region, points, overlap_error=True)


def _clean_coverage(
    clipped: NDArray[np.object_],
    region: shapely.Geometry,
    tree: shapely.STRtree,
    block: NDArray[np.int64],
) -> tuple[NDArray[np.object_], NDArray[np.int64], sp.csr_matrix] | None:
    """Atoms and adjacency without noding, when the blocks already form a clean coverage.

    Single polygons whose edges match vertex for vertex (``coverage_is_valid``)
    need no noding: the land they leave becomes empty atoms and, if the whole is
    still a clean coverage of the region, adjacency is exact segment matching.
    None when that does not hold (then the caller nodes the atoms).
    """
    if not len(clipped) or not bool((shapely.get_type_id(clipped) == 3).all()):
        return None
    if not shapely.coverage_is_valid(clipped):
        return None
    atoms = clipped
    whole = float(shapely.area(region))
    gap = abs(float(shapely.area(clipped).sum()) - whole) > 1e-9 * whole
    if gap:
        rest = shapely.difference(region, shapely.coverage_union_all(clipped))
        land = shapely.get_parts(rest)
        land = land[(shapely.get_type_id(land) == 3) & (shapely.area(land) > _MIN_AREA_M2)]
        atoms = np.concatenate([clipped, land])
    if abs(float(shapely.area(atoms).sum()) - whole) > 1e-9 * whole:
        return None
    if gap and not shapely.coverage_is_valid(atoms):
        return None
    if len(atoms) > len(clipped):
        land_block = _block_of(tree, shapely.point_on_surface(atoms[len(clipped) :]))
        block = np.concatenate([block, land_block])
    pi, pj, plen = _edge_pairs(atoms)
    m = len(atoms)
    rows, cols = np.concatenate([pi, pj]), np.concatenate([pj, pi])
    adj = sp.csr_matrix((np.concatenate([plen, plen]), (rows, cols)), shape=(m, m))
    adj.sum_duplicates()
    return atoms, block, adj


class AtomOverlap(ValueError):
    """Two unit polygons (atoms ``i`` and ``j``) overlap by ``area`` m²."""

    def __init__(self, i: int, j: int, area: float) -> None:
        super().__init__(f"atoms {i} and {j} overlap by {area:.1f} m²")
        self.i, self.j, self.area = i, j, area


def _edge_pairs(faces: NDArray[np.object_]) -> tuple[NDArray[np.int64], ...]:
    """Faces that share a segment, with its length: ``(face_i, face_j, length)``.

    The faces come from one polygonize of noded lines whose vertices lie on the
    1 mm grid, so a shared segment has the same two (integer) end points in both
    faces, and matching segments is an exact sort, not a geometric overlay.
    """
    rings, face_of_ring = shapely.get_rings(faces, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    same_ring = ring_of[:-1] == ring_of[1:]
    q = np.rint(xy / GRID_M).astype(np.int64)
    a, b = q[:-1][same_ring], q[1:][same_ring]
    face = face_of_ring[ring_of[:-1][same_ring]]
    length = np.hypot(*(xy[1:][same_ring] - xy[:-1][same_ring]).T)
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    order = np.lexsort((hi[:, 1], hi[:, 0], lo[:, 1], lo[:, 0]))
    key = np.concatenate([lo, hi], axis=1)[order]
    dup = np.flatnonzero(np.all(key[1:] == key[:-1], axis=1))
    fi, fj = face[order][dup], face[order][dup + 1]
    keep = fi != fj
    return fi[keep], fj[keep], length[order][dup][keep]


def _noded(
    atoms: NDArray[np.object_],
    owner: NDArray[np.int64],
    block: NDArray[np.int64],
    region: shapely.Geometry,
    points: NDArray[np.float64],
    *,
    overlap_error: bool = False,
) -> tuple[list[shapely.Geometry], NDArray[np.int64], NDArray[np.int64], sp.csr_matrix]:
    """Rebuild the atoms as one noded coverage on the 1 mm grid, with their adjacency.

    Atoms clipped block by block meet along streets at T-junctions: a vertex of one
    side lies on an edge of the other only to within rounding. Unioning all atom
    boundaries on a 1 mm grid nodes them (snap rounding), and polygonizing gives
    faces whose shared edges have identical vertices on both sides. Each face goes
    back to the atom holding it; thin sliver faces that no atom holds (between the
    two sides of a street edge) join the neighbour they share most boundary with;
    faces outside the region (its holes) are dropped. Land that no atom holds and
    that is not a sliver (≥ 1 m², e.g. between unit polygons that leave gaps)
    becomes an empty atom. With ``overlap_error``, a face of ≥ 1 m² inside two
    atoms raises :class:`AtomOverlap`. Because the result is a
    proper coverage, shared boundary lengths come from exact segment matching and
    grids are unions by ``shapely.coverage_union_all``, both far cheaper than
    overlays.
    """
    edges = np.concatenate([shapely.boundary(atoms), [shapely.boundary(region)]])
    lines = shapely.union_all(edges, grid_size=GRID_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    face_area = shapely.area(faces)
    faces, face_area = faces[face_area > 0], face_area[face_area > 0]
    rep = shapely.point_on_surface(faces)
    fi, ai = shapely.STRtree(atoms).query(rep, predicate="within")
    by_face = np.argsort(fi, kind="stable")
    fi, ai = fi[by_face], ai[by_face]
    if overlap_error and len(fi):
        twice = np.flatnonzero((fi[1:] == fi[:-1]) & (face_area[fi[1:]] >= 1.0))
        if len(twice):
            k = twice[0]
            raise AtomOverlap(int(ai[k]), int(ai[k + 1]), float(face_area[fi[k]]))
    atom_of = np.full(len(faces), -1, dtype=np.int64)
    atom_of[fi] = ai
    shapely.prepare(region)
    hole = (atom_of < 0) & ~shapely.intersects(region, rep)
    # land no atom holds: empty atoms of their own (slivers are joined below)
    land = np.flatnonzero((atom_of < 0) & ~hole & (face_area >= 1.0))
    n = len(atoms)
    if len(land):
        atom_of[land] = n + np.arange(len(land))
        atoms = np.concatenate([atoms, faces[land]])
        block = np.concatenate([block, np.full(len(land), -1, dtype=np.int64)])
        n = len(atoms)
    pi, pj, plen = _edge_pairs(faces)
    if len(land):  # an empty atom lies in the block of the atom it shares most edge with
        best = np.zeros(n)
        for x, y in ((pi, pj), (pj, pi)):
            ax, ay = atom_of[x], atom_of[y]
            cand = (ax >= 0) & (ay >= 0) & (block[np.maximum(ax, 0)] < 0)
            cand &= block[np.maximum(ay, 0)] >= 0
            for a, b, ln in zip(ax[cand], ay[cand], plen[cand]):
                if ln > best[a]:
                    best[a] = ln
                    block[a] = block[b]
        block[block < 0] = block.max() + 1
    # slivers: repeatedly join the neighbouring atom with the longest shared edge
    for _ in range(8):
        lost = np.flatnonzero((atom_of < 0) & ~hole)
        if len(lost) == 0:
            break
        best_len = np.zeros(len(faces))
        best_atom = np.full(len(faces), -1, dtype=np.int64)
        for x, y in ((pi, pj), (pj, pi)):
            cand = (atom_of[x] < 0) & (atom_of[y] >= 0)
            for f, g, ln in zip(x[cand], y[cand], plen[cand]):
                if ln > best_len[f]:
                    best_len[f], best_atom[f] = ln, atom_of[g]
        if not (best_atom[lost] >= 0).any():
            break
        atom_of[lost] = best_atom[lost]
    inside = atom_of >= 0
    # atom geometry: its faces (usually one), unioned as a coverage
    order = np.argsort(atom_of[inside], kind="stable")
    fidx = np.flatnonzero(inside)[order]
    starts = np.searchsorted(atom_of[fidx], np.arange(n + 1))
    geoms = np.empty(n, dtype=object)
    for k in range(n):
        mine = fidx[starts[k] : starts[k + 1]]
        geoms[k] = (
            faces[mine[0]]
            if len(mine) == 1
            else shapely.coverage_union_all(faces[mine])
            if len(mine)
            else shapely.Polygon()
        )
    # split multi-part atoms: the part holding the atom's units (else the largest)
    # stays, the others become empty atoms
    site = np.full(n, -1, dtype=np.int64)
    site[owner[owner >= 0]] = np.flatnonzero(owner >= 0)
    out: list[shapely.Geometry] = []
    out_block: list[int] = []
    piece_of_face = np.full(len(faces), -1, dtype=np.int64)
    new_index = np.full(n, -1, dtype=np.int64)
    pieces: list[tuple[shapely.Geometry, int, NDArray[np.int64]]] = []
    for k in range(n):
        g = geoms[k]
        if g.is_empty:
            continue
        new_index[k] = len(out)
        if g.geom_type == "Polygon":
            out.append(g)
            out_block.append(int(block[k]))
            continue
        parts = sorted(shapely.get_parts(g), key=lambda q: -q.area)
        if site[k] >= 0:
            at = shapely.Point(points[site[k]])
            parts.sort(key=lambda q: q.distance(at))
        out.append(parts[0])
        out_block.append(int(block[k]))
        mine = fidx[starts[k] : starts[k + 1]]
        for part in parts[1:]:
            pieces.append((part, int(block[k]), mine[shapely.within(rep[mine], part)]))
    for part, b, mine in pieces:
        piece_of_face[mine] = len(out)
        out.append(part)
        out_block.append(b)
    face_atom = np.where(inside, new_index[np.maximum(atom_of, 0)], -1)
    face_atom = np.where(piece_of_face >= 0, piece_of_face, face_atom)
    owner = np.where(owner >= 0, new_index[np.maximum(owner, 0)], -1)
    m = len(out)
    ai_, aj_ = face_atom[pi], face_atom[pj]
    ok = (ai_ >= 0) & (aj_ >= 0) & (ai_ != aj_)
    rows = np.concatenate([ai_[ok], aj_[ok]])
    cols = np.concatenate([aj_[ok], ai_[ok]])
    vals = np.concatenate([plen[ok], plen[ok]])
    adj = sp.csr_matrix((vals, (rows, cols)), shape=(m, m))
    adj.sum_duplicates()
    return out, owner, np.asarray(out_block, dtype=np.int64), adj
