"""looplet.presets: the minimal, coding and research presets run scripted multi-step runs on
real files; the coding preset stays in its folder and runs bash in the sandbox (or refuses to
build without one); the research preset cannot write; presets share nothing."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from looplet import (
    BaseToolRegistry,
    ConfigurationError,
    DefaultState,
    LoopConfig,
    PermissionDecision,
    PermissionEngine,
    ToolCall,
    composable_loop,
    tool,
)
from looplet.examples import coding_agent
from looplet.permissions import PermissionHook, PermissionRule
from looplet.presets import (
    AgentPreset,
    coding_agent_preset,
    minimal_preset,
    research_agent_preset,
)
from looplet.sandbox import BwrapSandbox, SandboxUnavailableError
from looplet.testing import AsyncMockLLMBackend, MockLLMBackend

SANDBOX = BwrapSandbox()
needs_sandbox = pytest.mark.skipif(
    not SANDBOX.available(),
    reason=f"no bubblewrap sandbox can start here ({SANDBOX.why_unavailable()})",
)
NO_BWRAP = BwrapSandbox(bwrap="/nonexistent/bwrap")


def results(trajectory: Any) -> list[tuple[str, Any]]:
    """Each step as (tool, data) when it succeeded, (tool, error kind) when it failed."""
    return [
        (s.tool_call.tool, s.tool_result.data if s.ok else s.tool_result.error_kind)
        for s in trajectory.steps
    ]


@tool
def count_words(path: str) -> dict[str, int]:
    """Count the words of a text file.

    Args:
        path: the file.
    """
    return {"words": len(Path(path).read_text(encoding="utf-8").split())}


# -- minimal --------------------------------------------------------------------------------


def test_minimal_runs_the_given_tools_and_adds_done(tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("one two three\nfour\n")
    preset = minimal_preset([count_words], system_prompt="Count.")
    assert preset.tools.tool_names == ["count_words", "done"]
    assert preset.config.max_steps == 10 and preset.config.system_prompt == "Count."
    assert preset.permissions is None and preset.hooks == []
    llm = MockLLMBackend(
        [
            ToolCall("count_words", {"path": str(text)}),
            ToolCall("count_words", {"path": str(tmp_path / "missing.txt")}),
            ToolCall("done", {"summary": "4 words"}),
        ]
    )
    trajectory = preset.run(llm, "count the words of a.txt")
    assert results(trajectory) == [
        ("count_words", {"words": 4}),
        ("count_words", "execution"),
        ("done", {"status": "completed", "summary": "4 words"}),
    ]
    assert trajectory.stop_reason == "done"
    assert llm.requests[0].system_prompt == "Count."


def test_minimal_keeps_your_done_and_copies_your_registry() -> None:
    done = tool(name="done", description="Finish.")(lambda answer: {"answer": answer})
    yours = BaseToolRegistry([count_words, done])
    preset = minimal_preset(yours, max_steps=3)
    assert preset.tools.tool_names == ["count_words", "done"]
    assert preset.tools.get("done") is done
    preset.tools.register(tool(name="extra", description="x")(lambda: 1))
    assert yours.tool_names == ["count_words", "done"]  # the preset's registry is its own


def test_minimal_refuses_an_unknown_setting_naming_it() -> None:
    with pytest.raises(ConfigurationError, match=r"'max_step' is no LoopConfig setting"):
        minimal_preset([count_words], max_step=3)


# -- coding ---------------------------------------------------------------------------------

CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\nassert add(2, 3) == 5, add(2, 3)\nprint('calc ok')\n"


@needs_sandbox
def test_coding_writes_tests_fixes_and_passes_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLET_PRESET_CANARY", "visible-outside")
    preset = coding_agent_preset(tmp_path)
    assert preset.tools.tool_names == [
        "bash", "read", "write", "edit", "glob", "grep", "think", "done"
    ]  # fmt: skip
    llm = MockLLMBackend(
        [
            ToolCall("write", {"path": "calc.py", "content": CALC}),
            ToolCall("write", {"path": "test_calc.py", "content": TEST_CALC}),
            ToolCall("bash", {"command": "python3 test_calc.py"}),
            ToolCall("grep", {"pattern": "return a"}),
            ToolCall("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"}),
            ToolCall("bash", {"command": "python3 test_calc.py"}),
            ToolCall("glob", {"pattern": "**/*.py"}),
            ToolCall("bash", {"command": "printenv LOOPLET_PRESET_CANARY"}),
            ToolCall("done", {"summary": "add fixed; its test passes"}),
        ]
    )
    trajectory = preset.run(llm, "fix add", hooks=[])
    assert trajectory.stop_reason == "done"
    runs = [s.tool_result.data for s in trajectory.calls("bash")]
    assert runs[0]["exit_code"] != 0 and "AssertionError" in runs[0]["output"]
    assert runs[1] == {"exit_code": 0, "output": "calc ok\n"}
    # The sandbox's environment is its own: the caller's variables are not in it.
    assert runs[2]["exit_code"] == 1 and "visible-outside" not in runs[2]["output"]
    assert trajectory.calls("grep")[0].tool_result.data == "calc.py:2:     return a - b"
    assert trajectory.calls("glob")[0].tool_result.data == ["calc.py", "test_calc.py"]
    assert (tmp_path / "calc.py").read_text() == CALC.replace("a - b", "a + b")
    assert all(d.decision is PermissionDecision.ALLOW for d in trajectory.permission_decisions)


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside /tmp (the sandbox's /tmp is private), holding a secret and ``ws``."""
    base = Path(tempfile.mkdtemp(prefix="looplet-preset-test-", dir="/var/tmp")).resolve()
    (base / "ws").mkdir()
    (base / "secret.txt").write_text("TOPSECRET\n")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_coding_refuses_every_way_out_of_the_workspace(outside: Path) -> None:
    ws = outside / "ws"
    (ws / "link.txt").symlink_to(outside / "secret.txt")
    (ws / "linkdir").symlink_to(outside)
    (ws / "notes.txt").write_text("mine\n")
    attacks = [
        ToolCall("read", {"path": "../secret.txt"}),
        ToolCall("read", {"path": str(outside / "secret.txt")}),
        ToolCall("read", {"path": "link.txt"}),
        ToolCall("read", {"path": "linkdir/secret.txt"}),
        ToolCall("read", {"path": f"/proc/self/root{outside}/secret.txt"}),
        ToolCall("read", {"path": "/proc/self/environ"}),
        ToolCall("write", {"path": "../escape.txt", "content": "x"}),
        ToolCall("write", {"path": "linkdir/escape.txt", "content": "x"}),
        ToolCall("edit", {"path": "link.txt", "old": "TOPSECRET", "new": "gone"}),
        ToolCall("glob", {"pattern": "../*"}),
        ToolCall("grep", {"pattern": "TOPSECRET", "path": ".."}),
    ]
    llm = MockLLMBackend(
        [
            *attacks,
            ToolCall("grep", {"pattern": "TOPSECRET|mine"}),
            ToolCall("done", {"summary": "stayed in"}),
        ]
    )
    trajectory = coding_agent_preset(ws, allow_shell=False).run(llm, "get out")
    assert [kind for _, kind in results(trajectory)[: len(attacks)]] == ["permission_denied"] * len(
        attacks
    )
    # A search of the whole workspace does not follow the symlinks out either.
    assert trajectory.calls("grep")[-1].tool_result.data == "notes.txt:1: mine"
    assert (outside / "secret.txt").read_text() == "TOPSECRET\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt", "ws"]
    assert trajectory.stop_reason == "done"


