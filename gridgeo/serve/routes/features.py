"""OGC API – Features (Parts 1 and 2): landing page, conformance, collections, items."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from gridgeo.serve.features import ITEM_PARAMS, StoreCollection
from gridgeo.serve.oas import DATETIME, ERR, GEOJSON_HTML, JSON_HTML, param
from gridgeo.serve.web import ServiceContext, base_url, context, query_params, reply, wants_html

__all__ = ["ALWAYS_ROUTED", "CONFORMANCE", "blueprint", "enabled", "paths"]

#: Register the routes even when :func:`enabled` is False.
ALWAYS_ROUTED = True
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]


def enabled(ctx: ServiceContext) -> bool:
    """Always: every workspace has collections."""
    return True


def blueprint() -> Blueprint:
    """The Features routes."""
    bp = Blueprint("features", __name__)

    @bp.get("/")
    def landing() -> Response:
        ctx, p = context(), query_params()
        body, status, headers = ctx.features.landing(base_url())
        if ctx.heatmap is not None:
            link = {
                "rel": "alternate",
                "type": "text/html",
                "title": "事件热力图 (incident heat map)",
                "href": base_url() + "/heatmap",
            }
            body = {**body, "links": [*body["links"], link]}
        return reply((body, status, headers), wants_html(p), "gridgeo")

    @bp.get("/conformance")
    def conformance() -> Response:
        p = query_params()
        return reply(({"conformsTo": context().conformance}, 200, {}), wants_html(p), "Conformance")

    @bp.get("/collections")
    def collections() -> Response:
        p = query_params()
        return reply(context().features.collections_doc(base_url()), wants_html(p), "Collections")

    @bp.get("/collections/<cid>")
    def collection(cid: str) -> Response:
        p = query_params()
        return reply(context().features.collection_doc(cid, base_url()), wants_html(p), cid)

    @bp.get("/collections/<cid>/items")
    def items(cid: str) -> Response:
        p = query_params()
        html = wants_html(p)
        return reply(context().features.items(cid, p, base_url()), html, f"{cid} items")

    @bp.get("/collections/<cid>/items/<fid>")
    def item(cid: str, fid: str) -> Response:
        p = query_params()
        html = wants_html(p)
        return reply(context().features.item(cid, fid, p, base_url()), html, f"{cid} {fid}")

    return bp


def paths(ctx: ServiceContext, base: str) -> dict[str, Any]:
    """OpenAPI paths of the Features routes, one set per collection."""
    features = ctx.features
    crs_schema = {"type": "string", "enum": features.crs_list}
    fmt = param("f", {"type": "string", "enum": ["json", "html"]}, "Response format.")
    errors = {"400": ERR, "404": ERR}
    bad = {"400": ERR}
    out: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "Landing page",
                "operationId": "landing",
                "parameters": [fmt],
                "responses": {"200": {"description": "links", "content": JSON_HTML}, **bad},
            }
        },
        "/conformance": {
            "get": {
                "summary": "Conformance classes",
                "operationId": "conformance",
                "parameters": [fmt],
                "responses": {"200": {"description": "classes", "content": JSON_HTML}, **bad},
            }
        },
        "/collections": {
            "get": {
                "summary": "Collections",
                "operationId": "collections",
                "parameters": [fmt],
                "responses": {"200": {"description": "collections", "content": JSON_HTML}, **bad},
            }
        },
    }
    for cid, c in features.collections.items():
        base_params = [
            param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": features.max_limit, "default": 10},
                "Page size.",
            ),
            param(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
                "Start.",
            ),
            param(
                "bbox",
                {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
                "Bounding box: minx,miny,maxx,maxy (the data are 2D).",
                style="form",
                explode=False,
            ),
            param("bbox-crs", crs_schema, "CRS of bbox."),
            param("crs", crs_schema, "CRS of the response geometries."),
            fmt,
        ]
        if c.time_column:
            base_params.append(
                param(
                    "datetime",
                    {"type": "string", "pattern": DATETIME},
                    "RFC 3339 instant or interval (a/b, ../b, a/..).",
                )
            )
        for q in c.queryables:
            if q not in ITEM_PARAMS:
                base_params.append(param(q, {"type": "string", "minLength": 1}, f"Filter on {q}."))
        live = " (live: read from the incident store)" if isinstance(c, StoreCollection) else ""
        out[f"/collections/{cid}"] = {
            "get": {
                "summary": c.title,
                "operationId": f"describe-{cid}",
                "parameters": [fmt],
                "responses": {"200": {"description": "collection", "content": JSON_HTML}, **errors},
            }
        }
        out[f"/collections/{cid}/items"] = {
            "get": {
                "summary": f"Features of {c.title}{live}",
                "operationId": f"items-{cid}",
                "parameters": base_params,
                "responses": {
                    "200": {"description": "features", "content": GEOJSON_HTML},
                    **errors,
                },
            }
        }
        out[f"/collections/{cid}/items/{{featureId}}"] = {
            "get": {
                "summary": f"One feature of {c.title}",
                "operationId": f"item-{cid}",
                "parameters": [
                    param(
                        "featureId", {"type": "string"}, "Feature id.", where="path", required=True
                    ),
                    param("crs", crs_schema, "CRS of the geometry."),
                    fmt,
                ],
                "responses": {"200": {"description": "feature", "content": GEOJSON_HTML}, **errors},
            }
        }
    return out
