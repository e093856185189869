"""The OpenAPI 3.0 document of the service, generated from its collections."""

from __future__ import annotations

from typing import Any

from gridgeo.serve.features import ITEM_PARAMS, FeatureService

__all__ = ["openapi"]


def _param(
    name: str,
    schema: dict[str, Any],
    desc: str,
    *,
    where: str = "query",
    required: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": desc,
        "schema": schema,
        **extra,
    }


_HTML = {"text/html": {"schema": {"type": "string"}}}
_DAY = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])"
_INSTANT = _DAY + r"(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))?"
_DATETIME = rf"^({_INSTANT}|\.\.)(/({_INSTANT}|\.\.))?$"
# [lng, lat] or [lng, lat, height]; OpenAPI 3.0 has no tuples, so the latitude's
# narrower range (±90) is said in words only
_LNGLAT = {
    "type": "array",
    "minItems": 2,
    "maxItems": 3,
    "items": {"type": "number", "minimum": -180, "maximum": 180},
    "description": "[lng, lat] (lat within ±90), optionally with a height",
}
_JSON = {"application/json": {"schema": {"type": "object"}}}
_JSON_HTML = {**_JSON, **_HTML}
_GEOJSON = {"application/geo+json": {"schema": {"type": "object"}}}
_GEOJSON_HTML = {**_GEOJSON, **_HTML}
_EXCEPTION = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
    "required": ["code", "description"],
}
# errors are OGC exceptions (code, description), served as RFC 9457 problem details
_ERR = {
    "description": "error",
    "content": {
        "application/problem+json": {"schema": _EXCEPTION},
        "application/json": {"schema": _EXCEPTION},
    },
}


