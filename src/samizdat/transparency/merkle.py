"""The Merkle tree of RFC 9162 (Certificate Transparency 2.0) section 2.1, as pure functions.

One root hash commits to every entry of a log and to their order. Two kinds of proof let anyone
audit the log without trusting whoever runs it:

- an **inclusion proof** (``PATH``, 2.1.3) shows that a leaf sits at an index of a tree;
- a **consistency proof** (``PROOF``, 2.1.4) shows that an older tree is a prefix of a newer
  one, i.e. that the log only ever appended.

Shape (2.1.1): a tree of n > 1 leaves splits at k, the largest power of two smaller than n, and
its left subtree holds the first k leaves. Leaves and interior nodes hash under different
prefixes (``SHA-256(0x00 || entry)`` and ``SHA-256(0x01 || left || right)``), so a leaf can
never pass for a node.

Everything here takes leaf *hashes* (hash each entry once with ``leaf_hash``), does no I/O and
keeps no state. The builders (``root_hash``, ``inclusion_proof``, ``consistency_proof``) run on
the log's own data and raise ``ValueError`` for bad arguments. The verifiers follow the
algorithms of 2.1.3.2 and 2.1.4.2 step by step and raise ``ProofError`` (a ``ValueError``) for
anything that does not verify, malformed input from the network included.

A root vouches for its tree size only through whatever signs the two together (a signed tree
head): sizes that give a leaf the same path shape recompute the same root from the same proof,
so verify against a size and root that were signed as a pair.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "HASH_SIZE",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_MAX_TREE_SIZE = 2**64 - 1  # tree sizes and indices are uint64 on the wire (RFC 9162 4.1)
_EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = HASH()


class ProofError(ValueError):
    """A proof does not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash of one log entry, ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an interior node, ``SHA-256(0x01 || left || right)``.

    Lengths are not checked here; the verifiers check every hash before combining it.
    """
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return ``MTH(D[n])`` of 2.1.1 in O(n); the empty tree's root is ``SHA-256(b"")``.

    Raises:
        ValueError: a leaf hash is not ``HASH_SIZE`` bytes.
    """
    _check_leaves(leaf_hashes)
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return ``PATH(index, D[n])`` of 2.1.3.1: the sibling hashes from the leaf up to the root.

    Costs O(n) hashes, since each sibling subtree is hashed once.

    Raises:
        ValueError: ``index`` is not in ``0..n-1``, or a leaf hash is not ``HASH_SIZE`` bytes.
    """
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of {size} leaves")
    _check_leaves(leaf_hashes)
    # The RFC's recursion, walked from the root down; it lists siblings from the leaf up.
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(_subtree_root(leaf_hashes, start + k, end))
            end = start + k
        else:
            path.append(_subtree_root(leaf_hashes, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return ``PROOF(old_size, D[n])`` of 2.1.4.1; empty when ``old_size == n``.

    Raises:
        ValueError: ``old_size`` is not in ``1..n``, or a leaf hash is not ``HASH_SIZE`` bytes.
    """
    size = len(leaf_hashes)
    if not 0 < old_size <= size:
        raise ValueError(f"old tree size {old_size} is outside 1..{size}")
    _check_leaves(leaf_hashes)
    # SUBPROOF(m, D[start:end], b) walked from the root down; m counts from ``start``.
    proof: list[bytes] = []
    start, end, m = 0, size, old_size
    old_root_is_a_node = True  # the RFC's b: the old root is a node of the new tree
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(_subtree_root(leaf_hashes, start + k, end))
            end = start + k
        else:
            proof.append(_subtree_root(leaf_hashes, start, start + k))
            start, m = start + k, m - k
            old_root_is_a_node = False
    if not old_root_is_a_node:
        proof.append(_subtree_root(leaf_hashes, start, end))
    proof.reverse()
    return proof


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is at ``index`` of the tree of ``tree_size`` with ``root``.

    This is the algorithm of 2.1.3.2. It reads at most 64 proof elements, however long
    ``proof`` is.

    Raises:
        ProofError: the proof does not verify, or an argument is malformed (a negative or
            over-uint64 size or index, a hash that is not ``HASH_SIZE`` bytes).
    """
    _check_count("leaf index", index)
    _check_count("tree size", tree_size)
    _check_hash("leaf hash", leaf)
    _check_hash("root hash", root)
    if index >= tree_size:
        raise ProofError(f"leaf index {index} is not below tree size {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for position, p in enumerate(proof):
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path from the leaf to the root")
        _check_hash(f"inclusion proof element {position}", p)
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path from the leaf to the root")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the newer one.

    This is the algorithm of 2.1.4.2 for ``0 < old_size < new_size``. The RFC leaves the other
    cases to the caller; here equal sizes need an empty proof and equal roots, and an old size
    of 0 needs an empty proof and the empty tree's root (``root_hash([])``), since the empty
    tree is a prefix of every tree.

    Raises:
        ProofError: the proof does not verify, or an argument is malformed (a negative or
            over-uint64 size, ``old_size > new_size``, a hash that is not ``HASH_SIZE`` bytes).
    """
    _check_count("old tree size", old_size)
    _check_count("new tree size", new_size)
    _check_hash("old root hash", old_root)
    _check_hash("new root hash", new_root)
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0 or old_size == new_size:
        if len(proof) != 0:
            raise ProofError("consistency proof must be empty from an empty tree or to itself")
        if old_size == 0 and old_root != _EMPTY_ROOT:
            raise ProofError("old root hash is not the root of an empty tree")
        if old_size == new_size and old_root != new_root:
            raise ProofError("trees of the same size have different root hashes")
        return
    if len(proof) == 0:
        raise ProofError("consistency proof is empty")
    # Step 2: when the old tree is a perfect subtree, its root is where both computations start
    # (the RFC prepends it to the path); otherwise the proof's first element is.
    if old_size & (old_size - 1) == 0:
        fr = sr = old_root
        first = 0
    else:
        _check_hash("consistency proof element 0", proof[0])
        fr = sr = proof[0]
        first = 1
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    for position in range(first, len(proof)):
        if sn == 0:
            raise ProofError("consistency proof is longer than the trees need")
        c = proof[position]
        _check_hash(f"consistency proof element {position}", c)
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the trees need")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root hash")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root hash")


def _split(n: int) -> int:
    """Return the largest power of two smaller than ``n`` (n >= 2): the RFC's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """Return ``MTH(D[start:end])`` without recursion.

    The RFC's tree of n leaves is a row of perfect subtrees, one per set bit of n, largest
    first, joined from the right: folding leaves into a stack of perfect subtrees and then
    joining the stack right to left gives exactly ``MTH``.
    """
    if start == end:
        return _EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []
    for i in range(start, end):
        size, digest = 1, leaf_hashes[i]
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, digest = left_size + size, node_hash(left, digest)
        stack.append((size, digest))
    digest = stack.pop()[1]
    while stack:
        digest = node_hash(stack.pop()[1], digest)
    return digest


def _check_leaves(leaf_hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(leaf_hashes):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash {i} is not a {HASH_SIZE}-byte hash")


def _check_hash(name: str, value: object) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{name} is not a {HASH_SIZE}-byte hash")


def _check_count(name: str, value: object) -> None:
    # bool is an int subclass; a True where a size belongs is a caller's bug, not a size.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{name} is not an integer")
    if not 0 <= value <= _MAX_TREE_SIZE:
        raise ProofError(f"{name} {value} is outside 0..2**64-1")
