"""Ingestion over OGC API – Features Part 4, against both store backends.

Each report is located and routed at ingest (codes equal to the library's brute
force), a retried id creates nothing, a collection is all or nothing, every bad
write is a 4xx that stores nothing, PATCH walks the lifecycle, and the live views
(items, statistics, heat tiles) see a report at once.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gridgeo.assign import Locator, dispatch_codes
from gridgeo.crs import from_wgs84
from gridgeo.io.store import STATUSES
from gridgeo.serve import ServiceConfig, create_app

GEOJSON = "application/geo+json"
KEY = "s3cret"


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    c = demo_county(seed=0, scale=0.3, n_incidents=300)
    return {k: v for k, v in c.items() if k != "incidents"}


@pytest.fixture(scope="module")
def locator(county):
    return Locator.from_workspace(county)


@pytest.fixture(scope="module")
def points(county) -> np.ndarray:
    """WGS84 points inside grids (one per grid), as the dispatcher's phones would report."""
    pts = county["grids"].to_crs(4326).representative_point()
    return np.column_stack([pts.x, pts.y])


@pytest.fixture
def client(store, county, locator):
    cfg = ServiceConfig(api_key=KEY, live_interval=0, max_features=50)
    app = create_app(cfg, layers=county, locator=locator, store=store)
    c = app.test_client()
    c.environ_base["HTTP_X_API_KEY"] = KEY
    return c


def feature(fid, lng, lat, **props) -> dict:
    props.setdefault("category", "消防安全")
    props.setdefault("reported_at", "2025-03-03T09:30:00+08:00")
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Point", "coordinates": [lng, lat]},
        "properties": props,
    }


def post(client, doc, *, query="", **kw):
    data = doc if isinstance(doc, (bytes, str)) else json.dumps(doc, ensure_ascii=False)
    kw.setdefault("content_type", GEOJSON)
    return client.post(f"/collections/incidents/items{query}", data=data, **kw)


def codes_of(locator, lng, lat, category="消防安全") -> dict:
    pts = gpd.GeoDataFrame({"category": [category]}, geometry=[shapely.Point(lng, lat)], crs=4326)
    return dispatch_codes(pts, locator).iloc[0].to_dict()


def count(client) -> int:
    return client.get("/collections/incidents/items?limit=1").get_json()["numberMatched"]


def test_create_locates_routes_and_answers_201_with_location(client, locator, points) -> None:
    lng, lat = points[3]
    r = post(client, feature("12345-0001", lng, lat, source="12345", description="楼道堆物"))
    assert r.status_code == 201, r.get_json()
    assert r.headers["Location"].endswith("/collections/incidents/items/12345-0001")
    props = r.get_json()["properties"]
    want = codes_of(locator, lng, lat)
    for column, value in want.items():
        assert props[column] == value, column
    assert props["grid_code"] is not None and props["department"] == "消防"
    assert props["status"] == "受理" and props["source"] == "12345"
    # the Location is readable, and the incidents collection lists it
    got = client.get(r.headers["Location"]).get_json()
    assert got["id"] == "12345-0001" and got["properties"]["grid_code"] == want["grid_code"]
    assert count(client) == 1


def test_phone_coordinates_in_gcj02_by_query_or_content_crs(client, locator, points) -> None:
    lng, lat = points[5]
    gx, gy = from_wgs84(np.array([lng]), np.array([lat]), "gcj02")
    r = post(client, feature("P1", float(gx[0]), float(gy[0])), query="?crs=gcj02")
    assert r.status_code == 201, r.get_json()
    props = r.get_json()["properties"]
    assert props["grid_code"] == codes_of(locator, lng, lat)["grid_code"]
    assert props["lng"] == pytest.approx(float(gx[0]))  # the coordinates as reported
    stored = r.get_json()["geometry"]["coordinates"]
    assert stored == pytest.approx([lng, lat], abs=1e-6)
    uri = "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    r = post(client, feature("P2", lng, lat), headers={"Content-Crs": uri})
    assert r.status_code == 201 and r.get_json()["properties"]["grid_code"] == props["grid_code"]
    r = post(client, feature("P3", lng, lat), query="?crs=gcj02", headers={"Content-Crs": uri})
    assert r.status_code == 400 and "Content-Crs says" in r.get_json()["description"]


