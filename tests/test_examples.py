"""python -m looplet.examples.hello_world: replays offline without a key, runs live with one,
and records a cassette with --record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from looplet.testing import ScriptedModelServer, call, tool_reply

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = [tool_reply(call("greet", {"name": "Alice"})), tool_reply(call("done", {"answer": "hi"}))]


def run_example(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "looplet.examples.hello_world", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_without_a_key_it_replays_the_packaged_run_and_says_so() -> None:
    out = run_example({})
    assert out.returncode == 0, out.stderr
    assert "replaying the run recorded in hello_world.yaml (offline)" in out.stderr
    assert "OPENAI_API_KEY" in out.stderr
    lines = [line.split(" [")[0] for line in out.stdout.splitlines()]
    assert lines[:2] == [
        "#1 ✓ greet(name='Alice') → 1 keys",
        "#2 ✓ done(answer='Greeted Alice.') → 1 keys",
    ]
    assert lines[2].startswith("stop: done")


def test_with_a_key_it_runs_live_and_records(tmp_path: Path) -> None:
    cassette = tmp_path / "run.yaml"
    with ScriptedModelServer(SCRIPT) as server:
        env = {"OPENAI_API_KEY": "sk-live-secret", "OPENAI_BASE_URL": server.base_url}
        out = run_example({**env, "OPENAI_MODEL": "m-1"}, "--record", str(cassette))
        models = [r.body["model"] for r in server.requests]
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("#1 ✓ greet(name='Alice') → 1 keys")
    assert models == ["m-1", "m-1"]
    assert cassette.exists() and b"sk-live-secret" not in cassette.read_bytes()


def test_record_without_a_key_is_refused_clearly() -> None:
    out = run_example({}, "--record", "x.yaml")
    assert out.returncode == 2
    assert "--record needs a live run: set OPENAI_API_KEY" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_packaged_cassette_holds_no_key_like_strings() -> None:
    text = (ROOT / "looplet" / "examples" / "cassettes" / "hello_world.yaml").read_text()
    assert "authorization" not in text.lower() and "sk-" not in text
