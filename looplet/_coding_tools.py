"""The coding tools of :func:`looplet.presets.coding_agent_preset`, each confined to one folder.

:class:`CodingWorkspace` holds the folder and offers ``bash``, ``read``, ``write``, ``edit``,
``glob``, ``grep``, ``think`` and ``done`` as methods; :meth:`CodingWorkspace.registry` turns
them into tools. Every path a file tool is given goes through :func:`confine`: it is resolved,
symlinks followed, and must land inside the resolved folder, so ``..``, an absolute path
elsewhere, ``/proc/self/root/...`` and a symlink (or chain of them) pointing out are refused with
a :class:`~looplet.ToolError` naming the path and the rule. ``grep`` and ``glob`` walk without
following symlinked folders and leave out every file that resolves outside, as if it were not
there. ``bash`` runs in the folder under a timeout, inside a
:class:`~looplet.sandbox.BwrapSandbox` (only the workspace writable, no other process visible,
no network, a clean environment); when no sandbox can start it runs unsandboxed, in its own
process group and without API keys in its environment, and it is the permission rules
(:func:`looplet.presets.coding_permissions`) that then ask before every command.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

from looplet import BaseToolRegistry, ToolContext, ToolError, ToolSpec, tool
from looplet.sandbox import BwrapSandbox

__all__ = ["CodingWorkspace", "confine", "sandbox_of"]

# Folders of tools and caches, not of the project: glob and grep do not descend into them.
_SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache", ".pytest_cache"}
)
# Environment variables a command should not see: the agent's own credentials.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# A module edited twice in one second, its size unchanged, would otherwise run as its stale
# bytecode: Python checks a .pyc by the source's mtime in whole seconds and its size.
_PYTHON_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}
_MAX_READ_BYTES = 256_000
_MAX_OUTPUT_CHARS = 16_000
# The output bytes kept while a command runs: enough for _MAX_OUTPUT_CHARS characters.
_KEEP_BYTES = 4 * _MAX_OUTPUT_CHARS
_MAX_LISTED = 500
_MAX_MATCHES = 200
_MAX_TIMEOUT = 600
# Longer paths and names than most file systems accept (PATH_MAX, NAME_MAX in bytes).
_MAX_PATH_CHARS = 4096
_MAX_NAME_BYTES = 255


class CodingWorkspace:
    """The coding tools, bound to one folder they may not leave.

    Example::

        tools = CodingWorkspace("project").registry()
        loop = composable_loop(llm=llm, tools=tools, task="implement fizzbuzz")

    Args:
        root: the folder (it must exist). ``None``: each call's
            ``ToolContext.workspace_root``, which the loop sets from
            ``LoopConfig.workspace_root``.
        sandbox: where ``bash`` runs its commands: ``True``, a default
            :class:`~looplet.sandbox.BwrapSandbox`; a sandbox of your own; ``False``, none
            (you accept that commands can do whatever you can). A sandbox that cannot start
            here is not used; :func:`~looplet.presets.coding_permissions`, given
            the same one, then asks before every command.
    """

    def __init__(
        self, root: str | os.PathLike[str] | None = None, *, sandbox: BwrapSandbox | bool = True
    ) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.sandbox = sandbox_of(sandbox)

    def registry(self, *, shell: bool = True) -> BaseToolRegistry:
        """The tools as a registry: bash, read, write, edit, glob, grep, think (free), done.

        Args:
            shell: include ``bash``; ``False``: the file tools only.
        """
        specs: list[ToolSpec] = [
            *([tool(self.bash)] if shell else []),
            tool(self.read),
            tool(self.write),
            tool(self.edit),
            tool(self.glob),
            tool(self.grep),
            tool(free=True)(self.think),
            tool(self.done),
        ]
        return BaseToolRegistry(specs)

    # -- the tools: their docstrings are what the model reads -----------------------------------

    def bash(self, command: str, ctx: ToolContext, timeout: int = 60) -> dict[str, object]:
        """Run a bash command in the workspace; returns its exit code and output.

        Args:
            command: the command line, run by ``bash -c`` in the workspace folder.
            timeout: seconds before the command and everything it started are killed.
        """
        if not 1 <= timeout <= _MAX_TIMEOUT:
            raise ToolError(
                "validation", f"timeout must be 1 to {_MAX_TIMEOUT} seconds, not {timeout}"
            )
        shell = shutil.which("bash")
        if shell is None:
            raise ToolError("execution", "bash is not installed on this machine")
        root = self._root(ctx)
        argv, env = [shell, "-c", command], _command_env()
        if self.sandbox is not None and self.sandbox.available():
            argv, env = self.sandbox.wrap(argv, root, env=_PYTHON_ENV)
        process = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group, so a timeout can kill it all; in the sandbox, killing bwrap
            # ends its PID namespace, and every process in it, even one that left the group.
            start_new_session=True,
        )
        # The output is drained as it comes, keeping only its end: a command may print
        # without end, and memory must not grow with it.
        output = _Tail(_KEEP_BYTES)
        reader = threading.Thread(target=output.drain, args=(process.stdout,), daemon=True)
        reader.start()
        try:
            _wait(process, reader, timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process, reader)
            raise ToolError(
                "timeout",
                f"{command!r} ran longer than {timeout}s; it was killed with every process it "
                "started. Run it with a larger timeout, or in smaller parts.",
            ) from None
        except BaseException:  # Ctrl-C in the caller: leave no process behind
            _kill_group(process, reader)
            raise
        return {"exit_code": process.returncode, "output": output.text()}

    def read(self, path: str, ctx: ToolContext) -> str:
        """Read a text file of the workspace.

        Args:
            path: the file's path, relative to the workspace.
        """
        target = self._file(ctx, path)
        if target.stat().st_size > _MAX_READ_BYTES:
            raise ToolError(
                "validation",
                f"{path!r} is larger than {_MAX_READ_BYTES} bytes; grep it, or read part of it "
                "with bash (sed -n 1,200p)",
            )
        try:
            return target.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ToolError("validation", f"{path!r} is not UTF-8 text") from None

    def write(self, path: str, content: str, ctx: ToolContext) -> dict[str, object]:
        """Write a text file, creating it (and its folders) or replacing what it held.

        Args:
            path: the file's path, relative to the workspace.
            content: the whole new content.
        """
        target = self._path(ctx, path)
        if target.is_dir():
            raise ToolError("validation", f"{path!r} is a folder, not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return {"path": path, "bytes": len(content.encode("utf-8"))}

    def edit(self, path: str, old: str, new: str, ctx: ToolContext) -> dict[str, object]:
        """Replace one exact piece of a file's text with another.

        Args:
            path: the file's path, relative to the workspace.
            old: the text to replace, exactly as in the file (whitespace included); it must
                occur exactly once.
            new: the text to put in its place.
        """
        if not old:
            raise ToolError("validation", "old must not be empty; use write to create a file")
        target = self._file(ctx, path)
        text = target.read_text(encoding="utf-8")
        count = text.count(old)
        if count == 0:
            raise ToolError(
                "validation",
                f"the old text was not found in {path!r}; read the file and copy the text "
                "exactly, whitespace included",
            )
        if count > 1:
            raise ToolError(
                "validation",
                f"the old text occurs {count} times in {path!r}; include more of the lines "
                "around it so that it occurs once",
            )
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        return {"path": path, "replaced_lines": old.count("\n") + 1}

    def glob(self, ctx: ToolContext, pattern: str = "**/*") -> list[str]:
        """List the workspace's files whose paths match a glob pattern, sorted.

        Args:
            pattern: a pattern relative to the workspace, like ``**/*.py``.
        """
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ToolError(
                "permission_denied",
                f"the pattern {pattern!r} leaves the workspace; use one relative to it, like "
                "'**/*.py'",
            )
        root = self._root(ctx)
        parts = [part for part in Path(pattern).parts if part != "."]
        if not parts:
            raise ToolError("validation", f"bad glob pattern {pattern!r}: it names no file")
        # Our own walk, not Path.glob, which would go down a symlinked folder the pattern names.
        names = sorted(
            name
            for name in (p.relative_to(root).as_posix() for p in _walk_files(root, root))
            if _glob_match(name.split("/"), parts)
        )
        if len(names) > _MAX_LISTED:
            more = len(names) - _MAX_LISTED
            names = [*names[:_MAX_LISTED], f"... and {more} more: narrow the pattern"]
        return names

    def grep(self, pattern: str, ctx: ToolContext, path: str = ".") -> str:
        """Search the workspace's text files for lines matching a regular expression.

        Args:
            pattern: a Python regular expression.
            path: a file or folder to search, relative to the workspace.
        """
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError("validation", f"bad regular expression {pattern!r}: {exc}") from None
        root = self._root(ctx)
        start = self._path(ctx, path)
        if not start.exists():
            raise ToolError("validation", f"no file or folder {path!r} in the workspace")
        lines: list[str] = []
        for file in _text_files(root, start):
            name = file.relative_to(root).as_posix()
            text = file.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                if regex.search(line):
                    lines.append(f"{name}:{number}: {line[:300]}")
                if len(lines) > _MAX_MATCHES:
                    return "\n".join([*lines[:_MAX_MATCHES], "... more matches: narrow it"])
        return "\n".join(lines) if lines else "no matches"

    def think(self, thought: str) -> str:
        """Think out loud: plan, or reason about a result. Free: it costs no step.

        Args:
            thought: the thought.
        """
        return "ok"

    def done(self, summary: str) -> dict[str, str]:
        """Finish: the task is complete, or cannot be done.

        Args:
            summary: what was done, in a sentence or two.
        """
        return {"summary": summary}

    # -- confinement ----------------------------------------------------------------------------

    def _root(self, ctx: ToolContext) -> Path:
        return self.root if self.root is not None else Path(ctx.workspace_root).resolve()

    def _path(self, ctx: ToolContext, path: str) -> Path:
        """``path`` inside the workspace, or a ToolError naming it."""
        return confine(self._root(ctx), path)

    def _file(self, ctx: ToolContext, path: str) -> Path:
        target = self._path(ctx, path)
        if not target.is_file():
            raise ToolError("validation", f"no file {path!r} in the workspace; glob lists them")
        return target


