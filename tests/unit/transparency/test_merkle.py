"""RFC 9162 section 2.1 Merkle trees: the module agrees with a literal transcription of the RFC's
recursive definitions for every tree of up to 70 leaves, reproduces the Certificate Transparency
test vectors, and its verifiers accept every honest proof and reject, with ProofError and nothing
else, every altered one: a changed byte, a missing or extra element, another index, size or root,
a forked history, or a hash of the wrong length."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.transparency import merkle
from samizdat.transparency.merkle import (
    HASH_SIZE,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

FUZZ = settings(max_examples=60, deadline=None)
MAX_EXHAUSTIVE = 70
ENTRIES = [b"lawful request %d" % i for i in range(2 * MAX_EXHAUSTIVE)]
LEAVES = [leaf_hash(e) for e in ENTRIES]
# Sizes whose every proof is altered in every way, byte by byte.
TAMPER_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 32, 33]
EMPTY_ROOT = hashlib.sha256(b"").digest()


# --- The reference: RFC 9162 2.1.1, 2.1.3.1 and 2.1.4.1 transcribed as written ---------------
# It works on entries (not leaf hashes), slices lists and recurses, and hashes on its own, so it
# shares nothing with the module but hashlib.


def ref_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return ref_hash(b"")
    if n == 1:
        return ref_hash(b"\x00" + d[0])
    k = ref_k(n)
    return ref_hash(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


# The same recursions, keeping only the shape: which side each proof element sits on. Two sizes
# with the same shape make the verifier compute exactly the same hashes, so a proof for one
# verifies for the other against the same root; only a signed (size, root) pair tells them apart.


def ref_path_shape(m: int, n: int) -> tuple[str, ...]:
    if n == 1:
        return ()
    k = ref_k(n)
    if m < k:
        return (*ref_path_shape(m, k), "right")
    return (*ref_path_shape(m - k, n - k), "left")


def ref_proof_shape(m: int, n: int, b: bool = True) -> tuple[str, ...]:
    if m == n:
        return () if b else ("old subtree",)
    k = ref_k(n)
    if m <= k:
        return (*ref_proof_shape(m, k, b), "right")
    return (*ref_proof_shape(m - k, n - k, False), "left")


# --- Known answers ------------------------------------------------------------------------------
# From google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc (commit 0e901cac):
# kInputs, kSHA256EmptyTreeHash, kSHA256Roots, kSHA256Paths and kSHA256Proofs. The C++ test counts
# leaves from 1; the indices below are theirs minus one. The same values, and the (6, 7) proof,
# are in transparency-dev/merkle, proof/verify_test.go (commit 02194e9a).

CT_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_LEAVES = [leaf_hash(e) for e in CT_INPUTS]
CT_EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
CT_INCLUSION = [  # (index, tree size, PATH)
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [  # (old size, new size, PROOF)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (  # transparency-dev/merkle only
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


# --- Helpers ------------------------------------------------------------------------------------


# Each raises ProofError or the test fails; any other exception escapes and fails it too.


def inclusion_rejected(index: Any, size: Any, leaf: Any, proof: Any, root: Any) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, proof, root)


def consistency_rejected(
    old_size: Any, new_size: Any, old_root: Any, new_root: Any, proof: Any
) -> None:
    with pytest.raises(ProofError):
        verify_consistency(old_size, new_size, old_root, new_root, proof)


def flip(h: bytes, i: int) -> bytes:
    return h[:i] + bytes([h[i] ^ 0xFF]) + h[i + 1 :]


def altered(proof: list[bytes], extras: Sequence[bytes]) -> Iterator[list[bytes]]:
    """Every proof one edit away: a byte flipped, an element dropped, added or swapped."""
    for i, element in enumerate(proof):
        for j in range(HASH_SIZE):
            yield [*proof[:i], flip(element, j), *proof[i + 1 :]]
        yield proof[:i] + proof[i + 1 :]
    for i in range(len(proof) + 1):
        for extra in extras:
            yield [*proof[:i], extra, *proof[i:]]
    for i in range(len(proof) - 1):
        yield [*proof[:i], proof[i + 1], proof[i], *proof[i + 2 :]]


def badly_sized(h: bytes) -> list[Any]:
    """Stand-ins for a hash that a careless or hostile peer might send."""
    return [b"", h[:-1], h + b"\x00", h + h, h.hex(), bytearray(h), None, 0]


# --- Agreement with the RFC's definitions -------------------------------------------------------


@pytest.mark.parametrize("n", range(MAX_EXHAUSTIVE + 1))
def test_root_and_every_proof_match_the_rfc_definitions(n: int) -> None:
    entries, leaves = ENTRIES[:n], LEAVES[:n]
    root = root_hash(leaves)
    assert root == ref_mth(entries)
    for index in range(n):
        path = inclusion_proof(index, leaves)
        assert path == ref_path(index, entries)
        verify_inclusion(index, n, leaves[index], path, root)
    for old_size in range(1, n + 1):
        proof = consistency_proof(old_size, leaves)
        assert proof == ref_proof(old_size, entries)
        verify_consistency(old_size, n, ref_mth(entries[:old_size]), root, proof)


@FUZZ
@given(entries=st.lists(st.binary(max_size=12), max_size=40), data=st.data())
def test_random_entries_give_the_rfc_root_and_proofs(entries: list[bytes], data: Any) -> None:
    leaves = [leaf_hash(e) for e in entries]
    root = root_hash(leaves)
    assert root == ref_mth(entries)
    if not entries:
        return
    index = data.draw(st.integers(0, len(entries) - 1), label="index")
    path = inclusion_proof(index, leaves)
    assert path == ref_path(index, entries)
    verify_inclusion(index, len(leaves), leaves[index], path, root)
    old_size = data.draw(st.integers(1, len(entries)), label="old_size")
    proof = consistency_proof(old_size, leaves)
    assert proof == ref_proof(old_size, entries)
    verify_consistency(old_size, len(leaves), root_hash(leaves[:old_size]), root, proof)


def test_leaf_and_node_hashes_are_domain_separated_sha256() -> None:
    left, right = LEAVES[0], LEAVES[1]
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert root_hash([left, right]) != hashlib.sha256(left + right).digest()


def test_thousands_of_leaves_are_handled_without_recursion_limits() -> None:
    entries = [b"request %d" % i for i in range(5000)]
    leaves = [leaf_hash(e) for e in entries]
    root = root_hash(leaves)
    assert root == ref_mth(entries)
    for index in (0, 1, 2047, 4095, 4096, 4999):
        verify_inclusion(index, 5000, leaves[index], inclusion_proof(index, leaves), root)
    for old_size in (1, 3, 2048, 4096, 4097, 4999, 5000):
        old_root = root_hash(leaves[:old_size])
        verify_consistency(old_size, 5000, old_root, root, consistency_proof(old_size, leaves))


# --- Known answers ------------------------------------------------------------------------------


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert root_hash([]).hex() == CT_EMPTY_ROOT
    assert root_hash(()) == EMPTY_ROOT


@pytest.mark.parametrize("size", sorted(CT_ROOTS))
def test_roots_of_the_certificate_transparency_reference_tree(size: int) -> None:
    assert root_hash(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_inclusion_proofs_of_the_certificate_transparency_reference_tree(
    index: int, size: int, expected: list[str]
) -> None:
    path = inclusion_proof(index, CT_LEAVES[:size])
    assert [h.hex() for h in path] == expected
    root = bytes.fromhex(CT_ROOTS[size])
    verify_inclusion(index, size, CT_LEAVES[index], [bytes.fromhex(h) for h in expected], root)


@pytest.mark.parametrize(("old_size", "new_size", "expected"), CT_CONSISTENCY)
def test_consistency_proofs_of_the_certificate_transparency_reference_tree(
    old_size: int, new_size: int, expected: list[str]
) -> None:
    proof = consistency_proof(old_size, CT_LEAVES[:new_size])
    assert [h.hex() for h in proof] == expected
    old_root, new_root = bytes.fromhex(CT_ROOTS[old_size]), bytes.fromhex(CT_ROOTS[new_size])
    verify_consistency(old_size, new_size, old_root, new_root, [bytes.fromhex(h) for h in expected])


# --- Inclusion proofs that must fail ------------------------------------------------------------


@pytest.mark.parametrize("n", TAMPER_SIZES)
def test_any_altered_inclusion_proof_is_rejected(n: int) -> None:
    leaves = LEAVES[:n]
    root = root_hash(leaves)
    for index in range(n):
        leaf, path = leaves[index], inclusion_proof(index, leaves)
        extras = [leaf, root, EMPTY_ROOT, LEAVES[n]]
        for wrong in altered(path, extras):
            inclusion_rejected(index, n, leaf, wrong, root)
        for j in range(HASH_SIZE):
            inclusion_rejected(index, n, flip(leaf, j), path, root)
            inclusion_rejected(index, n, leaf, path, flip(root, j))
        for other_root in (EMPTY_ROOT, root_hash(LEAVES[: n + 1]), leaf):
            if other_root != root:
                inclusion_rejected(index, n, leaf, path, other_root)


@pytest.mark.parametrize("n", TAMPER_SIZES)
def test_an_inclusion_proof_holds_only_at_its_own_index(n: int) -> None:
    leaves = LEAVES[:n]
    root = root_hash(leaves)
    for index in range(n):
        path = inclusion_proof(index, leaves)
        for other in [*range(n + 2), -1, 2**64 - 1, 2**64]:
            if other != index:
                inclusion_rejected(other, n, leaves[index], path, root)
            # Another leaf of the same tree, claimed at this index, fails too.
            if 0 <= other < n and other != index:
                inclusion_rejected(index, n, leaves[other], path, root)


@pytest.mark.parametrize("n", TAMPER_SIZES)
def test_an_inclusion_proof_holds_at_another_tree_size_only_if_the_path_has_the_same_shape(
    n: int,
) -> None:
    leaves = LEAVES[:n]
    root = root_hash(leaves)
    for index in range(n):
        path = inclusion_proof(index, leaves)
        for size in range(2 * n + 2):
            if size == n:
                continue
            if size > index and ref_path_shape(index, size) == ref_path_shape(index, n):
                verify_inclusion(index, size, leaves[index], path, root)
            else:
                inclusion_rejected(index, size, leaves[index], path, root)
        for size in (n * 2, n // 2, -1, 2**64):
            inclusion_rejected(index, size, leaves[index], path, root)


def test_inclusion_hashes_of_the_wrong_length_or_type_are_rejected() -> None:
    leaves = LEAVES[:11]
    root = root_hash(leaves)
    for index in range(11):
        leaf, path = leaves[index], inclusion_proof(index, leaves)
        for bad in badly_sized(leaf):
            inclusion_rejected(index, 11, bad, path, root)
            inclusion_rejected(index, 11, leaf, path, bad)
        for i, element in enumerate(path):
            for bad in badly_sized(element):
                wrong = [*path[:i], bad, *path[i + 1 :]]
                inclusion_rejected(index, 11, leaf, wrong, root)
        inclusion_rejected(index, 11, leaf, [*path, b""], root)


class EndlessProof(Sequence[bytes]):
    """A proof claiming a billion elements, counting how many the verifier reads."""

    def __init__(self, head: list[bytes]) -> None:
        self.head, self.reads = head, 0

    def __len__(self) -> int:
        return 10**9

    def __getitem__(self, i: Any) -> Any:
        self.reads += 1
        return self.head[i] if i < len(self.head) else bytes(HASH_SIZE)


def test_verifiers_stop_reading_an_overlong_proof_where_the_tree_ends() -> None:
    leaves = LEAVES[:100]
    root = root_hash(leaves)
    endless = EndlessProof(inclusion_proof(37, leaves))
    with pytest.raises(ProofError, match="longer"):
        verify_inclusion(37, 100, leaves[37], endless, root)
    assert endless.reads <= 65
    endless = EndlessProof(consistency_proof(37, leaves))
    with pytest.raises(ProofError, match="longer"):
        verify_consistency(37, 100, root_hash(leaves[:37]), root, endless)
    assert endless.reads <= 66
    huge = EndlessProof([])
    with pytest.raises(ProofError, match="longer"):
        verify_inclusion(0, 2**64 - 1, leaves[0], huge, root)
    assert huge.reads <= 65


def test_a_single_leaf_tree_needs_an_empty_proof_and_the_leaf_as_root() -> None:
    leaf = LEAVES[0]
    verify_inclusion(0, 1, leaf, [], leaf)
    inclusion_rejected(0, 1, leaf, [leaf], leaf)
    inclusion_rejected(0, 1, leaf, [], LEAVES[1])
    inclusion_rejected(0, 0, leaf, [], EMPTY_ROOT)
    inclusion_rejected(1, 1, leaf, [], leaf)


def test_sizes_and_indices_that_are_not_uint64_integers_are_rejected() -> None:
    leaf = LEAVES[0]
    bad_counts: list[Any] = [-1, 2**64, True, 0.0, "0", None]
    for bad in bad_counts:
        inclusion_rejected(bad, 1, leaf, [], leaf)
        inclusion_rejected(0, bad, leaf, [], leaf)
        consistency_rejected(bad, 1, EMPTY_ROOT, leaf, [])
        consistency_rejected(0, bad, EMPTY_ROOT, leaf, [])


# --- Consistency proofs that must fail ----------------------------------------------------------


@pytest.mark.parametrize("n", TAMPER_SIZES)
def test_any_altered_consistency_proof_is_rejected(n: int) -> None:
    leaves = LEAVES[:n]
    new_root = root_hash(leaves)
    for old_size in range(1, n):
        old_root, proof = root_hash(leaves[:old_size]), consistency_proof(old_size, leaves)
        extras = [old_root, new_root, EMPTY_ROOT, proof[0], proof[-1]]
        for wrong in altered(proof, extras):
            consistency_rejected(old_size, n, old_root, new_root, wrong)
        consistency_rejected(old_size, n, old_root, new_root, [])
        consistency_rejected(old_size, n, new_root, old_root, proof)
        for j in range(HASH_SIZE):
            consistency_rejected(old_size, n, flip(old_root, j), new_root, proof)
            consistency_rejected(old_size, n, old_root, flip(new_root, j), proof)


@pytest.mark.parametrize("n", TAMPER_SIZES)
def test_a_consistency_proof_holds_for_other_sizes_only_if_it_has_the_same_shape(n: int) -> None:
    leaves = LEAVES[:n]
    new_root = root_hash(leaves)
    for old_size in range(1, n):
        old_root, proof = root_hash(leaves[:old_size]), consistency_proof(old_size, leaves)
        shape = ref_proof_shape(old_size, n)
        for other_old in range(n + 2):
            if other_old == old_size:
                continue
            if 0 < other_old < n and ref_proof_shape(other_old, n) == shape:
                verify_consistency(other_old, n, old_root, new_root, proof)
            else:
                consistency_rejected(other_old, n, old_root, new_root, proof)
        for other_new in range(2 * n + 2):
            if other_new == n:
                continue
            if old_size < other_new and ref_proof_shape(old_size, other_new) == shape:
                verify_consistency(old_size, other_new, old_root, new_root, proof)
            else:
                consistency_rejected(old_size, other_new, old_root, new_root, proof)
        # The probes of the Certificate Transparency tests never share a shape.
        for other_old, other_new in ((old_size - 1, n), (old_size + 1, n), (old_size ^ 2, n)):
            consistency_rejected(other_old, other_new, old_root, new_root, proof)
        for other_old, other_new in ((old_size, n * 2), (old_size, n // 2), (old_size, -1)):
            consistency_rejected(other_old, other_new, old_root, new_root, proof)


def test_consistency_hashes_of_the_wrong_length_or_type_are_rejected() -> None:
    leaves = LEAVES[:13]
    new_root = root_hash(leaves)
    for old_size in range(1, 13):
        old_root, proof = root_hash(leaves[:old_size]), consistency_proof(old_size, leaves)
        for bad in badly_sized(old_root):
            consistency_rejected(old_size, 13, bad, new_root, proof)
            consistency_rejected(old_size, 13, old_root, bad, proof)
        for i, element in enumerate(proof):
            for bad in badly_sized(element):
                wrong = [*proof[:i], bad, *proof[i + 1 :]]
                consistency_rejected(old_size, 13, old_root, new_root, wrong)


# --- Consistency edge cases ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3, 8, 33])
def test_a_tree_is_consistent_with_itself_by_an_empty_proof_only(n: int) -> None:
    root = root_hash(LEAVES[:n])
    verify_consistency(n, n, root, root, [])
    consistency_rejected(n, n, root, root, [root])
    consistency_rejected(n, n, root, root_hash(LEAVES[: n + 1]), [])
    consistency_rejected(n, n, root_hash(LEAVES[: n + 1]), root, [])
    if n > 0:
        assert consistency_proof(n, LEAVES[:n]) == []


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64])
def test_the_empty_tree_is_consistent_with_every_tree_by_an_empty_proof(n: int) -> None:
    new_root = root_hash(LEAVES[:n])
    verify_consistency(0, n, EMPTY_ROOT, new_root, [])
    consistency_rejected(0, n, EMPTY_ROOT, new_root, [EMPTY_ROOT])
    consistency_rejected(0, n, LEAVES[0], new_root, [])


def test_an_old_tree_of_one_leaf_proves_consistency_with_every_larger_tree() -> None:
    old_root = root_hash(LEAVES[:1])
    assert old_root == LEAVES[0]
    for n in range(2, MAX_EXHAUSTIVE + 1):
        new_root, proof = root_hash(LEAVES[:n]), consistency_proof(1, LEAVES[:n])
        # The old root is the first leaf, a node of the new tree: PROOF leaves it out.
        assert proof == inclusion_proof(0, LEAVES[:n])
        verify_consistency(1, n, old_root, new_root, proof)
        consistency_rejected(1, n, LEAVES[1], new_root, proof)
        consistency_rejected(1, n, old_root, new_root, [old_root, *proof])


@pytest.mark.parametrize("old_size", [1, 2, 4, 8, 16, 32, 64])
def test_an_old_tree_whose_size_is_a_power_of_two_is_left_out_of_the_proof(old_size: int) -> None:
    old_root = root_hash(LEAVES[:old_size])
    for n in range(old_size + 1, 2 * MAX_EXHAUSTIVE + 1, 7):
        new_root, proof = root_hash(LEAVES[:n]), consistency_proof(old_size, LEAVES[:n])
        assert old_root not in proof
        verify_consistency(old_size, n, old_root, new_root, proof)
        consistency_rejected(old_size, n, old_root, new_root, [old_root, *proof])
        consistency_rejected(old_size, n, old_root, new_root, proof[1:])


def test_a_forked_history_is_never_consistent() -> None:
    common = ENTRIES[:10]
    ours = [leaf_hash(e) for e in [*common, *(b"ours %d" % i for i in range(20))]]
    theirs = [leaf_hash(e) for e in [*common, *(b"theirs %d" % i for i in range(20))]]
    for old_size in range(1, 31):
        old_root = root_hash(ours[:old_size])
        for new_size in range(old_size, 31):
            new_root = root_hash(theirs[:new_size])
            from_theirs = consistency_proof(old_size, theirs[:new_size])
            from_ours = consistency_proof(old_size, ours[:new_size])
            if old_size <= len(common):  # a shared prefix really is consistent
                verify_consistency(old_size, new_size, old_root, new_root, from_theirs)
                continue
            consistency_rejected(old_size, new_size, old_root, new_root, from_theirs)
            consistency_rejected(old_size, new_size, old_root, new_root, from_ours)


def test_a_rewritten_or_reordered_history_is_never_consistent() -> None:
    leaves = LEAVES[:20]
    for old_size in range(2, 20):
        old_root = root_hash(leaves[:old_size])
        rewritten = [*leaves[: old_size - 1], LEAVES[50], *leaves[old_size:]]
        swapped = [leaves[1], leaves[0], *leaves[2:]]
        for history in (rewritten, swapped):
            proof = consistency_proof(old_size, history)
            consistency_rejected(old_size, 20, old_root, root_hash(history), proof)


# --- Builders' argument checks ------------------------------------------------------------------


def test_builders_refuse_out_of_range_positions() -> None:
    leaves = LEAVES[:5]
    for index in (-1, 5, 6):
        with pytest.raises(ValueError, match="leaf index"):
            inclusion_proof(index, leaves)
    with pytest.raises(ValueError, match="leaf index"):
        inclusion_proof(0, [])
    for old_size in (-1, 0, 6):
        with pytest.raises(ValueError, match="old tree size"):
            consistency_proof(old_size, leaves)


def test_builders_refuse_leaf_hashes_of_the_wrong_length() -> None:
    bad: list[Any] = [*LEAVES[:4], LEAVES[4][:-1]]
    with pytest.raises(ValueError, match="leaf hash 4"):
        root_hash(bad)
    with pytest.raises(ValueError, match="leaf hash 4"):
        inclusion_proof(0, bad)
    with pytest.raises(ValueError, match="leaf hash 4"):
        consistency_proof(2, bad)


def test_proof_error_is_a_value_error_and_says_which_check_failed() -> None:
    assert issubclass(ProofError, ValueError)
    root = root_hash(LEAVES[:4])
    with pytest.raises(ProofError, match="root hash"):
        verify_inclusion(0, 4, LEAVES[0], inclusion_proof(0, LEAVES[:4]), LEAVES[0])
    with pytest.raises(ProofError, match="shorter"):
        verify_inclusion(0, 4, LEAVES[0], [], root)
    with pytest.raises(ProofError, match="old root hash"):
        verify_consistency(3, 4, LEAVES[0], root, consistency_proof(3, LEAVES[:4]))


def test_public_surface_is_declared() -> None:
    public = {n for n in vars(merkle) if not n.startswith("_")}
    imported = {"annotations", "hashlib", "Sequence"}
    assert set(merkle.__all__) == public - imported


# --- Garbage in, ProofError out -----------------------------------------------------------------

SOME_HASHES = [*LEAVES[:4], root_hash(LEAVES[:4]), EMPTY_ROOT]
hash_like = st.one_of(st.sampled_from(SOME_HASHES), st.binary(max_size=40))
count_like = st.one_of(st.integers(-2, 70), st.integers(-(2**66), 2**66))


@FUZZ
@given(
    index=count_like,
    size=count_like,
    leaf=hash_like,
    proof=st.lists(hash_like, max_size=80),
    root=hash_like,
)
def test_inclusion_verifier_answers_garbage_only_with_proof_error(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> None:
    with contextlib.suppress(ProofError):
        verify_inclusion(index, size, leaf, proof, root)


@FUZZ
@given(
    old_size=count_like,
    new_size=count_like,
    old_root=hash_like,
    new_root=hash_like,
    proof=st.lists(hash_like, max_size=80),
)
def test_consistency_verifier_answers_garbage_only_with_proof_error(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    with contextlib.suppress(ProofError):
        verify_consistency(old_size, new_size, old_root, new_root, proof)


@FUZZ
@given(data=st.data(), n=st.integers(2, 100))
def test_a_random_bit_flip_in_a_random_proof_is_caught(data: Any, n: int) -> None:
    leaves = LEAVES[:n]
    old_size = data.draw(st.integers(1, n - 1), label="old_size")
    proof = consistency_proof(old_size, leaves)
    i = data.draw(st.integers(0, len(proof) - 1), label="element")
    byte = data.draw(st.integers(0, HASH_SIZE - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    element = bytearray(proof[i])
    element[byte] ^= 1 << bit
    wrong = [*proof[:i], bytes(element), *proof[i + 1 :]]
    old_root, new_root = root_hash(leaves[:old_size]), root_hash(leaves)
    consistency_rejected(old_size, n, old_root, new_root, wrong)
    index = data.draw(st.integers(0, n - 1), label="index")
    path = inclusion_proof(index, leaves)
    j = data.draw(st.integers(0, len(path) - 1), label="path element")
    wrong_path = [*path[:j], bytes(b ^ 0x80 for b in path[j]), *path[j + 1 :]]
    inclusion_rejected(index, n, leaves[index], wrong_path, new_root)
