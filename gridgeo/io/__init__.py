"""Reading and writing gridgeo workspaces (one GeoPackage per territory)."""

from gridgeo.io.conform import conform
from gridgeo.io.read import read_layer
from gridgeo.io.store import IncidentStore, open_store
from gridgeo.io.workspace import SCHEMA, read_workspace, validate_workspace, write_workspace

__all__ = [
    "SCHEMA",
    "IncidentStore",
    "conform",
    "open_store",
    "read_layer",
    "read_workspace",
    "validate_workspace",
    "write_workspace",
]