@needs_sandbox
def test_coding_bash_cannot_write_outside_even_when_approved(outside: Path) -> None:
    approved: list[str] = []

    def approve(call: ToolCall, rule: PermissionRule) -> PermissionDecision:
        approved.append(call.args["command"])
        return PermissionDecision.ALLOW

    preset = coding_agent_preset(outside / "ws", ask_handler=approve)
    command = f"touch {outside}/pwned.txt"
    llm = MockLLMBackend(
        [ToolCall("bash", {"command": command}), ToolCall("done", {"summary": ""})]
    )
    [bash, _] = preset.run(llm, "escape").steps
    assert approved == [command]  # the rules asked (a path outside), and the user said yes
    assert bash.tool_result.data["exit_code"] != 0  # the sandbox held: read-only outside
    assert "Read-only file system" in bash.tool_result.data["output"]
    assert not (outside / "pwned.txt").exists()


def test_coding_without_a_sandbox_refuses_to_build_and_says_how_to_go_on(
    tmp_path: Path,
) -> None:
    with pytest.raises(SandboxUnavailableError) as caught:
        coding_agent_preset(tmp_path, sandbox=NO_BWRAP)
    message = str(caught.value)
    assert "there is no executable bwrap at '/nonexistent/bwrap'" in message
    assert "pip install 'looplet[sandbox]'" in message
    assert "allow_shell=False" in message and "sandbox=False" in message
    # Without a shell it needs no sandbox: bash is neither a tool nor in a rule.
    no_shell = coding_agent_preset(tmp_path, sandbox=NO_BWRAP, allow_shell=False)
    assert "bash" not in no_shell.tools.tool_names
    assert no_shell.permissions is not None
    assert all(rule.tool != "bash" for rule in no_shell.permissions.rules)
    assert "cannot run commands" in (no_shell.config.system_prompt or "")


