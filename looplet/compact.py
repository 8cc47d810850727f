"""Keeping the conversation within a context budget: compaction services and the budget.

A run's conversation grows by a turn per model call. :class:`ContextBudget` (on
``LoopConfig.context_budget``) bounds the prompt: before each model call the engine measures
the request (with the budget's one estimator, or from the provider's ``usage.input_tokens``
of the last call when that says more) and, when it is over ``max_tokens``, asks the budget's
:class:`CompactService` for a smaller conversation, down to ``target`` of the budget. When the
provider still answers "context length exceeded", the engine compacts and asks once more.

Compaction only changes what the model is sent next: the run's message list is replaced by a
new one, so requests already built keep their views, and the steps already yielded (and the
trajectory's steps) are never touched. Built-in services, all keeping whole turns (an
assistant message with every tool message answering it) and the system prompt and task:
:class:`TruncateCompact`, :class:`SummarizeCompact`, :class:`PruneCompact`, chained with
:func:`compact_chain`. They live in :mod:`looplet._compact_strategies` (loaded on first
use); the engine's use of them is in :mod:`looplet.engine`.

Example::

    config = LoopConfig(max_steps=200, context_budget=ContextBudget(max_tokens=16_000))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, final, runtime_checkable

from looplet.backends.base import LLMRequest, LLMResponse
from looplet.errors import ConfigurationError, LLMError
from looplet.messages import Message
from looplet.types import ToolCall

if TYPE_CHECKING:
    from looplet._compact_strategies import PruneCompact, SummarizeCompact, TruncateCompact
    from looplet.backends.base import ToolSchema

__all__ = [
    "NOTE_PREFIX",
    "CompactChain",
    "CompactOutcome",
    "CompactService",
    "CompactionRecord",
    "ContextBudget",
    "ContextMeter",
    "PruneCompact",
    "SummarizeCompact",
    "TruncateCompact",
    "check_turns",
    "compact_chain",
    "compact_steps",
    "estimate_tokens",
    "is_context_overflow",
]

#: Every message that compaction writes (notes, summaries, cleared results) starts with this.
NOTE_PREFIX = "[looplet compaction]"

#: Tokens counted per message on top of its text (role, separators), as providers charge.
MESSAGE_OVERHEAD_TOKENS = 4

# A service asking for more model calls than this in one compaction is looping.
_MAX_MODEL_CALLS = 8

# Status codes a provider answers "the prompt is too long" with (Anthropic's request_too_large
# is 413), and phrases of those answers: OpenAI ("This model's maximum context length is ...",
# code context_length_exceeded), Anthropic ("prompt is too long: 210000 tokens > 200000
# maximum"), and compatible servers that copy one of them.
_OVERFLOW_STATUS = frozenset({400, 413})
_OVERFLOW_PHRASES = (
    "context_length_exceeded",
    "context length",
    "context window",
    "prompt is too long",
    "input is too long",
    "reduce the length of the messages",
)


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` is: one per four characters, rounded up.

    The default estimator of :class:`ContextBudget`; pass a real tokenizer's count
    (``lambda s: len(enc.encode(s))``) for exact numbers.
    """
    return math.ceil(len(text) / 4)


