"""Write a GeoPackage R-tree (SQLite's ``rtree`` module) packed, in one pass.

SQLite inserts into an R-tree one entry at a time: a descent, maybe a split, and
a handful of SQL statements a row (25 µs a point on our machine, more than the
row insert itself). A bulk load instead reads the entries the tree holds (from
its node blobs), adds the new ones, sorts them all with Sort-Tile-Recursive and
writes the three shadow tables (``<name>_node``, ``_rowid``, ``_parent``)
directly, the way GDAL's own bulk loader does. The result is an ordinary SQLite
R-tree: SQLite, GDAL and QGIS search and update it as before, and
``rtreecheck()`` accepts it.

The format (SQLite's ``ext/rtree/rtree.c``): node 1 is the root; a node blob is
``node_size`` bytes: a big-endian 16-bit tree depth (root only, else 0), a 16-bit
cell count, then cells of a 64-bit rowid and ``minx, maxx, miny, maxy`` as
32-bit floats, all big-endian. Leaf cells hold feature ids; inner cells hold
child node numbers. Float boxes are rounded outwards, so each contains its
double-precision point.
"""

from __future__ import annotations

import sqlite3

import numpy as np

__all__ = ["outward", "packed_insert", "packed_rebuild", "read_entries"]

_CELL = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])  # 24 bytes


def _shadow(name: str, part: str) -> str:
    return f'"{name}_{part}"'


def node_size(conn: sqlite3.Connection, name: str) -> int:
    """Bytes of one node blob (fixed when SQLite created the tree)."""
    row = conn.execute(f"SELECT length(data) FROM {_shadow(name, 'node')} WHERE nodeno = 1")
    found = row.fetchone()
    if found is None:
        raise ValueError(f"R-tree {name!r} has no root node")
    return int(found[0])


