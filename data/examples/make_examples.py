"""Write the example county of ``data/examples/``: one messy file per bureau, and a manifest.

The truth is a small cut of gridgeo's synthetic demo county
(:func:`gridgeo.datasets.demo_county`, ``seed=0, scale=0.3``: 2 towns, 7
communities, 900 buildings, 3 police beats). Each layer is then written the
way a Chinese county's bureaus hand it over:

================= =====================================================================
file              what is messy about it
================= =====================================================================
communities.shp   natural resources: GBK ``.dbf`` with no ``.cpg``, headers 社区名称 /
                  行政区划代码 (cut to 10 bytes by the Shapefile) / 类型 (城镇, 农村),
                  CGCS2000 3-degree Gauss–Krüger zone 38 *with* the zone number in the
                  eastings (EPSG:4526, ``38xxxxxx``); hand-digitised: two communities
                  redrawn with ±0.3 m of wobble (slivers and overlaps with their
                  neighbours) and one corner drawn as a bow-tie (a self-intersecting ring)
towns.shp         the same zone *without* the zone number (EPSG:4547) and no ``.prj``
                  at all: the manifest names the CRS
buildings.xlsx    一标三实 table from phones: 经度/纬度 in GCJ-02, 户数, 人口
beats.kml         police beats drawn on Baidu's map: BD-09 coordinates in a KML that
                  claims WGS84, the beat code in a 警格编号 field
boundary.geojson  the county outline, CGCS2000 lon/lat (the one clean file)
manifest.toml     which file is which layer, and the CRS of the files that do not say
================= =====================================================================

Run from the repository root to regenerate the shipped files::

    python data/examples/make_examples.py            # writes data/examples/
    python data/examples/make_examples.py OUT_DIR    # anywhere else

The tests import :func:`write_examples` to build the same files in a temporary folder
and compare what ``gridgeo import`` reads back with :func:`truth`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gridgeo.crs import from_wgs84
from gridgeo.datasets import demo_county

SEED, SCALE = 0, 0.3
#: CGCS2000 3-degree Gauss–Krüger zone 38 (central meridian 114°E), with / without zone number
PREFIXED, UNPREFIXED = "EPSG:4526", "EPSG:4547"
#: Hand-digitising wobble of the redrawn communities, metres (each axis)
WOBBLE_M = 0.3
#: Communities redrawn with wobble, and the one with a bow-tie, by row of the truth
WOBBLY, BOWTIE = (1, 3), 0
#: Overshoot of the bow-tie corner along both of its edges, metres
BOWTIE_M = 4.0

MANIFEST = """\
# The example county (synthetic, from gridgeo's demo county): one table per workspace layer.
# Paths are relative to this file. Import it with
#   gridgeo import data/examples/manifest.toml -o county.gpkg --report import.html

[boundary]
path = "boundary.geojson"

[towns]
path = "towns.shp"
# the .prj is missing: CGCS2000 3-degree Gauss–Krüger, 114°E, eastings without zone number
crs = "EPSG:4547"

[communities]
# GBK .dbf without .cpg and eastings with zone number 38: both read from the file itself
path = "communities.shp"

[buildings]
path = "buildings.xlsx"
# 经度/纬度 collected on phones
crs = "gcj02"

