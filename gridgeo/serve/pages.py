"""HTML pages of the OGC API – Features responses, and the choice between HTML and JSON.

Framework-free like :mod:`gridgeo.serve.features`: the pages are built from the
cores' ``(body, status, headers)``, with links to this server's own assets only.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from gridgeo.serve.features import CRS84, Response

__all__ = ["html_response", "prefers_html", "to_html"]

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_JSON_TYPES = ("application/json", "application/geo+json")
_LONLAT = {None, CRS84}
_LATLON = {f"http://www.opengis.net/def/crs/EPSG/0/{e}" for e in (4326, 4490)}
_TEMPLATES = Path(__file__).parent / "templates"


def prefers_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for HTML rather than JSON (as pygeoapi decides).

    A browser names ``text/html`` and adds ``*/*;q=0.8``: it gets HTML. A script
    that sends ``*/*`` alone (curl, requests), nothing, or a JSON type ranked at
    least as high as HTML gets JSON.

    Examples
    --------
    >>> prefers_html("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    True
    >>> prefers_html("*/*"), prefers_html(None), prefers_html("")
    (False, False, False)
    >>> prefers_html("application/geo+json, text/html;q=0.5")
    False
    >>> prefers_html("text/html;q=0, */*")
    False
    """
    best_html = best_json = 0.0
    for part in (accept or "").split(","):
        mime, *params = (x.strip() for x in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if mime.lower() in _HTML_TYPES:
            best_html = max(best_html, q)
        elif mime.lower() in _JSON_TYPES:
            best_json = max(best_json, q)
    return best_html > 0 and best_html > best_json


def _map_data(body: Any, items_path: str) -> dict[str, Any] | None:
    """The features of a response as a small GeoJSON for the page's map (None: nothing to map)."""
    if not isinstance(body, dict) or body.get("type") not in ("Feature", "FeatureCollection"):
        return None
    feats = body["features"] if body["type"] == "FeatureCollection" else [body]
    out = []
    for f in feats:
        if not f.get("geometry"):
            continue
        props = f.get("properties") or {}
        fid = str(f.get("id", ""))
        label = str(props.get("name") or fid)
        prop = {"label": label}
        if items_path and body["type"] == "FeatureCollection":
            prop["href"] = f"{items_path}/{quote(fid)}?f=html"
        out.append({"type": "Feature", "id": fid, "geometry": f["geometry"], "properties": prop})
    return {"type": "FeatureCollection", "features": out} if out else None


def _script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def to_html(body: Any, title: str, *, root: str = "", crs: str | None = None) -> str:
    """A plain HTML rendering of a JSON response, with a map of its features.

    Every resource comes from this server (the vendored Leaflet, the favicon):
    the pages work on an intranet without internet.

    Parameters
    ----------
    body
        A response body (landing page, collections, a FeatureCollection, a Feature, …).
    title
        Page title.
    root
        The service's root URL (no trailing slash); "" for root-relative links.
    crs
        The features' CRS URI (the ``Content-Crs`` header, with or without ``<>``).
        Features in CRS84, EPSG:4326 or EPSG:4490 are drawn on a map next to the
        table; in a projected CRS the page says why there is no map.

    Returns
    -------
    str

    Examples
    --------
    >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "id": "G1",
    ...     "geometry": {"type": "Point", "coordinates": [114.9, 25.4]},
    ...     "properties": {"name": "一网格"}}], "links": []}
    >>> page = to_html(fc, "grids items", root="http://host")
    >>> 'id="map"' in page, "http://host/favicon.ico" in page, "一网格" in page
    (True, True, True)
    >>> 'id="map"' in to_html({"title": "landing"}, "gridgeo")
    False
    """

    def render(v: Any, depth: int = 0) -> str:
        if isinstance(v, dict):
            if "href" in v and "rel" in v:
                label = html.escape(str(v.get("title") or v["rel"]))
                return f'<a href="{html.escape(v["href"])}">{label}</a>'
            rows = "".join(
                f"<tr><th>{html.escape(str(k))}</th><td>{render(x, depth + 1)}</td></tr>"
                for k, x in v.items()
                if k != "geometry"
            )
            return f"<table>{rows}</table>"
        if isinstance(v, list):
            if len(v) > 200:
                v = v[:200]
            return "<ul>" + "".join(f"<li>{render(x, depth + 1)}</li>" for x in v) + "</ul>"
        return html.escape(str(v))

    def features_table(fc: dict[str, Any], items_path: str) -> str:
        """A FeatureCollection as one row per feature, with paging links above."""
        links = fc.get("links", [])
        nav = " · ".join(
            f'<a href="{html.escape(lk["href"])}">{html.escape(lk["rel"])}</a>'
            for lk in links
            if lk.get("rel") in ("prev", "next", "collection")
        )
        feats = fc.get("features", [])
        cols: list[str] = []
        for f in feats:
            for k in f.get("properties") or {}:
                if k not in cols:
                    cols.append(k)
        head = "<tr><th>id</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
        rows = []
        for f in feats:
            fid = html.escape(str(f.get("id", "")))
            link = (
                f'<a href="{html.escape(items_path)}/{fid}?f=html">{fid}</a>' if items_path else fid
            )
            props = f.get("properties") or {}
            cells = "".join(f"<td>{html.escape(str(props.get(c, '')))}</td>" for c in cols)
            rows.append(f"<tr><td>{link}</td>{cells}</tr>")
        summary = (
            f"<p>{fc.get('numberReturned', len(feats))} of {fc.get('numberMatched', '?')} "
            f"features. {nav}</p>"
        )
        return f"{summary}<table>{head}{''.join(rows)}</table><p>{nav}</p>"

    links = body.get("links", []) if isinstance(body, dict) else []
    self_href = next((lk["href"] for lk in links if lk.get("rel") == "self"), "")
    items_path = self_href.split("?", 1)[0]
    is_fc = isinstance(body, dict) and body.get("type") == "FeatureCollection"
    content = features_table(body, items_path) if is_fc else render(body)
    root_ = html.escape(root, quote=True)
    extra_head = ""
    data = _map_data(body, items_path)
    crs = crs.strip("<>") if crs else None
    if data is not None and crs not in _LONLAT | _LATLON:
        content = f'<p class="note">{html.escape(str(crs))} 为投影坐标，不显示地图。</p>{content}'
    elif data is not None:
        axis = "latlon" if crs in _LATLON else "lonlat"
        extra_head = (
            f'<link rel="stylesheet" href="{root_}/heatmap/static/leaflet/leaflet.css">'
            f'<script src="{root_}/heatmap/static/leaflet/leaflet.js"></script>'
        )
        content = (
            f'<div class="with-map"><div id="map" class="map" data-axis="{axis}"></div>'
            f'<div class="data">{content}</div></div>'
            f'<script type="application/json" id="features">{_script_json(data)}</script>'
            f'<script src="{root_}/heatmap/static/features-map.js"></script>'
        )
    return Template((_TEMPLATES / "page.html").read_text(encoding="utf-8")).substitute(
        title=html.escape(title), root=root_, head=extra_head, content=content
    )


def html_response(result: Response, title: str, *, root: str = "") -> Response:
    """A core's ``(body, status, headers)`` as an HTML page (see :func:`to_html`).

    Examples
    --------
    >>> page, status, headers = html_response(({"title": "x"}, 200, {}), "gridgeo")
    >>> status, headers["Content-Type"]
    (200, 'text/html; charset=utf-8')
    """
    body, status, headers = result
    page = to_html(body, title, root=root, crs=headers.get("Content-Crs"))
    return page, status, {"Content-Type": "text/html; charset=utf-8"}
