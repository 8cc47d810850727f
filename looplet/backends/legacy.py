"""Adapter for backends written against the original looplet: ``generate(prompt) -> str``.

Such a backend has no native tool calling, so the conversation is rendered as text (the
tools, the JSON reply protocol, and the whole transcript including tool results) and the
reply is parsed from the original JSON-text protocol
(``{"tool": "greet", "args": {"name": "Alice"}}``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

from looplet.backends.base import LLMRequest, LLMResponse
from looplet.parse import parse_text_reply

__all__ = ["LegacyTextBackend", "render_transcript"]

_PROTOCOL = (
    "Reply with one JSON object and nothing else: "
    '{"tool": "<tool name>", "args": {...}, "reasoning": "<why>"} to call one tool, or '
    '{"tools": [{"tool": ..., "args": ...}, ...]} to call several. '
    "Reply in plain text only when you have nothing left to do."
)


class LegacyTextBackend:
    """Wraps an object with ``generate(prompt, *, max_tokens, system_prompt, temperature)``.

    The loop uses it automatically when ``llm`` has ``generate`` but no ``complete``.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.provider = getattr(backend, "provider", type(backend).__name__)

    def _kwargs(self, request: LLMRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "system_prompt": request.system_prompt,
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        return kwargs

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Render ``request`` as text, call ``generate``, parse the JSON-text reply."""
        text = self.backend.generate(render_transcript(request), **self._kwargs(request))
        return _to_response(text)

    async def acomplete(self, request: LLMRequest) -> LLMResponse:
        """Async form: awaits an async ``generate``, threads a sync one."""
        if inspect.iscoroutinefunction(self.backend.generate):
            text = await self.backend.generate(render_transcript(request), **self._kwargs(request))
            return _to_response(text)
        return await asyncio.to_thread(self.complete, request)


def _to_response(text: Any) -> LLMResponse:
    reasoning, calls = parse_text_reply(str(text))
    return LLMResponse(text=reasoning if calls else str(text), tool_calls=calls)


def render_transcript(request: LLMRequest) -> str:
    """The user prompt a text-only model reads: tools, reply protocol, then the transcript."""
    lines = ["TOOLS:"]
    for schema in request.tools:
        params = json.dumps(schema.get("parameters", {}).get("properties", {}))
        lines.append(f"- {schema['name']}: {schema.get('description', '')} parameters={params}")
    lines += ["", _PROTOCOL, "", "CONVERSATION:"]
    for message in request.messages:
        if message.role == "system":
            continue
        if message.role == "assistant":
            calls = [{"tool": c.tool, "args": c.args} for c in message.tool_calls]
            body = json.dumps({"tools": calls}) if calls else message.content
            lines.append(f"[assistant] {body}")
        elif message.role == "tool":
            lines.append(f"[tool result: {message.name}] {message.content}")
        else:
            lines.append(f"[{message.role}] {message.content}")
    return "\n".join(lines)
