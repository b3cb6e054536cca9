"""Every parser that reads hostile input fails closed with its own error type: never a crash, never a pass.

Hypothesis runs derandomised (the same examples every run), so these stay deterministic and fast.
"""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlfort.artifacts.bundle import SignatureError, decode_bundle, encode_bundle
from mlfort.artifacts.manifest import Manifest, ManifestError, Resource, Serialization, parse_statement
from mlfort.errors import InputError
from mlfort.policy import check_policy_text

FUZZ = settings(derandomize=True, max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


KEY = _key()
VALID = encode_bundle(
    Manifest.build("m", Serialization("files", "sha256"), [Resource("a", "00" * 32), Resource("b/c", "11" * 32)]),
    KEY,
)
EXPECTED = decode_bundle(VALID, KEY.public_key()).manifest


@FUZZ
@given(st.binary(max_size=2000))
def test_decode_bundle_on_random_bytes_raises_only_signature_errors(data):
    with contextlib.suppress(SignatureError, ManifestError):
        decode_bundle(data, KEY.public_key())


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, len(VALID)))
def test_a_mutated_valid_bundle_fails_closed_or_means_exactly_the_same(flips, cut):
    data = bytearray(VALID)
    for pos, value in flips:
        data[pos] = value
    data = bytes(data[:cut]) if cut < len(data) else bytes(data)
    try:
        got = decode_bundle(data, KEY.public_key()).manifest
    except (SignatureError, ManifestError):
        return
    assert got == EXPECTED  # only changes outside signed content (such as whitespace) may survive


@FUZZ
@given(_json)
def test_parse_statement_on_random_json_raises_only_manifest_errors(value):
    with contextlib.suppress(ManifestError):
        parse_statement(value)


@FUZZ
@given(st.dictionaries(st.sampled_from(["_type", "subject", "predicateType", "predicate", "x"]), _json, max_size=5))
def test_parse_statement_on_statement_shaped_json_raises_only_manifest_errors(value):
    base = json.loads(json.dumps(EXPECTED.to_statement()))
    base.update(value)
    with contextlib.suppress(ManifestError):
        parse_statement(base)


@FUZZ
@given(st.text(max_size=400))
def test_policy_checker_reports_instead_of_raising_on_random_text(text):
    try:
        report = check_policy_text(text, "fuzz.yaml")
    except InputError:
        return
    assert report.valid or report.issues


_yamlish = st.lists(st.sampled_from(
    ["version: 1\n", "roles:\n", "  a:\n", "    permissions: [dataset:read]\n", "  - x\n", "&a [1]\n", "*a\n",
     "<<: *a\n", "!!python/object:os.system\n", "{", "}", "[", "]", ": ", "'", '"', "\t", "---\n", "key: value\n",
     "datasets: {d: {classification: pii}}\n", "? complex\n", "%YAML 1.1\n"]), max_size=30).map("".join)


@FUZZ
@given(_yamlish)
def test_policy_checker_on_yaml_shaped_garbage_reports_instead_of_raising(text):
    try:
        report = check_policy_text(text, "fuzz.yaml")
    except InputError:
        return
    assert report.valid or report.issues