@final
@dataclass(frozen=True, slots=True)
class ContextBudget:
    """How large the prompt may get, and how to shrink it when it gets there.

    Set it on ``LoopConfig.context_budget``. Before each model call the prompt (messages
    and tool schemas) is measured; above ``max_tokens`` the conversation is compacted down
    to ``target`` of the room left. A provider's "context length exceeded" then triggers
    one more compaction and one retry. ``max_tokens`` bounds the prompt only: leave room
    for the reply (``LoopConfig.max_tokens``) inside the model's window.

    Attributes:
        max_tokens: the most prompt tokens a request may take.
        target: the fraction of ``max_tokens`` a compaction aims for (0 < target <= 1);
            lower means fewer, larger compactions.
        strategy: the :class:`CompactService` to use; ``None`` prunes old tool results,
            then drops old turns (``compact_chain(PruneCompact(), TruncateCompact())``),
            never calling the model.
        estimator: tokens of a text; :func:`estimate_tokens` (characters / 4) by default.
        use_reported_usage: measure with the provider's ``usage.input_tokens`` of the last
            call (plus the estimate of what was added since) when it is larger than the
            estimate.
    """

    max_tokens: int
    target: float = 0.6
    strategy: CompactService | None = None
    estimator: Callable[[str], int] = estimate_tokens
    use_reported_usage: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool):
            raise ConfigurationError(
                f"ContextBudget.max_tokens must be a positive int, got {self.max_tokens!r}"
            )
        if self.max_tokens < 1:
            raise ConfigurationError(
                f"ContextBudget.max_tokens must be a positive int, got {self.max_tokens!r}"
            )
        if not isinstance(self.target, int | float) or not 0 < self.target <= 1:
            raise ConfigurationError(
                f"ContextBudget.target must be a fraction in (0, 1], got {self.target!r}; "
                "0.6 compacts the conversation to 60% of max_tokens"
            )
        if self.strategy is not None and not callable(getattr(self.strategy, "compact", None)):
            raise ConfigurationError(
                f"ContextBudget.strategy must have compact(messages, *, budget, llm), got "
                f"{type(self.strategy).__name__}; use TruncateCompact(), SummarizeCompact(), "
                "PruneCompact() or compact_chain(...)"
            )
        if not callable(self.estimator):
            raise ConfigurationError(
                f"ContextBudget.estimator must be a callable str -> int, got {self.estimator!r}"
            )

    @property
    def target_tokens(self) -> int:
        """The size a compaction aims for: ``target`` of ``max_tokens``."""
        return max(1, int(self.max_tokens * self.target))

    def count(self, messages: Iterable[Message]) -> int:
        """The estimated tokens of ``messages``."""
        return sum(self.count_message(m) for m in messages)

    def count_message(self, message: Message) -> int:
        """The estimated tokens of one message: its text, its tool calls, and the overhead."""
        estimate = self.estimator
        tokens = MESSAGE_OVERHEAD_TOKENS
        if message.content:
            tokens += estimate(message.content)
        for call in message.tool_calls:
            tokens += estimate(call.tool) + estimate(_arguments_text(call))
        return tokens

    def fits(self, messages: Iterable[Message]) -> bool:
        """Whether ``messages`` are within :attr:`target_tokens`."""
        return self.count(messages) <= self.target_tokens

    def with_max_tokens(self, max_tokens: int) -> ContextBudget:
        """This budget with another ``max_tokens`` (at least 1)."""
        return dataclasses.replace(self, max_tokens=max(1, int(max_tokens)))

    def resolved_strategy(self) -> CompactService:
        """:attr:`strategy`, or the default chain when it is ``None``."""
        if self.strategy is not None:
            return self.strategy
        from looplet._compact_strategies import PruneCompact, TruncateCompact

        return compact_chain(PruneCompact(), TruncateCompact())


@dataclass(frozen=True, slots=True)
class CompactOutcome:
    """What a compaction produced.

    Attributes:
        messages: the new conversation (the input unchanged when nothing could be dropped).
        reason: what was done, for people (``"truncate: dropped 3 turns (9 messages)"``).
        before_tokens: the estimated tokens before.
        after_tokens: the estimated tokens after.
        llm_calls: how many model calls the compaction made.
    """

    messages: list[Message]
    reason: str
    before_tokens: int
    after_tokens: int
    llm_calls: int = 0


@runtime_checkable
class CompactService(Protocol):
    """Makes a conversation smaller. Implement ``compact``.

    A service must keep whole turns (an assistant message together with every tool message
    answering its calls) and should keep the leading system prompt and task message. Run by
    the loop, ``llm.complete(request)`` goes through the loop's driver (sync or async) and
    ``compact`` may be called again from the start to replay its answer, so it must build
    the same requests from the same input and have no other side effects.
    """

    def compact(
        self, messages: Sequence[Message], *, budget: ContextBudget, llm: Any
    ) -> CompactOutcome:
        """A smaller conversation, aiming for ``budget.target_tokens``.

        Args:
            messages: the conversation, system prompt first. Do not modify it.
            budget: the budget to fit, with the estimator to measure by.
            llm: a backend with ``complete(request)``, for services that ask the model.
        """
        ...


