"""Files for the ``gridgeo`` commands: one reader of layers, one writer, one user error.

Every command reads its layers with :func:`read_layer` and writes with
:func:`write_frames`, so an output follows its extension the same way everywhere:

========== ============================================================
``.gpkg``  GeoPackage; each frame is a layer of the one file
``.geojson`` GeoJSON (CRS kept, as GDAL writes it)
``.shp``   Shapefile in UTF-8 with its ``.cpg``; field names cut to 10 characters
``.parquet`` GeoParquet (plain Parquet for frames without geometry)
``.csv``   UTF-8 with a byte-order mark, so Excel on Chinese Windows reads it;
           geometry as WKT
========== ============================================================

A single-layer format holds one frame: the first is written to the path, and each
further one beside it, as ``<stem>-<name><ext>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

__all__ = [
    "FORMATS",
    "OutPath",
    "UserError",
    "layer_names",
    "out_paths",
    "read_layer",
    "resolve_layer",
    "write_frames",
]

#: Output extension → what is written.
FORMATS: dict[str, str] = {
    ".gpkg": "GeoPackage",
    ".geojson": "GeoJSON",
    ".shp": "Shapefile (UTF-8)",
    ".parquet": "GeoParquet",
    ".csv": "CSV (UTF-8 with BOM)",
}
_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".shp": "ESRI Shapefile"}
GEOMETRY_FORMATS = (".gpkg", ".geojson", ".shp")
"""Formats that need a geometry column."""


class UserError(click.ClickException):
    """A mistake in the command's input: one ``Error: …`` line and exit status 2."""

    exit_code = 2


class OutPath(click.Path):
    """An output path whose extension is checked when the command line is parsed.

    Parameters
    ----------
    formats
        Extensions allowed (default: every one of :data:`FORMATS`).
    """

    def __init__(self, formats: tuple[str, ...] = tuple(FORMATS)) -> None:
        super().__init__(dir_okay=False, path_type=Path)
        self.formats = formats

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(super().convert(value, param, ctx))
        suffix = path.suffix.lower()
        if suffix not in self.formats:
            what = f"{path.suffix!r}" if path.suffix else "no extension"
            self.fail(
                f"{path.name} has {what}; write one of {', '.join(self.formats)}", param, ctx
            )
        if not path.parent.is_dir():
            self.fail(f"folder {str(path.parent)!r} does not exist", param, ctx)
        return path


def out_paths(path: Path, names: list[str]) -> dict[str, Path]:
    """Where each named frame goes: one GeoPackage, or one file per frame.

    Examples
    --------
    >>> from pathlib import Path
    >>> out_paths(Path("g.gpkg"), ["groups", "assignment"])
    {'groups': PosixPath('g.gpkg'), 'assignment': PosixPath('g.gpkg')}
    >>> out_paths(Path("g.csv"), ["groups", "assignment"])["assignment"].name
    'g-assignment.csv'
    """
    if path.suffix.lower() == ".gpkg":
        return dict.fromkeys(names, path)
    return {
        name: path if i == 0 else path.with_name(f"{path.stem}-{name}{path.suffix}")
        for i, name in enumerate(names)
    }


def _plain(frame: Any) -> Any:
    """A copy without ``attrs`` (Parquet would store them, and they may hold frames)."""
    frame = frame.copy()
    frame.attrs = {}
    return frame


def _shapefile_columns(frame: Any) -> Any:
    """Cut field names to the 10 characters a Shapefile allows, naming each change."""
    renamed: dict[str, str] = {}
    taken: set[str] = set()
    for col in frame.columns:
        if col == frame.geometry.name:
            continue
        new = str(col)[:10]
        i = 1
        while new in taken:
            tail = f"_{i}"
            new, i = str(col)[: 10 - len(tail)] + tail, i + 1
        taken.add(new)
        if new != col:
            renamed[col] = new
    if renamed:
        click.echo(
            "note: Shapefile field names are cut to 10 characters: "
            + ", ".join(f"{a} → {b}" for a, b in renamed.items()),
            err=True,
        )
    return frame.rename(columns=renamed)


