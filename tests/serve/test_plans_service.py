"""Plan versions in the service: grids at a date (OGC ``datetime``), plans, grid changes.

The reference for every date is the library: :func:`gridgeo.io.plan_in_force`,
:meth:`Plan.in_force` and :func:`gridgeo.partition.crosswalk.crosswalk`,
called directly on the same workspace.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import date, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from live_server import serving

from gridgeo.errors import InputError
from gridgeo.io import adopt_plan, plan_in_force, read_plan, read_plans, save_plan, write_workspace
from gridgeo.partition import Plan, make_grids, regroup
from gridgeo.serve import ServiceConfig, create_app
from gridgeo.serve.routes.plans import DATETIME_DOC


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0, scale=0.1)


@pytest.fixture(scope="module")
def workspace(county, tmp_path_factory) -> str:
    """legacy (..2025), base-2025 (2025..2027), base-2027 (2027..), biz-2025 (2025-03..)."""
    path = str(tmp_path_factory.mktemp("plans") / "ws.gpkg")
    write_workspace(county, path)
    legacy = read_plans(path)[0]
    g25 = make_grids(county["buildings"], within=county["communities"], max_households=250,
                     previous=legacy)  # fmt: skip
    save_plan(path, Plan.from_grids(g25, plan_id="base-2025", name="2025 re-cut"))
    adopt_plan(path, "base-2025", valid_from="2025-01-01")
    b25 = read_plan(path, "base-2025")
    g27 = make_grids(county["buildings"], within=county["communities"], max_households=400,
                     previous=[legacy, b25])  # fmt: skip
    save_plan(path, Plan.from_grids(g27, plan_id="base-2027", name="2027"))
    adopt_plan(path, "base-2027", valid_from="2027-01-01")
    groups = regroup(b25.grids, 3)
    save_plan(path, Plan.from_regroup(groups, plan_id="biz-2025", base_plan="base-2025"))
    adopt_plan(path, "biz-2025", valid_from="2025-03-01")
    return path


@pytest.fixture(scope="module")
def app(workspace):
    return create_app(ServiceConfig(data=workspace))


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def late_start(county, tmp_path_factory) -> str:
    """A workspace whose first plan starts on 2025-01-01: no grids in force before."""
    path = str(tmp_path_factory.mktemp("late") / "late.gpkg")
    others = ["boundary", "towns", "communities", "beats", "zones", "buildings", "incidents"]
    write_workspace({k: county[k] for k in others}, path, layers=others)
    save_plan(path, Plan.from_grids(county["grids"], plan_id="first"))
    adopt_plan(path, "first", valid_from="2025-01-01", today="2025-06-01")
    return path


def get(client, url: str, status: int = 200) -> dict:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.get_data(as_text=True)[:500])
    return r.get_json()


def base_plans_during(path: str, first: date, last: date) -> list[str]:
    """Ids of the base plans in force on some day of first..last, by Plan.in_force."""
    days = [first + timedelta(d) for d in range((last - first).days + 1)]
    return [
        p.plan_id
        for p in read_plans(path)
        if p.level == "base" and any(p.in_force(d) for d in days)
    ]


# ---- datetime on the grids ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "day"),
    [
        ("2024-06-01", "2024-06-01"),
        ("2024-12-31", "2024-12-31"),
        ("2025-01-01", "2025-01-01"),  # the first day of base-2025
        ("2025-06-01", "2025-06-01"),
        ("2026-12-31", "2026-12-31"),
        ("2027-01-01", "2027-01-01"),
        ("2030-06-01", "2030-06-01"),
        ("2024-12-31T20:00:00Z", "2025-01-01"),  # 04:00 in Beijing
        ("2024-12-31T20:00:00+08:00", "2024-12-31"),
        ("2024-12-31T23:59:59.5", "2024-12-31"),  # no offset: as given
    ],
)
def test_an_instant_serves_the_base_plan_in_force_that_day(client, workspace, value, day) -> None:
    expected = plan_in_force(workspace, day)
    body = get(client, f"/collections/grids/items?datetime={quote(value)}&limit=1000")
    assert body["plans"] == [expected.plan_id]
    assert [f["id"] for f in body["features"]] == list(expected.codes)
    assert body["numberMatched"] == len(expected.grids)
    props = [f["properties"] for f in body["features"]]
    assert {p["plan_id"] for p in props} == {expected.plan_id}
    assert {p["valid_from"] for p in props} == {expected.valid_from.isoformat()}
    to = None if expected.valid_to is None else expected.valid_to.isoformat()
    assert {p["valid_to"] for p in props} == {to}
    assert [p["households"] for p in props] == expected.grids["households"].tolist()
    served = gpd.GeoDataFrame.from_features(body["features"], crs="OGC:CRS84")
    want = expected.grids.to_crs(4326)
    assert np.allclose(served.bounds.to_numpy(), want.bounds.to_numpy(), atol=2e-7)


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        ("2024-06-01/2025-06-01", "2024-06-01", "2025-06-01"),
        ("2024-06-01/2024-12-31", "2024-06-01", "2024-12-31"),
        ("2025-01-01/2026-12-31", "2025-01-01", "2026-12-31"),
        ("2026-12-31T16:00:00Z/2027-03-01", "2027-01-01", "2027-03-01"),  # Beijing's New Year
        ("../2024-12-31", "2020-01-01", "2024-12-31"),
        ("2025-01-02/..", "2025-01-02", "2031-12-31"),
        ("../..", "2020-01-01", "2031-12-31"),
    ],
)
def test_an_interval_serves_every_base_plan_in_force_during_it(
    client, workspace, value, first, last
) -> None:
    want = base_plans_during(workspace, date.fromisoformat(first), date.fromisoformat(last))
    body = get(client, f"/collections/grids/items?datetime={quote(value)}&limit=1000")
    assert body["plans"] == want
    ids = [f["id"] for f in body["features"]]
    expected = [f"{c}@{pid}" for pid in want for c in read_plan(workspace, pid).codes]
    assert ids == expected and len(set(ids)) == len(ids)
    for f in body["features"]:
        plan = read_plan(workspace, f["properties"]["plan_id"])
        assert f["properties"]["valid_from"] == plan.valid_from.isoformat()
        assert f["properties"]["valid_to"] == (plan.valid_to and plan.valid_to.isoformat())


def test_without_datetime_the_grids_layer_is_served_as_before(client, workspace) -> None:
    from gridgeo.io import read_workspace

    layer = read_workspace(workspace, only=["grids"])["grids"]
    body = get(client, "/collections/grids/items?limit=1000")
    assert [f["id"] for f in body["features"]] == layer["code"].tolist()
    assert "plan_id" not in body["features"][0]["properties"] and "plans" not in body


def test_datetime_pages_keep_the_datetime(client, workspace) -> None:
    expected = plan_in_force(workspace, "2025-06-01")
    seen, url = [], "/collections/grids/items?datetime=2025-06-01&limit=3"
    while url:
        body = get(client, url)
        seen += [f["id"] for f in body["features"]]
        nxt = [x["href"] for x in body["links"] if x["rel"] == "next"]
        for link in body["links"]:
            assert parse_qs(urlsplit(link["href"]).query)["datetime"] == ["2025-06-01"]
        url = nxt[0].replace("http://localhost", "") if nxt else None
    assert seen == list(expected.codes)
    html = client.get("/collections/grids/items?datetime=2025-06-01&f=html")
    assert html.status_code == 200 and expected.codes[0] in html.get_data(as_text=True)


def test_datetime_combines_with_bbox_and_crs(client, workspace) -> None:
    plan = plan_in_force(workspace, "2024-06-01")
    wgs = plan.grids.to_crs(4326)
    x0, y0, x1, y1 = wgs.geometry.iloc[0].bounds
    body = get(client, f"/collections/grids/items?datetime=2024-06-01&bbox={x0},{y0},{x1},{y1}")
    hits = wgs[wgs.intersects(wgs.geometry.iloc[0].envelope)]["code"].tolist()
    assert sorted(f["id"] for f in body["features"]) == sorted(hits)
    gk = "http://www.opengis.net/def/crs/EPSG/0/4490"
    r = client.get(f"/collections/grids/items?datetime=2024-06-01&crs={gk}&limit=1")
    assert r.status_code == 200 and r.headers["Content-Crs"] == f"<{gk}>"


def test_a_day_without_a_plan_is_an_empty_collection(late_start) -> None:
    c = create_app(ServiceConfig(data=late_start)).test_client()
    body = get(c, "/collections/grids/items?datetime=2024-06-01")
    assert body["features"] == [] and body["numberMatched"] == 0 and body["plans"] == []
    assert not [x for x in body["links"] if x["rel"] == "next"]
    first = plan_in_force(late_start, "2025-06-01")
    body = get(c, "/collections/grids/items?datetime=2024-06-01/2025-01-01&limit=1000")
    assert body["plans"] == ["first"] and len(body["features"]) == len(first.grids)
    err = get(c, f"/collections/grids/items/{first.codes[0]}?datetime=2024-06-01", 404)
    assert err["description"] == ("no base plan is in force on 2024-06-01; plans are ['first']")
    err = get(c, "/collections/grid-changes/items?from=2024-06-01&to=first", 404)
    assert err["description"] == "parameter 'from': no base plan is in force on 2024-06-01"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-13-01", "parameter 'datetime': '2025-13-01' is not an RFC 3339 date or date-time"),
        ("2025-02-30", "parameter 'datetime': '2025-02-30' is not an RFC 3339 date or date-time"),
        ("yesterday", "parameter 'datetime': 'yesterday' is not an RFC 3339 date or date-time"),
        ("2025-06-01T25:00:00Z", "'2025-06-01T25:00:00Z' is not an RFC 3339 date or date-time"),
        ("2025-06-01/junk", "parameter 'datetime': 'junk' is not an RFC 3339 date or date-time"),
        ("", "parameter 'datetime' is empty; give an instant or an interval"),
        ("..", "parameter 'datetime': '..' is an open end, not an instant"),
        ("2025-06-01/2025-01-01", "'2025-06-01/2025-01-01' ends before it starts"),
        ("2025-01-01/2025-02-01/2025-03-01", "has 2 '/'; an interval is a/b, ../b or a/.."),
    ],
)
def test_a_malformed_datetime_is_a_400_naming_it(client, value, message) -> None:
    err = get(client, f"/collections/grids/items?datetime={quote(value)}", 400)
    assert err["code"] == "InvalidParameterValue"
    assert message in err["description"]


def test_one_grid_at_a_date_or_of_a_named_plan(client, workspace) -> None:
    old, new = plan_in_force(workspace, "2024-06-01"), plan_in_force(workspace, "2025-06-01")
    gone = sorted(set(old.codes) - set(new.codes))[0]
    feat = get(client, f"/collections/grids/items/{gone}?datetime=2024-06-01")
    assert feat["id"] == gone and feat["properties"]["plan_id"] == old.plan_id
    assert "datetime=2024-06-01" in feat["links"][0]["href"]
    same = get(client, f"/collections/grids/items/{gone}@{old.plan_id}")
    assert same["id"] == f"{gone}@{old.plan_id}" and same["geometry"] == feat["geometry"]
    err = get(client, f"/collections/grids/items/{gone}?datetime=2025-06-01", 404)
    assert err["description"] == (
        f"grid '{gone}' is not in base plan '{new.plan_id}', in force on 2025-06-01"
    )
    err = get(client, f"/collections/grids/items/{gone}@{new.plan_id}", 404)
    assert err["description"] == f"grid '{gone}' is not in plan '{new.plan_id}'"
    err = get(client, f"/collections/grids/items/{gone}@nope", 404)
    assert err["description"].startswith("plan 'nope' does not exist; plans are ['legacy'")
    err = get(client, f"/collections/grids/items/{gone}?datetime=2024-01-01/..", 400)
    assert "is an interval; one grid needs an instant" in err["description"]
    err = get(client, f"/collections/grids/items/{gone}@{old.plan_id}?datetime=2024-06-01", 400)
    assert "names its plan; 'datetime' applies to a code without one" in err["description"]


# ---- the plans collection --------------------------------------------------------------------


def test_plans_collection_lists_every_plan(client, workspace) -> None:
    plans = read_plans(workspace)
    body = get(client, "/collections/plans/items?limit=100")
    assert [f["id"] for f in body["features"]] == [p.plan_id for p in plans]
    today = date.today()
    for f, p in zip(body["features"], plans):
        props = f["properties"]
        assert props["name"] == p.name and props["level"] == p.level
        assert props["valid_from"] == p.valid_from.isoformat()
        assert props["valid_to"] == (p.valid_to and p.valid_to.isoformat())
        assert props["grid_count"] == len(p.grids)
        assert props["retired_count"] == len(p.retired_codes)
        assert props["base_plan"] == p.base_plan
        assert (props["status"] == "in force") == p.in_force(today)
        x0, y0, x1, y1 = p.grids.to_crs(4326).total_bounds
        assert np.allclose(np.array(f["geometry"]["coordinates"][0]).min(axis=0), [x0, y0])
        assert np.allclose(np.array(f["geometry"]["coordinates"][0]).max(axis=0), [x1, y1])
    assert get(client, "/collections/plans/items/base-2027")["properties"]["valid_from"] == (
        "2027-01-01"
    )
    on = get(client, "/collections/plans/items?datetime=2025-06-01")
    assert [f["id"] for f in on["features"]] == [
        p.plan_id for p in plans if p.in_force("2025-06-01")
    ]
    biz = get(client, "/collections/plans/items?level=business")
    assert [f["id"] for f in biz["features"]] == ["biz-2025"]
    err = get(client, "/collections/plans/items/nope", 404)
    assert err["description"] == (
        f"plan 'nope' does not exist; plans are {[p.plan_id for p in plans]}"
    )
    err = get(client, "/collections/plans/items?datetime=soon", 400)
    assert "'soon' is not an RFC 3339 date" in err["description"]


def test_collections_and_api_list_plans_and_grid_changes(client) -> None:
    ids = [c["id"] for c in get(client, "/collections")["collections"]]
    assert ids[-2:] == ["plans", "grid-changes"]
    doc = get(client, "/collections/grid-changes")
    assert doc["id"] == "grid-changes" and "crosswalk" in doc["description"]
    paths = get(client, "/api")["paths"]
    grids = paths["/collections/grids/items"]["get"]["parameters"]
    assert [p["description"] for p in grids if p["name"] == "datetime"] == [DATETIME_DOC]
    one = paths["/collections/grids/items/{featureId}"]["get"]["parameters"]
    assert "datetime" in [p["name"] for p in one]
    changes = paths["/collections/grid-changes/items"]["get"]["parameters"]
    assert {"from", "to", "level"} <= {p["name"] for p in changes if p["required"] or True}
    assert [p["name"] for p in changes if p["required"]] == ["from", "to"]
    for path in ("/collections/plans/items", "/collections/plans/items/{featureId}",
                 "/collections/grid-changes/items/{featureId}"):  # fmt: skip
        assert set(paths[path]["get"]["responses"]) == {"200", "400", "404"}


def test_in_memory_layers_have_no_plans(county) -> None:
    c = create_app(ServiceConfig(), layers=county).test_client()
    ids = [x["id"] for x in get(c, "/collections")["collections"]]
    assert "plans" not in ids and "grid-changes" not in ids
    err = get(c, "/collections/plans/items", 404)
    assert err["description"].startswith("this service has no plan versions")
    err = get(c, "/collections/grids/items?datetime=2024-01-01", 400)
    assert "has no time" in err["description"]
    err = get(c, "/stats/grids?plan=legacy", 400)
    assert err["description"].startswith("parameter 'plan' ('legacy'): this service has no plan")


# ---- grid changes ----------------------------------------------------------------------------

CROSSWALK_COLUMNS = ["old_code", "new_code", "area_m2", "area_share_old", "area_share_new",
                     "households", "population", "change"]  # fmt: skip


def rows(body: dict) -> pd.DataFrame:
    return pd.DataFrame([f["properties"] for f in body["features"]])


@pytest.mark.parametrize(
    ("old", "new", "level"),
    [
        ("legacy", "base-2025", "base"),
        ("2024-06-01", "2025-06-01", "base"),
        ("base-2025", "2027-02-01", "base"),
        ("base-2025", "biz-2025", "base"),
        ("2025-02-01", "2025-03-01", "business"),  # a business plan against none: 404
    ],
)
def test_grid_changes_are_the_crosswalk_rows(client, workspace, county, old, new, level) -> None:
    from gridgeo.partition.crosswalk import crosswalk

    def plan_of(v: str) -> Plan:
        if v[:1].isdigit():
            return plan_in_force(workspace, v, level=level)
        return read_plan(workspace, v)

    url = f"/collections/grid-changes/items?from={old}&to={new}&level={level}&limit=10000"
    if level == "business":
        err = get(client, url, 404)
        assert err["description"] == "parameter 'from': no business plan is in force on 2025-02-01"
        return
    a, b = plan_of(old), plan_of(new)
    want = crosswalk(a, b, units=county["buildings"])
    body = get(client, url)
    assert (body["from_plan"], body["to_plan"]) == (a.plan_id, b.plan_id)
    got = rows(body)
    assert len(got) == len(want) == body["numberMatched"]
    for col in CROSSWALK_COLUMNS:
        w = [None if pd.isna(v) else v for v in want[col]]
        g = [None if pd.isna(v) else v for v in got[col]]
        if col.startswith("area"):
            assert np.allclose(
                np.array(g, dtype=float), np.array(w, dtype=float), rtol=1e-9, equal_nan=True
            ), col
        else:
            assert g == w, col
    # each piece is where both grids are
    both = [
        f
        for f in body["features"]
        if f["properties"]["area_m2"] > 1
        and f["properties"]["old_code"] is not None
        and f["properties"]["new_code"] is not None
    ]
    piece = gpd.GeoDataFrame.from_features(both, crs="OGC:CRS84").to_crs(a.grids.crs)
    for side, plan in (("old_code", a), ("new_code", b)):
        grid = plan.grids.to_crs(a.grids.crs).set_index("code").geometry
        grid = grid.loc[piece[side]].to_numpy()
        drawn = piece.geometry.to_numpy()
        outside = shapely.area(shapely.difference(drawn, grid))
        # coordinates are sent to 1e-7°: a piece leaves its grid by that much along its edges
        assert (outside <= 2e-7 * shapely.length(drawn)).all(), side


def test_grid_changes_are_computed_once_per_pair(workspace, monkeypatch) -> None:
    cw = sys.modules["gridgeo.partition.crosswalk"]  # the package exports the function

    calls = []
    real = cw.crosswalk

    def counting(old, new, **kw):
        calls.append((old.plan_id, new.plan_id))
        return real(old, new, **kw)

    monkeypatch.setattr(cw, "crosswalk", counting)
    c = create_app(ServiceConfig(data=workspace)).test_client()
    for url in (
        "/collections/grid-changes/items?from=legacy&to=base-2025",
        "/collections/grid-changes/items?from=2024-01-05&to=2025-06-01&limit=3",
        "/collections/grid-changes/items?from=legacy&to=2026-01-01&offset=2",
    ):
        get(c, url)
    get(c, "/collections/grid-changes/items?from=base-2025&to=legacy")
    assert calls == [("legacy", "base-2025"), ("base-2025", "legacy")]


def test_grid_changes_pages_filters_and_one_row(client, workspace) -> None:
    base = "/collections/grid-changes/items?from=legacy&to=base-2025"
    everything = get(client, base + "&limit=10000")
    page = get(client, base + "&limit=2")
    nxt = next(x["href"] for x in page["links"] if x["rel"] == "next")
    q = parse_qs(urlsplit(nxt).query)
    assert q["from"] == ["legacy"] and q["to"] == ["base-2025"] and q["offset"] == ["2"]
    label = everything["features"][0]["properties"]["change"]
    only = get(client, base + f"&change={label}&limit=10000")
    assert only["numberMatched"] == sum(
        f["properties"]["change"] == label for f in everything["features"]
    )
    first = everything["features"][0]
    one = get(client, f"/collections/grid-changes/items/{first['id']}?from=legacy&to=base-2025")
    assert one["properties"] == first["properties"]
    assert first["id"] == f"{first['properties']['old_code']}~{first['properties']['new_code']}"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("to=base-2025", 400, "parameter 'from' is required: a plan id (one of ['legacy', "),
        ("from=legacy", 400, "parameter 'to' is required"),
        ("from=&to=legacy", 400, "parameter 'from' is required"),
        ("from=nope&to=legacy", 404, "parameter 'from': 'nope' is neither a plan (plans are "),
        ("from=legacy&to=2025-02-30", 400, "parameter 'to': '2025-02-30' is not a valid date, "
                                           "nor a plan id"),
        ("from=legacy&to=base-2025&level=city", 400, "parameter 'level' was 'city'; expected"),
        ("from=legacy&to=base-2025&colour=red", 400, "unknown parameter(s) ['colour']"),
    ],
)  # fmt: skip
def test_grid_changes_errors(client, query, status, message) -> None:
    err = get(client, f"/collections/grid-changes/items?{query}", status)
    assert message in err["description"]


def test_a_missing_grid_change_row_is_a_404(client) -> None:
    err = get(client, "/collections/grid-changes/items/x~y?from=legacy&to=base-2025", 404)
    assert err["description"] == (
        "pair 'x~y' (old~new) is not in the changes from plan 'legacy' to 'base-2025'"
    )


# ---- the live server, read by GDAL -----------------------------------------------------------


@pytest.fixture(scope="module")
def live(workspace, tmp_path_factory):
    copy = shutil.copy(workspace, tmp_path_factory.mktemp("live") / "ws.gpkg")
    with serving(copy) as url:
        yield url


@pytest.mark.server
@pytest.mark.parametrize("day", ["2024-06-01", "2025-06-01", "2027-06-01"])
def test_live_server_answers_datetime_to_pyogrio(live, workspace, day) -> None:
    import pyogrio

    expected = plan_in_force(workspace, day)
    got = pyogrio.read_dataframe(f"{live}/collections/grids/items?datetime={day}&limit=1000")
    assert got["code"].tolist() == list(expected.codes)
    assert set(got["plan_id"]) == {expected.plan_id}
    want = expected.grids.to_crs(4326)
    assert np.allclose(got.total_bounds, want.total_bounds, atol=2e-7)


@pytest.mark.server
@pytest.mark.parametrize("day", ["2024-06-01", "2025-06-01"])
def test_live_server_answers_gdal_oapif_datetime(live, workspace, day) -> None:
    """GDAL's OGC API Features driver sends its DATETIME open option as ``datetime``.

    GDAL takes the fields from a first page it asks for without ``datetime`` (today's
    grids layer), so it reads the codes and geometry of the plan but not ``plan_id``.
    """
    import pyogrio

    expected = plan_in_force(workspace, day)
    got = pyogrio.read_dataframe(
        f"OAPIF:{live}/collections/grids", DATETIME=day, PAGE_SIZE=4
    )  # pages of 4: the next links keep the datetime
    assert sorted(got["code"]) == sorted(expected.codes)
    want = expected.grids.set_index("code").to_crs(4326).bounds
    assert np.allclose(got.set_index("code").bounds.loc[want.index], want, atol=2e-7)


# ---- the heat map's plan selector ------------------------------------------------------------


def test_heatmap_page_offers_the_plans_and_defaults_to_todays(client, workspace) -> None:
    from test_heatmap import page_config

    cfg = page_config(client.get("/heatmap").get_data(as_text=True))
    assert [p["id"] for p in cfg["plans"]] == [p.plan_id for p in read_plans(workspace)]
    assert cfg["plan"] == plan_in_force(workspace).plan_id
    assert {p["id"]: p["grids"] for p in cfg["plans"]} == {
        p.plan_id: len(p.grids) for p in read_plans(workspace)
    }


@pytest.mark.parametrize("plan_id", ["legacy", "biz-2025", "base-2027"])
def test_heatmap_stats_in_a_plan_are_grid_stats_with_that_plan(
    app, client, workspace, plan_id
) -> None:
    from gridgeo.analyze import grid_stats

    points = app.extensions["gridgeo"].store.query()  # the live store's incidents
    plan = read_plan(workspace, plan_id)
    want = grid_stats(points, plan=plan, start="2025-01-01", end="2025-12-31", compare="year")
    q = "start=2025-01-01&end=2025-12-31&compare=year"
    body = get(client, f"/stats/grids?plan={plan_id}&{q}")
    assert body["plan"] == plan_id
    assert [f["id"] for f in body["features"]] == want["code"].tolist()
    props = [f["properties"] for f in body["features"]]
    assert [p["count"] for p in props] == want["count"].tolist()
    assert [p["previous"] for p in props] == want["previous"].tolist()
    assert body["outside"] == want.attrs["outside"]
    assert "open" not in props[0]  # open cases follow the code stored at report time
    outline = gpd.GeoDataFrame.from_features(body["features"], crs="OGC:CRS84")
    assert np.allclose(outline.total_bounds, plan.grids.to_crs(4326).total_bounds, atol=2e-6)
    default = get(client, f"/stats/grids?{q}")
    assert default["plan"] is None and "open" in default["features"][0]["properties"]


def test_heatmap_stats_of_an_unknown_plan_is_a_404(client, workspace) -> None:
    err = get(client, "/stats/grids?plan=nope", 404)
    ids = [p.plan_id for p in read_plans(workspace)]
    assert err["description"] == f"plan 'nope' does not exist; plans are {ids}"


# ---- a plan adopted while the service runs ---------------------------------------------------

#: How long the tests wait for a change to reach the service: the plans are checked every
#: 2 s (PlanService's check_every), then read again (well under a second here).
PICKUP_S = 15.0


def wait_for(probe, what: str, timeout: float = PICKUP_S) -> float:
    """Call ``probe`` until it returns true; the seconds it took (fail after ``timeout``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if probe():
            return time.monotonic() - t0
        time.sleep(0.2)
    pytest.fail(f"{what}: not seen within {timeout:.0f} s")


def elsewhere(code: str) -> None:
    """Run ``code`` (with gridgeo.io's plan functions imported) in another process.

    As ``gridgeo plan adopt`` does: a service whose store holds the workspace open must
    not see GDAL write it from its own process (two SQLite libraries in one process
    drop each other's locks: https://www.sqlite.org/howtocorrupt.html, 2.2.1).
    """
    import subprocess

    prelude = (
        "from datetime import date\nfrom gridgeo.io import *\nfrom gridgeo.partition import Plan\n"
    )
    subprocess.run(
        [sys.executable, "-c", prelude + code], check=True, capture_output=True, timeout=120
    )


def draft_after_2027(path: str) -> None:
    """Save base-2028 (the grids of base-2027 under a new id), a draft to adopt in tests."""
    elsewhere(
        f"p = {str(path)!r}\n"
        "save_plan(p, read_plan(p, 'base-2027').replace(plan_id='base-2028', valid_from=None))"
    )


def test_an_adopted_plan_is_served_without_a_restart(workspace, tmp_path) -> None:
    path = shutil.copy(workspace, tmp_path / "ws.gpkg")
    c = create_app(ServiceConfig(data=path)).test_client()
    later = "/collections/grids/items?datetime=2028-06-01&limit=1"
    changes = "/collections/grid-changes/items?from=2027-06-01&to=2028-06-01&limit=1"
    before = get(c, "/collections/plans/items?limit=100")
    assert "base-2028" not in [f["id"] for f in before["features"]]
    assert get(c, later)["plans"] == ["base-2027"]
    assert get(c, changes)["to_plan"] == "base-2027"  # cached: from and to are one plan
    draft_after_2027(path)
    took = wait_for(
        lambda: "base-2028" in [f["id"] for f in get(c, "/collections/plans/items")["features"]],
        "the saved draft in /collections/plans/items",
    )
    assert get(c, later)["plans"] == ["base-2027"]  # a draft is in force on no day
    elsewhere(f"adopt_plan({str(path)!r}, 'base-2028', valid_from='2028-01-01')")
    took = max(took, wait_for(lambda: get(c, later)["plans"] == ["base-2028"], "the adoption"))
    assert took < 10, took  # a check every 2 s, then one read
    plans = {f["id"]: f["properties"] for f in get(c, "/collections/plans/items")["features"]}
    assert plans["base-2027"]["valid_to"] == "2028-01-01"  # the grids collection is rebuilt
    assert plans["base-2028"]["valid_from"] == "2028-01-01"
    assert plans["base-2028"]["status"] == "scheduled"
    one = get(c, "/collections/grids/items?datetime=2027-06-01&limit=1")["features"][0]
    assert one["properties"]["valid_to"] == "2028-01-01"  # not the cached open end
    body = get(c, changes)  # not the cached crosswalk of base-2027 with itself
    assert (body["from_plan"], body["to_plan"]) == ("base-2027", "base-2028")
    assert get(c, "/collections/plans/items")["layer_plan"] == "base-2025"  # in force today


def test_the_grids_layer_and_lookup_keep_their_plan_until_a_restart(
    late_start, tmp_path, caplog
) -> None:
    """A base plan in force today reaches the plans at once, the point lookup on restart."""
    path = shutil.copy(late_start, tmp_path / "late.gpkg")
    first = read_plan(path, "first")
    c = create_app(ServiceConfig(data=path)).test_client()
    body = get(c, "/collections/plans/items")
    assert body["layer_plan"] == "first"
    elsewhere(  # the grids of the first plan but one, in force from today
        f"p = {str(path)!r}\n"
        "g = read_plan(p, 'first').grids.sort_values('code')\n"
        "save_plan(p, Plan.from_grids(g.iloc[:-1], plan_id='second',\n"
        "                             retired_codes=[g['code'].iloc[-1]]))\n"
        "adopt_plan(p, 'second', valid_from=date.today())"  # rewrites the grids layer too
    )
    with caplog.at_level("WARNING", logger="gridgeo.serve.plans"):
        wait_for(
            lambda: (
                get(c, f"/collections/grids/items?datetime={date.today()}")["plans"] == ["second"]
            ),
            "the plan adopted from today",
        )
    body = get(c, "/collections/plans/items")
    status = {f["id"]: f["properties"]["status"] for f in body["features"]}
    assert status == {"first": "ended", "second": "in force"}
    # the layer read at start-up still holds the first plan's grids, and says so
    assert body["layer_plan"] == "first"
    assert get(c, "/collections/grids/items?limit=1")["numberMatched"] == len(first.grids)
    assert any(
        "base plan 'second' is in force today, but the grids layer, the point lookup" in m
        and "(plan 'first')" in m
        for m in caplog.messages
    ), caplog.messages
    # a restart reads the grids layer that adopt_plan rewrote: one plan again (in another
    # process, as a restart is: this one holds the workspace open, see elsewhere())
    elsewhere(
        "from gridgeo.serve import ServiceConfig, create_app\n"
        f"c = create_app(ServiceConfig(data={str(path)!r})).test_client()\n"
        "assert c.get('/collections/plans/items').get_json()['layer_plan'] == 'second'\n"
        "n = c.get('/collections/grids/items?limit=1').get_json()['numberMatched']\n"
        f"assert n == {len(first.grids) - 1}, n"
    )


def test_plans_are_checked_at_most_every_check_every_seconds() -> None:
    from gridgeo.serve.features import FeatureService
    from gridgeo.serve.plans import PlanService

    grids = gpd.GeoDataFrame(
        {"code": ["A"]}, geometry=[shapely.box(114.9, 25.3, 114.91, 25.31)], crs="EPSG:4490"
    )
    stored = {"v": 1, "plans": [Plan.from_grids(grids, plan_id="p1", valid_from="2024-01-01")]}
    calls = {"version": 0, "load": 0}
    now = [0.0]

    def version():
        calls["version"] += 1
        return stored["v"]

    def load():
        calls["load"] += 1
        if stored.get("broken"):
            raise InputError("grid_versions is being written")
        return list(stored["plans"])

    svc = PlanService(
        FeatureService({"grids": grids}), load=load, version=version, check_every=5,
        clock=lambda: now[0],
    )  # fmt: skip
    assert svc.plan_ids == ["p1"] and svc.layer_plan == "p1" and svc.generation == 1
    for t in (1.0, 2.0, 4.9):  # within check_every: not checked
        now[0] = t
        assert svc.plan_ids == ["p1"]
    assert calls == {"version": 2, "load": 1}  # before and after the first read
    now[0] = 5.0
    assert svc.plan_ids == ["p1"] and calls == {"version": 3, "load": 1}  # unchanged
    stored["v"], stored["plans"] = 2, [*stored["plans"], Plan.from_grids(grids, plan_id="p2")]
    stored["broken"] = True  # a writer is mid-way: the plans served stay, and it retries
    now[0] = 10.0
    assert svc.plan_ids == ["p1"] and calls["load"] == 2 and svc.generation == 1
    del stored["broken"]
    now[0] = 12.0
    assert svc.plan_ids == ["p1"]  # the retry waits for the next check
    now[0] = 15.0
    assert svc.plan_ids == ["p1", "p2"] and svc.generation == 2 and calls["load"] == 3


@pytest.mark.server
def test_a_live_server_serves_an_adopted_plan_in_every_worker(workspace, tmp_path) -> None:
    """`gridgeo plan adopt` while `gridgeo serve --workers 2` runs: no restart needed."""
    import subprocess

    import requests

    path = shutil.copy(workspace, tmp_path / "ws.gpkg")
    draft_after_2027(str(path))

    def seen(url: str) -> tuple[list[str], bool]:
        # a new connection each time, so that both workers answer
        grids = requests.get(f"{url}/collections/grids/items?datetime=2028-06-01&limit=1",
                             timeout=10, headers={"Connection": "close"}).json()  # fmt: skip
        plans = requests.get(f"{url}/collections/plans/items?limit=100", timeout=10,
                             headers={"Connection": "close"}).json()  # fmt: skip
        status = {f["id"]: f["properties"]["status"] for f in plans["features"]}
        return grids["plans"], status.get("base-2028") == "scheduled"

    # reports keep arriving while the plan is adopted: the workspace is also the live store
    spots = gpd.read_file(path, layer="grids").geometry.representative_point()
    posted: list[int] = []

    def report(url: str, i: int) -> None:
        p = spots.iloc[i % len(spots)]
        r = requests.post(
            f"{url}/collections/incidents/items?crs=cgcs2000",
            json={"type": "Feature", "id": f"ADOPT-{i}",
                  "geometry": {"type": "Point", "coordinates": [p.x, p.y]},
                  "properties": {"category": "噪音"}},
            timeout=30,
        )  # fmt: skip
        posted.append(r.status_code)

    with serving(path, workers=2) as url:
        for _ in range(6):
            assert seen(url) == (["base-2027"], False)
        before = requests.get(f"{url}/collections/incidents/items?limit=1", timeout=10).json()
        adopt = subprocess.Popen(
            [sys.executable, "-m", "gridgeo.cli", "plan", "adopt", str(path), "base-2028",
             "--from", "2028-01-01", "--no-align"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        while adopt.poll() is None:
            report(url, len(posted))
        _, err = adopt.communicate(timeout=120)
        assert adopt.returncode == 0, err
        took = wait_for(lambda: seen(url) == (["base-2028"], True), "the adopted plan")
        for _ in range(20):
            report(url, len(posted))
        time.sleep(2 * 2.0 + 1)  # every worker has checked since
        answers = [seen(url) for _ in range(12)]
        after = requests.get(f"{url}/collections/incidents/items?limit=1", timeout=10).json()
    assert answers == [(["base-2028"], True)] * 12
    assert took < 10, took
    assert len(posted) > 20 and set(posted) == {201}, sorted(set(posted))
    assert after["numberMatched"] == before["numberMatched"] + len(posted)
