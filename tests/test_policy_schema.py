"""Specifications of the policy schema, its cross-references, and deny-by-default grants."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from mlfort.policy import (
    Classification,
    Grants,
    PolicyIssue,
    check_policy_text,
    example_policy_text,
    load_policy_text,
    permits,
    within,
)

BASE = """\
version: 1
environments:
  onprem: {jurisdiction: DE, key_service: hsm, identity_provider: corp-ldap}
  us: {jurisdiction: US}
keys:
  hsm: {type: pkcs11, module: /usr/lib/softhsm.so, token_label: mlfort}
identity:
  ldap:
    corp-ldap: {url: "ldaps://ldap.example", base_dn: "dc=example"}
"""


def standalone_issues(text: str) -> list[PolicyIssue]:
    return list(check_policy_text("version: 1\n" + text, "p.yaml").issues)


def issues_of(extra: str) -> list[PolicyIssue]:
    report = check_policy_text(BASE + textwrap.dedent(extra), "p.yaml")
    return list(report.issues)


def errors_of(extra: str) -> list[PolicyIssue]:
    report = check_policy_text(BASE + textwrap.dedent(extra), "p.yaml")
    assert report.policy is None, "expected the policy to be refused"
    return list(report.errors)


def test_base_fixture_is_valid() -> None:
    assert issues_of("") == []


def test_unknown_permission_kind_names_the_allowed_kinds() -> None:
    (issue,) = errors_of("roles:\n  r: {permissions: [spaceship:read]}\n")
    assert issue.key == "roles.r.permissions[0]"
    assert "unknown resource kind 'spaceship'" in issue.message
    assert "dataset, model, endpoint, policy, ledger, key" in issue.message
    assert (issue.line, issue.column) == (11, 21)


def test_unknown_verb_names_the_allowed_verbs() -> None:
    (issue,) = errors_of("roles:\n  r: {permissions: [model:train]}\n")
    assert "read, write, deploy, invoke, sign, verify, admin" in issue.message


@pytest.mark.parametrize("bad", ["dataset", "*:read", "*:*", ":read", "dataset:"])
def test_malformed_permissions_are_refused(bad: str) -> None:
    (issue,) = errors_of(f"roles:\n  r: {{permissions: ['{bad}']}}\n")
    assert issue.rule_id == "MLF-POL-007"


def test_wildcard_verb_is_accepted_with_a_warning() -> None:
    report = check_policy_text(BASE + "roles:\n  r: {permissions: ['dataset:*']}\n", "p.yaml")
    assert report.valid and report.policy is not None
    (issue,) = report.issues
    assert issue.rule_id == "MLF-POL-010"
    assert issue.severity == "medium"
    assert (issue.line, issue.column) == (11, 21)
    grants = report.policy.permissions_of_role("r")
    assert permits(grants, "dataset:read") and permits(grants, "dataset:admin")
    assert not permits(grants, "model:read")


def test_undefined_references_are_each_reported() -> None:
    issues = errors_of(
        """\
        roles:
          trainer: {permissions: [dataset:read]}
        principals:
          humans:
            - {group: scientists, provider: corp-oidc, roles: [data-scientist]}
          workloads:
            job:
              roles: [trainer, ghost]
              reads: [customers]
              writes: [churn]
              environments: [mars]
        models:
          m: {classification: internal, residency: [EU], owner: me, trained_on: [nothing]}
        """
    )
    assert {i.rule_id for i in issues} == {"MLF-POL-008"}
    got = {i.key: i.message for i in issues}
    assert got == {
        "principals.humans[0].provider": "undefined identity provider 'corp-oidc' (defined: corp-ldap)",
        "principals.humans[0].roles[0]": "undefined role 'data-scientist' (defined: trainer)",
        "principals.workloads.job.roles[1]": "undefined role 'ghost' (defined: trainer)",
        "principals.workloads.job.reads[0]": "undefined dataset 'customers' (none are defined)",
        "principals.workloads.job.writes[0]": "undefined model 'churn' (defined: m)",
        "principals.workloads.job.environments[0]": "undefined environment 'mars' (defined: onprem, us)",
        "models.m.trained_on[0]": "undefined dataset 'nothing' (none are defined)",
    }
    reads = next(i for i in issues if i.key.endswith("reads[0]"))
    assert (reads.line, reads.column) == (18, 15)


def test_undefined_keyring_and_identity_provider_in_environment() -> None:
    report = check_policy_text(
        "version: 1\nenvironments:\n  e: {jurisdiction: DE, key_service: kms, identity_provider: idp}\n", "p.yaml"
    )
    assert {(i.key, i.line, i.column) for i in report.issues} == {
        ("environments.e.key_service", 3, 38),
        ("environments.e.identity_provider", 3, 62),
    }


def test_location_in_undefined_environment_points_at_the_key() -> None:
    (issue,) = errors_of(
        """\
        datasets:
          d:
            classification: internal
            residency: [EU]
            owner: me
            locations: {mars: /data/d}
        """
    )
    assert issue.key == "datasets.d.locations.mars"
    assert (issue.line, issue.column) == (15, 17)


def test_data_located_outside_its_residency_is_an_error() -> None:
    (issue,) = errors_of(
        """\
        datasets:
          customers:
            classification: pii
            residency: [EU]
            owner: dpo@example.eu
            locations:
              onprem: /data/customers
              us: s3://acme-us/customers
        """
    )
    assert issue.rule_id == "MLF-POL-009"
    assert issue.severity == "high"
    assert issue.key == "datasets.customers.locations.us"
    assert (issue.line, issue.column) == (17, 7)
    assert "jurisdiction US" in issue.message and "[EU]" in issue.message


def test_model_residency_is_checked_too() -> None:
    (issue,) = errors_of(
        "models:\n  m: {classification: confidential, residency: [DE], owner: me, locations: {us: /m}}\n"
    )
    assert issue.rule_id == "MLF-POL-009"


@pytest.mark.parametrize(
    ("jurisdiction", "allowed", "inside"),
    [
        ("DE", ["EU"], True),
        ("DE", ["DE"], True),
        ("DE-BY", ["DE"], True),
        ("DE-BY", ["EU"], True),
        ("US", ["EU"], False),
        ("CH", ["EU"], False),
        ("DE", ["DE-BY"], False),
        ("DE", [], False),
    ],
)
def test_within_residency(jurisdiction: str, allowed: list[str], inside: bool) -> None:
    assert within(jurisdiction, allowed) is inside


@pytest.mark.parametrize("root", ["/srv/data", "file:///srv/data", "s3://my-bucket", "s3://my-bucket/prefix/x"])
def test_storage_roots_accept_the_three_forms(root: str) -> None:
    assert standalone_issues(f"environments:\n  x: {{jurisdiction: DE, storage: ['{root}']}}\n") == []


@pytest.mark.parametrize("root", ["relative/path", "//host/share", "file://host/x", "s3://", "http://x/y", "S3://B"])
def test_storage_roots_refuse_other_forms(root: str) -> None:
    (issue,) = standalone_issues(f"environments:\n  x: {{jurisdiction: DE, storage: ['{root}']}}\n")
    assert "expected file:///path, /absolute/path or s3://bucket/prefix" in issue.message


@pytest.mark.parametrize("code", ["de", "Germany", "D", "DEU"])
def test_jurisdiction_must_be_an_iso_like_code(code: str) -> None:
    (issue,) = standalone_issues(f"environments:\n  x: {{jurisdiction: '{code}'}}\n")
    assert issue.key == "environments.x.jurisdiction"
    assert "ISO 3166" in issue.message


def test_signers_refuse_private_keys() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----"
    (issue,) = errors_of(
        f'datasets:\n  d: {{classification: public, residency: [EU], owner: me, signers: ["{pem}"]}}\n'
    )
    assert "never a private key" in issue.message


def _public_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return pem.strip().replace("\n", "\\n")


def test_signers_accept_paths_and_public_pem() -> None:
    pem = _public_pem()
    extra = f'datasets:\n  d: {{classification: public, residency: [EU], owner: me, signers: [a.pub, "{pem}"]}}\n'
    assert issues_of(extra) == []  # text only: a relative key file is checked when the policy is read from a file


def test_an_inline_signer_pem_that_is_not_a_key_is_an_error() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----"
    extra = f'datasets:\n  d: {{classification: public, residency: [EU], owner: me, signers: ["{pem}"]}}\n'
    (issue,) = errors_of(extra)
    assert issue.rule_id == "MLF-POL-013"
    assert issue.key == "datasets.d.signers[0]"


def test_keyrings_keep_their_type_settings_and_refuse_unknown_or_missing_ones() -> None:
    policy = load_policy_text(BASE.replace("type: pkcs11", "type: pkcs11, key_label: kek, pin_env: HSM_PIN"))
    hsm = policy.keys["hsm"]
    assert hsm.settings() == {"type": "pkcs11", "module": "/usr/lib/softhsm.so", "token_label": "mlfort",
                              "key_label": "kek", "pin_env": "HSM_PIN"}
    assert hsm.jurisdiction is None and hsm.classifications is None
    (issue,) = check_policy_text(BASE.replace("type: pkcs11", "type: vault"), "p.yaml").issues
    assert issue.key == "keys.hsm.type"
    assert issue.message == "expected one of local, pkcs11, awskms; got 'vault'"
    (issue,) = check_policy_text(BASE.replace("type: pkcs11", "type: pkcs11, slot: 3"), "p.yaml").issues
    assert issue.key == "keys.hsm" and "unknown setting(s) for a pkcs11 keyring: slot" in issue.message
    (issue,) = check_policy_text(BASE.replace("type: pkcs11, module: /usr/lib/softhsm.so, token_label: mlfort",
                                              "type: awskms"), "p.yaml").issues
    assert "an awskms keyring needs: key_id" in issue.message
    (issue,) = check_policy_text(BASE.replace("type: pkcs11", "type: pkcs11, pin: '1234'"), "p.yaml").issues
    assert "unknown setting(s)" in issue.message and "pin_env" in issue.message  # a PIN is never a setting


def test_keyring_jurisdiction_and_classifications() -> None:
    policy = load_policy_text(BASE.replace("type: pkcs11", "type: pkcs11, jurisdiction: DE, classifications: [pii]"))
    hsm = policy.keys["hsm"]
    assert hsm.jurisdiction == "DE"
    assert hsm.protects(Classification.pii) and not hsm.protects(Classification.internal)
    (issue,) = check_policy_text(BASE.replace("type: pkcs11", "type: pkcs11, classifications: [secret]"),
                                 "p.yaml").issues
    assert issue.key.startswith("keys.hsm.classifications")


def test_strict_sections_refuse_extra_keys_placeholders_do_not() -> None:
    assert issues_of("ledger: {url: 'postgresql://db/ledger', pool: 5}\n") == []
    (issue,) = errors_of("principals: {robots: []}\n")
    assert issue.rule_id == "MLF-POL-005"


# Deny by default ---------------------------------------------------------------------------------------


def test_empty_roles_grant_nothing() -> None:
    policy = load_policy_text("version: 1\nroles: {}\n")
    assert policy.permissions_of_role("admin") == frozenset()
    assert policy.permissions_of_roles([]) == frozenset()


def test_role_without_permissions_grants_nothing() -> None:
    policy = load_policy_text("version: 1\nroles:\n  idle: {description: nothing}\n  empty: {permissions: []}\n")
    assert policy.permissions_of_role("idle") == frozenset()
    assert policy.permissions_of_role("empty") == frozenset()


def test_workload_without_reads_grants_nothing() -> None:
    policy = load_policy_text("version: 1\nprincipals:\n  workloads:\n    job: {}\n")
    grants = policy.workload_grants("job")
    assert grants == Grants()
    assert not grants.reads and not grants.writes and not grants.environments
    assert not grants.permits("dataset:read")


def test_unknown_workload_grants_nothing() -> None:
    policy = load_policy_text(example_policy_text())
    assert policy.workload_grants("intruder") == Grants()
    assert policy.permissions_of_role("root") == frozenset()


def test_trainer_workload_of_the_example_reads_one_dataset_and_writes_one_model() -> None:
    policy = load_policy_text(example_policy_text())
    grants = policy.workload_grants("trainer")
    assert grants.reads == {"customers"}
    assert grants.writes == {"churn-model"}
    assert grants.environments == {"onprem"}
    assert grants.permits("dataset:read")
    assert not grants.permits("model:deploy")


@pytest.mark.parametrize("asked", ["dataset:*", "*", "", "dataset", ":read"])
def test_permits_never_grants_wildcards_or_malformed_requests(asked: str) -> None:
    assert not permits({"dataset:*", "dataset:read"}, asked)


def test_policy_is_frozen_all_the_way_down() -> None:
    policy = load_policy_text(example_policy_text())
    with pytest.raises(ValidationError):
        policy.version = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.roles["root"] = policy.roles["admin"]  # type: ignore[index]
    with pytest.raises(ValidationError):
        policy.roles["admin"].permissions = ()  # type: ignore[misc]
    assert isinstance(policy.roles["admin"].permissions, tuple)


def test_policy_dumps_to_plain_json() -> None:
    dumped = load_policy_text(example_policy_text()).model_dump(mode="json")
    assert dumped["datasets"]["customers"]["classification"] == "pii"
    assert dumped["keys"]["aws-kms"]["region"] == "eu-central-1"


def test_a_location_outside_its_environment_storage_roots_is_an_error() -> None:
    from mlfort.policy.references import under_root

    assert under_root("file:///srv/data/x/", "/srv/data")
    assert under_root("s3://b/models/churn", "s3://b/models")
    assert not under_root("/srv/data2/x", "/srv/data")
    assert not under_root("s3://b/models-old/x", "s3://b/models")
    assert not under_root("/srv/data/../etc", "/srv/data")
    text = (
        "version: 1\n"
        "environments:\n  vault: {jurisdiction: DE, storage: [/srv/data, s3://bkt/data]}\n"
        "datasets:\n"
        "  inside: {classification: public, residency: [EU], owner: me, locations: {vault: s3://bkt/data/x}}\n"
        "  outside: {classification: public, residency: [EU], owner: me, locations: {vault: /tmp/d}}\n"
    )
    report = check_policy_text(text, "p.yaml")
    found = [(i.rule_id, i.key, i.line) for i in report.errors]
    assert found == [("MLF-POL-011", "datasets.outside.locations.vault", 6)]


def test_key_service_must_fit_the_data_that_lives_in_its_environment() -> None:
    text = """\
