"""Incident analytics for leaders: heat tiles, per-grid statistics and hot spots.

Library code only (no web framework): :mod:`gridgeo.serve` puts it on HTTP.
"""

from gridgeo.analyze.heat import EMPTY_TILE, heat_tile, tile_of
from gridgeo.analyze.index import IncidentIndex
from gridgeo.analyze.offline import external_urls, offline
from gridgeo.analyze.stats import grid_stats, hotspots

__all__ = [
    "EMPTY_TILE",
    "IncidentIndex",
    "external_urls",
    "grid_stats",
    "heat_tile",
    "hotspots",
    "offline",
    "tile_of",
]