def test_coding_unsandboxed_only_when_asked_and_the_rules_still_deny(tmp_path: Path) -> None:
    preset = coding_agent_preset(tmp_path, sandbox=False)
    (tmp_path / "keep.txt").write_text("keep\n")
    llm = MockLLMBackend(
        [
            ToolCall("bash", {"command": "rm keep.txt"}),
            ToolCall("bash", {"command": "ls"}),
            ToolCall("done", {"summary": "listed"}),
        ]
    )
    trajectory = preset.run(llm, "look")
    assert results(trajectory)[:2] == [
        ("bash", "permission_denied"),
        ("bash", {"exit_code": 0, "output": "keep.txt\n"}),
    ]
    assert "there is no one to ask for approval" in (trajectory.steps[0].tool_result.error or "")
    assert (tmp_path / "keep.txt").exists()


def test_coding_denies_any_tool_it_does_not_know(tmp_path: Path) -> None:
    preset = coding_agent_preset(tmp_path, allow_shell=False)
    wrote: list[str] = []
    preset.tools.register(
        tool(name="upload", description="Upload a file.")(lambda path: wrote.append(path))
    )
    llm = MockLLMBackend([ToolCall("upload", {"path": "x"}), ToolCall("done", {"summary": ""})])
    assert results(preset.run(llm, "upload"))[0] == ("upload", "permission_denied")
    assert wrote == []


def test_coding_refuses_a_workspace_that_is_no_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not a folder; create it first"):
        coding_agent_preset(tmp_path / "missing", allow_shell=False)
    with pytest.raises(ConfigurationError, match="is the root folder"):
        coding_agent_preset("/", allow_shell=False)


def test_the_coding_example_is_built_from_the_coding_preset(tmp_path: Path) -> None:
    """The example's recorded requests (its cassette) depend on these parts being the same."""
    preset = coding_agent_preset(tmp_path, sandbox=False)
    assert preset.config == coding_agent.build_config(tmp_path.resolve())
    example_tools = coding_agent.build_tools(tmp_path, sandbox=False)
    assert preset.tools.tool_schemas() == example_tools.tool_schemas()
    engine = coding_agent.build_permissions(sandbox=False)
    assert preset.permissions is not None
    assert [(r.tool, r.decision, r.reason) for r in preset.permissions.rules] == [
        (r.tool, r.decision, r.reason) for r in engine.rules
    ]


# -- research -------------------------------------------------------------------------------


@pytest.fixture
def library(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "sandbox.md").write_text(
        "# The sandbox\n\nCommands run in bubblewrap.\nInstall it with\n"
        "pip install 'looplet[sandbox]'.\n"
    )
    (docs / "guide" / "budget.txt").write_text("Budgets\nThe default budget is 15 steps.\n")
    (docs / "image.png").write_bytes(b"\x89PNG\0\0binary")
    (tmp_path / "secret.txt").write_text("TOPSECRET\n")
    (docs / "leak.md").symlink_to(tmp_path / "secret.txt")
    return docs


