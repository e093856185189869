"""Service configuration: a dataclass, buildable from environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ServiceConfig", "default_data_path"]


def default_data_path() -> Path | None:
    """The bundled demo workspace, ``data/demo.gpkg`` beside the package, if present."""
    here = Path(__file__).resolve().parents[2] / "data" / "demo.gpkg"
    cwd = Path.cwd() / "data" / "demo.gpkg"
    for p in (cwd, here):
        if p.exists():
            return p
    return None


@dataclass
class ServiceConfig:
    """What the service serves and how.

    Attributes
    ----------
    data
        Workspace GeoPackage; ``None`` serves the bundled demo (or builds it in
        memory when the file is absent).
    locator
        A saved locator (``Locator.save``) to load instead of building one.
    api_key
        When set, protects every non-read endpoint (and ``/locate`` when
        ``protect_locate``), via ``X-API-Key`` or ``Authorization: Bearer``.
    protect_locate
        Require the key for ``/locate`` too.
    cors_origins
        Origins allowed by CORS (``["*"]`` for any); empty for none.
    max_batch
        Most points in one ``POST /locate``.
    max_body_bytes
        Largest request body.
    max_limit
        Largest ``limit`` of an items page.
    basemap
        XYZ tile URL template for the map pages (e.g. 天地图 with its ``tk``);
        ``None`` draws on a plain background, which works offline.
    store
        Where incidents are kept and ingested: a ``postgresql://`` URL or a
        GeoPackage path. ``None``: the workspace ``data`` itself when one was
        given (the bundled demo is never written: it has no store).
    max_features
        Most features in one POSTed FeatureCollection.
    overdue_days
        Working days to close a case before it counts as overdue (1-5-10: 5).
    holidays, workdays
        Public holidays, and weekend days worked in their place (调休), for
        the overdue count (ISO dates).
    live_interval
        Seconds between two polls of the store by a worker (freshness of the
        heat map and statistics).
    preload_heatmap
        Build the heat-map incident index at start-up (before the server forks
        its workers, which then share it) instead of on the first heat-map
        request (then once in each worker). Start-up takes longer by the build
        time (3.0 s for 2.3 million incidents in ``benchmarks/heatmap.py``).
    """

    data: Path | None = None
    locator: Path | None = None
    api_key: str | None = None
    protect_locate: bool = False
    cors_origins: list[str] = field(default_factory=list)
    max_batch: int = 100_000
    max_body_bytes: int = 16 * 1024 * 1024
    max_limit: int = 10_000
    basemap: str | None = None
    store: str | None = None
    max_features: int = 10_000
    overdue_days: int = 5
    holidays: list[str] = field(default_factory=list)
    workdays: list[str] = field(default_factory=list)
    live_interval: float = 0.5
    preload_heatmap: bool = False

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceConfig:
        """Build from ``GRIDGEO_*`` environment variables, then ``overrides``.

        Examples
        --------
        >>> ServiceConfig.from_env(max_batch=10).max_batch
        10
        """
        env = os.environ
        cfg = cls(
            data=Path(env["GRIDGEO_DATA"]) if env.get("GRIDGEO_DATA") else None,
            locator=Path(env["GRIDGEO_LOCATOR"]) if env.get("GRIDGEO_LOCATOR") else None,
            api_key=env.get("GRIDGEO_API_KEY") or None,
            protect_locate=env.get("GRIDGEO_PROTECT_LOCATE", "") in ("1", "true", "yes"),
            cors_origins=[o for o in env.get("GRIDGEO_CORS", "").split(",") if o],
            basemap=env.get("GRIDGEO_BASEMAP") or None,
            store=env.get("GRIDGEO_STORE") or None,
            holidays=[d for d in env.get("GRIDGEO_HOLIDAYS", "").split(",") if d],
            workdays=[d for d in env.get("GRIDGEO_WORKDAYS", "").split(",") if d],
            preload_heatmap=env.get("GRIDGEO_PRELOAD_HEATMAP", "") in ("1", "true", "yes"),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg
