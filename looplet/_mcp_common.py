"""What the sync and async MCP adapters share: the error, process handling and checks.

:class:`MCPError`, the stderr tail, the base adapter holding the JSON-RPC session and the tool
list, and the helpers that start, signal and check a server process. The adapters themselves
are :class:`looplet.mcp.MCPToolAdapter` and :class:`looplet._mcp_async.AsyncMCPToolAdapter`;
the protocol, without I/O, is :mod:`looplet._jsonrpc`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from looplet._jsonrpc import (
    JsonRpcSession,
    ProtocolError,
    ServerHello,
)
from looplet.errors import ConfigurationError, ErrorKind, LoopletError, ToolError
from looplet.toolspec import ToolSpec

__all__ = ["MCPError"]

_STDERR_BYTES = 8192  # the tail of the server's stderr kept for error messages
_STDERR_LINES = 12
_GRACE = 2.0  # how long a server may take to exit once its stdin is closed (MCP shutdown)
_TERM_GRACE = 2.0  # then SIGTERM; SIGKILL after this long
_REAP = 2.0  # after stdout closed, how long to wait for the exit code before killing
_LINE_LIMIT = 16 * 1024 * 1024  # the longest stdout line the async reader accepts
_SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL


class MCPError(LoopletError):
    """An MCP server could not be started or initialised (a call's failure is a ToolError).

    Attributes:
        command: the server's argument list.
        returncode: its exit code if it had exited (negative: killed by that signal).
        stderr_tail: the last lines it wrote to stderr.
    """

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        returncode: int | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.command = list(command)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class _TransportError(Exception):
    """The server exited or timed out; becomes an MCPError (start) or a ToolError (call)."""

    def __init__(self, kind: Literal["timeout", "exited"], message: str, context: dict[str, Any]):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.context = context


class _StderrTail:
    """The last few KiB a process wrote to stderr; fed by a reader so the pipe never fills."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            del self._data[:-_STDERR_BYTES]

    def text(self) -> str:
        with self._lock:
            lines = self._data.decode("utf-8", "replace").strip().splitlines()
        return "\n".join(lines[-_STDERR_LINES:])


class _Adapter:
    """Configuration, tool specs and error messages shared by both adapters."""

    _proc: Any

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        timeout: float,
        name_prefix: str,
    ) -> None:
        self.command: list[str] = _check_command(command)
        self.timeout = _check_timeout(timeout)
        self.name_prefix = name_prefix
        self._hello: ServerHello | None = None
        self._env = _check_env(env)
        self._cwd = _check_cwd(cwd)
        self._session = JsonRpcSession()
        self._stderr = _StderrTail()
        self._specs: list[ToolSpec] | None = None
        self._gone: _TransportError | None = None  # why the server can no longer be used
        self._eof = False
        self._closed = False
        self._stopped = False
        self._proc = None

    @property
    def pid(self) -> int | None:
        """The server's process id (``None`` before start)."""
        return None if self._proc is None else int(self._proc.pid)

    @property
    def protocol_version(self) -> str | None:
        """The MCP revision agreed in ``initialize`` (``None`` before start)."""
        return None if self._hello is None else self._hello.protocol_version

    @property
    def server_info(self) -> dict[str, Any]:
        """The server's ``serverInfo`` (name, version) from ``initialize``."""
        return {} if self._hello is None else dict(self._hello.server_info)

    def register_all(self, registry: Any) -> list[ToolSpec]:
        """Register the server's tools in ``registry`` (a BaseToolRegistry); returns them."""
        specs = self.tools()
        registry.register_all(specs)
        return specs

    def tools(self) -> list[ToolSpec]:
        """One ToolSpec per server tool, its ``inputSchema`` as parameters (after start)."""
        if self._specs is None:
            raise MCPError(
                f"MCP server {self.command} is not started: use 'with' / 'async with', or "
                "call start() first.",
                command=self.command,
            )
        return list(self._specs)

    def _popen_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "stdin": subprocess.PIPE,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "env": self._env,
            "cwd": self._cwd,
        }
        if os.name == "posix":  # its own process group, so stopping it stops its children
            options["start_new_session"] = True
        return options

    def _check_startable(self) -> None:
        if self._closed:
            raise MCPError(
                f"MCP server {self.command}: this adapter was closed; make a new one.",
                command=self.command,
            )

    def _spawn_error(self, exc: OSError) -> ConfigurationError:
        program = self.command[0]
        if isinstance(exc, FileNotFoundError):
            why = f"program {program!r} was not found (not on PATH, and no such file)"
            fix = "Install it, or pass its full path, e.g. [sys.executable, 'server.py']."
        else:
            why = f"{program!r} cannot be run ({exc.strerror or exc})"
            fix = "Check that it is an executable file."
        return ConfigurationError(f"cannot start MCP server {self.command}: {why}. {fix}")

    def _accept(self, hello: ServerHello, make_execute: Callable[[str], Any]) -> None:
        """Keep what start-up learnt and build a ToolSpec per listed tool."""
        specs: dict[str, ToolSpec] = {}
        for entry in hello.tools:
            mcp_name = entry.get("name")
            if not isinstance(mcp_name, str) or not mcp_name:
                raise ProtocolError(f"listed a tool without a name: {entry!r:.200}")
            name = _tool_name(self.name_prefix + mcp_name)
            if name in specs:
                raise ProtocolError(
                    f"lists two tools that both become {name!r} (a tool name may use only "
                    "letters, digits, '_' and '-'; others are replaced by '_')"
                )
            schema = entry.get("inputSchema")
            try:
                specs[name] = ToolSpec(
                    name=name,
                    description=str(entry.get("description") or entry.get("title") or ""),
                    parameters=schema if isinstance(schema, dict) else {"type": "object"},
                    execute=make_execute(mcp_name),
                )
            except ConfigurationError as exc:
                raise ProtocolError(
                    f"offers tool {mcp_name!r}, which cannot be used: {exc}"
                ) from exc
        self._hello = hello
        self._specs = list(specs.values())

    def _startup_error(self, exc: Exception) -> MCPError:
        if isinstance(exc, _TransportError):
            return MCPError(
                exc.message,
                command=self.command,
                returncode=exc.context.get("exit_code"),
                stderr_tail=exc.context["stderr_tail"],
            )
        tail = self._stderr.text()
        shown = f"\nstderr (last lines):\n{tail}" if tail else ""
        return MCPError(
            f"MCP server {self.command} {exc}.{shown}", command=self.command, stderr_tail=tail
        )

    def _exited_error(self, returncode: int | None, what: str) -> _TransportError:
        if self._gone is not None and self._gone.kind == "timeout":
            return self._gone  # killed by us after another request timed out
        tail = self._stderr.text()
        notes = self._session.describe_notes()
        text = f"MCP server {self.command} {_describe_status(returncode)} during {what}."
        text += f" {notes}" if notes else ""
        text += f"\nstderr (last lines):\n{tail}" if tail else " It wrote nothing to stderr."
        context = {"server": self.command, "exit_code": returncode, "stderr_tail": tail}
        self._gone = _TransportError("exited", text, {**context, **self._session.notes()})
        return self._gone

    def _call_timeout(self, timeout: float | None) -> float:
        """The seconds one call may take: its own ``timeout=`` if given, else the adapter's."""
        return self.timeout if timeout is None else _check_timeout(timeout)

    def _timeout_error(self, what: str, timeout: float, *, unread: bool) -> _TransportError:
        """The server got ``timeout`` s for ``what``; ``unread``: it did not even read it
        (then ``what`` names what we sent: "the request tools/call 'x'")."""
        tail = self._stderr.text()
        notes = self._session.describe_notes()
        if unread:  # our write could not finish: the server stopped reading its stdin
            failed = f"did not read {what} within {timeout:g}s (its stdin is full)"
        else:
            failed = f"did not answer {what} within {timeout:g}s"
        text = (
            f"MCP server {self.command} {failed}, so it was stopped; pass a larger timeout= "
            "to the adapter or the call if the work takes longer."
        )
        text += f" {notes}" if notes else ""
        text += f"\nstderr (last lines):\n{tail}" if tail else ""
        context = {"server": self.command, "timeout": timeout, "stderr_tail": tail}
        self._gone = _TransportError("timeout", text, {**context, **self._session.notes()})
        return self._gone

    def _check_callable(self, tool: str) -> None:
        if self._specs is None:
            _Adapter.tools(self)  # raises "not started"
        gone = self._gone
        if self._closed:
            gone = _TransportError("exited", f"The adapter of {self.command} was closed.", {})
        if gone is not None:
            raise ToolError(
                ErrorKind.EXECUTION,
                f"tool {tool!r} was not called: its MCP server is no longer running. "
                + gone.message,
                context={**gone.context, "tool": tool},
            )


