"""Locate points in zone layers (grid, community, town, police beat, department zones)."""

from gridgeo.assign.locator import Locator
from gridgeo.assign.route import (
    DISPATCH_CODES,
    LinkTable,
    default_routes,
    dispatch_codes,
    link_table,
    route,
)

__all__ = [
    "DISPATCH_CODES",
    "LinkTable",
    "Locator",
    "default_routes",
    "dispatch_codes",
    "link_table",
    "locate_dask",
    "route",
]


def __getattr__(name: str):  # dask is an optional extra: import it only when asked for
    if name == "locate_dask":
        from gridgeo.assign.dask import locate_dask

        return locate_dask
    raise AttributeError(name)
