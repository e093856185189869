"""Bulk loading: the packed R-tree of the GeoPackage, loads in chunks, ingest's skips."""

from __future__ import annotations

import sqlite3
import threading
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely

from gridgeo.assign import Locator
from gridgeo.assign.ingest import ingest
from gridgeo.errors import InputError
from gridgeo.io import open_store
from gridgeo.io.store import _rtree
from tests.io.test_store import incidents


def _brute(data: gpd.GeoDataFrame, bbox) -> list[str]:
    x, y = shapely.get_x(data.geometry.values), shapely.get_y(data.geometry.values)
    keep = (x >= bbox[0]) & (x <= bbox[2]) & (y >= bbox[1]) & (y <= bbox[3])
    return sorted(data.loc[keep, "id"])


def _tree_matches_table(path) -> None:
    """The layer's R-tree holds exactly its fids, each box containing its point."""
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT rtreecheck('rtree_incidents_geom')").fetchone() == ("ok",)
        table = dict(conn.execute("SELECT fid, geom FROM incidents").fetchall())
        tree = conn.execute("SELECT id, minx, maxx, miny, maxy FROM rtree_incidents_geom")
        boxes = {r[0]: r[1:] for r in tree.fetchall()}
    assert sorted(boxes) == sorted(table)
    from gridgeo.io.store.gpkg import decode_geometries

    fids = sorted(table)
    pts = decode_geometries([table[f] for f in fids])
    box = np.array([boxes[f] for f in fids])
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    assert ((box[:, 0] <= x) & (x <= box[:, 1]) & (box[:, 2] <= y) & (y <= box[:, 3])).all()
    assert (box[:, 1] - box[:, 0] < 2e-5).all()  # two float32 steps at most: not a loose box


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param([30_000, 3_000, 2_000, 1_200], id="rebuilt-then-grafted"),
        pytest.param([1_500, 20, 4_000, 50], id="small-between-bulk"),
    ],
)
def test_geopackage_rtree_after_bulk_loads_matches_the_table(tmp_path, sizes) -> None:
    path = tmp_path / "ws.gpkg"
    parts = [incidents(n, prefix=f"P{k}-", seed=k) for k, n in enumerate(sizes)]
    with open_store(path) as store:
        for part in parts:
            assert len(store.append(part).new) == len(part)
        _tree_matches_table(path)
        # SQLite goes on maintaining the packed tree: deletes (GDAL's trigger) and inserts
        store._conn().execute("DELETE FROM incidents WHERE fid % 7 = 0")
        later = incidents(40, prefix="L", seed=9)
        store.append(later)
        everything = store.to_frame()
        _tree_matches_table(path)
    for bbox in [(114.90, 25.30, 114.95, 25.35), (114.931, 25.311, 114.932, 25.398)]:
        hits = gpd.read_file(path, layer="incidents", bbox=bbox, columns=["id"])  # GDAL's R-tree
        assert sorted(hits["id"]) == _brute(everything, bbox)
        with open_store(path) as store:
            assert sorted(store.query(bbox=bbox)["id"]) == _brute(everything, bbox)


def test_packed_tree_rounds_outwards_and_reads_back() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING rtree(id, minx, maxx, miny, maxy)")
    rng = np.random.default_rng(0)
    x, y = rng.uniform(114, 116, 5000), rng.uniform(25, 26, 5000)
    ids = np.arange(10, 5010)
    depth = _rtree.packed_rebuild(conn, "t", ids, _rtree.outward(x, y))
    assert depth >= 2
    assert conn.execute("SELECT rtreecheck('t')").fetchone() == ("ok",)
    got_ids, got = _rtree.read_entries(conn, "t")
    order = np.argsort(got_ids)
    assert (got_ids[order] == ids).all()
    got = got[order].astype(np.float64)
    assert ((got[:, 0] <= x) & (got[:, 1] >= x) & (got[:, 2] <= y) & (got[:, 3] >= y)).all()
    sql_rows = conn.execute("SELECT id, minx FROM t ORDER BY id").fetchall()
    assert [r[1] for r in sql_rows] == got[:, 0].tolist()


def test_append_chunks_stores_each_id_once(store) -> None:
    first = incidents(1200, seed=1)
    store.append(first.iloc[:100])
    chunks = [first.iloc[:700], first.iloc[600:1200], incidents(5, prefix="Z")]
    res = store.append_chunks(iter(chunks), total=sum(len(c) for c in chunks))
    assert res.new == first["id"].iloc[100:].tolist() + [f"Z{i:05d}" for i in range(5)]
    assert sorted(res.existing) == sorted(first["id"].iloc[:100].tolist() + first["id"].iloc[
        600:700].tolist())  # fmt: skip
    assert store.count() == 1205
    assert store.get("E00650").category == first["category"].iloc[650]
    box = (114.92, 25.31, 114.96, 25.37)
    want = _brute(pd.concat([first, chunks[2]]), box)
    assert sorted(store.query(bbox=box)["id"]) == want


