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
    "gridgeo.cli.demo",
    "gridgeo.cli.locate",
    "gridgeo.cli.partition",
    "gridgeo.cli.regroup",
    "gridgeo.cli.serve",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gridgeo")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """gridgeo: grids, lookups and heatmaps for grid-based governance (网格化服务管理)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(main)