def test_a_retried_work_order_creates_nothing(client, points) -> None:
    f = feature("W-77", *points[0])
    assert post(client, f).status_code == 201
    again = post(client, f)
    assert again.status_code == 200
    assert again.get_json()["id"] == "W-77" and "Location" not in again.headers
    assert count(client) == 1


def test_a_collection_is_one_transaction(client, points) -> None:
    feats = [feature(f"C{i}", *points[i]) for i in range(10)]
    r = post(client, {"type": "FeatureCollection", "features": feats})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["numberCreated"] == 10 and body["numberExisting"] == 0
    assert [f["id"] for f in body["features"]] == [f"C{i}" for i in range(10)]
    assert all(f["properties"]["grid_code"] for f in body["features"])
    # re-sent with two new ones: only those are created
    more = [*feats, feature("C10", *points[10]), feature("C11", *points[11])]
    r = post(client, {"type": "FeatureCollection", "features": more})
    assert r.status_code == 201 and r.get_json()["numberCreated"] == 2
    assert count(client) == 12
    # one bad feature: nothing of the batch is stored
    bad = [feature(f"D{i}", *points[i]) for i in range(5)]
    bad[3]["geometry"] = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    r = post(client, {"type": "FeatureCollection", "features": bad})
    assert r.status_code == 400
    assert "feature 3 (id 'D3'): geometry must be a Point" in r.get_json()["description"]
    assert count(client) == 12
    everything = client.get("/collections/incidents/items?limit=100").get_json()["features"]
    assert not [f for f in everything if f["id"].startswith("D")]


def _bad_writes(points):
    lng, lat = points[0]
    no_geom = feature("B1", lng, lat)
    no_geom["geometry"] = None
    no_category = feature("B1", lng, lat)
    del no_category["properties"]["category"]
    text_coord = feature("B1", lng, lat)
    text_coord["geometry"]["coordinates"] = ["114.9", lat]
    many = {
        "type": "FeatureCollection",
        "features": [feature(f"M{i}", lng, lat) for i in range(51)],
    }
    return [
        (json.dumps(no_geom), "", GEOJSON, 400, "geometry is missing"),
        (json.dumps(no_category), "", GEOJSON, 400, "property 'category' is required"),
        (json.dumps(text_coord), "", GEOJSON, 400, "coordinates must be finite numbers"),
        (json.dumps(feature("B1", 200.0, lat)), "", GEOJSON, 400, "outside China"),
        (json.dumps(feature("B1", lat, lng)), "", GEOJSON, 400, "swapped lng/lat or wrong crs"),
        (json.dumps(feature("B1", lng, lat, reported_at="yesterday")), "", GEOJSON, 400,
         "reported_at 'yesterday' is not an ISO 8601 time"),
        (json.dumps(feature("B1", lng, lat, reported_at="2025-03-01T08:00:00")), "", GEOJSON,
         400, "has no UTC offset"),
        (json.dumps(feature("B1", lng, lat, colour="red")), "", GEOJSON, 400,
         "unknown properties ['colour']"),
        (json.dumps(feature("B1", lng, lat, status="done")), "", GEOJSON, 400,
         "is not one of ['受理'"),
        (json.dumps(feature("B1", lng, lat)), "?crs=amap", GEOJSON, 400,
         "'amap' is not a CRS gridgeo knows"),
        ('{"type": "Feature", "geometry": ', "", GEOJSON, 400, "malformed JSON at line 1"),
        ("[1, 2]", "", GEOJSON, 400, "expected a GeoJSON object"),
        (json.dumps(feature("B1", lng, lat)), "", "text/plain", 415, "is not accepted"),
        (json.dumps(many), "", GEOJSON, 413, "51 features in one request; at most 50"),
        (json.dumps(feature("B1", lng, lat)), "?limit=3", GEOJSON, 400, "unknown parameter"),
        ("x" * (17 * 1024 * 1024), "", GEOJSON, 413, "request body larger than"),
    ]