@final
class CompactChain:
    """Runs services in order, each on the previous one's result, until the conversation fits.

    Build it with :func:`compact_chain`.
    """

    __slots__ = ("services",)

    def __init__(self, services: Sequence[CompactService]) -> None:
        self.services = tuple(services)

    def __repr__(self) -> str:
        return f"compact_chain({', '.join(map(repr, self.services))})"

    def compact(
        self, messages: Sequence[Message], *, budget: ContextBudget, llm: Any = None
    ) -> CompactOutcome:
        """Apply each service until :meth:`ContextBudget.fits`; the later ones are skipped."""
        current = list(messages)
        before = budget.count(current)
        reasons: list[str] = []
        calls = 0
        for service in self.services:
            if budget.fits(current):
                break
            outcome = service.compact(current, budget=budget, llm=llm)
            calls += outcome.llm_calls
            if outcome.messages != current:
                reasons.append(outcome.reason)
                current = list(outcome.messages)
        reason = "; ".join(reasons) or "nothing could be dropped"
        return CompactOutcome(current, reason, before, budget.count(current), calls)


def compact_chain(*services: CompactService) -> CompactChain:
    """A service that tries ``services`` in order until the conversation fits the target.

    Each runs on what the previous one left; once the conversation fits, the rest are
    skipped. ``compact_chain(PruneCompact(), SummarizeCompact())`` clears old tool
    outputs first and asks the model for a summary only when that is not enough.

    Raises:
        ConfigurationError: no service given, or one without ``compact``.
    """
    if not services:
        raise ConfigurationError(
            "compact_chain() needs at least one service, e.g. "
            "compact_chain(PruneCompact(), TruncateCompact())"
        )
    for i, service in enumerate(services):
        if not callable(getattr(service, "compact", None)):
            raise ConfigurationError(
                f"compact_chain(): argument {i} ({type(service).__name__}) has no "
                "compact(messages, *, budget, llm) method"
            )
    return CompactChain(services)


@dataclass(frozen=True, slots=True)
class CompactionRecord:
    """One compaction during a run.

    Attributes:
        step: the number of the step the next model call was for.
        trigger: ``"pressure"`` (the budget was exceeded) or ``"context_length_exceeded"``
            (the provider refused the request).
        reason: what the service did.
        before_tokens: estimated tokens of the conversation before.
        after_tokens: estimated tokens after.
        before_messages: messages before.
        after_messages: messages after.
        llm_calls: model calls the compaction made.
    """

    step: int
    trigger: str
    reason: str
    before_tokens: int
    after_tokens: int
    before_messages: int
    after_messages: int
    llm_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return dataclasses.asdict(self)


def is_context_overflow(error: object) -> bool:
    """Whether ``error`` is a provider's "the prompt is longer than the context window".

    True for an :class:`LLMError` of kind ``context_length_exceeded``, or with status 400
    or 413 whose message says so (OpenAI's ``context_length_exceeded`` / "maximum context
    length", Anthropic's "prompt is too long").
    """
    if not isinstance(error, LLMError):
        return False
    if error.kind == "context_length_exceeded":
        return True
    if error.status not in _OVERFLOW_STATUS:
        return False
    text = error.provider_message.lower()
    return any(phrase in text for phrase in _OVERFLOW_PHRASES)


def check_turns(messages: Sequence[Message], service: object) -> None:
    """Check that every tool message answers a call of the assistant message right before it,
    and every call is answered.

    Raises:
        ConfigurationError: naming ``service``, which returned ``messages``.
    """
    pending: set[str] = set()
    opener = -1
    for i, message in enumerate(messages):
        if message.role == "tool":
            if message.tool_call_id not in pending:
                _broken_turn(
                    service,
                    f"messages[{i}] answers call {message.tool_call_id!r}, "
                    "which no assistant message right before it made",
                )
            pending.discard(message.tool_call_id)
            continue
        if pending:
            _broken_turn(
                service,
                f"the calls {sorted(pending)} of messages[{opener}] are "
                f"not answered before messages[{i}]",
            )
        if message.role == "assistant":
            pending = {c.call_id for c in message.tool_calls}
            opener = i
    if pending:
        _broken_turn(
            service, f"the calls {sorted(pending)} of messages[{opener}] are never answered"
        )


