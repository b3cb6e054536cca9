"""The signer keys a policy names: each must exist and be an EC public key, so verification against the policy
can work (checked when the policy is read from a file, since relative key paths are read from its folder)."""

from __future__ import annotations

from pathlib import Path

from mlfort.errors import InputError
from mlfort.policy.issues import SIGNER_KEY_INVALID, SIGNER_KEY_MISSING
from mlfort.policy.references import Problem
from mlfort.policy.schema import Policy
from mlfort.report import Severity


def signer_key_path(signer: str, base_dir: Path) -> Path:
    """Where a file-path signer lives: absolute as given, relative to the policy file's folder otherwise."""
    path = Path(signer)
    return path if path.is_absolute() else base_dir / path


def is_inline_pem(signer: str) -> bool:
    return signer.lstrip().startswith("-----BEGIN")


def check_signer_keys(policy: Policy, base_dir: Path | None) -> list[Problem]:
    """A problem for every signer that is missing (a warning) or not a usable EC public key (an error).
    With no `base_dir` (policy text without a file), only inline PEM signers are checked."""
    from mlfort.crypto.signing_keys import load_public_key, parse_public_key

    problems: list[Problem] = []
    for section, assets in (("datasets", policy.datasets), ("models", policy.models)):
        for name, asset in assets.items():
            for index, signer in enumerate(asset.signers):
                at = (section, name, "signers", index)
                try:
                    if is_inline_pem(signer):
                        parse_public_key(signer.encode(), f"{section}.{name}.signers[{index}]")
                        continue
                    if base_dir is None:
                        continue
                    path = signer_key_path(signer, base_dir)
                    if not path.exists():
                        problems.append(Problem(
                            SIGNER_KEY_MISSING, at, f"signer key {signer!r} not found (looked at {path}); "
                            f"{name!r} cannot be verified against this policy until it exists",
                            severity=Severity.MEDIUM))
                        continue
                    load_public_key(path)
                except InputError as exc:
                    problems.append(Problem(SIGNER_KEY_INVALID, at, str(exc)))
    return problems


def trusted_signer_keys(policy: Policy, name: str, base_dir: Path) -> list:
    """The public keys the policy trusts to sign dataset or model `name`. Raises InputError for an unknown name
    and for an artifact with no signers: deny by default, nothing can be trusted for it."""
    from mlfort.crypto.signing_keys import load_public_key, parse_public_key

    entry = policy.models.get(name) or policy.datasets.get(name)
    if entry is None:
        known = ", ".join(sorted([*policy.models, *policy.datasets])) or "none"
        raise InputError(f"the policy names no dataset or model {name!r} (known: {known})")
    if not entry.signers:
        raise InputError(
            f"{name!r} lists no signers in the policy, so no signature can be trusted (deny by default); "
            "add the signer's public key under its `signers`"
        )
    return [
        parse_public_key(s.encode(), f"{name} signer")
        if is_inline_pem(s)
        else load_public_key(signer_key_path(s, base_dir))
        for s in entry.signers
    ]
