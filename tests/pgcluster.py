"""A throwaway PostgreSQL + PostGIS cluster for the tests (imported by ``tests/conftest.py``).

``postgresql_cluster`` (session scope) runs ``initdb`` and ``pg_ctl start`` in a
temporary directory, listening on a unix socket only, and yields a DSN to its
``postgres`` database; ``postgresql`` (function scope) yields the DSN of a fresh
database, cloned from a template that already has PostGIS.

The binaries come from ``pg_config --bindir`` or Debian's
``/usr/lib/postgresql/<version>/bin``. Without them the tests skip, unless
``GRIDGEO_REQUIRE_SYSTEM_TOOLS=1``, which makes them fail (the ``system_tool``
rule of the service tests). The server refuses to run as root, so under root it
runs as the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve.conftest import find_system_tool

TEMPLATE = "gridgeo_template"
_counter = itertools.count()


def _bindir() -> str:
    """Directory of initdb/pg_ctl, or skip/fail through ``find_system_tool``."""
    also = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            also.insert(0, str(Path(out.stdout.strip()) / "initdb"))
    initdb = find_system_tool("initdb", package="postgresql", also=also)
    return str(Path(initdb).resolve().parent)  # /usr/local/bin/initdb may be a symlink


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return cmd if owner is None else ["runuser", "-u", owner, "--", *cmd]


@pytest.fixture(scope="session")
def postgresql_cluster() -> Iterator[str]:
    """DSN of the ``postgres`` database of a throwaway cluster with PostGIS available."""
    bindir = _bindir()
    postgres = Path(bindir) / "postgres"
    share = subprocess.run(
        [str(Path(bindir) / "pg_config"), "--sharedir"]
        if (Path(bindir) / "pg_config").exists()
        else [shutil.which("pg_config") or "pg_config", "--sharedir"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    version = postgres.parent.parent.name  # /usr/lib/postgresql/15/bin -> 15
    find_system_tool(
        "gridgeo-postgis.control",
        package=f"postgresql-{version}-postgis-3",
        also=[f"{share}/extension/postgis.control"],
    )
    owner = None
    if os.geteuid() == 0:
        owner = "postgres"
        try:
            pwd.getpwnam(owner)
        except KeyError:
            pytest.fail("running as root needs the 'postgres' system user to run PostgreSQL")
    tmp = Path(tempfile.mkdtemp(prefix="gridgeo-pg-"))
    data, sock = tmp / "data", tmp
    user = owner or pwd.getpwuid(os.geteuid()).pw_name
    if owner is not None:
        shutil.chown(tmp, user=owner)
    port = str(54000 + os.getpid() % 1000)

    def run(*args: str) -> None:
        subprocess.run(_as_owner(list(args), owner), check=True, capture_output=True, text=True)

    run(
        f"{bindir}/initdb",
        "-D",
        str(data),
        "-U",
        user,
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
    )
    run(
        f"{bindir}/pg_ctl",
        "-D",
        str(data),
        "-l",
        str(tmp / "log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-k {sock} -c listen_addresses='' -p {port} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off",
        "start",
    )
    dsn = f"postgresql:///postgres?host={sock}&port={port}&user={user}"
    try:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        with psycopg.connect(dsn.replace("///postgres", f"///{TEMPLATE}"), autocommit=True) as c:
            c.execute("CREATE EXTENSION postgis")
        yield dsn
    finally:
        subprocess.run(
            _as_owner([f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"], owner),
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def postgresql(postgresql_cluster: str) -> Iterator[str]:
    """DSN of a fresh database with PostGIS, dropped after the test."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(postgresql_cluster, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield postgresql_cluster.replace("///postgres", f"///{name}")
    with psycopg.connect(postgresql_cluster, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
