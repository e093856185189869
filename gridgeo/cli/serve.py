"""``gridgeo serve``: run the service under gunicorn (waitress on Windows, Flask with --dev)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["register"]


def _warm_in_background(app: Any) -> None:
    """Load the lookup kernels in a thread, while the server already accepts requests."""
    import threading

    from gridgeo.serve.app import warm_up

    # Not a daemon: a process stopped during the load waits for it (under a second)
    # rather than killing the thread mid-import; a killed daemon thread left numba's
    # locks held, and the worker hung at exit until gunicorn killed it 30 s later.
    threading.Thread(target=warm_up, args=(app,), name="gridgeo-warm-up", daemon=False).start()


def _gunicorn(app: Any, host: str, port: int, workers: int) -> None:
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

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("preload_app", True)  # read the data once, share it by fork
            self.cfg.set("accesslog", None)
            self.cfg.set("timeout", 120)
            self.cfg.set("post_worker_init", post_worker_init)

        def load(self) -> Any:
            return app

    _App().run()


@click.command("serve")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Workspace GeoPackage (default: the bundled demo).",
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
@click.option("--workers", type=int, default=2, show_default=True)
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
    locator: Path | None,
    host: str,
    port: int,
    workers: int,
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
        locator=locator,
        api_key=api_key,
        protect_locate=protect_locate or None,
        cors_origins=list(cors) or None,
        preload_heatmap=preload_heatmap or None,
    )
    app = create_app(config)
    click.echo(
        f"gridgeo serving on http://{host}:{port}/ (OGC API – Features at /collections, "
        f"lookup at /locate); Ctrl-C to stop"
    )
    if dev:
        _warm_in_background(app)
        app.run(host=host, port=port)
        return
    if os.name != "nt":
        try:
            _gunicorn(app, host, port, workers)
            return
        except ImportError:
            pass
    from waitress import serve

    _warm_in_background(app)
    serve(app, host=host, port=port, threads=max(4, workers * 4))


def register(group: click.Group) -> None:
    """Add the command to the ``gridgeo`` group."""
    group.add_command(serve_command)
