"""Checks across sections of a schema-valid policy: every name used is defined, data lives where it may."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlfort.policy.issues import (
    KEY_SERVICE_MISFIT,
    OUTSIDE_STORAGE,
    RESIDENCY_VIOLATION,
    UNDEFINED_REFERENCE,
    WILDCARD_PERMISSION,
)
from mlfort.policy.schema import WILDCARD, Dataset, Policy, within
from mlfort.policy.source import Path_
from mlfort.report import Severity


@dataclass(frozen=True, slots=True)
class Problem:
    """A cross-reference problem at a data path; the loader turns it into a positioned PolicyIssue."""

    rule_id: str
    path: Path_
    message: str
    at_key: bool = False
    """Point at the mapping key (e.g. the environment name in `locations`) rather than at its value."""
    severity: Severity = Severity.HIGH


def check_references(policy: Policy) -> list[Problem]:
    """Every cross-section problem of `policy`, in file order of the sections."""
    problems: list[Problem] = []
    providers = policy.identity_provider_names()

    def undefined(path: Path_, what: str, name: str, defined: Iterable[str]) -> None:
        problems.append(_undefined(path, what, name, defined))

    for env_name, env in policy.environments.items():
        if env.key_service is not None and env.key_service not in policy.keys:
            undefined(("environments", env_name, "key_service"), "keyring", env.key_service, policy.keys)
        if env.identity_provider is not None and env.identity_provider not in providers:
            undefined(
                ("environments", env_name, "identity_provider"), "identity provider", env.identity_provider, providers
            )

    for role_name, role in policy.roles.items():
        for index, permission in enumerate(role.permissions):
            if permission.endswith(f":{WILDCARD}"):
                problems.append(
                    Problem(
                        WILDCARD_PERMISSION,
                        ("roles", role_name, "permissions", index),
                        f"wildcard {permission!r} grants every verb on every {permission.split(':')[0]}, "
                        "including verbs added later; list the verbs this role needs",
                        severity=Severity.MEDIUM,
                    )
                )

    for index, human in enumerate(policy.principals.humans):
        base: Path_ = ("principals", "humans", index)
        if human.provider not in providers:
            undefined((*base, "provider"), "identity provider", human.provider, providers)
        for r_index, role in enumerate(human.roles):
            if role not in policy.roles:
                undefined((*base, "roles", r_index), "role", role, policy.roles)

    for name, workload in policy.principals.workloads.items():
        base = ("principals", "workloads", name)
        for field, what, defined in (
            ("roles", "role", policy.roles),
            ("reads", "dataset", policy.datasets),
            ("writes", "model", policy.models),
            ("environments", "environment", policy.environments),
        ):
            for item_index, item in enumerate(getattr(workload, field)):
                if item not in defined:
                    undefined((*base, field, item_index), what, item, defined)

    for section, assets in (("datasets", policy.datasets), ("models", policy.models)):
        for name, asset in assets.items():
            problems.extend(_location_problems(policy, section, name, asset))

    for name, model in policy.models.items():
        for index, dataset in enumerate(model.trained_on):
            if dataset not in policy.datasets:
                undefined(("models", name, "trained_on", index), "dataset", dataset, policy.datasets)
    return problems


def _undefined(path: Path_, what: str, name: str, defined: Iterable[str], *, at_key: bool = False) -> Problem:
    names = sorted(defined)
    choices = f"defined: {', '.join(names)}" if names else "none are defined"
    return Problem(UNDEFINED_REFERENCE, path, f"undefined {what} {name!r} ({choices})", at_key)


def _location_problems(policy: Policy, section: str, name: str, asset: Dataset) -> list[Problem]:
    problems: list[Problem] = []
    noun = section[:-1]
    for env_name in asset.locations:
        path: Path_ = (section, name, "locations", env_name)
        env = policy.environments.get(env_name)
        if env is None:
            problems.append(_undefined(path, "environment", env_name, policy.environments, at_key=True))
            continue
        if env.storage and not any(under_root(asset.locations[env_name], root) for root in env.storage):
            problems.append(
                Problem(
                    OUTSIDE_STORAGE,
                    path,
                    f"{noun} {name!r} location {asset.locations[env_name]!r} is not under any storage root of "
                    f"environment {env_name!r} ({', '.join(env.storage)})",
                )
            )
        if not within(env.jurisdiction, asset.residency):
            problems.append(
                Problem(
                    RESIDENCY_VIOLATION,
                    path,
                    f"{noun} {name!r} is declared to live in environment {env_name!r} (jurisdiction "
                    f"{env.jurisdiction}), outside its residency [{', '.join(asset.residency)}]; remove this "
                    "location or change the residency",
                    at_key=True,
                )
            )
        problems.extend(_key_service_problems(policy, noun, name, asset, env_name, path))
    return problems


def _key_service_problems(policy: Policy, noun: str, name: str, asset: Dataset, env_name: str,
                          path: Path_) -> list[Problem]:
    """The environment's keyring must be one `mlfort encrypt` would accept for this data."""
    env = policy.environments[env_name]
    keyring = policy.keys.get(env.key_service) if env.key_service else None
    if keyring is None:
        return []  # no key service, or an undefined one (reported above)
    problems = []
    if not keyring.protects(asset.classification):
        problems.append(Problem(
            KEY_SERVICE_MISFIT, path,
            f"{noun} {name!r} ({asset.classification.value}) lives in {env_name!r}, whose key service "
            f"{env.key_service!r} may not protect {asset.classification.value} data"))
    held = keyring.jurisdiction or env.jurisdiction
    if asset.classification.value in ("pii", "confidential") and not within(held, asset.residency):
        problems.append(Problem(
            KEY_SERVICE_MISFIT, path,
            f"{noun} {name!r} ({asset.classification.value}, residency [{', '.join(asset.residency)}]) lives in "
            f"{env_name!r}, whose key service {env.key_service!r} holds its keys in {held}"))
    return problems


def _normal_location(location: str) -> str:
    """`file:///a/b/` and `/a/b` are the same place; trailing slashes do not matter."""
    if location.startswith("file://"):
        location = location.removeprefix("file://")
    return location.rstrip("/") or "/"


def under_root(location: str, root: str) -> bool:
    """True when `location` is `root` or lies below it, by whole path segments (`/data` holds `/data/x`, not
    `/data2`; `s3://b/models` holds `s3://b/models/churn`, not `s3://b/models-old`)."""
    loc, base = _normal_location(location), _normal_location(root)
    if ".." in loc.split("/"):
        return False
    return loc == base or loc.startswith(base if base.endswith("/") else base + "/")
