"""Import a county's own files into a workspace, as a manifest lists them.

A manifest is a TOML file with one table per workspace layer (see
:data:`gridgeo.io.workspace.SCHEMA`): where the file is and what the reader
cannot tell from the file itself. Paths are relative to the manifest::

    [communities]
    path = "社区界.shp"            # GBK .dbf, Gauss–Krüger: read from the file

    [buildings]
    path = "一标三实.xlsx"
    crs = "gcj02"                  # 经度/纬度 collected on phones

    [beats]
    path = "警格.kml"
    crs = "bd09"
    columns = { Name = "name", "警格编号" = "code" }

Keys of a table: ``path`` (required), and ``layer``, ``crs``, ``encoding`` and
``columns``, passed to :func:`gridgeo.io.read_layer`. :func:`import_workspace`
reads every layer, makes the polygons a clean coverage with
:func:`gridgeo.io.conform.conform`, validates the result and writes it to one
GeoPackage. :func:`gridgeo.io.report.write_report` shows what it did on a map.
"""

from __future__ import annotations

import codecs
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import tomllib

from gridgeo.crs import normalize_crs
from gridgeo.errors import GridGeoError, InputError, NotFound, ValidationError
from gridgeo.io.read import read_layer
from gridgeo.io.workspace import SCHEMA, write_workspace

__all__ = ["ImportResult", "LayerSource", "Manifest", "import_workspace", "read_manifest"]

log = logging.getLogger(__name__)

#: Keys a manifest table may hold.
KEYS = ("path", "layer", "crs", "encoding", "columns")


