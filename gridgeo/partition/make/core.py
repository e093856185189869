"""Make grids: cut communities into contiguous grids under household/population ceilings.

Examples
--------
>>> import geopandas as gpd, shapely
>>> comm = gpd.GeoDataFrame({"code": ["360722001001"], "type": ["urban"]},
...                         geometry=[shapely.box(0, 0, 400, 200)], crs="EPSG:4547")
>>> units = gpd.GeoDataFrame({"households": [200] * 8, "population": [600] * 8},
...     geometry=gpd.points_from_xy([50, 150, 250, 350] * 2, [50] * 4 + [150] * 4), crs="EPSG:4547")
>>> grids = make_grids(units, within=comm, max_households=500)
>>> len(grids), int(grids["households"].max()) <= 500, int(grids["households"].sum())
(4, True, 1600)
>>> grids["code"].tolist()
['360722001001001', '360722001001002', '360722001001003', '360722001001004']
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from gridgeo._rng import as_generator, keyed_generators
from gridgeo._validate import frame_problems, raise_problems, repair_invalid, where
from gridgeo.crs import metric_crs
from gridgeo.errors import InfeasibleError, InputError, RepairWarning
from gridgeo.geom import polsby_popper
from gridgeo.partition._stable import fresh_serials, history, keep_codes
from gridgeo.partition.make._atoms import GRID_M, AtomOverlap, community_atoms
from gridgeo.partition.make._bisect import bisect_region, needed
from gridgeo.partition.make._recom import resplit_pairs
from gridgeo.partition.make._refine import refine_labels
from gridgeo.partition.plan import Plan, as_sequence

__all__ = ["make_grids"]

log = logging.getLogger(__name__)

_RULE_KEYS = {"max_households", "max_population"}
_OUT_COLUMNS = [
    "code",
    "community_code",
    "kind",
    "households",
    "population",
    "n_units",
    "oversize",
    "multipart",
    "area_km2",
    "compactness",
]


def _cap(value: Any, name: str, where: str) -> float:
    if value is None:
        return math.inf
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not float(value) > 0:
        raise InfeasibleError(f"{name} for {where} was {value!r}; a ceiling must be a number > 0")
    return float(value)


def _ceilings(
    within: gpd.GeoDataFrame,
    rules: Mapping[str, Mapping[str, Any]] | None,
    rule_key: str,
    max_households: Any,
    max_population: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n = len(within)
    cap_h = np.full(n, _cap(max_households, "max_households", "the default"))
    cap_p = np.full(n, _cap(max_population, "max_population", "the default"))
    if not rules:
        return cap_h, cap_p
    if rule_key not in within.columns:
        raise InputError(
            f"rules are keyed by within['{rule_key}'], but within has no column '{rule_key}'; "
            f"columns are {list(within.columns)}"
        )
    for kind, rule in rules.items():
        unknown = set(rule) - _RULE_KEYS
        if unknown:
            raise InputError(
                f"rule '{kind}' has unknown key(s) {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}"
            )
        hit = (within[rule_key] == kind).to_numpy()
        if "max_households" in rule:
            cap_h[hit] = _cap(rule["max_households"], "max_households", f"rule '{kind}'")
        if "max_population" in rule:
            cap_p[hit] = _cap(rule["max_population"], "max_population", f"rule '{kind}'")
    return cap_h, cap_p


def _counts(units: gpd.GeoDataFrame, col: str | None) -> NDArray[np.float64]:
    """A count column of the (validated) units as floats; zeros when there is none."""
    if col is None:
        return np.zeros(len(units))
    return pd.to_numeric(units[col], errors="coerce").to_numpy(dtype=np.float64)


def _check_inputs(
    units: gpd.GeoDataFrame,
    within: gpd.GeoDataFrame,
    counts: Mapping[str, str | None],
    barriers: gpd.GeoDataFrame | None,
    exclusive: gpd.GeoDataFrame | None,
) -> tuple[gpd.GeoDataFrame, list[Any]]:
    """Every problem of the inputs in one error; invalid units repaired, and warned about."""
    repaired: Any = []
    reasons: list[str] = []
    if isinstance(units, gpd.GeoDataFrame):  # footprints are used as points: repair them
        units, repaired, reasons = repair_invalid(units)
    cols = {col: f"{arg}={col!r}" for arg, col in counts.items() if col is not None}
    problems = frame_problems(units, "units", columns=cols, counts=list(cols))
    problems += frame_problems(
        within, "within", columns=["code"], not_null=["code"], unique=["code"],
        label="code", geometry="polygon",
    )  # fmt: skip
    for name, extra in (("barriers", barriers), ("exclusive", exclusive)):
        if extra is not None:
            problems += frame_problems(extra, name, allow_empty=name == "barriers")
    raise_problems(problems, what="make_grids() input")
    if len(repaired):
        n = len(repaired)
        warnings.warn(
            f"units: repaired {n} invalid geometr{'y' if n == 1 else 'ies'} with "
            f"shapely.make_valid {where(units.index.isin(repaired), units)} "
            f"({'; '.join(reasons[:3])}); they are listed in attrs['repaired']",
            RepairWarning,
            stacklevel=3,
        )
    return units, list(repaired)


def _code_order(geoms: NDArray[np.object_]) -> NDArray[np.int64]:
    """Order grids west→east, north→south: rows of equal count by northing, then easting."""
    n = len(geoms)
    if n <= 1:
        return np.arange(n)
    pts = shapely.point_on_surface(geoms)
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    rows = max(1, round(math.sqrt(n)))
    by_north = np.argsort(-y, kind="stable")
    row_of = np.empty(n, dtype=np.int64)
    row_of[by_north] = np.arange(n) * rows // n
    return np.lexsort((x, row_of))


def make_grids(
    units: gpd.GeoDataFrame,
    *,
    within: gpd.GeoDataFrame,
    households: str = "households",
    population: str | None = "population",
    max_households: float | None = 500,
    max_population: float | None = None,
    rules: Mapping[str, Mapping[str, Any]] | None = None,
    rule_key: str = "type",
    barriers: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    exclusive: gpd.GeoDataFrame | None = None,
    seed: int | np.random.Generator = 0,
    progress: bool = False,
    workers: int | None = None,
    tessellate: bool | None = None,
    previous: Plan | gpd.GeoDataFrame | Sequence[Plan | gpd.GeoDataFrame] | None = None,
) -> gpd.GeoDataFrame:
    """Cut each community into contiguous grids that respect household/population ceilings.

    **Atoms.** Each community (minus its exclusive areas) is cut by the
    ``barriers`` into blocks, and each block is tessellated by the Voronoi
    cells of the units inside it. Grids are unions of these atoms, so their
    edges run along streets and rivers wherever the ceilings allow, and
    between buildings otherwise; a building is never split. Land without
    buildings belongs to the atom (or empty block) it falls in. Why Voronoi
    cells: they split the land between neighbouring buildings halfway, need no
    road network beyond the barriers, and give each building one atom, so
    grid edges never run through a building. When the units are themselves
    blocks (polygons that tile the land, see ``tessellate``), the blocks are
    the atoms and grids are unions of whole blocks.

    **Splitting.** Inside each community, a ceiling-aware recursive bisection
    cuts the atom graph into ``k`` connected grids, where ``k`` is the lower
    bound ``max(⌈H/C_h⌉, ⌈P/C_p⌉)`` when that can be met (always tried first
    for up to 12 grids) and otherwise the count at 94 % of the ceilings, so
    that every cut has room to land:
    a region bound for ``k`` grids is cut into two connected parts bound for
    ``k1 = ⌊k/2⌋`` and ``k - k1``, the first holding between ``H - (k-k1)·C``
    and ``k1·C`` households (likewise for population). Cuts come from a sweep
    along several directions (the most compact of the most balanced cuts),
    else from a connected growth, else from random spanning trees, else ``k``
    grows by one; with ``barriers``, cuts that run along streets (between
    blocks) score higher, so grid edges follow streets where the households
    allow it. Then boundary atoms move to neighbouring grids where that
    makes both more compact (moment of inertia, then Polsby–Popper), never
    across a street and never breaking a ceiling or contiguity. Communities
    are split in threads.

    **Guarantees.** The grids of a community tile it exactly; every grid lies in
    one community and is one connected polygon, except that a part of a
    multi-part community holding no unit is joined to the nearest grid
    (``multipart=True``). No grid exceeds its ceilings, except a grid holding a
    single unit (or several at one location) that alone exceeds them
    (``oversize=True``). Every unit is counted in exactly one grid.

    Parameters
    ----------
    units
        Buildings (points or polygons; their representative point is used)
        or blocks, with household and population counts.
    within
        Communities with a unique 12-digit ``code``.
    households, population
        Count columns of ``units``; ``population=None`` if there is none (then
        no population ceiling may be set).
    max_households, max_population
        Default ceilings; ``None`` for none.
    rules
        Ceilings per community type, e.g. ``{"urban": {"max_households": 500},
        "rural": {"max_households": 300, "max_population": 1000}}``; the type
        is read from ``within[rule_key]``. Types without a rule use the defaults.
    rule_key
        Column of ``within`` holding the type.
    barriers
        Street and river lines that grid edges should follow.
    exclusive
        Polygons (schools, hospitals, parks) that each become their own grid
        (``kind="exclusive"``), clipped to the community holding most of it.
    seed
        Seed for the random fallbacks; the same seed gives the same grids. Each
        community draws from its own generator, keyed by its code, so a
        community's grids do not depend on the other communities (their
        number, order or units).
    progress
        Show a progress bar over communities.
    workers
        Threads that split communities side by side (default: one per CPU).
        The result does not depend on it: each community draws from its own
        generator, spawned from ``seed``.
    tessellate
        Build atoms as Voronoi cells of the units within street blocks
        (``True``: units are buildings), or use the units' own polygons as the
        atoms (``False``: units are blocks, which must not overlap; grids are
        then unions of whole blocks). ``None`` (default): blocks when every
        unit is a polygon and together they cover at least half the
        communities' area, buildings otherwise.
    previous
        The grids in force (a :class:`~gridgeo.partition.plan.Plan`, a grids
        frame, or a sequence of them, oldest first) for stable codes: a grid
        keeps the code of a grid of the latest one in its community that is
        the same grid (geometry IoU ≥ 0.99); every other grid gets a serial
        above every serial its community has used in any of them, or in their
        ``retired_codes``, so codes are never reused. ``None`` (default):
        serials from 001. The metric CRS is then chosen for the communities and
        the previous grids together, so that dropping or re-cutting communities
        does not move the centre across a zone border and redraw the others.

    Returns
    -------
    GeoDataFrame
        One row per grid: ``code`` (community code + 3-digit serial, numbered
        west→east in rows from north to south), ``community_code``, ``kind``,
        ``households``, ``population``, ``n_units``, ``oversize``,
        ``multipart``, ``area_km2``, ``compactness`` (Polsby–Popper) and the
        geometry, in the CRS of ``within``. ``attrs["lower_bound"]`` is
        Σ max(⌈H/C_h⌉, ⌈P/C_p⌉) over communities; ``attrs["unit_grid"]`` lists
        the grid code of each unit, in the order of the rows of ``units``
        (``pd.Series(grids.attrs["unit_grid"], index=units.index)`` labels it
        by unit). With ``previous``, ``attrs["retired_codes"]`` lists the used
        codes the new grids do not hold (see :meth:`Plan.from_grids
        <gridgeo.partition.plan.Plan.from_grids>`) and ``attrs["kept_codes"]``
        the codes kept. ``attrs["repaired"]`` lists the index labels of the
        units whose invalid geometries were repaired (empty when none; a label
        that is not a str, int, float or bool is given as its str). Every
        ``attrs`` value is plain JSON, so that ``to_parquet`` (which stores
        ``attrs`` as JSON) and ordinary pandas operations work on the grids.

    Raises
    ------
    ValidationError
        Naming every problem of the inputs at once: a missing CRS (then it is
        also a :class:`~gridgeo.errors.CRSError`), a missing column, negative or
        missing counts, empty unit geometries, invalid or non-polygon
        communities, missing or duplicate community codes, lon/lat outside China.
    InputError
        For unknown rule keys, units outside every
        community (named by their index), ``workers`` not a positive integer,
        block units that overlap (``tessellate`` False or detected; named by
        their rows), or ``tessellate=False`` with units that are not polygons.
        ``previous`` neither grids nor a base plan.
    InfeasibleError
        If a ceiling is not a positive number, or a community would need a
        serial above 999.

    Warns
    -----
    RepairWarning
        Once, naming how many unit geometries were invalid and which: they are
        repaired with :func:`shapely.make_valid` (a footprint only gives its
        representative point), not refused.

    Examples
    --------
    See the module docstring.
    """
    units, repaired = _check_inputs(
        units, within, {"households": households, "population": population}, barriers, exclusive
    )
    if population is None and (
        max_population is not None or any("max_population" in r for r in (rules or {}).values())
    ):
        raise InputError("a population ceiling is set but population=None; name the column")
    cap_h_all, cap_p_all = _ceilings(within, rules, rule_key, max_households, max_population)
    h_all = _counts(units, households)
    p_all = _counts(units, population)
    rng = as_generator(seed)
    past = history(previous, level="base", where="make_grids")
    if workers is not None and (
        not isinstance(workers, numbers.Integral) or isinstance(workers, bool) or workers < 1
    ):
        raise InputError(f"workers must be a positive integer or None, got {workers!r}")

    crs = _work_crs(within, previous)
    comm = within.to_crs(crs)
    comm_geoms = comm.geometry.to_numpy()
    ugeoms = units.to_crs(crs).geometry.to_numpy()
    upts = shapely.point_on_surface(ugeoms)
    polys = _block_units(units, ugeoms, comm_geoms, tessellate)
    bar = None
    if barriers is not None:
        bar = barriers.to_crs(crs).geometry.to_numpy()
        bar = bar[~(shapely.is_empty(bar) | pd.isna(bar))]
        bar = shapely.boundary(bar) if len(bar) and shapely.get_dimensions(bar).max() == 2 else bar

    # each unit into one community (the smallest code among those covering it, so that
    # the choice does not depend on the communities' order)
    tree = shapely.STRtree(comm_geoms)
    ui, ci = tree.query(upts, predicate="covered_by")
    by_code = np.argsort(comm["code"].astype(str).to_numpy(), kind="stable")
    rank = np.empty(len(comm_geoms), dtype=np.int64)
    rank[by_code] = np.arange(len(comm_geoms))
    comm_rank = np.full(len(units), len(comm_geoms), dtype=np.int64)
    np.minimum.at(comm_rank, ui, rank[ci])
    outside = comm_rank == len(comm_geoms)
    if outside.any():
        rows = [str(i) for i in units.index[outside][:5]]
        raise InputError(
            f"{int(outside.sum())} units lie outside every community (rows {rows}); "
            "fix their coordinates or extend the communities"
        )
    comm_of = by_code[comm_rank]

    excl_geoms, excl_comm = _exclusive_parts(exclusive, crs, comm_geoms)

    # exclusive areas first (cheap, in order), then the communities' splits in threads
    lower = 0
    plans: list[tuple[list[dict[str, Any]], Any, NDArray[np.int64]]] = []
    for c in range(len(comm_geoms)):
        members = np.flatnonzero(comm_of == c)
        region = comm_geoms[c]
        mine = np.flatnonzero(excl_comm == c)
        grids_c: list[dict[str, Any]] = []
        if len(mine):
            taken = np.zeros(len(members), dtype=bool)
            for e in mine:
                inside = shapely.covered_by(upts[members], excl_geoms[e]) & ~taken
                taken |= inside
                grids_c.append(
                    _record(excl_geoms[e], members[inside], h_all, p_all, "exclusive", False, False)
                )
            region = shapely.difference(region, shapely.union_all(excl_geoms[mine]))
            members = members[~taken]
        lower += (
            needed(
                float(h_all[members].sum()), float(p_all[members].sum()), cap_h_all[c], cap_p_all[c]
            )
            if len(members) or not len(mine)
            else 0
        )
        if region.is_empty or region.area <= 1e-6:
            if len(members):  # exclusive areas cover the community; units left fall to them
                grids_c[0]["units"] = np.concatenate([grids_c[0]["units"], members])
            region = None
        plans.append((grids_c, region, members))

    # one generator per community, keyed by its code: the result depends neither on
    # thread timing nor on the other communities
    rngs = keyed_generators(rng if isinstance(seed, np.random.Generator) else seed, comm["code"])

    def split(c: int) -> list[dict[str, Any]]:
        _, region, members = plans[c]
        if region is None:
            return []
        try:
            return _partition_community(
                region, members, upts, h_all, p_all, cap_h_all[c], cap_p_all[c], bar, rngs[c], polys
            )
        except AtomOverlap as err:
            a, b = units.index[members[err.i]], units.index[members[err.j]]
            raise InputError(
                f"unit polygons at rows {a} and {b} overlap by {err.area:.1f} m²; blocks must "
                "not overlap: fix them, or pass tessellate=True to treat the units as buildings"
            ) from err

    n_workers = min(workers or os.cpu_count() or 1, max(len(comm_geoms), 1))
    pbar = None
    if progress:
        from tqdm.auto import tqdm

        pbar = tqdm(total=len(comm_geoms), desc="make_grids", unit="community")
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = [pool.submit(split, c) for c in range(len(comm_geoms))]
            for _ in as_completed(futures):
                if pbar is not None:
                    pbar.update(1)
            split_grids = [f.result() for f in futures]
    finally:
        if pbar is not None:
            pbar.close()

    records: list[dict[str, Any]] = []
    kept = _kept_codes(past, plans, split_grids, comm, crs)
    for c, ((grids_c, _, _), more) in enumerate(zip(plans, split_grids)):
        code = str(comm["code"].iloc[c])
        grids_c = grids_c + more
        order = _code_order(np.array([g["geometry"] for g in grids_c], dtype=object))
        keep = kept[c]
        used = frozenset() if past is None else past.used
        serials = iter(fresh_serials(code, used, int(sum(k is None for k in keep)), digits=3))
        for i in order:
            g = grids_c[i]
            if keep[i] is None:
                serial = next(serials)
                if serial > 999:
                    raise InfeasibleError(
                        f"community {code} needs serial {serial} for its {len(grids_c)} grids "
                        "(serials of earlier plans are never reused); a 3-digit serial allows 999"
                    )
                g["code"] = f"{code}{serial:03d}"
            else:
                g["code"] = keep[i]
            g["community_code"] = code
            records.append(g)

    out = _frame(records, units, h_all, p_all, crs, within.crs, lower)
    out.attrs["repaired"] = [_json_label(i) for i in repaired]
    if past is not None:
        codes = set(out["code"])
        out.attrs["retired_codes"] = sorted(past.used - codes)
        out.attrs["kept_codes"] = sorted(k for ks in kept for k in ks if k is not None)
        log.info("kept %d of %d codes", len(out.attrs["kept_codes"]), len(out))
    return out


def _work_crs(within: gpd.GeoDataFrame, previous: Any) -> Any:
    """The metric CRS to cut in: chosen for the communities, and with ``previous`` for their
    extent joined with every previous plan's, so that a re-run on fewer communities (one
    dropped, one town re-cut) works in the CRS of the plans before it. A zone chosen
    for the fewer communities alone could lie across a zone border from the first run's,
    and every other community's grids would then be redrawn."""
    boxes = [within.total_bounds]
    for item in as_sequence(previous):
        grids = item.grids if isinstance(item, Plan) else item
        if len(grids) and grids.crs is not None:
            boxes.append(grids.to_crs(within.crs).total_bounds)
    if len(boxes) == 1:
        return metric_crs(within)
    b = np.array(boxes)
    extent = (np.nanmin(b[:, 0]), np.nanmin(b[:, 1]), np.nanmax(b[:, 2]), np.nanmax(b[:, 3]))
    return metric_crs(tuple(float(v) for v in extent), crs=within.crs)


