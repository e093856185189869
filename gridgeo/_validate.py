"""Input validation in one place: every problem of an input, in one error.

Each public function of gridgeo that takes GeoDataFrames checks them here.
:func:`frame_problems` lists **every** problem of one frame (a missing or
unusable CRS, missing columns, non-numeric or negative counts, missing or
duplicate codes, wrong geometry kinds, empty or invalid geometries, lon/lat
outside China); the caller gathers the problems of all its inputs and
:func:`raise_problems` raises them together as one
:class:`~gridgeo.errors.ValidationError`, whose message names the rows (the
first few codes or index labels, and how many) and the columns at fault.
When one of the problems is about the CRS, the error is a
:class:`~gridgeo.errors.CRSValidationError`, so it is a
:class:`~gridgeo.errors.CRSError` as well.

Examples
--------
>>> import geopandas as gpd, shapely
>>> bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
>>> units = gpd.GeoDataFrame({"households": [10, -2, None]},
...     geometry=[shapely.box(0, 0, 1, 1), bowtie, shapely.Polygon()])
>>> validate_frame(units, "units", counts=["households"], what="make_grids() input")
Traceback (most recent call last):
...
gridgeo.errors.CRSValidationError: make_grids() input has 4 problems:
  - units has no CRS; set one (e.g. .set_crs('EPSG:4490'))
  - units column 'households' must hold counts ≥ 0 (finite, not missing); 2 bad at rows ['1', '2'] (e.g. -2.0)
  - units has 1 empty geometry at rows ['2']
  - units has 1 invalid geometry at rows ['1'] (Self-intersection[0.5 0.5]); repair it with shapely.make_valid
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridgeo.crs import CHINA_BOX, to_wgs84
from gridgeo.errors import CRSValidationError, ValidationError

__all__ = [
    "GEOMETRY_KINDS",
    "Problem",
    "frame_problems",
    "raise_problems",
    "repair_invalid",
    "validate_frame",
    "where",
]

#: Geometry kinds a frame may be asked to hold, and the geometry types each allows.
GEOMETRY_KINDS: dict[str, frozenset[str]] = {
    "polygon": frozenset({"Polygon", "MultiPolygon"}),
    "point": frozenset({"Point", "MultiPoint"}),
    "line": frozenset({"LineString", "MultiLineString"}),
}

_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
_LIMIT = 5


class Problem(str):
    """One problem: a line of the error message, with the ``kind`` of problem.

    Parameters
    ----------
    text
        The line, naming the frame, the column and the rows at fault.
    kind
        ``"type"``, ``"crs"``, ``"rows"``, ``"column"``, ``"dtype"``,
        ``"value"``, ``"null"``, ``"duplicate"``, ``"geometry"``, ``"empty"``
        or ``"invalid"``.

    Examples
    --------
    >>> p = Problem("units has no CRS", "crs")
    >>> p == "units has no CRS", p.kind
    (True, 'crs')
    """

    kind: str

    def __new__(cls, text: str, kind: str = "value") -> Problem:
        self = super().__new__(cls, text)
        self.kind = kind
        return self


def where(mask: Any, gdf: pd.DataFrame, label: str | None = None, *, limit: int = _LIMIT) -> str:
    """Name the rows of ``gdf`` where ``mask`` holds: the first few, and how many more.

    Parameters
    ----------
    mask
        Boolean, one per row.
    gdf
        The frame.
    label
        A column naming the rows (e.g. ``"code"``); the index when ``None`` or absent.
    limit
        How many to name.

    Returns
    -------
    str
        ``"at rows ['3', '7']"``, ``"for code ['A'] "`` or ``"… and 4 more"``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"code": list("abcdefg")})
    >>> where([True] * 7, df)
    "at rows ['0', '1', '2', '3', '4'] and 2 more"
    >>> where([False, True] + [False] * 5, df, "code")
    "for code ['b']"
    """
    m = np.asarray(mask, dtype=bool)
    if label is not None and label in gdf.columns:
        values, head = gdf[label].to_numpy()[m][:limit], f"for {label}"
    else:
        values, head = gdf.index[m][:limit], "at rows"
    more = int(m.sum()) - len(values)
    return f"{head} {[str(v) for v in values]}" + (f" and {more} more" if more > 0 else "")


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _unique(names: Iterable[str | None]) -> list[str]:
    out: list[str] = []
    for n in names:
        if n is not None and n not in out:
            out.append(n)
    return out


def frame_problems(
    gdf: Any,
    name: str,
    *,
    columns: Iterable[str] | Mapping[str, str] = (),
    numeric: Iterable[str] = (),
    counts: Iterable[str] = (),
    not_null: Iterable[str] = (),
    unique: Iterable[str] = (),
    label: str | None = None,
    geometry: str | None = None,
    min_rows: int = 0,
    allow_empty: bool = False,
    allow_invalid: bool = False,
    fix: str = "repair it with shapely.make_valid",
    crs: bool = True,
    china: bool | None = None,
) -> list[Problem]:
    """List every problem of one input frame.

    Parameters
    ----------
    gdf
        The input; a GeoSeries is taken as a frame without columns, anything
        else but a GeoDataFrame is one problem.
    name
        How to name it in messages, e.g. ``"units"`` or ``"layer 'grid'"``.
    columns
        Required columns; a mapping gives each a hint shown when it is missing
        (e.g. ``{"code": "pass key=<code column>"}``).
    numeric
        Columns that must have a numeric (not boolean) dtype.
    counts
        Columns that must hold finite numbers ≥ 0, none missing.
    not_null
        Columns that must have no missing value.
    unique
        Columns whose combination must be unique across the rows that have
        all of them.
    label
        Column naming rows in messages (default: the index).
    geometry
        Allowed kind of geometry: ``"polygon"``, ``"point"`` or ``"line"``
        (multi-parts included); any when ``None``.
    min_rows
        Fewest rows the frame may have.
    allow_empty, allow_invalid
        Accept missing/empty, or invalid geometries.
    fix
        What the message for invalid geometries suggests.
    crs
        Require a CRS (geographic or projected).
    china
        Require every geometry to lie in China's extent (:data:`gridgeo.crs.CHINA_BOX`);
        ``None`` checks this only for a geographic (lon/lat) CRS.

    Returns
    -------
    list of Problem
        Empty when the frame is fine.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["A", "A", None]},
    ...     geometry=[shapely.box(115, 25, 116, 26)] * 3, crs="EPSG:4490")
    >>> for p in frame_problems(grids, "grids", columns=["code", "households"],
    ...                         not_null=["code"], unique=["code"], label="code"):
    ...     print(p.kind, "|", p)
    column | grids is missing column(s) ['households']; columns are ['code']
    null | grids column 'code' has 1 missing value at rows ['2']
    duplicate | grids has duplicate code ['A'] (2 rows)
    >>> lat_lon = gpd.GeoDataFrame(geometry=[shapely.Point(25.5, 115.5)], crs="EPSG:4490")
    >>> print(frame_problems(lat_lon, "incidents")[0])  # doctest: +ELLIPSIS
    incidents has 1 geometry outside China (72.004..137.8347°E, 0.8293..55.8271°N) at rows ['0']...
    """
    if isinstance(gdf, gpd.GeoSeries):  # geometries alone: a frame without columns
        gdf = gpd.GeoDataFrame(geometry=gdf)
    if not isinstance(gdf, gpd.GeoDataFrame):
        return [Problem(f"{name} must be a GeoDataFrame, got {type(gdf).__name__}", "type")]
    problems: list[Problem] = []
    if crs and gdf.crs is None:
        problems.append(Problem(f"{name} has no CRS; set one (e.g. .set_crs('EPSG:4490'))", "crs"))
    elif crs and not (gdf.crs.is_geographic or gdf.crs.is_projected):
        problems.append(
            Problem(
                f"{name} has CRS {gdf.crs.name!r}, which is neither geographic nor projected; "
                "set one that places the data on the earth (e.g. EPSG:4490)",
                "crs",
            )
        )
    if len(gdf) < min_rows:
        text = "is empty" if min_rows == 1 else f"has {len(gdf)} rows; at least {min_rows} needed"
        problems.append(Problem(f"{name} {text}", "rows"))

    numeric, counts, not_null, unique = list(numeric), list(counts), list(not_null), list(unique)
    hints = dict(columns) if isinstance(columns, Mapping) else dict.fromkeys(columns, "")
    required = _unique([*hints, *numeric, *counts, *not_null, *unique])
    missing = [c for c in required if c not in gdf.columns]
    if missing:
        said = [hints[c] for c in missing if hints.get(c)]
        listed = [c for c in gdf.columns if c != gdf.geometry.name] if _has_geometry(gdf) else []
        problems.append(
            Problem(
                f"{name} is missing column(s) {missing}"
                + (f" ({'; '.join(said)})" if said else "")
                + f"; columns are {listed if _has_geometry(gdf) else list(gdf.columns)}",
                "column",
            )
        )
    not_numeric = set()
    for col in _unique(numeric):
        if col in gdf.columns:
            dtype = gdf[col].dtype
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
                not_numeric.add(col)
                problems.append(
                    Problem(f"{name} column '{col}' has dtype {dtype}; it must be numeric", "dtype")
                )
    for col in _unique(counts):
        if col in gdf.columns and col not in not_numeric:
            values = pd.to_numeric(gdf[col], errors="coerce")
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~np.isfinite(arr) | (arr < 0)
            if bad.any():
                example = gdf[col].to_numpy()[bad][0]
                example = example.item() if isinstance(example, np.generic) else example
                problems.append(
                    Problem(
                        f"{name} column '{col}' must hold counts ≥ 0 (finite, not missing); "
                        f"{int(bad.sum())} bad {where(bad, gdf, label)} (e.g. {example!r})",
                        "value",
                    )
                )
    for col in _unique(not_null):
        if col in gdf.columns and col not in counts:
            null = gdf[col].isna().to_numpy()
            if null.any():
                n = int(null.sum())
                problems.append(
                    Problem(
                        f"{name} column '{col}' has "
                        f"{_plural(n, 'missing value', 'missing values')} {where(null, gdf)}",
                        "null",
                    )
                )
    if unique and all(c in gdf.columns for c in unique):
        # rows with a missing value are not duplicates of each other (not_null names them)
        complete = gdf[unique].notna().all(axis=1).to_numpy()
        dup = gdf.duplicated(subset=unique, keep=False).to_numpy() & complete
        if dup.any():
            values = gdf.loc[dup, unique].apply(lambda c: c.map(str)).agg("/".join, axis=1).unique()
            shown = [str(v) for v in values[:_LIMIT]]
            more = len(values) - len(shown)
            problems.append(
                Problem(
                    f"{name} has duplicate {'/'.join(unique)} {shown}"
                    + (f" and {more} more" if more > 0 else "")
                    + f" ({int(dup.sum())} rows)",
                    "duplicate",
                )
            )
    if not _has_geometry(gdf):
        problems.append(Problem(f"{name} has no active geometry column", "geometry"))
        return problems
    problems += _geometry_problems(
        gdf, name, label, geometry, allow_empty, allow_invalid, fix, crs, china
    )
    return problems


def _has_geometry(gdf: gpd.GeoDataFrame) -> bool:
    try:
        gdf.geometry  # noqa: B018
    except AttributeError:
        return False
    return True


def _geometry_problems(
    gdf: gpd.GeoDataFrame,
    name: str,
    label: str | None,
    geometry: str | None,
    allow_empty: bool,
    allow_invalid: bool,
    fix: str,
    crs: bool,
    china: bool | None,
) -> list[Problem]:
    problems: list[Problem] = []
    geoms = gdf.geometry.to_numpy()
    absent = pd.isna(geoms) | shapely.is_empty(geoms)
    present = ~absent
    if absent.any() and not allow_empty:
        n = int(absent.sum())
        problems.append(
            Problem(
                f"{name} has {_plural(n, 'empty geometry', 'empty geometries')} "
                f"{where(absent, gdf, label)}",
                "empty",
            )
        )
    if geometry is not None:
        allowed = GEOMETRY_KINDS[geometry]
        types = pd.Series(gdf.geometry.geom_type.to_numpy(), index=gdf.index)
        wrong = present & ~types.isin(allowed).to_numpy()
        if wrong.any():
            problems.append(
                Problem(
                    f"{name} must hold {geometry} geometries; found "
                    f"{sorted(set(types[wrong]))} {where(wrong, gdf, label)}",
                    "geometry",
                )
            )
    if not allow_invalid:
        invalid = present & ~shapely.is_valid(geoms)
        if invalid.any():
            n = int(invalid.sum())
            reasons = sorted(set(shapely.is_valid_reason(geoms[invalid])))
            problems.append(
                Problem(
                    f"{name} has {_plural(n, 'invalid geometry', 'invalid geometries')} "
                    f"{where(invalid, gdf, label)} ({'; '.join(reasons[:3])}); "
                    + fix.replace(" it ", " them " if n > 1 else " it "),
                    "invalid",
                )
            )
    if gdf.crs is not None and crs and present.any():
        check = gdf.crs.is_geographic if china is None else china
        if check:
            problems += _extent_problems(gdf, name, label, geoms, present)
    return problems


def _extent_problems(
    gdf: gpd.GeoDataFrame, name: str, label: str | None, geoms: Any, present: Any
) -> list[Problem]:
    bounds = shapely.bounds(geoms[present])
    try:
        lon, lat = to_wgs84(bounds[:, [0, 2]].ravel(), bounds[:, [1, 3]].ravel(), gdf.crs)
    except Exception as err:
        return [Problem(f"{name} cannot be transformed from {gdf.crs} to WGS84 ({err})", "crs")]
    lon, lat = lon.reshape(-1, 2), lat.reshape(-1, 2)
    bx0, by0, bx1, by1 = CHINA_BOX
    with np.errstate(invalid="ignore"):
        inside = (
            np.isfinite(lon).all(axis=1)
            & np.isfinite(lat).all(axis=1)
            & (lon.min(axis=1) >= bx0)
            & (lon.max(axis=1) <= bx1)
            & (lat.min(axis=1) >= by0)
            & (lat.max(axis=1) <= by1)
        )
    if inside.all():
        return []
    out = np.zeros(len(gdf), dtype=bool)
    out[np.flatnonzero(present)[~inside]] = True
    n = int(out.sum())
    with np.errstate(invalid="ignore"):
        extent = (
            f"lon {np.nanmin(lon):.4f}..{np.nanmax(lon):.4f}, "
            f"lat {np.nanmin(lat):.4f}..{np.nanmax(lat):.4f}"
            if np.isfinite(lon).any() and np.isfinite(lat).any()
            else "not finite in WGS84"
        )
    return [
        Problem(
            f"{name} has {_plural(n, 'geometry', 'geometries')} outside China "
            f"({bx0}..{bx1}°E, {by0}..{by1}°N) {where(out, gdf, label)}; extent {extent}. "
            f"Is the CRS {gdf.crs} right (e.g. lon/lat swapped, or projected coordinates "
            "labelled as degrees)?",
            "crs",
        )
    ]


def raise_problems(problems: Iterable[str], *, what: str) -> None:
    """Raise the problems, if any, together as one error.

    Parameters
    ----------
    problems
        Lines from :func:`frame_problems` (or plain strings: problems of parameters).
    what
        How to name the input, e.g. ``"make_grids() input"``.

    Raises
    ------
    CRSValidationError
        If one of the problems is about the CRS.
    ValidationError
        Otherwise, if there is any problem.

    Examples
    --------
    >>> raise_problems([], what="input")
    >>> raise_problems(["k was 0; it must be ≥ 1"], what="regroup() input")
    Traceback (most recent call last):
    ...
    gridgeo.errors.ValidationError: regroup() input has 1 problem:
      - k was 0; it must be ≥ 1
    """
    found = list(problems)
    if not found:
        return
    crs = any(getattr(p, "kind", None) == "crs" for p in found)
    raise (CRSValidationError if crs else ValidationError)(found, what=what)


def validate_frame(gdf: Any, name: str, *, what: str | None = None, **options: Any) -> None:
    """Check one frame and raise every problem of it at once.

    Parameters
    ----------
    gdf, name
        As in :func:`frame_problems`.
    what
        How to name the input in the message (default: ``name``).
    **options
        Keyword options of :func:`frame_problems`.

    Raises
    ------
    ValidationError, CRSValidationError
        See :func:`raise_problems`.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> beats = gpd.GeoDataFrame({"code": ["J1"]}, geometry=[shapely.Point(115, 25)],
    ...                          crs="EPSG:4490")
    >>> validate_frame(beats, "beats", columns=["code"], geometry="polygon")
    Traceback (most recent call last):
    ...
    gridgeo.errors.ValidationError: beats has 1 problem:
      - beats must hold polygon geometries; found ['Point'] at rows ['0']
    """
    raise_problems(frame_problems(gdf, name, **options), what=what or name)


def repair_invalid(
    gdf: gpd.GeoDataFrame,
) -> tuple[gpd.GeoDataFrame, pd.Index, list[str]]:
    """Repair invalid geometries with :func:`shapely.make_valid`.

    A polygon keeps the polygonal part of its repair (``make_valid`` may add
    lines where a ring collapses); if nothing polygonal is left, the whole
    repair is kept so that no feature silently becomes empty. Missing and
    empty geometries are left as they are.

    Parameters
    ----------
    gdf
        The frame; it is not modified.

    Returns
    -------
    frame : GeoDataFrame
        A repaired copy, or ``gdf`` itself when nothing was invalid.
    repaired : pandas.Index
        The index labels of the repaired rows.
    reasons : list of str
        Why they were invalid (:func:`shapely.is_valid_reason`), distinct, sorted.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    >>> gdf = gpd.GeoDataFrame(geometry=[shapely.box(2, 0, 3, 1), bowtie], crs="EPSG:4547")
    >>> fixed, rows, reasons = repair_invalid(gdf)
    >>> list(rows), reasons, fixed.geometry.geom_type.tolist(), float(fixed.area.sum())
    ([1], ['Self-intersection[0.5 0.5]'], ['Polygon', 'MultiPolygon'], 1.5)
    >>> bool(gdf.is_valid.all())  # the input is unchanged
    False
    """
    geoms = gdf.geometry.to_numpy()
    present = ~(pd.isna(geoms) | shapely.is_empty(geoms))
    bad = np.zeros(len(geoms), dtype=bool)
    bad[present] = ~shapely.is_valid(geoms[present])
    if not bad.any():
        return gdf, gdf.index[:0], []
    reasons = sorted(set(shapely.is_valid_reason(geoms[bad])))
    fixed = shapely.make_valid(geoms[bad])
    polygonal = np.isin(shapely.get_type_id(geoms[bad]), _POLYGONAL)
    fixed = np.array(
        [_polygonal(f) if p else f for f, p in zip(fixed, polygonal)], dtype=object
    )
    out = gdf.copy()
    values = out.geometry.to_numpy().copy()
    values[bad] = fixed
    out[out.geometry.name] = gpd.GeoSeries(values, index=out.index, crs=out.crs)
    return out, gdf.index[bad], reasons


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of a repaired polygon, or all of it when none is polygonal."""
    if shapely.get_type_id(geom) in _POLYGONAL:
        return geom
    parts = [g for g in shapely.get_parts(geom) if shapely.get_type_id(g) in _POLYGONAL]
    return shapely.union_all(parts) if parts else geom
