"""``gridgeo demo``: build the deterministic demo county, summarise it, optionally write it."""

from __future__ import annotations

import time
from pathlib import Path

import click

from gridgeo.cli._files import OutPath

#: The timestamp written into the GeoPackage's metadata (``gpkg_contents.last_change``)
#: instead of the clock, so that ``gridgeo demo --out`` writes the same bytes every time:
#: the day after the demo's last incident report.
GPKG_TIMESTAMP = "2026-01-01T00:00:00.000Z"


def summary_lines(layers: dict) -> list[str]:
    """Human summary of a workspace: layer sizes, totals, incidents by category.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"households": [3], "population": [9]},
    ...                      geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4490")
    >>> summary_lines({"grids": g})[:2]
    ['layer         features', 'grids                1']
    """
    lines = [f"{'layer':<12} {'features':>9}"]
    lines += [f"{name:<12} {len(gdf):>9,}" for name, gdf in layers.items()]
    if "buildings" in layers:
        b = layers["buildings"]
        lines.append(
            f"households {int(b['households'].sum()):,}, population {int(b['population'].sum()):,}"
        )
    if "grids" in layers and "community_code" in layers["grids"]:
        g = layers["grids"]
        lines.append(
            f"{len(g)} grids in {g['community_code'].nunique()} communities; households per grid "
            f"min {int(g['households'].min())}, median {int(g['households'].median())}, "
            f"max {int(g['households'].max())}"
        )
    if "incidents" in layers and "category" in layers["incidents"]:
        inc = layers["incidents"]
        counts = inc["category"].value_counts()
        lines.append(
            f"incidents {len(inc):,} from {inc['reported_at'].min():%Y-%m-%d} "
            f"to {inc['reported_at'].max():%Y-%m-%d}: "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        )
    return lines


@click.command("demo")
@click.option(
    "--out",
    "out",
    type=OutPath((".gpkg",)),
    default=None,
    help="Write the workspace GeoPackage here (e.g. data/demo.gpkg); a workspace has many "
    "layers, so only .gpkg.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Size factor: 1 ≈ the Xinfeng pilot (60 grids, ~3,000 buildings).",
)
def demo(out: Path | None, seed: int, scale: float) -> None:
    """Build the demo county (deterministic for a seed), print a summary, optionally save it."""
    from gridgeo.datasets import demo_county
    from gridgeo.io import write_workspace

    t0 = time.perf_counter()
    layers = demo_county(seed=seed, scale=scale, progress=True)
    click.echo(
        f"demo county (seed={seed}, scale={scale}) built in {time.perf_counter() - t0:.1f} s"
    )
    for line in summary_lines(layers):
        click.echo(line)
    if out is not None:
        import pyogrio

        # GDAL stamps each layer with the current time unless OGR_CURRENT_DATE is set
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": GPKG_TIMESTAMP})
        try:
            write_workspace(layers, out)
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
        size = out.stat().st_size / 1e6
        click.echo(
            f"wrote {out} ({size:.1f} MB); open it in QGIS or run: gridgeo serve --data {out}"
        )


def register(group: click.Group) -> None:
    """Add the command to the ``gridgeo`` group."""
    group.add_command(demo)
