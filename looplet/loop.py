"""``composable_loop`` and ``async_composable_loop``: thin drivers of the step engine.

Each driver does only the I/O that :func:`looplet.engine.run_engine` asks for: calling the
model backend and running tools (and, in the async loop, awaiting ``async def`` hooks). The
sync driver blocks; the async one awaits (sync backends and sync tools run in a worker
thread so they never block the event loop). Every decision is the engine's, so both loops
behave identically.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from looplet.backends.base import LLMRequest, LLMResponse
from looplet.config import LoopConfig
from looplet.engine import AwaitHook, CloseRun, Effect, RunTools, SaveCheckpoint, run_engine
from looplet.errors import ConfigurationError, LLMError, LoopletError
from looplet.hooks import LoopHook, resolve_hooks
from looplet.run_state import RunState
from looplet.state import AgentState, DefaultState
from looplet.tools import BaseToolRegistry, PreparedCall, ToolContext, ToolSpec
from looplet.types import Step, Trajectory

if TYPE_CHECKING:
    from looplet.checkpoint import Checkpoint, FileCheckpointStore
    from looplet.conversation import Conversation
    from looplet.session import SessionLog
    from looplet.streaming import StreamTarget

# LoopConfig and LoopHook: importable from here, as in the original looplet.
__all__ = [
    "AsyncLoopRun",
    "LoopConfig",
    "LoopHook",
    "LoopRun",
    "async_composable_loop",
    "composable_loop",
]


def composable_loop(
    llm: Any,
    task: Any = None,
    tools: BaseToolRegistry | Iterable[ToolSpec] | None = None,
    context: Any = None,
    hooks: Iterable[object] | None = (),
    config: LoopConfig | None = None,
    state: AgentState | None = None,
    *,
    checkpoint: FileCheckpointStore | None = None,
    resume: FileCheckpointStore | Checkpoint | None = None,
    restart: bool = False,
    max_steps: int | None = None,
    system_prompt: str | None = None,
    session_log: SessionLog | None = None,
    stream: StreamTarget | None = None,
    conversation: Conversation | None = None,
) -> LoopRun:
    """Run the tool-calling loop, yielding one :class:`~looplet.types.Step` per tool call.

    The model sees a real conversation: the system prompt, the task, its own earlier turns
    with their tool calls, and every tool result as a tool message. The run ends when the
    done tool succeeds (``done``), the model answers without a tool call (``final_text``),
    the budget is spent (``max_steps``, ``max_llm_calls``), a hook stops it (``hook_stop``)
    or it is cancelled (``cancelled``). A provider failure raises :class:`LLMError` and a
    raising hook :class:`HookError`, each with the partial trajectory on ``.trajectory``.

    Example::

        for step in composable_loop(llm=llm, tools=tools, task={"goal": "Greet Alice"}):
            print(step.pretty())

    Args:
        llm: a backend with ``complete(request)`` (or the original ``generate(prompt)``).
        task: what to do: a str, a dict, or any object (see ``LoopConfig.render_task``).
        tools: a :class:`BaseToolRegistry`, or an iterable of ``ToolSpec``.
        context: any object, handed to hooks as ``context``.
        hooks: hook objects (see :class:`~looplet.hooks.LoopHook`).
        config: settings; defaults to ``LoopConfig()``.
        state: the agent state; defaults to ``DefaultState``.
        checkpoint: a :class:`~looplet.checkpoint.FileCheckpointStore` to save the run to
            after every step (before the step is yielded) and at its end. A failed write
            stops the run with :class:`~looplet.errors.CheckpointError`.
        resume: continue a run instead of starting one: a store (its newest run; a new run
            starts if it holds none) or a :class:`~looplet.checkpoint.Checkpoint`. The
            conversation, steps, budget used and unfinished turn come back; the task may
            be left out. A run that already ended raises ``CheckpointError``.
        restart: with ``resume``, start a new run when the run to resume has ended.
        max_steps: shorthand for ``LoopConfig(max_steps=...)``; with ``config`` too, it
            overrides ``config.max_steps`` (on a copy: ``config`` is not changed).
        system_prompt: shorthand for ``LoopConfig(system_prompt=...)``, likewise.
        session_log: a :class:`~looplet.session.SessionLog` that the run writes a compact,
            readable line to for each model turn and step (kept in checkpoints).
        stream: where token and step events go while the run runs (see
            :mod:`looplet.streaming`).
        conversation: a :class:`~looplet.conversation.Conversation` to continue: the run
            starts from its messages, ``task`` is the new user message, and the
            conversation takes the run's messages when it ends.

    Returns:
        A :class:`LoopRun`: a generator of steps whose return value (and ``.trajectory``)
        is the run's :class:`~looplet.types.Trajectory`.
    """
    if max_steps is not None or system_prompt is not None:
        config = _with_shorthands(config, max_steps, system_prompt)
    run = new_run(llm, task, tools, context, hooks, config, state, "sync")
    if session_log is not None or stream is not None or conversation is not None:
        _attach_extras(run, session_log, stream, conversation, "sync")
    if checkpoint is not None or resume is not None or restart:
        _attach_checkpoints(run, checkpoint, resume, restart, task is not None)
    return LoopRun(run)


def async_composable_loop(
    llm: Any,
    task: Any = None,
    tools: BaseToolRegistry | Iterable[ToolSpec] | None = None,
    context: Any = None,
    hooks: Iterable[object] | None = (),
    config: LoopConfig | None = None,
    state: AgentState | None = None,
    *,
    checkpoint: FileCheckpointStore | None = None,
    resume: FileCheckpointStore | Checkpoint | None = None,
    restart: bool = False,
    max_steps: int | None = None,
    system_prompt: str | None = None,
    session_log: SessionLog | None = None,
    stream: StreamTarget | None = None,
    conversation: Conversation | None = None,
) -> AsyncLoopRun:
    """The async twin of :func:`composable_loop`: ``async for step in ...``.

    Backends with ``acomplete`` are awaited, async tools and ``async def`` hooks are
    awaited, and sync backends or tools run in a worker thread; checkpoints are written in
    a worker thread too. The finished trajectory is on ``.trajectory``.
    """
    if max_steps is not None or system_prompt is not None:
        config = _with_shorthands(config, max_steps, system_prompt)
    run = new_run(llm, task, tools, context, hooks, config, state, "async")
    if session_log is not None or stream is not None or conversation is not None:
        _attach_extras(run, session_log, stream, conversation, "async")
    if checkpoint is not None or resume is not None or restart:
        _attach_checkpoints(run, checkpoint, resume, restart, task is not None)
    return AsyncLoopRun(run)


class LoopRun(Generator[Step, None, Trajectory]):
    """A running loop: iterate it for steps; ``.trajectory`` is the record so far."""

    __slots__ = ("_engine", "_run")

    def __init__(self, run: RunState) -> None:
        self._run = run
        self._engine = run_engine(run)

    @property
    def trajectory(self) -> Trajectory:
        """The run's record (complete once iteration has ended)."""
        return self._run.trajectory

    def __next__(self, _thrown: BaseException | None = None) -> Step:
        # The driver itself rather than a call to one: a frame less per step. It resumes
        # the engine (throwing ``_thrown`` in, for throw()) and performs each effect the
        # engine yields until the next step.
        engine, run = self._engine, self._run
        effect = engine.send(None) if _thrown is None else engine.throw(_thrown)
        while True:  # `type(...) is`, most frequent first: this runs three times a step
            if type(effect) is Step:
                return effect
            if type(effect) is PreparedCall:
                effect = engine.send(run.tools.run_prepared(effect))
            elif type(effect) is LLMRequest:
                try:  # a failure comes back to the engine as an LLMError value
                    reply: LLMResponse | LoopletError = run.llm.complete(effect)
                except LoopletError as err:
                    reply = err
                except Exception as exc:
                    reply = _backend_failure(run.llm, exc)
                effect = engine.send(reply)
            elif type(effect) is RunTools:
                effect = engine.send(run.tools.run_group(effect.calls))
            elif isinstance(effect, SaveCheckpoint):
                effect = engine.send(run.checkpoint.save(run, effect.final))
            else:
                raise _unknown_effect(effect)

    def send(self, value: None) -> Step:
        """Advance to the next step (``value`` is ignored)."""
        return self.__next__()

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> Step:
        """Raise an exception inside the run (``close()`` uses this to stop it cleanly)."""
        return self.__next__(typ if isinstance(typ, BaseException) else typ())


