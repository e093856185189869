"""Plan versions in the service: grids at a date, the plans, and the changes between two.

Framework-free, like the other cores: each handler takes parsed parameters and
returns ``(body, status, headers)``; errors are :mod:`gridgeo.errors`
exceptions carrying their HTTP status. :mod:`gridgeo.serve.routes.plans` puts
them on routes.

* ``/collections/grids/items?datetime=…``: the base grids in force then. An
  instant (a day, or an RFC 3339 date-time, read as its day in China, UTC+8)
  selects the one base plan in force that day; an interval ``a/b``, ``../b``,
  ``a/..`` (both ends inclusive) selects every base plan in force on at least
  one of its days. Each feature carries ``plan_id``, ``valid_from`` and
  ``valid_to`` (exclusive); in an interval a grid's id is ``code@plan_id``, as
  unchanged grids keep their code across plans. A day without a plan in force
  matches nothing: an empty FeatureCollection (200), as any filter that
  matches nothing.
* ``/collections/plans/items``: one feature per plan, its extent as geometry.
* ``/collections/grid-changes/items?from=…&to=…``: the rows of
  :func:`~gridgeo.partition.crosswalk.crosswalk` between two plans (each a
  ``plan_id`` or a day: the plan of ``level`` in force then), with the shared
  piece of the two grids as geometry. Each pair of plans is computed once and
  kept (an LRU cache).

The plans are read from the workspace on first use, and read again when they
change: with a ``version`` callable (:func:`gridgeo.io.plans_version`), each
process checks it at most every ``check_every`` seconds and, when it moved,
re-reads the plans and drops the grids and crosswalks it derived from them, so
an adopted plan is served within seconds, without a restart, by every worker.

The grids layer, the point lookup and the incident routing are read once at
start-up and are not reloaded: :attr:`PlanService.layer_plan` names the base
plan they hold, the answers of ``/collections/plans/items`` and
``/collections/grids/items?datetime=…`` carry it (``layer_plan``), and a
warning is logged when the plans read show another base plan in force today
(restart the service to move them to it).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Hashable
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.errors import GridGeoError, InputError, NotFound
from gridgeo.serve.features import Collection, FeatureService, Response, ServedCollection
from gridgeo.serve.heatmap import _LRU

if TYPE_CHECKING:
    from gridgeo.partition.plan import Plan

__all__ = ["CHINA", "PlanService", "parse_datetime"]

log = logging.getLogger(__name__)

#: The time zone a date-time with an offset is read in to find its day (plans start on days).
CHINA = timezone(timedelta(hours=8))

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")
_STATUSES = ("draft", "scheduled", "in force", "ended")
_ID_SEP = "@"  # code@plan_id: a grid of one plan, in an interval's answer
_PAIR_SEP = "~"  # old~new: a row of the crosswalk ('' for a side outside every grid)


def _moment(raw: str) -> date:
    if _DAY.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    elif _DATETIME.fullmatch(raw):
        try:
            t = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (t.astimezone(CHINA) if t.tzinfo is not None else t).date()
    raise InputError(
        f"parameter 'datetime': {raw!r} is not an RFC 3339 date or date-time "
        "(e.g. 2025-06-01 or 2025-06-01T08:00:00Z)"
    )


def parse_datetime(raw: str) -> tuple[date | None, date | None, bool]:
    """The days an OGC ``datetime`` parameter covers: ``(first, last, is_interval)``.

    An instant covers its own day (``first == last``); an interval ``a/b``
    covers the days of ``a`` to ``b``, both inclusive; ``..`` is an open end
    (``None``). A date-time with an offset is read as its day in China (UTC+8);
    one without, as given.

    Raises
    ------
    InputError
        For an empty value, a malformed date or date-time (the message names
        the value), an open instant, or an interval that ends before it starts.

    Examples
    --------
    >>> parse_datetime("2025-06-01")
    (datetime.date(2025, 6, 1), datetime.date(2025, 6, 1), False)
    >>> parse_datetime("2024-12-31T20:00:00Z/..")  # 04:00 on 1 January in Beijing
    (datetime.date(2025, 1, 1), None, True)
    >>> parse_datetime("2025-13-01")
    Traceback (most recent call last):
    ...
    gridgeo.errors.InputError: parameter 'datetime': '2025-13-01' is not an RFC 3339 date ...
    """
    if raw == "":
        raise InputError("parameter 'datetime' is empty; give an instant or an interval")
    parts = raw.split("/")
    if len(parts) > 2:
        raise InputError(
            f"parameter 'datetime': {raw!r} has {len(parts) - 1} '/'; an interval is a/b, "
            "../b or a/.."
        )
    if len(parts) == 1:
        if raw == "..":
            raise InputError("parameter 'datetime': '..' is an open end, not an instant")
        day = _moment(raw)
        return day, day, False
    a, b = (None if p in ("", "..") else _moment(p) for p in parts)
    if a is not None and b is not None and b < a:
        raise InputError(f"parameter 'datetime': {raw!r} ends before it starts")
    return a, b, True


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _status(plan: Plan, today: date) -> str:
    if plan.valid_from is None:
        return "draft"
    if today < plan.valid_from:
        return "scheduled"
    return "in force" if plan.in_force(today) else "ended"


def _with_datetime(href: str, value: str) -> str:
    """A link of the answer, with the ``datetime`` it was asked with."""
    parts = urlsplit(href)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "datetime"]
    query.append(("datetime", value))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _polygonal(geom: Any) -> Any:
    """The polygons of a piece (an intersection may hold edges and corners too); None if none."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    return shapely.union_all(parts)


