"""Acceptance: the original looplet README's 60-second example, unchanged, over real HTTP.

The example runs in a subprocess against the project's loopback OpenAI-compatible server,
with only OPENAI_BASE_URL and OPENAI_API_KEY set, exactly as a user would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from looplet.testing import ScriptedOpenAIServer, call, tool_reply

ROOT = Path(__file__).resolve().parent.parent

# Copied verbatim from the original looplet 0.1.7 README.
ORIGINAL_EXAMPLE = """\
from looplet import composable_loop, LoopConfig, DefaultState, BaseToolRegistry, ToolSpec
from looplet.backends import OpenAIBackend
from openai import OpenAI

llm = OpenAIBackend(OpenAI(), model="gpt-4o-mini")

tools = BaseToolRegistry()
tools.register(ToolSpec(name="greet", description="Greet someone.",
                        parameters={"name": "str"},
                        execute=lambda *, name: {"greeting": f"Hello, {name}!"}))
tools.register(ToolSpec(name="done", description="Finish.",
                        parameters={"answer": "str"},
                        execute=lambda *, answer: {"answer": answer}))

for step in composable_loop(
    llm=llm, tools=tools,
    state=DefaultState(max_steps=5),
    config=LoopConfig(max_steps=5),
    task={"goal": "Greet Alice, then finish."},
):
    print(step.pretty())
"""


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("from looplet import composable_loop, LoopConfig")
    end = text.index("```", start)
    return text[start:end]


def test_readme_shows_the_original_example_unchanged() -> None:
    assert readme_example() == ORIGINAL_EXAMPLE


def test_original_example_runs_against_the_loopback_server(tmp_path: Path) -> None:
    script = [
        tool_reply(call("greet", {"name": "Alice"})),
        tool_reply(call("done", {"answer": "Greeted Alice."})),
    ]
    example = tmp_path / "example.py"
    example.write_text(readme_example(), encoding="utf-8")
    with ScriptedOpenAIServer(script, api_key="sk-test-readme") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-test-readme")
        # Import this checkout's looplet even when it is not installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        out = subprocess.run(
            [sys.executable, str(example)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        requests = list(server.requests)
    assert out.returncode == 0, out.stderr
    lines = [line.split(" [")[0] for line in out.stdout.splitlines()]
    assert lines == [
        "#1 ✓ greet(name='Alice') → 1 keys",
        "#2 ✓ done(answer='Greeted Alice.') → 1 keys",
    ]
    assert len(requests) == 2
    first, second = (r.body for r in requests)
    assert first is not None and second is not None
    assert first["model"] == "gpt-4o-mini"
    assert {t["function"]["name"] for t in first["tools"]} == {"greet", "done"}
    # The second request carries the assistant's tool call and the tool's result.
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assistant, tool_message = second["messages"][2], second["messages"][3]
    (tool_call,) = assistant["tool_calls"]
    assert tool_call["function"]["name"] == "greet"
    assert tool_message["tool_call_id"] == tool_call["id"]
    assert "Hello, Alice!" in tool_message["content"]
