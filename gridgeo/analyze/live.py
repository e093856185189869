"""Incidents followed live from an incident store: the heat-map index and the open cases.

A service worker keeps one :class:`LiveIncidents`. It reads the store once
(``changes_since(0)``: every row and the cursor, in one read), then on
:meth:`LiveIncidents.refresh` pulls only the rows changed since its cursor:
new incidents are merged into the Z-order index (:meth:`IncidentIndex.extend`),
status changes move the open cases. Each worker polls the same store, so every
worker sees a new report within one refresh interval of its commit.

Examples
--------
>>> import os, tempfile, geopandas as gpd, shapely
>>> from gridgeo.io.store import open_store
>>> grids = gpd.GeoDataFrame({"code": ["G1"], "households": [300]},
...     geometry=[shapely.box(114.9, 25.3, 115.0, 25.4)], crs="EPSG:4490")
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "ws.gpkg"))
>>> live = LiveIncidents(store, grids=grids, interval=0)
>>> live.index.n
0
>>> _ = store.append([{"id": "W1", "category": "噪音", "reported_at": "2025-03-03T09:00+08:00",
...                    "geometry": shapely.Point(114.95, 25.35)}])
>>> live.refresh(), live.index.n, live.open_cases(now="2025-03-20")[["open", "overdue"]].values
(True, 1, array([[1, 1]]))
>>> _ = store.update_status("W1", "结案")
>>> live.refresh(), live.index.n, live.open_cases(now="2025-03-20")[["open", "overdue"]].values
(True, 1, array([[0, 0]]))
>>> store.close()
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from gridgeo.analyze.deadlines import DEFAULT_DAYS, WorkCalendar, past
from gridgeo.analyze.index import IncidentIndex, grid_locator

__all__ = ["LiveIncidents"]

log = logging.getLogger(__name__)

_CLOSED = "结案"


def _hash_ids(ids: Any) -> np.ndarray:
    return pd.util.hash_array(np.asarray(ids, dtype=object).astype(str).astype(object))


class LiveIncidents:
    """The incidents of a store, kept current from its change feed.

    Parameters
    ----------
    store
        An :class:`~gridgeo.io.store.IncidentStore`.
    grids
        The grid layer (``code``): the index places incidents in grids.
    locator
        A locator with a ``grid`` layer of these grids, to reuse.
    interval
        Seconds between two polls of the store; a :meth:`refresh` sooner than
        that returns at once (readers may call it on every request).
    calendar, days
        Working-day calendar and deadline for :meth:`open_cases` (1-5-10: 5).

    Notes
    -----
    Thread-safe: one thread polls at a time; readers get the last complete
    index. Ids are remembered as 64-bit hashes (8 bytes an incident), so a
    status change of an incident already indexed is not counted twice.
    """

    def __init__(
        self,
        store: Any,
        *,
        grids: gpd.GeoDataFrame,
        locator: Any = None,
        key: str = "code",
        interval: float = 0.5,
        calendar: WorkCalendar | None = None,
        days: int = DEFAULT_DAYS,
    ) -> None:
        self.store = store
        self.grids = grids
        self.key = key
        # one grid locator for the first read, every poll and the open cases (built
        # here only when the caller's locator has no grid layer)
        self.locator = grid_locator(locator, grids, key)
        self.interval = float(interval)
        self.calendar = calendar or WorkCalendar()
        self.days = days
        self._lock = threading.Lock()
        self._index: IncidentIndex | None = None
        self._known = np.empty(0, dtype=np.uint64)  # sorted hashes of indexed ids
        self._recent: set[int] = set()  # hashes added since the last merge into _known
        # open cases: id -> (grid, deadline day), the deadline reckoned once, when tracked
        self._open: dict[str, tuple[str | None, np.datetime64]] = {}
        self.cursor = 0
        self._polled = 0.0
        self.version = 0  # bumps whenever the index or the open cases change

    # ---- state -------------------------------------------------------------------------

    @property
    def prepared(self) -> bool:
        """Whether the first read of the store has happened."""
        return self._index is not None

    @property
    def index(self) -> IncidentIndex:
        """The current index (after a :meth:`refresh` when one is due)."""
        self.refresh()
        assert self._index is not None
        return self._index

    def _grid_codes(self, frame: gpd.GeoDataFrame) -> pd.Series:
        """The stored grid code, else the grid the point falls in."""
        codes = frame["grid_code"].astype(object) if "grid_code" in frame else None
        missing = codes.isna() if codes is not None else pd.Series(True, index=frame.index)
        if missing.any():
            found = self.locator.locate(frame.loc[missing])["grid"].astype(object)
            codes = found if codes is None else codes.where(~missing, found)
        return codes.where(codes.notna(), None)

    def _track_open(self, frame: gpd.GeoDataFrame) -> None:
        if frame.empty:
            return
        grids = self._grid_codes(frame)
        due = self.calendar.deadlines(frame["reported_at"], days=self.days)
        for fid, status, grid, day in zip(frame["id"].astype(str), frame["status"], grids, due):
            if status == _CLOSED:
                self._open.pop(fid, None)
            else:
                self._open[fid] = (grid, day)

    # ---- updates -----------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> bool:
        """Pull the store's changes since the last poll; True if anything changed.

        Returns at once when the last poll is younger than ``interval`` (unless
        ``force``), or when another thread is polling.
        """
        now = time.monotonic()
        if self._index is not None and not force and now - self._polled < self.interval:
            return False
        if not self._lock.acquire(blocking=self._index is None or force):
            return False  # another thread is polling; readers keep the last index
        try:
            if self._index is None:
                self._build()
                return True
            if not force and time.monotonic() - self._polled < self.interval:
                return False
            return self._poll()
        finally:
            self._lock.release()

    def _build(self) -> None:
        t0 = time.perf_counter()
        frame, cursor = self.store.changes_since(0)
        self._index = IncidentIndex.build(frame, grids=self.grids, locator=self.locator,
                                          key=self.key)
        self._known = np.sort(_hash_ids(frame["id"]))
        self._open = {}
        self._track_open(frame)
        self.cursor = cursor
        self._polled = time.monotonic()
        self.version += 1
        log.info("live incidents: %d read from %s in %.2f s (cursor %d)", len(frame),
                 getattr(self.store, "name", "the store"), time.perf_counter() - t0, cursor)

    def _poll(self) -> bool:
        frame, cursor = self.store.changes_since(self.cursor)
        self._polled = time.monotonic()
        if frame.empty:
            return False
        h = _hash_ids(frame["id"])
        seen = np.zeros(len(h), dtype=bool)
        if len(self._known):
            pos = np.minimum(np.searchsorted(self._known, h), len(self._known) - 1)
            seen = self._known[pos] == h
        seen |= np.fromiter((int(v) in self._recent for v in h), dtype=bool, count=len(h))
        new = frame[~seen]
        if len(new):
            assert self._index is not None
            self._index = self._index.extend(new, locator=self.locator, grids=self.grids,
                                             key=self.key)
            self._recent.update(int(v) for v in h[~seen])
            if len(self._recent) > 50_000:
                merged = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
                self._known = np.union1d(self._known, merged)
                self._recent = set()
        self._track_open(frame)
        self.cursor = cursor
        self.version += 1
        log.debug("live incidents: %d changes (%d new) up to cursor %d", len(frame), len(new),
                  cursor)
        return True

    # ---- open cases ----------------------------------------------------------------------

    def open_cases(self, *, now: Any = None) -> pd.DataFrame:
        """Open and overdue incidents per grid, as of ``now``.

        Returns
        -------
        pandas.DataFrame
            Indexed by grid code (every grid of ``grids``): ``open`` (not
            ``结案``) and ``overdue`` (open past the deadline of ``days``
            working days). Open cases outside every grid are not counted.
        """
        self.refresh()
        codes = self.grids[self.key].astype(str).tolist()
        out = pd.DataFrame({"open": 0, "overdue": 0}, index=pd.Index(codes, name=self.key))
        if not self._open:
            return out
        grid, due = zip(*self._open.values())
        late = past(np.array(due, dtype="datetime64[D]"), now=now)
        frame = pd.DataFrame({"grid": list(grid), "late": late})
        frame = frame[frame["grid"].notna()]
        counts = frame.groupby("grid")["late"].agg(["size", "sum"])
        counts = counts.reindex(out.index, fill_value=0)
        out["open"] = counts["size"].astype(int).to_numpy()
        out["overdue"] = counts["sum"].astype(int).to_numpy()
        return out
