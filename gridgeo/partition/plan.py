"""Plan versions: a grid layer, the dates it is in force, and the codes it has used.

A :class:`Plan` is one version of a grid layer. ``level="base"`` plans hold the
grids :func:`~gridgeo.partition.make_grids` cuts (基础网格); ``level="business"``
plans hold the groups :func:`~gridgeo.partition.regroup` merges them into
(业务网格), with their ``members``. A plan is in force from ``valid_from``
(inclusive) to ``valid_to`` (exclusive; ``None``: still in force); a plan
without ``valid_from`` is a draft, in force on no date, until it is adopted
(:func:`gridgeo.io.workspace.adopt_plan`).

Codes are never reused. Each plan records ``retired_codes``, the codes of the
plans it descends from that it no longer holds, so that :attr:`Plan.used_codes`
is every code its lineage has ever issued, and ``previous=`` of
:func:`~gridgeo.partition.make_grids` and :func:`~gridgeo.partition.regroup`
issues new serials above all of them.

Examples
--------
>>> import geopandas as gpd, shapely
>>> from datetime import date
>>> grids = gpd.GeoDataFrame({"code": ["360722001001001", "360722001001002"]},
...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs="EPSG:4547")
>>> plan = Plan.from_grids(grids, plan_id="base-2025", valid_from=date(2025, 1, 1))
>>> plan
Plan('base-2025', level='base', 2 grids, in force 2025-01-01..)
>>> plan.in_force(date(2024, 12, 31)), plan.in_force(date(2025, 6, 1))
(False, True)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Union

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.errors import CRSError, InputError, ValidationError

__all__ = ["LEVELS", "Plan", "used_codes"]

#: Plan levels: base grids (基础网格) and business grids (业务网格) merged from them.
LEVELS = ("base", "business")

#: Columns a plan's grids may not carry: the workspace stores them itself.
RESERVED_COLUMNS = ("plan_id", "members")

_PLAN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)

PlanLike = Union["Plan", gpd.GeoDataFrame]


def as_date(value: object, name: str) -> date | None:
    """A :class:`datetime.date` from a date, datetime, Timestamp or ISO string (None stays None).

    Raises
    ------
    InputError
        If ``value`` is none of these; the message names ``name``.

    Examples
    --------
    >>> as_date("2025-03-01", "valid_from"), as_date(None, "valid_to")
    (datetime.date(2025, 3, 1), None)
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime):  # before date: a datetime is a date
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise InputError(
        f"{name} was {value!r}; give a date, e.g. datetime.date(2025, 1, 1) or '2025-01-01'"
    )


