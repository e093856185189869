"""Turn hand-digitised boundary layers into a clean polygonal coverage.

Boundaries from the bureaus were digitised by hand: neighbours overlap or
leave slivers of a few decimetres between them, some rings cross themselves,
and the community layer does not always come with its towns. :func:`conform`
repairs, cleans, clips and nests them, and reports every change it makes.

The rules, applied layer by layer (the topology in the layers' own coordinates,
where their edges are straight, scaled to local metres; areas in the CGCS2000
3-degree Gauss–Krüger zone of the data, :func:`gridgeo.crs.metric_crs`):

1. **Repair.** An invalid geometry (bow-tie, self-intersecting ring, hole
   outside its shell) is rebuilt as every area its shell encloses (the faces
   of the noded ring, so a loop wound the other way is kept too, which
   ``shapely.make_valid`` would drop) minus its holes, united with what
   ``make_valid(method="structure")`` keeps. Only lines and points (zero
   area) are dropped.
2. **Overlaps** go to the polygon whose ``code`` sorts first (ties: the
   earlier row). The other polygons lose the overlapping area.
3. **Gaps** thinner than ``tolerance_m`` (the diameter of the largest circle
   that fits inside them) are absorbed into the neighbour sharing the longest
   border with them. Wider gaps stay.
4. **Clipping.** Every coverage layer is clipped to the ``boundary`` layer
   when there is one; communities are clipped to their town and grids to
   their community (the parent found by ``town_code`` / ``community_code``).
   Children whose parent is missing are clipped to what the existing parents
   leave free.
5. **Nesting.** A community without ``town_code`` gets the first 9 digits of
   its 12-digit ``code`` (:data:`gridgeo.codes.CODE_DIGITS`); a town named
   by communities but absent from ``towns`` (or no ``towns`` layer at all) is
   built as the union of its communities, with an empty ``name``.

Steps 2–4 use GEOS' coverage cleaner (``shapely.coverage_clean``, GEOS ≥ 3.14)
with the outside of the clipping extent as an extra polygon that wins every
overlap; gaps that touch that outside are filled here by the same
longest-border rule. ``shapely.coverage_is_valid`` checks the result.

Nothing is dropped: every row comes back, with its attributes unchanged, and
each change is one row of the report. A feature that loses all its area keeps
its row with an empty geometry.

Examples
--------
>>> import geopandas as gpd, shapely
>>> towns = gpd.GeoDataFrame(
...     {"code": ["360722002", "360722001"], "name": ["大塘埠镇", "嘉定镇"]},
...     geometry=[shapely.box(115.0099, 25.0, 115.02, 25.01),
...               shapely.box(115.0, 25.0, 115.01, 25.01)], crs="EPSG:4490")
>>> out, report = conform({"towns": towns})
>>> bool(shapely.coverage_is_valid(out["towns"].geometry.values))
True
>>> big = report[report["area_m2"].abs() > 1]
>>> big[["layer", "code", "problem"]].values.tolist()
[['towns', '360722002', 'overlap with 360722001']]
>>> round(float(big["area_m2"].iloc[0]))  # 10 m by 1.1 km given to 360722001
-11185

(Smaller rows report the slivers left where a vertex of one town lies on
the straight edge of the other in lon/lat: a straight edge in degrees is not
straight in metres.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from gridgeo.codes import CODE_DIGITS
from gridgeo.crs import metric_crs, to_wgs84
from gridgeo.errors import InputError, ValidationError

__all__ = ["COVERAGE_LAYERS", "REPORT_COLUMNS", "conform"]

log = logging.getLogger(__name__)

#: Layers that must form a coverage (zones: one coverage per department).
COVERAGE_LAYERS = ("towns", "communities", "grids", "beats", "zones")
#: Polygon layers that are repaired but may overlap (the county, exclusive grids).
_REPAIR_ONLY = ("boundary", "exclusive")
#: Child layer → (parent column, parent layer, parent code level).
_NESTING = {
    "communities": ("town_code", "towns", "town"),
    "grids": ("community_code", "communities", "community"),
}
#: The report's columns (a ``geometry`` column, in EPSG:4490, locates each change).
REPORT_COLUMNS = ("layer", "code", "problem", "action", "area_m2")
#: Area changes below this (vertex snapping by GEOS, float noise) are not reported.
_MIN_AREA_M2 = 1e-4
_REPORT_CRS = "EPSG:4490"
#: GEOS snaps vertices closer than this fraction of the tolerance (1 mm for 1 m): it
#: closes the sub-millimetre slivers left where an edge straight in one CRS meets a
#: vertex projected from another.
_SNAP = 1e-3
_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)


@dataclass
class _Layer:
    """One polygon layer at work: its frame, raw and current geometries in the work plane."""

    name: str
    gdf: gpd.GeoDataFrame
    raw: np.ndarray  # as given
    before: np.ndarray  # repaired: what clean/clip/nest changes are measured from
    geoms: np.ndarray  # current

    @property
    def codes(self) -> list[str]:
        return [_code_text(c) for c in self.gdf["code"]]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _code_text(code: Any) -> str:
    return "" if code is None or code is pd.NA or _is_nan(code) else str(code)


def _check(layers: Mapping[str, gpd.GeoDataFrame], tolerance_m: float) -> None:
    if isinstance(tolerance_m, bool) or not isinstance(tolerance_m, (int, float, np.number)):
        raise InputError(f"tolerance_m must be a number of metres > 0, got {tolerance_m!r}")
    if not math.isfinite(float(tolerance_m)) or tolerance_m <= 0:
        raise InputError(f"tolerance_m must be a finite number of metres > 0, got {tolerance_m}")
    if not isinstance(layers, Mapping):
        raise InputError(
            f"layers must be a mapping of layer name to GeoDataFrame, got {type(layers).__name__}"
        )
    problems: list[str] = []
    for name, gdf in layers.items():
        polygonal = name in COVERAGE_LAYERS or name in _REPAIR_ONLY
        if not polygonal:
            continue
        if not isinstance(gdf, gpd.GeoDataFrame):
            problems.append(f"layer '{name}': expected a GeoDataFrame, got {type(gdf).__name__}")
            continue
        if gdf.crs is None:
            problems.append(f"layer '{name}': no CRS; set one (e.g. EPSG:4490 for CGCS2000)")
        if "code" not in gdf.columns:
            problems.append(f"layer '{name}': missing column 'code'; it has {list(gdf.columns)}")
        geoms = gdf.geometry
        present = ~(geoms.isna() | geoms.is_empty)
        kinds = geoms[present].geom_type
        wrong = ~kinds.isin(["Polygon", "MultiPolygon"])
        if wrong.any():
            rows = ", ".join(str(i) for i in kinds.index[wrong][:5])
            more = int(wrong.sum()) - min(int(wrong.sum()), 5)
            problems.append(
                f"layer '{name}': expected polygon geometries, found {sorted(set(kinds[wrong]))} "
                f"at rows {rows}{f' and {more} more' if more else ''}"
            )
    if problems:
        raise ValidationError(problems, what="layers to conform")


class _Space:
    """The plane the work is done in, and how areas in it become m².

    Topology is worked out in the layers' own coordinates, where their edges
    are straight (an edge straight in lon/lat is not straight in Gauss–Krüger
    metres, so projecting would open slivers along every edge with a vertex of
    the neighbour on it). Lon/lat is shifted and scaled to local metres at the
    data's centre (an affine map: straight edges stay straight and shared
    vertices stay shared), which makes ``tolerance_m`` a width in metres.
    Reported areas are measured after projecting to the Gauss–Krüger zone of
    the data (:func:`gridgeo.crs.metric_crs`).
    """

    def __init__(self, layers: Mapping[str, gpd.GeoDataFrame]) -> None:
        crss = {gdf.crs for name, gdf in layers.items() if _polygon_layer(name)}
        self.crs = pyproj.CRS(next(iter(crss)) if len(crss) == 1 else _REPORT_CRS)
        xs: list[float] = []
        ys: list[float] = []
        for name, gdf in layers.items():
            geoms = gdf.geometry if _polygon_layer(name) else None
            if geoms is None or not (~(geoms.isna() | geoms.is_empty)).any():
                continue
            x0, y0, x1, y1 = geoms[~(geoms.isna() | geoms.is_empty)].total_bounds
            lon, lat = to_wgs84([x0, x1, x0, x1], [y0, y0, y1, y1], gdf.crs)
            xs.extend(lon)
            ys.extend(lat)
        if not xs:
            raise InputError("no polygon to conform: every polygon layer is empty")
        self.metric = metric_crs((min(xs), min(ys), max(xs), max(ys)))
        self._to_metric = pyproj.Transformer.from_crs(self.crs, self.metric, always_xy=True)
        self.origin = np.zeros(2)
        self.scale = np.ones(2)
        if self.crs.is_geographic:
            lon0, lat0 = math.floor(min(xs)), math.floor(min(ys))
            lonc, latc = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
            geod = pyproj.Geod(ellps="GRS80")
            kx = geod.inv(lonc - 0.005, latc, lonc + 0.005, latc)[2] / 0.01
            ky = geod.inv(lonc, latc - 0.005, lonc, latc + 0.005)[2] / 0.01
            # Shifting by whole degrees first makes the round trip exact for input vertices.
            self.origin = np.array([lon0, lat0], dtype=float)
            self.scale = np.array([kx, ky])

    def to_work(self, geoms: Any) -> np.ndarray:
        return shapely.transform(geoms, lambda c: (c - self.origin) * self.scale)

    def from_work(self, geoms: Any) -> np.ndarray:
        return shapely.transform(geoms, lambda c: c / self.scale + self.origin)

    def area(self, geoms: Any) -> Any:
        """Area in m², in the Gauss–Krüger zone of the data."""
        back = self.from_work(geoms)
        projected = shapely.transform(
            back, lambda c: np.column_stack(self._to_metric.transform(c[:, 0], c[:, 1]))
        )
        return shapely.area(projected)

    def to_crs(self, geoms: np.ndarray, crs: Any) -> np.ndarray:
        out = gpd.GeoSeries(self.from_work(geoms), crs=self.crs)
        if not self.crs.equals(pyproj.CRS(crs)):
            out = out.to_crs(crs)
        return np.asarray(out.values, dtype=object)

    def from_crs(self, geoms: gpd.GeoSeries) -> np.ndarray:
        if not self.crs.equals(pyproj.CRS(geoms.crs)):
            geoms = geoms.to_crs(self.crs)
        return self.to_work(np.asarray(geoms.values, dtype=object))


def _coverage_keys(layer: _Layer) -> np.ndarray:
    """Which coverage each row belongs to: its department for zones, else one for all."""
    if layer.name == "zones" and "department" in layer.gdf.columns:
        return layer.gdf["department"].astype(str).to_numpy()
    return np.full(len(layer.gdf), "", dtype=object)


def _polygon_layer(name: str) -> bool:
    return name in COVERAGE_LAYERS or name in _REPAIR_ONLY


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal parts of a geometry, as one (Multi)Polygon (empty if none)."""
    if geom is None:
        return shapely.Polygon()
    if shapely.get_type_id(geom) in _POLYGONAL:
        return geom
    parts = [g for g in shapely.get_parts(geom) if shapely.get_type_id(g) in _POLYGONAL]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def _enclosed(ring: shapely.Geometry) -> shapely.Geometry:
    """Every area a ring encloses, however it crosses itself (its noded faces)."""
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.node(ring))))
    return shapely.union_all(faces) if len(faces) else shapely.Polygon()


