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


_JSON = {"application/json": {"schema": {"type": "object"}}}
_GEOJSON = {"application/geo+json": {"schema": {"type": "object"}}}
_ERR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
                "required": ["code", "description"],
            }
        }
    },
}


def openapi(features: FeatureService, base: str) -> dict[str, Any]:
    """Build the OpenAPI document (every path, parameter and response the service has)."""
    crs_schema = {"type": "string", "enum": features.crs_list}
    fmt = _param("f", {"type": "string", "enum": ["json", "html"]}, "Response format.")
    errors = {"400": _ERR, "404": _ERR}
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "Landing page",
                "operationId": "landing",
                "parameters": [fmt],
                "responses": {"200": {"description": "links", "content": _JSON}},
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
                "responses": {"200": {"description": "classes", "content": _JSON}},
            }
        },
        "/collections": {
            "get": {
                "summary": "Collections",
                "operationId": "collections",
                "parameters": [fmt],
                "responses": {"200": {"description": "collections", "content": _JSON}},
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
            _param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Start."),
            _param(
                "bbox",
                {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
                "Bounding box.",
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
                    {"type": "string"},
                    "RFC 3339 instant or interval (a/b, ../b, a/..).",
                )
            )
        for q in c.queryables:
            if q not in ITEM_PARAMS:
                base_params.append(_param(q, {"type": "string"}, f"Filter on {q}."))
        paths[f"/collections/{cid}"] = {
            "get": {
                "summary": c.title,
                "operationId": f"describe-{cid}",
                "parameters": [fmt],
                "responses": {"200": {"description": "collection", "content": _JSON}, **errors},
            }
        }
        paths[f"/collections/{cid}/items"] = {
            "get": {
                "summary": f"Features of {c.title}",
                "operationId": f"items-{cid}",
                "parameters": base_params,
                "responses": {"200": {"description": "features", "content": _GEOJSON}, **errors},
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
                "responses": {"200": {"description": "feature", "content": _GEOJSON}, **errors},
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
                            "properties": {
                                "crs": crs_names,
                                "points": {
                                    "type": "array",
                                    "items": {
                                        "type": "array",
                                        "items": {"type": "number"},
                                        "minItems": 2,
                                    },
                                },
                            },
                        }
                    },
                    "application/geo+json": {"schema": {"type": "object"}},
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