class PlanService:
    """The plan versions of a workspace, for the grids, plans and grid-changes collections.

    Parameters
    ----------
    features
        The service's :class:`~gridgeo.serve.features.FeatureService`: pages,
        CRSs and bounding boxes are handled by it, as for every collection.
    load
        Returns the plans (:func:`gridgeo.io.read_plans`); called on first use, and
        again when ``version`` changes.
    units
        Returns the buildings (``households``, ``population``) whose move the
        crosswalk counts, or None; called once, on the first grid-changes request.
    cache
        Number of crosswalks kept (one per pair of plans).
    today
        Returns the day that decides a plan's ``status`` (default: the local date).
    version
        Returns a fingerprint of the stored plans (:func:`gridgeo.io.plans_version`);
        ``None``: the plans are read once.
    check_every
        Seconds between two calls of ``version`` (a request past that checks it).
    clock
        Monotonic seconds (default :func:`time.monotonic`).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridgeo.partition import Plan
    >>> def grids(codes, x0):
    ...     return gpd.GeoDataFrame({"code": codes}, crs="EPSG:4490", geometry=[
    ...         shapely.box(x0 + 0.01 * i, 25.3, x0 + 0.01 * (i + 1), 25.31)
    ...         for i in range(len(codes))])
    >>> old = Plan.from_grids(grids(["A"], 114.9), plan_id="p1", valid_from="2024-01-01",
    ...                       valid_to="2025-01-01")
    >>> new = Plan.from_grids(grids(["B", "C"], 114.9), plan_id="p2", valid_from="2025-01-01")
    >>> fs = FeatureService({"grids": new.grids})
    >>> svc = PlanService(fs, load=lambda: [old, new])
    >>> body, status, _ = svc.grids_items({"datetime": "2024-06-01"}, "")
    >>> status, [f["id"] for f in body["features"]], body["plans"]
    (200, ['A'], ['p1'])
    >>> body, _, _ = svc.grids_items({"datetime": "2024-06-01/.."}, "")
    >>> [f["id"] for f in body["features"]]
    ['A@p1', 'B@p2', 'C@p2']
    """

    def __init__(
        self,
        features: FeatureService,
        *,
        load: Callable[[], list[Plan]],
        units: Callable[[], gpd.GeoDataFrame | None] | None = None,
        cache: int = 16,
        today: Callable[[], date] = date.today,
        version: Callable[[], Hashable] | None = None,
        check_every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.features = features
        self._load = load
        self._load_units = units
        self._today = today
        self._version = version
        self._cache = cache
        self._check_every = float(check_every)
        self._clock = clock
        self._lock = threading.Lock()
        self._plans: list[Plan] | None = None
        self._seen: Hashable = None  # the version the plans were read at
        self._next_check = 0.0
        self._layer_plan: str | None = None
        self.generation = 0  # plans read so far: 1 after the first read, +1 per reload
        self._units_read: tuple[gpd.GeoDataFrame | None] | None = None
        # keyed by the Plan objects' ids, which the entries keep alive (so an id is not
        # reused while its entry is cached): a reload's plans are new objects, new keys
        self._grids = _LRU(cache)  # plan object ids -> (plans, Collection of their grids)
        self._changes = _LRU(cache)  # (old, new) object ids -> ((old, new), crosswalk)
        self._pair_locks: dict[tuple[int, int], threading.Lock] = {}

    # ---- the plans, read on first use and again when they change ------------------------

    @property
    def plans(self) -> list[Plan]:
        """Every plan (base, then business; each by ``valid_from``, drafts last).

        Read on first use; then, at most every ``check_every`` seconds, the
        ``version`` is checked and the plans are read again if it changed.
        """
        plans = self._plans
        if plans is None or (self._version is not None and self._clock() >= self._next_check):
            with self._lock:
                if self._plans is None:
                    self._read(first=True)
                elif self._version is not None and self._clock() >= self._next_check:
                    self._read(first=False)
                plans = self._plans
        assert plans is not None
        return plans

    def _read(self, *, first: bool) -> None:
        """Read the plans (under the lock); on a reload, only when ``version`` moved."""
        self._next_check = self._clock() + self._check_every
        seen = self._version() if self._version is not None else None
        if not first and seen == self._seen:
            return
        try:
            plans = list(self._load())
            if self._version is not None and self._version() != seen:
                raise InputError("the plans changed while they were read")
        except (GridGeoError, OSError) as err:
            if first:
                raise
            # a writer is mid-way (grid_versions rewritten before plans): keep the plans
            # served, and try again at the next check
            log.warning("plans changed but could not be read again (%s); retrying", err)
            return
        self._plans, self._seen = plans, seen
        self._grids = _LRU(self._cache)  # what was derived from the plans read before
        self._changes = _LRU(self._cache)
        self.generation += 1
        self._layer_plan = self._find_layer_plan(plans)
        if first:
            log.info("read %d plans", len(plans))
        else:
            log.info("plans changed: read %d plans again", len(plans))
        today = self._in_force_today(plans)
        if today is not None and today != self._layer_plan:
            log.warning(
                "base plan %r is in force today, but the grids layer, the point lookup and "
                "the incident routing still use the grids read at start-up (plan %r): "
                "restart the service to move them to it",
                today,
                self._layer_plan,
            )

    def _find_layer_plan(self, plans: list[Plan]) -> str | None:
        """The base plan whose codes are those of the grids layer read at start-up."""
        try:
            grids = self.features.collection("grids")
        except NotFound:
            return None
        if not isinstance(grids, Collection):  # a layer read at start-up is a Collection
            return None
        layer = set(grids.ids)
        same = [p for p in plans if p.level == "base" and set(map(str, p.codes)) == layer]
        today = self._in_force_today(plans)
        for p in same:  # the plan in force today when it has the same grids
            if p.plan_id == today:
                return p.plan_id
        return same[-1].plan_id if same else None

    def _in_force_today(self, plans: list[Plan]) -> str | None:
        day = self._today()
        found = [p for p in plans if p.level == "base" and p.in_force(day)]
        return found[0].plan_id if found else None

    @property
    def layer_plan(self) -> str | None:
        """The base plan of the grids layer read at start-up (that the point lookup uses).

        ``None`` when the layer holds the grids of no plan. After a plan is
        adopted the service serves it from ``/collections/plans`` and
        ``/collections/grids/items?datetime=…`` within seconds, but the grids
        layer (``/collections/grids/items`` without ``datetime``, ``/locate``,
        the incident routing) keeps this plan until the service restarts.
        """
        _ = self.plans  # read (or re-read) them first
        return self._layer_plan

    def plan(self, plan_id: str) -> Plan:
        """One plan by id.

        Raises
        ------
        NotFound
            If there is no such plan; the message lists the plans.
        """
        for plan in self.plans:
            if plan.plan_id == plan_id:
                return plan
        raise NotFound(f"plan {plan_id!r} does not exist; plans are {self.plan_ids}")

    @property
    def plan_ids(self) -> list[str]:
        """The ids of every plan, in :attr:`plans` order."""
        return [p.plan_id for p in self.plans]

    def in_force(self, first: date | None, last: date | None, *, level: str = "base") -> list[Plan]:
        """The adopted plans of ``level`` in force on at least one day of ``first..last``.

        ``None`` is an open end; ``first == last`` selects the plan of that day.
        """
        out = []
        for plan in self.plans:
            if plan.level != level or plan.valid_from is None:
                continue
            if last is not None and plan.valid_from > last:
                continue
            if first is not None and plan.valid_to is not None and plan.valid_to <= first:
                continue
            out.append(plan)
        return out

    def collections(self, extent: list[float]) -> list[ServedCollection]:
        """The collections this core serves, for ``/collections`` (``extent``: the grids')."""
        return [
            ServedCollection(
                "plans",
                "网格方案 Grid plans",
                extent,
                "One feature per plan version of the grids (base and business): its dates "
                "(valid_to exclusive), status, grid count and retired codes; the geometry is "
                "the plan's extent.",
                queryables=["plan_id", "name", "level", "status", "base_plan"],
            ),
            ServedCollection(
                "grid-changes",
                "网格变更 Grid changes",
                extent,
                "The crosswalk between two plans (from=, to=: plan ids or days): one row per "
                "old grid and new grid sharing ground, with the shared area, the shares, the "
                "households and population moved and the change label of the old grid.",
                queryables=["old_code", "new_code", "change"],
            ),
        ]

    # ---- grids at a date -----------------------------------------------------------------

    def _grids_collection(self, plans: list[Plan]) -> Collection:
        key = tuple(id(p) for p in plans)
        found = self._grids.get(key)
        coll = None if found is None else found[1]
        if coll is None:
            frames = []
            for p in plans:
                g = p.grids.to_crs("EPSG:4326")
                frames.append(
                    g.assign(
                        plan_id=p.plan_id, valid_from=_iso(p.valid_from), valid_to=_iso(p.valid_to)
                    )
                )
            gdf = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
            cols = [c for c in gdf.columns if c != gdf.geometry.name] + [gdf.geometry.name]
            gdf = gdf[cols]
            for col in ("valid_from", "valid_to"):
                gdf[col] = gdf[col].astype(object)
            queryables = [
                c
                for c in gdf.columns
                if c != gdf.geometry.name
                and (gdf[c].dtype == object or pd.api.types.is_string_dtype(gdf[c]))
            ]
            coll = Collection("grids", "网格 Grids", gdf, "code", queryables)
            self._grids.put(key, (tuple(plans), coll))
        return coll

    def grids_items(self, params: dict[str, str], base: str) -> Response:
        """``/collections/grids/items`` with ``datetime``: the base grids in force then."""
        raw = params["datetime"]
        first, last, interval = parse_datetime(raw)
        rest = {k: v for k, v in params.items() if k != "datetime"}
        plans = self.in_force(first, last)
        if not interval:
            plans = plans[:1]
        if not plans:
            # nothing in force: the grids layer validates the other parameters, then no features
            body, status, headers = self.features.items("grids", rest, base)
            body = {
                **body,
                "features": [],
                "numberMatched": 0,
                "numberReturned": 0,
                "links": [x for x in body["links"] if x["rel"] in ("self", "alternate")],
            }
        else:
            body, status, headers = self.features.items_of(
                self._grids_collection(plans), rest, base
            )
        if interval:
            for f in body["features"]:
                f["id"] = f"{f['properties']['code']}{_ID_SEP}{f['properties']['plan_id']}"
        for link in body["links"]:
            link["href"] = _with_datetime(link["href"], raw)
        body["plans"] = [p.plan_id for p in plans]
        body["layer_plan"] = self.layer_plan
        return body, status, headers

    def grids_item(self, fid: str, params: dict[str, str], base: str) -> Response:
        """``/collections/grids/items/{id}``: ``datetime`` (an instant), or an id ``code@plan``."""
        rest = {k: v for k, v in params.items() if k != "datetime"}
        code, sep, plan_id = fid.rpartition(_ID_SEP)
        if sep:
            if "datetime" in params:
                raise InputError(
                    f"grid {fid!r} names its plan; 'datetime' applies to a code without one"
                )
            plan = self.plan(plan_id)
            coll = self._grids_collection([plan])
            if code not in coll.ids:
                raise NotFound(f"grid {code!r} is not in plan {plan_id!r}")
            body, status, headers = self.features.item_of(coll, code, rest, base)
            body["id"] = fid
            body["links"][0]["href"] = f"{base}/collections/grids/items/{fid}"
            return body, status, headers
        raw = params["datetime"]
        first, _, interval = parse_datetime(raw)
        if interval:
            raise InputError(
                f"parameter 'datetime': {raw!r} is an interval; one grid needs an instant "
                f"(or ask for {fid}{_ID_SEP}PLAN_ID)"
            )
        plans = self.in_force(first, first)
        if not plans:
            raise NotFound(f"no base plan is in force on {first}; plans are {self.plan_ids}")
        coll = self._grids_collection(plans[:1])
        if fid not in coll.ids:
            raise NotFound(
                f"grid {fid!r} is not in base plan {plans[0].plan_id!r}, in force on {first}"
            )
        body, status, headers = self.features.item_of(coll, fid, rest, base)
        body["links"][0]["href"] = _with_datetime(body["links"][0]["href"], raw)
        return body, status, headers

    # ---- the plans collection ------------------------------------------------------------

    def _plans_collection(self, plans: list[Plan]) -> Collection:
        today = self._today()
        rows = []
        for p in plans:
            box = p.grids.to_crs("EPSG:4326").total_bounds
            rows.append(
                {
                    "plan_id": p.plan_id,
                    "name": p.name,
                    "level": p.level,
                    "status": _status(p, today),
                    "valid_from": _iso(p.valid_from),
                    "valid_to": _iso(p.valid_to),
                    "base_plan": p.base_plan,
                    "grid_count": len(p.grids),
                    "retired_count": len(p.retired_codes),
                    "geometry": shapely.box(*box),
                }
            )
        columns = [
            "plan_id", "name", "level", "status", "valid_from", "valid_to", "base_plan",
            "grid_count", "retired_count", "geometry",
        ]  # fmt: skip
        gdf = gpd.GeoDataFrame(pd.DataFrame(rows, columns=columns), crs="EPSG:4326")
        for col in ("valid_from", "valid_to", "base_plan"):
            gdf[col] = gdf[col].astype(object)
        return Collection(
            "plans",
            "网格方案 Grid plans",
            gdf,
            "plan_id",
            ["plan_id", "name", "level", "status", "base_plan"],
        )

    def plans_items(self, params: dict[str, str], base: str) -> Response:
        """``/collections/plans/items``: every plan; with ``datetime``, those in force then."""
        plans = self.plans
        raw = params.get("datetime")
        rest = {k: v for k, v in params.items() if k != "datetime"}
        if raw is not None:
            first, last, _ = parse_datetime(raw)
            plans = [
                p for lvl in ("base", "business") for p in self.in_force(first, last, level=lvl)
            ]
        body, status, headers = self.features.items_of(self._plans_collection(plans), rest, base)
        if raw is not None:
            for link in body["links"]:
                link["href"] = _with_datetime(link["href"], raw)
        body["layer_plan"] = self.layer_plan
        return body, status, headers

    def plans_item(self, plan_id: str, params: dict[str, str], base: str) -> Response:
        """``/collections/plans/items/{plan_id}``."""
        plan = self.plan(plan_id)
        return self.features.item_of(self._plans_collection([plan]), plan_id, params, base)

    # ---- grid changes --------------------------------------------------------------------

    def resolve(self, value: str | None, name: str, *, level: str = "base") -> Plan:
        """A plan from a ``plan_id``, else from a day (the plan of ``level`` in force then).

        Raises
        ------
        InputError
            If ``value`` is missing or empty, or neither a plan id nor a date.
        NotFound
            If no plan of ``level`` is in force that day.
        """
        if value is None or value == "":
            raise InputError(
                f"parameter '{name}' is required: a plan id (one of {self.plan_ids}) or a day "
                "(YYYY-MM-DD: the plan in force then)"
            )
        for plan in self.plans:
            if plan.plan_id == value:
                return plan
        if not (_DAY.fullmatch(value) or _DATETIME.fullmatch(value)):
            raise NotFound(
                f"parameter '{name}': {value!r} is neither a plan (plans are {self.plan_ids}) "
                "nor a date"
            )
        try:
            day = _moment(value)
        except InputError as err:
            raise InputError(
                f"parameter '{name}': {value!r} is not a valid date, nor a plan id"
            ) from err
        found = self.in_force(day, day, level=level)
        if not found:
            raise NotFound(f"parameter '{name}': no {level} plan is in force on {day}")
        return found[0]

    def _units(self) -> gpd.GeoDataFrame | None:
        if self._units_read is None:
            self._units_read = (self._load_units() if self._load_units is not None else None,)
        return self._units_read[0]

    def _changes_collection(self, old: Plan, new: Plan) -> Collection:
        key = (id(old), id(new))
        found = self._changes.get(key)
        if found is not None:
            return found[1]
        with self._lock:
            lock = self._pair_locks.setdefault(key, threading.Lock())
        with lock:  # one crosswalk per pair, however many ask at once
            found = self._changes.get(key)
            if found is None:
                found = ((old, new), self._build_changes(old, new))
                self._changes.put(key, found)
        with self._lock:
            self._pair_locks.pop(key, None)
        return found[1]

    def _build_changes(self, old: Plan, new: Plan) -> Collection:
        from gridgeo.partition.crosswalk import crosswalk

        cw = crosswalk(old, new, units=self._units())
        og = old.grids.set_index(old.grids["code"].astype(str)).geometry
        ng = new.grids.to_crs(old.grids.crs)
        ng = ng.set_index(ng["code"].astype(str)).geometry
        oc, nc = cw["old_code"], cw["new_code"]
        both = (oc.notna() & nc.notna()).to_numpy()
        pieces = np.full(len(cw), None, dtype=object)
        if both.any():
            a = og.loc[oc[both].astype(str)].to_numpy()
            b = ng.loc[nc[both].astype(str)].to_numpy()
            pieces[both] = [_polygonal(g) for g in shapely.intersection(a, b)]
        only_old = (oc.notna() & nc.isna()).to_numpy()
        if only_old.any():
            rest = shapely.difference(
                og.loc[oc[only_old].astype(str)].to_numpy(), shapely.union_all(ng.to_numpy())
            )
            pieces[only_old] = [_polygonal(g) for g in rest]
        only_new = (oc.isna() & nc.notna()).to_numpy()
        if only_new.any():
            rest = shapely.difference(
                ng.loc[nc[only_new].astype(str)].to_numpy(), shapely.union_all(og.to_numpy())
            )
            pieces[only_new] = [_polygonal(g) for g in rest]
        frame = pd.DataFrame(cw).reset_index(drop=True)
        for col in ("old_code", "new_code", "change"):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        frame.insert(
            0,
            "pair",
            [
                f"{'' if o is None else o}{_PAIR_SEP}{'' if n is None else n}"
                for o, n in zip(frame["old_code"], frame["new_code"])
            ],
        )
        frame["from_plan"] = old.plan_id
        frame["to_plan"] = new.plan_id
        gdf = gpd.GeoDataFrame(frame, geometry=list(pieces), crs=old.grids.crs).to_crs("EPSG:4326")
        log.info("crosswalk %s -> %s: %d rows", old.plan_id, new.plan_id, len(gdf))
        return Collection(
            "grid-changes", "网格变更 Grid changes", gdf, "pair", ["old_code", "new_code", "change"]
        )

    def _pair(self, params: dict[str, str]) -> tuple[Plan, Plan, dict[str, str]]:
        level = params.get("level", "base")
        if level not in ("base", "business"):
            raise InputError(f"parameter 'level' was {level!r}; expected 'base' or 'business'")
        old = self.resolve(params.get("from"), "from", level=level)
        new = self.resolve(params.get("to"), "to", level=level)
        rest = {k: v for k, v in params.items() if k not in ("from", "to", "level")}
        return old, new, rest

    def changes_items(self, params: dict[str, str], base: str) -> Response:
        """``/collections/grid-changes/items?from=…&to=…``: the crosswalk's rows."""
        old, new, rest = self._pair(params)
        body, status, headers = self.features.items_of(
            self._changes_collection(old, new), rest, base
        )
        keep = {k: params[k] for k in ("from", "to", "level") if k in params}
        for link in body["links"]:
            parts = urlsplit(link["href"])
            query = [(k, v) for k, v in parse_qsl(parts.query) if k not in keep]
            link["href"] = urlunsplit(parts._replace(query=urlencode([*keep.items(), *query])))
        body["from_plan"], body["to_plan"] = old.plan_id, new.plan_id
        return body, status, headers

    def changes_item(self, fid: str, params: dict[str, str], base: str) -> Response:
        """``/collections/grid-changes/items/{old~new}?from=…&to=…``: one row."""
        old, new, rest = self._pair(params)
        coll = self._changes_collection(old, new)
        if fid not in coll.ids:
            raise NotFound(
                f"pair {fid!r} (old{_PAIR_SEP}new) is not in the changes from plan "
                f"{old.plan_id!r} to {new.plan_id!r}"
            )
        return self.features.item_of(coll, fid, rest, base)
