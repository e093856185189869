"""One Blueprint per service core; each module also owns its conformance classes and paths.

A core module here exports:

* ``CONFORMANCE``: the conformance classes it implements (``/conformance`` lists
  the union of the registered cores);
* ``blueprint() -> flask.Blueprint``: its routes, thin over the core;
* ``paths(ctx, base) -> dict``: its OpenAPI paths (``/api`` merges them);
* ``enabled(ctx) -> bool``: whether this service has it (e.g. no heat map
  without incidents, no ingestion without a store);
* ``ALWAYS_ROUTED``: register the routes even when not enabled (they then
  answer why), rather than leave them to the app's 404/405.

Adding an endpoint touches one of these modules and its core, nothing else.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["cores"]


def cores() -> list[ModuleType]:
    """The core modules, in registration order."""
    from gridgeo.serve.routes import features, heatmap, incidents, lookup, plans

    # plans after features: its OpenAPI paths add datetime to the grids' own
    return [features, lookup, heatmap, incidents, plans]
