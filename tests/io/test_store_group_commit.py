"""Group commit of the record path (``append_records`` from many threads of one process), on
each backend: concurrent calls are written together, yet each call gets exactly the result it
would get alone, every id is stored once, ``seq`` follows commit order (a poller of
``changes_since`` misses nothing), and one refused call in a batch fails alone."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from gridgeo.errors import GridGeoError
from gridgeo.io import open_store

WRITE_LOCK = 0x67726965  # the PostGIS store's advisory write lock


def record(id: str, note: str, k: int) -> dict:
    return {
        "id": id,
        "category": "消防安全",
        "reported_at": f"2025-03-01T08:{k % 60:02d}:00+08:00",
        "geometry": {"type": "Point", "coordinates": [114.9 + k % 97 * 1e-3, 25.3]},
        "description": note,
    }


def _postgis(url: str) -> bool:
    return url.startswith("postgresql")


@contextlib.contextmanager
def write_lock_held(url: str) -> Iterator[None]:
    """Hold the store's write lock from another connection (writers of the store wait)."""
    if _postgis(url):
        with psycopg.connect(url) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield
            conn.commit()
    else:
        conn = sqlite3.connect(url, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("COMMIT")
            conn.close()


def refuse_ids_starting_bad(url: str) -> None:
    """A rule in the database itself that refuses some rows (a real failure of the write)."""
    if _postgis(url):
        with psycopg.connect(url) as conn:
            conn.execute(
                "CREATE FUNCTION refuse_bad() RETURNS trigger AS $$ BEGIN "
                "IF NEW.id LIKE 'BAD%' THEN RAISE EXCEPTION 'refused %', NEW.id; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.execute(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON incidents "
                "FOR EACH ROW EXECUTE FUNCTION refuse_bad()"
            )
    else:
        with contextlib.closing(sqlite3.connect(url)) as conn, conn:
            conn.execute(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON incidents WHEN NEW.id LIKE 'BAD%' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )


def wait_until(cond, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_concurrent_overlapping_appends_are_each_answered_as_if_alone(store_url) -> None:
    """8 threads append 1-3 reports a call, ids drawn from one shared pool (so calls of one
    batch repeat ids), while a poller follows changes_since."""
    store = open_store(store_url)
    store.append_records([record("P000", "warm-up", 0)])  # schema, pool and queue ready
    pool = [f"P{i:03d}" for i in range(120)]
    calls: list[tuple[int, list[str], object, float, float]] = []  # thread, ids, result, t0, t1
    errors: list[BaseException] = []
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def write(k: int) -> None:
        rng = np.random.default_rng(k)
        try:
            for j in range(30):
                n = int(rng.integers(1, 4))
                ids = [str(i) for i in rng.choice(pool, size=n, replace=False)]
                t0 = time.monotonic()
                res = store.append_records([record(i, f"t{k}c{j}", j) for i in ids])
                calls.append((k, ids, res, t0, time.monotonic()))
        except BaseException as err:  # reported below
            errors.append(err)

    def poll() -> None:
        cursor = 0
        while True:
            last = done.is_set()
            rows, cursor = store.changes_since(cursor)
            seen.extend(zip(rows["seq"].tolist(), rows["id"].tolist()))
            if last:
                return

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    poller = threading.Thread(target=poll)
    poller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    poller.join()
    assert not errors, errors

    # each call: its own ids, in its order, split into stored now / already stored
    winner: dict[str, tuple[int, float]] = {}
    for k, ids, res, t0, _ in calls:
        assert res.new == [i for i in ids if i in set(res.new)]
        assert res.existing == [i for i in ids if i not in set(res.new)]
        for i in res.new:
            assert i not in winner, f"{i} reported stored now by two calls"
            winner[i] = (k, t0)
    frame = store.to_frame().set_index("id")
    stored = set(frame.index) - {"P000"}
    assert set(winner) == stored  # every stored id was reported new by exactly one call
    for i, (k, _) in winner.items():  # and the row stored is that call's
        assert frame.loc[i, "description"].startswith(f"t{k}c")
    for _, _, res, _, t1 in calls:  # "already stored": by a call that began before this ended
        assert all(winner[i][1] < t1 for i in res.existing if i != "P000")
    # seq: unique, and the poller saw every row once, in seq order, from each cursor it held
    assert frame["seq"].is_unique
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    assert sorted(i for _, i in seen) == sorted(frame.index)
    seqs = np.sort(frame["seq"].to_numpy())
    for cursor in [0, *seqs[:: max(1, len(seqs) // 10)].tolist()]:
        rows, _ = store.changes_since(int(cursor))
        assert rows["seq"].tolist() == [int(s) for s in seqs if s > cursor]
    if _postgis(store_url):  # seq order is commit order: transaction ids never go back
        with psycopg.connect(store_url) as conn:
            xids = [r[0] for r in conn.execute("SELECT xmin::text::bigint FROM incidents "
                                               "ORDER BY seq").fetchall()]  # fmt: skip
        assert xids == sorted(xids)
    # and the calls were written together: fewer transactions than calls
    group = store._group
    assert group.requests == len(calls) + 1
    assert group.commits < group.requests, (group.commits, group.requests)
    store.close()


def test_calls_queued_behind_a_write_are_one_transaction(store_url) -> None:
    store = open_store(store_url)
    store.append_records([record("W0", "warm-up", 0)])
    results: dict[int, object] = {}

    def call(k: int, ids: list[str]) -> None:
        results[k] = store.append_records([record(i, f"c{k}", k) for i in ids])

    asks = {0: ["A0"], 1: ["A1", "S"], 2: ["S", "A2"], 3: ["A3", "W0"], 4: ["A1", "A4"]}
    threads = {k: threading.Thread(target=call, args=(k, ids)) for k, ids in asks.items()}
    with write_lock_held(store_url):
        threads[0].start()  # the leader: waits for the lock with its own call only
        wait_until(lambda: store._group.pending == 1, "the first call")
        for k in range(1, 5):  # queued behind it, in this order
            threads[k].start()
            wait_until(lambda k=k: store._group.pending == k + 1, f"call {k}")
    for t in threads.values():
        t.join()
    assert results[0].new == ["A0"]
    assert (results[1].new, results[1].existing) == (["A1", "S"], [])
    assert (results[2].new, results[2].existing) == (["A2"], ["S"])
    assert (results[3].new, results[3].existing) == (["A3"], ["W0"])
    assert (results[4].new, results[4].existing) == (["A4"], ["A1"])
    assert store.get("S").description == "c1" and store.get("A1").description == "c1"
    assert store._group.commits == 3  # warm-up, the leader, the four queued calls at once
    rows, _ = store.changes_since(store.get("A0").seq)
    assert rows["id"].tolist() == ["A1", "S", "A2", "A3", "A4"]  # queue order
    if _postgis(store_url):
        with psycopg.connect(store_url) as conn:
            xids = conn.execute("SELECT DISTINCT xmin::text FROM incidents WHERE id = ANY(%s)",
                                (rows["id"].tolist(),)).fetchall()  # fmt: skip
        assert len(xids) == 1
    store.close()


def test_a_refused_call_in_a_batch_fails_alone(store_url) -> None:
    store = open_store(store_url)
    refuse_ids_starting_bad(store_url)
    store.append_records([record("W0", "warm-up", 0)])
    results: dict[int, object] = {}

    def call(k: int, ids: list[str]) -> None:
        try:
            results[k] = store.append_records([record(i, f"c{k}", k) for i in ids])
        except GridGeoError as err:
            results[k] = err

    asks = {0: ["A0"], 1: ["A1", "S"], 2: ["OK", "BAD1"], 3: ["S", "W0", "A3"], 4: ["A4"]}
    threads = {k: threading.Thread(target=call, args=(k, ids)) for k, ids in asks.items()}
    with write_lock_held(store_url):
        threads[0].start()
        wait_until(lambda: store._group.pending == 1, "the first call")
        for k in range(1, 5):
            threads[k].start()
            wait_until(lambda k=k: store._group.pending == k + 1, f"call {k}")
    for t in threads.values():
        t.join()
    with pytest.raises(GridGeoError, match=r"(?s)(not stored|cannot write).*refused"):
        raise results[2]
    assert (results[1].new, results[1].existing) == (["A1", "S"], [])
    assert (results[3].new, results[3].existing) == (["A3"], ["S", "W0"])
    assert results[4].new == ["A4"] and results[0].new == ["A0"]
    stored = set(store.to_frame()["id"])
    assert stored == {"W0", "A0", "A1", "S", "A3", "A4"}  # nothing of the refused call
    # warm-up, leader, the failed batch, then its four calls one by one
    assert store._group.commits == 3 + 4
    assert store.get("S").description == "c1"
    store.close()
