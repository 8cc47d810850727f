"""Every exception looplet raises, in one place.

The hierarchy::

    LoopletError                  base of everything raised by looplet
    ├── ConfigurationError        bad arguments at the edge (registration, loop start)
    │   ├── ToolRegistrationError a duplicate or malformed ToolSpec
    │   └── HookRegistrationError a hook with a misspelled slot or a wrong signature
    ├── LLMError                  the model provider failed (status, provider message)
    │   ├── ScriptExhaustedError  a scripted test backend ran out of replies
    │   └── ReplayExhaustedError  (looplet._replay) a replayed run asked for more calls
    ├── CassetteError             (looplet.cassettes) record/replay failed: not found,
    │                             corrupt, mismatch (with a diff), exhausted
    ├── ProvenanceError           (looplet.provenance) a run directory cannot be written
    ├── MCPError                  (looplet.mcp) an MCP server could not be started or
    │                             initialised
    ├── SandboxUnavailableError   (looplet.sandbox) no sandbox can start here (says how to
    │                             enable one)
    ├── TrajectoryLoadError       (looplet.evals) a saved run cannot be read
    ├── EvalImportError           (looplet.evals) an eval file does not import
    ├── DatasetError              (looplet.datasets) a file of eval cases is unusable (names
    │                             the file, the case and the field)
    ├── HookError                 a hook raised; names the hook object, slot and step
    ├── CheckpointError           a checkpoint cannot be written, read or resumed (names
    │                             the file and the fix)
    ├── MissingExtraError         an optional dependency is not installed
    ├── TrajectoryMismatch        (looplet.assertions; also an AssertionError) a run differs
    │                             from the expected steps
    └── ToolError                 the structured failure of one tool call (kind, retriable)

``ToolError`` is never raised out of the loop: a tool may raise it (or any exception, which is
classified into one), and the loop records it in the step and sends it back to the model.

Errors that end a run carry the partial :class:`~looplet.types.Trajectory` on
``.trajectory`` so nothing already done is lost.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from looplet.types import Trajectory

__all__ = [
    "AsyncHookError",
    "CheckpointError",
    "ConfigurationError",
    "ErrorKind",
    "HookError",
    "HookRegistrationError",
    "LLMError",
    "LoopletError",
    "MissingExtraError",
    "ScriptExhaustedError",
    "ToolError",
    "ToolRegistrationError",
]


class LoopletError(Exception):
    """Base class of every exception raised by looplet."""

    #: The partial trajectory of the run that this error ended, when there was one.
    trajectory: Trajectory | None = None


class ConfigurationError(LoopletError, ValueError):
    """An argument given to looplet is invalid; the message says which and how to fix it."""


class ToolRegistrationError(ConfigurationError):
    """A tool cannot be registered (duplicate name, malformed parameters)."""


class HookRegistrationError(ConfigurationError, TypeError):
    """A hook object cannot be used (misspelled slot, unknown parameter, no slot at all)."""


class AsyncHookError(HookRegistrationError):
    """An ``async def`` hook was given to a loop that cannot await it (``composable_loop``).

    Raised when the run starts, before any model call. Attributes: ``hook`` (the object)
    and ``slot`` (the method's name). Fix: run it with ``async_composable_loop``, or make the
    method a plain ``def``.
    """

    def __init__(self, hook: object, slot: str) -> None:
        self.hook = hook
        self.slot = slot
        name = f"{type(hook).__name__}.{slot}"
        super().__init__(
            f"hook {name} is async (it returns an awaitable), but composable_loop calls hooks "
            f"synchronously and could never await it. Run it with async_composable_loop, or "
            f"make {name} a plain `def`."
        )


class MissingExtraError(LoopletError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the {package!r} package, which is not installed. "
            f"Install it with: pip install 'looplet[{extra}]'"
        )
        self.package = package
        self.extra = extra


class LLMError(LoopletError):
    """The model provider failed to answer.

    Attributes:
        provider: ``"openai"``, ``"anthropic"``, ``"mock"``...
        status: the HTTP status code, or ``None`` for a connection error or time-out.
        provider_message: the provider's own error text, unaltered.
        retriable: whether retrying the same request may succeed (429, 5xx, network).
        attempts: how many requests were sent before giving up.
    """

    def __init__(
        self,
        provider: str,
        provider_message: str,
        *,
        status: int | None = None,
        retriable: bool = False,
        attempts: int = 1,
        kind: str = "",
    ) -> None:
        self.provider = provider
        self.provider_message = provider_message
        self.status = status
        self.retriable = retriable
        self.attempts = attempts
        self.kind = kind or ("http_error" if status is not None else "connection_error")
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else self.kind.replace("_", " ")
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.provider} request failed ({where}){tries}: {self.provider_message}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_llm_error,
            (
                self.provider,
                self.provider_message,
                self.status,
                self.retriable,
                self.attempts,
                self.kind,
            ),
        )


def _rebuild_llm_error(
    provider: str, message: str, status: int | None, retriable: bool, attempts: int, kind: str
) -> LLMError:
    return LLMError(
        provider, message, status=status, retriable=retriable, attempts=attempts, kind=kind
    )


class ScriptExhaustedError(LLMError):
    """A scripted backend (``MockLLMBackend``, the loopback server) has no reply left."""

    def __init__(self, provider: str, used: int) -> None:
        super().__init__(
            provider,
            f"the script's {used} replies are used up and the loop asked for another. "
            "Add replies to the script, end it with a 'done' call, or pass cycle=True "
            "to repeat it.",
            kind="script_exhausted",
        )
        self.used = used


class HookError(LoopletError):
    """A hook raised. The run ended; ``.trajectory`` holds what happened until then.

    Attributes:
        hook: the hook object that raised.
        slot: the hook method's name (``"pre_dispatch"``...).
        step: the step number during which it raised (0 before the first step).
    """

    def __init__(self, hook: object, slot: str, step: int, cause: BaseException) -> None:
        self.hook = hook
        self.slot = slot
        self.step = step
        name = type(hook).__name__
        # on_loop_end runs once the run has ended: its stop reason was set and is kept.
        outcome = (
            "The run had already ended, and its stop_reason is kept; the trajectory"
            if slot == "on_loop_end"
            else "The run was stopped with stop_reason 'hook_error'; the partial trajectory"
        )
        super().__init__(
            f"hook {name}.{slot}() raised at step {step}: {type(cause).__name__}: {cause}. "
            f"{outcome} is on this exception's .trajectory. Fix {name}.{slot}, or catch the "
            "error inside it."
        )


class CheckpointError(LoopletError):
    """A checkpoint cannot be written, read or resumed from.

    Raised for a corrupt, truncated or foreign checkpoint file, a checkpoint of a run that
    already ended, a run resumed with a different tool set, a bad run id, and a failed write
    (disk full, no permission), which stops the run. The message names the file and how to
    go on; the same facts are on the attributes.

    Attributes:
        path: the checkpoint file (or folder) concerned, or ``None``.
        run_id: the run the checkpoint belongs to, when known.
        step: the step number of the checkpoint, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Any = None,
        run_id: str | None = None,
        step: int | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.run_id = run_id
        self.step = step

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_checkpoint_error, (str(self), self.path, self.run_id, self.step))


