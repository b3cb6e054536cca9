"""Signed manifests: sign, verify, and every way verification must fail closed with a precise finding."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from mlfort.artifacts import sign_artifact, verify_artifact
from mlfort.artifacts.bundle import PAYLOAD_TYPE, pae
from mlfort.crypto.signing_keys import ecdsa_for, load_private_key, load_public_key, public_key_hint
from mlfort.errors import InputError


def _sign(path: Path, priv: Path, **kw):
    return sign_artifact(path, load_private_key(priv), **kw)


def _verify(path: Path, pub: Path, **kw):
    return verify_artifact(path, load_public_key(pub), **kw)


def _rules(result) -> list[str]:
    return [f.rule_id for f in result.findings]


def _resign(sig: Path, priv: Path, mutate) -> None:
    """Decode a signature's statement, let `mutate` change it, and sign it again with the same (trusted) key:
    this is how a malicious signer, or a bug in another tool, would produce a hostile manifest."""
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    mutate(statement)
    write_statement(sig, priv, statement)


def write_statement(sig: Path, priv: Path, statement: dict) -> None:
    key = load_private_key(priv)
    payload = json.dumps(statement).encode()
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": public_key_hint(key.public_key())}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload), ecdsa_for(key))).decode(),
                            "keyid": ""}],
        },
    }
    sig.write_text(json.dumps(bundle))


# --- round trips -------------------------------------------------------------------------------------------


def test_sign_then_verify_directory_passes(model_dir, keypair):
    result = _sign(model_dir, keypair[0])
    assert result.signature == model_dir / "model.sig"
    assert result.files == 6
    verified = _verify(model_dir, keypair[1])
    assert verified.ok, verified.findings
    assert verified.files_checked == 6


def test_sign_single_file_writes_path_dot_sig_and_verifies(tmp_path, keypair):
    f = tmp_path / "model.pkl"
    f.write_bytes(b"\x80\x04N.")
    result = _sign(f, keypair[0])
    assert result.signature == tmp_path / "model.pkl.sig"
    assert [r.name for r in result.manifest.resources] == ["."]
    assert _verify(f, keypair[1]).ok
    f.write_bytes(b"\x80\x04K\x01.")
    assert _rules(_verify(f, keypair[1])) == ["MLF-ART-001"]


@pytest.mark.parametrize("hash_type", ["sha256", "blake3", "blake2b"])
def test_every_hash_type_round_trips_and_detects_a_flipped_byte(model_dir, keypair, hash_type):
    _sign(model_dir, keypair[0], hash_type=hash_type)
    assert _verify(model_dir, keypair[1]).ok
    w = model_dir / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[123_456] ^= 1
    w.write_bytes(bytes(data))
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-001"]
    assert result.findings[0].target == str(model_dir / "weights.safetensors")
    assert result.findings[0].evidence["file"] == "weights.safetensors"
    assert hash_type in result.findings[0].message


def test_shards_method_round_trips_and_names_the_changed_file(model_dir, keypair):
    result = _sign(model_dir, keypair[0], shard_size=65536)
    names = [r.name for r in result.manifest.resources]
    assert "weights.safetensors:0:65536" in names and "weights.safetensors:262144:300000" in names
    assert _verify(model_dir, keypair[1]).ok
    with (model_dir / "weights.safetensors").open("r+b") as f:
        f.seek(200_000)
        f.write(b"X")
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-001"]
    assert "weights.safetensors:196608:262144" in result.findings[0].message


def test_shards_method_records_empty_files_so_adding_removing_or_filling_one_is_caught(model_dir, keypair):
    # model-signing's shards method has no shard for an empty file; mlfort records them in an extension field
    result = _sign(model_dir, keypair[0], shard_size=65536)
    assert result.manifest.serialization.empty_files == ("empty.bin",)
    (model_dir / "__init__.py").write_bytes(b"")  # an empty file can turn a data directory into a package
    (model_dir / "empty.bin").write_bytes(b"now with content")
    result = _verify(model_dir, keypair[1])
    assert sorted((f.rule_id, f.evidence["file"]) for f in result.findings) == [
        ("MLF-ART-001", "empty.bin"), ("MLF-ART-002", "__init__.py")]
    (model_dir / "empty.bin").unlink()
    found = {(f.rule_id, f.evidence["file"]) for f in _verify(model_dir, keypair[1]).findings}
    assert ("MLF-ART-003", "empty.bin") in found


def test_resources_are_ordered_by_path_components_like_model_signing(model_dir, keypair):
    names = [r.name for r in _sign(model_dir, keypair[0]).manifest.resources]
    # As strings "a-c" < "a/b"; model-signing orders PurePosixPath parts, so ("a", "b") < ("a-c",).
    assert names.index("a/b") < names.index("a-c")


def test_signature_inside_the_tree_is_not_part_of_the_manifest(model_dir, keypair):
    result = _sign(model_dir, keypair[0])
    assert "model.sig" not in {r.name for r in result.manifest.resources}
    _sign(model_dir, keypair[0])  # re-signing over an existing signature still excludes it
    assert _verify(model_dir, keypair[1]).ok


def test_git_paths_are_ignored_by_default_and_recorded(model_dir, keypair):
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "HEAD").write_text("ref: refs/heads/main")
    result = _sign(model_dir, keypair[0])
    assert ".git" in result.manifest.serialization.ignore_paths
    (model_dir / ".git" / "config").write_text("x")
    assert _verify(model_dir, keypair[1]).ok


def test_ignore_paths_option_leaves_out_a_directory(model_dir, keypair):
    (model_dir / "logs").mkdir()
    (model_dir / "logs" / "train.log").write_text("epoch 1")
    result = _sign(model_dir, keypair[0], ignore_paths=("logs",))
    assert not any(r.name.startswith("logs") for r in result.manifest.resources)


# --- tampering with the tree --------------------------------------------------------------------------------


def test_verify_names_each_changed_added_and_removed_file(model_dir, keypair):
    _sign(model_dir, keypair[0])
    (model_dir / "config.json").write_text('{"layers": 3}')
    (model_dir / "a" / "evil.pkl").write_bytes(b"cos\nsystem\n")
    (model_dir / "a-c").unlink()
    result = _verify(model_dir, keypair[1])
    assert not result.ok
    by_rule = {f.rule_id: f for f in result.findings}
    assert set(by_rule) == {"MLF-ART-001", "MLF-ART-002", "MLF-ART-003"}
    assert by_rule["MLF-ART-001"].evidence["file"] == "config.json"
    assert by_rule["MLF-ART-002"].evidence["file"] == "a/evil.pkl"
    assert by_rule["MLF-ART-003"].evidence["file"] == "a-c"
    # targets are paths a user (or GitHub code scanning) can open
    assert by_rule["MLF-ART-002"].target == str(model_dir / "a" / "evil.pkl")
    assert by_rule["MLF-ART-001"].evidence["expected"] != by_rule["MLF-ART-001"].evidence["actual"]


def test_allow_unsigned_files_reports_added_file_as_info_only(model_dir, keypair):
    _sign(model_dir, keypair[0])
    (model_dir / "README.md").write_text("notes")
    result = _verify(model_dir, keypair[1], allow_unsigned_files=True)
    assert result.ok
    assert [(f.rule_id, f.severity.value) for f in result.findings] == [("MLF-ART-002", "info")]


def test_empty_file_that_gains_content_is_detected(model_dir, keypair):
    _sign(model_dir, keypair[0])
    (model_dir / "empty.bin").write_bytes(b"\0")
    assert _rules(_verify(model_dir, keypair[1])) == ["MLF-ART-001"]


def test_verify_refuses_symlink_that_leaves_the_tree(model_dir, keypair, tmp_path):
    _sign(model_dir, keypair[0])
    secret = tmp_path / "outside.txt"
    secret.write_text("secret")
    (model_dir / "config.json").unlink()
    (model_dir / "config.json").symlink_to(secret)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-006"]
    assert "config.json" in result.findings[0].message


def test_sign_refuses_symlinks_unless_allowed_and_never_out_of_the_tree(model_dir, keypair, tmp_path):
    (model_dir / "link.json").symlink_to(model_dir / "config.json")
    with pytest.raises(InputError, match=r"link\.json is a symlink"):
        _sign(model_dir, keypair[0])
    result = _sign(model_dir, keypair[0], allow_symlinks=True)
    assert "link.json" in {r.name for r in result.manifest.resources}
    assert _verify(model_dir, keypair[1]).ok
    (model_dir / "escape").symlink_to(tmp_path)
    with pytest.raises(InputError, match="leaves the tree"):
        _sign(model_dir, keypair[0], allow_symlinks=True)
    assert _rules(_verify(model_dir, keypair[1])) == ["MLF-ART-006"]


def test_symlink_loop_is_refused(model_dir, keypair):
    (model_dir / "a" / "loop").symlink_to(model_dir / "a")
    with pytest.raises(InputError, match=r"symlink loop|reached twice"):
        _sign(model_dir, keypair[0], allow_symlinks=True)


def test_fifo_in_tree_is_refused_not_read(model_dir, keypair):
    _sign(model_dir, keypair[0])
    os.mkfifo(model_dir / "pipe")
    result = _verify(model_dir, keypair[1])  # would hang forever if the FIFO were opened
    assert _rules(result) == ["MLF-ART-009"]
    with pytest.raises(InputError, match="special file"):
        _sign(model_dir, keypair[0])


def test_directory_signature_does_not_verify_a_single_file(model_dir, keypair, tmp_path):
    _sign(model_dir, keypair[0], signature=tmp_path / "dir.sig")
    f = tmp_path / "f.bin"
    f.write_bytes(b"x")
    result = _verify(f, keypair[1], signature=tmp_path / "dir.sig")
    assert _rules(result) == ["MLF-ART-004"]


# --- hostile or broken signatures ---------------------------------------------------------------------------


def test_missing_signature_fails_closed(model_dir, keypair):
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-008"]
    assert "no signature at" in result.findings[0].message


def test_wrong_key_is_named_as_such(model_dir, keypair, other_keypair):
    _sign(model_dir, keypair[0])
    result = _verify(model_dir, other_keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert "wrong key" in result.findings[0].message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "not a Sigstore bundle"),
        (b'{"mediaType": "application/x-evil"}', "mediaType"),
        (b'{"a": 1, "a": 2}', "duplicate JSON key"),
        (b"[" * 100_000, "nests too deeply|not JSON|far more JSON objects"),
        (b"[" * 200 + b"]" * 200, "nests too deeply|not a Sigstore bundle"),
        (b'{"mediaType": NaN}', "NaN"),
    ],
)
def test_malformed_signature_files_fail_closed(model_dir, keypair, content, message):
    _sign(model_dir, keypair[0])
    (model_dir / "model.sig").write_bytes(content)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    import re

    assert re.search(message, result.findings[0].message), result.findings[0].message


def _mutate_bundle(sig: Path, mutate) -> None:
    bundle = json.loads(sig.read_text())
    mutate(bundle)
    sig.write_text(json.dumps(bundle))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b["dsseEnvelope"].update(payloadType="application/json"), "payloadType"),
        (lambda b: b["dsseEnvelope"].update(signatures=[]), "no signatures"),
        (lambda b: b["dsseEnvelope"].update(payload=b["dsseEnvelope"]["payload"] + "!"), "base64"),
        (lambda b: b["dsseEnvelope"].update(payload="QR=="), "base64"),  # decodes, but not canonically
        (lambda b: b["dsseEnvelope"]["signatures"][0].update(sig=base64.b64encode(b"\0" * 70).decode()),
         "does not verify"),
        (lambda b: b.pop("dsseEnvelope"), "no dsseEnvelope"),
        (lambda b: b["verificationMaterial"].pop("publicKey") and b["verificationMaterial"].update(
            certificate={"rawBytes": "AA=="}), "certificate"),
    ],
)
def test_tampered_bundles_fail_closed(model_dir, keypair, mutate, message):
    _sign(model_dir, keypair[0])
    _mutate_bundle(model_dir / "model.sig", mutate)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-004"]
    assert message in result.findings[0].message


def test_payload_swapped_after_signing_does_not_verify(model_dir, keypair):
    _sign(model_dir, keypair[0])
    sig = model_dir / "model.sig"
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"].pop()
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig.write_text(json.dumps(bundle))
    assert _rules(_verify(model_dir, keypair[1])) == ["MLF-ART-004"]


def _set_first_name(name):
    def mutate(st):
        st["predicate"]["resources"][0]["name"] = name
    return mutate


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("../outside.bin", "MLF-ART-005"),
        ("/etc/passwd", "MLF-ART-005"),
        ("a/../../x", "MLF-ART-005"),
        ("a//b", "MLF-ART-005"),
        ("./a/b", "MLF-ART-005"),
        ("a\\b", "MLF-ART-005"),
        ("C:/Windows/x", "MLF-ART-005"),
        ("a\x00b", "MLF-ART-005"),
        ("", "MLF-ART-004"),
    ],
)
def test_unsafe_paths_inside_a_validly_signed_manifest_are_refused(model_dir, keypair, name, rule):
    _sign(model_dir, keypair[0])

    def mutate(st):
        _set_first_name(name)(st)
        _fix_subject(st)

    _resign(model_dir / "model.sig", keypair[0], mutate)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == [rule], result.findings


def _fix_subject(st):
    import hashlib

    h = hashlib.sha256()
    for r in st["predicate"]["resources"]:
        h.update(bytes.fromhex(r["digest"]))
    st["subject"][0]["digest"]["sha256"] = h.hexdigest()


def test_duplicate_entries_are_refused(model_dir, keypair):
    _sign(model_dir, keypair[0])

    def mutate(st):
        res = st["predicate"]["resources"]
        res.append(dict(res[0]))
        _fix_subject(st)

    _resign(model_dir / "model.sig", keypair[0], mutate)
    result = _verify(model_dir, keypair[1])
    assert _rules(result) == ["MLF-ART-005"]
    assert "duplicate entry" in result.findings[0].message


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda st: st["predicate"]["serialization"].update(hash_type="md5"), "hashing method 'md5'"),
        (lambda st: st["predicate"]["resources"][0].update(algorithm="blake3"), "mixes hashing methods"),
        (lambda st: st["predicate"]["serialization"].update(method="tarball"), "serialization method"),
    ],
)
def test_signature_for_a_different_hashing_method_is_refused(model_dir, keypair, mutate, message):
    _sign(model_dir, keypair[0])
    _resign(model_dir / "model.sig", keypair[0], mutate)
    result = _verify(model_dir, keypair[1])
    assert message in result.findings[0].message
    assert not result.ok


def test_require_hash_refuses_a_downgrade(model_dir, keypair):
    _sign(model_dir, keypair[0], hash_type="blake2b")
    result = _verify(model_dir, keypair[1], require_hash="sha256")
    assert _rules(result) == ["MLF-ART-007"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda st: st.update(predicateType="https://slsa.dev/provenance/v1"), "predicateType"),
        (lambda st: st.update(_type="https://in-toto.io/Statement/v0.1"), "_type"),
        (lambda st: st["subject"].append(st["subject"][0]), "exactly one subject"),
        (lambda st: st["subject"][0]["digest"].update(sha256="0" * 64), "subject digest does not match"),
        (lambda st: st["predicate"]["resources"][0].update(digest="zz"), "hex digest"),
        (lambda st: st["predicate"]["serialization"].update(ignore_paths=["."]), "whole tree"),
        (lambda st: st["predicate"]["serialization"].update(ignore_paths=["../x"]), "unsafe path"),
        (lambda st: st["predicate"]["serialization"].update(allow_symlinks="yes"), "allow_symlinks"),
        (lambda st: st.update(predicate=[]), "predicate must be"),
    ],
)
def test_malformed_statements_fail_closed(model_dir, keypair, mutate, message):
    _sign(model_dir, keypair[0])
    _resign(model_dir / "model.sig", keypair[0], mutate)
    result = _verify(model_dir, keypair[1])
    assert not result.ok
    assert message in result.findings[0].message, result.findings[0].message


def test_signed_ignore_path_hides_only_what_the_signer_chose(model_dir, keypair):
    _sign(model_dir, keypair[0], ignore_paths=("a",))
    (model_dir / "a" / "b").write_bytes(b"changed but ignored by the signer")
    (model_dir / "a-c").write_bytes(b"changed and covered")
    result = _verify(model_dir, keypair[1])
    assert sorted((f.rule_id, f.severity.value, f.evidence["file"]) for f in result.findings) == [
        ("MLF-ART-001", "critical", "a-c"),
        ("MLF-ART-010", "info", "a/b"),  # not checked, and the report says so
    ]


def test_verify_of_missing_path_is_an_input_error(tmp_path, keypair):
    with pytest.raises(InputError, match="no such file"):
        _verify(tmp_path / "nope", keypair[1])


def test_non_utf8_file_name_is_refused_with_its_name(model_dir, keypair):
    name = os.fsencode(str(model_dir)) + b"/bad\xffname"
    try:
        with open(name, "wb") as f:
            f.write(b"x")
    except OSError:
        pytest.skip("filesystem refuses non-UTF-8 names")
    with pytest.raises(InputError, match="not valid UTF-8"):
        _sign(model_dir, keypair[0])


# --- several trusted keys, and the signers a policy names ---------------------------------------------------


def test_any_one_of_several_trusted_keys_may_have_signed(model_dir, keypair, other_keypair):
    _sign(model_dir, keypair[0])
    keys = [load_public_key(other_keypair[1]), load_public_key(keypair[1])]
    result = verify_artifact(model_dir, keys)
    assert result.ok
    from mlfort.crypto.signing_keys import public_key_hint

    assert result.signer_hint == public_key_hint(keys[1])


def test_an_empty_list_of_trusted_keys_trusts_nothing(model_dir, keypair):
    _sign(model_dir, keypair[0])
    result = verify_artifact(model_dir, [])
    assert _rules(result) == ["MLF-ART-004"]
    assert "deny by default" in result.findings[0].message


def test_every_rule_verify_can_report_is_registered_for_sarif():
    import re

    from mlfort.artifacts import rules
    from mlfort.report import rule

    source = (Path(rules.__file__).parent / "signing.py").read_text()
    used = set(re.findall(r'"(MLF-ART-\d{3})"', source))
    assert used <= set(rules.RULES)
    assert all(rule(r) is not None for r in used)
