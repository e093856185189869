"""Reading and writing gridgeo workspaces (one GeoPackage per territory)."""

from gridgeo.io.conform import conform
from gridgeo.io.plans import (
    plan_in_force,
    plans_version,
    read_plan,
    read_plans,
)
from gridgeo.io.plans_write import adopt_plan, refresh_grids, save_plan
from gridgeo.io.read import read_layer
from gridgeo.io.store import IncidentStore, open_store
from gridgeo.io.workspace import (
    SCHEMA,
    read_workspace,
    validate_workspace,
    write_workspace,
)

__all__ = [
    "SCHEMA",
    "IncidentStore",
    "adopt_plan",
    "conform",
    "open_store",
    "plan_in_force",
    "plans_version",
    "read_layer",
    "read_plan",
    "read_plans",
    "read_workspace",
    "refresh_grids",
    "save_plan",
    "validate_workspace",
    "write_workspace",
]
