"""Skills: tools plus instructions, given to a run up front, loaded from folders, activated."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from looplet import BaseToolRegistry, DefaultState, LoopConfig, ToolCall, ToolSpec, tool
from looplet.config import DEFAULT_SYSTEM_PROMPT
from looplet.errors import ConfigurationError
from looplet.skills import (
    Skill,
    SkillLoadError,
    apply_skills,
    load_skills,
    parse_front_matter,
    skill_activation_tool,
)
from looplet.testing import MockLLMBackend
from tests.conftest import make_tools, run_sync


@tool
def lookup(order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id, "status": "shipped"}


def orders_skill(**kwargs: object) -> Skill:
    return Skill(
        "orders",
        "Answer questions about orders.",
        [lookup],
        "Always look the order up before answering.",
        **kwargs,  # type: ignore[arg-type]
    )


def write_skill(folder: Path, skill_md: str, tools_py: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(textwrap.dedent(skill_md), encoding="utf-8")
    if tools_py is not None:
        (folder / "tools.py").write_text(textwrap.dedent(tools_py), encoding="utf-8")
    return folder


# -- giving a skill to a run -------------------------------------------------------------------


def test_an_applied_skill_puts_its_tools_and_titled_instructions_into_the_run() -> None:
    skill = orders_skill(memory="Customer 7 prefers email.")
    config, tools = skill.apply(LoopConfig(), make_tools())
    llm = MockLLMBackend(
        [ToolCall("lookup", {"order_id": "42"}), ToolCall("done", {"answer": "shipped"})]
    )
    steps, traj = run_sync(llm=llm, tools=tools, task="Where is 42?", config=config)

    assert traj.tools == ["lookup", "done"] and steps[0].ok
    assert steps[0].tool_result.data == {"order_id": "42", "status": "shipped"}
    prompt = llm.requests[0].messages[0].content
    assert prompt.startswith(DEFAULT_SYSTEM_PROMPT.replace("{done_tool}", "done"))
    section = prompt.split("## Skill: orders", 1)[1]
    assert "Always look the order up before answering." in section
    assert "Customer 7 prefers email." not in prompt  # the memory is a memory source
    memory = llm.requests[0].messages[1]
    assert memory.name == "memory"
    assert memory.content == "# Memory\n\n## Memory (orders)\nCustomer 7 prefers email."
    assert "lookup" in [schema["name"] for schema in llm.requests[0].tools]


def test_apply_returns_a_new_config_and_keeps_the_given_prompt_first() -> None:
    base = LoopConfig(system_prompt="You sell shoes. Finish with {done_tool}.")
    config, tools = apply_skills([orders_skill(), Skill("empty", "Nothing.")], base)
    assert base.system_prompt == "You sell shoes. Finish with {done_tool}."
    prompt = config.render_system_prompt()
    assert prompt.startswith("You sell shoes. Finish with done.")
    assert prompt.index("## Skill: orders") < prompt.index("## Skill: empty")
    assert tools.tool_names == ["lookup"]


def test_memory_given_as_a_function_is_read_when_the_prompt_is_built() -> None:
    notes = ["first"]
    skill = orders_skill(memory=lambda: notes[-1])
    assert "first" in skill.system_prompt()
    notes.append("second")
    assert "second" in skill.system_prompt() and "first" not in skill.system_prompt()


def test_registering_twice_adds_nothing_but_a_clashing_tool_is_refused() -> None:
    registry = BaseToolRegistry()
    skill = orders_skill()
    assert [s.name for s in skill.register(registry)] == ["lookup"]
    assert skill.register(registry) == []
    other = Skill("other", "x", [ToolSpec("lookup", "Another.", None, lambda: 1)])
    with pytest.raises(ConfigurationError, match="different tool named 'lookup'"):
        other.register(registry)


def test_plain_functions_become_tools_and_the_catalog_entry_lists_them() -> None:
    def ping() -> str:
        """Answer pong."""
        return "pong"

    skill = Skill("net", "Network checks.", [ping])
    assert isinstance(skill.tools[0], ToolSpec) and skill.tool_names == ["ping"]
    assert skill.as_catalog_entry() == {
        "name": "net",
        "description": "Network checks.",
        "tools": ["ping"],
    }


def test_a_skill_needs_a_name() -> None:
    with pytest.raises(ConfigurationError, match="non-empty name"):
        Skill("  ", "x")


# -- loading from folders ----------------------------------------------------------------------


def test_from_folder_reads_the_header_the_body_and_the_tools_defined_in_tools_py(
    tmp_path: Path,
) -> None:
    folder = write_skill(
        tmp_path / "refunds",
        """\
        ---
        name: refunds
        # comments and blank lines are skipped

        description: "Refund orders: check, then refund."
        license: MIT
        ---
        # Refunds

        Check the order first.
        """,
        """\
        from looplet import tool
        from tests.test_skills import lookup  # imported, so not this skill's tool

        @tool
        def refund(order_id: str) -> str:
            '''Refund an order.'''
            return f"refunded {order_id}"
        """,
    )
    skill = Skill.from_folder(folder)
    assert skill.name == "refunds"
    assert skill.description == "Refund orders: check, then refund."
    assert skill.instructions == "# Refunds\n\nCheck the order first."
    assert skill.tool_names == ["refund"]
    assert skill.tools[0](order_id="9") == "refunded 9"
    assert skill.path == folder and str(folder) in skill.prompt_section()


def test_a_TOOLS_list_in_tools_py_is_used_as_given(tmp_path: Path) -> None:
    folder = write_skill(
        tmp_path / "s",
        "---\nname: s\ndescription: d\n---\nbody\n",
        """\
        from looplet import tool

        def a() -> int:
            '''A.'''
            return 1

        @tool
        def b() -> int:
            '''B.'''
            return 2

        TOOLS = [b, a]
        """,
    )
    assert Skill.from_folder(folder).tool_names == ["b", "a"]


def test_two_skills_with_a_tools_py_each_keep_their_own_tools(tmp_path: Path) -> None:
    for name in ("one", "two"):
        write_skill(
            tmp_path / name,
            f"---\nname: {name}\ndescription: d\n---\n",
            f"from looplet import tool\n\n@tool\ndef {name}_tool() -> str:\n"
            f"    '''{name}.'''\n    return '{name}'\n",
        )
    (tmp_path / "not_a_skill").mkdir()
    skills = load_skills(tmp_path)
    assert [s.name for s in skills] == ["one", "two"]
    assert [s.tool_names for s in skills] == [["one_tool"], ["two_tool"]]


def test_load_skills_refuses_two_skills_with_one_name(tmp_path: Path) -> None:
    write_skill(tmp_path / "a", "---\nname: same\ndescription: d\n---\n")
    write_skill(tmp_path / "b", "---\nname: same\ndescription: d\n---\n")
    with pytest.raises(SkillLoadError, match="'same' is already used by") as info:
        load_skills(tmp_path)
    assert info.value.path == tmp_path / "b" / "SKILL.md"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: x\n", 1, "expected a front-matter header"),
        ("---\nname: x\ndescription: d\n", 1, "never closed by '---'"),
        ("---\nname: x\ndescription d\n---\n", 3, "expected 'key: value'"),
        ("---\nname: x\nname: y\ndescription: d\n---\n", 3, "'name' is given twice"),
        ("---\nname: x\ndescription: 'open\n---\n", 3, "unterminated quoted value"),
        ("---\ndescription: d\n---\n", 1, "no 'name'"),
        ("---\nname: x\n---\n", 1, "no 'description'"),
    ],
)
def test_a_malformed_header_names_the_file_and_the_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    folder = write_skill(tmp_path / "bad", text)
    with pytest.raises(SkillLoadError, match=message) as info:
        Skill.from_folder(folder)
    assert info.value.path == folder / "SKILL.md" and info.value.line == line
    assert str(info.value).startswith(f"{folder / 'SKILL.md'}:{line}: ")


def test_a_folder_without_skill_md_or_with_a_broken_tools_py_is_a_clear_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkillLoadError, match=r"no SKILL\.md"):
        Skill.from_folder(tmp_path / "empty")
    folder = write_skill(tmp_path / "s", "---\nname: s\ndescription: d\n---\n", "1 / 0\n")
    with pytest.raises(SkillLoadError, match=r"tools\.py: failed to import: ZeroDivisionError"):
        Skill.from_folder(folder)
    (folder / "tools.py").write_text("X = 1\n")
    with pytest.raises(SkillLoadError, match="defines no tools"):
        Skill.from_folder(folder)


def test_front_matter_values_may_continue_or_be_blocks() -> None:
    header, body = parse_front_matter(
        "---\n"
        "description: a long line\n"
        "  that goes on\n"
        "steps: |\n"
        "  one\n"
        "  two\n"
        "folded: >\n"
        "  a\n"
        "  b\n"
        "empty:\n"
        "---\n"
        "Body.\n"
    )
    assert header == {
        "description": "a long line that goes on",
        "steps": "one\ntwo",
        "folded": "a b",
        "empty": "",
    }
    assert body == "Body."


# -- activation while running ------------------------------------------------------------------


def test_the_model_activates_a_skill_and_can_then_call_its_tools() -> None:
    registry = make_tools()
    registry.register(skill_activation_tool([orders_skill()], registry))
    llm = MockLLMBackend(
        [
            ToolCall("activate_skill", {"skill": "orders"}),
            ToolCall("lookup", {"order_id": "42"}),
            ToolCall("done", {"answer": "shipped"}),
        ]
    )
    steps, traj = run_sync(llm=llm, tools=registry, task="Where is 42?")

    offered = [[t["name"] for t in request.tools] for request in llm.requests]
    assert "lookup" not in offered[0] and "lookup" in offered[1]
    (activate,) = [t for t in llm.requests[0].tools if t["name"] == "activate_skill"]
    assert "- orders: Answer questions about orders. (tools: lookup)" in activate["description"]
    assert "Always look the order up" in steps[0].tool_result.data
    assert [s.ok for s in steps] == [True, True, True]
    assert traj.stop_reason == "done"


def test_activating_a_skill_uses_no_step_and_an_unknown_skill_fails_the_call() -> None:
    registry = make_tools()
    registry.register(skill_activation_tool([orders_skill()], registry))
    llm = MockLLMBackend(
        [
            ToolCall("activate_skill", {"skill": "orders"}),
            ToolCall("lookup", {"order_id": "1"}),
            ToolCall("done", {"answer": "x"}),
        ]
    )
    state = DefaultState(max_steps=1)
    _, traj = run_sync(llm=llm, tools=registry, task="t", state=state)
    assert traj.tools == ["activate_skill", "lookup"] and [s.ok for s in traj.steps] == [True] * 2
    assert state.queries_used == 1 and traj.stop_reason == "max_steps"

    bad = registry.dispatch(ToolCall("activate_skill", {"skill": "nope"}), validate=False)
    assert bad.error is not None and "no skill named 'nope'" in bad.error
