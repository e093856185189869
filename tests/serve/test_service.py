"""The service: core handlers without Flask, routes through the test client, real clients live."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import shapely
from live_server import serving

from gridgeo.assign import Locator
from gridgeo.errors import InputError, NotFound
from gridgeo.serve import ServiceConfig, create_app
from gridgeo.serve.features import FeatureService
from gridgeo.serve.lookup import LookupService


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0, scale=0.3, n_incidents=1200)


@pytest.fixture(scope="module")
def app(county):
    return create_app(ServiceConfig(max_batch=1000, max_body_bytes=200_000), layers=county)


@pytest.fixture
def client(app):
    return app.test_client()


# ---- core, without Flask --------------------------------------------------------------------


def test_core_items_paging_and_errors(county) -> None:
    fs = FeatureService(county)
    body, status, headers = fs.items("grids", {"limit": "5"}, "http://x")
    assert status == 200 and headers["Content-Type"] == "application/geo+json"
    assert body["numberMatched"] == len(county["grids"]) and body["numberReturned"] == 5
    assert [lk["rel"] for lk in body["links"]][:3] == ["self", "alternate", "next"]
    with pytest.raises(NotFound, match="collection 'nope' does not exist"):
        fs.items("nope", {}, "http://x")
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['color'\]"):
        fs.items("grids", {"color": "red"}, "http://x")


def test_core_lookup(county) -> None:
    ls = LookupService(Locator.from_workspace(county), max_batch=10)
    inc = county["incidents"].iloc[0]
    body, status, _ = ls.locate_get(
        {"lng": str(inc["lng"]), "lat": str(inc["lat"]), "crs": "gcj02"}
    )
    assert status == 200 and body["grid"]["code"].startswith("360722")
    with pytest.raises(InputError, match="parameter 'lat' is required"):
        ls.locate_get({"lng": "115"})


# ---- routes -----------------------------------------------------------------------------------


def test_landing_and_conformance(client) -> None:
    body = client.get("/").get_json()
    rels = {lk["rel"] for lk in body["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = client.get("/conformance").get_json()["conformsTo"]
    assert any("ogcapi-features-1/1.0/conf/core" in c for c in conf)
    assert client.get("/?f=html").content_type.startswith("text/html")


def test_healthz_says_when_the_kernels_are_loaded(county) -> None:
    from gridgeo.serve.app import warm_up

    app = create_app(ServiceConfig(), layers=county)
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok", "warm": False}
    warm_up(app)
    assert client.get("/healthz").get_json() == {"status": "ok", "warm": True}


def test_openapi_is_valid(client) -> None:
    from openapi_spec_validator import validate

    doc = client.get("/api").get_json()
    validate(doc)
    assert "/collections/grids/items" in doc["paths"] and "/locate" in doc["paths"]


def test_items_all_pages_cover_every_feature(client, county) -> None:
    seen, url = [], "/collections/grids/items?limit=7"
    while url:
        r = client.get(url)
        assert r.status_code == 200 and r.content_type == "application/geo+json"
        body = r.get_json()
        assert {"numberMatched", "numberReturned", "timeStamp"} <= set(body)
        seen += [f["id"] for f in body["features"]]
        nxt = [lk for lk in body["links"] if lk["rel"] == "next"]
        assert all(
            lk["type"] == "application/geo+json" for lk in body["links"] if lk["rel"] != "alternate"
        )
        url = nxt[0]["href"].replace("http://localhost", "") if nxt else None
    assert seen == list(county["grids"]["code"])


def test_bbox_datetime_and_property_filters(client, county) -> None:
    inc = county["incidents"]
    body = client.get(
        "/collections/incidents/items?limit=10000&datetime=2025-01-01T00:00:00Z/.."
    ).get_json()
    assert body["numberMatched"] == int((inc["reported_at"] >= "2025-01-01").sum())
    cat = inc["category"].iloc[0]
    body = client.get(f"/collections/incidents/items?limit=1&category={cat}").get_json()
    assert body["numberMatched"] == int((inc["category"] == cat).sum())
    x0, y0, x1, y1 = county["grids"].total_bounds
    xm = (x0 + x1) / 2
    body = client.get(f"/collections/grids/items?limit=1000&bbox={x0},{y0},{xm},{y1}").get_json()
    want = county["grids"].intersects(shapely.box(x0, y0, xm, y1)).sum()
    assert body["numberMatched"] == int(want)


def test_crs_part2_axis_order_and_header(client, county) -> None:
    uri = "http://www.opengis.net/def/crs/EPSG/0/4490"
    r = client.get(f"/collections/grids/items?limit=1&crs={uri}")
    assert r.headers["Content-Crs"] == f"<{uri}>"
    lat, lon = r.get_json()["features"][0]["geometry"]["coordinates"][0][0]
    assert 20 < lat < 30 and 110 < lon < 120  # EPSG:4490 by URI is lat/lon
    crs_list = client.get("/collections/grids").get_json()["crs"]
    gk = next(c for c in crs_list if c.endswith(("/4547", "/4548")))
    first = client.get(f"/collections/grids/items?limit=1&crs={gk}").get_json()["features"][0]
    northing, easting = first["geometry"]["coordinates"][0][0]  # EPSG order: N, E
    assert northing > 2_000_000 and 100_000 < easting < 1_000_000
    # bbox in lat/lon order with bbox-crs
    x0, y0, x1, y1 = county["grids"].total_bounds
    a = client.get(f"/collections/grids/items?bbox={x0},{y0},{x1},{y1}").get_json()
    b = client.get(f"/collections/grids/items?bbox={y0},{x0},{y1},{x1}&bbox-crs={uri}").get_json()
    assert a["numberMatched"] == b["numberMatched"] == len(county["grids"])


def test_single_item(client, county) -> None:
    code = county["grids"]["code"].iloc[3]
    feat = client.get(f"/collections/grids/items/{code}").get_json()
    assert feat["id"] == code and feat["properties"]["households"] == int(
        county["grids"]["households"].iloc[3]
    )
    assert client.get("/collections/grids/items/nope").status_code == 404


@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/collections/nope/items", 404, "does not exist"),
        ("/collections/grids/items?limit=-1", 400, "'limit' must be between 1 and"),
        ("/collections/grids/items?limit=99999999", 400, "'limit' must be between"),
        ("/collections/grids/items?limit=ten", 400, "'limit' must be an integer"),
        ("/collections/grids/items?bbox=1,2,3", 400, "'bbox' needs 4 finite numbers"),
        ("/collections/grids/items?bbox=a,b,c,d", 400, "comma-separated numbers"),
        ("/collections/grids/items?bbox=3,3,1,1", 400, "min must not exceed max"),
        ("/collections/grids/items?crs=EPSG:9999", 400, "is not offered"),
        ("/collections/grids/items?datetime=2024-01-01", 400, "has no time"),
        ("/collections/incidents/items?datetime=yesterday", 400, "not an RFC 3339"),
        ("/collections/grids/items?foo=1", 400, "unknown parameter(s) ['foo']"),
        ("/collections/grids/items?limit=1&limit=2", 400, "given more than once"),
        ("/collections/grids/items?f=xml", 400, "'f' must be 'json' or 'html'"),
        ("/locate?lng=abc&lat=1", 400, "'lng' must be a number"),
        ("/locate?lng=115&lat=95", 400, "coordinate out of range"),
        ("/locate?lng=115&lat=25&crs=gcj03", 400, "unknown crs 'gcj03'"),
        ("/locate?lng=nan&lat=25", 400, "must be finite"),
        ("/nothing/here", 404, "not found"),
        ("/collections/..%2f..%2fetc%2fpasswd/items", 404, ""),
        ("/collections/grids/items/..%2f..%2f..%2fetc%2fpasswd", 404, ""),
    ],
)
def test_errors_are_json_with_4xx(client, url, status, fragment) -> None:
    r = client.get(url)
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert {"code", "description"} <= set(body)
    assert fragment.lower() in body["description"].lower()
    assert "root:" not in r.get_data(as_text=True)


def test_locate_get_matches_the_library(client, county) -> None:
    loc = Locator.from_workspace(county)
    inc = county["incidents"].head(30)
    for lng, lat in zip(inc["lng"], inc["lat"]):
        body = client.get(f"/locate?lng={lng}&lat={lat}&crs=gcj02").get_json()
        want = loc.locate_one(lng, lat, crs="gcj02")
        for layer in loc.layer_names:
            assert (body[layer] or {}).get("code") == (want[layer] or {}).get("code")


def test_locate_post_json_geojson_csv_same_order(client, county) -> None:
    inc = county["incidents"].head(200)
    pts = inc[["lng", "lat"]].to_numpy().tolist()
    a = client.post("/locate", json={"crs": "gcj02", "points": pts}).get_json()
    fc = {
        "type": "FeatureCollection",
        "crs": "gcj02",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": p}, "properties": {}}
            for p in pts
        ],
    }
    b = client.post("/locate", data=json.dumps(fc), content_type="application/geo+json").get_json()
    csv = "lng,lat\n" + "\n".join(f"{x!r},{y!r}" for x, y in pts)
    c = client.post(
        "/locate?crs=gcj02", data=csv, content_type="text/csv", headers={"Accept": "text/csv"}
    )
    assert a["count"] == b["count"] == 200
    assert a["results"] == b["results"]
    df = pd.read_csv(pd.io.common.StringIO(c.get_data(as_text=True)), dtype=str)
    assert df["grid"].fillna("").tolist() == [g or "" for g in a["results"]["grid"]]
    want = Locator.from_workspace(county).locate(inc)
    assert a["results"]["grid"] == [None if pd.isna(v) else v for v in want["grid"]]


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"data": "{bad", "content_type": "application/json"}, 400, "not valid JSON"),
        ({"data": "[1,2]", "content_type": "application/json"}, 400, "must be an object"),
        ({"json": {"points": [[1, "a"]]}}, 400, "point 0 is not a [lng, lat] pair"),
        ({"json": {"points": [[1]]}}, 400, "point 0 is not a [lng, lat] pair"),
        ({"json": {"points": [[114.9, True]]}}, 400, "pair of numbers"),
        ({"json": {"crs": {}, "points": []}}, 400, "'crs' in the body must be a name"),
        ({"json": {"points": [[200, 25]]}}, 400, "not valid coordinates"),
        ({"json": {"crs": "xyz", "points": []}}, 400, "unknown crs"),
        ({"json": {"nopoints": 1}}, 400, "needs 'points'"),
        ({"data": "x", "content_type": "text/plain"}, 415, "is not accepted"),
        ({"data": "a,b\n1,2", "content_type": "text/csv"}, 400, "has no column(s)"),
        ({"json": {"points": [[115, 25]] * 1001}}, 413, "limit is 1000"),
        ({"data": "x" * 300_000, "content_type": "application/json"}, 413, "larger than"),
    ],
)
def test_locate_post_errors(client, kwargs, status, fragment) -> None:
    r = client.post("/locate", **kwargs)
    assert r.status_code == status, r.get_data(as_text=True)
    assert fragment in r.get_json()["description"]


def test_api_key_protects_writes_and_locate(county) -> None:
    app = create_app(ServiceConfig(api_key="s3cret", protect_locate=True), layers=county)
    c = app.test_client()
    assert c.get("/collections").status_code == 200  # public read
    r = c.get("/locate?lng=115&lat=25")
    assert r.status_code == 401 and "API key" in r.get_json()["description"]
    assert c.get("/locate?lng=115&lat=25", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert (
        c.post(
            "/locate", json={"points": []}, headers={"Authorization": "Bearer s3cret"}
        ).status_code
        == 200
    )
    assert (
        c.post("/locate", json={"points": []}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )


def test_cors(county) -> None:
    app = create_app(ServiceConfig(cors_origins=["http://intranet.example"]), layers=county)
    r = app.test_client().get("/collections", headers={"Origin": "http://intranet.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "http://intranet.example"
    r = app.test_client().get("/collections", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


# ---- real clients against a running server --------------------------------------------------


@pytest.fixture(scope="module")
def live(county, tmp_path_factory):
    """`gridgeo serve` in its own process (an in-process server can deadlock with GDAL's
    HTTP client, which may hold the GIL while it waits)."""

    from gridgeo.io import write_workspace

    path = tmp_path_factory.mktemp("live") / "w.gpkg"
    write_workspace(county, path)
    with serving(path) as url:
        yield url


@pytest.mark.server
def test_gdal_reads_every_collection_completely(live, county) -> None:
    import os

    import pyogrio

    os.environ.setdefault("GDAL_HTTP_TIMEOUT", "60")
    features = FeatureService(county)
    for cid, coll in features.collections.items():
        df = pyogrio.read_dataframe(f"OAPIF:{live}/", layer=cid)
        assert len(df) == len(coll.gdf), cid  # paging followed to the end
        key = coll.id_column
        got = df.set_index(key).sort_index() if key in df.columns else None
        assert got is not None and list(got.index) == sorted(map(str, coll.gdf[key])), cid
    grids = pyogrio.read_dataframe(f"OAPIF:{live}/", layer="grids").set_index("code")
    grids = grids.set_crs(4326, allow_override=True)  # CRS84 is EPSG:4326 in lon/lat order
    ref = county["grids"].set_index("code").to_crs(4326)
    got_m = grids.geometry.reindex(ref.index).to_crs(4547).to_numpy()
    want_m = ref.geometry.to_crs(4547).to_numpy()
    # the same shapes, up to the 7-decimal rounding of RFC 7946 output (~1 cm)
    assert (shapely.hausdorff_distance(got_m, want_m) < 0.05).all()


@pytest.mark.server
def test_owslib_features_client(live, county) -> None:
    owslib = pytest.importorskip("owslib.ogcapi.features")
    api = owslib.Features(live)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"grids", "incidents"} <= ids
    items = api.collection_items("grids", limit=1000)
    assert len(items["features"]) == len(county["grids"])


@pytest.mark.server
def test_ogrinfo_lists_and_counts(live, county, system_tool) -> None:
    ogrinfo = system_tool("ogrinfo", package="gdal-bin")
    out = subprocess.run(
        [ogrinfo, "-ro", "-so", f"OAPIF:{live}/", "grids"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"Feature Count: {len(county['grids'])}" in out.stdout


def test_server_survives_garbage(live) -> None:
    import requests

    for path in [
        "/collections/grids/items?bbox=" + "9" * 5000,
        "/locate?lng=%00&lat=1",
        "/collections/%ff/items",
        "/" + "a" * 3000,
    ]:
        r = requests.get(live + path, timeout=10)
        assert 400 <= r.status_code < 500
    r = requests.post(
        live + "/locate", data=b"\xff\xfe", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert r.status_code == 400
    assert requests.get(live + "/healthz", timeout=10).json()["status"] == "ok"
    assert np.isfinite(1.0)
