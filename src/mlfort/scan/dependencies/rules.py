"""The rules `mlfort scan deps` reports (MLF-DEP-xxx), registered once for every renderer."""

from __future__ import annotations

from mlfort.report import Rule, Severity, register_rules

_REFS = (
    "OWASP ML06:2023 AI Supply Chain Attacks",
    "MITRE ATLAS AML.T0010.001 ML Supply Chain Compromise: ML Software",
    "SLSA v1.0 build requirements (pinned, hashed dependencies)",
)

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("MLF-DEP-001", "Known-vulnerable version",
             "This exact version is affected by a published advisory. Upgrade to a fixed version (listed in the "
             "evidence), or remove the dependency.", Severity.HIGH,
             (*_REFS, "https://osv.dev", "CWE-1395 Dependency on Vulnerable Third-Party Component")),
        Rule("MLF-DEP-002", "Malicious package",
             "The OSV database lists this package (version) as malicious: typosquatting, dependency confusion or a "
             "hijacked release. Remove it, treat every machine that installed it as compromised and rotate the "
             "credentials it could reach.", Severity.CRITICAL, (*_REFS, "https://github.com/ossf/malicious-packages")),
        Rule("MLF-DEP-003", "Requirement is not pinned",
             "A deployment requirements or constraints file names a range, so what is installed changes over time "
             "and cannot be checked against advisories. Pin exact versions (pip-compile, uv pip compile) and keep "
             "ranges in pyproject.toml or *.in inputs.", Severity.MEDIUM, _REFS),
        Rule("MLF-DEP-004", "Requirement has no hash",
             "Without --hash, pip installs whatever file the index serves for that version. Generate hashes "
             "(pip-compile --generate-hashes, uv pip compile --generate-hashes) and install with --require-hashes.",
             Severity.LOW, _REFS),
        Rule("MLF-DEP-005", "Direct URL, VCS or editable requirement",
             "The dependency comes from a URL, a VCS ref or a local path instead of a pinned release: it has no "
             "version to check against advisories and can change under the same name. Publish it to an index you "
             "control and pin it, or pin a commit and a hash.", Severity.MEDIUM, _REFS),
        Rule("MLF-DEP-006", "Dependencies could not be checked",
             "No vulnerability data was available for these versions (no offline OSV database, or the online "
             "service could not be reached, or the database is damaged). Not checked is not safe: download the "
             "database (curl -o .mlfort/osv/PyPI-all.zip "
             "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip) or use --online.",
             Severity.HIGH, _REFS),
        Rule("MLF-DEP-007", "Dependency file could not be read",
             "The file or line is malformed, missing or too large, so the dependencies it names were not checked. "
             "Fix it and scan again.", Severity.HIGH, _REFS),
        Rule("MLF-DEP-008", "Credentials in an index URL",
             "An --index-url or --extra-index-url carries a password; it ends up in logs, images and SBOMs. Use "
             "keyring, a netrc file or PIP_INDEX_URL from a secret store, and rotate this one.", Severity.HIGH,
             ("CWE-798 Use of Hard-coded Credentials",)),
    )
}
register_rules(*RULES.values())