def _repair(geom: shapely.Geometry) -> shapely.Geometry:
    """A valid (Multi)Polygon covering all that ``geom``'s rings enclose, minus its holes.

    ``make_valid`` alone drops areas a self-overlapping ring winds round twice
    the other way; the faces of the noded ring keep them. The result also
    covers what ``make_valid(method="structure")`` keeps.
    """
    parts = []
    for polygon in shapely.get_parts(geom):
        if shapely.get_type_id(polygon) != shapely.GeometryType.POLYGON:
            continue
        shell = _enclosed(shapely.get_exterior_ring(polygon))
        holes = [_enclosed(r) for r in shapely.get_interior_ring(
            polygon, range(shapely.get_num_interior_rings(polygon)))]
        parts.append(shapely.difference(shell, shapely.union_all(holes)) if holes else shell)
    structure = _polygonal(shapely.make_valid(geom, method="structure", keep_collapsed=False))
    return _polygonal(shapely.union_all([*parts, structure]))


def _row(
    rows: list[dict[str, Any]],
    layer: str,
    code: str,
    problem: str,
    action: str,
    area: float,
    where: shapely.Geometry | None,
) -> None:
    rows.append(
        {
            "layer": layer,
            "code": code,
            "problem": problem,
            "action": action,
            "area_m2": float(area),
            "geometry": where,
        }
    )


