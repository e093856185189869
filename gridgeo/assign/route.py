"""Route incidents to the responsible department zone, and link grids to police beats.

Examples
--------
>>> import geopandas as gpd, pandas as pd, shapely
>>> from gridgeo.assign import Locator
>>> grids = gpd.GeoDataFrame({"code": ["G1"]}, geometry=[shapely.box(115, 25, 116, 26)],
...                          crs="EPSG:4490")
>>> fire = gpd.GeoDataFrame({"code": ["XF1"]}, geometry=[shapely.box(115, 25, 116, 26)],
...                         crs="EPSG:4490")
>>> loc = Locator({"grid": grids, "fire": fire})
>>> inc = gpd.GeoDataFrame({"category": ["消防安全", "噪音"]},
...     geometry=gpd.points_from_xy([115.5, 115.5], [25.5, 25.5]), crs="EPSG:4490")
>>> route(inc, loc).values.tolist()
[['消防', 'fire', 'XF1', 'G1', 'department'], [None, None, None, 'G1', 'grid']]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo._validate import frame_problems, raise_problems
from gridgeo.assign.locator import Locator
from gridgeo.codes import CATEGORY_DEPARTMENT, DEPARTMENTS
from gridgeo.crs import metric_crs

__all__ = ["DISPATCH_CODES", "LinkTable", "default_routes", "dispatch_codes", "link_table", "route"]

log = logging.getLogger(__name__)


def default_routes() -> dict[str, str]:
    """Category → department layer name, from :data:`gridgeo.codes.CATEGORY_DEPARTMENT`.

    Examples
    --------
    >>> default_routes()["乱停乱放"]
    'traffic'
    """
    return {cat: DEPARTMENTS[dept] for cat, dept in CATEGORY_DEPARTMENT.items()}


def _check(
    incidents: gpd.GeoDataFrame,
    loc: Locator,
    routes: Mapping[str, str] | None,
    category: str,
    grid_layer: str,
    *,
    what: str,
) -> dict[str, str]:
    """Every problem of the incidents and the routes in one error; the routes to use."""
    # where the points fall, and whether they are points, is Locator.locate's to say
    problems: list[str] = list(
        frame_problems(
            incidents, "incidents", columns={category: "the category= column"},
            allow_empty=True, allow_invalid=True, china=False,
        )
    )  # fmt: skip
    if routes is None:  # the default routes that this locator can serve
        routes = {c: lay for c, lay in default_routes().items() if lay in loc.layer_names}
    routes = dict(routes)
    missing = sorted({lay for lay in routes.values() if lay not in loc.layer_names})
    if missing or grid_layer not in loc.layer_names:
        problems.append(
            f"routes name layer(s) {missing or [grid_layer]} the locator lacks; "
            f"it has {loc.layer_names}"
        )
    raise_problems(problems, what=what)
    return routes


def route(
    incidents: gpd.GeoDataFrame,
    loc: Locator,
    routes: Mapping[str, str] | None = None,
    *,
    category: str = "category",
    grid_layer: str = "grid",
) -> pd.DataFrame:
    """Which department, and which of its zones, handles each incident.

    Parameters
    ----------
    incidents
        Points with a ``category`` column and a CRS.
    loc
        A locator holding the grid layer and the department layers.
    routes
        Category → department layer name (default :func:`default_routes`).
        Categories not listed go to the grid (``routed_by="grid"``); they are
        counted in ``attrs["unknown_categories"]`` and logged.
    category, grid_layer
        Column of the category; name of the grid layer in ``loc``.

    Returns
    -------
    pandas.DataFrame
        Aligned with ``incidents``: ``department`` (Chinese name), ``layer``,
        ``zone`` (the department zone's code, missing outside every zone),
        ``grid`` and ``routed_by`` (``"department"`` or ``"grid"``).

    Raises
    ------
    ValidationError
        Naming every problem at once: the incidents have no CRS (then it is
        also a :class:`~gridgeo.errors.CRSError`) or no category column, or a
        route names a layer ``loc`` lacks.
    InputError
        As :meth:`Locator.locate`.
    """
    routes = _check(incidents, loc, routes, category, grid_layer, what="route() input")
    return _route_located(loc.locate(incidents), incidents[category], routes, grid_layer)


def _route_located(
    located: pd.DataFrame, category: pd.Series, routes: Mapping[str, str], grid_layer: str
) -> pd.DataFrame:
    """:func:`route` from the points' zones in every layer (``Locator.locate``'s answer)."""
    cats = category.astype(str)
    layer = cats.map(routes)
    zone = pd.Series(pd.NA, index=located.index, dtype=object)
    for lay in layer.dropna().unique():
        hit = (layer == lay).to_numpy()
        zone[hit] = located.loc[hit, lay].astype(object).to_numpy()
    names = {v: k for k, v in DEPARTMENTS.items()}
    out = pd.DataFrame(
        {
            "department": layer.map(names).astype(object),
            "layer": layer.astype(object),
            "zone": zone.where(pd.notna(zone), None),
            "grid": located[grid_layer].astype(object).where(located[grid_layer].notna(), None),
            "routed_by": np.where(layer.notna(), "department", "grid"),
        },
        index=located.index,
    )
    out = out.where(pd.notna(out), None)
    unknown = cats[layer.isna()].value_counts()
    out.attrs["unknown_categories"] = unknown.to_dict()
    if len(unknown):
        log.warning(
            "%d incidents of unknown categories went to their grid: %s",
            int(unknown.sum()),
            dict(unknown.head(10)),
        )
    return out


#: The location codes stored with each incident, and the locator layer each comes from.
DISPATCH_CODES: dict[str, str] = {
    "grid_code": "grid",
    "community_code": "community",
    "town_code": "town",
    "beat_code": "beat",
}


def dispatch_codes(
    incidents: gpd.GeoDataFrame,
    loc: Locator,
    routes: Mapping[str, str] | None = None,
    *,
    category: str = "category",
) -> pd.DataFrame:
    """Where each incident goes: its grid, community, town, police beat and department zone.

    One lookup in every layer of ``loc`` (a locator from
    :meth:`Locator.from_workspace`), then :func:`route` on the answers. This is
    what a live service stores with each report at ingest, so that the
    dispatcher learns in one call where to send it.

    Parameters
    ----------
    incidents
        Points with a CRS and a ``category`` column.
    loc
        A locator with a ``grid`` layer; ``community``, ``town`` and ``beat``
        are used when present (else their codes are missing).
    routes, category
        As in :func:`route`.

    Returns
    -------
    pandas.DataFrame
        Aligned with ``incidents``: ``grid_code``, ``community_code``,
        ``town_code``, ``beat_code``, ``zone_code`` (the department zone), and
        ``department`` (its Chinese name); ``None`` where nothing holds the point
        or the category has no department.

    Raises
    ------
    ValidationError, InputError
        As :func:`route`.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridgeo.assign import Locator
    >>> box = shapely.box(115, 25, 116, 26)
    >>> loc = Locator({"grid": gpd.GeoDataFrame({"code": ["G1"]}, geometry=[box], crs=4490),
    ...                "fire": gpd.GeoDataFrame({"code": ["XF1"]}, geometry=[box], crs=4490)})
    >>> inc = gpd.GeoDataFrame({"category": ["消防安全"]},
    ...     geometry=[shapely.Point(115.5, 25.5)], crs="EPSG:4490")
    >>> dispatch_codes(inc, loc).iloc[0].to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'grid_code': 'G1', 'community_code': None, 'town_code': None, 'beat_code': None,
     'zone_code': 'XF1', 'department': '消防'}
    """
    routes = _check(incidents, loc, routes, category, "grid", what="dispatch_codes() input")
    located = loc.locate(incidents)
    routed = _route_located(located, incidents[category], routes, "grid")
    out = pd.DataFrame(index=incidents.index)
    for column, layer in DISPATCH_CODES.items():
        if layer in located.columns:
            col = located[layer].astype(object)
            out[column] = col.where(col.notna(), None)
        else:
            out[column] = None
    out["zone_code"] = routed["zone"]
    out["department"] = routed["department"]
    return out.astype(object).where(out.notna(), None)


@dataclass
class LinkTable:
    """The grid ↔ police-beat linkage (网格-警格关联).

    Attributes
    ----------
    links
        One row per (grid, beat) overlap: ``grid``, ``beat``, ``share`` of the
        grid's area in the beat, ``primary`` (the beat with the largest share).
    unlinked_grids, unlinked_beats
        Codes that nothing links.
    rate
        Share of grids linked to at least one beat (the association rate).
    """

    links: pd.DataFrame
    unlinked_grids: list[str]
    unlinked_beats: list[str]
    rate: float


def link_table(
    grids: gpd.GeoDataFrame,
    beats: gpd.GeoDataFrame,
    *,
    grid_key: str = "code",
    beat_key: str = "code",
    min_share: float = 1e-6,
) -> LinkTable:
    """Link every grid to the police beats that overlap it, with area shares.

    Raises
    ------
    ValidationError
        Naming every problem of both frames at once: a missing CRS (then it is
        also a :class:`~gridgeo.errors.CRSError`) or key column, empty, invalid
        or non-polygon geometries, lon/lat outside China.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["G1", "G2"]},
    ...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)], crs="EPSG:4547")
    >>> beats = gpd.GeoDataFrame({"code": ["J1", "J2"]},
    ...     geometry=[shapely.box(0, 0, 0.25, 1), shapely.box(0.25, 0, 1, 1)], crs="EPSG:4547")
    >>> t = link_table(grids, beats)
    >>> t.links.values.tolist(), t.unlinked_grids, t.rate
    ([['G1', 'J1', 0.25, False], ['G1', 'J2', 0.75, True]], ['G2'], 0.5)
    """
    raise_problems(
        frame_problems(grids, "grids", columns=[grid_key], geometry="polygon")
        + frame_problems(beats, "beats", columns=[beat_key], geometry="polygon"),
        what="link_table() input",
    )
    crs = metric_crs(grids)
    g = grids.to_crs(crs).geometry.to_numpy()
    b = beats.to_crs(crs).geometry.to_numpy()
    gi, bi = shapely.STRtree(b).query(g, predicate="intersects")
    area = shapely.area(shapely.intersection(g[gi], b[bi]))
    share = area / shapely.area(g[gi])
    keep = share > min_share
    gi, bi, share = gi[keep], bi[keep], share[keep]
    gcodes = grids[grid_key].astype(str).to_numpy()
    bcodes = beats[beat_key].astype(str).to_numpy()
    links = pd.DataFrame({"grid": gcodes[gi], "beat": bcodes[bi], "share": share})
    links = links.sort_values(["grid", "share", "beat"], ascending=[True, False, True])
    links["primary"] = ~links["grid"].duplicated()
    links = links.sort_values(["grid", "beat"]).reset_index(drop=True)
    unlinked_g = sorted(set(gcodes) - set(links["grid"]))
    unlinked_b = sorted(set(bcodes) - set(links["beat"]))
    rate = 1 - len(unlinked_g) / len(gcodes) if len(gcodes) else 1.0
    return LinkTable(links, unlinked_g, unlinked_b, rate)