def _parse(blobs: list[bytes], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(node index of each cell, cell ids, cell boxes) of same-sized node blobs."""
    if not blobs:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 4), np.float32)
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), size)
    count = raw[:, 2].astype(np.int64) * 256 + raw[:, 3]
    most = (size - 4) // _CELL.itemsize
    cells = raw[:, 4 : 4 + most * _CELL.itemsize].copy().view(_CELL).reshape(len(blobs), most)
    keep = np.arange(most)[None, :] < count[:, None]
    node = np.broadcast_to(np.arange(len(blobs))[:, None], keep.shape)[keep]
    picked = cells[keep]
    return node, picked["id"].astype(np.int64), picked["box"].astype(np.float32)


def read_entries(conn: sqlite3.Connection, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, boxes ``minx, maxx, miny, maxy`` as float32) of every leaf entry of a tree."""
    rows = conn.execute(f"SELECT nodeno, data FROM {_shadow(name, 'node')}").fetchall()
    blobs = {int(n): bytes(d) for n, d in rows}
    if 1 not in blobs:
        return np.empty(0, np.int64), np.empty((0, 4), np.float32)
    size = len(blobs[1])
    depth = int.from_bytes(blobs[1][:2], "big")
    level = [1]
    for _ in range(depth):
        _, children, _ = _parse([blobs[n] for n in level], size)
        level = children.tolist()
    _, ids, boxes = _parse([blobs[n] for n in level], size)
    return ids, boxes


def outward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Float32 boxes ``minx, maxx, miny, maxy`` of points, rounded outwards."""
    out = np.empty((len(x), 4), np.float32)
    for col, v, down in ((0, x, True), (1, x, False), (2, y, True), (3, y, False)):
        f = v.astype(np.float32)
        if down:
            f = np.where(f.astype(np.float64) > v, np.nextafter(f, np.float32(-np.inf)), f)
        else:
            f = np.where(f.astype(np.float64) < v, np.nextafter(f, np.float32(np.inf)), f)
        out[:, col] = f
    return out


def _str_order(boxes: np.ndarray, fanout: int) -> np.ndarray:
    """Sort-Tile-Recursive order: vertical slices by x centre, each sorted by y centre."""
    n = len(boxes)
    cx = boxes[:, 0].astype(np.float64) + boxes[:, 1]
    cy = boxes[:, 2].astype(np.float64) + boxes[:, 3]
    nodes = -(-n // fanout)
    slices = max(1, int(np.ceil(np.sqrt(nodes))))
    per_slice = slices * fanout
    by_x = np.argsort(cx, kind="stable")
    slice_of = np.empty(n, np.int64)
    slice_of[by_x] = np.arange(n) // per_slice
    return np.lexsort((cy, slice_of))


def _blobs(ids: np.ndarray, boxes: np.ndarray, fanout: int, size: int) -> list[bytes]:
    """Node blobs of consecutive groups of ``fanout`` cells (the last may be short)."""
    n = len(ids)
    k = -(-n // fanout)
    cells = np.zeros(k * fanout, _CELL)
    cells["id"][:n] = ids
    cells["box"][:n] = boxes
    raw = np.zeros((k, size), np.uint8)
    raw[:, 4 : 4 + fanout * _CELL.itemsize] = cells.view(np.uint8).reshape(k, -1)
    count = np.full(k, fanout, np.int64)
    count[-1] = n - (k - 1) * fanout
    raw[:, 2], raw[:, 3] = count >> 8, count & 0xFF
    return [r.tobytes() for r in raw]


def _pack(
    ids: np.ndarray,
    boxes: np.ndarray,
    *,
    fanout: int,
    size: int,
    first_node: int,
    levels: int | None = None,
) -> tuple[list[tuple[int, bytes]], list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Pack entries bottom-up into nodes numbered from ``first_node``.

    ``levels`` groups that many times (a subtree of that height, hung under an
    existing root); ``None`` until the top level fits in one node (a whole tree).

    Returns
    -------
    (nodes, rowid pairs, parent pairs, top ids, top boxes)
        Node blobs by number; ``(ids, nodenos)`` of the leaf entries and
        ``(children, parents)`` of the inner ones (as arrays); the entries left
        for the root.
    """
    nodes: list[tuple[int, bytes]] = []
    rowid: list[np.ndarray] = []
    parent: list[np.ndarray] = []
    level, next_node = 0, first_node
    while (len(ids) > fanout) if levels is None else (level < levels):
        order = _str_order(boxes, fanout)
        ids, boxes = ids[order], boxes[order]
        k = -(-len(ids) // fanout)
        numbers = np.arange(next_node, next_node + k, dtype=np.int64)
        next_node += k
        nodes += zip(numbers.tolist(), _blobs(ids, boxes, fanout, size))
        pairs = rowid if level == 0 else parent
        pairs += [ids, numbers[np.arange(len(ids)) // fanout]]
        starts = np.arange(0, len(ids), fanout)
        boxes = np.column_stack(
            [
                np.minimum.reduceat(boxes[:, 0], starts),
                np.maximum.reduceat(boxes[:, 1], starts),
                np.minimum.reduceat(boxes[:, 2], starts),
                np.maximum.reduceat(boxes[:, 3], starts),
            ]
        ).astype(np.float32)
        ids, level = numbers, level + 1
    return nodes, rowid, parent, ids, boxes


def _root(ids: np.ndarray, boxes: np.ndarray, depth: int, fanout: int, size: int) -> bytes:
    blob = _blobs(ids, boxes, fanout, size)[0] if len(ids) else bytes(size)
    return depth.to_bytes(2, "big") + blob[2:]


def _write(
    conn: sqlite3.Connection,
    name: str,
    nodes: list[tuple[int, bytes]],
    rowid: list[np.ndarray],
    parent: list[np.ndarray],
) -> None:
    """Insert node blobs and ``(key, node)`` pairs (sorted by key: appends to the B-trees)."""
    conn.executemany(
        f"INSERT OR REPLACE INTO {_shadow(name, 'node')} VALUES (?, ?)", sorted(nodes)
    )
    for part, pairs in (("rowid", rowid), ("parent", parent)):
        if not pairs:
            continue
        key = np.concatenate(pairs[0::2])
        node = np.concatenate(pairs[1::2])
        order = np.argsort(key, kind="stable")
        conn.executemany(
            f"INSERT INTO {_shadow(name, part)} VALUES (?, ?)",
            zip(key[order].tolist(), node[order].tolist()),
        )


def packed_rebuild(
    conn: sqlite3.Connection, name: str, ids: np.ndarray, boxes: np.ndarray
) -> int:
    """Replace the content of R-tree ``name`` with these entries, packed (STR).

    Runs inside the caller's transaction. ``ids`` must be unique.

    Returns
    -------
    int
        The depth of the new tree.
    """
    size = node_size(conn, name)
    fanout = (size - 4) // _CELL.itemsize
    ids = np.asarray(ids, np.int64)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    nodes, rowid, parent, top, top_boxes = _pack(
        ids, boxes, fanout=fanout, size=size, first_node=2
    )
    depth = 0 if not rowid else 1 + (len(parent) // 2)
    nodes.append((1, _root(top, top_boxes, depth, fanout, size)))
    one = np.ones(len(top), np.int64)
    (rowid if depth == 0 else parent).extend([top, one])
    for part in ("node", "rowid", "parent"):
        conn.execute(f"DELETE FROM {_shadow(name, part)}")
    _write(conn, name, nodes, rowid, parent)
    return depth


def packed_insert(
    conn: sqlite3.Connection, name: str, ids: np.ndarray, boxes: np.ndarray
) -> str:
    """Add entries (ids not in the tree yet) to R-tree ``name``, packed.

    When the tree holds fewer entries than are added, or the added subtrees do
    not fit under its root, the whole tree is rebuilt (:func:`packed_rebuild`);
    otherwise the new entries are packed into subtrees of the tree's height and
    hung under its root, so the cost follows the rows added, not the rows stored.

    Returns
    -------
    str
        ``"rebuilt"`` or ``"grafted"``.
    """
    size = node_size(conn, name)
    fanout = (size - 4) // _CELL.itemsize
    ids = np.asarray(ids, np.int64)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    stored = conn.execute(f"SELECT count(*) FROM {_shadow(name, 'rowid')}").fetchone()[0]
    root = bytes(
        conn.execute(f"SELECT data FROM {_shadow(name, 'node')} WHERE nodeno = 1").fetchone()[0]
    )
    depth = int.from_bytes(root[:2], "big")
    if stored > len(ids) and depth > 0:
        _, root_ids, root_boxes = _parse([root], size)
        last = conn.execute(f"SELECT max(nodeno) FROM {_shadow(name, 'node')}").fetchone()[0]
        nodes, rowid, parent, top, top_boxes = _pack(
            ids, boxes, fanout=fanout, size=size, first_node=int(last) + 1, levels=depth
        )
        if len(root_ids) + len(top) <= fanout:
            cells = np.concatenate([root_ids, top])
            nodes.append((1, _root(cells, np.concatenate([root_boxes, top_boxes]), depth,
                                   fanout, size)))  # fmt: skip
            parent += [top, np.ones(len(top), np.int64)]
            _write(conn, name, nodes, rowid, parent)
            return "grafted"
    old_ids, old_boxes = read_entries(conn, name)
    packed_rebuild(conn, name, np.concatenate([old_ids, ids]), np.concatenate([old_boxes, boxes]))
    return "rebuilt"