def _broken_turn(service: object, problem: str) -> NoReturn:
    raise ConfigurationError(
        f"{type(service).__name__}.compact() returned a conversation that splits a tool "
        f"turn: {problem}. Keep or drop each assistant message together with all the tool "
        "messages answering it."
    )


# -- running a service without doing I/O --------------------------------------------------------


class _ModelCallNeeded(BaseException):
    # A BaseException, so that a service's `except Exception` fallback cannot swallow it.
    def __init__(self, request: LLMRequest) -> None:
        super().__init__(request)
        self.request = request


class _ReplayModel:
    """Answers a service's model calls with the replies the driver already got; the first
    call without a reply yet stops the service, so the engine can ask the driver."""

    __slots__ = ("_asked", "_replies", "provider")

    def __init__(self, replies: list[tuple[LLMRequest, Any]]) -> None:
        self._replies = replies
        self._asked = 0
        self.provider = "compaction"

    def complete(self, request: LLMRequest) -> LLMResponse:
        if self._asked == len(self._replies):
            raise _ModelCallNeeded(request)
        asked, reply = self._replies[self._asked]
        self._asked += 1
        if asked != request:
            raise ConfigurationError(
                "a compaction service asked the model something else when run again on the "
                f"same conversation (call {self._asked}); CompactService.compact must build "
                "the same requests from the same input"
            )
        if isinstance(reply, BaseException):
            raise reply
        return reply  # type: ignore[no-any-return]


def compact_steps(
    service: CompactService, messages: Sequence[Message], budget: ContextBudget
) -> Generator[LLMRequest, Any, CompactOutcome]:
    """Run ``service`` without doing I/O: yield each model request it makes, receive the
    reply (an :class:`LLMResponse`, or the exception the call failed with), return the
    outcome.

    The service runs again from the start after each reply, answered from the replies so
    far; this is how a plain ``compact(..., llm=...)`` call goes through the sync or the
    async driver.

    Raises:
        ConfigurationError: the service returned something else than a
            :class:`CompactOutcome`, or made more than eight model calls.
    """
    replies: list[tuple[LLMRequest, Any]] = []
    while True:
        try:
            outcome = service.compact(messages, budget=budget, llm=_ReplayModel(replies))
        except _ModelCallNeeded as need:
            if len(replies) >= _MAX_MODEL_CALLS:
                raise ConfigurationError(
                    f"{type(service).__name__}.compact() asked for more than "
                    f"{_MAX_MODEL_CALLS} model calls in one compaction"
                ) from None
            reply = yield need.request
            replies.append((need.request, reply))
            continue
        if not isinstance(outcome, CompactOutcome):
            raise ConfigurationError(
                f"{type(service).__name__}.compact() must return a CompactOutcome, got "
                f"{type(outcome).__name__}"
            )
        return outcome


# -- measuring the prompt before each model call ------------------------------------------------


