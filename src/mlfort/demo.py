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

from rich.console import Console

from mlfort.errors import MlfortError


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


def _make_dataset(root: Path, rows: int = 2000, seed: int = 7) -> Path:
    """A small synthetic churn table: tenure, monthly spend, support calls -> churned."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    spend = rng.normal(60, 20, rows).clip(5, 200).round(2)
    calls = rng.poisson(1.5, rows)
    logit = -1.0 - 0.05 * tenure + 0.02 * spend + 0.6 * calls
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    root.mkdir(parents=True)
    lines = ["customer_id,tenure_months,monthly_spend,support_calls,churned"]
    lines += [f"c{i:05d},{tenure[i]},{spend[i]},{calls[i]},{churned[i]}" for i in range(rows)]
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

    data = np.loadtxt(dataset / "customers.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3, 4))
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
    from mlfort.artifacts import sign_artifact, verify_artifact
    from mlfort.crypto.signing_keys import create_signing_keypair, load_private_key
    from mlfort.policy import load_policy, write_example_policy
    from mlfort.policy.signers import trusted_signer_keys

    out = console or Console(highlight=False, soft_wrap=True)
    own_dir = workdir is None
    base = Path(tempfile.mkdtemp(prefix="mlfort-demo-")) if own_dir else workdir
    assert base is not None
    base.mkdir(parents=True, exist_ok=True)
    story = Story(base)
    say: Callable[..., None] = out.print
    try:
        say(f"[bold]mlfort demo[/bold] in {base}\n")

        t = time.perf_counter()
        policy_path = write_example_policy(base / "mlfort.yaml", force=True)
        policy = load_policy(policy_path)
        trainer = policy.workload_grants("trainer")
        say(f"[bold]1. The policy.[/bold] `mlfort init` wrote {policy_path.name}; it validates: {policy.summary()}.")
        say(f"   The trainer workload may read {sorted(trainer.reads)} and write {sorted(trainer.writes)}; "
            "nothing else is granted.")
        story.record("policy", "valid", file=str(policy_path), summary=policy.summary(),
                     trainer_reads=sorted(trainer.reads), trainer_writes=sorted(trainer.writes))

        dataset = _make_dataset(base / "data" / "customers")
        rows = sum(1 for _ in (dataset / "customers.csv").open()) - 1
        say(f"[bold]2. A dataset.[/bold] {rows} synthetic customer rows in {dataset.relative_to(base)}/.")
        story.record("dataset", "created", path=str(dataset), rows=rows)

        model_dir = base / "models" / "churn-model"
        accuracy = _train(dataset, model_dir)
        say(f"[bold]3. A model.[/bold] Trained a scikit-learn logistic regression on it "
            f"(test accuracy {accuracy:.2f}), saved to {model_dir.relative_to(base)}/.")
        story.record("train", "trained", path=str(model_dir), test_accuracy=round(accuracy, 4))

        # The policy names who must have signed each artifact (keys/data-steward.pub, keys/release.pub, read
        # from the policy's folder); make those two keys, then sign as the data steward and as release.
        stewards = create_signing_keypair(base / "keys", name="data-steward")
        release = create_signing_keypair(base / "keys", name="release")
        say("[bold]4. Signing keys.[/bold] The policy says the dataset must be signed by the data steward's key and "
            "the model by the release key: two EC P-256 pairs in keys/ (private halves 0600).")
        signed = {
            "dataset": sign_artifact(dataset, load_private_key(stewards.private_key)),
            "model": sign_artifact(model_dir, load_private_key(release.private_key)),
        }
        for name, res in signed.items():
            say(f"   Signed the {name}: {res.files} files, root digest sha256:{res.manifest.root_digest()[:16]}… "
                f"-> {res.signature.relative_to(base)}")
            story.record(f"sign {name}", "signed", signature=str(res.signature), files=res.files,
                         root_digest=res.manifest.root_digest())

        trusted = {
            "dataset": trusted_signer_keys(policy, "customers", policy_path.parent),
            "model": trusted_signer_keys(policy, "churn-model", policy_path.parent),
        }
        for step, name, path in ((5, "dataset", dataset), (6, "model", model_dir)):
            result = verify_artifact(path, trusted[name])
            if not result.ok:
                raise DemoFailed(f"the freshly signed {name} did not verify: {result.findings}")
            say(f"[bold]{step}. Verify the {name}.[/bold] [green]OK[/green]: {result.files_checked} files match, "
                "signed by a key the policy trusts for it (the check before training and before deployment).")
            story.record(f"verify {name}", "verified", files=result.files_checked)
        crossed = verify_artifact(model_dir, trusted["dataset"])
        if crossed.ok:
            raise DemoFailed("the model verified with the data steward's key, which the policy does not trust for it")
        say("   (Checked against the data steward's key instead, the model fails: each artifact trusts only its own "
            "signers.)")

        target = model_dir / "model.joblib"
        data = bytearray(target.read_bytes())
        offset = len(data) // 2
        data[offset] ^= 0x01
        target.write_bytes(bytes(data))
        say(f"[bold]7. Tamper.[/bold] Flipped one bit of {target.relative_to(base)} at byte {offset}, as an "
            "attacker swapping weights in storage would.")
        result = verify_artifact(model_dir, trusted["model"])
        named = [f.evidence.get("file") for f in result.findings]
        if result.ok or named != ["model.joblib"]:
            raise DemoFailed(f"tampering was not caught as expected: {result.findings}")
        finding = result.findings[0]
        say(f"[bold]8. Verify again.[/bold] [red]FAILED[/red] as it must: {finding.rule_id} {finding.message}")
        say("   `mlfort artifacts verify` exits 1 here, so a pipeline stops before loading the model.")
        story.record("tamper and verify", "caught", rule_id=finding.rule_id, file=finding.evidence.get("file"),
                     message=finding.message)
        say(f"\nDone in {time.perf_counter() - t:.1f} s. Next in the story (coming): the ledger, scanners, "
            "encryption, workload identity and the gateway.")
        return story
    finally:
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)
