"""``gridgeo serve``: run the service under gunicorn, with a waitress event loop in each worker.

Worker model
------------
gunicorn manages the processes: it reads the data once (``preload_app``), forks
``--workers`` workers (at least 2 in production), restarts one that dies (even by
``kill -9``) and kills one whose event loop stops for ``--timeout`` seconds. Each
worker is a :class:`gunicorn.workers.base.Worker` whose ``run`` is a waitress
event loop on the listening socket it inherited: the loop reads each request
*whole*, request line, headers and body (spilled to a temporary file past
512 KiB), before one of the worker's ``--threads`` threads runs the Flask app
on it. A client that uploads slowly, as phones on weak mobile networks do, costs
a socket and its buffer, never a thread, so it cannot stop the workers from
answering everyone else. The loop also writes the responses, so a client that
reads slowly does not hold a thread either (below waitress' 16 MiB output
high-water mark).

gunicorn's own workers were measured against 64 connections that trickle their
request a byte at a time while fast clients call ``/locate`` and ``/healthz``
(``tests/serve/test_slow_clients.py``): ``sync`` answers nothing until the slow
clients give up (a worker reads one request at a time, to the end); ``gthread``
parks a connection that has sent *nothing* in its poller, but hands one that
has sent a byte to a thread, which then blocks until the request is complete,
so it holds as many slow clients as it has threads and no more. ``gevent`` would
read cooperatively, but the app blocks in sqlite3, psycopg 3 and numba kernels,
none of which yield to its hub. The gunicorn + waitress worker keeps the
fast requests at a few milliseconds whatever the number of slow clients, up to
``--max-connections`` per worker.

Timeouts (``gunicorn``'s ``sync`` and ``gthread`` have no header timeout):

- ``--header-timeout``: the request line and headers must arrive within this
  many seconds of the request's first byte (a slowloris that sends a byte every
  few seconds is dropped too);
- ``--body-timeout``: a body that stalls (no byte) this long is dropped; a slow
  but steady upload is not;
- ``--keepalive``: an idle kept-alive connection is closed after this long;
- ``--timeout``: gunicorn kills a worker whose event loop has been silent this
  long (a kernel holding the GIL, a deadlock), and starts a new one.

Balanced accepts: the workers accept on gunicorn's one listening socket, and
whichever wakes first takes the connection; kept-alive clients then stay with
it, so 8 clients landed 8/0, 2/6, 5/3 on two workers, often leaving one core
idle. As nginx's ``accept_disabled`` does, each worker publishes how many
connections it holds in a small table shared with the master and the other
workers (:class:`_AcceptBoard`, one slot a worker, freed when gunicorn reaps
it), and stops polling the listener while it holds more than one connection
above the least loaded live worker (one that has ticked in the last 2 s); the
least loaded one always accepts, so no connection waits for a paused worker.

Limits: each worker holds at most ``--max-connections`` connections (at most as
many open files as its ``ulimit -n``: raise ``LimitNOFILE`` past 1024 for more);
beyond that the kernel queues new ones in the listen backlog. Bodies above the
service's ``max_body_bytes`` are refused (413) as soon as their headers say so.
The worker serves HTTP/1.1 without TLS: for the internet put nginx in front
(``docs/deploy.md``), which also absorbs slow clients before they reach here.

On Windows (no gunicorn) the same waitress loop runs in one process; ``--dev``
runs Flask's development server.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = ["ServerOptions", "register"]

logger = logging.getLogger(__name__)

#: How often the event loop checks its clients' deadlines and tells gunicorn it is alive.
_TICK = 0.25


class _AcceptBoard:
    """How many connections each worker holds, in memory shared across gunicorn's fork.

    Made by the master before it forks; slot ``i`` holds a worker's connection
    count and the :func:`time.monotonic` of its last loop turn (0: no worker, or
    one that stopped accepting). A worker whose turn is older than ``stale``
    seconds (dead, hung, stopping) is left out of the comparison.

    Examples
    --------
    >>> board = _AcceptBoard(4)
    >>> a, b = board.claim([]), board.claim([0])
    >>> board.publish(a, 3, now=10.0), board.publish(b, 1, now=10.0)
    (None, None)
    >>> board.may_accept(a, 3, now=10.1), board.may_accept(b, 1, now=10.1)
    (False, True)
    >>> board.may_accept(a, 2, now=10.1), board.may_accept(a, 1, now=10.1)  # one more: no
    (False, True)
    >>> board.may_accept(a, 3, now=13.0)  # b has not turned for 3 s: not counted
    True
    >>> board.release(b); board.may_accept(a, 3, now=10.1)
    True
    """

    def __init__(self, slots: int, *, stale: float = 2.0) -> None:
        self.slots = int(slots)
        self.stale = float(stale)
        self._mem = mmap.mmap(-1, 16 * self.slots)  # anonymous and MAP_SHARED: kept by fork
        self._v = memoryview(self._mem).cast("d")

    def claim(self, taken: Iterable[int | None]) -> int | None:
        """A free slot (not in ``taken``), emptied; None when all are taken."""
        free = sorted(set(range(self.slots)) - set(taken))
        if not free:
            return None
        self.release(free[0])
        return free[0]

    def release(self, slot: int) -> None:
        """Mark ``slot`` as holding no accepting worker."""
        self._v[2 * slot] = 0.0
        self._v[2 * slot + 1] = 0.0

    def publish(self, slot: int, connections: int, *, now: float) -> None:
        """The worker of ``slot`` holds ``connections`` and is alive at ``now``."""
        self._v[2 * slot] = float(connections)
        self._v[2 * slot + 1] = now

    def may_accept(self, slot: int, connections: int, *, now: float) -> bool:
        """Whether the worker of ``slot`` should accept: no live worker holds fewer
        connections. (Allowing one more than the least let whichever worker won the
        race take a burst's connections 5/3; a GIL-bound worker with 5 clients answers
        them later than two with 4 each.) The least loaded worker always accepts."""
        v = self._v
        for i in range(self.slots):
            if i != slot and now - v[2 * i + 1] < self.stale and v[2 * i] < connections:
                return False
        return True


@dataclass(frozen=True)
class ServerOptions:
    """How the HTTP server runs the app (see the module docstring for the model).

    Attributes
    ----------
    threads
        Threads per worker that run the app on whole requests.
    timeout
        Seconds of a silent event loop before gunicorn restarts the worker.
    keepalive
        Seconds an idle kept-alive connection stays open.
    header_timeout
        Seconds from a request's first byte for its line and headers to arrive.
    body_timeout
        Seconds a request body may stall (no byte received) before the client is dropped.
    max_connections
        Open client connections per worker.
    max_body_bytes
        Largest request body read (the service's ``max_body_bytes``).
    trusted_proxy
        Address of the reverse proxy whose ``X-Forwarded-Proto`` and
        ``X-Forwarded-For`` are believed (``"*"`` for any; ``None`` for none).

    Examples
    --------
    >>> ServerOptions(threads=4).waitress_settings()["threads"]
    4
    """

    threads: int = 8
    timeout: int = 120
    keepalive: float = 15.0
    header_timeout: float = 30.0
    body_timeout: float = 30.0
    max_connections: int = 500
    max_body_bytes: int = 16 * 1024 * 1024
    trusted_proxy: str | None = "127.0.0.1"

    def waitress_settings(self) -> dict[str, Any]:
        """Keyword arguments of :func:`waitress.create_server` for these options."""
        settings: dict[str, Any] = {
            "threads": self.threads,
            "connection_limit": self.max_connections,
            # a backstop only: _expire_clients applies the finer deadlines every tick
            "channel_timeout": max(self.keepalive, self.header_timeout, self.body_timeout) + 5,
            "cleanup_interval": 5,
            "asyncore_use_poll": True,  # select() stops at file descriptor 1024
            "max_request_body_size": self.max_body_bytes,
            "ident": "gridgeo",
        }
        if self.trusted_proxy:
            settings.update(
                trusted_proxy=self.trusted_proxy,
                trusted_proxy_count=1,
                trusted_proxy_headers={"x-forwarded-proto", "x-forwarded-for"},
            )
        return settings


def _warm_in_background(app: Any) -> None:
    """Load the lookup kernels in a thread, while the server already accepts requests."""
    import threading

    from gridgeo.serve.app import warm_up

    # Not a daemon: a process stopped during the load waits for it (under a second)
    # rather than killing the thread mid-import; a killed daemon thread left numba's
    # locks held, and the worker hung at exit until gunicorn killed it 30 s later.
    threading.Thread(target=warm_up, args=(app,), name="gridgeo-warm-up", daemon=False).start()


def _expire_clients(
    channels: Iterable[Any], opts: ServerOptions, now: float, seen: dict[Any, tuple[Any, float]]
) -> dict[Any, tuple[Any, float]]:
    """Mark for closing the connections past their header, body or keep-alive deadline.

    A connection whose request the app is serving (``channel.requests``) is left alone.
    ``seen`` maps a connection to the request it was receiving at an earlier call and
    when that call first saw it; the updated map is returned.
    """
    still: dict[Any, tuple[Any, float]] = {}
    for ch in channels:
        request = ch.request  # the request being received; None between requests
        if request is not None and not request.headers_finished:
            prior = seen.get(ch)
            # its first byte came at most one tick before the first call that sees it
            still[ch] = prior if prior is not None and prior[0] is request else (request, now)
        if ch.requests or ch.will_close:
            continue
        if request is None:
            expired = now - ch.last_activity > opts.keepalive
        elif request.headers_finished:
            expired = now - ch.last_activity > opts.body_timeout
        else:
            expired = now - still[ch][1] > opts.header_timeout
        if expired:
            logger.debug("closing the connection of %s: past its deadline", ch.addr)
            ch.will_close = True
    return still


def _run_waitress(
    app: Any,
    opts: ServerOptions,
    *,
    alive: Callable[[], bool],
    tick: Callable[[], None],
    graceful_timeout: float = 30.0,
    balance: tuple[_AcceptBoard, int] | None = None,
    **listen: Any,
) -> None:
    """Serve ``app`` with waitress until ``alive()`` turns false, then finish what is in flight.

    ``listen`` is waitress' ``sockets=[...]`` (inherited from gunicorn) or ``host``/``port``.
    ``balance`` is the shared board and this worker's slot: the listener is polled only
    while :meth:`_AcceptBoard.may_accept` says so.
    """
    from waitress import wasyncore
    from waitress.channel import HTTPChannel
    from waitress.server import BaseWSGIServer, create_server

    socket_map: dict[int, Any] = {}
    server = create_server(app, map=socket_map, **listen, **opts.waitress_settings())

    def channels() -> list[Any]:
        return [d for d in socket_map.values() if isinstance(d, HTTPChannel)]

    listeners = [d for d in socket_map.values() if isinstance(d, BaseWSGIServer)]
    others = len(socket_map)  # the listeners and the trigger: the rest are connections
    accept = [True]
    if balance is not None:
        board, slot = balance
        for listener in listeners:  # its own readable() first: it runs waitress' cleanup
            own = listener.readable
            listener.readable = lambda own=own: own() and accept[0]

    next_tick = 0.0
    seen: dict[Any, tuple[Any, float]] = {}
    while alive():
        if balance is not None:
            held, now = len(socket_map) - others, time.monotonic()
            board.publish(slot, held, now=now)
            accept[0] = board.may_accept(slot, held, now=now)
        wasyncore.loop(timeout=_TICK, map=socket_map, use_poll=True, count=1)
        now = time.time()
        if now >= next_tick:
            next_tick = now + _TICK
            seen = _expire_clients(channels(), opts, now, seen)
            tick()

    # stop accepting (the other workers take the new connections), finish the requests
    # received, then close
    if balance is not None:
        board.release(slot)  # the others no longer wait for this one to take its share
    for listener in listeners:
        listener.del_channel()
        listener.socket.close()
    deadline = time.monotonic() + graceful_timeout
    while time.monotonic() < deadline and any(
        ch.requests or ch.total_outbufs_len for ch in channels()
    ):
        wasyncore.loop(timeout=_TICK, map=socket_map, use_poll=True, count=1)
        tick()
    for ch in channels():
        ch.handle_close()
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)


def _worker_class(opts: ServerOptions, board: _AcceptBoard | None = None) -> type:
    """A gunicorn worker class that serves with :func:`_run_waitress` and ``opts``
    (balancing its accepts with the other workers on ``board``, in the slot that
    :func:`_gunicorn`'s ``pre_fork`` gave it)."""
    from gunicorn.workers.base import Worker

    class WaitressWorker(Worker):  # type: ignore[misc]
        """gunicorn worker: waitress' event loop and thread pool on the inherited sockets."""

        def run(self) -> None:
            ppid = self.ppid
            slot = getattr(self, "accept_slot", None)
            _run_waitress(
                self.wsgi,
                opts,
                sockets=[listener.sock for listener in self.sockets],
                alive=lambda: self.alive and os.getppid() == ppid,
                tick=self.notify,
                graceful_timeout=self.cfg.graceful_timeout,
                balance=(board, slot) if board is not None and slot is not None else None,
            )
            # Every request received is answered and every write committed. Leave
            # now, without the interpreter's teardown: it would wait for a warm-up
            # thread still loading kernels (seconds on a busy machine), and a
            # daemon thread frozen inside numba's import can hang it for good.
            logging.shutdown()
            os._exit(0)

    return WaitressWorker


_EXIT_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP")
    if hasattr(signal, name)
)


def _arbiter_class() -> type:
    """gunicorn's Arbiter, with the stop signals held back across each fork.

    A worker installs its own signal handlers a moment after the fork. A SIGTERM
    that reaches it before then goes to the master's handler, copied by the fork,
    which only queues it for a master that is not there: the worker never learns
    that it should stop and the master waits for it until the graceful timeout
    (30 s) kills it. Held back (blocked) instead, the signal waits in the new
    worker until :func:`_release_signals` runs, after its handlers are installed.
    """
    from gunicorn.arbiter import Arbiter

    class _Arbiter(Arbiter):  # type: ignore[misc]
        def spawn_worker(self) -> int:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, _EXIT_SIGNALS)
            try:
                return super().spawn_worker()  # returns in the master only
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)

    return _Arbiter


