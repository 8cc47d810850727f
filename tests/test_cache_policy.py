"""Prompt caching: CachePolicy's breakpoints on the wire, cache usage from both providers,
the discount in cost, and the detector of cache breaks.

The wire tests run the real ``anthropic`` and ``openai`` SDKs over real HTTP against
tests/_prompt_cache_server.py, which answers from a ScriptedModelServer script and rewrites
each reply's usage with Anthropic's (and OpenAI's) documented cache accounting.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anthropic
import openai
import pytest

from looplet import LoopConfig, ToolCall, async_composable_loop, composable_loop
from looplet.backends.anthropic import AnthropicBackend, AsyncAnthropicBackend
from looplet.backends.base import LLMRequest
from looplet.backends.openai import OpenAIBackend
from looplet.cache import (
    MAX_BREAKPOINTS,
    CacheBreakDetector,
    CacheBreakWarning,
    CacheControl,
    CachePolicy,
    compute_breakpoints,
)
from looplet.errors import ConfigurationError
from looplet.hooks import LoopEvent
from looplet.messages import Message
from looplet.pricing import cost_usd
from looplet.record.codec import (
    decode_trajectory,
    decode_usage,
    encode_trajectory,
    encode_usage,
)
from looplet.testing import MockLLMBackend
from looplet.testing.server import ScriptedModelServer, ScriptItem, call, text_reply, tool_reply
from looplet.types import Usage
from tests._anthropic import API_KEY, FAST, GREET_SCHEMA, MODEL, client_for
from tests._prompt_cache_server import CacheAccountingServer
from tests.conftest import RunLoop, make_tools

SYSTEM = "You greet people. " * 40
MEMORY = Message("system", "The user's name is Alice. " * 10, name="memory")
RECORD_V1 = Path(__file__).parent / "data" / "record_v1"
DONE_SCHEMA = {"name": "done", "description": "Finish.", "parameters": {"type": "object"}}


def _request(policy: CachePolicy | None, *, memory: bool = True) -> LLMRequest:
    messages = [Message.system(SYSTEM), *([MEMORY] if memory else []), Message.user("Hi.")]
    return LLMRequest(messages, tools=[GREET_SCHEMA, DONE_SCHEMA], max_tokens=50, cache=policy)


def _sent_body(request: LLMRequest) -> dict[str, Any]:
    """The JSON body the real SDK sends for ``request`` (recorded by the loopback server)."""
    with ScriptedModelServer([text_reply("ok")]) as server, client_for(server) as client:
        AnthropicBackend(client, model=MODEL, retry=FAST).complete(request)
        body: dict[str, Any] = server.requests[0].body
    return body


def _marked(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Where the body carries cache_control: ("tools", name), ("system", i), ("messages", i)."""
    found: list[tuple[str, Any]] = [
        ("tools", t["name"]) for t in body.get("tools", ()) if "cache_control" in t
    ]
    system = body.get("system")
    if isinstance(system, list):
        found += [("system", i) for i, b in enumerate(system) if "cache_control" in b]
    for i, message in enumerate(body["messages"]):
        content = message["content"]
        if isinstance(content, list) and any("cache_control" in b for b in content):
            found.append(("messages", i))
    return found


# -- the policy's values ---------------------------------------------------------------------


def test_bad_ttl_and_fields_are_refused_naming_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"'5m' or '1h'.*'10m'"):
        CacheControl("10m")
    with pytest.raises(ConfigurationError, match=r"'5m' or '1h'"):
        CachePolicy(ttl="forever")
    with pytest.raises(ConfigurationError, match=r"CachePolicy.memory must be True or False"):
        CachePolicy(memory="yes")  # type: ignore[arg-type]
    assert CacheControl("1h").to_anthropic() == {"type": "ephemeral", "ttl": "1h"}
    assert CacheControl().to_anthropic() == {"type": "ephemeral"}


def test_a_cache_that_is_not_a_policy_is_refused_naming_the_fix() -> None:
    from looplet.backends.anthropic import build_request_kwargs

    request = LLMRequest([Message.user("Hi.")], cache=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"must be a looplet.cache.CachePolicy.*True"):
        build_request_kwargs(request, MODEL)


