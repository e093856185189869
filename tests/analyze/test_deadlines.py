"""Working-day deadlines ("1-5-10") against a day-by-day reference."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo.analyze.deadlines import WorkCalendar, deadlines, overdue
from gridgeo.errors import InputError

_DAY0 = dt.date(2024, 1, 1)
days_st = st.integers(0, 900).map(lambda k: _DAY0 + dt.timedelta(days=k))


def _reference(reported: dt.date, n: int, holidays: set, workdays: set) -> dt.date:
    def works(d: dt.date) -> bool:
        return d in workdays or (d.weekday() < 5 and d not in holidays)

    d, left = reported, n
    while left:
        d += dt.timedelta(days=1)
        left -= works(d)
    return d


@settings(max_examples=200, deadline=None)
@given(
    reported=days_st,
    n=st.integers(0, 12),
    off=st.sets(days_st, max_size=20),
    on=st.sets(days_st, max_size=6),
)
def test_deadline_matches_counting_day_by_day(reported, n, off, on) -> None:
    on = {d for d in on if d.weekday() >= 5}  # make-up days are weekend days
    off = {d for d in off if d not in on}
    cal = WorkCalendar(holidays=sorted(map(str, off)), workdays=sorted(map(str, on)))
    want = _reference(reported, n, off, on)
    assert cal.deadline(str(reported), days=n) == str(want)


@settings(max_examples=100, deadline=None)
@given(reported=st.lists(days_st, min_size=1, max_size=20), now=days_st)
def test_overdue_is_open_and_past_the_deadline(reported, now) -> None:
    closed = [None if i % 3 else str(r) for i, r in enumerate(reported)]
    got = overdue([str(r) for r in reported], closed, now=str(now))
    due = deadlines([str(r) for r in reported])
    for i, r in enumerate(reported):
        want = closed[i] is None and due[i] < np.datetime64(now)
        assert got[i] == want, (r, now)


def test_times_with_an_offset_keep_their_local_day() -> None:
    # 23:30 in Beijing on a Friday is Friday's report, not Saturday's (UTC would say Friday too,
    # but 00:30+08:00 on a Saturday is 16:30 UTC Friday: the local day must win)
    got = deadlines(["2025-03-08T00:30:00+08:00"], days=1)
    assert got.astype(str).tolist() == ["2025-03-10"]


def test_errors_name_the_problem() -> None:
    with pytest.raises(InputError, match="cannot be read: \\['soon'\\]"):
        WorkCalendar(holidays=["soon"])
    with pytest.raises(InputError, match="both as holidays and as workdays"):
        WorkCalendar(holidays=["2025-10-01"], workdays=["2025-10-01"])
    with pytest.raises(InputError, match="whole number of working days"):
        deadlines(["2025-01-01"], days=-1)
    with pytest.raises(InputError, match="differ in length"):
        overdue(["2025-01-01"], [], now="2025-02-01")


def test_time_columns_give_their_local_days() -> None:
    """A store's reported_at column (China time) counts from its own calendar day, as the
    same times given one by one do; an early-morning report is not moved to the UTC day."""
    times = ["2025-03-03T06:00:00+08:00", "2025-03-07T23:30:00+08:00", None]
    column = pd.Series(pd.to_datetime(times, format="ISO8601")).dt.tz_convert("Asia/Shanghai")
    want = ["2025-03-10", "2025-03-14", "NaT"]
    assert deadlines(column).astype(str).tolist() == want
    assert deadlines(list(column)).astype(str).tolist() == want
    assert deadlines(column.to_numpy("datetime64[ns]")).astype(str).tolist() != want  # UTC days