def _release_signals() -> None:
    """Deliver the stop signals held back since the fork (see :func:`_arbiter_class`)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _EXIT_SIGNALS)


def _gunicorn(app: Any, host: str, port: int, workers: int, opts: ServerOptions) -> None:
    from gunicorn.app.base import BaseApplication

    if "numba" in sys.modules:
        # a kernel may have run here (--preload-heatmap) and the workers are forked from
        # this process: never on a layer that kills them (GNU OpenMP)
        from gridgeo._numba import ensure_fork_safe

        ensure_fork_safe()

    def post_worker_init(worker: Any) -> None:
        # in each worker, after the fork: the master never runs a kernel, so that it
        # binds the port sooner and forks nothing but plain Python state
        _warm_in_background(worker.wsgi)
        _release_signals()  # its handlers are in place: a stop sent meanwhile lands now

    # a slot a worker, and as many again for the new ones of a reload (HUP) or of TTIN
    board = _AcceptBoard(max(8, 2 * workers))

    def pre_fork(arbiter: Any, worker: Any) -> None:
        # in the master, before the fork: a slot no live worker holds (a reaped one's is free)
        taken = [getattr(w, "accept_slot", None) for w in arbiter.WORKERS.values()]
        worker.accept_slot = board.claim(taken)

    def child_exit(arbiter: Any, worker: Any) -> None:
        # in the master, once it reaped the worker (even one killed by -9 or the timeout)
        if getattr(worker, "accept_slot", None) is not None:
            board.release(worker.accept_slot)

    worker_class = _worker_class(opts, board)

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", worker_class)
            self.cfg.set("threads", opts.threads)
            self.cfg.set("preload_app", True)  # read the data once, share it by fork
            self.cfg.set("accesslog", None)
            self.cfg.set("timeout", opts.timeout)
            # no shared ~/.gunicorn/gunicorn.ctl: several servers on one machine (tests, a
            # county per port) would fight over it, and gridgeo does not use it
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)
            self.cfg.set("post_worker_init", post_worker_init)
            self.cfg.set("pre_fork", pre_fork)
            self.cfg.set("child_exit", child_exit)

        def load(self) -> Any:
            return app

        def run(self) -> None:
            try:
                _arbiter_class()(self).run()
            except RuntimeError as e:  # gunicorn's own start-up errors, as its run() does
                raise click.ClickException(str(e)) from e

    _App().run()


@click.command("serve")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Workspace GeoPackage (default: the bundled demo).",
)
@click.option(
    "--store",
    default=None,
    envvar="GRIDGEO_STORE",
    help="Incident store: postgresql://… or a .gpkg (default: the workspace --data itself; "
    "the bundled demo is served read-only).",
)
@click.option(
    "--overdue-days",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Working days to close a case before it counts as overdue (1-5-10).",
)
@click.option(
    "--locator",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A saved locator (.npz) for a fast start.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; the default serves this machine only.",
)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    envvar="GRIDGEO_WORKERS",
    help="Worker processes (keep at least 2: one answers while gunicorn restarts the other).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=ServerOptions.threads,
    show_default=True,
    envvar="GRIDGEO_THREADS",
    help="Threads per worker that run the app (slow clients use none).",
)
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    default=ServerOptions.timeout,
    show_default=True,
    envvar="GRIDGEO_TIMEOUT",
    help="Seconds of a silent worker before gunicorn restarts it.",
)
@click.option(
    "--keepalive",
    type=click.FloatRange(min=0, min_open=True),
    default=ServerOptions.keepalive,
    show_default=True,
    envvar="GRIDGEO_KEEPALIVE",
    help="Seconds an idle kept-alive connection stays open.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=ServerOptions.header_timeout,
    show_default=True,
    envvar="GRIDGEO_HEADER_TIMEOUT",
    help="Seconds for a request line and its headers to arrive, from the first byte.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=ServerOptions.body_timeout,
    show_default=True,
    envvar="GRIDGEO_BODY_TIMEOUT",
    help="Seconds a request body may stall before the client is dropped.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=ServerOptions.max_connections,
    show_default=True,
    envvar="GRIDGEO_MAX_CONNECTIONS",
    help="Open client connections per worker.",
)
@click.option(
    "--trusted-proxy",
    default=ServerOptions.trusted_proxy,
    show_default=True,
    envvar="GRIDGEO_TRUSTED_PROXY",
    help="Reverse proxy whose X-Forwarded-Proto/-For are believed ('*' any, '' none).",
)
@click.option(
    "--api-key",
    default=None,
    envvar="GRIDGEO_API_KEY",
    help="Protect non-read endpoints (and /locate with --protect-locate).",
)
@click.option("--protect-locate", is_flag=True, help="Require the API key for /locate too.")
@click.option("--cors", "cors", multiple=True, help="Allowed CORS origin (repeat; '*' for any).")
@click.option(
    "--preload-heatmap",
    is_flag=True,
    help="Build the heat-map index at start-up (shared by the workers) instead of on the "
    "first heat-map request.",
)
@click.option("--dev", is_flag=True, help="Run Flask's development server instead.")
def serve_command(
    data: Path | None,
    store: str | None,
    overdue_days: int,
    locator: Path | None,
    host: str,
    port: int,
    workers: int,
    threads: int,
    timeout: int,
    keepalive: float,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    trusted_proxy: str | None,
    api_key: str | None,
    protect_locate: bool,
    cors: tuple[str, ...],
    preload_heatmap: bool,
    dev: bool,
) -> None:
    """Serve a workspace: OGC API – Features, /locate and the map pages."""
    from gridgeo.serve import ServiceConfig, create_app

    config = ServiceConfig.from_env(
        data=data,
        store=store,
        overdue_days=overdue_days,
        locator=locator,
        api_key=api_key,
        protect_locate=protect_locate or None,
        cors_origins=list(cors) or None,
        preload_heatmap=preload_heatmap or None,
    )
    opts = ServerOptions(
        threads=threads,
        timeout=timeout,
        keepalive=keepalive,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
        max_body_bytes=config.max_body_bytes,
        trusted_proxy=trusted_proxy or None,
    )
    app = create_app(config)
    store_obj = app.extensions["gridgeo"].store
    taking = (
        f"reports: POST /collections/incidents/items into {store_obj.name}"
        if store_obj is not None
        else "read-only: no incident store"
    )
    click.echo(
        f"gridgeo serving on http://{host}:{port}/ (OGC API – Features at /collections, "
        f"lookup at /locate, heat map at /heatmap; {taking}); Ctrl-C to stop"
    )
    if dev:
        _warm_in_background(app)
        app.run(host=host, port=port)
        return
    if os.name != "nt":
        try:
            _gunicorn(app, host, port, workers, opts)
            return
        except ImportError:
            pass
    _warm_in_background(app)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it
        _run_waitress(app, opts, alive=lambda: True, tick=lambda: None, host=host, port=port)


def register(group: click.Group) -> None:
    """Add the command to the ``gridgeo`` group."""
    group.add_command(serve_command)