def test_a_detector_or_breakpoints_given_a_wrong_policy_refuse_it_at_once() -> None:
    # Accepted silently, a wrong policy failed at the run's first model call, mid-run,
    # as an AttributeError inside a hook (stop reason hook_error).
    with pytest.raises(ConfigurationError, match=r"CacheBreakDetector\(policy=.*CachePolicy\(\)"):
        CacheBreakDetector(policy="1h")  # type: ignore[arg-type]
    request = LLMRequest([Message.user("Hi.")])
    with pytest.raises(ConfigurationError, match=r"compute_breakpoints\(request, policy\).*True"):
        compute_breakpoints(request, True)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigurationError, match=r"compute_breakpoints\(request\).*LLMRequest.*dict"
    ):
        compute_breakpoints({"messages": []})  # type: ignore[arg-type]
    assert compute_breakpoints(request, CachePolicy())[0].label == "conversation"


def test_a_policy_never_places_more_than_anthropics_limit() -> None:
    points = compute_breakpoints(_request(CachePolicy()))
    assert [(p.label, p.index) for p in points] == [
        ("tool_schemas", 1),
        ("system_prompt", 0),
        ("memory", 1),
        ("conversation", 2),
    ]
    assert len(points) == MAX_BREAKPOINTS
    assert all(len(p.digest) == 16 for p in points)
    assert compute_breakpoints(_request(None)) == ()


def test_digests_change_exactly_when_the_cached_prefix_does() -> None:
    before = compute_breakpoints(_request(CachePolicy()))
    other_memory = LLMRequest(
        [Message.system(SYSTEM), Message("system", "Bob.", name="memory"), Message.user("Hi.")],
        tools=[GREET_SCHEMA, DONE_SCHEMA],
    )
    after = compute_breakpoints(other_memory, CachePolicy())
    same = [a.digest == b.digest for a, b in zip(before, after, strict=True)]
    assert same == [True, True, False, False]  # tools, system kept; memory and after changed


# -- where the breakpoints go on the wire ----------------------------------------------------


def test_without_a_policy_the_request_is_unchanged() -> None:
    body = _sent_body(_request(None))
    assert body["system"] == SYSTEM + "\n\n" + MEMORY.content  # one string, as before
    assert _marked(body) == []


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("tool_schemas", [("tools", "done")]),  # the last tool: caches every tool
        ("system_prompt", [("system", 0)]),
        ("memory", [("system", 1)]),
        ("conversation", [("messages", 0)]),
    ],
)
def test_each_policy_field_marks_its_block(field: str, expected: list[tuple[str, Any]]) -> None:
    policy = CachePolicy(
        system_prompt=field == "system_prompt",
        tool_schemas=field == "tool_schemas",
        memory=field == "memory",
        conversation=field == "conversation",
    )
    body = _sent_body(_request(policy))
    assert _marked(body) == expected
    assert [b["text"] for b in body["system"]] == [SYSTEM, MEMORY.content]


def test_all_fields_and_a_one_hour_ttl() -> None:
    body = _sent_body(_request(CachePolicy(ttl="1h")))
    assert _marked(body) == [("tools", "done"), ("system", 0), ("system", 1), ("messages", 0)]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Hi.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]


def test_no_memory_block_means_no_memory_breakpoint() -> None:
    body = _sent_body(_request(CachePolicy(), memory=False))
    assert _marked(body) == [("tools", "done"), ("system", 0), ("messages", 0)]


# -- usage from the providers ----------------------------------------------------------------

GREETINGS: list[ScriptItem] = [
    tool_reply(call("greet", {"name": "Alice"}, id="toolu_1")),
    tool_reply(call("greet", {"name": "Bob"}, id="toolu_2")),
    tool_reply(call("greet", {"name": "Carol"}, id="toolu_3")),
    tool_reply(call("done", {"answer": "Greeted all three."}, id="toolu_4")),
]


class Reminder:
    """Adds text to each request, for that request alone (not kept in the history)."""

    def pre_prompt(self, step_num: int) -> str:
        return f"Step {step_num}: be brief."


