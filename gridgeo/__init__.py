"""gridgeo: GIS toolkit and geo-service for grid-based social governance (网格化服务管理).

Examples
--------
>>> import gridgeo
>>> isinstance(gridgeo.__version__, str)
True
"""

from __future__ import annotations

__version__ = "0.1.0"

from gridgeo.assign import Locator
from gridgeo.errors import (
    CRSError,
    GridGeoError,
    InfeasibleError,
    InputError,
    NotFound,
    ValidationError,
)
from gridgeo.partition import (
    align_zones,
    check_alignment,
    check_grids,
    make_grids,
    regroup,
)

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
