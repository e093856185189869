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

from gridgeo.assign.locator import Locator
from gridgeo.codes import CATEGORY_DEPARTMENT, DEPARTMENTS
from gridgeo.crs import metric_crs
from gridgeo.errors import CRSError, InputError

__all__ = ["LinkTable", "default_routes", "link_table", "route"]

log = logging.getLogger(__name__)


def default_routes() -> dict[str, str]:
    """Category → department layer name, from :data:`gridgeo.codes.CATEGORY_DEPARTMENT`.

    Examples
    --------
    >>> default_routes()["乱停乱放"]
    'traffic'
    """
    return {cat: DEPARTMENTS[dept] for cat, dept in CATEGORY_DEPARTMENT.items()}


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
    InputError
        If the category column is missing, or a route names a layer ``loc`` lacks.
    """
    if category not in incidents.columns:
        raise InputError(
            f"incidents have no column '{category}'; columns are {list(incidents.columns)}"
        )
    if routes is None:  # the default routes that this locator can serve
        routes = {c: lay for c, lay in default_routes().items() if lay in loc.layer_names}
    routes = dict(routes)
    missing = sorted({lay for lay in routes.values() if lay not in loc.layer_names})
    if missing or grid_layer not in loc.layer_names:
        raise InputError(
            f"routes name layer(s) {missing or [grid_layer]} the locator lacks; "
            f"it has {loc.layer_names}"
        )
    located = loc.locate(incidents)
    cats = incidents[category].astype(str)
    layer = cats.map(routes)
    zone = pd.Series(pd.NA, index=incidents.index, dtype=object)
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
        index=incidents.index,
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
    for name, gdf, key in (("grids", grids, grid_key), ("beats", beats, beat_key)):
        if gdf.crs is None:
            raise CRSError(f"{name} has no CRS; set one (e.g. .set_crs('EPSG:4490'))")
        if key not in gdf.columns:
            raise InputError(f"{name} have no column '{key}'; columns are {list(gdf.columns)}")
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
