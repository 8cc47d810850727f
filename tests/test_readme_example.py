"""The README's 60-second example is the original looplet README's, character for character.

The README's blocks run as tests of their own (Sybil, conftest.py): this one against the
loopback scripted server, reached through OPENAI_BASE_URL and OPENAI_API_KEY as a user's
would reach their provider.
"""

from __future__ import annotations

from pathlib import Path

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
