"""The two ingestion paths agree: a live report (up to 64 features, appended as records
without frames) and a big collection (located and appended as one frame) store the same
rows, and the 201 body of a report is what reading it back gives (both backends)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gridgeo.assign import Locator
from gridgeo.crs import from_wgs84
from gridgeo.serve import ServiceConfig, create_app
from gridgeo.serve.incidents import _SMALL

GEOJSON = "application/geo+json"
CATEGORIES = ["消防安全", "乱停乱放", "矛盾纠纷", "噪音"]


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    c = demo_county(seed=0, scale=0.3, n_incidents=300)
    return {k: v for k, v in c.items() if k != "incidents"}


@pytest.fixture(scope="module")
def locator(county):
    return Locator.from_workspace(county)


@pytest.fixture(scope="module")
def phone_points(county) -> np.ndarray:
    """GCJ-02 points (as phones send them) inside and around the grids."""
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = county["grids"].to_crs(4326).total_bounds
    lon = x0 + rng.random(2 * _SMALL) * (x1 - x0)
    lat = y0 + rng.random(2 * _SMALL) * (y1 - y0)
    gx, gy = from_wgs84(lon, lat, "gcj02")
    return np.column_stack([gx, gy])


@pytest.fixture
def client(store, county, locator):
    app = create_app(
        ServiceConfig(live_interval=0, max_features=4 * _SMALL),
        layers=county,
        locator=locator,
        store=store,
    )
    return app.test_client()


def feature(fid: str, xy, i: int) -> dict:
    props = {
        "category": CATEGORIES[i % len(CATEGORIES)],
        "reported_at": f"2025-03-{1 + i % 28:02d}T{i % 24:02d}:30:00+08:00",
        "source": ["12345", "app", None][i % 3],
        "description": "楼道堆物" if i % 2 else None,
    }
    if i % 5 == 0:
        props["status"] = "立案"
    if i % 7 == 0:
        props["department"] = "城管"  # kept where routing finds none
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Point", "coordinates": [float(xy[0]), float(xy[1])]},
        "properties": {k: v for k, v in props.items() if v is not None},
    }


def post(client, doc):
    return client.post(
        "/collections/incidents/items?crs=gcj02",
        data=json.dumps(doc, ensure_ascii=False),
        content_type=GEOJSON,
    )


def test_the_201_body_is_what_reading_it_back_gives(client, phone_points) -> None:
    for i in range(6):
        r = post(client, feature(f"P{i}", phone_points[i], i))
        assert r.status_code == 201, r.get_json()
        made = r.get_json()
        back = client.get(r.headers["Location"]).get_json()
        # the items collection writes 7 decimals (1 cm), the 201 body 8
        assert made["geometry"]["coordinates"] == pytest.approx(
            back["geometry"]["coordinates"], abs=1e-7
        )
        for name, value in made["properties"].items():
            if name == "reported_at":  # the same instant (the items collection writes UTC)
                assert pd.Timestamp(back["properties"][name]) == pd.Timestamp(value)
            elif name in ("lng", "lat"):  # written with 10 decimals there
                assert back["properties"][name] == pytest.approx(value, abs=1e-10), name
            else:
                assert back["properties"][name] == value, name
        # the coordinates as the phone sent them are kept, both of them
        assert made["properties"]["lng"] == float(phone_points[i][0])
        assert made["properties"]["lat"] == float(phone_points[i][1])


def test_live_reports_and_a_big_collection_store_the_same_rows(
    client, store, phone_points
) -> None:
    n = _SMALL + 6  # one collection past the live path's limit
    big = [feature(f"B{i:03d}", phone_points[i], i) for i in range(n)]
    r = post(client, {"type": "FeatureCollection", "features": big})
    assert r.status_code == 201 and r.get_json()["numberCreated"] == n
    # the same reports, some alone and some in small collections: the record path
    small = [feature(f"S{i:03d}", phone_points[i], i) for i in range(n)]
    for i in range(0, 20):
        assert post(client, small[i]).status_code == 201
    for lo in range(20, n, 10):
        r = post(client, {"type": "FeatureCollection", "features": small[lo : lo + 10]})
        assert r.status_code == 201, r.get_json()
    frame = store.to_frame().drop(columns=["seq", "updated_at"])
    wkt = frame.geometry.to_wkt()
    frame = pd.DataFrame(frame.drop(columns="geometry")).assign(geometry=wkt).sort_values("id")
    by_big = frame[frame["id"].str.startswith("B")].assign(id=lambda f: f["id"].str[1:])
    by_small = frame[frame["id"].str.startswith("S")].assign(id=lambda f: f["id"].str[1:])
    pd.testing.assert_frame_equal(by_big.reset_index(drop=True), by_small.reset_index(drop=True))
    assert by_small["grid_code"].notna().any() and by_small["zone_code"].notna().any()
    assert (by_small["lat"].to_numpy() == phone_points[:n, 1]).all()


def test_a_small_collection_answers_new_and_stored_reports(client, phone_points) -> None:
    feats = [feature(f"C{i}", phone_points[i], i) for i in range(3)]
    assert post(client, feats[1]).status_code == 201
    r = post(client, {"type": "FeatureCollection", "features": feats})
    body = r.get_json()
    assert r.status_code == 201 and body["created"] == ["C0", "C2"]
    assert body["existing"] == ["C1"]
    assert [f["id"] for f in body["features"]] == ["C0", "C1", "C2"]
    assert body["features"][1]["properties"]["seq"] is not None  # read back from the store
    assert "seq" not in body["features"][0]["properties"]  # answered from what was stored
    again = post(client, {"type": "FeatureCollection", "features": feats})
    assert again.status_code == 200 and again.get_json()["numberCreated"] == 0
