"""The asyncio MCP adapter: :class:`AsyncMCPToolAdapter` (re-exported by :mod:`looplet.mcp`).

Same protocol, checks and errors as :class:`looplet.mcp.MCPToolAdapter` (all in
:mod:`looplet._mcp_common` and :mod:`looplet._jsonrpc`); only the byte moving differs: an
asyncio subprocess and tasks instead of threads. Its tools are ``async``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from looplet._jsonrpc import (
    Flow,
    Notify,
    ProtocolError,
    Reply,
    Request,
    call_request,
    call_result,
    startup_flow,
)
from looplet._mcp_common import (
    _GRACE,
    _LINE_LIMIT,
    _REAP,
    _SIGKILL,
    _TERM_GRACE,
    _Adapter,
    _call_failure,
    _close_quietly,
    _signal_group,
    _TransportError,
)
from looplet._version import __version__
from looplet.errors import ErrorKind, ToolError

__all__ = ["AsyncMCPToolAdapter"]

# --------------------------------------------------------------------------- async adapter


class AsyncMCPToolAdapter(_Adapter):
    """The async twin of :class:`MCPToolAdapter`, for :func:`async_composable_loop`.

    Same arguments and behaviour; ``start``, ``call_tool`` and ``aclose`` are awaited, and
    its tools are async: they run only on the event loop that started the adapter. A call's
    ``timeout`` covers the whole call too: writing the request (the stream's drain), waiting,
    reading the answer.

    Example::

        async with AsyncMCPToolAdapter([sys.executable, "server.py"]) as server:
            server.register_all(registry)
            async for step in async_composable_loop(llm=llm, tools=registry, task=task):
                print(step.pretty())
    """

    _proc: asyncio.subprocess.Process | None

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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, asyncio.Future[Reply | None]] = {}
        self._write_lock = asyncio.Lock()
        self._stop_lock = asyncio.Lock()
        self._readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> AsyncMCPToolAdapter:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def returncode(self) -> int | None:
        """The server's exit code, or ``None`` while it runs (or before start)."""
        return None if self._proc is None else self._proc.returncode

    async def start(self) -> AsyncMCPToolAdapter:
        """Start the server, initialise the session and list its tools (once)."""
        self._check_startable()
        if self._proc is not None:
            return self
        self._loop = asyncio.get_running_loop()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command, limit=_LINE_LIMIT, **self._popen_options()
            )
        except OSError as exc:
            raise self._spawn_error(exc) from None
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]
        try:
            self._accept(await self._drive(startup_flow(__version__)), self._make_execute)
        except (_TransportError, ProtocolError) as exc:
            await self._stop(graceful=False)
            raise self._startup_error(exc) from None
        except BaseException:
            await self._stop(graceful=False)
            raise
        return self

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Call the server's tool ``name``; see :meth:`MCPToolAdapter.call_tool`.

        ``timeout`` (seconds, instead of the adapter's) covers the whole call: writing the
        request, waiting, reading the answer; the server is stopped when it runs out.
        """
        seconds = self._call_timeout(timeout)
        self._check_callable(name)
        if asyncio.get_running_loop() is not self._loop:
            raise ToolError(
                ErrorKind.EXECUTION,
                f"MCP tool {name!r} was called outside the event loop that started its "
                "AsyncMCPToolAdapter (composable_loop runs async tools in a new loop). Use "
                "async_composable_loop, or MCPToolAdapter with composable_loop.",
                context={"tool": name, "server": self.command},
            )
        try:
            reply = await self._request(call_request(name, arguments), seconds)
        except _TransportError as exc:
            raise _call_failure(exc, name) from None
        return call_result(reply, name, self.command)

    async def aclose(self) -> None:
        """Stop the server (close its stdin, then SIGTERM, then SIGKILL) and wait for it."""
        if not self._closed:
            self._closed = True
            await self._stop(graceful=True)

    def _make_execute(self, mcp_name: str) -> Callable[..., Any]:
        async def execute(**arguments: Any) -> Any:
            return await self.call_tool(mcp_name, arguments)

        return execute

    async def _drive(self, flow: Flow) -> Any:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Notify):
                    line = self._session.notification(step.method)
                    deadline = asyncio.get_running_loop().time() + self.timeout
                    await self._write(line, step.method, self.timeout, deadline)
                    step = flow.send(None)
                else:
                    step = flow.send(await self._request(step, self.timeout))
        except StopIteration as stop:
            return stop.value

    async def _request(self, request: Request, timeout: float) -> Reply:
        assert self._loop is not None
        deadline = self._loop.time() + timeout  # before the write: the server may not read it
        request_id, line = self._session.request(request.method, request.params)
        waiter: asyncio.Future[Reply | None] = self._loop.create_future()
        self._waiters[request_id] = waiter
        if self._eof:
            waiter.set_result(None)
        try:
            await self._write(line, request.what, timeout, deadline)
            try:
                async with asyncio.timeout_at(deadline):
                    reply = await waiter
            except TimeoutError:
                raise await self._timed_out(request.what, timeout, unread=False) from None
        except asyncio.CancelledError:
            if request.method == "tools/call":  # MCP: tell the server, it may stop the work
                params = {"requestId": request_id, "reason": "the caller was cancelled"}
                self._write_nowait(self._session.notification("notifications/cancelled", params))
            raise
        finally:
            self._waiters.pop(request_id, None)
            self._session.forget(request_id)
        if reply is None:
            raise await self._exited(request.what)
        return reply

    async def _write(self, line: bytes, what: str, timeout: float, deadline: float) -> None:
        """Write ``line`` whole (buffered and drained) by ``deadline`` (the loop's time)."""
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        try:
            async with asyncio.timeout_at(deadline):  # waiting for the lock counts too
                async with self._write_lock:
                    stdin.write(line)
                    await stdin.drain()
        except TimeoutError:
            raise await self._timed_out(f"the request {what}", timeout, unread=True) from None
        except (OSError, RuntimeError):  # a broken pipe, or the transport already closed
            raise await self._exited(what) from None

    async def _timed_out(self, what: str, timeout: float, *, unread: bool) -> _TransportError:
        error = self._timeout_error(what, timeout, unread=unread)
        await self._stop(graceful=False)
        return error

    def _write_nowait(self, line: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        with contextlib.suppress(OSError, RuntimeError):  # gone: the pending call says so
            self._proc.stdin.write(line)

    async def _exited(self, what: str) -> _TransportError:
        assert self._proc is not None
        with contextlib.suppress(TimeoutError):  # stdout closed, still alive?
            await asyncio.wait_for(self._proc.wait(), _REAP)
        returncode = self._proc.returncode
        await self._stop(graceful=False)
        return self._exited_error(returncode, what)

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            while True:
                try:
                    line = await self._proc.stdout.readline()
                except ValueError:  # over _LINE_LIMIT: the stream reader dropped it
                    self._session.receive(b"<a line over %d bytes>" % _LINE_LIMIT)
                    continue
                if not line:
                    break
                for event in self._session.receive(line):
                    if isinstance(event, bytes):  # the answer to a request from the server
                        self._write_nowait(event)
                    elif (waiter := self._waiters.get(event.id)) is not None and not waiter.done():
                        waiter.set_result(event)
        finally:
            self._eof = True
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_result(None)

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while chunk := await self._proc.stderr.read(4096):
            self._stderr.feed(chunk)

    async def _stop(self, *, graceful: bool) -> None:
        async with self._stop_lock:  # once, even when several failing calls ask
            proc = self._proc
            if proc is None or self._stopped:
                return
            self._stopped = True
            if graceful and proc.returncode is None:
                _close_quietly(proc.stdin)
                try:
                    await asyncio.wait_for(proc.wait(), _GRACE)
                except TimeoutError:
                    _signal_group(proc.pid, signal.SIGTERM)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), _TERM_GRACE)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            _signal_group(proc.pid, _SIGKILL)  # its children, which may hold our pipes open
            await self._release(proc)

    async def _release(self, proc: asyncio.subprocess.Process) -> None:
        _close_quietly(proc.stdin)
        readers = [task for task in self._readers if task is not asyncio.current_task()]
        if readers:
            _, pending = await asyncio.wait(readers, timeout=_REAP)
            for task in pending:  # a pipe still held open by something that outlived the kill
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
