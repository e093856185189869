"""Flask application factory: routes parse the request, call the core, serialise.

Nothing is loaded at import; :func:`create_app` reads the workspace and builds
(or loads) the locator once. What start-up does not need waits for first use:
the heat-map index is built on the first heat-map request (unless
``ServiceConfig.preload_heatmap``), and :func:`warm_up` loads the compiled lookup
kernels, which the server runs in each worker once it accepts requests.
"""

from __future__ import annotations

import hmac
import logging
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from gridgeo.errors import GridGeoError, Unauthorized
from gridgeo.serve.config import ServiceConfig, default_data_path

__all__ = ["SERVED_LAYERS", "create_app", "load_layers", "open_service_store", "warm_up"]

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

        # with a store (the workspace itself by default) incidents are read from it, live
        live = _store_target(config, warn=False)
        return read_workspace(
            path, only=tuple(n for n in SERVED_LAYERS if not (live and n == "incidents"))
        )
    from gridgeo.datasets import demo_county

    log.warning("no workspace file given or bundled; serving a demo county built in memory")
    return demo_county(seed=0)


#: The demo workspace bundled with the source: served read-only, never migrated into a store.
BUNDLED_DEMO = Path(__file__).resolve().parents[2] / "data" / "demo.gpkg"


def _store_target(config: ServiceConfig, *, warn: bool) -> str | None:
    """Where the service's incident store is: ``config.store``, else the workspace."""
    target = config.store or (str(config.data) if config.data else None)
    if target is not None and not config.store and Path(target).resolve() == BUNDLED_DEMO:
        if warn:
            log.warning(
                "serving the bundled demo %s read-only (no incident store, POST is refused); "
                "copy it (cp data/demo.gpkg county.gpkg) and serve the copy to take reports",
                BUNDLED_DEMO,
            )
        return None
    return target


def open_service_store(config: ServiceConfig) -> Any:
    """The incident store the service writes to, or None (see ``ServiceConfig.store``).

    The workspace itself is the store unless ``config.store`` names another;
    the bundled demo (``data/demo.gpkg`` of the source tree) is not written to:
    serve a copy of it to take reports.
    """
    target = _store_target(config, warn=True)
    if target is None:
        return None
    from gridgeo.io.store import open_store

    return open_store(target)


