"""POST /locate for dispatch integrators: echoed ids, Chinese and long CSV headers, names,
one CRS, all through the Flask test client and checked against the library."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from gridgeo.assign import Locator
from gridgeo.serve import ServiceConfig, create_app


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0, scale=0.3, n_incidents=200)


@pytest.fixture(scope="module")
def client(county):
    return create_app(ServiceConfig(max_batch=1000), layers=county).test_client()


@pytest.fixture(scope="module")
def incidents(county) -> pd.DataFrame:
    """60 incidents (GCJ-02 lng/lat), shuffled so that request order is not sorted by id."""
    return county["incidents"].sample(60, random_state=1)[["id", "category", "lng", "lat"]]


@pytest.fixture(scope="module")
def expected(county, incidents) -> dict[str, list]:
    """The library's answer, layer → keys (``None`` outside), in the incidents' order."""
    res = Locator.from_workspace(county).locate(
        incidents["lng"].to_numpy(), incidents["lat"].to_numpy(), crs="gcj02"
    )
    return {c: [None if pd.isna(v) else v for v in res[c]] for c in res.columns}


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False)  # every digit of the coordinates


def _problem(r, status: int = 400) -> str:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.content_type == "application/problem+json"
    return r.get_json()["description"]


# ---- 1. what came with a point comes back with its answer, in request order ---------------


def test_json_point_objects_echo_their_other_keys(client, incidents, expected) -> None:
    pts = [
        {"id": i, "lng": x, "lat": y, "category": c}
        for i, c, x, y in incidents.itertuples(index=False)
    ]
    pts[3] = {"lng": pts[3]["lng"], "lat": pts[3]["lat"]}  # a point with nothing to echo
    r = client.post("/locate", json={"crs": "gcj02", "points": pts})
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    ids = incidents["id"].tolist()
    ids[3] = None
    cats = incidents["category"].tolist()
    cats[3] = None
    assert body["echo"] == {"id": ids, "category": cats}
    assert body["results"] == {k: v for k, v in expected.items() if k in body["layers"]}


def test_geojson_features_echo_id_and_properties(client, incidents, expected) -> None:
    feats = [
        {
            "type": "Feature",
            "id": i,
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"category": c, "reporter": {"phone": "138"}},
        }
        for i, c, x, y in incidents.itertuples(index=False)
    ]
    fc = {"type": "FeatureCollection", "crs": "gcj02", "features": feats}
    r = client.post("/locate", data=json.dumps(fc), content_type="application/geo+json")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["echo"]["id"] == incidents["id"].tolist()
    assert body["echo"]["category"] == incidents["category"].tolist()
    assert body["echo"]["reporter"] == [{"phone": "138"}] * len(incidents)
    assert body["results"]["grid"] == expected["grid"]


def test_csv_extra_columns_are_echoed_in_json_and_csv_answers(
    client, incidents, expected
) -> None:
    ids = [f"{k:04d}" for k in range(len(incidents))]
    text = _csv(incidents.assign(id=ids))
    r = client.post("/locate?crs=gcj02", data=text, content_type="text/csv")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    # ids stay text: a leading zero is not lost on the way back
    assert body["echo"] == {
        "id": ids,
        "category": incidents["category"].tolist(),
    }
    assert body["results"]["community"] == expected["community"]
    r = client.post(
        "/locate?crs=gcj02", data=text, content_type="text/csv", headers={"Accept": "text/csv"}
    )
    assert r.status_code == 200 and r.content_type.startswith("text/csv")
    out = pd.read_csv(io.StringIO(r.get_data(as_text=True)), dtype=str, keep_default_na=False)
    assert list(out.columns[:4]) == ["id", "category", "lng", "lat"]
    assert out["id"].tolist() == ids
    assert out["grid"].tolist() == [g or "" for g in expected["grid"]]
    assert out["lng"].astype(float).tolist() == incidents["lng"].tolist()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {
                "json": {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "id": 1,
                            "properties": {"id": 2},
                            "geometry": {"type": "Point", "coordinates": [115, 25]},
                        }
                    ],
                }
            },
            "feature 0 has 'id' 1 and an 'id' property 2",
        ),
        (
            {
                "json": {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "properties": [1],
                            "geometry": {"type": "Point", "coordinates": [115, 25]},
                        }
                    ],
                }
            },
            "feature 0 has 'properties' that are not an object",
        ),
        ({"json": {"points": [{"id": 1, "x": 115, "y": 25}]}}, "point 0 has no key(s) for"),
        ({"json": {"points": [{"lng": "115", "lat": 25}]}}, "point 0 is not a [lng, lat] pair"),
        (
            {"data": "id,lng,lat\n1,115,25,extra\n", "content_type": "text/csv"},
            "CSV line 2 has 4 fields; the header has 3",
        ),
        (
            {"data": "id,id,lng,lat\n1,2,115,25\n", "content_type": "text/csv"},
            "CSV has duplicate column(s) ['id']",
        ),
        (
            {
                "data": "grid,lng,lat\nG1,115,25\n",
                "content_type": "text/csv",
                "headers": {"Accept": "text/csv"},
            },
            "input column(s) ['grid'] have the names of answer columns",
        ),
        ({"data": "", "content_type": "text/csv"}, "CSV body is empty"),
    ],
)
def test_echo_errors_name_the_problem(client, kwargs, fragment) -> None:
    assert fragment in _problem(client.post("/locate", **kwargs))


# ---- 2. the coordinate columns a CSV may have -------------------------------------------


@pytest.mark.parametrize(
    ("lng", "lat", "bom"),
    [
        ("经度", "纬度", False),
        ("经度", "纬度", True),
        ("longitude", "latitude", False),
        ("Longitude", "LATITUDE", True),
        ("lon", "lat", False),
        ("LON", "Lat", False),
        ("LNG", "LAT", True),
    ],
)
def test_csv_coordinate_headers(client, incidents, expected, lng, lat, bom) -> None:
    text = _csv(incidents.rename(columns={"lng": lng, "lat": lat}))
    data = ("\ufeff" + text).encode("utf-8") if bom else text.encode("utf-8")
    r = client.post("/locate?crs=gcj02", data=data, content_type="text/csv")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["results"]["grid"] == expected["grid"]
    # the BOM is not glued to the first column's name
    assert list(body["echo"]) == ["id", "category"]


def test_csv_in_gb18030_with_its_charset(client, incidents, expected) -> None:
    text = _csv(incidents.rename(columns={"lng": "经度", "lat": "纬度", "category": "类别"}))
    r = client.post(
        "/locate?crs=gcj02", data=text.encode("gb18030"), content_type="text/csv; charset=gb18030"
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["results"]["beat"] == expected["beat"]
    assert r.get_json()["echo"]["类别"] == incidents["category"].tolist()
    msg = _problem(client.post("/locate", data=text.encode("gb18030"), content_type="text/csv"))
    assert "CSV body is not utf-8 text" in msg and "charset=gb18030" in msg


def test_csv_without_coordinate_columns_names_what_it_has_and_what_is_accepted(client) -> None:
    r = client.post("/locate", data="编号,东经,北纬\n1,115,25\n", content_type="text/csv")
    msg = _problem(r)
    assert "CSV has no column(s) for longitude and latitude" in msg
    assert "['编号', '东经', '北纬']" in msg
    for pair in ("lng/lat", "lon/lat", "longitude/latitude", "经度/纬度"):
        assert pair in msg


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("lng,lon,lat", "several longitude/latitude pairs ['lng/lat', 'lon/lat']"),
        ("经度,纬度,lng,lat", "several longitude/latitude pairs"),
        ("lng,LNG,lat", "differ only in case: ['lng', 'LNG']"),
    ],
)
def test_csv_with_ambiguous_coordinate_columns(client, header, fragment) -> None:
    row = ",".join(["115"] * (header.count(",") + 1))
    r = client.post("/locate", data=f"{header}\n{row}\n", content_type="text/csv")
    assert fragment in _problem(r)


# ---- 3. names ------------------------------------------------------------------------------


def test_names_true_answers_the_names_get_locate_gives(client, incidents) -> None:
    sample = incidents.head(15)
    text = _csv(sample[["id", "lng", "lat"]])
    r = client.post("/locate?crs=gcj02&names=true", data=text, content_type="text/csv")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    r = client.post(
        "/locate?crs=gcj02&names=true",
        data=text,
        content_type="text/csv",
        headers={"Accept": "text/csv"},
    )
    out = pd.read_csv(io.StringIO(r.get_data(as_text=True)), dtype=str, keep_default_na=False)
    assert set(body["names"]) == set(body["layers"])
    for i, (x, y) in enumerate(zip(sample["lng"], sample["lat"])):
        one = client.get(f"/locate?lng={x!r}&lat={y!r}&crs=gcj02").get_json()
        for layer in body["layers"]:
            want = (one[layer] or {}).get("name")
            assert body["names"][layer][i] == want, (i, layer)
            assert body["results"][layer][i] == (one[layer] or {}).get("code")
            assert out[f"{layer}_name"].iloc[i] == (want or "")
    assert any(n is not None for n in body["names"]["grid"])


def test_names_are_left_out_unless_asked(client, incidents) -> None:
    pts = incidents[["lng", "lat"]].to_numpy().tolist()
    for q in ("", "&names=false", "&names=FALSE"):
        body = client.post(f"/locate?crs=gcj02{q}", json={"points": pts}).get_json()
        assert "names" not in body and body["count"] == len(pts)
    r = client.post(
        "/locate?crs=gcj02",
        data=_csv(incidents),
        content_type="text/csv",
        headers={"Accept": "text/csv"},
    )
    assert not any(c.endswith("_name") for c in r.get_data(as_text=True).splitlines()[0].split(","))
    msg = _problem(client.post("/locate?names=yes", json={"points": pts}))
    assert "parameter 'names' must be 'true' or 'false', got 'yes'" in msg
    msg = _problem(client.post("/locate?name=true", json={"points": pts}))
    assert "unknown parameter(s) ['name']; allowed: ['crs', 'names']" in msg


# ---- 4. one CRS ----------------------------------------------------------------------------


def test_query_and_body_crs_that_disagree_are_refused(client, incidents) -> None:
    pts = incidents[["lng", "lat"]].to_numpy().tolist()
    msg = _problem(client.post("/locate?crs=wgs84", json={"crs": "gcj02", "points": pts}))
    assert "crs='wgs84'" in msg and "'crs': 'gcj02'" in msg
    fc = {
        "type": "FeatureCollection",
        "crs": "bd09",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": p}} for p in pts
        ],
    }
    r = client.post("/locate?crs=gcj02", data=json.dumps(fc), content_type="application/geo+json")
    msg = _problem(r)
    assert "crs='gcj02'" in msg and "'crs': 'bd09'" in msg


def test_query_and_body_crs_that_agree_are_fine(client, incidents, expected) -> None:
    pts = incidents[["lng", "lat"]].to_numpy().tolist()
    for query, body_crs in (("gcj02", "gcj02"), ("GCJ02", "gcj02"), ("gcj02", " GCJ02 ")):
        r = client.post(f"/locate?crs={query}", json={"crs": body_crs, "points": pts})
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.get_json()["results"]["grid"] == expected["grid"]
    # the query alone, or the body alone, says it
    a = client.post("/locate?crs=gcj02", json={"points": pts}).get_json()
    b = client.post("/locate", json={"crs": "gcj02", "points": pts}).get_json()
    assert a["results"] == b["results"] and a["results"]["grid"] == expected["grid"]
    # an unknown query crs is an error even where the body names a good one
    msg = _problem(client.post("/locate?crs=gcj03", json={"crs": "gcj02", "points": pts}))
    assert "unknown crs 'gcj03'" in msg
