"""The Merkle tree stored as C2SP tiles (c2sp.org/tlog-tiles): build on append, read proofs.

A tile at level ``L`` and index ``N`` holds the hashes of consecutive complete subtrees of
height ``8 * L``: hash ``i`` is the Merkle tree hash of leaves
``[(N * 256 + i) * 256**L, (N * 256 + i + 1) * 256**L)``. Level 0 tiles hold leaf hashes;
each hash of a level ``L + 1`` tile is the root of a full level ``L`` tile. A tile holds up
to 256 hashes (8,192 bytes); the rightmost tile of a level is partial until it fills, and
each append only ever adds hashes to its end. The store keeps about 32 bytes per entry.

Any complete subtree lies inside one tile, so a proof needs at most two tiles per tile
level (three levels up to 16 million entries, four up to 4 billion), which `TileNodeReader`
asks for in one call of a `TileReader`. `append_leaves` is the sequencer's side: given the
tree size, the new leaf hashes and the right-edge tiles, it computes every tile to write
and the new root.

The tile height is a parameter (8 in C2SP and in Charter) so tests can use small tiles.
Everything here is pure: no I/O, no global state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from charter.transparency.merkle import HASH_SIZE, MAX_TREE_SIZE, Node, root_hash

__all__ = [
    "TILE_HEIGHT",
    "CorruptTiles",
    "Tile",
    "TileHashCache",
    "TileNodeReader",
    "TileReader",
    "TileUpdate",
    "append_leaves",
    "edge_tiles",
    "tile_path",
]

TILE_HEIGHT: Final = 8
"""The height of a tile in C2SP tlog-tiles: a full tile holds ``2**8 = 256`` hashes."""


class CorruptTiles(ValueError):
    """A tile the store answered is missing, of the wrong width, or not made of hashes."""


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Tile:
    """The address of a tile.

    Attributes:
        level: The tile level, from 0 (leaf hashes).
        index: The tile's position in its level, from 0.
    """

    level: int
    index: int


TileReader = Callable[[Sequence[Tile]], Mapping[Tile, bytes]]
"""Answers the stored content of tiles (concatenated 32-byte hashes); a missing tile is left out."""


def tile_path(tile: Tile, width: int | None = None, *, height: int = TILE_HEIGHT) -> str:
    """Return the C2SP resource path of a tile, ``tile/<L>/<N>[.p/<W>]``.

    The index is written in 3-digit groups, all but the last prefixed with ``x``: index
    1234067 is ``x001/x234/067``.

    Args:
        tile: The tile.
        width: The number of hashes for a partial tile; None (or a full width) for a full one.
        height: The tile height.

    Returns:
        The path, for example ``tile/0/x001/x234/067.p/8``.
    """
    digits = str(tile.index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    path = f"tile/{tile.level}/" + "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])
    if width is not None and width != 1 << height:
        path += f".p/{width}"
    return path


def _tile_root(hashes: list[bytes], height: int) -> bytes:
    """The root of a full tile: the hash of the complete subtree whose bottom row it holds."""
    return _levels(hashes, height)[height][0]


def _split_hashes(tile: Tile, content: bytes) -> list[bytes]:
    if not isinstance(content, bytes | bytearray) or len(content) % HASH_SIZE:
        raise CorruptTiles(f"tile {tile.level}/{tile.index} is not a whole number of hashes")
    return [bytes(content[i : i + HASH_SIZE]) for i in range(0, len(content), HASH_SIZE)]


def edge_tiles(size: int, *, height: int = TILE_HEIGHT) -> dict[Tile, int]:
    """Return the partial tiles of a tree of ``size`` leaves, with their widths.

    These are the tiles an append extends (full tiles never change).

    Args:
        size: The tree size.
        height: The tile height.

    Returns:
        Each partial tile and the number of hashes it holds (1 to ``2**height - 1``).
    """
    tiles: dict[Tile, int] = {}
    level, count = 0, size
    while count:
        width = count & ((1 << height) - 1)
        if width:
            tiles[Tile(level, count >> height)] = width
        level, count = level + 1, count >> height
    return tiles


class TileHashCache:
    """The subtree hashes computed inside tiles, kept for reuse (least recently used out).

    Each entry holds the tile's content it was computed from, and is used only for that very
    content: a tile read with other bytes is hashed again, so the cache can never stand in for
    what the store holds (a damaged tile is still found). A tile's content only ever grows at its
    end, so when the content read starts with the cached one, only the hashes of the new part
    are computed. Share one cache between the `TileNodeReader` calls of a process (it is
    thread-safe): the tiles at the top and on the right edge of the tree then cost almost nothing
    after their first proof, and a sequencer hashes about one node per new leaf.

    Args:
        max_tiles: The most tiles kept; a full tile's content and hashes take about 40 KiB.
    """

    __slots__ = ("_entries", "_lock", "_max")

    def __init__(self, max_tiles: int = 4096) -> None:
        if max_tiles < 1:
            raise ValueError("max_tiles must be at least 1")
        self._max = max_tiles
        self._entries: OrderedDict[Tile, tuple[bytes, list[list[bytes]]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tile: Tile) -> tuple[bytes, list[list[bytes]]] | None:
        """The content a tile's levels were last computed from, and those levels; or None."""
        with self._lock:
            found = self._entries.get(tile)
            if found is not None:
                self._entries.move_to_end(tile)
            return found

    def put(self, tile: Tile, content: bytes, levels: list[list[bytes]]) -> None:
        """Keep the levels computed from a tile's content (never changed afterwards)."""
        with self._lock:
            self._entries[tile] = (content, levels)
            self._entries.move_to_end(tile)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _levels(bottom: list[bytes], depth: int, known: list[list[bytes]] | None = None) -> list[list[bytes]]:
    """The hashes of a tile's complete subtrees, by height within the tile, up to ``depth``.

    ``known`` are the levels computed earlier from a prefix of ``bottom`` (the tile before it
    grew): their hashes stand (the pairs below them are unchanged), only the new ones are computed.
    The lists of ``known`` are not changed.
    """
    levels = [bottom]
    sha256 = hashlib.sha256  # node_hash inlined: this loop is most of a proof's cost
    for height in range(1, depth + 1):
        below = levels[-1]
        row = list(known[height]) if known is not None and height < len(known) else []
        row += [sha256(b"\x01" + below[i] + below[i + 1]).digest() for i in range(2 * len(row), len(below) - 1, 2)]
        levels.append(row)
    return levels


