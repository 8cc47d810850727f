"""The 60-second example: an agent that greets someone, then finishes.

Run it live against any OpenAI-compatible endpoint::

    OPENAI_API_KEY=... python -m looplet.examples.hello_world
    OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.1 OPENAI_API_KEY=x \\
        python -m looplet.examples.hello_world
"""

from __future__ import annotations

import os
import sys

from looplet import BaseToolRegistry, DefaultState, LoopConfig, ToolSpec, composable_loop


def build_tools() -> BaseToolRegistry:
    """The greet and done tools of the README example."""
    tools = BaseToolRegistry()
    tools.register(
        ToolSpec(
            name="greet",
            description="Greet someone.",
            parameters={"name": "str"},
            execute=lambda *, name: {"greeting": f"Hello, {name}!"},
        )
    )
    tools.register(
        ToolSpec(
            name="done",
            description="Finish.",
            parameters={"answer": "str"},
            execute=lambda *, answer: {"answer": answer},
        )
    )
    return tools


def main() -> int:
    """Run the greet agent live; without OPENAI_API_KEY, say what to set and exit 2."""
    if not os.environ.get("OPENAI_API_KEY"):
        print(
            "hello_world runs a live agent and needs a model endpoint. Set:\n"
            "  OPENAI_API_KEY   your key (any non-empty value for a local server)\n"
            "  OPENAI_BASE_URL  optional, e.g. http://localhost:11434/v1 for Ollama\n"
            "  OPENAI_MODEL     optional, default gpt-4o-mini\n"
            "and make sure the extra is installed: pip install 'looplet[openai]'",
            file=sys.stderr,
        )
        return 2
    from looplet.backends import OpenAIBackend

    llm = OpenAIBackend.from_env()
    loop = composable_loop(
        llm=llm,
        tools=build_tools(),
        state=DefaultState(max_steps=5),
        config=LoopConfig(max_steps=5),
        task={"goal": "Greet Alice, then finish."},
    )
    for step in loop:
        print(step.pretty())
    trajectory = loop.trajectory
    print(
        f"stop: {trajectory.stop_reason} · {trajectory.llm_calls} model calls · "
        f"{trajectory.usage.total_tokens} tokens"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
