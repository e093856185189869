"""The import report: one self-contained HTML page with a map of every fix.

:func:`write_report` turns an :class:`~gridgeo.io.importer.ImportResult` into a
page a planner opens by double-click, on a machine without internet: Leaflet
(the copy gridgeo ships) and the data are inlined, and there is no basemap to
fetch. The page shows

- the layers as imported, and every change :func:`~gridgeo.io.conform.conform`
  made, in red: the area that moved (the difference between the geometry as
  read and as written) and a marker at it, so a sliver of a few decimetres is
  found at county zoom;
- the table of changes (``layer``, ``code``, ``problem``, ``action``,
  ``area_m2``); a click on a row zooms the map to it;
- what :func:`~gridgeo.io.read_layer` detected or mapped per layer: the
  encoding, the CRS and its conversion, the coordinate and header columns.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

if TYPE_CHECKING:
    from gridgeo.io.importer import ImportResult

__all__ = ["fix_geometries", "report_html", "write_report"]

#: At most this many points of a layer are drawn (evenly sampled); the rest are counted.
MAX_POINTS = 3000
#: Coordinate decimals on the map (1e-7° ≈ 1 cm).
DECIMALS = 7

_STYLE = {  # layer → Leaflet path options
    "boundary": {"color": "#222222", "weight": 2.5, "fill": False},
    "towns": {"color": "#1f4e99", "weight": 2, "fill": False},
    "communities": {"color": "#4a7fc1", "weight": 1.2, "fillColor": "#9ec3ea", "fillOpacity": 0.25},
    "grids": {"color": "#777777", "weight": 0.8, "fill": False},
    "beats": {"color": "#7b3fa0", "weight": 1.5, "dashArray": "6 4", "fill": False},
    "zones": {"color": "#2e8b57", "weight": 1, "dashArray": "2 4", "fill": False},
    "exclusive": {"color": "#b8860b", "weight": 1, "fillOpacity": 0.2},
    "streets": {"color": "#999999", "weight": 1},
    "buildings": {"color": "#c06000", "radius": 2, "weight": 0, "fillOpacity": 0.7},
    "markets": {"color": "#888800", "radius": 2, "weight": 0, "fillOpacity": 0.7},
    "incidents": {"color": "#555555", "radius": 2, "weight": 0, "fillOpacity": 0.7},
}
_DEFAULT_STYLE = {"color": "#555555", "weight": 1, "fill": False, "radius": 2}


@cache
def _leaflet() -> tuple[str, str]:
    """Leaflet's script and stylesheet, the stylesheet's images inlined as ``data:`` URLs."""
    folder = resources.files("gridgeo") / "serve" / "static" / "leaflet"
    js = (folder / "leaflet.js").read_text(encoding="utf-8")
    css = (folder / "leaflet.css").read_text(encoding="utf-8")

    def inline(m: re.Match[str]) -> str:
        image = folder / "images" / m.group(1)
        if not image.is_file():  # marker-icon.png is not shipped: no marker uses it here
            return "url(data:,)"
        data = base64.b64encode(image.read_bytes()).decode()
        return f"url(data:image/png;base64,{data})"

    css = re.sub(r"url\(images/([\w.-]+)\)", inline, css)
    return js.replace("</script", "<\\/script"), css


def _rounded(geom: shapely.Geometry) -> dict[str, Any]:
    geom = shapely.transform(geom, lambda c: np.round(c, DECIMALS))
    return json.loads(shapely.to_geojson(geom))


def _feature_point(gdf: gpd.GeoDataFrame | None, code: Any) -> shapely.Geometry | None:
    """A point on the features of ``gdf`` whose ``code`` is ``code`` (None if there are none)."""
    if gdf is None or "code" not in gdf.columns or pd.isna(code):
        return None
    geoms = gdf.geometry.to_numpy()[gdf["code"].astype(str).to_numpy() == str(code)]
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if not len(geoms):
        return None
    return shapely.point_on_surface(shapely.union_all(geoms))


def _invalid_points(gdf: gpd.GeoDataFrame | None, code: Any) -> shapely.Geometry | None:
    """Where GEOS finds the features of ``gdf`` with ``code`` invalid (a bow-tie's crossing)."""
    if gdf is None or "code" not in gdf.columns or pd.isna(code):
        return None
    geoms = gdf.geometry.to_numpy()[gdf["code"].astype(str).to_numpy() == str(code)]
    points = []
    for reason in shapely.is_valid_reason(geoms):
        m = re.search(r"\[(\S+) (\S+)\]", str(reason or ""))
        if m and not str(reason).startswith("Valid"):
            points.append(shapely.Point(float(m.group(1)), float(m.group(2))))
    return shapely.MultiPoint(points) if len(points) > 1 else (points[0] if points else None)


def _marker(geom: shapely.Geometry) -> shapely.Geometry:
    """A point on the largest part of ``geom``."""
    parts = shapely.get_parts(geom)
    biggest = parts[int(np.argmax(shapely.area(parts)))] if len(parts) else geom
    return shapely.point_on_surface(biggest)


def fix_geometries(result: ImportResult) -> gpd.GeoDataFrame:
    """Where each change of an import is: one row per row of ``result.changes``.

    The geometry is the one :func:`~gridgeo.io.conform.conform` reports for the
    change (the area that moved); the repair of an invalid geometry is placed
    where GEOS found it invalid (a bow-tie's crossing), and a change without a
    geometry (an attribute derived, vertices snapped) at a point on its
    feature, as written. ``marker`` is a point on the largest part.

    Parameters
    ----------
    result
        What :func:`~gridgeo.io.importer.import_workspace` returned.

    Returns
    -------
    geopandas.GeoDataFrame
        Indexed like ``result.changes`` (reset to 0…n-1), columns ``marker`` and
        the geometry, in EPSG:4490; a change whose feature is not found has no
        row.

    Examples
    --------
    >>> import pandas as pd, geopandas as gpd, shapely
    >>> from gridgeo.io.importer import ImportResult, Manifest
    >>> beats = gpd.GeoDataFrame({"code": ["J1"]}, geometry=[shapely.box(115, 25, 115.01, 25.01)],
    ...                          crs="EPSG:4490")
    >>> changes = pd.DataFrame({"layer": ["beats", "beats"], "code": ["J1", "J9"],
    ...     "problem": ["gap", "?"], "action": ["absorbed", "?"], "area_m2": [0.2, 0.0],
    ...     "geometry": [shapely.box(115.01, 25, 115.01001, 25.01), None]})
    >>> result = ImportResult(path=None, manifest=None, layers={"beats": beats},
    ...     read={"beats": beats}, changes=changes, tolerance_m=1.0)
    >>> fixes = fix_geometries(result)
    >>> fixes.index.tolist(), fixes.geom_type.tolist()
    ([0], ['Polygon'])
    """
    changes = result.changes.reset_index(drop=True)
    rows: list[int] = []
    geoms: list[shapely.Geometry] = []
    markers: list[shapely.Geometry] = []
    given = changes["geometry"] if "geometry" in changes.columns else pd.Series(None, changes.index)
    for i, row in changes.iterrows():
        geom = given[i]
        if str(row.get("problem", "")).startswith("invalid"):
            geom = _invalid_points(result.read.get(str(row.get("layer"))), row.get("code")) or geom
        if geom is None or not isinstance(geom, shapely.Geometry) or geom.is_empty:
            layer = str(row.get("layer"))
            geom = _feature_point(result.layers.get(layer), row.get("code"))
            if geom is None:
                geom = _feature_point(result.read.get(layer), row.get("code"))
            if geom is None:
                continue
        rows.append(int(i))
        geoms.append(geom)
        markers.append(_marker(geom))
    return gpd.GeoDataFrame(
        {"marker": gpd.GeoSeries(markers, index=rows, crs="EPSG:4490")},
        geometry=gpd.GeoSeries(geoms, index=rows, crs="EPSG:4490"),
    )


def _layer_features(name: str, gdf: gpd.GeoDataFrame) -> tuple[list[dict[str, Any]], int]:
    """GeoJSON features of a layer for the map (points sampled to :data:`MAX_POINTS`)."""
    geoms = gdf.geometry.to_numpy()
    keep = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
    points = bool(len(keep)) and bool(
        np.all(shapely.get_type_id(geoms[keep]) == shapely.GeometryType.POINT)
    )
    dropped = 0
    if points and len(keep) > MAX_POINTS:
        dropped = len(keep) - MAX_POINTS
        keep = keep[np.linspace(0, len(keep) - 1, MAX_POINTS).astype(int)]
    features = []
    for i in keep:
        props = {}
        for col in ("code", "name"):
            if col in gdf.columns and not pd.isna(gdf[col].iloc[i]):
                props[col] = str(gdf[col].iloc[i])
        features.append({"type": "Feature", "properties": props, "geometry": _rounded(geoms[i])})
    return features, dropped


def _as_read(result: ImportResult) -> list[dict[str, Any]]:
    """The changed polygons as they were drawn (a bow-tie shows as one), for the map."""
    features = []
    if result.changes.empty:
        return features
    for layer, codes in result.changes.groupby("layer")["code"]:
        gdf = result.read.get(str(layer))
        if gdf is None or "code" not in gdf.columns:
            continue
        wanted = set(codes.dropna().astype(str))
        for code, geom in zip(gdf["code"].astype(str), gdf.geometry.to_numpy()):
            if code in wanted and geom is not None and not geom.is_empty:
                props = {"code": code, "layer": str(layer)}
                shape = _rounded(geom)
                features.append({"type": "Feature", "properties": props, "geometry": shape})
    return features


def _e(value: Any) -> str:
    missing = value is None or (np.isscalar(value) and pd.isna(value))
    return html.escape("" if missing else str(value))


def _area(value: Any) -> str:
    """An area in m² to read: 2 decimals, or 2 significant digits under 1 cm²…1 dm²."""
    if value is None or pd.isna(value):
        return ""
    a = float(value)
    return f"{a:,.2f}" if a == 0 or abs(a) >= 0.01 else f"{a:.2g}"


def _table(head: list[str], rows: list[list[str]], *, cls: str = "") -> str:
    """An HTML table; ``rows`` hold HTML already escaped."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _names(result: ImportResult) -> dict[tuple[str, str], str]:
    out = {}
    for layer, gdf in result.layers.items():
        if "code" in gdf.columns and "name" in gdf.columns:
            for code, name in zip(gdf["code"].astype(str), gdf["name"]):
                out[(layer, code)] = "" if pd.isna(name) else str(name)
    return out


def report_html(result: ImportResult, *, title: str | None = None) -> str:
    """The import report as one self-contained HTML page (see the module docstring).

    Parameters
    ----------
    result
        What :func:`~gridgeo.io.importer.import_workspace` returned.
    title
        Page title (default: the workspace file's name).

    Returns
    -------
    str
        The page; it loads nothing from anywhere.
    """
    js, css = _leaflet()
    title = title or f"Import of {result.path.name}"
    manifest_dir = result.manifest.path.parent
    changes = result.changes.reset_index(drop=True)
    fixes = fix_geometries(result)
    layers = []
    notes = []
    for name, gdf in result.layers.items():
        features, dropped = _layer_features(name, gdf)
        if dropped:
            notes.append(f"{name}: {len(features)} of {len(features) + dropped} points drawn")
        layers.append(
            {"name": name, "style": _STYLE.get(name, _DEFAULT_STYLE), "features": features}
        )
    fix_features = [
        {
            "type": "Feature",
            "properties": {"row": int(i), "marker": _rounded(f.marker)["coordinates"][::-1]},
            "geometry": _rounded(f.geometry),
        }
        for i, f in zip(fixes.index, fixes.itertuples())
    ]
    data = {"layers": layers, "asRead": _as_read(result), "fixes": fix_features}
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")

    names = _names(result)
    change_rows = []
    for i, row in changes.iterrows():
        show = f'<a href="#map" class="show" data-row="{i}">show</a>' if i in fixes.index else "—"
        area = row.get("area_m2")
        change_rows.append(
            [
                show,
                _e(row.get("layer")),
                _e(row.get("code")),
                _e(names.get((str(row.get("layer")), str(row.get("code"))), "")),
                _e(row.get("problem")),
                _e(row.get("action")),
                _area(area),
            ]
        )
    if change_rows:
        changes_html = _table(
            ["", "layer", "code", "name", "problem", "action", "area m²"],
            change_rows,
            cls="changes",
        )
    else:
        changes_html = "<p>No changes: the layers were a clean coverage as read.</p>"

    summary_rows = []
    read_rows = []
    counts = changes["layer"].astype(str).value_counts() if len(changes) else pd.Series(dtype=int)
    for name, source in result.manifest.layers.items():
        try:
            shown = os.path.relpath(source.path, manifest_dir)
        except ValueError:  # another drive
            shown = str(source.path)
        n_read = len(result.read[name]) if name in result.read else 0
        n_out = len(result.layers[name]) if name in result.layers else 0
        summary_rows.append(
            [
                f"<b>{_e(name)}</b>",
                f"<code>{_e(shown)}</code>",
                f"{n_read:,}",
                f"{n_out:,}",
                f"{int(counts.get(name, 0)):,}",
            ]
        )
        lines = result.read_reports.get(name, [])
        items = "".join(f"<li>{_e(line)}</li>" for line in lines) or "<li>nothing to map</li>"
        read_rows.append([f"<b>{_e(name)}</b>", f"<ul>{items}</ul>"])
    for name in result.layers:
        if name not in result.manifest.layers:  # made by conform (e.g. towns from codes)
            made = [f"<b>{_e(name)}</b>", "made by conform", "0"]
            made += [f"{len(result.layers[name]):,}", f"{int(counts.get(name, 0)):,}"]
            summary_rows.append(made)
    summary = _table(
        ["layer", "file", "rows read", "rows written", "changes"], summary_rows, cls="summary"
    )
    reads = _table(["layer", "what the reader detected and mapped"], read_rows, cls="reads")
    note = "".join(f"<p class='note'>{_e(n)}</p>" for n in notes)
    header = (
        f"manifest <code>{_e(result.manifest.path)}</code> → workspace "
        f"<code>{_e(result.path)}</code>; tolerance {result.tolerance_m:g} m; "
        f"{len(changes)} changes; {datetime.now():%Y-%m-%d %H:%M}."
    )
    return _PAGE.substitute(
        title=_e(title),
        leaflet_css=css,
        leaflet_js=js,
        style=_CSS,
        header=header,
        note=note,
        summary=summary,
        changes=changes_html,
        reads=reads,
        payload=payload,
        script=_SCRIPT,
    )


_CSS = """
body { font-family: system-ui, "Noto Sans CJK SC", "WenQuanYi Zen Hei", sans-serif;
       margin: 0; color: #222; background: #fff; }
header { padding: 12px 20px; border-bottom: 1px solid #ddd; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
header p { margin: 0; color: #555; font-size: 13px; }
main { padding: 0 20px 40px; }
#map { height: 62vh; min-height: 380px; border: 1px solid #ccc; margin-top: 12px;
       background: #eef1f4; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
table.changes td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
table.reads ul { margin: 0; padding-left: 18px; }
tr.selected td { background: #ffe9e6; }
a.show { color: #c0392b; }
.note { color: #777; font-size: 12px; }
.legend-fix { display: inline-block; width: 12px; height: 12px; border-radius: 6px;
              background: rgba(214, 39, 40, .35); border: 2px solid #d62728;
              vertical-align: middle; }
"""

_SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const map = L.map("map", { zoomSnap: 0.25, maxZoom: 22 });
  const overlays = {};
  const byName = {};
  let bounds = null;
  for (const layer of data.layers) {
    const style = layer.style;
    const g = L.geoJSON(layer.features, {
      style: () => style,
      pointToLayer: (f, ll) => L.circleMarker(ll, style),
      onEachFeature: (f, l) => {
        const text = [f.properties.code, f.properties.name].filter(Boolean).join(" ");
        if (text) l.bindTooltip(layer.name + ": " + text);
      },
    }).addTo(map);
    const swatch = "<span style='color:" + style.color + "'>&#9632;</span> ";
    overlays[swatch + layer.name] = g;
    byName[layer.name] = g;
    const b = g.getBounds();
    if (b.isValid()) {
      bounds = bounds ? bounds.extend(b) : L.latLngBounds(b.getSouthWest(), b.getNorthEast());
    }
  }
  const asRead = L.geoJSON(data.asRead, {
    style: () => ({ color: "#333333", weight: 1, dashArray: "3 3", fill: false }),
    onEachFeature: (f, l) => {
      l.bindTooltip("as read: " + f.properties.layer + " " + f.properties.code);
    },
  });
  overlays["<span style='color:#333'>&#9633;</span> changed, as read"] = asRead;
  // one red shape and one marker per change row; the marker finds a sliver at county zoom
  const rows = Array.from(document.querySelectorAll("table.changes tbody tr"));
  const fixOfRow = {};
  const fixes = L.layerGroup();
  for (const f of data.fixes) {
    const c = rows[f.properties.row].children;
    const area = c[6].innerHTML ? " (" + c[6].innerHTML + " m²)" : "";
    const popup = "<b>" + [1, 2, 3].map((k) => c[k].innerHTML).join(" ") + "</b><br>"
      + c[4].innerHTML + "<br>→ " + c[5].innerHTML + area;
    const shape = L.geoJSON(f, {
      style: () => ({ color: "#d62728", weight: 1, fillColor: "#d62728", fillOpacity: 0.5 }),
      pointToLayer: (p, ll) => L.circleMarker(ll, { radius: 3, color: "#d62728", weight: 2 }),
    }).bindPopup(popup);
    const marker = L.circleMarker(f.properties.marker, {
      radius: 7, color: "#d62728", weight: 2, fillColor: "#d62728", fillOpacity: 0.3,
    }).bindPopup(popup);
    fixes.addLayer(shape);
    fixes.addLayer(marker);
    fixOfRow[f.properties.row] = { shape: shape, marker: marker };
  }
  fixes.addTo(map);
  overlays["<span style='color:#d62728'>&#9632;</span> changes"] = fixes;
  L.control.layers(null, overlays, { collapsed: false }).addTo(map);
  L.control.scale({ imperial: false }).addTo(map);
  if (bounds) map.fitBounds(bounds.pad(0.02)); else map.setView([35, 105], 4);
  document.querySelectorAll("a.show").forEach((a) => a.addEventListener("click", () => {
    const f = fixOfRow[Number(a.dataset.row)];
    rows.forEach((tr) => tr.classList.remove("selected"));
    a.closest("tr").classList.add("selected");
    const b = f.shape.getBounds();
    const where = b.isValid() ? b.pad(0.5) : L.latLngBounds([f.marker.getLatLng()]);
    map.fitBounds(where, { maxZoom: 21 });
    asRead.addTo(map); // the outline as drawn, beside what it became
    f.marker.openPopup();
  }));
  window.gridgeoImportReport = {
    map: map, layers: byName, asRead: asRead, changes: fixes, fixes: fixOfRow,
  };
})();
"""

_PAGE = Template(
    """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$leaflet_css</style>
<style>$style</style>
<script>$leaflet_js</script>
</head>
<body>
<header>
<h1>$title</h1>
<p>$header <span class="legend-fix"></span> a change (click it for what was done)</p>
</header>
<main>
<div id="map"></div>
$note
<h2>Layers</h2>
$summary
<h2>Changes</h2>
$changes
<h2>What was read</h2>
$reads
</main>
<script type="application/json" id="report-data">$payload</script>
<script>$script</script>
</body>
</html>
"""
)


def write_report(result: ImportResult, path: str | os.PathLike[str]) -> Path:
    """Write :func:`report_html` of ``result`` to ``path`` (UTF-8) and return the path.

    Parameters
    ----------
    result
        What :func:`~gridgeo.io.importer.import_workspace` returned.
    path
        The ``.html`` file to write.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import pathlib, tempfile, geopandas as gpd, shapely
    >>> from gridgeo.io.importer import import_workspace
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> gpd.GeoDataFrame({"代码": ["JW1"], "名称": ["一区"]},
    ...     geometry=[shapely.box(114.90, 25.40, 114.91, 25.41)], crs="EPSG:4490",
    ... ).to_file(folder / "beats.geojson")
    >>> _ = (folder / "m.toml").write_text('[beats]\\npath = "beats.geojson"\\n')
    >>> page = write_report(import_workspace(folder / "m.toml", folder / "ws.gpkg"),
    ...                     folder / "import.html")
    >>> text = page.read_text(encoding="utf-8")
    >>> "Leaflet 1.9.4" in text, "一区" in text, "http://" in text.split("<body>")[1]
    (True, True, False)
    """
    p = Path(path)
    p.write_text(report_html(result), encoding="utf-8")
    return p
