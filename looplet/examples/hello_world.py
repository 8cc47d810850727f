"""The 60-second example: an agent that greets someone, then finishes.

Without an API key it replays a run recorded in the package (offline, no key needed); with
one it runs live against any OpenAI-compatible endpoint::

    python -m looplet.examples.hello_world                       # replay the recorded run
    OPENAI_API_KEY=... python -m looplet.examples.hello_world    # live
    OPENAI_API_KEY=... python -m looplet.examples.hello_world --record run.yaml
    OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.1 OPENAI_API_KEY=x \\
        python -m looplet.examples.hello_world                   # a local model (Ollama)

Replaying needs ``pip install 'looplet[cassettes,openai]'`` (or ``looplet[pytest]``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from looplet import BaseToolRegistry, ToolSpec
from looplet.presets import minimal_preset

#: The run shipped with the package, recorded through the real openai SDK.
RECORDED = Path(__file__).resolve().parent / "cassettes" / "hello_world.yaml"
TASK = {"goal": "Greet Alice, then finish."}


def build_tools() -> BaseToolRegistry:
    """The greet and done tools of the README example (the run adds no others: this done is
    the one :func:`~looplet.presets.minimal_preset` keeps)."""
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


def run(llm: Any) -> int:
    """Run the greet agent with ``llm``, printing each step and the stop line."""
    loop = minimal_preset(build_tools(), max_steps=5).loop(llm, TASK)
    for step in loop:
        print(step.pretty())
    trajectory = loop.trajectory
    print(
        f"stop: {trajectory.stop_reason} · {trajectory.llm_calls} model calls · "
        f"{trajectory.usage.total_tokens} tokens"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Replay the packaged run without a key; run live (and maybe record) with one."""
    parser = argparse.ArgumentParser(prog="python -m looplet.examples.hello_world")
    parser.add_argument("--record", metavar="PATH", help="record the live run to a cassette")
    args = parser.parse_args(argv)
    live = bool(os.environ.get("OPENAI_API_KEY"))
    if not live and args.record:
        parser.error("--record needs a live run: set OPENAI_API_KEY (and OPENAI_BASE_URL)")
    try:
        import openai

        from looplet.backends import OpenAIBackend
        from looplet.cassettes import recorded_base_url, use_cassette
    except ImportError as exc:
        print(
            f"hello_world needs the openai SDK and vcrpy ({exc}). Install them with:\n"
            "  pip install 'looplet[openai,cassettes]'",
            file=sys.stderr,
        )
        return 2
    if live:
        model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        recording = use_cassette(args.record, "all") if args.record else _no_cassette()
        with recording, openai.OpenAI() as client:
            code = run(OpenAIBackend(client, model=model))
        if args.record:
            print(f"recorded to {args.record} (API keys and auth headers are not written)")
        return code
    print(
        f"No OPENAI_API_KEY set: replaying the run recorded in {RECORDED.name} (offline).\n"
        "Set OPENAI_API_KEY (and OPENAI_BASE_URL / OPENAI_MODEL for another provider) to run "
        "it live.\n",
        file=sys.stderr,
    )
    base_url = recorded_base_url(RECORDED)
    with (
        use_cassette(RECORDED, "none"),
        openai.OpenAI(api_key="looplet-replay", base_url=base_url) as client,
    ):
        return run(OpenAIBackend(client, model="gpt-4o-mini"))


@contextlib.contextmanager
def _no_cassette() -> Iterator[None]:
    yield


if __name__ == "__main__":
    raise SystemExit(main())