class TileNodeReader:
    """A `charter.transparency.merkle.NodeReader` that computes subtree hashes from tiles.

    Each call reads every tile it needs with one call of ``read_tiles``; a node of tree level
    ``l`` comes from the tile of level ``l // height`` that holds its ``2**(l % height)``
    lowest hashes. Each tile's inner hashes are computed once per call (at most
    ``2**height - 1`` node hashes), or taken from ``cache`` when it holds them for the same bytes
    (only the new ones computed when the tile grew since).

    Args:
        read_tiles: Answers stored tiles.
        height: The tile height.
        cache: Inner tile hashes shared between calls; None computes them every time.

    Raises:
        CorruptTiles: When called, if a tile is missing or too short for a node asked.
    """

    __slots__ = ("_cache", "_height", "_read")

    def __init__(
        self, read_tiles: TileReader, *, height: int = TILE_HEIGHT, cache: TileHashCache | None = None
    ) -> None:
        self._read = read_tiles
        self._height = height
        self._cache = cache

    def __call__(self, nodes: Sequence[Node]) -> list[bytes]:
        height = self._height
        placed: list[tuple[Tile, int, int]] = []  # tile, height in the tile, position at that height
        deepest: dict[Tile, int] = {}
        for node in nodes:
            tile_level, depth = divmod(node.level, height)
            tile = Tile(tile_level, (node.index << depth) >> height)
            placed.append((tile, depth, node.index & ((1 << (height - depth)) - 1)))
            deepest[tile] = max(deepest.get(tile, 0), depth)
        answered = self._read(list(deepest))
        levels: dict[Tile, list[list[bytes]]] = {}
        for tile, depth in deepest.items():
            content = answered.get(tile)
            if content is None:
                raise CorruptTiles(f"tile {tile.level}/{tile.index} is missing")
            levels[tile] = self._tile_levels(tile, bytes(content), depth)
        values: list[bytes] = []
        for tile, depth, position in placed:
            row = levels[tile][depth]
            if position >= len(row):
                raise CorruptTiles(f"tile {tile.level}/{tile.index} is too short for the tree size asked")
            values.append(row[position])
        return values

    def _tile_levels(self, tile: Tile, content: bytes, depth: int) -> list[list[bytes]]:
        cache = self._cache
        if cache is None:
            return _levels(_split_hashes(tile, content), depth)
        found = cache.get(tile)
        if found is not None and content.startswith(found[0]):
            known_content, known = found
            if len(content) == len(known_content) and len(known) > depth:
                return known  # computed from these very bytes
            bottom = known[0] + _split_hashes(tile, content[len(known_content) :])
            computed = _levels(bottom, max(depth, len(known) - 1), known)
        else:
            computed = _levels(_split_hashes(tile, content), depth)
        cache.put(tile, content, computed)
        return computed


