"""The policy schema: frozen pydantic models of mlfort.yaml, and the deny-by-default questions it answers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WrapSerializer,
    model_validator,
)

from mlfort.report.redact import preview

K = TypeVar("K")
V = TypeVar("V")

# Mappings are read-only views too, so a loaded policy cannot be changed behind a check's back.
FrozenMap = Annotated[
    Mapping[K, V],
    AfterValidator(MappingProxyType),
    WrapSerializer(lambda value, handler: handler(dict(value))),
]


def _empty_map() -> Mapping[Any, Any]:
    return MappingProxyType({})


RESOURCE_KINDS: tuple[str, ...] = ("dataset", "model", "endpoint", "policy", "ledger", "key")
"""The kinds of resource a permission can name (`<kind>:<verb>`)."""
VERBS: tuple[str, ...] = ("read", "write", "deploy", "invoke", "sign", "verify", "admin")
"""The verbs a permission can name; `*` (every verb of one kind) is accepted but reported as a warning."""
WILDCARD = "*"

# fmt: off
EU_MEMBERS: frozenset[str] = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
# fmt: on
"""ISO 3166-1 codes of EU member states: an environment in DE is inside residency [EU]."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_JURISDICTION = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")
_S3 = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"expected a name of letters, digits, '.', '_' or '-' (up to 64, starting with a letter or digit); "
            f"got {preview(str(value))}"
        )
    return value


def _jurisdiction(value: str) -> str:
    if not _JURISDICTION.fullmatch(value):
        raise ValueError(f"expected an upper-case ISO 3166 code such as EU, DE, US or US-CA; got {preview(str(value))}")
    return value


def _storage_location(value: str) -> str:
    ok = (
        (value.startswith("file:///") and len(value) > len("file:///"))
        or (value.startswith("/") and not value.startswith("//"))
        or bool(_S3.fullmatch(value))
    )
    if not ok or "\n" in value or "\x00" in value:
        raise ValueError(f"expected file:///path, /absolute/path or s3://bucket/prefix; got {preview(str(value))}")
    return value


def _permission(value: str) -> str:
    kind, sep, verb = value.partition(":")
    if not sep:
        raise ValueError(f"expected <kind>:<verb> such as dataset:read; got {preview(str(value))}")
    if kind not in RESOURCE_KINDS:
        raise ValueError(
            f"unknown resource kind {kind!r} in {preview(str(value))}; expected one of {', '.join(RESOURCE_KINDS)}"
        )
    if verb != WILDCARD and verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r} in {preview(str(value))}; expected one of {', '.join(VERBS)} (or *)")
    return value


def _signer(value: str) -> str:
    text = value.strip()
    if text.startswith("-----BEGIN"):
        if "-----END" not in text or "PRIVATE KEY" in text:
            raise ValueError("expected a PEM public key (BEGIN ... END PUBLIC KEY), never a private key")
        return value
    if not text or "\n" in text or "\x00" in text:
        raise ValueError(f"expected a public key file path or a PEM public key; got {preview(value)}")
    return value


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _exactly_one(value: Any) -> Any:
    # Literal[1] alone would take `true` (True == 1) and 1.0; the version must be the integer 1.
    if type(value) is not int or value != 1:
        raise ValueError(f"expected version: 1 (the only schema version so far); got {preview(str(value))}")
    return value


Name = Annotated[str, AfterValidator(_name)]
Jurisdiction = Annotated[str, AfterValidator(_jurisdiction)]
StorageLocation = Annotated[str, AfterValidator(_storage_location)]
Permission = Annotated[str, AfterValidator(_permission)]
Signer = Annotated[str, AfterValidator(_signer)]
Text = Annotated[str, StringConstraints(max_length=4096)]
NonEmpty = Annotated[str, AfterValidator(_nonempty), StringConstraints(max_length=4096)]


class Classification(StrEnum):
    """How sensitive a dataset or model is, least to most."""

    public = "public"
    internal = "internal"
    confidential = "confidential"
    pii = "pii"


class _Strict(BaseModel):
    """Every section outside the placeholders: frozen, and an unknown key is an error (typos do not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _Placeholder(BaseModel):
    """identity and ledger: a small typed core, other keys kept as-is for the issues that fill them in (keyrings
    use it too, but their validator admits only the settings of their type)."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Environment(_Strict):
    """A place where data lives and steps run (an on-prem cluster, a cloud account and region)."""

    description: Text = ""
    jurisdiction: Jurisdiction
    storage: tuple[StorageLocation, ...] = ()
    key_service: Name | None = None
    identity_provider: Name | None = None


