"""The policy room: the schema of mlfort.yaml, its safe loader and validator, and deny-by-default grants."""

from mlfort.policy.example import example_policy_text, write_example_policy
from mlfort.policy.issues import RULES, PolicyError, PolicyIssue
from mlfort.policy.loader import (
    PolicyReport,
    check_policy_file,
    check_policy_text,
    load_policy,
    load_policy_text,
)
from mlfort.policy.schema import (
    RESOURCE_KINDS,
    VERBS,
    Classification,
    Dataset,
    Environment,
    Grants,
    HumanGroup,
    Model,
    Policy,
    Role,
    Workload,
    permits,
    within,
)
from mlfort.policy.source import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "RESOURCE_KINDS",
    "RULES",
    "VERBS",
    "Classification",
    "Dataset",
    "Environment",
    "Grants",
    "HumanGroup",
    "Model",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "PolicyReport",
    "Role",
    "Workload",
    "check_policy_file",
    "check_policy_text",
    "example_policy_text",
    "load_policy",
    "load_policy_text",
    "permits",
    "within",
    "write_example_policy",
]
