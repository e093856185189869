"""Read one messy bureau layer into gridgeo's schema, in EPSG:4490 lon/lat.

A county's data comes from several bureaus: Shapefiles in CGCS2000
Gauss–Krüger with a GBK ``.dbf`` and no ``.cpg``, eastings with or without the
zone number, Chinese headers, Excel/CSV tables with 经度/纬度 in GCJ-02, web-map
drawings in GCJ-02 or BD-09, files with no ``.prj``. :func:`read_layer` reads
any of them, decides what it can from the bytes and the coordinates, refuses to
guess what it cannot (a file with no CRS is a :class:`~gridgeo.errors.CRSError`
naming the likely CRS), and lists everything it detected or mapped in
``gdf.attrs["read_report"]``.
"""

from __future__ import annotations

import codecs
import glob
import logging
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from gridgeo.crs import CHINA_BOX, crs_name, in_china, normalize_crs, to_wgs84
from gridgeo.errors import CRSError, InputError

__all__ = ["COLUMN_ALIASES", "TYPE_VALUES", "read_layer"]

log = logging.getLogger(__name__)

#: Source header → workspace column, tried in this order (first match wins per target).
COLUMN_ALIASES: dict[str, str] = {
    "名称": "name",
    "社区名称": "name",
    "村名": "name",
    "行政区划代码": "code",
    "代码": "code",
    "编码": "code",
    "户数": "households",
    "人口": "population",
    "人数": "population",
    "城乡类型": "type",
    "类型": "type",
    "Name": "name",  # a KML placemark's name
}

#: Chinese values of the ``type`` column → workspace values.
TYPE_VALUES: dict[str, str] = {
    "城镇": "urban",
    "城市": "urban",
    "社区": "urban",
    "农村": "rural",
    "乡村": "rural",
    "村": "rural",
}

#: Fields GDAL's KML drivers give every placemark, with the value each has when the file
#: does not set it: dropped when no row sets it (a web map's drawing carries none of them).
_KML_FIELDS: dict[str, tuple[Any, ...]] = {
    "description": ("",),
    "timestamp": (),
    "begin": (),
    "end": (),
    "altitudeMode": ("",),
    "tessellate": (-1,),
    "extrude": (0,),
    "visibility": (-1,),
    "drawOrder": (),
    "icon": ("",),
    "snippet": ("",),
}
_KML_SUFFIXES = (".kml", ".kmz")

_X_NAMES = ("lng", "lon", "long", "longitude", "x", "经度", "东经")
_Y_NAMES = ("lat", "latitude", "y", "纬度", "北纬")
_TABLE_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".xls"}
_GEOGRAPHIC_NAMES = ("wgs84", "cgcs2000", "gcj02", "bd09")


# --------------------------------------------------------------------------- encoding


def _dbf_text_chunks(data: bytes) -> list[bytes]:
    """The raw bytes of every character (``C``) field and field name of a dBASE file."""
    if len(data) < 32:
        return []
    n_records, header_len, record_len = struct.unpack("<IHH", data[4:12])
    fields = []  # (offset in record, length)
    offset = 1  # the deletion flag
    pos = 32
    while pos + 32 <= header_len and data[pos] != 0x0D:
        ftype = chr(data[pos + 11])
        flen = data[pos + 16]
        if ftype == "C":
            fields.append((offset, flen))
        offset += flen
        pos += 32
    # field names too: a Chinese header is as telling as a Chinese value
    chunks = [data[p : p + 11].split(b"\0")[0] for p in range(32, pos, 32)]
    for r in range(n_records):
        start = header_len + r * record_len
        record = data[start : start + record_len]
        if len(record) < record_len:
            break
        chunks.extend(record[o : o + n] for o, n in fields)
    return chunks


def _text_encoding(chunks: list[bytes]) -> str | None:
    """``None`` for pure ASCII, ``"UTF-8"`` if every chunk decodes so, else ``"GB18030"``.

    A chunk may end in the middle of a character: a Shapefile cuts field names
    (and long values) at a byte count, so an incomplete last character is allowed.
    """
    chunks = [c.rstrip(b" \0") for c in chunks]
    if all(c.isascii() for c in chunks):
        return None
    for chunk in chunks:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(chunk, final=False)
        except UnicodeDecodeError:
            return "GB18030"
    return "UTF-8"


