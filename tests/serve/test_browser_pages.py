"""The service in a browser: HTML by content negotiation, maps on the feature pages, a favicon."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import numpy as np
import pytest
import requests
from live_server import serving
from PIL import Image

from gridgeo.serve import ServiceConfig, create_app
from gridgeo.serve.pages import prefers_html, to_html

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo.gpkg"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
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


@pytest.fixture(scope="module")
def county():
    from gridgeo.datasets import demo_county

    return demo_county(seed=0)


@pytest.fixture(scope="module")
def client(county):
    return create_app(ServiceConfig(), layers=county).test_client()


@pytest.fixture(scope="module")
def grid_code(county) -> str:
    return str(county["grids"]["code"].iloc[0])


def pages(code: str) -> list[str]:
    return ["/", "/collections", "/collections/grids/items", f"/collections/grids/items/{code}"]


# ---- content negotiation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),  # Chromium, Firefox
        ("text/html", True),
        ("application/xhtml+xml,*/*;q=0.5", True),
        ("*/*", False),  # curl, requests
        (None, False),
        ("", False),
        ("application/json", False),
        ("application/geo+json,text/html;q=0.9", False),
        ("text/html;q=0.5,application/json", False),
        ("text/html,application/json", False),  # a tie: JSON, the API's own format
        ("text/html;q=0,*/*", False),
        ("text/html;q=bad,*/*", False),
    ],
)
def test_prefers_html(accept, html) -> None:
    assert prefers_html(accept) is html


@pytest.mark.parametrize("which", range(4))
def test_a_browser_gets_html_and_scripts_get_json(client, grid_code, which) -> None:
    path = pages(grid_code)[which]
    r = client.get(path, headers={"Accept": BROWSER})
    assert r.status_code == 200 and r.content_type == "text/html; charset=utf-8", path
    assert r.get_data(as_text=True).startswith("<!doctype html>")
    for headers in ({"Accept": "*/*"}, {}, {"Accept": "application/json"}):
        j = client.get(path, headers=headers)
        assert j.status_code == 200 and j.is_json, (path, headers, j.content_type)
    # f= still wins over Accept, both ways
    assert client.get(path + "?f=json", headers={"Accept": BROWSER}).is_json
    assert client.get(path + "?f=html", headers={"Accept": "*/*"}).content_type.startswith(
        "text/html"
    )


# ---- the favicon -----------------------------------------------------------------------------


def test_favicon_is_an_icon_and_every_page_links_it(client, grid_code) -> None:
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.content_type in ("image/vnd.microsoft.icon", "image/x-icon")
    icon = r.data
    r.close()
    im = Image.open(io.BytesIO(icon))
    assert im.format == "ICO" and {(16, 16), (32, 32)} <= set(im.info["sizes"])
    for path in [*pages(grid_code), "/heatmap", "/collections/grids?f=html"]:
        html = client.get(path, headers={"Accept": BROWSER}).get_data(as_text=True)
        m = re.search(r'<link rel="icon" href="([^"]+)"', html)
        assert m, f"{path} links no icon"
        href = urlsplit(urljoin("http://localhost" + path, m.group(1))).path
        linked = client.get(href)
        assert linked.status_code == 200 and linked.data == icon, (path, href)
        linked.close()


# ---- the map on the feature pages ------------------------------------------------------------


def map_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="features">(.*?)</script>', html, re.S)
    assert m, "the page has no map data"
    return json.loads(m.group(1))


def test_items_and_item_pages_carry_a_map_of_their_features(client, grid_code) -> None:
    fc = client.get("/collections/grids/items?limit=7").json
    html = client.get("/collections/grids/items?limit=7&f=html").get_data(as_text=True)
    assert 'id="map"' in html and 'data-axis="lonlat"' in html
    # the vendored Leaflet and the map script, from this server (no CDN)
    for asset in re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html):
        assert asset.startswith("http://localhost/"), asset
        a = client.get(urlsplit(asset).path)
        assert a.status_code == 200, asset
        a.close()
    data = map_data(html)
    assert [f["id"] for f in data["features"]] == [f["id"] for f in fc["features"]]
    assert [f["geometry"] for f in data["features"]] == [f["geometry"] for f in fc["features"]]
    one = client.get(f"/collections/grids/items/{grid_code}?f=html").get_data(as_text=True)
    assert [f["id"] for f in map_data(one)["features"]] == [grid_code]


def test_map_follows_the_axis_order_of_the_crs(client) -> None:
    geo = client.get(
        "/collections/grids/items?limit=3&f=html&crs=http://www.opengis.net/def/crs/EPSG/0/4490"
    ).get_data(as_text=True)
    assert 'data-axis="latlon"' in geo  # EPSG:4490 lists latitude first
    projected = client.get("/collections/grids").json["crs"][-1]  # the Gauss–Krüger zone
    page = client.get(f"/collections/grids/items?limit=3&f=html&crs={projected}").get_data(
        as_text=True
    )
    assert 'id="map"' not in page and "不显示地图" in page


def test_map_data_cannot_close_its_script() -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "x",
                "geometry": {"type": "Point", "coordinates": [114.9, 25.4]},
                "properties": {"name": "</script><script>alert(1)</script>"},
            }
        ],
    }
    html = to_html(fc, "t")
    assert html.count("</script>") == 3  # Leaflet, the data, the map script
    assert map_data(html)["features"][0]["properties"]["label"].startswith("</script>")


# ---- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def live():
    """`gridgeo serve` on the bundled demo workspace, in its own process."""
    with serving(DEMO) as url:
        yield url


@pytest.mark.server
def test_a_real_server_negotiates_like_the_test_client(live) -> None:
    assert requests.get(live + "/collections", timeout=10).headers["Content-Type"].startswith(
        "application/json"
    )
    r = requests.get(live + "/collections", headers={"Accept": BROWSER}, timeout=10)
    assert r.headers["Content-Type"].startswith("text/html")


def map_pixels(shot: Path, box: dict) -> np.ndarray:
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    x0, y0 = int(box["x"]) + 2, int(box["y"]) + 2
    return img[y0 : int(box["y"] + box["height"]) - 2, x0 : int(box["x"] + box["width"]) - 2]


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize(
    ("name", "width"),
    [("desktop", 1400), ("phone", 390)],
)
def test_items_page_shows_its_features_on_a_map(live, system_tool, name, width) -> None:
    chromium = system_tool("chromium", package="chromium", also=["/usr/bin/chromium"])
    from playwright.sync_api import sync_playwright

    url = live + "/collections/grids/items?limit=12"
    fc = requests.get(url, timeout=10).json()
    seen: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("request", lambda req: seen.append(req.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_extra_http_headers({"Accept": BROWSER})  # no f=html: the browser's own Accept
        page.goto(url)
        page.wait_for_function("window.gridgeoFeatureMap !== undefined", timeout=30_000)
        # one SVG path per feature, inside the map container
        assert page.locator("#map path.leaflet-interactive").count() == fc["numberReturned"]
        m = page.locator("#map").bounding_box()
        t = page.locator(".data table").bounding_box()
        if name == "desktop":  # next to the table
            assert m["x"] >= t["x"] + t["width"] and m["y"] < t["y"] + t["height"]
        else:  # above the table, the page's width, no sideways scrolling of the page
            assert m["y"] + m["height"] <= t["y"] and m["width"] >= 350
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        shot = Path(f"/tmp/items_map_{name}.png")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert not errors, errors
    assert [u for u in seen if not u.startswith(live)] == []
    px = map_pixels(shot, m)
    background = np.array([0xEE, 0xF1, 0xF4])
    drawn = (np.abs(px - background).sum(axis=2) > 30).mean()
    assert drawn > 0.05, drawn  # the grids are drawn, not an empty map


@pytest.mark.browser
@pytest.mark.server
def test_feature_page_map_in_lat_lon_crs_is_where_the_lon_lat_map_is(live, system_tool) -> None:
    chromium = system_tool("chromium", package="chromium", also=["/usr/bin/chromium"])
    from playwright.sync_api import sync_playwright

    feats = requests.get(live + "/collections/grids/items?limit=1", timeout=10).json()["features"]
    fid = feats[0]["id"]
    centre = (
        "() => { const c = gridgeoFeatureMap.layer.getBounds().getCenter();"
        " return [c.lat, c.lng]; }"
    )
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        for crs in ("", "&crs=http://www.opengis.net/def/crs/EPSG/0/4490"):
            page.goto(f"{live}/collections/grids/items/{fid}?f=html{crs}")
            page.wait_for_function("window.gridgeoFeatureMap !== undefined", timeout=30_000)
            assert page.locator("#map path.leaflet-interactive").count() == 1
            out[crs] = page.evaluate(centre)
        page.screenshot(path="/tmp/item_map_4490.png")
        browser.close()
    a, b = out.values()
    assert 20 < a[0] < 30 and 110 < a[1] < 120  # the demo county, in Jiangxi
    assert np.allclose(a, b, atol=1e-5)
