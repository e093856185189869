"""The workspace: one GeoPackage holding a territory's layers.

QGIS opens the file as it is. Every layer carries a CRS (the demo uses
CGCS2000, EPSG:4490). :data:`SCHEMA` lists the layers, their required
columns and geometry kinds; :func:`validate_workspace` checks a dict of
layers against it and reports **every** problem in one
:class:`~gridgeo.errors.ValidationError`. Plan versions (the ``plans`` and
``grid_versions`` tables) are read and written by :mod:`gridgeo.io.plans`,
whose functions are importable from here too.

Examples
--------
>>> import geopandas as gpd, shapely
>>> towns = gpd.GeoDataFrame({"code": ["360722001"], "name": ["城关镇"]},
...                          geometry=[shapely.box(114.9, 25.3, 115.0, 25.4)], crs="EPSG:4490")
>>> sorted(validate_workspace({"towns": towns}, layers=["towns"]))
['towns']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio

from gridgeo._validate import frame_problems, raise_problems, repair_invalid, where
from gridgeo.codes import bad_codes
from gridgeo.errors import InputError, NotFound

# The plan versions live in gridgeo.io.plans; their names stay importable from here.
from gridgeo.io.plans import (
    LEGACY_PLAN_ID,
    PLAN_TABLES,
    plan_in_force,
    read_plan,
    read_plans,
)
from gridgeo.io.plans_write import adopt_plan, refresh_grids, save_plan

__all__ = [
    "LEGACY_PLAN_ID",
    "PLAN_TABLES",
    "SCHEMA",
    "LayerSpec",
    "adopt_plan",
    "plan_in_force",
    "read_plan",
    "read_plans",
    "read_workspace",
    "refresh_grids",
    "save_plan",
    "validate_workspace",
    "write_workspace",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerSpec:
    """What one workspace layer must hold.

    Attributes
    ----------
    columns
        Required attribute columns.
    geometry
        Allowed geometry kind: ``"polygon"``, ``"point"`` or ``"line"``.
    code_level
        If set, ``code`` must be a well-formed code of this level
        (see :data:`gridgeo.codes.CODE_DIGITS`).
    parent
        ``(column, layer)``: the column holding the parent code, and the layer
        whose ``code`` it must name; the child code must start with it.
    required
        Whether the layer must be present when no explicit list is asked for.
    unique
        Columns whose combination must be unique.
    """

    columns: tuple[str, ...]
    geometry: str
    code_level: str | None = None
    parent: tuple[str, str] | None = None
    required: bool = True
    unique: tuple[str, ...] = ("code",)


#: The workspace layers. Optional ones (``required=False``) are validated when present.
SCHEMA: dict[str, LayerSpec] = {
    "boundary": LayerSpec(("code",), "polygon", code_level="county"),
    "towns": LayerSpec(("code", "name"), "polygon", code_level="town"),
    "communities": LayerSpec(
        ("code", "town_code", "name", "type"),
        "polygon",
        code_level="community",
        parent=("town_code", "towns"),
    ),
    "grids": LayerSpec(
        ("code", "community_code", "households", "population"),
        "polygon",
        code_level="grid",
        parent=("community_code", "communities"),
    ),
    "beats": LayerSpec(("code", "name"), "polygon"),
    "zones": LayerSpec(("department", "code", "name"), "polygon", unique=("department", "code")),
    "buildings": LayerSpec(("households", "population"), "point", unique=()),
    "incidents": LayerSpec(
        ("id", "category", "department", "reported_at"), "point", unique=("id",)
    ),
    "streets": LayerSpec((), "line", required=False, unique=()),
    "markets": LayerSpec((), "point", required=False, unique=()),
    "exclusive": LayerSpec(("code",), "polygon", required=False),
}

_COMMUNITY_TYPES = {"urban", "rural"}
_COUNTS = ("households", "population")


def _check_layer(
    name: str,
    gdf: gpd.GeoDataFrame,
    spec: LayerSpec,
    problems: list[str],
    repair: bool,
) -> gpd.GeoDataFrame:
    """Add the layer's problems: the generic ones from gridgeo._validate, then the schema's."""
    if repair and isinstance(gdf, gpd.GeoDataFrame):
        gdf, rows, reasons = repair_invalid(gdf)
        if len(rows):
            log.warning(
                "layer '%s': repaired %d invalid geometries %s (%s)",
                name,
                len(rows),
                where(gdf.index.isin(rows), gdf),
                "; ".join(reasons[:3]),
            )
            gdf.attrs["repaired"] = [str(i) for i in rows]
    problems += frame_problems(
        gdf,
        f"layer '{name}'",
        columns=spec.columns,
        counts=[c for c in _COUNTS if c in spec.columns],
        unique=spec.unique,
        geometry=spec.geometry,
        fix="pass repair=True to repair it with shapely.make_valid",
        china=True,
    )
    if not isinstance(gdf, gpd.GeoDataFrame):
        return gdf
    if "code" in gdf.columns and spec.code_level is not None:
        parent_col = spec.parent[0] if spec.parent and spec.parent[0] in gdf.columns else None
        bad = bad_codes(
            gdf["code"], spec.code_level, parent=gdf[parent_col] if parent_col else None
        )
        if bad.any():
            sample = [str(v) for v in gdf.loc[bad, "code"].head(5)]
            rule = (
                f"{spec.code_level} codes have "
                + {
                    "county": "6 digits (GB/T 2260)",
                    "town": "9 digits (county + 3)",
                    "community": "12 digits (town + 3)",
                    "grid": "15 digits (community + 3)",
                }[spec.code_level]
            )
            if parent_col:
                rule += f" and start with their {parent_col}"
            problems.append(f"layer '{name}': malformed code(s) {sample}; {rule}")
    if name == "communities" and "type" in gdf.columns:
        wrong_type = ~gdf["type"].isin(_COMMUNITY_TYPES)
        if wrong_type.any():
            problems.append(
                f"layer 'communities': type must be one of {sorted(_COMMUNITY_TYPES)}, found "
                f"{sorted(set(map(str, gdf.loc[wrong_type, 'type'])))[:5]}"
            )
    return gdf


def _check_parents(layers: Mapping[str, gpd.GeoDataFrame], problems: list[str]) -> None:
    for name, gdf in layers.items():
        spec = SCHEMA.get(name)
        if spec is None or spec.parent is None or not isinstance(gdf, gpd.GeoDataFrame):
            continue
        col, parent_layer = spec.parent
        parent = layers.get(parent_layer)
        if col not in gdf.columns or parent is None or "code" not in parent.columns:
            continue
        orphan = ~gdf[col].isin(set(parent["code"]))
        if orphan.any():
            problems.append(
                f"layer '{name}': {col} {sorted(set(map(str, gdf.loc[orphan, col])))[:5]} "
                f"not found in layer '{parent_layer}'"
            )


def validate_workspace(
    data: Mapping[str, gpd.GeoDataFrame],
    *,
    layers: Iterable[str] | None = None,
    repair: bool = False,
    what: str = "workspace",
) -> dict[str, gpd.GeoDataFrame]:
    """Check a dict of layers against :data:`SCHEMA`, reporting every problem at once.

    Checks: required layers present; required columns present; a CRS on every
    layer, with an extent inside China; geometry kinds; valid, non-empty
    geometries; unique codes; well-formed division codes that start with
    their parent's code; parent codes that exist; counts ≥ 0.

    Parameters
    ----------
    data
        Layer name → GeoDataFrame. Layers not in the schema are kept unchecked.
    layers
        Names of the layers that must be present (default: every required
        layer of :data:`SCHEMA`).
    repair
        Fix invalid geometries with :func:`shapely.make_valid` (keeping the
        polygonal part of polygons) instead of reporting them; what changed is
        logged and listed in ``gdf.attrs["repaired"]``.
    what
        How to name the input in the error message.

    Returns
    -------
    dict of str to GeoDataFrame
        The layers (repaired copies where ``repair=True`` changed them; inputs
        are never modified).

    Raises
    ------
    ValidationError
        Listing every problem found.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> beats = gpd.GeoDataFrame({"code": ["J1", "J1"], "name": ["a", "b"]},
    ...                          geometry=[shapely.box(115, 25, 116, 26)] * 2, crs="EPSG:4490")
    >>> validate_workspace({"beats": beats}, layers=["beats"])
    Traceback (most recent call last):
    ...
    gridgeo.errors.ValidationError: workspace has 1 problem:
      - layer 'beats' has duplicate code ['J1'] (2 rows)
    """
    wanted = [n for n, spec in SCHEMA.items() if spec.required] if layers is None else list(layers)
    problems: list[str] = []
    unknown = [n for n in wanted if n not in SCHEMA]
    if unknown:
        raise InputError(f"unknown workspace layer(s) {unknown}; known: {list(SCHEMA)}")
    for name in wanted:
        if name not in data:
            problems.append(f"layer '{name}' is missing")
    out: dict[str, gpd.GeoDataFrame] = {}
    for name, gdf in data.items():
        spec = SCHEMA.get(name)
        out[name] = gdf if spec is None else _check_layer(name, gdf, spec, problems, repair)
    _check_parents(out, problems)
    raise_problems(problems, what=what)
    return out


def read_workspace(
    path: str | os.PathLike[str],
    *,
    layers: Iterable[str] | None = None,
    repair: bool = False,
    only: Iterable[str] | None = None,
) -> dict[str, gpd.GeoDataFrame]:
    """Read a workspace GeoPackage and validate it.

    Parameters
    ----------
    path
        The GeoPackage (any file GDAL reads with named layers works).
    layers
        Layers that must be present (default: every required layer); other
        layers in the file are read too.
    repair
        Repair invalid geometries instead of failing (see :func:`validate_workspace`).
    only
        Read just these layers, skipping the file's others unread (a service
        does not need the buildings); ``layers`` then defaults to the required
        ones among them.

    Returns
    -------
    dict of str to GeoDataFrame

    Raises
    ------
    NotFound
        If the file does not exist.
    InputError
        If GDAL cannot open it.
    ValidationError
        Listing every problem found.

    Examples
    --------
    >>> import tempfile, os, geopandas as gpd, shapely
    >>> beats = gpd.GeoDataFrame({"code": ["J1"], "name": ["城关派出所一区"]},
    ...                          geometry=[shapely.box(115, 25, 116, 26)], crs="EPSG:4490")
    >>> path = os.path.join(tempfile.mkdtemp(), "w.gpkg")
    >>> write_workspace({"beats": beats}, path, layers=["beats"])
    >>> read_workspace(path, layers=["beats"])["beats"].loc[0, "name"]
    '城关派出所一区'
    >>> list(read_workspace(path, only=["beats"]))
    ['beats']
    """
    p = Path(path)
    if not p.exists():
        raise NotFound(f"workspace file '{p}' does not exist")
    try:
        names = [str(row[0]) for row in pyogrio.list_layers(p)]
    except Exception as err:
        raise InputError(f"cannot open '{p}' as a GeoPackage or GDAL dataset: {err}") from err
    if only is not None:
        wanted = list(only)
        names = [n for n in names if n in wanted]
        if layers is None:
            layers = [n for n in wanted if n in SCHEMA and SCHEMA[n].required]
    else:  # plan versions are read with read_plans
        names = [n for n in names if n not in PLAN_TABLES]
    data: dict[str, gpd.GeoDataFrame] = {}
    for name in names:
        gdf = gpd.read_file(p, layer=name, engine="pyogrio")
        if name == "incidents" and "reported_at" in gdf.columns:
            gdf["reported_at"] = pd.to_datetime(gdf["reported_at"])
        data[name] = gdf
    return validate_workspace(data, layers=layers, repair=repair, what=f"workspace '{p}'")


def write_workspace(
    data: Mapping[str, gpd.GeoDataFrame],
    path: str | os.PathLike[str],
    *,
    layers: Iterable[str] | None = None,
    overwrite: bool = True,
) -> None:
    """Validate layers and write them to one GeoPackage, one layer each.

    Parameters
    ----------
    data
        Layer name → GeoDataFrame.
    path
        Output ``.gpkg``; replaced when ``overwrite`` (the default).
    layers
        Layers that must be present (default: every required layer).
    overwrite
        Replace an existing file; otherwise an existing file is an error.

    Raises
    ------
    ValidationError
        If the layers are not a valid workspace (nothing is written).
    InputError
        If the file exists and ``overwrite`` is false.

    Examples
    --------
    See :func:`read_workspace`.
    """
    checked = validate_workspace(data, layers=layers, what="workspace to write")
    p = Path(path)
    if p.exists():
        if not overwrite:
            raise InputError(f"'{p}' exists; pass overwrite=True to replace it")
        p.unlink()
    p.parent.mkdir(parents=True, exist_ok=True)
    for name, gdf in checked.items():
        gdf.to_file(p, layer=name, driver="GPKG", engine="pyogrio")
