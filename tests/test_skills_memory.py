"""A skill's memory is a memory source: read before every model call, sent as it is then,
counted by the context budget, never written into the system prompt or the conversation."""

from __future__ import annotations

import json
from typing import Any

from looplet import LoopConfig, StopReason, ToolCall, tool
from looplet.compact import ContextBudget, TruncateCompact
from looplet.memory import CallableMemorySource, StaticMemorySource
from looplet.skills import Skill, apply_skills, skill_activation_tool
from looplet.testing import MockLLMBackend
from tests.conftest import make_tools, run_async, run_sync

GREET = ToolCall("greet", {"name": "Alice"})
DONE = ToolCall("done", {"answer": "Greeted Alice."})


@tool
def lookup(order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id, "status": "shipped"}


def memory_texts(llm: MockLLMBackend) -> list[str | None]:
    """The memory message of each request (``None`` when a request has none)."""
    found: list[str | None] = []
    for request in llm.requests:
        memory = [m.content for m in request.messages if m.name == "memory"]
        assert len(memory) <= 1
        found.append(memory[0] if memory else None)
    return found


class Notes:
    """A callable memory that counts its calls and says how many there were."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"Read {self.calls} times."


def test_a_callable_memory_is_read_before_every_model_call_and_sent_as_it_is_then() -> None:
    notes = Notes()
    skill = Skill("orders", "Orders.", [lookup], "Look orders up.", memory=notes)
    config, tools = skill.apply(LoopConfig(), make_tools())
    assert notes.calls == 0  # applying the skill reads nothing
    llm = MockLLMBackend([GREET, GREET, DONE])
    _, trajectory = run_sync(llm=llm, tools=tools, task="Greet Alice.", config=config)

    assert trajectory.stop_reason is StopReason.DONE
    assert notes.calls == 3
    assert memory_texts(llm) == [
        f"# Memory\n\n## Memory (orders)\nRead {n} times." for n in (1, 2, 3)
    ]
    for request in llm.requests:
        messages = list(request.messages)
        assert messages[1].name == "memory" and messages[2].content == "Greet Alice."
        prompt = messages[0].content  # the system prompt itself, without the memory
        assert "Read" not in prompt and "Look orders up." in prompt
    assert not [m for m in trajectory.messages if "Read " in m.content]


def test_the_async_loop_reads_it_the_same_way() -> None:
    notes = Notes()
    config, tools = Skill("orders", memory=notes).apply(LoopConfig(), make_tools())
    llm = MockLLMBackend([GREET, DONE])
    run_async(llm=llm, tools=tools, task="Greet Alice.", config=config)
    assert notes.calls == 2
    assert memory_texts(llm) == [f"# Memory\n\n## Memory (orders)\nRead {n} times." for n in (1, 2)]


def test_skills_add_their_memory_after_the_configs_own_sources_and_only_when_they_have_one() -> (
    None
):
    own = StaticMemorySource("Be brief.", title="Style")
    skills = [
        Skill("a", memory="Alpha facts."),
        Skill("b"),
        Skill("c", memory=lambda: "Gamma facts."),
    ]
    config, _ = apply_skills(skills, LoopConfig(memory_sources=[own]))
    assert config.memory_sources[0] is own
    titles = [getattr(source, "title", None) for source in config.memory_sources]
    assert titles == ["Style", "Memory (a)", "Memory (c)"]
    assert isinstance(config.memory_sources[2], CallableMemorySource)
    assert Skill("b").memory_source() is None
    # A skill without memory leaves the config's sources as they were (no memory message).
    plain, _ = Skill("b", instructions="Do b.").apply(LoopConfig())
    assert plain.memory_sources == ()
    llm = MockLLMBackend([DONE])
    run_sync(llm=llm, tools=make_tools(), task="t", config=plain)
    assert memory_texts(llm) == [None]


def test_an_empty_memory_sends_no_memory_message_that_time() -> None:
    said = iter(["", "Now something.", "  "])
    config, tools = Skill("orders", memory=lambda: next(said)).apply(LoopConfig(), make_tools())
    llm = MockLLMBackend([GREET, GREET, DONE])
    run_sync(llm=llm, tools=tools, task="Greet Alice.", config=config)
    assert memory_texts(llm) == [None, "# Memory\n\n## Memory (orders)\nNow something.", None]


def _budget_run(memory: str) -> tuple[Any, MockLLMBackend, ContextBudget]:
    budget = ContextBudget(
        max_tokens=500, strategy=TruncateCompact(keep_recent=1), use_reported_usage=False
    )
    skill = Skill("rules", instructions="Follow the rules.", memory=memory or None)
    config, tools = skill.apply(LoopConfig(context_budget=budget), make_tools())
    llm = MockLLMBackend([GREET, GREET, GREET, GREET, DONE])
    _, trajectory = run_sync(llm=llm, tools=tools, task="Greet Alice.", config=config)
    return trajectory, llm, budget


def test_the_context_budget_counts_the_skills_memory() -> None:
    plain, _, _ = _budget_run("")
    assert plain.compactions == []  # the conversation alone fits
    memory = "Standing rule number one: greet politely. " * 22  # about 220 tokens
    trajectory, llm, budget = _budget_run(memory)
    assert trajectory.compactions, "the skill's memory pushed the request over the budget"
    assert trajectory.stop_reason is StopReason.DONE
    schemas = budget.estimator(json.dumps(list(llm.requests[0].tools)))
    for request in llm.requests:  # every request fits, the memory counted
        messages = list(request.messages)
        assert budget.count(messages) + schemas <= budget.max_tokens
        assert messages[1].name == "memory" and memory.strip() in messages[1].content


def test_a_skill_activated_mid_run_returns_its_memory_as_it_is_then() -> None:
    notes = Notes()
    skill = Skill("orders", "Orders.", [lookup], "Look orders up.", memory=notes)
    registry = make_tools()
    registry.register(skill_activation_tool([skill], registry))
    llm = MockLLMBackend(
        [
            ToolCall("activate_skill", {"skill": "orders"}),
            ToolCall("lookup", {"order_id": "42"}),
            ToolCall("done", {"answer": "shipped"}),
        ]
    )
    steps, _ = run_sync(llm=llm, tools=registry, task="Where is 42?")
    assert steps[0].tool_result.data.endswith("### Memory (orders)\nRead 1 times.")
    assert notes.calls == 1  # read once, at activation; not a memory source of the run
    assert memory_texts(llm) == [None, None, None]


def test_the_prompt_helpers_still_render_the_memory_unless_told_not_to() -> None:
    skill = Skill("orders", instructions="Look orders up.", memory="Customer 7 prefers email.")
    assert skill.prompt_section().endswith("### Memory (orders)\nCustomer 7 prefers email.")
    assert "Customer 7" not in skill.prompt_section(memory=False)
    assert "Customer 7" not in skill.system_prompt("Base.", memory=False)
    assert skill.system_prompt("Base.").startswith("Base.\n\n## Skill: orders")
