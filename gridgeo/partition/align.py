"""Department zones (专业网格) must be unions of whole business grids.

Every overlay here runs in the grids' metric CRS on a lattice of
:data:`GRID_SIZE` (1 mm) with snap-rounding, which is exact on that lattice.
A floating-point overlay is not: where a zone's edge runs within a micrometre
of a grid's edge, as it does all along a zone dissolved from grids whose shared
edges were digitised twice, ``intersection(zone, grid)`` could come out empty
for a grid inside the zone. :func:`align_zones` builds zones on that lattice
and :func:`check_alignment` measures on it, so a grid that
:func:`align_zones` lists as a member is always covered.

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

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo._validate import Problem, frame_problems, raise_problems
from gridgeo.crs import metric_crs

__all__ = [
    "ALIGNMENT_PROBLEMS",
    "GRID_SIZE",
    "Realignment",
    "align_zones",
    "check_alignment",
    "realign_departments",
]

log = logging.getLogger(__name__)

#: Precision, in metres of the metric CRS, of every overlay in this module.
GRID_SIZE = 1e-3

#: The problems :func:`check_alignment` reports.
ALIGNMENT_PROBLEMS = ("split", "uncovered", "double", "empty")

_COLUMNS = ["department", "zone", "grid", "problem", "share", "geometry"]


# empty zones are kept (no_grid) and geometries are snapped to a lattice: only the
# structure is an error here
_LENIENT = {"allow_empty": True, "allow_invalid": True}


def _zone_problems(zones: Any, zone_key: str, by: str | None) -> list[Problem]:
    columns = {zone_key: ""}
    if by is not None:
        columns[by] = "to group departments by; pass by=None for one layer"
    return frame_problems(zones, "zones", columns=columns, **_LENIENT)


def _grid_problems(grids: Any, grid_key: str) -> list[Problem]:
    return frame_problems(grids, "grids", columns=[grid_key], **_LENIENT)


def _prepare(
    zones: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, zone_key: str, grid_key: str, by: str | None
) -> tuple[Any, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    problems = _zone_problems(zones, zone_key, by) + _grid_problems(grids, grid_key)
    raise_problems(problems, what="zones and grids")
    crs = metric_crs(grids)
    return crs, zones.to_crs(crs), grids.to_crs(crs)


def _snap(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """The frame's geometries on the :data:`GRID_SIZE` lattice (a missing one stays None)."""
    return shapely.set_precision(gdf.geometry.to_numpy(), GRID_SIZE)


def _departments(z: pd.DataFrame, by: str | None) -> list[tuple[Any, np.ndarray]]:
    """(department, positions of its zones), sorted; a zone with no department is in none."""
    if by is None:
        return [(None, np.arange(len(z)))]
    labels, uniques = pd.factorize(z[by], sort=True)
    return [(dept, np.flatnonzero(labels == k)) for k, dept in enumerate(uniques)]


