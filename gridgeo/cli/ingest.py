"""``gridgeo ingest``: bulk-load incident history into the incident store, located.

Every row is located against the workspace's zones (grid, community, town,
beat, department zones) by :func:`gridgeo.assign.ingest.ingest`, the same path
the HTTP ingestion takes, and appended by ``id``: a file loaded twice stores
each incident once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gridgeo.cli._files import UserError
from gridgeo.cli.locate import _check_crs, _coordinates, _read_csv

__all__ = ["ALIASES", "register"]

#: Store column → header names accepted for it (the first present is used when the
#: column itself is absent), so a spreadsheet with Chinese headers loads as it is.
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("编号", "工单号", "事件编号"),
    "category": ("类别", "事件类别", "类型", "事件类型"),
    "reported_at": ("上报时间", "时间", "发生时间"),
    "department": ("部门", "责任部门"),
    "source": ("来源",),
    "description": ("描述", "事件描述", "内容"),
}
_X = ("lng", "经度")
_Y = ("lat", "纬度")
#: Columns every incident needs (see :meth:`gridgeo.io.store.IncidentStore.append`).
REQUIRED = ("id", "category", "reported_at")
_ZONE_LAYERS = ("grids", "communities", "towns", "beats", "zones")


def _rename(df: Any) -> Any:
    """``df`` with aliased headers renamed to store columns (the store's own name wins)."""
    renamed = {}
    for column, aliases in ALIASES.items():
        if column in df.columns:
            continue
        found = next((a for a in aliases if a in df.columns), None)
        if found is not None:
            renamed[found] = column
    return df.rename(columns=renamed)


def _pick(columns: Any, given: str | None, candidates: tuple[str, ...]) -> str:
    """The coordinate column: the one given, else the first candidate present."""
    if given is not None:
        return given
    return next((c for c in candidates if c in columns), candidates[0])


def _points(df: Any, path: Path, x: str | None, y: str | None) -> Any:
    """A GeoDataFrame (no CRS yet) of a table's coordinate columns; blank cells are errors."""
    import geopandas as gpd
    import numpy as np

    xcol, ycol = _pick(df.columns, x, _X), _pick(df.columns, y, _Y)
    xs, ys = _coordinates(df, path, xcol, ycol)
    blank = np.isnan(xs) | np.isnan(ys)
    if blank.any():
        where = ", ".join(f"line {i + 2}" for i in np.flatnonzero(blank)[:5])
        raise UserError(
            f"{path} has {int(blank.sum())} row(s) without coordinates in {xcol!r}/{ycol!r}: "
            f"{where}"
        )
    return gpd.GeoDataFrame(
        df.drop(columns=[xcol, ycol]), geometry=gpd.points_from_xy(xs, ys), crs=None
    )


def read_incidents(
    path: Path, *, x: str | None, y: str | None, encoding: str
) -> tuple[Any, bool]:
    """The incidents of a file as a GeoDataFrame with the store's column names.

    A CSV (``.csv``/``.txt``) or a plain Parquet file gives points from its
    coordinate columns (no CRS: the command's ``--crs`` says which); GeoParquet
    and GDAL files keep their geometry and CRS. Cells are read as text, so
    work-order numbers keep their leading zeros.

    Returns
    -------
    (GeoDataFrame, bool)
        The incidents, and whether their points came from coordinate columns.

    Raises
    ------
    UserError
        If the file cannot be read, a coordinate is missing or not a number,
        or a column every incident needs is missing (all of them named at once).
    """
    import geopandas as gpd
    import pandas as pd

    suffix = path.suffix.lower()
    from_columns = True
    if suffix in (".csv", ".txt"):
        gdf = _points(_rename(_read_csv(path, encoding, dtype=str)), path, x, y)
    elif suffix == ".parquet":
        try:
            gdf = gpd.read_parquet(path)
            from_columns = False
        except ValueError:  # Parquet without geometry metadata: coordinate columns
            try:
                df = pd.read_parquet(path)
            except (ValueError, OSError) as err:
                raise UserError(f"cannot read {path} as Parquet: {err}") from err
            gdf = _points(df, path, x, y)
        except OSError as err:
            raise UserError(f"cannot read {path} as Parquet: {err}") from err
        gdf = _rename(gdf)
    else:
        try:
            gdf = gpd.read_file(path, engine="pyogrio")
        except Exception as err:  # pyogrio's DataSourceError and friends
            raise UserError(f"cannot read {path} as GIS data: {err}") from err
        if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.isna().all():
            gdf = _points(pd.DataFrame(gdf), path, x, y)  # e.g. a spreadsheet GDAL reads
        else:
            from_columns = False
        gdf = _rename(gdf)
    missing = [c for c in REQUIRED if c not in gdf.columns]
    if missing:
        accepted = "; ".join(f"{c}: {', '.join(ALIASES[c])}" for c in missing)
        raise UserError(
            f"{path} has no column(s) {missing} (also accepted: {accepted}); "
            f"its columns are {[c for c in gdf.columns if c != gdf.geometry.name]}"
        )
    return gdf, from_columns


def _optional_crs(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _check_crs(ctx, param, value)


@click.command("ingest")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "workspace",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Workspace GeoPackage whose zones locate the incidents (and, without --store, "
    "whose incidents layer stores them).",
)
@click.option(
    "--store",
    "dsn",
    envvar="GRIDGEO_STORE",
    default=None,
    help="Incident store: postgresql://user@host:port/db or a .gpkg "
    "(default: the workspace itself; env GRIDGEO_STORE).",
)
@click.option(
    "--crs",
    default=None,
    callback=_optional_crs,
    help="CRS of the coordinates: wgs84, cgcs2000, gcj02, bd09 or an EPSG code "
    "(default: a GIS file's own CRS; wgs84 for a CSV).",
)
@click.option("--x", "x", default=None, help="Longitude column of a CSV [default: lng or 经度].")
@click.option("--y", "y", default=None, help="Latitude column of a CSV [default: lat or 纬度].")
@click.option(
    "--encoding",
    default="auto",
    show_default=True,
    help="Text encoding of a CSV; auto tries UTF-8, then GB18030 (GBK).",
)
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    default=200_000,
    show_default=True,
    help="Rows per transaction.",
)
def ingest_command(
    file: Path,
    workspace: Path,
    dsn: str | None,
    crs: str | None,
    x: str | None,
    y: str | None,
    encoding: str,
    chunk: int,
) -> None:
    """Load incident history from FILE into the incident store, each row located.

    FILE is a CSV (lng/lat or 经度/纬度 columns, UTF-8 or GBK), GeoParquet, or any
    GDAL vector file, with columns id, category and reported_at (or 编号, 类别,
    上报时间). Ids already stored are skipped (neither located nor written), so
    running it again is harmless; an id repeated within FILE is loaded from its
    first row.
    """
    from gridgeo.assign import Locator
    from gridgeo.assign.ingest import ingest
    from gridgeo.errors import GridGeoError
    from gridgeo.io import read_workspace
    from gridgeo.io.store import open_store

    incidents, from_columns = read_incidents(file, x=x, y=y, encoding=encoding)
    if crs is None and from_columns:
        crs = "wgs84"
    zones = read_workspace(workspace, layers=[], only=_ZONE_LAYERS)
    if not zones:
        raise UserError(f"{workspace} has none of the zone layers {list(_ZONE_LAYERS)}")
    locator = Locator.from_workspace(zones)
    with open_store(dsn if dsn else workspace) as store:
        before = store.count()
        try:
            report = ingest(store, incidents, locator, crs=crs, chunk=chunk, progress=True)
        except GridGeoError as err:
            stored = store.count() - before
            if not stored:
                raise
            raise UserError(
                f"{err}\n{stored:,} earlier rows were stored; fix the file and run again "
                "(stored ids are skipped)"
            ) from err
    click.echo(
        f"ingested {report.rows:,} rows into {store.name}: {len(report.new):,} new, "
        f"{len(report.existing):,} already stored, in {report.seconds:.2f} s "
        f"({report.rows / max(report.seconds, 1e-9):,.0f} rows/s)"
    )
    if report.repeated:
        shown = ", ".join(report.repeated[:5]) + (" …" if len(report.repeated) > 5 else "")
        click.echo(
            f"{len(report.repeated):,} id(s) appear more than once in {file.name}; the first "
            f"row of each was loaded, the others skipped: {shown}",
            err=True,
        )


def register(group: click.Group) -> None:
    """Add the command to the ``gridgeo`` group."""
    group.add_command(ingest_command)
