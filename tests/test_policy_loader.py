"""Specifications of the policy loader: safe YAML, positioned errors, and hostile input refused fast."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from mlfort.errors import InputError
from mlfort.policy import (
    MAX_FILE_BYTES,
    PolicyError,
    PolicyIssue,
    check_policy_file,
    check_policy_text,
    example_policy_text,
    load_policy,
    load_policy_text,
)

MINIMAL = "version: 1\n"


def issues_of(text: str) -> list[PolicyIssue]:
    report = check_policy_text(textwrap.dedent(text), "p.yaml")
    assert report.policy is None, "expected the policy to be refused"
    return list(report.issues)


def only_issue(text: str) -> PolicyIssue:
    issues = issues_of(text)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def test_example_policy_validates_without_warnings() -> None:
    report = check_policy_text(example_policy_text(), "mlfort.yaml")
    assert report.valid, [str(i) for i in report.issues]
    assert report.issues == ()
    assert report.policy is not None
    assert report.policy.summary().startswith("valid: 2 environments, 5 roles")


def test_minimal_policy_is_version_one_and_nothing_else() -> None:
    policy = load_policy_text(MINIMAL)
    assert policy.version == 1
    assert dict(policy.roles) == {}


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mlfort.yaml"
    path.write_text(example_policy_text(), encoding="utf-8")
    assert "customers" in load_policy(path).datasets


def test_validate_rejects_duplicate_keys_naming_both_lines() -> None:
    issue = only_issue(
        """\
        version: 1
        roles:
          trainer:
            permissions: [dataset:read]
          trainer:
            permissions: [dataset:read, dataset:write]
        """
    )
    assert issue.rule_id == "MLF-POL-003"
    assert (issue.line, issue.column) == (5, 3)
    assert issue.key == "roles.trainer"
    assert "line 5" in issue.message and "line 3" in issue.message


def test_alias_bomb_is_refused_fast() -> None:
    lol = ["version: 1", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        prev = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lol.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    issues = issues_of("\n".join(lol) + "\n")
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"took {elapsed:.2f}s"
    assert [i.rule_id for i in issues] == ["MLF-POL-002"]
    assert "aliases" in issues[0].message
    assert issues[0].line is not None


def test_self_referencing_alias_is_refused() -> None:
    issue = only_issue("version: 1\nroles: &r {x: *r}\n")
    assert issue.rule_id in ("MLF-POL-001", "MLF-POL-002")


def test_alias_cycle_through_sequence_is_refused_by_depth() -> None:
    issue = only_issue("version: 1\nroles: &r [*r]\n")
    assert issue.rule_id == "MLF-POL-002"
    assert "nested deeper" in issue.message


def test_small_aliases_are_expanded() -> None:
    policy = load_policy_text(
        textwrap.dedent(
            """\
            version: 1
            roles:
              reader:
                permissions: &read [dataset:read, model:read]
              auditor:
                permissions: *read
            """
        )
    )
    assert policy.permissions_of_role("auditor") == {"dataset:read", "model:read"}


def test_deep_nesting_is_refused_without_crashing() -> None:
    # libyaml's composer recurses: '[' * 100000 would kill the interpreter with a segfault if it got that far.
    start = time.perf_counter()
    issue = only_issue("version: 1\nx: " + "[" * 100_000 + "\n")
    assert time.perf_counter() - start < 1.0
    assert issue.rule_id == "MLF-POL-002"
    assert "64" in issue.message
    assert issue.line == 2


def test_deep_block_nesting_is_refused() -> None:
    lines = ["version: 1"] + [" " * i + f"k{i}:" for i in range(100)]
    issue = only_issue("\n".join(lines) + " 1\n")
    assert issue.rule_id == "MLF-POL-002"


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: 50 MB on paper, nothing on disk
    start = time.perf_counter()
    with pytest.raises(InputError) as caught:
        check_policy_file(path)
    assert time.perf_counter() - start < 0.5
    assert "limit" in str(caught.value) and str(MAX_FILE_BYTES) in str(caught.value)


def test_huge_text_is_refused() -> None:
    with pytest.raises(InputError, match="limit"):
        check_policy_text("#" * (MAX_FILE_BYTES + 1), "big.yaml")


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_policy(tmp_path / "nope.yaml")


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        load_policy(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file_is_refused(text: str) -> None:
    issue = only_issue(text)
    assert issue.rule_id == "MLF-POL-001"
    assert "empty" in issue.message


def test_non_mapping_root_is_refused() -> None:
    issue = only_issue("- version: 1\n")
    assert issue.rule_id == "MLF-POL-001"
    assert "mapping" in issue.message and "a list" in issue.message
    assert (issue.line, issue.column) == (1, 1)


def test_scalar_root_is_refused() -> None:
    assert "mapping" in only_issue("just text\n").message


def test_non_string_keys_are_refused() -> None:
    issues = issues_of(
        """\
        version: 1
        roles:
          1: {}
          on: {}
          [a, b]: {}
        """
    )
    assert [(i.rule_id, i.line, i.column) for i in issues] == [
        ("MLF-POL-004", 3, 3),
        ("MLF-POL-004", 4, 3),
        ("MLF-POL-004", 5, 3),
    ]
    assert "boolean" in issues[1].message and "quote" in issues[1].message


def test_unknown_key_is_refused_with_position_and_choices() -> None:
    issue = only_issue(
        """\
        version: 1
        roles:
          trainer:
            permisions: [dataset:read]
        """
    )
    assert issue.rule_id == "MLF-POL-005"
    assert issue.key == "roles.trainer.permisions"
    assert (issue.line, issue.column) == (4, 5)
    assert "did you mean 'permissions'" in issue.message
    assert "expected one of description, permissions" in issue.message


def test_unknown_top_level_section_is_refused() -> None:
    issue = only_issue("version: 1\ngateway: {}\n")
    assert issue.rule_id == "MLF-POL-005"
    assert (issue.line, issue.column) == (2, 1)


def test_wrong_value_names_key_expected_and_got() -> None:
    issue = only_issue(
        """\
        version: 1
        datasets:
          churn:
            classification: secret
            residency: [EU]
            owner: dpo@acme.eu
        """
    )
    assert issue.rule_id == "MLF-POL-007"
    assert issue.key == "datasets.churn.classification"
    assert (issue.line, issue.column) == (4, 21)
    assert issue.message == "expected one of public, internal, confidential, pii; got 'secret'"
    assert str(issue).startswith("p.yaml:4:21: datasets.churn.classification: expected one of")


def test_wrong_types_are_named() -> None:
    issues = issues_of(
        """\
        version: 1
        roles: [trainer]
        environments:
          onprem:
            jurisdiction: 49
        """
    )
    by_key = {i.key: i for i in issues}
    assert by_key["roles"].message == "expected a mapping (key: value lines); got a list"
    assert (by_key["roles"].line, by_key["roles"].column) == (2, 8)
    assert by_key["environments.onprem.jurisdiction"].message == "expected a string; got the number 49"


def test_missing_required_key_points_at_its_parent() -> None:
    issue = only_issue(
        """\
        version: 1
        datasets:
          churn:
            residency: [EU]
            owner: dpo@acme.eu
        """
    )
    assert issue.rule_id == "MLF-POL-006"
    assert issue.key == "datasets.churn.classification"
    assert "missing required key 'classification'" in issue.message
    assert (issue.line, issue.column) == (4, 5)


@pytest.mark.parametrize("value", ["true", "'1'", "2", "1.0"])
def test_version_must_be_the_integer_one(value: str) -> None:
    issue = only_issue(f"version: {value}\n")
    assert issue.key == "version"
    assert "expected version: 1" in issue.message


def test_missing_version_is_refused() -> None:
    issue = only_issue("roles: {}\n")
    assert issue.rule_id == "MLF-POL-006"
    assert issue.key == "version"


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/name:os.system",
        "!custom thing",
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!!omap [a: 1]",
    ],
)
def test_non_standard_tags_are_refused(tagged: str) -> None:
    issue = only_issue(f"version: 1\nledger:\n  url: {tagged}\n")
    assert issue.rule_id == "MLF-POL-004"
    assert "unsupported YAML tag" in issue.message
    assert (issue.line, issue.column) == (3, 8)
    assert issue.key == "ledger.url"


def test_standard_explicit_tags_are_accepted() -> None:
    policy = load_policy_text("version: !!int 1\nledger:\n  url: !!str sqlite:///x\n")
    assert policy.ledger is not None and policy.ledger.url == "sqlite:///x"


def test_merge_keys_are_refused() -> None:
    issue = only_issue(
        """\
        version: 1
        roles:
          base: &base {description: shared}
          trainer:
            <<: *base
            permissions: [dataset:read]
        """
    )
    assert issue.rule_id == "MLF-POL-004"
    assert "merge keys" in issue.message
    assert (issue.line, issue.column) == (5, 5)


def test_binary_input_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"version: 1\nro\x00les: {}\n")
    report = check_policy_file(path)
    assert report.policy is None
    (issue,) = report.issues
    assert issue.rule_id == "MLF-POL-001"
    assert "binary" in issue.message
    assert (issue.line, issue.column) == (2, 3)


def test_non_utf8_input_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\ndatasets:\n  café: {}\n".encode("latin-1"))
    (issue,) = check_policy_file(path).issues
    assert issue.rule_id == "MLF-POL-001"
    assert "UTF-8" in issue.message and "0xe9" in issue.message
    assert (issue.line, issue.column) == (3, 6)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\n")
    assert load_policy(path).version == 1


def test_control_characters_are_refused_with_position() -> None:
    issue = only_issue("version: 1\nledger: {url: a\x07b}\n")
    assert issue.rule_id == "MLF-POL-001"
    assert (issue.line, issue.column) == (2, 16)


def test_syntax_error_reports_line_and_column() -> None:
    issue = only_issue("version: 1\nroles:\n  trainer: [dataset:read\n  admin: {}\n")
    assert issue.rule_id == "MLF-POL-001"
    assert issue.message.startswith("YAML syntax error")
    assert issue.line == 4 and issue.column is not None


def test_multiple_documents_are_refused() -> None:
    issue = only_issue("version: 1\n---\nversion: 1\n")
    assert issue.rule_id == "MLF-POL-001"
    assert "several YAML documents" in issue.message
    assert issue.line == 2


def test_undefined_alias_is_a_syntax_error() -> None:
    issue = only_issue("version: 1\nroles: *nothing\n")
    assert issue.rule_id == "MLF-POL-001"
    assert issue.line == 2


def test_huge_integer_is_refused_cleanly() -> None:
    issue = only_issue("version: 1\nledger: {url: " + "9" * 10_000 + "}\n")
    assert issue.rule_id == "MLF-POL-004"


def test_unquoted_dates_stay_text() -> None:
    policy = load_policy_text(
        "version: 1\ndatasets:\n  d:\n    classification: public\n    residency: [EU]\n    owner: 2024-01-01\n"
    )
    assert policy.datasets["d"].owner == "2024-01-01"


def test_all_errors_are_reported_together() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(
            textwrap.dedent(
                """\
                version: 1
                roles:
                  a: {permissions: [dataset:fly]}
                  b: {permissions: [spaceship:read]}
                datasets:
                  d: {classification: secret, residency: [EU], owner: me, colour: blue}
                """
            ),
            "p.yaml",
        )
    error = caught.value
    assert error.exit_code == 2
    assert sorted((i.line, i.column) for i in error.issues) == [(3, 21), (4, 21), (6, 23), (6, 59)]
    text = str(error)
    assert text.startswith("invalid policy p.yaml (4 errors):")
    assert "p.yaml:6:23: datasets.d.classification:" in text


def test_flat_document_with_too_many_values_is_refused_before_composing() -> None:
    start = time.perf_counter()
    issue = only_issue("version: 1\nx: [" + "1," * 300_000 + "1]\n")
    assert time.perf_counter() - start < 1.0
    assert issue.rule_id == "MLF-POL-002"
    assert issue.line == 2


def test_pure_python_loader_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    import mlfort.policy.source as source

    monkeypatch.setattr(source, "_LOADER", yaml.SafeLoader)
    assert load_policy_text(example_policy_text()).version == 1
    assert only_issue("version: 1\nx: " + "[" * 10_000 + "\n").rule_id == "MLF-POL-002"
    duplicate = only_issue("version: 1\nversion: 1\n")
    assert (duplicate.rule_id, duplicate.line, duplicate.column) == ("MLF-POL-003", 2, 1)
    bomb = ["version: 1", "a: &a [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    assert only_issue("\n".join(bomb) + "\n").rule_id == "MLF-POL-002"
