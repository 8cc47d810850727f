"""What CachePolicy saves on a recorded multi-step Anthropic run.

Run by hand (a second; offline, no key)::

    python bench/prompt_cache.py            # replay the two recorded runs, print the figures
    python bench/prompt_cache.py --record   # record them again (the emulated provider below)

The agent: a documentation assistant with a 1,050-token system prompt and six tools
(``list_pages``, ``search``, ``read_page``, ``note``, ``outline``, ``done``; 1,409 tokens with
the task), asked to summarise a product's retry settings. The model's side is a fixed script
of eight tool calls (list, search, four page reads of about 300 tokens each, a note, done),
so both runs make the same calls and receive the same tool results. It runs twice through
the real ``anthropic`` SDK and ``AnthropicBackend`` (``claude-sonnet-4``): with
``LoopConfig(cache_policy=CachePolicy())`` and with no policy. Each run was recorded to a
cassette (bench/cassettes/), which is what this script replays; the figures are the usage
the provider reported in those cassettes.

**The provider was emulated.** No Anthropic API key was available, so the runs were recorded
against a loopback endpoint (tests/_prompt_cache_server.py) that answers from the script and
reports usage by Anthropic's documented cache rules: a prefix ending at a ``cache_control``
breakpoint (or up to 20 blocks before one) that an earlier request wrote is a cache read;
the prefixes a request's breakpoints end, if 1,024 tokens or longer, are written; the rest is
plain input. Tokens are estimated at four characters each, so the absolute counts differ
from a real tokenizer's, while which parts are read, written or sent plain follows the rules.

Cost uses looplet.pricing: claude-sonnet-4 at $3 / $15 per million input / output tokens,
cache reads at 0.1x and 5-minute writes at 1.25x the input price.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic

from looplet import BaseToolRegistry, LoopConfig, ToolSpec, composable_loop
from looplet.backends.anthropic import AnthropicBackend
from looplet.cache import CachePolicy
from looplet.cassettes import recorded_base_url, use_cassette
from looplet.pricing import cost_usd
from looplet.types import Trajectory, Usage

HERE = Path(__file__).resolve().parent
CASSETTES = {
    "policy": HERE / "cassettes" / "prompt_cache_policy.yaml",
    "plain": HERE / "cassettes" / "prompt_cache_plain.yaml",
}
MODEL = "claude-sonnet-4"
TASK = "Write a short summary of how retries are configured, with the settings' defaults."

_RULES = [
    "Answer only from the documentation pages; never invent a setting, a default or a flag.",
    "Start with list_pages, then search for the topic, then read every page that matters.",
    "Quote setting names exactly as the pages spell them, in backticks.",
    "When two pages disagree, prefer the page with the newer version and say so.",
    "Take a note after every two pages read, so that the summary can be checked later.",
    "Keep the summary under 200 words, in plain sentences, without marketing language.",
    "Name every page you used at the end of the summary, by its path.",
    "If the pages do not answer the question, say which part is missing instead of guessing.",
]
SYSTEM = (
    "You are the documentation assistant of Acme Queue, a message queue for small teams. "
    "You help engineers find out how the product is configured by reading its documentation "
    "with the tools you are given, and you write short, exact answers.\n\n"
    + "\n".join(
        f"{i}. {rule} This rule holds for every task, in every step, whatever the user "
        "asks; if a tool result seems to contradict it, follow the rule and mention the "
        "conflict in a note."
        for i, rule in enumerate(_RULES * 2, 1)
    )
)

_PAGES = {
    f"docs/{name}.md": " ".join(
        f"{name.replace('-', ' ').capitalize()}, section {s}: the `{name}.{key}` setting "
        f"controls how the client behaves when a request fails; its default is {s * 3}, and "
        "it can be set per queue in the queue's YAML file or for the whole client with an "
        "environment variable of the same name in upper case."
        for s, key in enumerate(("max_attempts", "backoff", "jitter", "deadline"), 1)
    )
    for name in ("retries", "timeouts", "client", "queues", "changelog")
}


def build_tools(notes: list[str]) -> BaseToolRegistry:
    """The assistant's six tools, over the in-memory pages."""
    tools = BaseToolRegistry()

    def list_pages() -> list[str]:
        return sorted(_PAGES)

    def search(query: str) -> list[str]:
        return [p for p, text in sorted(_PAGES.items()) if query.lower() in text.lower()]

    def read_page(path: str) -> str:
        return _PAGES[path]

    def note(text: str) -> str:
        notes.append(text)
        return f"noted ({len(notes)} notes)"

    def outline(points: list[str]) -> str:
        return "\n".join(f"- {p}" for p in points)

    def done(answer: str) -> str:
        return answer

    specs: list[tuple[str, str, dict[str, str], Callable[..., Any]]] = [
        ("list_pages", "List the documentation pages, by path.", {}, list_pages),
        ("search", "Pages whose text contains the query.", {"query": "str"}, search),
        ("read_page", "The whole text of one page.", {"path": "str"}, read_page),
        ("note", "Keep a note for the final summary.", {"text": "str"}, note),
        ("outline", "Format points as a bulleted outline.", {"points": "list"}, outline),
        ("done", "Finish with the summary for the user.", {"answer": "str"}, done),
    ]
    for name, description, parameters, fn in specs:
        tools.register(
            ToolSpec(name=name, description=description, parameters=parameters, execute=fn)
        )
    return tools


