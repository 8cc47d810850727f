"""What a tool is: :class:`ToolSpec`, the ``@tool`` decorator, and :class:`ToolContext`.

A :class:`ToolSpec` pairs a name, a description and a parameters schema with the function
that does the work; its JSON Schema is normalised once, at construction. The registry that
holds specs and dispatches calls is :class:`looplet.tools.BaseToolRegistry`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from looplet.cancel import CancelToken
from looplet.errors import ToolRegistrationError
from looplet.schema import (
    compile_validator,
    describe_parameters,
    is_json_schema,
    normalize_parameters,
)

if TYPE_CHECKING:
    from looplet.approval import Approval

__all__ = ["ToolContext", "ToolSpec", "tool"]

# The name rule shared by the OpenAI and Anthropic tool APIs: 1-64 of [a-zA-Z0-9_-].
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(slots=True)
class ToolContext:
    """What a tool may know about the run that called it.

    A tool receives it when its function has a parameter named ``ctx``; the loop builds one per
    run and sets ``step`` before each call. When :meth:`BaseToolRegistry.dispatch` is called
    without one, a default is made.

    Attributes:
        cwd: the working directory for relative paths (the process's by default).
        workspace_root: the directory the tool should stay inside (``cwd`` by default).
        cancel_token: the run's token; poll it to stop long work early.
        session_id: an id for the run, for logs and caches.
        step: the number of the step this call belongs to.
        metadata: free-form values the caller wants tools to see.
        on_progress: called as ``on_progress(message, data)`` by :meth:`report_progress`.
        run: the running loop's state, set by the loop (``None`` outside a loop).
        tool_timeout_s: the time limit, in seconds, of a call whose tool sets no
            ``timeout_s`` of its own (the loop sets it from ``LoopConfig.tool_timeout_s``;
            ``None``: no limit).
        approval: the :class:`~looplet.approval.Approval` this call was granted, when it
            runs again after asking (``None`` otherwise); :meth:`approve` reads it.
    """

    cwd: str = field(default_factory=os.getcwd)
    workspace_root: str = ""
    cancel_token: CancelToken | None = None
    session_id: str = ""
    step: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    on_progress: Callable[[str, dict[str, Any]], None] | None = None
    #: The running loop's state (``looplet.run_state.RunState``), set by the loop; sub-agents
    #: use it to share the budget and nest their trajectory. ``None`` outside a loop.
    run: Any = None
    tool_timeout_s: float | None = None
    approval: Approval | None = None

    def __post_init__(self) -> None:
        if not self.workspace_root:
            self.workspace_root = self.cwd

    def report_progress(
        self, message: str, data: Mapping[str, Any] | None = None, **more: Any
    ) -> None:
        """Tell whoever runs the tool how far it got; does nothing when nobody listens.

        The data may be given as a dict (``report_progress("indexing", {"done": 5})``, as
        in the original looplet), as keywords (``report_progress("indexing", done=5)``),
        or both.
        """
        if self.on_progress is not None:
            self.on_progress(message, {**data, **more} if data else more)

    def approve(self, prompt: str, options: Sequence[str] = ()) -> Approval:
        """Ask for approval of ``prompt`` before doing it; returns the granted
        :class:`~looplet.approval.Approval` (``.option``: the option chosen).

        Until it is granted, this raises :class:`~looplet.approval.NeedsApproval`: the
        run's :class:`~looplet.approval.ApprovalHook` asks its handler and, if approved,
        runs the call again, when this returns the approval. A denial is the step's
        ``permission_denied`` result. So call it before any side effect: the code before
        it runs once more. Without an ``ApprovalHook`` the call fails closed.
        """
        from looplet.approval import ask_in_tool  # loaded by tools that ask

        return ask_in_tool(self, prompt, options)


@dataclass(frozen=True, eq=False)
class ToolSpec:
    """A tool the model may call.

    Example::

        ToolSpec(name="greet", description="Greet someone.", parameters={"name": "str"},
                 execute=lambda *, name: {"greeting": f"Hello, {name}!"})

    ``parameters`` is kept as given; its normalised JSON Schema (see
    :func:`looplet.schema.normalize_parameters`) is computed once, at construction, and kept
    on :attr:`schema`, along with whether ``execute`` takes ``ctx`` and whether it is async.
    Calling the spec calls ``execute``, so a function decorated with :func:`tool` still works.

    Args:
        name: 1-64 letters, digits, ``_`` or ``-`` (the providers' rule).
        description: what the tool does, as the model will read it.
        parameters: the simple form, whose values are type names or descriptions
            (``{"name": "str", "k": "int?", "path": "file path"}``: a description means a
            string parameter described by it), a JSON Schema object, or ``None`` for none.
        execute: the function run with the call's arguments as keywords (sync or async).
        concurrent_safe: whether consecutive calls of this tool may run at the same time.
        free: whether a call of this tool does not count against the step budget.
        timeout_s: how many seconds a call may run before the loop stops waiting for it and
            records a ``timeout`` error (``None``: ``LoopConfig.tool_timeout_s``, which is no
            limit unless set). An async tool that overruns is cancelled; a sync tool with a
            limit runs in a worker thread, which Python cannot stop: it runs on in the
            background and what it returns is dropped.

    Raises:
        ToolRegistrationError: a bad name, a non-callable ``execute``, malformed parameters,
            or a ``timeout_s`` that is not a positive number of seconds.
    """

    name: str
    description: str
    parameters: Mapping[str, Any] | None
    execute: Callable[..., Any]
    concurrent_safe: bool = False
    free: bool = False
    timeout_s: float | None = None
    #: The normalised parameters JSON Schema.
    schema: dict[str, Any] = field(init=False, repr=False)
    #: Whether ``execute`` has a parameter named ``ctx`` (the registry then passes one).
    takes_ctx: bool = field(init=False, repr=False)
    #: Whether ``execute`` is a coroutine function.
    is_async: bool = field(init=False, repr=False)
    #: Checks a call's arguments against ``schema``: the problems, or an empty list.
    validate: Callable[[Mapping[str, Any]], list[str]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.description, str):
            raise ToolRegistrationError(
                f"tool {self.name!r}: description must be a string, got "
                f"{type(self.description).__name__}."
            )
        if isinstance(self.execute, ToolSpec):
            object.__setattr__(self, "execute", self.execute.execute)
        if not callable(self.execute):
            raise ToolRegistrationError(
                f"tool {self.name!r}: execute must be a callable that takes the arguments as "
                f"keywords, got {type(self.execute).__name__} {self.execute!r}."
            )
        if self.timeout_s is not None:
            _check_timeout(self.name, self.timeout_s)
        object.__setattr__(
            self, "schema", normalize_parameters(self.parameters, tool_name=self.name)
        )
        object.__setattr__(self, "takes_ctx", _takes_ctx(self.execute))
        object.__setattr__(self, "is_async", _is_async(self.execute))
        object.__setattr__(self, "validate", compile_validator(self.schema))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call ``execute`` directly (no validation, no error classification)."""
        return self.execute(*args, **kwargs)

    @property
    def is_json_schema(self) -> bool:
        """Whether ``parameters`` was given as a JSON Schema object (not the simple form)."""
        return self.parameters is not None and is_json_schema(self.parameters)

    def parameter_names(self) -> list[str]:
        """The parameter names, in declaration order."""
        return list(self.schema["properties"])

    def required_parameters(self) -> list[str]:
        """The names of the parameters the model must pass."""
        return list(self.schema["required"])

    def to_json_schema(self) -> dict[str, Any]:
        """The normalised parameters JSON Schema (shared: do not modify it)."""
        return self.schema

    def to_api_schema(self) -> dict[str, Any]:
        """The tool as offered to a provider: ``{"name", "description", "parameters"}``."""
        return {"name": self.name, "description": self.description, "parameters": self.schema}

    def spec_text(self) -> str:
        """One line for prompts and messages: ``greet(name: str) - Greet someone.``."""
        head = f"{self.name}({describe_parameters(self.schema)})"
        return f"{head} - {self.description}" if self.description else head


def _check_name(name: object) -> None:
    if isinstance(name, str) and 0 < len(name) <= 64 and _NAME_CHARS.issuperset(name):
        return
    if not isinstance(name, str) or not name:
        raise ToolRegistrationError(
            f"a tool name must be a non-empty string, got {name!r}. Pass name='my_tool'."
        )
    fixed = "".join(c if c in _NAME_CHARS else "_" for c in name)[:64]
    raise ToolRegistrationError(
        f"invalid tool name {name!r}: providers accept 1-64 characters from letters, digits, "
        f"'_' and '-'. Rename it, e.g. {fixed!r}."
    )


def _check_timeout(name: str, value: object) -> None:
    from looplet._tool_timeout import timeout_problem  # loaded only for tools with a limit

    if (problem := timeout_problem(value)) is not None:
        raise ToolRegistrationError(
            f"tool {name!r}: timeout_s {problem}. Pass e.g. timeout_s=30.0."
        )


def _takes_ctx(fn: Callable[..., Any]) -> bool:
    try:
        return "ctx" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # A callable object with an ``async def __call__``.
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(type(fn).__call__)


# --------------------------------------------------------------------------- @tool


@overload
def tool(fn: Callable[..., Any], /) -> ToolSpec: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    concurrent_safe: bool = False,
    free: bool = False,
    timeout_s: float | None = None,
) -> Callable[[Callable[..., Any]], ToolSpec]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    concurrent_safe: bool = False,
    free: bool = False,
    timeout_s: float | None = None,
) -> ToolSpec | Callable[[Callable[..., Any]], ToolSpec]:
    """Turn a function (sync or async) into a :class:`ToolSpec`.

    The name defaults to the function's, the description to the first paragraph of its
    docstring, and the parameters schema is built from its type hints, defaults and ``Args:``
    section (:func:`looplet.schema.schema_from_signature`) unless ``parameters`` is given;
    ``concurrent_safe``, ``free`` and ``timeout_s`` are the :class:`ToolSpec` fields. The
    decorated name is bound to the ToolSpec, which is still callable like the function.

    Example::

        @tool
        def greet(name: str) -> dict[str, str]:
            '''Greet someone.'''
            return {"greeting": f"Hello, {name}!"}

        registry.register(greet)

    Raises:
        ToolRegistrationError: no description (no docstring and no ``description=``), an
            invalid name, or a type hint with no JSON Schema equivalent.
    """

    def build(func: Callable[..., Any]) -> ToolSpec:
        tool_name = name if name else str(getattr(func, "__name__", ""))
        text = description if description is not None else _docstring_summary(func)
        if not text:
            raise ToolRegistrationError(
                f"tool {tool_name!r} has no description: the model needs one to decide when to "
                f"call it. Add a docstring to {getattr(func, '__qualname__', func)!r} or pass "
                "@tool(description=...)."
            )
        from looplet.signature import schema_from_signature  # @tool only: typing machinery

        schema = parameters if parameters is not None else schema_from_signature(func)
        return ToolSpec(
            name=tool_name,
            description=text,
            parameters=schema,
            execute=func,
            concurrent_safe=concurrent_safe,
            free=free,
            timeout_s=timeout_s,
        )

    return build if fn is None else build(fn)


def _docstring_summary(fn: Callable[..., Any]) -> str:
    """The docstring's first paragraph, on one line."""
    doc = inspect.getdoc(fn) or ""
    paragraph = doc.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines()).strip()
