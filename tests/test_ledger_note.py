"""Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint): round trips, and hostile notes refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlfort.errors import InputError
from mlfort.ledger.note import (
    DASH,
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    key_id,
    load_or_create_signer,
    open_checkpoint,
    open_note,
)

ORIGIN = "mlfort.ledger/test"


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_key_id_is_the_c2sp_truncated_hash_of_name_newline_type_and_key(signer):
    raw = _raw(signer.private)
    assert key_id(ORIGIN, raw) == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    assert signer.verifier.id == key_id(ORIGIN, raw)


def test_signed_checkpoint_has_the_c2sp_layout_and_round_trips(signer):
    cp = Checkpoint(ORIGIN, 42, bytes(range(32)))
    note = signer.sign(cp.text())
    body, sig = note.split("\n\n")
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(bytes(range(32))).decode()}"
    assert sig.startswith(f"{DASH}{ORIGIN} ") and sig.endswith("\n")
    raw = base64.b64decode(sig.split(" ")[2])
    assert raw[:4] == signer.verifier.id and len(raw) == 4 + 64
    signer.private.public_key().verify(raw[4:], cp.text().encode())  # signature covers the text incl. its newline
    assert open_checkpoint(note, [signer.verifier], ORIGIN) == cp


def test_vkey_round_trips_and_a_mismatched_id_is_refused(signer):
    vkey = signer.verifier.vkey()
    assert NoteVerifier.from_vkey(vkey) == signer.verifier
    name, kid, key = vkey.split("+", 2)
    with pytest.raises(InputError):
        NoteVerifier.from_vkey(f"{name}+00000000+{key}")
    with pytest.raises(InputError):
        NoteVerifier.from_vkey("not a key")
    with pytest.raises(InputError):
        NoteVerifier.from_vkey(f"{name}+{kid}+!!!")


def test_a_note_from_an_unknown_key_is_not_trusted(signer):
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    note = other.sign(Checkpoint(ORIGIN, 1, bytes(32)).text())
    with pytest.raises(NoteError, match="no trusted key"):
        open_note(note, [signer.verifier])


def test_a_failed_signature_from_a_trusted_key_rejects_the_note_even_beside_a_good_one(signer):
    text = Checkpoint(ORIGIN, 1, bytes(32)).text()
    good = signer.sign(text)
    forged_sig = base64.b64encode(signer.verifier.id + bytes(64)).decode()
    forged = good + f"{DASH}{ORIGIN} {forged_sig}\n"
    with pytest.raises(NoteError, match="does not match"):
        open_note(forged, [signer.verifier])


def test_an_edited_checkpoint_does_not_verify(signer):
    note = signer.sign(Checkpoint(ORIGIN, 10, bytes(32)).text())
    with pytest.raises(NoteError):
        open_checkpoint(note.replace("\n10\n", "\n9\n"), [signer.verifier])


def test_checkpoint_for_another_log_is_refused(signer):
    other = NoteSigner("mlfort.ledger/other", signer.private)
    note = other.sign(Checkpoint("mlfort.ledger/other", 1, bytes(32)).text())
    with pytest.raises(NoteError, match="for log"):
        open_checkpoint(note, [other.verifier], ORIGIN)


@pytest.mark.parametrize("note", [
    "",
    "no signature block\n",
    "text\n\n",
    "text\n\nnot a signature line\n",
    f"text\n\n{DASH}name\n",
    f"text\n\n{DASH}name !!notbase64!!\n",
    f"text\n\n{DASH}name AAAA\n",
    f"text\x01control\n\n{DASH}name AAAAAAAAAAAAAAAA\n",
    f"text\n\n{DASH}name AAAAAAAAAAAAAAAA",  # no final newline
    "\ufeffbom\n\n",
    f"text\n\n{DASH}na me AAAAAAAAAAAAAAAA\n",
])
def test_malformed_notes_are_refused(signer, note):
    with pytest.raises(NoteError):
        open_note(note, [signer.verifier])


def test_oversized_and_non_utf8_notes_are_refused(signer):
    with pytest.raises(NoteError, match="larger"):
        open_note("x" * 70_000 + "\n\n", [signer.verifier])
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff\xfe\n\n", [signer.verifier])


def test_too_many_signature_lines_are_refused(signer):
    note = signer.sign(Checkpoint(ORIGIN, 1, bytes(32)).text())
    extra = f"{DASH}other AAAAAAAAAAAAAAAA\n" * 101
    with pytest.raises(NoteError, match="more than"):
        open_note(note + extra, [signer.verifier])


@pytest.mark.parametrize("text", [
    "origin\n",
    "origin\n12\n",
    "origin\n-1\nAAAA\n",
    "origin\n012\n" + base64.b64encode(bytes(32)).decode() + "\n",
    "origin\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",
    "origin\n1\nnot base64\n",
    "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n",
])
def test_malformed_checkpoint_bodies_are_refused(text):
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_checkpoint_extension_lines_are_allowed():
    root = base64.b64encode(bytes(32)).decode()
    assert Checkpoint.parse(f"o\n5\n{root}\nextension line\n").size == 5


def test_ledger_key_is_created_0600_once_and_reused(tmp_path):
    path = tmp_path / "keys" / "ledger.key"
    first = load_or_create_signer(path, ORIGIN)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_signer(path, ORIGIN)
    assert again.verifier == first.verifier


def test_a_non_ed25519_ledger_key_is_refused(tmp_path, keypair):
    with pytest.raises(InputError, match="Ed25519"):
        load_or_create_signer(keypair[0], ORIGIN)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("nonsense")
    with pytest.raises(InputError):
        load_or_create_signer(garbage, ORIGIN)
