"""The incident store contract, run against each backend (GeoPackage and a real PostGIS)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridgeo.errors import CRSError, InputError, NotFound, ValidationError
from gridgeo.io import IncidentStore, open_store
from gridgeo.io.store import CLOSED, COLUMNS, STATUSES, TZ, StoreError

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo.gpkg"
CATEGORIES = ["消防安全", "乱停乱放", "矛盾纠纷"]
X0, Y0 = 114.90, 25.30


def incidents(n: int, *, prefix: str = "E", seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` incidents in a 0.1° box, with times over 30 days (some on shared coordinates)."""
    rng = np.random.default_rng(seed)
    x = np.round(X0 + rng.random(n) * 0.1, 3)  # rounded: points land on bbox edges too
    y = np.round(Y0 + rng.random(n) * 0.1, 3)
    minutes = rng.integers(0, 30 * 24 * 60, n)
    return gpd.GeoDataFrame(
        {
            "id": [f"{prefix}{i:05d}" for i in range(n)],
            "category": rng.choice(CATEGORIES, n),
            "department": rng.choice(["消防", "交警"], n),
            "reported_at": pd.Timestamp("2025-03-01", tz=TZ) + pd.to_timedelta(minutes, "min"),
            "lng": x + 0.005,
            "lat": y - 0.002,
            "source": "app",
            "grid_code": "360722001001001",
        },
        geometry=shapely.points(x, y),
        crs="EPSG:4490",
    )


# -- append, get, count ---------------------------------------------------------------------


def test_append_get_count(store) -> None:
    data = incidents(30)
    res = store.append(data)
    assert res.new == data["id"].tolist() and res.existing == []
    assert store.count() == 30
    inc = store.get("E00007")
    row = data.iloc[7]
    assert inc.category == row["category"] and inc.department == row["department"]
    assert inc.geometry.equals(row.geometry)
    assert inc.reported_at == row["reported_at"]
    assert (inc.lng, inc.lat, inc.grid_code) == (row["lng"], row["lat"], row["grid_code"])
    assert inc.status == STATUSES[0] and inc.closed_at is None and inc.seq is not None
    frame = store.to_frame()
    assert list(frame.columns) == [*COLUMNS, "geometry"]
    assert frame.crs == "EPSG:4490"
    assert sorted(frame["id"]) == sorted(data["id"])
    with pytest.raises(NotFound, match="no incident with id 'nope'"):
        store.get("nope")


def test_records_and_geojson(store) -> None:
    rec = {
        "id": "R1",
        "category": "消防安全",
        "reported_at": "2025-03-01T08:00:00+08:00",
        "geometry": {"type": "Point", "coordinates": [114.95, 25.35]},
        "description": "楼道堆物",
    }
    assert store.append([rec]).new == ["R1"]
    feature = store.get("R1").__geo_interface__
    assert feature["geometry"] == {"type": "Point", "coordinates": (114.95, 25.35)}
    assert feature["properties"]["reported_at"] == "2025-03-01T08:00:00+08:00"
    assert feature["properties"]["description"] == "楼道堆物"


def test_naive_times_are_china_standard_time(store) -> None:
    store.append(
        [
            {"id": "N", "category": "c", "reported_at": "2025-03-01 08:00",
             "geometry": shapely.Point(115, 25.3)},
            {"id": "Z", "category": "c", "reported_at": "2025-03-01T00:00:00Z",
             "geometry": shapely.Point(115, 25.3)},
        ]
    )  # fmt: skip
    assert store.get("N").reported_at == store.get("Z").reported_at
    assert store.get("N").reported_at.utcoffset() == pd.Timedelta(hours=8)


def test_other_crs_is_reprojected_and_missing_crs_refused(store) -> None:
    data = incidents(3).to_crs("EPSG:32650")
    store.append(data)
    got = store.get("E00001").geometry
    assert got.distance(incidents(3).geometry.iloc[1]) < 1e-7
    with pytest.raises(CRSError, match="no CRS"):
        store.append(incidents(2, prefix="X").set_crs(None, allow_override=True))


# -- idempotency and atomicity ----------------------------------------------------------------


def test_reappend_is_idempotent(store) -> None:
    first = incidents(5)
    store.append(first)
    again = incidents(8, seed=1)  # E00000..E00007: 5 stored, 3 new, other contents
    res = store.append(again)
    assert res.existing == [f"E{i:05d}" for i in range(5)]
    assert res.new == [f"E{i:05d}" for i in range(5, 8)]
    assert store.count() == 8
    assert store.get("E00002").category == first["category"].iloc[2]  # first write kept
    assert store.append(first).new == []


