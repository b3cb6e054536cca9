"""The main job, end to end on embedded defaults: the story `mlfort demo` tells.

Each step is a real call into mlfort (no canned output): write and validate the policy, make a dataset, train a
model, sign both, verify both, then tamper with the model and watch verification name the changed file.
Later capabilities join the story as they land.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from mlfort.errors import MlfortError
from mlfort.report import Severity

if TYPE_CHECKING:
    from mlfort.ledger import Ledger
    from mlfort.policy.schema import Policy


class DemoFailed(MlfortError):
    """A step of the demo did not turn out as the story says it must (exit 1)."""

    exit_code = 1


@dataclass
class Story:
    """What happened, step by step, for the terminal and for `--format json`."""

    workdir: Path
    steps: list[dict[str, object]] = field(default_factory=list)

    def record(self, title: str, outcome: str, **facts: object) -> None:
        self.steps.append({"step": len(self.steps) + 1, "title": title, "outcome": outcome, **facts})


_GIVEN = ("anna", "ben", "clara", "deniz", "elif", "felix", "greta", "hugo", "ines", "jonas", "karla", "luca")
_FAMILY = ("schmidt", "meyer", "novak", "rossi", "garcia", "kowalski", "jansen", "dubois", "weber", "lindqvist")


def _make_dataset(root: Path, rows: int = 2000, seed: int = 7) -> Path:
    """A small synthetic churn table: contact details (made up, as real CRM exports have them), tenure, monthly
    spend, support calls -> churned."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    spend = rng.normal(60, 20, rows).clip(5, 200).round(2)
    calls = rng.poisson(1.5, rows)
    logit = -1.0 - 0.05 * tenure + 0.02 * spend + 0.6 * calls
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    given = rng.integers(0, len(_GIVEN), rows)
    family = rng.integers(0, len(_FAMILY), rows)
    mobile = rng.integers(1_000_000, 9_999_999, rows)
    root.mkdir(parents=True)
    lines = ["customer_id,email,phone,tenure_months,monthly_spend,support_calls,churned"]
    lines += [f"c{i:05d},{_GIVEN[given[i]]}.{_FAMILY[family[i]]}{i}@mailbox.example.eu,+49 15{i % 10} {mobile[i]},"
              f"{tenure[i]},{spend[i]},{calls[i]},{churned[i]}" for i in range(rows)]
    (root / "customers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "SCHEMA.md").write_text("Synthetic churn data made by `mlfort demo`; no real people.\n")
    return root


def _train(dataset: Path, out: Path) -> float:
    """Train a logistic regression on the dataset; save it (joblib) with a model card; return accuracy."""
    import json

    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    data = np.loadtxt(dataset / "customers.csv", delimiter=",", skiprows=1, usecols=(3, 4, 5, 6))
    x, y = data[:, :3], data[:, 3].astype(int)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    model = LogisticRegression(max_iter=500).fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    out.mkdir(parents=True)
    joblib.dump(model, out / "model.joblib")
    (out / "model-card.json").write_text(json.dumps({
        "name": "churn-model", "algorithm": "LogisticRegression", "trained_on": ["customers"],
        "features": ["tenure_months", "monthly_spend", "support_calls"], "test_accuracy": round(accuracy, 4),
    }, indent=2) + "\n")
    return accuracy


def run_demo(workdir: Path | None = None, *, console: Console | None = None) -> Story:
    """Run the story in `workdir` (a new temp dir when None, removed afterwards). Raises DemoFailed if any
    step does not turn out as it must."""
    out = console or Console(highlight=False, soft_wrap=True)
    own_dir = workdir is None
    base = Path(tempfile.mkdtemp(prefix="mlfort-demo-")) if own_dir else workdir
    assert base is not None
    base.mkdir(parents=True, exist_ok=True)
    story = Story(base)
    try:
        _story(base, story, out.print)
        return story
    finally:
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)


