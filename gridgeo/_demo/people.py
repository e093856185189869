"""Buildings (households, population) and market entities of the demo county (local metres).

Examples
--------
>>> from gridgeo._demo.territory import build_territory
>>> rng = np.random.default_rng(0)
>>> t = build_territory(rng, 0.3)
>>> b = build_buildings(t, rng, 0.3)
>>> bool((b.households >= 1).all() and (b.population >= b.households).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from gridgeo._demo.common import sample_in
from gridgeo._demo.names import shop_names
from gridgeo._demo.territory import Territory

__all__ = ["Buildings", "Markets", "build_buildings", "build_markets"]

#: Buildings in the seat and rural houses at scale 1.
N_URBAN_BUILDINGS, N_RURAL_HOUSES = 600, 2400
#: Shares of building kinds in the seat.
URBAN_KIND_P = {"estate": 0.05, "apartment": 0.6, "house": 0.35}
#: Market entities at scale 1, and the share in the seat.
N_MARKETS, MARKETS_URBAN_SHARE = 2000, 0.85
MARKET_KIND_P = {
    "shop": 0.55,
    "restaurant": 0.2,
    "company": 0.1,
    "stall": 0.147,
    "farmers_market": 0.003,
}
STREET_HALF_WIDTH = 18.0


@dataclass
class Buildings:
    """Building points with their attributes (parallel arrays)."""

    xy: NDArray[np.float64]
    households: NDArray[np.int64]
    population: NDArray[np.int64]
    kind: NDArray[np.str_]
    community: NDArray[np.intp]
    hamlet_centres: NDArray[np.float64]


@dataclass
class Markets:
    """Market entity points (parallel arrays)."""

    xy: NDArray[np.float64]
    kind: NDArray[np.str_]
    name: NDArray[np.str_]


def _split(total: int, weights: NDArray[np.float64], minimum: int, rng: np.random.Generator):
    """Split ``total`` into len(weights) counts ≥ ``minimum`` (multinomial on the rest)."""
    k = len(weights)
    rest = max(total - minimum * k, 0)
    return minimum + rng.multinomial(rest, weights / weights.sum())


def build_buildings(t: Territory, rng: np.random.Generator, scale: float) -> Buildings:
    """Urban apartments/estates/houses in street blocks and rural houses in hamlets.

    Examples
    --------
    >>> from gridgeo._demo.territory import build_territory
    >>> rng = np.random.default_rng(1)
    >>> b = build_buildings(build_territory(rng, 0.3), rng, 0.3)
    >>> set(b.kind) <= {"house", "apartment", "estate"}
    True
    """
    xy_parts, hh_parts, kind_parts, comm_parts = [], [], [], []
    # --- the seat: buildings in blocks shrunk off the streets
    areas = np.array([t.communities[c].area for c in range(t.n_urban)])
    n_urban = _split(round(N_URBAN_BUILDINGS * scale), areas, 20, rng)
    inner = shapely.buffer(t.blocks, -STREET_HALF_WIDTH, join_style="mitre")
    for c in range(t.n_urban):
        region = shapely.union_all(inner[t.block_community == c])
        pts = sample_in(region, int(n_urban[c]), rng)
        kinds = rng.choice(list(URBAN_KIND_P), size=len(pts), p=list(URBAN_KIND_P.values()))
        hh = np.where(
            kinds == "estate",
            np.clip(np.round(rng.lognormal(np.log(460.0), 0.4, len(pts))), 250, 1800),
            np.where(
                kinds == "apartment", rng.integers(10, 51, len(pts)), rng.integers(1, 5, len(pts))
            ),
        ).astype(np.int64)
        xy_parts.append(pts)
        hh_parts.append(hh)
        kind_parts.append(kinds)
        comm_parts.append(np.full(len(pts), c, dtype=np.intp))
    # --- villages: hamlets of 1-2 household houses
    rural = np.arange(t.n_urban, t.n_urban + t.n_rural)
    weights = np.array([t.communities[c].area for c in rural]) ** 0.5 * rng.gamma(
        4.0, 1.0, len(rural)
    )
    n_houses = _split(round(N_RURAL_HOUSES * scale), weights, 12, rng)
    hamlet_parts = []
    for c, n_h in zip(rural.tolist(), n_houses.tolist()):
        village = t.communities[c]
        core: BaseGeometry = shapely.buffer(village, -150.0)
        if core.is_empty or core.area < 0.05 * village.area:
            core = village
        n_hamlets = max(1, round(n_h / 25 * rng.uniform(0.7, 1.3)))
        centres = sample_in(core, n_hamlets, rng)
        which = rng.choice(n_hamlets, size=int(n_h), p=rng.dirichlet(np.full(n_hamlets, 2.0)))
        sigma = rng.uniform(40.0, 90.0, n_hamlets)[which]
        pts = centres[which] + rng.normal(0.0, 1.0, (int(n_h), 2)) * sigma[:, None]
        shapely.prepare(village)
        for _ in range(10):
            out = ~shapely.contains_xy(village, pts[:, 0], pts[:, 1])
            if not out.any():
                break
            pts[out] = (
                centres[which[out]] + rng.normal(0.0, 1.0, (int(out.sum()), 2)) * sigma[out, None]
            )
        out = ~shapely.contains_xy(village, pts[:, 0], pts[:, 1])
        pts[out] = centres[which[out]]
        xy_parts.append(pts)
        hh_parts.append(rng.choice([1, 2], size=int(n_h), p=[0.65, 0.35]).astype(np.int64))
        kind_parts.append(np.full(int(n_h), "house"))
        comm_parts.append(np.full(int(n_h), c, dtype=np.intp))
        hamlet_parts.append(centres)
    xy = np.concatenate(xy_parts)
    hh = np.concatenate(hh_parts)
    comm = np.concatenate(comm_parts)
    per_hh = np.where(comm < t.n_urban, 2.85, 3.3)
    pop = hh + rng.binomial(hh * 3, (per_hh - 1.0) / 3.0)
    return Buildings(
        xy=xy,
        households=hh,
        population=np.asarray(pop, dtype=np.int64),
        kind=np.concatenate(kind_parts).astype(str),
        community=comm,
        hamlet_centres=np.concatenate(hamlet_parts),
    )


def build_markets(t: Territory, b: Buildings, rng: np.random.Generator, scale: float) -> Markets:
    """Market entities: mostly along the seat's streets, some near village hamlets.

    Examples
    --------
    >>> from gridgeo._demo.territory import build_territory
    >>> rng = np.random.default_rng(0)
    >>> t = build_territory(rng, 0.3)
    >>> m = build_markets(t, build_buildings(t, rng, 0.3), rng, 0.3)
    >>> len(m.xy) == round(2000 * 0.3)
    True
    """
    n = round(N_MARKETS * scale)
    n_urban = int(rng.binomial(n, MARKETS_URBAN_SHARE))
    # street segments: consecutive vertices of the same line
    coords, which = shapely.get_coordinates(shapely.get_parts(t.streets), return_index=True)
    same = which[1:] == which[:-1]
    a, e = coords[:-1][same], coords[1:][same]
    d = e - a
    length = np.hypot(d[:, 0], d[:, 1])
    pick = rng.choice(len(a), size=n_urban, p=length / length.sum())
    f = rng.uniform(0.05, 0.95, n_urban)[:, None]
    normal = np.column_stack([-d[pick, 1], d[pick, 0]]) / length[pick, None]
    side = rng.choice([-1.0, 1.0], n_urban)[:, None] * rng.uniform(10.0, 25.0, n_urban)[:, None]
    urban_xy = a[pick] + f * d[pick] + normal * side
    hamlets = b.hamlet_centres
    h = rng.integers(len(hamlets), size=n - n_urban)
    rural_xy = hamlets[h] + rng.normal(0.0, 30.0, (n - n_urban, 2))
    xy = np.concatenate([urban_xy, rural_xy])
    shapely.prepare(t.outline)
    out = ~shapely.contains_xy(t.outline, xy[:, 0], xy[:, 1])
    xy[out] = np.concatenate([urban_xy, hamlets[h]])[out]
    kinds = rng.choice(list(MARKET_KIND_P), size=n, p=list(MARKET_KIND_P.values())).astype(str)
    return Markets(xy=xy, kind=kinds, name=shop_names(kinds, rng))