@dataclass(frozen=True)
class LayerSource:
    """Where one workspace layer comes from, and how to read it.

    Attributes
    ----------
    name
        The workspace layer (a key of :data:`~gridgeo.io.workspace.SCHEMA`).
    path
        The file, resolved against the manifest's folder.
    layer, crs, encoding, columns
        Passed to :func:`gridgeo.io.read_layer`.
    """

    name: str
    path: Path
    layer: str | None = None
    crs: str | int | None = None
    encoding: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)

    def read(self) -> gpd.GeoDataFrame:
        """The layer read with :func:`gridgeo.io.read_layer`, in EPSG:4490."""
        return read_layer(
            self.path,
            layer=self.layer,
            crs=self.crs,
            encoding=self.encoding,
            columns=dict(self.columns),
        )


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: the file it came from and its layers, in the file's order."""

    path: Path
    layers: dict[str, LayerSource]


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_workspace` read, changed and wrote.

    Attributes
    ----------
    path
        The workspace GeoPackage written.
    manifest
        The manifest imported.
    layers
        The layers as written (conformed and validated), EPSG:4490.
    read
        The layers as :func:`gridgeo.io.read_layer` returned them, before
        :func:`~gridgeo.io.conform.conform` (for showing what changed).
    changes
        One row per change :func:`~gridgeo.io.conform.conform` made: ``layer``,
        ``code``, ``problem``, ``action``, ``area_m2``.
    tolerance_m
        The tolerance the coverage was cleaned with.
    """

    path: Path
    manifest: Manifest
    layers: dict[str, gpd.GeoDataFrame]
    read: dict[str, gpd.GeoDataFrame]
    changes: pd.DataFrame
    tolerance_m: float

    @property
    def read_reports(self) -> dict[str, list[str]]:
        """Layer → what :func:`~gridgeo.io.read_layer` detected and mapped (encoding, CRS, …)."""
        return {name: list(gdf.attrs.get("read_report", [])) for name, gdf in self.read.items()}


def _source(name: str, table: Any, folder: Path, problems: list[str]) -> LayerSource | None:
    """One manifest table as a :class:`LayerSource`; its problems appended to ``problems``."""
    where = f"[{name}]"
    if name not in SCHEMA:
        problems.append(f"{where}: unknown layer {name!r}; the workspace layers are {list(SCHEMA)}")
        return None
    if not isinstance(table, dict):
        problems.append(
            f'{where}: expected a table with path = "…", got {type(table).__name__} {table!r}'
        )
        return None
    before = len(problems)
    unknown = [k for k in table if k not in KEYS]
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown}; the keys are {list(KEYS)}")
    for key in ("path", "layer", "encoding"):
        if key in table and not isinstance(table[key], str):
            problems.append(f"{where}: {key} must be a string, got {table[key]!r}")
    path = None
    if "path" not in table:
        problems.append(f'{where}: no path; add path = "<file>" (relative to the manifest)')
    elif isinstance(table["path"], str):
        path = folder / table["path"]
        if not str(path).startswith("/vsi") and not path.exists():
            problems.append(f"{where}: path {table['path']!r}: no such file {str(path)!r}")
    crs = table.get("crs")
    if crs is not None:
        if isinstance(crs, bool) or not isinstance(crs, (str, int)):
            problems.append(f"{where}: crs must be a string or an EPSG number, got {crs!r}")
        else:
            try:
                normalize_crs(crs)
            except GridGeoError as err:
                problems.append(f"{where}: crs {crs!r}: {err}")
    encoding = table.get("encoding")
    if isinstance(encoding, str):
        try:
            codecs.lookup(encoding)
        except LookupError:
            problems.append(f"{where}: unknown encoding {encoding!r} (e.g. 'GBK', 'UTF-8')")
    columns = table.get("columns", {})
    if not isinstance(columns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in columns.items()
    ):
        problems.append(
            f'{where}: columns must be a table of strings, e.g. columns = {{ "名称" = "name" }}, '
            f"got {columns!r}"
        )
    if len(problems) > before or path is None:
        return None
    return LayerSource(
        name=name,
        path=path,
        layer=table.get("layer"),
        crs=crs,
        encoding=encoding,
        columns=dict(columns),
    )


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check an import manifest, reporting every problem at once.

    Parameters
    ----------
    path
        A TOML file: one table per workspace layer, with ``path`` (relative to
        the manifest) and optional ``layer``, ``crs``, ``encoding``, ``columns``.

    Returns
    -------
    Manifest

    Raises
    ------
    NotFound
        If the manifest does not exist.
    InputError
        If it is not UTF-8 TOML (the message gives the line).
    ValidationError
        Naming every unknown layer or key, missing or mistyped value, missing
        file, unknown CRS or encoding.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "beats.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    >>> _ = (folder / "m.toml").write_text('[beats]\\npath = "beats.geojson"\\ncrs = "bd09"\\n')
    >>> m = read_manifest(folder / "m.toml")
    >>> list(m.layers), m.layers["beats"].crs, m.layers["beats"].path.name
    (['beats'], 'bd09', 'beats.geojson')
    >>> bad = '[beat]\\npath = "b.kml"\\n[towns]\\nfile = "t.shp"\\n'
    >>> _ = (folder / "bad.toml").write_text(bad)
    >>> read_manifest(folder / "bad.toml")
    Traceback (most recent call last):
    ...
    gridgeo.errors.ValidationError: manifest '...bad.toml' has 3 problems:
      - [beat]: unknown layer 'beat'; the workspace layers are [...]
      - [towns]: unknown key(s) ['file']; the keys are ['path', 'layer', 'crs', ...]
      - [towns]: no path; add path = "<file>" (relative to the manifest)
    """
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such manifest {str(p)!r}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise InputError(f"manifest {str(p)!r} is not UTF-8 text: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"manifest {str(p)!r} is not valid TOML: {err}") from err
    problems: list[str] = []
    if not data:
        problems.append(
            f'it names no layer; add a table per layer, e.g. [communities] path = "…" '
            f"(the workspace layers are {list(SCHEMA)})"
        )
    layers: dict[str, LayerSource] = {}
    for name, table in data.items():
        source = _source(name, table, p.parent, problems)
        if source is not None:
            layers[name] = source
    if problems:
        raise ValidationError(problems, what=f"manifest {str(p)!r}")
    return Manifest(path=p, layers=layers)


def import_workspace(
    manifest: Manifest | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tolerance_m: float = 1.0,
    progress: bool = False,
) -> ImportResult:
    """Read the layers a manifest lists, conform them, validate them and write a workspace.

    Every layer is read with :func:`gridgeo.io.read_layer` (to EPSG:4490, the
    Chinese headers mapped); the polygons are made a clean coverage by
    :func:`gridgeo.io.conform.conform` (invalid rings repaired, overlaps given
    to one neighbour, thin gaps absorbed, communities nested in towns), and
    the result is validated against :data:`~gridgeo.io.workspace.SCHEMA` and
    written to one GeoPackage. Progress goes to the log (and a tqdm bar with
    ``progress=True``).

    Parameters
    ----------
    manifest
        A :class:`Manifest`, or the path of one (see :func:`read_manifest`).
    out
        The workspace ``.gpkg`` to write (replaced if it exists).
    tolerance_m
        Gaps thinner than this, in metres, are absorbed into a neighbour.
    progress
        Show a tqdm progress bar over the layers.

    Returns
    -------
    ImportResult
        The layers read and written and the table of changes.

    Raises
    ------
    ValidationError
        Listing every layer that cannot be read (a missing CRS names the likely
        one), or every problem of the conformed workspace (nothing is written).
    InputError
        If ``out`` is not a ``.gpkg`` or ``tolerance_m`` is not a number > 0.

    Examples
    --------
    >>> import pathlib, tempfile, geopandas as gpd, shapely
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> beats = gpd.GeoDataFrame({"代码": ["JW1", "JW2"], "名称": ["一区", "二区"]},
    ...     geometry=[shapely.box(114.90, 25.40, 114.91, 25.41),
    ...               shapely.box(114.91, 25.40, 114.92, 25.41)], crs="EPSG:4490")
    >>> beats.to_file(folder / "beats.geojson")
    >>> _ = (folder / "m.toml").write_text('[beats]\\npath = "beats.geojson"\\n')
    >>> result = import_workspace(folder / "m.toml", folder / "ws.gpkg")
    >>> result.layers["beats"][["code", "name"]].values.tolist()
    [['JW1', '一区'], ['JW2', '二区']]
    >>> result.path.name, len(result.changes)
    ('ws.gpkg', 0)
    """
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    if (
        isinstance(tolerance_m, bool)
        or not isinstance(tolerance_m, (int, float))
        or not math.isfinite(tolerance_m)
        or tolerance_m <= 0
    ):
        raise InputError(f"tolerance_m must be a number of metres > 0, got {tolerance_m!r}")
    out = Path(out)
    if out.suffix.lower() != ".gpkg":
        raise InputError(f"the workspace is a GeoPackage: write {out.stem}.gpkg, not {out.name}")

    from gridgeo.io.conform import conform

    if progress:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    names = list(manifest.layers)
    bar = tqdm(total=len(names) + 2, desc="import", unit="step", disable=not progress)
    try:
        read: dict[str, gpd.GeoDataFrame] = {}
        problems: list[str] = []
        for name in names:
            source = manifest.layers[name]
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            try:
                read[name] = source.read()
            except GridGeoError as err:
                problems.append(f"[{name}] {source.path.name}: {err}")
            else:
                log.info(
                    "import: read %s from %s: %d rows in %.2f s",
                    name,
                    source.path,
                    len(read[name]),
                    time.perf_counter() - t0,
                )
            bar.update(1)
        if problems:
            raise ValidationError(problems, what=f"import of {str(manifest.path)!r}")
        bar.set_postfix_str("conform")
        t0 = time.perf_counter()
        layers, changes = conform(read, tolerance_m=float(tolerance_m))
        log.info(
            "import: conformed %d layers in %.2f s, %d changes",
            len(layers),
            time.perf_counter() - t0,
            len(changes),
        )
        bar.update(1)
        bar.set_postfix_str("write")
        write_workspace(layers, out, layers=[n for n in layers if n in SCHEMA])
        sizes = ", ".join(f"{n} {len(g)}" for n, g in layers.items())
        log.info("import: wrote %s (%s)", out, sizes)
        bar.update(1)
    finally:
        bar.close()
    return ImportResult(
        path=out,
        manifest=manifest,
        layers=dict(layers),
        read=read,
        changes=changes,
        tolerance_m=float(tolerance_m),
    )
