"""The lookup API core: one point or a batch → grid, community, town, beat, department zones.

Framework-free: handlers take the parsed request and return ``(body, status, headers)``.

A batch (``POST /locate``) is JSON ``{"points": [...]}``, a GeoJSON
FeatureCollection of points, or CSV. Its answers are in the request's order,
and everything that came with each point besides its coordinates (an ``id``,
a Feature's ``id`` and ``properties``, the other keys of a point object, the
other columns of a CSV row) is echoed beside its answer, so that answers join
back to the request.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridgeo.assign import Locator
from gridgeo.crs import normalize_crs
from gridgeo.errors import CRSError, InputError, PayloadTooLarge

__all__ = ["LookupService"]

Response = tuple[Any, int, dict[str, str]]
_CRS_NAMES = ("wgs84", "cgcs2000", "gcj02", "bd09")
#: Accepted (longitude, latitude) names of CSV columns and point-object keys, in any case.
COORDINATE_NAMES = (
    ("lng", "lat"),
    ("lon", "lat"),
    ("longitude", "latitude"),
    ("经度", "纬度"),
)
_ACCEPTED = ", ".join(f"{a}/{b}" for a, b in COORDINATE_NAMES)


def _crs(raw: str | None) -> str:
    if raw is not None and not raw.strip():
        raise CRSError(f"parameter 'crs' is empty; use one of {list(_CRS_NAMES)} or omit it")
    name = (raw or "wgs84").strip().lower()
    try:
        norm = normalize_crs(name)
    except CRSError as err:
        raise CRSError(f"unknown crs {raw!r}; use one of {list(_CRS_NAMES)}") from err
    if not isinstance(norm, str):
        raise CRSError(f"crs {raw!r} is not accepted here; use one of {list(_CRS_NAMES)}")
    return norm


def _number(raw: str | None, name: str) -> float:
    if raw is None or raw == "":
        raise InputError(f"parameter '{name}' is required")
    try:
        value = float(raw)
    except ValueError as err:
        raise InputError(f"parameter '{name}' must be a number, got {raw!r}") from err
    if not math.isfinite(value):
        raise InputError(f"parameter '{name}' must be finite, got {raw!r}")
    return value


def _flag(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise InputError(f"parameter '{name}' must be 'true' or 'false', got {raw!r}")
    return value == "true"


def _coordinate_names(names: list[str], what: str, *, noun: str = "column") -> tuple[str, str]:
    """The (longitude, latitude) names among ``names``: exactly one accepted pair, any case.

    Examples
    --------
    >>> _coordinate_names(["id", "Longitude", "LATITUDE"], "CSV")
    ('Longitude', 'LATITUDE')
    >>> _coordinate_names(["a", "b"], "CSV")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gridgeo.errors.InputError: CSV has no column(s) for longitude and latitude: it has ['a', 'b']...
    """
    folded: dict[str, list[str]] = {}
    for n in names:
        folded.setdefault(str(n).strip().casefold(), []).append(n)
    found = [(a, b) for a, b in COORDINATE_NAMES if a in folded and b in folded]
    if not found:
        raise InputError(
            f"{what} has no {noun}(s) for longitude and latitude: it has {list(names)}; "
            f"accepted (any case): {_ACCEPTED}"
        )
    if len(found) > 1:
        pairs = [f"{folded[a][0]}/{folded[b][0]}" for a, b in found]
        raise InputError(f"{what} has several longitude/latitude pairs {pairs}; keep one")
    a, b = found[0]
    same = [folded[n] for n in (a, b) if len(folded[n]) > 1]
    if same:
        raise InputError(f"{what} has {noun}s that differ only in case: {same[0]}; keep one")
    return folded[a][0], folded[b][0]


def _columns(rows: list[dict[str, Any] | None]) -> dict[str, list[Any]]:
    """Per-point dicts → one list per key (first-seen order), ``None`` where a point lacks it."""
    keys: dict[str, None] = {}
    for r in rows:
        if r:
            keys.update(dict.fromkeys(r))
    return {k: [r.get(k) if r else None for r in rows] for k in keys}


def _cell(v: Any) -> str:
    """A value as a CSV field: text as is, nothing as empty, anything else as JSON."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def _no_constant(name: str) -> Any:
    raise InputError(f"request body is not valid JSON: {name} is not a JSON number")