class Role(_Strict):
    """A named set of permissions, defined once and granted to principals by name."""

    description: Text = ""
    permissions: tuple[Permission, ...] = ()


class HumanGroup(_Strict):
    """People: a group in an identity provider (LDAP DN or OIDC `groups` claim) and the roles it holds, optionally
    only for a time window (a time-limited grant)."""

    group: NonEmpty
    provider: Name
    roles: tuple[Name, ...] = ()
    not_before: Instant | None = None
    until: Instant | None = None
    """After this instant the group holds none of these roles (deny by default)."""


class Workload(_Strict):
    """A pipeline step or service: its roles, the datasets it may read, the models it may write, and where."""

    description: Text = ""
    roles: tuple[Name, ...] = ()
    reads: tuple[Name, ...] = ()
    writes: tuple[Name, ...] = ()
    environments: tuple[Name, ...] = ()


class Principals(_Strict):
    """Who acts: human groups and workloads."""

    humans: tuple[HumanGroup, ...] = ()
    workloads: FrozenMap[Name, Workload] = Field(default_factory=_empty_map)


class Dataset(_Strict):
    """A dataset: where it lives per environment, how sensitive it is, where it may live, who signs it."""

    description: Text = ""
    locations: FrozenMap[Name, StorageLocation] = Field(default_factory=_empty_map)
    classification: Classification
    residency: tuple[Jurisdiction, ...]
    owner: NonEmpty
    signers: tuple[Signer, ...] = ()


class Model(Dataset):
    """A model: like a dataset, plus the datasets it was trained on."""

    trained_on: tuple[Name, ...] = ()


JWS_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Asymmetric JWS algorithms an issuer may be pinned to. HS* (shared secrets) and `none` are never accepted."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_LOOPBACK = ("http://127.0.0.1", "http://localhost", "http://[::1]")


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"expected the name of an environment variable; got {preview(str(value))}")
    return value


def _https_url(value: str) -> str:
    """An https URL (http only on loopback, for tests and local IdPs); no whitespace, no fragment."""
    ok = value.startswith("https://") or any(value == lb or value.startswith((lb + ":", lb + "/"))
                                              for lb in _LOOPBACK)
    if not ok or any(c.isspace() for c in value) or "#" in value or len(value) > 2048:
        raise ValueError(f"expected an https:// URL (http:// only on loopback); got {preview(str(value))}")
    return value


def _ldap_url(value: str) -> str:
    if not re.fullmatch(r"ldaps?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?/?", value):
        raise ValueError(f"expected ldap://host[:port] or ldaps://host[:port]; got {preview(str(value))}")
    return value


def _instant(value: str) -> str:
    """RFC 3339 with a time zone, e.g. 2026-12-31T23:59:59Z."""
    from datetime import datetime

    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in text:
        raise ValueError(f"expected an RFC 3339 time with a zone, such as 2026-12-31T23:59:59Z; got {preview(text)}")
    return text


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


EnvName = Annotated[str, AfterValidator(_env_name)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]
LdapUrl = Annotated[str, AfterValidator(_ldap_url)]
Instant = Annotated[str, AfterValidator(_instant)]


