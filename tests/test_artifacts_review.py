"""Adversarial review of `mlfort artifacts sign|verify`: the bypasses a public report against a model-signing
verifier would try. Each test is a specification.

Tests marked `xfail(strict=True)` show a weakness that is still open: they pass (turn XPASS, and so fail the
suite) the day the fix lands, and the marker must then be removed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import unicodedata
from pathlib import Path

import pytest

from mlfort.artifacts import bundle as bundle_mod
from mlfort.artifacts import manifest as manifest_mod
from mlfort.artifacts import sign_artifact, verify_artifact
from mlfort.artifacts.bundle import PAYLOAD_TYPE, pae
from mlfort.crypto.signing_keys import ecdsa_for, load_private_key, load_public_key, public_key_hint
from mlfort.errors import InputError, MlfortError

# --- helpers -------------------------------------------------------------------------------------------------


def _sign(path: Path, priv: Path, **kw):
    return sign_artifact(path, load_private_key(priv), workers=1, **kw)


def _verify(path: Path, pub: Path, **kw):
    return verify_artifact(path, load_public_key(pub), workers=1, **kw)


def _rules(result) -> list[str]:
    return [f.rule_id for f in result.findings]


def _failing(result) -> list:
    return [f for f in result.findings if f.severity.value != "info"]


def _named(result) -> set[str]:
    """The relative file each finding names (its evidence), for findings that name one."""
    return {str(f.evidence.get("file")) for f in result.findings if f.evidence.get("file") is not None}


def _statement(sig: Path) -> dict:
    bundle = json.loads(sig.read_text())
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def _fix_subject(st: dict) -> None:
    h = hashlib.sha256()
    for r in st["predicate"]["resources"]:
        h.update(bytes.fromhex(r["digest"]))
    st["subject"][0]["digest"]["sha256"] = h.hexdigest()


def _envelope(payload: bytes, sig: bytes, hint: str) -> bytes:
    return json.dumps({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }).encode()


def _write_signed_payload(sig: Path, priv: Path, payload: bytes) -> None:
    """Sign exact payload bytes with the trusted key: a malicious signer, or a bug in another tool."""
    key = load_private_key(priv)
    raw = key.sign(pae(PAYLOAD_TYPE, payload), ecdsa_for(key))
    sig.write_bytes(_envelope(payload, raw, public_key_hint(key.public_key())))


def _resign(sig: Path, priv: Path, mutate, *, fix_subject: bool = True) -> None:
    st = _statement(sig)
    mutate(st)
    if fix_subject:
        _fix_subject(st)
    _write_signed_payload(sig, priv, json.dumps(st).encode())


# --- DSSE envelope and JSON parsing --------------------------------------------------------------------------


def test_verify_refuses_a_duplicate_key_inside_the_signed_statement(model_dir, keypair):
    # Python's json keeps the last duplicate, Go's the last, some parsers the first: a duplicate "resources" key
    # lets two verifiers see two manifests in one correctly signed payload.
    _sign(model_dir, keypair[0])
    st = _statement(model_dir / "model.sig")
    text = json.dumps(st)
    decoy = json.dumps(st["predicate"]["resources"][:1])
    payload = text.replace('"resources": ', f'"resources": {decoy}, "resources": ', 1).encode()
    _write_signed_payload(model_dir / "model.sig", keypair[0], payload)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert "duplicate JSON key 'resources'" in result.findings[0].message


def test_verify_refuses_a_signature_over_the_raw_payload_without_pae(model_dir, keypair):
    _sign(model_dir, keypair[0])
    payload = base64.b64decode(json.loads((model_dir / "model.sig").read_text())["dsseEnvelope"]["payload"])
    key = load_private_key(keypair[0])
    raw = key.sign(payload, ecdsa_for(key))  # signs the payload itself, not DSSEv1 PAE(type, payload)
    (model_dir / "model.sig").write_bytes(_envelope(payload, raw, public_key_hint(key.public_key())))
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert "does not verify" in result.findings[0].message


def test_verify_refuses_a_signature_made_for_another_payload_type(model_dir, keypair):
    # The envelope says in-toto, but the key signed PAE("application/json", ...): a signature made for another
    # protocol must not be replayable here.
    _sign(model_dir, keypair[0])
    payload = base64.b64decode(json.loads((model_dir / "model.sig").read_text())["dsseEnvelope"]["payload"])
    key = load_private_key(keypair[0])
    raw = key.sign(pae("application/json", payload), ecdsa_for(key))
    (model_dir / "model.sig").write_bytes(_envelope(payload, raw, public_key_hint(key.public_key())))
    assert _rules(_verify(model_dir, keypair[1])) == ["MLF-ART-004"]


def test_a_forged_key_hint_does_not_make_another_keys_signature_verify(model_dir, keypair, other_keypair):
    _sign(model_dir, other_keypair[0])
    bundle = json.loads((model_dir / "model.sig").read_text())
    bundle["verificationMaterial"]["publicKey"]["hint"] = public_key_hint(load_public_key(keypair[1]))
    (model_dir / "model.sig").write_text(json.dumps(bundle))
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert "does not verify with the given public key" in result.findings[0].message


def test_verify_refuses_a_statement_with_a_utf8_bom(model_dir, keypair):
    _sign(model_dir, keypair[0])
    payload = b"\xef\xbb\xbf" + json.dumps(_statement(model_dir / "model.sig")).encode()
    _write_signed_payload(model_dir / "model.sig", keypair[0], payload)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert "not JSON" in result.findings[0].message


def test_verify_refuses_an_infinite_shard_size_written_as_a_huge_number(model_dir, keypair):
    _sign(model_dir, keypair[0], shard_size=65536)
    text = json.dumps(_statement(model_dir / "model.sig")).replace('"shard_size": 65536', '"shard_size": 1e400')
    _write_signed_payload(model_dir / "model.sig", keypair[0], text.encode())
    result = _verify(model_dir, keypair[1])
    assert not result.ok
    assert "shard_size" in result.findings[0].message


def test_verify_refuses_a_resource_list_over_the_limit(model_dir, keypair, monkeypatch):
    _sign(model_dir, keypair[0])
    monkeypatch.setattr(manifest_mod, "MAX_RESOURCES", 3)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert "more than 3 resources" in result.findings[0].message


def test_verify_refuses_a_signature_file_over_the_size_limit(model_dir, keypair, monkeypatch):
    _sign(model_dir, keypair[0])
    monkeypatch.setattr(bundle_mod, "MAX_SIGNATURE_BYTES", 100)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert "byte limit" in result.findings[0].message


def test_verify_refuses_shards_that_do_not_follow_the_recorded_shard_size(model_dir, keypair):
    # One "shard" covering the whole file with its true digest, while the serialization says 64 KiB shards.
    _sign(model_dir, keypair[0], shard_size=65536)
    data = (model_dir / "weights.safetensors").read_bytes()

    def mutate(st):
        res = [r for r in st["predicate"]["resources"] if not r["name"].startswith("weights.safetensors:")]
        res.append({"name": f"weights.safetensors:0:{len(data)}", "algorithm": "sha256-sharded-65536",
                    "digest": hashlib.sha256(data).hexdigest()})
        st["predicate"]["resources"] = res

    _resign(model_dir / "model.sig", keypair[0], mutate)
    failing = _failing(_verify(model_dir, keypair[1]))  # empty.bin is reported as info: shards cannot record it
    assert [f.rule_id for f in failing] == ["MLF-ART-001"]
    assert failing[0].evidence["file"] == "weights.safetensors"


@pytest.mark.parametrize("name", ["a/", "a/./b", "a/b/", "./config.json", "config.json/.", "a/b/.."])
def test_verify_refuses_non_normalised_paths_inside_a_signature(model_dir, keypair, name):
    _sign(model_dir, keypair[0])

    def mutate(st):
        st["predicate"]["resources"][0]["name"] = name

    _resign(model_dir / "model.sig", keypair[0], mutate)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-005"]
    assert "not a normalised relative path" in result.findings[0].message


@pytest.mark.parametrize("name", ["../outside.bin:0:10", "/etc/passwd:0:10", "a/../../x:0:10"])
def test_verify_refuses_escaping_paths_inside_shard_names(model_dir, keypair, name):
    _sign(model_dir, keypair[0], shard_size=65536)

    def mutate(st):
        st["predicate"]["resources"][0]["name"] = name

    _resign(model_dir / "model.sig", keypair[0], mutate)
    assert _rules(_verify(model_dir, keypair[1])) == ["MLF-ART-005"]


def test_verify_refuses_a_duplicate_shard(model_dir, keypair):
    _sign(model_dir, keypair[0], shard_size=65536)

    def mutate(st):
        st["predicate"]["resources"].append(dict(st["predicate"]["resources"][-1]))

    _resign(model_dir / "model.sig", keypair[0], mutate)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-005"]
    assert "duplicate entry" in result.findings[0].message


# --- path tricks in the tree ---------------------------------------------------------------------------------


def test_verify_names_both_sides_when_a_file_is_renamed_to_another_unicode_normal_form(model_dir, keypair):
    nfc = unicodedata.normalize("NFC", "ünïcode name.txt")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    _sign(model_dir, keypair[0])
    (model_dir / nfc).rename(model_dir / nfd)
    if not (model_dir / nfd).exists() or (model_dir / nfc).exists():
        pytest.skip("filesystem normalises Unicode names")
    result = _verify(model_dir, keypair[1])
    assert sorted(_rules(result)) == ["MLF-ART-002", "MLF-ART-003"]
    assert _named(result) == {nfc, nfd}


def test_verify_names_both_sides_when_a_file_is_renamed_to_another_case(model_dir, keypair):
    _sign(model_dir, keypair[0])
    (model_dir / "config.json").rename(model_dir / "Config.json")
    result = _verify(model_dir, keypair[1])
    assert sorted(_rules(result)) == ["MLF-ART-002", "MLF-ART-003"]
    assert _named(result) == {"config.json", "Config.json"}


def test_verify_flags_a_model_sig_in_a_subdirectory_as_an_added_file(model_dir, keypair):
    _sign(model_dir, keypair[0])
    (model_dir / "a" / "model.sig").write_bytes(b"cos\nsystem\n")
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-002"]
    assert _named(result) == {"a/model.sig"}


def test_verify_with_a_signature_inside_an_ignored_directory_passes(model_dir, keypair):
    (model_dir / ".git").mkdir()
    sig = model_dir / ".git" / "model.sig"
    _sign(model_dir, keypair[0], signature=sig)
    assert _verify(model_dir, keypair[1], signature=sig).ok


def test_relative_signature_path_works_whatever_the_working_directory(model_dir, keypair, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _sign(Path(model_dir.name), keypair[0], signature=Path(model_dir.name, "sigs", "m.sig"))
    monkeypatch.chdir(model_dir)
    result = _verify(Path("."), keypair[1], signature=Path("sigs/m.sig"))
    assert result.ok, result.findings
    assert result.files_checked == 6


def test_sign_normalises_ignore_paths_with_trailing_slash_and_dot_segments(model_dir, keypair):
    (model_dir / "logs").mkdir()
    (model_dir / "logs" / "train.log").write_text("epoch 1")
    result = _sign(model_dir, keypair[0], ignore_paths=("logs/", "./logs", "a/./b"))
    ignored = result.manifest.serialization.ignore_paths
    assert "logs" in ignored and "a/b" in ignored
    assert not {"logs/", "./logs", "a/./b"} & set(ignored)
    assert _verify(model_dir, keypair[1]).ok


def test_ignore_path_does_not_hide_a_sibling_sharing_its_prefix(model_dir, keypair):
    (model_dir / "logs").mkdir()
    _sign(model_dir, keypair[0], ignore_paths=("logs",))
    (model_dir / "logs2").mkdir()
    (model_dir / "logs2" / "evil.pkl").write_bytes(b"x")
    (model_dir / "logs.pkl").write_bytes(b"x")
    result = _verify(model_dir, keypair[1])
    assert _named(result) == {"logs2/evil.pkl", "logs.pkl"}
    assert set(_rules(result)) == {"MLF-ART-002"}


def test_removing_a_directory_gives_one_finding_per_signed_file(model_dir, keypair):
    (model_dir / "a" / "c").write_bytes(b"second")
    _sign(model_dir, keypair[0])
    for f in (model_dir / "a").iterdir():
        f.unlink()
    (model_dir / "a").rmdir()
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-003", "MLF-ART-003"]
    assert _named(result) == {"a/b", "a/c"}


def test_an_added_empty_file_fails_closed_with_the_files_method(model_dir, keypair):
    _sign(model_dir, keypair[0])
    (model_dir / "__init__.py").write_bytes(b"")
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-002"]
    assert _named(result) == {"__init__.py"}


# --- symlinks, hard links and special files ------------------------------------------------------------------


def test_verify_refuses_a_root_that_is_a_symlink_when_the_signature_allows_none(model_dir, keypair, tmp_path):
    _sign(model_dir, keypair[0])
    link = tmp_path / "current"
    link.symlink_to(model_dir)
    result = _verify(link, keypair[1], signature=model_dir / "model.sig")
    assert _rules(result) == ["MLF-ART-006"]
    assert "is a symlink" in result.findings[0].message


def test_verify_refuses_a_symlink_to_a_sibling_that_shares_the_roots_name_prefix(model_dir, keypair, tmp_path):
    # /x/churn-model-evil starts with the string /x/churn-model: a prefix test would let it through.
    evil = tmp_path / f"{model_dir.name}-evil"
    evil.mkdir()
    (evil / "payload.pkl").write_bytes(b"x")
    _sign(model_dir, keypair[0], allow_symlinks=True)
    (model_dir / "extra").symlink_to(evil)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-006"]
    assert "leaves the tree" in result.findings[0].message


def test_sign_refuses_a_symlink_to_a_directory_already_in_the_tree(model_dir, keypair):
    (model_dir / "a2").symlink_to("a")
    with pytest.raises(InputError, match="reached twice"):
        _sign(model_dir, keypair[0], allow_symlinks=True)


def test_a_hard_link_to_a_file_outside_the_tree_is_verified_by_content(model_dir, keypair, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"weights v1")
    os.link(outside, model_dir / "linked.bin")
    _sign(model_dir, keypair[0])
    assert _verify(model_dir, keypair[1]).ok
    outside.write_bytes(b"weights v2")  # changes the same inode the tree holds
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-001"]
    assert _named(result) == {"linked.bin"}


def test_verify_refuses_a_signature_that_is_a_fifo_without_blocking(model_dir, keypair):
    _sign(model_dir, keypair[0])
    (model_dir / "model.sig").unlink()
    os.mkfifo(model_dir / "model.sig")
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert "not a regular file" in result.findings[0].message


def test_verify_refuses_a_signature_path_that_is_a_directory(model_dir, keypair):
    _sign(model_dir, keypair[0], signature=model_dir.parent / "m.sig")
    result = _verify(model_dir, keypair[1], signature=model_dir / "a")
    assert _rules(result) == ["MLF-ART-004"]
    assert "not a regular file" in result.findings[0].message


# --- weaknesses this review found, fixed since (each test failed before its fix) -----------------------------


def test_verify_refuses_a_symlinked_signature_that_hides_an_unsigned_file(model_dir, keypair):
    _sign(model_dir, keypair[0])
    # The attacker adds tokenizer_config.json: the genuine bundle plus keys a loader acts on (extra keys are
    # ignored by the bundle reader), and points model.sig at it. model.sig is a signed ignore path, so the walk
    # never looks at the symlink; verify then also ignores the file the symlink resolves to.
    polyglot = json.loads((model_dir / "model.sig").read_text())
    polyglot["auto_map"] = {"AutoModel": "attacker/repo--modeling.Evil"}
    (model_dir / "tokenizer_config.json").write_text(json.dumps(polyglot))
    (model_dir / "model.sig").unlink()
    (model_dir / "model.sig").symlink_to("tokenizer_config.json")
    result = _verify(model_dir, keypair[1])
    assert not result.ok
    assert "tokenizer_config.json" in _named(result) or "symlink" in result.findings[0].message


def test_verify_refuses_a_file_swapped_for_an_escaping_symlink_during_verification(model_dir, keypair, tmp_path):
    _sign(model_dir, keypair[0])
    outside = tmp_path / "outside.json"
    outside.write_bytes((model_dir / "config.json").read_bytes())  # same bytes now, attacker's to change later

    def swap(_total: int) -> None:  # runs after the walk, before hashing
        (model_dir / "config.json").unlink()
        (model_dir / "config.json").symlink_to(outside)

    result = verify_artifact(model_dir, load_public_key(keypair[1]), workers=1, on_plan=swap)
    assert not result.ok


def test_verify_detects_bytes_appended_to_a_file_during_verification_in_shards_mode(model_dir, keypair):
    _sign(model_dir, keypair[0], shard_size=65536)

    def grow(_total: int) -> None:
        with (model_dir / "weights.safetensors").open("ab") as f:
            f.write(b"appended payload")

    result = verify_artifact(model_dir, load_public_key(keypair[1]), workers=1, on_plan=grow)
    assert not result.ok


def test_verify_reports_a_present_file_hidden_by_a_signed_ignore_path(model_dir, keypair):
    (model_dir / "model.safetensors").write_bytes(b"genuine weights")
    _sign(model_dir, keypair[0], ignore_paths=("model.safetensors",))
    (model_dir / "model.safetensors").write_bytes(b"attacker weights")  # what the loader will read
    result = _verify(model_dir, keypair[1])
    notes = getattr(result, "notes", ())  # a finding (info is enough) or a note must name the unchecked file
    assert "model.safetensors" in _named(result) or any("model.safetensors" in n for n in notes)


def test_verify_fails_on_an_added_empty_file_in_shards_mode(model_dir, keypair):
    (model_dir / "empty.bin").unlink()
    _sign(model_dir, keypair[0], shard_size=65536)
    (model_dir / "__init__.py").write_bytes(b"")  # turns a data directory into an importable package
    result = _verify(model_dir, keypair[1])
    assert not result.ok


def test_sign_refuses_an_empty_tree_and_verify_refuses_a_signature_that_covers_no_file(tmp_path, model_dir, keypair):
    root = tmp_path / "empty-model"
    root.mkdir()
    with pytest.raises(InputError, match="no files to sign"):
        _sign(root, keypair[0])
    # a signature over nothing made by some other tool would vouch for any tree under --allow-unsigned-files
    _sign(model_dir, keypair[0])
    sig = model_dir / "model.sig"
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"] = []
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(b"").hexdigest()
    key = load_private_key(keypair[0])
    payload = json.dumps(statement).encode()
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(
        key.sign(pae(PAYLOAD_TYPE, payload), ecdsa_for(key))).decode()
    sig.write_text(json.dumps(bundle))
    result = _verify(model_dir, keypair[1], allow_unsigned_files=True)
    assert not result.ok
    assert "covers no file" in result.findings[0].message


@pytest.mark.parametrize("name", ["events.log:1:2", "ckpt:0:\u00b2", "step:\u0661:\u0662"])
def test_files_named_like_shards_sign_and_verify(model_dir, keypair, name):
    (model_dir / name).write_bytes(b"log line")
    _sign(model_dir, keypair[0])
    result = _verify(model_dir, keypair[1])
    assert result.ok, result.findings


def test_sign_and_verify_agree_on_a_name_that_looks_like_a_drive_letter(model_dir, keypair):
    (model_dir / "c:notes.txt").write_bytes(b"x")
    try:
        _sign(model_dir, keypair[0])
    except InputError:
        return  # refusing at sign time is an acceptable fix
    result = _verify(model_dir, keypair[1])
    assert result.ok, result.findings


@pytest.mark.parametrize("ignore", [".", ""])
def test_sign_refuses_an_ignore_path_that_names_the_whole_tree(model_dir, keypair, ignore):
    with pytest.raises(InputError, match="whole tree"):
        _sign(model_dir, keypair[0], ignore_paths=(ignore,))


def test_sign_refuses_an_escaping_ignore_path_as_an_input_error(model_dir, keypair):
    with pytest.raises(MlfortError, match=r"--ignore-paths '\.\./x'") as info:
        _sign(model_dir, keypair[0], ignore_paths=("../x",))
    assert info.value.exit_code == 2
