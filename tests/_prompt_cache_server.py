"""An Anthropic endpoint on loopback that does Anthropic's prompt-cache accounting.

:class:`CacheAccountingServer` answers ``POST /v1/messages`` from a script of replies
(``text_reply``/``tool_reply``/``str``, built and sent by the scripted server's own wire
functions, so the JSON is the one :class:`~looplet.testing.ScriptedModelServer` sends,
streamed or not), and reports the ``usage`` (of the message, or of a stream's
``message_start`` and ``message_delta``) the way Anthropic documents its cache:

* the prompt is cut into blocks in cache order: each tool, each system block, each content
  block of each message (a string content is one text block);
* a block marked ``cache_control`` is a breakpoint; more than four is a 400, as from the API;
* the request *reads* the longest prefix, ending at a breakpoint or at most 20 blocks before
  one, that an earlier request wrote: ``cache_read_input_tokens``;
* it *writes* the prefixes ending at its breakpoints that are long enough
  (``min_tokens``, 1,024 for most Claude models): ``cache_creation_input_tokens`` is what
  lies between the read prefix and the last written breakpoint;
* ``input_tokens`` is the rest of the prompt.

It does OpenAI's automatic caching too, for ``POST /v1/chat/completions``: with no markers,
the longest prefix (of whole tools and messages) that an earlier request began with is
read, in steps of 128 tokens from 1,024 on, and reported as
``usage.prompt_tokens_details.cached_tokens`` (``prompt_tokens`` counts it, as OpenAI's does).

Tokens are estimated as for the scripted server (about four characters each, from each
block's JSON). Entries never expire (a test run is shorter than five minutes). It is an
emulation for tests and the bench (bench/prompt_cache.py); the real API may count a few
tokens differently, but the prefixes it reads and writes follow the same rules.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from looplet.testing import _anthropic_wire as anthropic_wire
from looplet.testing import _wire as openai_wire
from looplet.testing._script import ScriptedReply, ScriptItem, normalize_item
from looplet.types import Usage

#: Anthropic looks back this many blocks before a breakpoint for an earlier entry.
LOOKBACK_BLOCKS = 20
MAX_BREAKPOINTS = 4


def _tokens(part: object) -> int:
    return math.ceil(len(json.dumps(part, sort_keys=True, ensure_ascii=False)) / 4)


def prompt_blocks(body: Mapping[str, Any]) -> list[tuple[Any, bool]]:
    """The request's prompt as ``(block without cache_control, is a breakpoint)`` pairs,
    in cache order: tools, system, messages (each block tagged with its message's role)."""
    blocks: list[tuple[Any, bool]] = []

    def add(part: Mapping[str, Any], tag: str) -> None:
        plain = {k: v for k, v in part.items() if k != "cache_control"}
        blocks.append(((tag, plain), "cache_control" in part))

    for tool in body.get("tools") or ():
        add(tool, "tool")
    system = body.get("system")
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system or ():
        add(block, "system")
    for message in body.get("messages", ()):
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for block in content:
            add(block, message["role"])
    return blocks


def openai_blocks(body: Mapping[str, Any]) -> list[Any]:
    """A chat request's prompt in cache order: each tool, then each message."""
    return [("tool", t) for t in body.get("tools") or ()] + list(body.get("messages", ()))


class CacheLedger:
    """The cache of one emulated account: which prefixes were written, and the accounting."""

    def __init__(self, min_tokens: int = 1024) -> None:
        self.min_tokens = min_tokens
        self._written: set[str] = set()
        self._lock = threading.Lock()
        #: The usage reported for each request, in order.
        self.usages: list[dict[str, int]] = []

    def account(self, body: Mapping[str, Any]) -> dict[str, int]:
        """The usage of ``body`` (input side), writing its breakpoints' prefixes.

        Raises:
            ValueError: more than :data:`MAX_BREAKPOINTS` breakpoints (the API's 400).
        """
        blocks = prompt_blocks(body)
        marks = [i for i, (_, mark) in enumerate(blocks) if mark]
        if len(marks) > MAX_BREAKPOINTS:
            raise ValueError(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(marks)}."
            )
        keys: list[str] = []
        ends: list[int] = []  # tokens of the prefix ending at each block
        running, total = hashlib.sha256(), 0
        for part, _ in blocks:
            running.update(json.dumps(part, sort_keys=True).encode() + b"\x1e")
            keys.append(running.hexdigest())
            total += _tokens(part)
            ends.append(total)
        with self._lock:
            read = 0
            for mark in marks:
                for j in range(mark, max(mark - LOOKBACK_BLOCKS, -1), -1):
                    if keys[j] in self._written:
                        read = max(read, ends[j])
                        break
            written_to = read
            for mark in marks:
                if ends[mark] >= self.min_tokens and ends[mark] > read:
                    self._written.add(keys[mark])
                    written_to = max(written_to, ends[mark])
            usage = {
                "input_tokens": total - written_to,
                "cache_read_input_tokens": read,
                "cache_creation_input_tokens": written_to - read,
            }
            self.usages.append(usage)
        return usage

    def account_openai(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The usage (input side) of a chat request, remembering its prefixes."""
        running, total, cached = hashlib.sha256(), 0, 0
        keys: list[str] = []
        for part in openai_blocks(body):
            running.update(json.dumps(part, sort_keys=True).encode() + b"\x1e")
            total += _tokens(part)
            key = "openai:" + running.hexdigest()
            keys.append(key)
            if key in self._written:
                cached = total
        cached = cached // 128 * 128 if cached >= 1024 else 0
        with self._lock:
            self._written.update(keys)
            usage = {"prompt_tokens": total, "prompt_tokens_details": {"cached_tokens": cached}}
            self.usages.append({"input_tokens": total, "cache_read_input_tokens": cached})
        return usage


class CacheAccountingServer:
    """A loopback Anthropic (and OpenAI) endpoint with cache accounting, answering from
    ``script`` (replies only: ``text_reply``, ``tool_reply``, ``str``).

    Point the ``anthropic`` SDK at :attr:`url` (the ``openai`` SDK at ``url + "/v1"``).
    :attr:`bodies` are the JSON bodies received, :attr:`ledger` holds the cache and the
    usages. Its HTTP is served and read by the standard library's ``http.server`` with no
    second hop, so a cassette recording the client records each exchange once.
    """

    def __init__(self, script: Sequence[ScriptItem], *, min_tokens: int = 1024) -> None:
        self.script = [normalize_item(item, f"script[{i}]") for i, item in enumerate(script)]
        self.ledger = CacheLedger(min_tokens)
        self.bodies: list[Any] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CacheAccountingServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def url(self) -> str:
        """The root URL, for ``anthropic.Anthropic(base_url=...)``."""
        assert self._httpd is not None, "enter the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def take(self, body: Any) -> tuple[int, ScriptedReply]:
        """Record ``body`` and take the next reply; its 1-based number and the reply."""
        with self._lock:
            self.bodies.append(body)
            number = len(self.bodies)
            if number > len(self.script):
                raise LookupError(f"the script is used up: request {number}")
            reply = self.script[number - 1]
        if not isinstance(reply, ScriptedReply):
            raise TypeError(f"script[{number - 1}]: only replies are served here")
        return number, reply


def _handler_for(server: CacheAccountingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw)
            claude = self.path == "/v1/messages"
            check = (
                anthropic_wire.validate_messages_body if claude else openai_wire.validate_chat_body
            )
            invalid: Any = check(body)
            if invalid is None and claude:
                try:
                    usage = server.ledger.account(body)
                except ValueError as exc:
                    invalid = exc
            if invalid is not None:
                message = getattr(invalid, "message", str(invalid))
                error = {"type": "invalid_request_error", "message": message}
                self._send(400, "application/json", [json.dumps({"type": "error", "error": error})])
                return
            if not claude:
                usage = server.ledger.account_openai(body)
            number, reply = server.take(body)
            model, stream = str(body["model"]), bool(body.get("stream"))
            if claude:
                output = anthropic_wire.estimate_usage(body, reply).output_tokens
                parts = _anthropic_reply(reply, number, model, usage, output, stream)
            else:
                output = openai_wire.estimate_usage(body, reply).output_tokens
                parts = _openai_reply(reply, number, model, usage, output, stream)
            self._send(200, "text/event-stream" if stream else "application/json", parts)

        def _send(self, status: int, kind: str, parts: list[str]) -> None:
            payload = "".join(parts).encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _anthropic_reply(
    reply: ScriptedReply,
    number: int,
    model: str,
    usage: Mapping[str, int],
    output: int,
    stream: bool,
) -> list[str]:
    tokens = Usage(usage["input_tokens"], output)
    if not stream:
        message = anthropic_wire.message_object(reply, number=number, model=model, usage=tokens)
        message["usage"] = {**usage, "output_tokens": output}
        return [json.dumps(message)]
    events = anthropic_wire.stream_events(reply, number=number, model=model, usage=tokens)
    for event in events:
        if event["type"] == "message_start":
            event["message"]["usage"] = {**usage, "output_tokens": 1}
        elif event["type"] == "message_delta":  # newer API versions repeat the final counts
            event["usage"] = {**usage, "output_tokens": output}
    return [b.decode() for b in anthropic_wire.encode_events(events)]


def _openai_reply(
    reply: ScriptedReply,
    number: int,
    model: str,
    usage: Mapping[str, Any],
    output: int,
    stream: bool,
) -> list[str]:
    totals = {**usage, "completion_tokens": output, "total_tokens": usage["prompt_tokens"] + output}
    tokens = Usage(usage["prompt_tokens"], output)
    if not stream:
        completion = openai_wire.completion_object(reply, number=number, model=model, usage=tokens)
        completion["usage"] = totals
        return [json.dumps(completion)]
    chunks = openai_wire.completion_chunks(
        reply, number=number, model=model, usage=tokens, include_usage=True
    )
    chunks[-1]["usage"] = totals
    return [b.decode() for b in openai_wire.stream_body(chunks)]
