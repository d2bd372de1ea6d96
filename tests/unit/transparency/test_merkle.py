"""The Merkle core against the RFC 9162 definitions, transcribed in `reference`.

Every root, inclusion proof and consistency proof of every tree up to 64 entries equals the
recursive definitions; every proof fails once any of its inputs changes; the node reader is
called once, for O(log n) nodes; bad arguments raise.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from charter.transparency import merkle
from charter.transparency.merkle import CompactRange, InvalidProof, Node

from . import reference

ENTRIES = [f"entry {i}".encode() for i in range(64)]
LEAVES = [merkle.leaf_hash(e) for e in ENTRIES]


class Store:
    """Every complete subtree's hash, from a CompactRange; counts the reader's calls."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.nodes: dict[Node, bytes] = {}
        compact = CompactRange()
        for leaf in leaves:
            self.nodes.update(compact.append(leaf))
        self.calls: list[list[Node]] = []

    def __call__(self, wanted: Sequence[Node]) -> list[bytes]:
        self.calls.append(list(wanted))
        return [self.nodes[node] for node in wanted]


STORE = Store(LEAVES)


def test_roots_proofs_and_paths_equal_the_definitions_for_every_small_tree() -> None:
    for size in range(1, len(ENTRIES) + 1):
        entries = ENTRIES[:size]
        root = merkle.root_hash(size, STORE)
        assert root == reference.mth(entries)
        for index in range(size):
            audit = merkle.inclusion_proof(index, size, STORE)
            assert audit == reference.path(index, entries)
            merkle.verify_inclusion(LEAVES[index], index, size, audit, root)
        for size1 in range(1, size + 1):
            consistency = merkle.consistency_proof(size1, size, STORE)
            assert consistency == reference.proof(size1, entries)
            merkle.verify_consistency(size1, size, consistency, reference.mth(ENTRIES[:size1]), root)


def test_the_empty_tree() -> None:
    assert merkle.root_hash(0, STORE) == reference.mth([]) == merkle.EMPTY_ROOT
    assert CompactRange().root() == merkle.EMPTY_ROOT


def test_every_changed_input_fails_an_inclusion_proof() -> None:
    size, index = 45, 21
    root = merkle.root_hash(size, STORE)
    audit = merkle.inclusion_proof(index, size, STORE)
    for position in range(len(audit)):
        tampered = list(audit)
        tampered[position] = bytes([tampered[position][0] ^ 1]) + tampered[position][1:]
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(LEAVES[index], index, size, tampered, root)
    attempts = [
        (LEAVES[index + 1], index, size, audit, root),
        (LEAVES[index], index + 1, size, audit, root),
        # Sizes whose path has the same shape (44 to 47 here) give the same root: the checkpoint
        # binds the root to its size. Sizes of another shape fail.
        (LEAVES[index], index, size * 2, audit, root),
        (LEAVES[index], index, 32, audit, root),
        (LEAVES[index], index, size, audit[:-1], root),
        (LEAVES[index], index, size, [*audit, root], root),
        (LEAVES[index], index, size, list(reversed(audit)), root),
        (LEAVES[index], index, size, audit, merkle.root_hash(size - 1, STORE)),
        (LEAVES[index], size, size, audit, root),
        (LEAVES[index], -1, size, audit, root),
        (LEAVES[index][:31], index, size, audit, root),
        (LEAVES[index], index, size, [*audit[:-1], audit[-1][:31]], root),
        (LEAVES[index], index, size, audit, root[:31]),
    ]
    for leaf, i, n, path, expected in attempts:
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(leaf, i, n, path, expected)
    merkle.verify_inclusion(LEAVES[index], index, size, audit, root)


def test_every_changed_input_fails_a_consistency_proof() -> None:
    size1, size2 = 13, 50
    root1, root2 = merkle.root_hash(size1, STORE), merkle.root_hash(size2, STORE)
    consistency = merkle.consistency_proof(size1, size2, STORE)
    for position in range(len(consistency)):
        tampered = list(consistency)
        tampered[position] = bytes(32)
        with pytest.raises(InvalidProof):
            merkle.verify_consistency(size1, size2, tampered, root1, root2)
    other = merkle.root_hash(size1 + 1, STORE)
    attempts = [
        (size1 + 1, size2, consistency, root1, root2),
        (size1, size2 * 2, consistency, root1, root2),
        (size1, size2, consistency[:-1], root1, root2),
        (size1, size2, [*consistency, root1], root1, root2),
        (size1, size2, consistency, other, root2),
        (size1, size2, consistency, root1, other),
        (size2, size1, consistency, root2, root1),
        (0, size2, consistency, merkle.EMPTY_ROOT, root2),
        (size1, size2, [], root1, root2),
        (size1, size1, consistency, root1, root1),
        (size1, size1, [], root1, root2),
    ]
    for s1, s2, proof, r1, r2 in attempts:
        with pytest.raises(InvalidProof):
            merkle.verify_consistency(s1, s2, proof, r1, r2)
    merkle.verify_consistency(size1, size2, consistency, root1, root2)
    merkle.verify_consistency(size1, size1, [], root1, root1)