@dataclass(frozen=True, eq=False, kw_only=True)
class Plan:
    """One version of a grid layer: its grids, its level and the dates it is in force.

    Build plans with :meth:`from_grids` (a :func:`~gridgeo.partition.make_grids`
    result) or :meth:`from_regroup` (a :func:`~gridgeo.partition.regroup` result);
    change one with :func:`dataclasses.replace`, which validates again. The
    grids are copied in, so a plan never changes under its holder.

    Attributes
    ----------
    plan_id
        Identifier, unique in a workspace: a letter or digit, then up to 63
        letters, digits, ``.``, ``_`` or ``-`` (it appears in URLs).
    grids
        One row per grid: a unique string ``code``, the parent codes the grids
        carry (``community_code`` for base grids, the ``within`` column for
        business grids), any count columns, and polygon geometry with a CRS.
    level
        ``"base"`` or ``"business"`` (see :data:`LEVELS`).
    name
        Human-readable name, e.g. ``"2025 re-partition"``.
    valid_from
        First day in force; ``None``: a draft, in force on no date.
    valid_to
        First day no longer in force (exclusive); ``None``: open-ended.
    members
        Business plans only: business code → sorted tuple of the base codes it
        merges. Every business grid has members, and no base code is in two.
    retired_codes
        Codes issued by the plans this one descends from that it no longer
        holds. A plan's grids never use a retired code.
    base_plan
        Business plans: the ``plan_id`` of the base plan whose codes the
        members name, when known.

    Raises
    ------
    InputError
        For a bad ``plan_id``, ``level``, date, or ``valid_to`` not after
        ``valid_from``.
    CRSError
        If the grids have no CRS.
    ValidationError
        Listing every problem of the grids and members at once.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"code": ["G01", "G02"]},
    ...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs="EPSG:4547")
    >>> Plan(plan_id="b1", grids=g, level="business", members={"G01": ["a"], "G02": ["a"]})
    Traceback (most recent call last):
    ...
    gridgeo.errors.ValidationError: plan 'b1' has 1 problem:
      - base grids are in two business grids: a (in G01 and G02)
    """

    plan_id: str
    grids: gpd.GeoDataFrame
    level: str = "base"
    name: str = ""
    valid_from: date | None = None
    valid_to: date | None = None
    members: Mapping[str, tuple[str, ...]] | None = None
    retired_codes: frozenset[str] = field(default_factory=frozenset)
    base_plan: str | None = None

    def __post_init__(self) -> None:
        pid = self.plan_id
        if not isinstance(pid, str) or not _PLAN_ID.fullmatch(pid):
            raise InputError(
                f"plan_id was {pid!r}; use a letter or digit, then up to 63 letters, digits, "
                "'.', '_' or '-' (e.g. 'base-2025')"
            )
        if self.level not in LEVELS:
            raise InputError(f"plan {pid!r}: level was {self.level!r}; expected one of {LEVELS}")
        if not isinstance(self.name, str) or "\x00" in self.name:
            raise InputError(
                f"plan {pid!r}: name was {self.name!r}; give a string without NUL characters"
            )
        if self.base_plan is not None and self.level != "business":
            raise InputError(f"plan {pid!r}: base_plan is for business plans only")
        start = as_date(self.valid_from, "valid_from")
        end = as_date(self.valid_to, "valid_to")
        if end is not None and start is None:
            raise InputError(
                f"plan {pid!r}: valid_to is {end} but valid_from is None; a draft cannot end"
            )
        if start is not None and end is not None and end <= start:
            raise InputError(
                f"plan {pid!r}: valid_to {end} must be after valid_from {start} "
                "(valid_to is the first day no longer in force)"
            )
        grids = self.grids
        if not isinstance(grids, gpd.GeoDataFrame):
            what = type(grids).__name__
            raise InputError(f"plan {pid!r}: grids must be a GeoDataFrame, not {what}")
        if grids.crs is None:
            raise CRSError(f"plan {pid!r}: the grids have no CRS; set one, e.g. .set_crs(4490)")
        retired = frozenset(self.retired_codes)
        problems = _grid_problems(grids, retired)
        members = _members(self.members, grids, self.level, problems)
        if problems:
            raise ValidationError(problems, what=f"plan {pid!r}")
        out = grids.copy()
        out.attrs = {}
        out.index = pd.RangeIndex(len(out))
        for name, value in (
            ("valid_from", start),
            ("valid_to", end),
            ("grids", out),
            ("members", members),
            ("retired_codes", frozenset(map(str, retired))),
        ):
            object.__setattr__(self, name, value)

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def from_grids(
        cls,
        grids: gpd.GeoDataFrame,
        *,
        plan_id: str,
        name: str = "",
        valid_from: date | str | None = None,
        valid_to: date | str | None = None,
        retired_codes: Iterable[str] | None = None,
    ) -> Plan:
        """A base plan from :func:`~gridgeo.partition.make_grids` output (or any grids layer).

        Parameters
        ----------
        grids
            Grids with a unique ``code`` and a CRS.
        plan_id, name, valid_from, valid_to
            See :class:`Plan`.
        retired_codes
            Default: ``grids.attrs["retired_codes"]``, which ``make_grids(...,
            previous=…)`` sets, else none.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> g = gpd.GeoDataFrame({"code": ["360722001001002"]},
        ...                      geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4547")
        >>> g.attrs["retired_codes"] = ["360722001001001"]
        >>> sorted(Plan.from_grids(g, plan_id="p2").used_codes)
        ['360722001001001', '360722001001002']
        """
        if retired_codes is None:
            retired_codes = _attrs(grids).get("retired_codes", ())
        return cls(
            plan_id=plan_id,
            grids=grids,
            level="base",
            name=name,
            valid_from=valid_from,
            valid_to=valid_to,
            retired_codes=frozenset(retired_codes),
        )

    @classmethod
    def from_regroup(
        cls,
        groups: gpd.GeoDataFrame,
        *,
        plan_id: str,
        name: str = "",
        base_plan: str | None = None,
        valid_from: date | str | None = None,
        valid_to: date | str | None = None,
        retired_codes: Iterable[str] | None = None,
    ) -> Plan:
        """A business plan from :func:`~gridgeo.partition.regroup` output.

        The ``members`` column becomes :attr:`Plan.members`; the other columns
        stay in :attr:`Plan.grids`.

        Parameters
        ----------
        groups
            Business grids with a unique ``code``, a ``members`` column of base
            codes (tuples or lists) and a CRS.
        plan_id, name, base_plan, valid_from, valid_to
            See :class:`Plan`.
        retired_codes
            Default: ``groups.attrs["retired_codes"]``, which ``regroup(...,
            previous=…)`` sets, else none.

        Raises
        ------
        InputError
            If ``groups`` has no ``members`` column.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> g = gpd.GeoDataFrame({"code": ["G01"], "members": [("a", "b")]},
        ...                      geometry=[shapely.box(0, 0, 2, 1)], crs="EPSG:4547")
        >>> p = Plan.from_regroup(g, plan_id="biz-2025", base_plan="base-2025")
        >>> dict(p.members), list(p.grids.columns)
        ({'G01': ('a', 'b')}, ['code', 'geometry'])
        """
        if not isinstance(groups, gpd.GeoDataFrame) or "members" not in groups.columns:
            cols = list(groups.columns) if isinstance(groups, pd.DataFrame) else type(groups)
            raise InputError(
                f"plan {plan_id!r}: regroup output needs a 'members' column; it has {cols}"
            )
        if "code" not in groups.columns:
            raise InputError(f"plan {plan_id!r}: the groups have no 'code' column")
        members = {str(c): tuple(m) for c, m in zip(groups["code"], groups["members"])}
        if retired_codes is None:
            retired_codes = _attrs(groups).get("retired_codes", ())
        return cls(
            plan_id=plan_id,
            grids=groups.drop(columns="members"),
            level="business",
            name=name,
            valid_from=valid_from,
            valid_to=valid_to,
            members=members,
            retired_codes=frozenset(retired_codes),
            base_plan=base_plan,
        )

    # -- queries -------------------------------------------------------------------------
    @property
    def codes(self) -> tuple[str, ...]:
        """The grid codes, in row order."""
        return tuple(self.grids["code"].tolist())

    @property
    def used_codes(self) -> frozenset[str]:
        """Every code this plan's lineage has issued: its codes and its retired codes."""
        return frozenset(self.codes) | self.retired_codes

    @property
    def assignment(self) -> pd.Series:
        """Business plans: Series base code → business code (regroup's ``attrs["assignment"]``).

        Raises
        ------
        InputError
            For a base plan.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> g = gpd.GeoDataFrame({"code": ["G01"], "members": [("a", "b")]},
        ...                      geometry=[shapely.box(0, 0, 2, 1)], crs="EPSG:4547")
        >>> Plan.from_regroup(g, plan_id="b").assignment.to_dict()
        {'a': 'G01', 'b': 'G01'}
        """
        if self.members is None:
            raise InputError(f"plan {self.plan_id!r} is a base plan; it has no members")
        pairs = [(m, c) for c, ms in self.members.items() for m in ms]
        return pd.Series(
            [c for _, c in pairs],
            index=pd.Index([m for m, _ in pairs], name="member"),
            name="code",
            dtype=object,
        )

    @property
    def is_draft(self) -> bool:
        """Whether the plan has not been adopted (no ``valid_from``)."""
        return self.valid_from is None

    def in_force(self, on: date | datetime | str) -> bool:
        """Whether the plan is in force on a day: ``valid_from <= on < valid_to``.

        Parameters
        ----------
        on
            A date (a datetime or ISO string is read as its day).

        Raises
        ------
        InputError
            If ``on`` is not a date.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> g = gpd.GeoDataFrame({"code": ["x"]}, geometry=[shapely.box(0, 0, 1, 1)],
        ...                      crs="EPSG:4547")
        >>> p = Plan(plan_id="p", grids=g, valid_from="2025-01-01", valid_to="2026-01-01")
        >>> p.in_force("2025-12-31"), p.in_force("2026-01-01")
        (True, False)
        """
        day = as_date(on, "on")
        if day is None:
            raise InputError("on was None; give the date to test")
        if self.valid_from is None or day < self.valid_from:
            return False
        return self.valid_to is None or day < self.valid_to

    def __repr__(self) -> str:
        if self.valid_from is None:
            when = "draft"
        else:
            when = f"in force {self.valid_from}..{'' if self.valid_to is None else self.valid_to}"
        return f"Plan({self.plan_id!r}, level={self.level!r}, {len(self.grids)} grids, {when})"

    def replace(self, **changes: Any) -> Plan:
        """A copy with some fields changed, validated again (:func:`dataclasses.replace`).

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> g = gpd.GeoDataFrame({"code": ["x"]}, geometry=[shapely.box(0, 0, 1, 1)],
        ...                      crs="EPSG:4547")
        >>> Plan(plan_id="p", grids=g).replace(valid_from="2025-01-01").valid_from
        datetime.date(2025, 1, 1)
        """
        return dataclasses.replace(self, **changes)


