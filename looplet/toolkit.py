"""Ready-made tools and registries: ``register_done_tool``, ``register_think_tool``, ``tools_from``.

The conveniences of the original looplet (``register_think_tool`` in 0.1.7, the others from
0.2.0), with its call shapes: ``tools_from([search, lookup], include_done=True)`` builds a
:class:`~looplet.tools.BaseToolRegistry` from functions, ``@tool`` specs or a module of them;
``register_done_tool(tools)`` adds the ``done`` tool a loop ends with; ``register_think_tool``
adds a free ``think`` tool. Also importable from :mod:`looplet.tools`, as in the original.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from looplet.errors import ToolRegistrationError
from looplet.tools import BaseToolRegistry
from looplet.toolspec import ToolSpec

__all__ = ["register_done_tool", "register_think_tool", "tools_from"]

_DONE_DESCRIPTION = (
    "Signal that the task is complete. Call this when you have finished the task and have no "
    "more actions to take. Provide a brief summary of what was accomplished."
)
_THINK_DESCRIPTION = (
    "Pause to reason without taking an action: weigh hypotheses, plan the next steps, or "
    "reflect on what you found so far. Does not count against your step budget; the "
    "analysis is kept in the step log."
)


def register_done_tool(
    registry: BaseToolRegistry,
    *,
    name: str = "done",
    parameters: Mapping[str, Any] | None = None,
) -> ToolSpec:
    """Register the tool whose successful call ends the run.

    Its call returns ``{"status": "completed", **arguments}``, which the trajectory keeps as
    the run's final output.

    Args:
        registry: the registry to add it to.
        name: the tool's name; it must match ``LoopConfig.done_tool`` (``"done"``).
        parameters: its parameters (any form :class:`~looplet.tools.ToolSpec` accepts);
            by default one string, ``{"summary": "Brief summary of what was accomplished"}``.

    Returns:
        The registered spec.

    Raises:
        ToolRegistrationError: a tool of that name is already registered.
    """

    def done(**arguments: Any) -> dict[str, Any]:
        return {"status": "completed", **arguments}

    params = parameters if parameters else {"summary": "Brief summary of what was accomplished"}
    return registry.register(
        ToolSpec(name=name, description=_DONE_DESCRIPTION, parameters=params, execute=done)
    )


def register_think_tool(registry: BaseToolRegistry) -> ToolSpec:
    """Register ``think(analysis)``: a free tool (it uses no step) for reasoning out loud.

    Its call returns ``{"acknowledged": True, "analysis": analysis}``. It is
    ``concurrent_safe`` and ``free``; a run's ``max_llm_calls`` still bounds a model that
    only thinks.

    Returns:
        The registered spec.
    """

    def think(analysis: str = "") -> dict[str, Any]:
        return {"acknowledged": True, "analysis": analysis}

    return registry.register(
        ToolSpec(
            name="think",
            description=_THINK_DESCRIPTION,
            parameters={"analysis": "Your reasoning, analysis, or plan (free text)"},
            execute=think,
            concurrent_safe=True,
            free=True,
        )
    )


def tools_from(
    tools: ModuleType | Iterable[ToolSpec | Callable[..., Any]],
    *,
    include_think: bool = False,
    include_done: bool = False,
    done_name: str = "done",
    done_parameters: Mapping[str, Any] | None = None,
) -> BaseToolRegistry:
    """A registry of ``tools``: ``@tool`` specs and plain functions (made tools with
    :func:`~looplet.tools.tool`: name, docstring and type hints), or a module of them.

    From a module, the names in its ``__all__`` are taken if it has one, else every
    ``ToolSpec`` in it and every public function defined in it (not imported); in both
    cases only specs and functions, never classes or constants.

    Example::

        tools = tools_from([search, lookup], include_done=True)
        tools = tools_from(my_agent.tools)  # a module of @tool functions

    Args:
        tools: the tools, in registration order, or a module holding them.
        include_think: also register :func:`register_think_tool`'s ``think``.
        include_done: also register :func:`register_done_tool`'s done tool.
        done_name: the done tool's name.
        done_parameters: the done tool's parameters.

    Raises:
        ToolRegistrationError: a function without a docstring (the model needs a
            description), a duplicate name, an item that is no tool, or a module without
            any tool.
    """
    items = _module_tools(tools) if isinstance(tools, ModuleType) else tools
    if isinstance(items, ToolSpec | str | bytes) or not isinstance(items, Iterable):
        raise ToolRegistrationError(
            f"tools_from() takes a list of tools (ToolSpecs or functions) or a module, got "
            f"{type(items).__name__} {items!r}; wrap a single tool in a list: [my_tool]."
        )
    registry = BaseToolRegistry(items)
    if include_think:
        register_think_tool(registry)
    if include_done:
        register_done_tool(registry, name=done_name, parameters=done_parameters)
    return registry


def _module_tools(module: ModuleType) -> list[ToolSpec | Callable[..., Any]]:
    names = getattr(module, "__all__", None)
    if names is not None:
        candidates = [getattr(module, name) for name in names]
    else:
        candidates = [
            value
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (
                isinstance(value, ToolSpec)
                or (inspect.isfunction(value) and value.__module__ == module.__name__)
            )
        ]
    found: list[ToolSpec | Callable[..., Any]] = [
        c for c in candidates if isinstance(c, ToolSpec) or inspect.isfunction(c)
    ]
    if not found:
        where = "its __all__" if names is not None else "it"
        raise ToolRegistrationError(
            f"module {module.__name__!r} has no tools: {where} holds no ToolSpec and no "
            "public function. Decorate its tool functions with @tool, or pass a list."
        )
    return found
