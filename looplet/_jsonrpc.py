"""The MCP client protocol without I/O: a JSON-RPC 2.0 session and the MCP message flows.

:class:`JsonRpcSession` turns requests into the bytes of one line each (MCP's stdio transport
is newline-delimited JSON) and each line read from the server into what the caller must do
about it: a :class:`Reply` to a pending request, or bytes to write back. It matches responses
to requests by id, answers the server's own requests (``ping`` with an empty result, anything
else with "method not found") and remembers, boundedly, what it skipped (lines that are not
JSON-RPC, responses to ids nobody waits for) so an error can say why an answer never came.
:func:`startup_flow` is the MCP handshake and tool listing as a generator that yields
:class:`Request` / :class:`Notify` and is sent each :class:`Reply`; :func:`call_result` reads a
``tools/call`` answer. The drivers that own a process and its pipes live in :mod:`looplet.mcp`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from looplet.errors import ErrorKind, ToolError

__all__ = [
    "SUPPORTED_PROTOCOL_VERSIONS",
    "Flow",
    "JsonRpcSession",
    "Notify",
    "ProtocolError",
    "Reply",
    "Request",
    "ServerHello",
    "call_request",
    "call_result",
    "startup_flow",
]

#: MCP revisions this client speaks, newest first; the first is offered in ``initialize``.
SUPPORTED_PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
_METHOD_NOT_FOUND = -32601
_INVALID_PARAMS = -32602
_MAX_PAGES = 1000
_SAMPLE_CHARS = 120
_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class Reply:
    """The peer's response to one of our requests: ``result``, or ``error`` when it failed.

    Attributes:
        id: the request id it answers.
        result: the ``result`` member (``None`` when ``error`` is set).
        error: the ``error`` member (``{"code", "message", "data"?}``), or ``None``.
    """

    id: int
    result: Any = None
    error: dict[str, Any] | None = None


class JsonRpcSession:
    """The client side of a JSON-RPC 2.0 conversation; one message per line, no I/O.

    Example::

        session = JsonRpcSession()
        request_id, line = session.request("tools/list", {})
        pipe.write(line)
        for event in session.receive(pipe.readline()):
            ...  # a Reply for request_id, or bytes to write back to the peer
    """

    def __init__(self) -> None:
        self._next_id = 1
        self._pending: set[int] = set()
        self.skipped_lines = 0
        self._skipped_samples: deque[str] = deque(maxlen=_SAMPLES)
        self._stray_ids: deque[object] = deque(maxlen=_SAMPLES)

    # ------------------------------------------------------------------ sending

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """A new request: its id (now pending) and the line to write."""
        request_id = self._next_id
        self._next_id += 1
        self._pending.add(request_id)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        return request_id, encode(message)

    def notification(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        """The line of a notification (a message that gets no response)."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        return encode(message)

    def forget(self, request_id: int) -> None:
        """Stop waiting for ``request_id``; a late response to it then counts as stray."""
        self._pending.discard(request_id)

    # ------------------------------------------------------------------ receiving

    def receive(self, line: bytes) -> list[Reply | bytes]:
        """What to do about one line from the peer.

        Returns:
            A :class:`Reply` for each response to a pending request, and the bytes of a
            response to write back for each request from the peer; empty for blank lines,
            notifications and anything skipped.
        """
        text = line.strip()
        if not text:
            return []
        try:
            message = json.loads(text)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            self._skip(text)
            return []
        # A batch (allowed by MCP 2025-03-26, dropped since) is read message by message.
        messages = message if isinstance(message, list) and message else [message]
        events: list[Reply | bytes] = []
        for item in messages:
            event = self._receive_message(item, text)
            if event is not None:
                events.append(event)
        return events

    def _receive_message(self, message: object, text: bytes) -> Reply | bytes | None:
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self._skip(text)
            return None
        if "method" in message:
            if "id" not in message:
                return None  # a notification: nothing to answer, nothing we act on
            return encode(_answer_peer_request(message["id"], message["method"]))
        if "result" not in message and "error" not in message:
            self._skip(text)
            return None
        request_id = message.get("id")
        if type(request_id) is not int or request_id not in self._pending:
            self._stray_ids.append(request_id)
            return None
        self._pending.discard(request_id)
        error = message.get("error")
        if error is not None:
            if not isinstance(error, dict):
                error = {"code": 0, "message": repr(error)}
            return Reply(request_id, error=error)
        return Reply(request_id, result=message.get("result"))

    def _skip(self, text: bytes) -> None:
        self.skipped_lines += 1
        shown = text.decode("utf-8", "replace")
        if len(shown) > _SAMPLE_CHARS:
            shown = shown[: _SAMPLE_CHARS - 3] + "..."
        self._skipped_samples.append(shown)

    # ------------------------------------------------------------------ diagnostics

    def notes(self) -> dict[str, Any]:
        """What was skipped so far, for an error's context (empty if nothing was)."""
        notes: dict[str, Any] = {}
        if self.skipped_lines:
            notes["skipped_lines"] = self.skipped_lines
            notes["skipped_samples"] = list(self._skipped_samples)
        if self._stray_ids:
            notes["unmatched_response_ids"] = list(self._stray_ids)
        return notes

    def describe_notes(self) -> str:
        """:meth:`notes` as sentences for an error message ('' if nothing was skipped)."""
        parts = []
        if self.skipped_lines:
            samples = ", ".join(repr(s) for s in self._skipped_samples)
            parts.append(
                f"Its stdout had {self.skipped_lines} line(s) that are not JSON-RPC messages, "
                f"skipped (last: {samples}); a server must write only protocol messages to "
                "stdout and log to stderr."
            )
        if self._stray_ids:
            parts.append(
                "Responses to ids no request was waiting for were ignored: "
                + ", ".join(map(repr, self._stray_ids))
                + "."
            )
        return " ".join(parts)


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line: JSON escapes newlines, so it never spans two."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _answer_peer_request(request_id: object, method: object) -> dict[str, Any]:
    if method == "ping":  # MCP: the receiver of a ping must answer promptly
        return {"jsonrpc": "2.0", "id": request_id, "result": {}}
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": _METHOD_NOT_FOUND,
            "message": f"Method not found: {method!s} (this client declares no capabilities)",
        },
    }


