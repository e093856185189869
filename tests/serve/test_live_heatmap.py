"""The leaders' heat map over a live incident store follows new reports without a reload."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import shapely
from live_server import serving
from PIL import Image
from test_heatmap import ARTIFACTS, CHROMIUM_ARGS, DEMO, page_config

from gridgeo.analyze import tile_of
from gridgeo.serve import ServiceConfig, create_app

CATEGORY = "消防安全"
ZOOM = 15
N_REPORTS = 20


@pytest.fixture
def workspace_copy(tmp_path) -> Path:
    """A copy of the bundled demo (the bundled file is never written)."""
    return Path(shutil.copy(DEMO, tmp_path / "workspace.gpkg"))


@pytest.fixture
def live_copy(workspace_copy):
    """`gridgeo serve` on a copy of the demo workspace: the copy is its incident store."""
    with serving(workspace_copy) as url:
        yield url


def test_tiles_of_a_live_store_are_revalidated_and_of_a_frozen_workspace_cached(
    workspace_copy,
) -> None:
    x, y = tile_of(114.93, 25.41, 12)
    frozen = create_app(ServiceConfig(data=DEMO)).test_client()  # the bundled demo: read-only
    live = create_app(ServiceConfig(data=workspace_copy)).test_client()
    for client, cache, is_live in (
        (frozen, "public, max-age=3600", False),
        (live, "no-cache", True),
    ):
        r = client.get(f"/heatmap/tiles/12/{x}/{y}.png")
        assert r.status_code == 200 and r.headers["Cache-Control"] == cache
        again = client.get(
            f"/heatmap/tiles/12/{x}/{y}.png", headers={"If-None-Match": r.headers["ETag"]}
        )
        assert again.status_code == 304 and again.headers["Cache-Control"] == cache
        cfg = page_config(client.get("/heatmap").get_data(as_text=True))
        assert cfg["live"] is is_live and cfg["refresh"] > 0


def _tile_pixels(page, key: str, spot: tuple[float, float]) -> tuple[str | None, float]:
    """A digest of the heat tile's RGBA as drawn, and its mean alpha 12 px around the spot."""
    got = page.evaluate(
        """([key, lat, lng]) => {
            const t = gridgeoState.layers.heat._tiles[key];
            if (!t || !t.loaded || !t.el.complete || !t.el.naturalWidth) return null;
            const c = document.createElement("canvas");
            c.width = c.height = 256;
            const g = c.getContext("2d");
            g.drawImage(t.el, 0, 0);
            const px = g.getImageData(0, 0, 256, 256).data;
            let h = 2166136261;  // FNV-1a over every byte
            for (let i = 0; i < px.length; i++) h = Math.imul(h ^ px[i], 16777619) >>> 0;
            const p = gridgeoState.map.project([lat, lng], t.coords.z);  // the spot in its tile
            const ix = Math.floor(p.x - t.coords.x * 256), iy = Math.floor(p.y - t.coords.y * 256);
            let a = 0, n = 0;
            for (let yy = Math.max(0, iy - 12); yy < Math.min(256, iy + 12); yy++)
                for (let xx = Math.max(0, ix - 12); xx < Math.min(256, ix + 12); xx++) {
                    a += px[(yy * 256 + xx) * 4 + 3];
                    n++;
                }
            return [h.toString(16), a / n];
        }""",
        [key, spot[1], spot[0]],
    )
    return (got[0], got[1]) if got else (None, 0.0)


def _table_row(page, code: str) -> dict | None:
    return page.evaluate(
        """code => {
            const tr = document.querySelector(`#worse tbody tr[data-code="${code}"]`);
            if (!tr) return null;
            const td = Array.from(tr.children).map(c => c.innerText);
            return {count: Number(td[1]), open: Number(td[5]), overdue: Number(td[6]),
                    cells: td.length};
        }""",
        code,
    )


