"""Ingestion: OGC API – Features Part 4 (create, update) on ``/collections/incidents/items``.

Framework-free: each handler takes the raw request parts and returns
``(body, status, headers)``; :mod:`gridgeo.serve.routes.incidents` is the Flask
layer. A report is parsed, validated as a whole (all or nothing), located and
routed (:func:`gridgeo.assign.ingest.locate_for_store`), then appended to the
store in one transaction; the answer carries the codes, so the dispatcher
learns in one call where to send it.

* ``POST`` a GeoJSON ``Feature`` → ``201`` with ``Location``; an ``id`` already
  stored (a retried POST of the same work order) → ``200`` with the stored
  feature, nothing created.
* ``POST`` a ``FeatureCollection`` of up to ``max_features`` → one transaction;
  ``201`` when anything was created, ``200`` when everything was stored already.
* ``PATCH /collections/incidents/items/{id}`` with ``{"status": "派遣"}`` (or a
  Feature whose properties hold ``status``) moves the lifecycle on.

Examples
--------
>>> import json, os, tempfile, geopandas as gpd, shapely
>>> from gridgeo.assign import Locator
>>> from gridgeo.io.store import open_store
>>> box = shapely.box(114.9, 25.3, 115.0, 25.4)
>>> loc = Locator({"grid": gpd.GeoDataFrame({"code": ["G1"]}, geometry=[box], crs=4490)})
>>> svc = IncidentService(open_store(os.path.join(tempfile.mkdtemp(), "ws.gpkg")), loc)
>>> feature = {"type": "Feature", "id": "12345-0001",
...     "geometry": {"type": "Point", "coordinates": [114.95, 25.35]},
...     "properties": {"category": "噪音", "reported_at": "2025-03-01T08:00:00+08:00"}}
>>> body, status, headers = svc.create(json.dumps(feature).encode(), "application/geo+json",
...                                    {}, None, "http://h")
>>> status, headers["Location"], body["properties"]["grid_code"]
(201, 'http://h/collections/incidents/items/12345-0001', 'G1')
>>> svc.create(json.dumps(feature).encode(), "application/geo+json", {}, None, "http://h")[1]
200
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from gridgeo.assign import Locator
from gridgeo.assign.ingest import locate_for_store, locate_records
from gridgeo.crs import CHINA_BOX, crs_name, normalize_crs, to_wgs84
from gridgeo.errors import CRSError, InputError, PayloadTooLarge, ValidationError
from gridgeo.io.store.base import STATUSES, TZ
from gridgeo.io.store.batch import iso_time

__all__ = ["CONFORMANCE", "IncidentService", "UnsupportedMediaType"]

Response = tuple[Any, int, dict[str, str]]

#: OGC API – Features Part 4 conformance classes this core implements.
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
]
#: Properties a client may send; the store sets the rest (codes, seq, closed_at…).
PROPERTIES = ("category", "reported_at", "source", "description", "status", "department")
_WHAT = "the request (nothing was stored)"
_GEOJSON = "application/geo+json"
_SMALL = 64  # a request with at most this many features takes the per-point path
_JSON_TYPES = ("application/geo+json", "application/json", "application/merge-patch+json")


class UnsupportedMediaType(InputError):
    """The request body is not JSON / GeoJSON."""

    status = 415
    code = "UnsupportedMediaType"


@dataclass(frozen=True)
class _Parsed:
    # per report: id, the PROPERTIES, lng/lat as sent, _lon/_lat in EPSG:4490
    records: list[dict[str, Any]]
    single: bool
    crs: str

    def frame(self) -> gpd.GeoDataFrame:
        """The reports as one frame of EPSG:4490 points (the path of big collections)."""
        df = pd.DataFrame.from_records(self.records)
        lon = df.pop("_lon").to_numpy(dtype=np.float64)
        lat = df.pop("_lat").to_numpy(dtype=np.float64)
        return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4490")


def _media(content_type: str) -> None:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'!r} is not accepted; send "
            "application/geo+json (a Feature or a FeatureCollection)"
        )


def _load(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"the body is not UTF-8 text: {err}") from err
    if not text.strip():
        raise InputError("the body is empty; send a GeoJSON Feature or FeatureCollection")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from err


def parse_crs(query: str | None, header: str | None) -> str:
    """The coordinates' CRS from ``?crs=`` and/or ``Content-Crs`` (they must agree).

    Examples
    --------
    >>> parse_crs("gcj02", None), parse_crs(None, "<http://www.opengis.net/def/crs/EPSG/0/4490>")
    ('gcj02', 'cgcs2000')
    >>> parse_crs(None, None)
    'wgs84'
    """
    found = []
    for where, raw in (("the query's crs", query), ("the Content-Crs header", header)):
        if raw is None:
            continue
        text = raw.strip().strip("<>").strip()
        if not text:
            raise CRSError(f"{where} is empty; give e.g. gcj02, wgs84, cgcs2000 or EPSG:4490")
        try:
            found.append((where, raw, crs_name(normalize_crs(text))))
        except CRSError as err:
            raise CRSError(
                f"{where} {raw!r} is not a CRS gridgeo knows; use gcj02, bd09, wgs84, "
                "cgcs2000 or an EPSG code"
            ) from err
    if len(found) == 2 and found[0][2] != found[1][2]:
        raise CRSError(
            f"the query says crs={found[0][1]!r} but Content-Crs says {found[1][1]!r}; "
            "send one, or the same in both"
        )
    return found[0][2] if found else "wgs84"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _feature_problems(i: int, f: Any, problems: list[str]) -> dict[str, Any] | None:
    """One Feature as a flat record, or None after adding its problems."""
    if not isinstance(f, dict) or f.get("type") != "Feature":
        got = f.get("type") if isinstance(f, dict) else type(f).__name__
        problems.append(f"feature {i}: expected a GeoJSON Feature, got {got!r}")
        return None
    fid = f.get("id")
    label = f"feature {i}" + (f" (id {fid!r})" if fid is not None else "")
    before = len(problems)
    if fid is not None and (
        isinstance(fid, bool) or not isinstance(fid, (str, int)) or str(fid).strip() == ""
    ):
        problems.append(f"{label}: id must be a non-empty string or integer")
    elif isinstance(fid, str) and (len(fid) > 128 or "/" in fid):
        problems.append(f"{label}: id must be at most 128 characters and contain no '/'")
    geom = f.get("geometry")
    x = y = None
    if not isinstance(geom, dict):
        problems.append(f"{label}: geometry is missing; a report needs a Point")
    elif geom.get("type") != "Point":
        problems.append(f"{label}: geometry must be a Point, got {geom.get('type')!r}")
    else:
        c = geom.get("coordinates")
        if not isinstance(c, list) or len(c) not in (2, 3):
            problems.append(f"{label}: Point coordinates must be [x, y], got {c!r}")
        else:
            x, y = _number(c[0]), _number(c[1])
            if x is None or y is None:
                problems.append(f"{label}: coordinates must be finite numbers, got {c!r}")
    props = f.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        problems.append(f"{label}: properties must be an object")
        props = {}
    unknown = sorted(set(props) - set(PROPERTIES) - {"id"})
    if unknown:
        problems.append(f"{label}: unknown properties {unknown}; allowed: {list(PROPERTIES)}")
    cat = props.get("category")
    if not isinstance(cat, str) or not cat.strip():
        problems.append(f"{label}: property 'category' is required (a non-empty string)")
    for name in ("source", "description", "status", "department"):
        v = props.get(name)
        if v is not None and not isinstance(v, str):
            problems.append(f"{label}: property {name!r} must be a string")
    when = props.get("reported_at")
    if when is not None:
        ts = iso_time(when) if isinstance(when, str) else None
        if ts is None:
            problems.append(
                f"{label}: reported_at {when!r} is not an ISO 8601 time "
                "(e.g. 2025-03-01T08:00:00+08:00)"
            )
        elif ts.tzinfo is None:
            problems.append(
                f"{label}: reported_at {when!r} has no UTC offset; add one, e.g. +08:00"
            )
    if len(problems) > before:
        return None
    return {
        "id": None if fid is None else str(fid),
        "x": x,
        "y": y,
        **{k: props.get(k) for k in PROPERTIES},
    }


class IncidentService:
    """Create and update incidents in a store (OGC API – Features Part 4).

    Parameters
    ----------
    store
        An :class:`~gridgeo.io.store.IncidentStore`.
    locator
        The service's locator (:meth:`Locator.from_workspace`).
    max_features
        Most features in one POSTed FeatureCollection (413 above).
    routes
        Category → department layer (see :func:`gridgeo.assign.route`).
    """

    def __init__(
        self,
        store: Any,
        locator: Locator,
        *,
        max_features: int = 10_000,
        routes: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.locator = locator
        self.max_features = int(max_features)
        self.routes = routes

    # ---- parsing -------------------------------------------------------------------------

    def _parse(self, raw: bytes, content_type: str, crs: str) -> _Parsed:
        _media(content_type)
        doc = _load(raw)
        if not isinstance(doc, dict):
            raise InputError(f"expected a GeoJSON object, got {type(doc).__name__}")
        kind = doc.get("type")
        if kind == "Feature":
            features, single = [doc], True
        elif kind == "FeatureCollection":
            features, single = doc.get("features"), False
            if not isinstance(features, list) or not features:
                raise InputError("a FeatureCollection needs a non-empty 'features' list")
            if len(features) > self.max_features:
                raise PayloadTooLarge(
                    f"{len(features)} features in one request; at most {self.max_features} "
                    "(split the upload)"
                )
        else:
            raise InputError(
                f"expected a GeoJSON Feature or FeatureCollection, got type {kind!r}"
            )
        problems: list[str] = []
        records = [_feature_problems(i, f, problems) for i, f in enumerate(features)]
        if not problems:
            ids = [r["id"] for r in records if r and r["id"] is not None]
            dup = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) != len(set(ids)) else []
            if dup:
                problems.append(f"ids repeated within the request: {dup[:5]}")
        if problems:
            raise ValidationError(problems, what=_WHAT)
        x = np.array([r.pop("x") for r in records], dtype=np.float64)
        y = np.array([r.pop("y") for r in records], dtype=np.float64)
        lon, lat = to_wgs84(x, y, crs)
        (lx0, ly0, lx1, ly1) = CHINA_BOX
        out = ~((lon >= lx0) & (lon <= lx1) & (lat >= ly0) & (lat <= ly1))
        if out.any():
            bad = [
                f"feature {i}: ({x[i]:g}, {y[i]:g}) in {crs} is outside China "
                f"(lon {lx0}..{lx1}, lat {ly0}..{ly1}); swapped lng/lat or wrong crs?"
                for i in np.flatnonzero(out)
            ]
            raise ValidationError(bad, what=_WHAT)
        now = dt.datetime.now(TZ).isoformat()
        for r, xi, yi, lo, la in zip(records, x.tolist(), y.tolist(), lon.tolist(), lat.tolist()):
            if r["id"] is None:  # Part 4: the server assigns an id the client did not give
                r["id"] = f"gg-{uuid.uuid4().hex[:20]}"
            if r["reported_at"] is None:
                r["reported_at"] = now
            r["lng"], r["lat"] = xi, yi  # as sent
            r["_lon"], r["_lat"] = lo, la  # EPSG:4490
        return _Parsed(records, single, crs)

    # ---- handlers ------------------------------------------------------------------------

    def create(
        self,
        raw: bytes,
        content_type: str,
        params: dict[str, str],
        content_crs: str | None,
        base: str,
    ) -> Response:
        """``POST /collections/incidents/items``: store reports, located and routed."""
        unknown = sorted(set(params) - {"crs"})
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}; allowed: ['crs']")
        crs = parse_crs(params.get("crs"), content_crs)
        parsed = self._parse(raw, content_type, crs)
        records = parsed.records
        bad = sorted({r["status"] for r in records if r["status"] is not None} - set(STATUSES))
        if bad:
            raise ValidationError([f"status {bad} is not one of {list(STATUSES)}"], what=_WHAT)
        link = f"{base}/collections/incidents/items/"
        if len(records) <= _SMALL:
            # a live report: located point by point, appended as records (no frames: pandas'
            # per-call overhead was ~90% of a POST)
            located = locate_records(
                [{"category": r["category"], "department": r["department"], "lon": r["_lon"],
                  "lat": r["_lat"]} for r in records],
                self.locator,
                routes=self.routes,
            )  # fmt: skip
            rows = []
            for r, codes in zip(records, located):
                row = {k: v for k, v in r.items() if k[0] != "_"}
                row.update((k, v) for k, v in codes.items() if k not in _LOCATE_KEYS)
                row["geometry"] = {"type": "Point", "coordinates": [r["_lon"], r["_lat"]]}
                rows.append(row)
            result = self.store.append_records(rows)
            # (id, attributes, EPSG:4490 lon, lat) of each report, for the answer
            made = [(row["id"], row, r["_lon"], r["_lat"]) for row, r in zip(rows, records)]
        else:
            ready = locate_for_store(parsed.frame(), self.locator, routes=self.routes)
            if ready["status"].isna().all():
                ready = ready.drop(columns="status")
            result = self.store.append(ready)
            attrs = ready.drop(columns="geometry").to_dict("records")
            made = [(str(a["id"]), a, g.x, g.y) for a, g in zip(attrs, ready.geometry)]
        if parsed.single:
            fid, row, lon, lat = made[0]
            if result.new:  # what was stored, without reading it back
                feature = _new_feature(row, lon, lat, base)
                return feature, 201, {"Location": link + fid, "Content-Type": _GEOJSON}
            # a retried work order: the stored report, nothing created
            return self.feature(fid, base), 200, {
                "Content-Location": link + fid,
                "Content-Type": _GEOJSON,
            }
        existing = set(result.existing)
        features = [
            self.feature(fid, base) if fid in existing else _new_feature(row, lon, lat, base)
            for fid, row, lon, lat in made
        ]
        body = {
            "type": "FeatureCollection",
            "features": features,
            "numberCreated": len(result.new),
            "numberExisting": len(result.existing),
            "created": result.new,
            "existing": result.existing,
        }
        return body, 201 if result.new else 200, {"Content-Type": "application/geo+json"}

    def update(self, fid: str, raw: bytes, content_type: str, base: str) -> Response:
        """``PATCH /collections/incidents/items/{id}``: change the status (受理 … 结案)."""
        _media(content_type)
        doc = _load(raw)
        if isinstance(doc, dict) and doc.get("type") == "Feature":
            doc = doc.get("properties") or {}
        if not isinstance(doc, dict):
            raise InputError('send {"status": "派遣"} (a JSON object)')
        unknown = sorted(set(doc) - {"status", "at"})
        if unknown:
            raise InputError(
                f"only 'status' (and 'at', when it changed) can be patched; got {unknown}"
            )
        if "status" not in doc:
            raise InputError('the patch has no "status"; send e.g. {"status": "派遣"}')
        at = doc.get("at")
        if at is not None:
            ts = iso_time(at) if isinstance(at, str) else None
            if ts is None or ts.tzinfo is None:
                raise InputError(f"'at' {at!r} must be an ISO 8601 time with an offset")
        self.store.update_status(fid, doc["status"], at=at)
        return self.feature(fid, base), 200, {"Content-Type": "application/geo+json"}

    def feature(self, fid: str, base: str) -> dict[str, Any]:
        """The stored incident as a GeoJSON Feature with its links (NotFound if absent)."""
        return _feature(self.store.get(fid), base)


def _feature(incident: Any, base: str) -> dict[str, Any]:
    doc = dict(incident.__geo_interface__)
    doc["geometry"] = {
        "type": "Point",
        "coordinates": [round(c, 8) for c in doc["geometry"]["coordinates"][:2]],
    }
    href = f"{base}/collections/incidents/items/{incident.id}"
    doc["links"] = [
        {"rel": "self", "type": "application/geo+json", "href": href},
        {"rel": "collection", "type": "application/json", "href": f"{base}/collections/incidents"},
    ]
    return doc


_LOCATE_KEYS = frozenset({"category", "lon", "lat"})  # locate_records' inputs, not codes
_ROW_PROPS = (
    "category", "reported_at", "source", "description", "department", "lng", "lat",
    "grid_code", "community_code", "town_code", "beat_code", "zone_code",
)


def _value(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _new_feature(row: Mapping[str, Any], lon: float, lat: float, base: str) -> dict[str, Any]:
    """A just-created incident, from the located row (no re-read); ``lon``/``lat`` EPSG:4490."""
    fid = str(row["id"])
    props: dict[str, Any] = {"id": fid}
    for name in _ROW_PROPS:
        props[name] = _value(row.get(name))
    props["status"] = _value(row.get("status")) or "受理"  # a frame holds NaN where none given
    href = f"{base}/collections/incidents/items/{fid}"
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Point", "coordinates": [round(lon, 8), round(lat, 8)]},
        "properties": props,
        "links": [{"rel": "self", "type": "application/geo+json", "href": href}],
    }