def _story(base: Path, story: Story, say: Callable[..., None]) -> None:
    import sqlite3

    from mlfort.artifacts import sign_artifact, verify_artifact
    from mlfort.crypto.signing_keys import create_signing_keypair, load_private_key
    from mlfort.ledger import ArtifactRef, Event, open_ledger, verify_ledger
    from mlfort.lineage import build_lineage, render
    from mlfort.policy import load_policy, write_example_policy
    from mlfort.policy.signers import trusted_signer_keys
    from mlfort.scan.engine import scan_paths

    say(f"[bold]mlfort demo[/bold] in {base}\n")
    t = time.perf_counter()
    policy_path = write_example_policy(base / "mlfort.yaml", force=True)
    _demo_keyrings(policy_path)
    policy = load_policy(policy_path)
    trainer = policy.workload_grants("trainer")
    # The example policy's ledger.url is sqlite:///.mlfort/ledger.db, beside the policy; the checkpoint key goes
    # there too, so the demo touches nothing outside its folder.
    ledger = open_ledger(policy=policy_path, key=base / ".mlfort" / "keys" / "ledger.key")
    actor = "user:demo-engineer"

    def ref(digest: str, path: Path, name: str, kind: str) -> ArtifactRef:
        return ArtifactRef(f"sha256:{digest}", name=name, kind=kind, uri=str(path))

    with ledger:
        say(f"[bold]1. The policy.[/bold] `mlfort init` wrote {policy_path.name}; it validates: {policy.summary()}.")
        say(f"   The trainer workload may read {sorted(trainer.reads)} and write {sorted(trainer.writes)}; "
            "nothing else is granted.")
        ledger.record(Event(action="policy.validate", actor=actor, resource=f"policy:{policy_path}",
                            details={"errors": 0}))
        story.record("policy", "valid", file=str(policy_path), summary=policy.summary(),
                     trainer_reads=sorted(trainer.reads), trainer_writes=sorted(trainer.writes))

        stewards = create_signing_keypair(base / "keys", name="data-steward")
        release = create_signing_keypair(base / "keys", name="release")
        trusted = {
            "dataset": trusted_signer_keys(policy, "customers", policy_path.parent),
            "model": trusted_signer_keys(policy, "churn-model", policy_path.parent),
        }
        say("[bold]2. Signing keys.[/bold] The policy says the dataset must be signed by the data steward's key and "
            "the model by the release key: two EC P-256 pairs in keys/ (private halves 0600).")

        dataset = _make_dataset(base / "data" / "customers")
        rows = sum(1 for _ in (dataset / "customers.csv").open()) - 1
        ds = sign_artifact(dataset, load_private_key(stewards.private_key))
        ds_ref = ref(ds.manifest.root_digest(), dataset, "customers", "dataset")
        ledger.record(Event(action="artifacts.sign", actor="user:data-steward", resource="dataset:customers",
                            writes=(ds_ref,)))
        say(f"[bold]3. A dataset.[/bold] {rows} synthetic customer rows in {dataset.relative_to(base)}/, signed by "
            f"the data steward: root digest sha256:{ds.manifest.root_digest()[:16]}…")
        story.record("dataset", "created", path=str(dataset), rows=rows)
        story.record("sign dataset", "signed", signature=str(ds.signature), files=ds.files,
                     root_digest=ds.manifest.root_digest())

        checked = verify_artifact(dataset, trusted["dataset"])
        if not checked.ok:
            raise DemoFailed(f"the freshly signed dataset did not verify: {checked.findings}")
        ledger.record(Event(action="artifacts.verify", actor="workload:trainer", resource="dataset:customers",
                            reads=(ds_ref,), run_id="train-0001", environment="onprem"))
        say("[bold]4. Verify before training.[/bold] [green]OK[/green]: "
            f"{checked.files_checked} files match, signed by a key the policy trusts for this dataset.")
        story.record("verify dataset", "verified", files=checked.files_checked)

        _scan_before_training(base, policy, dataset, ledger, story, say)
        workspace = _encrypt_at_rest(base, policy_path, policy, dataset, ledger, story, say)

        model_dir = base / "models" / "churn-model"
        accuracy = _train(workspace, model_dir)
        scanned = scan_paths([model_dir], workers=1)
        blocking = [f for f in scanned.findings if f.severity.at_least(Severity.MEDIUM)]
        if blocking:
            raise DemoFailed(f"the freshly trained model did not scan clean: {blocking}")
        ledger.record(Event(action="scan.models", actor="user:release-manager", resource="model:churn-model",
                            details={"files": scanned.files, "findings": 0}))
        say(f"[bold]7. Train, then scan before signing.[/bold] {scanned.summary()}: clean (nothing in it imports "
            "code outside the allowlist of what scikit-learn and NumPy files use).")
        planted = _plant_malicious_model(base / "models" / "churn-model-v2")
        caught = scan_paths([planted], workers=1)
        critical = [f for f in caught.findings if f.rule_id == "MLF-MOD-001"]
        if not critical:
            raise DemoFailed(f"the planted model was not caught: {caught.findings}")
        ledger.record(Event(action="scan.models", actor="user:release-manager", resource="model:churn-model-v2",
                            outcome="failure", reason=f"MLF-MOD-001 {critical[0].message}"[:500]))
        say(f"   A planted \"v2\" of the model (a joblib file that calls os.system when loaded): [red]REFUSED[/red]: "
            f"{critical[0].rule_id} {critical[0].message}. It is never signed.")
        story.record("scan", "clean and planted caught", clean_files=scanned.files, caught_rule=critical[0].rule_id)
        md = sign_artifact(model_dir, load_private_key(release.private_key))
        md_ref = ref(md.manifest.root_digest(), model_dir, "churn-model", "model")
        run_index = ledger.append([
            Event(action="run.finish", actor="workload:trainer", resource="run:train-0001", run_id="train-0001",
                  environment="onprem", reads=(ds_ref,), writes=(md_ref,),
                  details={"command": "python train.py", "test_accuracy": round(accuracy, 4)}),
            Event(action="artifacts.sign", actor="user:release-manager", resource="model:churn-model",
                  writes=(md_ref,)),
        ])[0]
        say(f"[bold]8. Sign.[/bold] The trainer read the verified dataset and wrote a scikit-learn model "
            f"(test accuracy {accuracy:.2f}) to {model_dir.relative_to(base)}/; release signed it: root digest "
            f"sha256:{md.manifest.root_digest()[:16]}…")
        story.record("train", "trained", path=str(model_dir), test_accuracy=round(accuracy, 4))
        story.record("sign model", "signed", signature=str(md.signature), files=md.files,
                     root_digest=md.manifest.root_digest())

        checked = verify_artifact(model_dir, trusted["model"])
        if not checked.ok:
            raise DemoFailed(f"the freshly signed model did not verify: {checked.findings}")
        crossed = verify_artifact(model_dir, trusted["dataset"])
        if crossed.ok:
            raise DemoFailed("the model verified with the data steward's key, which the policy does not trust for it")
        ledger.append([
            Event(action="artifacts.verify", actor="workload:inference", resource="model:churn-model",
                  reads=(md_ref,), environment="aws"),
            Event(action="model.deploy", actor="user:release-manager", resource="endpoint:churn", environment="aws",
                  reads=(md_ref,), details={"endpoint": "https://churn.ml.acme.eu/v1/predict"}),
        ])
        say("[bold]9. Verify and deploy.[/bold] [green]OK[/green]: the model verifies with the release key (and "
            "fails with the data steward's: each artifact trusts only its own signers); deployed to endpoint "
            "`churn` in aws.")
        story.record("verify model", "verified", files=checked.files_checked)

        target = model_dir / "model.joblib"
        data = bytearray(target.read_bytes())
        offset = len(data) // 2
        data[offset] ^= 0x01
        target.write_bytes(bytes(data))
        result = verify_artifact(model_dir, trusted["model"])
        named = [f.evidence.get("file") for f in result.findings]
        if result.ok or named != ["model.joblib"]:
            raise DemoFailed(f"tampering was not caught as expected: {result.findings}")
        finding = result.findings[0]
        ledger.record(Event(action="artifacts.verify", actor="workload:inference", resource="model:churn-model",
                            reads=(md_ref,), environment="aws", outcome="failure",
                            reason=f"{finding.rule_id} model.joblib changed"))
        say(f"[bold]10. Tamper.[/bold] Flipped one bit of {target.relative_to(base)} at byte {offset}, as an "
            "attacker swapping weights in storage would.")
        say(f"   Verify again: [red]FAILED[/red] as it must: {finding.rule_id} {finding.message}")
        say("   `mlfort artifacts verify` exits 1 here, so a pipeline stops before loading the model.")
        story.record("tamper and verify", "caught", rule_id=finding.rule_id, file=finding.evidence.get("file"),
                     message=finding.message)

        report = verify_ledger(ledger.store, ledger.verifiers)
        if not report.ok:
            raise DemoFailed(f"the fresh ledger did not verify: {report.findings}")
        cp = ledger.latest_checkpoint()
        assert cp is not None
        proof = ledger.prove(run_index)
        say(f"[bold]11. The ledger.[/bold] Every step above is an entry: {report.size} entries, "
            f"{report.checkpoints} signed checkpoints (Ed25519), root {report.root.hex()[:16]}… `mlfort ledger "
            f"verify` recomputes the Merkle tree: [green]intact[/green]. Entry {run_index} (the training run) is "
            f"proven in the tree with {len(proof.path)} hashes.")
        story.record("ledger verify", "intact", entries=report.size, checkpoints=report.checkpoints,
                     root=report.root.hex())

        graph = build_lineage(ledger, [md_ref.digest], direction="both")
        trained_on = sorted({name for a in graph.artifacts(kind="dataset", side="upstream") for name in a.names})
        deployed = sorted(f"endpoint:{d.endpoint} in {d.environment}" for d in graph.deployments())
        if trained_on != ["customers"] or deployed != ["endpoint:churn in aws"]:
            raise DemoFailed(f"lineage did not find the run: trained on {trained_on}, deployed {deployed}")
        say(f"[bold]12. Lineage.[/bold] Which data trained the model in production? {', '.join(trained_on)} "
            f"(digest sha256:{ds.manifest.root_digest()[:16]}…), in run train-0001 on-prem; it runs at "
            f"{', '.join(deployed)}. `mlfort lineage show churn-model --format mermaid` draws it (styles left out):")
        drawing = [line for line in render(graph, "mermaid").splitlines() if not line.lstrip().startswith("class")]
        say("\n".join(drawing), markup=False)
        story.record("lineage", "answered", trained_on=trained_on, deployed=deployed)

        db = sqlite3.connect(base / ".mlfort" / "ledger.db")
        with db:
            db.execute("DROP TRIGGER entries_no_update")  # what an attacker with the database file can do
            db.execute("UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'failure', 'success') AS BLOB) "
                       "WHERE CAST(body AS TEXT) LIKE '%\"failure\"%' "
                       "AND CAST(body AS TEXT) LIKE '%\"artifacts.verify\"%'")
        db.close()
        report = verify_ledger(ledger.store, ledger.verifiers)
        if report.ok or report.first_bad is None:
            raise DemoFailed("rewriting the ledger was not caught")
        say(f"[bold]13. Cover the tracks?[/bold] Rewrote the failed verification as a success directly in the "
            f"database. `mlfort ledger verify`: [red]FAILED[/red] as it must: {report.findings[0].message}.")
        story.record("ledger tamper", "caught", first_bad=report.first_bad, rule_id=report.findings[0].rule_id)
    say(f"\nDone in {time.perf_counter() - t:.1f} s. Next in the story (coming): identity, workload identity and "
        "the gateway.")


