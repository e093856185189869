"""Synthetic incident reports of the demo county: where, what and when (local metres).

Rhythms: weekdays busier than weekends, fire safety in winter, traffic around
public holidays, food safety and city appearance in summer, and a growth trend
over the two years 2024-01-01 .. 2025-12-31. Places: near buildings (by
population), market entities, streets and a few hot spots, with GPS scatter;
a handful fall just outside the county line.

Examples
--------
>>> CATEGORY_P["民生服务"] > CATEGORY_P["消防安全"]
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from gridgeo._demo.people import Buildings, Markets
from gridgeo._demo.territory import Territory

__all__ = ["CATEGORY_P", "Incidents", "build_incidents", "daily_weights"]

#: Share of each category among reports.
CATEGORY_P = {
    "民生服务": 0.20,
    "市容环境": 0.15,
    "矛盾纠纷": 0.12,
    "乱停乱放": 0.12,
    "物业管理": 0.10,
    "治安隐患": 0.08,
    "交通秩序": 0.07,
    "食品安全": 0.06,
    "市场监管": 0.06,
    "消防安全": 0.04,
}
START = np.datetime64("2024-01-01", "D")
N_DAYS = 731  # 2024 (leap) and 2025
#: Chinese public holidays of 2024-2025 (first day, number of days off).
HOLIDAYS = [
    ("2024-01-01", 1),
    ("2024-02-10", 8),
    ("2024-04-04", 3),
    ("2024-05-01", 5),
    ("2024-06-10", 1),
    ("2024-09-15", 3),
    ("2024-10-01", 7),
    ("2025-01-01", 1),
    ("2025-01-28", 8),
    ("2025-04-04", 3),
    ("2025-05-01", 5),
    ("2025-05-31", 3),
    ("2025-10-01", 8),
]
HOTSPOT_SHARE = 0.08
OUTSIDE_SHARE = 0.001
GPS_SIGMA_M = 3.0
_TRAFFIC = ("交通秩序", "乱停乱放")
_MARKET = ("市场监管", "食品安全")


@dataclass
class Incidents:
    """Incident reports (parallel arrays), in time order."""

    xy: NDArray[np.float64]
    category: NDArray[np.str_]
    reported_at: NDArray[np.datetime64]
    source: NDArray[np.str_]


def daily_weights(category: str) -> NDArray[np.float64]:
    """Relative report rate of ``category`` on each day from 2024-01-01 (731 values).

    Examples
    --------
    >>> w = daily_weights("消防安全")
    >>> bool(w[15] > w[196])  # mid-January above mid-July
    True
    >>> w = daily_weights("交通秩序")
    >>> bool(w[275] > w[268])  # National Day holiday above an ordinary Tuesday
    True
    """
    day = np.arange(N_DAYS)
    dow = day % 7  # 2024-01-01 was a Monday
    doy = day % 365.25
    week = np.where(dow < 5, 1.0, np.where(dow == 5, 0.75, 0.65))
    season = np.ones(N_DAYS)
    if category == "消防安全":
        season = 1.0 + 0.6 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    elif category in ("食品安全", "市容环境"):
        season = 1.0 + 0.35 * np.cos(2 * np.pi * (doy - 200) / 365.25)
    holiday = np.zeros(N_DAYS, dtype=bool)
    for first, days in HOLIDAYS:
        i = int((np.datetime64(first, "D") - START).astype(int))
        holiday[i : i + days] = True
    week = np.where(holiday, 2.2 if category in _TRAFFIC else 0.6, week)
    trend = 1.0 + 0.4 * day / N_DAYS
    return week * season * trend


def _hour_p(category: str) -> NDArray[np.float64]:
    hour = np.arange(24)
    day = np.exp(-0.5 * ((hour - 10.0) / 2.5) ** 2) + 0.9 * np.exp(
        -0.5 * ((hour - 15.5) / 2.0) ** 2
    )
    p = day + 0.03
    if category in _TRAFFIC:
        p += 0.8 * np.exp(-0.5 * ((hour - 8.0) / 1.0) ** 2) + 0.9 * np.exp(
            -0.5 * ((hour - 18.0) / 1.2) ** 2
        )
    if category in ("治安隐患", "矛盾纠纷"):
        p += 0.5 * np.exp(-0.5 * ((hour - 21.0) / 2.0) ** 2)
    return p / p.sum()


def _segments(lines: NDArray[np.object_]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    coords, which = shapely.get_coordinates(shapely.get_parts(lines), return_index=True)
    same = which[1:] == which[:-1]
    return coords[:-1][same], coords[1:][same]


def _on_streets(
    t: Territory, county: BaseGeometry, n: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    inner = shapely.buffer(county, -60.0)
    roads = shapely.intersection(np.asarray(t.roads, dtype=object), inner)
    a1, e1 = _segments(t.streets)
    a2, e2 = _segments(roads)
    a, e = np.concatenate([a1, a2]), np.concatenate([e1, e2])
    d = e - a
    length = np.hypot(d[:, 0], d[:, 1])
    w = length * np.concatenate([np.full(len(a1), 4.0), np.ones(len(a2))])
    pick = rng.choice(len(a), size=n, p=w / w.sum())
    f = rng.uniform(0.0, 1.0, n)[:, None]
    normal = np.column_stack([-d[pick, 1], d[pick, 0]]) / np.maximum(length[pick, None], 1e-9)
    return a[pick] + f * d[pick] + normal * rng.uniform(-8.0, 8.0, n)[:, None]


def _outside(county: BaseGeometry, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``n`` points 5-40 m outside the county line (GPS error at the edge)."""
    ring = shapely.get_exterior_ring(max(shapely.get_parts(county), key=lambda g: g.area))
    got: list[NDArray[np.float64]] = []
    have = 0
    while have < n:
        m = 4 * (n - have) + 8
        base = shapely.get_coordinates(
            shapely.line_interpolate_point(ring, rng.uniform(0, 1, m), normalized=True)
        )
        ang = rng.uniform(0, 2 * np.pi, m)
        xy = base + np.column_stack([np.cos(ang), np.sin(ang)]) * rng.uniform(5.0, 40.0, m)[:, None]
        pts = shapely.points(xy)
        ok = ~shapely.contains_xy(county, xy[:, 0], xy[:, 1]) & (
            shapely.distance(pts, county) > 1.0
        )
        got.append(xy[ok])
        have += int(ok.sum())
    return np.concatenate(got)[:n]


