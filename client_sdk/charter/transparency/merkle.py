"""RFC 9162 Merkle trees: hashing, proofs from stored subtree hashes, and their verification.

The log is the Merkle tree of RFC 9162 §2.1 (the same as RFC 6962 §2.1) over SHA-256::

    leaf hash  = SHA-256(0x00 || entry)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")
    MTH(D[n])  = node hash(MTH(D[0:k]), MTH(D[k:n]))   for n > 1, k the largest power of 2 < n

Proofs are built from the hashes of *complete* subtrees only (a `Node`: ``2**level`` leaves
starting at ``index * 2**level``), because those never change once the log has grown past
them; storage keeps them (directly, or as C2SP tiles, see `charter.transparency.tiles`). A
proof needs at most two such hashes per tree level, and they are asked for in one call of a
`NodeReader`, so a database answers any proof with one query of O(log n) rows.

Verification follows the algorithms of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
(consistency) to the letter, and raises `InvalidProof` on any failure.

Everything here is pure: no I/O, no global state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "InvalidProof",
    "Node",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "perfect_nodes",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
"""The size of every hash of the tree, in bytes (SHA-256)."""

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""The root hash of the empty tree: SHA-256 of the empty string."""

MAX_TREE_SIZE: Final = 1 << 63
"""Sizes and indexes are below this bound (they travel as signed 64-bit integers)."""

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


class InvalidProof(ValueError):
    """A proof does not verify, or its sizes, indexes or hashes are malformed."""


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Node:
    """A complete subtree: ``2**level`` leaves starting at leaf ``index * 2**level``.

    Level 0 nodes are leaves (their hash is the leaf hash); the hash of a node at level
    ``l > 0`` is the node hash of its two children at level ``l - 1``.

    Attributes:
        level: The height of the subtree, from 0.
        index: The position of the subtree among those of its level, from 0.
    """

    level: int
    index: int

    @property
    def start(self) -> int:
        """The index of the first leaf the subtree covers."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """The index after the last leaf the subtree covers."""
        return (self.index + 1) << self.level


NodeReader = Callable[[Sequence[Node]], Sequence[bytes]]
"""Answers the hashes of complete subtrees, in the order asked.

A proof or root calls its reader once, with distinct nodes that all lie within the tree size
asked about. A reader raises (for example `KeyError`) when it does not have a node: a
storage failure must never become a wrong proof.
"""


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash of an entry: ``SHA-256(0x00 || entry)``.

    Args:
        entry: The entry's bytes, exactly as logged.

    Returns:
        The 32-byte leaf hash.
    """
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 hash of an interior node: ``SHA-256(0x01 || left || right)``.

    Args:
        left: The hash of the left child.
        right: The hash of the right child.

    Returns:
        The 32-byte node hash.
    """
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(width: int) -> int:
    """The largest power of two smaller than ``width`` (which is at least 2)."""
    return 1 << ((width - 1).bit_length() - 1)


def perfect_nodes(start: int, end: int) -> list[Node]:
    """Return the complete subtrees that cover the leaves ``[start, end)``, left to right.

    For a range that starts at 0, or at a multiple of a power of two not smaller than its
    width (every range in a proof does), the nodes get smaller from left to right, and the
    range's Merkle tree hash is their hashes folded from the right: ``H(a, H(b, c))``.

    Args:
        start: The first leaf.
        end: The leaf after the last; ``start <= end``.

    Returns:
        The nodes; empty for an empty range.
    """
    nodes: list[Node] = []
    while start < end:
        # The biggest aligned block that starts at `start` and fits before `end`.
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        nodes.append(Node(level, start >> level))
        start += 1 << level
    return nodes


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of a range from the hashes of its `perfect_nodes`."""
    result = hashes[-1]
    for value in reversed(hashes[:-1]):
        result = node_hash(value, result)
    return result


