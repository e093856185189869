"""Department zones, police beats and exclusive grids of the demo county (local metres).

Examples
--------
>>> DEPT_PREFIX["消防"]
'XF'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
import shapely.ops
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from gridgeo._demo.common import cut_faces, kmeans, merge_faces, partition, snap_to_points
from gridgeo._demo.grids import Hierarchy
from gridgeo._demo.people import Buildings
from gridgeo._demo.territory import Territory, group_contiguous

__all__ = [
    "DEPT_PREFIX",
    "Zones",
    "build_beats",
    "build_exclusive",
    "build_zones",
]

#: Code prefix of each department's zones.
DEPT_PREFIX = {"住管": "ZG", "综治": "ZZ", "消防": "XF", "市场监管": "SJ", "交警": "JJ"}
#: Zones per department at scale 1 for the departments whose zones are unions of grids.
ZONES_PER_DEPT = {"住管": 4, "消防": 3, "市场监管": 5}
#: Police beats at scale 1; spacing of the traffic police's ring roads (m).
N_BEATS = 10
RING_M = 20_000.0


@dataclass
class Zones:
    """Polygons with their department, code and name (parallel lists)."""

    department: list[str]
    code: list[str]
    name: list[str]
    geometry: list[BaseGeometry]
    extra: dict[str, list]


def _codes(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i + 1:02d}" for i in range(n)]


def _traffic_zones(t: Territory, h: Hierarchy) -> list[BaseGeometry]:
    """Zones cut by the main roads, a ring around the seat's core and ring roads."""
    core = shapely.Point(t.centre).buffer(0.6 * t.urban_radius, quad_segs=16).exterior
    x0, y0, x1, y1 = h.county.bounds
    reach = float(np.hypot(x1 - x0, y1 - y0))
    rings = [
        shapely.Point(t.centre).buffer(r, quad_segs=24).exterior
        for r in np.arange(RING_M, reach, RING_M)
    ]
    faces, _ = cut_faces(h.county, [*t.roads, core, *rings])
    area = shapely.area(faces)
    label = np.arange(len(faces))
    small = np.flatnonzero(area < 0.15 * np.median(area))
    big = np.setdiff1d(label, small)
    if len(small) and len(big):
        tree = shapely.STRtree(faces[big])
        for s in small:  # merge slivers into the big neighbour sharing most boundary
            cand = tree.query(faces[s], predicate="intersects")
            if len(cand) == 0:
                continue
            shared = shapely.length(
                shapely.intersection(shapely.boundary(faces[s]), shapely.boundary(faces[big[cand]]))
            )
            label[s] = big[cand[np.argmax(shared)]]
    _, label = np.unique(label, return_inverse=True)
    return merge_faces(faces, label, int(label.max()) + 1)


def build_zones(t: Territory, h: Hierarchy, rng: np.random.Generator, scale: float) -> Zones:
    """Zones of 住管/综治/消防/市场监管 (unions of whole grids) and of 交警 (cut by roads).

    Examples
    --------
    >>> from gridgeo._demo.territory import build_territory
    >>> from gridgeo._demo.people import build_buildings
    >>> from gridgeo._demo.grids import build_grids
    >>> rng = np.random.default_rng(0)
    >>> t = build_territory(rng, 0.3)
    >>> z = build_zones(t, build_grids(t, build_buildings(t, rng, 0.3), rng, 0.3), rng, 0.3)
    >>> sorted(set(z.department)) == sorted(DEPT_PREFIX)
    True
    """
    grids = np.asarray(h.grids, dtype=object)
    dept, codes, names, geoms = [], [], [], []
    labels = {"综治": t.town_of[h.grid_community]}
    for d, k in ZONES_PER_DEPT.items():
        n = min(len(grids), max(2, round(k * scale)))
        labels[d] = group_contiguous(list(grids), np.arange(len(grids)), n, rng)
    for d in ("住管", "综治", "消防", "市场监管"):
        lab = labels[d]
        _, lab = np.unique(lab, return_inverse=True)
        n = int(lab.max()) + 1
        merged = [shapely.coverage_union_all(grids[lab == i]) for i in range(n)]
        dept += [d] * n
        codes += _codes(DEPT_PREFIX[d], n)
        names += [f"{d}第{i + 1}片区" for i in range(n)]
        geoms += merged
    traffic = _traffic_zones(t, h)
    dept += ["交警"] * len(traffic)
    codes += _codes(DEPT_PREFIX["交警"], len(traffic))
    names += [f"交警第{i + 1}中队辖区" for i in range(len(traffic))]
    geoms += traffic
    return Zones(department=dept, code=codes, name=names, geometry=geoms, extra={})


