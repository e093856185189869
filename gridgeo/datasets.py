"""A deterministic synthetic county for demos, tests and benchmarks.

:func:`demo_county` builds a complete workspace (the layers of
:mod:`gridgeo.io.workspace`) around Xinfeng county, Jiangxi (county code
360722, ≈114.93°E 25.40°N). Everything is synthetic but shaped like the
Xinfeng grid pilot at ``scale=1``: a county seat (城关镇, here 嘉定镇) of 7
urban communities on a street grid, and rural towns of villages (村) with
hamlets; ~3,000 buildings and
~25-30k households; 60 base grids; 10 police beats; zones of five
departments; ~2,000 market entities; 7,000 incident reports over 2024-2025.

Exactness by construction: communities, towns and the county outline are
unions of the same polygonized faces as the grids, so grids tile
communities, communities tile towns and towns tile the county with no gap or
overlap (edges are noded on a 1 µm grid; areas agree to ~1e-6 m²). Police
beats and the traffic police's zones are cut independently (they do not
follow communities) but tile the county as well. Urban grids are unions of
whole street blocks; village grids are Voronoi cells of household centres.

The ``grids`` layer plays the county's old, hand-drawn grids: they follow
streets and community lines but were not cut to a household ceiling, so
several urban grids hold far more than 500 households and a few are in two
parts. :func:`gridgeo.check_grids` flags them and :func:`gridgeo.make_grids`
cuts the same communities afresh into grids that pass (the README shows both).

Examples
--------
>>> layers = demo_county(seed=0, scale=0.3, n_incidents=50)
>>> sorted(layers)[:4]
['beats', 'boundary', 'buildings', 'communities']
>>> layers["grids"].crs.to_epsg(), layers["boundary"]["code"].iloc[0]
(4490, '360722')
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from gridgeo._demo.common import reading_order, to_lonlat, xy_to_lonlat
from gridgeo._demo.grids import Hierarchy, build_grids
from gridgeo._demo.incidents import Incidents, build_incidents
from gridgeo._demo.names import URBAN_NAMES, place_names
from gridgeo._demo.people import Buildings, Markets, build_buildings, build_markets
from gridgeo._demo.territory import Territory, build_territory
from gridgeo._demo.zones import Zones, build_beats, build_exclusive, build_zones
from gridgeo.codes import CATEGORY_DEPARTMENT, DEPARTMENTS
from gridgeo.crs import from_wgs84
from gridgeo.errors import InputError

__all__ = ["COUNTY_CODE", "LAYERS", "SCALE_350K", "county_350k", "demo_county"]

log = logging.getLogger(__name__)

#: County code (GB/T 2260) and name of the demo county.
COUNTY_CODE, COUNTY_NAME = "360722", "信丰县"
#: Layer names of the demo workspace, in the order they are returned.
LAYERS = (
    "boundary",
    "towns",
    "communities",
    "grids",
    "beats",
    "zones",
    "buildings",
    "incidents",
    "streets",
    "markets",
    "exclusive",
)
#: Incident reports at scale 1 (Xinfeng: ~7,000).
N_INCIDENTS = 7000
#: The scale giving ≈350,000 households (≈1.0 M people): a large county.
SCALE_350K = 12.0
MIN_SCALE, MAX_SCALE = 0.05, 40.0
CRS = "EPSG:4490"


def _check_args(seed: Any, scale: Any, n_incidents: Any) -> np.random.Generator:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise InputError(f"scale must be a number, got {scale!r}; 1.0 is the Xinfeng pilot size")
    if not (math.isfinite(scale) and MIN_SCALE <= scale <= MAX_SCALE):
        raise InputError(
            f"scale={scale!r} is out of range; use {MIN_SCALE} ≤ scale ≤ {MAX_SCALE} "
            f"(1.0 ≈ Xinfeng, SCALE_350K={SCALE_350K} ≈ 350k households)"
        )
    if n_incidents is not None and (
        isinstance(n_incidents, bool)
        or not isinstance(n_incidents, (int, np.integer))
        or n_incidents < 0
    ):
        raise InputError(f"n_incidents must be an int ≥ 0 or None, got {n_incidents!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, np.random.Generator)):
        raise InputError(f"seed must be an int or a numpy.random.Generator, got {seed!r}")
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise InputError(f"seed must be ≥ 0, got {seed}")
    return np.random.default_rng(seed)


def _frame(data: dict[str, Any], geoms: Any) -> gpd.GeoDataFrame:
    geometry = gpd.GeoSeries(to_lonlat(np.asarray(geoms, dtype=object)), crs=CRS)
    return gpd.GeoDataFrame(data, geometry=geometry.values, crs=CRS)


def _ids(prefix: str, n: int, width: int) -> pd.Series:
    """``prefix`` + 1-based zero-padded serials, e.g. ``B000001``."""
    if n == 0:
        return pd.Series([], dtype="str")
    return _str(np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width)))


def _str(values: Any) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object), dtype="str")


def _admin_layers(
    t: Territory, h: Hierarchy, b: Buildings, rng: np.random.Generator
) -> tuple[dict[str, gpd.GeoDataFrame], np.ndarray, np.ndarray]:
    """boundary, towns, communities, grids; and the code of each community and grid."""
    town_geoms = np.asarray(h.towns, dtype=object)
    txy = shapely.get_coordinates(shapely.point_on_surface(town_geoms))
    urban_town = np.arange(t.n_towns) < t.n_urban_towns
    town_serial = np.empty(t.n_towns, dtype=np.intp)
    for group, first in ((urban_town, 1), (~urban_town, int(urban_town.sum()) + 1)):
        idx = np.flatnonzero(group)
        town_serial[idx] = first + reading_order(txy[idx, 0], txy[idx, 1])
    town_code = np.array([f"{COUNTY_CODE}{s:03d}" for s in town_serial], dtype=object)
    taken: set[str] = {n + "村" for n in URBAN_NAMES}
    town_name = np.empty(t.n_towns, dtype=object)
    seat_order = np.flatnonzero(urban_town)[np.argsort(town_serial[urban_town])]
    town_name[seat_order[0]] = "嘉定镇"
    taken.add("嘉定镇")
    town_name[seat_order[1:]] = place_names(len(seat_order) - 1, rng, suffix="街道", taken=taken)
    rural_order = np.flatnonzero(~urban_town)[np.argsort(town_serial[~urban_town])]
    town_name[rural_order] = place_names(len(rural_order), rng, suffix="镇", taken=taken)

    n_comm = len(h.communities)
    comm_geoms = np.asarray(h.communities, dtype=object)
    cxy = shapely.get_coordinates(shapely.point_on_surface(comm_geoms))
    is_urban = np.arange(n_comm) < t.n_urban
    comm_serial = np.empty(n_comm, dtype=np.intp)
    for town in range(t.n_towns):
        idx = np.flatnonzero(t.town_of == town)
        first = 1 if urban_town[town] else 200
        comm_serial[idx] = first + reading_order(cxy[idx, 0], cxy[idx, 1])
    comm_code = np.array(
        [f"{town_code[t.town_of[c]]}{comm_serial[c]:03d}" for c in range(n_comm)], dtype=object
    )
    comm_name = np.empty(n_comm, dtype=object)
    urban_ids = np.flatnonzero(is_urban)[np.argsort(comm_code[is_urban])]
    if len(urban_ids) <= len(URBAN_NAMES):
        comm_name[urban_ids] = [f"{n}社区" for n in URBAN_NAMES[: len(urban_ids)]]
    else:
        comm_name[urban_ids] = place_names(len(urban_ids), rng, suffix="社区", taken=taken)
    rural_ids = np.flatnonzero(~is_urban)[np.argsort(comm_code[~is_urban])]
    comm_name[rural_ids] = place_names(len(rural_ids), rng, suffix="村", taken=taken)

    grid_code = np.array(
        [f"{comm_code[c]}{s:03d}" for c, s in zip(h.grid_community, h.grid_serial)], dtype=object
    )
    n_grids = len(h.grids)
    hh = np.bincount(h.building_grid, weights=b.households, minlength=n_grids).astype(np.int64)
    pop = np.bincount(h.building_grid, weights=b.population, minlength=n_grids).astype(np.int64)

    boundary = _frame({"code": [COUNTY_CODE], "name": [COUNTY_NAME]}, [h.county])
    t_order = np.argsort(town_code)
    towns = _frame(
        {"code": _str(town_code[t_order]), "name": _str(town_name[t_order])}, town_geoms[t_order]
    )
    c_order = np.argsort(comm_code)
    communities = _frame(
        {
            "code": _str(comm_code[c_order]),
            "town_code": _str(town_code[t.town_of[c_order]]),
            "name": _str(comm_name[c_order]),
            "type": _str(np.where(is_urban, "urban", "rural")[c_order]),
        },
        comm_geoms[c_order],
    )
    g_order = np.argsort(grid_code)
    gc = h.grid_community[g_order]
    grids = _frame(
        {
            "code": _str(grid_code[g_order]),
            "community_code": _str(comm_code[gc]),
            "households": hh[g_order],
            "population": pop[g_order],
            "level": _str(np.full(n_grids, "base")),
            "name": _str([f"{comm_name[c]}第{s}网格" for c, s in zip(gc, h.grid_serial[g_order])]),
            "town_code": _str(town_code[t.town_of[gc]]),
        },
        np.asarray(h.grids, dtype=object)[g_order],
    )
    layers = {"boundary": boundary, "towns": towns, "communities": communities, "grids": grids}
    return layers, comm_code, grid_code


def _people_layers(
    b: Buildings, m: Markets, comm_code: np.ndarray, grid_code: np.ndarray, h: Hierarchy
) -> dict[str, gpd.GeoDataFrame]:
    n = len(b.xy)
    buildings = _frame(
        {
            "id": _ids("B", n, 6),
            "households": b.households,
            "population": b.population,
            "community_code": _str(comm_code[b.community]),
            "kind": _str(b.kind),
            "grid_code": _str(grid_code[h.building_grid]),
        },
        shapely.points(b.xy),
    )
    nm = len(m.xy)
    tree = shapely.STRtree(np.asarray(h.communities, dtype=object))
    mi, mj = tree.query(shapely.points(m.xy), predicate="intersects")
    first = np.unique(mi, return_index=True)[1]
    mcomm = np.full(nm, None, dtype=object)
    mcomm[mi[first]] = comm_code[mj[first]]
    markets = _frame(
        {
            "id": _ids("M", nm, 6),
            "name": _str(m.name),
            "kind": _str(m.kind),
            "community_code": pd.Series(mcomm, dtype="str"),
        },
        shapely.points(m.xy),
    )
    return {"buildings": buildings, "markets": markets}


#: Share of the demo's reports still open at its end (stuck cases, long overdue by now).
OPEN_SHARE = 0.01
_OPEN_STATUSES = ("立案", "派遣", "处置", "反馈", "核查")


def _lifecycle(
    reported: NDArray[np.datetime64], rng: np.random.Generator
) -> tuple[NDArray[np.object_], pd.Series]:
    """Status and close time of each report: most closed within days, a few still open."""
    n = len(reported)
    hours = np.minimum(rng.lognormal(np.log(40.0), 0.9, n), 24 * 40)  # median ~ 2 days
    closed_at = pd.Series(reported, dtype="datetime64[ns]") + pd.to_timedelta(hours, "h")
    is_open = rng.uniform(size=n) < OPEN_SHARE
    status = np.full(n, "结案", dtype=object)
    status[is_open] = rng.choice(_OPEN_STATUSES, size=int(is_open.sum()))
    return status, closed_at.dt.round("s").where(~is_open, pd.NaT)


def _incident_layer(inc: Incidents, rng: np.random.Generator) -> gpd.GeoDataFrame:
    n = len(inc.xy)
    status, closed_at = _lifecycle(inc.reported_at, rng)
    lon, lat = xy_to_lonlat(inc.xy[:, 0], inc.xy[:, 1])
    lng, glat = from_wgs84(lon, lat, "gcj02")
    width = max(7, len(str(n)))
    category = pd.Series(inc.category, dtype="str")
    return gpd.GeoDataFrame(
        {
            "id": _ids("E", n, width),
            "category": category,
            "department": category.map(CATEGORY_DEPARTMENT).astype("str"),
            "reported_at": pd.Series(inc.reported_at, dtype="datetime64[ns]"),
            "lng": lng,
            "lat": glat,
            "source": _str(inc.source),
            "status": pd.Series(status, dtype="str"),
            "closed_at": closed_at,
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs=CRS,
    )


def _zone_layer(z: Zones) -> gpd.GeoDataFrame:
    order = sorted(
        range(len(z.code)), key=lambda i: (list(DEPARTMENTS).index(z.department[i]), z.code[i])
    )
    return _frame(
        {
            "department": _str([z.department[i] for i in order]),
            "code": _str([z.code[i] for i in order]),
            "name": _str([z.name[i] for i in order]),
        },
        [z.geometry[i] for i in order],
    )


def _beat_layer(
    beats: list, seed_bld: np.ndarray, b: Buildings, comm_town_name: dict[int, str]
) -> gpd.GeoDataFrame:
    geoms = np.asarray(beats, dtype=object)
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    order = np.argsort(reading_order(xy[:, 0], xy[:, 1]))
    names: list[str] = []
    seen: dict[str, int] = {}
    for i in order:
        town = comm_town_name[int(b.community[seed_bld[i]])]
        seen[town] = seen.get(town, 0) + 1
        names.append(f"{town.removesuffix('镇').removesuffix('街道')}第{seen[town]}警务区")
    return _frame(
        {"code": _str([f"JW{k + 1:03d}" for k in range(len(order))]), "name": _str(names)},
        geoms[order],
    )


def _street_layer(t: Territory, county: shapely.Geometry) -> gpd.GeoDataFrame:
    roads = shapely.intersection(np.asarray(t.roads, dtype=object), county)
    river = shapely.intersection(t.river, county)
    road_names = ["105国道", "省道S223", "县道X451", "县道X452"]
    names = [road_names[i % len(road_names)] for i in range(len(roads))]
    kinds = ["main"] * len(roads)
    words = [w for w in URBAN_NAMES]
    for i in range(len(t.streets)):
        names.append(f"{words[i % len(words)]}{'路' if i % 2 else '街'}{i // len(words) or ''}")
        kinds.append("secondary")
    names.append("桃江")
    kinds.append("river")
    geoms = [*roads, *t.streets, river]
    keep = [not g.is_empty for g in geoms]
    return _frame(
        {
            "name": _str([n for n, k in zip(names, keep) if k]),
            "kind": _str([v for v, k in zip(kinds, keep) if k]),
        },
        [g for g, k in zip(geoms, keep) if k],
    )


def _exclusive_layer(
    geoms: list, kinds: list[str], comm: list[int], comm_code: np.ndarray
) -> gpd.GeoDataFrame:
    per_comm: dict[int, int] = {}
    count = {"school": 0, "hospital": 0, "industrial_park": 0}
    codes, names = [], []
    for kind, c in zip(kinds, comm):
        per_comm[c] = per_comm.get(c, 0) + 1
        count[kind] += 1
        codes.append(f"{comm_code[c]}9{per_comm[c]:02d}")
        names.append(
            {
                "school": f"信丰县第{count['school']}中学",
                "hospital": f"信丰县第{count['hospital']}人民医院",
                "industrial_park": f"信丰工业园第{count['industrial_park']}园区",
            }[kind]
        )
    return _frame(
        {
            "code": _str(codes),
            "name": _str(names),
            "kind": _str(kinds),
            "community_code": _str([comm_code[c] for c in comm]),
        },
        geoms,
    )


def demo_county(
    seed: int | np.random.Generator = 0,
    scale: float = 1.0,
    *,
    n_incidents: int | None = None,
    progress: bool = False,
) -> dict[str, gpd.GeoDataFrame]:
    """Build the synthetic demo county as a workspace (a dict of layers, EPSG:4490).

    Deterministic for an integer ``seed``. The layers and their columns are
    those of the workspace (see :mod:`gridgeo.io.workspace`), plus a few
    helpful extras: ``grids.town_code``; ``buildings.kind`` (house / apartment
    / estate) and ``buildings.grid_code``; ``markets.community_code``; and
    ``incidents.source`` (building / market / street / hotspot / outside: how
    the point was drawn).

    Parameters
    ----------
    seed
        Seed of the random generator, or a generator (then results depend on its state).
    scale
        Size factor: area, communities, buildings, households, grids, beats,
        markets and incidents grow linearly with it. 1.0 is the Xinfeng pilot
        (24 communities, 60 grids, ~3,000 buildings, ~25-30k households);
        :data:`SCALE_350K` gives ≈350k households.
    n_incidents
        Number of incident reports; default ``round(7000 * scale)``.
    progress
        Show a tqdm progress bar over the build stages.

    Returns
    -------
    dict of str to geopandas.GeoDataFrame
        Keyed by :data:`LAYERS`: boundary, towns, communities, grids, beats,
        zones, buildings, incidents, streets, markets, exclusive.

    Raises
    ------
    InputError
        If ``scale`` is not in [0.05, 40], ``n_incidents`` is negative or not
        an int, or ``seed`` is neither an int ≥ 0 nor a numpy Generator.

    Examples
    --------
    >>> ws = demo_county(seed=1, scale=0.2, n_incidents=20)
    >>> len(ws["incidents"]), ws["grids"]["code"].str.len().unique().tolist()
    (20, [15])
    """
    rng = _check_args(seed, scale, n_incidents)
    scale = float(scale)
    n_inc = round(N_INCIDENTS * scale) if n_incidents is None else int(n_incidents)
    stages = ["territory", "buildings", "grids", "zones", "incidents", "frames"]
    # tqdm.auto only when asked: importing it warns in a notebook without ipywidgets
    if progress:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    bar = tqdm(total=len(stages), desc="demo county", disable=not progress, unit="stage")
    clock = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        log.info("demo county: %s in %.2f s", stage, now - clock)
        clock = now
        bar.set_postfix_str(stage)
        bar.update(1)

    try:
        t = build_territory(rng, scale)
        done("territory")
        b = build_buildings(t, rng, scale)
        m = build_markets(t, b, rng, scale)
        done("buildings")
        h = build_grids(t, b, rng, scale)
        done("grids")
        z = build_zones(t, h, rng, scale)
        beats, seed_bld = build_beats(h, b, rng, scale)
        excl = build_exclusive(t, h, rng, scale)
        done("zones")
        inc = build_incidents(t, h.county, b, m, n_inc, rng, scale)
        done("incidents")
        layers, comm_code, grid_code = _admin_layers(t, h, b, rng)
        towns = layers["towns"].set_index("code")["name"]
        town_of_comm = dict(zip(layers["communities"]["code"], layers["communities"]["town_code"]))
        comm_town_name = {i: towns[town_of_comm[code]] for i, code in enumerate(comm_code)}
        layers["beats"] = _beat_layer(beats, seed_bld, b, comm_town_name)
        layers["zones"] = _zone_layer(z)
        layers.update(_people_layers(b, m, comm_code, grid_code, h))
        # a child stream: the lifecycle draws leave every other layer as it was
        layers["incidents"] = _incident_layer(
            inc, np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])
        )
        layers["streets"] = _street_layer(t, h.county)
        layers["exclusive"] = _exclusive_layer(*excl, comm_code)
        done("frames")
    finally:
        bar.close()
    return {name: layers[name] for name in LAYERS}


def county_350k(
    seed: int | np.random.Generator = 0,
    *,
    n_incidents: int = 2_300_000,
    progress: bool = False,
) -> dict[str, gpd.GeoDataFrame]:
    """The demo county at :data:`SCALE_350K` (≈350k households) with many incidents.

    A benchmark-sized workspace: ≈288 communities, ≈720 grids, ≈36k
    buildings, ≈1.0 M people and, by default, 2.3 million incident reports
    (Qingdao West Coast's cumulated count). Builds in about a minute.

    Parameters
    ----------
    seed
        See :func:`demo_county`.
    n_incidents
        Number of incident reports.
    progress
        Show a progress bar.

    Returns
    -------
    dict of str to geopandas.GeoDataFrame
        As :func:`demo_county`.

    Raises
    ------
    InputError
        As :func:`demo_county`.

    Examples
    --------
    >>> county_350k(n_incidents=-1)
    Traceback (most recent call last):
    ...
    gridgeo.errors.InputError: n_incidents must be an int ≥ 0 or None, got -1
    """
    return demo_county(seed, SCALE_350K, n_incidents=n_incidents, progress=progress)
