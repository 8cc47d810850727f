"""The public surface: pinned names, the original README's imports, no eager provider import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import looplet

PUBLIC = {
    "ANY",
    "AgentState",
    "Allow",
    "AnthropicBackend",
    "AsyncAnthropicBackend",
    "AsyncLLMBackend",
    "AsyncLoopRun",
    "AsyncMCPToolAdapter",
    "AsyncMockLLMBackend",
    "AsyncOpenAIBackend",
    "BaseToolRegistry",
    "Block",
    "CancelToken",
    "Case",
    "Checkpoint",
    "CheckpointError",
    "CompactOutcome",
    "CompactService",
    "CompactionRecord",
    "ConfigurationError",
    "ContextBudget",
    "Continue",
    "DatasetError",
    "DefaultState",
    "Deny",
    "ErrorKind",
    "EvalContext",
    "EvalHook",
    "EvalResult",
    "ExpectedStep",
    "FileCheckpointStore",
    "HookDecision",
    "HookError",
    "InjectContext",
    "LLMBackend",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "LoopConfig",
    "LoopEvent",
    "LoopHook",
    "LoopRun",
    "LoopletError",
    "MCPError",
    "MCPToolAdapter",
    "Message",
    "MetricsCollector",
    "MetricsHook",
    "MockLLMBackend",
    "OpenAIBackend",
    "PermissionDecision",
    "PermissionEngine",
    "PermissionHook",
    "PermissionOutcome",
    "PermissionRule",
    "Predicate",
    "ProvenanceSink",
    "PruneToolResults",
    "Regex",
    "Skill",
    "Step",
    "Stop",
    "StopReason",
    "StreamChunk",
    "StreamingHook",
    "SubagentResult",
    "SummarizeCompact",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "ToolSpec",
    "Tracer",
    "TracingHook",
    "Trajectory",
    "TrajectoryMismatch",
    "TrajectoryRecorder",
    "TruncateCompact",
    "Usage",
    "__version__",
    "all_of",
    "any_outcome",
    "areplay_loop",
    "arun_sub_loop",
    "assert_trajectory",
    "async_composable_loop",
    "compact_chain",
    "composable_loop",
    "contains",
    "estimate_tokens",
    "eval_cli",
    "eval_discover",
    "eval_mark",
    "eval_run",
    "eval_run_batch",
    "exact_match",
    "explain_mismatch",
    "failed",
    "json_schema_valid",
    "load_dataset",
    "load_run",
    "load_skills",
    "normalize_text",
    "regex_match",
    "register_done_tool",
    "replay_loop",
    "resume_loop_state",
    "run_sub_loop",
    "subagent_tool",
    "tool",
    "tool_call_f1",
    "tools_from",
    "trajectory_edit_distance",
    "trajectory_matches",
    "weighted_mean",
    "within_budget",
}


def test_all_is_pinned_and_sorted() -> None:
    assert set(looplet.__all__) == PUBLIC
    assert looplet.__all__ == sorted(looplet.__all__)


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in looplet.__all__:
        obj = getattr(looplet, name)
        if name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"


def test_import_looplet_imports_no_provider_sdk() -> None:
    code = (
        "import sys, looplet\n"
        "bad = [m for m in ('openai', 'anthropic', 'httpx', 'vcr', 'pytest', 'http.server')"
        " if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version_is_a_string() -> None:
    assert isinstance(looplet.__version__, str) and looplet.__version__.count(".") == 2


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (none it started with)."""
    script = (
        "import sys; before = set(sys.modules)\n"
        f"{code}\n"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_looplet_loads_only_the_package() -> None:
    """``import looplet`` binds every public name lazily: no submodule, no dataclasses."""
    loaded = _modules_after("import looplet")
    assert {m for m in loaded if m.startswith("looplet")} == {"looplet"}
    assert "dataclasses" not in loaded and "json" not in loaded


def test_a_public_name_loads_its_own_modules_only() -> None:
    loaded = _modules_after("from looplet import composable_loop")
    assert "looplet.loop" in loaded
    assert not loaded & {"looplet.evals", "looplet.testing", "looplet.assertions", "asyncio"}


def test_import_looplet_testing_loads_no_server_and_no_asyncio() -> None:
    heavy = {"asyncio", "http.server", "socketserver", "looplet.testing._server"}
    assert not _modules_after("import looplet.testing") & heavy
    loaded = _modules_after("from looplet.testing import MockLLMBackend, AsyncMockLLMBackend")
    assert "looplet.testing.mock" in loaded
    assert not loaded & heavy


def test_the_eval_report_module_loads_without_the_loop() -> None:
    """The plugin's end-of-run summary imports ``looplet.evals.report`` alone."""
    loaded = _modules_after("import looplet.evals.report")
    assert {m for m in loaded if m.startswith("looplet")} == {
        "looplet",
        "looplet.evals",
        "looplet.evals.report",
        "looplet.evals.stats",
    }


def test_lazy_names_are_kept_after_first_use_and_listed_by_dir() -> None:
    import looplet.evals
    import looplet.testing

    for package in (looplet, looplet.testing, looplet.evals):
        assert set(package.__all__) <= set(dir(package))
        name = package.__all__[-1]
        assert getattr(package, name) is vars(package)[name]  # bound on first use
    with pytest.raises(AttributeError, match="no_such_name"):
        looplet.no_such_name  # noqa: B018