def _shapefile_members(path: str, layer: str | None) -> dict[str, Callable[[], bytes]]:
    """Loaders of the parts of a Shapefile (plain or zipped), keyed by ``.dbf``, ``.cpg``, …

    Empty when ``path`` is not one Shapefile (or ``layer`` picks none in a zip).
    """
    p = Path(path)
    if p.suffix.lower() == ".shp":
        return {
            f.suffix.lower(): f.read_bytes
            for f in p.parent.glob(glob.escape(p.stem) + ".*")
            if f.stem == p.stem
        }
    if p.suffix.lower() == ".zip" and zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
        stems = {n[:-4] for n in names if n.lower().endswith(".dbf")}
        if layer is not None:
            stems = {s for s in stems if Path(s).name == layer}
        if len(stems) != 1:
            return {}
        stem = stems.pop()

        def loader(name: str) -> Callable[[], bytes]:
            def load() -> bytes:
                with zipfile.ZipFile(p) as zf:
                    return zf.read(name)

            return load

        return {
            n[len(stem) :].lower(): loader(n)
            for n in names
            if n.startswith(stem) and len(n) - len(stem) == 4
        }
    return {}


def _uncut_field_names(dbf: bytes, encoding: str) -> tuple[bytes, list[str]]:
    """Drop the partial last character of field names cut at 10 bytes by a Shapefile writer.

    GDAL truncates a long header to 10 bytes, which can split a Chinese
    character; such a name cannot be decoded at all. Returns the repaired
    ``.dbf`` bytes and the repaired names.
    """
    out = bytearray(dbf)
    header_len = struct.unpack("<H", dbf[8:10])[0]
    fixed = []
    pos = 32
    while pos + 32 <= header_len and out[pos] != 0x0D:
        raw = bytes(out[pos : pos + 11]).split(b"\0")[0]
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            text = decoder.decode(raw, final=False)
        except UnicodeDecodeError:
            text = None
        pending = decoder.getstate()[0] if text is not None else b""
        if pending:
            kept = len(raw) - len(pending)
            out[pos + kept : pos + 11] = b"\0" * (11 - kept)
            fixed.append(str(text))
        pos += 32
    return bytes(out), fixed


# --------------------------------------------------------------------------- CRS


def _gk(epsg: int | None) -> tuple[int, int, bool, int] | None:
    """``(degrees, zone, prefixed, central meridian)`` of a CGCS2000 Gauss–Krüger EPSG code."""
    if epsg is None:
        return None
    if 4491 <= epsg <= 4501:
        return 6, epsg - 4491 + 13, True, 75 + 6 * (epsg - 4491)
    if 4502 <= epsg <= 4512:
        return 6, epsg - 4502 + 13, False, 75 + 6 * (epsg - 4502)
    if 4513 <= epsg <= 4533:
        return 3, epsg - 4513 + 25, True, 75 + 3 * (epsg - 4513)
    if 4534 <= epsg <= 4554:
        return 3, epsg - 4534 + 25, False, 75 + 3 * (epsg - 4534)
    return None


def _gk_epsg(
    degrees: int, *, zone: int | None = None, cm: int | None = None, prefixed: bool
) -> int:
    if zone is None:
        assert cm is not None
        zone = (cm - 75) // degrees + (25 if degrees == 3 else 13)
    if degrees == 3:
        return (4513 if prefixed else 4534) + zone - 25
    return (4491 if prefixed else 4502) + zone - 13


