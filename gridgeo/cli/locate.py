"""``gridgeo locate``: locate a file of points in every layer of a workspace."""

from __future__ import annotations

import time
from pathlib import Path

import click

__all__ = ["register"]

_CHUNK = 500_000


def _read_points(path: Path, x: str, y: str):
    import geopandas as gpd
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        df = pd.read_csv(path)
        missing = [c for c in (x, y) if c not in df.columns]
        if missing:
            raise click.BadParameter(
                f"{path} has no column(s) {missing}; it has {list(df.columns)} (use --x/--y)"
            )
        return df, None
    if suffix == ".parquet":
        try:
            return gpd.read_parquet(path), "geo"
        except ValueError:
            return pd.read_parquet(path), None
    return gpd.read_file(path, engine="pyogrio"), "geo"


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
    help="CRS of x/y columns: wgs84, cgcs2000, gcj02, bd09 or an EPSG code.",
)
@click.option("--x", "x", default="lng", show_default=True, help="Longitude column (CSV).")
@click.option("--y", "y", default="lat", show_default=True, help="Latitude column (CSV).")
@click.option("--nearest", type=float, default=None, help="Snap points within this many metres.")
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output: .parquet, .csv or .gpkg.",
)
def locate_command(
    points: Path, workspace: Path, crs: str, x: str, y: str, nearest: float | None, out: Path
) -> None:
    """Locate POINTS (CSV with lng/lat, GeoParquet or any GDAL file) in every zone layer."""
    import pandas as pd
    from tqdm.auto import tqdm

    from gridgeo.assign import Locator

    loc = Locator.from_workspace(workspace, nearest=nearest)
    data, kind = _read_points(points, x, y)
    t0 = time.perf_counter()
    parts = []
    for start in tqdm(range(0, max(len(data), 1), _CHUNK), desc="locate", unit="chunk"):
        chunk = data.iloc[start : start + _CHUNK]
        if kind == "geo":
            parts.append(loc.locate(chunk))
        else:
            res = loc.locate(chunk[x].to_numpy(float), chunk[y].to_numpy(float), crs=crs)
            res.index = chunk.index
            parts.append(res)
    located = pd.concat(parts) if parts else pd.DataFrame()
    took = time.perf_counter() - t0
    result = data.join(
        located.astype({c: "string" for c in loc.layer_names}), suffixes=("", "_zone")
    )
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        result.to_parquet(out)
    elif suffix == ".csv":
        pd.DataFrame(result.drop(columns="geometry", errors="ignore")).to_csv(out, index=False)
    elif suffix == ".gpkg" and kind == "geo":
        result.to_file(out, driver="GPKG", engine="pyogrio")
    else:
        raise click.BadParameter(
            f"cannot write {out.name}; use .parquet, .csv or .gpkg (for geometry input)",
            param_hint="--out",
        )
    outside = {c: int(located[c].isna().sum()) for c in loc.layer_names}
    click.echo(
        f"located {len(data):,} points in {took:.2f} s "
        f"({len(data) / max(took, 1e-9):,.0f} points/s); outside: {outside}"
    )
    if located.attrs.get("invalid"):
        click.echo(f"{located.attrs['invalid']} rows had no coordinate")
    click.echo(f"wrote {out}")


def register(group: click.Group) -> None:
    """Add the command to the ``gridgeo`` group."""
    group.add_command(locate_command)