def used_codes(previous: PlanLike | Sequence[PlanLike] | None) -> frozenset[str]:
    """Every code issued by one plan or a sequence of plans, retired ones included.

    Parameters
    ----------
    previous
        A :class:`Plan`, a grids GeoDataFrame (its ``code`` column and
        ``attrs["retired_codes"]``), a sequence of them, or ``None``.

    Returns
    -------
    frozenset of str

    Raises
    ------
    InputError
        If an item is neither a Plan nor a GeoDataFrame with a ``code`` column.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"code": ["a2"]}, geometry=[shapely.box(0, 0, 1, 1)],
    ...                      crs="EPSG:4547")
    >>> g.attrs["retired_codes"] = ["a1"]
    >>> sorted(used_codes([g, Plan.from_grids(g.assign(code="a3"), plan_id="p")]))
    ['a1', 'a2', 'a3']
    """
    used: set[str] = set()
    for item in as_sequence(previous):
        if isinstance(item, Plan):
            used |= item.used_codes
        else:
            used |= set(map(str, item["code"].dropna()))
            used |= set(map(str, _attrs(item).get("retired_codes", ())))
    return frozenset(used)


def as_sequence(previous: PlanLike | Sequence[PlanLike] | None) -> list[PlanLike]:
    """``previous`` as a list of plans or grids frames, oldest first (checked)."""
    if previous is None:
        return []
    items = [previous] if isinstance(previous, (Plan, pd.DataFrame)) else list(previous)
    for i, item in enumerate(items):
        if isinstance(item, Plan):
            continue
        if not isinstance(item, gpd.GeoDataFrame) or "code" not in item.columns:
            what = type(item).__name__
            if isinstance(item, pd.DataFrame):
                what = f"a frame with columns {list(item.columns)}"
            raise InputError(
                f"previous[{i}] is {what}; give a Plan or grids (a GeoDataFrame with 'code')"
            )
        if item.crs is None:
            raise CRSError(f"previous[{i}] has no CRS; set one, e.g. .set_crs(4490)")
    return items