def _start(name: str, gdf: gpd.GeoDataFrame, space: _Space, rows: list) -> _Layer:
    """Project a layer to metres and repair its invalid geometries, reporting each."""
    raw = space.from_crs(gdf.geometry)
    raw = np.array([shapely.Polygon() if g is None else g for g in raw], dtype=object)
    codes = [_code_text(c) for c in gdf["code"]]
    geoms = raw.copy()
    empty = shapely.is_empty(raw)
    for i in np.flatnonzero(empty):
        _row(rows, name, codes[i], "no geometry", "kept as is (an empty polygon)", 0.0, None)
    invalid = ~empty & ~shapely.is_valid(raw)
    for i in np.flatnonzero(invalid):
        reason = str(shapely.is_valid_reason(raw[i])).split("[")[0]
        fixed = _repair(raw[i])
        geoms[i] = fixed
        _row(
            rows,
            name,
            codes[i],
            f"invalid geometry: {reason}",
            "rebuilt from every area its rings enclose, keeping every polygonal part",
            space.area(fixed) - space.area(raw[i]),
            fixed,
        )
    if invalid.any():
        log.info("layer '%s': repaired %d invalid geometries", name, int(invalid.sum()))
    return _Layer(name, gdf, raw, geoms.copy(), geoms)


def _width_below(geoms: np.ndarray, tol: float) -> np.ndarray:
    """Whether each polygon's largest inscribed circle has a diameter below ``tol``."""
    if len(geoms) == 0:
        return np.zeros(0, dtype=bool)
    radius = shapely.length(shapely.maximum_inscribed_circle(geoms, tolerance=tol / 100))
    return 2 * radius < tol


