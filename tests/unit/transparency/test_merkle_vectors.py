"""The Merkle core against vectors and an implementation written by others.

* the RFC 6962/9162 proof probes of transparency-dev/merkle (the Go library behind Trillian,
  Tessera and the public witness network): every happy path verifies, every mangled one fails;
* the RFC 6962 hasher vectors of the same library;
* pymerkle, a maintained Python Merkle tree library: its roots equal ours for every size, and
  its verifier accepts our inclusion proofs (its path format differs from RFC 9162's: the
  leaf first, then ours, with its own direction bits).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from charter.transparency import merkle
from charter.transparency.merkle import InvalidProof
from pymerkle import InmemoryTree
from pymerkle.core import _inclusion_path_layout
from pymerkle.proof import InclusionProof
from pymerkle.proof import InvalidProof as PymerkleInvalidProof
from pymerkle.proof import verify_inclusion as pymerkle_verify_inclusion

DATA = Path(__file__).resolve().parents[2] / "data" / "transparency"


def _probes(kind: str) -> list[tuple[str, dict[str, Any]]]:
    probes = json.loads((DATA / f"transparency-dev-merkle-{kind}.json").read_text(encoding="utf-8"))
    return sorted(probes.items())


def _hashes(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


INCLUSION = _probes("inclusion")
CONSISTENCY = _probes("consistency")
# Probes Go accepts and we refuse on purpose: Go compares the two "roots" of equal sizes byte for
# byte whatever their length, while every hash here must be 32 bytes.
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def test_the_vector_files_hold_both_outcomes() -> None:
    for probes in (INCLUSION, CONSISTENCY):
        assert len(probes) > 90
        assert {p["wantErr"] for _, p in probes} == {True, False}


@pytest.mark.parametrize(("name", "probe"), INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_probe(name: str, probe: dict[str, Any]) -> None:
    def verify() -> None:
        merkle.verify_inclusion(
            base64.b64decode(probe["leafHash"] or ""),
            probe["leafIdx"],
            probe["treeSize"],
            _hashes(probe["proof"]),
            base64.b64decode(probe["root"] or ""),
        )

    if probe["wantErr"]:
        with pytest.raises(InvalidProof) as raised:
            verify()
        assert isinstance(raised.value, ValueError)
    else:
        verify()


@pytest.mark.parametrize(("name", "probe"), CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_probe(name: str, probe: dict[str, Any]) -> None:
    def verify() -> None:
        merkle.verify_consistency(
            probe["size1"],
            probe["size2"],
            _hashes(probe["proof"]),
            base64.b64decode(probe["root1"] or ""),
            base64.b64decode(probe["root2"] or ""),
        )

    if probe["wantErr"] or name in STRICTER:
        with pytest.raises(InvalidProof) as raised:
            verify()
        assert isinstance(raised.value, ValueError)
    else:
        verify()


def test_the_stricter_probes_differ_only_in_their_roots_lengths() -> None:
    for name, probe in CONSISTENCY:
        if name in STRICTER:
            assert not probe["wantErr"] and probe["size1"] == probe["size2"] and probe["root1"] == probe["root2"]
            assert len(base64.b64decode(probe["root1"])) != merkle.HASH_SIZE


def test_rfc6962_hasher_vectors() -> None:
    # From transparency-dev/merkle rfc6962/rfc6962_test.go (each derivable with sha256sum).
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert (
        merkle.node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def _entries(count: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(count)]


@pytest.fixture(scope="module")
def other() -> tuple[InmemoryTree, list[bytes], dict[merkle.Node, bytes]]:
    """A pymerkle tree of 300 entries, the same entries, and every complete subtree's hash."""
    entries = _entries(300)
    tree = InmemoryTree(algorithm="sha256")
    for entry in entries:
        tree.append_entry(entry)
    nodes: dict[merkle.Node, bytes] = {}
    compact = merkle.CompactRange()
    for entry in entries:
        nodes.update(compact.append(merkle.leaf_hash(entry)))
    return tree, entries, nodes


def _reader(nodes: dict[merkle.Node, bytes]) -> merkle.NodeReader:
    return lambda wanted: [nodes[node] for node in wanted]


def test_roots_equal_pymerkle_for_every_size(other: tuple[InmemoryTree, list[bytes], dict[merkle.Node, bytes]]) -> None:
    tree, entries, nodes = other
    compact = merkle.CompactRange()
    for size in range(1, len(entries) + 1):
        compact.append(merkle.leaf_hash(entries[size - 1]))
        assert merkle.root_hash(size, _reader(nodes)) == tree.get_root(size), size
        assert compact.root() == tree.get_root(size), size
        assert merkle.leaf_hash(entries[size - 1]) == tree.get_leaf(size)  # pymerkle counts from 1


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300])
def test_pymerkle_verifies_our_inclusion_proofs(
    size: int, other: tuple[InmemoryTree, list[bytes], dict[merkle.Node, bytes]]
) -> None:
    tree, entries, nodes = other
    root = tree.get_root(size)
    for index in range(size):
        ours = merkle.inclusion_proof(index, size, _reader(nodes))
        theirs = tree.prove_inclusion(index + 1, size)
        assert theirs.path[1:] == ours
        rule, _ = _inclusion_path_layout(index + 1, size)
        rebuilt = InclusionProof("sha256", True, size, index + 1, rule, [merkle.leaf_hash(entries[index]), *ours])
        pymerkle_verify_inclusion(merkle.leaf_hash(entries[index]), root, rebuilt, index=index + 1, size=size)
        merkle.verify_inclusion(merkle.leaf_hash(entries[index]), index, size, theirs.path[1:], root)


def test_pymerkle_rejects_a_tampered_proof_of_ours(
    other: tuple[InmemoryTree, list[bytes], dict[merkle.Node, bytes]],
) -> None:
    """The cross-check can fail: pymerkle refuses our proof once a hash in it changes."""
    tree, entries, nodes = other
    ours = merkle.inclusion_proof(5, 100, _reader(nodes))
    ours[2] = bytes(32)
    rule, _ = _inclusion_path_layout(6, 100)
    rebuilt = InclusionProof("sha256", True, 100, 6, rule, [merkle.leaf_hash(entries[5]), *ours])

    with pytest.raises(PymerkleInvalidProof):
        pymerkle_verify_inclusion(merkle.leaf_hash(entries[5]), tree.get_root(100), rebuilt, index=6, size=100)

    assert tree.get_root(100) == merkle.root_hash(100, _reader(nodes))


@pytest.mark.parametrize(
    ("size1", "size2"), [(1, 2), (1, 300), (3, 7), (4, 8), (8, 9), (100, 256), (255, 257), (299, 300)]
)
def test_our_consistency_proofs_link_pymerkle_roots(
    size1: int, size2: int, other: tuple[InmemoryTree, list[bytes], dict[merkle.Node, bytes]]
) -> None:
    """pymerkle's consistency paths are not RFC 9162's, so the check is against its roots."""
    tree, _, nodes = other
    consistency = merkle.consistency_proof(size1, size2, _reader(nodes))

    merkle.verify_consistency(size1, size2, consistency, tree.get_root(size1), tree.get_root(size2))
    with pytest.raises(InvalidProof):
        merkle.verify_consistency(size1, size2, consistency, tree.get_root(size1), tree.get_root(size2 - 1))
