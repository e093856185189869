"""Group commit: the concurrent ``append_records`` calls of one process written as one transaction.

A live server answers each report with one call of
:meth:`~gridgeo.io.store.IncidentStore.append_records`, from several threads at once.
Committed one by one, the reports queue on the store's write lock and each pays one
durable commit (a WAL flush in PostgreSQL, 3–5 ms on a plain disk). Here the calls
queue in the process instead: the caller at the front of the queue is the *leader*;
it takes the requests queued behind it, writes their rows in ONE transaction (one
statement, one commit, one flush), gives each caller its own
:class:`~gridgeo.io.store.AppendResult` and wakes them; the next caller at the front
leads the next batch, formed while this one was written (as in LevelDB's writer queue).

Each call keeps the meaning it has alone:

- its result names which of ITS ids were stored now and which were already there;
  an id in two requests of one batch is stored by the first in queue order, and the
  second is told it was already stored, as if the two had been sent one after the other;
- its rows are all or nothing: when the batch fails, each request is written again in
  its own transaction, so one bad request fails alone;
- the batch is one transaction under the store's write lock, so ``seq`` still follows
  commit order and :meth:`~gridgeo.io.store.IncidentStore.changes_since` skips nothing.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from gridgeo.io.store.base import AppendResult

__all__ = ["GroupCommit"]

log = logging.getLogger(__name__)


class _Request:
    __slots__ = ("done", "error", "new", "rows")

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.done = False
        self.new: set[str] = set()
        self.error: BaseException | None = None

    def result(self) -> AppendResult:
        if self.error is not None:
            raise self.error
        return AppendResult(
            [r["id"] for r in self.rows if r["id"] in self.new],
            [r["id"] for r in self.rows if r["id"] not in self.new],
        )


class GroupCommit:
    """Batch concurrent appends of prepared records into one write.

    Parameters
    ----------
    write
        Writes prepared records (:func:`~gridgeo.io.store.batch.prepare_records`
        rows; ids unique within one request, but possibly repeated across the
        requests of a batch) in ONE transaction, in the given order, skipping ids
        already stored (the first of a repeated id wins), and returns the ids it
        stored. It raises on failure, having stored nothing.
    isolated
        Whether a failure of a batch (the exception ``write`` raised) certainly
        stored nothing, so that its requests may be written again one by one.
        By default every failure is; a backend whose commit may have happened
        when the connection broke says no for that one: every caller of the
        batch then gets the exception, as each would alone.
    max_rows
        Rows of one batch at most (a request is never split; a larger one is
        written alone).

    Examples
    --------
    >>> stored = {}
    >>> def write(rows):
    ...     fresh = [r["id"] for r in rows if r["id"] not in stored]
    ...     stored.update((i, True) for i in fresh)
    ...     return set(fresh)
    >>> group = GroupCommit(write)
    >>> group.append([{"id": "A"}, {"id": "B"}])
    AppendResult(new=['A', 'B'], existing=[])
    >>> group.append([{"id": "B"}, {"id": "C"}])
    AppendResult(new=['C'], existing=['B'])
    >>> group.commits, group.requests
    (2, 2)
    """

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], set[str]],
        *,
        isolated: Callable[[BaseException], bool] | None = None,
        max_rows: int = 2000,
    ) -> None:
        self._write = write
        self._isolated = isolated or (lambda err: True)
        self.max_rows = int(max_rows)
        self._cond = threading.Condition()
        self._queue: collections.deque[_Request] = collections.deque()
        #: transactions attempted (a batch, or one request written alone) and calls served
        self.commits = 0
        self.requests = 0

    @property
    def pending(self) -> int:
        """Requests queued or being written now."""
        with self._cond:
            return len(self._queue)

    def append(self, rows: list[dict[str, Any]]) -> AppendResult:
        """Write one request's prepared rows (with whatever is queued beside it).

        Returns
        -------
        AppendResult
            This request's ids: stored now (``new``) or already stored (``existing``).

        Raises
        ------
        Exception
            What ``write`` raised for this request's rows.
        """
        req = _Request(rows)
        with self._cond:
            self._queue.append(req)
            while not req.done and self._queue[0] is not req:
                self._cond.wait()
            if req.done:
                return req.result()
            group = [req]  # the leader: take the requests behind it
            size = len(rows)
            for other in list(self._queue)[1:]:
                if size + len(other.rows) > self.max_rows:
                    break
                group.append(other)
                size += len(other.rows)
        try:
            self._run(group)
        finally:
            with self._cond:
                for r in group:
                    if not r.done:  # only after a BaseException escaped _run
                        r.error = r.error or RuntimeError("the batch write was interrupted")
                        r.done = True
                    self._queue.popleft()
                self.requests += len(group)
                self._cond.notify_all()
        return req.result()

    def _one(self, req: _Request) -> None:
        try:
            self.commits += 1
            req.new = self._write(req.rows)
        except Exception as err:
            req.error = err
        req.done = True

    def _run(self, group: list[_Request]) -> None:
        if len(group) == 1:
            self._one(group[0])
            return
        try:
            self.commits += 1
            fresh = set(self._write([r for req in group for r in req.rows]))
        except Exception as err:
            if not self._isolated(err):
                for req in group:
                    req.error, req.done = err, True
                return
            log.info("a batch of %d appends failed (%s); writing each alone", len(group), err)
            for req in group:
                self._one(req)
            return
        for req in group:  # an id repeated across requests: the first one stored it
            req.new = {r["id"] for r in req.rows if r["id"] in fresh}
            fresh -= req.new
            req.done = True
