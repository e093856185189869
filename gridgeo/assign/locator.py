"""Locate points in many zone layers at once, exactly.

Each layer gets a lookup table: a regular lattice of cells over its extent.
A cell that meets exactly one zone and lies strictly inside it answers every
point in it at once; a cell that meets no zone answers "outside"; the points
in the remaining (boundary) cells are tested exactly against the few zones
that meet their cell: a compiled crossing test against the zone's edges in
that cell, from the point to a reference point whose status shapely decided
once; where floating point cannot be sure (a point on or within ~1e-14 of an
edge), ``shapely.covers`` decides. So the answer always equals a brute-force
``covers`` test.

**Boundary rule.** A point covered by several zones of a layer (on a shared
edge or vertex, or where zones overlap) gets the zone whose key sorts first.

Examples
--------
>>> import geopandas as gpd, shapely
>>> grids = gpd.GeoDataFrame({"code": ["A", "B"], "name": ["west", "east"]},
...     geometry=[shapely.box(115, 25, 115.1, 25.1), shapely.box(115.1, 25, 115.2, 25.1)],
...     crs="EPSG:4490")
>>> loc = Locator({"grid": grids})
>>> loc.locate([115.05, 115.1, 115.3], [25.05, 25.05, 25.05])["grid"].tolist()
['A', 'A', nan]
>>> loc.locate_one(115.15, 25.05)["grid"]
{'code': 'B', 'name': 'east'}
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from gridgeo._validate import Problem, frame_problems, raise_problems
from gridgeo.assign._edges import CellEdges, cell_edges
from gridgeo.codes import DEPARTMENTS
from gridgeo.crs import from_wgs84, metric_crs, to_wgs84
from gridgeo.errors import CRSError, InputError

__all__ = ["Locator"]

log = logging.getLogger(__name__)

_EMPTY = -1
_BOUNDARY = -2
_FORMAT = "gridgeo-locator-2"
#: Locators unpickled in this process (diagnostics: a dask worker should receive one once).
UNPICKLED = {"count": 0}
_KERNELS = "gridgeo.assign._kernels"
_kernel_module: ModuleType | None = None  # set once the import has completed


def _launch_guard() -> Any:
    """:func:`gridgeo._numba.launch_guard`, imported with the kernels (numba) on first use."""
    from gridgeo._numba import launch_guard

    return launch_guard()


def _kernels() -> ModuleType:
    """The compiled kernels, imported on first use: a service starts without numba."""
    global _kernel_module
    if _kernel_module is None:
        import importlib

        # concurrent callers wait on the import lock for one complete module
        _kernel_module = importlib.import_module(_KERNELS)
    return _kernel_module


#: Warm-ups running in this process (a server's background load of the kernels).
_warming = {"count": 0}


def _exact_one_ready() -> bool:
    """May a single-point lookup call the compiled kernel without waiting for numba?

    Yes once it is loaded; also once the kernels module is imported (a batch
    lookup did it) and no warm-up is loading it in the background, since then
    the call only loads this kernel from numba's cache, once. No while nothing
    has imported numba, or a warm-up is under way: shapely answers then.
    """
    mod = _kernel_module
    if mod is None:
        return False
    return bool(mod.exact_one.overloads) or _warming["count"] == 0


@dataclass(frozen=True)
class _Layer:
    """One layer's zones (sorted by key) and its lookup table, in WGS84 lon/lat."""

    keys: NDArray[np.object_]
    geoms: NDArray[np.object_]
    attrs: pd.DataFrame  # every column of the layer but the geometry, the key column too
    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int
    state: NDArray[np.int32]  # zone position, _EMPTY or _BOUNDARY, per cell (row-major y, x)
    cand_ptr: NDArray[np.int64]  # CSR over cells: candidate zones of each boundary cell
    cand: NDArray[np.int32]
    edges: CellEdges

    @property
    def dtype(self) -> pd.CategoricalDtype:
        """Categorical dtype of the keys, in key order."""
        return pd.CategoricalDtype(pd.Index(self.keys, dtype=str))

    @property
    def records(self) -> list[dict[str, Any]]:
        """Attributes of each zone as plain Python values."""
        return [
            {str(k): _plain(v) for k, v in row.items()} for row in self.attrs.to_dict("records")
        ]

    @classmethod
    def build(
        cls, keys: NDArray[np.object_], geoms: NDArray[np.object_], attrs: pd.DataFrame, cells: int
    ) -> _Layer:
        order = np.argsort(keys.astype(str), kind="stable")
        keys, geoms = keys[order], geoms[order]
        attrs = attrs.iloc[order].reset_index(drop=True)
        x0, y0, x1, y1 = shapely.total_bounds(geoms)
        pad = max(x1 - x0, y1 - y0) * 1e-6 + 1e-9
        x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
        # cells of about the same size in both directions
        aspect = (x1 - x0) / (y1 - y0)
        nx = max(1, round(np.sqrt(cells * aspect)))
        ny = max(1, round(cells / nx))
        dx, dy = (x1 - x0) / nx, (y1 - y0) / ny
        gx, gy = np.meshgrid(np.arange(nx), np.arange(ny))
        ix, iy = gx.ravel(), gy.ravel()
        boxes = shapely.box(x0 + ix * dx, y0 + iy * dy, x0 + (ix + 1) * dx, y0 + (iy + 1) * dy)
        shapely.prepare(geoms)
        tree = shapely.STRtree(geoms)
        bi, zi = tree.query(boxes, predicate="intersects")
        ncell = nx * ny
        count = np.bincount(bi, minlength=ncell)
        state = np.full(ncell, _EMPTY, dtype=np.int32)
        single = count[bi] == 1
        inside = np.zeros(len(bi), dtype=bool)
        inside[single] = shapely.contains_properly(geoms[zi[single]], boxes[bi[single]])
        state[bi[inside]] = zi[inside]
        boundary = (count > 0) & (state == _EMPTY)
        state[boundary] = _BOUNDARY
        keep = boundary[bi]
        bi, zi = bi[keep], zi[keep]
        order2 = np.lexsort((zi, bi))
        bi, zi = bi[order2], zi[order2]
        cand_ptr = np.zeros(ncell + 1, dtype=np.int64)
        np.cumsum(np.bincount(bi, minlength=ncell), out=cand_ptr[1:])
        cand = zi.astype(np.int32)
        return cls(
            keys,
            geoms,
            attrs,
            float(x0),
            float(y0),
            float(dx),
            float(dy),
            int(nx),
            int(ny),
            state,
            cand_ptr,
            cand,
            cell_edges(geoms, x0, y0, dx, dy, nx, ny, cand_ptr, cand),
        )

    def cell(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int64]:
        cx = np.floor((x - self.x0) / self.dx)
        cy = np.floor((y - self.y0) / self.dy)
        ok = (cx >= 0) & (cx < self.nx) & (cy >= 0) & (cy < self.ny)
        return np.where(ok, cy * self.nx + cx, -1).astype(np.int64)

    def lookup(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.int64]:
        """Zone position of each point, or -1 outside every zone (and for NaN)."""
        n = len(x)
        out = np.empty(n, dtype=np.int64)
        cell = np.empty(n, dtype=np.int64)
        with _launch_guard():
            _kernels().table_lookup(
                x, y, self.x0, self.y0, self.dx, self.dy, self.nx, self.ny, self.state, out, cell
            )
        todo = np.flatnonzero(out == _BOUNDARY)
        if len(todo):
            out[todo] = self.exact(x[todo], y[todo], cell[todo])
        return out

    def exact(
        self, x: NDArray[np.float64], y: NDArray[np.float64], cells: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """Exact test of boundary-cell points: compiled, with shapely where it is unsure."""
        e = self.edges
        out = np.empty(len(x), dtype=np.int64)
        with _launch_guard():
            _kernels().exact_lookup(
                x, y, cells, self.cand_ptr, self.cand, e.edge_ptr, e.edges, e.ref, e.ref_in, out
            )
        unsure = np.flatnonzero(out == _BOUNDARY)
        if len(unsure):
            out[unsure] = self.covers(x[unsure], y[unsure], cells[unsure])
        return out

    def covers(
        self, x: NDArray[np.float64], y: NDArray[np.float64], cells: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """``shapely.covers`` test of points against the candidate zones of their cells."""
        start, stop = self.cand_ptr[cells], self.cand_ptr[cells + 1]
        n = stop - start
        pidx = np.repeat(np.arange(len(x)), n)
        offs = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        zidx = self.cand[np.repeat(start, n) + offs]
        hit = shapely.covers(self.geoms[zidx], shapely.points(x[pidx], y[pidx]))
        # candidates are sorted by zone position = key order: the first hit wins
        none = np.iinfo(np.int64).max
        best = np.full(len(x), none, dtype=np.int64)
        np.minimum.at(best, pidx[hit], zidx[hit])
        return np.where(best == none, -1, best)

    def warm_up(self) -> None:
        """Run every kernel once, on a point of a boundary cell (if the layer has one)."""
        cells = np.flatnonzero(self.state == _BOUNDARY)
        if not len(cells):
            return
        c = int(cells[0])
        x = self.x0 + (c % self.nx + 0.5) * self.dx
        y = self.y0 + (c // self.nx + 0.5) * self.dy
        self.lookup(np.array([x]), np.array([y]))
        e = self.edges
        _kernels().exact_one(
            x, y, c, self.cand_ptr, self.cand, e.edge_ptr, e.edges, e.ref, e.ref_in
        )

    def lookup_one(self, x: float, y: float) -> int:
        """Zone position of one point, or -1: no numpy arrays on the way."""
        if not (x == x and y == y):  # NaN
            return -1
        # floor of the rounded quotient, as the kernels and the edge lists compute it:
        # ``(x - x0) // dx`` floors the exact quotient and can name the neighbouring cell,
        # whose edge lists do not cover this point
        cx = math.floor((x - self.x0) / self.dx)
        cy = math.floor((y - self.y0) / self.dy)
        if cx < 0 or cy < 0 or cx >= self.nx or cy >= self.ny:
            return -1
        c = cy * self.nx + cx
        s = int(self.state[c])
        if s != _BOUNDARY:
            return s
        if _exact_one_ready():
            e = self.edges
            z = int(
                _kernels().exact_one(
                    x, y, c, self.cand_ptr, self.cand, e.edge_ptr, e.edges, e.ref, e.ref_in
                )
            )
        else:  # a process's first lookups do not wait ~0.5 s for numba: shapely answers
            z = _BOUNDARY
        if z == _BOUNDARY:  # on or too near an edge: shapely decides
            z = int(self.covers(np.array([x]), np.array([y]), np.array([c], dtype=np.int64))[0])
        return z


def _layer_problems(name: str, gdf: gpd.GeoDataFrame, key: str) -> list[Problem]:
    # no China-extent check: a locator answers for any zones, e.g. test boxes at 0°E 0°N
    return frame_problems(
        gdf, f"layer '{name}'", columns={key: "the key= column"}, not_null=[key], unique=[key],
        label=key, geometry="polygon", min_rows=1, china=False,
    )  # fmt: skip


class Locator:
    """Point → zone lookup over several layers, built once, then immutable and thread-safe.

    Parameters
    ----------
    layers
        Layer name → GeoDataFrame of (multi)polygons, in any CRS.
    key
        Key column, one name for all layers or a dict per layer (default
        ``"code"``): :meth:`locate` answers with its values. Every column
        keeps its name in :meth:`locate_one`'s records.
    nearest
        Metres: a point outside every zone of a layer but within this
        distance gets the nearest zone (GPS error off a coast or a county
        line). ``None`` (default) never snaps.
    cells
        Lookup-table cells per layer (more: faster queries, slower build).

    Raises
    ------
    ValidationError
        Naming every problem of every layer at once: a missing, null or
        duplicate key, no rows, an invalid, empty or non-polygon geometry, or
        a missing CRS (then it is also a :class:`~gridgeo.errors.CRSError`).
    InputError
        If no layer is given.

    Examples
    --------
    See the module docstring.
    """

    def __init__(
        self,
        layers: Mapping[str, gpd.GeoDataFrame],
        *,
        key: str | Mapping[str, str] = "code",
        nearest: float | None = None,
        cells: int = 65_536,
    ) -> None:
        if not layers:
            raise InputError("no layers given; pass e.g. {'grid': grids}")
        self._layers: dict[str, _Layer] = {}
        self._key: dict[str, str] = {}
        self.nearest = _check_nearest(nearest)
        self._metric: dict[str, Any] = {}
        self._lock = threading.Lock()
        keys = {n: key if isinstance(key, str) else key.get(n, "code") for n in layers}
        raise_problems(
            [p for n, gdf in layers.items() for p in _layer_problems(n, gdf, keys[n])],
            what="Locator layers",
        )
        for name, gdf in layers.items():
            k = keys[name]
            wgs = gdf.to_crs("EPSG:4326")
            attrs = pd.DataFrame(wgs.drop(columns=wgs.geometry.name)).astype(object)
            attrs = attrs.where(pd.notna(attrs), None)
            # the key column keeps its name: key="name" answers {"code": …, "name": …}
            self._key[name] = k
            self._layers[name] = _Layer.build(
                wgs[k].astype(str).to_numpy(dtype=object), wgs.geometry.to_numpy(), attrs, cells
            )
        self._records = {n: lay.records for n, lay in self._layers.items()}
        log.info("locator built over layers %s", list(self._layers))

    @property
    def layer_names(self) -> list[str]:
        """Names of the layers, in order."""
        return list(self._layers)

    def keys(self, layer: str) -> NDArray[np.object_]:
        """The zone keys of ``layer`` (what :meth:`locate` answers with), in the locator's order.

        Raises
        ------
        InputError
            For an unknown layer.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> g = gpd.GeoDataFrame({"code": ["B", "A"]},
        ...     geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs="EPSG:4326")
        >>> Locator({"grid": g}).keys("grid").tolist()
        ['A', 'B']
        """
        if layer not in self._layers:
            raise InputError(f"no layer {layer!r}; the layers are {self.layer_names}")
        return np.asarray(self._layers[layer].keys, dtype=object)

    def _layer(self, layer: str) -> _Layer:
        try:
            return self._layers[layer]
        except KeyError:
            raise InputError(
                f"no layer {layer!r}; the layers are {self.layer_names}"
            ) from None

    def key_column(self, layer: str) -> str:
        """The column whose values :meth:`locate` answers with in ``layer``.

        Raises
        ------
        InputError
            If there is no such layer.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> grids = gpd.GeoDataFrame({"code": ["A"], "name": ["west"]},
        ...     geometry=[shapely.box(115, 25, 115.1, 25.1)], crs="EPSG:4490")
        >>> Locator({"grid": grids}, key="name").key_column("grid")
        'name'
        """
        self._layer(layer)
        return self._key[layer]

    def attributes(self, layer: str) -> pd.DataFrame:
        """The zones of ``layer`` without geometry, indexed by key, in key order.

        The rows are in the order of the categories of :meth:`locate`'s column
        ``layer``, so ``result[layer].cat.codes`` indexes them (``-1``: none).

        Raises
        ------
        InputError
            If there is no such layer.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> grids = gpd.GeoDataFrame({"code": ["B", "A"], "name": ["east", "west"]},
        ...     geometry=[shapely.box(115.1, 25, 115.2, 25.1), shapely.box(115, 25, 115.1, 25.1)],
        ...     crs="EPSG:4490")
        >>> Locator({"grid": grids}).attributes("grid")["name"].tolist()
        ['west', 'east']
        """
        lay = self._layer(layer)
        return lay.attrs.set_axis(pd.Index(lay.keys), axis=0).copy()

    @classmethod
    def from_workspace(
        cls,
        source: str | os.PathLike[str] | Mapping[str, gpd.GeoDataFrame],
        *,
        nearest: float | None = None,
    ) -> Locator:
        """Build from a workspace (a GeoPackage path or a dict of layers).

        Layers: ``grid`` (from ``grids``), ``community``, ``town``, ``beat`` and
        one layer per department of ``zones``, named as in
        :data:`gridgeo.codes.DEPARTMENTS` (e.g. zones of 消防 → ``fire``).

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> zones = gpd.GeoDataFrame({"department": ["消防"], "code": ["XF1"], "name": ["一区"]},
        ...     geometry=[shapely.box(115, 25, 116, 26)], crs="EPSG:4490")
        >>> Locator.from_workspace({"zones": zones}).layer_names
        ['fire']
        """
        if isinstance(source, (str, os.PathLike)):
            from gridgeo.io import read_workspace

            source = read_workspace(source, layers=[])
        names = {"grids": "grid", "communities": "community", "towns": "town", "beats": "beat"}
        layers: dict[str, gpd.GeoDataFrame] = {
            short: source[long] for long, short in names.items() if long in source
        }
        if "zones" in source:
            zones = source["zones"]
            for dept, sub in zones.groupby("department", sort=False):
                layers[DEPARTMENTS.get(str(dept), str(dept))] = sub.drop(columns="department")
        return cls(layers, nearest=nearest)

    # ---- queries ---------------------------------------------------------------------------

    def _coords(
        self, x: Any, y: Any, crs: Any
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], pd.Index]:
        if isinstance(x, (gpd.GeoDataFrame, gpd.GeoSeries)):
            if y is not None:
                raise InputError("pass either a GeoDataFrame/GeoSeries of points, or x and y")
            geo = x.geometry if isinstance(x, gpd.GeoDataFrame) else x
            if geo.crs is None:
                raise CRSError("the points have no CRS; set one (e.g. .set_crs('EPSG:4326'))")
            kinds = set(geo.dropna().geom_type)
            if not kinds <= {"Point"}:
                raise InputError(f"expected points, found {sorted(kinds)}")
            index = geo.index
            xs = shapely.get_x(geo.to_numpy())
            ys = shapely.get_y(geo.to_numpy())
            crs = geo.crs
        else:
            index = x.index if isinstance(x, pd.Series) else None
            xs = np.atleast_1d(np.asarray(x, dtype=np.float64))
            ys = np.atleast_1d(np.asarray(y, dtype=np.float64))
            if xs.shape != ys.shape or xs.ndim != 1:
                raise InputError(
                    f"x and y must be 1-d of one length; got {xs.shape} and {ys.shape}"
                )
            index = index if index is not None else pd.RangeIndex(len(xs))
        bad = np.isinf(xs) | np.isinf(ys)
        if bad.any():
            raise InputError(f"infinite coordinates at rows {list(index[bad][:5])}")
        lon, lat = to_wgs84(xs, ys, crs)
        off = np.abs(lat) > 90
        if off.any():
            raise InputError(
                f"latitude outside ±90° at rows {list(index[off][:5])} "
                f"(e.g. {lat[off][0]:.6f}); are x and y swapped, or is crs={crs!r} right?"
            )
        return lon, lat, index

    def locate(
        self,
        x: ArrayLike | gpd.GeoDataFrame | gpd.GeoSeries,
        y: ArrayLike | None = None,
        *,
        crs: Any = "EPSG:4326",
        nearest: float | None = None,
    ) -> pd.DataFrame:
        """Zone key of every point in every layer.

        Parameters
        ----------
        x, y
            Coordinates in ``crs``; or a GeoDataFrame/GeoSeries of points as
            ``x`` (its CRS is used).
        crs
            Anything :func:`gridgeo.crs.normalize_crs` accepts (``"gcj02"``,
            ``"bd09"``, ``"cgcs2000"``, an EPSG code…).
        nearest
            Overrides the locator's ``nearest`` (metres) for this call.

        Returns
        -------
        pandas.DataFrame
            One categorical column of keys per layer (missing outside every
            zone), and a
            ``{layer}_distance_m`` column per layer when snapping is on.
            Index equals the input index. Rows with a NaN coordinate get
            ``<NA>`` and are counted in ``attrs["invalid"]``.

        Raises
        ------
        InputError
            For infinite coordinates, a latitude beyond ±90°, or x/y of different lengths.

        Examples
        --------
        See the module docstring.
        """
        lon, lat, index = self._coords(x, y, crs)
        snap = self.nearest if nearest is None else _check_nearest(nearest)
        nan = np.isnan(lon) | np.isnan(lat)
        out: dict[str, Any] = {}
        for name, layer in self._layers.items():
            pos = layer.lookup(lon, lat)
            pos[nan] = -1
            dist = None
            if snap:
                dist = np.where(pos >= 0, 0.0, np.nan)
                miss = np.flatnonzero((pos < 0) & ~nan)
                if len(miss):
                    near, d = self._snap(name, lon[miss], lat[miss], snap)
                    pos[miss] = near
                    dist[miss] = d
            out[name] = pd.Categorical.from_codes(pos, dtype=layer.dtype)
            if dist is not None:
                out[f"{name}_distance_m"] = dist
        result = pd.DataFrame(out, index=index)
        result.attrs["invalid"] = int(nan.sum())
        return result

    def _snap(
        self, name: str, lon: NDArray[np.float64], lat: NDArray[np.float64], max_m: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        with self._lock:
            if name not in self._metric:
                layer = self._layers[name]
                crs = metric_crs(shapely.box(*shapely.total_bounds(layer.geoms)))
                g = gpd.GeoSeries(layer.geoms, crs="EPSG:4326").to_crs(crs).to_numpy()
                self._metric[name] = (crs, shapely.STRtree(g))
        crs, tree = self._metric[name]
        mx, my = from_wgs84(lon, lat, crs)
        pi, zi = tree.query_nearest(shapely.points(mx, my), max_distance=max_m, all_matches=True)
        d = shapely.distance(tree.geometries[zi], shapely.points(mx[pi], my[pi]))
        pos = np.full(len(lon), -1, dtype=np.int64)
        dist = np.full(len(lon), np.nan)
        # ties: the zone whose key sorts first (smallest position)
        order = np.lexsort((zi, pi))
        pi, zi, d = pi[order], zi[order], d[order]
        first = np.unique(pi, return_index=True)[1]
        pos[pi[first]] = zi[first]
        dist[pi[first]] = d[first]
        return pos, dist

    def locate_one(
        self, x: float, y: float, *, crs: Any = "EPSG:4326", nearest: float | None = None
    ) -> dict[str, Any]:
        """The zone of one point in every layer, with its attributes: the dispatch fast path.

        Parameters
        ----------
        x, y
            The point, in ``crs``.
        crs
            As in :meth:`locate`.
        nearest
            Overrides the locator's ``nearest`` (metres) for this call, as in
            :meth:`locate` (``0`` turns snapping off).

        Returns
        -------
        dict
            Layer name → the zone's attributes (its key column under its own
            name, e.g. ``{"code": …, "name": …}``; plus ``"distance_m"`` when
            snapped), or ``None`` outside every zone. The zone is the one
            :meth:`locate` answers.

        Raises
        ------
        InputError
            For a coordinate that is not finite or lies beyond ±90°, or a
            negative ``nearest``.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> grids = gpd.GeoDataFrame({"code": ["A"], "name": ["west"]},
        ...     geometry=[shapely.box(115, 25, 115.1, 25.1)], crs="EPSG:4490")
        >>> loc = Locator({"grid": grids})
        >>> loc.locate_one(115.1001, 25.05)["grid"] is None  # ~10 m east of the zone
        True
        >>> loc.locate_one(115.1001, 25.05, nearest=50)["grid"]["code"]
        'A'
        """
        snap = self.nearest if nearest is None else _check_nearest(nearest)
        if crs in ("EPSG:4326", "wgs84", "cgcs2000", "EPSG:4490"):
            lon, lat = float(x), float(y)
        else:
            lo, la = to_wgs84([x], [y], crs)
            lon, lat = float(lo[0]), float(la[0])
        if not (np.isfinite(lon) and np.isfinite(lat)) or abs(lat) > 90:
            raise InputError(f"invalid coordinate ({x!r}, {y!r}) in {crs!r}")
        out: dict[str, Any] = {}
        for name, layer in self._layers.items():
            pos = layer.lookup_one(lon, lat)
            rec: dict[str, Any] | None = None
            if pos >= 0:
                rec = dict(self._records[name][pos])
            elif snap:
                near, d = self._snap(name, np.array([lon]), np.array([lat]), snap)
                if near[0] >= 0:
                    rec = dict(self._records[name][int(near[0])], distance_m=float(d[0]))
            out[name] = rec
        return out

    def warm_up(self) -> float:
        """Load the compiled kernels now; return the seconds it took.

        A process's first lookups load numba and its kernels (a fixed cost of
        about 0.5 s). Until a batch :meth:`locate` or this method has loaded them,
        and while this method runs, :meth:`locate_one` answers boundary-cell
        points with shapely (the same answers, slower per point) instead of
        waiting; :meth:`locate` waits. A server calls this in the background
        once it accepts requests.

        Examples
        --------
        >>> import geopandas as gpd, shapely
        >>> grids = gpd.GeoDataFrame({"code": ["A"]}, geometry=[shapely.box(115, 25, 115.1, 25.1)],
        ...     crs="EPSG:4490")
        >>> Locator({"grid": grids}).warm_up() >= 0
        True
        """
        import time

        t0 = time.perf_counter()
        _warming["count"] += 1
        try:
            for layer in self._layers.values():
                layer.warm_up()
        finally:
            _warming["count"] -= 1
        return time.perf_counter() - t0

    # ---- persistence -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the locator to one ``.npz`` file (no pickle), for a fast restart."""
        arrays: dict[str, Any] = {}
        meta: dict[str, Any] = {"format": _FORMAT, "nearest": self.nearest, "layers": []}
        for i, (name, layer) in enumerate(self._layers.items()):
            wkb = shapely.to_wkb(layer.geoms)
            lens = np.array([len(b) for b in wkb], dtype=np.int64)
            arrays[f"{i}_wkb"] = np.frombuffer(b"".join(wkb), dtype=np.uint8)
            arrays[f"{i}_wkb_len"] = lens
            arrays[f"{i}_state"] = layer.state
            arrays[f"{i}_cand_ptr"] = layer.cand_ptr
            arrays[f"{i}_cand"] = layer.cand
            arrays[f"{i}_edge_ptr"] = layer.edges.edge_ptr
            arrays[f"{i}_edges"] = layer.edges.edges
            arrays[f"{i}_ref"] = layer.edges.ref
            arrays[f"{i}_ref_in"] = layer.edges.ref_in
            meta["layers"].append(
                {
                    "name": name,
                    "keys": [str(k) for k in layer.keys],
                    "key": self._key[name],
                    "attrs": layer.attrs.to_json(
                        orient="split", force_ascii=False, date_format="iso"
                    ),
                    "grid": [layer.x0, layer.y0, layer.dx, layer.dy, layer.nx, layer.ny],
                }
            )
        arrays["meta"] = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), np.uint8)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Locator:
        """Read a locator written by :meth:`save`.

        Raises
        ------
        InputError
            If the file is not a saved locator.
        """
        try:
            data = np.load(Path(path), allow_pickle=False)
            meta = json.loads(bytes(data["meta"]).decode())
        except (OSError, ValueError, KeyError) as err:
            raise InputError(f"'{path}' is not a saved gridgeo locator: {err}") from err
        if meta.get("format") != _FORMAT:
            raise InputError(f"'{path}' is not a saved gridgeo locator ({meta.get('format')!r})")
        self = cls.__new__(cls)
        self.nearest = meta["nearest"]
        self._metric = {}
        self._lock = threading.Lock()
        self._layers = {}
        self._key = {}
        for i, lm in enumerate(meta["layers"]):
            # files written before "key" was saved renamed the key column to "code"
            self._key[lm["name"]] = lm.get("key", "code")
            buf = data[f"{i}_wkb"].tobytes()
            lens = data[f"{i}_wkb_len"]
            ends = np.cumsum(lens)
            wkb = [buf[e - n : e] for e, n in zip(ends, lens)]
            geoms = shapely.from_wkb(wkb)
            shapely.prepare(geoms)
            attrs = pd.read_json(io.StringIO(lm["attrs"]), orient="split", dtype=False).astype(
                object
            )
            attrs = attrs.where(pd.notna(attrs), None)
            x0, y0, dx, dy, nx, ny = lm["grid"]
            self._layers[lm["name"]] = _Layer(
                np.array(lm["keys"], dtype=object),
                geoms,
                attrs,
                x0,
                y0,
                dx,
                dy,
                int(nx),
                int(ny),
                data[f"{i}_state"],
                data[f"{i}_cand_ptr"],
                data[f"{i}_cand"],
                CellEdges(
                    data[f"{i}_edge_ptr"],
                    data[f"{i}_edges"],
                    data[f"{i}_ref"],
                    data[f"{i}_ref_in"],
                ),
            )
        self._records = {n: lay.records for n, lay in self._layers.items()}
        return self

    def __getstate__(self) -> dict[str, Any]:
        # picklable for dask workers: the lock and the snapping cache are rebuilt
        return {
            "nearest": self.nearest,
            "_layers": self._layers,
            "_key": self._key,
            "_records": self._records,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._metric = {}
        self._lock = threading.Lock()
        for layer in self._layers.values():
            shapely.prepare(layer.geoms)
        UNPICKLED["count"] += 1

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}: {len(lay.keys)}" for n, lay in self._layers.items())
        return f"Locator({sizes})"


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _check_nearest(nearest: float | None) -> float | None:
    if nearest is None:
        return None
    if not isinstance(nearest, (int, float)) or not np.isfinite(nearest) or nearest < 0:
        raise InputError(f"nearest was {nearest!r}; give a distance in metres ≥ 0, or None")
    return float(nearest) or None
