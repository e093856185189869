"""What every Blueprint shares: the service context, request parsing and responses.

The cores (:mod:`~gridgeo.serve.features`, :mod:`~gridgeo.serve.lookup`,
:mod:`~gridgeo.serve.heatmap`, :mod:`~gridgeo.serve.incidents`) know nothing of
Flask; the Blueprints in :mod:`gridgeo.serve.routes` parse a request with these
helpers, call a core and serialise its ``(body, status, headers)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, request

from gridgeo.errors import GridGeoError
from gridgeo.serve.pages import html_response, prefers_html

__all__ = [
    "BadParameter",
    "ServiceContext",
    "base_url",
    "context",
    "json_response",
    "problem",
    "query_params",
    "reply",
    "wants_html",
]


@dataclass
class ServiceContext:
    """Everything the routes need, built once by :func:`~gridgeo.serve.app.create_app`.

    ``heatmap``, ``incidents`` (ingestion), ``live`` and ``store`` are ``None``
    when the workspace or the configuration does not provide them.
    """

    config: Any
    layers: dict[str, Any]
    locator: Any
    features: Any
    lookup: Any
    heatmap: Any = None
    incidents: Any = None
    live: Any = None
    store: Any = None
    plans: Any = None  # gridgeo.serve.plans.PlanService: plan versions of a workspace file
    conformance: list[str] = field(default_factory=list)
    #: the lookup kernels are loaded in this process (set by :func:`~gridgeo.serve.app.warm_up`)
    warm: bool = False


class BadParameter(GridGeoError):
    """A malformed request (duplicate or badly formed parameter)."""

    status = 400
    code = "InvalidParameterValue"


def context() -> ServiceContext:
    """The running app's :class:`ServiceContext`."""
    return current_app.extensions["gridgeo"]


def base_url() -> str:
    """This server's root URL as the client reached it, without the trailing slash."""
    return request.url_root.rstrip("/")


def query_params() -> dict[str, str]:
    """The query parameters; a parameter given twice is a 400."""
    dup = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if dup:
        raise BadParameter(f"parameter(s) {dup} given more than once")
    return request.args.to_dict()


def wants_html(params: dict[str, str]) -> bool:
    """``f=html``/``f=json`` (removed from ``params``), else the ``Accept`` header."""
    f = params.pop("f", None)
    if f not in (None, "json", "html"):
        raise BadParameter(f"parameter 'f' must be 'json' or 'html', got {f!r}")
    if f is not None:
        return f == "html"
    return prefers_html(request.headers.get("Accept"))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON (UTF-8, Chinese as is); a ``str`` body is sent as it is."""
    headers = dict(headers or {})
    ctype = headers.pop("Content-Type", "application/json")
    if isinstance(body, str):
        return Response(body, status=status, headers=headers, content_type=ctype)
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(text, status=status, headers=headers, content_type=ctype)


def problem(status: int, code: str, description: str) -> Response:
    """An OGC exception that is also an RFC 9457 problem document."""
    body = {
        "code": code,
        "description": description,
        "type": "about:blank",
        "title": code,
        "status": status,
        "detail": description,
    }
    return json_response(body, status, {"Content-Type": "application/problem+json"})


def reply(result: tuple[Any, int, dict[str, str]], html: bool, title: str) -> Response:
    """A core's answer as HTML or JSON; negotiated answers vary by ``Accept``."""
    body, status, headers = result
    if html:
        page, status, headers = html_response(result, title, root=base_url())
        resp = Response(page, status=status, headers=headers)
    else:
        resp = json_response(body, status, headers)
    resp.vary.add("Accept")
    return resp