def _attrs(frame: object) -> Mapping[str, Any]:
    return getattr(frame, "attrs", {}) or {}


def _grid_problems(grids: gpd.GeoDataFrame, retired: frozenset[str]) -> list[str]:
    problems: list[str] = []
    reserved = [c for c in RESERVED_COLUMNS if c in grids.columns]
    if reserved:
        problems.append(
            f"the grids have reserved column(s) {reserved}; the workspace stores them itself "
            "(members go in members=)"
        )
    if len(grids) == 0:
        problems.append("the grids are empty; a plan needs at least one grid")
    if "code" not in grids.columns:
        problems.append(f"the grids have no 'code' column; columns are {list(grids.columns)}")
    else:
        codes = grids["code"]
        not_str = ~codes.map(lambda c: isinstance(c, str) and c != "").astype(bool)
        if not_str.any():
            rows = [str(i) for i in grids.index[not_str.to_numpy()][:5]]
            problems.append(f"codes must be non-empty strings; bad at rows {rows}")
        dup = codes[codes.duplicated(keep=False) & ~not_str]
        if len(dup):
            problems.append(f"duplicate codes {sorted(set(map(str, dup)))[:5]}")
        again = sorted(set(codes[~not_str]) & retired)
        if again:
            problems.append(f"codes {again[:5]} are retired; codes are never reused")
        if "community_code" in grids.columns:
            bad = [
                c
                for c, p in zip(codes, grids["community_code"])
                if isinstance(c, str) and isinstance(p, str) and not c.startswith(p)
            ]
            if bad:
                problems.append(f"codes {bad[:5]} do not start with their community_code")
    geoms = grids.geometry.to_numpy()
    empty = pd.isna(geoms) | shapely.is_empty(geoms)
    if empty.any():
        problems.append(f"empty geometries at rows {_where(grids, empty)}")
    kinds = shapely.get_type_id(geoms)
    wrong = ~empty & ~np.isin(kinds, [int(k) for k in _POLYGONAL])
    if wrong.any():
        problems.append(f"grids must be polygons; not at rows {_where(grids, wrong)}")
    invalid = ~empty & ~wrong & ~shapely.is_valid(geoms)
    if invalid.any():
        problems.append(
            f"invalid geometries at rows {_where(grids, invalid)}; repair them (shapely.make_valid)"
        )
    return problems