class ContextMeter:
    """The engine's running measure of the prompt against a :class:`ContextBudget`.

    Counts each message once (the conversation only grows until a compaction replaces the
    list), and remembers what the provider reported for the last request.

    Attributes:
        budget: the budget.
        limit: the most tokens a request may take: ``budget.max_tokens``, lowered when
            the provider refuses a request the budget allowed.
    """

    __slots__ = (
        "_counted",
        "_counted_list",
        "_reported",
        "_scale",
        "_schema_tokens",
        "_schemas",
        "_sent_estimate",
        "_sent_list",
        "_tokens",
        "budget",
        "limit",
    )

    def __init__(self, budget: ContextBudget) -> None:
        self.budget = budget
        self.limit = budget.max_tokens
        self._counted_list: list[Message] | None = None
        self._counted = self._tokens = 0
        self._sent_list: list[Message] | None = None
        self._sent_estimate = self._reported = 0
        self._schemas: object = None
        self._schema_tokens = 0
        # How many tokens the provider counts per estimated token (never below 1).
        self._scale = 1.0

    @property
    def scale(self) -> float:
        """How many tokens the provider counts per estimated one (1.0 until it reports)."""
        return self._scale

    def calibrate(self, limit: int, scale: float) -> None:
        """Take back a calibration saved earlier (a checkpoint's ``limit`` and ``scale``).

        The limit never rises above the budget's ``max_tokens`` (the budget may have been
        lowered since), and the scale never drops below 1.
        """
        self.limit = max(1, min(int(limit), self.budget.max_tokens))
        self._scale = max(1.0, float(scale))

    def conversation_tokens(self, messages: list[Message]) -> int:
        """The estimated tokens of ``messages`` (the run's list), counted incrementally."""
        if messages is not self._counted_list or len(messages) < self._counted:
            self._counted_list, self._counted, self._tokens = messages, 0, 0
        count = self.budget.count_message
        for message in messages[self._counted :]:
            self._tokens += count(message)
        self._counted = len(messages)
        return self._tokens

    def overhead(self, extra: Sequence[Message], tools: Sequence[ToolSchema]) -> int:
        """The estimated tokens of a request besides the conversation: extras and tools."""
        if tools is not self._schemas:
            import json

            self._schemas = tools
            text = json.dumps(list(tools), default=str, ensure_ascii=False) if tools else ""
            self._schema_tokens = self.budget.estimator(text) if text else 0
        return self.budget.count(extra) + self._schema_tokens

    def measure(
        self, messages: list[Message], extra: Sequence[Message], tools: Sequence[ToolSchema]
    ) -> int:
        """The tokens a request of ``messages`` + ``extra`` with ``tools`` will take.

        The estimate (scaled up by how much more the provider counted last time), or, when
        larger, the provider's count of the last request plus the estimate of what was
        added since.
        """
        conversation = self.conversation_tokens(messages)
        overhead = self.overhead(extra, tools)
        size = math.ceil((conversation + overhead) * self._scale)
        if self._reported and messages is self._sent_list:
            # What changed since the counted request; its extras (the memory, which every
            # request carries) were counted in it, so they are not added a second time.
            added = conversation + overhead - self._sent_estimate
            size = max(size, self._reported + math.ceil(added * self._scale))
        return size

    def room(self, extra: Sequence[Message], tools: Sequence[ToolSchema]) -> ContextBudget:
        """The budget the conversation alone must fit so that the request fits the limit.

        When the provider has counted more tokens than the estimate, the room shrinks by
        that ratio, so that a compaction aimed at the estimate fits the provider's count.
        """
        room = (self.limit / self._scale) - self.overhead(extra, tools)
        return self.budget.with_max_tokens(math.floor(room))

    def sent(
        self, messages: list[Message], extra: Sequence[Message], tools: Sequence[ToolSchema]
    ) -> None:
        """Note that a request of ``messages`` + ``extra`` with ``tools`` is being sent."""
        self._sent_list = messages
        self._sent_estimate = self.conversation_tokens(messages) + self.overhead(extra, tools)
        self._reported = 0

    def replied(self, reply: object) -> None:
        """Take the provider's count of the prompt from ``reply``'s usage, when it has one."""
        if not self.budget.use_reported_usage or not isinstance(reply, LLMResponse):
            return
        reported = reply.usage.input_tokens
        if reported > 0 and self._sent_list is not None:
            self._reported = reported
            self._scale = max(1.0, reported / max(self._sent_estimate, 1))


def _arguments_text(call: ToolCall) -> str:
    if call.raw_arguments is not None:
        return call.raw_arguments
    if not call.args:
        return "{}"
    import json

    return json.dumps(call.args, ensure_ascii=False, default=str)


def __getattr__(name: str) -> Any:
    # The built-in strategies load on first use, so that `import looplet` does not pay for
    # them; they import this module, so they cannot be imported at its top either.
    if name in _STRATEGIES:
        from looplet import _compact_strategies

        return getattr(_compact_strategies, name)
    if name == "PruneToolResults":  # the original's name for PruneCompact, kept deprecated
        from looplet._exports import deprecated_alias

        return deprecated_alias(__name__, name, "looplet.compact.PruneCompact")
    raise AttributeError(f"module 'looplet.compact' has no attribute {name!r}")


_STRATEGIES = frozenset({"PruneCompact", "SummarizeCompact", "TruncateCompact"})