class Issuer(_Strict):
    """An OIDC issuer whose ID and access tokens mlfort accepts (Entra ID, Cognito, Google, Keycloak, ...)."""

    name: Name
    url: HttpsUrl
    """The issuer exactly as tokens carry it in `iss`."""
    audience: Annotated[tuple[NonEmpty, ...], BeforeValidator(_one_or_many)]
    """The `aud` values accepted (one of them must be in the token); one string or a list."""
    jwks_uri: HttpsUrl | None = None
    """Where the issuer publishes its signing keys (fetched, cached, refreshed on an unknown kid)."""
    jwks_file: Text | None = None
    """A JWKS file instead (air-gapped sites); relative to the policy file's folder."""
    algorithms: tuple[Literal[JWS_ALGORITHMS], ...] = ("RS256",)  # type: ignore[valid-type]
    """The only algorithms accepted from this issuer; asymmetric only."""
    groups_claim: NonEmpty = "groups"
    roles_claim: NonEmpty | None = None
    """A claim listing role names the IdP assigns directly (mapped only to roles the policy defines)."""
    subject_claim: NonEmpty = "sub"
    email_domains: tuple[NonEmpty, ...] = ()
    """If set, the token's `email` must be verified and end in one of these domains."""
    clock_skew_seconds: Annotated[int, Field(ge=0, le=300)] = 60
    max_token_age_seconds: Annotated[int, Field(ge=60, le=7 * 86400)] | None = None
    """Refuse tokens issued (`iat`) longer ago than this, whatever their `exp`."""
    jwks_cache_seconds: Annotated[int, Field(ge=0, le=86400)] = 300

    @model_validator(mode="after")
    def _one_key_source(self) -> Issuer:
        if (self.jwks_uri is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of jwks_uri (fetched) or jwks_file (air-gapped)")
        return self


class LdapDirectory(_Strict):
    """An LDAP or Active Directory server whose groups map to roles (`principals.humans[].group` holds group DNs)."""

    url: LdapUrl
    base_dn: NonEmpty
    bind_dn: NonEmpty | None = None
    """The service account mlfort binds as; None binds anonymously."""
    bind_password_env: EnvName | None = None
    """The environment variable holding the bind password (never the password itself)."""
    user_base: NonEmpty | None = None
    """Where users are searched (default base_dn)."""
    user_filter: NonEmpty = "(uid={username})"
    """How a login name finds its entry; `{username}` is escaped (RFC 4515). AD: (sAMAccountName={username})."""
    group_base: NonEmpty | None = None
    """Where groups are searched (default base_dn)."""
    member_attribute: NonEmpty = "member"
    active_directory: bool = False
    """AD: expand nested groups with the in-chain matching rule (1.2.840.113556.1.4.1941) in one query."""
    start_tls: bool = False
    ca_file: Text | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=120)] = 10

    @model_validator(mode="after")
    def _password_with_bind(self) -> LdapDirectory:
        if self.bind_password_env and not self.bind_dn:
            raise ValueError("bind_password_env needs bind_dn")
        if "{username}" not in self.user_filter:
            raise ValueError("user_filter must contain {username}")
        return self


class Identity(_Strict):
    """Identity providers: OIDC issuers and LDAP/AD directories."""

    issuers: tuple[Issuer, ...] = ()
    ldap: FrozenMap[Name, LdapDirectory] = Field(default_factory=_empty_map)


KEYRING_SETTINGS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = MappingProxyType({
    "local": (frozenset(), frozenset({"path", "passphrase_env"})),
    "pkcs11": (frozenset({"module", "token_label"}), frozenset({"module", "token_label", "key_label", "pin_env"})),
    "awskms": (frozenset({"key_id"}), frozenset({"key_id", "region", "endpoint_url", "profile"})),
})
"""Per keyring type: (required settings, allowed settings). Secrets are never settings: `passphrase_env` and
`pin_env` name the environment variable that holds them."""