def _anthropic_run(
    mode: str, policy: CachePolicy | None, stream: bool = False, hooks: tuple[Any, ...] = ()
) -> Any:
    """A four-call greeting run over the cache-accounting endpoint, with the sync or async
    loop and backend; the trajectory and the usages the endpoint reported."""
    config = LoopConfig(system_prompt=SYSTEM, cache_policy=policy)
    task = "Greet three people."
    with CacheAccountingServer(list(GREETINGS), min_tokens=0) as server:
        if mode == "sync":
            with anthropic.Anthropic(base_url=server.url, api_key=API_KEY) as client:
                llm = AnthropicBackend(client, model=MODEL, retry=FAST, stream=stream)
                loop = composable_loop(
                    llm=llm, tools=make_tools(), task=task, config=config, hooks=hooks
                )
                list(loop)
                return loop.trajectory, server.ledger.usages

        async def go() -> Any:
            async with anthropic.AsyncAnthropic(base_url=server.url, api_key=API_KEY) as client:
                llm = AsyncAnthropicBackend(client, model=MODEL, retry=FAST, stream=stream)
                run = async_composable_loop(
                    llm=llm, tools=make_tools(), task=task, config=config, hooks=hooks
                )
                [step async for step in run]
                return run.trajectory

        return asyncio.run(go()), server.ledger.usages


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """The sync loop and backend, then the async ones."""
    return str(request.param)


@pytest.mark.parametrize(
    ("stream", "hooks"),
    [(False, ()), (True, ()), (False, (Reminder(),))],
    ids=["whole", "streamed", "with-one-call-context"],
)
def test_a_loop_reads_the_cache_from_its_second_call(
    mode: str, stream: bool, hooks: tuple[Any, ...]
) -> None:
    traj, reported = _anthropic_run(mode, CachePolicy(), stream, hooks)
    turns = [t.usage for t in traj.turns]
    assert len(turns) == 4
    # What the provider reported, as looplet's Usage: input counts the cached parts too.
    assert [(u.cache_read_tokens, u.cache_write_tokens) for u in turns] == [
        (r["cache_read_input_tokens"], r["cache_creation_input_tokens"]) for r in reported
    ]
    assert [u.uncached_input_tokens for u in turns] == [r["input_tokens"] for r in reported]
    first, *later = turns
    assert first.cache_read_tokens == 0 and first.cache_write_tokens > 0
    for before, now in zip(turns, later, strict=False):
        # Each call reads the whole previous request from the cache (tools, system, and the
        # conversation up to the previous breakpoint), and writes only what was added; a
        # hook's one-call text comes after the breakpoint, so it costs no cache entry.
        assert now.cache_read_tokens == before.cache_read_tokens + before.cache_write_tokens
    assert traj.usage.cache_read_tokens == sum(u.cache_read_tokens for u in turns) > 0
    assert traj.usage.cache_write_tokens == sum(u.cache_write_tokens for u in turns)


def test_without_a_policy_nothing_is_cached(mode: str) -> None:
    traj, reported = _anthropic_run(mode, None)
    assert traj.usage.cache_read_tokens == traj.usage.cache_write_tokens == 0
    assert all(r["cache_read_input_tokens"] == 0 for r in reported)


def test_the_cache_discount_reaches_the_cost(mode: str) -> None:
    cached, _ = _anthropic_run(mode, CachePolicy())
    plain, _ = _anthropic_run(mode, None)
    # The same prompts (give or take the markers' few characters), billed differently.
    assert cached.usage.input_tokens == pytest.approx(plain.usage.input_tokens, rel=0.05)
    with_cache = cost_usd(cached.usage, "claude-sonnet-4")
    without = cost_usd(plain.usage, "claude-sonnet-4")
    assert with_cache is not None and without is not None
    assert with_cache < 0.7 * without
    u = cached.usage  # the discount, by hand: reads at 0.1x, writes at 1.25x the input price
    by_hand = u.uncached_input_tokens + 0.1 * u.cache_read_tokens + 1.25 * u.cache_write_tokens
    assert with_cache == pytest.approx((by_hand * 3.0 + u.output_tokens * 15.0) / 1e6)


def test_a_breakpoint_prefix_below_the_minimum_is_not_cached() -> None:
    with (
        CacheAccountingServer(list(GREETINGS), min_tokens=100_000) as server,
        anthropic.Anthropic(base_url=server.url, api_key=API_KEY) as client,
    ):
        llm = AnthropicBackend(client, model=MODEL, retry=FAST)
        loop_config = LoopConfig(system_prompt=SYSTEM, cache_policy=CachePolicy())
        loop = composable_loop(llm=llm, tools=make_tools(), task="Greet.", config=loop_config)
        list(loop)
    assert loop.trajectory.usage.cache_read_tokens == loop.trajectory.usage.cache_write_tokens == 0