def test_batch_is_all_or_nothing(store) -> None:
    data = incidents(6)
    data.loc[3, "category"] = None
    data.loc[4, "reported_at"] = pd.NaT
    with pytest.raises(ValidationError, match=r"row 3 \(id 'E00003'\): 'category' is missing"):
        store.append(data)
    assert store.count() == 0
    with pytest.raises(ValidationError, match=r"row 4 \(id 'E00004'\): 'reported_at'"):
        store.append(data)
    ok = {"category": "c", "reported_at": "2025-03-01"}
    bad = [
        {**ok, "id": "A", "geometry": shapely.Point(1, 1)},
        {**ok, "id": "A", "geometry": shapely.box(0, 0, 1, 2)},
        {**ok, "id": "B", "reported_at": "soon", "geometry": None, "status": "done"},
    ]
    with pytest.raises(ValidationError, match="6 problems") as info:
        store.append(bad)
    text = str(info.value)
    assert "row 0 (id 'A'), row 1 (id 'A'): 'id' appears more than once" in text
    assert "row 1 (id 'A'): geometry must be a Point" in text
    assert "row 0 (id 'A'): point lies outside China" in text
    assert "row 2 (id 'B'): geometry is missing" in text
    assert "row 2 (id 'B'): 'reported_at' is missing or not an ISO 8601 time" in text
    assert "row 2 (id 'B'): 'status' must be one of ['受理'" in text
    assert store.count() == 0


# -- queries against a brute-force filter -------------------------------------------------------

DATA = incidents(300, seed=7)


@pytest.fixture
def filled(store):
    store.append(DATA)
    return store


def brute(bbox=None, start=None, end=None, category=None) -> pd.DataFrame:
    df = DATA
    keep = np.ones(len(df), bool)
    if bbox is not None:
        x, y = shapely.get_x(df.geometry.values), shapely.get_y(df.geometry.values)
        keep &= (x >= bbox[0]) & (x <= bbox[2]) & (y >= bbox[1]) & (y <= bbox[3])
    if start is not None:
        keep &= (df["reported_at"] >= start).to_numpy()
    if end is not None:
        keep &= (df["reported_at"] < end).to_numpy()
    if category is not None:
        keep &= df["category"].isin([category] if isinstance(category, str) else category)
    return df[keep].sort_values(["reported_at", "id"])


coord = st.integers(0, 100).map(lambda i: i / 1000)
when = st.one_of(st.none(), st.integers(0, 30 * 24).map(
    lambda h: pd.Timestamp("2025-03-01", tz=TZ) + pd.Timedelta(hours=h)))  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    box=st.one_of(st.none(), st.tuples(coord, coord, coord, coord)),
    start=when,
    end=when,
    category=st.one_of(st.none(), st.sampled_from(CATEGORIES), st.just(CATEGORIES[:2])),
)
def test_query_matches_brute_force(filled, box, start, end, category) -> None:
    bbox = None
    if box is not None:
        bbox = (X0 + min(box[0], box[2]), Y0 + min(box[1], box[3]),
                X0 + max(box[0], box[2]), Y0 + max(box[1], box[3]))  # fmt: skip
    expected = brute(bbox, start, end, category)
    got = filled.query(bbox=bbox, start=start, end=end, category=category)
    assert got["id"].tolist() == expected["id"].tolist()
    assert filled.count(bbox=bbox, start=start, end=end, category=category) == len(expected)
    page = filled.query(bbox=bbox, start=start, end=end, category=category, limit=7, offset=3)
    assert page["id"].tolist() == expected["id"].tolist()[3:10]


def test_where_filters_text_columns_by_equality(filled) -> None:
    some = DATA.iloc[[2, 5, 11]]["id"].tolist()
    filled.update_status(some[0], "派遣")
    filled.update_status(some[1], "派遣")
    got = filled.query(where={"status": "派遣"})
    assert sorted(got["id"]) == sorted(some[:2])
    assert filled.count(where={"status": "派遣"}) == 2
    cat = DATA["category"].iloc[11]
    want = brute(category=cat)
    want = want[want["id"] != some[0]] if DATA["category"].iloc[2] == cat else want
    got = filled.query(where={"category": cat, "status": "受理"})
    assert set(got["id"]) == set(want["id"]) - set(some[:2])
    assert filled.query(where={"id": some[2]})["id"].tolist() == [some[2]]
    with pytest.raises(InputError, match=r"cannot filter on \['geometry'\]"):
        filled.query(where={"geometry": "x"})


