"""The OpenAPI 3.0 document of the service: the app's own paths plus each core's."""

from __future__ import annotations

from typing import Any

from gridgeo.serve.oas import JSON
from gridgeo.serve.web import ServiceContext

__all__ = ["openapi"]


def openapi(ctx: ServiceContext, base: str) -> dict[str, Any]:
    """Build the OpenAPI document (every path, parameter and response the service has).

    Each enabled core of :mod:`gridgeo.serve.routes` adds its own paths; two
    cores describing different methods of one path are merged.
    """
    from gridgeo.serve.routes import cores

    paths: dict[str, Any] = {
        "/api": {
            "get": {
                "summary": "This document",
                "operationId": "api",
                "responses": {"200": {"description": "OpenAPI", "content": JSON}},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness; ``warm`` says this worker has loaded its lookup kernels",
                "operationId": "healthz",
                "responses": {"200": {"description": "ok", "content": JSON}},
            }
        },
        "/favicon.ico": {
            "get": {
                "summary": "The service's icon",
                "operationId": "favicon",
                "responses": {
                    "200": {
                        "description": "icon",
                        "content": {"image/vnd.microsoft.icon": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    for core in cores():
        if not core.enabled(ctx):
            continue
        for path, ops in core.paths(ctx, base).items():
            paths.setdefault(path, {}).update(ops)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": ctx.features.title,
            "version": "1.0",
            "description": "OGC API – Features (with Part 4 ingestion of incidents), point "
            "lookup and heat maps for grid-based governance",
        },
        "servers": [{"url": base or "/"}],
        "paths": paths,
    }