def _where(grids: gpd.GeoDataFrame, mask: np.ndarray) -> list[str]:
    if "code" in grids.columns:
        return [str(c) for c in grids["code"].to_numpy()[mask][:5]]
    return [str(i) for i in grids.index[mask][:5]]


def _members(
    members: Mapping[str, Iterable[str]] | None,
    grids: gpd.GeoDataFrame,
    level: str,
    problems: list[str],
) -> Mapping[str, tuple[str, ...]] | None:
    if level == "base":
        if members:
            problems.append("a base plan has no members; use level='business'")
        return None
    if members is None:
        problems.append(
            "a business plan needs members (business code → base codes); "
            "give members= or use Plan.from_regroup"
        )
        return None
    if not isinstance(members, Mapping):
        what = type(members).__name__
        problems.append(f"members must be a mapping code → base codes, not {what}")
        return None
    out: dict[str, tuple[str, ...]] = {}
    for code, ms in members.items():
        if isinstance(ms, str) or not isinstance(ms, Iterable):
            problems.append(f"members of {code!r} must be a list of base codes, not {ms!r}")
            continue
        out[str(code)] = tuple(sorted(map(str, ms)))
    codes = set(map(str, grids["code"])) if "code" in grids.columns else set()
    missing, extra = sorted(codes - set(out)), sorted(set(out) - codes)
    if missing:
        problems.append(f"business grids {missing[:5]} have no members")
    if extra:
        problems.append(f"members name business grids {extra[:5]} that are not in the grids")
    empty = sorted(c for c, ms in out.items() if not ms)
    if empty:
        problems.append(f"business grids {empty[:5]} have an empty member list")
    owner: dict[str, str] = {}
    twice: list[str] = []
    for code, ms in out.items():
        for m in ms:
            if m in owner and owner[m] != code:
                twice.append(f"{m} (in {owner[m]} and {code})")
            owner.setdefault(m, code)
    if twice:
        problems.append(f"base grids are in two business grids: {', '.join(twice[:5])}")
    return MappingProxyType(out)