def script() -> list[Any]:
    """The model's side: eight tool calls with fixed ids."""
    from looplet.testing.server import call, tool_reply

    calls: list[tuple[str, dict[str, Any]]] = [
        ("list_pages", {}),
        ("search", {"query": "retry"}),
        ("read_page", {"path": "docs/retries.md"}),
        ("read_page", {"path": "docs/client.md"}),
        ("note", {"text": "max_attempts defaults to 3; backoff to 6."}),
        ("read_page", {"path": "docs/queues.md"}),
        ("read_page", {"path": "docs/changelog.md"}),
        ("done", {"answer": "Retries: `retries.max_attempts` (3), `retries.backoff` (6)..."}),
    ]
    return [
        tool_reply(call(name, args, id=f"toolu_{i:02d}")) for i, (name, args) in enumerate(calls, 1)
    ]


def run(client: anthropic.Anthropic, policy: CachePolicy | None) -> Trajectory:
    """One run of the assistant; its trajectory."""
    config = LoopConfig(system_prompt=SYSTEM, max_steps=15, cache_policy=policy)
    llm = AnthropicBackend(client, model=MODEL)
    loop = composable_loop(llm=llm, tools=build_tools([]), task=TASK, config=config)
    list(loop)
    return loop.trajectory


def record() -> None:
    """Record both runs against the cache-accounting endpoint (tests/_prompt_cache_server.py)."""
    from tests._prompt_cache_server import CacheAccountingServer

    for name, policy in (("policy", CachePolicy()), ("plain", None)):
        with (
            CacheAccountingServer(script(), min_tokens=1024) as server,
            use_cassette(CASSETTES[name], "all"),
            anthropic.Anthropic(base_url=server.url, api_key="sk-ant-emulated") as client,
        ):
            traj = run(client, policy)
        print(f"recorded {CASSETTES[name].relative_to(HERE.parent)}: {traj.llm_calls} calls")


def replay(name: str, policy: CachePolicy | None) -> Trajectory:
    """Replay one recorded run, offline."""
    path = CASSETTES[name]
    base = recorded_base_url(path, "anthropic")
    with (
        use_cassette(path, "none"),
        anthropic.Anthropic(base_url=base, api_key="looplet-replay") as client,
    ):
        return run(client, policy)


def billed_input(usage: Usage) -> float:
    """Input tokens at the plain input price that cost as much as ``usage``'s input."""
    return (
        usage.uncached_input_tokens
        + 0.1 * usage.cache_read_tokens
        + 1.25 * (usage.cache_write_tokens)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="record the two runs again")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.record:
        record()
    cached = replay("policy", CachePolicy())
    plain = replay("plain", None)
    steps = [s.tool_call for s in cached.steps]
    assert steps == [s.tool_call for s in plain.steps], "the two runs made different calls"
    c, p = cached.usage, plain.usage
    cost_c, cost_p = cost_usd(c, MODEL), cost_usd(p, MODEL)
    assert cost_c is not None and cost_p is not None
    figures: dict[str, Any] = {
        "model_calls": cached.llm_calls,
        "input_tokens": {"policy": c.input_tokens, "plain": p.input_tokens},
        "cache_read_tokens": c.cache_read_tokens,
        "cache_write_tokens": c.cache_write_tokens,
        "uncached_input_tokens": c.uncached_input_tokens,
        "billed_input_equivalent": {"policy": round(billed_input(c)), "plain": p.input_tokens},
        "saved_input_tokens": round(p.input_tokens - billed_input(c)),
        "cost_usd": {"policy": round(cost_c, 6), "plain": round(cost_p, 6)},
        "per_call": [
            (t.usage.cache_read_tokens, t.usage.cache_write_tokens, t.usage.uncached_input_tokens)
            for t in cached.turns
        ],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    saved = figures["saved_input_tokens"]
    print(
        f"{cached.llm_calls} model calls, {len(steps)} steps, the same calls in both runs "
        f"(provider emulated; see the docstring)"
    )
    print(f"{'':24}{'no policy':>12}{'CachePolicy()':>15}")
    print(f"{'input tokens':24}{p.input_tokens:>12,}{c.input_tokens:>15,}")
    print(f"{'  read from cache':24}{0:>12,}{c.cache_read_tokens:>15,}")
    print(f"{'  written to cache':24}{0:>12,}{c.cache_write_tokens:>15,}")
    print(f"{'  plain':24}{p.input_tokens:>12,}{c.uncached_input_tokens:>15,}")
    print(f"{'billed as input tokens':24}{p.input_tokens:>12,}{round(billed_input(c)):>15,}")
    print(
        f"{'cost on ' + MODEL:24}{'$' + format(cost_p, '.4f'):>12}{'$' + format(cost_c, '.4f'):>15}"
    )
    print("per call (CachePolicy): read / written / plain input tokens")
    for i, (read, written, fresh) in enumerate(figures["per_call"], 1):
        print(f"  call {i}: {read:>6,} / {written:>5,} / {fresh:>5,}")
    print(
        f"saved: {saved:,} input-token equivalents ({saved / p.input_tokens:.0%} of the "
        f"input bill), ${cost_p - cost_c:.4f} ({1 - cost_c / cost_p:.0%} of the run's cost)"
    )


if __name__ == "__main__":
    main()