def _scan_before_training(base: Path, policy: Policy, dataset: Path, ledger: Ledger, story: Story,
                          say: Callable[..., None]) -> None:
    """Step 5: PII in the dataset must match its classification; the training environment and the step's pinned
    requirements must have no known-vulnerable version."""
    from mlfort.ledger import Event
    from mlfort.scan.pii import scan_pii

    pii = scan_pii([dataset], policy=policy, policy_dir=base, dataset="customers")
    columns = sorted(f"{f.evidence['column']} ({f.evidence['entity_label']})" for f in pii.findings
                     if f.rule_id in ("MLF-PII-001", "MLF-PII-002", "MLF-PII-003"))
    refused = [f for f in pii.findings if f.severity.at_least(Severity.HIGH)]
    if not columns or refused:
        raise DemoFailed(f"the PII scan of the customers dataset did not turn out as expected: {pii.findings}")
    misfiled = scan_pii([dataset], policy=policy, policy_dir=base, dataset="web-events")
    caught = [f for f in misfiled.findings if f.rule_id == "MLF-PII-005"]
    if not caught:
        raise DemoFailed(f"PII in a dataset classified internal was not caught: {misfiled.findings}")
    ledger.record(Event(action="scan.pii", actor="workload:trainer", resource="dataset:customers",
                        details={"columns": columns, "classification": "pii"}))
    say(f"[bold]5. Scan before training.[/bold] PII in the dataset's columns {', '.join(columns)}, found in "
        f"{pii.counts.get('rows_scanned', 0):,} rows read; the policy classifies `customers` as pii, so that is "
        "allowed.")
    say(f"   Filed as `web-events` (classified internal) the same file is [red]REFUSED[/red]: {caught[0].rule_id} "
        f"{caught[0].message}.")
    story.record("scan pii", "classified", columns=columns, misfiled_rule=caught[0].rule_id)

    import site
    import sys

    from mlfort.scan.dependencies import scan_deps

    db = _demo_osv_snapshot(base / ".mlfort" / "osv" / "demo-snapshot.zip")
    env_paths = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()] or [Path(sys.prefix)]
    env = scan_deps(env_paths, osv_db=db)
    known_bad = [f for f in env.findings if f.rule_id in ("MLF-DEP-001", "MLF-DEP-002", "MLF-DEP-006")]
    if known_bad or not env.counts.get("exact"):
        raise DemoFailed(f"the training environment did not check clean: {known_bad or env.summary()}")
    step = base / "steps" / "train"
    step.mkdir(parents=True)
    (step / "requirements.txt").write_text("joblib==1.1.0\nnumpy==1.26.4\n")
    old = scan_deps([step / "requirements.txt"], osv_db=db)
    vulnerable = [f for f in old.findings if f.rule_id == "MLF-DEP-001"]
    if not vulnerable:
        raise DemoFailed(f"the vulnerable pin was not caught: {old.findings}")
    ledger.record(Event(action="scan.deps", actor="workload:trainer", resource="environment:train",
                        details={"packages": env.counts["exact"], "vulnerable": 0}))
    say(f"   Dependencies: the training environment's {env.counts['exact']} installed packages have no known "
        "vulnerability in the OSV snapshot (a one-record demo snapshot; point --osv-db at the real PyPI all.zip).")
    say(f"   An old image's requirements.txt pinning joblib==1.1.0: [red]REFUSED[/red]: {vulnerable[0].rule_id} "
        f"{vulnerable[0].message}.")
    story.record("scan deps", "clean and vulnerable pin caught", packages=env.counts["exact"],
                 caught_rule=vulnerable[0].rule_id, advisory=vulnerable[0].evidence.get("advisory"))


