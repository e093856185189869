"""``gridgeo db``: manage the incident store (create or migrate its schema)."""

from __future__ import annotations

import click

__all__ = ["register"]


@click.group("db")
def db() -> None:
    """The incident store: a workspace GeoPackage or a PostGIS database."""


@db.command("init")
@click.argument("dsn")
def init(dsn: str) -> None:
    """Create or migrate the incident schema at DSN.

    DSN is a URL such as postgresql://user@host:5432/dbname, or a workspace
    .gpkg path (whose incidents layer is created or migrated in place).
    Running it again is harmless.
    """
    from gridgeo.io.store import open_store

    # errors (bad URL, database down, no PostGIS) end in one "Error: …" line (gridgeo.cli)
    with open_store(dsn) as store:
        count = store.count()
        version = getattr(store, "version", None)
    schema = f" at schema version {version}" if version is not None else ""
    click.echo(f"incident store {store.name} is ready{schema}: {count:,} incidents")


def register(group: click.Group) -> None:
    """Add the command group to the ``gridgeo`` group."""
    group.add_command(db)
