"""The request handler of the loopback server: routing, auth, validation, and the replies.

One handler serves both APIs: ``POST /v1/chat/completions`` (and ``GET /v1/models``) in
OpenAI's format from :mod:`looplet.testing._wire`, and ``POST /v1/messages`` in Anthropic's
from :mod:`looplet.testing._anthropic_wire`. Both take their replies from the same script, so
a script written once drives either SDK. Each request is recorded before anything is checked.
The server's lifecycle (threads, ports, shutdown) is in :mod:`looplet.testing._server`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from looplet.errors import ConfigurationError
from looplet.testing import _anthropic_wire as _anthropic
from looplet.testing import _wire
from looplet.testing._script import (
    SERVED_TYPES,
    RecordedRequest,
    ScriptedError,
    ScriptedReply,
    SlowReply,
    StreamCut,
    normalize_item,
)

if TYPE_CHECKING:
    from looplet.testing._server import ScriptedModelServer

__all__ = ["Handler", "Item"]

#: A normalised script item, as the server keeps it.
Item: TypeAlias = (
    ScriptedReply | ScriptedError | SlowReply | StreamCut | Callable[[RecordedRequest], Any]
)

_CHAT_PATH = "/v1/chat/completions"
_MODELS_PATH = "/v1/models"
_MESSAGES_PATH = _anthropic.MESSAGES_PATH
_KNOWN_PATHS = (_CHAT_PATH, _MODELS_PATH, _MESSAGES_PATH)


class Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests for the :class:`ScriptedModelServer` that owns it."""

    protocol_version = "HTTP/1.1"
    server_version = "looplet-scripted-openai"
    # Without this, Nagle's algorithm and delayed ACKs add ~40 ms to every loopback call.
    disable_nagle_algorithm = True
    #: Whether the request being handled is an Anthropic one (errors then take its shape).
    _anthropic = False

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log on stderr: tests read :attr:`requests` instead."""

    @property
    def _owner(self) -> ScriptedModelServer:
        return cast("ScriptedModelServer", cast(Any, self.server).owner)

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = RecordedRequest(self.command, self.path, headers, body, raw)
        self._number = self._owner._record(request)
        path = self.path.split("?", 1)[0].rstrip("/")
        self._anthropic = path == _MESSAGES_PATH
        if not self._authorised(headers):
            return
        if path == _CHAT_PATH and self.command == "POST":
            self._complete(request, raw, _wire.validate_chat_body)
        elif path == _MESSAGES_PATH and self.command == "POST":
            if "anthropic-version" not in headers:
                self._send_error(400, "anthropic-version: header is required")
                return
            self._complete(request, raw, _anthropic.validate_messages_body)
        elif path == _MODELS_PATH and self.command == "GET":
            self._send_json(200, _wire.models_object())
        elif path in _KNOWN_PATHS:
            self._send_error(
                405,
                f"Method {self.command} is not allowed on {path}.",
                type="invalid_request_error",
            )
        else:
            self._send_error(
                404,
                f"Unknown path {self.command} {path!r}. This scripted server serves POST "
                f"{_CHAT_PATH} and GET {_MODELS_PATH}; pass server.base_url (which ends in "
                f"/v1) as the client's base_url. For the Anthropic SDK, which adds "
                f"{_MESSAGES_PATH} itself, pass server.url (no /v1).",
                type="invalid_request_error",
                code="unknown_url",
            )

    def _authorised(self, headers: dict[str, str]) -> bool:
        key = self._owner.api_key
        bearer = headers.get("authorization")
        if key is None or bearer == f"Bearer {key}":
            return True
        if self._anthropic:
            # The Messages API takes x-api-key; the anthropic SDK (2.x) sends the key as a
            # Bearer token, so either is accepted.
            if headers.get("x-api-key") == key:
                return True
            sent = headers.get("x-api-key") or bearer
            detail = "neither was sent" if sent is None else f"got {sent[:20]!r}..."
            message = (
                "invalid x-api-key: expected 'x-api-key: <the api_key given to the scripted "
                f"server>' or 'Authorization: Bearer <it>', {detail}."
            )
            self._send_error(401, message)
            return False
        detail = "no Authorization header was sent" if bearer is None else f"got {bearer[:20]!r}..."
        self._send_error(
            401,
            f"Incorrect API key provided: expected 'Authorization: Bearer <the api_key given "
            f"to ScriptedModelServer>', {detail}.",
            type="invalid_request_error",
            code="invalid_api_key",
        )
        return False

    def _complete(
        self, request: RecordedRequest, raw: bytes, validate: Callable[[Any], _wire.Invalid | None]
    ) -> None:
        body = request.body
        if body is None and raw:
            self._send_error(
                400,
                "The request body is not valid JSON. Send Content-Type: application/json.",
                type="invalid_request_error",
            )
            return
        invalid = validate(body)
        if invalid is not None:
            self._send_error(
                400,
                invalid.message,
                type="invalid_request_error",
                param=invalid.param,
                code=invalid.code,
            )
            return
        number, item = self._owner._take()
        if item is None:
            used = number - 1
            self._send_error(
                500,
                f"The scripted server's script is used up: its {used} replies were served and "
                f"request {number} asked for another. Add items to the script (or reset() it).",
            )
            return
        self._serve(item, number, request)

    def _serve(self, item: Item, number: int, request: RecordedRequest) -> None:
        if callable(item) and not isinstance(item, SERVED_TYPES):
            try:
                item = _resolve(item, request, number)
            except Exception as exc:  # the test's own callable failed: tell it over HTTP
                self._send_error(500, f"{type(exc).__name__}: {exc}")
                return
        if isinstance(item, SlowReply):
            if self._owner._stopping.wait(item.seconds):
                self.close_connection = True  # stopped while waiting: leave unanswered
                return
            item = item.then
        if isinstance(item, ScriptedError):
            self._send_error(
                item.status,
                item.message,
                type=item.type,
                param=item.param,
                code=item.code,
                retry_after=item.retry_after,
            )
            return
        cut = item if isinstance(item, StreamCut) else None
        reply = item.then if isinstance(item, StreamCut) else item
        assert isinstance(reply, ScriptedReply)
        if self._anthropic:
            self._reply_anthropic(reply, number, request.body, cut)
        else:
            self._reply_openai(reply, number, request.body, cut)

    def _reply_openai(
        self, item: ScriptedReply, number: int, body: Any, cut: StreamCut | None
    ) -> None:
        usage = item.usage or _wire.estimate_usage(body, item)
        model = str(body["model"])
        if body.get("stream"):
            options = body.get("stream_options") or {}
            chunks = _wire.completion_chunks(
                item,
                number=number,
                model=model,
                usage=usage,
                include_usage=bool(options.get("include_usage")),
            )
            self._send_stream(_wire.stream_body(chunks, cut), cut=_cuts(cut))
        else:
            self._send_json(
                200, _wire.completion_object(item, number=number, model=model, usage=usage)
            )

    def _reply_anthropic(
        self, item: ScriptedReply, number: int, body: Any, cut: StreamCut | None
    ) -> None:
        usage = item.usage or _anthropic.estimate_usage(body, item)
        model = str(body["model"])
        if body.get("stream"):
            events = _anthropic.stream_events(item, number=number, model=model, usage=usage)
            self._send_stream(_anthropic.stream_body(events, cut), cut=_cuts(cut))
        else:
            self._send_json(
                200, _anthropic.message_object(item, number=number, model=model, usage=usage)
            )

    # -- writing -----------------------------------------------------------------------------

    def _send_error(
        self,
        status: int,
        message: str,
        *,
        type: str = "server_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        extra = {"Retry-After": retry_after} if retry_after is not None else {}
        if self._anthropic:
            kind = _anthropic.error_type(status, type)
            body = _anthropic.error_body(kind, message, self._request_id)
        else:
            body = _wire.error_body(message, type, param=param, code=code)
        self._send_json(status, body, extra)

    def _send_json(
        self, status: int, obj: Any, extra_headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        headers.update(extra_headers or {})
        self._write(status, headers, [data])

    def _send_stream(self, events: list[bytes], *, cut: bool = False) -> None:
        """Send ``events`` as a chunked body; ``cut``: hang up before the body's last chunk.

        The connection is closed (FIN) after the bytes already sent, so the client reads
        every event and then a body that stops short: its HTTP library reports an
        incomplete chunked read, as for a connection lost mid-reply.
        """
        headers = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
        }
        framed = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
        if cut:
            self.close_connection = True
        else:
            framed.append(b"0\r\n\r\n")
        self._write(200, headers, framed)

    @property
    def _request_id(self) -> str:
        return f"req_scripted_{self._number}"

    def _write(self, status: int, headers: dict[str, str], parts: list[bytes]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("x-request-id", self._request_id)
            if self._anthropic:
                self.send_header("request-id", self._request_id)  # what the anthropic SDK reads
            self.end_headers()
            for part in parts:
                self.wfile.write(part)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (time-out); nothing to tell


def _resolve(fn: Callable[[RecordedRequest], Any], request: RecordedRequest, number: int) -> Item:
    result = normalize_item(fn(request), f"the value returned by script item {number}")
    if callable(result) and not isinstance(result, SERVED_TYPES):
        raise ConfigurationError(
            f"script item {number} is a callable that returned another callable; return a "
            "reply (text_reply, tool_reply, error_reply, slow_reply, cut_stream, a str or a "
            "dict)"
        )
    return result


def _cuts(cut: StreamCut | None) -> bool:
    """Whether the connection is to be closed before the stream's body ends."""
    return cut is not None and cut.ending == "cut"
