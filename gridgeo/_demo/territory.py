"""The land of the demo county: outline, county seat street grid, roads, river, communities.

All coordinates are local metres (see :mod:`gridgeo._demo`).

Examples
--------
>>> t = build_territory(np.random.default_rng(0), 0.3)
>>> t.n_urban >= 1 and t.n_rural >= 2 and len(t.communities) == t.n_urban + t.n_rural
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from gridgeo._demo.common import kmeans, partition, sample_in, snap_to_points

__all__ = ["Territory", "build_territory", "group_contiguous"]

#: Area of the county at scale 1, m² (~36 km across).
AREA_M2 = 1.0e9
#: Urban communities, villages, urban and rural towns at scale 1.
N_URBAN, N_RURAL = 7, 17
VILLAGES_PER_TOWN, URBAN_PER_TOWN = 5.5, 8
#: Area of an urban community (m²) and the street spacing of the seat (m).
URBAN_COMMUNITY_M2 = 0.75e6
BLOCK_M = 260.0


@dataclass
class Territory:
    """Everything about the land that the later stages need (local metres)."""

    outline: shapely.Polygon
    centre: NDArray[np.float64]
    urban_radius: float
    blocks: NDArray[np.object_]  # quads of the seat's street grid inside the urban area
    block_community: NDArray[np.intp]  # urban community index of each block
    urban_area: BaseGeometry
    streets: NDArray[np.object_]  # secondary streets of the seat (lines)
    roads: list[shapely.LineString]  # main roads, running past the outline
    river: shapely.LineString
    communities: list[BaseGeometry]
    n_urban: int
    n_rural: int
    town_of: NDArray[np.intp]  # town index of each community
    n_urban_towns: int
    n_towns: int
    enclaves: list[tuple[int, int]]  # (host community, owner community)


def _outline(rng: np.random.Generator, radius: float) -> shapely.Polygon:
    """A wiggly star-shaped county outline of mean radius ``radius``."""
    theta = np.linspace(0.0, 2 * np.pi, 720, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 90):  # a ridge-like, roughly fractal edge
        amp = rng.uniform(0.3, 1.0) * 0.22 / k**1.05
        r += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.45, None)
    r *= radius / np.sqrt(np.mean(r**2))  # area ≈ π radius²
    return shapely.Polygon(np.column_stack([r * np.cos(theta), r * np.sin(theta)]))


def _street_grid(
    rng: np.random.Generator, centre: NDArray[np.float64], extent: float
) -> tuple[NDArray[np.float64], float]:
    """Jittered, rotated street-grid nodes ``(m, m, 2)`` around ``centre`` and the angle."""
    n = int(np.ceil(extent / BLOCK_M))
    ij = np.arange(-n, n + 1) * BLOCK_M
    gx, gy = np.meshgrid(ij, ij, indexing="ij")
    gx = gx + rng.uniform(-0.12, 0.12, gx.shape) * BLOCK_M
    gy = gy + rng.uniform(-0.12, 0.12, gy.shape) * BLOCK_M
    angle = rng.uniform(-0.45, 0.45)
    ca, sa = np.cos(angle), np.sin(angle)
    nodes = np.stack([centre[0] + ca * gx - sa * gy, centre[1] + sa * gx + ca * gy], axis=-1)
    return nodes, angle


def _blocks(nodes: NDArray[np.float64]) -> NDArray[np.object_]:
    m = nodes.shape[0] - 1
    quad = np.stack(
        [nodes[:-1, :-1], nodes[1:, :-1], nodes[1:, 1:], nodes[:-1, 1:], nodes[:-1, :-1]], axis=2
    ).reshape(m * m, 5, 2)
    return np.asarray(shapely.polygons(quad), dtype=object)


def _wander(
    rng: np.random.Generator, start: NDArray[np.float64], heading: float, length: float
) -> NDArray[np.float64]:
    """A gently turning polyline from ``start`` (steps of 800 m)."""
    steps = int(length / 800.0) + 1
    turns = np.cumsum(rng.normal(0.0, 0.12, steps))
    h = heading + turns - turns.mean() * 0.5
    xy = np.cumsum(np.column_stack([np.cos(h), np.sin(h)]) * 800.0, axis=0)
    return np.vstack([start, start + xy])


def _roads(
    rng: np.random.Generator, nodes: NDArray[np.float64], angle: float, reach: float
) -> list[shapely.LineString]:
    """Main roads: the two central streets of the seat, continued across the county."""
    mid = nodes.shape[0] // 2
    roads = []
    for line in (nodes[mid, :, :], nodes[:, mid, :]):
        a_end = _wander(rng, line[0], float(np.arctan2(*(line[0] - line[1])[::-1])), reach)
        b_end = _wander(rng, line[-1], float(np.arctan2(*(line[-1] - line[-2])[::-1])), reach)
        roads.append(shapely.LineString(np.vstack([a_end[::-1], line[1:-1], b_end])))
    # a third road leaving the seat diagonally
    corner = nodes[mid + 2, mid + 2]
    heading = angle + np.pi / 4 + rng.uniform(-0.3, 0.3)
    roads.append(shapely.LineString(_wander(rng, corner, heading, reach)))
    return roads


def _river(
    rng: np.random.Generator, centre: NDArray[np.float64], offset: float, reach: float
) -> shapely.LineString:
    """A meandering river skirting the seat at ``offset`` metres."""
    beta = rng.uniform(0, np.pi)
    t = np.linspace(-reach, reach, 600)
    wave = 350.0 * np.sin(t / 1400.0 + rng.uniform(0, 6.3)) + 600.0 * np.sin(t / 5200.0)
    y = offset + wave
    cb, sb = np.cos(beta), np.sin(beta)
    return shapely.LineString(
        np.column_stack([centre[0] + cb * t - sb * y, centre[1] + sb * t + cb * y])
    )


def group_contiguous(
    comms: list[BaseGeometry], members: NDArray[np.intp], k: int, rng: np.random.Generator
) -> NDArray[np.intp]:
    """Group polygons ``comms[members]`` into ``k`` contiguous groups (multi-source paths).

    Examples
    --------
    >>> boxes = [shapely.box(i, 0, i + 1, 1) for i in range(4)]
    >>> lab = group_contiguous(boxes, np.arange(4), 2, np.random.default_rng(0))
    >>> sorted(set(lab.tolist()))
    [0, 1]
    """
    geoms = np.asarray([comms[i] for i in members], dtype=object)
    cxy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    if k >= len(members):
        return np.arange(len(members), dtype=np.intp)
    centres, _ = kmeans(cxy, k, rng)
    sources = snap_to_points(centres, cxy)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left != right
    left, right = left[keep], right[keep]
    w = np.hypot(*(cxy[left] - cxy[right]).T) + 1.0
    graph = csr_matrix((w, (left, right)), shape=(len(geoms), len(geoms)))
    dist, _, src = dijkstra(graph, indices=sources, min_only=True, return_predecessors=True)
    label = np.full(len(geoms), -1, dtype=np.intp)
    reached = np.isfinite(dist)
    lookup = {int(s): i for i, s in enumerate(sources)}
    label[reached] = [lookup[int(s)] for s in src[reached]]
    if (~reached).any():  # disconnected pieces: nearest source
        _, near = cKDTree(cxy[sources]).query(cxy[~reached])
        label[~reached] = near
    return label


def build_territory(rng: np.random.Generator, scale: float) -> Territory:
    """Outline, seat, roads, river and the communities (exact tiling) at ``scale``.

    Examples
    --------
    >>> t = build_territory(np.random.default_rng(1), 0.3)
    >>> import math
    >>> total = sum(c.area for c in t.communities)
    >>> math.isclose(total, t.outline.area, rel_tol=1e-9)
    True
    """
    radius = float(np.sqrt(AREA_M2 * scale / np.pi))
    outline = _outline(rng, radius)
    n_urban = max(1, round(N_URBAN * scale))
    n_rural = max(2, round(N_RURAL * scale))
    urban_r = float(np.sqrt(n_urban * URBAN_COMMUNITY_M2 / np.pi))

    # county seat: off-centre, well inside the outline
    centre = np.zeros(2)
    for _ in range(20):
        cand = rng.normal(0.0, 0.15 * radius, 2)
        if shapely.Point(cand).distance(
            outline.exterior
        ) > 1.8 * urban_r + 500 and outline.contains(shapely.Point(cand)):
            centre = cand
            break
    nodes, angle = _street_grid(rng, centre, 1.6 * urban_r)
    blocks = _blocks(nodes)
    bxy = shapely.get_coordinates(shapely.centroid(blocks))
    rel = bxy - centre
    theta = np.arctan2(rel[:, 1], rel[:, 0])
    wobble = 1 + 0.14 * np.cos(2 * theta + rng.uniform(0, 6.3)) + 0.08 * np.cos(3 * theta + 1.0)
    keep = np.hypot(rel[:, 0], rel[:, 1]) < urban_r * wobble
    urban = shapely.coverage_union_all(blocks[keep])
    largest = max(shapely.get_parts(urban), key=lambda g: g.area)
    filled = shapely.Polygon(largest.exterior)
    keep = shapely.contains_xy(filled, bxy[:, 0], bxy[:, 1])
    blocks, bxy = blocks[keep], bxy[keep]
    urban = shapely.coverage_union_all(blocks)
    n_urban = min(n_urban, len(blocks))
    _, block_comm = kmeans(bxy, n_urban, rng)

    streets_all = np.asarray(
        shapely.linestrings(np.concatenate([nodes, nodes.transpose(1, 0, 2)])), dtype=object
    )
    streets = np.asarray(shapely.intersection(streets_all, shapely.buffer(urban, 1.0)))
    streets = streets[~shapely.is_empty(streets)]
    roads = _roads(rng, nodes, angle, 1.6 * radius)
    river = _river(rng, centre, 1.25 * urban_r + 150, 2.0 * radius)

    # villages: k-means seeds over the countryside, Voronoi cells cut by the outline
    countryside = shapely.difference(outline, shapely.buffer(urban, 300.0))
    sample = sample_in(countryside, min(40_000, 400 * n_rural), rng)
    seeds, _ = kmeans(sample, n_rural, rng, iters=15)
    cells = shapely.voronoi_polygons(
        shapely.multipoints(seeds), extend_to=shapely.buffer(outline, 5000.0)
    )
    edges = [shapely.boundary(c) for c in shapely.get_parts(cells)]

    # an enclave (飞地): a small disc inside one village that belongs to its nearest neighbour
    seed_tree = cKDTree(seeds)
    nd, nn = seed_tree.query(seeds, k=2)
    clearance = np.minimum(
        0.3 * nd[:, 1],
        0.3 * shapely.distance(shapely.points(seeds), outline.exterior),
    )
    clearance = np.minimum(clearance, 0.3 * shapely.distance(shapely.points(seeds), urban))
    candidates = np.flatnonzero(clearance > 150.0)
    n_enclaves = min(len(candidates), max(1, round(scale)))
    hosts = rng.choice(candidates, size=n_enclaves, replace=False)
    discs = [
        shapely.Point(seeds[h]).buffer(min(float(clearance[h]), 450.0), quad_segs=6) for h in hosts
    ]
    enclaves = [(n_urban + int(h), n_urban + int(nn[h, 1])) for h in hosts]

    block_tree = shapely.STRtree(blocks)

    def label(xy: NDArray[np.float64]) -> NDArray[np.intp]:
        pts = shapely.points(xy)
        _, lab = seed_tree.query(xy)
        out = n_urban + np.asarray(lab, dtype=np.intp)
        i, j = block_tree.query(pts, predicate="within")
        out[i] = block_comm[j]
        for disc, (_, owner) in zip(discs, enclaves):
            out[shapely.contains_xy(disc, xy[:, 0], xy[:, 1])] = owner
        return out

    lines = [*streets_all, *edges, *[d.exterior for d in discs]]
    communities = partition(outline, lines, label, n_urban + n_rural)

    # towns: the seat's urban communities, then contiguous groups of villages
    n_urban_towns = max(1, round(n_urban / URBAN_PER_TOWN))
    n_rural_towns = max(1, round(n_rural / VILLAGES_PER_TOWN))
    town_of = np.empty(n_urban + n_rural, dtype=np.intp)
    town_of[:n_urban] = group_contiguous(communities, np.arange(n_urban), n_urban_towns, rng)
    rural_ids = np.arange(n_urban, n_urban + n_rural)
    town_of[n_urban:] = n_urban_towns + group_contiguous(communities, rural_ids, n_rural_towns, rng)
    return Territory(
        outline=outline,
        centre=centre,
        urban_radius=urban_r,
        blocks=blocks,
        block_community=np.asarray(block_comm, dtype=np.intp),
        urban_area=urban,
        streets=streets,
        roads=roads,
        river=river,
        communities=communities,
        n_urban=n_urban,
        n_rural=n_rural,
        town_of=town_of,
        n_urban_towns=n_urban_towns,
        n_towns=n_urban_towns + n_rural_towns,
        enclaves=enclaves,
    )
