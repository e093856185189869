"""Plan versions: the grids at a date (OGC ``datetime``), the plans, the grid changes.

Its routes are static paths (``/collections/grids/items``, ``/collections/plans/…``,
``/collections/grid-changes/…``), which the router prefers to the Features routes'
``/collections/<cid>/…``. Without ``datetime`` the grids routes answer exactly as
the Features core does (today's ``grids`` layer).
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, Response

from gridgeo.errors import NotFound
from gridgeo.serve.oas import DATETIME, ERR, GEOJSON_HTML, param
from gridgeo.serve.web import ServiceContext, base_url, context, query_params, reply, wants_html

__all__ = ["ALWAYS_ROUTED", "CONFORMANCE", "blueprint", "enabled", "paths"]

#: Register the routes even when :func:`enabled` is False (the grids routes then defer to
#: the Features core; the plans routes say why there are no plans).
ALWAYS_ROUTED = True
CONFORMANCE: list[str] = []

DATETIME_DOC = (
    "The base grids in force then (plan versions). An instant (a day, or an RFC 3339 "
    "date-time read as its day in China, UTC+8) gives the grids of the one base plan in "
    "force that day; an interval a/b, ../b or a/.. (both ends inclusive) gives the grids "
    "of every base plan in force on at least one of its days, a grid's id then being "
    "code@plan_id. Each feature carries plan_id, valid_from and valid_to (exclusive). A "
    "day without a plan in force matches nothing: an empty FeatureCollection. Without "
    "datetime: today's grids layer."
)


def enabled(ctx: ServiceContext) -> bool:
    """When the service reads a workspace file (its plans, or its grids as one legacy plan)."""
    return getattr(ctx, "plans", None) is not None


def _service() -> Any:
    plans = getattr(context(), "plans", None)
    if plans is None:
        raise NotFound(
            "this service has no plan versions: it serves layers given in memory, not a "
            "workspace file (serve one with --data WORKSPACE.gpkg)"
        )
    return plans


def blueprint() -> Blueprint:
    """The plan routes."""
    bp = Blueprint("plans", __name__)

    @bp.get("/collections/grids/items")
    def grids_items() -> Response:
        ctx, p = context(), query_params()
        html = wants_html(p)
        if "datetime" in p and getattr(ctx, "plans", None) is not None:
            result = ctx.plans.grids_items(p, base_url())
        else:
            result = ctx.features.items("grids", p, base_url())
        return reply(result, html, "grids items")

    @bp.get("/collections/grids/items/<fid>")
    def grids_item(fid: str) -> Response:
        ctx, p = context(), query_params()
        html = wants_html(p)
        plans = getattr(ctx, "plans", None)
        if plans is not None and ("datetime" in p or "@" in fid):
            result = plans.grids_item(fid, p, base_url())
        else:
            result = ctx.features.item("grids", fid, p, base_url())
        return reply(result, html, f"grids {fid}")

    @bp.get("/collections/plans/items")
    def plans_items() -> Response:
        p = query_params()
        html = wants_html(p)
        return reply(_service().plans_items(p, base_url()), html, "plans items")

    @bp.get("/collections/plans/items/<plan_id>")
    def plans_item(plan_id: str) -> Response:
        p = query_params()
        html = wants_html(p)
        return reply(_service().plans_item(plan_id, p, base_url()), html, f"plan {plan_id}")

    @bp.get("/collections/grid-changes/items")
    def changes_items() -> Response:
        p = query_params()
        html = wants_html(p)
        return reply(_service().changes_items(p, base_url()), html, "grid changes")

    @bp.get("/collections/grid-changes/items/<fid>")
    def changes_item(fid: str) -> Response:
        p = query_params()
        html = wants_html(p)
        return reply(_service().changes_item(fid, p, base_url()), html, f"grid change {fid}")

    return bp


def _page_params(ctx: ServiceContext) -> list[dict[str, Any]]:
    crs_schema = {"type": "string", "enum": ctx.features.crs_list}
    return [
        param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": ctx.features.max_limit, "default": 10},
            "Page size.",
        ),
        param(
            "offset", {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0}, "Start."
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
        param("f", {"type": "string", "enum": ["json", "html"]}, "Response format."),
    ]


def paths(ctx: ServiceContext, base: str) -> dict[str, Any]:
    """OpenAPI paths: ``datetime`` on the grids, the plans and grid-changes items."""
    from gridgeo.serve.routes import features

    out: dict[str, Any] = {}
    errors = {"400": ERR, "404": ERR}
    datetime = param("datetime", {"type": "string", "pattern": DATETIME}, DATETIME_DOC)
    generic = features.paths(ctx, base)
    for path in ("/collections/grids/items", "/collections/grids/items/{featureId}"):
        if path not in generic:
            continue
        op = copy.deepcopy(generic[path]["get"])
        op["parameters"].append(datetime)
        if path.endswith("{featureId}"):
            op["parameters"][-1] = param(
                "datetime",
                {"type": "string", "pattern": DATETIME},
                "An instant: the grid of this code in the base plan in force then (an id "
                "code@plan_id names its plan and needs no datetime).",
            )
        op["responses"] = {"200": op["responses"]["200"], **errors}
        out[path] = {"get": op}
    page = _page_params(ctx)
    plan_or_day = (
        "A plan id (see /collections/plans/items) or a day YYYY-MM-DD (the plan of 'level' "
        "in force then)."
    )
    level = param(
        "level",
        {"type": "string", "enum": ["base", "business"], "default": "base"},
        "Level of the plans a day stands for in from/to.",
    )
    fid = param("featureId", {"type": "string"}, "Feature id.", where="path", required=True)
    out["/collections/plans/items"] = {
        "get": {
            "summary": "Plan versions of the grids: one feature per plan (its extent)",
            "operationId": "items-plans",
            "parameters": [
                *page,
                param(
                    "datetime",
                    {"type": "string", "pattern": DATETIME},
                    "Only the adopted plans (base and business) in force on at least one "
                    "day of this instant or interval (both ends inclusive).",
                ),
                *(
                    param(q, {"type": "string", "minLength": 1}, f"Filter on {q}.")
                    for q in ("plan_id", "name", "level", "status", "base_plan")
                ),
            ],
            "responses": {"200": {"description": "plans", "content": GEOJSON_HTML}, **errors},
        }
    }
    out["/collections/plans/items/{featureId}"] = {
        "get": {
            "summary": "One plan",
            "operationId": "item-plans",
            "parameters": [fid, page[4], page[5]],
            "responses": {"200": {"description": "plan", "content": GEOJSON_HTML}, **errors},
        }
    }
    pair = [
        param("from", {"type": "string", "minLength": 1}, "Old plan. " + plan_or_day,
              required=True),
        param("to", {"type": "string", "minLength": 1}, "New plan. " + plan_or_day,
              required=True),
        level,
    ]  # fmt: skip
    out["/collections/grid-changes/items"] = {
        "get": {
            "summary": "Grid changes between two plans: the crosswalk, one row per old and new "
            "grid sharing ground (the shared piece as geometry), with area_m2, "
            "area_share_old, area_share_new, households and population moved, and the change "
            "label of the old grid (unchanged, recoded, split, merged, redrawn, retired)",
            "operationId": "items-grid-changes",
            "parameters": [
                *pair,
                *page,
                *(
                    param(q, {"type": "string", "minLength": 1}, f"Filter on {q}.")
                    for q in ("old_code", "new_code", "change")
                ),
            ],
            "responses": {"200": {"description": "rows", "content": GEOJSON_HTML}, **errors},
        }
    }
    out["/collections/grid-changes/items/{featureId}"] = {
        "get": {
            "summary": "One row of the grid changes: id old_code~new_code ('' for a side "
            "outside every grid)",
            "operationId": "item-grid-changes",
            "parameters": [fid, *pair, page[4], page[5]],
            "responses": {"200": {"description": "row", "content": GEOJSON_HTML}, **errors},
        }
    }
    return out
