"""Tools from an MCP server: :class:`MCPToolAdapter` and its twin :class:`AsyncMCPToolAdapter`.

An adapter starts a Model Context Protocol server as a child process (from an argument list,
never through a shell), speaks JSON-RPC 2.0 with it over stdin/stdout as MCP's stdio transport
defines (one JSON message per line), runs the ``initialize`` handshake, lists the server's tools
(following ``nextCursor`` pages) and offers each as a :class:`~looplet.toolspec.ToolSpec` whose
parameters are the tool's full ``inputSchema``. A call is a ``tools/call`` request; an MCP error
result (``isError``), a server that died or one that did not answer in time becomes a
:class:`~looplet.errors.ToolError`, so the step shows ✗ and the loop goes on. Failing to start
raises :class:`MCPError`. The protocol lives, without I/O, in :mod:`looplet._jsonrpc`; the two
adapters here only move its bytes, with threads (:class:`MCPToolAdapter`) or asyncio
(:class:`AsyncMCPToolAdapter`). Standard library only; resources, prompts and sampling are not
supported.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from looplet._jsonrpc import (
    SUPPORTED_PROTOCOL_VERSIONS,
    Flow,
    Notify,
    ProtocolError,
    Reply,
    Request,
    call_request,
    call_result,
    startup_flow,
)
from looplet._mcp_async import AsyncMCPToolAdapter
from looplet._mcp_common import (
    _GRACE,
    _REAP,
    _SIGKILL,
    _TERM_GRACE,
    MCPError,
    _Adapter,
    _call_failure,
    _close_quietly,
    _signal_group,
    _TransportError,
)
from looplet._version import __version__
from looplet.toolspec import ToolSpec

__all__ = ["SUPPORTED_PROTOCOL_VERSIONS", "AsyncMCPToolAdapter", "MCPError", "MCPToolAdapter"]

# --------------------------------------------------------------------------- sync adapter


class MCPToolAdapter(_Adapter):
    """The tools of an MCP server run as a child process, for :func:`composable_loop`.

    Example::

        with MCPToolAdapter([sys.executable, "server.py"], name_prefix="fs_") as server:
            server.register_all(registry)
            for step in composable_loop(llm=llm, tools=registry, task=task):
                print(step.pretty())

    Calls may come from several threads at once. A call that does not finish within
    ``timeout`` (the server did not read the request, or did not answer it) stops the server;
    once it has stopped, every call fails fast with the exit code and the end of its stderr
    (the loop goes on; make a new adapter to restart it). A write to a server that stopped
    reading gives up at the deadline on POSIX; on Windows it waits until the server reads.

    Args:
        command: the program and its arguments, run without a shell.
        env: variables added to (or overriding) this process's environment.
        cwd: the server's working directory (this process's by default).
        timeout: seconds each request may take (initialize, each tools/list page, each
            call), covering the whole of it: writing the request, waiting, reading the answer.
            The ``timeout`` attribute may be changed later; ``call_tool`` takes its own too.
        name_prefix: put before every tool name, to tell servers apart (``"fs_"``).

    Raises:
        ConfigurationError: a malformed argument or, on start, a program that cannot be run.
        MCPError: on start, the server exited, did not answer ``initialize`` in time, or
            answered with a protocol version looplet does not speak.
    """

    _proc: subprocess.Popen[bytes] | None

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        name_prefix: str = "",
    ) -> None:
        super().__init__(command, env, cwd, timeout, name_prefix)
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._replies: dict[int, Reply] = {}
        self._readers: list[threading.Thread] = []
        self._stop_lock = threading.Lock()

    def __enter__(self) -> MCPToolAdapter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def returncode(self) -> int | None:
        """The server's exit code, or ``None`` while it runs (or before start)."""
        return None if self._proc is None else self._proc.poll()

    def start(self) -> MCPToolAdapter:
        """Start the server, initialise the session and list its tools (once)."""
        self._check_startable()
        if self._proc is not None:
            return self
        try:
            self._proc = subprocess.Popen(self.command, **self._popen_options())
        except OSError as exc:
            raise self._spawn_error(exc) from None
        assert self._proc.stdin is not None
        if os.name == "posix":  # a write may then stop at its deadline (see _write_by)
            os.set_blocking(self._proc.stdin.fileno(), False)
        for target in (self._read_stdout, self._read_stderr):
            thread = threading.Thread(target=target, name="looplet-mcp", daemon=True)
            thread.start()
            self._readers.append(thread)
        try:
            self._accept(self._drive(startup_flow(__version__)), self._make_execute)
        except (_TransportError, ProtocolError) as exc:
            self._stop(graceful=False)
            raise self._startup_error(exc) from None
        except BaseException:
            self._stop(graceful=False)
            raise
        return self

    def tools(self) -> list[ToolSpec]:
        """One ToolSpec per server tool, its ``inputSchema`` as parameters (starts it first)."""
        if self._specs is None:
            self.start()
        return super().tools()

    def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Call the server's tool ``name`` (its MCP name, without the prefix).

        Args:
            name: the tool's MCP name.
            arguments: its arguments (a JSON object).
            timeout: seconds this call may take, instead of the adapter's ``timeout``. It
                covers the whole call: writing the request, waiting, reading the answer; a
                server that has not read the request or answered it by then is stopped.

        Returns:
            ``structuredContent`` when the server sent it, else the text parts joined.

        Raises:
            ToolError: an MCP error result, a JSON-RPC error, a time-out or a dead server.
            ConfigurationError: ``timeout`` is not a positive number.
        """
        seconds = self._call_timeout(timeout)
        self._check_callable(name)
        try:
            reply = self._request(call_request(name, arguments), seconds)
        except _TransportError as exc:
            raise _call_failure(exc, name) from None
        return call_result(reply, name, self.command)

    def close(self) -> None:
        """Stop the server (close its stdin, then SIGTERM, then SIGKILL) and wait for it."""
        if not self._closed:
            self._closed = True
            self._stop(graceful=True)

    def _make_execute(self, mcp_name: str) -> Callable[..., Any]:
        def execute(**arguments: Any) -> Any:
            return self.call_tool(mcp_name, arguments)

        return execute

    def _drive(self, flow: Flow) -> Any:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Notify):
                    line = self._session.notification(step.method)
                    self._write(line, step.method, self.timeout, time.monotonic() + self.timeout)
                    step = flow.send(None)
                else:
                    step = flow.send(self._request(step, self.timeout))
        except StopIteration as stop:
            return stop.value

    def _request(self, request: Request, timeout: float) -> Reply:
        deadline = time.monotonic() + timeout  # before the write: the server may not read it
        with self._cond:
            request_id, line = self._session.request(request.method, request.params)
        try:
            self._write(line, request.what, timeout, deadline)
        except _TransportError:
            with self._cond:
                self._session.forget(request_id)
            raise
        with self._cond:
            while request_id not in self._replies and not self._eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            reply = self._replies.pop(request_id, None)
            self._session.forget(request_id)
        if reply is not None:
            return reply
        if self._eof:
            raise self._exited(request.what)
        raise self._timed_out(request.what, timeout, unread=False)

    def _write(self, line: bytes, what: str, timeout: float, deadline: float) -> None:
        written = self._send(line, deadline)
        if written is None:
            raise self._timed_out(f"the request {what}", timeout, unread=True)
        if not written:
            raise self._exited(what)

    def _send(self, line: bytes, deadline: float) -> bool | None:
        """Write ``line`` whole by ``deadline``: True, False (pipe broken), None (too late)."""
        assert self._proc is not None and self._proc.stdin is not None
        if not self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return None  # the write ahead of ours is stuck: the server stopped reading
        try:
            return _write_by(self._proc.stdin, line, deadline)
        finally:
            self._write_lock.release()

    def _answer(self, line: bytes) -> None:
        """Send the answer to a request from the server; stop a server that does not read it."""
        if self._send(line, time.monotonic() + self.timeout) is None:
            self._timed_out("our answer to its request", self.timeout, unread=True)

    def _timed_out(self, what: str, timeout: float, *, unread: bool) -> _TransportError:
        error = self._timeout_error(what, timeout, unread=unread)
        self._stop(graceful=False)
        return error

    def _exited(self, what: str) -> _TransportError:
        assert self._proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):  # stdout closed, still alive?
            self._proc.wait(_REAP)
        returncode = self._proc.poll()
        self._stop(graceful=False)
        return self._exited_error(returncode, what)

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            for line in iter(self._proc.stdout.readline, b""):
                with self._cond:
                    events = self._session.receive(line)
                    self._replies.update((e.id, e) for e in events if isinstance(e, Reply))
                    self._cond.notify_all()
                for event in events:
                    if isinstance(event, bytes):  # the answer to a request from the server
                        self._answer(event)
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            if self._stopped:  # by this thread (see _answer), so _release left stdout open
                _close_quietly(self._proc.stdout)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        fd = self._proc.stderr.fileno()
        while chunk := os.read(fd, 4096):
            self._stderr.feed(chunk)

    def _stop(self, *, graceful: bool) -> None:
        with self._stop_lock:  # once, even when several failing calls ask at the same time
            proc = self._proc
            if proc is None or self._stopped:
                return
            self._stopped = True
            if graceful and proc.poll() is None:
                _close_quietly(proc.stdin, self._write_lock)
                try:
                    proc.wait(_GRACE)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(_TERM_GRACE)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _signal_group(proc.pid, _SIGKILL)  # its children, which may hold our pipes open
            self._release(proc)

    def _release(self, proc: subprocess.Popen[bytes]) -> None:
        _close_quietly(proc.stdin, self._write_lock)
        for pipe, thread in zip((proc.stdout, proc.stderr), self._readers, strict=False):
            if thread is not threading.current_thread():
                thread.join(_REAP)
            if pipe is not None and not thread.is_alive():  # closing under a reader blocks
                pipe.close()


def _write_by(pipe: IO[bytes], data: bytes, deadline: float) -> bool | None:
    """Write ``data`` whole to ``pipe`` unless its reader takes too long.

    Returns ``True`` once written, ``False`` if the pipe is broken or closed (the server
    exited), ``None`` if the server had not read it all by ``deadline`` (a
    :func:`time.monotonic` time): a full pipe is waited on only until then. That needs a
    non-blocking pipe (POSIX); elsewhere the write blocks until the server reads it.
    """
    try:
        fd = pipe.fileno()
    except ValueError:  # closed: the adapter stopped the server
        return False
    view = memoryview(data)
    selector: selectors.BaseSelector | None = None
    try:
        while view:
            try:
                view = view[os.write(fd, view) :]
                continue
            except BlockingIOError:  # the pipe is full: wait for the server to read some
                pass
            except OSError:  # a broken pipe
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if selector is None:
                selector = selectors.DefaultSelector()
                selector.register(fd, selectors.EVENT_WRITE)
            selector.select(left)
    finally:
        if selector is not None:
            selector.close()
    return True