# --------------------------------------------------------------------------- MCP flows


class ProtocolError(Exception):
    """The server broke the MCP protocol; the adapter adds its command and stderr."""


@dataclass(frozen=True, slots=True)
class Request:
    """A request for the driver to send; it sends the :class:`Reply` back into the flow."""

    method: str
    params: dict[str, Any]
    what: str  # how errors name it: "initialize", "tools/call 'add'"


@dataclass(frozen=True, slots=True)
class Notify:
    """A notification for the driver to send; the flow then goes on (it is sent ``None``)."""

    method: str


#: A protocol flow: yields what to send, receives each request's Reply, returns its result.
Flow = Generator[Request | Notify, Any, Any]


@dataclass(frozen=True, slots=True)
class ServerHello:
    """What the start-up flow learnt: the agreed version, ``serverInfo`` and the tools."""

    protocol_version: str
    server_info: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)


def startup_flow(client_version: str) -> Generator[Request | Notify, Any, ServerHello]:
    """``initialize``, ``notifications/initialized``, then every page of ``tools/list``.

    Raises:
        ProtocolError: an error answer, a protocol version not in
            :data:`SUPPORTED_PROTOCOL_VERSIONS`, or a malformed tool list.
    """
    reply = yield Request(
        "initialize",
        {
            "protocolVersion": SUPPORTED_PROTOCOL_VERSIONS[0],
            "capabilities": {},
            "clientInfo": {"name": "looplet", "version": client_version},
        },
        "initialize",
    )
    if reply.error is not None:
        raise ProtocolError(f"refused initialize ({_rpc_text(reply)})")
    result = reply.result if isinstance(reply.result, dict) else {}
    version = result.get("protocolVersion")
    if version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise ProtocolError(
            f"answered initialize with protocol version {version!r}, which looplet does not "
            f"speak (it speaks {', '.join(SUPPORTED_PROTOCOL_VERSIONS)}); use a release of the "
            "server that supports one of these"
        )
    info = result.get("serverInfo")
    hello = ServerHello(str(version), dict(info) if isinstance(info, dict) else {})
    yield Notify("notifications/initialized")
    cursor: object = None
    for _ in range(_MAX_PAGES):
        reply = yield Request(
            "tools/list", {} if cursor is None else {"cursor": cursor}, "tools/list"
        )
        if reply.error is not None:
            if reply.error.get("code") == _METHOD_NOT_FOUND and not hello.tools:
                return hello  # a server without tools
            raise ProtocolError(f"answered tools/list with an error ({_rpc_text(reply)})")
        page = reply.result if isinstance(reply.result, dict) else {}
        tools = page.get("tools")
        if not isinstance(tools, list):
            raise ProtocolError(f"answered tools/list without a 'tools' list: {page!r:.200}")
        hello.tools.extend(t for t in tools if isinstance(t, dict))
        next_cursor = page.get("nextCursor")
        if next_cursor is None or next_cursor == "" or next_cursor == cursor:
            return hello
        cursor = next_cursor
    raise ProtocolError(f"listed tools over {_MAX_PAGES} pages without an end")


