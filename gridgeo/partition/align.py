"""Department zones (专业网格) must be unions of whole business grids.

Examples
--------
>>> import geopandas as gpd, shapely
>>> grids = gpd.GeoDataFrame({"code": ["g1", "g2"]},
...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs="EPSG:4547")
>>> zones = gpd.GeoDataFrame({"department": ["消防", "消防"], "code": ["XF1", "XF2"]},
...     geometry=[shapely.box(0, 0, 1.3, 1), shapely.box(1.3, 0, 2, 1)], crs="EPSG:4547")
>>> check_alignment(zones, grids)[["department", "zone", "grid", "share"]].round(2).values.tolist()
[['消防', 'XF1', 'g2', 0.3], ['消防', 'XF2', 'g2', 0.7]]
>>> aligned = align_zones(zones, grids)
>>> aligned["members"].tolist(), len(check_alignment(aligned, grids))
([('g1',), ('g2',)], 0)
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.crs import metric_crs
from gridgeo.errors import CRSError, InputError

__all__ = ["align_zones", "check_alignment"]

_COLUMNS = ["department", "zone", "grid", "problem", "share", "geometry"]


def _prepare(
    zones: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, zone_key: str, grid_key: str, by: str | None
) -> tuple[Any, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    for name, gdf in (("zones", zones), ("grids", grids)):
        if gdf.crs is None:
            raise CRSError(f"{name} has no CRS; set one (e.g. .set_crs('EPSG:4490'))")
    if zone_key not in zones.columns:
        raise InputError(f"zones have no column '{zone_key}'; columns are {list(zones.columns)}")
    if grid_key not in grids.columns:
        raise InputError(f"grids have no column '{grid_key}'; columns are {list(grids.columns)}")
    if by is not None and by not in zones.columns:
        raise InputError(
            f"zones have no column '{by}' to group departments by; pass by=None for one layer"
        )
    crs = metric_crs(grids)
    return crs, zones.to_crs(crs), grids.to_crs(crs)


def _shares(
    z: gpd.GeoDataFrame, g: gpd.GeoDataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (zone position, grid position), the overlap area and the grid's share of it."""
    zg = z.geometry.to_numpy()
    gg = g.geometry.to_numpy()
    zi, gi = shapely.STRtree(zg).query(gg, predicate="intersects")[::-1]
    inter = shapely.intersection(zg[zi], gg[gi])
    area = shapely.area(inter)
    garea = shapely.area(gg)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(garea[gi] > 0, area / garea[gi], 0.0)
    return zi, gi, inter, share