def test_more_than_four_breakpoints_is_the_providers_400() -> None:
    # The emulated endpoint enforces the API's limit, which a CachePolicy cannot exceed.
    with (
        CacheAccountingServer([text_reply("ok")]) as server,
        anthropic.Anthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as client,
    ):
        marked = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
        five: dict[str, Any] = {
            "system": [marked] * 3,
            "messages": [{"role": "user", "content": [marked, marked]}],
        }
        with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks"):
            client.messages.create(model=MODEL, max_tokens=10, **five)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_openai_cached_tokens_become_cache_reads(stream: bool) -> None:
    long_system = "You greet people politely and briefly. " * 200  # over OpenAI's 1,024 tokens
    script: list[ScriptItem] = [text_reply("Hello!"), text_reply("Hello again!")]
    with (
        CacheAccountingServer(script) as server,
        openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY) as client,
    ):
        llm = OpenAIBackend(client, model="gpt-4o", retry=FAST, stream=stream)
        first = [Message.system(long_system), Message.user("Hi.")]
        one = llm.complete(LLMRequest(first, cache=CachePolicy()))  # ignored by OpenAI
        two = llm.complete(
            LLMRequest([*first, Message.assistant("Hello!"), Message.user("Once more.")])
        )
        reported = server.ledger.usages
        sent = server.bodies[0]
    assert "cache_control" not in json.dumps(sent)
    assert one.usage.cache_read_tokens == 0
    assert two.usage.cache_read_tokens == reported[1]["cache_read_input_tokens"] >= 1024
    assert two.usage.input_tokens == reported[1]["input_tokens"]  # prompt_tokens, cache included
    assert two.usage.cache_write_tokens == 0


def test_a_stream_whose_message_delta_carries_final_counts() -> None:
    # Newer API versions repeat the usage in message_delta; a count left out keeps the start's.
    from looplet.backends._anthropic_stream import AnthropicStreamAssembler

    assembler = AnthropicStreamAssembler()
    start = SimpleNamespace(
        model="m",
        usage=SimpleNamespace(
            input_tokens=5,
            output_tokens=1,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=20,
        ),
    )
    assembler.feed(SimpleNamespace(type="message_start", message=start))
    delta = SimpleNamespace(stop_reason="end_turn")
    usage = SimpleNamespace(input_tokens=5, output_tokens=9, cache_read_input_tokens=100)
    assembler.feed(SimpleNamespace(type="message_delta", delta=delta, usage=usage))
    assert assembler.response().usage == Usage(125, 9, 100, 20)


# -- the Usage value, the record, the price --------------------------------------------------


def test_usage_adds_and_shows_its_cache_counts() -> None:
    total = Usage(100, 10, 60, 30) + Usage(50, 5, 40)
    assert total == Usage(150, 15, 100, 30)
    assert total.uncached_input_tokens == 20
    assert total.to_dict() == {
        "input_tokens": 150,
        "output_tokens": 15,
        "total_tokens": 165,
        "cache_read_tokens": 100,
        "cache_write_tokens": 30,
    }
    assert Usage(3, 4).to_dict() == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}


def test_the_record_keeps_cache_counts_and_reads_files_without_them() -> None:
    usage = Usage(150, 15, 100, 30)
    assert decode_usage(json.loads(json.dumps(encode_usage(usage))), "usage") == usage
    assert decode_usage({"input_tokens": 3, "output_tokens": 4}, "usage") == Usage(3, 4)
    assert encode_usage(Usage(3, 4)) == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    for name in ("kitchen", "compacting"):  # written by looplet 0.2.0, before the cache counts
        expected = json.loads((RECORD_V1 / name / "expected.json").read_text(encoding="utf-8"))
        old = decode_trajectory(expected["trajectory"], "expected")
        assert old.usage.input_tokens > 0
        assert old.usage.cache_read_tokens == old.usage.cache_write_tokens == 0
        old.usage = usage
        again = decode_trajectory(json.loads(json.dumps(encode_trajectory(old))), "again")
        assert again.usage == usage


