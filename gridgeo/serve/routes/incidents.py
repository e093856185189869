"""Ingestion (OGC API – Features Part 4) on ``/collections/incidents/items``.

``POST`` creates (a Feature, or a FeatureCollection as one transaction: a bulk
extension the standard leaves open), ``PATCH /…/items/{id}`` moves the status on.
Writes need the API key when one is configured (checked for every non-read
request by the app); reads stay public.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gridgeo.errors import InputError
from gridgeo.serve.incidents import CONFORMANCE as _PART4
from gridgeo.serve.oas import ERR, GEOJSON, LNGLAT, param
from gridgeo.serve.web import ServiceContext, base_url, context, json_response, query_params

__all__ = ["ALWAYS_ROUTED", "CONFORMANCE", "blueprint", "enabled", "paths"]

#: Register the routes even when :func:`enabled` is False.
ALWAYS_ROUTED = False  # routed only with a store (405 + Allow otherwise)
CONFORMANCE = list(_PART4)


def enabled(ctx: ServiceContext) -> bool:
    """When the service has an incident store."""
    return ctx.incidents is not None


def _service() -> Any:
    return context().incidents


def blueprint() -> Blueprint:
    """The ingestion routes."""
    bp = Blueprint("incidents", __name__)

    @bp.post("/collections/incidents/items")
    def create() -> Response:
        result = _service().create(
            request.get_data(cache=False),
            request.content_type or "",
            query_params(),
            request.headers.get("Content-Crs"),
            base_url(),
        )
        return json_response(*result)

    @bp.patch("/collections/incidents/items/<fid>")
    def update(fid: str) -> Response:
        extra = sorted(query_params())
        if extra:
            raise InputError(f"PATCH takes no query parameters; got {extra}")
        result = _service().update(
            fid, request.get_data(cache=False), request.content_type or "", base_url()
        )
        return json_response(*result)

    return bp


def paths(ctx: ServiceContext, base: str) -> dict[str, Any]:
    """OpenAPI operations of ingestion (merged into the incidents collection's paths)."""
    from gridgeo.io.store import STATUSES

    svc = ctx.incidents
    props = {
        "category": {"type": "string", "minLength": 1, "description": "事件类别 (required)"},
        "reported_at": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 with an offset; default: now",
        },
        "source": {"type": "string"},
        "description": {"type": "string"},
        "department": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
    }
    feature = {
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {
                "oneOf": [{"type": "string", "maxLength": 128}, {"type": "integer"}],
                "description": "the work-order number; re-sending it creates nothing",
            },
            "geometry": {
                "type": "object",
                "required": ["type", "coordinates"],
                "properties": {
                    "type": {"type": "string", "enum": ["Point"]},
                    "coordinates": LNGLAT,
                },
            },
            "properties": {"type": "object", "required": ["category"], "properties": props},
        },
    }
    collection = {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {
                "type": "array",
                "minItems": 1,
                "maxItems": svc.max_features,
                "items": feature,
            },
        },
    }
    crs = param(
        "crs",
        {"type": "string"},
        "CRS of the coordinates: gcj02 (phones), bd09, wgs84, cgcs2000 or EPSG:…; the "
        "Content-Crs header may say it instead (they must agree)",
    )
    content_crs = param(
        "Content-Crs", {"type": "string"}, "CRS URI of the coordinates.", where="header"
    )
    write_errors = {"400": ERR, "401": ERR, "413": ERR, "415": ERR}
    status_patch = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": list(STATUSES)},
            "at": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "/collections/incidents/items": {
            "post": {
                "summary": "Report incidents: each is located and routed, stored with its "
                "grid, community, town, beat and department-zone codes (Part 4 create; a "
                f"FeatureCollection of up to {svc.max_features} is one transaction)",
                "operationId": "create-incidents",
                "parameters": [crs, content_crs],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/geo+json": {"schema": {"oneOf": [feature, collection]}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "created (Location: the new feature)",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": GEOJSON,
                    },
                    "200": {"description": "already stored: nothing created", "content": GEOJSON},
                    **write_errors,
                },
            }
        },
        "/collections/incidents/items/{featureId}": {
            "patch": {
                "summary": "Move an incident's status on (受理 → 立案 → 派遣 → 处置 → 反馈 → "
                "核查 → 结案); closed_at is recorded",
                "operationId": "update-incident-status",
                "parameters": [
                    param(
                        "featureId", {"type": "string"}, "Work-order number.", where="path",
                        required=True,
                    )
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        kind: {"schema": status_patch}
                        for kind in ("application/merge-patch+json", "application/json")
                    },
                },
                "responses": {
                    "200": {"description": "the updated feature", "content": GEOJSON},
                    "404": ERR,
                    **write_errors,
                },
            }
        },
    }
