"""The loopback model server: a thread serving a script over real HTTP.

:class:`ScriptedModelServer` binds ``127.0.0.1`` on a free port and answers
``POST /v1/chat/completions`` (plain and streamed) and ``GET /v1/models`` the way the OpenAI
API does, and ``POST /v1/messages`` the way Anthropic's Messages API does, taking one script
item per completion, and records every request. It exists so that provider code is tested
with the real SDKs over real HTTP. This module holds the lifecycle (port, thread, shutdown);
the request handling is in :mod:`looplet.testing._handler`, the script items in
:mod:`looplet.testing._script`, the JSON it sends in :mod:`looplet.testing._wire` (OpenAI) and
:mod:`looplet.testing._anthropic_wire`; the command line is in :mod:`looplet.testing.server`.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import warnings
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, final

from looplet.errors import ConfigurationError
from looplet.testing._handler import Handler, Item
from looplet.testing._script import RecordedRequest, ScriptItem, normalize_item

__all__ = ["ScriptedModelServer"]

# serve_forever checks for shutdown this often; it bounds how long stop() takes.
_POLL_SECONDS = 0.05
# How long stop() waits for the handlers of open connections to finish.
_STOP_GRACE_SECONDS = 5.0


@final
class ScriptedModelServer:
    """A loopback model server for tests: it speaks OpenAI's Chat Completions and Anthropic's
    Messages API and answers from a script (the old name ``ScriptedOpenAIServer`` still works).

    Each ``POST /v1/chat/completions`` or ``POST /v1/messages`` takes the next script item,
    answered in that API's format; requests rejected before that (wrong API key, a malformed
    conversation: 401/400) do not use one. Every request is recorded in :attr:`requests`. The
    server runs in a background thread until :meth:`stop` (or the end of the ``with`` block).

    One class serves both APIs, so there is no separate Anthropic server: point the
    ``openai`` SDK at :attr:`base_url` (which ends in ``/v1``) and the ``anthropic`` SDK,
    which adds ``/v1/messages`` itself, at :attr:`url`. Script items are the same for both:
    an :func:`~looplet.testing.error_reply` keeps its status, and its default type
    (``"server_error"``) becomes Anthropic's type for that status (``"overloaded_error"``
    for 529, ``"rate_limit_error"`` for 429...).

    Args:
        script: the replies, in order: :func:`~looplet.testing.text_reply`,
            :func:`~looplet.testing.tool_reply`, :func:`~looplet.testing.error_reply`,
            :func:`~looplet.testing.slow_reply`, a ``str`` (a text reply), a ``dict`` in the
            JSON form, or a callable taking the :class:`RecordedRequest` and returning one.
        api_key: when set, requests must send ``Authorization: Bearer <api_key>`` (or, to
            ``/v1/messages``, ``x-api-key: <api_key>``) or get 401.
        host: the address to bind; keep the loopback default.
        port: the port; 0 picks a free one.

    Example::

        with ScriptedModelServer([tool_reply(call("greet", {"name": "Alice"}))]) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="test-key")
            claude = anthropic.Anthropic(base_url=server.url, api_key="test-key")
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

    def start(self) -> ScriptedModelServer:
        """Bind the port and start serving in a background thread; returns ``self``."""
        if self._httpd is not None or self._stopping.is_set():
            raise ConfigurationError(
                "this ScriptedModelServer was already started; create a new one (a stopped "
                "server cannot be restarted), or call reset(script) to serve a new script"
            )
        self._httpd = _HTTPServer(self._address, Handler, self)
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
                f"ScriptedModelServer.stop(): a request was still being handled "
                f"{_STOP_GRACE_SECONDS:g}s after the server stopped; is a script callable "
                "blocking? Its thread was left running.",
                RuntimeWarning,
                stacklevel=2,
            )

    def __enter__(self) -> ScriptedModelServer:
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
        """The server's root, ``http://127.0.0.1:<port>``: the Anthropic SDK's ``base_url``."""
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
                "the ScriptedModelServer is not running: use it as a context manager "
                "(with ScriptedModelServer(script) as server: ...) or call start() first"
            )
        return self._httpd

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self._requests.append(request)
            return len(self._requests)

    def _take(self) -> tuple[int, Item | None]:
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
        owner: ScriptedModelServer,
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


def _normalise_script(script: Iterable[ScriptItem]) -> list[Item]:
    if isinstance(script, str | bytes) or not isinstance(script, Iterable):
        raise ConfigurationError(
            f"the script must be a list of items, got {type(script).__name__} {script!r}; "
            "wrap a single reply in a list: ScriptedModelServer([text_reply('hi')])"
        )
    return [normalize_item(item, f"script item {i}") for i, item in enumerate(script)]