def _prefixed_zone(easting: float) -> tuple[int, int] | None:
    """``(degrees, zone)`` read from the zone number in front of an easting."""
    zone = int(easting // 1_000_000)
    if 25 <= zone <= 45:
        return 3, zone
    if 13 <= zone <= 23:
        return 6, zone
    return None


def _sample(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return float(np.median(x)), float(np.median(y))


def _suggest(x: np.ndarray, y: np.ndarray, *, table: bool) -> str:
    """Name the likely CRS of coordinates ``x``/``y`` (never used without the caller's word)."""
    if x.size == 0:
        return "the layer has no coordinates to guess from; pass crs="
    ex, ny = _sample(x, y)
    if np.all(np.abs(x) <= 180) and np.all(np.abs(y) <= 90):
        if bool(np.all(in_china(x, y))):
            phone = "'gcj02' if the coordinates come from phones or Amap/Tencent, 'bd09' from Baidu"
            if table:
                return (
                    f"lon/lat like ({ex:.5f}, {ny:.5f}) inside China: a phone or web-map table is "
                    f"usually GCJ-02, pass crs='gcj02' ('cgcs2000' for surveyed lon/lat, 'bd09' "
                    "for Baidu)"
                )
            return (
                f"lon/lat like ({ex:.5f}, {ny:.5f}) inside China look like CGCS2000; pass "
                f"crs='cgcs2000' (or {phone})"
            )
        return f"lon/lat like ({ex:.5f}, {ny:.5f}) look like WGS84; pass crs='wgs84'"
    if 0 <= ny <= 6_500_000 and ex >= 1_000_000:
        found = _prefixed_zone(ex)
        if found is not None:
            degrees, zone = found
            epsg = _gk_epsg(degrees, zone=zone, prefixed=True)
            return (
                f"eastings like {ex:.0f} look like CGCS2000 {degrees}-degree GK zone {zone} "
                f"with zone number (EPSG:{epsg}); pass crs='EPSG:{epsg}'"
            )
    if 0 <= ny <= 6_500_000 and 0 < ex < 1_000_000:
        return (
            f"eastings like {ex:.0f} look like CGCS2000 3-degree GK without zone number "
            "(EPSG:4534–4554), but the zone cannot be read from them; pass crs= the one of your "
            "central meridian, e.g. crs='EPSG:4547' for 114°E"
        )
    return f"coordinates like ({ex:.1f}, {ny:.1f}) match no CRS gridgeo can guess; pass crs="


def _check_gk(x: np.ndarray, y: np.ndarray, src: pyproj.CRS, where: str) -> None:
    """Refuse GK eastings read in the wrong member of the prefixed/unprefixed pair or zone."""
    info = _gk(src.to_epsg())
    if info is None or x.size == 0:
        return
    degrees, zone, prefixed, cm = info
    ex, _ = _sample(x, y)
    name = f"EPSG:{src.to_epsg()}"
    if prefixed and ex < 1_000_000:
        right = _gk_epsg(degrees, cm=cm, prefixed=False)
        raise CRSError(
            f"{where}: eastings like {ex:.0f} have no zone number, but {name} expects them "
            f"prefixed with {zone}; the points would land far outside China; "
            f"pass crs='EPSG:{right}' (the same zone without zone number)"
        )
    if prefixed and int(ex // 1_000_000) != zone:
        found = _prefixed_zone(ex)
        hint = ""
        if found is not None:
            right = _gk_epsg(found[0], zone=found[1], prefixed=True)
            hint = f"; they look like zone {found[1]}: pass crs='EPSG:{right}'"
        raise CRSError(
            f"{where}: eastings like {ex:.0f} do not start with zone {zone} of {name}{hint}"
        )
    if not prefixed and ex >= 1_000_000:
        found = _prefixed_zone(ex)
        hint = ""
        if found is not None:
            right = _gk_epsg(found[0], zone=found[1], prefixed=True)
            hint = (
                f"; they carry zone number {found[1]} "
                f"({found[0]}-degree GK with zone number): pass crs='EPSG:{right}'"
            )
        raise CRSError(
            f"{where}: eastings like {ex:.0f} are too large for {name} (no zone number); "
            f"the points would land far outside China{hint}"
        )


def _coords(geoms: np.ndarray) -> np.ndarray:
    coords = shapely.get_coordinates(geoms)
    return coords[np.all(np.isfinite(coords), axis=1)]


def _to_cgcs2000(
    gdf: gpd.GeoDataFrame, crs: Any, where: str, report: list[str], *, table: bool
) -> gpd.GeoDataFrame:
    file_crs = gdf.crs
    xy = _coords(gdf.geometry.values)
    if crs is None and file_crs is None:
        hint = _suggest(*xy.T, table=table)
        raise CRSError(f"{where} has no CRS and no crs= was passed; {hint}")
    if crs is not None:
        src = normalize_crs(crs)
        if file_crs is not None and normalize_crs(file_crs) != src:
            report.append(f"crs: {crs_name(src)} as passed (the file says {crs_name(file_crs)})")
        else:
            report.append(f"crs: {crs_name(src)} as passed")
    else:
        src = normalize_crs(file_crs)
        report.append(f"crs: {crs_name(src)} from the file")
    geographic = isinstance(src, str) or src.is_geographic
    if (
        geographic
        and xy.size
        and not (np.all(np.abs(xy[:, 0]) <= 180) and np.all(np.abs(xy[:, 1]) <= 90))
    ):
        raise CRSError(
            f"{where}: coordinates are not lon/lat, so {crs_name(src)} cannot be right; "
            + _suggest(*xy.T, table=table)
        )
    if isinstance(src, pyproj.CRS):
        _check_gk(xy[:, 0], xy[:, 1], src, where)
    geoms = gdf.geometry.values
    if src not in ("wgs84", "cgcs2000"):
        if isinstance(src, pyproj.CRS):
            geoms = gpd.GeoSeries(geoms, crs=src).to_crs("EPSG:4490").values
        else:  # gcj02, bd09: vertex by vertex

            def convert(c: np.ndarray) -> np.ndarray:
                return np.column_stack(to_wgs84(c[:, 0], c[:, 1], src))

            geoms = shapely.transform(np.asarray(geoms), convert)
        report.append(f"crs: converted {crs_name(src)} → EPSG:4490")
    out = gdf.copy()
    out = out.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=None))
    out = out.set_crs("EPSG:4490", allow_override=True)
    lonlat = _coords(out.geometry.values)
    if lonlat.size and not bool(np.all(in_china(lonlat[:, 0], lonlat[:, 1]))):
        n = int(np.sum(~in_china(lonlat[:, 0], lonlat[:, 1])))
        msg = f"crs: {n} vertices lie outside China's box {CHINA_BOX} in EPSG:4490"
        log.warning("%s: %s", where, msg)
        report.append(msg)
    return out


# --------------------------------------------------------------------------- tables


def _csv_encoding(path: Path, encoding: str | None, report: list[str]) -> str:
    if encoding is not None:
        report.append(f"encoding: {encoding} as passed")
        return encoding
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        report.append("encoding: UTF-8 (byte-order mark)")
        return "utf-8-sig"
    found = _text_encoding(raw.splitlines())
    if found is None:
        return "ascii"
    report.append(f"encoding: {found} (detected from the bytes)")
    return found


def _find_column(cols: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {str(c).strip().lower(): c for c in cols}
    for n in names:
        if n in lowered:
            return lowered[n]
    return None


def _read_table(
    path: Path, encoding: str | None, columns: Mapping[str, str], where: str, report: list[str]
) -> gpd.GeoDataFrame:
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path)
        else:
            enc = _csv_encoding(path, encoding, report)
            sep = "\t" if path.suffix.lower() == ".tsv" else None
            df = pd.read_csv(path, encoding=enc, sep=sep, engine="python")
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(f"cannot read table {where}: {err}") from err
    df.columns = [str(c).strip() for c in df.columns]
    cols = list(df.columns)
    named_x = [s for s, t in columns.items() if t.lower() in _X_NAMES]
    named_y = [s for s, t in columns.items() if t.lower() in _Y_NAMES]
    xcol = named_x[0] if named_x else _find_column(cols, _X_NAMES)
    ycol = named_y[0] if named_y else _find_column(cols, _Y_NAMES)
    missing = [
        f"{axis} ({'named ' + repr(c) if c else 'one of ' + '/'.join(names)})"
        for axis, c, names in (("x", xcol, _X_NAMES), ("y", ycol, _Y_NAMES))
        if c is None or c not in cols
    ]
    if missing:
        raise InputError(
            f"{where}: no coordinate column for {' and '.join(missing)}; the columns are {cols}; "
            "name them with columns={'<x column>': 'x', '<y column>': 'y'}"
        )
    report.append(f"coordinates: x from column {xcol!r}, y from column {ycol!r}")
    x = pd.to_numeric(df[xcol], errors="coerce")
    y = pd.to_numeric(df[ycol], errors="coerce")
    bad = df.index[(x.isna() & df[xcol].notna()) | (y.isna() & df[ycol].notna())]
    if len(bad):
        raise InputError(
            f"{where}: columns {xcol!r}/{ycol!r} hold non-numbers in rows {list(bad[:10])}, "
            f"e.g. {df.loc[bad[0], xcol]!r}, {df.loc[bad[0], ycol]!r}"
        )
    geometry = gpd.points_from_xy(x, y)  # a row without coordinates gets an empty point
    return gpd.GeoDataFrame(df.drop(columns=[xcol, ycol]), geometry=geometry, crs=None)


# --------------------------------------------------------------------------- vector files


def _read_vector(
    path: str, layer: str | None, encoding: str | None, where: str, report: list[str]
) -> gpd.GeoDataFrame:
    source = path
    if path.lower().endswith(".zip") and not path.startswith("/vsi"):
        source = f"/vsizip/{os.path.abspath(path)}"
    try:
        layers = pyogrio.list_layers(source)
    except Exception as err:  # pyogrio raises its own DataSourceError and friends
        raise InputError(f"cannot read {where}: {err}") from err
    names = [str(n) for n in layers[:, 0]]
    if layer is None and len(names) > 1:
        raise InputError(f"{where} has {len(names)} layers {names}; pass layer= one of them")
    if layer is not None and layer not in names:
        raise InputError(f"{where} has no layer {layer!r}; its layers are {names}")
    members = _shapefile_members(path, layer)
    if encoding is None and ".dbf" in members and ".cpg" not in members:
        encoding = _text_encoding(_dbf_text_chunks(members[".dbf"]()))
        if encoding is not None:
            report.append(f"encoding: {encoding} (.dbf without .cpg, detected from its bytes)")
    elif encoding is not None:
        report.append(f"encoding: {encoding} as passed")
    fixed: list[str] = []
    if ".dbf" in members and ".cpg" not in members and encoding is not None:
        try:
            dbf, fixed = _uncut_field_names(members[".dbf"](), encoding)
        except LookupError as err:
            raise InputError(f"unknown encoding {encoding!r} for {where}") from err
    try:
        if fixed:
            report.extend(
                f"column: header {name!r} was cut mid-character at 10 bytes; the partial "
                "character is dropped"
                for name in fixed
            )
            with tempfile.TemporaryDirectory() as folder:
                for suffix, load in members.items():
                    data = dbf if suffix == ".dbf" else load()
                    (Path(folder) / f"layer{suffix}").write_bytes(data)
                gdf = pyogrio.read_dataframe(Path(folder) / "layer.shp", encoding=encoding)
        else:
            gdf = pyogrio.read_dataframe(source, layer=layer, encoding=encoding)
    except Exception as err:
        raise InputError(f"cannot read {where}: {err}") from err
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(f"{where} has no geometry; for a table give coordinate columns")
    if path.lower().endswith(_KML_SUFFIXES):
        gdf = _drop_unset_kml_fields(gdf, report)
    return gdf


def _drop_unset_kml_fields(gdf: gpd.GeoDataFrame, report: list[str]) -> gpd.GeoDataFrame:
    """Drop the KML drivers' standard placemark fields that no row of the file sets."""
    unset = [
        col
        for col, defaults in _KML_FIELDS.items()
        if col in gdf.columns and bool((gdf[col].isna() | gdf[col].isin(defaults)).all())
    ]
    if unset:
        report.append(f"columns: KML placemark fields that no row sets, dropped: {unset}")
    return gdf.drop(columns=unset)


# --------------------------------------------------------------------------- columns


def _map_columns(
    gdf: gpd.GeoDataFrame, columns: Mapping[str, str], where: str, report: list[str]
) -> gpd.GeoDataFrame:
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    rename: dict[str, str] = {}
    for src, dst in columns.items():
        if dst.lower() in _X_NAMES + _Y_NAMES and src not in cols:
            continue  # a coordinate column, already used
        if src not in cols:
            raise InputError(
                f"{where}: columns= names {src!r}, which is not a column; the columns are {cols}"
            )
        rename[src] = dst
        report.append(f"column: {src!r} → {dst!r} as passed")
    taken = set(rename.values()) | {c for c in cols if c not in rename}
    rank = {alias: i for i, alias in enumerate(COLUMN_ALIASES)}
    # in the order of COLUMN_ALIASES, so that e.g. 社区名称 wins 'name' over a KML's Name
    for col in sorted(cols, key=lambda c: rank.get(c.strip(), len(rank))):
        if col in rename:
            continue
        key = col.strip()
        target = COLUMN_ALIASES.get(key)
        how = ""
        if target is None and len(key) >= 3:  # a Shapefile truncates headers to 10 bytes
            target = next((t for s, t in COLUMN_ALIASES.items() if s.startswith(key)), None)
            how = " (truncated header)"
        if target is None:
            continue
        if target in taken:
            report.append(f"column: {col!r} left alone, {target!r} is already a column")
            continue
        rename[col] = target
        taken.add(target)
        report.append(f"column: {col!r} → {target!r}{how}")
    out = gdf.rename(columns=rename)
    if "type" in out.columns and pd.api.types.is_string_dtype(out["type"]):
        values = out["type"].dropna().astype(str).str.strip()
        counts = values[values.isin(TYPE_VALUES.keys())].value_counts()
        if len(counts):
            out["type"] = out["type"].map(
                lambda v: TYPE_VALUES.get(str(v).strip(), v) if isinstance(v, str) else v
            )
            for value, n in counts.items():
                report.append(f"value: type {value!r} → {TYPE_VALUES[value]!r} ({n} rows)")
            left = sorted(set(values) - set(TYPE_VALUES) - {"urban", "rural"})
            if left:
                report.append(f"value: type values left unmapped: {left}")
    if "code" in out.columns and pd.api.types.is_numeric_dtype(out["code"]):
        code = out["code"]
        whole = code.dropna()
        if bool(np.all(np.mod(whole, 1) == 0)):
            out["code"] = code.map(lambda v: pd.NA if pd.isna(v) else str(int(v))).astype(object)
            report.append("value: code numbers → strings")
    return out


# --------------------------------------------------------------------------- API


def read_layer(
    path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    crs: Any = None,
    encoding: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame:
    """Read a vector file or a coordinate table into a GeoDataFrame in EPSG:4490.

    Parameters
    ----------
    path
        Any vector file GDAL reads (Shapefile, zipped Shapefile, GeoJSON,
        KML/KMZ, GeoPackage, FileGDB, …), or a CSV/XLSX table with coordinate
        columns (``lng/lon/longitude/x/经度/东经`` and
        ``lat/latitude/y/纬度/北纬``, any case).
    layer
        Layer to read from a multi-layer source (required when there are
        several).
    crs
        CRS of the coordinates: any name of :func:`gridgeo.crs.normalize_crs`
        (``"cgcs2000"``, ``"gcj02"``, ``"bd09"``, an EPSG code, …). Overrides the
        file's own CRS (a web-map GeoJSON says WGS84 but is often GCJ-02).
        Without it the file's CRS is used; a file without one is an error.
    encoding
        Text encoding. Default: detected, a ``.dbf`` without ``.cpg`` or a CSV
        whose text bytes are not UTF-8 is read as GB18030.
    columns
        Source column → target column, applied before the built-in Chinese
        header mapping (:data:`COLUMN_ALIASES`). Targets ``"x"``/``"y"`` (or
        ``"lon"``/``"lat"``) name a table's coordinate columns.

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:4490 lon/lat, ``attrs["read_report"]`` a list of strings: the
        encoding, CRS, coordinate columns, column renames and value maps applied.

    Raises
    ------
    InputError
        If the file cannot be read, has several layers and no ``layer=``, a
        table lacks coordinate columns, or ``columns=`` names a missing column.
    CRSError
        If the data has no CRS and no ``crs=`` is given (the message names the
        likely CRS), if ``crs`` is unknown, or if Gauss–Krüger eastings do not
        fit the CRS (prefixed vs unprefixed, or the wrong zone).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gridgeo.io import read_layer
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "points.csv").write_text(
    ...     "名称,经度,纬度,类型\\n东门社区,114.91,25.31,城镇\\n大塘村,114.93,25.32,农村\\n",
    ...     encoding="gbk")
    >>> gdf = read_layer(folder / "points.csv", crs="cgcs2000")
    >>> gdf[["name", "type"]].values.tolist(), gdf.crs.to_epsg()
    ([['东门社区', 'urban'], ['大塘村', 'rural']], 4490)
    >>> for line in gdf.attrs["read_report"]:
    ...     print(line)
    encoding: GB18030 (detected from the bytes)
    coordinates: x from column '经度', y from column '纬度'
    crs: cgcs2000 as passed
    column: '名称' → 'name'
    column: '类型' → 'type'
    value: type '城镇' → 'urban' (1 rows)
    value: type '农村' → 'rural' (1 rows)
    >>> read_layer(folder / "points.csv")
    Traceback (most recent call last):
    ...
    gridgeo.errors.CRSError: ...points.csv' has no CRS ... pass crs='gcj02' ...
    """
    where = f"{os.fspath(path)!r}"
    p = Path(os.fspath(path))
    report: list[str] = []
    columns = dict(columns or {})
    if not str(p).startswith("/vsi") and not p.exists():
        raise InputError(f"no such file {where}")
    table = p.suffix.lower() in _TABLE_SUFFIXES
    if table:
        gdf = _read_table(p, encoding, columns, where, report)
    else:
        gdf = _read_vector(os.fspath(path), layer, encoding, where, report)
    gdf = _to_cgcs2000(gdf, crs, where, report, table=table)
    gdf = _map_columns(gdf, columns, where, report)
    for line in report:
        log.info("%s: %s", where, line)
    gdf.attrs["read_report"] = report
    return gdf