DEMO_KEYRINGS_ENV = "MLFORT_DEMO_KEYRINGS"
"""Set to `policy` to run the demo with the example policy's own keyrings (`hsm` over PKCS#11, `aws-kms`); they need
MLFORT_PKCS11_PIN (and SOFTHSM2_CONF for SoftHSM2) and AWS credentials (AWS_ENDPOINT_URL for a KMS stand-in)."""

_EMBEDDED_KEYRINGS = """\
  onprem-keys:                  # mlfort demo: a local stand-in for the HSM (MLFORT_DEMO_KEYRINGS=policy uses hsm)
    type: local
    path: .mlfort/keyrings/onprem.json
    jurisdiction: DE
  aws-keys:                     # mlfort demo: a local stand-in for KMS (MLFORT_DEMO_KEYRINGS=policy uses aws-kms)
    type: local
    path: .mlfort/keyrings/aws.json
    jurisdiction: DE
"""
_US_KEYRING = """\
  us-backup:                    # mlfort demo: a backup vendor's keys, held in the US
    type: local
    path: .mlfort/keyrings/us-backup.json
    jurisdiction: US
"""


def _demo_keyrings(policy_path: Path) -> None:
    """Give each environment an embedded local keyring (unless MLFORT_DEMO_KEYRINGS=policy), plus a keyring held
    in the US for the refusal the story shows."""
    import os
    import re

    text = policy_path.read_text(encoding="utf-8")
    extra = _US_KEYRING
    if os.environ.get(DEMO_KEYRINGS_ENV, "embedded") != "policy":
        text = re.sub(r"key_service: hsm\b", "key_service: onprem-keys", text)
        text = re.sub(r"key_service: aws-kms\b", "key_service: aws-keys", text)
        extra = _EMBEDDED_KEYRINGS + extra
    text = text.replace("\nkeys:\n", "\nkeys:\n" + extra, 1)
    policy_path.write_text(text, encoding="utf-8")


