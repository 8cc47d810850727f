"""Presets: ready agents (tools, permissions, hooks, settings) for coding, research, or any tools.

An :class:`AgentPreset` is the parts of an agent as one value, in the original looplet's shape
(``preset.config``, ``preset.hooks``, ``preset.tools``, ``preset.state``), plus the
:class:`~looplet.permissions.PermissionEngine` its hooks enforce (``preset.permissions``).
Run it with :meth:`AgentPreset.run` (or :meth:`~AgentPreset.loop` for the steps one by one,
and the ``a``-prefixed async twins), or hand its parts to :func:`~looplet.composable_loop`
yourself: ``composable_loop(llm=llm, task=task, **preset.loop_kwargs())``.

* :func:`minimal_preset`: your tools, a ``done`` tool, a step budget.
* :func:`coding_agent_preset`: read, write, edit, glob, grep confined to one folder, and a
  ``bash`` that runs in a bubblewrap sandbox (:mod:`looplet.sandbox`). Where no sandbox can
  start it refuses to build, saying why, unless you opt out knowingly (``sandbox=False``) or
  go without a shell (``allow_shell=False``). Its permissions ask before risky commands.
* :func:`research_agent_preset`: read-only tools over local documents (search, read, notes
  whose quotes are checked) and a ``done`` tool that requires the answer and its sources.

Every call builds new parts: two presets never share a registry, an engine or a hook list.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from looplet.config import LoopConfig
from looplet.errors import ConfigurationError
from looplet.permissions import AskHandler, PermissionEngine, PermissionHook
from looplet.state import AgentState
from looplet.tools import BaseToolRegistry
from looplet.toolspec import ToolSpec

if TYPE_CHECKING:
    from looplet.loop import AsyncLoopRun, LoopRun
    from looplet.sandbox import BwrapSandbox
    from looplet.types import Trajectory

__all__ = [
    "CODING_SYSTEM_PROMPT",
    "RESEARCH_SYSTEM_PROMPT",
    "AgentPreset",
    "coding_agent_preset",
    "coding_permissions",
    "minimal_preset",
    "research_agent_preset",
]

# No absolute path in the prompt: a request must not depend on where the workspace is, or a
# recorded run would not replay in another folder.
#: The coding preset's system prompt (with ``bash``).
CODING_SYSTEM_PROMPT = (
    "You are a careful coding agent. You work in a project folder, the workspace: every path "
    "is relative to it, and the tools refuse paths that leave it. Look before you change "
    "anything (glob, grep, read). Write the code and a test for it, run the test with bash, "
    "and fix the code until the test passes; prefer edit for small changes. Commands that "
    "delete, move or overwrite files, or reach outside the workspace, need the user's "
    "approval and may be denied: do without them when you can. When the task is complete, "
    "or cannot be done, call {done_tool} with a short summary."
)
_CODING_NO_SHELL_PROMPT = (
    "You are a careful coding agent. You work in a project folder, the workspace: every path "
    "is relative to it, and the tools refuse paths that leave it. Look before you change "
    "anything (glob, grep, read), then write the code; prefer edit for small changes. You "
    "cannot run commands. When the task is complete, or cannot be done, call {done_tool} "
    "with a short summary."
)
#: The research preset's system prompt.
RESEARCH_SYSTEM_PROMPT = (
    "You are a careful research assistant. Answer from the documents you are given, and only "
    "from them: list_sources shows them, search finds lines, read shows numbered lines. Note "
    "each finding with a quote copied exactly from its document. When you can answer, or the "
    "documents do not say, call {done_tool} with the answer and the sources it rests on "
    "(each an id or id:line); say so plainly when the documents do not answer the question."
)
_CODING_TOOLS = ("read", "write", "edit", "glob", "grep", "think")
_RESEARCH_TOOLS = ("list_sources", "search", "read", "note", "think")

#: A state, or a factory called for each run (``DefaultState`` itself is one).
StateOrFactory = AgentState | Callable[[], AgentState] | None


class AgentPreset:
    """An agent's parts as one value: settings, hooks, tools, state and permissions.

    Example::

        preset = minimal_preset([greet])
        trajectory = preset.run(llm, "Greet Alice")
        for step in preset.loop(llm, "Greet Bob"):  # the steps, one by one
            print(step.pretty())

    Args:
        config: the loop settings.
        hooks: hook objects, run in order (the permission hook is kept first).
        tools: the tools: a registry, or specs and ``@tool`` functions.
        state: the agent state of each run: ``None`` (a fresh ``DefaultState`` per run), a
            factory called once per run (``DefaultState``), or one state object, which then
            belongs to a single run.
        permissions: an engine checked before every tool call but ``done``; it is put in
            front of ``hooks`` as a :class:`~looplet.permissions.PermissionHook`.

    Raises:
        ConfigurationError: a part of the wrong kind (the message names it).
    """

    __slots__ = ("config", "hooks", "state", "tools")

    def __init__(
        self,
        config: LoopConfig | None = None,
        hooks: Iterable[object] = (),
        tools: BaseToolRegistry | Iterable[ToolSpec | Callable[..., Any]] = (),
        state: StateOrFactory = None,
        *,
        permissions: PermissionEngine | None = None,
    ) -> None:
        if config is None:
            config = LoopConfig()
        if not isinstance(config, LoopConfig):
            raise ConfigurationError(
                f"AgentPreset config= takes a looplet.LoopConfig, not {type(config).__name__}"
            )
        if isinstance(hooks, str | bytes) or not isinstance(hooks, Iterable):
            raise ConfigurationError(
                f"AgentPreset hooks= takes a list of hook objects, not {type(hooks).__name__}"
            )
        if not isinstance(tools, BaseToolRegistry):
            tools = _tool_list("AgentPreset", tools)
        if state is not None and not callable(state) and not isinstance(state, AgentState):
            raise ConfigurationError(
                "AgentPreset state= takes an agent state (steps, queries_used, max_steps), a "
                f"factory of one, or None; not {type(state).__name__}"
            )
        #: The loop settings.
        self.config: LoopConfig = config
        #: The hooks, in order; the permission hook (if any) first.
        self.hooks: list[object] = list(hooks)
        #: The tools.
        self.tools: BaseToolRegistry = (
            tools if isinstance(tools, BaseToolRegistry) else BaseToolRegistry(tools)
        )
        #: The state, or a factory of one (see the class's doc).
        self.state: StateOrFactory = state
        if permissions is not None:
            self.permissions = permissions

    def __repr__(self) -> str:
        engine = self.permissions
        rules = "none" if engine is None else f"{len(engine.rules)} rules"
        return (
            f"AgentPreset(tools={self.tools.tool_names}, hooks={len(self.hooks)}, "
            f"permissions={rules}, max_steps={self.config.max_steps})"
        )

    @property
    def permissions(self) -> PermissionEngine | None:
        """The engine of the preset's permission hook; ``None`` when it has none.

        Setting it replaces that hook (``None`` removes it); the new one goes first.
        """
        for hook in self.hooks:
            if isinstance(hook, PermissionHook):
                return hook.engine
        return None

    @permissions.setter
    def permissions(self, engine: PermissionEngine | None) -> None:
        given: object = engine
        if given is not None and not isinstance(given, PermissionEngine):
            raise ConfigurationError(
                "AgentPreset permissions= takes a looplet.PermissionEngine or None, not "
                f"{type(given).__name__}"
            )
        kept = [hook for hook in self.hooks if not isinstance(hook, PermissionHook)]
        self.hooks = kept if engine is None else [PermissionHook(engine), *kept]

    def new_state(self) -> AgentState | None:
        """The state for the next run: ``state`` itself, or a new one from its factory.

        Raises:
            ConfigurationError: ``state`` is one state object that an earlier run already
                used (it holds steps): it belongs to a single run.
        """
        state = self.state
        if state is None or (isinstance(state, AgentState) and not isinstance(state, type)):
            if state is not None and (used := len(state.steps)):
                raise ConfigurationError(
                    f"AgentPreset.state is one state object and it already holds {used} "
                    f"step{'s' * (used != 1)} of an earlier run; give a factory "
                    "(preset.state = DefaultState) for a fresh state per run, or pass "
                    "state= to this run to go on with it on purpose"
                )
            return state
        made = state()
        if not isinstance(made, AgentState):
            raise ConfigurationError(
                f"AgentPreset state factory {state!r} returned {type(made).__name__}, which is "
                "no agent state (it needs steps, queries_used and max_steps)"
            )
        return made

    def loop_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """The keyword arguments of :func:`~looplet.composable_loop` for one run.

        ``overrides`` are any of its other arguments (``checkpoint=``, ``max_steps=``,
        ``stream=``...) or replace a part (``tools=``, ``config=``, ``state=``); ``hooks=``
        are added after the preset's own.
        """
        extra = overrides.pop("hooks", None) or ()
        kwargs: dict[str, Any] = {
            "tools": self.tools,
            "hooks": [*self.hooks, *extra],
            "config": self.config,
        }
        kwargs["state"] = overrides.pop("state") if "state" in overrides else self.new_state()
        kwargs.update(overrides)
        return kwargs

    def loop(self, llm: Any, task: Any = None, **overrides: Any) -> LoopRun:
        """Start a run: :func:`~looplet.composable_loop` with the preset's parts.

        Returns:
            The :class:`~looplet.loop.LoopRun`: iterate it for the steps; its
            ``trajectory`` is the record.
        """
        from looplet.loop import composable_loop

        return composable_loop(llm=llm, task=task, **self.loop_kwargs(**overrides))

    def aloop(self, llm: Any, task: Any = None, **overrides: Any) -> AsyncLoopRun:
        """The async twin of :meth:`loop` (``async for step in preset.aloop(...)``)."""
        from looplet.loop import async_composable_loop

        return async_composable_loop(llm=llm, task=task, **self.loop_kwargs(**overrides))

    def run(self, llm: Any, task: Any = None, **overrides: Any) -> Trajectory:
        """Run to the end and return the trajectory (see :meth:`loop` for ``overrides``)."""
        loop = self.loop(llm, task, **overrides)
        for _ in loop:
            pass
        return loop.trajectory

    async def arun(self, llm: Any, task: Any = None, **overrides: Any) -> Trajectory:
        """The async twin of :meth:`run`."""
        loop = self.aloop(llm, task, **overrides)
        async for _ in loop:
            pass
        return loop.trajectory


def minimal_preset(
    tools: BaseToolRegistry | ModuleType | Iterable[ToolSpec | Callable[..., Any]] = (),
    *,
    max_steps: int = 10,
    permissions: PermissionEngine | None = None,
    **config: Any,
) -> AgentPreset:
    """Your tools, a ``done`` tool (unless you have one), and a budget of ``max_steps`` steps.

    Example::

        preset = minimal_preset([search, lookup], system_prompt="Answer from the notes.")

    Args:
        tools: ``@tool`` specs and plain functions (made tools from their docstrings and type
            hints), a module of them, or a registry (its tools are copied).
        max_steps: the step budget.
        permissions: an engine to check calls with (none: every call runs).
        config: any other :class:`~looplet.LoopConfig` setting (``system_prompt=``...).
    """
    from looplet.toolkit import register_done_tool, tools_from

    settings = _config("minimal_preset", {"max_steps": max_steps, **config})
    if isinstance(tools, BaseToolRegistry):
        registry = BaseToolRegistry(list(tools))  # a copy: the preset's own registry
    elif isinstance(tools, ModuleType):
        registry = tools_from(tools)
    else:
        given = _tool_list("minimal_preset", tools)
        registry = tools_from(given) if given else BaseToolRegistry()
    if settings.done_tool not in registry:
        register_done_tool(registry, name=settings.done_tool)
    return AgentPreset(settings, tools=registry, permissions=permissions)


def coding_agent_preset(
    workspace: str | os.PathLike[str],
    *,
    allow_shell: bool = True,
    sandbox: BwrapSandbox | bool = True,
    ask_handler: AskHandler | None = None,
    max_steps: int = 20,
    **config: Any,
) -> AgentPreset:
    """A coding agent kept in one folder: read, write, edit, glob, grep, think, done, bash.

    Every path the file tools take must resolve inside ``workspace`` (``..``, absolute paths,
    symlinks out and ``/proc/...`` are refused as ``permission_denied``). ``bash`` runs in
    the folder, with a timeout, in ``sandbox``: the file system read-only but the workspace,
    no network, no other process, none of your environment. Its permissions allow the file
    tools and ask ``ask_handler`` before commands that delete or overwrite, run other code,
    use shell syntax or name paths outside (:func:`coding_permissions`); with no handler
    those are denied, the model told why. Any other tool is denied.

    Example::

        preset = coding_agent_preset("project", ask_handler=ask_human)
        trajectory = preset.run(llm, "add a --help flag to cli.py")

    Args:
        workspace: the folder the agent works in; it must exist.
        allow_shell: give the agent ``bash``; ``False``: the file tools only.
        sandbox: where ``bash`` runs: ``True`` a default
            :class:`~looplet.sandbox.BwrapSandbox` (``BwrapSandbox(network=True)`` to allow
            the network), or ``False``: unsandboxed, knowingly (commands can do whatever you
            can; the permission rules still ask about risky ones).
        ask_handler: decides the calls the rules ask about (see
            :data:`~looplet.permissions.AskHandler`).
        max_steps: the step budget.
        config: any other :class:`~looplet.LoopConfig` setting (``system_prompt=``...).

    Raises:
        ConfigurationError: ``workspace`` is not a folder, or is the root folder.
        SandboxUnavailableError: ``allow_shell`` with a sandbox that cannot start here; the
            message says why, how to enable one, and the two ways to go on without it.
    """
    from looplet._coding_tools import CodingWorkspace, sandbox_of

    if ask_handler is not None and not callable(ask_handler):
        raise ConfigurationError(
            "coding_agent_preset ask_handler= takes a function deciding the asked calls "
            f"(see looplet.permissions.AskHandler) or None, not {type(ask_handler).__name__}"
        )
    root = _folder("coding_agent_preset workspace", workspace)
    chosen = sandbox_of(sandbox) if allow_shell else None
    if chosen is not None and not chosen.available():
        from looplet.sandbox import SandboxUnavailableError

        raise SandboxUnavailableError(
            f"coding_agent_preset: bash cannot run in a sandbox here: "
            f"{chosen.why_unavailable()}. To go on without one, pass allow_shell=False (no "
            "bash) or sandbox=False (bash unsandboxed: commands can do whatever you can)"
        )
    prompt = CODING_SYSTEM_PROMPT if allow_shell else _CODING_NO_SHELL_PROMPT
    settings = _config(
        "coding_agent_preset",
        {
            "max_steps": max_steps,
            "system_prompt": prompt,
            "temperature": 0.0,
            "workspace_root": str(root),
            **config,
        },
    )
    same: BwrapSandbox | bool = chosen if chosen is not None else False
    tools = CodingWorkspace(root, sandbox=same).registry(shell=allow_shell)
    engine = coding_permissions(ask_handler, sandbox=same, shell=allow_shell)
    return AgentPreset(settings, tools=tools, permissions=engine)


def coding_permissions(
    ask_handler: AskHandler | None = None,
    *,
    sandbox: BwrapSandbox | bool = True,
    shell: bool = True,
) -> PermissionEngine:
    """The coding preset's rules: ask before bash commands they cannot vouch for, allow the
    file tools (which confine themselves), deny any other tool.

    A bash command is asked about when the rules, read with :mod:`shlex`, find a reason
    (``command_concerns`` in :mod:`looplet.examples.coding_agent` lists them): it deletes or
    overwrites, runs inline code or another command, uses shell syntax, names a path
    outside the workspace. When ``sandbox`` cannot start here, every
    bash command is asked about, the reason saying why and how to enable it.

    Args:
        ask_handler: decides the asked calls; without one they are denied, with the reason.
        sandbox: the one bash runs in (give the tools the same); ``False``: none, knowingly,
            and only the rules apply.
        shell: the tools include ``bash`` (``False``: no bash rules).
    """
    from looplet import _coding_rules as rules
    from looplet._coding_tools import sandbox_of

    chosen = sandbox_of(sandbox)
    engine = PermissionEngine(ask_handler=ask_handler)
    if shell:
        # With no one to ask, the rules deny outright, so that the model is told the reason.
        add = engine.ask if ask_handler is not None else engine.deny
        unasked = "" if ask_handler is not None else "; there is no one to ask for approval"
        if chosen is not None and not chosen.available():
            add(
                "bash",
                reason=f"bash cannot run in a sandbox here: {chosen.why_unavailable()}. Until "
                f"it can, every bash command needs approval{unasked}",
            )
        for reason in rules.CONCERNS:
            add("bash", match=functools.partial(_concerned_by, reason), reason=reason + unasked)
        engine.allow("bash")
    for name in _CODING_TOOLS:
        engine.allow(name)
    return engine  # anything else: denied (the engine's default)


def _concerned_by(reason: str, args: Mapping[str, Any]) -> bool:
    from looplet._coding_rules import command_concerns

    return reason in command_concerns(args.get("command"))


def research_agent_preset(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    max_steps: int = 20,
    **config: Any,
) -> AgentPreset:
    """A research agent over local documents: read-only tools, answers that cite sources.

    The tools reach only the text documents of ``sources`` (binary files, tool folders
    such as ``.git`` and symlinks that lead out are left out), by id: ``list_sources``,
    ``search``, ``read``, ``note`` (a finding and a quote, checked against the document)
    and a free ``think``. ``done`` requires ``answer`` and ``sources`` (ids or ``id:line``
    that exist). Nothing can write; the permissions allow these tools and deny any other,
    should you add one.

    Example::

        preset = research_agent_preset("docs/")
        trajectory = preset.run(llm, "How do I enable the sandbox?")
        [done] = trajectory.calls("done")
        print(done.tool_result.data["answer"], done.tool_result.data["sources"])

    Args:
        sources: a folder or a text file, or several. A folder's documents are named by
            their path in it (``guide/intro.md``); given several sources, a folder's ids start
            with its name and a file's id is its name.
        max_steps: the step budget.
        config: any other :class:`~looplet.LoopConfig` setting (``system_prompt=``...).

    Raises:
        ConfigurationError: a source does not exist, or there is no text document.
    """
    from looplet._research_tools import ResearchLibrary

    if not isinstance(sources, str | os.PathLike | Iterable):
        raise ConfigurationError(
            "research_agent_preset sources= takes a folder's or a file's path, or a list of "
            f"them, not {type(sources).__name__}"
        )
    given = sources if isinstance(sources, str | os.PathLike) else list(sources)
    library = ResearchLibrary(given)
    settings = _config(
        "research_agent_preset",
        {"max_steps": max_steps, "system_prompt": RESEARCH_SYSTEM_PROMPT, **config},
    )
    engine = PermissionEngine()
    for name in _RESEARCH_TOOLS:
        engine.allow(name)
    return AgentPreset(settings, tools=library.registry(), permissions=engine)


def _config(preset: str, settings: dict[str, Any]) -> LoopConfig:
    """A LoopConfig of ``settings``; an unknown name is refused, naming the known ones."""
    known = {f.name for f in dataclasses.fields(LoopConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigurationError(
            f"{preset}: {', '.join(map(repr, unknown))} is no LoopConfig setting; the "
            f"settings are {', '.join(sorted(known))}"
        )
    return LoopConfig(**settings)


def _tool_list(what: str, tools: Any) -> list[Any]:
    """``tools`` as a list of tools, or a clear error for what cannot be one."""
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
        raise ConfigurationError(
            f"{what} tools= takes a list of @tool specs or functions, a module of them or a "
            f"registry, not {type(tools).__name__}: e.g. tools=[greet]"
        )
    return list(tools)


def _folder(what: str, path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise ConfigurationError(
            f'{what} takes a folder\'s path, not {type(path).__name__}: e.g. "project"'
        )
    folder = Path(path).resolve()
    if not folder.is_dir():
        raise ConfigurationError(f"{what} {os.fspath(path)!r} is not a folder; create it first")
    if folder == Path(folder.anchor):
        raise ConfigurationError(
            f"{what} is the root folder, which would put the whole file system in reach; "
            "give a project folder"
        )
    return folder