def _article(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


class Keyring(_Placeholder):
    """A keyring: where data keys are wrapped (a local key file, an HSM over PKCS#11, AWS KMS), where its key
    material is held, and which classifications it may protect. Type-specific settings sit beside these keys."""

    type: Literal["local", "pkcs11", "awskms"]
    description: Text = ""
    jurisdiction: Jurisdiction | None = None
    """Where the key material is held (ISO 3166 or EU). Left out: the jurisdiction of the environments whose
    `key_service` it is. pii and confidential data are only encrypted with keyrings inside their residency."""
    classifications: tuple[Classification, ...] | None = None
    """The classifications this keyring may protect; left out: every classification."""

    @model_validator(mode="after")
    def _settings_of_type(self) -> Keyring:
        required, allowed = KEYRING_SETTINGS[self.type]
        extra = dict(self.model_extra or {})
        unknown = sorted(set(extra) - allowed)
        if unknown:
            known = sorted(allowed | {"description", "jurisdiction", "classifications"})
            raise ValueError(f"unknown setting(s) for {_article(self.type)} keyring: {', '.join(unknown)}; "
                             f"allowed: {', '.join(known)}")
        missing = sorted(required - set(extra))
        if missing:
            raise ValueError(f"{_article(self.type)} keyring needs: {', '.join(missing)}")
        for key, value in extra.items():
            if not isinstance(value, str) or not value.strip() or len(value) > 4096:
                raise ValueError(f"{key} must be a non-empty string")
        return self

    def settings(self) -> dict[str, Any]:
        """The entry as `mlfort.crypto.keyrings.open_keyring` takes it: type plus the type-specific settings."""
        return {"type": self.type, **dict(self.model_extra or {})}

    def protects(self, classification: Classification) -> bool:
        """Whether this keyring may protect data of `classification`."""
        return self.classifications is None or classification in self.classifications


class Ledger(_Placeholder):
    """Where the ledger lives (placeholder)."""

    url: Text | None = None


class Scanning(_Strict):
    """Settings of the scanners (`mlfort scan ...`); paths are relative to the policy file's folder."""

    osv_db: Text | None = None
    """The offline OSV database for `scan deps`: the PyPI `all.zip` from osv-vulnerabilities.storage.googleapis.com."""
    secrets_allowlist: Text | None = None
    """The allowlist file of accepted `scan secrets` findings (each entry with a reason)."""
    pii_sample_rows: Annotated[int, Field(ge=100, le=100_000_000)] | None = None
    """Rows `scan pii` samples from each dataset file (default 10,000); leave out to keep the default."""


@dataclass(frozen=True, slots=True)
class Grants:
    """What a workload may do according to the policy. Empty means nothing: deny by default."""

    permissions: frozenset[str] = frozenset()
    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    environments: frozenset[str] = frozenset()

    def permits(self, permission: str) -> bool:
        """True only when a held permission is exactly `permission` or `kind:*` of its kind."""
        return permits(self.permissions, permission)


def permits(held: Iterable[str], permission: str) -> bool:
    """True only when `held` contains `permission` or the wildcard of its kind. An empty `held` permits nothing."""
    kind, sep, verb = permission.partition(":")
    if not sep or not kind or not verb or verb == WILDCARD:
        return False  # asking for a wildcard or a malformed permission is never granted
    held = frozenset(held)
    return permission in held or f"{kind}:{WILDCARD}" in held


class Policy(_Strict):
    """A whole, validated mlfort.yaml. Load it with `mlfort.policy.load_policy`."""

    version: Annotated[Literal[1], BeforeValidator(_exactly_one)]
    environments: FrozenMap[Name, Environment] = Field(default_factory=_empty_map)
    roles: FrozenMap[Name, Role] = Field(default_factory=_empty_map)
    principals: Principals = Field(default_factory=Principals)
    datasets: FrozenMap[Name, Dataset] = Field(default_factory=_empty_map)
    models: FrozenMap[Name, Model] = Field(default_factory=_empty_map)
    identity: Identity = Field(default_factory=Identity)
    keys: FrozenMap[Name, Keyring] = Field(default_factory=_empty_map)
    ledger: Ledger | None = None
    scan: Scanning = Field(default_factory=Scanning)

    def permissions_of_role(self, role: str) -> frozenset[str]:
        """The permissions a role grants; an unknown role or a role without permissions grants nothing."""
        found = self.roles.get(role)
        return frozenset(found.permissions) if found is not None else frozenset()

    def permissions_of_roles(self, roles: Iterable[str]) -> frozenset[str]:
        """Union of the permissions of several roles (no roles: nothing)."""
        out: frozenset[str] = frozenset()
        for role in roles:
            out |= self.permissions_of_role(role)
        return out

    def workload_grants(self, workload: str) -> Grants:
        """What a workload may do; an unknown workload, or one with empty lists, gets empty Grants."""
        found = self.principals.workloads.get(workload)
        if found is None:
            return Grants()
        return Grants(
            permissions=self.permissions_of_roles(found.roles),
            reads=frozenset(found.reads),
            writes=frozenset(found.writes),
            environments=frozenset(found.environments),
        )

    def identity_provider_names(self) -> frozenset[str]:
        """Names of OIDC issuers and LDAP directories, which humans and environments may refer to."""
        return frozenset(issuer.name for issuer in self.identity.issuers) | frozenset(self.identity.ldap)

    def summary(self) -> str:
        """One line such as 'valid: 2 environments, 5 roles, ...' for the end of a validate run."""

        def count(n: int, noun: str) -> str:
            return f"{n} {noun}{'' if n == 1 else 's'}"

        return "valid: " + ", ".join(
            [
                count(len(self.environments), "environment"),
                count(len(self.roles), "role"),
                count(len(self.principals.humans), "human group"),
                count(len(self.principals.workloads), "workload"),
                count(len(self.datasets), "dataset"),
                count(len(self.models), "model"),
                count(len(self.keys), "keyring"),
            ]
        )


def within(jurisdiction: str, allowed: Iterable[str]) -> bool:
    """True when `jurisdiction` lies inside one of `allowed`: equal, a subdivision (DE-BY in DE), or an EU member
    state in EU."""
    country = jurisdiction.split("-", 1)[0]
    for area in allowed:
        if jurisdiction == area or country == area:
            return True
        if area == "EU" and country in EU_MEMBERS:
            return True
    return False
