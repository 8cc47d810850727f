"""The loopback OpenAI-compatible server: a thread serving a script over real HTTP.

:class:`ScriptedOpenAIServer` binds ``127.0.0.1`` on a free port and answers
``POST /v1/chat/completions`` (plain and streamed) and ``GET /v1/models`` the way the OpenAI
API does, taking one script item per completion, and records every request. It exists so
that provider code is tested with the real SDK over real HTTP. The script items are in
:mod:`looplet.testing._script`, the JSON it sends in :mod:`looplet.testing._wire`; the command
line is in :mod:`looplet.testing.server`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast, final

from looplet.errors import ConfigurationError
from looplet.testing import _wire
from looplet.testing._script import (
    RecordedRequest,
    ScriptedError,
    ScriptedReply,
    ScriptItem,
    SlowReply,
    normalize_item,
)

__all__ = ["ScriptedOpenAIServer"]

_Item = ScriptedReply | ScriptedError | SlowReply | Callable[[RecordedRequest], Any]
_CHAT_PATH = "/v1/chat/completions"
_MODELS_PATH = "/v1/models"
# serve_forever checks for shutdown this often; it bounds how long stop() takes.
_POLL_SECONDS = 0.05
# How long stop() waits for the handlers of open connections to finish.
_STOP_GRACE_SECONDS = 5.0


@final
class ScriptedOpenAIServer:
    """A loopback OpenAI-compatible server that answers from a script, for tests.

    Each ``POST /v1/chat/completions`` takes the next script item; requests rejected before
    that (wrong API key, a malformed conversation: 401/400) do not use one. Every request is
    recorded in :attr:`requests`. The server runs in a background thread until
    :meth:`stop` (or the end of the ``with`` block).

    Args:
        script: the replies, in order: :func:`~looplet.testing.text_reply`,
            :func:`~looplet.testing.tool_reply`, :func:`~looplet.testing.error_reply`,
            :func:`~looplet.testing.slow_reply`, a ``str`` (a text reply), a ``dict`` in the
            JSON form, or a callable taking the :class:`RecordedRequest` and returning one.
        api_key: when set, requests must send ``Authorization: Bearer <api_key>`` or get 401.
        host: the address to bind; keep the loopback default.
        port: the port; 0 picks a free one.

    Example::

        with ScriptedOpenAIServer([tool_reply(call("greet", {"name": "Alice"}))]) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="test-key")
    """

    def __init__(
        self,
        script: Iterable[ScriptItem] = (),
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._script = _normalise_script(script)
        self.api_key = api_key
        self._address = (host, port)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._served = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ScriptedOpenAIServer:
        """Bind the port and start serving in a background thread; returns ``self``."""
        if self._httpd is not None or self._stopping.is_set():
            raise ConfigurationError(
                "this ScriptedOpenAIServer was already started; create a new one (a stopped "
                "server cannot be restarted), or call reset(script) to serve a new script"
            )
        self._httpd = _HTTPServer(self._address, _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name=f"looplet-scripted-openai-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and wait for the handler threads. Idempotent.

        A :func:`~looplet.testing.slow_reply` still waiting is woken and its connection
        closed unanswered, so stopping never waits for a scripted delay.
        """
        httpd, thread = self._httpd, self._thread
        self._stopping.set()
        if httpd is None or thread is None:
            return
        self._httpd = None
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join()
        if not httpd.wait_idle(_STOP_GRACE_SECONDS):
            warnings.warn(
                f"ScriptedOpenAIServer.stop(): a request was still being handled "
                f"{_STOP_GRACE_SECONDS:g}s after the server stopped; is a script callable "
                "blocking? Its thread was left running.",
                RuntimeWarning,
                stacklevel=2,
            )

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests read ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._running().server_address[1])

    @property
    def url(self) -> str:
        """The server's root, ``http://127.0.0.1:<port>``."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url``, ``http://127.0.0.1:<port>/v1``."""
        return self.url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def served(self) -> int:
        """How many script items have been used."""
        with self._lock:
            return self._served

    def reset(self, script: Iterable[ScriptItem] | None = None) -> None:
        """Forget the recorded requests and start the script over (or serve a new one).

        Lets one server, started once per test session, serve each test its own script.
        """
        new = None if script is None else _normalise_script(script)
        with self._lock:
            if new is not None:
                self._script = new
            self._served = 0
            self._requests.clear()

    # -- used by the handler -----------------------------------------------------------------

    def _running(self) -> _HTTPServer:
        if self._httpd is None:
            raise ConfigurationError(
                "the ScriptedOpenAIServer is not running: use it as a context manager "
                "(with ScriptedOpenAIServer(script) as server: ...) or call start() first"
            )
        return self._httpd

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self._requests.append(request)
            return len(self._requests)

    def _take(self) -> tuple[int, _Item | None]:
        """The next item's 1-based number and the item, or ``None`` when used up."""
        with self._lock:
            if self._served >= len(self._script):
                return self._served + 1, None
            self._served += 1
            return self._served, self._script[self._served - 1]


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections, so that ``stop()`` can cut idle keep-alive ones and wait for
    the handler threads (daemon threads, which ``server_close`` does not join) to finish."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: ScriptedOpenAIServer,
    ) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._idle = threading.Condition(self._conn_lock)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Registered here, before the thread starts, so stop() cannot miss a connection.
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        # The last thing a handler thread does, so an empty set means no handler is running.
        super().shutdown_request(request)
        with self._idle:
            self._connections.discard(request)
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every connection is closed; False if some are still open at ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._connections, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a time-out test) or a stop() that cuts a connection is
        # expected; anything else is a bug worth the default traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError) or self.owner._stopping.is_set():
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "looplet-scripted-openai"

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
    def _owner(self) -> ScriptedOpenAIServer:
        return cast(_HTTPServer, self.server).owner

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
        if not self._authorised(headers):
            return
        if path == _CHAT_PATH and self.command == "POST":
            self._chat(request, raw)
        elif path == _MODELS_PATH and self.command == "GET":
            self._send_json(200, _wire.models_object())
        elif path in (_CHAT_PATH, _MODELS_PATH):
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
                "/v1) as the client's base_url.",
                type="invalid_request_error",
                code="unknown_url",
            )

    def _authorised(self, headers: dict[str, str]) -> bool:
        key = self._owner.api_key
        if key is None or headers.get("authorization") == f"Bearer {key}":
            return True
        sent = headers.get("authorization")
        detail = "no Authorization header was sent" if sent is None else f"got {sent[:20]!r}..."
        self._send_error(
            401,
            f"Incorrect API key provided: expected 'Authorization: Bearer <the api_key given "
            f"to ScriptedOpenAIServer>', {detail}.",
            type="invalid_request_error",
            code="invalid_api_key",
        )
        return False

    def _chat(self, request: RecordedRequest, raw: bytes) -> None:
        body = request.body
        if body is None and raw:
            self._send_error(
                400,
                "The request body is not valid JSON. Send Content-Type: application/json.",
                type="invalid_request_error",
            )
            return
        invalid = _wire.validate_chat_body(body)
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

    def _serve(self, item: _Item, number: int, request: RecordedRequest) -> None:
        if callable(item) and not isinstance(item, ScriptedReply | ScriptedError | SlowReply):
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
        assert isinstance(item, ScriptedReply)
        body = request.body
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
            self._send_stream(chunks)
        else:
            self._send_json(
                200, _wire.completion_object(item, number=number, model=model, usage=usage)
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
        body = _wire.error_body(message, type, param=param, code=code)
        self._send_json(status, body, extra)

    def _send_json(
        self, status: int, obj: Any, extra_headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        headers.update(extra_headers or {})
        self._write(status, headers, [data])

    def _send_stream(self, chunks: list[dict[str, Any]]) -> None:
        events = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode() for c in chunks]
        events.append(b"data: [DONE]\n\n")
        headers = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
        }
        framed = [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]
        self._write(200, headers, framed)

    def _write(self, status: int, headers: dict[str, str], parts: list[bytes]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("x-request-id", f"req_scripted_{self._number}")
            self.end_headers()
            for part in parts:
                self.wfile.write(part)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (time-out); nothing to tell


def _resolve(fn: Callable[[RecordedRequest], Any], request: RecordedRequest, number: int) -> _Item:
    result = normalize_item(fn(request), f"the value returned by script item {number}")
    if callable(result) and not isinstance(result, ScriptedReply | ScriptedError | SlowReply):
        raise ConfigurationError(
            f"script item {number} is a callable that returned another callable; return a "
            "reply (text_reply, tool_reply, error_reply, slow_reply, a str or a dict)"
        )
    return result


def _normalise_script(script: Iterable[ScriptItem]) -> list[_Item]:
    if isinstance(script, str | bytes) or not isinstance(script, Iterable):
        raise ConfigurationError(
            f"the script must be a list of items, got {type(script).__name__} {script!r}; "
            "wrap a single reply in a list: ScriptedOpenAIServer([text_reply('hi')])"
        )
    return [normalize_item(item, f"script item {i}") for i, item in enumerate(script)]