def _shares(
    zg: np.ndarray, gg: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (zone position, grid position), their overlap and the grid's share of it.

    Both arrays are on the lattice; the overlay snap-rounds to it, so a grid
    inside a zone dissolved from grids gets a share of exactly 1.
    """
    zi, gi = shapely.STRtree(zg).query(gg, predicate="intersects")[::-1]
    inter = shapely.intersection(zg[zi], gg[gi], grid_size=GRID_SIZE)
    area = shapely.area(inter)
    garea = shapely.area(gg)[gi]
    share = np.divide(area, garea, out=np.zeros_like(area), where=garea > 0)
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
        One row per problem (:data:`ALIGNMENT_PROBLEMS`): ``department``,
        ``zone``, ``grid``, ``problem``, ``share`` of the grid's area, and the
        piece's geometry (grids' CRS). Empty when aligned. The problems:

        - ``split``: the zone covers part of the grid;
        - ``uncovered``: no zone of the department covers the grid;
        - ``double``: two zones of one department cover it whole or in part
          beyond the tolerance;
        - ``empty``: the zone covers no part of any grid (as a zone that
          :func:`align_zones` left with no grid); ``grid`` is None and the
          geometry is the zone's.

        Areas are measured on the :data:`GRID_SIZE` lattice; a grid narrower
        than that is neither covered nor uncovered.

    Raises
    ------
    ValidationError
        Naming every problem of ``zones`` and ``grids`` at once: not a
        GeoDataFrame, a missing column, lon/lat outside China, or a missing CRS
        (then it is also a :class:`~gridgeo.errors.CRSError`).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["g1"]}, geometry=[shapely.box(0, 0, 1, 1)],
    ...     crs="EPSG:4547")
    >>> zones = gpd.GeoDataFrame({"department": ["消防", "消防"], "code": ["XF1", "XF2"]},
    ...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(5, 0, 6, 1)], crs="EPSG:4547")
    >>> check_alignment(zones, grids)[["zone", "problem"]].values.tolist()
    [['XF2', 'empty']]
    """
    crs, z, g = _prepare(zones, grids, zone_key, grid_key, by)
    zg, gg = _snap(z), _snap(g)
    present = shapely.area(gg) > 0
    gcodes = g[grid_key].astype(str).to_numpy()
    zcodes = z[zone_key].astype(str).to_numpy()
    rows: list[dict[str, Any]] = []

    def row(dept: Any, zone: Any, grid: Any, problem: str, share: float, geom: Any) -> None:
        rows.append(dict(zip(_COLUMNS, (dept, zone, grid, problem, share, geom))))

    for dept, pos in _departments(z, by):
        zi, gi, inter, share = _shares(zg[pos], gg)
        total = np.bincount(gi, weights=share, minlength=len(g))
        for k in np.flatnonzero((share > tolerance) & (share < 1 - tolerance)):
            row(dept, zcodes[pos[zi[k]]], gcodes[gi[k]], "split", float(share[k]), inter[k])
        for g_ in np.flatnonzero(present & (total < tolerance)):
            row(dept, None, gcodes[g_], "uncovered", 0.0, g.geometry.iloc[g_])
        for g_ in np.flatnonzero(total > 1 + tolerance):
            row(dept, None, gcodes[g_], "double", float(total[g_]), g.geometry.iloc[g_])
        for k in np.setdiff1d(np.arange(len(pos)), zi[share > 0]):
            row(dept, zcodes[pos[k]], None, "empty", 0.0, z.geometry.iloc[pos[k]])
    out = gpd.GeoDataFrame(rows, columns=_COLUMNS, geometry="geometry", crs=crs)
    return out.to_crs(grids.crs)


def _best_zone(
    zg: np.ndarray, gg: np.ndarray, pos: np.ndarray, *, fill_gaps: bool
) -> np.ndarray:
    """For each grid, the position of the department's zone it goes to (-1: none).

    The zone covering the largest share (ties: the first zone); with
    ``fill_gaps``, a grid no zone overlaps goes to the nearest zone.
    """
    best = np.full(len(gg), -1)
    zi, gi, _, share = _shares(zg[pos], gg)
    keep = share > 0
    zi, gi, share = zi[keep], gi[keep], share[keep]
    order = np.lexsort((zi, -share, gi))  # by grid, then largest share, then first zone
    grid_first, first = np.unique(gi[order], return_index=True)
    best[grid_first] = pos[zi[order][first]]
    if fill_gaps:
        lone = np.flatnonzero((best < 0) & (shapely.area(gg) > 0))
        tree = shapely.STRtree(zg[pos])
        if len(lone) and len(tree):
            li, ti = tree.query_nearest(gg[lone], all_matches=True)
            order = np.lexsort((ti, li))  # among equally near zones, the first
            grid_first, first = np.unique(li[order], return_index=True)
            best[lone[grid_first]] = pos[ti[order][first]]
    return best


def align_zones(
    zones: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    *,
    zone_key: str = "code",
    grid_key: str = "code",
    by: str | None = "department",
    fill_gaps: bool = True,
) -> gpd.GeoDataFrame:
    """Snap each department zone to the union of the whole grids it covers most.

    Every grid goes to the zone of each department that covers the largest
    share of it; each zone becomes the union of its grids. The result always
    passes :func:`check_alignment`, but for zones left with no grid (reported
    ``empty``) and, with ``fill_gaps=False``, grids left out of a department.

    Parameters
    ----------
    zones, grids, zone_key, grid_key, by
        As in :func:`check_alignment`.
    fill_gaps
        A grid that no zone of a department overlaps (it lies in a gap of a
        hand-drawn layer or beyond its edge) goes to the department's nearest
        zone. ``False`` leaves it out of the department.

    Returns
    -------
    GeoDataFrame
        The zones, same index, order and attributes, with the new geometry,
        ``members`` (tuple of grid codes, sorted), ``moved_area_km2`` (area
        that changed hands) and ``no_grid`` (True for a zone left with no grid,
        kept with an empty geometry, never dropped). CRS of ``zones``. The
        geometry is the union of the member grids on the :data:`GRID_SIZE`
        lattice, so micro gaps between neighbouring grids are closed.

    Raises
    ------
    ValidationError
        Naming every problem of ``zones`` and ``grids`` at once: not a
        GeoDataFrame, a missing column, lon/lat outside China, or a missing CRS
        (then it is also a :class:`~gridgeo.errors.CRSError`).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["g1", "g2", "g3"]},
    ...     geometry=[shapely.box(i, 0, i + 1, 1) for i in range(3)], crs="EPSG:4547")
    >>> zones = gpd.GeoDataFrame({"department": "消防", "code": ["XF1", "XF2"]},
    ...     geometry=[shapely.box(0, 0, 1.6, 1), shapely.box(1.6, 0, 1.9, 1)], crs="EPSG:4547")
    >>> align_zones(zones, grids)["members"].tolist()  # g3 lies in a gap, nearest XF2
    [('g1', 'g2'), ('g3',)]
    >>> out = align_zones(zones, grids, fill_gaps=False)
    >>> out["members"].tolist(), out["no_grid"].tolist()
    ([('g1', 'g2'), ()], [False, True])
    """
    crs, z, g = _prepare(zones, grids, zone_key, grid_key, by)
    zg, gg = _snap(z), _snap(g)
    gcodes = g[grid_key].astype(str).to_numpy()
    members: list[list[int]] = [[] for _ in range(len(z))]
    for _, pos in _departments(z, by):
        best = _best_zone(zg, gg, pos, fill_gaps=fill_gaps)
        for g_ in np.flatnonzero(best >= 0):
            members[best[g_]].append(g_)
    empty = shapely.Polygon()
    geoms = np.array(
        [shapely.union_all(gg[idx], grid_size=GRID_SIZE) if idx else empty for idx in members],
        dtype=object,
    )
    before = np.where(shapely.is_missing(zg), empty, zg)
    moved = shapely.area(shapely.symmetric_difference(before, geoms, grid_size=GRID_SIZE))
    out = zones.copy()
    out[zones.geometry.name] = gpd.GeoSeries(geoms, index=zones.index, crs=crs).to_crs(zones.crs)
    out["members"] = [tuple(sorted(gcodes[idx])) for idx in members]
    out["moved_area_km2"] = moved / 1e6
    out["no_grid"] = [not idx for idx in members]
    if out["no_grid"].any():
        log.info(
            "%d of %d zones are left with no grid: %s",
            int(out["no_grid"].sum()),
            len(out),
            ", ".join(out.loc[out["no_grid"], zone_key].astype(str)),
        )
    return out


@dataclass(frozen=True)
class Realignment:
    """Department zone layers re-aligned to one grid layer, from :func:`realign_departments`.

    Attributes
    ----------
    layers
        The aligned layers under their input keys, as :func:`align_zones` returns them.
    empty
        One row per zone left with no grid: ``layer``, ``department``, ``zone``.
        The zone is kept in its layer with an empty geometry.
    """

    layers: dict[str, gpd.GeoDataFrame]
    empty: pd.DataFrame

    @property
    def ok(self) -> bool:
        """True when every zone kept at least one grid."""
        return self.empty.empty

    def messages(self) -> list[str]:
        """One line per zone left with no grid, for the CLI and notebooks to show."""
        return [
            f"{r.department} zone {r.zone} (layer '{r.layer}') has no grid; "
            "it is kept with an empty geometry"
            for r in self.empty.itertuples()
        ]


def realign_departments(
    layers: Mapping[str, gpd.GeoDataFrame],
    grids: gpd.GeoDataFrame,
    *,
    zone_key: str = "code",
    grid_key: str = "code",
    by: str = "department",
    fill_gaps: bool = True,
) -> Realignment:
    """Re-align every department's zones to a grid layer, as when a business plan is adopted.

    Parameters
    ----------
    layers
        Zone layers by name, e.g. ``{"zones": zones, "beats": beats}``. A layer
        with a ``by`` column holds several departments; one without is one
        department, named by its key (the police beats).
    grids
        The grids of the plan now in force.
    zone_key, grid_key, by, fill_gaps
        As in :func:`align_zones`.

    Returns
    -------
    Realignment
        The aligned layers (each passes :func:`check_alignment` but for its
        ``empty`` zones) and the zones left with no grid.

    Raises
    ------
    ValidationError
        Naming every layer without a CRS or a code column, and any problem of ``grids``.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["g1", "g2"]},
    ...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs="EPSG:4547")
    >>> zones = gpd.GeoDataFrame({"department": "消防", "code": ["XF1", "XF2"]},
    ...     geometry=[shapely.box(0, 0, 1.6, 1), shapely.box(1.6, 0, 2, 1)], crs="EPSG:4547")
    >>> beats = gpd.GeoDataFrame({"code": ["J01"]}, geometry=[shapely.box(0, 0, 2, 1)],
    ...     crs="EPSG:4547")
    >>> result = realign_departments({"zones": zones, "beats": beats}, grids)
    >>> result.layers["beats"]["members"].tolist(), result.ok
    ([('g1', 'g2')], False)
    >>> result.messages()
    ["消防 zone XF2 (layer 'zones') has no grid; it is kept with an empty geometry"]
    """
    problems = _grid_problems(grids, grid_key)
    for name, gdf in layers.items():
        has_by = isinstance(gdf, pd.DataFrame) and by in gdf.columns
        found = _zone_problems(gdf, zone_key, by if has_by else None)
        problems += [Problem(f"layer '{name}': {p}", p.kind) for p in found]
    raise_problems(problems, what="department zones")
    aligned: dict[str, gpd.GeoDataFrame] = {}
    empty = []
    for name, gdf in layers.items():
        has_by = by in gdf.columns
        out = align_zones(
            gdf,
            grids,
            zone_key=zone_key,
            grid_key=grid_key,
            by=by if has_by else None,
            fill_gaps=fill_gaps,
        )
        aligned[name] = out
        lost = out[out["no_grid"]]
        depts = lost[by] if has_by else pd.Series(name, index=lost.index)
        empty += [
            {"layer": name, "department": d, "zone": str(c)}
            for d, c in zip(depts, lost[zone_key])
        ]
    report = pd.DataFrame(empty, columns=["layer", "department", "zone"])
    return Realignment(aligned, report)
