"""Per-grid incident statistics and Getis–Ord Gi* hot spots.

Examples
--------
>>> import geopandas as gpd, pandas as pd, shapely
>>> grids = gpd.GeoDataFrame({"code": ["A", "B"], "households": [100, 200]}, geometry=[
...     shapely.box(114.9, 25.4, 114.91, 25.41), shapely.box(114.91, 25.4, 114.92, 25.41)],
...     crs="EPSG:4490")
>>> inc = gpd.GeoDataFrame(
...     {"category": ["消防安全", "消防安全", "乱停乱放"],
...      "reported_at": pd.to_datetime(["2025-01-10", "2025-02-10", "2025-02-11"])},
...     geometry=[shapely.Point(114.905, 25.405)] * 2 + [shapely.Point(114.915, 25.405)],
...     crs="EPSG:4490")
>>> s = grid_stats(inc, grids, period="M", end="2025-02-28")
>>> s[["code", "count", "previous", "change", "per_1000_households"]].values.tolist()
[['A', 1, 1, 0, 10.0], ['B', 1, 0, 1, 5.0]]
>>> s.attrs["window"], s.attrs["previous_window"]
(('2025-02-01', '2025-02-28'), ('2025-01-01', '2025-01-31'))
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from gridgeo.analyze.index import IncidentIndex, day_str, to_day
from gridgeo.errors import InputError

__all__ = ["grid_stats", "hotspots", "previous_window"]

log = logging.getLogger(__name__)

_PERIODS = {"D": "days", "W": "weeks", "M": "months", "Q": "quarters", "Y": "years"}


def _window(index: IncidentIndex, period: str, start: Any, end: Any) -> tuple[int, int]:
    if period not in _PERIODS:
        raise InputError(f"period was {period!r} but is expected to be one of {list(_PERIODS)}")
    step = {
        "D": pd.DateOffset(days=1),
        "W": pd.DateOffset(weeks=1),
        "M": pd.DateOffset(months=1),
        "Q": pd.DateOffset(months=3),
        "Y": pd.DateOffset(years=1),
    }[period]
    one = pd.Timedelta(days=1)
    if start not in (None, "") and end not in (None, ""):
        lo, hi = to_day(start, "start"), to_day(end, "end")
    elif start not in (None, ""):
        lo = to_day(start, "start")
        hi = to_day(pd.Timestamp(day_str(lo)) + step - one, "end")
    else:
        last = index.days[1] or "1970-01-01"
        hi = to_day(end, "end") if end not in (None, "") else to_day(last, "end")
        lo = to_day(pd.Timestamp(day_str(hi)) + one - step, "start")
    if lo > hi:
        raise InputError(f"start {day_str(lo)} is after end {day_str(hi)}")
    return lo, hi


def _months(lo: int, hi: int) -> int:
    """Whole calendar months in days ``lo`` to ``hi`` (inclusive), or 0 if not whole months."""
    a, b = pd.Timestamp(day_str(lo)), pd.Timestamp(day_str(hi))
    if a.day != 1 or not b.is_month_end:
        return 0
    return (b.year - a.year) * 12 + b.month - a.month + 1


def _previous(lo: int, hi: int) -> tuple[int, int]:
    """:func:`previous_window` on day numbers."""
    months = _months(lo, hi)
    if months:
        start = pd.Timestamp(day_str(lo)) - pd.DateOffset(months=months)
        return to_day(start, "start"), lo - 1
    return lo - (hi - lo + 1), lo - 1


def previous_window(start: Any, end: Any) -> tuple[str, str]:
    """The window to compare ``start``–``end`` with: the same calendar span just before it.

    A window of whole calendar months (a month, a quarter, a year, or any run
    of months, from the 1st of one to the last day of another) is compared with
    as many whole months before it, leap years included; any other window of N
    days with the N days before it. The previous window always ends the day
    before ``start``.

    Parameters
    ----------
    start, end
        The window's first and last days (dates, inclusive).

    Returns
    -------
    tuple of str
        First and last day (``YYYY-MM-DD``) of the previous window.

    Raises
    ------
    InputError
        For a bad date, or ``start`` after ``end``.

    Examples
    --------
    >>> previous_window("2025-01-01", "2025-12-31")  # a year: the year before
    ('2024-01-01', '2024-12-31')
    >>> previous_window("2024-03-01", "2024-03-31")  # a month: the month before
    ('2024-02-01', '2024-02-29')
    >>> previous_window("2024-03-01", "2024-08-31")  # six months: the six before
    ('2023-09-01', '2024-02-29')
    >>> previous_window("2025-03-10", "2025-03-16")  # 7 days: the 7 days before
    ('2025-03-03', '2025-03-09')
    """
    lo, hi = to_day(start, "start"), to_day(end, "end")
    if lo > hi:
        raise InputError(f"start {day_str(lo)} is after end {day_str(hi)}")
    plo, phi = _previous(lo, hi)
    return day_str(plo), day_str(phi)


def grid_stats(
    incidents: gpd.GeoDataFrame | IncidentIndex,
    grids: gpd.GeoDataFrame | None = None,
    *,
    plan: Any = None,
    by: str | None = None,
    period: str = "M",
    start: Any = None,
    end: Any = None,
    category: Any = None,
    compare: Literal["previous", "year"] = "previous",
    key: str = "code",
    households: str = "households",
) -> gpd.GeoDataFrame:
    """Incidents per grid in a time window, per 1,000 households, and the change.

    Parameters
    ----------
    incidents
        Incident points (``category``, ``reported_at``), or an
        :class:`IncidentIndex` built with these ``grids`` (fast: the service
        path).
    grids
        Grids with ``key`` and (optionally) ``households``: the grids layer.
    plan
        Instead of ``grids``: the plan to count in, a ``Plan`` (anything with a
        ``.grids`` GeoDataFrame) or a grid GeoDataFrame. Incidents of every date,
        in both windows, are re-attributed to its grids by locating their points
        exactly (a grid code stored with an incident, the code in force when it
        was reported, is not used), so that this year against last year compares
        the same areas across a re-partition. Needs the incident points, not an
        :class:`IncidentIndex`.
    by
        ``"category"`` for one row per grid and category; None for one row per grid.
    period
        Length of the default window: ``D``, ``W``, ``M``, ``Q`` or ``Y``. The
        window ends on ``end`` (default: the last day with an incident) and
        starts one period earlier; with ``start`` and ``end`` both given, it is
        exactly that (both days inclusive).
    start, end
        Window bounds (dates, inclusive).
    category
        Count only these categories (one, a list, or comma-separated).
    compare
        ``"previous"``: against the same calendar span just before (see
        :func:`previous_window`: the month, quarter or year before, or the N days
        before); ``"year"``: against the same window a year earlier (year on year).
    key, households
        Column names in ``grids``.

    Returns
    -------
    GeoDataFrame
        One row per grid (in the order of ``grids``, all grids, zero counts
        included): ``code``, ``count``, ``previous``, ``change``, ``change_pct``
        (``<NA>`` when the previous count is 0), ``per_1000_households``
        (``<NA>`` without households) and the geometry. ``attrs`` holds the
        ``window``, the ``previous_window`` and ``outside``: incidents of the
        window that lie in no grid (counted, never dropped silently), and
        ``plan``: which grids were counted in, the plan's ``plan_id`` (or name)
        or ``"grids layer"``.

    Raises
    ------
    InputError
        For a missing column, an unknown period, category or ``by``, bad dates,
        neither or both of ``grids`` and ``plan``, or ``plan`` with an
        :class:`IncidentIndex`.

    Examples
    --------
    See the module docstring. Two incidents of 2024 and one of 2025, counted in
    a 2025 plan that merged grids ``A`` and ``B`` into ``AB``:

    >>> import geopandas as gpd, pandas as pd, shapely
    >>> old = gpd.GeoDataFrame({"code": ["A", "B"]}, crs="EPSG:4490", geometry=[
    ...     shapely.box(114.90, 25.4, 114.91, 25.41), shapely.box(114.91, 25.4, 114.92, 25.41)])
    >>> class Plan:  # a gridgeo Plan, or any object with .grids
    ...     plan_id, grids = "business-2025", gpd.GeoDataFrame(
    ...         {"code": ["AB"]}, geometry=[old.union_all()], crs="EPSG:4490")
    >>> inc = gpd.GeoDataFrame(
    ...     {"category": ["噪音"] * 3, "grid_code": ["A", "B", "AB"],
    ...      "reported_at": pd.to_datetime(["2024-03-01", "2024-03-02", "2025-03-05"])},
    ...     geometry=[shapely.Point(114.905, 25.405), shapely.Point(114.915, 25.405),
    ...               shapely.Point(114.915, 25.405)], crs="EPSG:4490")
    >>> s = grid_stats(inc, plan=Plan(), start="2025-01-01", end="2025-12-31", compare="year")
    >>> s[["code", "count", "previous"]].values.tolist(), s.attrs["plan"]
    ([['AB', 1, 2]], 'business-2025')
    """
    if (grids is None) == (plan is None):
        raise InputError(
            "give the grids to count in as grids= or as plan=, not "
            + ("neither" if grids is None else "both")
        )
    if plan is not None:
        from gridgeo.partition.crosswalk import plan_grids

        if isinstance(incidents, IncidentIndex):
            raise InputError(
                "plan= re-locates the incident points in the plan's grids; pass the "
                "incidents as a GeoDataFrame, not an IncidentIndex (it keeps no exact points)"
            )
        grids, plan_name = plan_grids(plan)
    else:
        plan_name = "grids layer"
    assert grids is not None
    if key not in grids.columns:
        raise InputError(f"grids have no column '{key}'; columns are {list(grids.columns)}")
    if by not in (None, "category"):
        raise InputError(f"by was {by!r} but is expected to be None or 'category'")
    if compare not in ("previous", "year"):
        raise InputError(f"compare was {compare!r} but is expected to be 'previous' or 'year'")
    codes = grids[key].astype(str).to_numpy(dtype=object)
    index = (
        incidents
        if isinstance(incidents, IncidentIndex)
        else IncidentIndex.build(incidents, grids=grids, key=key, tiles=False)
    )
    grid_of, grid_codes = index.grid, index.grid_codes
    if grid_of is None or grid_codes is None:
        raise InputError("the incident index was built without grids; pass grids= to build")
    if set(grid_codes) != set(codes):
        raise InputError("the incident index was built with other grids than these")
    lo, hi = _window(index, period, start, end)
    if compare == "previous":
        plo, phi = _previous(lo, hi)
    else:
        shift = pd.DateOffset(years=1)
        plo = to_day(pd.Timestamp(day_str(lo)) - shift, "start")
        phi = to_day(pd.Timestamp(day_str(hi)) - shift, "end")
    mask = index.category_mask(category)
    keep_cat = mask[index.cat]
    ncat = len(index.categories)
    # position of each grid of `grids` among the index's sorted grid codes
    where = pd.Index(grid_codes).get_indexer(codes)
    ng = len(grid_codes)

    def counts(d0: int, d1: int) -> tuple[np.ndarray, int]:
        sel = keep_cat & (index.day >= d0) & (index.day <= d1)
        g = grid_of[sel]
        inside = g >= 0
        if by is None:
            c = np.bincount(g[inside], minlength=ng)[where]
        else:
            flat = g[inside].astype(np.int64) * ncat + index.cat[sel][inside]
            c = np.bincount(flat, minlength=ng * ncat).reshape(ng, ncat)[where]
        return c, int((~inside).sum())

    now, outside = counts(lo, hi)
    before, _ = counts(plo, phi)
    hh = (
        pd.to_numeric(grids[households], errors="coerce").to_numpy(float)
        if households in grids.columns
        else np.full(len(grids), np.nan)
    )
    base = grids[[key]].rename(columns={key: "code"}).astype({"code": str})
    geom = grids.geometry.to_numpy()
    if by is None:
        frame = base.assign(count=now, previous=before)
        hh_rows, geoms = hh, geom
    else:
        cats = index.categories
        frame = pd.DataFrame(
            {
                "code": np.repeat(base["code"].to_numpy(), ncat),
                "category": np.tile(cats, len(base)),
                "count": now.ravel(),
                "previous": before.ravel(),
            }
        )
        if category not in (None, ""):
            frame = frame[np.tile(mask[:ncat], len(base))]
        hh_rows = np.repeat(hh, ncat)[frame.index.to_numpy()]
        geoms = np.repeat(geom, ncat)[frame.index.to_numpy()]
        frame = frame.reset_index(drop=True)
    frame["count"] = frame["count"].astype(np.int64)
    frame["previous"] = frame["previous"].astype(np.int64)
    frame["change"] = frame["count"] - frame["previous"]
    prev = frame["previous"].astype("Float64")
    frame["change_pct"] = (frame["change"].astype("Float64") / prev.where(prev > 0) * 100).round(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(hh_rows > 0, frame["count"].to_numpy() / hh_rows * 1000, np.nan)
    frame["per_1000_households"] = pd.Series(rate, dtype="Float64").round(3)
    if by is None:
        frame.index = grids.index
    out = gpd.GeoDataFrame(frame, geometry=geoms, crs=grids.crs)
    out.attrs["window"] = (day_str(lo), day_str(hi))
    out.attrs["previous_window"] = (day_str(plo), day_str(phi))
    out.attrs["outside"] = outside
    out.attrs["plan"] = plan_name
    return out


def hotspots(
    stats: gpd.GeoDataFrame,
    *,
    column: str = "count",
    alpha: float = 0.05,
    permutations: int = 0,
    seed: int = 0,
) -> gpd.GeoDataFrame:
    """Getis–Ord Gi* hot and cold spots of a per-grid value (esda, PySAL).

    Neighbours are grids sharing an edge or a corner (queen contiguity); the
    statistic includes each grid itself (Gi*). A grid is ``"hot"`` (热点) when
    its one-sided p-value is at most ``alpha`` and its z-score is positive,
    ``"cold"`` (冷点) when the z-score is negative, else ``"none"``. The
    p-value comes from the normal approximation (``permutations=0``, the
    default: instant) or from that many conditional permutations (esda's
    directed pseudo p-value; its first call compiles code for ~20 s).

    Parameters
    ----------
    stats
        One row per grid (e.g. from :func:`grid_stats`), polygons.
    column
        The value to test.
    alpha
        Significance level.
    permutations, seed
        Conditional permutations for pseudo p-values (0: normal approximation),
        and their seed.

    Returns
    -------
    GeoDataFrame
        A copy of ``stats`` with ``gi_z``, ``gi_p`` and ``hotspot``;
        ``attrs["alpha"]`` records the level.

    Raises
    ------
    InputError
        For a missing column, fewer than 3 grids, ``alpha`` outside (0, 1), or
        one row per grid and category (filter to one category first).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> boxes = [shapely.box(i, j, i + 1, j + 1) for i in range(6) for j in range(6)]
    >>> counts = [50 if i < 2 and j < 2 else 1 for i in range(6) for j in range(6)]
    >>> s = gpd.GeoDataFrame({"count": counts}, geometry=boxes, crs="EPSG:4547")
    >>> h = hotspots(s)
    >>> {0, 1, 6, 7} <= set(h.index[h["hotspot"] == "hot"])
    True
    """
    if column not in stats.columns:
        raise InputError(f"stats have no column '{column}'; columns are {list(stats.columns)}")
    if "category" in stats.columns and "code" in stats.columns and stats["code"].duplicated().any():
        raise InputError("hotspots needs one row per grid; filter stats to one category first")
    if len(stats) < 3:
        raise InputError(f"hotspots needs at least 3 grids, got {len(stats)}")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {alpha}")
    from esda.getisord import G_Local
    from libpysal.weights import Queen

    y = pd.to_numeric(stats[column], errors="coerce").astype(float).fillna(0.0).to_numpy()
    if np.all(y == y[0]):  # no variation (e.g. no incident at all): nothing can stand out
        out = stats.copy()
        out["gi_z"], out["gi_p"], out["hotspot"] = np.nan, np.nan, "none"
        out.attrs["alpha"] = alpha
        return out
    frame = gpd.GeoDataFrame(geometry=stats.geometry.reset_index(drop=True), crs=stats.crs)
    with warnings.catch_warnings():
        # libpysal warns about islands (grids with no neighbour) and disconnected parts;
        # both are legitimate for grids (an enclave village) and Gi* handles them
        warnings.filterwarnings("ignore", message=".*(island|disconnected).*", category=UserWarning)
        # esda announces a future default (two-sided); we report its directed pseudo p-value
        warnings.filterwarnings(
            "ignore", message="The alternative hypothesis", category=DeprecationWarning
        )
        # a grid whose neighbourhood (itself included) is every grid has no variance under
        # the null: its z is undefined (NaN, reported as "none"), not an error
        warnings.filterwarnings(
            "ignore", message="invalid value encountered in divide", category=RuntimeWarning
        )
        w = Queen.from_dataframe(frame, use_index=False, silence_warnings=True)
        g = G_Local(y, w, transform="B", permutations=permutations, star=True, seed=seed, n_jobs=1)
    out = stats.copy()
    out["gi_z"] = np.asarray(g.Zs, dtype=float)
    out["gi_p"] = np.asarray(g.p_sim if permutations else g.p_norm, dtype=float)
    sig = out["gi_p"] <= alpha
    out["hotspot"] = np.where(sig & (out["gi_z"] > 0), "hot", np.where(sig, "cold", "none"))
    out.attrs["alpha"] = alpha
    return out