@dataclass
class _Batch:
    """A parsed batch: WGS84-or-named-CRS coordinates and what to echo per point."""

    x: np.ndarray
    y: np.ndarray
    crs: str
    echo: dict[str, list[Any]] = field(default_factory=dict)


class LookupService:
    """Point lookups over a :class:`~gridgeo.assign.Locator`.

    Parameters
    ----------
    loc
        The locator, built once at start-up.
    max_batch
        Most points in one batch (more: 413).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["A"], "name": ["west"]},
    ...     geometry=[shapely.box(115, 25, 115.1, 25.1)], crs="EPSG:4490")
    >>> ls = LookupService(Locator({"grid": grids}))
    >>> body, status, _ = ls.locate_post(b"id,lon,lat\\ne1,115.05,25.05\\n", "text/csv", "",
    ...     {"names": "true"})
    >>> body["results"], body["names"], body["echo"]
    ({'grid': ['A']}, {'grid': ['west']}, {'id': ['e1']})
    """

    def __init__(self, loc: Locator, *, max_batch: int = 100_000) -> None:
        self.loc = loc
        self.max_batch = max_batch
        self._names: dict[str, np.ndarray] = {}
        for layer in loc.layer_names:
            attrs = loc.attributes(layer)
            col = attrs["name"] if "name" in attrs.columns else pd.Series(None, index=attrs.index)
            self._names[layer] = col.astype(object).to_numpy()

    def locate_get(self, params: dict[str, str]) -> Response:
        unknown = sorted(set(params) - {"lng", "lat", "crs"})
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}; allowed: ['crs', 'lat', 'lng']")
        lng = _number(params.get("lng"), "lng")
        lat = _number(params.get("lat"), "lat")
        crs = _crs(params.get("crs"))
        if not (-180 <= lng <= 180 and -90 <= lat <= 90):
            raise InputError(
                f"coordinate out of range: lng {lng} must be in [-180, 180] and "
                f"lat {lat} in [-90, 90]"
            )
        body = {"lng": lng, "lat": lat, "crs": crs, **self.loc.locate_one(lng, lat, crs=crs)}
        return body, 200, {}

    def _parse(self, body: bytes, content_type: str, crs_param: str | None) -> _Batch:
        ctype = (content_type or "").split(";")[0].strip().lower()
        query_crs = None if crs_param is None else _crs(crs_param)
        if ctype in ("application/json", "application/geo+json"):
            batch = self._json(body, crs_param, query_crs)
        elif ctype == "text/csv":
            batch = self._csv(body, content_type, query_crs or _crs(None))
        else:
            raise UnsupportedMedia(
                f"content type {content_type!r} is not accepted; send application/json, "
                "application/geo+json or text/csv"
            )
        x, y = batch.x, batch.y
        bad = ~(np.isfinite(x) & np.isfinite(y)) | (np.abs(x) > 180) | (np.abs(y) > 90)
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise InputError(
                f"points {rows} are not valid coordinates (finite, |lng| ≤ 180, |lat| ≤ 90)"
            )
        return batch

    def _json(self, body: bytes, crs_param: str | None, query_crs: str | None) -> _Batch:
        try:
            doc = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"request body is not valid JSON: {err}") from err
        if not isinstance(doc, dict):
            raise InputError("JSON body must be an object with 'points' or a FeatureCollection")
        if "crs" in doc:
            raw = doc["crs"]
            if not isinstance(raw, str):
                raise InputError(f"'crs' in the body must be a name like 'gcj02', got {raw!r}")
            crs = _crs(raw)
            if query_crs is not None and query_crs != crs:
                raise CRSError(
                    f"the query says crs={crs_param!r} but the body says 'crs': {raw!r}; "
                    "give one of them, or the same in both"
                )
        else:
            crs = query_crs or _crs(None)
        extras: list[dict[str, Any] | None] = []
        if doc.get("type") == "FeatureCollection":
            feats = doc.get("features")
            if not isinstance(feats, list):
                raise InputError("FeatureCollection has no 'features' list")
            self._check_size(len(feats))
            pts: list[Any] = []
            for i, f in enumerate(feats):
                geom = f.get("geometry") if isinstance(f, dict) else None
                if not isinstance(f, dict) or f.get("type") != "Feature":
                    raise InputError(f"feature {i} is not a GeoJSON Feature")
                if not isinstance(geom, dict) or geom.get("type") != "Point":
                    raise InputError(f"feature {i} is not a Point")
                pts.append(geom.get("coordinates"))
                extras.append(_feature_echo(f, i))
        elif "points" in doc:
            pts = doc["points"]
            if not isinstance(pts, list):
                raise InputError(
                    "'points' must be a list of [lng, lat] pairs or {\"lng\", \"lat\"} objects"
                )
            self._check_size(len(pts))
            pts = list(pts)
            for i, pt in enumerate(pts):
                if isinstance(pt, dict):
                    a, b = _coordinate_names(list(pt), f"point {i}", noun="key")
                    pts[i] = [pt[a], pt[b]]
                    extras.append({k: v for k, v in pt.items() if k not in (a, b)})
                else:
                    extras.append(None)
        else:
            raise InputError("JSON body needs 'points': [[lng, lat], …] or a FeatureCollection")
        for i, pt in enumerate(pts):
            if (
                not isinstance(pt, list)
                or not 2 <= len(pt) <= 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pt)
            ):
                raise InputError(f"point {i} is not a [lng, lat] pair of numbers: {pt!r}")
        pts = [pt[:2] for pt in pts]  # a height, where given, plays no part
        arr = np.asarray(pts, dtype=np.float64).reshape(len(pts), 2)
        return _Batch(arr[:, 0], arr[:, 1], crs, _columns(extras))

    def _csv(self, body: bytes, content_type: str, crs: str) -> _Batch:
        charset = "utf-8"
        for part in (content_type or "").split(";")[1:]:
            k, _, v = part.partition("=")
            if k.strip().lower() == "charset":
                charset = v.strip().strip('"') or charset
        try:
            text = body.decode(charset)
        except LookupError as err:
            raise InputError(f"unknown charset {charset!r} in the content type") from err
        except UnicodeDecodeError as err:
            raise InputError(
                f"CSV body is not {charset} text ({err}); send UTF-8, or name its charset "
                "(e.g. Content-Type: text/csv; charset=gb18030)"
            ) from err
        reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
        try:
            rows = [(reader.line_num, r) for r in reader if r]
        except csv.Error as err:
            line = reader.line_num
            raise InputError(f"request body is not valid CSV: line {line}: {err}") from err
        if not rows:
            raise InputError("CSV body is empty; it needs a header row, e.g. id,lng,lat")
        header = [h.strip() for h in rows[0][1]]
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise InputError(f"CSV has duplicate column(s) {dup}")
        a, b = _coordinate_names(header, "CSV")
        ia, ib = header.index(a), header.index(b)
        data = rows[1:]
        self._check_size(len(data))
        for line, r in data:
            if len(r) != len(header):
                raise InputError(
                    f"CSV line {line} has {len(r)} fields; the header has {len(header)}"
                )
        x = np.array([_float(r[ia]) for _, r in data], dtype=np.float64)
        y = np.array([_float(r[ib]) for _, r in data], dtype=np.float64)
        echo = {h: [r[j] for _, r in data] for j, h in enumerate(header) if j not in (ia, ib)}
        return _Batch(x, y, crs, echo)

    def _check_size(self, n: int) -> None:
        if n > self.max_batch:
            raise PayloadTooLarge(f"{n} points in one request; the limit is {self.max_batch}")

    def locate_post(
        self, body: bytes, content_type: str, accept: str, params: dict[str, str]
    ) -> Response:
        """Answer a batch, in request order, with what came with each point echoed.

        Query parameters: ``crs`` (of the points; a body's own ``crs`` must
        agree with it) and ``names=true`` (add each zone's name). A JSON
        answer has ``results`` (layer → keys), ``echo`` (field → values) and,
        with ``names=true``, ``names`` (layer → names), each a list in the
        request's order. A CSV answer (``Accept: text/csv``) has one row per
        point: the echoed fields, ``lng``, ``lat``, one column per layer and,
        with ``names=true``, a ``{layer}_name`` column per layer.

        Raises
        ------
        InputError
            For a malformed body, unknown parameters, missing or ambiguous
            coordinate columns, or disagreeing ``crs`` values.
        UnsupportedMedia
            For a content type other than JSON, GeoJSON or CSV.
        PayloadTooLarge
            For more than ``max_batch`` points.
        """
        unknown = sorted(set(params) - {"crs", "names"})
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}; allowed: ['crs', 'names']")
        names = _flag(params.get("names"), "names")
        batch = self._parse(body, content_type, params.get("crs"))
        layers = self.loc.layer_names
        as_csv = "text/csv" in (accept or "")
        name_cols = [f"{layer}_name" for layer in layers] if names else []
        if as_csv:
            clash = [c for c in batch.echo if c in {"lng", "lat", *layers, *name_cols}]
            if clash:
                raise InputError(
                    f"input column(s) {clash} have the names of answer columns; rename them"
                )
        res = self.loc.locate(batch.x, batch.y, crs=batch.crs)
        keys = {
            name: res[name].astype(object).where(res[name].notna(), None).tolist()
            for name in layers
        }
        zone_names: dict[str, list[Any]] = {}
        if names:
            for name in layers:
                pos = res[name].cat.codes.to_numpy()
                zone_names[name] = np.where(pos >= 0, self._names[name][pos], None).tolist()
        if as_csv:
            out = io.StringIO()
            w = csv.writer(out)
            w.writerow([*batch.echo, "lng", "lat", *layers, *name_cols])
            cols = [
                *batch.echo.values(),
                [repr(float(v)) for v in batch.x],
                [repr(float(v)) for v in batch.y],
                *keys.values(),
                *zone_names.values(),
            ]
            w.writerows(zip(*([_cell(v) for v in c] for c in cols)))
            return out.getvalue(), 200, {"Content-Type": "text/csv; charset=utf-8"}
        out_body: dict[str, Any] = {
            "crs": batch.crs,
            "count": len(res),
            "layers": layers,
            "results": keys,
            "echo": batch.echo,
        }
        if names:
            out_body["names"] = zone_names
        return out_body, 200, {}


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return math.nan  # reported with the other invalid points


def _feature_echo(f: dict[str, Any], i: int) -> dict[str, Any]:
    props = f.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise InputError(f"feature {i} has 'properties' that are not an object: {props!r}")
    if "id" not in f:
        return props
    fid = f["id"]
    if isinstance(fid, bool) or not isinstance(fid, (str, int, float)):
        raise InputError(f"feature {i} has an 'id' that is not a string or a number: {fid!r}")
    if "id" in props and props["id"] != f["id"]:
        raise InputError(
            f"feature {i} has 'id' {f['id']!r} and an 'id' property {props['id']!r}; "
            "keep one, or make them equal"
        )
    return {"id": f["id"], **props}


class UnsupportedMedia(InputError):
    """The request body's content type is not one the endpoint reads."""

    status = 415
    code = "UnsupportedMediaType"