def create_app(
    config: ServiceConfig | None = None,
    *,
    layers: dict[str, Any] | None = None,
    locator: Any = None,
    store: Any = None,
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
    store
        A ready :class:`~gridgeo.io.store.IncidentStore` (else opened from
        ``config.store``, or the workspace ``config.data``). With a store, the
        ``incidents`` collection, the heat map and the statistics are live and
        ``POST /collections/incidents/items`` takes reports.

    Returns
    -------
    flask.Flask
    """
    from gridgeo.assign import Locator
    from gridgeo.serve.routes import cores
    from gridgeo.serve.routes.heatmap import static_blueprint

    config = config or ServiceConfig.from_env()
    t0 = time.perf_counter()
    # plan versions are read (on first use) from the workspace file the layers come from
    plans_from = config.data or (default_data_path() if layers is None else None)
    layers = layers if layers is not None else load_layers(config)
    if locator is None:
        locator = Locator.load(config.locator) if config.locator else Locator.from_workspace(layers)
    if store is None:
        store = open_service_store(config)
    ctx = _context(config, layers, locator, store, plans_from=plans_from)
    if ctx.heatmap is not None and config.preload_heatmap:
        ctx.heatmap.prepare()
    log.info("service ready in %.2f s", time.perf_counter() - t0)

    app = Flask("gridgeo.serve")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.extensions["gridgeo"] = ctx
    for core in cores():
        if core.enabled(ctx) or core.ALWAYS_ROUTED:
            app.register_blueprint(core.blueprint())
        if core.enabled(ctx):
            ctx.conformance.extend(core.CONFORMANCE)
    app.register_blueprint(static_blueprint())
    _service_routes(app, ctx)
    return app


def _context(
    config: ServiceConfig,
    layers: dict[str, Any],
    locator: Any,
    store: Any,
    *,
    plans_from: str | Path | None = None,
) -> Any:
    """Build the cores over the layers, the locator and the store (and the plans' file)."""
    from gridgeo.serve.features import FeatureService
    from gridgeo.serve.heatmap import HeatmapService
    from gridgeo.serve.incidents import IncidentService
    from gridgeo.serve.lookup import LookupService
    from gridgeo.serve.web import ServiceContext

    features = FeatureService(
        layers,
        max_limit=config.max_limit,
        title="gridgeo 网格化服务管理",
        stores={"incidents": store} if store is not None else None,
    )
    live = heat = incidents = None
    if store is not None:
        from gridgeo.analyze.deadlines import WorkCalendar
        from gridgeo.analyze.live import LiveIncidents

        incidents = IncidentService(store, locator, max_features=config.max_features)
        if "grids" in layers:
            live = LiveIncidents(
                store,
                grids=layers["grids"],
                locator=locator,
                interval=config.live_interval,
                calendar=WorkCalendar(holidays=config.holidays, workdays=config.workdays),
                days=config.overdue_days,
            )
    plans = _plan_service(plans_from, features) if "grids" in layers else None
    if "grids" in layers and (live is not None or "incidents" in layers):
        heat = HeatmapService(
            layers, basemap=config.basemap, locator=locator, live=live, plans=plans
        )
    return ServiceContext(
        config=config,
        layers=layers,
        locator=locator,
        features=features,
        lookup=LookupService(locator, max_batch=config.max_batch),
        heatmap=heat,
        incidents=incidents,
        live=live,
        store=store,
        plans=plans,
    )


def _plan_service(path: str | Path | None, features: Any) -> Any:
    """The plan versions of the workspace file (read on first use, again when they change),
    listed as collections."""
    if path is None or not Path(path).exists():
        return None
    from gridgeo.serve.plans import PlanService

    def load() -> list[Any]:
        from gridgeo.io import read_plans

        return read_plans(path)

    def units() -> Any:
        from gridgeo.io import _gpkg_read
        from gridgeo.io.workspace import read_workspace, validate_workspace

        try:
            if _gpkg_read.layers(path) is not None:  # beside the live store: sqlite3, not GDAL
                found = {"buildings": _gpkg_read.read_table(path, "buildings")}
                return validate_workspace(found, layers=["buildings"], what=str(path))["buildings"]
            return read_workspace(path, only=("buildings",)).get("buildings")
        except GridGeoError as err:  # no buildings: the crosswalk moves no households
            log.warning("grid changes without households: %s", err)
            return None

    def version() -> Any:  # checked every few seconds: an adopted plan is served without restart
        from gridgeo.io import plans_version

        return plans_version(path)

    plans = PlanService(features, load=load, units=units, version=version)
    for collection in plans.collections(features.collection("grids").extent):
        features.add(collection)
    return plans


def _service_routes(app: Flask, ctx: Any) -> None:
    """What belongs to the service as a whole: auth, CORS, errors, /api, /healthz."""
    from gridgeo.serve.openapi import openapi
    from gridgeo.serve.pages import to_html
    from gridgeo.serve.web import base_url, json_response, problem

    config = ctx.config

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
            resp.headers["Access-Control-Allow-Headers"] = (
                "Content-Type, Content-Crs, X-API-Key, Authorization"
            )
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, OPTIONS"
            resp.vary.add("Origin")
        return resp

    @app.errorhandler(GridGeoError)
    def on_error(err: GridGeoError) -> Response:
        resp = problem(err.status, err.code, str(err))
        resp.headers.update(getattr(err, "headers", None) or {})
        return resp

    @app.errorhandler(HTTPException)
    def on_http(err: HTTPException) -> Response:
        code = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}.get(
            err.code or 500, "HTTPError"
        )
        desc = err.description or err.name
        if err.code == 413:
            desc = f"request body larger than {config.max_body_bytes} bytes"
        resp = problem(err.code or 500, code, desc)
        allow = getattr(err, "valid_methods", None)
        if err.code == 405 and allow:  # RFC 9110: a 405 lists the methods that are allowed
            resp.headers["Allow"] = ", ".join(sorted(allow))
        return resp

    if ctx.incidents is None:

        @app.errorhandler(405)
        def no_store(err: HTTPException) -> Response:
            if request.path.startswith("/collections/incidents/items") and request.method in (
                "POST",
                "PATCH",
            ):
                err.description = (
                    "this service has no incident store, so it cannot take reports: serve a "
                    "workspace with --data WORKSPACE.gpkg (the workspace is the store) or "
                    "give --store postgresql://…"
                )
            return on_http(err)

    @app.errorhandler(Exception)
    def on_bug(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "ServerError", "internal error; it has been logged")

    @app.get("/healthz")
    def healthz() -> Response:
        # ``warm``: this worker has loaded its lookup kernels (it answers before, only
        # slower): a load balancer's readiness check, and what a benchmark waits for
        return json_response({"status": "ok", "warm": ctx.warm})

    @app.get("/api")
    def api() -> Response:
        return json_response(
            openapi(ctx, base_url()),
            200,
            {"Content-Type": "application/vnd.oai.openapi+json;version=3.0"},
        )

    @app.get("/api.html")
    def api_html() -> Response:
        return Response(
            to_html(openapi(ctx, base_url())["paths"], "gridgeo API"),
            content_type="text/html; charset=utf-8",
        )


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
    ctx = app.extensions["gridgeo"]
    took = float(ctx.locator.warm_up())
    ctx.warm = True
    log.info("lookup kernels loaded in %.2f s", took)
    return took