def test_postgis_rebuilds_the_same_indexes(postgresql) -> None:
    def indexes() -> list[str]:
        with psycopg.connect(postgresql) as conn:
            rows = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'incidents' ORDER BY 1"
            )
            return [r[0] for r in rows]

    with open_store(postgresql) as store:
        before = indexes()
        assert any("gist" in d for d in before)
        data = incidents(3000)
        res = store.append_chunks([data.iloc[:1000], data.iloc[1000:]], total=len(data))
        assert len(res.new) == 3000
        assert indexes() == before
        with psycopg.connect(postgresql) as conn:  # the rebuilt GiST answers a bbox query
            conn.execute("SET enable_seqscan = off")
            plan = conn.execute(
                "EXPLAIN SELECT id FROM incidents WHERE geom && "
                "ST_MakeEnvelope(114.9, 25.3, 114.95, 25.35, 4490)"
            ).fetchall()
        assert "incidents_geom_idx" in " ".join(r[0] for r in plan)
        box = (114.9, 25.3, 114.95, 25.35)
        assert sorted(store.query(bbox=box)["id"]) == _brute(data, box)
        small = incidents(1500, prefix="S", seed=4)  # smaller than the table: no rebuild
        assert len(store.append_chunks([small], total=len(small)).new) == 1500
        assert indexes() == before
        assert store.count() == 4500


@pytest.fixture
def locator() -> Locator:
    box = shapely.box(114.8, 25.2, 115.1, 25.5)
    return Locator({"grid": gpd.GeoDataFrame({"code": ["G1"]}, geometry=[box], crs=4490)})


def test_ingest_dedupes_the_input_and_skips_stored_ids(store, locator) -> None:
    data = incidents(1100, seed=2).drop(columns=["grid_code"])
    twice = pd.concat([data, data.iloc[:50].assign(category="later")], ignore_index=True)
    rep = ingest(store, twice, locator, chunk=400)
    assert rep.new == data["id"].tolist()
    assert rep.repeated == data["id"].iloc[:50].tolist()
    assert store.count() == 1100
    assert store.count(where={"category": "later"}) == 0
    assert store.count(where={"grid_code": "G1"}) == 1100
    _, cursor = store.changes_since(0)
    # known ids are skipped before they are located or checked: rows that would fail both
    # (no geometry at all) load as 'existing', and nothing is written
    broken = data.iloc[:300].copy()
    broken["geometry"] = None
    rep = ingest(store, broken.set_geometry("geometry"), locator, chunk=128)
    assert rep.existing == broken["id"].tolist() and rep.new == []
    assert len(store.changes_since(cursor)[0]) == 0
    mixed = pd.concat([data.iloc[:10], incidents(3, prefix="N", seed=3)], ignore_index=True)
    rep = ingest(store, mixed.drop(columns=["grid_code"]), locator)
    assert rep.existing == data["id"].iloc[:10].tolist()
    assert rep.new == ["N00000", "N00001", "N00002"]
    assert store.count() == 1103


@pytest.mark.parametrize("stored_first", [False, True], ids=["direct", "staged"])
def test_postgis_load_numbers_rows_in_input_order(postgresql, stored_first) -> None:
    """A load's seq (reserved at once) follows the input, before any later write's; the
    staged way (an id already stored) numbers the same way."""
    data = incidents(2500, seed=5).sample(frac=1.0, random_state=3)  # ids out of order
    with open_store(postgresql) as store:
        if stored_first:
            store.append(data.iloc[[10]])
        res = store.append_chunks([data.iloc[:1200], data.iloc[1200:]], total=len(data))
        assert len(res.new) == 2500 - stored_first
        store.append(incidents(2, prefix="L"))  # a live write after the load
        frame, cursor = store.changes_since(0)
    want = data["id"].tolist()
    if stored_first:
        want = [want[10], *want[:10], *want[11:]]
    assert frame["id"].tolist() == [*want, "L00000", "L00001"]
    assert frame["seq"].is_monotonic_increasing and frame["seq"].is_unique
    assert cursor == frame["seq"].max()


def test_postgis_load_refuses_more_rows_than_its_total(postgresql) -> None:
    data = incidents(1500, seed=6)
    with open_store(postgresql) as store:
        with pytest.raises(InputError, match="more rows than the load's total"):
            store.append_chunks([data.iloc[:1000], data.iloc[1000:]], total=1200)
        assert store.count() == 0  # one transaction: nothing of it stored
        assert len(store.append_chunks([data], total=len(data)).new) == 1500


def test_postgis_live_writes_during_a_load_are_seen_once(postgresql) -> None:
    """POSTs that arrive while a load runs wait for it and are numbered after it: a poller
    of changes_since sees every row once."""
    data = incidents(6000, seed=7)
    started = threading.Event()

    def chunks():
        for lo in range(0, len(data), 1000):
            if lo == 2000:
                started.set()
                time.sleep(0.3)  # the live writers queue up meanwhile
            yield data.iloc[lo : lo + 1000]

    with open_store(postgresql) as store:
        store.append(incidents(50, prefix="P"))
        seen, cursor = [], 0

        def live() -> None:
            started.wait(10)
            for i in range(5):
                store.append_records([{**_live_rec(i)}])

        writer = threading.Thread(target=live)
        writer.start()
        frame, cursor = store.changes_since(cursor)
        seen += frame["id"].tolist()
        res = store.append_chunks(chunks(), total=len(data))
        writer.join()
        frame, cursor = store.changes_since(cursor)
        seen += frame["id"].tolist()
        assert len(res.new) == 6000
    assert len(seen) == len(set(seen)) == 50 + 6000 + 5
    assert seen[50:6050] == data["id"].tolist()  # the load in input order, then the live rows
    assert sorted(seen[6050:]) == [f"Q{i}" for i in range(5)]


def _live_rec(i: int) -> dict:
    return {"id": f"Q{i}", "category": "噪音", "reported_at": "2025-03-02T08:00:00+08:00",
            "geometry": shapely.Point(114.95, 25.35)}  # fmt: skip