def build_incidents(
    t: Territory,
    county: BaseGeometry,
    b: Buildings,
    m: Markets,
    n: int,
    rng: np.random.Generator,
    scale: float,
) -> Incidents:
    """``n`` incident reports with category, true position and time.

    Examples
    --------
    >>> from gridgeo._demo.territory import build_territory
    >>> from gridgeo._demo.people import build_buildings, build_markets
    >>> rng = np.random.default_rng(0)
    >>> t = build_territory(rng, 0.3)
    >>> bl = build_buildings(t, rng, 0.3)
    >>> inc = build_incidents(t, t.outline, bl, build_markets(t, bl, rng, 0.3), 100, rng, 0.3)
    >>> len(inc.xy), str(inc.reported_at.min())[:4]
    (100, '2024')
    """
    cats = np.asarray(list(CATEGORY_P))
    cat_i = rng.choice(len(cats), size=n, p=np.asarray(list(CATEGORY_P.values())))
    category = cats[cat_i]
    xy = np.empty((n, 2))
    source = np.full(n, "building", dtype=object)

    # default: near a building, by population (people report around where they live)
    bi = rng.choice(len(b.xy), size=n, p=b.population / b.population.sum())
    origin = b.xy[bi]
    xy[:] = origin + rng.normal(0.0, 12.0, (n, 2))
    market_cat = np.isin(category, _MARKET) & (rng.uniform(size=n) < 0.85)
    k = int(market_cat.sum())
    if k and len(m.xy):
        mi = rng.integers(len(m.xy), size=k)
        origin[market_cat] = m.xy[mi]
        xy[market_cat] = m.xy[mi] + rng.normal(0.0, 6.0, (k, 2))
        source[market_cat] = "market"
    street_cat = np.isin(category, _TRAFFIC) & (rng.uniform(size=n) < 0.8)
    k = int(street_cat.sum())
    if k:
        pts = _on_streets(t, county, k, rng)
        origin[street_cat] = pts
        xy[street_cat] = pts
        source[street_cat] = "street"
    # hot spots in the seat: a market street, a night market, the bus station …
    hot = rng.uniform(size=n) < HOTSPOT_SHARE
    n_hot = max(3, round(4 * scale))
    seat = np.flatnonzero(b.community < t.n_urban)
    centres = b.xy[rng.choice(seat, size=n_hot, replace=len(seat) < n_hot)]
    which = rng.choice(n_hot, size=int(hot.sum()), p=rng.dirichlet(np.full(n_hot, 3.0)))
    sigma = rng.uniform(40.0, 120.0, n_hot)[which, None]
    origin[hot] = centres[which]
    xy[hot] = centres[which] + rng.normal(0.0, 1.0, (int(hot.sum()), 2)) * sigma
    source[hot] = "hotspot"
    xy += rng.normal(0.0, GPS_SIGMA_M, (n, 2))
    shapely.prepare(county)
    out = ~shapely.contains_xy(county, xy[:, 0], xy[:, 1])
    xy[out] = origin[out]
    # a handful just outside the county line
    n_out = min(n, max(3, round(OUTSIDE_SHARE * n))) if n else 0
    if n_out:
        at = rng.choice(n, size=n_out, replace=False)
        xy[at] = _outside(county, n_out, rng)
        source[at] = "outside"

    # time: per category, day by daily rhythm, hour by daily profile
    seconds = np.empty(n, dtype=np.int64)
    for c, name in enumerate(cats):
        mine = cat_i == c
        k = int(mine.sum())
        w = daily_weights(str(name))
        day = rng.choice(N_DAYS, size=k, p=w / w.sum())
        hour = rng.choice(24, size=k, p=_hour_p(str(name)))
        seconds[mine] = day * 86400 + hour * 3600 + rng.integers(0, 3600, k)
    order = np.argsort(seconds, kind="stable")
    when = START.astype("datetime64[s]") + seconds[order].astype("timedelta64[s]")
    return Incidents(
        xy=xy[order],
        category=category[order],
        reported_at=when.astype("datetime64[ns]"),
        source=source[order].astype(str),
    )
