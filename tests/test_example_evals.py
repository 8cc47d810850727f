"""The example eval suite (example_evals/, the README's first command) passes offline, each
eval replaying its own committed cassette, and every committed cassette is some eval's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_example_evals_pass_offline_one_cassette_each(tmp_path: Path) -> None:
    # No key and no endpoint: a request that is not in a cassette has nowhere to go.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--looplet-evals",
            "example_evals",
            "--looplet-record-mode=none",
            "--looplet-report",
            str(report),
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    items = [item for e in json.loads(report.read_text())["evals"] for item in e["items"]]
    assert {item["verdict"] for item in items} == {"PASS"}
    # The evals of conversations, memory and approvals are among them.
    names = {item["nodeid"].partition("::")[2].partition("[")[0] for item in items}
    assert {
        "eval_remembers_the_order_number_across_turns",
        "eval_answers_in_the_users_unit",
        "eval_reports_a_refused_refund_and_does_not_retry",
    } <= names
    # One cassette per eval item: none is left over from an eval renamed or removed.
    cassettes = list((ROOT / "example_evals" / "cassettes").rglob("*.yaml"))
    assert len(cassettes) == len(items)
