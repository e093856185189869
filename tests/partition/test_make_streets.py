"""make_grids with barriers: grid edges follow streets where the households allow it.

The bisection is checked on lattices of square atoms grouped in street blocks (the
share of the cut length that runs between blocks, with and without the blocks), and
make_grids on a town of street blocks (the share of inner grid edges on streets).
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import scipy.sparse as sp
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from gridgeo.partition import make_grids
from gridgeo.partition.make._bisect import bisect_region

CRS = "EPSG:4547"


def lattice(n: int, b: int, seed: int, off: int = 0):
    """n × n unit squares (atoms) in blocks of b × b (streets between blocks; ``off``
    shifts the streets), with 1–29 households each."""
    rng = np.random.default_rng(seed)
    i, j = np.divmod(np.arange(n * n), n)
    xy = np.column_stack([j + 0.5, i + 0.5]).astype(float)
    block = ((i + off) // b) * (n + 1) + (j + off) // b
    right = np.flatnonzero(j + 1 < n)
    up = np.flatnonzero(i + 1 < n)
    r = np.concatenate([right, up])
    c = np.concatenate([right + 1, up + n])
    adj = sp.csr_matrix(
        (np.ones(2 * len(r)), (np.concatenate([r, c]), np.concatenate([c, r]))),
        shape=(n * n, n * n),
    )
    h = rng.integers(1, 30, n * n).astype(float)
    return adj, xy, h, block


def street_share(adj: sp.csr_matrix, pieces, block) -> float:
    """Share of the cut length between pieces that runs between blocks."""
    label = np.empty(adj.shape[0], dtype=np.int64)
    for g, idx in enumerate(pieces):
        label[idx] = g
    coo = sp.triu(adj).tocoo()
    cut = label[coo.row] != label[coo.col]
    on = block[coo.row] != block[coo.col]
    return float(coo.data[cut & on].sum() / coo.data[cut].sum())


def split(n, b, seed, off, k, with_blocks):
    adj, xy, h, block = lattice(n, b, seed, off)
    cap = float(math.ceil(h.sum() / k) * 1.02)
    ones = np.ones(n * n)
    pieces = bisect_region(
        adj,
        xy,
        h,
        np.zeros(n * n),
        cap,
        math.inf,
        np.random.default_rng(seed),
        ones,
        4 * ones,
        block=block if with_blocks else None,
    )
    return adj, h, block, cap, pieces


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(6, 16),
    b=st.integers(2, 5),
    seed=st.integers(0, 10_000),
    off=st.integers(0, 4),
    k=st.integers(2, 10),
)
def test_bisect_with_blocks_keeps_the_guarantees(n, b, seed, off, k):
    adj, h, _, cap, pieces = split(n, b, seed, off, k, True)
    # every atom in exactly one piece, each piece connected and under the ceiling
    assert np.array_equal(np.sort(np.concatenate(pieces)), np.arange(n * n))
    for idx in pieces:
        assert h[idx].sum() <= cap + 1e-9
        assert connected_components(adj[idx][:, idx], directed=False)[0] == 1


CASES = [(12 + s % 5, 3 + s % 3, s, s % 2, 4 + s % 6) for s in range(12)]


def test_bisect_cuts_follow_streets():
    blind, streets = [], []
    for case in CASES:
        adj, _, block, _, pieces = split(*case, False)
        blind.append(street_share(adj, pieces, block))
        adj, _, block, _, pieces = split(*case, True)
        streets.append(street_share(adj, pieces, block))
    blind, streets = np.array(blind), np.array(streets)
    # the barrier-blind cuts run between blocks about as often as chance; with the
    # blocks, on streets wherever the households allow it
    assert (streets >= blind - 0.05).all(), list(zip(blind.round(2), streets.round(2)))
    assert streets.mean() >= blind.mean() + 0.2
    assert streets.mean() >= 0.6


@pytest.fixture(scope="module")
def town():
    """A 1.2 km square town of 60 m street blocks (streets 3 m off the block edges so no
    two are collinear with the community boundary), 6 buildings a block."""
    rng = np.random.default_rng(7)
    side, step = 1200.0, 60.0
    comm = gpd.GeoDataFrame(
        {"code": ["360722001001"], "type": ["urban"]},
        geometry=[shapely.box(0, 0, side, side)],
        crs=CRS,
    )
    ticks = np.arange(step, side, step) + 3.0
    streets = [shapely.LineString([(x, -10), (x, side + 10)]) for x in ticks]
    streets += [shapely.LineString([(-10, y), (side + 10, y)]) for y in ticks]
    n = int((side / step) ** 2) * 6
    xy = rng.uniform(5, side - 5, (n, 2))
    # keep buildings off the streets
    on_street = (np.abs((xy - 3.0) % step) < 4) | (np.abs((xy - 3.0) % step) > step - 4)
    xy = xy[~on_street.any(axis=1)]
    units = gpd.GeoDataFrame(
        {"households": rng.integers(5, 40, len(xy)), "population": 1},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=CRS,
    )
    return units, comm, gpd.GeoSeries(streets, crs=CRS)


def inner_share(grids, comm, streets, tol=5.0) -> float:
    edges = shapely.union_all(shapely.boundary(grids.geometry.to_numpy()), grid_size=1e-3)
    inner = shapely.difference(edges, shapely.buffer(shapely.boundary(comm.geometry.iloc[0]), 0.01))
    near = shapely.buffer(shapely.union_all(streets.to_numpy()), tol)
    return float(shapely.intersection(inner, near).length / inner.length)


def test_make_grids_edges_follow_streets(town):
    units, comm, streets = town
    with_streets = make_grids(units, within=comm, max_households=500, barriers=streets, seed=0)
    blind = make_grids(units, within=comm, max_households=500, seed=0)
    share, share_blind = (inner_share(g, comm, streets) for g in (with_streets, blind))
    # atoms cut by the streets alone put 0.76-0.79 of the inner edges on them (seeds 0-4);
    # cuts that prefer streets 0.87-0.88; barrier-blind grids 0.34
    assert share >= 0.83, (share, share_blind)
    assert share >= share_blind + 0.3
    assert len(with_streets) <= math.ceil(1.10 * with_streets.attrs["lower_bound"])
