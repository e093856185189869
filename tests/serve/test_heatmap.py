"""The heat-map endpoints: through the test client, and in Debian's chromium."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from live_server import serving
from PIL import Image

from gridgeo.analyze import EMPTY_TILE, tile_of
from gridgeo.serve import ServiceConfig, create_app
from gridgeo.serve.heatmap import HeatmapService

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo.gpkg"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def page_config(html: str) -> dict:
    """The settings the heat-map page hands its script."""
    m = re.search(r'<script type="application/json" id="heatmap-config">(.*?)</script>', html, re.S)
    assert m, "the page has no #heatmap-config"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0)


@pytest.fixture(scope="module")
def client(county):
    return create_app(ServiceConfig(), layers=county).test_client()


def test_page_is_self_contained_and_small(client) -> None:
    r = client.get("/heatmap")
    assert r.status_code == 200 and r.content_type.startswith("text/html")
    html = r.get_data(as_text=True)
    assert "事件热力图" in html and 'lang="zh-CN"' in html
    # every asset comes from this server: no absolute URL is loaded
    for attr in ("src=", "href="):
        for part in html.split(attr)[1:]:
            url = part[1:].split(part[0], 1)[0]
            assert not url.startswith(("http:", "https:", "//")), url
    weight = len(r.data)
    for asset in ("leaflet/leaflet.js", "leaflet/leaflet.css", "leaflet/images/layers.png"):
        a = client.get(f"/heatmap/static/{asset}")
        assert a.status_code == 200, asset
        weight += len(a.data)
        a.close()  # a file response
    assert weight < 1_000_000  # page plus assets, whatever the number of incidents


def test_tiles_have_etags_and_answer_304(client, county) -> None:
    lon, lat = 114.93, 25.41
    z = 12
    x, y = tile_of(lon, lat, z)
    r = client.get(f"/heatmap/tiles/{z}/{x}/{y}.png")
    assert r.status_code == 200 and r.content_type == "image/png"
    assert r.data != EMPTY_TILE and Image.open(io.BytesIO(r.data)).size == (256, 256)
    etag = r.headers["ETag"]
    assert "max-age" in r.headers["Cache-Control"]
    again = client.get(f"/heatmap/tiles/{z}/{x}/{y}.png", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    fire = client.get(f"/heatmap/tiles/{z}/{x}/{y}.png?category=消防安全")
    assert fire.headers["ETag"] != etag and fire.data != r.data


def test_stats_are_geojson_per_grid_and_match_the_library(client, county) -> None:
    from gridgeo.analyze import grid_stats

    r = client.get("/stats/grids?category=消防安全&start=2025-01-01&end=2025-06-30")
    assert r.status_code == 200 and r.content_type == "application/geo+json"
    fc = r.json
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(county["grids"])
    ref = grid_stats(
        county["incidents"],
        county["grids"],
        start="2025-01-01",
        end="2025-06-30",
        category="消防安全",
    ).set_index("code")
    for f in fc["features"]:
        p = f["properties"]
        assert set(p) >= {"code", "count", "per_1000_households", "change", "change_pct", "hotspot"}
        assert p["count"] == ref.loc[p["code"], "count"]
        assert p["change"] == ref.loc[p["code"], "change"]
        assert p["hotspot"] in ("hot", "cold", "none")
    g = shapely.from_geojson(json.dumps(fc["features"][0]["geometry"]))
    assert g.is_valid and -180 <= g.centroid.x <= 180  # WGS84 lon/lat


@pytest.mark.parametrize(
    ("url", "status", "match"),
    [
        ("/stats/grids?category=火灾", 400, "unknown category '火灾'"),
        ("/stats/grids?start=2025-02-30", 400, "is not a date"),
        ("/stats/grids?start=2025-05-01&end=2025-01-01", 400, "is after end"),
        ("/stats/grids?period=fortnight", 400, "period was 'fortnight'"),
        ("/stats/grids?alpha=x", 400, "alpha must be a number"),
        ("/stats/grids?bbox=1,2,3,4", 400, "unknown parameter"),
        ("/heatmap/tiles/25/0/0.png", 400, "zoom 25 is out of range"),
        ("/heatmap/tiles/3/8/0.png", 400, "tile 3/8/0 does not exist"),
        ("/heatmap/tiles/3/a/0.png", 404, ""),
        ("/heatmap/tiles/12/1/1.png?category=x", 400, "unknown category"),
        ("/heatmap?x=1", 400, "unknown parameter"),
        ("/heatmap/static/../app.py", 404, ""),
        ("/heatmap/static/leaflet/../../heatmap.py", 404, ""),
    ],
)
def test_bad_requests_get_a_4xx_that_names_the_problem(client, url, status, match) -> None:
    r = client.get(url)
    assert r.status_code == status, r.data[:200]
    assert r.is_json and match in r.json["description"]


def test_without_incidents_the_heatmap_is_404(county) -> None:
    layers = {k: v for k, v in county.items() if k != "incidents"}
    c = create_app(ServiceConfig(), layers=layers).test_client()
    r = c.get("/heatmap")
    assert r.status_code == 404 and "no incidents" in r.json["description"]


def test_basemap_configuration(county) -> None:
    svc = HeatmapService(county, basemap="tianditu:abc")
    html, _, _ = svc.page({})
    assert "tianditu.gov.cn" in html and "tk=abc" in html
    svc = HeatmapService(county)
    assert "tianditu" not in svc.page({})[0]


def test_page_opens_on_the_grids_that_have_incidents() -> None:
    # four grids in a row; incidents only in the first two
    boxes = [shapely.box(114.90 + 0.01 * i, 25.40, 114.91 + 0.01 * i, 25.41) for i in range(4)]
    grids = gpd.GeoDataFrame(
        {"code": [f"G{i}" for i in range(4)], "name": [f"第{i}网格" for i in range(4)]},
        geometry=boxes,
        crs="EPSG:4490",
    )
    pts = [boxes[0].centroid, boxes[1].centroid, boxes[1].centroid]
    incidents = gpd.GeoDataFrame(
        {"category": ["消防安全"] * 3, "reported_at": pd.to_datetime(["2025-03-01"] * 3)},
        geometry=pts,
        crs="EPSG:4490",
    )
    html, _, _ = HeatmapService({"grids": grids, "incidents": incidents}).page({})
    cfg = page_config(html)
    want = grids.iloc[:2].to_crs(4326).total_bounds
    assert np.allclose(cfg["focus"], want, atol=1e-6)
    assert np.allclose(cfg["bounds"], grids.to_crs(4326).total_bounds, atol=1e-6)
    assert cfg["focus"][2] < cfg["bounds"][2] - 0.015  # not the whole county


def test_page_opens_on_a_calendar_year_compared_with_the_year_before(client, county) -> None:
    html = client.get("/heatmap").get_data(as_text=True)
    last = county["incidents"]["reported_at"].max()
    assert (last.month, last.day) == (12, 31)  # the demo's incidents end on 31 December
    start = re.search(r'id="start" value="([0-9-]+)"', html).group(1)
    end = re.search(r'id="end" value="([0-9-]+)"', html).group(1)
    assert (start, end) == (f"{last.year}-01-01", f"{last.year}-12-31")
    fc = client.get(f"/stats/grids?start={start}&end={end}").json
    assert fc["window"] == [start, end]
    assert fc["previousWindow"] == [f"{last.year - 1}-01-01", f"{last.year - 1}-12-31"]


def test_page_speaks_plain_chinese(client) -> None:
    page = client.get("/heatmap").get_data(as_text=True)
    script = client.get("/heatmap/static/heatmap.js")
    text = page + script.get_data(as_text=True)
    script.close()
    assert "Getis" not in text and "Gi*" not in text
    assert "热点" in text and "冷点" in text


# ---- in a real browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_demo():
    """`gridgeo serve` on the bundled demo workspace, in its own process."""

    with serving(DEMO) as url:
        yield url


@pytest.mark.browser
@pytest.mark.server
def test_heatmap_page_in_chromium_makes_no_outside_request(live_demo, system_tool) -> None:
    chromium = system_tool("chromium", package="chromium", also=["/usr/bin/chromium"])
    from playwright.sync_api import sync_playwright

    requests_seen: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("request", lambda req: requests_seen.append(req.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(live_demo + "/heatmap")
        page.wait_for_function(
            "window.gridgeoState && gridgeoState.statsLoaded >= 1 && gridgeoState.tilesLoaded >= 4",
            timeout=60_000,
        )
        grid_paths = page.locator("path.leaflet-interactive").count()
        assert grid_paths >= 60  # the 67 grids' outlines (and hot-spot outlines)
        assert page.locator("#worse tbody tr").count() > 0
        first_status = page.locator("#status").inner_text()
        page.wait_for_function("gridgeoState.heatLoads >= 1", timeout=60_000)
        tiles_before = page.evaluate("gridgeoState.tilesLoaded")
        loads_before = page.evaluate("gridgeoState.heatLoads")
        # change the category: tiles and statistics reload without a page load
        page.select_option("#category", "消防安全")
        page.wait_for_function(
            "gridgeoState.statsLoaded >= 2 && gridgeoState.category === '消防安全'",
            timeout=60_000,
        )
        # the heat layer reloads every visible tile for the new category
        page.wait_for_function(f"gridgeoState.heatLoads > {loads_before}", timeout=60_000)
        assert page.evaluate("gridgeoState.tilesLoaded") > tiles_before
        assert page.locator("#status").inner_text() != first_status
        assert "消防安全" in page.locator("#status").inner_text()
        assert page.evaluate("gridgeoState.tileErrors") == 0
        heat_imgs = page.locator("img.leaflet-tile-loaded").count()
        assert heat_imgs >= 4
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "heatmap.png"))
        browser.close()
    assert not errors, errors
    outside = [
        u for u in requests_seen if not u.startswith(live_demo) and not u.startswith("data:")
    ]
    assert outside == []
    shot = np.asarray(Image.open(ARTIFACTS / "heatmap.png").convert("RGB"))
    assert shot.std() > 10  # not a blank page


NAME_OR_CODE = re.compile(r"\d{12,}")  # a grid code: 15 digits in the demo


@pytest.mark.browser
@pytest.mark.server
def test_heatmap_names_grids_and_its_legend_follows_the_layers(live_demo, system_tool) -> None:
    chromium = system_tool("chromium", package="chromium", also=["/usr/bin/chromium"])
    from playwright.sync_api import sync_playwright

    names = set(gpd.read_file(DEMO, layer="grids")["name"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(live_demo + "/heatmap")
        page.wait_for_function(
            "window.gridgeoState && gridgeoState.statsLoaded >= 1 && gridgeoState.heatLoads >= 1",
            timeout=60_000,
        )
        # the table and the tooltips name grids; no 15-digit code shows
        cells = page.locator("#worse tbody tr td:first-child").all_inner_texts()
        assert cells and all(c in names for c in cells), cells
        tip = page.evaluate(
            """() => {
                const l = gridgeoState.layers.outlines.getLayers()[0];
                l.openTooltip(l.getBounds().getCenter());
                return document.querySelector(".leaflet-tooltip").innerText;
            }"""
        )
        assert any(n in tip for n in names) and not NAME_OR_CODE.search(tip), tip
        body = page.locator("body").inner_text()
        assert "Getis" not in body and "热点" in body and not NAME_OR_CODE.search(body)

        def legend() -> list[str]:
            return page.eval_on_selector_all(
                ".legend [data-layer]",
                "els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.layer)",
            )

        def toggle(label: str) -> None:
            page.locator(".leaflet-control-layers-overlays label", has_text=label).locator(
                "input"
            ).click()

        assert legend() == ["heat", "hot", "outlines"]  # the layers on at first
        toggle("热点/冷点网格")
        assert legend() == ["heat", "outlines"]
        toggle("每千户事件数")
        assert legend() == ["heat", "choropleth", "outlines"]
        assert "每千户事件数" in page.locator(".legend").inner_text()
        toggle("热力图")
        toggle("网格边界")
        assert legend() == ["choropleth"]
        page.screenshot(path="/tmp/heatmap_desktop_legend.png")
        browser.close()
    assert not errors, errors


@pytest.mark.browser
@pytest.mark.server
def test_heatmap_is_usable_on_a_phone(live_demo, system_tool) -> None:
    chromium = system_tool("chromium", package="chromium", also=["/usr/bin/chromium"])
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(live_demo + "/heatmap")
        page.wait_for_function(
            "window.gridgeoState && gridgeoState.statsLoaded >= 1 && gridgeoState.heatLoads >= 1",
            timeout=60_000,
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # every control is on screen, inside the width, and not covered by the map
        for sel in ("#category", "#start", "#end"):
            box = page.locator(sel).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (sel, box)
            on_top = page.evaluate(
                "([s, x, y]) => document.elementFromPoint(x, y) === document.querySelector(s)",
                [sel, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
            )
            assert on_top, f"{sel} is covered"
        bar = page.locator("#bar").bounding_box()
        m = page.locator("#map").bounding_box()
        assert m["y"] >= bar["y"] + bar["height"] - 1  # the map starts below the controls
        assert m["width"] >= 370 and m["height"] >= 250, m
        layers = page.locator(".leaflet-control-layers").bounding_box()
        assert layers["x"] + layers["width"] <= 390
        page.screenshot(path="/tmp/heatmap_phone.png")
        # the table of grids is below the map, full width, and readable
        row = page.locator("#worse tbody tr").first
        row.scroll_into_view_if_needed()
        rb = row.bounding_box()
        assert rb["width"] >= 330 and rb["x"] + rb["width"] <= 390
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path="/tmp/heatmap_phone_full.png", full_page=True)
        browser.close()
    assert not errors, errors
    shot = np.asarray(Image.open("/tmp/heatmap_phone.png").convert("RGB"))
    assert shot.shape[1] == 390 * round(shot.shape[1] / 390) and shot.std() > 10
