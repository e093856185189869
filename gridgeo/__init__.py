"""gridgeo: GIS toolkit and geo-service for grid-based social governance (网格化服务管理).

Examples
--------
>>> import gridgeo
>>> isinstance(gridgeo.__version__, str)
True
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from gridgeo.errors import (
    CRSError,
    GridGeoError,
    InfeasibleError,
    InputError,
    NotFound,
    ValidationError,
)

if TYPE_CHECKING:
    from gridgeo.assign import Locator
    from gridgeo.partition import align_zones, check_alignment, check_grids, make_grids, regroup

# Imported on first use, so that the service (which needs neither the partitioner nor
# its solver) starts faster.
_LAZY = {
    "Locator": "gridgeo.assign",
    "align_zones": "gridgeo.partition",
    "check_alignment": "gridgeo.partition",
    "check_grids": "gridgeo.partition",
    "make_grids": "gridgeo.partition",
    "regroup": "gridgeo.partition",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gridgeo' has no attribute {name!r}")


__all__ = [
    "CRSError",
    "GridGeoError",
    "InfeasibleError",
    "InputError",
    "Locator",
    "NotFound",
    "ValidationError",
    "__version__",
    "align_zones",
    "check_alignment",
    "check_grids",
    "make_grids",
    "regroup",
]
