"""python -m looplet.examples.hello_world: says what to set without a key, runs with one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from looplet.testing import ScriptedOpenAIServer, call, tool_reply

ROOT = Path(__file__).resolve().parent.parent


def run_example(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "looplet.examples.hello_world"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_without_a_key_it_says_what_to_set() -> None:
    out = run_example({})
    assert out.returncode == 2
    assert "OPENAI_API_KEY" in out.stderr and "OPENAI_BASE_URL" in out.stderr
    assert "Traceback" not in out.stderr


def test_with_an_endpoint_it_runs_the_greet_agent() -> None:
    script = [
        tool_reply(call("greet", {"name": "Alice"})),
        tool_reply(call("done", {"answer": "hi"})),
    ]
    with ScriptedOpenAIServer(script) as server:
        out = run_example(
            {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": server.base_url, "OPENAI_MODEL": "m-1"}
        )
        models = [r.body["model"] for r in server.requests]
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("#1 ✓ greet(name='Alice') → 1 keys")
    assert "stop: done" in out.stdout
    assert models == ["m-1", "m-1"]