def _encrypt_at_rest(base: Path, policy_path: Path, policy: Policy, dataset: Path, ledger: Ledger, story: Story,
                     say: Callable[..., None]) -> Path:
    """Step 6: encrypt the dataset for both environments' keyrings (the policy picks them); refuse a keyring held
    outside its residency; the trainer decrypts on-prem through its environment's keyring only. Returns the
    trainer's workspace holding the decrypted copy."""
    import contextlib

    from mlfort.crypto.envelope import decrypt_bytes, decrypt_file, encrypt_file
    from mlfort.crypto.keyrings import create_keyring, open_keyring
    from mlfort.crypto.rules import asset, check_decrypt, check_encrypt, default_keyrings, environment_keyring
    from mlfort.errors import InputError
    from mlfort.ledger import Event

    target = asset(policy, dataset="customers")
    assert target is not None
    names = default_keyrings(policy, target)
    if len(names) != 2:
        raise DemoFailed(f"the customers dataset should have one keyring per environment, got {names}")
    keyrings = {}
    for name in [*names, "us-backup"]:
        spec = policy.keys[name].settings()
        with contextlib.suppress(InputError):  # already made (an HSM token or KMS alias kept from earlier runs)
            create_keyring(name, spec, policy_path.parent)
        keyrings[name] = open_keyring(name, spec, policy_path.parent)
    ledger.record(Event(action="keys.create", actor="user:security-admin", resource="keyrings:" + ",".join(keyrings),
                        details={n: {"kind": k.kind} for n, k in keyrings.items()}))
    try:
        refused = check_encrypt(policy, ["us-backup"], target)
        if [f.rule_id for f in refused] != ["MLF-ENC-003"]:
            raise DemoFailed(f"encrypting pii with a keyring held in the US was not refused: {refused}")
        ledger.record(Event(action="crypto.encrypt", actor="user:data-steward", resource=target.ref,
                            outcome="failure", decision="deny", reason=f"MLF-ENC-003 {refused[0].message}"[:500]))
        own_refused = check_encrypt(policy, names, target)
        if own_refused:
            raise DemoFailed(f"the policy refused the environments' own keyrings: {own_refused}")
        plain = dataset / "customers.csv"
        sealed = base / "data" / "encrypted" / "customers.csv.mlfe"
        sealed.parent.mkdir(parents=True)
        header = encrypt_file(plain, sealed, [keyrings[n] for n in names], context=target.context())
        ledger.record(Event(action="crypto.encrypt", actor="user:data-steward", resource=target.ref,
                            details={"output": str(sealed), **header.describe()}))
        say(f"[bold]6. Encrypt at rest.[/bold] {plain.name} -> {sealed.relative_to(base)}: AES-256-GCM frames, one "
            f"data key wrapped for {' and '.join(names)} (the key services of the environments it lives in), bound "
            f"to the context {target.context()}.")
        say(f"   With the `us-backup` keyring (held in the US): [red]REFUSED[/red]: {refused[0].rule_id} "
            f"{refused[0].message}.")

        if check_decrypt(policy, "onprem", target):
            raise DemoFailed("the policy refused decrypting on-prem")
        own = environment_keyring(policy, "onprem")
        workspace = base / "work" / "train-0001" / "customers"
        workspace.mkdir(parents=True)
        opened = decrypt_file(sealed, workspace / "customers.csv", [keyrings[own]] if own else [],
                              expected_context=target.context())
        ledger.record(Event(action="crypto.decrypt", actor="workload:trainer", resource=target.ref,
                            environment="onprem", run_id="train-0001", details=opened.describe()))
        if (workspace / "customers.csv").read_bytes() != plain.read_bytes():
            raise DemoFailed("the decrypted dataset differs from the original")
        other = environment_keyring(policy, "aws")
        shipped = decrypt_bytes(sealed.read_bytes(), [keyrings[other]] if other else [],
                                expected_context=target.context())
        if bytes(shipped) != plain.read_bytes():
            raise DemoFailed("aws's keyring did not open the same file")
        say(f"   The trainer (on-prem) decrypts through `{own}` only, into its workspace (0600); the same file "
            f"opens in aws through `{other}`, so it ships without re-encryption.")
        story.record("encrypt dataset", "encrypted for both environments", keyrings=names,
                     refused_rule=refused[0].rule_id, opened_with=own,
                     kinds=sorted({keyrings[n].kind for n in names}))
    finally:
        for k in keyrings.values():
            close = getattr(k, "close", None)
            if callable(close):
                close()
    return workspace


