"""IncidentIndex.extend: a live index equals the index built from everything at once,
and heat tiles away from new incidents keep their version (their ETag)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo.analyze import IncidentIndex, grid_stats
from gridgeo.analyze.heat import heat_tile, tile_of, tile_version
from gridgeo.assign import Locator
from gridgeo.errors import InputError

CATS = ["消防安全", "乱停乱放", "噪音", "占道经营"]


@pytest.fixture(scope="module")
def grids() -> gpd.GeoDataFrame:
    d = 0.02
    cells = [
        shapely.box(114.9 + i * d, 25.3 + j * d, 114.9 + (i + 1) * d, 25.3 + (j + 1) * d)
        for i in range(5)
        for j in range(5)
    ]
    return gpd.GeoDataFrame(
        {"code": [f"36072200100{k:04d}" for k in range(25)]}, geometry=cells, crs="EPSG:4490"
    )


def _incidents(seed: int, n: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 800, n), unit="D")
    return gpd.GeoDataFrame(
        {"category": rng.choice(CATS, n), "reported_at": days},
        geometry=gpd.points_from_xy(rng.uniform(114.88, 115.02, n), rng.uniform(25.28, 25.42, n)),
        crs="EPSG:4490",
    )


def _rows(idx: IncidentIndex) -> list[tuple]:
    cats = np.asarray(idx.categories, dtype=object)
    grid = idx.grid if idx.grid is not None else np.full(idx.n, -1)
    codes = [None if g < 0 else idx.grid_codes[g] for g in grid]
    return sorted(
        zip(idx.key.tolist(), cats[idx.cat].tolist(), idx.day.tolist(), codes, strict=True),
        key=repr,
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_old=st.integers(0, 300),
    n_new=st.lists(st.integers(0, 60), min_size=1, max_size=4),
)
def test_extend_equals_a_build_of_everything(grids, seed, n_old, n_new) -> None:
    loc = Locator({"grid": grids})
    parts = [_incidents(seed + i, n) for i, n in enumerate([n_old, *n_new])]
    idx = IncidentIndex.build(parts[0], grids=grids, locator=loc)
    for part in parts[1:]:
        idx = idx.extend(part, locator=loc)
    whole = IncidentIndex.build(pd.concat(parts, ignore_index=True), grids=grids, locator=loc)
    assert idx.n == whole.n
    assert bool(np.all(idx.key[:-1] <= idx.key[1:]))
    assert _rows(idx) == _rows(whole)
    for cat in CATS:
        if cat in whole.categories:
            assert idx.count(category=cat) == whole.count(category=cat)
    if whole.n:
        a = grid_stats(idx, grids, period="M")
        b = grid_stats(whole, grids, period="M")
        assert a["count"].tolist() == b["count"].tolist()


def test_tiles_far_from_new_incidents_keep_their_version_and_bytes() -> None:
    base = _incidents(1, 2000)
    idx = IncidentIndex.build(base)
    z = 14
    here = tile_of(114.95, 25.35, z)
    v0, png0 = tile_version(idx, z, *here), heat_tile(idx, z, *here)
    far = base.iloc[:3].copy()
    far["geometry"] = gpd.points_from_xy([116.4] * 3, [26.1] * 3)
    idx2 = idx.extend(far)
    assert tile_version(idx2, z, *here) == v0
    assert heat_tile(idx2, z, *here) == png0
    near = base.iloc[:3].copy()
    near["geometry"] = gpd.points_from_xy([114.95] * 3, [25.35] * 3)
    idx3 = idx2.extend(near)
    assert tile_version(idx3, z, *here) != v0
    assert heat_tile(idx3, z, *here) != png0


def test_extend_needs_a_way_to_place_grids(grids) -> None:
    idx = IncidentIndex.build(_incidents(2, 10), grids=grids)
    with pytest.raises(InputError, match="extend it with locator= or grids="):
        idx.extend(_incidents(3, 5))
    assert idx.extend(_incidents(3, 5), grids=grids).n == 15


def test_extend_rejects_bad_rows_and_too_many_categories() -> None:
    idx = IncidentIndex.build(_incidents(2, 10))
    bad = _incidents(3, 2)
    bad["reported_at"] = ["2025-01-01", "not a date"]
    with pytest.raises(InputError, match="bad times at rows"):
        idx.extend(bad)
    many = _incidents(4, 300)
    many["category"] = [f"c{i}" for i in range(300)]
    with pytest.raises(InputError, match="at most 255"):
        idx.extend(many)
    assert idx.extend(_incidents(5, 0)) is idx
