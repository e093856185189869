"""The import report: a self-contained page, checked as text and in Debian's chromium."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

from gridgeo.analyze.offline import external_urls
from gridgeo.crs import from_wgs84
from gridgeo.io.importer import import_workspace
from gridgeo.io.report import fix_geometries, write_report

sys.path.insert(0, str(Path(__file__).parents[2] / "data" / "examples"))
import make_examples

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
METRIC = "EPSG:4547"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The example county written to a temporary folder, imported, and its report written."""
    folder = tmp_path_factory.mktemp("report")
    truth = make_examples.write_examples(folder)
    result = import_workspace(folder / "manifest.toml", folder / "county.gpkg")
    page = write_report(result, folder / "import.html")
    return truth, result, page


@pytest.fixture
def chromium() -> str:
    """Debian's chromium: skipped without it, failed when CI says it installed it."""
    found = shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium",) if Path(p).exists()), None
    )
    if found:
        return found
    if os.environ.get("GRIDGEO_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail("'chromium' is not installed (apt-get install chromium)", pytrace=False)
    pytest.skip("Debian's 'chromium' is not installed")


def bowtie_row(truth, result) -> int:
    code = truth["communities"]["code"].iloc[make_examples.BOWTIE]
    c = result.changes
    hit = c.index[(c["code"] == code) & c["problem"].str.startswith("invalid geometry")]
    assert len(hit) == 1
    return int(hit[0])


def test_every_change_is_placed_where_it_happened(imported) -> None:
    truth, result, _ = imported
    fixes = fix_geometries(result)
    assert fixes.index.tolist() == list(range(len(result.changes)))
    assert fixes.crs.to_epsg() == 4490
    # the repaired bow-tie is marked at the crossing of the ring as drawn
    reason = shapely.is_valid_reason(truth["messy_communities"].geometry.iloc[make_examples.BOWTIE])
    x, y = map(float, re.search(r"\[(\S+) (\S+)\]", reason).groups())
    marker = fixes.loc[bowtie_row(truth, result), "marker"]
    mx, my = from_wgs84([marker.x, x], [marker.y, y], METRIC)
    assert np.hypot(mx[0] - mx[1], my[0] - my[1]) < 2 * make_examples.BOWTIE_M
    # a change without an area of its own (the derived town code) is on its community
    comms = result.layers["communities"].set_index("code").geometry
    derived = result.changes.index[result.changes["problem"] == "no town_code"]
    for i in derived:
        code = result.changes.loc[i, "code"]
        assert comms[code].covers(fixes.geometry[i]), code


def test_the_page_loads_nothing_and_lists_every_change_and_mapping(imported) -> None:
    _, result, page = imported
    html = page.read_text(encoding="utf-8")
    head, body = html.split("</head>")
    assert external_urls(body) == []
    assert re.findall(r"<(?:script|link|img)[^>]*(?:src|href)=", head) == []
    assert "Leaflet 1.9.4" in head and "images/layers" not in head  # its images inlined
    rows = re.search(r'<table class="changes">.*?</table>', html, re.S).group(0)
    assert rows.count("<tr>") == len(result.changes) + 1
    assert html.count('class="show"') == len(result.changes)
    for lines in result.read_reports.values():
        for line in lines:
            assert line.replace("'", "&#x27;").replace(">", "&gt;") in html
    for name in result.layers["communities"]["name"]:
        assert name in html


@pytest.mark.browser
def test_the_report_shows_its_changes_on_a_map_offline(imported, chromium, tmp_path) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    truth, result, page_path = imported
    url = page_path.resolve().as_uri()
    seen: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("request", lambda req: seen.append(req.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function("window.gridgeoImportReport !== undefined", timeout=30_000)
        n_fixes = page.evaluate("Object.keys(gridgeoImportReport.fixes).length")
        n_drawn = {
            name: page.evaluate(f"gridgeoImportReport.layers['{name}'].getLayers().length")
            for name in result.layers
        }
        county_zoom = page.evaluate("gridgeoImportReport.map.getZoom()")
        box = page.locator("#map").bounding_box()
        page.screenshot(path=str(tmp_path / "report.png"))
        # a click on the bow-tie's row zooms to it and opens its popup
        page.locator(f'a.show[data-row="{bowtie_row(truth, result)}"]').click()
        page.wait_for_selector(".leaflet-popup-content", timeout=10_000)
        popup = page.locator(".leaflet-popup-content").inner_text()
        zoom = page.evaluate("gridgeoImportReport.map.getZoom()")
        page.screenshot(path=str(tmp_path / "report_bowtie.png"))
        browser.close()
    assert not errors, errors
    assert [u for u in seen if not u.startswith(("file:", "data:"))] == []
    assert n_fixes == len(result.changes)
    assert n_drawn == {name: len(gdf) for name, gdf in result.layers.items()}
    assert "invalid geometry" in popup and "东门社区" in popup
    assert zoom >= county_zoom + 4, (county_zoom, zoom)
    img = np.asarray(Image.open(tmp_path / "report.png").convert("RGB")).astype(int)
    x0, y0 = int(box["x"]) + 2, int(box["y"]) + 2
    px = img[y0 : int(box["y"] + box["height"]) - 2, x0 : int(box["x"] + box["width"]) - 2]
    red = (px[..., 0] > 180) & (px[..., 1] < 110) & (px[..., 2] < 110)
    assert red.sum() > 200, red.sum()  # the changes are drawn in red on the map