def _kept_codes(past, plans, split_grids, comm, crs) -> list[list[str | None]]:
    """Per community, per grid (in record order): the previous code it keeps, or None."""
    sizes = [len(p[0]) + len(m) for p, m in zip(plans, split_grids)]
    if past is None:
        return [[None] * n for n in sizes]
    new_geoms = np.array(
        [g["geometry"] for p, m in zip(plans, split_grids) for g in p[0] + m], dtype=object
    )
    new_class = np.repeat(comm["code"].astype(str).to_numpy(), sizes).astype(object)
    prev = past.grids.to_crs(crs)
    prev_codes = prev["code"].astype(str).to_numpy().astype(object)
    if "community_code" in prev.columns:
        prev_class = prev["community_code"].astype(str).to_numpy().astype(object)
    else:
        prev_class = np.array([c[:-3] for c in prev_codes], dtype=object)
    flat = keep_codes(new_geoms, new_class, prev.geometry.to_numpy(), prev_codes, prev_class)
    out, start = [], 0
    for n in sizes:
        out.append(flat[start : start + n].tolist())
        start += n
    return out


def _exclusive_parts(
    exclusive: gpd.GeoDataFrame | None, crs: Any, comm_geoms: NDArray[np.object_]
) -> tuple[NDArray[np.object_], NDArray[np.int64]]:
    if exclusive is None or len(exclusive) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    geoms = exclusive.to_crs(crs).geometry.to_numpy()
    tree = shapely.STRtree(comm_geoms)
    ei, ci = tree.query(geoms, predicate="intersects")
    share = shapely.area(shapely.intersection(geoms[ei], comm_geoms[ci]))
    best = np.full(len(geoms), -1, dtype=np.int64)
    best_share = np.zeros(len(geoms))
    for e, c, s in zip(ei, ci, share):
        if s > best_share[e]:
            best[e], best_share[e] = c, s
    if (best < 0).any():
        rows = [str(i) for i in exclusive.index[best < 0][:5]]
        raise InputError(f"exclusive polygons at rows {rows} lie outside every community")
    clipped = shapely.intersection(geoms, comm_geoms[best])
    # overlapping exclusive polygons: the earlier one keeps the overlap
    for i in range(1, len(clipped)):
        earlier = clipped[:i][best[:i] == best[i]]
        if len(earlier):
            clipped[i] = shapely.difference(clipped[i], shapely.union_all(earlier))
    return clipped, best


