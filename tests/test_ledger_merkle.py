"""RFC 6962 hashing and proofs, checked against the RFC's own recursive definitions and against sigstore's
independent inclusion-proof verifier (the one Rekor clients use)."""

from __future__ import annotations

import hashlib
import random
from types import SimpleNamespace

import pytest
from sigstore._internal.merkle import verify_merkle_inclusion
from sigstore.errors import VerificationError

from mlfort.ledger import merkle
from mlfort.ledger.merkle import (
    CompactRange,
    ProofError,
    assemble,
    consistency_plan,
    inclusion_plan,
    verify_consistency,
    verify_inclusion,
)

# --- the RFC 6962 section 2.1 definitions, written as literally as possible (the reference) -----------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return _h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def proof(m: int, d: list[bytes]) -> list[bytes]:
    return subproof(m, d, True) if 0 < m < len(d) else []


# --- a tree built with CompactRange, its nodes kept in a dict as a store would keep them ---------------------


def build(entries: list[bytes]) -> tuple[CompactRange, dict[tuple[int, int], bytes]]:
    nodes: dict[tuple[int, int], bytes] = {}
    tree = CompactRange()
    for i, e in enumerate(entries):
        leaf = merkle.leaf_hash(e)
        nodes[(0, i)] = leaf
        done: list = []
        tree.append(leaf, done)
        nodes.update(done)
    return tree, nodes


ENTRIES = [f"event {i}".encode() for i in range(70)]
TREE, NODES = build(ENTRIES)


def test_leaf_and_node_hash_use_the_rfc_6962_prefixes():
    assert merkle.leaf_hash(b"x") == _h(b"\x00x")
    assert merkle.node_hash(b"a", b"b") == _h(b"\x01ab")
    assert _h(b"") == merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 70])
def test_roots_match_the_rfc_definition(size):
    tree, _ = build(ENTRIES[:size])
    assert tree.root() == mth(ENTRIES[:size])
    # the root from stored frontier nodes equals it too
    assert merkle.root_from(lambda ids: {i: NODES[i] for i in ids}, size) == mth(ENTRIES[:size])


def test_every_inclusion_proof_matches_the_rfc_and_verifies_with_sigstore():
    for size in range(1, 71):
        root = mth(ENTRIES[:size])
        for m in range(size):
            got = assemble(inclusion_plan(m, size), NODES)
            assert got == path(m, ENTRIES[:size]), (m, size)
            verify_inclusion(NODES[(0, m)], m, size, got, root)
            inner = SimpleNamespace(
                inclusion_proof=SimpleNamespace(log_index=m, tree_size=size, hashes=got, root_hash=root),
                canonicalized_body=ENTRIES[m],
            )
            verify_merkle_inclusion(SimpleNamespace(_inner=inner))


def test_every_consistency_proof_matches_the_rfc_and_verifies():
    for new in range(1, 71):
        new_root = mth(ENTRIES[:new])
        for old in range(0, new + 1):
            got = assemble(consistency_plan(old, new), NODES)
            assert got == proof(old, ENTRIES[:new]), (old, new)
            verify_consistency(old, new, mth(ENTRIES[:old]), new_root, got)


def test_proof_plans_read_a_logarithmic_number_of_nodes():
    size = 1_000_003
    for index in (0, 1, size // 2, size - 2, size - 1, 524_288, 999_999):
        assert len(merkle.needed(inclusion_plan(index, size))) <= 2 * size.bit_length()
    for old in (1, 3, 500_000, 524_288, size - 1):
        assert len(merkle.needed(consistency_plan(old, size))) <= 2 * size.bit_length()


def test_inclusion_rejects_tampering():
    size, m = 37, 12
    root = mth(ENTRIES[:size])
    good = assemble(inclusion_plan(m, size), NODES)
    verify_inclusion(NODES[(0, m)], m, size, good, root)
    with pytest.raises(ProofError):
        verify_inclusion(merkle.leaf_hash(b"forged"), m, size, good, root)
    with pytest.raises(ProofError):
        verify_inclusion(NODES[(0, m)], m + 1, size, good, root)
    with pytest.raises(ProofError):
        verify_inclusion(NODES[(0, m)], m, size, good[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(NODES[(0, m)], m, size, [*good, good[0]], root)
    with pytest.raises(ProofError):
        verify_inclusion(NODES[(0, m)], m, size, [good[1], good[0], *good[2:]], root)
    with pytest.raises(ProofError):
        verify_inclusion(NODES[(0, m)], size, size, good, root)
    # sigstore agrees that a forged leaf fails
    inner = SimpleNamespace(
        inclusion_proof=SimpleNamespace(log_index=m, tree_size=size, hashes=good, root_hash=root),
        canonicalized_body=b"forged",
    )
    with pytest.raises(VerificationError):
        verify_merkle_inclusion(SimpleNamespace(_inner=inner))


def test_consistency_rejects_a_rewritten_history():
    old, new = 13, 50
    good = assemble(consistency_plan(old, new), NODES)
    old_root, new_root = mth(ENTRIES[:old]), mth(ENTRIES[:new])
    verify_consistency(old, new, old_root, new_root, good)
    rewritten = [*ENTRIES[:5], b"rewritten", *ENTRIES[6:new]]
    with pytest.raises(ProofError):
        verify_consistency(old, new, mth(rewritten[:old]), new_root, good)
    with pytest.raises(ProofError):
        verify_consistency(old, new, old_root, mth(rewritten), good)
    with pytest.raises(ProofError):
        verify_consistency(old, new, old_root, new_root, good[:-1])
    with pytest.raises(ProofError):
        verify_consistency(new, old, new_root, old_root, good)
    with pytest.raises(ProofError):
        verify_consistency(old, old, old_root, new_root, [])


def test_random_proofs_agree_with_the_definitions():
    rng = random.Random(7)
    entries = [rng.randbytes(rng.randint(0, 40)) for _ in range(300)]
    _, nodes = build(entries)
    for _ in range(200):
        new = rng.randint(1, 300)
        m = rng.randrange(new)
        old = rng.randint(0, new)
        assert assemble(inclusion_plan(m, new), nodes) == path(m, entries[:new])
        assert assemble(consistency_plan(old, new), nodes) == proof(old, entries[:new])


def test_node_ids_pack_into_one_integer():
    for node in [(0, 0), (0, 12345), (20, 7), (47, 1)]:
        assert merkle.unpack(merkle.pack(node)) == node
    assert merkle.pack((1, 0)) > merkle.pack((0, 2**40))


def test_batch_extend_completes_exactly_the_nodes_one_leaf_at_a_time_does():
    rng = random.Random(11)
    leaves = [merkle.leaf_hash(rng.randbytes(8)) for _ in range(600)]
    size = 0
    tree = CompactRange()
    while size < len(leaves):
        batch = leaves[size : size + rng.choice([1, 2, 3, 7, 64, 100])]
        front = merkle.frontier(size)
        one_by_one: list = []
        for leaf in batch:
            tree.append(leaf, one_by_one)
        expected_front = _frontier_hashes(leaves[:size])
        assert sorted(merkle.extend(size, [expected_front[n] for n in front], batch)) == sorted(one_by_one)
        size += len(batch)


def _frontier_hashes(leaves: list[bytes]) -> dict:
    tree = CompactRange()
    nodes: dict = {}
    for i, leaf in enumerate(leaves):
        nodes[(0, i)] = leaf
        done: list = []
        tree.append(leaf, done)
        nodes.update(done)
    return nodes
