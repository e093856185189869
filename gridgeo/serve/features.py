"""OGC API – Features core, free of any web framework.

Each handler takes plain values and returns ``(body, status, headers)``;
errors are :mod:`gridgeo.errors` exceptions that carry their HTTP status.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from gridgeo.codes import DEPARTMENTS
from gridgeo.crs import metric_crs
from gridgeo.errors import InputError, NotFound

__all__ = [
    "CRS84",
    "Collection",
    "FeatureService",
    "Response",
    "ServedCollection",
    "StoreCollection",
]

Response = tuple[Any, int, dict[str, str]]

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
ITEM_PARAMS = {"limit", "offset", "bbox", "bbox-crs", "datetime", "crs", "f"}
_TITLES = {
    "grids": "网格 Grids",
    "communities": "社区/村 Communities",
    "towns": "街道/镇 Towns",
    "beats": "警务责任区 Police beats",
    "incidents": "事件 Incidents",
}


def _uri(epsg: int) -> str:
    return f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"


@dataclass
class StoreCollection:
    """A collection served from an incident store (live: every request reads the store)."""

    id: str
    title: str
    store: Any
    extent: list[float]
    id_column: str = "id"
    time_column: str | None = "reported_at"
    queryables: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from gridgeo.io.store.batch import FILTER_COLUMNS

        self.queryables = [c for c in FILTER_COLUMNS if c != "id"]


@dataclass
class Collection:
    """One served layer, in CRS84, with what its queries need precomputed."""

    id: str
    title: str
    gdf: gpd.GeoDataFrame
    id_column: str
    queryables: list[str]
    time_column: str | None = None
    ids: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = {str(v): i for i, v in enumerate(self.gdf[self.id_column])}
        self.gdf.sindex  # noqa: B018 - build the spatial index once, at start-up

    @property
    def extent(self) -> list[float]:
        return [round(float(v), 7) for v in self.gdf.total_bounds]


@dataclass
class ServedCollection:
    """A collection listed in ``/collections`` whose items another core serves.

    Its Blueprint routes ``/collections/{id}/items`` itself (e.g. the plan versions of
    :mod:`gridgeo.serve.plans`); :class:`FeatureService` only describes it.
    """

    id: str
    title: str
    extent: list[float]
    description: str = ""
    time_column: str | None = None
    queryables: list[str] = field(default_factory=list)


def _collections(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, Collection]:
    out: dict[str, Collection] = {}

    def add(
        cid: str, title: str, gdf: gpd.GeoDataFrame, id_col: str, time_col: str | None = None
    ) -> None:
        g = gdf.to_crs("EPSG:4326").reset_index(drop=True)
        q = [
            c
            for c in g.columns
            if c != g.geometry.name and (g[c].dtype == object or pd.api.types.is_string_dtype(g[c]))
        ]
        out[cid] = Collection(cid, title, g, id_col, q, time_col)

    for name in ("grids", "communities", "towns", "beats"):
        if name in layers:
            add(name, _TITLES[name], layers[name], "code")
    if "zones" in layers:
        for dept, sub in layers["zones"].groupby("department", sort=False):
            slug = DEPARTMENTS.get(str(dept), str(dept))
            add(f"zones-{slug}", f"{dept} 专业网格 ({slug} zones)", sub, "code")
    if "incidents" in layers:
        add("incidents", _TITLES["incidents"], layers["incidents"], "id", "reported_at")
    return out


def _box(extents: list[list[float]]) -> list[float]:
    """The union of ``[minx, miny, maxx, maxy]`` boxes (a unit box when there are none)."""
    if not extents:
        return [0.0, 0.0, 1.0, 1.0]
    a = np.asarray(extents, dtype=float)
    return [float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max())]


def _int(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise InputError(f"parameter '{name}' must be an integer, got {raw!r}") from err
    if not lo <= value <= hi:
        raise InputError(f"parameter '{name}' must be between {lo} and {hi}, got {value}")
    return value


def _floats(raw: str, name: str, n: tuple[int, ...]) -> list[float]:
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError as err:
        raise InputError(
            f"parameter '{name}' must be comma-separated numbers, got {raw!r}"
        ) from err
    if len(values) not in n or not all(math.isfinite(v) for v in values):
        raise InputError(
            f"parameter '{name}' needs {' or '.join(map(str, n))} finite numbers, got {raw!r}"
        )
    return values


def _time(raw: str) -> pd.Timestamp | None:
    if raw in ("..", ""):
        return None
    try:
        ts = pd.Timestamp(raw)
    except (ValueError, TypeError) as err:
        raise InputError(f"parameter 'datetime': {raw!r} is not an RFC 3339 date-time") from err
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


class FeatureService:
    """The OGC API – Features collections of a workspace, with CRS support.

    Parameters
    ----------
    layers
        The workspace layers (see :mod:`gridgeo.io.workspace`).
    max_limit
        Largest page size.
    title
        Title of the landing page.
    """

    def __init__(
        self,
        layers: dict[str, gpd.GeoDataFrame],
        *,
        max_limit: int = 10_000,
        title: str = "gridgeo",
        stores: dict[str, Any] | None = None,
    ) -> None:
        stores = stores or {}
        self.collections: dict[str, Collection | StoreCollection | ServedCollection] = dict(
            _collections({k: v for k, v in layers.items() if k not in stores})
        )
        if stores:
            box = _box([c.extent for c in self.collections.values()])
            for cid, store in stores.items():
                self.collections[cid] = StoreCollection(cid, _TITLES.get(cid, cid), store, box)
        self.max_limit = max_limit
        self.title = title
        box = _box([c.extent for c in self.collections.values()])
        gk = metric_crs(tuple(box)).to_epsg() or 4326
        self.crs_list = [CRS84, _uri(4326), _uri(4490), _uri(gk)]
        self._crs = {
            CRS84: pyproj.CRS("OGC:CRS84"),
            _uri(4326): pyproj.CRS.from_epsg(4326),
            _uri(4490): pyproj.CRS.from_epsg(4490),
            _uri(gk): pyproj.CRS.from_epsg(gk),
        }

    # ---- helpers ----------------------------------------------------------------------------

    def add(self, collection: ServedCollection) -> None:
        """List a collection that another core serves (after the workspace's own)."""
        self.collections[collection.id] = collection

    def collection(self, cid: str) -> Collection | StoreCollection | ServedCollection:
        try:
            return self.collections[cid]
        except KeyError:
            raise NotFound(
                f"collection '{cid}' does not exist; collections are {list(self.collections)}"
            ) from None

    def _crs_of(self, uri: str | None, param: str) -> tuple[str, pyproj.CRS]:
        if uri == "":
            raise InputError(f"parameter '{param}' is empty; give a CRS URI or omit it")
        uri = uri or CRS84
        if uri not in self._crs:
            raise InputError(
                f"parameter '{param}': CRS {uri!r} is not offered; use one of {self.crs_list}"
            )
        return uri, self._crs[uri]

    def _transform(self, gs: gpd.GeoSeries, crs: pyproj.CRS) -> gpd.GeoSeries:
        """To ``crs``, honouring its official axis order (EPSG:4326/4490 are lat/lon)."""
        if crs.equals(self._crs[CRS84]):
            return gs
        out = gs.to_crs(crs)
        first = crs.axis_info[0].direction if crs.axis_info else "east"
        if first == "north":
            out = out.map(lambda g: shapely.transform(g, lambda c: c[:, ::-1]) if g else g)
        return out

    @staticmethod
    def _links(base: str, path: str, rels: list[tuple[str, str, str]]) -> list[dict[str, str]]:
        return [
            {"href": f"{base}{path}{suffix}", "rel": rel, "type": typ, "title": rel}
            for rel, typ, suffix in rels
        ]

    # ---- endpoints --------------------------------------------------------------------------

    def landing(self, base: str) -> Response:
        body = {
            "title": self.title,
            "description": "Grids, communities, towns, police beats, department zones and "
            "incidents of a county (网格化服务管理), plus point lookup.",
            "links": [
                {"href": f"{base}/", "rel": "self", "type": "application/json", "title": "this"},
                {
                    "href": f"{base}/api",
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0",
                    "title": "OpenAPI",
                },
                {
                    "href": f"{base}/api.html",
                    "rel": "service-doc",
                    "type": "text/html",
                    "title": "API documentation",
                },
                {
                    "href": f"{base}/conformance",
                    "rel": "conformance",
                    "type": "application/json",
                    "title": "conformance",
                },
                {
                    "href": f"{base}/collections",
                    "rel": "data",
                    "type": "application/json",
                    "title": "collections",
                },
            ],
        }
        return body, 200, {}

    def conformance(self) -> Response:
        return {"conformsTo": CONFORMANCE}, 200, {}

    def _collection_doc(
        self, c: Collection | StoreCollection | ServedCollection, base: str
    ) -> dict[str, Any]:
        path = f"/collections/{c.id}"
        doc: dict[str, Any] = {
            "id": c.id,
            "title": c.title,
            "itemType": "feature",
            "extent": {"spatial": {"bbox": [c.extent], "crs": CRS84}},
            "crs": self.crs_list,
            "storageCrs": CRS84,
            "links": self._links(
                base,
                path,
                [
                    ("self", "application/json", ""),
                    ("items", GEOJSON, "/items"),
                    ("items", "text/html", "/items?f=html"),
                ],
            ),
        }
        if isinstance(c, ServedCollection) and c.description:
            doc["description"] = c.description
        if c.time_column and isinstance(c, Collection):
            times = c.gdf[c.time_column]
            doc["extent"]["temporal"] = {
                "interval": [[times.min().isoformat() + "Z", times.max().isoformat() + "Z"]]
            }
        return doc

    def collections_doc(self, base: str) -> Response:
        body = {
            "links": [
                {
                    "href": f"{base}/collections",
                    "rel": "self",
                    "type": "application/json",
                    "title": "this",
                }
            ],
            "collections": [self._collection_doc(c, base) for c in self.collections.values()],
        }
        return body, 200, {}

    def collection_doc(self, cid: str, base: str) -> Response:
        return self._collection_doc(self.collection(cid), base), 200, {}

    def items(self, cid: str, params: dict[str, str], base: str) -> Response:
        return self.items_of(self._served_here(cid), params, base)

    def _served_here(self, cid: str) -> Collection | StoreCollection:
        c = self.collection(cid)
        if isinstance(c, ServedCollection):
            raise NotFound(f"collection '{cid}' is served by its own routes, not as a layer")
        return c

    def items_of(
        self, c: Collection | StoreCollection, params: dict[str, str], base: str
    ) -> Response:
        """The items of a collection object (:meth:`items` of one that need not be listed)."""
        cid = c.id
        unknown = sorted(set(params) - ITEM_PARAMS - set(c.queryables))
        if unknown:
            raise InputError(
                f"unknown parameter(s) {unknown}; allowed: {sorted(ITEM_PARAMS)} and the "
                f"properties {c.queryables}"
            )
        limit = _int(params, "limit", 10, 1, self.max_limit)
        offset = _int(params, "offset", 0, 0, 2**62)
        crs_uri, crs = self._crs_of(params.get("crs"), "crs")
        if "bbox-crs" in params:
            self._crs_of(params["bbox-crs"], "bbox-crs")  # validated even without a bbox
        region = None
        if "bbox" in params:
            bb = _floats(params["bbox"], "bbox", (4,))
            x0, y0, x1, y1 = bb
            _, bcrs = self._crs_of(params.get("bbox-crs"), "bbox-crs")
            if bcrs.axis_info and bcrs.axis_info[0].direction == "north":
                x0, y0, x1, y1 = y0, x0, y1, x1
            if x0 > x1 or y0 > y1:
                raise InputError(f"parameter 'bbox': min must not exceed max, got {params['bbox']}")
            region = gpd.GeoSeries([shapely.box(x0, y0, x1, y1)], crs=bcrs).to_crs("EPSG:4326")
        t0 = t1 = None
        if "datetime" in params:
            if params["datetime"] == "":
                raise InputError("parameter 'datetime' is empty; give an instant or interval")
            if not c.time_column:
                raise InputError(f"collection '{cid}' has no time; 'datetime' does not apply")
            raw = params["datetime"]
            start, _, end = raw.partition("/")
            t0 = _time(start)
            t1 = _time(end) if "/" in raw else t0
        props = {}
        for prop in set(params) & set(c.queryables):
            if params[prop] == "":
                raise InputError(f"parameter '{prop}' is empty; give a value or omit it")
            props[prop] = params[prop]
        if isinstance(c, StoreCollection):
            # the store's times are instants: the parsed (naive UTC) bounds, end inclusive
            filters = {
                "bbox": tuple(region.iloc[0].bounds) if region is not None else None,
                "start": None if t0 is None else t0.tz_localize("UTC"),
                "end": None if t1 is None else t1.tz_localize("UTC") + pd.Timedelta(1, "us"),
                "where": props or None,
            }
            matched = c.store.count(**filters)
            page = c.store.query(**filters, limit=limit, offset=offset).to_crs("EPSG:4326")
        else:
            mask = np.ones(len(c.gdf), dtype=bool)
            if region is not None:
                hits = c.gdf.sindex.query(region.iloc[0], predicate="intersects")
                sel = np.zeros(len(c.gdf), dtype=bool)
                sel[hits] = True
                mask &= sel
            times = c.gdf[c.time_column] if c.time_column else None
            if t0 is not None and times is not None:
                mask &= (times >= t0).to_numpy()
            if t1 is not None and times is not None:
                mask &= (times <= t1).to_numpy()
            for prop, value in props.items():
                mask &= (c.gdf[prop].astype(str) == value).to_numpy()
            idx = np.flatnonzero(mask)
            matched = len(idx)
            page = c.gdf.iloc[idx[offset : offset + limit]]
        feats = self._features(c, page, crs)
        q = {k: v for k, v in params.items() if k not in ("offset", "f")}
        links = [
            self._page_link(base, cid, q, offset, "self", GEOJSON),
            self._page_link(base, cid, q, offset, "alternate", "text/html", html_=True),
        ]
        if offset + limit < matched:
            links.append(self._page_link(base, cid, q, offset + limit, "next", GEOJSON))
        if offset > 0:
            links.append(self._page_link(base, cid, q, max(0, offset - limit), "prev", GEOJSON))
        body = {
            "type": "FeatureCollection",
            "features": feats,
            "numberMatched": matched,
            "numberReturned": len(feats),
            "timeStamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "links": links,
        }
        return body, 200, {"Content-Type": GEOJSON, "Content-Crs": f"<{crs_uri}>"}

    @staticmethod
    def _page_link(
        base: str, cid: str, q: dict[str, str], offset: int, rel: str, typ: str, html_: bool = False
    ) -> dict[str, str]:
        from urllib.parse import urlencode

        args = dict(q, offset=str(offset))
        if html_:
            args["f"] = "html"
        return {
            "href": f"{base}/collections/{cid}/items?{urlencode(args)}",
            "rel": rel,
            "type": typ,
            "title": rel,
        }

    def _features(
        self, c: Collection | StoreCollection, page: gpd.GeoDataFrame, crs: pyproj.CRS
    ) -> list[dict]:
        geoms = self._transform(page.geometry, crs)
        digits = 7 if crs.is_geographic else 3
        props = pd.DataFrame(page.drop(columns=page.geometry.name))
        for col in props.columns:
            if isinstance(props[col].dtype, pd.DatetimeTZDtype):  # instants: in UTC
                props[col] = props[col].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            elif pd.api.types.is_datetime64_any_dtype(props[col]):
                props[col] = props[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        records = json.loads(props.to_json(orient="records", force_ascii=False))
        out = []
        for rec, geom in zip(records, geoms):
            # round coordinates, not set_precision: snapping can merge or drop parts
            gj = (
                json.loads(
                    shapely.to_geojson(shapely.transform(geom, lambda xy: np.round(xy, digits)))
                )
                if geom
                else None
            )
            out.append(
                {"type": "Feature", "id": str(rec[c.id_column]), "geometry": gj, "properties": rec}
            )
        return out

    def item(self, cid: str, fid: str, params: dict[str, str], base: str) -> Response:
        return self.item_of(self._served_here(cid), fid, params, base)

    def item_of(
        self, c: Collection | StoreCollection, fid: str, params: dict[str, str], base: str
    ) -> Response:
        """One feature of a collection object (:meth:`item` of one that need not be listed)."""
        cid = c.id
        unknown = sorted(set(params) - {"crs", "f"})
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}; allowed: ['crs', 'f']")
        crs_uri, crs = self._crs_of(params.get("crs"), "crs")
        if isinstance(c, StoreCollection):
            row = c.store.query(where={"id": fid}).to_crs("EPSG:4326")
            if row.empty:
                raise NotFound(f"feature '{fid}' does not exist in collection '{cid}'")
        elif fid not in c.ids:
            raise NotFound(f"feature '{fid}' does not exist in collection '{cid}'")
        else:
            row = c.gdf.iloc[[c.ids[fid]]]
        feat = self._features(c, row, crs)[0]
        feat["links"] = [
            {
                "href": f"{base}/collections/{cid}/items/{fid}",
                "rel": "self",
                "type": GEOJSON,
                "title": "this",
            },
            {
                "href": f"{base}/collections/{cid}",
                "rel": "collection",
                "type": "application/json",
                "title": "collection",
            },
        ]
        return feat, 200, {"Content-Type": GEOJSON, "Content-Crs": f"<{crs_uri}>"}