def _record(geom, unit_idx, h_all, p_all, kind, oversize, multipart) -> dict[str, Any]:
    return {
        "geometry": geom,
        "units": np.asarray(unit_idx, dtype=np.int64),
        "kind": kind,
        "oversize": oversize,
        "multipart": multipart,
    }


def _block_units(
    units: gpd.GeoDataFrame,
    geoms: NDArray[np.object_],
    comm_geoms: NDArray[np.object_],
    tessellate: bool | None,
) -> NDArray[np.object_] | None:
    """The units' polygons when they are blocks (the atoms), else None (tessellate)."""
    if tessellate is True:
        return None
    polygonal = bool(len(geoms)) and bool(np.isin(shapely.get_type_id(geoms), [3, 6]).all())
    if tessellate is False and not polygonal:
        kinds = sorted(set(shapely.get_type_id(geoms).tolist()) - {3, 6})
        raise InputError(
            f"tessellate=False uses the units' polygons as atoms, but some units are not "
            f"polygons (GEOS type ids {kinds}); pass blocks, or tessellate=None"
        )
    if tessellate is None and (
        not polygonal or shapely.area(geoms).sum() < 0.5 * shapely.area(comm_geoms).sum()
    ):
        return None
    return geoms


def _partition_community(
    region, members, upts, h_all, p_all, cap_h, cap_p, bar, rng, polys=None
) -> list[dict[str, Any]]:
    xy = shapely.get_coordinates(upts[members]) if len(members) else np.empty((0, 2))
    atoms, owner, block, adj = community_atoms(
        region, xy, bar, None if polys is None else polys[members]
    )
    n = len(atoms)
    atom_arr = np.array(atoms, dtype=object)
    ah = np.zeros(n)
    ap = np.zeros(n)
    np.add.at(ah, owner, h_all[members])
    np.add.at(ap, owner, p_all[members])
    units_of = (
        [members[owner == a] for a in range(n)]
        if len(members)
        else [np.empty(0, dtype=np.int64)] * n
    )
    heavy = (ah > cap_h + 1e-9) | (ap > cap_p + 1e-9)
    groups: list[tuple[NDArray[np.int64], bool]] = [
        (np.array([a]), True) for a in np.flatnonzero(heavy)
    ]
    light = np.flatnonzero(~heavy)
    sub = adj[light][:, light]
    ncomp, labels = connected_components(sub, directed=False)
    centroids = shapely.get_coordinates(shapely.centroid(atom_arr))
    atom_area, atom_perim = shapely.area(atom_arr), shapely.length(atom_arr)
    empty_parts: list[NDArray[np.int64]] = []
    for comp in range(ncomp):
        idx = light[labels == comp]
        if ah[idx].sum() == 0 and ap[idx].sum() == 0 and not any(len(units_of[a]) for a in idx):
            empty_parts.append(idx)
            continue
        for piece in bisect_region(
            adj[idx][:, idx].tocsr(),
            centroids[idx],
            ah[idx],
            ap[idx],
            cap_h,
            cap_p,
            rng,
            atom_area[idx],
            atom_perim[idx],
            block=block[idx] if bar is not None else None,
        ):
            groups.append((idx[piece], False))
    if not groups:  # an empty community: one grid
        groups.append((np.arange(n), False))
        empty_parts = []
    label = np.full(n, -1, dtype=np.int64)
    for g, (idx, _) in enumerate(groups):
        label[idx] = g
    if len(groups) > 1:
        label, _ = refine_labels(
            adj, block, atom_area, atom_perim, ah, ap, label, ~heavy, cap_h, cap_p, xy=centroids
        )
        # re-split pairs of neighbouring grids where a whole new boundary is better
        # than any one-atom move, then let the moves smooth the new boundaries
        fixed = np.array([hv for _, hv in groups], dtype=bool)
        label, changed = resplit_pairs(
            adj, centroids, atom_area, atom_perim, ah, ap, label, fixed, cap_h, cap_p, rng
        )
        if changed:
            label, _ = refine_labels(
                adj,
                block,
                atom_area,
                atom_perim,
                ah,
                ap,
                label,
                ~heavy,
                cap_h,
                cap_p,
                xy=centroids,
            )
    # attach each empty component to the grid it shares most boundary with (repeating, as
    # empty components may only touch each other), else to the nearest grid
    pending = list(empty_parts)
    while pending:
        left = []
        for idx in pending:
            shared = np.asarray(adj[idx].sum(axis=0)).ravel()
            nb = np.flatnonzero((shared > 0) & (label >= 0))
            if len(nb):
                label[idx] = label[nb[np.argmax(shared[nb])]]
            else:
                left.append(idx)
        if len(left) == len(pending):
            idx = left.pop(0)
            part = shapely.union_all(atom_arr[idx], grid_size=GRID_M)
            assigned = np.flatnonzero(label >= 0)
            label[idx] = label[assigned[np.argmin(shapely.distance(atom_arr[assigned], part))]]
        pending = left
    geoms = []
    for g in range(len(groups)):
        idx = np.flatnonzero(label == g)
        geoms.append(_coverage_union(atom_arr[idx]))
    out = []
    for g, (_, heavy_flag) in enumerate(groups):
        idx = np.flatnonzero(label == g)
        unit_idx = np.concatenate([units_of[a] for a in idx]) if len(idx) else np.empty(0, np.int64)
        geom = geoms[g]
        is_multi = bool(shapely.get_num_geometries(geom) > 1)
        out.append(_record(geom, unit_idx, h_all, p_all, "comprehensive", heavy_flag, is_multi))
    return out


