"""Prompt caching: where a request's cache breakpoints go, and what breaks a cache hit.

A provider that caches prompts stores the request's *prefix* (tools, system prompt, the start
of the conversation) and, when a later request starts with the same prefix, reads it back
for a fraction of the input price. Anthropic caches only the prefixes that end at a block
marked with ``cache_control`` (a *breakpoint*), at most :data:`MAX_BREAKPOINTS` of them per
request; OpenAI caches every prompt of 1,024 tokens or more by itself.

:class:`CachePolicy` says which breakpoints to place; set it on the loop with
``LoopConfig(cache_policy=CachePolicy())`` and the Anthropic backends send ``cache_control``
there (the OpenAI backends ignore it: OpenAI needs none). :func:`compute_breakpoints` is the
pure placement, with a digest of each cached prefix, and :class:`CacheBreakDetector` is a hook
that warns when a prefix that was cached changes between two model calls, the usual reason
why a run pays full price where it expected cache reads. Cache reads and writes come back in
:class:`~looplet.types.Usage` (``cache_read_tokens``, ``cache_write_tokens``) and
:func:`looplet.pricing.cost_usd` prices them.

Example::

    config = LoopConfig(cache_policy=CachePolicy(ttl="1h"))
    loop = composable_loop(llm=AnthropicBackend(client, model="claude-sonnet-4"),
                           tools=tools, task="...", config=config)

The loop imports this module only when a run sets a cache policy.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from looplet._value_type import value_type
from looplet.errors import ConfigurationError

if TYPE_CHECKING:
    from looplet.backends.base import LLMRequest, ToolSchema
    from looplet.hooks import LoopEvent
    from looplet.messages import Message

__all__ = [
    "CACHE_TTLS",
    "MAX_BREAKPOINTS",
    "MEMORY_NAME",
    "CacheBreak",
    "CacheBreakDetector",
    "CacheBreakWarning",
    "CacheBreakpoint",
    "CacheControl",
    "CachePolicy",
    "breakpoint_positions",
    "compute_breakpoints",
]

#: The cache lifetimes Anthropic offers: five minutes (the default) and one hour.
CACHE_TTLS = ("5m", "1h")
#: The most ``cache_control`` blocks one Anthropic request may carry.
MAX_BREAKPOINTS = 4
#: The ``name`` of the system message that holds the run's memory (:mod:`looplet.memory`).
MEMORY_NAME = "memory"
#: The breakpoints' labels, in the order of the prefix (Anthropic caches tools, then the
#: system blocks, then the messages).
LABELS = ("tool_schemas", "system_prompt", "memory", "conversation")


@value_type
class CacheControl:
    """How long a cached prefix lives: ``ttl`` is ``"5m"`` (the default) or ``"1h"``.

    A 5-minute entry costs 1.25x the input price to write, a 1-hour one 2x; reading either
    costs 0.1x (Anthropic's prices). Each read renews the entry's lifetime.

    Raises:
        ConfigurationError: ``ttl`` is not one of :data:`CACHE_TTLS`.
    """

    ttl: str = "5m"

    def __post_init__(self) -> None:
        if self.ttl not in CACHE_TTLS:
            raise ConfigurationError(
                f"CacheControl.ttl must be '5m' or '1h', got {self.ttl!r}: Anthropic keeps a "
                "cached prefix for 5 minutes (the default) or, at twice the write price, 1 hour"
            )

    def to_anthropic(self) -> dict[str, str]:
        """The ``cache_control`` object of the Messages API (``ttl`` only when ``"1h"``, so
        the default request is the one every API version accepts)."""
        if self.ttl == "5m":
            return {"type": "ephemeral"}
        return {"type": "ephemeral", "ttl": self.ttl}


@value_type
class CachePolicy:
    """Which parts of each request to mark as cache breakpoints.

    Each field places at most one breakpoint, so a policy never exceeds Anthropic's limit of
    :data:`MAX_BREAKPOINTS`. A breakpoint caches everything before it too, in the order
    tools, system, messages; several let a later part change without losing the earlier
    ones (a new memory text still reads the system prompt and tools from the cache).

    Attributes:
        system_prompt: mark the system prompt (the first system message).
        tool_schemas: mark the last tool schema, which caches all of them.
        memory: mark the memory block (the system message named :data:`MEMORY_NAME` that
            ``LoopConfig.memory_sources`` adds after the system prompt).
        conversation: mark the end of the conversation (the last tool result or
            assistant message; before the first reply, the task), so that the next step
            reads this step's request from the cache and pays full price only for what the
            step added. This is where a multi-step run saves most. Anthropic finds the
            previous breakpoint by looking back at most 20 content blocks, which a step of
            up to about nine parallel tool calls stays within.
        ttl: the lifetime of every breakpoint's entry, ``"5m"`` or ``"1h"``
            (one per policy: Anthropic wants longer-lived entries before shorter ones).

    Prefixes shorter than the model's minimum (1,024 tokens for most Claude models, more
    for some) are not cached and cost the normal price; the request still succeeds.

    Raises:
        ConfigurationError: a field that is not a bool, or a ``ttl`` that is not ``"5m"``
            or ``"1h"``.
    """

    system_prompt: bool = True
    tool_schemas: bool = True
    memory: bool = True
    conversation: bool = True
    ttl: str = "5m"

    def __post_init__(self) -> None:
        for name in LABELS:
            value = getattr(self, name)
            if type(value) is not bool:
                raise ConfigurationError(f"CachePolicy.{name} must be True or False, got {value!r}")
        CacheControl(self.ttl)  # checks the ttl

    @property
    def control(self) -> CacheControl:
        """The :class:`CacheControl` every breakpoint of this policy carries."""
        return CacheControl(self.ttl)


@value_type
class CacheBreakpoint:
    """One breakpoint of a request.

    Attributes:
        label: which field of the policy placed it: ``tool_schemas``, ``system_prompt``,
            ``memory`` or ``conversation``.
        index: where: for ``tool_schemas`` the position of the tool in ``request.tools``,
            otherwise of the message in ``request.messages``.
        digest: the first 16 hex digits of a SHA-256 of the prefix it caches (the tools,
            then the system messages, then the other messages, up to and including this
            one). Two requests whose breakpoints have equal digests share that prefix.
        control: the ``cache_control`` it carries.
    """

    label: str
    index: int
    digest: str
    control: CacheControl


def breakpoint_positions(
    messages: Sequence[Message], tools: Sequence[ToolSchema], policy: CachePolicy
) -> list[tuple[str, int]]:
    """Where ``policy`` places its breakpoints: ``(label, index)`` pairs in prefix order.

    The index is the tool's position in ``tools`` for ``tool_schemas`` and the message's in
    ``messages`` for the others. A part that the request does not have (no tools, no memory,
    an empty system prompt) gets no breakpoint. The system prompt is the first system
    message that is not the memory. The conversation's breakpoint goes on the last assistant
    or tool message (the first user message, the task, before there is one): user messages
    after it may be sent for this call alone (a ``pre_prompt`` hook's text), and a prefix
    ending in one would be cached for nothing. No digests: this is what a backend needs.
    """
    found: list[tuple[str, int]] = []
    if policy.tool_schemas and tools:
        found.append(("tool_schemas", len(tools) - 1))
    system = memory = first = last = -1
    for i, message in enumerate(messages):
        if message.role in ("assistant", "tool"):
            last = i
        elif message.role != "system":
            first = i if first < 0 else first
        elif message.name == MEMORY_NAME:
            if message.content:
                memory = i
        elif system < 0 and message.content:
            system = i
    if policy.system_prompt and system >= 0:
        found.append(("system_prompt", system))
    if policy.memory and memory >= 0:
        found.append(("memory", memory))
    if policy.conversation and max(first, last) >= 0:
        found.append(("conversation", last if last >= 0 else first))
    return found


def compute_breakpoints(
    request: LLMRequest, policy: CachePolicy | None = None
) -> tuple[CacheBreakpoint, ...]:
    """The breakpoints ``policy`` (default: ``request.cache``) places in ``request``, with
    the digest of each cached prefix, in prefix order. No policy: none.

    Example::

        points = compute_breakpoints(request, CachePolicy())
        [(p.label, p.index) for p in points]  # [('tool_schemas', 1), ('system_prompt', 0)...]
    """
    from looplet.backends.base import LLMRequest

    if not isinstance(request, LLMRequest):
        raise ConfigurationError(
            f"compute_breakpoints(request) takes a looplet LLMRequest, got "
            f"{type(request).__name__}; e.g. the request of an 'llm_call' event "
            "(event.data['request'])"
        )
    policy = policy if policy is not None else request.cache
    if policy is None:
        return ()
    _check_policy("compute_breakpoints(request, policy)", policy)
    positions = breakpoint_positions(request.messages, request.tools, policy)
    digests = _prefix_digests(request, positions)
    control = policy.control
    return tuple(
        CacheBreakpoint(label, index, digest, control)
        for (label, index), digest in zip(positions, digests, strict=True)
    )


def _check_policy(where: str, policy: object) -> None:
    if not isinstance(policy, CachePolicy):
        raise ConfigurationError(
            f"{where} must be a looplet.cache.CachePolicy, got {policy!r}; e.g. "
            "CachePolicy() or CachePolicy(ttl='1h')"
        )


def _prefix_digests(request: LLMRequest, positions: Sequence[tuple[str, int]]) -> list[str]:
    """The digest of the prefix up to each position, in one pass over the request."""
    from looplet.record.codec import encode_message

    wanted = {("tool" if label == "tool_schemas" else "message", i) for label, i in positions}
    taken: dict[tuple[str, int], str] = {}
    running = hashlib.sha256()
    messages = request.messages
    order = [i for i, m in enumerate(messages) if m.role == "system"]
    order += [i for i, m in enumerate(messages) if m.role != "system"]
    parts: list[tuple[tuple[str, int], Any]] = [
        (("tool", i), schema) for i, schema in enumerate(request.tools)
    ]
    parts += [(("message", i), encode_message(messages[i])) for i in order]
    for key, part in parts:
        if len(taken) == len(wanted):
            break
        running.update(json.dumps(part, sort_keys=True, default=repr).encode())
        running.update(b"\x1e")  # a separator, so that parts cannot run together
        if key in wanted:
            taken[key] = running.hexdigest()[:16]
    return [taken[("tool" if label == "tool_schemas" else "message", i)] for label, i in positions]


class CacheBreakWarning(UserWarning):
    """A prefix that was cached changed between two model calls (see
    :class:`CacheBreakDetector`): the provider writes it again instead of reading it."""


@value_type
class CacheBreak:
    """A cache break :class:`CacheBreakDetector` saw.

    Attributes:
        step: the step whose request broke the cache.
        label: the breakpoint whose prefix changed (see :class:`CacheBreakpoint`).
        message: what changed and what to do about it.
    """

    step: int
    label: str
    message: str


_ADVICE = {
    "tool_schemas": "keep the tool set and its descriptions the same for the whole run",
    "system_prompt": (
        "keep the system prompt the same for the whole run: per-step text belongs in a "
        "user message (a pre_prompt hook) or in memory"
    ),
    "memory": (
        "the memory text changed, and with it the prefix of the whole conversation after it; "
        "memory that changes on every call leaves only the tools and system prompt cached"
    ),
    "conversation": (
        "an earlier message was changed or removed (expected after a compaction; otherwise "
        "a hook is rewriting the history)"
    ),
}


class CacheBreakDetector:
    """A hook that warns when a prefix cached by the previous model call changes.

    On each ``llm_call`` event it computes the request's breakpoints (with the request's
    own policy, else ``policy``, else the default :class:`CachePolicy`) and compares each
    with the previous call's: the tools, the system prompt and the memory must hash the
    same, and the conversation up to the previous call's last message must be unchanged.
    Each change is kept in :attr:`breaks` and, with ``warn=True``, issued as a
    :class:`CacheBreakWarning`. Useful with OpenAI too, whose automatic cache also needs an
    unchanged prefix.

    Example::

        detector = CacheBreakDetector()
        list(composable_loop(llm=llm, tools=tools, task="...", hooks=[detector]))
        assert detector.breaks == []

    Args:
        policy: the breakpoints to watch when a request carries no policy of its own.
        warn: issue a :class:`CacheBreakWarning` for each break (else only record it).
    """

    def __init__(self, policy: CachePolicy | None = None, *, warn: bool = True) -> None:
        if policy is not None:
            _check_policy("CacheBreakDetector(policy=...)", policy)
        self.policy = policy
        self.warn = warn
        #: Every break seen, in order.
        self.breaks: list[CacheBreak] = []
        self._previous: dict[str, CacheBreakpoint] = {}
        self._previous_step = 0

    def on_event(self, event: LoopEvent) -> None:
        """Check the request of each ``llm_call`` event against the previous one.

        Only the earliest changed prefix is reported: every later one contains it, so it
        changed too.
        """
        if event.kind != "llm_call":
            return
        request = event.data["request"]
        policy = request.cache or self.policy or CachePolicy()
        points = {p.label: p for p in compute_breakpoints(request, policy)}
        previous, self._previous = self._previous, points
        before_step, self._previous_step = self._previous_step, event.step_num
        for label, before in previous.items():
            advice = _changed(request, label, before, points.get(label))
            if advice is None:
                continue
            text = (
                f"step {event.step_num}: the cached prefix up to the {label.replace('_', ' ')} "
                f"changed since the model call of step {before_step}, so the provider writes "
                f"it again instead of reading it: {advice}"
            )
            self.breaks.append(CacheBreak(event.step_num, label, text))
            if self.warn:
                warnings.warn(CacheBreakWarning(text), stacklevel=2)
            return


def _changed(
    request: LLMRequest, label: str, before: CacheBreakpoint, now: CacheBreakpoint | None
) -> str | None:
    """Why the prefix ``before`` cached is not in ``request``, or ``None`` if it is."""
    if label == "conversation":
        # The conversation grows: compare the new request's prefix at the old end.
        if before.index >= len(request.messages):
            return _ADVICE[label]
        (digest,) = _prefix_digests(request, [(label, before.index)])
        return None if digest == before.digest else _ADVICE[label]
    if now is None:
        return f"this request has no {label.replace('_', ' ')}; " + _ADVICE[label]
    return None if now.digest == before.digest else _ADVICE[label]
