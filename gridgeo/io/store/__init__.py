"""Incident stores: where live incidents are appended, queried and followed.

:func:`open_store` opens a GeoPackage path or a ``postgresql://`` URL as an
:class:`IncidentStore`; see :mod:`gridgeo.io.store.base` for the interface, the
incident schema and how the change cursor works.
"""

from gridgeo.io.store.base import (
    CLOSED,
    COLUMNS,
    STATUSES,
    TZ,
    AppendResult,
    Incident,
    IncidentStore,
    StoreError,
    open_store,
)

__all__ = [
    "CLOSED",
    "COLUMNS",
    "STATUSES",
    "TZ",
    "AppendResult",
    "Incident",
    "IncidentStore",
    "StoreError",
    "open_store",
]
