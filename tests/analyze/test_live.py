"""LiveIncidents follows a store: after any mix of inserts and status changes, its index
and open cases equal those computed from the whole store at once (both backends)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridgeo.analyze import IncidentIndex
from gridgeo.analyze.deadlines import overdue
from gridgeo.analyze.live import LiveIncidents
from gridgeo.assign import Locator
from gridgeo.io.store import STATUSES

D = 0.02
CATS = ["消防安全", "乱停乱放", "噪音"]


@pytest.fixture(scope="module")
def grids() -> gpd.GeoDataFrame:
    cells = [
        shapely.box(114.9 + i * D, 25.3 + j * D, 114.9 + (i + 1) * D, 25.3 + (j + 1) * D)
        for i in range(4)
        for j in range(4)
    ]
    return gpd.GeoDataFrame(
        {"code": [f"G{k:02d}" for k in range(16)], "households": 100},
        geometry=cells,
        crs="EPSG:4490",
    )


def _batch(
    rng: np.random.Generator, start: int, n: int, grids: gpd.GeoDataFrame | None = None
) -> list[dict]:
    out = []
    for i in range(start, start + n):
        x, y = 114.89 + rng.random() * 0.1, 25.29 + rng.random() * 0.1
        rec = {
            "id": f"W{i:05d}",
            "category": str(rng.choice(CATS)),
            "reported_at": (
                pd.Timestamp("2025-03-01T08:00", tz="Asia/Shanghai")
                + pd.Timedelta(hours=int(rng.integers(0, 24 * 40)))
            ).isoformat(),
            "geometry": shapely.Point(x, y),
        }
        out.append(rec)
    if grids is not None:  # codes as ingestion stores them; else placed by location
        loc = Locator({"grid": grids})
        pts = gpd.GeoDataFrame(geometry=[r["geometry"] for r in out], crs=4490)
        for r, code in zip(out, loc.locate(pts)["grid"].astype(object)):
            r["grid_code"] = None if pd.isna(code) else code
    return out


def _rows(idx: IncidentIndex) -> list[tuple]:
    cats = np.asarray(idx.categories, dtype=object)
    codes = [None if g < 0 else idx.grid_codes[g] for g in idx.grid]
    return sorted(zip(idx.key.tolist(), cats[idx.cat].tolist(), idx.day.tolist(), codes),
                  key=repr)


@pytest.mark.parametrize("seed", [0, 1])
def test_live_equals_a_fresh_read_after_any_changes(store, grids, seed) -> None:
    rng = np.random.default_rng(seed)
    store.append(_batch(rng, 0, 40))
    live = LiveIncidents(store, grids=grids, interval=0)
    assert live.index.n == 40
    next_id = 40
    now = "2025-04-30"
    for step in range(6):
        n = int(rng.integers(0, 15))
        if n:
            store.append(_batch(rng, next_id, n, grids if step % 2 else None))
            next_id += n
        # re-send some ids already stored: nothing new
        store.append(_batch(np.random.default_rng(seed), 0, 3))
        for fid in rng.choice(next_id, size=min(8, next_id), replace=False):
            store.update_status(f"W{int(fid):05d}", str(rng.choice(STATUSES)))
        live.refresh()
        whole = store.to_frame()
        fresh = IncidentIndex.build(whole, grids=grids)
        assert live.index.n == len(whole) == next_id
        assert _rows(live.index) == _rows(fresh)
        got = live.open_cases(now=now)
        # brute force: open = not 结案, grid by location, overdue by the calendar
        pts = Locator({"grid": grids}).locate(whole)["grid"].astype(object)
        is_open = (whole["status"] != "结案").to_numpy()
        late = overdue(list(whole["reported_at"]), [None] * len(whole), now=now)
        for code in grids["code"]:
            in_grid = (pts == code).to_numpy()
            assert got.loc[code, "open"] == int((in_grid & is_open).sum()), code
            assert got.loc[code, "overdue"] == int((in_grid & is_open & late).sum()), code


def test_refresh_waits_for_its_interval(store, grids) -> None:
    rng = np.random.default_rng(5)
    live = LiveIncidents(store, grids=grids, interval=3600)
    assert live.index.n == 0
    store.append(_batch(rng, 0, 5))
    assert live.refresh() is False and live.index.n == 0  # polled less than an hour ago
    assert live.refresh(force=True) is True and live.index.n == 5