def openapi(
    features: FeatureService, base: str, *, categories: list[str] | None = None
) -> dict[str, Any]:
    """Build the OpenAPI document (every path, parameter and response the service has).

    ``categories`` are the incident categories of the heat-map endpoints (None: the
    service has no heat map, and the document omits them).
    """
    crs_schema = {"type": "string", "enum": features.crs_list}
    fmt = _param("f", {"type": "string", "enum": ["json", "html"]}, "Response format.")
    errors = {"400": _ERR, "404": _ERR}
    bad = {"400": _ERR}
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "Landing page",
                "operationId": "landing",
                "parameters": [fmt],
                "responses": {"200": {"description": "links", "content": _JSON_HTML}, **bad},
            }
        },
        "/api": {
            "get": {
                "summary": "This document",
                "operationId": "api",
                "responses": {"200": {"description": "OpenAPI", "content": _JSON}},
            }
        },
        "/conformance": {
            "get": {
                "summary": "Conformance classes",
                "operationId": "conformance",
                "parameters": [fmt],
                "responses": {"200": {"description": "classes", "content": _JSON_HTML}, **bad},
            }
        },
        "/collections": {
            "get": {
                "summary": "Collections",
                "operationId": "collections",
                "parameters": [fmt],
                "responses": {"200": {"description": "collections", "content": _JSON_HTML}, **bad},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "operationId": "healthz",
                "responses": {"200": {"description": "ok", "content": _JSON}},
            }
        },
    }
    for cid, c in features.collections.items():
        base_params = [
            _param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": features.max_limit, "default": 10},
                "Page size.",
            ),
            _param(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
                "Start.",
            ),
            _param(
                "bbox",
                {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
                "Bounding box: minx,miny,maxx,maxy (the data are 2D).",
                style="form",
                explode=False,
            ),
            _param("bbox-crs", crs_schema, "CRS of bbox."),
            _param("crs", crs_schema, "CRS of the response geometries."),
            fmt,
        ]
        if c.time_column:
            base_params.append(
                _param(
                    "datetime",
                    {"type": "string", "pattern": _DATETIME},
                    "RFC 3339 instant or interval (a/b, ../b, a/..).",
                )
            )
        for q in c.queryables:
            if q not in ITEM_PARAMS:
                base_params.append(_param(q, {"type": "string", "minLength": 1}, f"Filter on {q}."))
        paths[f"/collections/{cid}"] = {
            "get": {
                "summary": c.title,
                "operationId": f"describe-{cid}",
                "parameters": [fmt],
                "responses": {
                    "200": {"description": "collection", "content": _JSON_HTML},
                    **errors,
                },
            }
        }
        paths[f"/collections/{cid}/items"] = {
            "get": {
                "summary": f"Features of {c.title}",
                "operationId": f"items-{cid}",
                "parameters": base_params,
                "responses": {
                    "200": {"description": "features", "content": _GEOJSON_HTML},
                    **errors,
                },
            }
        }
        paths[f"/collections/{cid}/items/{{featureId}}"] = {
            "get": {
                "summary": f"One feature of {c.title}",
                "operationId": f"item-{cid}",
                "parameters": [
                    _param(
                        "featureId", {"type": "string"}, "Feature id.", where="path", required=True
                    ),
                    _param("crs", crs_schema, "CRS of the geometry."),
                    fmt,
                ],
                "responses": {
                    "200": {"description": "feature", "content": _GEOJSON_HTML},
                    **errors,
                },
            }
        }
    crs_names = {"type": "string", "enum": ["wgs84", "cgcs2000", "gcj02", "bd09"]}
    paths["/locate"] = {
        "get": {
            "summary": "Grid, community, town, beat and department zones of a point",
            "operationId": "locate",
            "parameters": [
                _param(
                    "lng",
                    {"type": "number", "minimum": -180, "maximum": 180},
                    "Longitude.",
                    required=True,
                ),
                _param(
                    "lat",
                    {"type": "number", "minimum": -90, "maximum": 90},
                    "Latitude.",
                    required=True,
                ),
                _param("crs", crs_names, "CRS of lng/lat."),
            ],
            "responses": {"200": {"description": "zones", "content": _JSON}, **errors},
        },
        "post": {
            "summary": "Batch lookup, answers in the same order",
            "operationId": "locate-batch",
            "parameters": [_param("crs", crs_names, "CRS (CSV bodies).")],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["points"],
                            "properties": {
                                "crs": crs_names,
                                "points": {"type": "array", "items": _LNGLAT},
                            },
                        }
                    },
                    "application/geo+json": {
                        "schema": {
                            "type": "object",
                            "required": ["type", "features"],
                            "properties": {
                                "type": {"type": "string", "enum": ["FeatureCollection"]},
                                "crs": crs_names,
                                "features": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["type", "geometry"],
                                        "properties": {
                                            "type": {"type": "string", "enum": ["Feature"]},
                                            "geometry": {
                                                "type": "object",
                                                "required": ["type", "coordinates"],
                                                "properties": {
                                                    "type": {"type": "string", "enum": ["Point"]},
                                                    "coordinates": _LNGLAT,
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        }
                    },
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "200": {
                    "description": "zones per point",
                    "content": {**_JSON, "text/csv": {"schema": {"type": "string"}}},
                },
                "400": _ERR,
                "413": _ERR,
                "415": _ERR,
            },
        },
    }
    if categories is not None:
        paths.update(_heatmap_paths(categories))
    return {
        "openapi": "3.0.3",
        "info": {
            "title": features.title,
            "version": "1.0",
            "description": "OGC API – Features and point lookup for grid-based governance",
        },
        "servers": [{"url": base or "/"}],
        "paths": paths,
    }


def _heatmap_paths(categories: list[str]) -> dict[str, Any]:
    """The heat-map page, its tiles and the per-grid statistics."""
    filters = [
        _param(
            "category",
            {"type": "string", "enum": categories},
            "Incident category (several: comma-separated).",
        ),
        _param("start", {"type": "string", "format": "date"}, "First day (inclusive)."),
        _param("end", {"type": "string", "format": "date"}, "Last day (inclusive, after start)."),
    ]
    xyz = [
        _param(n, {"type": "integer", "minimum": 0, "maximum": m}, d, where="path", required=True)
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
                    "200": {"description": "page", "content": _HTML},
                    "400": _ERR,
                    "404": _ERR,
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
                    "400": _ERR,
                    "404": _ERR,
                },
            }
        },
        "/stats/grids": {
            "get": {
                "summary": "Incidents per grid, rate per 1,000 households, change, Gi* hot spots",
                "operationId": "stats-grids",
                "parameters": [
                    *filters,
                    _param(
                        "period",
                        {"type": "string", "enum": ["D", "W", "M", "Q", "Y"]},
                        "Default window length.",
                    ),
                    _param(
                        "compare",
                        {"type": "string", "enum": ["previous", "year"]},
                        "Compare with the previous equal window or the same window a year ago.",
                    ),
                    _param(
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
                    "200": {"description": "one feature per grid", "content": _GEOJSON},
                    "400": _ERR,
                    "404": _ERR,
                },
            }
        },
    }
