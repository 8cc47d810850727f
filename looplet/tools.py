"""Tools: where they live (BaseToolRegistry) and how a call runs; ToolSpec is re-exported.

A :class:`~looplet.toolspec.ToolSpec` (defined in :mod:`looplet.toolspec`) pairs a name, a
description, a parameters schema and a function. A :class:`BaseToolRegistry` holds the specs,
offers their schemas to the model, and dispatches each :class:`~looplet.types.ToolCall`: it
checks the call (malformed JSON, unknown tool, cancellation, arguments against the schema)
before running the tool, and turns every failure into a :class:`~looplet.errors.ToolError`
inside a :class:`~looplet.types.ToolResult` instead of raising. Sync and async dispatch share
the same checks and classification; they differ only in how the tool is called. Time limits,
and cancellation while a tool runs, are :mod:`looplet._tool_timeout`'s. JSON Schema handling
lives in :mod:`looplet.schema`; permissions, hooks and the loop live elsewhere.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from looplet.cancel import CancelToken
from looplet.errors import ConfigurationError, ErrorKind, ToolError, ToolRegistrationError
from looplet.schema import describe_parameters
from looplet.toolspec import ToolContext, ToolSpec, tool
from looplet.types import ToolCall, ToolResult

__all__ = [
    "BaseToolRegistry",
    "ErrorKind",
    "PreparedCall",
    "ToolContext",
    "ToolError",
    "ToolSpec",
    "classify_exception",
    "tool",
]

_RAW_ARGS_CHARS = 200


# --------------------------------------------------------------------------- classification


def classify_exception(exc: BaseException) -> ToolError:
    """The :class:`ToolError` a tool's exception becomes.

    A ``ToolError`` is returned as is. Otherwise: ``asyncio.CancelledError`` -> CANCELLED,
    ``TimeoutError`` -> TIMEOUT (retriable), ``PermissionError`` -> PERMISSION_DENIED,
    ``ConnectionError`` -> NETWORK (retriable), ``json.JSONDecodeError`` -> PARSE, a class
    whose name contains ``RateLimit`` -> RATE_LIMIT (retriable), ``ValueError`` /
    ``TypeError`` / ``KeyError`` -> VALIDATION, anything else -> EXECUTION. The message is
    ``"<ExceptionType>: <text>"``.
    """
    if isinstance(exc, ToolError):
        return exc
    kind, retriable = _kind_of(exc)
    name = type(exc).__name__
    text = str(exc)
    message = f"{name}: {text}" if text else name
    return ToolError(kind, message, retriable=retriable, context={"exception": name})


def _kind_of(exc: BaseException) -> tuple[ErrorKind, bool]:
    if _is_cancelled_error(exc):
        return ErrorKind.CANCELLED, False
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT, True
    if isinstance(exc, PermissionError):
        return ErrorKind.PERMISSION_DENIED, False
    if isinstance(exc, ConnectionError):
        return ErrorKind.NETWORK, True
    # Before ValueError: JSONDecodeError is one.
    json = sys.modules.get("json")  # lazily imported: if it is not loaded, it raised nothing
    if json is not None and isinstance(exc, json.JSONDecodeError):
        return ErrorKind.PARSE, False
    # Provider SDKs (openai, anthropic, httpx wrappers) name theirs RateLimitError.
    if any("RateLimit" in cls.__name__ for cls in type(exc).__mro__):
        return ErrorKind.RATE_LIMIT, True
    if isinstance(exc, ValueError | TypeError | KeyError):
        return ErrorKind.VALIDATION, False
    return ErrorKind.EXECUTION, False


# --------------------------------------------------------------------------- the registry


class PreparedCall:
    """A call that passed every check, ready to run: its tool and the keywords to run it with.

    :meth:`BaseToolRegistry.prepare` makes one; :meth:`BaseToolRegistry.run_prepared` (or
    ``arun_prepared``) runs it. The loop checks each call once this way, lets hooks and
    permissions look at it, and then runs it without checking it again. A call prepared
    with a context whose cancel token is cancelled by the time it would run is not run.

    Attributes:
        call: the call as checked.
        spec: the tool that runs it.
        kwargs: the keyword arguments (without ``__`` bookkeeping; with ``ctx`` if the tool
            takes one).
        ctx: the context it was prepared with, or ``None``.
        cancel_token: ``ctx.cancel_token``, checked again right before the tool runs; while
            the tool runs, cancelling it stops the wait.
        timeout_s: the call's time limit in seconds: ``spec.timeout_s``, else
            ``ctx.tool_timeout_s`` (the loop's default), else ``None`` (no limit).
    """

    __slots__ = ("call", "cancel_token", "ctx", "kwargs", "spec", "timeout_s")

    def __init__(
        self,
        call: ToolCall,
        spec: ToolSpec,
        kwargs: Mapping[str, Any],
        ctx: ToolContext | None = None,
    ) -> None:
        self.call = call
        self.spec = spec
        self.kwargs = kwargs
        self.ctx = ctx
        if ctx is None:
            self.cancel_token = None
            self.timeout_s = spec.timeout_s
        else:
            self.cancel_token = ctx.cancel_token
            limit = spec.timeout_s
            self.timeout_s = limit if limit is not None else ctx.tool_timeout_s

    def __repr__(self) -> str:
        return f"PreparedCall({self.call.tool}({self.call.args_summary()}))"


class BaseToolRegistry:
    """The tools of one agent, by name, in registration order.

    Example::

        tools = BaseToolRegistry()
        tools.register(ToolSpec(name="greet", description="Greet someone.",
                                parameters={"name": "str"},
                                execute=lambda *, name: {"greeting": f"Hello, {name}!"}))
        result = tools.dispatch(ToolCall("greet", {"name": "Alice"}))

    Dispatch never raises for a tool's problem: a malformed call, an unknown tool, bad
    arguments or an exception in the tool all come back as a failed
    :class:`~looplet.types.ToolResult` carrying a :class:`~looplet.errors.ToolError`.

    Args:
        tools: specs (or ``@tool`` functions) to register right away.
    """

    def __init__(self, tools: Iterable[ToolSpec | Callable[..., Any]] = ()) -> None:
        self._specs: dict[str, ToolSpec] = {}
        self._schemas: tuple[dict[str, Any], ...] | None = None
        self.register_all(tools)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Keep a subclass's own ``dispatch``/``adispatch`` on the loop's path.

        The loop runs prepared calls (:meth:`run_prepared`), not :meth:`dispatch`. Code
        written for the original registry customises ``dispatch`` (logging, sandboxing...),
        so a subclass that overrides it, and not ``run_prepared``, has its calls run through
        its ``dispatch`` (the arguments are then checked twice); likewise ``adispatch``.
        ``dispatch`` itself runs the base ``run_prepared``, so ``super().dispatch`` works.
        """
        super().__init_subclass__(**kwargs)
        if "dispatch" in cls.__dict__ and "run_prepared" not in cls.__dict__:
            cls.run_prepared = _run_through_dispatch  # type: ignore[method-assign]
        if "adispatch" in cls.__dict__ and "arun_prepared" not in cls.__dict__:
            cls.arun_prepared = _arun_through_adispatch  # type: ignore[method-assign]

    # ------------------------------------------------------------------ registration

    def register(self, spec: ToolSpec | Callable[..., Any]) -> ToolSpec:
        """Add a tool; a plain function is first turned into one with :func:`tool`.

        Returns:
            The registered spec.

        Raises:
            ToolRegistrationError: the name is already registered, or ``spec`` is neither a
                ToolSpec nor a function.
        """
        if not isinstance(spec, ToolSpec):
            if not callable(spec):
                raise ToolRegistrationError(
                    f"register() expects a ToolSpec or a function decorated with @tool, got "
                    f"{type(spec).__name__} {spec!r}."
                )
            spec = tool(spec)
        if spec.name in self._specs:
            raise ToolRegistrationError(
                f"a tool named {spec.name!r} is already registered. Tool names must be unique: "
                "rename one of them, or build a new registry without the old one."
            )
        self._specs[spec.name] = spec
        self._schemas = None
        return spec

    def register_all(self, specs: Iterable[ToolSpec | Callable[..., Any]]) -> None:
        """Register each of ``specs``, in order."""
        for spec in specs:
            self.register(spec)

    def get(self, name: str) -> ToolSpec | None:
        """The spec registered under ``name``, or ``None``."""
        return self._specs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(list(self._specs.values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._specs)})"

    @property
    def tool_names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._specs)

    def tool_schemas(self) -> Sequence[dict[str, Any]]:
        """Every tool as ``{"name", "description", "parameters"}``, for the model request.

        Built once and reused until the next registration (it is asked for on every model
        call): the sequence and its dicts are shared, so treat them as read-only.
        """
        if self._schemas is None:
            self._schemas = tuple(spec.to_api_schema() for spec in self._specs.values())
        return self._schemas

    def tool_catalog_text(self) -> str:
        """One :meth:`ToolSpec.spec_text` line per tool, for prompts."""
        return "\n".join(spec.spec_text() for spec in self._specs.values())

    def is_free(self, name: str) -> bool:
        """Whether the tool does not count against the step budget (False if unknown)."""
        spec = self._specs.get(name)
        return spec is not None and spec.free

    def is_concurrent_safe(self, name: str) -> bool:
        """Whether calls of the tool may run at the same time (False if unknown)."""
        spec = self._specs.get(name)
        return spec is not None and spec.concurrent_safe

    def next_group(self, calls: Sequence[ToolCall], start: int) -> Sequence[ToolCall]:
        """The calls from ``calls[start]`` on that run at the same time (at least that one).

        The one rule, for the loop and :meth:`dispatch_batch` alike: calls of tools with
        ``concurrent_safe=True`` that follow one another form a group and run at the same
        time; a call of any other tool (or an unknown one) is a group of its own. Groups run
        in the turn's order, and results keep it. (A call of a group that fails its checks,
        bad arguments for example, is not run; the others of its group still are.)
        """
        end, specs = start, self._specs
        while end < len(calls) and (spec := specs.get(calls[end].tool)) and spec.concurrent_safe:
            end += 1
        return calls[start : max(end, start + 1)]

    # ------------------------------------------------------------------ dispatch

    def dispatch(
        self, call: ToolCall, *, ctx: ToolContext | None = None, validate: bool = True
    ) -> ToolResult:
        """Check one call, run it, and return its result; never raises for the tool's problems.

        The same as :meth:`prepare` then :meth:`run_prepared`. An async tool is run with
        ``asyncio.run``; from inside a running event loop that is impossible, and the result
        is an EXECUTION error saying to use :meth:`adispatch`.

        Args:
            call: the call to run.
            ctx: handed to the tool if it takes ``ctx`` (a default one is made otherwise);
                a cancelled ``ctx.cancel_token`` stops the call from running.
            validate: check the arguments against the schema first.
        """
        prepared = self.prepare(call, ctx, validate=validate)
        if isinstance(prepared, ToolResult):
            return prepared
        return BaseToolRegistry.run_prepared(self, prepared)  # not an override: see below

    async def adispatch(
        self, call: ToolCall, *, ctx: ToolContext | None = None, validate: bool = True
    ) -> ToolResult:
        """Like :meth:`dispatch`, awaiting async tools and running sync ones in a thread."""
        prepared = self.prepare(call, ctx, validate=validate)
        if isinstance(prepared, ToolResult):
            return prepared
        return await BaseToolRegistry.arun_prepared(self, prepared)

    def dispatch_batch(
        self,
        calls: Sequence[ToolCall],
        *,
        ctx: ToolContext | None = None,
        max_workers: int = 8,
        validate: bool = True,
    ) -> list[ToolResult]:
        """Run ``calls`` and return their results in the same order.

        Calls are grouped as the loop groups them (:meth:`next_group`): consecutive calls of
        ``concurrent_safe`` tools run together in a thread pool of at most ``max_workers``
        threads; every other call runs alone, in order.
        """
        _check_workers(max_workers)
        if len(calls) == 1:  # the common case: no grouping, no pool
            return [self.dispatch(calls[0], ctx=ctx, validate=validate)]
        results: list[ToolResult] = []
        while len(results) < len(calls):
            group = self.next_group(calls, len(results))
            outcomes = [self.prepare(call, ctx, validate=validate) for call in group]
            ran = iter(self.run_group(_runnable(outcomes), max_workers=max_workers))
            results.extend(o if isinstance(o, ToolResult) else next(ran) for o in outcomes)
        return results

    async def adispatch_batch(
        self,
        calls: Sequence[ToolCall],
        *,
        ctx: ToolContext | None = None,
        max_workers: int = 8,
        validate: bool = True,
    ) -> list[ToolResult]:
        """Like :meth:`dispatch_batch`, running concurrent-safe groups with ``asyncio.gather``.

        At most ``max_workers`` calls of a group are in flight at once.
        """
        _check_workers(max_workers)
        if len(calls) == 1:
            return [await self.adispatch(calls[0], ctx=ctx, validate=validate)]
        results: list[ToolResult] = []
        while len(results) < len(calls):
            group = self.next_group(calls, len(results))
            outcomes = [self.prepare(call, ctx, validate=validate) for call in group]
            ran = iter(await self.arun_group(_runnable(outcomes), max_workers=max_workers))
            results.extend(o if isinstance(o, ToolResult) else next(ran) for o in outcomes)
        return results

    # ------------------------------------------------------------------ checked calls

    def check_call(self, call: ToolCall) -> ToolError | None:
        """The error that would stop ``call`` before it runs, or ``None`` if it may run.

        Checks, in order: the arguments were valid JSON, the tool is registered, the arguments
        match its schema. The tool is not run; :meth:`dispatch` makes the same checks.
        """
        outcome = self.prepare(call)
        return outcome.error_detail if isinstance(outcome, ToolResult) else None

    def prepare(
        self, call: ToolCall, ctx: ToolContext | None = None, *, validate: bool = True
    ) -> PreparedCall | ToolResult:
        """Check ``call`` and make it ready to run, or return the failed result it gets instead.

        Checks, in order: the arguments were valid JSON, the tool is registered, the run is
        not cancelled (``ctx.cancel_token``), the arguments are a JSON object matching the
        tool's schema (unless ``validate`` is False). Arguments starting with ``__`` are loop
        bookkeeping and are dropped; ``ctx`` is added for a tool that takes it.
        """
        if call.parse_error is not None:
            return ToolResult.failure(call, _parse_error(call))
        spec = self._specs.get(call.tool)
        if spec is None:
            return ToolResult.failure(call, self._unknown_tool_error(call.tool))
        if ctx is not None and (token := ctx.cancel_token) is not None and token.is_cancelled:
            return ToolResult.failure(call, _cancelled_error(spec.name, token))
        received: object = call.args
        if type(received) is not dict and not isinstance(received, Mapping):
            problem = f"the arguments must be a JSON object, got {type(received).__name__}"
            return ToolResult.failure(call, _validation_error(spec, [problem]))
        args: Mapping[str, Any] = received
        for key in received:
            # ``__``-prefixed arguments are loop bookkeeping, never the tool's.
            if (key[:1] == "_" and key[:2] == "__") if type(key) is str else str(key)[:2] == "__":
                args = {k: v for k, v in received.items() if not str(k).startswith("__")}
                break
        if validate and (problems := spec.validate(args)):
            return ToolResult.failure(call, _validation_error(spec, problems))
        if spec.takes_ctx:
            args = {**args, "ctx": ctx if ctx is not None else ToolContext()}
        return PreparedCall(call, spec, args, ctx)

    def run_prepared(self, prepared: PreparedCall) -> ToolResult:
        """Run a prepared call and return its result; the tool's exceptions become failures.

        An async tool is run with ``asyncio.run`` (impossible inside a running event loop:
        the result is then an EXECUTION error saying to use the async loop). A call with a
        time limit (``prepared.timeout_s``) or a cancel token is waited for only until the
        deadline passes or the token is cancelled: it then fails with a ``timeout`` or
        ``cancelled`` error. Such a call of a sync tool runs in a worker thread (see
        :mod:`looplet._tool_timeout`); any other runs in the calling thread.
        """
        call, spec = prepared.call, prepared.spec
        if (token := prepared.cancel_token) is not None and token.is_cancelled:
            return ToolResult.failure(call, _cancelled_error(spec.name, token))
        if spec.is_async and _loop_running():
            return ToolResult.failure(call, _async_in_loop_error(spec.name))
        start = time.perf_counter()
        try:
            if token is not None or prepared.timeout_s is not None:
                from looplet._tool_timeout import run_bounded  # not loaded by runs without

                data = run_bounded(prepared)
            elif spec.is_async:
                import asyncio

                data = asyncio.run(spec.execute(**prepared.kwargs))
            else:
                data = spec.execute(**prepared.kwargs)
        except Exception as exc:
            return _failed(call, exc, start)
        except BaseException as exc:  # an async tool's CancelledError is the tool's failure
            if not _is_cancelled_error(exc):
                raise
            return _failed(call, exc, start)
        return ToolResult.success(call, data, (time.perf_counter() - start) * 1000)

    async def arun_prepared(self, prepared: PreparedCall) -> ToolResult:
        """Like :meth:`run_prepared`, awaiting an async tool or running a sync one in a thread.

        Sync tools go through ``asyncio.to_thread`` (or, with a time limit or a cancel token,
        a worker thread) so a slow one does not block the event loop. An async tool that
        overruns its limit, or is running when the token is cancelled, is cancelled. If the
        awaiting task itself is cancelled, the cancellation propagates.
        """
        call, spec = prepared.call, prepared.spec
        if (token := prepared.cancel_token) is not None and token.is_cancelled:
            return ToolResult.failure(call, _cancelled_error(spec.name, token))
        start = time.perf_counter()
        try:
            if token is not None or prepared.timeout_s is not None:
                from looplet._tool_timeout import arun_bounded

                data = await arun_bounded(prepared)
            elif spec.is_async:
                data = await spec.execute(**prepared.kwargs)
            else:
                import asyncio  # here, not above: the import statement costs on every call

                data = await asyncio.to_thread(spec.execute, **prepared.kwargs)
        except Exception as exc:
            return _failed(call, exc, start)
        except BaseException as exc:
            if not _is_cancelled_error(exc):
                raise
            # The tool cancelled itself: its failure. The awaiting task being cancelled: ours.
            import asyncio

            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return _failed(call, exc, start)
        return ToolResult.success(call, data, (time.perf_counter() - start) * 1000)

    def run_group(
        self, prepared: Sequence[PreparedCall], *, max_workers: int = 8
    ) -> list[ToolResult]:
        """Run prepared calls at the same time, in a pool of at most ``max_workers`` threads.

        The results come back in the calls' order. One call runs in the calling thread. Each
        call keeps its own time limit, counted from when it starts.
        """
        if len(prepared) <= 1:
            return [self.run_prepared(p) for p in prepared]
        from concurrent.futures import ThreadPoolExecutor

        workers = min(max_workers, len(prepared))
        with ThreadPoolExecutor(workers, "looplet-tool") as pool:
            return list(pool.map(self.run_prepared, prepared))

    async def arun_group(
        self, prepared: Sequence[PreparedCall], *, max_workers: int = 8
    ) -> list[ToolResult]:
        """Like :meth:`run_group`, with ``asyncio.gather`` and at most ``max_workers`` in flight."""
        if len(prepared) == 1:
            return [await self.arun_prepared(prepared[0])]
        import asyncio

        limit = asyncio.Semaphore(max_workers)

        async def limited(p: PreparedCall) -> ToolResult:
            async with limit:
                return await self.arun_prepared(p)

        return list(await asyncio.gather(*(limited(p) for p in prepared)))

    def _unknown_tool_error(self, name: str) -> ToolError:
        registered = list(self._specs)
        if not registered:
            return ToolError(
                ErrorKind.UNKNOWN_TOOL,
                f"the model called {name!r}, but no tools are registered. Register ToolSpecs "
                "with registry.register(ToolSpec(...)) before starting the loop.",
                context={"tool": name, "registered": []},
            )
        import difflib

        close = difflib.get_close_matches(name, registered, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return ToolError(
            ErrorKind.UNKNOWN_TOOL,
            f"the model called {name!r}, which is not registered. "
            f"Registered tools: {', '.join(registered)}.{hint}",
            context={
                "tool": name,
                "registered": registered,
                "suggestion": close[0] if close else None,
            },
        )


def _parse_error(call: ToolCall) -> ToolError:
    raw = call.raw_arguments or ""
    shown = raw if len(raw) <= _RAW_ARGS_CHARS else raw[: _RAW_ARGS_CHARS - 3] + "..."
    return ToolError(
        ErrorKind.PARSE,
        f"the arguments for {call.tool!r} were not valid JSON ({call.parse_error}): {shown!r}. "
        'Send the arguments as one JSON object, e.g. {"name": "value"}.',
        context={"tool": call.tool, "parse_error": call.parse_error},
    )


def _cancelled_error(name: str, token: CancelToken) -> ToolError:
    return ToolError(
        ErrorKind.CANCELLED,
        f"tool {name!r} was not run: the run was cancelled ({token.reason}).",
        context={"tool": name, "reason": token.reason},
    )


def _validation_error(spec: ToolSpec, problems: list[str]) -> ToolError:
    signature = f"{spec.name}({describe_parameters(spec.schema)})"
    return ToolError(
        ErrorKind.VALIDATION,
        f"invalid arguments for {spec.name!r}: {'; '.join(problems)}. Call it as {signature}.",
        context={"tool": spec.name, "problems": problems, "signature": signature},
    )


def _async_in_loop_error(name: str) -> ToolError:
    return ToolError(
        ErrorKind.EXECUTION,
        f"tool {name!r} is async and dispatch() was called inside a running event loop, where "
        "it cannot be run. Use the async loop (await registry.adispatch(...)) instead.",
        context={"tool": name},
    )


def _failed(call: ToolCall, exc: BaseException, start: float) -> ToolResult:
    duration_ms = (time.perf_counter() - start) * 1000
    return ToolResult.failure(call, classify_exception(exc), duration_ms=duration_ms)


def _run_through_dispatch(self: BaseToolRegistry, prepared: PreparedCall) -> ToolResult:
    """``run_prepared`` for a registry subclass that overrides ``dispatch``."""
    return self.dispatch(prepared.call, ctx=prepared.ctx)


async def _arun_through_adispatch(self: BaseToolRegistry, prepared: PreparedCall) -> ToolResult:
    """``arun_prepared`` for a registry subclass that overrides ``adispatch``."""
    return await self.adispatch(prepared.call, ctx=prepared.ctx)


def _runnable(outcomes: Sequence[PreparedCall | ToolResult]) -> list[PreparedCall]:
    return [o for o in outcomes if isinstance(o, PreparedCall)]


def _is_cancelled_error(exc: BaseException) -> bool:
    # asyncio is imported lazily (it costs ~20 ms); if it is not loaded, nothing raised its error.
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _check_workers(max_workers: int) -> None:
    if max_workers < 1:
        raise ConfigurationError(f"max_workers must be at least 1, got {max_workers!r}.")


def __getattr__(name: str) -> Any:
    # The original's ready-made tools live in looplet.toolkit, which imports this module.
    if name in ("register_done_tool", "register_think_tool", "tools_from"):
        import looplet.toolkit

        return getattr(looplet.toolkit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