# --------------------------------------------------------------------------- helpers


def _call_failure(exc: _TransportError, tool: str) -> ToolError:
    kind = ErrorKind.TIMEOUT if exc.kind == "timeout" else ErrorKind.EXECUTION
    return ToolError(kind, exc.message, context={**exc.context, "tool": tool})


def _tool_name(name: str) -> str:
    """``name`` with the characters providers refuse replaced by ``_``; at most 64."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in name)[:64]


def _describe_status(returncode: int | None) -> str:
    if returncode is None:
        return "closed its stdout"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the server's process group, its children included (POSIX only).

    Called once the server is reaped only right away, and only once: its pid is not reused
    while it still names a process group, and an empty group makes killpg fail harmlessly.
    """
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


def _close_quietly(pipe: Any, lock: threading.Lock | None = None) -> None:
    if pipe is None:
        return
    # A write waiting on a server that stopped reading holds the lock until its deadline;
    # the kill that follows breaks its pipe, it lets go, and the close after that gets it.
    if lock is not None and not lock.acquire(timeout=1.0):
        return
    try:
        with contextlib.suppress(OSError, ValueError):
            pipe.close()
    finally:
        if lock is not None:
            lock.release()


def _check_command(command: Sequence[str]) -> list[str]:
    if isinstance(command, str | bytes):
        raise ConfigurationError(
            f"MCPToolAdapter takes the command as an argument list, got the string {command!r} "
            "(no shell is used). Pass e.g. shlex.split(command) or ['npx', '-y', 'server']."
        )
    args = list(command)
    if not args or not all(isinstance(a, str | os.PathLike) for a in args):
        raise ConfigurationError(
            f"MCPToolAdapter needs a non-empty list of strings as the command, got {command!r}. "
            "Example: [sys.executable, 'server.py']."
        )
    return [os.fspath(a) for a in args]


def _check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigurationError(
            f"MCPToolAdapter timeout must be a positive number of seconds, got {timeout!r}."
        )
    return float(timeout)


def _check_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    if env is None:
        return None
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigurationError(
                f"MCPToolAdapter env must map strings to strings, but {key!r} maps to "
                f"{value!r}. Convert it with str()."
            )
    return {**os.environ, **env}


def _check_cwd(cwd: str | os.PathLike[str] | None) -> str | None:
    if cwd is None:
        return None
    path = os.fspath(cwd)
    if not os.path.isdir(path):
        raise ConfigurationError(
            f"MCPToolAdapter cwd {path!r} is not an existing directory (relative to "
            f"{os.getcwd()!r})."
        )
    return path