def _coverage_union(atoms: NDArray[np.object_]) -> shapely.Geometry:
    """Union of atoms of one noded coverage (fast); a full overlay on the 1 mm grid if
    GEOS finds the coverage incorrectly noded."""
    if len(atoms) == 1:
        return atoms[0]
    try:
        return shapely.coverage_union_all(atoms)
    except shapely.errors.GEOSException:
        log.debug("coverage union failed; overlaying %d atoms on the 1 mm grid", len(atoms))
        return shapely.union_all(atoms, grid_size=GRID_M)


def _frame(records, units, h_all, p_all, crs, out_crs, lower) -> gpd.GeoDataFrame:
    grid_of = np.full(len(units), None, dtype=object)
    rows = []
    for r in records:
        u = r["units"]
        grid_of[u] = r["code"]
        rows.append(
            (
                r["code"],
                r["community_code"],
                r["kind"],
                float(h_all[u].sum()),
                float(p_all[u].sum()),
                len(u),
                bool(r["oversize"]),
                bool(r["multipart"]),
            )
        )
    geoms = np.array([r["geometry"] for r in records], dtype=object)
    df = pd.DataFrame(rows, columns=_OUT_COLUMNS[:8])
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=crs))
    gdf["area_km2"] = shapely.area(geoms) / 1e6
    gdf["compactness"] = polsby_popper(gdf)
    gdf["households"] = _maybe_int(gdf["households"])
    gdf["population"] = _maybe_int(gdf["population"])
    gdf = gdf[[*_OUT_COLUMNS, "geometry"]]
    out = gdf.to_crs(out_crs)
    out.attrs["lower_bound"] = int(lower)
    # plain JSON, in the rows' order: to_parquet stores attrs with json.dumps (a Series
    # there made it fail), and pandas copies attrs in its operations
    out.attrs["unit_grid"] = [None if c is None else str(c) for c in grid_of]
    log.info("made %d grids (lower bound %d)", len(out), lower)
    return out


def _json_label(label: Any) -> Any:
    """An index label as JSON: str, int, float and bool as they are, anything else as str."""
    if isinstance(label, np.generic):
        label = label.item()
    return label if isinstance(label, (str, int, float, bool)) else str(label)


def _maybe_int(s: pd.Series) -> pd.Series:
    return s.astype(np.int64) if np.all(np.mod(s.to_numpy(), 1) == 0) else s