[beats]
path = "beats.kml"
# drawn on Baidu's map: the KML says WGS84, the coordinates are BD-09
crs = "bd09"
columns = { Name = "name", "警格编号" = "code" }
"""


def truth(seed: int = SEED, scale: float = SCALE) -> dict[str, gpd.GeoDataFrame]:
    """The clean layers the example files are written from, in EPSG:4490."""
    ws = demo_county(seed=seed, scale=scale, n_incidents=0)
    buildings = ws["buildings"][["id", "households", "population", "geometry"]]
    return {
        "boundary": ws["boundary"][["code", "name", "geometry"]],
        "towns": ws["towns"][["code", "name", "geometry"]],
        "communities": ws["communities"][["code", "town_code", "name", "type", "geometry"]],
        "buildings": buildings.reset_index(drop=True),
        "beats": ws["beats"][["code", "name", "geometry"]],
    }


def _wobble(geom: shapely.Geometry, rng: np.random.Generator) -> shapely.Geometry:
    """Redraw ``geom`` (metric) with every vertex moved by up to ``WOBBLE_M`` per axis.

    The offset is a smooth function of the position (a hand drifts to one side of
    the line for a few tens of metres, then to the other), so a ring stays closed
    and the redrawn edge alternates between slivers and overlaps with its neighbour.
    """
    phase = rng.uniform(0, 2 * np.pi, 4)
    wave = rng.uniform(25.0, 60.0, 4)  # metres

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        dx = np.sin(x / wave[0] + phase[0]) * np.cos(y / wave[1] + phase[1])
        dy = np.sin(y / wave[2] + phase[2]) * np.cos(x / wave[3] + phase[3])
        return xy + WOBBLE_M * np.column_stack([dx, dy])

    return shapely.transform(geom, move)


def _bowtie(poly: shapely.Polygon) -> shapely.Polygon:
    """Draw the sharpest convex corner of ``poly``'s shell past itself: a figure-eight loop.

    The corner ``v`` becomes ``v + d·u_in, v − d·u_out`` (``u`` the unit directions
    of the edges into and out of it): both edges still pass through ``v`` and cross
    there, enclosing a small triangle turned the wrong way.
    """
    ring = np.asarray(poly.exterior.coords)[:-1]
    n = len(ring)
    best, best_k = -1.0, None
    for k in range(n):
        a, v, b = ring[k - 1], ring[k], ring[(k + 1) % n]
        u_in, u_out = v - a, b - v
        if min(np.hypot(*u_in), np.hypot(*u_out)) < 3 * BOWTIE_M:
            continue
        u_in, u_out = u_in / np.hypot(*u_in), u_out / np.hypot(*u_out)
        turn = abs(float(u_in[0] * u_out[1] - u_in[1] * u_out[0]))
        if turn > best:
            best, best_k = turn, k
    assert best_k is not None, "no corner with edges long enough for a bow-tie"
    k = best_k
    v = ring[k]
    u_in = (v - ring[k - 1]) / np.hypot(*(v - ring[k - 1]))
    u_out = (ring[(k + 1) % n] - v) / np.hypot(*(ring[(k + 1) % n] - v))
    shell = [*ring[:k], v + BOWTIE_M * u_in, v - BOWTIE_M * u_out, *ring[k + 1 :]]
    return shapely.Polygon(shell, [i.coords for i in poly.interiors])


def messy_communities(communities: gpd.GeoDataFrame, *, seed: int = SEED) -> gpd.GeoDataFrame:
    """The communities as hand-digitised: wobbly edges and a bow-tie, in EPSG:4490."""
    rng = np.random.default_rng(seed)
    metric = communities.to_crs(PREFIXED)
    geoms = metric.geometry.to_numpy().copy()
    for row in WOBBLY:
        geoms[row] = _wobble(geoms[row], rng)
    assert shapely.get_type_id(geoms[BOWTIE]) == shapely.GeometryType.POLYGON
    geoms[BOWTIE] = _bowtie(geoms[BOWTIE])
    out = metric.set_geometry(gpd.GeoSeries(geoms, index=metric.index, crs=PREFIXED))
    return out.to_crs("EPSG:4490")


def _convert(geoms: np.ndarray, crs: str) -> np.ndarray:
    def move(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(from_wgs84(xy[:, 0], xy[:, 1], crs))

    return shapely.transform(geoms, move)


def write_examples(folder: str | Path) -> dict[str, gpd.GeoDataFrame]:
    """Write the example files and ``manifest.toml`` to ``folder``; return what they hold.

    Returns
    -------
    dict of str to GeoDataFrame
        :func:`truth`, plus ``"messy_communities"``: the communities exactly as
        drawn into ``communities.shp`` (wobble and bow-tie), in EPSG:4490.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layers = truth()
    messy = messy_communities(layers["communities"])
    kind = {"urban": "城镇", "rural": "农村"}

    comm = gpd.GeoDataFrame(
        {
            "社区名称": messy["name"],
            "行政区划代码": messy["code"],
            "类型": messy["type"].map(kind),
        },
        geometry=messy.geometry,
    ).to_crs(PREFIXED)
    with warnings.catch_warnings():
        # GDAL cuts 行政区划代码 to 10 bytes (行政区划代), as real bureau files have it, and says so
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(comm, folder / "communities.shp", encoding="GBK")
    (folder / "communities.cpg").unlink()

    towns = gpd.GeoDataFrame(
        {"名称": layers["towns"]["name"], "代码": layers["towns"]["code"]},
        geometry=layers["towns"].geometry,
    ).to_crs(UNPREFIXED)
    pyogrio.write_dataframe(towns, folder / "towns.shp", encoding="UTF-8")
    (folder / "towns.prj").unlink()

    b = layers["buildings"]
    lon, lat = from_wgs84(b.geometry.x.to_numpy(), b.geometry.y.to_numpy(), "gcj02")
    table = pd.DataFrame(
        {
            "编号": b["id"],
            "经度": lon,
            "纬度": lat,
            "户数": b["households"].astype(int),
            "人口": b["population"].astype(int),
        }
    )
    table.to_excel(folder / "buildings.xlsx", index=False, sheet_name="一标三实")

    beats = layers["beats"]
    kml = gpd.GeoDataFrame(
        {"Name": beats["name"], "警格编号": beats["code"]},
        geometry=_convert(beats.geometry.to_numpy(), "bd09"),
        crs="EPSG:4326",
    )
    pyogrio.write_dataframe(kml, folder / "beats.kml", driver="KML", layer="beats")

    layers["boundary"].to_file(folder / "boundary.geojson", driver="GeoJSON", engine="pyogrio")
    (folder / "manifest.toml").write_text(MANIFEST, encoding="utf-8")
    return {**layers, "messy_communities": messy}


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    write_examples(out)
    for f in sorted(out.iterdir()):
        print(f"{f.stat().st_size:>8}  {f.name}")