version: 1
environments:
  onprem: {jurisdiction: DE, key_service: onprem-keys}
  us: {jurisdiction: US, key_service: us-kms}
keys:
  onprem-keys: {type: local, jurisdiction: DE, classifications: [public, internal]}
  us-kms: {type: awskms, key_id: alias/x, region: us-east-1}
datasets:
  customers: {classification: pii, residency: [EU, US], owner: dpo, locations: {onprem: /d, us: s3://bkt/d}}
  clicks: {classification: internal, residency: [EU, US], owner: web, locations: {onprem: /c, us: s3://bkt/c}}
"""
    issues = [i for i in check_policy_text(text, "p.yaml").issues if i.rule_id == "MLF-POL-014"]
    assert [(i.key, "may not protect pii" in i.message) for i in issues] == [
        ("datasets.customers.locations.onprem", True)]
    # Keys held in the US are fine for data whose residency includes the US; not once it is EU only.
    narrowed = text.replace("customers: {classification: pii, residency: [EU, US]",
                            "customers: {classification: pii, residency: [EU]")
    issues = [i for i in check_policy_text(narrowed, "p.yaml").issues if i.rule_id == "MLF-POL-014"]
    assert any("holds its keys in US" in i.message for i in issues)


@pytest.mark.parametrize(("issuer", "message"), [
    ("{name: a, url: 'http://idp.example', audience: x, jwks_file: j.json}", "https:// URL"),
    ("{name: a, url: 'http://localhost.evil.example', audience: x, jwks_file: j.json}", "https:// URL"),
    ("{name: a, url: 'https://idp.example', audience: x}", "exactly one of jwks_uri"),
    ("{name: a, url: 'https://idp.example', audience: x, jwks_file: j, jwks_uri: 'https://idp.example/k'}",
     "exactly one of jwks_uri"),
    ("{name: a, url: 'https://idp.example', audience: x, jwks_file: j, algorithms: [HS256]}", "expected one of"),
    ("{name: a, url: 'https://idp.example', audience: x, jwks_file: j, algorithms: [none]}", "expected one of"),
    ("{name: a, url: 'https://idp.example', audience: x, jwks_file: j, clock_skew_seconds: 3600}", "less than"),
    ("{name: a, url: 'https://idp.example', audience: x, jwks_file: j, client_secret: s}", "client_secret"),
])
def test_issuers_are_strict(issuer: str, message: str) -> None:
    issues = check_policy_text(f"version: 1\nidentity:\n  issuers:\n    - {issuer}\n", "p.yaml").issues
    assert issues and message in issues[0].message


def test_identity_settings_and_time_limited_grants() -> None:
    policy = load_policy_text("""\
version: 1
identity:
  issuers:
    - {name: entra, url: 'https://login.microsoftonline.com/t/v2.0', audience: [api://mlfort, mlfort],
       jwks_file: entra.json, algorithms: [RS256, PS256]}
  ldap:
    ad: {url: 'ldaps://dc1.corp.example:636', base_dn: 'dc=corp,dc=example', active_directory: true,
         bind_dn: 'cn=svc,dc=corp,dc=example', bind_password_env: AD_PASSWORD,
         user_filter: '(sAMAccountName={username})'}
principals:
  humans:
    - {group: ml, provider: entra, roles: [], not_before: 2026-01-01T00:00:00Z, until: 2026-02-01T00:00:00+01:00}
""")
    (issuer,) = policy.identity.issuers
    assert issuer.audience == ("api://mlfort", "mlfort") and issuer.algorithms == ("RS256", "PS256")
    assert policy.identity.ldap["ad"].active_directory
    assert policy.principals.humans[0].until == "2026-02-01T00:00:00+01:00"
    for bad, msg in (("until: 2026-02-01", "RFC 3339"), ("until: tomorrow", "RFC 3339")):
        text = f"version: 1\nprincipals:\n  humans:\n    - {{group: g, provider: p, {bad}}}\n"
        assert any(msg in i.message for i in check_policy_text(text, "p.yaml").issues)
    ldap = "version: 1\nidentity:\n  ldap:\n    d: {url: 'ldaps://h', base_dn: 'dc=x', %s}\n"
    assert "needs bind_dn" in check_policy_text(ldap % "bind_password_env: P", "p").issues[0].message
    assert "{username}" in check_policy_text(ldap % "user_filter: '(uid=x)'", "p").issues[0].message
    assert check_policy_text(ldap % "bind_password: hunter2", "p").issues[0].rule_id == "MLF-POL-005"
    bad_url = "version: 1\nidentity:\n  ldap:\n    d: {url: 'http://h', base_dn: 'dc=x'}\n"
    assert "ldap://host" in check_policy_text(bad_url, "p").issues[0].message