@pytest.mark.parametrize(
    ("usage", "model", "kwargs", "dollars"),
    [
        # claude-sonnet-4 at $3 in / $15 out: 2,000 plain + 8,000 read at $0.30 + 1,000 out
        (Usage(10_000, 1_000, 8_000), "claude-sonnet-4", {}, 0.0234),
        # 1,000 plain + 9,000 written at 1.25 x $3 (5 minutes)
        (Usage(10_000, 0, 0, 9_000), "claude-sonnet-4", {}, 0.03675),
        # ... at 2 x $3 (one hour)
        (Usage(10_000, 0, 0, 9_000), "claude-sonnet-4", {"cache_ttl": "1h"}, 0.057),
        # gpt-4.1 lists $0.50 for cached input (a quarter of $2): 2,000 x $2 + 8,000 x $0.50
        (Usage(10_000, 0, 8_000), "gpt-4.1-2025-04-14", {}, 0.008),
        # an OpenAI-style model without a listed cached price: half the input price
        (Usage(10_000, 0, 8_000), "my-model", {}, 0.0006),
        (Usage(10_000, 1_000), "claude-sonnet-4", {}, 0.045),  # nothing cached: list price
    ],
)
def test_cost_sees_the_cache_discount(
    usage: Usage, model: str, kwargs: dict[str, Any], dollars: float
) -> None:
    prices = {"my-model": (0.10, 0.40), "claude-sonnet-4": (3.0, 15.0), "gpt-4.1": (2.0, 8.0)}
    assert cost_usd(usage, model, prices, **kwargs) == pytest.approx(dollars)


def test_an_unknown_cache_ttl_in_cost_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="cache_ttl must be '5m' or '1h'"):
        cost_usd(Usage(10, 0, 5), "claude-sonnet-4", cache_ttl="2h")


# -- the cache-break detector ----------------------------------------------------------------


def _event(step: int, request: LLMRequest) -> LoopEvent:
    return LoopEvent("llm_call", step, {"request": request})


def _turn(request: LLMRequest, *extra: Message) -> LLMRequest:
    return LLMRequest([*request.messages, *extra], tools=request.tools, cache=request.cache)


def test_a_growing_conversation_breaks_nothing_and_a_changed_prefix_warns() -> None:
    detector = CacheBreakDetector()
    first = _request(CachePolicy())
    second = _turn(first, Message.assistant("Hello."), Message.user("Again."))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may be issued here
        detector.on_event(_event(1, first))
        detector.on_event(_event(2, second))
    assert detector.breaks == []
    changed = LLMRequest(
        [Message.system("A new system prompt."), *second.messages[1:]],
        tools=second.tools,
        cache=second.cache,
    )
    with pytest.warns(CacheBreakWarning, match=r"step 3: .*system prompt changed.*step 2"):
        detector.on_event(_event(3, changed))
    assert [(b.step, b.label) for b in detector.breaks] == [(3, "system_prompt")]  # earliest only


def test_an_edited_history_is_a_conversation_break() -> None:
    detector = CacheBreakDetector(warn=False)
    first = _turn(_request(CachePolicy()), Message.assistant("Hello."), Message.user("Again."))
    edited = list(first.messages)
    edited[3] = Message.assistant("Hi!")  # a hook rewrote an earlier reply
    detector.on_event(_event(1, first))
    detector.on_event(_event(2, LLMRequest(edited, tools=first.tools, cache=first.cache)))
    assert [(b.step, b.label) for b in detector.breaks] == [(2, "conversation")]


def test_the_detector_on_a_real_loop_sees_no_break(run_loop: RunLoop) -> None:
    detector = CacheBreakDetector()
    script = [ToolCall("greet", {"name": n}) for n in ("Alice", "Bob", "Carol")]
    llm = MockLLMBackend([*script, ToolCall("done", {"answer": "ok"})])
    _, traj = run_loop(llm=llm, tools=make_tools(), task="Greet three.", hooks=[detector])
    assert traj.llm_calls == 4 and detector.breaks == []


def test_context_a_hook_adds_breaks_nothing(run_loop: RunLoop) -> None:
    detector = CacheBreakDetector(warn=False)
    llm = MockLLMBackend([ToolCall("greet", {"name": "Alice"}), ToolCall("done", {"answer": "ok"})])
    _, traj = run_loop(llm=llm, tools=make_tools(), task="Greet.", hooks=[Reminder(), detector])
    assert traj.llm_calls == 2 and detector.breaks == []


@pytest.mark.parametrize("value", [True, "ephemeral", {"system_prompt": True}])
def test_a_cache_policy_that_is_not_one_is_refused_when_the_config_is_built(value: Any) -> None:
    with pytest.raises(
        ConfigurationError, match=r"cache_policy must be a looplet\.cache\.CachePolicy"
    ):
        LoopConfig(cache_policy=value)


@pytest.mark.parametrize("usage", [None, {"input_tokens": 10}, 10])
def test_cost_of_something_that_is_not_a_usage_says_what_it_needs(usage: Any) -> None:
    with pytest.raises(TypeError, match=r"needs a looplet\.types\.Usage"):
        cost_usd(usage, "gpt-4o-mini")
