"""Check grids as a planner would after editing them by hand.

Examples
--------
>>> import geopandas as gpd, shapely
>>> comm = gpd.GeoDataFrame({"code": ["360722001001"], "type": ["urban"]},
...                         geometry=[shapely.box(0, 0, 2, 1)], crs="EPSG:4547")
>>> grids = gpd.GeoDataFrame({"code": ["360722001001001", "360722001001002"],
...                           "community_code": ["360722001001"] * 2,
...                           "households": [300, 600], "population": [900, 1800]},
...                          geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 1.9, 1)],
...                          crs="EPSG:4547")
>>> report = check_grids(grids, within=comm, tolerance_m2=0.01)
>>> report.ok
False
>>> sorted(report.problems["problem"])
['gap', 'over_ceiling']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo._validate import frame_problems, raise_problems
from gridgeo.codes import bad_codes
from gridgeo.crs import metric_crs
from gridgeo.partition.make.core import _ceilings

__all__ = ["PROBLEM_KINDS", "GridReport", "check_grids"]

#: Problem kinds, and whether each breaks ``report.ok``.
PROBLEM_KINDS = {
    "invalid_geometry": True,
    "duplicate_code": True,
    "malformed_code": True,
    "gap": True,
    "overlap": True,
    "not_nested": True,
    "multipart": True,
    "multipart_flagged": False,
    "over_ceiling": True,
    "oversize": False,
    "unassigned_unit": True,
    "count_mismatch": True,
}


@dataclass
class GridReport:
    """What :func:`check_grids` found.

    Attributes
    ----------
    problems
        One row per problem: ``problem`` (a key of :data:`PROBLEM_KINDS`),
        ``code`` (the grid or community at fault), ``detail`` and the geometry
        of the place (gap, overlap, stray part, unit), in the grids' CRS.
    n_grids
        How many grids were checked.
    """

    problems: gpd.GeoDataFrame
    n_grids: int
    _kinds: dict[str, bool] = field(default_factory=lambda: dict(PROBLEM_KINDS))

    @property
    def ok(self) -> bool:
        """True when no problem that breaks the rules was found (``oversize`` is a warning)."""
        return not self.problems["problem"].map(self._kinds).astype(bool).any()

    def summary(self) -> pd.DataFrame:
        """Count of problems per kind."""
        counts = self.problems["problem"].value_counts()
        return pd.DataFrame(
            {
                "problem": list(self._kinds),
                "count": [int(counts.get(k, 0)) for k in self._kinds],
                "breaks_rules": list(self._kinds.values()),
            }
        )

    def __repr__(self) -> str:
        head = f"GridReport({self.n_grids} grids: {'ok' if self.ok else 'NOT ok'}"
        found = self.problems["problem"].value_counts()
        if len(found):
            head += "; " + ", ".join(f"{k} {v}" for k, v in found.items())
        return head + ")"


def _significant(geom: Any, tolerance_m2: float, sliver_m: float) -> bool:
    """Whether some polygonal part of ``geom`` is larger than the tolerance and not a sliver."""
    parts = shapely.get_parts(geom)
    parts = parts[shapely.area(parts) > tolerance_m2]
    if len(parts) == 0:
        return False
    return bool((shapely.area(shapely.buffer(parts, -sliver_m / 2)) > 0).any())


def _add(rows: list[dict[str, Any]], problem: str, code: str, detail: str, geom: Any) -> None:
    rows.append({"problem": problem, "code": code, "detail": detail, "geometry": geom})


def check_grids(
    grids: gpd.GeoDataFrame,
    *,
    within: gpd.GeoDataFrame | None = None,
    units: gpd.GeoDataFrame | None = None,
    rules: Mapping[str, Mapping[str, Any]] | None = None,
    households: str = "households",
    population: str = "population",
    max_households: float | None = 500,
    max_population: float | None = None,
    rule_key: str = "type",
    tolerance_m2: float = 1.0,
    sliver_m: float = 0.01,
) -> GridReport:
    """Check grids: coverage, overlaps, nesting, contiguity, ceilings, codes and counts.

    Parameters
    ----------
    grids
        Grids with ``code``, ``community_code`` and the count columns.
    within
        Communities (``code``; ``rule_key`` for rules). Enables the ``gap``
        and ``not_nested`` checks and per-type ceilings.
    units
        Buildings with counts. Enables ``unassigned_unit``, ``count_mismatch``
        and tells an ``oversize`` single-unit grid from one ``over_ceiling``.
    rules, households, population, max_households, max_population, rule_key
        Ceilings, as in :func:`gridgeo.make_grids`.
    tolerance_m2
        Gaps, overlaps and parts outside the community smaller than this (m²)
        are ignored.
    sliver_m
        So are slivers thinner than this (metres): e.g. the sub-millimetre
        seams left where two layers were digitised or snapped separately.

    Returns
    -------
    GridReport

    Raises
    ------
    ValidationError
        Naming every problem of the inputs at once: a missing column, units'
        counts that are not counts ≥ 0, lon/lat outside China, or a missing
        CRS (then it is also a :class:`~gridgeo.errors.CRSError`). Invalid or
        empty geometries and duplicate codes are reported, not raised.

    Examples
    --------
    See the module docstring.
    """
    # invalid or empty geometries and duplicate codes are what the report is for
    lenient = {"allow_empty": True, "allow_invalid": True}
    need = ["code", "community_code", households]
    if population in getattr(grids, "columns", ()) or max_population is not None:
        need.append(population)
    problems = frame_problems(grids, "grids", columns=need, **lenient)
    if within is not None:
        problems += frame_problems(within, "within", columns=["code"], **lenient)
    if units is not None:
        problems += frame_problems(units, "units", counts=[households], **lenient)
    raise_problems(problems, what="check_grids() input")

    crs = metric_crs(grids)
    g = grids.to_crs(crs).reset_index(drop=True)
    geoms = g.geometry.to_numpy()
    codes = g["code"].astype(str).to_numpy()
    rows: list[dict[str, Any]] = []

    valid = shapely.is_valid(geoms) & ~shapely.is_empty(geoms)
    for i in np.flatnonzero(~valid):
        _add(
            rows,
            "invalid_geometry",
            codes[i],
            shapely.is_valid_reason(geoms[i]),
            shapely.point_on_surface(shapely.make_valid(geoms[i])) if geoms[i] else None,
        )
    geoms = np.where(valid, geoms, shapely.make_valid(geoms))

    dup = g["code"].duplicated(keep=False).to_numpy()
    for i in np.flatnonzero(dup):
        _add(
            rows,
            "duplicate_code",
            codes[i],
            f"code {codes[i]} is used by more than one grid",
            shapely.point_on_surface(geoms[i]),
        )
    bad = bad_codes(g["code"], "grid", parent=g["community_code"]).to_numpy()
    for i in np.flatnonzero(bad):
        _add(
            rows,
            "malformed_code",
            codes[i],
            f"code {codes[i]!r} is not 15 digits starting with community_code "
            f"{g['community_code'].iloc[i]!r}",
            shapely.point_on_surface(geoms[i]),
        )

    nparts = shapely.get_num_geometries(geoms)
    # make_grids flags the grids that hold a stray part of a multi-part community
    flagged = g["multipart"].to_numpy(bool) if "multipart" in g.columns else np.zeros(len(g), bool)
    for i in np.flatnonzero(nparts > 1):
        parts = shapely.get_parts(geoms[i])
        stray = sorted(parts, key=lambda p: -p.area)[1:]
        kind = "multipart_flagged" if flagged[i] else "multipart"
        _add(rows, kind, codes[i], f"grid is in {nparts[i]} parts", shapely.union_all(stray))

    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="overlaps")
    keep = a < b
    a2, b2 = tree.query(geoms, predicate="contains")
    a = np.concatenate([a[keep], a2[a2 != b2]])
    b = np.concatenate([b[keep], b2[a2 != b2]])
    if len(a):
        inter = shapely.intersection(geoms[a], geoms[b])
        area = shapely.area(inter)
        for i, j, geom, ar in zip(a, b, inter, area):
            if _significant(geom, tolerance_m2, sliver_m):
                _add(
                    rows,
                    "overlap",
                    f"{codes[i]},{codes[j]}",
                    f"grids {codes[i]} and {codes[j]} overlap by {ar:,.1f} m²",
                    geom,
                )

    cap_h = np.full(len(g), math.inf)
    cap_p = np.full(len(g), math.inf)
    if within is not None:
        w = within.to_crs(crs).reset_index(drop=True)
        wgeoms = w.geometry.to_numpy()
        wcodes = w["code"].astype(str).to_numpy()
        ch, cp = _ceilings(w, rules, rule_key, max_households, max_population)
        pos = {c: k for k, c in enumerate(wcodes)}
        comm_idx = np.array([pos.get(str(c), -1) for c in g["community_code"]])
        ok_idx = comm_idx >= 0
        cap_h[ok_idx], cap_p[ok_idx] = ch[comm_idx[ok_idx]], cp[comm_idx[ok_idx]]
        # nesting: a grid inside its own community (up to the tolerance)
        for i in np.arange(len(g)):
            if comm_idx[i] < 0:
                _add(
                    rows,
                    "not_nested",
                    codes[i],
                    f"community_code {g['community_code'].iloc[i]} is not in within",
                    shapely.point_on_surface(geoms[i]),
                )
                continue
            outside = shapely.difference(geoms[i], wgeoms[comm_idx[i]])
            if _significant(outside, tolerance_m2, sliver_m):
                _add(
                    rows,
                    "not_nested",
                    codes[i],
                    f"{shapely.area(outside):,.1f} m² of grid {codes[i]} lies outside its "
                    f"community {wcodes[comm_idx[i]]}",
                    outside,
                )
        # gaps: community area not covered by its grids
        for k in range(len(w)):
            mine = geoms[comm_idx == k]
            cover = shapely.union_all(mine) if len(mine) else shapely.Polygon()
            gap = shapely.difference(wgeoms[k], cover)
            for part in shapely.get_parts(gap):
                if _significant(part, tolerance_m2, sliver_m):
                    _add(
                        rows,
                        "gap",
                        wcodes[k],
                        f"{shapely.area(part):,.1f} m² of community {wcodes[k]} is in no grid",
                        part,
                    )
    else:
        cap_h[:] = max_households if max_households is not None else math.inf
        cap_p[:] = max_population if max_population is not None else math.inf

    hh = pd.to_numeric(g[households], errors="coerce").to_numpy(dtype=float)
    pp = (
        pd.to_numeric(g[population], errors="coerce").to_numpy(dtype=float)
        if population in g.columns
        else np.zeros(len(g))
    )
    n_units: Any = np.full(len(g), -1)
    if units is not None:
        u = units.to_crs(crs)
        upts = shapely.point_on_surface(u.geometry.to_numpy())
        ui, gi = tree.query(upts, predicate="covered_by")
        first = np.full(len(u), -1)
        order = np.lexsort((gi, ui))
        uniq, idx = np.unique(ui[order], return_index=True)
        first[uniq] = gi[order][idx]
        for r in np.flatnonzero(first < 0):
            _add(
                rows,
                "unassigned_unit",
                str(u.index[r]),
                f"unit {u.index[r]} lies in no grid",
                upts[r],
            )
        inside = first >= 0
        sum_h = np.bincount(
            first[inside], weights=u[households].to_numpy(float)[inside], minlength=len(g)
        )
        sum_p = (
            np.bincount(
                first[inside], weights=u[population].to_numpy(float)[inside], minlength=len(g)
            )
            if population in u.columns
            else None
        )
        n_units = np.bincount(first[inside], minlength=len(g))
        for i in np.arange(len(g)):
            if abs(sum_h[i] - hh[i]) > 1e-6 or (sum_p is not None and abs(sum_p[i] - pp[i]) > 1e-6):
                _add(
                    rows,
                    "count_mismatch",
                    codes[i],
                    f"grid {codes[i]} says {hh[i]:g} households / {pp[i]:g} people, its units "
                    f"sum to {sum_h[i]:g} / {0 if sum_p is None else sum_p[i]:g}",
                    shapely.point_on_surface(geoms[i]),
                )

    # exclusive grids (schools, hospitals, parks) are one grid whatever their size
    exempt = (
        (g["kind"] == "exclusive").to_numpy() if "kind" in g.columns else np.zeros(len(g), bool)
    )
    over = ((hh > cap_h + 1e-9) | (pp > cap_p + 1e-9)) & ~exempt
    if units is None and {"oversize", "n_units"} <= set(g.columns):
        # make_grids' own flag: a grid holding a single unit too big for any grid
        n_units = np.where(g["oversize"].to_numpy(bool), g["n_units"].to_numpy(), -1)
    for i in np.flatnonzero(over):
        single = n_units[i] == 1
        kind = "oversize" if single else "over_ceiling"
        _add(
            rows,
            kind,
            codes[i],
            f"grid {codes[i]} holds {hh[i]:g} households (ceiling {cap_h[i]:g}) and "
            f"{pp[i]:g} people (ceiling {cap_p[i]:g})"
            + ("; a single unit exceeds it alone" if single else ""),
            shapely.point_on_surface(geoms[i]),
        )

    problems = gpd.GeoDataFrame(
        rows, columns=["problem", "code", "detail", "geometry"], geometry="geometry", crs=crs
    ).to_crs(grids.crs)
    return GridReport(problems=problems, n_grids=len(g))
