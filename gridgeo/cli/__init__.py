"""The ``gridgeo`` command: a thin layer over the library.

Each family of subcommands lives in its own module here and exposes a
``register(group)`` function; the modules are listed in ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import logging

import click

from gridgeo import __version__

_COMMAND_MODULES: tuple[str, ...] = (
    "gridgeo.cli.db",
    "gridgeo.cli.demo",
    "gridgeo.cli.importer",
    "gridgeo.cli.ingest",
    "gridgeo.cli.locate",
    "gridgeo.cli.partition",
    "gridgeo.cli.plan",
    "gridgeo.cli.regroup",
    "gridgeo.cli.serve",
)


def user_error(err: BaseException) -> click.ClickException | None:
    """The ``Error: …`` a user sees for ``err``, or None when ``err`` is a bug to show in full.

    User errors are gridgeo's own (:class:`gridgeo.errors.GridGeoError`), click's, a file
    that cannot be opened or written (:class:`OSError`), and GDAL refusing a file.

    Examples
    --------
    >>> from gridgeo.errors import CRSError
    >>> e = user_error(CRSError("unknown CRS 'amap'"))
    >>> e.format_message(), e.exit_code
    ("unknown CRS 'amap'", 2)
    >>> user_error(KeyError("x")) is None
    True
    """
    from gridgeo.cli._files import UserError
    from gridgeo.errors import GridGeoError

    if isinstance(err, click.ClickException):
        if not isinstance(err, click.UsageError):
            err.exit_code = 2
        return err
    if isinstance(err, GridGeoError):
        return UserError(str(err))
    if isinstance(err, OSError) and err.filename is not None:
        return UserError(f"{err.strerror or err}: {err.filename}")
    if type(err).__module__.startswith("pyogrio"):  # DataSourceError, DataLayerError…
        return UserError(str(err))
    return None


class _Group(click.Group):
    """The ``gridgeo`` group: every user error ends in one ``Error: …`` and exit status 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as err:
            shown = user_error(err)
            if shown is None:
                raise
            if shown is err:
                raise
            raise shown from err


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gridgeo")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """gridgeo: grids, lookups and heatmaps for grid-based governance (网格化服务管理)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(main)
