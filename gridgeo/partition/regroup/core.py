"""Merge grids into ``k`` contiguous groups that minimise the heaviest workload.

This is the planner's 60 basic grids → 17 business grids → 11 step (基础网格 →
业务网格): every group is a connected union of whole grids (rook adjacency, a
shared boundary longer than 0 m), optionally never crossing a community or town
(``within``), and the heaviest group's workload is as small as possible.

Small problems (up to :data:`EXACT_MAX_UNITS` grids) are solved exactly by a
mixed-integer program (HiGHS) with flow-based contiguity constraints; larger ones by
region growing followed by seeded local search (boundary moves and merge–split
moves that keep every group connected), restarted a few times, and finished by a
small set-partitioning MIP that recombines the groups seen. The result always
says how far it may be from the optimum (``attrs["lower_bound"]``, ``attrs["gap"]``):
the bound is the larger of ``total / k``, the heaviest grid, the per-piece bound when
the graph is cut into pieces, and, when the connected sets lighter than the answer
can be listed (≤ 200,000), the set-partitioning LP relaxation bound.

Examples
--------
>>> import geopandas as gpd, shapely
>>> grids = gpd.GeoDataFrame(
...     {"code": ["a", "b", "c", "d"], "households": [300, 200, 250, 250]},
...     geometry=[shapely.box(i, 0, i + 1, 1) for i in range(4)], crs="EPSG:4549")
>>> groups = regroup(grids, 2)
>>> groups[["code", "members", "weight"]].values.tolist()
[['G01', ('a', 'b'), 500.0], ['G02', ('c', 'd'), 500.0]]
>>> groups.attrs["optimal"], groups.attrs["assignment"]
(True, {'a': 'G01', 'b': 'G01', 'c': 'G02', 'd': 'G02'})
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from gridgeo._rng import as_generator
from gridgeo._validate import frame_problems, raise_problems
from gridgeo.crs import metric_crs
from gridgeo.errors import InfeasibleError, InputError
from gridgeo.geom import adjacency, area_km2
from gridgeo.partition._stable import History, fresh_serials, history, keep_codes
from gridgeo.partition.crosswalk import plan_diff  # moved there (issue 15); re-exported
from gridgeo.partition.plan import Plan
from gridgeo.partition.regroup._mip import solve_minmax
from gridgeo.partition.regroup._search import component_bound, search
from gridgeo.partition.regroup._setpart import lp_bound, polish

__all__ = ["EXACT_MAX_UNITS", "plan_diff", "regroup"]

log = logging.getLogger(__name__)

EXACT_MAX_UNITS = 24
"""With ``method="auto"``, problems with at most this many grids are solved exactly."""

_DEFAULT_MIP_SECONDS = 60.0
_DEFAULT_BOUND_SECONDS = 30.0
_RESTARTS = 16
_METHODS = ("auto", "exact", "heuristic")


def _weights(
    grids: gpd.GeoDataFrame, weight: str | Mapping[str, float]
) -> tuple[NDArray[np.float64], pd.DataFrame]:
    """Composite workload per grid and the individual columns it is made of."""
    spec = {weight: 1.0} if isinstance(weight, str) else dict(weight)
    if not spec:
        raise InputError("weight is an empty dict; give a column name or {column: coefficient}")
    parts: dict[str, NDArray[np.float64]] = {}
    for col, coef in spec.items():
        if not isinstance(coef, numbers.Real) or not np.isfinite(coef) or coef < 0:
            raise InputError(
                f"weight coefficient for {col!r} was {coef!r}; use a finite number >= 0"
            )
        # the columns themselves were checked by _check (present, numeric, counts ≥ 0)
        values = grids[col] if col in grids.columns else area_km2(grids)
        parts[col] = np.asarray(values, dtype=np.float64)
    w = sum(float(spec[c]) * parts[c] for c in spec)
    return np.asarray(w, dtype=np.float64), pd.DataFrame(parts, index=grids.index)


def _check(
    grids: gpd.GeoDataFrame,
    k: int,
    key: str,
    within: str | None,
    weight: str | Mapping[str, float],
) -> None:
    """Every problem of the grids and of ``k`` in one error."""
    hints = {key: "pass key=<code column>"}
    if within is not None:
        hints[within] = "the within= column"
    names = [weight] if isinstance(weight, str) else list(weight)
    cols = [c for c in names if not (c == "area_km2" and c not in getattr(grids, "columns", []))]
    for c in cols:
        hints.setdefault(c, "a weight column; 'area_km2' is computed when absent")
    problems: list[str] = list(
        frame_problems(
            grids, "grids", columns=hints, numeric=cols, counts=cols,
            not_null=[c for c in (key, within) if c], unique=[key], label=key,
            geometry="polygon", allow_invalid=True,
        )
    )  # fmt: skip
    n = len(grids) if isinstance(grids, gpd.GeoDataFrame) else k
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n:
        problems.append(f"k was {k!r}; it must be an integer from 1 to the {n} grids")
    raise_problems(problems, what="regroup() input")


def _graph(grids: gpd.GeoDataFrame, within: str | None) -> sp.csr_matrix:
    """Boolean rook adjacency, with edges across ``within`` classes removed."""
    a = adjacency(grids).tocoo()
    keep = a.data > 0
    r, c = a.row[keep], a.col[keep]
    if within is not None:
        cls = grids[within].to_numpy()
        same = cls[r] == cls[c]
        r, c = r[same], c[same]
    n = len(grids)
    return sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(n, n))


def _feasibility(
    grids: gpd.GeoDataFrame, comps: NDArray[np.int64], k: int, key: str, within: str | None
) -> None:
    n_comp = int(comps.max()) + 1
    if k >= n_comp:
        return
    codes = grids[key].astype(str).to_numpy()
    if within is None:
        examples = [codes[comps == c][0] for c in range(min(n_comp, 5))]
        raise InfeasibleError(
            f"the grids form {n_comp} disconnected pieces (e.g. containing grids {examples}), "
            f"so k={k} contiguous groups are impossible; use k >= {n_comp} or fix the gaps"
        )
    cls = grids[within].to_numpy()
    n_cls = len(pd.unique(cls))
    if k < n_cls:
        raise InfeasibleError(
            f"k={k} is less than the {n_cls} distinct values of {within!r}; groups never "
            f"cross {within!r}, so k must be >= {n_cls}"
        )
    split = []
    for value in pd.unique(cls):
        m = len(np.unique(comps[cls == value]))
        if m > 1:
            split.append(f"{value} ({m} parts)")
    raise InfeasibleError(
        f"k={k} is too small: groups never cross {within!r} and must be contiguous, and "
        f"{len(split)} value(s) of {within!r} are not contiguous: {', '.join(split[:5])}; "
        f"at least {n_comp} groups are needed"
    )


def _group_codes(
    grids: gpd.GeoDataFrame,
    labels: NDArray[np.int64],
    key: str,
    within: str | None,
    past: History | None = None,
) -> NDArray[np.object_]:
    """``G01..Gk`` ordered by smallest member code, or ``<within value>-01`` per class.

    With ``past``, a group keeps the code of the previous group it equals (same
    members, or IoU ≥ 0.99) and new groups get serials above every serial used.
    """
    codes = grids[key].astype(str).to_numpy()
    first = {g: min(codes[labels == g]) for g in np.unique(labels)}
    cls = None if within is None else grids[within].astype(str).to_numpy()
    by_cls: dict[str, list[int]] = {}
    for g in first:
        prefix = "G" if cls is None else f"{cls[labels == g][0]}-"
        by_cls.setdefault(prefix, []).append(g)
    kept = {} if past is None else _kept_group_codes(grids, labels, codes, by_cls, past)
    used = frozenset() if past is None else past.used
    names: dict[int, str] = {}
    for prefix, gs in by_cls.items():
        fresh = [g for g in sorted(gs, key=lambda g: first[g]) if g not in kept]
        serials = fresh_serials(prefix, used, len(fresh))
        width = max(2, len(str(len(gs))), len(str(serials[-1])) if serials else 0)
        for g, s in zip(fresh, serials):
            names[g] = f"{prefix}{s:0{width}d}"
        names.update({g: kept[g] for g in gs if g in kept})
    return np.array([names[int(g)] for g in labels], dtype=object)


def _kept_group_codes(
    grids: gpd.GeoDataFrame,
    labels: NDArray[np.int64],
    codes: NDArray[np.object_],
    by_cls: dict[str, list[int]],
    past: History,
) -> dict[int, str]:
    """Group label → the previous code it keeps (same members, or IoU ≥ 0.99)."""
    crs = grids.crs if grids.crs.is_projected else metric_crs(grids)
    groups = [g for gs in by_cls.values() for g in gs]
    new_class = np.array([p for p, gs in by_cls.items() for _ in gs], dtype=object)
    dissolved = grids.geometry.groupby(labels).agg(lambda s: s.union_all())
    new_geoms = gpd.GeoSeries(dissolved.loc[groups].to_numpy(), crs=grids.crs).to_crs(crs)
    prev = past.grids.to_crs(crs)
    prev_codes = prev["code"].astype(str).to_numpy().astype(object)
    prev_class = np.array(
        [
            next((p for p in by_cls if c.startswith(p) and c[len(p) :].isdigit()), None)
            for c in prev_codes
        ],
        dtype=object,
    )
    members = past.members or {}
    found = keep_codes(
        new_geoms.to_numpy(),
        new_class,
        prev.geometry.to_numpy(),
        prev_codes,
        prev_class,
        new_units=[frozenset(codes[labels == g].tolist()) for g in groups],
        prev_units=[members.get(c) for c in prev_codes],
    )
    return {g: code for g, code in zip(groups, found) if code is not None}


def regroup(
    grids: gpd.GeoDataFrame,
    k: int,
    *,
    weight: str | Mapping[str, float] = "households",
    within: str | None = None,
    key: str = "code",
    seed: int | np.random.Generator = 0,
    time_limit: float | None = None,
    method: str = "auto",
    progress: bool = False,
    previous: Plan | gpd.GeoDataFrame | Sequence[Plan | gpd.GeoDataFrame] | None = None,
) -> gpd.GeoDataFrame:
    """Merge grids into ``k`` contiguous groups minimising the heaviest workload.

    Parameters
    ----------
    grids
        Polygons with a CRS and a column ``key`` of unique codes.
    k
        Number of groups, from 1 to ``len(grids)``.
    weight
        Workload of a grid: a numeric column name, or ``{column: coefficient}`` for a
        composite workload such as ``{"households": 1, "incidents": 2, "area_km2": 50}``.
        The special name ``"area_km2"`` is computed in the metric CRS of the data
        (:func:`gridgeo.geom.area_km2`) when there is no such column.
    within
        Column (e.g. ``"community_code"``) whose classes groups never cross.
    key
        Column of unique grid codes.
    seed
        Seed of the local search and of HiGHS; same seed, same result (unless
        ``time_limit`` cuts the search short).
    time_limit
        Seconds for the whole call, roughly. ``None``: the exact solver gets 60 s; the
        heuristic runs its fixed number of iterations (16 restarts), then at most about
        30 s go to tightening the lower bound and recombining groups. A time limit
        that cuts the search short makes the result depend on machine speed.
    method
        ``"exact"`` (HiGHS MIP), ``"heuristic"`` (local search) or ``"auto"``: exact
        up to :data:`EXACT_MAX_UNITS` grids, heuristic beyond.
    progress
        Show one tqdm progress bar (on stderr) for the whole call: the local search
        over every restart, then the bound and the exact or recombining solve.
    previous
        The business plan in force (a :class:`~gridgeo.partition.plan.Plan`, a
        regroup result, or a sequence of them, oldest first) for stable codes: a
        group keeps the code of a group of the latest one that has the same
        members (grid codes) or the same geometry (IoU ≥ 0.99), in the same
        class (``G`` or ``<within value>-``); every other group gets a serial
        above every serial its class has used in any of them, or in their
        ``retired_codes``, so codes are never reused. ``None``: serials from 01.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per group: ``code``, (the ``within`` value), ``members`` (sorted tuple of
        grid codes), ``n_members``, ``weight`` (the workload), one summed column per
        weight column, and the dissolved geometry in the input CRS. ``attrs`` holds
        ``assignment`` (dict grid code → group code, in the input's row order; plain
        values, so that the frame writes to Parquet, whose metadata keeps ``attrs``;
        ``pd.Series(groups.attrs["assignment"])`` for a Series),
        ``optimal`` (True only when proven: by HiGHS, or by meeting the lower bound),
        ``lower_bound``, ``gap`` (``max/lower_bound - 1``) and ``method``; with
        ``previous``, also ``retired_codes`` (used codes the groups do not hold,
        see :meth:`Plan.from_regroup <gridgeo.partition.plan.Plan.from_regroup>`)
        and ``kept_codes``.

    Raises
    ------
    ValidationError
        Naming every problem of the grids at once: bad ``k``, missing columns,
        non-numeric/NaN/negative weights, missing or duplicate codes, empty or
        non-polygon geometries, lon/lat outside China, and a missing CRS (then it
        is also a :class:`~gridgeo.errors.CRSError`).
    InputError
        Bad weight coefficients, unknown ``method``; ``previous`` not a business
        plan or a regroup result.
    InfeasibleError
        If the adjacency graph (cut by ``within``) has more connected pieces than ``k``.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame(
    ...     {"code": ["a", "b", "c"], "households": [5, 1, 5], "town": ["t1", "t1", "t2"]},
    ...     geometry=[shapely.box(i, 0, i + 1, 1) for i in range(3)], crs="EPSG:4549")
    >>> g = regroup(grids, 2, within="town")
    >>> g["code"].tolist(), g["weight"].tolist()
    (['t1-01', 't2-01'], [6.0, 5.0])
    """
    _check(grids, k, key, within, weight)
    if method not in _METHODS:
        raise InputError(f"method was {method!r}; expected one of {list(_METHODS)}")
    if time_limit is not None and not (isinstance(time_limit, numbers.Real) and time_limit > 0):
        raise InputError(f"time_limit was {time_limit!r}; give seconds > 0 or None")
    rng = as_generator(seed)
    past = history(previous, level="business", where="regroup")
    w, parts = _weights(grids, weight)
    t0 = time.monotonic()

    graph = _graph(grids, within)
    n_comp, comps = connected_components(graph, directed=False)
    comps = comps.astype(np.int64)
    _feasibility(grids, comps, k, key, within)
    comp_weight = np.bincount(comps, weights=w, minlength=n_comp).astype(np.float64)
    lower = component_bound(comp_weight, float(w.max()), k)

    n = len(grids)
    indptr, indices = graph.indptr, graph.indices
    nbrs = [indices[indptr[i] : indptr[i + 1]].tolist() for i in range(n)]
    exact = method == "exact" or (method == "auto" and n <= EXACT_MAX_UNITS)
    budget = (
        (_DEFAULT_MIP_SECONDS if exact else _DEFAULT_BOUND_SECONDS)
        if time_limit is None
        else (float(time_limit))
    )
    search_deadline = None if time_limit is None else t0 + budget * (0.2 if exact else 0.5)
    restarts = 1 if exact else _RESTARTS
    labels, best = np.zeros(n, dtype=np.int64), np.inf
    pool: set[tuple[int, ...]] | None = None if exact else set()
    iterations = 300 if exact else max(200, 5 * n)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # one bar for the whole call, never one per restart
        bar = tqdm(total=restarts * iterations, desc="regroup", unit="it")
    for _ in range(restarts):
        found = search(
            nbrs,
            w,
            comps,
            k,
            rng=rng,
            lower_bound=lower,
            iterations=iterations,
            deadline=search_deadline,
            tick=None if bar is None else bar.update,
            pool=pool,
        )
        heaviest = float(np.bincount(found, weights=w).max())
        if heaviest < best:
            labels, best = found, heaviest
        if best <= lower * (1 + 1e-12):
            break
    if bar is not None:
        bar.update(bar.total - bar.n)  # restarts skipped by meeting the bound
        bar.set_postfix_str("proving the bound")
    optimal = best <= lower * (1 + 1e-12)
    if exact and not optimal:
        res = solve_minmax(
            graph,
            w,
            k,
            lower_bound=lower,
            time_limit=max(budget - (time.monotonic() - t0), 0.1),
            seed=int(rng.integers(0, 2**31 - 1)),
            start=labels,
        )
        lower = max(lower, res.bound)
        optimal = res.optimal
        if res.labels is not None and res.objective < best:
            labels, best = res.labels, res.objective
        log.info("regroup MIP: %s, heaviest %.6g, bound %.6g", res.status, best, lower)
    elif not optimal and pool is not None:
        # tighten the bound (set-partitioning LP), then recombine the groups seen by the
        # restarts and by the LPs into the best plan they allow (a small MIP)
        lp = lp_bound(nbrs, w, k, incumbent=best, lower_bound=lower, deadline=t0 + 0.75 * budget)
        if lp is not None:
            lower = max(lower, lp.bound)
            pool.update(lp.columns)
        if best > lower * (1 + 1e-12):
            left = budget - (time.monotonic() - t0)
            mixed = polish(sorted(pool), w, k, lower_bound=lower, time_limit=max(left, 1.0))
            if mixed is not None and float(np.bincount(mixed, weights=w).max()) < best:
                labels, best = mixed, float(np.bincount(mixed, weights=w).max())
                log.info("regroup: recombined groups, heaviest %.6g", best)
        optimal = best <= lower * (1 + 1e-12)
    if optimal:  # proven: by HiGHS, or the heaviest group meets the lower bound
        lower = max(lower, best)
    if bar is not None:
        bar.close()
    return _build(grids, labels, w, parts, key, within, lower, best, optimal, exact, past)


def _build(
    grids: gpd.GeoDataFrame,
    labels: NDArray[np.int64],
    w: NDArray[np.float64],
    parts: pd.DataFrame,
    key: str,
    within: str | None,
    lower: float,
    best: float,
    optimal: bool,
    exact: bool,
    past: History | None = None,
) -> gpd.GeoDataFrame:
    names = _group_codes(grids, labels, key, within, past)
    codes = grids[key].to_numpy()
    frame = pd.DataFrame({"group": names, "_w": w}, index=grids.index)
    frame = pd.concat([frame, parts.add_prefix("_p_")], axis=1)
    order = sorted(set(names))
    rows = []
    for gname in order:
        mask = names == gname
        row: dict[str, object] = {"code": gname}
        if within is not None:
            row[within] = grids[within].to_numpy()[mask][0]
        members = tuple(sorted(codes[mask].tolist()))
        row["members"] = members
        row["n_members"] = len(members)
        row["weight"] = float(w[mask].sum())
        for col in parts.columns:
            if col not in row:
                row[col] = parts[col].to_numpy()[mask].sum()
        rows.append(row)
    geometry = grids.geometry.groupby(names).agg(lambda s: s.union_all()).reindex(order)
    out = gpd.GeoDataFrame(
        pd.DataFrame(rows), geometry=gpd.GeoSeries(geometry.to_numpy(), crs=grids.crs)
    )
    out.attrs["assignment"] = dict(zip(codes.tolist(), names.tolist()))
    out.attrs["optimal"] = bool(optimal)
    out.attrs["lower_bound"] = float(lower)
    out.attrs["gap"] = float(best / lower - 1.0) if lower > 0 else 0.0
    out.attrs["method"] = "exact" if exact else "heuristic"
    if past is not None:
        out.attrs["retired_codes"] = sorted(past.used - set(order))
        out.attrs["kept_codes"] = sorted(set(order) & set(past.grids["code"].astype(str)))
    return out

