"""OpenAPI 3.0 building blocks shared by the service cores' path descriptions."""

from __future__ import annotations

from typing import Any

__all__ = [
    "DATETIME",
    "ERR",
    "GEOJSON",
    "GEOJSON_HTML",
    "HTML",
    "JSON",
    "JSON_HTML",
    "LNGLAT",
    "param",
]


def param(
    name: str,
    schema: dict[str, Any],
    desc: str,
    *,
    where: str = "query",
    required: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """One OpenAPI parameter object.

    Examples
    --------
    >>> param("limit", {"type": "integer"}, "Page size.")["in"]
    'query'
    """
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": desc,
        "schema": schema,
        **extra,
    }


HTML = {"text/html": {"schema": {"type": "string"}}}
_DAY = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])"
_INSTANT = _DAY + r"(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))?"
DATETIME = rf"^({_INSTANT}|\.\.)(/({_INSTANT}|\.\.))?$"
# [lng, lat] or [lng, lat, height]; OpenAPI 3.0 has no tuples, so the latitude's
# narrower range (±90) is said in words only
LNGLAT = {
    "type": "array",
    "minItems": 2,
    "maxItems": 3,
    "items": {"type": "number", "minimum": -180, "maximum": 180},
    "description": "[lng, lat] (lat within ±90), optionally with a height",
}
JSON = {"application/json": {"schema": {"type": "object"}}}
JSON_HTML = {**JSON, **HTML}
GEOJSON = {"application/geo+json": {"schema": {"type": "object"}}}
GEOJSON_HTML = {**GEOJSON, **HTML}
_EXCEPTION = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
    "required": ["code", "description"],
}
# errors are OGC exceptions (code, description), served as RFC 9457 problem details
ERR = {
    "description": "error",
    "content": {
        "application/problem+json": {"schema": _EXCEPTION},
        "application/json": {"schema": _EXCEPTION},
    },
}
