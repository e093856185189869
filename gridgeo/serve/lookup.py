"""The lookup API core: one point or a batch → grid, community, town, beat, department zones.

Framework-free: handlers take the parsed request and return ``(body, status, headers)``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from gridgeo.assign import Locator
from gridgeo.crs import normalize_crs
from gridgeo.errors import CRSError, InputError, PayloadTooLarge

__all__ = ["LookupService"]

Response = tuple[Any, int, dict[str, str]]
_CRS_NAMES = ("wgs84", "cgcs2000", "gcj02", "bd09")


def _crs(raw: str | None) -> str:
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


class LookupService:
    """Point lookups over a :class:`~gridgeo.assign.Locator`.

    Parameters
    ----------
    loc
        The locator, built once at start-up.
    max_batch
        Most points in one batch (more: 413).
    """

    def __init__(self, loc: Locator, *, max_batch: int = 100_000) -> None:
        self.loc = loc
        self.max_batch = max_batch

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

    def _parse(
        self, body: bytes, content_type: str, crs_param: str | None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        ctype = (content_type or "").split(";")[0].strip().lower()
        if crs_param is not None:
            _crs(crs_param)  # an unknown crs is an error even where the body names its own
        if ctype in ("application/json", "application/geo+json"):
            try:
                doc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise InputError(f"request body is not valid JSON: {err}") from err
            if not isinstance(doc, dict):
                raise InputError("JSON body must be an object with 'points' or a FeatureCollection")
            body_crs = doc.get("crs", crs_param)
            if "crs" in doc and not isinstance(body_crs, str):
                raise InputError(f"'crs' in the body must be a name like 'gcj02', got {body_crs!r}")
            crs = _crs(body_crs)
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
            elif "points" in doc:
                pts = doc["points"]
                if not isinstance(pts, list):
                    raise InputError("'points' must be a list of [lng, lat] pairs")
                self._check_size(len(pts))
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
            try:
                arr = np.asarray(pts, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise InputError(f"points must be [lng, lat] number pairs: {err}") from err
            if arr.size == 0:
                arr = arr.reshape(0, 2)
            if arr.ndim != 2 or arr.shape[1] < 2:
                raise InputError(f"points must be [lng, lat] pairs, got shape {arr.shape}")
            x, y = arr[:, 0], arr[:, 1]
        elif ctype == "text/csv":
            crs = _crs(crs_param)
            try:
                df = pd.read_csv(io.BytesIO(body))
            except (ValueError, UnicodeDecodeError) as err:
                raise InputError(f"request body is not valid CSV: {err}") from err
            missing = [c for c in ("lng", "lat") if c not in df.columns]
            if missing:
                raise InputError(f"CSV has no column(s) {missing}; it has {list(df.columns)}")
            self._check_size(len(df))
            x = pd.to_numeric(df["lng"], errors="coerce").to_numpy(float)
            y = pd.to_numeric(df["lat"], errors="coerce").to_numpy(float)
        else:
            raise UnsupportedMedia(
                f"content type {content_type!r} is not accepted; send application/json, "
                "application/geo+json or text/csv"
            )
        bad = ~(np.isfinite(x) & np.isfinite(y)) | (np.abs(x) > 180) | (np.abs(y) > 90)
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            raise InputError(
                f"points {rows} are not valid coordinates (finite, |lng| ≤ 180, |lat| ≤ 90)"
            )
        return x, y, crs

    def _check_size(self, n: int) -> None:
        if n > self.max_batch:
            raise PayloadTooLarge(f"{n} points in one request; the limit is {self.max_batch}")

    def locate_post(
        self, body: bytes, content_type: str, accept: str, params: dict[str, str]
    ) -> Response:
        unknown = sorted(set(params) - {"crs"})
        if unknown:
            raise InputError(f"unknown parameter(s) {unknown}; allowed: ['crs']")
        x, y, crs = self._parse(body, content_type, params.get("crs"))
        res = self.loc.locate(x, y, crs=crs)
        layers = self.loc.layer_names
        if "text/csv" in (accept or ""):
            out = io.StringIO()
            w = csv.writer(out)
            w.writerow(["lng", "lat", *layers])
            cols = [
                res[name].astype(object).where(res[name].notna(), "").to_numpy() for name in layers
            ]
            for i in range(len(res)):
                w.writerow([repr(float(x[i])), repr(float(y[i]))] + [c[i] for c in cols])
            return out.getvalue(), 200, {"Content-Type": "text/csv; charset=utf-8"}
        results = {
            name: res[name].astype(object).where(res[name].notna(), None).tolist()
            for name in layers
        }
        return {"crs": crs, "count": len(res), "layers": layers, "results": results}, 200, {}


class UnsupportedMedia(InputError):
    """The request body's content type is not one the endpoint reads."""

    status = 415
    code = "UnsupportedMediaType"