@pytest.mark.parametrize("case", range(16))
def test_bad_writes_are_4xx_problems_that_store_nothing(client, points, case) -> None:
    body, query, ctype, status, fragment = _bad_writes(points)[case]
    r = post(client, body, query=query, content_type=ctype)
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    assert fragment in r.get_json()["description"]
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert count(client) == 0


def test_writes_need_the_key_reads_do_not(client, points) -> None:
    f = json.dumps(feature("K1", *points[0]))
    r = client.post(
        "/collections/incidents/items",
        data=f,
        content_type=GEOJSON,
        environ_base={"HTTP_X_API_KEY": "wrong"},
    )
    assert r.status_code == 401 and "API key" in r.get_json()["description"]
    r = client.patch(
        "/collections/incidents/items/K1",
        json={"status": "派遣"},
        environ_base={"HTTP_X_API_KEY": ""},
    )
    assert r.status_code == 401
    assert count(client) == 0
    assert client.get("/collections/incidents/items", environ_base={}).status_code == 200


def test_patch_walks_the_lifecycle_and_records_closed_at(client, points) -> None:
    assert post(client, feature("L1", *points[2])).status_code == 201
    for status in STATUSES[1:-1]:
        r = client.patch("/collections/incidents/items/L1", json={"status": status})
        assert r.status_code == 200 and r.get_json()["properties"]["status"] == status
        assert r.get_json()["properties"]["closed_at"] is None
    r = client.patch(
        "/collections/incidents/items/L1",
        data=json.dumps({"status": "结案", "at": "2025-03-05T17:00:00+08:00"}),
        content_type="application/merge-patch+json",
    )
    assert r.status_code == 200
    assert r.get_json()["properties"]["closed_at"].startswith("2025-03-05T17:00:00")
    r = client.patch("/collections/incidents/items/L1", json={"status": "done"})
    assert r.status_code == 400 and "'结案'" in r.get_json()["description"]
    r = client.patch("/collections/incidents/items/L1", json={"status": "派遣", "by": "x"})
    assert r.status_code == 400 and "only 'status'" in r.get_json()["description"]
    r = client.patch("/collections/incidents/items/NOPE", json={"status": "派遣"})
    assert r.status_code == 404 and "NOPE" in r.get_json()["description"]


def test_live_views_see_a_report_at_once(client, points, locator) -> None:
    lng, lat = points[7]
    grid = codes_of(locator, lng, lat)["grid_code"]

    def stats():
        feats = client.get("/stats/grids?start=2025-01-01&end=2025-12-31").get_json()["features"]
        return {f["id"]: f["properties"] for f in feats}

    before = stats()[grid]
    assert post(client, feature("S1", lng, lat)).status_code == 201
    after = stats()[grid]
    assert after["count"] == before["count"] + 1
    assert after["open"] == before["open"] + 1
    assert after["overdue"] == before["overdue"] + 1  # reported in March 2025: long overdue
    client.patch("/collections/incidents/items/S1", json={"status": "结案"})
    closed = stats()[grid]
    assert closed["open"] == before["open"] and closed["count"] == after["count"]
    items = client.get(f"/collections/incidents/items?grid_code={grid}").get_json()
    assert [f["id"] for f in items["features"]] == ["S1"]


def test_conformance_and_api_describe_ingestion(client) -> None:
    conf = client.get("/conformance").get_json()["conformsTo"]
    assert any("ogcapi-features-4" in c for c in conf)
    api = client.get("/api").get_json()
    ops = api["paths"]["/collections/incidents/items"]
    assert {"get", "post"} <= set(ops)
    assert "patch" in api["paths"]["/collections/incidents/items/{featureId}"]


def test_without_a_store_reports_are_refused_with_405(county, locator) -> None:
    app = create_app(ServiceConfig(), layers=county, locator=locator)
    r = app.test_client().post(
        "/collections/incidents/items", data="{}", content_type=GEOJSON
    )
    assert r.status_code == 405 and "no incident store" in r.get_json()["description"]
    assert "GET" in r.headers["Allow"]
    conf = app.test_client().get("/conformance").get_json()["conformsTo"]
    assert not any("ogcapi-features-4" in c for c in conf)