def test_research_answers_with_checked_citations(library: Path) -> None:
    preset = research_agent_preset(library)
    llm = MockLLMBackend(
        [
            ToolCall("list_sources", {}),
            ToolCall("search", {"query": "install bubblewrap"}),
            ToolCall("read", {"source": "sandbox.md", "start": 3, "count": 2}),
            ToolCall(
                "note",
                {
                    "finding": "the install command",
                    "source": "sandbox.md",
                    "quote": "Install it with  pip install 'looplet[sandbox]'",
                },
            ),
            ToolCall("note", {"finding": "made up", "source": "sandbox.md", "quote": "Docker"}),
            ToolCall("done", {"answer": "pip install 'looplet[sandbox]'", "sources": []}),
            ToolCall("done", {"answer": "it", "sources": ["sandbox.md:40"]}),
            ToolCall("done", {"sources": ["sandbox.md:4"]}),
            ToolCall(
                "done", {"answer": "pip install 'looplet[sandbox]'", "sources": ["sandbox.md:4"]}
            ),
        ]
    )
    trajectory = preset.run(llm, "How do I install the sandbox?")
    steps = results(trajectory)
    assert steps[0] == (
        "list_sources",
        [
            {"source": "guide/budget.txt", "lines": 2, "title": "Budgets"},
            {"source": "sandbox.md", "lines": 5, "title": "The sandbox"},
        ],
    )
    assert steps[1][1][:2] == [
        {"source": "sandbox.md", "line": 3, "text": "Commands run in bubblewrap."},
        {"source": "sandbox.md", "line": 4, "text": "Install it with"},
    ]
    assert steps[2] == (
        "read",
        "3: Commands run in bubblewrap.\n4: Install it with\n[1 more lines: read from line 5]",
    )
    assert steps[3][1]["citation"] == "sandbox.md:4"
    assert [kind for _, kind in steps[4:8]] == ["validation"] * 4  # quote, no/bad sources
    assert steps[8] == (
        "done",
        {"answer": "pip install 'looplet[sandbox]'", "sources": ["sandbox.md:4"]},
    )
    assert trajectory.stop_reason == "done"


def test_research_reads_nothing_but_its_sources_and_cannot_write(
    library: Path, tmp_path: Path
) -> None:
    preset = research_agent_preset(library)
    assert set(preset.tools.tool_names) == {
        "list_sources", "search", "read", "note", "think", "done"
    }  # fmt: skip
    wrote: list[str] = []
    preset.tools.register(
        tool(name="write", description="Write a file.")(lambda path: wrote.append(path))
    )
    llm = MockLLMBackend(
        [
            ToolCall("read", {"source": "../secret.txt"}),
            ToolCall("read", {"source": str(tmp_path / "secret.txt")}),
            ToolCall("read", {"source": "leak.md"}),  # a symlink out: never indexed
            ToolCall("read", {"source": "image.png"}),  # not text: never indexed
            ToolCall("search", {"query": "TOPSECRET"}),
            ToolCall("write", {"path": "notes.md"}),
            ToolCall("done", {"answer": "no", "sources": ["../secret.txt"]}),
            ToolCall("done", {"answer": "no", "sources": ["guide/budget.txt"]}),
        ]
    )
    steps = results(preset.run(llm, "find the secret"))
    assert steps[:7] == [
        ("read", "permission_denied"),
        ("read", "permission_denied"),
        ("read", "permission_denied"),
        ("read", "permission_denied"),
        ("search", []),
        ("write", "permission_denied"),
        ("done", "permission_denied"),
    ]
    assert wrote == []
    assert sorted(p.name for p in library.iterdir()) == [
        "guide",
        "image.png",
        "leak.md",
        "sandbox.md",
    ]


def test_research_refuses_sources_it_cannot_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        research_agent_preset(tmp_path / "missing")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "a.bin").write_bytes(b"\0\1\2")
    with pytest.raises(ConfigurationError, match="hold no text document"):
        research_agent_preset(tmp_path / "bin")
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "same.md").write_text(name)
    both = research_agent_preset([tmp_path / "x", tmp_path / "y"])
    assert [s["source"] for s in both.tools.dispatch(ToolCall("list_sources", {})).data] == [
        "x/same.md",
        "y/same.md",
    ]


