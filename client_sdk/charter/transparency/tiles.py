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
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from charter.transparency.merkle import HASH_SIZE, MAX_TREE_SIZE, Node, node_hash, root_hash

__all__ = [
    "TILE_HEIGHT",
    "CorruptTiles",
    "Tile",
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


def _tile_root(hashes: Sequence[bytes]) -> bytes:
    """The hash of the complete subtree whose bottom row is ``hashes`` (a power of two of them)."""
    row = list(hashes)
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


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


class TileNodeReader:
    """A `charter.transparency.merkle.NodeReader` that computes subtree hashes from tiles.

    Each call reads every tile it needs with one call of ``read_tiles``; a node of tree level
    ``l`` comes from the tile of level ``l // height`` that holds its ``2**(l % height)``
    lowest hashes.

    Args:
        read_tiles: Answers stored tiles.
        height: The tile height.

    Raises:
        CorruptTiles: When called, if a tile is missing or too short for a node asked.
    """

    __slots__ = ("_height", "_read")

    def __init__(self, read_tiles: TileReader, *, height: int = TILE_HEIGHT) -> None:
        self._read = read_tiles
        self._height = height

    def __call__(self, nodes: Sequence[Node]) -> list[bytes]:
        height = self._height
        placed: list[tuple[Tile, int, int]] = []  # tile, first hash, number of hashes
        for node in nodes:
            tile_level, depth = divmod(node.level, height)
            first = node.index << depth
            placed.append((Tile(tile_level, first >> height), first & ((1 << height) - 1), 1 << depth))
        wanted = list(dict.fromkeys(tile for tile, _, _ in placed))
        answered = self._read(wanted)
        contents: dict[Tile, bytes] = {}
        for tile in wanted:
            content = answered.get(tile)
            if content is None:
                raise CorruptTiles(f"tile {tile.level}/{tile.index} is missing")
            contents[tile] = bytes(content)
        values: list[bytes] = []
        for tile, first, count in placed:
            content = contents[tile]
            end = (first + count) * HASH_SIZE
            if len(content) % HASH_SIZE or len(content) < end:
                raise CorruptTiles(f"tile {tile.level}/{tile.index} is too short for the tree size asked")
            values.append(_tile_root(_split_hashes(tile, content[first * HASH_SIZE : end])))
        return values


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
    size: int, leaves: Sequence[bytes], read_tiles: TileReader, *, height: int = TILE_HEIGHT
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
                filled.append(_tile_root(hashes))
            taken = min(room, len(new) - position)
            position += taken
            count += taken
        level, count, new = level + 1, size >> (height * (level + 1)), filled

    new_size = size + len(leaves)
    tiles = {tile: b"".join(hashes) for tile, hashes in existing.items()} | written

    def read_known(wanted: Sequence[Tile]) -> Mapping[Tile, bytes]:
        return {tile: tiles[tile] for tile in wanted if tile in tiles}

    root = root_hash(new_size, TileNodeReader(read_known, height=height))
    return TileUpdate(new_size, root, written)