def _check_size(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_TREE_SIZE:
        raise ValueError(f"{name} must be an integer from 0 to 2**63 - 1")


def _range_hashes(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    """The Merkle tree hash of each range, with one call of ``read`` for all their nodes."""
    covers = [perfect_nodes(start, end) for start, end in ranges]
    wanted = list(dict.fromkeys(node for nodes in covers for node in nodes))
    if not wanted:
        return []
    answered = read(wanted)
    if len(answered) != len(wanted):
        raise ValueError(f"the node reader answered {len(answered)} hashes for {len(wanted)} nodes")
    for value in answered:
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ValueError("the node reader answered a value that is not a 32-byte hash")
    by_node = dict(zip(wanted, answered, strict=True))
    return [_fold([by_node[node] for node in nodes]) for nodes in covers]


def root_hash(size: int, read: NodeReader) -> bytes:
    """Return the root hash of the tree of the first ``size`` leaves.

    Args:
        size: The tree size.
        read: Answers hashes of complete subtrees (see `NodeReader`).

    Returns:
        The root hash; `EMPTY_ROOT` for size 0 (``read`` is not called).

    Raises:
        ValueError: ``size`` is out of range.
    """
    _check_size("size", size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hashes([(0, size)], read)[0]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PATH(index, D[0:size]) of RFC 9162 §2.1.3.1."""
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()  # the path runs from the leaf's sibling up to the root's child
    return ranges


def _consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PROOF(size1, D[0:size2]) of RFC 9162 §2.1.4.1."""
    ranges: list[tuple[int, int]] = []
    start, end, m, whole = 0, size2, size1, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()  # SUBPROOF lists the deepest hash first
    return ranges


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Args:
        index: The leaf's index, from 0.
        size: The tree size; ``index < size``.
        read: Answers hashes of complete subtrees (see `NodeReader`); called at most once,
            for at most ``2 * log2(size)`` nodes.

    Returns:
        The audit path, from the leaf's sibling up to a child of the root.

    Raises:
        ValueError: ``index`` or ``size`` is out of range.
    """
    _check_size("size", size)
    _check_size("index", index)
    if index >= size:
        raise ValueError("index must be smaller than size")
    return _range_hashes(_inclusion_ranges(index, size), read)


def consistency_proof(size1: int, size2: int, read: NodeReader) -> list[bytes]:
    """Return the RFC 9162 consistency proof between the trees of ``size1`` and ``size2`` leaves.

    Args:
        size1: The smaller tree size; at least 1 (every tree extends the empty one, so there is
            nothing to prove from size 0).
        size2: The larger tree size; ``size1 <= size2``. Equal sizes give an empty proof.
        read: Answers hashes of complete subtrees (see `NodeReader`); called at most once.

    Returns:
        The proof, in the order of RFC 9162 §2.1.4.1.

    Raises:
        ValueError: A size is out of range, ``size1`` is 0 or larger than ``size2``.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 == 0 or size1 > size2:
        raise ValueError("size1 must be from 1 to size2")
    return _range_hashes(_consistency_ranges(size1, size2), read)


def _check_hash(name: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise InvalidProof(f"{name} is not a {HASH_SIZE}-byte hash")
    return bytes(value)


def _check_proof_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        try:
            _check_size(name, value)
        except ValueError as error:
            raise InvalidProof(str(error)) from None


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _shift_until_odd_or_zero(fn: int, sn: int) -> tuple[int, int]:
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root hash that an inclusion proof leads to (RFC 9162 §2.1.3.2).

    Args:
        leaf: The leaf hash (see `leaf_hash`), not the entry.
        index: The leaf's index.
        size: The tree size.
        proof: The audit path.

    Returns:
        The root hash the path computes; compare it with a trusted root (`verify_inclusion`
        does).

    Raises:
        InvalidProof: ``index`` is not below ``size``, a hash is not 32 bytes, or the path
            has the wrong length for ``index`` and ``size``.
    """
    _check_proof_sizes(index=index, size=size)
    if index >= size:
        raise InvalidProof("index must be smaller than size")
    result = _check_hash("leaf", leaf)
    fn, sn = index, size - 1
    for position, element in enumerate(proof):
        sibling = _check_hash(f"proof[{position}]", element)
        if sn == 0:
            raise InvalidProof("the proof is longer than the path from the leaf to the root")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                fn, sn = _shift_until_odd_or_zero(fn, sn)
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("the proof is shorter than the path from the leaf to the root")
    return result


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Verify that leaf ``index`` of the tree of ``size`` leaves with root ``root`` is ``leaf``.

    Args:
        leaf: The leaf hash (see `leaf_hash`).
        index: The leaf's index.
        size: The tree size.
        proof: The audit path, as `inclusion_proof` makes it.
        root: The trusted root hash of the tree of ``size`` leaves (from a verified checkpoint).

    Raises:
        InvalidProof: The proof does not lead to ``root``, or is malformed.
    """
    expected = _check_hash("root", root)
    if not _equal(root_from_inclusion_proof(leaf, index, size, proof), expected):
        raise InvalidProof("the inclusion proof does not lead to the root")


def root_from_consistency_proof(size1: int, size2: int, proof: Sequence[bytes], root1: bytes) -> bytes:
    """Check a consistency proof against the older root; return the newer root it leads to.

    The algorithm is RFC 9162 §2.1.4.2: the proof must rebuild ``root1`` and yields the root
    of the tree of ``size2`` leaves.

    Args:
        size1: The older tree size, at least 1.
        size2: The newer tree size, at least ``size1``.
        proof: The consistency proof.
        root1: The trusted root of the older tree.

    Returns:
        The root hash of the newer tree that the proof computes.

    Raises:
        InvalidProof: The sizes are inverted or ``size1`` is 0, a hash is not 32 bytes, the
            proof has the wrong length, or it does not rebuild ``root1``.
    """
    _check_proof_sizes(size1=size1, size2=size2)
    first = _check_hash("root1", root1)
    path = [_check_hash(f"proof[{i}]", element) for i, element in enumerate(proof)]
    if size1 == 0:
        raise InvalidProof("a consistency proof from the empty tree proves nothing")
    if size1 > size2:
        raise InvalidProof("size1 must not be larger than size2")
    if size1 == size2:
        if path:
            raise InvalidProof("equal sizes need an empty proof")
        return first
    if not path:
        raise InvalidProof("the proof is empty")
    if size1 & (size1 - 1) == 0:
        path.insert(0, first)  # the older tree is a complete subtree: its root starts the path
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("the proof is longer than the trees need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_until_odd_or_zero(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("the proof is shorter than the trees need")
    if not _equal(fr, first):
        raise InvalidProof("the consistency proof does not rebuild the older root")
    return sr


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Verify that the tree of ``size2`` leaves (root ``root2``) extends that of ``size1``.

    Args:
        size1: The older tree size, at least 1.
        size2: The newer tree size, at least ``size1``.
        proof: The consistency proof, as `consistency_proof` makes it.
        root1: The trusted root of the older tree.
        root2: The trusted root of the newer tree.

    Raises:
        InvalidProof: The proof does not link the two roots (a fork or a rewrite of the log),
            or is malformed.
    """
    expected = _check_hash("root2", root2)
    if not _equal(root_from_consistency_proof(size1, size2, proof, root1), expected):
        raise InvalidProof("the consistency proof does not lead to the newer root")


class CompactRange:
    """The root of a growing tree in O(log n) memory: append leaf hashes, read the root.

    It keeps the hashes of the complete subtrees on the tree's right edge, so recomputing a
    log of any size from an export needs no storage. `nodes` lists them, for example to seed
    a store.

    Example:
        ```python
        tree = CompactRange()
        for entry in entries:
            tree.append(leaf_hash(entry))
        assert tree.root() == checkpoint.root_hash
        ```
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # one per set bit of the size, largest subtree first

    @property
    def size(self) -> int:
        """The number of leaves appended."""
        return self._size

    def append(self, leaf: bytes) -> list[tuple[Node, bytes]]:
        """Append a leaf hash.

        Args:
            leaf: The leaf hash (see `leaf_hash`).

        Returns:
            The complete subtrees this leaf completes, with their hashes: the leaf itself
            first, then each parent it closes, lowest first.

        Raises:
            ValueError: ``leaf`` is not a 32-byte hash.
        """
        if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        index = self._size
        completed = [(Node(0, index), leaf)]
        value, level = leaf, 0
        while index & 1:
            value = node_hash(self._hashes.pop(), value)
            index >>= 1
            level += 1
            completed.append((Node(level, index), value))
        self._hashes.append(value)
        self._size += 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append several leaf hashes, in order.

        Faster than `append` one by one (it returns no nodes): recomputing a log of millions of
        entries from an export is mostly this loop.

        Raises:
            ValueError: A leaf is not a 32-byte hash; those before it are appended.
        """
        hashes, size, sha256 = self._hashes, self._size, hashlib.sha256
        try:
            for leaf in leaves:
                if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
                    raise ValueError("a leaf hash is 32 bytes")
                index, value = size, leaf
                while index & 1:
                    value = sha256(_NODE_PREFIX + hashes.pop() + value).digest()
                    index >>= 1
                hashes.append(value)
                size += 1
        finally:
            self._size = size

    def nodes(self) -> Iterator[tuple[Node, bytes]]:
        """The complete subtrees on the right edge, largest (leftmost) first, with their hashes."""
        yield from zip(perfect_nodes(0, self._size), self._hashes, strict=True)

    def root(self) -> bytes:
        """The root hash of the tree of every leaf appended; `EMPTY_ROOT` when there is none."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT
