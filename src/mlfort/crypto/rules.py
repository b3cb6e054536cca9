"""What the policy allows envelope encryption to do: which keyrings may protect which data, where it may be opened.

- Encrypting: every keyring must be defined in the policy and allowed for the data's classification; for `pii` and
  `confidential` data its jurisdiction (where the key material is held) must lie inside the data's residency, and
  a keyring whose jurisdiction cannot be told is refused (fail closed).
- Decrypting: `pii` and `confidential` data may only be opened in an environment inside the data's residency,
  and `--environment` limits the keyrings to the one that environment uses (its `key_service`).

Refusals are Findings (rules MLF-ENC-xxx), so the CLI renders them like every other check and exits 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mlfort.errors import InputError
from mlfort.policy import Classification, Policy, within
from mlfort.report import Finding, Rule, Severity, register_rules

_REFS = (
    "GDPR Art. 44-49 transfers of personal data to third countries",
    "NIST SP 800-57 Part 1 Rev. 5, key management: key usage and protection",
    "AWS Well-Architected SEC08-BP01 Implement secure key management",
)
GUARDED = frozenset({Classification.pii, Classification.confidential})
"""Classifications whose keys and plaintext must stay inside the data's residency."""

CONTEXT_PREFIX = "mlfort:"
"""Encryption-context keys mlfort writes itself; a user's --context may not set them."""
CTX_DATASET, CTX_MODEL, CTX_CLASSIFICATION = "mlfort:dataset", "mlfort:model", "mlfort:classification"

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("MLF-ENC-001", "Keyring not defined in the policy",
             "Only keyrings under `keys:` in mlfort.yaml may protect data. Define the keyring (type, jurisdiction, "
             "classifications) or pick one that is defined.", Severity.HIGH, _REFS),
        Rule("MLF-ENC-002", "Keyring not allowed for this classification",
             "The keyring's `classifications` list leaves out the data's classification. Encrypt with a keyring "
             "meant for it, or (after review) add the classification to the keyring.", Severity.HIGH, _REFS),
        Rule("MLF-ENC-003", "Keyring held outside the data's residency",
             "The data is pii or confidential and may only live in its residency; a keyring whose key material is "
             "held elsewhere would let a party outside that jurisdiction open it. Use a keyring inside the "
             "residency (an on-prem HSM, a KMS key in an allowed region).", Severity.HIGH, _REFS),
        Rule("MLF-ENC-004", "Keyring jurisdiction unknown",
             "The data is pii or confidential, and the keyring has no `jurisdiction` and no environment uses it as "
             "its key_service, so mlfort cannot tell where its keys are held: refused. Give the keyring a "
             "jurisdiction.", Severity.HIGH, _REFS),
        Rule("MLF-ENC-005", "Decryption outside the data's residency",
             "The data is pii or confidential, and the environment asked to open it lies outside its residency: "
             "its plaintext may not exist there. Decrypt in an environment inside the residency.", Severity.HIGH,
             _REFS),
        Rule("MLF-ENC-006", "Environment has no key service",
             "Decrypting in an environment uses that environment's keyring (`key_service`); this one has none.",
             Severity.HIGH, _REFS),
    )
}
register_rules(*RULES.values())


@dataclass(frozen=True, slots=True)
class Asset:
    """A dataset or model of the policy, as encryption sees it."""

    kind: str  # "dataset" | "model"
    name: str
    classification: Classification
    residency: tuple[str, ...]
    locations: tuple[str, ...]
    """Environments where it lives, in policy order."""

    @property
    def ref(self) -> str:
        """`dataset:customers`, as findings and ledger events name it."""
        return f"{self.kind}:{self.name}"

    def context(self) -> dict[str, str]:
        """The encryption context mlfort binds to every file of this asset."""
        key = CTX_DATASET if self.kind == "dataset" else CTX_MODEL
        return {key: self.name, CTX_CLASSIFICATION: self.classification.value}


def asset(policy: Policy, *, dataset: str | None = None, model: str | None = None) -> Asset | None:
    """The named dataset or model (InputError if the policy has no such one); None when neither is named."""
    if dataset and model:
        raise InputError("name a dataset or a model, not both")
    if dataset:
        found = policy.datasets.get(dataset)
        kind, name, table = "dataset", dataset, "datasets"
    elif model:
        found = policy.models.get(model)
        kind, name, table = "model", model, "models"
    else:
        return None
    if found is None:
        known = ", ".join(sorted(getattr(policy, table))) or "none"
        raise InputError(f"the policy has no {kind} {name!r} (its {table}: {known})")
    return Asset(kind, name, found.classification, tuple(found.residency), tuple(found.locations))


