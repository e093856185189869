"""The geo-service: OGC API – Features and point lookup (Flask, thin over the library)."""

from gridgeo.serve.app import create_app
from gridgeo.serve.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]