def test_query_times_as_strings_and_bad_filters(filled) -> None:
    expected = brute(start=pd.Timestamp("2025-03-05T00:00+08:00"),
                     end=pd.Timestamp("2025-03-06T00:00+08:00"))  # fmt: skip
    got = filled.query(start="2025-03-04T16:00:00Z", end="2025-03-06")  # a date: local midnight
    assert got["id"].tolist() == expected["id"].tolist()
    with pytest.raises(InputError, match="start 'yesterday' is not an ISO 8601 time"):
        filled.query(start="yesterday")
    with pytest.raises(InputError, match=r"bbox .* has min > max"):
        filled.count(bbox=(115, 25, 114, 26))
    with pytest.raises(InputError, match="bbox must be 4 numbers"):
        filled.count(bbox=(115, 25))


def test_frame_feeds_the_analysis(filled) -> None:
    from gridgeo.analyze.index import IncidentIndex

    index = IncidentIndex.build(filled.to_frame(), tiles=False)
    assert index.n == len(DATA)
    local_days = DATA["reported_at"].dt.tz_localize(None).dt.normalize()
    assert index.counts.sum(axis=1).max() == DATA["category"].value_counts().max()
    assert index.counts.shape[1] == (local_days.max() - local_days.min()).days + 1


# -- changes_since and status -------------------------------------------------------------------


def test_changes_since_sees_each_change_once_in_order(store) -> None:
    store.append(incidents(3))
    rows, c1 = store.changes_since(0)
    assert rows["id"].tolist() == ["E00000", "E00001", "E00002"]
    assert rows["seq"].is_monotonic_increasing and c1 == rows["seq"].max()
    assert store.changes_since(c1)[0].empty and store.changes_since(c1)[1] == c1
    store.update_status("E00000", "立案")
    store.append(incidents(5))  # 3 known ids (no change) and 2 new
    store.update_status("E00001", "派遣")
    rows, c2 = store.changes_since(c1)
    assert rows["id"].tolist() == ["E00000", "E00003", "E00004", "E00001"]
    assert rows["status"].tolist() == ["立案", "受理", "受理", "派遣"]
    assert store.changes_since(c2)[0].empty
    part, c = store.changes_since(c1, limit=3)
    assert part["id"].tolist() == ["E00000", "E00003", "E00004"]
    assert store.changes_since(c)[0]["id"].tolist() == ["E00001"]


def test_update_status_lifecycle(store) -> None:
    store.append(incidents(2))
    seq0 = store.get("E00000").seq
    for status in STATUSES[1:-1]:
        inc = store.update_status("E00000", status)
        assert inc.status == status and inc.closed_at is None and inc.seq > seq0
        seq0 = inc.seq
    closed = store.update_status("E00000", CLOSED, at="2025-03-09T10:00:00+08:00")
    assert closed.closed_at == pd.Timestamp("2025-03-09T10:00:00+08:00")
    assert store.update_status("E00000", CLOSED).seq == closed.seq  # unchanged: no new change
    reopened = store.update_status("E00000", "处置")
    assert reopened.closed_at is None
    before = pd.Timestamp.now(tz="UTC")
    assert store.update_status("E00001", CLOSED).closed_at >= before - pd.Timedelta(seconds=5)
    with pytest.raises(InputError, match=r"status 'done' is not one of \['受理', '立案'"):
        store.update_status("E00001", "done")
    with pytest.raises(NotFound, match="no incident with id 'nope'"):
        store.update_status("nope", "立案")


