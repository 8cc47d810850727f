"""Model backends: the protocol every backend implements, and the OpenAI and Anthropic ones.

Provider SDKs are imported only when their backend is first used, so ``import looplet`` stays
free of third-party imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from looplet.backends.base import (
    AsyncLLMBackend,
    LLMBackend,
    LLMRequest,
    LLMResponse,
    RetryPolicy,
    ToolSchema,
)
from looplet.errors import LLMError

if TYPE_CHECKING:
    from looplet.backends.anthropic import AnthropicBackend, AsyncAnthropicBackend
    from looplet.backends.openai import AsyncOpenAIBackend, OpenAIBackend

__all__ = [
    "AnthropicBackend",
    "AsyncAnthropicBackend",
    "AsyncLLMBackend",
    "AsyncOpenAIBackend",
    "LLMBackend",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "OpenAIBackend",
    "RetryPolicy",
    "ToolSchema",
]

_LAZY = {
    "AnthropicBackend": "looplet.backends.anthropic",
    "AsyncAnthropicBackend": "looplet.backends.anthropic",
    "OpenAIBackend": "looplet.backends.openai",
    "AsyncOpenAIBackend": "looplet.backends.openai",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'looplet.backends' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