def check_alignment(
    zones: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    zone_key: str = "code",
    grid_key: str = "code",
    by: str | None = "department",
    tolerance: float = 0.01,
) -> gpd.GeoDataFrame:
    """Report where department zones break the rule "a zone is a union of whole grids".

    Parameters
    ----------
    zones
        Department zones, all departments in one layer (``by`` names them).
    grids
        Business grids.
    zone_key, grid_key
        Code columns.
    by
        Column naming the department; ``None`` treats ``zones`` as one department.
    tolerance
        Shares of a grid below ``tolerance`` or above ``1 - tolerance`` count
        as none or all (digitising noise).

    Returns
    -------
    GeoDataFrame
        One row per problem: ``department``, ``zone``, ``grid``, ``problem``
        (``split``: the zone covers part of the grid; ``uncovered``: no zone of
        the department covers the grid; ``double``: two zones of one department
        cover it whole or in part beyond the tolerance), ``share`` of the grid's
        area, and the piece's geometry (grids' CRS). Empty when aligned.

    Raises
    ------
    CRSError, InputError
        For a missing CRS or column.

    Examples
    --------
    See the module docstring.
    """
    crs, z, g = _prepare(zones, grids, zone_key, grid_key, by)
    rows: list[dict[str, Any]] = []
    groups = [(None, z)] if by is None else list(z.groupby(by, sort=True))
    gcodes = g[grid_key].astype(str).to_numpy()
    for dept, zd in groups:
        zd = zd.reset_index(drop=True)
        zcodes = zd[zone_key].astype(str).to_numpy()
        zi, gi, inter, share = _shares(zd, g)
        total = np.bincount(gi, weights=share, minlength=len(g))
        for z_, g_, geom, s in zip(zi, gi, inter, share):
            if tolerance < s < 1 - tolerance:
                rows.append(
                    {
                        "department": dept,
                        "zone": zcodes[z_],
                        "grid": gcodes[g_],
                        "problem": "split",
                        "share": float(s),
                        "geometry": geom,
                    }
                )
        for g_ in np.flatnonzero(total < tolerance):
            rows.append(
                {
                    "department": dept,
                    "zone": None,
                    "grid": gcodes[g_],
                    "problem": "uncovered",
                    "share": 0.0,
                    "geometry": g.geometry.iloc[g_],
                }
            )
        for g_ in np.flatnonzero(total > 1 + tolerance):
            rows.append(
                {
                    "department": dept,
                    "zone": None,
                    "grid": gcodes[g_],
                    "problem": "double",
                    "share": float(total[g_]),
                    "geometry": g.geometry.iloc[g_],
                }
            )
    out = gpd.GeoDataFrame(rows, columns=_COLUMNS, geometry="geometry", crs=crs)
    return out.to_crs(grids.crs)


def align_zones(
    zones: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    zone_key: str = "code",
    grid_key: str = "code",
    by: str | None = "department",
) -> gpd.GeoDataFrame:
    """Snap each department zone to the union of the whole grids it covers most.

    Every grid goes to the zone of each department that covers the largest
    share of it (grids no zone of a department touches stay out of that
    department); each zone becomes the union of its grids.

    Parameters
    ----------
    zones, grids, zone_key, grid_key, by
        As in :func:`check_alignment`.

    Returns
    -------
    GeoDataFrame
        The zones, same index and attributes, with the new geometry,
        ``members`` (tuple of grid codes, sorted), ``moved_area_km2`` (area
        that changed hands) and ``no_grid`` (True for a zone left with no grid,
        kept with an empty geometry, never dropped). CRS of ``zones``.

    Raises
    ------
    CRSError, InputError
        For a missing CRS or column.

    Examples
    --------
    See the module docstring.
    """
    crs, z, g = _prepare(zones, grids, zone_key, grid_key, by)
    gcodes = g[grid_key].astype(str).to_numpy()
    ggeoms = g.geometry.to_numpy()
    labels = pd.Series(0, index=z.index) if by is None else z[by]
    members: dict[Any, list[int]] = {i: [] for i in z.index}
    new_geom: dict[Any, Any] = {}
    for _, zd in z.groupby(labels, sort=False):
        zi, gi, _, share = _shares(zd.reset_index(drop=True), g)
        best: dict[int, tuple[float, int]] = {}
        for z_, g_, s in zip(zi, gi, share):
            if s > 0 and (g_ not in best or s > best[g_][0]):
                best[g_] = (s, z_)
        for g_, (_, z_) in best.items():
            members[zd.index[z_]].append(g_)
    rows = []
    for i in z.index:
        idx = sorted(members[i])
        geom = shapely.union_all(ggeoms[idx]) if idx else shapely.Polygon()
        new_geom[i] = geom
        moved = shapely.area(shapely.symmetric_difference(z.geometry.loc[i], geom))
        rows.append((tuple(sorted(gcodes[idx])), moved / 1e6, not idx))
    out = z.copy()
    out["members"] = [r[0] for r in rows]
    out["moved_area_km2"] = [r[1] for r in rows]
    out["no_grid"] = [r[2] for r in rows]
    out = out.set_geometry(gpd.GeoSeries(new_geom, crs=crs).reindex(z.index))
    return out.to_crs(zones.crs)
