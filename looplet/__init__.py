"""looplet: the tool-calling loop for LLM agents that you can step through.

``for step in composable_loop(llm=..., tools=..., task=...)`` yields one ``Step`` per tool
call; hooks layer behaviour on any step; the returned ``Trajectory`` is what evals assert on.

This package holds the names an agent and its evals start with; each feature has its own
module: backends (``looplet.backends``), test doubles (``looplet.testing``), compaction
(``looplet.compact``), checkpoints (``looplet.checkpoint``), provenance and replay
(``looplet.provenance``), observers (``looplet.observe``, ``looplet.tracing``), MCP
(``looplet.mcp``), skills (``looplet.skills``), sub-agents (``looplet.subagent``), scorers
(``looplet.scorers``), datasets (``looplet.datasets``) and grading saved runs
(``looplet.evals``). Names that earlier versions exported from here still import, with a
``DeprecationWarning`` naming their module.

Every public name is loaded on first use (PEP 562), so ``import looplet`` costs next to
nothing: ``from looplet import composable_loop`` loads the loop and its records, and only
them, and ``import looplet`` imports no third-party package (nor ``typing``). A tool that
imports one module (``looplet.evals.report``, ``looplet._redact``) loads no more than that
module needs.
"""

from __future__ import annotations

from looplet._exports import lazy_exports as _lazy_exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing for it
if TYPE_CHECKING:
    # What type checkers see: the table below, as imports (`X as X` marks a re-export).
    # tests/test_exports.py fails when this block and the table differ.
    from looplet._version import __version__ as __version__
    from looplet.assertions import ANY as ANY
    from looplet.assertions import Predicate as Predicate
    from looplet.assertions import Regex as Regex
    from looplet.assertions import any_outcome as any_outcome
    from looplet.assertions import assert_trajectory as assert_trajectory
    from looplet.assertions import failed as failed
    from looplet.cancel import CancelToken as CancelToken
    from looplet.config import LoopConfig as LoopConfig
    from looplet.errors import ConfigurationError as ConfigurationError
    from looplet.errors import ErrorKind as ErrorKind
    from looplet.errors import HookError as HookError
    from looplet.errors import LLMError as LLMError
    from looplet.errors import LoopletError as LoopletError
    from looplet.errors import ToolError as ToolError
    from looplet.evals import EvalResult as EvalResult
    from looplet.hooks import Allow as Allow
    from looplet.hooks import Block as Block
    from looplet.hooks import Continue as Continue
    from looplet.hooks import Deny as Deny
    from looplet.hooks import HookDecision as HookDecision
    from looplet.hooks import InjectContext as InjectContext
    from looplet.hooks import LoopHook as LoopHook
    from looplet.hooks import Stop as Stop
    from looplet.loop import async_composable_loop as async_composable_loop
    from looplet.loop import composable_loop as composable_loop
    from looplet.permissions import PermissionDecision as PermissionDecision
    from looplet.permissions import PermissionEngine as PermissionEngine
    from looplet.permissions import PermissionHook as PermissionHook
    from looplet.state import DefaultState as DefaultState
    from looplet.toolkit import register_done_tool as register_done_tool
    from looplet.toolkit import tools_from as tools_from
    from looplet.tools import BaseToolRegistry as BaseToolRegistry
    from looplet.tools import ToolContext as ToolContext
    from looplet.tools import ToolSpec as ToolSpec
    from looplet.tools import tool as tool
    from looplet.types import Step as Step
    from looplet.types import StopReason as StopReason
    from looplet.types import ToolCall as ToolCall
    from looplet.types import ToolResult as ToolResult
    from looplet.types import Trajectory as Trajectory

# The one table of the public names: name -> the module it loads from.
_EXPORTS = {
    "__version__": "looplet._version",
    # the loop and what it records
    "composable_loop": "looplet.loop",
    "async_composable_loop": "looplet.loop",
    "LoopConfig": "looplet.config",
    "Step": "looplet.types",
    "StopReason": "looplet.types",
    "ToolCall": "looplet.types",
    "ToolResult": "looplet.types",
    "Trajectory": "looplet.types",
    "DefaultState": "looplet.state",
    "CancelToken": "looplet.cancel",
    # tools
    "tool": "looplet.tools",
    "ToolSpec": "looplet.tools",
    "ToolContext": "looplet.tools",
    "BaseToolRegistry": "looplet.tools",
    "tools_from": "looplet.toolkit",
    "register_done_tool": "looplet.toolkit",
    # hooks and permissions
    "LoopHook": "looplet.hooks",
    "HookDecision": "looplet.hooks",
    "Allow": "looplet.hooks",
    "Block": "looplet.hooks",
    "Continue": "looplet.hooks",
    "Deny": "looplet.hooks",
    "InjectContext": "looplet.hooks",
    "Stop": "looplet.hooks",
    "PermissionEngine": "looplet.permissions",
    "PermissionHook": "looplet.permissions",
    "PermissionDecision": "looplet.permissions",
    # errors
    "LoopletError": "looplet.errors",
    "ConfigurationError": "looplet.errors",
    "LLMError": "looplet.errors",
    "HookError": "looplet.errors",
    "ToolError": "looplet.errors",
    "ErrorKind": "looplet.errors",
    # checking a run
    "assert_trajectory": "looplet.assertions",
    "ANY": "looplet.assertions",
    "Regex": "looplet.assertions",
    "Predicate": "looplet.assertions",
    "failed": "looplet.assertions",
    "any_outcome": "looplet.assertions",
    "EvalResult": "looplet.evals",
}

