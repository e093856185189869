"""``gridgeo locate``: locate a file of points in every layer of a workspace."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from gridgeo.cli._files import GEOMETRY_FORMATS, OutPath, UserError, write_frames

__all__ = ["register"]

_CHUNK = 500_000


_ENCODINGS = ("utf-8-sig", "gb18030")
"""Tried in turn for a CSV: UTF-8 (with or without BOM), then GB18030 (covers GBK)."""


def _read_csv(path: Path, encoding: str, *, dtype: Any = None) -> Any:
    import pandas as pd

    tried = _ENCODINGS if encoding == "auto" else (encoding,)
    for enc in tried:
        try:
            return pd.read_csv(path, encoding=enc, dtype=dtype)
        except UnicodeDecodeError:
            continue
        except LookupError as err:
            raise click.BadParameter(str(err), param_hint="--encoding") from err
    raise UserError(
        f"{path} is not text in {' or '.join(tried)}; save it as UTF-8, "
        "or name its encoding with --encoding"
    )


def _coordinates(df: Any, path: Path, x: str, y: str) -> tuple[Any, Any]:
    """The x/y columns as floats; a cell that is not a number is an error naming it."""
    import pandas as pd

    missing = [c for c in (x, y) if c not in df.columns]
    if missing:
        raise click.BadParameter(
            f"{path} has no column(s) {missing}; it has {list(df.columns)} (use --x/--y)"
        )
    out = []
    for col in (x, y):
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        blank = raw.isna() | raw.astype(str).str.strip().eq("")
        bad = num.isna() & ~blank
        if bad.any():
            # line numbers as a spreadsheet shows them: the header is line 1
            where = ", ".join(
                f"line {i + 2} {raw.iloc[i]!r}" for i in bad.to_numpy().nonzero()[0][:5]
            )
            raise UserError(
                f"column {col!r} of {path} has {int(bad.sum())} cell(s) that are not numbers: "
                f"{where}"
            )
        out.append(num.to_numpy(dtype=float))
    return out[0], out[1]


def _read_points(path: Path, x: str, y: str, encoding: str) -> tuple[Any, Any]:
    """The table and its coordinates: ``(frame, (xs, ys))``, or ``(frame, None)`` with
    geometry."""
    import geopandas as gpd
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        df = _read_csv(path, encoding)
        return df, _coordinates(df, path, x, y)
    if suffix == ".parquet":
        try:
            return gpd.read_parquet(path), None
        except ValueError:
            df = pd.read_parquet(path)
            return df, _coordinates(df, path, x, y)
    try:
        return gpd.read_file(path, engine="pyogrio"), None
    except Exception as err:  # pyogrio's DataSourceError and friends
        raise UserError(f"cannot read {path} as points: {err}") from err


def _check_crs(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from gridgeo.crs import normalize_crs
    from gridgeo.errors import CRSError

    try:
        normalize_crs(value)
    except CRSError as err:
        raise click.BadParameter(str(err), ctx, param) from err
    return value


@click.command("locate")
@click.argument("points", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--workspace",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Workspace GeoPackage with the zone layers.",
)
@click.option(
    "--crs",
    default="wgs84",
    show_default=True,
    callback=_check_crs,
    help="CRS of x/y columns: wgs84, cgcs2000, gcj02, bd09 or an EPSG code.",
)
@click.option("--x", "x", default="lng", show_default=True, help="Longitude column (CSV).")
@click.option("--y", "y", default="lat", show_default=True, help="Latitude column (CSV).")
@click.option(
    "--encoding",
    default="auto",
    show_default=True,
    help="Text encoding of a CSV; auto tries UTF-8, then GB18030 (GBK).",
)
@click.option("--nearest", type=float, default=None, help="Snap points within this many metres.")
@click.option(
    "-o",
    "--out",
    "out",
    type=OutPath(),
    required=True,
    help="Output: .parquet, .csv (UTF-8 with BOM) or, for points with geometry, "
    ".gpkg, .geojson or .shp.",
)
def locate_command(
    points: Path,
    workspace: Path,
    crs: str,
    x: str,
    y: str,
    encoding: str,
    nearest: float | None,
    out: Path,
) -> None:
    """Locate POINTS (CSV with lng/lat, GeoParquet or any GDAL file) in every zone layer."""
    import pandas as pd
    from tqdm.auto import tqdm

    from gridgeo.assign import Locator

    data, coords = _read_points(points, x, y, encoding)
    if coords is not None and out.suffix.lower() in GEOMETRY_FORMATS:
        raise UserError(
            f"{points.name} has no geometry, only {x}/{y} columns; write .csv or .parquet"
        )
    loc = Locator.from_workspace(workspace, nearest=nearest)
    t0 = time.perf_counter()
    parts = []
    for start in tqdm(range(0, max(len(data), 1), _CHUNK), desc="locate", unit="chunk"):
        chunk = data.iloc[start : start + _CHUNK]
        if coords is None:
            parts.append(loc.locate(chunk))
        else:
            stop = start + len(chunk)
            res = loc.locate(coords[0][start:stop], coords[1][start:stop], crs=crs)
            res.index = chunk.index
            parts.append(res)
    located = pd.concat(parts) if parts else pd.DataFrame()
    took = time.perf_counter() - t0
    result = data.join(
        located.astype({c: "string" for c in loc.layer_names}), suffixes=("", "_zone")
    )
    written = write_frames({"located": result}, out)
    outside = {c: int(located[c].isna().sum()) for c in loc.layer_names}
    click.echo(
        f"located {len(data):,} points in {took:.2f} s "
        f"({len(data) / max(took, 1e-9):,.0f} points/s); outside: {outside}"
    )
    invalid = sum(int(p.attrs.get("invalid", 0) or 0) for p in parts)
    if invalid:
        click.echo(f"{invalid} rows had no coordinate")
    click.echo(f"wrote {', '.join(map(str, written))}")


def register(group: click.Group) -> None:
    """Add the command to the ``gridgeo`` group."""
    group.add_command(locate_command)