@pytest.mark.browser
@pytest.mark.server
def test_heatmap_follows_new_reports_without_a_reload(live_copy, system_tool) -> None:
    chromium = system_tool("chromium", package="chromium", also=["/usr/bin/chromium"])
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(live_copy + "/heatmap")
        page.wait_for_function(
            "window.gridgeoState && gridgeoState.statsLoaded >= 1 && gridgeoState.heatLoads >= 1",
            timeout=60_000,
        )
        # the open and overdue cases show: a summary and two columns
        assert page.locator("#cases").is_visible()
        assert "未结" in page.locator("#cases").inner_text()
        assert "超期" in page.locator("#cases").inner_text()
        heads = page.locator("#worse thead th").all_inner_texts()
        assert heads[-2:] == ["未结", "超期"], heads
        assert page.locator("#worse thead th", has_text="超期").is_visible()
        assert page.locator("#live").is_visible()

        # a quiet spot: the grid with the fewest fire-safety reports in the page's window
        page.select_option("#category", CATEGORY)
        page.wait_for_function(f"gridgeoState.category === '{CATEGORY}'", timeout=60_000)
        start = page.input_value("#start")
        end = page.input_value("#end")
        fc = requests.get(
            f"{live_copy}/stats/grids",
            params={"category": CATEGORY, "start": start, "end": end},
            timeout=30,
        ).json()
        quiet = min(
            fc["features"], key=lambda f: (f["properties"]["count"], f["properties"]["previous"])
        )
        code = quiet["id"]
        grid = shapely.geometry.shape(quiet["geometry"])
        spot = grid.point_on_surface()
        lng, lat = round(spot.x, 6), round(spot.y, 6)
        x, y = tile_of(lng, lat, ZOOM)
        key = f"{x}:{y}:{ZOOM}"
        page.evaluate(
            "([lat, lng, z]) => gridgeoState.map.setView([lat, lng], z, {animate: false})",
            [lat, lng, ZOOM],
        )
        page.wait_for_function(
            """key => { const t = gridgeoState.layers.heat._tiles[key];
                        return t && t.loaded && t.el.complete; }""",
            arg=key,
            timeout=60_000,
        )
        before, alpha_before = _tile_pixels(page, key, (lng, lat))
        assert before is not None
        row_before = _table_row(page, code)
        count_before = row_before["count"] if row_before else quiet["properties"]["count"]
        page.evaluate("window.__marker = 1")
        page.evaluate(  # the tile element as first drawn, to tell it from its replacement
            "key => { gridgeoState.layers.heat._tiles[key].el.dataset.original = '1'; }", key
        )
        swapped = page.evaluate("gridgeoState.tilesSwapped")

        # 20 reports at that spot, as phones send them (GCJ-02 is the phones' CRS; these are
        # WGS84 points, so say so), dated on the last day the page shows
        for i in range(N_REPORTS):
            feature = {
                "type": "Feature",
                "id": f"LIVE-{i}",
                "geometry": {
                    "type": "Point",
                    "coordinates": [lng + 1e-5 * (i % 5), lat + 1e-5 * (i // 5)],
                },
                "properties": {"category": CATEGORY, "reported_at": f"{end}T09:{i:02d}:00+08:00"},
            }
            r = requests.post(
                f"{live_copy}/collections/incidents/items",
                params={"crs": "wgs84"},
                json=feature,
                timeout=30,
            )
            assert r.status_code == 201, r.text

        # without a reload, the tile under the spot changes and the table counts the reports
        page.wait_for_function(
            """([code, n]) => {
                const tr = document.querySelector(`#worse tbody tr[data-code="${code}"]`);
                return tr && Number(tr.children[1].innerText) >= n; }""",
            arg=[code, count_before + N_REPORTS],
            timeout=60_000,
        )
        page.wait_for_function(f"gridgeoState.tilesSwapped > {swapped}", timeout=60_000)
        # THIS tile swapped, for one that shows the reports: the counter also counts other
        # tiles, and a worker that has not yet pulled every report serves an older tile
        # (each worker follows the store on its own; the page revalidates on each update)
        deadline = time.monotonic() + 60
        while True:
            replaced = page.evaluate(
                "key => { const t = gridgeoState.layers.heat._tiles[key];"
                " return !!t && t.el.dataset.original === undefined; }",
                key,
            )
            after, alpha_after = _tile_pixels(page, key, (lng, lat))
            if replaced and after is not None and alpha_after > alpha_before + 20:
                break
            assert time.monotonic() < deadline, (replaced, alpha_before, alpha_after)
            time.sleep(0.25)
        assert page.evaluate("window.__marker") == 1  # the same page: no reload
        assert after != before
        assert alpha_after > alpha_before + 20, (alpha_before, alpha_after)
        row = _table_row(page, code)
        assert row["count"] == count_before + N_REPORTS
        assert row["cells"] == 7 and row["open"] >= N_REPORTS
        assert CATEGORY in page.locator("#status").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "heatmap_live_1400.png"))

        # on a phone: the summary and the columns fit in 390 px
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.on("pageerror", lambda e: errors.append(str(e)))
        phone.goto(live_copy + "/heatmap")
        phone.wait_for_function(
            "window.gridgeoState && gridgeoState.statsLoaded >= 1 && gridgeoState.heatLoads >= 1",
            timeout=60_000,
        )
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        for sel in ("#cases", "#worse thead th.case"):
            box = phone.locator(sel).first.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (sel, box)
        phone.screenshot(path=str(ARTIFACTS / "heatmap_live_390.png"), full_page=True)
        browser.close()
    assert not errors, errors
    for name in ("heatmap_live_1400.png", "heatmap_live_390.png"):
        assert np.asarray(Image.open(ARTIFACTS / name).convert("RGB")).std() > 10