def _rebuild_checkpoint_error(
    message: str, path: Any, run_id: str | None, step: int | None
) -> CheckpointError:
    return CheckpointError(message, path=path, run_id=run_id, step=step)


class ErrorKind(enum.StrEnum):
    """What kind of failure a :class:`ToolError` is; the model is told the kind."""

    PERMISSION_DENIED = "permission_denied"
    TIMEOUT = "timeout"
    VALIDATION = "validation"
    UNKNOWN_TOOL = "unknown_tool"
    EXECUTION = "execution"
    PARSE = "parse"
    CONTEXT_OVERFLOW = "context_overflow"
    RATE_LIMIT = "rate_limit"
    NETWORK = "network"
    CANCELLED = "cancelled"
    DONE_REJECTED = "done_rejected"


class ToolError(LoopletError):
    """The structured failure of one tool call.

    Tools may raise it to fail with a chosen kind and message; the registry turns any other
    exception into one (``ValueError`` -> VALIDATION, ``TimeoutError`` -> TIMEOUT, ...). It
    is stored on :attr:`ToolResult.error_detail <looplet.types.ToolResult>` and the model is
    told ``kind`` and ``message`` so it can correct itself.

    Args:
        kind: the category, an :class:`ErrorKind` (a plain string is converted).
        message: what went wrong and, where possible, how to call the tool correctly.
        retriable: whether the same call may succeed if repeated.
        context: extra JSON-able facts (the offending argument, the registered tools...).
    """

    def __init__(
        self,
        kind: ErrorKind | str,
        message: str,
        retriable: bool = False,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.kind = ErrorKind(kind)
        self.message = message
        self.retriable = retriable
        self.context: dict[str, Any] = dict(context or {})
        super().__init__(message)

    def __str__(self) -> str:
        return f"ToolError[{self.kind.value}]: {self.message}"

    def __repr__(self) -> str:
        return f"ToolError({self.kind.value!r}, {self.message!r}, retriable={self.retriable})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ToolError):
            return NotImplemented
        return (self.kind, self.message, self.retriable, self.context) == (
            other.kind,
            other.message,
            other.retriable,
            other.context,
        )

    __hash__ = Exception.__hash__

    def __reduce__(self) -> tuple[Any, ...]:
        return (ToolError, (self.kind, self.message, self.retriable, self.context))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: ``{"kind", "message", "retriable", "context"}``."""
        return {
            "kind": self.kind.value,
            "message": self.message,
            "retriable": self.retriable,
            "context": self.context,
        }