# -- several processes at once ---------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import pathlib, sys, time
    import shapely
    from gridgeo.io.store import open_store

    url, prefix = sys.argv[1], sys.argv[2]
    ready, go = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])
    store = open_store(url)
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    for b in range(20):
        store.append([
            {"id": f"{prefix}{b * 25 + i}", "category": "c", "reported_at": "2025-03-01 08:00",
             "geometry": shapely.Point(115 + i * 1e-4, 25.3 + b * 1e-4)}
            for i in range(25)
        ])
        store.update_status(f"{prefix}{b * 25}", "立案")
    store.close()
    """
)


def test_concurrent_writers(store_url, tmp_path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_url, p, str(tmp_path / p), str(go)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in ("a", "b")
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / p).exists() for p in "ab"):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
            p.stderr.read() for p in procs if p.poll() is not None
        ]
        time.sleep(0.01)
    store = open_store(store_url)
    go.touch()
    seen: list[str] = []
    cursor = 0
    while any(p.poll() is None for p in procs):  # poll while they write
        rows, cursor = store.changes_since(cursor)
        seen += rows["id"].tolist()
        time.sleep(0.005)
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert not any("locked" in e for e in errors), errors
    rows, cursor = store.changes_since(cursor)
    seen += rows["id"].tolist()
    assert store.count() == 1000
    assert len(set(seen)) == 1000
    updated = {f"{p}{b * 25}" for p in "ab" for b in range(20)}
    # every row once, plus at most once more for its status change
    counts = pd.Series(seen).value_counts()
    assert counts.max() <= 2 and set(counts[counts == 2].index) <= updated
    frame = store.to_frame()
    assert frame["seq"].is_unique
    assert set(frame.loc[frame["status"] == "立案", "id"]) == updated
    store.close()


# -- the GeoPackage layer --------------------------------------------------------------------


def test_geopackage_rows_are_read_by_gdal(tmp_path) -> None:
    path = tmp_path / "ws.gpkg"
    bulk, small = incidents(1500), incidents(20, prefix="S", seed=3)  # R-tree filled both ways
    data = pd.concat([bulk, small], ignore_index=True)
    with open_store(path) as store:
        store.append(bulk)
        store.append(small)
        store.update_status("E00004", CLOSED, at="2025-04-01T09:00:00+08:00")
        mine = store.to_frame()
    back = gpd.read_file(path, layer="incidents")
    assert back.crs == "EPSG:4490"
    back = back.set_index("id").loc[mine["id"]]
    assert shapely.equals(back.geometry.values, mine.geometry.values).all()
    assert (back["category"].to_numpy() == mine["category"].to_numpy()).all()
    local = mine["reported_at"].dt.tz_localize(None).to_numpy()
    assert (back["reported_at"].to_numpy() == local).all()  # naive China Standard Time
    assert back.loc["E00004", "status"] == CLOSED
    info = pyogrio.read_info(path, layer="incidents")
    assert info["features"] == len(data)
    assert info["total_bounds"] == pytest.approx(tuple(data.total_bounds))
    for bbox in [(114.90, 25.30, 114.95, 25.35), (114.93, 25.31, 114.98, 25.39)]:
        hits = gpd.read_file(path, layer="incidents", bbox=bbox)  # through GDAL's R-tree
        assert sorted(hits["id"]) == sorted(brute_of(data, bbox))


def brute_of(data: gpd.GeoDataFrame, bbox) -> list[str]:
    x, y = shapely.get_x(data.geometry.values), shapely.get_y(data.geometry.values)
    keep = (x >= bbox[0]) & (x <= bbox[2]) & (y >= bbox[1]) & (y <= bbox[3])
    return data.loc[keep, "id"].tolist()


def test_migrates_the_demo_incidents_layer(tmp_path) -> None:
    path = tmp_path / "demo.gpkg"
    shutil.copy(DEMO, path)
    before = gpd.read_file(path, layer="incidents")
    with open_store(path) as store:
        assert store.count() == len(before)
        fire = before[before["category"] == "消防安全"]
        assert store.count(category="消防安全") == len(fire)
        frame = store.to_frame()
        assert frame["seq"].is_unique
        got = frame.set_index("id").loc[before["id"]]
        # the demo's own lifecycle is kept: statuses as they were, close times to the second
        assert (got["status"].to_numpy() == before["status"].to_numpy()).all()
        closed = before["closed_at"].notna().to_numpy()
        assert (got["closed_at"].notna().to_numpy() == closed).all()
        assert (got["closed_at"][closed].dt.tz_localize(None).to_numpy()
                == before["closed_at"][closed].to_numpy()).all()  # fmt: skip
        assert (got["reported_at"].dt.tz_localize(None).to_numpy()
                == before["reported_at"].to_numpy()).all()  # fmt: skip
        assert shapely.equals(got.geometry.values, before.geometry.values).all()
        bbox = (114.9, 25.3, 115.0, 25.4)
        assert sorted(store.query(bbox=bbox)["id"]) == sorted(brute_of(before, bbox))
        _, cursor = store.changes_since(0)
        assert store.append(incidents(2, prefix="N")).new == ["N00000", "N00001"]
    with open_store(path) as again:  # a second open migrates nothing
        assert again.changes_since(cursor)[0]["id"].tolist() == ["N00000", "N00001"]
    after = gpd.read_file(path, layer="incidents")  # GDAL still reads it, without warnings
    assert len(after) == len(before) + 2
    for name in ("grids", "towns"):
        assert len(gpd.read_file(path, layer=name)) == len(gpd.read_file(DEMO, layer=name))


def test_geopackage_errors(tmp_path) -> None:
    other = tmp_path / "other.gpkg"
    with psycopg_free_sqlite(other) as conn:
        conn.execute("CREATE TABLE t (a)")
    with pytest.raises(StoreError, match="not a GeoPackage"):
        open_store(other)
    dup = tmp_path / "dup.gpkg"
    data = incidents(3)
    data.loc[2, "id"] = "E00000"
    data.to_file(dup, layer="incidents", engine="pyogrio")
    with pytest.raises(InputError, match=r"duplicate ids \['E00000'\]"):
        open_store(dup)


def psycopg_free_sqlite(path: Path):
    import contextlib
    import sqlite3

    return contextlib.closing(sqlite3.connect(path, isolation_level=None))


# -- opening, PostGIS specifics, the CLI -----------------------------------------------------


def test_open_store_errors() -> None:
    with pytest.raises(InputError, match=r"expected a GeoPackage path ending in '\.gpkg'"):
        open_store("incidents.csv")
    with pytest.raises(InputError, match="cannot open an incident store at 'mysql://x/y'"):
        open_store("mysql://x/y")
    with pytest.raises(InputError, match="cannot parse the PostgreSQL URL"):
        open_store("postgresql://host/db?nosuchoption=1")
    with pytest.raises(
        StoreError, match=r"cannot connect to PostgreSQL at gis@127\.0\.0\.1:9/"
    ) as e:
        open_store("postgresql://gis:s3cret@127.0.0.1:9/city", connect_timeout=2)
    assert "s3cret" not in str(e.value)


def test_postgis_missing_extension(postgresql_cluster) -> None:
    with psycopg.connect(postgresql_cluster, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS plain WITH (FORCE)")
        conn.execute("DROP ROLE IF EXISTS clerk")
        conn.execute("CREATE ROLE clerk LOGIN NOSUPERUSER")
        conn.execute("CREATE DATABASE plain OWNER clerk TEMPLATE template0")
    dsn = postgresql_cluster.replace("///postgres", "///plain").rsplit("&user=", 1)[0]
    with pytest.raises(StoreError, match="PostGIS extension is not installed in clerk@"):
        open_store(dsn + "&user=clerk")


def test_postgis_schema_version_and_cli(postgresql) -> None:
    from gridgeo.cli import main
    from gridgeo.io.store.postgis import MIGRATIONS

    runner = CliRunner()
    for _ in range(2):  # the second run finds the schema up to date
        out = runner.invoke(main, ["db", "init", postgresql])
        assert out.exit_code == 0, out.output
        assert f"schema version {MIGRATIONS[-1][0]}: 0 incidents" in out.output
    with psycopg.connect(postgresql) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        indexes = {r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'incidents'")}  # fmt: skip
    assert versions == [v for v, _ in MIGRATIONS]
    assert any("USING gist (geom)" in i for i in indexes)
    assert any("(reported_at, id)" in i for i in indexes)
    out = runner.invoke(main, ["db", "init", "postgresql://u:pw@127.0.0.1:9/x"])
    assert out.exit_code == 2 and "cannot connect to PostgreSQL at u@127.0.0.1:9/x" in out.output
    assert "pw" not in out.output.replace("PostgreSQL", "")


def test_postgis_migrates_a_version_1_database(postgresql, monkeypatch) -> None:
    """A database made by the first schema keeps its rows and loses the category index."""
    import gridgeo.io.store.postgis as pg

    monkeypatch.setattr(pg, "MIGRATIONS", pg.MIGRATIONS[:1])
    with open_store(postgresql) as old:
        old.append(incidents(1, prefix="M"))
    monkeypatch.undo()
    with open_store(postgresql) as store:
        assert store.count() == 1 and store.get("M00000").id == "M00000"
    with psycopg.connect(postgresql) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        names = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'incidents'")}  # fmt: skip
    assert versions == [v for v, _ in pg.MIGRATIONS]
    assert "incidents_category_idx" not in names and "incidents_geom_idx" in names


def test_store_is_an_incident_store(store) -> None:
    assert isinstance(store, IncidentStore)
    assert store.name in repr(store)