# Exported from here by the original looplet 0.1.7 or named so in an earlier README: still
# importable, with a DeprecationWarning naming the new import. Old name -> "module.Name".
_DEPRECATED = {
    **{
        name: f"looplet.backends.{name}"
        for name in (
            "LLMBackend",
            "OpenAIBackend",
            "AsyncOpenAIBackend",
            "AnthropicBackend",
            "AsyncAnthropicBackend",
        )
    },
    **{name: f"looplet.testing.{name}" for name in ("MockLLMBackend", "AsyncMockLLMBackend")},
    **{
        name: f"looplet.compact.{name}"
        for name in (
            "CompactOutcome",
            "CompactService",
            "ContextBudget",
            "SummarizeCompact",
            "TruncateCompact",
            "compact_chain",
        )
    },
    "PruneToolResults": "looplet.compact.PruneCompact",
    "PermissionRule": "looplet.permissions.PermissionRule",
    "FileCheckpointStore": "looplet.checkpoint.FileCheckpointStore",
    "resume_loop_state": "looplet.checkpoint.resume_loop_state",
    **{
        name: f"looplet.provenance.{name}"
        for name in ("ProvenanceSink", "TrajectoryRecorder", "replay_loop")
    },
    **{
        name: f"looplet.observe.{name}"
        for name in ("MetricsCollector", "MetricsHook", "StreamingHook")
    },
    **{name: f"looplet.tracing.{name}" for name in ("Tracer", "TracingHook")},
    **{
        name: f"looplet.evals.{name}"
        for name in (
            "EvalContext",
            "EvalHook",
            "eval_discover",
            "eval_mark",
            "eval_run",
            "eval_run_batch",
        )
    },
    "eval_cli": "looplet.cli.eval_cli",
    "Message": "looplet.messages.Message",
    "MCPToolAdapter": "looplet.mcp.MCPToolAdapter",
    "Skill": "looplet.skills.Skill",
    **{name: f"looplet.subagent.{name}" for name in ("run_sub_loop", "subagent_tool")},
    **{
        name: f"looplet.scorers.{name}"
        for name in (
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
        )
    },
    **{name: f"looplet.datasets.{name}" for name in ("Case", "DatasetError", "load_dataset")},
    # The original's names that came back in this version, each in its feature's module.
    "preview_prompt": "looplet.preview.preview_prompt",
    "StaticMemorySource": "looplet.memory.StaticMemorySource",
    "CallableMemorySource": "looplet.memory.CallableMemorySource",
    "CachePolicy": "looplet.cache.CachePolicy",
    "ApprovalHook": "looplet.approval.ApprovalHook",
    "SessionLog": "looplet.session.SessionLog",
    "Conversation": "looplet.conversation.Conversation",
    **{
        name: f"looplet.presets.{name}"
        for name in (
            "AgentPreset",
            "coding_agent_preset",
            "minimal_preset",
            "research_agent_preset",
        )
    },
}

# Exported from here once but never documented so: each now imports only from its module.
_MOVED = {
    **dict.fromkeys(
        ("AsyncLLMBackend", "LLMRequest", "LLMResponse", "StreamChunk"), "looplet.backends.base"
    ),
    **dict.fromkeys(("AsyncLoopRun", "LoopRun"), "looplet.loop"),
    "AgentState": "looplet.state",
    "Usage": "looplet.types",
    "LoopEvent": "looplet.hooks",
    "CheckpointError": "looplet.errors",
    "PermissionOutcome": "looplet.permissions",
    **dict.fromkeys(
        ("ExpectedStep", "TrajectoryMismatch", "explain_mismatch", "trajectory_matches"),
        "looplet.assertions",
    ),
    **dict.fromkeys(("CompactionRecord", "estimate_tokens"), "looplet.compact"),
    "Checkpoint": "looplet.checkpoint",
    **dict.fromkeys(("areplay_loop", "load_run"), "looplet.provenance"),
    **dict.fromkeys(("AsyncMCPToolAdapter", "MCPError"), "looplet.mcp"),
    "load_skills": "looplet.skills",
    **dict.fromkeys(("SubagentResult", "arun_sub_loop"), "looplet.subagent"),
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(
    __name__, globals(), _EXPORTS, deprecated=_DEPRECATED, moved=_MOVED
)