def _order(codes: Sequence[str]) -> np.ndarray:
    """Positions sorted by code, ties by position: the overlap priority."""
    return np.array(sorted(range(len(codes)), key=lambda i: (codes[i], i)), dtype=np.intp)


def _clean(
    geoms: np.ndarray,
    codes: Sequence[str],
    tol: float,
    *,
    within: shapely.Geometry | None = None,
    away: shapely.Geometry | None = None,
) -> np.ndarray:
    """Clean one group into a coverage inside ``within`` and outside ``away``.

    Overlaps go to the code that sorts first; the land outside ``within`` and
    inside ``away`` is one more polygon that sorts before every code, so it
    wins every overlap (clipping). Gaps < ``tol`` go to the longest border.
    """
    out = geoms.copy()
    order = [i for i in _order(codes) if not shapely.is_empty(geoms[i])]
    if not order:
        return out
    frame = None
    if within is not None or away is not None:
        extra = [g for g in (within, away) if g is not None and not shapely.is_empty(g)]
        x0, y0, x1, y1 = shapely.total_bounds(np.array([*geoms[order], *extra], dtype=object))
        pad = 10 * tol + 10.0
        world = shapely.box(x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        frame = shapely.difference(world, within) if within is not None else shapely.Polygon()
        if away is not None:
            frame = shapely.union(frame, away)
        if shapely.is_empty(frame):
            frame = None
    if frame is not None:
        # Clip and settle overlaps first, without gap filling: the outside must not take gaps.
        polygons = np.array([frame, *geoms[order]], dtype=object)
        clipped = shapely.coverage_clean(
            polygons, gap_width=0.0, snapping_distance=tol * _SNAP, merge_strategy="min_index"
        )
        for k, i in enumerate(order):
            out[i] = _polygonal(clipped[k + 1])
        order = [i for i in order if not shapely.is_empty(out[i])]
    if order:
        cleaned = shapely.coverage_clean(
            out[order], gap_width=tol, snapping_distance=tol * _SNAP, merge_strategy="min_index"
        )
        for k, i in enumerate(order):
            out[i] = _polygonal(cleaned[k])
    if frame is not None and order:
        # The frame as cleaned: its edges run through the same nodes as the polygons'.
        _fill_edge_gaps(out, order, shapely.difference(world, clipped[0]), tol)
    _match_edges(out, codes)
    return out


def _match_edges(geoms: np.ndarray, codes: Sequence[str]) -> None:
    """Make shared edges identical (GEOS noding, no gap filling) if they are not yet."""
    order = [i for i in _order(codes) if not shapely.is_empty(geoms[i])]
    if not order or shapely.coverage_is_valid(geoms[order]):
        return
    again = shapely.coverage_clean(geoms[order], gap_width=0.0, merge_strategy="min_index")
    for k, i in enumerate(order):
        geoms[i] = _polygonal(again[k])


def _fill_edge_gaps(out: np.ndarray, order: list[int], extent: shapely.Geometry, tol: float):
    """Give gaps < tol left between the polygons and the extent's edge to a neighbour."""
    left = shapely.difference(extent, shapely.coverage_union_all(out[order]))
    parts = shapely.get_parts(left)
    parts = parts[shapely.area(parts) > 0]
    parts = parts[_width_below(parts, tol)]
    if len(parts) == 0:
        return
    tree = shapely.STRtree(out[order])
    gains: dict[int, list[shapely.Geometry]] = {}
    for gap in parts:
        edge = shapely.boundary(gap)
        best, best_len = -1, 0.0
        for k in sorted(tree.query(gap, predicate="intersects")):
            shared = shapely.length(shapely.intersection(edge, out[order[k]]))
            if shared > best_len:
                best, best_len = order[k], shared
        if best >= 0:
            gains.setdefault(best, []).append(gap)
    for i, extra in gains.items():
        out[i] = _polygonal(shapely.union_all([out[i], *extra]))


def _account(
    layer: _Layer,
    rows: list,
    why_lost: Any,
    space: _Space,
) -> None:
    """Report, per feature, the area it lost to each neighbour or to clipping, and gained.

    ``why_lost(i, j)`` gives (problem, action) for area of ``i`` now held by ``j``,
    or by nobody when ``j`` is None.
    """
    before, after, codes = layer.before, layer.geoms, layer.codes
    keys = _coverage_keys(layer)
    same = shapely.equals_exact(shapely.normalize(before), shapely.normalize(after), tolerance=0.0)
    after[same] = before[same]  # GEOS may start a ring elsewhere: keep the input's vertices
    tree = shapely.STRtree(after)
    for i in range(len(after)):
        if same[i]:
            continue
        reported = 0.0
        first_row = len(rows)
        lost = shapely.difference(before[i], after[i])
        if space.area(lost) >= _MIN_AREA_M2:
            held = []
            for j in sorted(tree.query(lost, predicate="intersects")):
                if j == i or keys[j] != keys[i]:
                    continue
                part = _polygonal(shapely.intersection(lost, after[j]))
                area = space.area(part)
                if area >= _MIN_AREA_M2:
                    problem, action = why_lost(i, int(j))
                    _row(rows, layer.name, codes[i], problem, action, -area, part)
                    reported -= area
                held.append(after[j])
            rest = _polygonal(shapely.difference(lost, shapely.union_all(held)) if held else lost)
            area = space.area(rest)
            if area >= _MIN_AREA_M2:
                problem, action = why_lost(i, None)
                _row(rows, layer.name, codes[i], problem, action, -area, rest)
                reported -= area
        gained = _polygonal(shapely.difference(after[i], before[i]))
        area = space.area(gained)
        if area >= _MIN_AREA_M2:
            _row(
                rows,
                layer.name,
                codes[i],
                "gap thinner than the tolerance",
                "gap absorbed (the neighbour with the longest shared border takes it)",
                area,
                gained,
            )
            reported += area
        residual = space.area(after[i]) - space.area(before[i]) - reported
        if abs(residual) >= _MIN_AREA_M2 and len(rows) > first_row and rows[-1]["code"] == codes[i]:
            # Vertices snapped while the edge moved anyway: part of that change.
            rows[-1]["area_m2"] += residual
        elif abs(residual) >= _MIN_AREA_M2:
            _row(
                rows,
                layer.name,
                codes[i],
                "edge within snapping distance of a neighbour's",
                "vertices snapped onto the shared edge",
                residual,
                None,
            )
        if shapely.is_empty(after[i]) and not shapely.is_empty(before[i]):
            _row(
                rows,
                layer.name,
                codes[i],
                "covered entirely by other polygons",
                "row kept with an empty geometry",
                0.0,
                None,
            )


def _overlap_reason(layer: _Layer, clip: str, parent_of: Any = None) -> Any:
    codes = layer.codes

    def why(i: int, j: int | None) -> tuple[str, str]:
        if j is None:
            return f"outside {clip(i)}", f"clipped to {clip(i)}"
        if parent_of is not None and parent_of(i) != parent_of(j):
            return (
                f"overlap with {codes[j]}",
                f"clipped to {clip(i)}; {codes[j]} keeps the area",
            )
        return f"overlap with {codes[j]}", f"overlap given to {codes[j]} (its code sorts first)"

    return why


def _derive_parents(
    name: str, gdf: gpd.GeoDataFrame, column: str, level: str, rows: list
) -> gpd.GeoDataFrame:
    """Fill a missing parent code from the first digits of a well-formed child code."""
    n = CODE_DIGITS[level]
    child_digits = n + 3
    gdf = gdf.copy()
    if column not in gdf.columns:
        gdf[column] = pd.Series([None] * len(gdf), index=gdf.index, dtype=object)
    values = list(gdf[column])
    for k, (code, parent) in enumerate(zip(gdf["code"], values)):
        if not (parent is None or parent is pd.NA or parent == "" or _is_nan(parent)):
            continue
        text = _code_text(code)
        if isinstance(code, str) and len(code) == child_digits and code.isdigit():
            values[k] = code[:n]
            _row(rows, name, text, f"no {column}", f"{column} derived from code: {code[:n]}",
                 0.0, None)
        else:
            _row(rows, name, text, f"no {column}",
                 f"left empty: code is not a {child_digits}-digit code", 0.0, None)
    gdf[column] = pd.Series(values, index=gdf.index, dtype=object)
    return gdf


def conform(
    layers: Mapping[str, gpd.GeoDataFrame], *, tolerance_m: float = 1.0
) -> tuple[dict[str, gpd.GeoDataFrame], pd.DataFrame]:
    """Repair, clean, clip and nest hand-digitised boundary layers; report every change.

    The coverage layers (``towns``, ``communities``, ``grids``, ``beats``, and
    ``zones`` per ``department``) come back as clean coverages
    (``shapely.coverage_is_valid``): invalid rings repaired, overlaps given to
    the polygon whose code sorts first, gaps thinner than ``tolerance_m``
    absorbed into the neighbour with the longest shared border, clipped to
    ``boundary`` and nested (communities in towns, grids in communities). See
    the module docstring for the rules in full. ``boundary`` and ``exclusive``
    are only repaired; other layers pass through unchanged.

    Parameters
    ----------
    layers
        Layer name → GeoDataFrame (as :func:`gridgeo.io.read_layer` returns
        them, EPSG:4490 lon/lat). Polygon layers need a CRS and a ``code``.
    tolerance_m
        Width in metres below which a gap between neighbours is absorbed.

    Returns
    -------
    layers : dict of str to GeoDataFrame
        Every input layer, with every row, in its own CRS; attributes are
        unchanged except a derived parent code where it was missing. Towns
        that communities name but that were absent are added (empty ``name``).
    report : pandas.DataFrame
        One row per change: ``layer``, ``code``, ``problem``, ``action`` and
        ``area_m2`` (the signed change of that feature's area, in m² in the
        metric CRS; changes under 1 cm² are not listed), and a ``geometry``
        column locating the change in EPSG:4490 (None when it has no area).

    Raises
    ------
    InputError
        If ``tolerance_m`` is not a number > 0, or ``layers`` is not a mapping.
    ValidationError
        Listing every polygon layer without a CRS, without a ``code`` column,
        or holding non-polygon geometries.

    Examples
    --------
    A bow-tie ring keeps both its triangles, and a 30 cm overlap goes to the
    code that sorts first:

    >>> import geopandas as gpd, shapely
    >>> bow = shapely.Polygon([(115.0, 25.0), (115.01, 25.01), (115.01, 25.0), (115.0, 25.01)])
    >>> beats = gpd.GeoDataFrame({"code": ["J2", "J1"], "name": ["二区", "一区"]},
    ...     geometry=[bow, shapely.box(115.01 - 3e-6, 25.0, 115.02, 25.01)], crs="EPSG:4490")
    >>> out, report = conform({"beats": beats})
    >>> report[["code", "problem"]].head(2).values.tolist()
    [['J2', 'invalid geometry: Self-intersection'], ['J2', 'overlap with J1']]
    >>> [round(a) for a in report["area_m2"].head(2)]  # the bow-tie's area was 0 before
    [559245, -335]
    >>> out["beats"].geom_type.tolist()
    ['MultiPolygon', 'Polygon']

    Further rows of less than a square metre follow: GEOS snapped vertices
    onto the shared edge.
    """
    _check(layers, tolerance_m)
    tol = float(tolerance_m)
    space = _Space(layers)
    rows: list[dict[str, Any]] = []
    work: dict[str, _Layer] = {}
    for name in ("boundary", "exclusive", *COVERAGE_LAYERS):
        if name in layers:
            gdf = layers[name]
            if name in _NESTING:
                column, _, level = _NESTING[name]
                if name == "communities" or column in gdf.columns:
                    gdf = _derive_parents(name, gdf, column, level, rows)
            work[name] = _start(name, gdf, space, rows)

    county = None
    if "boundary" in work:
        county = shapely.union_all(work["boundary"].geoms)
    missing_towns = _missing_towns(layers, work)
    reasons: dict[str, Any] = {}
    for name in COVERAGE_LAYERS:
        if name not in work:
            continue
        layer = work[name]
        clip_name = "the boundary"
        if name in _NESTING and _NESTING[name][1] in work:
            reasons[name] = _clean_nested(layer, work[_NESTING[name][1]], name, county, tol)
        elif name == "zones" and "department" in layer.gdf.columns:
            departments = layer.gdf["department"].astype(str).to_numpy()
            for department in sorted(set(departments)):
                pos = np.flatnonzero(departments == department)
                layer.geoms[pos] = _clean(
                    layer.geoms[pos], [layer.codes[i] for i in pos], tol, within=county
                )
            reasons[name] = _overlap_reason(layer, lambda i, c=clip_name: c)
        else:
            layer.geoms = _clean(layer.geoms, layer.codes, tol, within=county)
            reasons[name] = _overlap_reason(layer, lambda i, c=clip_name: c)
        if name == "communities" and missing_towns:
            work["towns"] = _build_towns(layer, missing_towns, work.get("towns"), space, rows)
            reasons["towns"] = _overlap_reason(work["towns"], lambda i, c=clip_name: c)
    for name in COVERAGE_LAYERS:
        if name in reasons:
            _account(work[name], rows, reasons[name], space)

    out: dict[str, gpd.GeoDataFrame] = {}
    for name, gdf in layers.items():
        if name in work:
            out[name] = _finish(work[name], space, rows)
        else:
            out[name] = gdf.copy()
    if "towns" in work and "towns" not in out:
        out["towns"] = _finish(work["towns"], space, rows)
    report = _report(rows, space)
    if len(report):
        log.info("conform: %d changes in %s", len(report), sorted(set(report["layer"])))
    return out, report


def _missing_towns(layers: Mapping[str, gpd.GeoDataFrame], work: dict[str, _Layer]):
    """Town codes named by communities but absent from the towns layer (None: none)."""
    if "communities" not in work:
        return None
    named = {c for c in work["communities"].gdf["town_code"] if isinstance(c, str) and c}
    have = set(map(str, layers["towns"]["code"])) if "towns" in layers else set()
    missing = sorted(named - have)
    return missing or None


def _clean_nested(
    layer: _Layer, parent: _Layer, name: str, base: shapely.Geometry | None, tol: float
) -> Any:
    """Clean a child layer inside its parents, a group per parent; return why area was lost."""
    column, parent_name, level = _NESTING[name]
    first: dict[str, int] = {}
    for k, code in enumerate(parent.codes):
        first.setdefault(code, k)
    keys = [_code_text(c) for c in layer.gdf[column]]
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(first.get(key, -1), []).append(i)
    codes = layer.codes
    for k, positions in sorted(groups.items()):
        pos = np.array(positions, dtype=np.intp)
        group = [codes[i] for i in pos]
        if k >= 0:
            layer.geoms[pos] = _clean(layer.geoms[pos], group, tol, within=parent.geoms[k])
        else:
            taken = shapely.union_all(parent.geoms)
            layer.geoms[pos] = _clean(layer.geoms[pos], group, tol, within=base, away=taken)
    _match_edges(layer.geoms, codes)

    def clip(i: int) -> str:
        if keys[i] in first:
            return f"its {level} {keys[i]}"
        return f"the area its {parent_name} leave free ({level} {keys[i] or 'unknown'} is missing)"

    return _overlap_reason(layer, clip, parent_of=lambda i: keys[i])


def _build_towns(
    communities: _Layer,
    missing: list[str],
    towns: _Layer | None,
    space: _Space,
    rows: list,
) -> _Layer:
    """Add the towns that communities name but that are absent: each their union."""
    frame_crs = communities.gdf.crs
    new_rows = []
    geoms = []
    for code in missing:
        mask = np.array([c == code for c in communities.gdf["town_code"]], dtype=bool)
        union = _polygonal(shapely.coverage_union_all(communities.geoms[mask]))
        geoms.append(union)
        new_rows.append({"code": code, "name": None})
        _row(
            rows,
            "towns",
            code,
            f"town missing for {int(mask.sum())} communities",
            "built as the union of its communities",
            space.area(union),
            union,
        )
    geoms_arr = np.array(geoms, dtype=object)
    added = gpd.GeoDataFrame(
        pd.DataFrame(new_rows),
        geometry=gpd.GeoSeries(space.to_crs(geoms_arr, frame_crs), crs=frame_crs),
    )
    if towns is None:
        return _Layer("towns", added, geoms_arr, geoms_arr.copy(), geoms_arr.copy())
    gdf = pd.concat([towns.gdf.to_crs(frame_crs), added], ignore_index=True)
    layer = _Layer(
        "towns",
        gpd.GeoDataFrame(gdf, geometry=towns.gdf.geometry.name, crs=frame_crs),
        np.concatenate([towns.raw, geoms_arr]),
        np.concatenate([towns.before, geoms_arr]),
        np.concatenate([towns.geoms, geoms_arr]),
    )
    _match_edges(layer.geoms, layer.codes)
    return layer


def _finish(layer: _Layer, space: _Space, rows: list) -> gpd.GeoDataFrame:
    """Back to the layer's CRS; what was not changed keeps its very vertices."""
    gdf = layer.gdf.copy()
    geoms = space.to_crs(layer.geoms, gdf.crs)
    untouched = np.array([g is r for g, r in zip(layer.geoms, layer.raw)], dtype=bool)
    if untouched.any():
        geoms[untouched] = np.asarray(gdf.geometry.values, dtype=object)[untouched]
    if layer.name in COVERAGE_LAYERS:
        _settle(layer, geoms, space, gdf.crs, rows)
    gdf[gdf.geometry.name] = gpd.GeoSeries(geoms, crs=gdf.crs, index=gdf.index)
    return gdf


def _settle(layer: _Layer, geoms: np.ndarray, space: _Space, crs: Any, rows: list) -> None:
    """Undo what rounding on the way back to ``crs`` broke (a flipped micro-sliver)."""
    keys = _coverage_keys(layer)
    codes = layer.codes
    before = geoms.copy()
    for key in sorted(set(keys.tolist())):
        pos = np.flatnonzero(keys == key)
        sub = geoms[pos]
        present = ~shapely.is_empty(sub)
        if shapely.is_valid(sub).all() and shapely.coverage_is_valid(sub[present]):
            continue
        bad = ~shapely.is_valid(sub)
        for k in np.flatnonzero(bad):
            fixed = shapely.make_valid(sub[k], method="structure", keep_collapsed=False)
            sub[k] = _polygonal(fixed)
        _match_edges(sub, [codes[i] for i in pos])
        geoms[pos] = sub
        log.info("layer '%s': matched edges again after the return to %s", layer.name, crs)
    changed = np.flatnonzero(~shapely.equals_exact(before, geoms, tolerance=0.0))
    if len(changed) == 0:
        return
    work_before = space.from_crs(gpd.GeoSeries(before[changed], crs=crs))
    work_after = space.from_crs(gpd.GeoSeries(geoms[changed], crs=crs))
    delta = space.area(work_after) - space.area(work_before)
    for k, i in enumerate(changed):
        if abs(delta[k]) >= _MIN_AREA_M2:
            _row(rows, layer.name, codes[i], "edge within snapping distance of a neighbour's",
                 "vertices snapped onto the shared edge", delta[k], None)


def _report(rows: list[dict[str, Any]], space: _Space) -> pd.DataFrame:
    if not rows:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in REPORT_COLUMNS})
        frame["area_m2"] = frame["area_m2"].astype(float)
        frame["geometry"] = pd.Series(dtype=object)
        return frame
    frame = pd.DataFrame(rows, columns=[*REPORT_COLUMNS, "geometry"])
    where = space.to_crs(frame["geometry"].to_numpy(), _REPORT_CRS)
    frame["geometry"] = where
    return frame