def sandbox_of(sandbox: BwrapSandbox | bool) -> BwrapSandbox | None:
    """The sandbox that ``sandbox=`` names: ``True`` a default one, ``False`` none."""
    if isinstance(sandbox, bool):
        return BwrapSandbox() if sandbox else None
    given: object = sandbox  # checked again: callers without a type checker pass anything
    if isinstance(given, BwrapSandbox):
        return given
    raise TypeError(
        f"sandbox= takes True, False or a looplet.sandbox.BwrapSandbox, not {sandbox!r}"
    )


def confine(root: Path, path: str) -> Path:
    """``path`` resolved inside the workspace ``root``, or a :class:`~looplet.ToolError`.

    The one check every file tool makes. ``path`` is taken relative to ``root`` (an absolute
    path stands for itself), resolved with every symlink followed, even a dangling one, and
    must then be ``root`` or below it. ``root`` must be resolved already.

    Raises:
        ToolError: ``validation`` for a NUL byte, a path longer than 4096 characters or a
            name longer than 255 bytes, or a symlink loop; ``permission_denied`` when the
            resolved path is outside ``root``. The message names the path and the rule;
            ``context["path"]`` holds it.
    """
    # A 5,000-character name is quoted by its start: the model needs to recognise it, no more.
    shown = repr(path) if len(path) <= 200 else f"{path[:100]!r}... ({len(path)} characters)"

    def refuse(kind: str, rule: str) -> ToolError:
        return ToolError(kind, f"{shown} {rule}", context={"path": path})

    if "\0" in path:
        raise refuse("validation", "contains a NUL byte, which no file name may hold")
    if len(path) > _MAX_PATH_CHARS or any(
        len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES for name in Path(path).parts
    ):
        raise refuse(
            "validation",
            f"is too long: a path may have {_MAX_PATH_CHARS} characters and each name in it "
            f"{_MAX_NAME_BYTES} bytes",
        )
    try:
        target = (root / path).resolve()  # an absolute `path` replaces root: checked below
    except (RuntimeError, OSError, ValueError):  # RuntimeError: a symlink loop (3.11, 3.12)
        raise refuse(
            "validation", "is a symlink loop or not a valid file name: it cannot be resolved"
        ) from None
    if not _inside(root, target):
        raise refuse(
            "permission_denied",
            "is outside the workspace: paths are relative to the workspace folder and may "
            "not leave it, through '..', an absolute path or a symlink",
        )
    return target