def _demo_osv_snapshot(path: Path) -> Path:
    """A one-record OSV database in the all.zip format: the real advisory for joblib's pre_dispatch eval
    (GHSA-6hrg-qmvc-2xh8, CVE-2022-21797; fixed in 1.1.1 and 1.2.0). The demo has no network; real scans use the
    full PyPI all.zip."""
    import json
    import zipfile

    record = {
        "id": "GHSA-6hrg-qmvc-2xh8", "aliases": ["CVE-2022-21797"], "modified": "2023-04-20T00:00:00Z",
        "summary": "joblib vulnerable to arbitrary code execution (eval of the pre_dispatch argument)",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "joblib"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.1"}]}]}],
        "database_specific": {"severity": "CRITICAL"},
        "references": [{"type": "ADVISORY", "url": "https://github.com/advisories/GHSA-6hrg-qmvc-2xh8"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{record['id']}.json", json.dumps(record))
    return path


class _RunsShell:
    """What a poisoned model file carries: unpickling it calls os.system. It is only ever pickled here."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo the attacker runs code here",))


def _plant_malicious_model(folder: Path) -> Path:
    """A model folder whose joblib file runs a shell command when loaded (written, never loaded)."""
    import joblib

    folder.mkdir(parents=True)
    joblib.dump({"model": _RunsShell(), "version": 2}, folder / "model.joblib")
    return folder
