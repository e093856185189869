"""Flask application factory: routes parse the request, call the core, serialise.

Nothing is loaded at import; :func:`create_app` reads the workspace and builds
(or loads) the locator once. What start-up does not need waits for first use:
the heat-map index is built on the first heat-map request (unless
``ServiceConfig.preload_heatmap``), and :func:`warm_up` loads the compiled lookup
kernels, which the server runs in each worker once it accepts requests.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, request, send_from_directory
from werkzeug.exceptions import HTTPException

from gridgeo.errors import GridGeoError, NotFound, Unauthorized
from gridgeo.serve.config import ServiceConfig, default_data_path
from gridgeo.serve.features import FeatureService
from gridgeo.serve.heatmap import HeatmapService
from gridgeo.serve.lookup import LookupService
from gridgeo.serve.openapi import openapi
from gridgeo.serve.pages import html_response, prefers_html, to_html

__all__ = ["SERVED_LAYERS", "create_app", "load_layers", "warm_up"]

log = logging.getLogger(__name__)


#: The workspace layers the service serves or looks up in; the others (buildings,
#: streets, …) are not read at start-up.
SERVED_LAYERS = ("grids", "communities", "towns", "beats", "zones", "incidents")


def load_layers(config: ServiceConfig) -> dict[str, Any]:
    """The workspace layers the service serves: ``config.data``, the bundled demo, or a new demo.

    Only :data:`SERVED_LAYERS` are read from a file.

    Examples
    --------
    >>> sorted(load_layers(ServiceConfig()))  # the bundled demo workspace
    ['beats', 'communities', 'grids', 'incidents', 'towns', 'zones']
    """
    path = config.data or default_data_path()
    if path is not None:
        from gridgeo.io import read_workspace

        return read_workspace(path, only=SERVED_LAYERS)
    from gridgeo.datasets import demo_county

    log.warning("no workspace file given or bundled; serving a demo county built in memory")
    return demo_county(seed=0)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    ctype = headers.pop("Content-Type", "application/json")
    if isinstance(body, str):
        return Response(body, status=status, headers=headers, content_type=ctype)
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(text, status=status, headers=headers, content_type=ctype)


def _problem(status: int, code: str, description: str) -> Response:
    body = {
        "code": code,
        "description": description,
        "type": "about:blank",
        "title": code,
        "status": status,
        "detail": description,
    }
    return _json(body, status, {"Content-Type": "application/problem+json"})


def create_app(
    config: ServiceConfig | None = None,
    *,
    layers: dict[str, Any] | None = None,
    locator: Any = None,
) -> Flask:
    """Build the service.

    Parameters
    ----------
    config
        Service settings (default: :meth:`ServiceConfig.from_env`).
    layers
        Workspace layers to serve instead of reading ``config.data``.
    locator
        A ready :class:`~gridgeo.assign.Locator` (else loaded from
        ``config.locator`` or built from the layers).

    Returns
    -------
    flask.Flask
    """
    from gridgeo.assign import Locator

    config = config or ServiceConfig.from_env()
    t0 = time.perf_counter()
    layers = layers if layers is not None else load_layers(config)
    if locator is None:
        locator = Locator.load(config.locator) if config.locator else Locator.from_workspace(layers)
    features = FeatureService(layers, max_limit=config.max_limit, title="gridgeo 网格化服务管理")
    lookup = LookupService(locator, max_batch=config.max_batch)
    heat = (
        HeatmapService(layers, basemap=config.basemap, locator=locator)
        if "incidents" in layers and "grids" in layers
        else None
    )
    if heat is not None and config.preload_heatmap:
        heat.prepare()
    log.info("service ready in %.2f s", time.perf_counter() - t0)

    app = Flask("gridgeo.serve")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["GRIDGEO"] = {
        "config": config,
        "features": features,
        "lookup": lookup,
        "layers": layers,
        "locator": locator,
        "heatmap": heat,
    }

    def base() -> str:
        return request.url_root.rstrip("/")

    def params() -> dict[str, str]:
        dup = [k for k in request.args if len(request.args.getlist(k)) > 1]
        if dup:
            raise GridGeoErrorBadRequest(f"parameter(s) {dup} given more than once")
        return request.args.to_dict()

    def wants_html(p: dict[str, str]) -> bool:
        f = p.pop("f", None)
        if f not in (None, "json", "html"):
            raise GridGeoErrorBadRequest(f"parameter 'f' must be 'json' or 'html', got {f!r}")
        if f is not None:
            return f == "html"
        return prefers_html(request.headers.get("Accept"))

    def reply(result: tuple[Any, int, dict[str, str]], html: bool, title: str) -> Response:
        body, status, headers = result
        if html:
            page, status, headers = html_response(result, title, root=base())
            return Response(page, status=status, headers=headers)
        return _json(body, status, headers)

    @app.before_request
    def guard() -> None:
        if not config.api_key:
            return
        protected = request.method not in ("GET", "HEAD", "OPTIONS") or (
            config.protect_locate and request.path.startswith("/locate")
        )
        if not protected:
            return
        given = request.headers.get("X-API-Key", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = given or auth[7:]
        if not hmac.compare_digest(given.encode(), config.api_key.encode()):
            raise Unauthorized("a valid API key is required (X-API-Key or Authorization: Bearer)")

    @app.after_request
    def cors(resp: Response) -> Response:
        origin = request.headers.get("Origin")
        allowed = config.cors_origins
        if origin and allowed and ("*" in allowed or origin in allowed):
            resp.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
            resp.headers["Access-Control-Allow-Headers"] = "Content-Type, X-API-Key, Authorization"
            resp.headers["Vary"] = "Origin"
        return resp

    @app.errorhandler(GridGeoError)
    def on_error(err: GridGeoError) -> Response:
        return _problem(err.status, err.code, str(err))

    @app.errorhandler(HTTPException)
    def on_http(err: HTTPException) -> Response:
        code = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}.get(
            err.code or 500, "HTTPError"
        )
        desc = err.description or err.name
        if err.code == 413:
            desc = f"request body larger than {config.max_body_bytes} bytes"
        resp = _problem(err.code or 500, code, desc)
        allow = getattr(err, "valid_methods", None)
        if err.code == 405 and allow:  # RFC 9110: a 405 lists the methods that are allowed
            resp.headers["Allow"] = ", ".join(sorted(allow))
        return resp

    @app.errorhandler(Exception)
    def on_bug(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _problem(500, "ServerError", "internal error; it has been logged")

    @app.get("/")
    def landing() -> Response:
        p = params()
        body, status, headers = features.landing(base())
        if heat is not None:
            body = {
                **body,
                "links": [
                    *body["links"],
                    {
                        "rel": "alternate",
                        "type": "text/html",
                        "title": "事件热力图 (incident heat map)",
                        "href": base() + "/heatmap",
                    },
                ],
            }
        return reply((body, status, headers), wants_html(p), "gridgeo")

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/api")
    def api() -> Response:
        return _json(
            openapi(features, base(), categories=heat.categories if heat else None),
            200,
            {"Content-Type": "application/vnd.oai.openapi+json;version=3.0"},
        )

    @app.get("/api.html")
    def api_html() -> Response:
        return Response(
            to_html(
                openapi(features, base(), categories=heat.categories if heat else None)["paths"],
                "gridgeo API",
            ),
            content_type="text/html; charset=utf-8",
        )

    @app.get("/conformance")
    def conformance() -> Response:
        p = params()
        return reply(features.conformance(), wants_html(p), "Conformance")

    @app.get("/collections")
    def collections() -> Response:
        p = params()
        return reply(features.collections_doc(base()), wants_html(p), "Collections")

    @app.get("/collections/<cid>")
    def collection(cid: str) -> Response:
        p = params()
        return reply(features.collection_doc(cid, base()), wants_html(p), cid)

    @app.get("/collections/<cid>/items")
    def items(cid: str) -> Response:
        p = params()
        html = wants_html(p)
        return reply(features.items(cid, p, base()), html, f"{cid} items")

    @app.get("/collections/<cid>/items/<fid>")
    def item(cid: str, fid: str) -> Response:
        p = params()
        html = wants_html(p)
        return reply(features.item(cid, fid, p, base()), html, f"{cid} {fid}")

    @app.get("/locate")
    def locate_get() -> Response:
        return _json(*lookup.locate_get(params()))

    @app.post("/locate")
    def locate_post() -> Response:
        accept = request.headers.get("Accept", "application/json")
        return _json(
            *lookup.locate_post(
                request.get_data(cache=False), request.content_type or "", accept, params()
            )
        )

    static = Path(__file__).parent / "static"

    def heatmap_service() -> HeatmapService:
        if heat is None:
            raise NotFound("this workspace has no incidents (or no grids): no heat map")
        return heat

    @app.get("/heatmap")
    def heatmap_page() -> Response:
        body, status, headers = heatmap_service().page(params())
        return Response(body, status=status, headers=headers)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return send_from_directory(static, "favicon.ico", max_age=86400)

    @app.get("/heatmap/static/<path:name>")
    def heatmap_static(name: str) -> Response:
        # send_from_directory refuses paths that leave the folder
        resp = send_from_directory(static, name, max_age=86400)
        return resp

    @app.get("/heatmap/tiles/<int:z>/<int:x>/<int:y>.png")
    def heatmap_tile(z: int, x: int, y: int) -> Response:
        body, status, headers = heatmap_service().tile(
            z, x, y, params(), request.headers.get("If-None-Match")
        )
        return Response(body, status=status, headers=headers)

    @app.get("/stats/grids")
    def stats_grids() -> Response:
        return _json(*heatmap_service().stats(params()))

    return app


def warm_up(app: Flask) -> float:
    """Load the lookup kernels of the app's locator, so that later requests find them loaded.

    A process's first lookups load numba and the compiled kernels (a fixed cost
    of about half a second, whatever the data). The server calls this in a
    background thread of each worker once it accepts requests. Meanwhile
    ``GET /locate`` answers with shapely (the same answers) and ``POST /locate``
    waits for the load instead of starting it.

    Parameters
    ----------
    app
        An app from :func:`create_app`.

    Returns
    -------
    float
        Seconds it took.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["G1"], "name": ["一网格"]},
    ...     geometry=[shapely.box(114.9, 25.3, 115.0, 25.4)], crs="EPSG:4490")
    >>> warm_up(create_app(ServiceConfig(), layers={"grids": grids})) >= 0
    True
    """
    took = float(app.config["GRIDGEO"]["locator"].warm_up())
    log.info("lookup kernels loaded in %.2f s", took)
    return took


class GridGeoErrorBadRequest(GridGeoError):
    """A malformed request (duplicate or badly formed parameter)."""

    status = 400
    code = "InvalidParameterValue"