def test_a_rewritten_or_reordered_log_is_not_consistent_with_its_earlier_root() -> None:
    earlier = merkle.root_hash(40, STORE)
    for change in range(40):
        rewritten = list(LEAVES)
        rewritten[change] = merkle.leaf_hash(b"rewritten")
        store = Store(rewritten)
        with pytest.raises(InvalidProof):
            merkle.verify_consistency(
                40, 64, merkle.consistency_proof(40, 64, store), earlier, merkle.root_hash(64, store)
            )
    swapped = list(LEAVES)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    store = Store(swapped)
    with pytest.raises(InvalidProof):
        merkle.verify_consistency(40, 64, merkle.consistency_proof(40, 64, store), earlier, merkle.root_hash(64, store))


def test_a_proof_reads_its_nodes_in_one_call_of_logarithmic_size() -> None:
    rng = random.Random(7)
    leaves = [rng.randbytes(32) for _ in range(5000)]
    store = Store(leaves)
    for _ in range(200):
        size = rng.randrange(2, len(leaves) + 1)
        index, size1 = rng.randrange(size), rng.randrange(1, size + 1)
        store.calls.clear()
        audit = merkle.inclusion_proof(index, size, store)
        consistency = merkle.consistency_proof(size1, size, store)
        root = merkle.root_hash(size, store)
        assert len(store.calls) == 3
        assert all(len(call) == len(set(call)) <= 2 * size.bit_length() for call in store.calls)
        merkle.verify_inclusion(leaves[index], index, size, audit, root)
        merkle.verify_consistency(size1, size, consistency, merkle.root_hash(size1, store), root)


def test_bad_arguments_raise_before_reading() -> None:
    STORE.calls.clear()
    for call in (
        lambda: merkle.inclusion_proof(5, 5, STORE),
        lambda: merkle.inclusion_proof(-1, 5, STORE),
        lambda: merkle.inclusion_proof(0, 0, STORE),
        lambda: merkle.inclusion_proof(0, 1 << 63, STORE),
        lambda: merkle.consistency_proof(0, 5, STORE),
        lambda: merkle.consistency_proof(6, 5, STORE),
        lambda: merkle.consistency_proof(True, 5, STORE),
        lambda: merkle.root_hash(-1, STORE),
    ):
        with pytest.raises(ValueError):
            call()
    assert STORE.calls == []


def test_a_reader_answering_wrongly_raises() -> None:
    with pytest.raises(ValueError):
        merkle.root_hash(5, lambda nodes: [bytes(32)])
    with pytest.raises(ValueError):
        merkle.root_hash(5, lambda nodes: [b"short"] * len(nodes))
    empty: dict[Node, bytes] = {}
    with pytest.raises(KeyError):
        merkle.root_hash(5, lambda nodes: [empty[node] for node in nodes])


def test_perfect_nodes_cover_a_range_exactly() -> None:
    for start in range(40):
        for end in range(start, 80):
            nodes = merkle.perfect_nodes(start, end)
            covered = [leaf for node in nodes for leaf in range(node.start, node.end)]
            assert covered == list(range(start, end))
    assert merkle.perfect_nodes(0, 13) == [Node(3, 0), Node(2, 2), Node(0, 12)]


def test_compact_range_reports_the_nodes_it_completes() -> None:
    compact = CompactRange()
    assert compact.append(LEAVES[0]) == [(Node(0, 0), LEAVES[0])]
    completed = compact.append(LEAVES[1])
    assert completed == [(Node(0, 1), LEAVES[1]), (Node(1, 0), merkle.node_hash(LEAVES[0], LEAVES[1]))]
    compact.extend(LEAVES[2:13])
    assert compact.size == 13
    assert [node for node, _ in compact.nodes()] == merkle.perfect_nodes(0, 13)
    assert compact.root() == reference.mth(ENTRIES[:13])
    with pytest.raises(ValueError):
        compact.append(b"not a hash")
    assert compact.size == 13
