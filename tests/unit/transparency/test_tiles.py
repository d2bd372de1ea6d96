"""The tile store: built batch by batch in a dict, it answers the same proofs as the RFC 9162
definitions (and as a store of every complete subtree) for every size up to a few hundred,
with tiles of several heights, and for random large trees; the C2SP layout examples hold;
a corrupt store is detected, never turned into a wrong proof."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pytest
from charter.transparency import merkle
from charter.transparency.merkle import CompactRange, Node
from charter.transparency.tiles import (
    TILE_HEIGHT,
    CorruptTiles,
    Tile,
    TileHashCache,
    TileNodeReader,
    append_leaves,
    edge_tiles,
    tile_path,
)

from . import reference


class TileStore:
    """Tiles in a dict, written as `append_leaves` says; counts reads."""

    def __init__(self, height: int) -> None:
        self.height = height
        self.tiles: dict[Tile, bytes] = {}
        self.size = 0
        self.root = merkle.EMPTY_ROOT
        self.reads: list[list[Tile]] = []

    def read(self, wanted: Sequence[Tile]) -> Mapping[Tile, bytes]:
        self.reads.append(list(wanted))
        return {tile: self.tiles[tile] for tile in wanted if tile in self.tiles}

    def append(self, leaves: Sequence[bytes]) -> None:
        update = append_leaves(self.size, leaves, self.read, height=self.height)
        self.tiles.update(update.tiles)
        self.size, self.root = update.size, update.root_hash

    def nodes(self) -> TileNodeReader:
        return TileNodeReader(self.read, height=self.height)


def _leaves(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(count)]


@pytest.mark.parametrize("height", [1, 2, 3, TILE_HEIGHT])
def test_every_size_up_to_300_answers_the_definitions(height: int) -> None:
    entries = [f"entry {i}".encode() for i in range(300)]
    leaves = [merkle.leaf_hash(e) for e in entries]
    store = TileStore(height)
    rng = random.Random(height)
    while store.size < len(leaves):
        batch = rng.choice([1, 1, 2, 3, 5, 17, 64])
        store.append(leaves[store.size : store.size + batch])
    sizes = sorted({*range(1, 70), *rng.sample(range(70, 301), 40), 255, 256, 257, 300})
    for size in sizes:
        prefix = entries[:size]
        assert merkle.root_hash(size, store.nodes()) == reference.mth(prefix), size
        for index in rng.sample(range(size), min(size, 12)):
            assert merkle.inclusion_proof(index, size, store.nodes()) == reference.path(index, prefix)
        for size1 in rng.sample(range(1, size + 1), min(size, 12)):
            assert merkle.consistency_proof(size1, size, store.nodes()) == reference.proof(size1, prefix)
    assert store.root == reference.mth(entries)


def test_each_append_returns_the_new_root() -> None:
    leaves = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(600)]
    store = TileStore(TILE_HEIGHT)
    compact = CompactRange()
    for leaf in leaves:
        store.append([leaf])
        compact.append(leaf)
        assert store.root == compact.root()
    assert store.size == 600


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_large_trees_answer_the_same_proofs_as_every_subtree_stored(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randrange(66_000, 140_000)
    leaves = _leaves(count, seed)
    store = TileStore(TILE_HEIGHT)
    every: dict[Node, bytes] = {}
    compact = CompactRange()
    position = 0
    while position < count:
        batch = leaves[position : position + rng.choice([1, 7, 300, 5000])]
        store.append(batch)
        for leaf in batch:
            every.update(compact.append(leaf))
        position += len(batch)
        assert store.root == compact.root()

    def full(wanted: Sequence[Node]) -> list[bytes]:
        return [every[node] for node in wanted]

    for _ in range(300):
        size = rng.randrange(1, count + 1)
        index, size1 = rng.randrange(size), rng.randrange(1, size + 1)
        store.reads.clear()
        root = merkle.root_hash(size, store.nodes())
        assert root == merkle.root_hash(size, full)
        audit = merkle.inclusion_proof(index, size, store.nodes())
        assert audit == merkle.inclusion_proof(index, size, full)
        merkle.verify_inclusion(leaves[index], index, size, audit, root)
        consistency = merkle.consistency_proof(size1, size, store.nodes())
        assert consistency == merkle.consistency_proof(size1, size, full)
        # One read per proof, of at most two tiles per tile level.
        assert len(store.reads) == 3
        assert all(len(read) <= 2 * len(edge_tiles(size)) + 2 for read in store.reads)


def test_the_c2sp_example_tree_of_70000_entries() -> None:
    """c2sp.org/tlog-tiles: 273 full level 0 tiles, one partial of width 112, one full level 1
    tile, one partial of width 17, and one partial level 2 tile of width 1."""
    store = TileStore(TILE_HEIGHT)
    store.append(_leaves(70_000))

    widths = {tile: len(content) // 32 for tile, content in store.tiles.items()}
    assert sorted(t.index for t, w in widths.items() if t.level == 0 and w == 256) == list(range(273))
    assert widths[Tile(0, 273)] == 112
    assert widths[Tile(1, 0)] == 256 and widths[Tile(1, 1)] == 17
    assert widths[Tile(2, 0)] == 1
    assert len(widths) == 273 + 1 + 2 + 1
    assert edge_tiles(70_000) == {Tile(0, 273): 112, Tile(1, 1): 17, Tile(2, 0): 1}
    assert edge_tiles(256) == {Tile(1, 0): 1}
    assert sum(len(c) for c in store.tiles.values()) / 70_000 < 32.2


def test_tile_paths_follow_c2sp() -> None:
    assert tile_path(Tile(0, 1234067)) == "tile/0/x001/x234/067"
    assert tile_path(Tile(1, 5), 17) == "tile/1/005.p/17"
    assert tile_path(Tile(2, 1000), 256) == "tile/2/x001/000"


def test_an_append_reads_only_the_edge_tiles_once() -> None:
    store = TileStore(TILE_HEIGHT)
    store.append(_leaves(70_000))
    store.reads.clear()

    store.append(_leaves(10, seed=2))

    assert store.reads[0] == list(edge_tiles(70_000))


def test_a_corrupt_store_is_detected() -> None:
    store = TileStore(2)
    store.append(_leaves(37))
    size = store.size
    edge = next(iter(edge_tiles(size, height=2)))

    truncated = dict(store.tiles)
    truncated[edge] = truncated[edge][:-32]
    with pytest.raises(CorruptTiles):
        append_leaves(size, _leaves(1), lambda wanted: {t: truncated[t] for t in wanted if t in truncated}, height=2)
    with pytest.raises(CorruptTiles):
        merkle.root_hash(size, TileNodeReader(lambda wanted: {t: truncated[t] for t in wanted}, height=2))
    missing = {t: c for t, c in store.tiles.items() if t != edge}
    with pytest.raises(CorruptTiles):
        append_leaves(size, _leaves(1), lambda wanted: {t: missing[t] for t in wanted if t in missing}, height=2)
    with pytest.raises(CorruptTiles):
        merkle.root_hash(size, TileNodeReader(lambda wanted: {t: missing[t] for t in wanted if t in missing}, height=2))
    ragged = dict(store.tiles)
    ragged[edge] = ragged[edge] + b"x"
    with pytest.raises(CorruptTiles):
        append_leaves(size, _leaves(1), lambda wanted: {t: ragged[t] for t in wanted}, height=2)
    assert merkle.root_hash(size, store.nodes()) == store.root


def test_an_altered_tile_changes_the_root() -> None:
    """A rewritten hash in any tile is caught by recomputing the signed root."""
    store = TileStore(2)
    store.append(_leaves(37))
    for tile, content in store.tiles.items():
        for offset in range(0, len(content), 32):
            altered = dict(store.tiles)
            altered[tile] = content[:offset] + bytes(32) + content[offset + 32 :]
            reader = TileNodeReader(lambda wanted, a=altered: {t: a[t] for t in wanted}, height=2)  # type: ignore[misc]
            root = merkle.root_hash(37, reader)
            # Only hashes the root is computed from can change it; the others are caught by
            # recomputing the tree from the entries (the server's integrity check).
            if root == store.root:
                assert not _covers_root(tile, offset // 32, 37, height=2)
            else:
                assert _covers_root(tile, offset // 32, 37, height=2)


def _covers_root(tile: Tile, position: int, size: int, *, height: int) -> bool:
    """Whether hash `position` of `tile` is read to compute the root of a tree of `size`."""
    for node in merkle.perfect_nodes(0, size):
        tile_level, depth = divmod(node.level, height)
        first = node.index << depth
        if Tile(tile_level, first >> height) == tile and (first & ((1 << height) - 1)) <= position < (
            first & ((1 << height) - 1)
        ) + (1 << depth):
            return True
    return False


def test_bad_leaves_and_sizes_are_refused() -> None:
    store = TileStore(TILE_HEIGHT)
    with pytest.raises(ValueError):
        store.append([b"short"])
    with pytest.raises(ValueError):
        append_leaves(-1, [], store.read)
    with pytest.raises(ValueError):
        append_leaves((1 << 63) - 1, _leaves(1), store.read)
    assert store.tiles == {}


def test_a_shared_cache_gives_the_same_hashes_and_follows_a_growing_tile() -> None:
    store = TileStore(TILE_HEIGHT)
    leaves = _leaves(70_000)
    store.append(leaves[:69_990])
    cache = TileHashCache(max_tiles=3)
    cached = TileNodeReader(store.read, cache=cache)
    rng = random.Random(5)
    for _ in range(50):
        size = rng.randrange(1, store.size + 1)
        index = rng.randrange(size)
        assert merkle.inclusion_proof(index, size, cached) == merkle.inclusion_proof(index, size, store.nodes())
    assert len(cache) == 3
    before = merkle.root_hash(store.size, cached)
    store.append(leaves[69_990:])  # the partial tiles grow: their cached hashes are keyed by width
    assert merkle.root_hash(69_990, cached) == before
    assert merkle.root_hash(70_000, cached) == store.root == merkle.root_hash(70_000, store.nodes())
    with pytest.raises(ValueError):
        TileHashCache(max_tiles=0)


def test_the_shared_cache_never_stands_in_for_changed_bytes() -> None:
    store = TileStore(TILE_HEIGHT)
    store.append(_leaves(5_000))
    cached = TileNodeReader(store.read, cache=TileHashCache())
    edge = 5_000 >> TILE_HEIGHT
    # A full tile and the partial edge tile rewritten in place, their widths kept.
    for tile, index in ((Tile(0, 3), 3 * 256 + 7), (Tile(0, edge), edge * 256 + 7)):
        before = merkle.inclusion_proof(index, store.size, cached), merkle.root_hash(store.size, cached)
        content = bytearray(store.tiles[tile])
        content[40] ^= 1
        store.tiles[tile] = bytes(content)
        after = merkle.inclusion_proof(index, store.size, store.nodes()), merkle.root_hash(store.size, store.nodes())

        assert after != before
        assert (merkle.inclusion_proof(index, store.size, cached), merkle.root_hash(store.size, cached)) == after


def test_a_sequencers_cache_follows_the_edge_batch_after_batch_and_a_rolled_back_batch() -> None:
    cache = TileHashCache(max_tiles=8)
    store = TileStore(TILE_HEIGHT)
    plain = TileStore(TILE_HEIGHT)
    leaves = _leaves(3_000, seed=7)
    rng = random.Random(8)
    position = 0
    while position < len(leaves):
        batch = leaves[position : position + rng.randrange(1, 300)]
        if rng.random() < 0.2:  # a batch computed and never written (its transaction rolled back)
            append_leaves(store.size, _leaves(len(batch), seed=position), store.read, cache=cache)
        update = append_leaves(store.size, batch, store.read, cache=cache)
        store.tiles.update(update.tiles)
        store.size, store.root = update.size, update.root_hash
        plain.append(batch)
        position += len(batch)

        assert store.root == plain.root
        assert merkle.root_hash(store.size, TileNodeReader(store.read, cache=cache)) == plain.root