@dataclasses.dataclass(frozen=True, slots=True)
class TileUpdate:
    """What appending leaves to the tree changes.

    Attributes:
        size: The new tree size.
        root_hash: The new root hash.
        tiles: Each tile to write (insert or replace) with its whole new content.
    """

    size: int
    root_hash: bytes
    tiles: dict[Tile, bytes]


def append_leaves(
    size: int,
    leaves: Sequence[bytes],
    read_tiles: TileReader,
    *,
    height: int = TILE_HEIGHT,
    cache: TileHashCache | None = None,
) -> TileUpdate:
    """Append leaf hashes to a tree stored as tiles; return the tiles to write and the new root.

    It reads only the tree's partial tiles (`edge_tiles`, one call of ``read_tiles``), checks
    that each has exactly the width ``size`` implies, and writes every tile the new hashes
    reach: the partial tiles extended, new tiles, and at each level above the roots of the
    tiles that filled up.

    Args:
        size: The current tree size (the store must hold its tiles).
        leaves: The new leaf hashes (`charter.transparency.merkle.leaf_hash` of each entry),
            in log order.
        read_tiles: Answers stored tiles.
        height: The tile height.
        cache: Inner tile hashes shared with earlier calls (a sequencer's, batch after batch):
            the new root then costs about one node hash per new leaf.

    Returns:
        The new size and root and the tiles to write. Writing them and recording the new
        size in one transaction keeps the store consistent.

    Raises:
        CorruptTiles: A partial tile is missing or of the wrong width.
        ValueError: A leaf is not a 32-byte hash, or the tree would grow past 2**63 - 1.
    """
    if not 0 <= size < MAX_TREE_SIZE or size + len(leaves) >= MAX_TREE_SIZE:
        raise ValueError("the tree size is from 0 to 2**63 - 1")
    for leaf in leaves:
        if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
    full = 1 << height
    edges = edge_tiles(size, height=height)
    stored = read_tiles(list(edges)) if edges else {}
    existing: dict[Tile, list[bytes]] = {}
    for tile, width in edges.items():
        content = stored.get(tile)
        if content is None:
            raise CorruptTiles(f"tile {tile.level}/{tile.index} is missing")
        hashes = _split_hashes(tile, content)
        if len(hashes) != width:
            raise CorruptTiles(f"tile {tile.level}/{tile.index} holds {len(hashes)} hashes, not {width}")
        existing[tile] = hashes

    written: dict[Tile, bytes] = {}
    level, count, new = 0, size, list(leaves)
    while new:
        filled: list[bytes] = []  # roots of the tiles of this level that this append fills
        position = 0
        while position < len(new):
            tile = Tile(level, count >> height)
            hashes = existing.get(tile, []) if count & (full - 1) else []
            room = full - len(hashes)
            hashes = hashes + new[position : position + room]
            written[tile] = b"".join(hashes)
            if len(hashes) == full:
                filled.append(_tile_root(hashes, height))
            taken = min(room, len(new) - position)
            position += taken
            count += taken
        level, count, new = level + 1, size >> (height * (level + 1)), filled

    new_size = size + len(leaves)
    tiles = {tile: b"".join(hashes) for tile, hashes in existing.items()} | written

    def read_known(wanted: Sequence[Tile]) -> Mapping[Tile, bytes]:
        return {tile: tiles[tile] for tile in wanted if tile in tiles}

    root = root_hash(new_size, TileNodeReader(read_known, height=height, cache=cache))
    return TileUpdate(new_size, root, written)
