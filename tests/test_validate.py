"""gridgeo._validate: every problem of an input, named by rows and columns, in one error."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridgeo._validate import (
    Problem,
    frame_problems,
    raise_problems,
    repair_invalid,
    validate_frame,
    where,
)
from gridgeo.errors import CRSError, CRSValidationError, InputError, ValidationError

X0, Y0 = 114.90, 25.30  # lon/lat, in China
N = 10


def bowtie(x: float, y: float, d: float = 0.001) -> shapely.Polygon:
    return shapely.Polygon([(x, y), (x + d, y + d), (x + d, y), (x, y + d)])


def frame(n: int = N, crs: str | None = "EPSG:4490") -> gpd.GeoDataFrame:
    """``n`` valid grid-like rows in lon/lat, codes G00.., counts ≥ 0."""
    return gpd.GeoDataFrame(
        {
            "code": [f"G{i:02d}" for i in range(n)],
            "name": [f"网格{i}" for i in range(n)],
            "households": np.arange(n, dtype=np.int64) * 10,
            "population": np.arange(n, dtype=np.float64) * 30,
        },
        geometry=[shapely.box(X0 + i * 0.01, Y0, X0 + (i + 1) * 0.01, Y0 + 0.01) for i in range(n)],
        crs=crs,
    )


OPTIONS = {
    "columns": ["code", "name"],
    "numeric": ["households"],
    "counts": ["households", "population"],
    "not_null": ["code"],
    "unique": ["code"],
    "geometry": "polygon",
}


def check(gdf: gpd.GeoDataFrame, **extra) -> None:
    validate_frame(gdf, "grids", what="test input", **{**OPTIONS, **extra})


def test_a_valid_frame_has_no_problem() -> None:
    assert frame_problems(frame(), "grids", **OPTIONS) == []
    check(frame())  # does not raise


def test_several_problems_come_in_one_message() -> None:
    g = frame().drop(columns="name")
    g.loc[2, "population"] = -5
    g.loc[3, "code"] = "G04"
    g.loc[6, "geometry"] = shapely.Polygon()
    g.loc[7, "geometry"] = bowtie(X0, Y0)
    with pytest.raises(ValidationError) as info:
        check(g)
    err = info.value
    assert str(err).startswith("test input has 5 problems:\n")
    assert [p.kind for p in err.problems] == ["column", "value", "duplicate", "empty", "invalid"]
    msg = str(err)
    assert "grids is missing column(s) ['name']; columns are ['code', 'households'" in msg
    assert "'population' must hold counts ≥ 0 (finite, not missing); 1 bad at rows ['2']" in msg
    assert "grids has duplicate code ['G04'] (2 rows)" in msg
    assert "grids has 1 empty geometry at rows ['6']" in msg
    assert "grids has 1 invalid geometry at rows ['7'] (Self-intersection[" in msg
    assert not isinstance(err, CRSError)  # no CRS problem among them
    assert isinstance(err, InputError) and err.status == 400


def test_missing_crs_is_also_a_crs_error() -> None:
    g = frame(crs=None)
    g.loc[1, "households"] = -1
    with pytest.raises(CRSError, match=r"test input has 2 problems:\n  - grids has no CRS") as info:
        check(g)
    assert isinstance(info.value, CRSValidationError) and isinstance(info.value, ValidationError)
    assert info.value.code == "InvalidCRS" and info.value.status == 400


def test_crs_that_places_nothing_on_the_earth() -> None:
    engineering = pyproj.CRS.from_wkt(
        'ENGCRS["site",EDATUM["local"],CS[Cartesian,2],'
        'AXIS["x",east,LENGTHUNIT["metre",1]],AXIS["y",north,LENGTHUNIT["metre",1]]]'
    )
    g = frame().set_crs(engineering, allow_override=True)
    with pytest.raises(CRSValidationError, match=r"neither geographic nor projected"):
        check(g)


def test_not_a_geodataframe() -> None:
    with pytest.raises(ValidationError, match=r"grids must be a GeoDataFrame, got DataFrame"):
        check(pd.DataFrame(frame()))
    # a GeoSeries is a frame without columns
    s = frame().geometry
    assert frame_problems(s, "barriers") == []
    with pytest.raises(ValidationError, match=r"barriers is missing column\(s\) \['code'\]"):
        validate_frame(s, "barriers", columns=["code"])


def test_missing_columns_with_hints() -> None:
    g = frame()
    with pytest.raises(
        ValidationError,
        match=r"grids is missing column\(s\) \['hh', 'gid'\] \(households='hh'; pass key=\); "
        r"columns are \['code', 'name', 'households', 'population'\]",
    ):
        validate_frame(g, "grids", columns={"hh": "households='hh'", "gid": "pass key="})


def test_non_numeric_column() -> None:
    g = frame().astype({"households": str})
    with pytest.raises(
        ValidationError, match=r"grids column 'households' has dtype \w+; it must be numeric"
    ) as info:
        check(g)
    assert len(info.value.problems) == 1  # not also reported as bad counts
    g = frame()
    g["households"] = g["households"] > 0
    with pytest.raises(ValidationError, match=r"'households' has dtype bool; it must be numeric"):
        check(g)


@pytest.mark.parametrize(
    ("bad", "shown"), [(np.nan, "nan"), (-3.0, "-3.0"), (np.inf, "inf"), ("x", "'x'")]
)
def test_bad_counts(bad, shown) -> None:
    g = frame().astype({"population": object})
    g.loc[4, "population"] = bad
    with pytest.raises(
        ValidationError,
        match=rf"'population' must hold counts ≥ 0 \(finite, not missing\); 1 bad at rows "
        rf"\['4'\] \(e\.g\. {shown}\)",
    ):
        check(g)


def test_nullable_counts_with_na() -> None:
    g = frame().astype({"households": "Int64"})
    g.loc[1, "households"] = pd.NA
    with pytest.raises(ValidationError, match=r"'households' must hold counts ≥ 0.*\['1'\]"):
        check(g)


def test_null_codes() -> None:
    g = frame()
    g.loc[[2, 5], "code"] = None
    with pytest.raises(
        ValidationError, match=r"grids column 'code' has 2 missing values at rows \['2', '5'\]"
    ) as info:
        check(g)
    assert len(info.value.problems) == 1  # two missing codes are not duplicates


def test_duplicates_of_a_combination() -> None:
    g = frame()
    g["department"] = ["消防"] * 5 + ["城管"] * 5
    g.loc[6, "code"] = "G00"  # same code, other department: fine
    assert frame_problems(g, "zones", unique=["department", "code"]) == []
    g.loc[1, "code"] = "G00"
    with pytest.raises(ValidationError, match=r"zones has duplicate department/code \['消防/G00"):
        validate_frame(g, "zones", unique=["department", "code"])


def test_wrong_geometry_kind_named_by_code() -> None:
    g = frame()
    g.loc[3, "geometry"] = shapely.Point(X0, Y0)
    g.loc[8, "geometry"] = shapely.LineString([(X0, Y0), (X0 + 0.01, Y0)])
    with pytest.raises(
        ValidationError,
        match=r"grids must hold polygon geometries; found \['LineString', 'Point'\] "
        r"for code \['G03', 'G08'\]",
    ):
        check(g, label="code")


def test_empty_and_missing_geometries() -> None:
    g = frame()
    g.loc[1, "geometry"] = None
    g.loc[2, "geometry"] = shapely.Polygon()
    with pytest.raises(ValidationError, match=r"grids has 2 empty geometries at rows \['1', '2'\]"):
        check(g)
    assert frame_problems(g, "grids", **OPTIONS, allow_empty=True) == []


def test_invalid_geometries_counted_and_truncated() -> None:
    g = frame()
    for i in range(7):
        g.loc[i, "geometry"] = bowtie(X0 + i * 0.01, Y0)
    with pytest.raises(
        ValidationError,
        match=r"grids has 7 invalid geometries at rows \['0', '1', '2', '3', '4'\] and 2 more "
        r"\(Self-intersection\[.*\); repair them with shapely\.make_valid",
    ):
        check(g)
    assert frame_problems(g, "grids", **OPTIONS, allow_invalid=True) == []


def test_lon_lat_outside_china() -> None:
    g = frame()
    g.loc[2, "geometry"] = shapely.box(Y0, X0, Y0 + 0.01, X0 + 0.01)  # lat/lon swapped
    with pytest.raises(
        CRSValidationError,
        match=r"grids has 1 geometry outside China \(72.004..137.8347°E, 0.8293..55.8271°N\) at "
        r"rows \['2'\]; extent lon 25.3000..115.0000, lat 25.3000..114.9100\. Is the CRS "
        r"EPSG:4490 right \(e\.g\. lon/lat swapped",
    ):
        check(g)
    assert frame_problems(g, "grids", **OPTIONS, china=False) == []


def test_projected_data_checked_only_when_asked() -> None:
    g = frame().to_crs("EPSG:4547")
    assert frame_problems(g, "grids", **OPTIONS, china=True) == []
    # metres labelled as degrees: checked by default, since the CRS is lon/lat
    wrong = g.set_crs("EPSG:4490", allow_override=True)
    with pytest.raises(CRSError, match=r"grids has 10 geometries outside China"):
        check(wrong)
    # degrees labelled as a projected CRS: only with china=True
    lonlat = frame().set_crs("EPSG:4547", allow_override=True)
    assert frame_problems(lonlat, "grids", **OPTIONS) == []
    with pytest.raises(CRSError, match=r"10 geometries outside China .* and 5 more"):
        check(lonlat, china=True)


def test_min_rows() -> None:
    with pytest.raises(ValidationError, match=r"layer 'grid' is empty"):
        validate_frame(frame(0), "layer 'grid'", min_rows=1)
    with pytest.raises(ValidationError, match=r"grids has 2 rows; at least 3 needed"):
        validate_frame(frame(2), "grids", min_rows=3)


def test_where_names_rows_or_codes() -> None:
    g = frame()
    mask = np.zeros(N, dtype=bool)
    mask[[1, 9]] = True
    assert where(mask, g) == "at rows ['1', '9']"
    assert where(mask, g, "code") == "for code ['G01', 'G09']"
    assert where(mask, g, "nope") == "at rows ['1', '9']"
    assert where(np.ones(N, bool), g, limit=2) == "at rows ['0', '1'] and 8 more"


def test_raise_problems_takes_plain_strings() -> None:
    raise_problems([], what="nothing")
    with pytest.raises(ValidationError, match=r"regroup\(\) input has 1 problem:\n  - k was 0"):
        raise_problems(["k was 0"], what="regroup() input")
    with pytest.raises(CRSValidationError):
        raise_problems(["k was 0", Problem("grids has no CRS", "crs")], what="x")


def test_repair_keeps_polygons_and_never_empties_a_feature() -> None:
    g = frame(3)
    g.loc[0, "geometry"] = bowtie(X0, Y0, 0.01)
    g.loc[1, "geometry"] = shapely.Polygon([(X0, Y0), (X0 + 0.01, Y0), (X0 + 0.02, Y0)])  # flat
    g.loc[2, "geometry"] = None
    fixed, rows, reasons = repair_invalid(g)
    assert list(rows) == [0, 1]
    assert len(reasons) == 2 and any(r.startswith("Self-intersection") for r in reasons)
    assert fixed.geometry[0].geom_type == "MultiPolygon"
    assert abs(fixed.geometry[0].area - bowtie(X0, Y0, 0.01).buffer(0).area * 2) < 1e-12
    assert not fixed.geometry[1].is_empty and "LineString" in fixed.geometry[1].geom_type
    assert fixed.geometry[2] is None
    assert fixed.geometry.is_valid[[0, 1]].all()
    assert not g.geometry[[0, 1]].is_valid.any()  # the input is not modified
    same, none, _ = repair_invalid(frame())
    assert len(none) == 0 and same is not None


# ---- hypothesis: k injected problems, k problems reported ----------------------------------


def _inject(g: gpd.GeoDataFrame, kind: str, row: int) -> None:
    if kind == "crs":
        g.set_crs(None, allow_override=True, inplace=True)
    elif kind == "column":
        del g["name"]
    elif kind == "dtype":
        g["households"] = g["households"].astype(str)
    elif kind == "value":
        g.loc[row, "population"] = -1.0
    elif kind == "null":
        g.loc[row, "code"] = None
    elif kind == "duplicate":
        g.loc[row, "code"] = "dup"
        g.loc[(row + 1) % N, "code"] = "dup"
    elif kind == "geometry":
        g.loc[row, "geometry"] = shapely.Point(X0, Y0)
    elif kind == "empty":
        g.loc[row, "geometry"] = shapely.Polygon()
    elif kind == "invalid":
        g.loc[row, "geometry"] = bowtie(X0, Y0)


KINDS = ["crs", "column", "dtype", "value", "null", "duplicate", "geometry", "empty", "invalid"]


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.sets(st.sampled_from(KINDS), min_size=1),
    rows=st.permutations(list(range(0, N, 2))),  # 5 rows two apart: a duplicate takes two
)
def test_every_injected_problem_is_reported(kinds, rows) -> None:
    g = frame().to_crs("EPSG:4547")  # projected: dropping the CRS drops no extent check
    row_of = {}
    free = iter(rows)
    for kind in sorted(kinds):
        row_of[kind] = next(free) if kind in ("value", "null", "duplicate") else None
    geometry_rows = iter(r + 1 for r in rows)  # odd rows for geometries
    for kind in sorted(kinds):
        if kind in ("geometry", "empty", "invalid"):
            row_of[kind] = next(geometry_rows)
        _inject(g, kind, row_of[kind])
    if "invalid" in kinds or "geometry" in kinds:
        g = g.set_geometry(g.geometry.values, crs=g.crs)  # keep the dtype after .loc
    with pytest.raises(ValidationError) as info:
        check(g)
    problems = info.value.problems
    assert sorted(p.kind for p in problems) == sorted(kinds)
    k = len(kinds)
    assert str(info.value).startswith(f"test input has {k} problem{'s' if k > 1 else ''}:")
    assert isinstance(info.value, CRSError) == ("crs" in kinds)
    for p in problems:
        if p.kind == "duplicate":
            assert "duplicate code ['dup'] (2 rows)" in p
        elif row_of.get(p.kind) is not None:
            assert f"at rows ['{row_of[p.kind]}']" in p, p
