"""The public surface: pinned names, the original README's imports, no eager provider import."""

from __future__ import annotations

import subprocess
import sys

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
    "Checkpoint",
    "CheckpointError",
    "CompactOutcome",
    "CompactService",
    "CompactionRecord",
    "ConfigurationError",
    "ContextBudget",
    "Continue",
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
    "any_outcome",
    "areplay_loop",
    "arun_sub_loop",
    "assert_trajectory",
    "async_composable_loop",
    "compact_chain",
    "composable_loop",
    "estimate_tokens",
    "eval_cli",
    "eval_discover",
    "eval_mark",
    "eval_run",
    "eval_run_batch",
    "explain_mismatch",
    "failed",
    "load_run",
    "load_skills",
    "replay_loop",
    "resume_loop_state",
    "run_sub_loop",
    "subagent_tool",
    "tool",
    "trajectory_matches",
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
