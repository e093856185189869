"""The record path of the stores (``append_records``, one live report at a time), run against
each backend: it stores what ``append`` stores, refuses what ``append`` refuses with the same
words, and its rows reach ``changes_since``, GDAL and a live index like any other."""

from __future__ import annotations

import datetime as dt
import threading

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from gridgeo.analyze import IncidentIndex
from gridgeo.analyze.live import LiveIncidents
from gridgeo.errors import ValidationError
from gridgeo.io import open_store
from gridgeo.io.store import CLOSED, STATUSES, TZ

CATEGORIES = ["消防安全", "乱停乱放", "矛盾纠纷"]


def records(n: int, *, prefix: str, seed: int = 0) -> list[dict]:
    """``n`` records with every column a client may give, in the forms callers use."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = round(114.90 + float(rng.random()) * 0.1, 6)
        y = round(25.30 + float(rng.random()) * 0.1, 6)
        when = pd.Timestamp("2025-03-01T08:00:00.123456", tz=TZ) + pd.Timedelta(
            minutes=int(rng.integers(0, 40 * 24 * 60))
        )
        status = str(rng.choice(STATUSES))
        rec = {
            "id": f"{prefix}{i:04d}",
            "category": str(rng.choice(CATEGORIES)),
            # an aware text, a naive text (China Standard Time), a Timestamp, a datetime
            "reported_at": [
                when.isoformat(),
                when.tz_localize(None).isoformat(),
                when,
                when.to_pydatetime(),
            ][i % 4],
            "geometry": shapely.Point(x, y)
            if i % 2
            else {"type": "Point", "coordinates": [x, y]},
            "lng": x + 0.005 if i % 3 else None,
            "lat": y - 0.002 if i % 3 else None,
            "source": [" app ", "12345", None][i % 3],
            "description": "楼道堆物" if i % 2 else "",
            "status": status,
            "department": None if i % 5 == 0 else "消防",
            "grid_code": "360722001001001",
            "zone_code": None,
        }
        if status == CLOSED:
            rec["closed_at"] = (when + pd.Timedelta(days=2)).isoformat()
        out.append(rec)
    return out


def _comparable(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """The stored rows without what differs between two writes (ids, seq, updated_at)."""
    out = frame.drop(columns=["seq", "updated_at"]).sort_values("id").reset_index(drop=True)
    wkt = out.geometry.to_wkt()
    out = pd.DataFrame(out.drop(columns="geometry")).assign(geometry=wkt)
    out["id"] = out["id"].str[1:]
    return out


def test_records_store_what_append_stores(store) -> None:
    recs = records(24, prefix="R")
    copy = [{**r, "id": "A" + r["id"][1:]} for r in recs]
    assert store.append(copy).new == [r["id"] for r in copy]
    assert store.append_records(recs).new == [r["id"] for r in recs]
    stored = store.to_frame()
    via_records = _comparable(stored[stored["id"].str.startswith("R")])
    via_append = _comparable(stored[stored["id"].str.startswith("A")])
    pd.testing.assert_frame_equal(via_records, via_append)
    one = store.get("R0001")
    assert one.source == "12345" and one.description == "楼道堆物"
    sent = pd.Timestamp(recs[1]["reported_at"]).tz_localize(TZ)  # naive: China Standard Time
    assert abs(one.reported_at - sent) < pd.Timedelta(milliseconds=1)  # GeoPackage keeps ms


def test_times_are_instants_and_naive_ones_china_standard_time(store) -> None:
    at = {"category": "c", "geometry": {"type": "Point", "coordinates": [115.0, 25.3]}}
    store.append_records(
        [
            {**at, "id": "N", "reported_at": "2025-03-01 08:00"},
            {**at, "id": "Z", "reported_at": "2025-03-01T00:00:00Z"},
            {**at, "id": "D", "reported_at": dt.datetime(2025, 3, 1, 8, 0)},
            {**at, "id": "U", "reported_at": dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)},
            {**at, "id": "P", "reported_at": "20250301T080000+0800"},
        ]
    )
    times = {i: store.get(i).reported_at for i in "NZDUP"}
    assert len(set(times.values())) == 1, times
    assert times["N"].utcoffset() == dt.timedelta(hours=8)
    # closed without a time: closed now
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    store.append_records([{**at, "id": "C", "reported_at": "2025-03-01", "status": CLOSED}])
    assert store.get("C").closed_at >= before


def test_records_are_idempotent_and_numbered_in_batch_order(store) -> None:
    first = records(3, prefix="E")
    store.append_records(first)
    rows, cursor = store.changes_since(0)
    assert rows["id"].tolist() == ["E0000", "E0001", "E0002"]
    again = records(6, prefix="E", seed=1)[::-1]  # E0005..E0000: 3 new, 3 stored (other data)
    res = store.append_records(again)
    assert res.new == ["E0005", "E0004", "E0003"]
    assert res.existing == ["E0002", "E0001", "E0000"]
    assert store.get("E0001").category == first[1]["category"]  # the first write is kept
    rows, c2 = store.changes_since(cursor)
    assert rows["id"].tolist() == ["E0005", "E0004", "E0003"]
    assert rows["seq"].is_monotonic_increasing and rows["seq"].min() > cursor
    assert store.append_records(first).new == [] and store.changes_since(c2)[0].empty
    assert store.append_records([]).new == []
    assert store.count() == 6


def _bad_batches() -> list[tuple[str, list[dict], str]]:
    ok = records(4, prefix="B")
    polygon = {"type": "Polygon", "coordinates": [[[115, 25], [115.1, 25], [115.1, 25.1],
                                                   [115, 25]]]}  # fmt: skip

    def changed(i: int, **kw) -> list[dict]:
        out = [dict(r) for r in ok]
        out[i].update(kw)
        return out

    return [
        ("category", changed(2, category=" "), r"row 2 \(id 'B0002'\): 'category' is missing"),
        ("id", changed(1, id=None), r"row 1: 'id' is missing"),
        ("duplicate", changed(3, id="B0000"), r"'id' appears more than once in the batch"),
        ("time", changed(0, reported_at="yesterday"), r"'reported_at' is missing or not an ISO"),
        ("status", changed(0, status="done"), r"'status' must be one of \['受理'"),
        ("lng", changed(2, lng="east"), r"row 2 \(id 'B0002'\): 'lng' is not a number"),
        ("no geometry", changed(1, geometry=None), r"geometry is missing or empty"),
        ("empty", changed(1, geometry={"type": "Point", "coordinates": []}), "missing or empty"),
        ("polygon", changed(3, geometry=polygon), r"row 3 \(id 'B0003'\): geometry must be a P"),
        ("outside", changed(0, geometry=shapely.Point(25.3, 114.9)), r"point lies outside China"),
        ("column", [{k: v for k, v in r.items() if k != "category"} for r in ok],
         r"missing column\(s\) \['category'\]"),
        ("several", changed(1, category=None, reported_at=None, geometry=None),
         r"(?s)'category' is missing.*'reported_at' is missing.*geometry is missing"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", [c[0] for c in _bad_batches()])
def test_records_are_refused_in_the_words_of_append(store, case) -> None:
    _, batch, match = next(c for c in _bad_batches() if c[0] == case)
    with pytest.raises(ValidationError, match=match) as by_records:
        store.append_records(batch)
    with pytest.raises(ValidationError, match=match) as by_append:
        store.append(batch)
    assert str(by_records.value) == str(by_append.value)
    assert store.count() == 0


def test_writers_in_threads_and_two_store_objects(store_url) -> None:
    """Two store objects (two workers' worth) with three writer threads each, one report a
    call, while a poller follows changes_since: every report stored once, seen once."""
    stores = [open_store(store_url), open_store(store_url)]
    batches = [records(40, prefix=f"T{k}", seed=k) for k in range(6)]
    seen: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def write(k: int) -> None:
        try:
            for rec in batches[k]:
                assert stores[k % 2].append_records([rec]).new == [rec["id"]]
        except BaseException as err:  # reported below
            errors.append(err)

    def poll() -> None:
        cursor = 0
        while True:
            last = done.is_set()
            rows, cursor = stores[0].changes_since(cursor)
            seen.extend(rows["id"])
            if last:
                return

    threads = [threading.Thread(target=write, args=(k,)) for k in range(6)]
    poller = threading.Thread(target=poll)
    poller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    poller.join()
    assert not errors, errors
    ids = [r["id"] for b in batches for r in b]
    assert sorted(seen) == sorted(ids)  # each once: no row skipped, none twice
    frame = stores[1].to_frame()
    assert len(frame) == len(ids) and frame["seq"].is_unique
    for s in stores:
        s.close()


def test_geopackage_record_rows_are_read_by_gdal(tmp_path) -> None:
    path = tmp_path / "ws.gpkg"
    recs = records(30, prefix="G")
    with open_store(path) as store:
        for rec in recs:
            store.append_records([rec])
        mine = store.to_frame()
    back = gpd.read_file(path, layer="incidents").set_index("id").loc[mine["id"]]
    assert back.crs == "EPSG:4490"
    assert shapely.equals(back.geometry.values, mine.geometry.values).all()
    local = mine["reported_at"].dt.tz_localize(None).to_numpy()
    assert (back["reported_at"].to_numpy() == local).all()
    info = pyogrio.read_info(path, layer="incidents")
    assert info["features"] == 30
    assert info["total_bounds"] == pytest.approx(tuple(mine.total_bounds))
    x, y = shapely.get_x(mine.geometry.values), shapely.get_y(mine.geometry.values)
    for bbox in [(114.90, 25.30, 114.95, 25.35), (114.93, 25.31, 114.98, 25.39)]:
        hits = gpd.read_file(path, layer="incidents", bbox=bbox)  # through GDAL's R-tree
        keep = (x >= bbox[0]) & (x <= bbox[2]) & (y >= bbox[1]) & (y <= bbox[3])
        assert sorted(hits["id"]) == sorted(mine.loc[keep, "id"])


def test_a_live_index_follows_record_appends(store) -> None:
    grids = gpd.GeoDataFrame(
        {"code": ["W", "E"]},
        geometry=[shapely.box(114.9, 25.3, 114.95, 25.4), shapely.box(114.95, 25.3, 115.0, 25.4)],
        crs="EPSG:4490",
    )
    store.append_records(records(5, prefix="L"))
    live = LiveIncidents(store, grids=grids, interval=0)
    assert live.index.n == 5
    for rec in records(12, prefix="M", seed=2):
        store.append_records([rec])
    assert live.refresh() is True
    fresh = IncidentIndex.build(store.to_frame(), grids=grids)
    assert live.index.n == fresh.n == 17
    assert sorted(live.index.key.tolist()) == sorted(fresh.key.tolist())
    assert sorted(live.index.grid.tolist()) == sorted(fresh.grid.tolist())


def test_geopackage_writers_take_turns_on_the_lock_file(tmp_path) -> None:
    """Another writer's flock of ``<path>-wlock`` holds a record write back, which goes on
    as soon as it is released (not after a busy handler's sleep)."""
    fcntl = pytest.importorskip("fcntl")
    import os
    import time

    from gridgeo.io.store.gpkg import GeoPackageStore

    path = tmp_path / "ws.gpkg"
    with GeoPackageStore(path) as store:
        fd = os.open(f"{path}-wlock", os.O_RDWR | os.O_CREAT)  # its own open: flock excludes
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            done = threading.Event()
            writer = threading.Thread(
                target=lambda: (store.append_records(records(2, prefix="L")), done.set())
            )
            writer.start()
            assert not done.wait(0.3)  # waits for the lock file
            released = time.perf_counter()
            fcntl.flock(fd, fcntl.LOCK_UN)
            assert done.wait(5)
            assert time.perf_counter() - released < 0.5
            writer.join()
        finally:
            os.close(fd)
        assert store.count() == 2


def test_geopackage_record_path_wal_is_checkpointed_by_a_thread(tmp_path) -> None:
    """The record path's commits do not checkpoint the WAL (auto-checkpoint off); a thread
    of the store does it within seconds, and stops when the store is closed."""
    import time

    from gridgeo.io.store.gpkg import GeoPackageStore

    path = tmp_path / "ws.gpkg"
    store = GeoPackageStore(path)
    try:
        store.append_records(records(50, prefix="W"))
        assert store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        size = path.stat().st_size
        deadline = time.monotonic() + 5
        while path.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > size  # the WAL's pages were copied into the file
        threads = [t for t in threading.enumerate() if t.name.startswith("gpkg-checkpoint")]
        assert threads
    finally:
        store.close()
    for t in threads:
        t.join(5)
        assert not t.is_alive()
