"""Point lookup: ``GET /locate`` (one point, latency) and ``POST /locate`` (batches)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gridgeo.serve.oas import ERR, JSON, LNGLAT, param
from gridgeo.serve.web import ServiceContext, context, json_response, query_params

__all__ = ["ALWAYS_ROUTED", "CONFORMANCE", "blueprint", "enabled", "paths"]

#: Register the routes even when :func:`enabled` is False.
ALWAYS_ROUTED = True
CONFORMANCE: list[str] = []  # not an OGC API; described in /api
_ID = {"oneOf": [{"type": "string"}, {"type": "number"}]}  # RFC 7946: string or number


def enabled(ctx: ServiceContext) -> bool:
    """Always: every workspace has zones to look up."""
    return True


def blueprint() -> Blueprint:
    """The lookup routes."""
    bp = Blueprint("lookup", __name__)

    @bp.get("/locate")
    def locate_get() -> Response:
        return json_response(*context().lookup.locate_get(query_params()))

    @bp.post("/locate")
    def locate_post() -> Response:
        accept = request.headers.get("Accept", "application/json")
        return json_response(
            *context().lookup.locate_post(
                request.get_data(cache=False), request.content_type or "", accept, query_params()
            )
        )

    return bp


def paths(ctx: ServiceContext, base: str) -> dict[str, Any]:
    """OpenAPI paths of ``/locate``."""
    errors = {"400": ERR, "404": ERR}
    crs_names = {"type": "string", "enum": ["wgs84", "cgcs2000", "gcj02", "bd09"]}
    names = param(
        "names",
        {"type": "string", "enum": ["true", "false"]},
        "Also answer the zones' names.",
    )
    point_object = {
        "type": "object",
        "description": "lng/lat, lon/lat, longitude/latitude or 经度/纬度, plus any other keys "
        "(echoed back, e.g. an id)",
        "additionalProperties": True,
    }
    return {
        "/locate": {
            "get": {
                "summary": "Grid, community, town, beat and department zones of a point",
                "operationId": "locate",
                "parameters": [
                    param(
                        "lng",
                        {"type": "number", "minimum": -180, "maximum": 180},
                        "Longitude.",
                        required=True,
                    ),
                    param(
                        "lat",
                        {"type": "number", "minimum": -90, "maximum": 90},
                        "Latitude.",
                        required=True,
                    ),
                    param("crs", crs_names, "CRS of lng/lat."),
                ],
                "responses": {"200": {"description": "zones", "content": JSON}, **errors},
            },
            "post": {
                "summary": "Batch lookup, answers in the same order, each point's id and other "
                "fields echoed",
                "operationId": "locate-batch",
                "parameters": [
                    param(
                        "crs",
                        crs_names,
                        "CRS of every body; a body's own 'crs' must be the same.",
                    ),
                    names,
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["points"],
                                "properties": {
                                    "crs": crs_names,
                                    "points": {
                                        "type": "array",
                                        "items": {"oneOf": [LNGLAT, point_object]},
                                    },
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
                                                "id": _ID,
                                                "properties": {
                                                    "type": "object",
                                                    "nullable": True,
                                                },
                                                "geometry": {
                                                    "type": "object",
                                                    "required": ["type", "coordinates"],
                                                    "properties": {
                                                        "type": {
                                                            "type": "string",
                                                            "enum": ["Point"],
                                                        },
                                                        "coordinates": LNGLAT,
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
                        "description": "zones per point (crs, count, layers, results, echo, "
                        "names)",
                        "content": {**JSON, "text/csv": {"schema": {"type": "string"}}},
                    },
                    "400": ERR,
                    "413": ERR,
                    "415": ERR,
                },
            },
        }
    }
