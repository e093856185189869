"""make_grids' grids regrouped across communities (60 base grids → 17 → 11).

make_grids nodes each community's grids on its own 1 mm grid, so grids of two
neighbouring communities meet along the community border with sub-millimetre
offsets and vertices on one side only; their shared boundary must still count.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from gridgeo.datasets import demo_county
from gridgeo.geom import adjacency
from gridgeo.partition import make_grids, regroup


@pytest.fixture(scope="module")
def county_grids():
    # scale 0.3, seed 1: 7 communities, ~20 grids; made in a couple of seconds
    county = demo_county(seed=1, scale=0.3, n_incidents=0)
    grids = make_grids(county["buildings"], within=county["communities"])
    return county["communities"], grids


def test_grids_share_their_communities_borders(county_grids):
    communities, grids = county_grids
    a = adjacency(grids).toarray()
    c = adjacency(communities).toarray()
    pos = {code: i for i, code in enumerate(communities["code"])}
    of = np.array([pos[code] for code in grids["community_code"]])
    summed = np.zeros_like(c)
    np.add.at(summed, (of[:, None], of[None, :]), a)  # grid lengths summed per community pair
    np.fill_diagonal(summed, 0.0)
    assert c.max() > 0
    np.testing.assert_allclose(summed, c, atol=0.01)


def test_regroup_across_communities(county_grids):
    _, grids = county_grids
    k = 2
    assert grids["community_code"].nunique() > k  # some group must span communities
    groups = regroup(grids, k, method="heuristic", seed=0, time_limit=5.0)
    assert len(groups) == k
    assert sorted(m for ms in groups["members"] for m in ms) == sorted(grids["code"])
    spans = 0
    for members in groups["members"]:
        sub = grids[grids["code"].isin(members)]
        n, _ = connected_components(adjacency(sub), directed=False)
        assert n == 1, members
        spans += sub["community_code"].nunique() > 1
    assert spans >= 1