def build_beats(
    h: Hierarchy, b: Buildings, rng: np.random.Generator, scale: float
) -> tuple[list[BaseGeometry], NDArray[np.intp]]:
    """Police beats: Voronoi cells of population centres, clipped to the county.

    Returns the beat polygons and, for each, the building at its seed (to name it).

    Examples
    --------
    >>> from gridgeo._demo.territory import build_territory
    >>> from gridgeo._demo.people import build_buildings
    >>> from gridgeo._demo.grids import build_grids
    >>> rng = np.random.default_rng(0)
    >>> t = build_territory(rng, 0.3)
    >>> bl = build_buildings(t, rng, 0.3)
    >>> beats, seed_bld = build_beats(build_grids(t, bl, rng, 0.3), bl, rng, 0.3)
    >>> len(beats) == max(3, round(10 * 0.3)) and not any(g.is_empty for g in beats)
    True
    """
    n = min(len(b.xy), max(3, round(N_BEATS * scale)))
    centres, _ = kmeans(b.xy, n, rng, weights=np.sqrt(b.population.astype(np.float64)))
    seed_bld = snap_to_points(centres, b.xy)
    seeds = b.xy[seed_bld]
    cells = shapely.voronoi_polygons(
        shapely.multipoints(seeds), extend_to=shapely.buffer(h.county, 5000.0)
    )
    edges = [shapely.boundary(c) for c in shapely.get_parts(cells)]
    tree = cKDTree(seeds)
    beats = partition(h.county, edges, lambda xy: tree.query(xy)[1], n)
    return beats, seed_bld


def build_exclusive(
    t: Territory, h: Hierarchy, rng: np.random.Generator, scale: float
) -> tuple[list[BaseGeometry], list[str], list[int]]:
    """Schools and hospitals (whole street blocks, shrunk) and an industrial park.

    Returns polygons, kinds and the community index of each.

    Examples
    --------
    >>> from gridgeo._demo.territory import build_territory
    >>> from gridgeo._demo.people import build_buildings
    >>> from gridgeo._demo.grids import build_grids
    >>> rng = np.random.default_rng(0)
    >>> t = build_territory(rng, 0.3)
    >>> h = build_grids(t, build_buildings(t, rng, 0.3), rng, 0.3)
    >>> g, kinds, comm = build_exclusive(t, h, rng, 0.3)
    >>> all(h.communities[c].contains(p) for p, c in zip(g, comm))
    True
    """
    n_school = max(1, round(2 * scale))
    n_hospital = max(1, round(1 * scale))
    n_park = max(1, round(1 * scale))
    pick = rng.choice(len(t.blocks), size=min(len(t.blocks), n_school + n_hospital), replace=False)
    geoms = list(shapely.buffer(t.blocks[pick], -25.0, join_style="mitre"))
    kinds = ["school"] * n_school + ["hospital"] * n_hospital
    kinds = kinds[: len(pick)]
    comm = [int(c) for c in t.block_community[pick]]
    # industrial parks: in the villages nearest the seat, on the side facing it
    rural = np.arange(t.n_urban, t.n_urban + t.n_rural)
    dist = shapely.distance(
        np.asarray([h.communities[c] for c in rural], dtype=object), shapely.Point(t.centre)
    )
    for c in rural[np.argsort(dist)][:n_park]:
        village = h.communities[c]
        inner = shapely.buffer(village, -30.0)
        deep = shapely.buffer(inner, -320.0)  # room for most of the park's 900 × 600 m
        near = shapely.ops.nearest_points(
            inner if deep.is_empty else deep, shapely.Point(t.centre)
        )[0]
        ang = rng.uniform(0, np.pi)
        rect = shapely.affinity.rotate(
            shapely.box(-450, -300, 450, 300), ang, use_radians=True, origin=(0, 0)
        )
        rect = shapely.affinity.translate(rect, near.x, near.y)
        park = shapely.intersection(rect, inner)
        park = max(shapely.get_parts(park), key=lambda g: g.area)
        geoms.append(park)
        kinds.append("industrial_park")
        comm.append(int(c))
    return geoms, kinds, comm