def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def _resolves_inside(root: Path, path: Path) -> bool:
    """Whether ``path``, every symlink followed, ends inside ``root``; a loop does not."""
    try:
        return _inside(root, path.resolve(strict=True))
    except (RuntimeError, OSError):
        return False


def _walk_files(root: Path, start: Path) -> list[Path]:
    """The files below ``start``, in walk order, that resolve inside ``root``.

    Symlinked folders are not entered, and a file (or symlink) that resolves outside ``root``
    is left out, as if it were not there; so are the tool folders of ``_SKIPPED_DIRS``.
    """
    found: list[Path] = []
    for folder, dirs, files in os.walk(start, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(folder, name)
            if _resolves_inside(root, path) and path.is_file():
                found.append(path)
    return found


def _text_files(root: Path, start: Path) -> list[Path]:
    """The text files below ``start`` (or ``start`` itself, already confined) inside ``root``."""
    candidates = [start] if start.is_file() else _walk_files(root, start)
    return [p for p in candidates if _looks_like_text(p)]


def _glob_match(names: list[str], parts: list[str]) -> bool:
    """Whether the file path ``names`` matches the glob ``parts``.

    ``**`` stands for any number of folders; as in :meth:`pathlib.Path.glob`, a pattern
    ending in ``**`` names folders, so no file matches it.
    """

    @functools.cache
    def match(i: int, j: int) -> bool:  # names[i:] against parts[j:], each pair once
        if j == len(parts):
            return i == len(names)
        if parts[j] == "**":
            return j + 1 < len(parts) and any(match(k, j + 1) for k in range(i, len(names)))
        return i < len(names) and fnmatch.fnmatchcase(names[i], parts[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _looks_like_text(path: Path) -> bool:
    try:
        if path.stat().st_size > 2 * _MAX_READ_BYTES:
            return False
        with path.open("rb") as handle:
            return b"\0" not in handle.read(1024)
    except OSError:
        return False


def _command_env() -> dict[str, str]:
    """The agent's environment without credentials; ``python`` is the running interpreter."""
    env = {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}
    here = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(filter(None, [here, env.get("PATH")]))
    return {**env, **_PYTHON_ENV}


def _wait(process: subprocess.Popen[bytes], reader: threading.Thread, timeout: float) -> None:
    """Wait for the command and the end of its output (a process it left running in the
    background may hold the pipe open), ``timeout`` seconds for both."""
    deadline = time.monotonic() + timeout
    process.wait(timeout=timeout)
    reader.join(max(0.0, deadline - time.monotonic()))
    if reader.is_alive():
        raise subprocess.TimeoutExpired(process.args, timeout)


def _kill_group(process: subprocess.Popen[bytes], reader: threading.Thread) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # Windows has no process groups of this kind
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass  # already gone
    # The group is dead; a process that moved itself to another group could still hold the
    # pipe open, so waiting for the output is bounded (the reader is a daemon thread).
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    reader.join(5)


class _Tail:
    """Drains a pipe, keeping only its last ``keep`` bytes and counting the rest."""

    __slots__ = ("chunks", "dropped", "keep", "size")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.chunks: deque[bytes] = deque()
        self.size = self.dropped = 0

    def drain(self, pipe: IO[bytes] | None) -> None:
        """Read ``pipe`` to its end (the reader thread's work)."""
        if pipe is None:
            return
        with contextlib.suppress(OSError, ValueError), pipe:
            fd = pipe.fileno()
            while chunk := os.read(fd, 65536):
                self.chunks.append(chunk)
                self.size += len(chunk)
                while self.size - len(self.chunks[0]) >= self.keep:
                    self.size -= len(first := self.chunks.popleft())
                    self.dropped += len(first)

    def text(self) -> str:
        """The output, its beginning cut when long: the end of a log says what went wrong."""
        data = b"".join(self.chunks)
        dropped = self.dropped + max(0, len(data) - self.keep)
        text = data[-self.keep :].decode("utf-8", errors="replace")
        if len(text) > _MAX_OUTPUT_CHARS:
            dropped += len(text[:-_MAX_OUTPUT_CHARS].encode("utf-8", errors="replace"))
            text = text[-_MAX_OUTPUT_CHARS:]
        elif not dropped:
            return text
        return f"[... {dropped} earlier bytes cut]\n" + text