# -- the preset value -----------------------------------------------------------------------


def test_presets_share_nothing(tmp_path: Path) -> None:
    first = coding_agent_preset(tmp_path, allow_shell=False)
    second = coding_agent_preset(tmp_path, allow_shell=False)
    assert first.tools is not second.tools and first.hooks is not second.hooks
    assert first.permissions is not second.permissions and first.config is not second.config
    first.tools.register(tool(name="extra", description="Extra.")(lambda: 1))
    assert first.permissions is not None
    first.permissions.allow("extra")
    assert "extra" not in second.tools
    assert second.permissions is not None
    assert all(rule.tool != "extra" for rule in second.permissions.rules)
    one, two = minimal_preset([count_words]), minimal_preset([count_words])
    assert one.tools is not two.tools


def test_each_run_gets_a_fresh_state_and_its_own_record(tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("a b")
    preset = minimal_preset([count_words])
    preset.state = DefaultState
    script = [ToolCall("count_words", {"path": str(text)}), ToolCall("done", {"summary": "2"})]
    states = [preset.loop_kwargs()["state"] for _ in range(2)]
    assert states[0] is not states[1] and isinstance(states[0], DefaultState)
    first = preset.run(MockLLMBackend(script), "count")
    second = preset.run(MockLLMBackend(script), "count")
    assert len(first.steps) == len(second.steps) == 2


def test_the_original_shape_and_composable_loop_directly(tmp_path: Path) -> None:
    engine = PermissionEngine().allow("count_words")
    preset = AgentPreset(LoopConfig(max_steps=4), [], [count_words], None, permissions=engine)
    assert (preset.config.max_steps, preset.tools.tool_names, preset.state) == (
        4,
        ["count_words"],
        None,
    )
    assert isinstance(preset.hooks[0], PermissionHook) and preset.permissions is engine
    # The original's way: hand the parts to the loop; the permission hook goes with them.
    loop = composable_loop(
        llm=MockLLMBackend([ToolCall("count_words", {"path": "x"}), "all done"]),
        task="count",
        tools=preset.tools,
        hooks=preset.hooks,
        config=preset.config,
    )
    list(loop)
    assert [d.tool for d in loop.trajectory.permission_decisions] == ["count_words"]
    # Replacing the engine replaces the hook; None removes it.
    stricter = PermissionEngine()
    preset.permissions = stricter
    assert [h.engine for h in preset.hooks if isinstance(h, PermissionHook)] == [stricter]
    preset.permissions = None
    assert preset.hooks == [] and preset.permissions is None


def test_the_async_twin_runs_the_same_preset(tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("a b c")
    preset = minimal_preset([count_words])
    llm = AsyncMockLLMBackend(
        [ToolCall("count_words", {"path": str(text)}), ToolCall("done", {"summary": "3"})]
    )
    trajectory = asyncio.run(preset.arun(llm, "count", max_steps=5))
    assert results(trajectory)[0] == ("count_words", {"words": 3})
    assert trajectory.stop_reason == "done"


# Parts of the wrong kind, as code without a type checker passes them.
_Untyped: Any = AgentPreset


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _Untyped(config={"max_steps": 3}), "config= takes a looplet.LoopConfig"),
        (lambda: _Untyped(hooks="PermissionHook"), "hooks= takes a list of hook objects"),
        (lambda: _Untyped(state=3), "state= takes an agent state"),
        (lambda: _Untyped(permissions=[]), "permissions= takes a looplet.PermissionEngine"),
        (lambda: _Untyped(state=lambda: 3).new_state(), "returned int, which is no agent"),
    ],
)
def test_wrong_parts_are_refused_naming_them(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_a_preset_without_a_shell_never_probes_for_a_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes: list[object] = []

    def probe(self: BwrapSandbox) -> tuple[None, str]:
        probes.append(self)
        return None, "no sandbox in this test"

    monkeypatch.setattr(BwrapSandbox, "_probe", probe)
    coding_agent_preset(tmp_path, allow_shell=False)
    assert probes == []
    with pytest.raises(SandboxUnavailableError, match="no sandbox in this test"):
        coding_agent_preset(tmp_path)
    assert len(probes) == 1


def test_a_part_of_the_wrong_kind_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    # Each of these was a bare TypeError ("'int' object is not iterable"), or, for a string
    # of tools, an error about its first letter; a handler that is no function was accepted
    # and only failed when a command was asked about.
    with pytest.raises(ConfigurationError, match=r"minimal_preset tools= takes .* not str"):
        minimal_preset("greet")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"minimal_preset tools= takes .* not int"):
        minimal_preset(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"AgentPreset tools= takes .* not int"):
        AgentPreset(tools=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"workspace takes a folder's path, not int"):
        coding_agent_preset(123)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"ask_handler= takes a function .* not str"):
        coding_agent_preset(tmp_path, sandbox=False, ask_handler="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"research_agent_preset sources= takes .* int"):
        research_agent_preset(5)  # type: ignore[arg-type]


def test_coding_bash_keeps_only_the_end_of_an_endless_output(tmp_path: Path) -> None:
    # The whole output was read into memory before it was cut to its end: a command that
    # prints without end (`yes`, a runaway log) took the agent's memory until its timeout.
    import tracemalloc

    def approve(call: ToolCall, rule: PermissionRule) -> PermissionDecision:
        return PermissionDecision.ALLOW

    preset = coding_agent_preset(tmp_path, sandbox=False, ask_handler=approve)
    command = "echo START; head -c 48000000 /dev/zero | tr '\\0' x; echo; echo END"
    llm = MockLLMBackend(
        [ToolCall("bash", {"command": command}), ToolCall("done", {"summary": "x"})]
    )
    tracemalloc.start()
    try:
        trajectory = preset.run(llm, "print a lot")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    data = trajectory.steps[0].tool_result.data
    assert data["exit_code"] == 0
    output = data["output"]
    assert output.endswith("x\nEND\n") and "START" not in output
    assert output.startswith("[... ") and len(output) < 17_000
    assert peak < 8_000_000, f"{peak} bytes held for a bounded output"


def test_one_state_object_is_not_shared_by_a_second_run_silently() -> None:
    # A state object (not a factory) went to every run: the second one started with the
    # first one's steps in its state (and, for DefaultState, its step budget spent).
    preset = minimal_preset([])
    state = DefaultState(max_steps=10)
    preset.state = state
    preset.run(MockLLMBackend([ToolCall("done", {"summary": "x"})]), "t")
    assert len(state.steps) == 1
    with pytest.raises(ConfigurationError, match=r"holds 1 step .*state = DefaultState"):
        preset.run(MockLLMBackend([ToolCall("done", {"summary": "y"})]), "t")
    assert len(state.steps) == 1
    # Handing it over on purpose still works.
    preset.run(MockLLMBackend([ToolCall("done", {"summary": "z"})]), "t", state=state)
    assert len(state.steps) == 2


@pytest.mark.parametrize(
    "command",
    [
        "cp notes.md README.md",
        "install -m 644 build.txt README.md",
        "rsync -a --delete src/ dst/",
        "tee README.md",
        "patch -p1 -i fix.diff",
        "tar xf backup.tar",
        "tar --extract -f backup.tar",
        "sort -o README.md README.md",
        "awk -i inplace 1 README.md",
        "ln -sf notes.md README.md",
    ],
)
def test_coding_rules_ask_about_every_command_that_overwrites_files(command: str) -> None:
    # These overwrite (or, rsync --delete, delete) files in the workspace with no shell
    # syntax at all, and were run as plain commands without asking.
    from looplet._coding_rules import DESTRUCTIVE, command_concerns

    assert DESTRUCTIVE in command_concerns(command)


@pytest.mark.parametrize("command", ["tar tf backup.tar", "sort README.md", "ln notes.md n2.md"])
def test_coding_rules_let_the_reading_forms_of_those_commands_run(command: str) -> None:
    from looplet._coding_rules import command_concerns

    assert command_concerns(command) == ()
