"""looplet: the tool-calling loop for LLM agents that you can step through.

``for step in composable_loop(llm=..., tools=..., task=...)`` yields one ``Step`` per tool
call; hooks layer behaviour on any step; the returned ``Trajectory`` is what evals assert on.

Every public name is loaded on first use (PEP 562), so ``import looplet`` costs next to
nothing: ``from looplet import composable_loop`` loads the loop and its records, and only
them; provider backends (``OpenAIBackend``) and test helpers (``MockLLMBackend``) load when
asked for, and ``import looplet`` imports no third-party package. A tool that imports one
module (``looplet.evals.report``, ``looplet._redact``) loads no more than that module needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from looplet.assertions import (
        ANY,
        ExpectedStep,
        Predicate,
        Regex,
        TrajectoryMismatch,
        any_outcome,
        assert_trajectory,
        explain_mismatch,
        failed,
        trajectory_matches,
    )
    from looplet.backends.anthropic import AnthropicBackend, AsyncAnthropicBackend
    from looplet.backends.base import (
        AsyncLLMBackend,
        LLMBackend,
        LLMRequest,
        LLMResponse,
        StreamChunk,
    )
    from looplet.backends.openai import AsyncOpenAIBackend, OpenAIBackend
    from looplet.cancel import CancelToken
    from looplet.checkpoint import Checkpoint, FileCheckpointStore, resume_loop_state
    from looplet.cli import eval_cli
    from looplet.compact import (
        CompactionRecord,
        CompactOutcome,
        CompactService,
        ContextBudget,
        PruneToolResults,
        SummarizeCompact,
        TruncateCompact,
        compact_chain,
        estimate_tokens,
    )
    from looplet.config import LoopConfig
    from looplet.datasets import Case, DatasetError, load_dataset
    from looplet.errors import (
        CheckpointError,
        ConfigurationError,
        ErrorKind,
        HookError,
        LLMError,
        LoopletError,
        ToolError,
    )
    from looplet.evals import (
        EvalContext,
        EvalHook,
        EvalResult,
        eval_discover,
        eval_mark,
        eval_run,
        eval_run_batch,
    )
    from looplet.hooks import (
        Allow,
        Block,
        Continue,
        Deny,
        HookDecision,
        InjectContext,
        LoopEvent,
        LoopHook,
        Stop,
    )
    from looplet.loop import AsyncLoopRun, LoopRun, async_composable_loop, composable_loop
    from looplet.mcp import AsyncMCPToolAdapter, MCPError, MCPToolAdapter
    from looplet.messages import Message
    from looplet.observe import MetricsCollector, MetricsHook, StreamingHook
    from looplet.permissions import (
        PermissionDecision,
        PermissionEngine,
        PermissionHook,
        PermissionOutcome,
        PermissionRule,
    )
    from looplet.provenance import (
        ProvenanceSink,
        TrajectoryRecorder,
        areplay_loop,
        load_run,
        replay_loop,
    )
    from looplet.scorers import (
        all_of,
        contains,
        exact_match,
        json_schema_valid,
        normalize_text,
        regex_match,
        tool_call_f1,
        trajectory_edit_distance,
        weighted_mean,
        within_budget,
    )
    from looplet.skills import Skill, load_skills
    from looplet.state import AgentState, DefaultState
    from looplet.subagent import SubagentResult, arun_sub_loop, run_sub_loop, subagent_tool
    from looplet.testing.mock import AsyncMockLLMBackend, MockLLMBackend
    from looplet.toolkit import register_done_tool, tools_from
    from looplet.tools import BaseToolRegistry, ToolContext, ToolSpec, tool
    from looplet.tracing import Tracer, TracingHook
    from looplet.types import Step, StopReason, ToolCall, ToolResult, Trajectory, Usage


__all__ = [
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
]

# Every name is loaded on first access: `import looplet` pulls in no provider SDK, no server
# code, and nothing a caller does not use (see bench/import_time.py).
_LAZY = {
    **dict.fromkeys(
        ("AsyncLLMBackend", "LLMBackend", "LLMRequest", "LLMResponse", "StreamChunk"),
        "looplet.backends.base",
    ),
    "CancelToken": "looplet.cancel",
    "LoopConfig": "looplet.config",
    **dict.fromkeys(("Case", "DatasetError", "load_dataset"), "looplet.datasets"),
    **dict.fromkeys(
        (
            "CheckpointError",
            "ConfigurationError",
            "ErrorKind",
            "HookError",
            "LLMError",
            "LoopletError",
            "ToolError",
        ),
        "looplet.errors",
    ),
    **dict.fromkeys(
        (
            "Allow",
            "Block",
            "Continue",
            "Deny",
            "HookDecision",
            "InjectContext",
            "LoopEvent",
            "LoopHook",
            "Stop",
        ),
        "looplet.hooks",
    ),
    **dict.fromkeys(
        ("AsyncLoopRun", "LoopRun", "async_composable_loop", "composable_loop"), "looplet.loop"
    ),
    "Message": "looplet.messages",
    **dict.fromkeys(("AgentState", "DefaultState"), "looplet.state"),
    **dict.fromkeys(("BaseToolRegistry", "ToolContext", "ToolSpec", "tool"), "looplet.tools"),
    **dict.fromkeys(("register_done_tool", "tools_from"), "looplet.toolkit"),
    **dict.fromkeys(
        ("Step", "StopReason", "ToolCall", "ToolResult", "Trajectory", "Usage"), "looplet.types"
    ),
    **dict.fromkeys(
        (
            "ANY",
            "ExpectedStep",
            "Predicate",
            "Regex",
            "TrajectoryMismatch",
            "any_outcome",
            "assert_trajectory",
            "explain_mismatch",
            "failed",
            "trajectory_matches",
        ),
        "looplet.assertions",
    ),
    **dict.fromkeys(
        (
            "EvalContext",
            "EvalHook",
            "EvalResult",
            "eval_discover",
            "eval_mark",
            "eval_run",
            "eval_run_batch",
        ),
        "looplet.evals",
    ),
    "eval_cli": "looplet.cli",
    **dict.fromkeys(("AsyncMCPToolAdapter", "MCPError", "MCPToolAdapter"), "looplet.mcp"),
    **dict.fromkeys(("Skill", "load_skills"), "looplet.skills"),
    **dict.fromkeys(
        (
            "all_of",
            "contains",
            "exact_match",
            "json_schema_valid",
            "normalize_text",
            "regex_match",
            "tool_call_f1",
            "trajectory_edit_distance",
            "weighted_mean",
            "within_budget",
        ),
        "looplet.scorers",
    ),
    **dict.fromkeys(
        ("SubagentResult", "arun_sub_loop", "run_sub_loop", "subagent_tool"), "looplet.subagent"
    ),
    **dict.fromkeys(("MetricsCollector", "MetricsHook", "StreamingHook"), "looplet.observe"),
    **dict.fromkeys(("Tracer", "TracingHook"), "looplet.tracing"),
    **dict.fromkeys(
        ("Checkpoint", "FileCheckpointStore", "resume_loop_state"), "looplet.checkpoint"
    ),
    **dict.fromkeys(
        (
            "CompactOutcome",
            "CompactService",
            "CompactionRecord",
            "ContextBudget",
            "PruneToolResults",
            "SummarizeCompact",
            "TruncateCompact",
            "compact_chain",
            "estimate_tokens",
        ),
        "looplet.compact",
    ),
    **dict.fromkeys(
        ("ProvenanceSink", "TrajectoryRecorder", "load_run", "replay_loop", "areplay_loop"),
        "looplet.provenance",
    ),
    **dict.fromkeys(
        (
            "PermissionDecision",
            "PermissionEngine",
            "PermissionHook",
            "PermissionOutcome",
            "PermissionRule",
        ),
        "looplet.permissions",
    ),
    "OpenAIBackend": "looplet.backends.openai",
    "AnthropicBackend": "looplet.backends.anthropic",
    "AsyncAnthropicBackend": "looplet.backends.anthropic",
    "AsyncOpenAIBackend": "looplet.backends.openai",
    "MockLLMBackend": "looplet.testing.mock",
    "AsyncMockLLMBackend": "looplet.testing.mock",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from looplet._version import __version__ as value
    else:
        module = _LAZY.get(name)
        if module is None:
            from looplet._moved import missing  # an original 0.1.7 name: say where it went

            missing("looplet", name)
        import importlib

        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute read
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