class AsyncLoopRun(AsyncGenerator[Step, None]):
    """A running async loop: ``async for`` it for steps; ``.trajectory`` is the record."""

    __slots__ = ("_engine", "_run")

    def __init__(self, run: RunState) -> None:
        self._run = run
        self._engine = run_engine(run)

    @property
    def trajectory(self) -> Trajectory:
        """The run's record (complete once iteration has ended)."""
        return self._run.trajectory

    def __anext__(self) -> Coroutine[Any, Any, Step]:
        # The coroutine itself, not an `async def` awaiting it: one layer less per step.
        return self._drive(self._engine.send, None)

    def asend(self, value: None) -> Coroutine[Any, Any, Step]:
        """Advance to the next step (``value`` is ignored)."""
        return self._drive(self._engine.send, None)

    def athrow(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> Coroutine[Any, Any, Step]:
        """Raise an exception inside the run (``aclose()`` uses this to stop it cleanly)."""
        exc = typ if isinstance(typ, BaseException) else typ()
        return self._drive(self._engine.throw, exc)

    async def aclose(self) -> None:
        """Stop the run: it ends with stop reason ``cancelled`` and hooks see the end."""
        engine = self._engine
        if self._run.hooks.any_async and inspect.getgeneratorstate(engine) == "GEN_SUSPENDED":
            # A closing generator cannot yield, so async on_loop_end / on_event hooks could
            # not be awaited: end the run by CloseRun instead, driven to its end here.
            try:
                await self._drive(engine.throw, CloseRun())
            except StopAsyncIteration:
                return
        engine.close()

    async def _drive(self, resume: Callable[[Any], Effect], value: Any) -> Step:
        engine, run = self._engine, self._run
        try:
            effect = resume(value)
            while True:
                if type(effect) is Step:
                    return effect
                if type(effect) is PreparedCall:
                    effect = engine.send(await run.tools.arun_prepared(effect))
                elif type(effect) is LLMRequest:
                    llm = run.llm
                    if hasattr(llm, "acomplete"):  # acall_model()'s common case, inline
                        try:
                            reply: LLMResponse | LoopletError = await llm.acomplete(effect)
                        except LoopletError as err:
                            reply = err
                        except Exception as exc:
                            reply = _backend_failure(llm, exc)
                    else:
                        reply = await acall_model(llm, effect)
                    effect = engine.send(reply)
                elif type(effect) is RunTools:
                    effect = engine.send(await run.tools.arun_group(effect.calls))
                elif isinstance(effect, SaveCheckpoint):
                    import asyncio

                    save = run.checkpoint.save
                    effect = engine.send(await asyncio.to_thread(save, run, effect.final))
                elif type(effect) is AwaitHook:
                    try:
                        value = await effect.awaitable
                    except Exception as exc:  # the engine ends the run, as for a sync hook
                        effect = engine.throw(effect.error(exc))
                    else:
                        effect = engine.send(value)
                else:
                    raise _unknown_effect(effect)
        except StopIteration:
            raise StopAsyncIteration from None


# -- I/O: the only thing the drivers do -------------------------------------------------------


async def acall_model(llm: Any, request: LLMRequest) -> LLMResponse | LoopletError:
    """Call a backend from the async loop, awaiting ``acomplete`` or threading ``complete``."""
    try:
        if hasattr(llm, "acomplete"):
            return await llm.acomplete(request)  # type: ignore[no-any-return]
        import asyncio  # imported on first use: it costs ~20 ms at start-up

        return await asyncio.to_thread(llm.complete, request)
    except LoopletError as err:
        return err
    except Exception as exc:
        return _backend_failure(llm, exc)


def _unknown_effect(effect: object) -> LoopletError:
    return LoopletError(f"looplet bug: the engine yielded {effect!r}, which no driver runs")


def _backend_failure(llm: Any, exc: Exception) -> LLMError:
    name = getattr(llm, "provider", None) or type(llm).__name__
    error = LLMError(str(name), f"{type(exc).__name__}: {exc}", kind="backend_error")
    error.__cause__ = exc
    return error


# -- building a run from the caller's arguments -----------------------------------------------


def new_run(
    llm: Any,
    task: Any,
    tools: BaseToolRegistry | Iterable[ToolSpec] | None,
    context: Any,
    hooks: Iterable[object] | None,
    config: LoopConfig | None,
    state: AgentState | None,
    need: str,
) -> RunState:
    """Check the caller's arguments and build the state of a new run (``need``: ``"sync"``
    or ``"async"``, the loop that drives it)."""
    config = config if config is not None else LoopConfig()
    if not isinstance(config, LoopConfig):
        raise ConfigurationError(f"config must be a LoopConfig, got {type(config).__name__}")
    # The common cases inline (a frame less each); the helpers convert or explain the rest.
    registry = tools if isinstance(tools, BaseToolRegistry) and len(tools) else _as_registry(tools)
    backend = llm if hasattr(llm, "complete") else _as_backend(llm, need)
    if state is None:
        state = DefaultState(max_steps=config.max_steps)
    trajectory = Trajectory(task)
    resolved = resolve_hooks(hooks, awaits=need == "async")
    # Positional, in field order (cwd, workspace_root, cancel_token, session_id, step,
    # metadata, on_progress, run, tool_timeout_s): keywords cost ~0.3 µs more per run.
    root = config.workspace_root
    ctx = ToolContext(
        os.getcwd() if root is None else root,
        root or "",
        config.cancel_token,
        config.session_id,
        0,
        {},
        None,
        None,
        config.tool_timeout_s,
    )
    hook_values: dict[str, Any] = {}  # only hooks read it: a run without them leaves it empty
    if resolved.hooks:
        hook_values = {
            "state": state,
            "session_log": trajectory.steps,
            "context": context,
            "task": task,
            "config": config,
            "llm": llm,
            "trajectory": trajectory,
            "tools": registry,
        }
    run = RunState(
        backend, registry, config, state, resolved, context, trajectory, ctx, hook_values
    )
    ctx.run = run  # a sub-agent tool reaches its parent run (budget, nesting) through ctx
    return run


def _with_shorthands(
    config: LoopConfig | None, max_steps: int | None, system_prompt: str | None
) -> LoopConfig | None:
    """``config`` with the ``max_steps=`` / ``system_prompt=`` shorthands applied, on a copy."""
    if max_steps is None and system_prompt is None:
        return config
    base: object = LoopConfig() if config is None else config
    if not isinstance(base, LoopConfig):
        return config  # new_run says what is wrong with it
    changes: dict[str, Any] = {}
    if max_steps is not None:
        changes["max_steps"] = max_steps
    if system_prompt is not None:
        changes["system_prompt"] = system_prompt
    import dataclasses  # loaded already: LoopConfig is a dataclass

    return dataclasses.replace(base, **changes)


def _attach_extras(
    run: RunState,
    session_log: SessionLog | None,
    stream: StreamTarget | None,
    conversation: Conversation | None,
    need: str,
) -> None:
    # Each feature's module loads only for a run that uses it.
    if conversation is not None:
        from looplet.conversation import continue_conversation

        continue_conversation(run, conversation, need)
    if session_log is not None:
        from looplet.session import attach_session_log

        attach_session_log(run, session_log, need)
    if stream is not None:
        from looplet.streaming import attach_stream

        attach_stream(run, stream, need)


def add_run_hooks(run: RunState, extra: Iterable[object], need: str) -> None:
    """Add hook objects to a run built by :func:`new_run` (after the caller's hooks): the
    loop's own features (``session_log=``, ``stream=``) are hooks like any other.

    ``need`` is ``"sync"`` or ``"async"``, the loop that drives the run.
    """
    run.hooks = resolve_hooks((*run.hooks.hooks, *extra), awaits=need == "async")
    if not run.hook_values:
        trajectory = run.trajectory
        run.hook_values.update(
            state=run.state,
            session_log=trajectory.steps,
            context=run.context,
            task=trajectory.task,
            config=run.config,
            llm=run.llm,
            trajectory=trajectory,
            tools=run.tools,
        )


def _attach_checkpoints(
    run: RunState,
    store: FileCheckpointStore | None,
    resume: FileCheckpointStore | Checkpoint | None,
    restart: bool,
    task_given: bool,
) -> None:
    # Imported here: json, tempfile and uuid are not worth loading for runs without them.
    from looplet.checkpoint import attach_checkpoints

    attach_checkpoints(run, store, resume, restart=restart, task_given=task_given)


def _as_registry(tools: BaseToolRegistry | Iterable[ToolSpec] | None) -> BaseToolRegistry:
    if tools is None:
        raise ConfigurationError(
            "composable_loop needs tools=: a BaseToolRegistry with at least one ToolSpec "
            "(usually your tools and a 'done' tool)."
        )
    if not isinstance(tools, BaseToolRegistry):
        registry = BaseToolRegistry()
        for spec in tools:
            registry.register(spec)
        tools = registry
    if len(tools) == 0:
        raise ConfigurationError(
            "the tool registry is empty, so the model could not call anything. Register "
            "tools first: tools.register(ToolSpec(name=..., description=..., parameters=..., "
            "execute=...)), including a 'done' tool to finish."
        )
    return tools


def _as_backend(llm: Any, need: str) -> Any:
    if llm is None:
        raise ConfigurationError(
            "composable_loop needs llm=: a model backend such as "
            "OpenAIBackend(OpenAI(), model='gpt-4o-mini')."
        )
    if hasattr(llm, "complete") or (need == "async" and hasattr(llm, "acomplete")):
        return llm
    generate = getattr(llm, "generate", None)
    if callable(generate):
        if inspect.iscoroutinefunction(generate) and need == "sync":
            raise ConfigurationError(
                f"{type(llm).__name__}.generate is async; use async_composable_loop with it."
            )
        from looplet.backends.legacy import LegacyTextBackend

        return LegacyTextBackend(llm)
    hint = "complete(request) or acomplete(request)" if need == "async" else "complete(request)"
    raise ConfigurationError(
        f"llm must be a model backend with {hint} (or the original generate(prompt)); "
        f"got {type(llm).__name__}, which has neither."
    )


def __getattr__(name: str) -> Any:
    # The original's DomainAdapter and emit_event: say what replaced them.
    from looplet._moved import missing

    missing(__name__, name)