def write_frames(frames: Mapping[str, Any], path: Path) -> list[Path]:
    """Write named frames in the format of ``path``'s extension; return the files written.

    Parameters
    ----------
    frames
        Layer name → DataFrame or GeoDataFrame; the first is the main one.
    path
        Output path; its extension is one of :data:`FORMATS`.

    Raises
    ------
    UserError
        For an unknown extension, or a frame without geometry bound for a format that
        needs one.
    """
    import geopandas as gpd
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"cannot write {path.name}; use one of {', '.join(FORMATS)}")
    targets = out_paths(path, list(frames))
    for name, frame in frames.items():
        target = targets[name]
        frame = _plain(frame)
        geo = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
        if suffix in GEOMETRY_FORMATS:
            if not geo:
                raise UserError(
                    f"{name!r} has no geometry to write to {target.name}; use .csv or .parquet"
                )
            options: dict[str, Any] = {}
            if suffix == ".gpkg":
                options["layer"] = name
            if suffix == ".shp":
                frame = _shapefile_columns(frame)
                options["encoding"] = "UTF-8"  # GDAL writes the .cpg
            frame.to_file(target, driver=_DRIVERS[suffix], engine="pyogrio", **options)
        elif suffix == ".parquet":
            frame.to_parquet(target)
        else:  # .csv
            if geo:
                wkt = frame.geometry.to_wkt().to_numpy()
                frame = pd.DataFrame(frame.drop(columns=frame.geometry.name)).assign(geometry=wkt)
            frame.to_csv(target, index=False, encoding="utf-8-sig")
    return list(dict.fromkeys(targets.values()))


def layer_names(path: Path) -> list[str]:
    """Layers of a GDAL file (GeoParquet counts as one layer named after the file)."""
    import pyogrio

    if path.suffix.lower() == ".parquet":
        return [path.stem]
    try:
        return [str(r[0]) for r in pyogrio.list_layers(path)]
    except Exception as err:  # pyogrio's DataSourceError and friends
        raise UserError(f"cannot open {path} as GIS data: {err}") from err


def read_layer(path: Path, layer: str) -> Any:
    """Read ``layer`` of ``path``; a single-layer format (GeoJSON, Shapefile, GeoParquet)
    is read whatever the layer is called.

    Raises
    ------
    UserError
        If the file cannot be opened or has no such layer (the message lists its layers).
    """
    import geopandas as gpd

    if path.suffix.lower() == ".parquet":
        try:
            return gpd.read_parquet(path)
        except (ValueError, OSError) as err:
            raise UserError(f"cannot read {path} as GeoParquet: {err}") from err
    names = layer_names(path)
    if layer not in names:
        if len(names) == 1 and path.suffix.lower() != ".gpkg":
            layer = names[0]
        else:
            raise UserError(f"layer {layer!r} is not in {path}; it has {names}")
    return gpd.read_file(path, layer=layer, engine="pyogrio")


def resolve_layer(source: Path, ref: str, default: str) -> tuple[Path, str]:
    """Where a layer named on the command line lives.

    ``ref`` is a layer of ``source`` (``communities``), another file (``ws.gpkg``: its
    layer ``default``) or a layer of another file (``ws.gpkg:towns``).

    Examples
    --------
    >>> from pathlib import Path
    >>> resolve_layer(Path("grids.gpkg"), "communities", "communities")
    (PosixPath('grids.gpkg'), 'communities')
    """
    if Path(ref).is_file():
        return Path(ref), default
    file, sep, layer = ref.rpartition(":")
    if sep and Path(file).is_file():
        return Path(file), layer or default
    if sep or Path(ref).suffix.lower() in FORMATS:
        raise UserError(f"no such file: {file if sep else ref!r}")
    return source, ref