def call_request(name: str, arguments: Mapping[str, Any] | None) -> Request:
    """The ``tools/call`` request for the server's tool ``name``."""
    params = {"name": name, "arguments": dict(arguments or {})}
    return Request("tools/call", params, f"tools/call {name!r}")


def call_result(reply: Reply, tool: str, server: list[str]) -> Any:
    """A ``tools/call`` answer as the tool's return value.

    Returns:
        ``structuredContent`` when present, else the content's text parts joined by newlines.

    Raises:
        ToolError: EXECUTION for an MCP error result (``isError``: the server's text is the
            message); VALIDATION for JSON-RPC "invalid params", EXECUTION for other errors.
    """
    context: dict[str, Any] = {"tool": tool, "server": server}
    if reply.error is not None:
        code = reply.error.get("code")
        if "data" in reply.error:
            context["data"] = reply.error["data"]
        raise ToolError(
            ErrorKind.VALIDATION if code == _INVALID_PARAMS else ErrorKind.EXECUTION,
            f"the MCP server refused the call of {tool!r} ({_rpc_text(reply)})",
            context={**context, "code": code},
        )
    result = reply.result if isinstance(reply.result, dict) else {}
    text = _content_text(result.get("content"))
    if result.get("isError") is True:
        message = text or f"MCP tool {tool!r} failed without a message."
        raise ToolError(ErrorKind.EXECUTION, message, context=context)
    structured = result.get("structuredContent")
    return structured if structured is not None else text


def _content_text(content: object) -> str:
    """MCP content parts as text: text parts as they are, others as a bracketed note."""
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append(str(part.get("text", "")))
        elif kind == "resource" and isinstance(part.get("resource"), dict):
            resource = part["resource"]
            parts.append(str(resource.get("text") or f"[resource {resource.get('uri')}]"))
        elif kind == "resource_link":
            parts.append(f"[resource link {part.get('uri')}]")
        else:  # image, audio: binary data the text protocol cannot carry
            parts.append(f"[{kind} content, {part.get('mimeType', 'unknown type')}]")
    return "\n".join(parts)


def _rpc_text(reply: Reply) -> str:
    error = reply.error or {}
    return f"error {error.get('code')}: {error.get('message')}"