def asset_from_context(policy: Policy, context: Mapping[str, str]) -> Asset | None:
    """The asset a file's encryption context names (None when it names none). A file naming an asset the policy
    no longer has is refused: its rules cannot be checked."""
    if CTX_DATASET in context:
        return asset(policy, dataset=context[CTX_DATASET])
    if CTX_MODEL in context:
        return asset(policy, model=context[CTX_MODEL])
    return None


def keyring_jurisdictions(policy: Policy, name: str) -> tuple[str, ...]:
    """Where keyring `name` holds its keys: its `jurisdiction`, else those of the environments using it."""
    spec = policy.keys.get(name)
    if spec is not None and spec.jurisdiction:
        return (spec.jurisdiction,)
    return tuple(sorted({env.jurisdiction for env in policy.environments.values() if env.key_service == name}))


def default_keyrings(policy: Policy, target: Asset) -> list[str]:
    """The keyrings of every environment the asset lives in (each environment's key_service), in policy order."""
    names: list[str] = []
    for env_name in target.locations:
        env = policy.environments.get(env_name)
        if env is not None and env.key_service and env.key_service not in names:
            names.append(env.key_service)
    return names


def check_encrypt(policy: Policy, keyrings: Iterable[str], target: Asset | None) -> list[Finding]:
    """Findings that refuse encrypting `target` (or unnamed data) with `keyrings`; empty means allowed."""
    findings: list[Finding] = []
    for name in keyrings:
        where = f"keys.{name}"
        spec = policy.keys.get(name)
        if spec is None:
            known = ", ".join(sorted(policy.keys)) or "none"
            findings.append(RULES["MLF-ENC-001"].finding(where, f"keyring {name!r} is not in the policy (its "
                                                                f"keyrings: {known})"))
            continue
        if target is None:
            continue
        if not spec.protects(target.classification):
            allowed = ", ".join(c.value for c in spec.classifications or ())
            findings.append(RULES["MLF-ENC-002"].finding(
                where, f"keyring {name!r} may protect [{allowed}], not {target.classification.value} data "
                       f"({target.ref})"))
        if target.classification in GUARDED:
            held = keyring_jurisdictions(policy, name)
            if not held:
                findings.append(RULES["MLF-ENC-004"].finding(
                    where, f"cannot tell where keyring {name!r} holds its keys, and {target.ref} is "
                           f"{target.classification.value}"))
            outside = [j for j in held if not within(j, target.residency)]
            if outside:
                findings.append(RULES["MLF-ENC-003"].finding(
                    where, f"keyring {name!r} holds its keys in {', '.join(outside)}, outside the residency "
                           f"[{', '.join(target.residency)}] of {target.ref} ({target.classification.value})"))
    return findings


def environment_keyring(policy: Policy, environment: str) -> str | None:
    """The key_service of `environment` (InputError if the policy has no such environment)."""
    env = policy.environments.get(environment)
    if env is None:
        known = ", ".join(sorted(policy.environments)) or "none"
        raise InputError(f"the policy has no environment {environment!r} (its environments: {known})")
    return env.key_service


def check_decrypt(policy: Policy, environment: str | None, target: Asset | None) -> list[Finding]:
    """Findings that refuse opening `target` in `environment`; empty means allowed."""
    if environment is None:
        return []
    findings: list[Finding] = []
    env = policy.environments.get(environment)
    if env is None:
        environment_keyring(policy, environment)  # raises with the list of environments
        return findings
    where = f"environments.{environment}"
    if not env.key_service:
        findings.append(RULES["MLF-ENC-006"].finding(where, f"environment {environment!r} has no key_service"))
    if target is not None and target.classification in GUARDED and not within(env.jurisdiction, target.residency):
        findings.append(RULES["MLF-ENC-005"].finding(
            where, f"{target.ref} is {target.classification.value} with residency [{', '.join(target.residency)}]; "
                   f"environment {environment!r} is in {env.jurisdiction}"))
    return findings


def check_user_context(pairs: Mapping[str, str]) -> None:
    """Refuse a user-given context that sets mlfort's own keys (it could pass one dataset off as another)."""
    reserved = sorted(k for k in pairs if k.startswith(CONTEXT_PREFIX))
    if reserved:
        raise InputError(f"--context may not set {', '.join(reserved)}: keys starting with {CONTEXT_PREFIX!r} are "
                         "set by mlfort from --dataset/--model")
