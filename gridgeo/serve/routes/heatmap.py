"""The leaders' heat map: the page, its heat tiles and the per-grid statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request, send_from_directory

from gridgeo.errors import NotFound
from gridgeo.serve.oas import ERR, GEOJSON, HTML, param
from gridgeo.serve.web import ServiceContext, context, json_response, query_params

__all__ = ["ALWAYS_ROUTED", "CONFORMANCE", "blueprint", "enabled", "paths"]

#: Register the routes even when :func:`enabled` is False.
ALWAYS_ROUTED = True  # its routes say why there is no heat map
CONFORMANCE: list[str] = []
_STATIC = Path(__file__).resolve().parents[1] / "static"


def enabled(ctx: ServiceContext) -> bool:
    """When the workspace has grids and incidents (or a live store)."""
    return ctx.heatmap is not None


def _service() -> Any:
    heat = context().heatmap
    if heat is None:
        raise NotFound("this workspace has no incidents (or no grids): no heat map")
    return heat


def blueprint() -> Blueprint:
    """The heat-map routes (the static assets serve every page, the heat map's first)."""
    bp = Blueprint("heatmap", __name__)

    @bp.get("/heatmap")
    def page() -> Response:
        body, status, headers = _service().page(query_params())
        return Response(body, status=status, headers=headers)

    @bp.get("/heatmap/tiles/<int:z>/<int:x>/<int:y>.png")
    def tile(z: int, x: int, y: int) -> Response:
        body, status, headers = _service().tile(
            z, x, y, query_params(), request.headers.get("If-None-Match")
        )
        return Response(body, status=status, headers=headers)

    @bp.get("/stats/grids")
    def stats() -> Response:
        return json_response(*_service().stats(query_params()))

    return bp


def static_blueprint() -> Blueprint:
    """Vendored assets (Leaflet, scripts, the favicon): served by gridgeo itself (intranets)."""
    bp = Blueprint("static_assets", __name__)

    @bp.get("/heatmap/static/<path:name>")
    def asset(name: str) -> Response:
        # send_from_directory refuses paths that leave the folder
        return send_from_directory(_STATIC, name, max_age=86400)

    icon = (_STATIC / "favicon.ico").read_bytes()  # 5 kB, read once: no file left open

    @bp.get("/favicon.ico")
    def favicon() -> Response:
        resp = Response(icon, content_type="image/vnd.microsoft.icon")
        resp.cache_control.max_age = 86400
        resp.cache_control.public = True
        return resp

    return bp


def paths(ctx: ServiceContext, base: str) -> dict[str, Any]:
    """OpenAPI paths of the heat-map page, its tiles and the per-grid statistics."""
    categories = ctx.heatmap.categories
    filters = [
        param(
            "category",
            {"type": "string", "enum": categories},
            "Incident category (several: comma-separated).",
        ),
        param("start", {"type": "string", "format": "date"}, "First day (inclusive)."),
        param("end", {"type": "string", "format": "date"}, "Last day (inclusive, after start)."),
    ]
    xyz = [
        param(n, {"type": "integer", "minimum": 0, "maximum": m}, d, where="path", required=True)
        for n, m, d in (
            ("z", 20, "Zoom."),
            ("x", 2**20 - 1, "Tile column, below 2^z."),
            ("y", 2**20 - 1, "Tile row from the north, below 2^z."),
        )
    ]
    png = {"image/png": {"schema": {"type": "string", "format": "binary"}}}
    return {
        "/heatmap": {
            "get": {
                "summary": "Leaders' heat-map page (offline: every asset from this server)",
                "operationId": "heatmap-page",
                "responses": {
                    "200": {"description": "page", "content": HTML},
                    "400": ERR,
                    "404": ERR,
                },
            }
        },
        "/heatmap/tiles/{z}/{x}/{y}.png": {
            "get": {
                "summary": "Heat tile (256 px, Web Mercator XYZ)",
                "operationId": "heatmap-tile",
                "parameters": [*xyz, *filters],
                "responses": {
                    "200": {"description": "PNG tile", "content": png},
                    "304": {"description": "not modified (If-None-Match)"},
                    "400": ERR,
                    "404": ERR,
                },
            }
        },
        "/stats/grids": {
            "get": {
                "summary": "Incidents per grid, rate per 1,000 households, change, Gi* hot spots; "
                "with a live store also open and overdue cases (not closed within N working "
                "days)",
                "operationId": "stats-grids",
                "parameters": [
                    *filters,
                    param(
                        "period",
                        {"type": "string", "enum": ["D", "W", "M", "Q", "Y"]},
                        "Default window length.",
                    ),
                    param(
                        "compare",
                        {"type": "string", "enum": ["previous", "year"]},
                        "Compare with the previous equal window or the same window a year ago.",
                    ),
                    param(
                        "alpha",
                        {
                            "type": "number",
                            "minimum": 0,
                            "maximum": 1,
                            "exclusiveMinimum": True,
                            "exclusiveMaximum": True,
                        },
                        "Hot-spot significance level.",
                    ),
                ],
                "responses": {
                    "200": {"description": "one feature per grid", "content": GEOJSON},
                    "400": ERR,
                    "404": ERR,
                },
            }
        },
    }
