"""Deadlines in working days: which open incidents are overdue ("1-5-10").

Chinese grid governance closes an ordinary case within 5 working days (a red
light after that), contacts the citizen within 1 and reports on a complex case
within 10. Working days skip weekends and public holidays, and count the
make-up working days (调休, a Saturday or Sunday worked in place of a holiday)
that the State Council's calendar sets each year; both lists are settings.

Examples
--------
>>> cal = WorkCalendar(holidays=["2025-10-01", "2025-10-02", "2025-10-03", "2025-10-06",
...                              "2025-10-07", "2025-10-08"], workdays=["2025-09-28",
...                              "2025-10-11"])
>>> cal.deadline("2025-09-26", days=5)    # Fri; Sun 28 is worked; 1-8 Oct are off
'2025-10-10'
>>> overdue(["2025-09-26", "2025-09-29"], [None, None], now="2025-10-11", calendar=cal).tolist()
[True, False]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from gridgeo.errors import InputError

__all__ = ["DEFAULT_DAYS", "WorkCalendar", "deadlines", "overdue", "past"]

#: Working days to close an ordinary case ("1-5-10").
DEFAULT_DAYS = 5


def _days(values: Iterable[Any]) -> NDArray[np.datetime64]:
    """Local calendar days of dates or instants (tz-aware instants keep their own date)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":  # already days or times
        return values.astype("datetime64[D]")
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        if values.dt.tz is not None:
            values = values.dt.tz_localize(None)
        return values.to_numpy("datetime64[D]")
    ts = pd.to_datetime(pd.Series(list(values), dtype=object), errors="coerce")
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_localize(None)
    return ts.to_numpy("datetime64[D]")


@dataclass(frozen=True)
class WorkCalendar:
    """Working days: Monday to Friday, minus ``holidays``, plus ``workdays`` (调休).

    Parameters
    ----------
    holidays
        Public holidays that fall on a weekday (dates).
    workdays
        Weekend days that are worked (make-up days).

    Raises
    ------
    InputError
        For a date that cannot be read, or a day listed as both.
    """

    holidays: tuple[str, ...] | list[str] = ()
    workdays: tuple[str, ...] | list[str] = ()
    _off: NDArray[np.datetime64] = field(init=False, repr=False)
    _on: NDArray[np.datetime64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        off, on = (self._parse(v, n) for v, n in ((self.holidays, "holidays"),
                                                   (self.workdays, "workdays")))
        both = np.intersect1d(off, on)
        if len(both):
            raise InputError(f"days listed both as holidays and as workdays: {both.tolist()}")
        object.__setattr__(self, "_off", off)
        object.__setattr__(self, "_on", on)

    @staticmethod
    def _parse(values: Iterable[Any], name: str) -> NDArray[np.datetime64]:
        values = list(values)
        days = _days(values)
        bad = [v for v, d in zip(values, days) if np.isnat(d)]
        if bad:
            raise InputError(f"{name} has dates that cannot be read: {bad[:5]}")
        return np.unique(days)

    def is_workday(self, days: Any) -> NDArray[np.bool_]:
        """Whether each day is worked.

        Examples
        --------
        >>> WorkCalendar(workdays=["2025-09-28"]).is_workday(["2025-09-27", "2025-09-28"])
        array([False,  True])
        """
        d = _days(np.atleast_1d(days))
        return np.is_busday(d, holidays=self._off) | np.isin(d, self._on)

    def deadline(self, reported: Any, *, days: int = DEFAULT_DAYS) -> str:
        """The last working day to close a case reported on ``reported``.

        The day of the report does not count; the deadline is the ``days``-th
        working day after it.
        """
        return str(self.deadlines([reported], days=days)[0])

    def deadlines(self, reported: Iterable[Any], *, days: int = DEFAULT_DAYS) -> NDArray[Any]:
        """:meth:`deadline` of many report days (NaT where the day is missing)."""
        if not isinstance(days, (int, np.integer)) or isinstance(days, bool) or days < 0:
            raise InputError(f"days must be a whole number of working days >= 0, got {days!r}")
        start = _days(reported)
        out = np.full(len(start), np.datetime64("NaT"), dtype="datetime64[D]")
        ok = ~np.isnat(start)
        if not ok.any():
            return out
        cur = start[ok].copy()
        # step one working day at a time: `days` is small (1, 5, 10), the arrays are not
        for _ in range(int(days)):
            cur = cur + 1
            while True:
                off = ~self.is_workday(cur)
                if not off.any():
                    break
                cur[off] = cur[off] + 1
        out[ok] = cur
        return out


def deadlines(reported: Iterable[Any], *, days: int = DEFAULT_DAYS,
              calendar: WorkCalendar | None = None) -> NDArray[Any]:
    """Deadline day of each report (see :meth:`WorkCalendar.deadlines`).

    Examples
    --------
    >>> deadlines(["2025-03-07"]).astype(str).tolist()   # a Friday: next Friday
    ['2025-03-14']
    """
    return (calendar or WorkCalendar()).deadlines(reported, days=days)


def overdue(
    reported: Iterable[Any],
    closed: Iterable[Any],
    *,
    now: Any = None,
    days: int = DEFAULT_DAYS,
    calendar: WorkCalendar | None = None,
) -> NDArray[np.bool_]:
    """Which incidents are open past their deadline, as of ``now``.

    Parameters
    ----------
    reported, closed
        Report times and close times (``None``/NaT for an open incident).
    now
        The moment to judge at (default: today).
    days, calendar
        Working days allowed, and the calendar that says which days work.

    Returns
    -------
    numpy.ndarray of bool
        True for an open incident whose deadline day is before ``now``'s day.

    Raises
    ------
    InputError
        If the two inputs differ in length, or for a bad ``days``.
    """
    reported = list(reported)
    closed = list(closed)
    if len(reported) != len(closed):
        raise InputError(
            f"reported ({len(reported)}) and closed ({len(closed)}) differ in length"
        )
    due = (calendar or WorkCalendar()).deadlines(reported, days=days)
    return np.isnat(_days(closed)) & past(due, now=now)


def past(due: Any, *, now: Any = None) -> NDArray[np.bool_]:
    """Which deadline days (from :func:`deadlines`) are before ``now``'s day (default: today);
    a missing deadline (NaT) is never past.

    Examples
    --------
    >>> past(deadlines(["2025-03-07", None]), now="2025-03-17").tolist()
    [True, False]
    """
    today = _days([now if now is not None else pd.Timestamp.now()])[0]
    due = np.asarray(due, dtype="datetime64[D]")
    return ~np.isnat(due) & (due < today)
