"""The coding agent's bash against the attacks of issue 13, in a real bubblewrap sandbox.

Each attack is tried the way an agent would: through the tools' public API (``build_tools``,
so with no permission rule in the way: the sandbox alone must hold) and through the CLI
(``python -m looplet.examples.coding_agent``, live against a scripted model on loopback, with
no terminal: the rules must ask, and so deny). Tests that need a sandbox that can start skip,
saying why, where none can; the fail-closed tests (no sandbox: every command asked, the
message saying how to enable it) always run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from looplet import PermissionDecision, ToolCall
from looplet.examples import coding_agent
from looplet.permissions import PermissionRule
from looplet.sandbox import BwrapSandbox, SandboxUnavailableError
from looplet.testing import MockLLMBackend, ScriptedModelServer, call, tool_reply

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = BwrapSandbox()
needs_sandbox = pytest.mark.skipif(
    not SANDBOX.available(), reason=f"no sandbox can start here: {SANDBOX.why_unavailable()}"
)
CLI = [sys.executable, "-m", "looplet.examples.coding_agent"]
PROC_ENVIRON = r"tr '\0' '\n' < ${PWD:0:1}proc${PWD:0:1}$PPID${PWD:0:1}environ"


def bash(workspace: Path, command: str, **args: Any) -> dict[str, Any]:
    """One bash call through the public API, no permission rule in front of it."""
    result = coding_agent.build_tools(workspace).dispatch(
        ToolCall("bash", {"command": command, **args})
    )
    return {"data": result.data, "error": result.error, "kind": result.error_kind}


def run_cli(
    workspace: Path, commands: list[str], *args: str, key: str = "sk-test"
) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    """The CLI, live against a scripted model that runs ``commands`` then finishes."""
    script = [tool_reply(call("bash", {"command": c})) for c in commands]
    script.append(tool_reply(call("done", {"summary": "done"})))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with ScriptedModelServer(script) as server:
        env.update(OPENAI_API_KEY=key, OPENAI_BASE_URL=server.base_url)
        out = subprocess.run(
            [*CLI, "go", "--workspace", str(workspace), *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,  # no terminal: an asked command is denied
            timeout=120,
            check=False,
        )
        bodies = [r.body for r in server.requests]
    return out, bodies


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A folder outside /tmp (the sandbox's /tmp is private), with ``ws`` in it."""
    base = Path(tempfile.mkdtemp(prefix="looplet-sandbox-test-", dir="/var/tmp")).resolve()
    (base / "ws").mkdir()
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- other processes' environments ----------------------------------------------------------


@needs_sandbox
def test_the_parent_process_environment_cannot_be_read(tmp_path: Path) -> None:
    secret = f"sk-attack-{uuid.uuid4().hex}"
    # The agent's process holds the key in its environment from the start, as a real one does.
    child = (
        "import json, sys\n"
        "from looplet import ToolCall\n"
        "from looplet.examples.coding_agent import build_tools\n"
        "tools = build_tools(sys.argv[1])\n"
        "for command in sys.argv[2:]:\n"
        "    r = tools.dispatch(ToolCall('bash', {'command': command}))\n"
        "    print(json.dumps({'data': r.data, 'error': r.error}))\n"
    )
    every_process = r"for f in /proc/[0-9]*/environ; do tr '\0' '\n' < $f; done"
    env = dict(os.environ, OPENAI_API_KEY=secret, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path), PROC_ENVIRON, every_process],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["data"]["exit_code"] for r in results] == [0, 0], results
    assert "PATH=" in results[0]["data"]["output"]  # it read an environment: the sandbox's own
    assert secret not in out.stdout + out.stderr


def test_the_cli_denies_reading_another_process_environment(tmp_path: Path) -> None:
    secret = f"sk-attack-{uuid.uuid4().hex}"
    out, bodies = run_cli(tmp_path, [PROC_ENVIRON], key=secret)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("#1 ✗ bash"), out.stdout
    assert secret not in json.dumps(bodies) + out.stdout


# -- writes outside the workspace -----------------------------------------------------------


def test_an_escaped_rm_is_asked_and_the_file_survives(tmp_path: Path) -> None:
    (tmp_path / "important.py").write_text("keep = True\n")
    # Unsandboxed, knowingly: the rules alone must stop it (a sandbox lets it delete in here).
    out, bodies = run_cli(tmp_path, [r"\rm important.py"], "--no-sandbox")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("#1 ✗ bash"), out.stdout
    told = bodies[1]["messages"][-1]["content"]
    assert "may delete, move or overwrite files" in told
    assert (tmp_path / "important.py").read_text() == "keep = True\n"


@pytest.mark.parametrize(
    "command",
    [
        "cd ..; touch escaped.txt",
        "echo x > ../escaped.txt",
        "python3 -c \"open('../escaped.txt', 'w').write('x')\"",
        "python3 -c \"open('{outside}/escaped.txt', 'w').write('x')\"",
        "cp /etc/hostname {outside}/escaped.txt",
    ],
)
def test_the_cli_asks_before_writing_outside(command: str, outside_tmp: Path) -> None:
    command = command.replace("{outside}", str(outside_tmp))
    out, _ = run_cli(outside_tmp / "ws", [command])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("#1 ✗ bash"), out.stdout
    assert not (outside_tmp / "escaped.txt").exists()


@needs_sandbox
@pytest.mark.parametrize(
    "command",
    [
        "cd ..; touch escaped.txt",
        "echo x > ../escaped.txt",
        "python3 -c \"open('{outside}/escaped.txt', 'w').write('x')\"",
        "ln -s {outside}/escaped.txt link; echo x > link",
    ],
)
def test_writes_outside_the_workspace_fail_in_the_sandbox(command: str, outside_tmp: Path) -> None:
    workspace = outside_tmp / "ws"
    result = bash(workspace, command.replace("{outside}", str(outside_tmp)))
    assert result["data"]["exit_code"] != 0, result
    assert not (outside_tmp / "escaped.txt").exists()
    # The workspace itself stays writable.
    assert bash(workspace, "touch inside.txt")["data"]["exit_code"] == 0
    assert (workspace / "inside.txt").is_file()


@needs_sandbox
def test_tmp_is_private_to_the_command(tmp_path: Path) -> None:
    name = f"/tmp/looplet-sandbox-{uuid.uuid4().hex}"
    result = bash(tmp_path, f"echo inside > {name}; cat {name}")
    assert result["data"] == {"exit_code": 0, "output": "inside\n"}
    assert not Path(name).exists()


@needs_sandbox
def test_hidden_paths_are_empty_inside(tmp_path: Path, outside_tmp: Path) -> None:
    (outside_tmp / "creds").mkdir()
    (outside_tmp / "creds" / "key").write_text("secret\n")
    sandbox = BwrapSandbox(hidden=[outside_tmp / "creds"])
    tools = coding_agent.build_tools(tmp_path, sandbox=sandbox)
    result = tools.dispatch(ToolCall("bash", {"command": f"ls -A {outside_tmp}/creds"}))
    assert result.data == {"exit_code": 0, "output": ""}


@needs_sandbox
def test_commands_have_no_capabilities_even_as_root(tmp_path: Path) -> None:
    script = (
        "import re; status = open('/proc/self/status').read(); "
        "print(int(re.search('CapEff:\\\\s*(\\\\w+)', status).group(1), 16))"
    )
    result = bash(tmp_path, f'python3 -c "{script}"')
    assert result["data"] == {"exit_code": 0, "output": "0\n"}, result


# -- network --------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.5)
        yield server


def _connect(port: int) -> str:
    return (
        'python3 -c "import socket; '
        f"socket.create_connection(('127.0.0.1', {port}), timeout=10); print('connected')\""
    )


def _accepted(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


@needs_sandbox
def test_no_network_by_default(tmp_path: Path, listener: socket.socket) -> None:
    result = bash(tmp_path, _connect(listener.getsockname()[1]))
    assert result["data"]["exit_code"] != 0, result
    assert "connected" not in result["data"]["output"]
    assert not _accepted(listener)


@needs_sandbox
def test_network_when_allowed(tmp_path: Path, listener: socket.socket) -> None:
    tools = coding_agent.build_tools(tmp_path, sandbox=BwrapSandbox(network=True))
    command = _connect(listener.getsockname()[1])
    result = tools.dispatch(ToolCall("bash", {"command": command}))
    assert result.data == {"exit_code": 0, "output": "connected\n"}
    assert _accepted(listener)


# -- the time limit -------------------------------------------------------------------------


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes().decode("utf-8", "replace"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):  # a zombie is dead, only not yet reaped
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


@needs_sandbox
def test_nothing_outlives_the_timeout_not_even_a_new_session(tmp_path: Path) -> None:
    marker = f"looplet-escapee-{uuid.uuid4().hex}"
    sleeper = f"python3 -c 'import time; time.sleep(120)' {marker}"
    command = f"setsid {sleeper} & nohup {sleeper} & sleep 60"
    try:
        result = bash(tmp_path, command, timeout=1)
        assert result["kind"] == "timeout", result
        deadline = time.monotonic() + 15
        while _pids_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pids_with(marker) == [], "a process outlived the timeout"
    finally:
        for pid in _pids_with(marker):
            os.kill(pid, signal.SIGKILL)


# -- fail closed: no sandbox, every command asked -------------------------------------------


def test_without_a_sandbox_every_command_is_denied_saying_how_to_enable_it(
    tmp_path: Path,
) -> None:
    missing = BwrapSandbox(bwrap=tmp_path / "no-such-bwrap")
    assert not missing.available()
    engine = coding_agent.build_permissions(sandbox=missing)
    outcome = engine.evaluate(ToolCall("bash", {"command": "ls"}))
    assert not outcome.allowed
    assert "every bash command needs approval" in outcome.reason
    assert "pip install 'looplet[sandbox]'" in outcome.reason
    # The other tools are not affected.
    assert engine.evaluate(ToolCall("read", {"path": "a.py"})).allowed


def test_without_a_sandbox_a_plain_command_is_asked_and_runs_when_approved(
    tmp_path: Path,
) -> None:
    asked: list[tuple[str, str]] = []

    def approve(call: ToolCall, rule: PermissionRule) -> PermissionDecision:
        asked.append((call.args["command"], rule.reason))
        return PermissionDecision.ALLOW

    llm = MockLLMBackend(
        [ToolCall("bash", {"command": "echo hello"}), ToolCall("done", {"summary": "ok"})]
    )
    missing = BwrapSandbox(bwrap=tmp_path / "no-such-bwrap")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    assert coding_agent.run(llm, "greet", workspace, ask_handler=approve, sandbox=missing) == 0
    [(command, reason)] = asked
    assert command == "echo hello" and "pip install 'looplet[sandbox]'" in reason


def test_a_bwrap_that_cannot_start_a_sandbox_fails_closed(tmp_path: Path) -> None:
    broken = tmp_path / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    sandbox = BwrapSandbox(bwrap=broken)
    why = sandbox.why_unavailable()
    assert "could not start a sandbox" in why and "setting up uid map" in why
    assert "user namespaces" in why
    with pytest.raises(SandboxUnavailableError, match="could not start a sandbox"):
        sandbox.wrap(["true"], tmp_path)
    outcome = coding_agent.build_permissions(sandbox=sandbox).evaluate(
        ToolCall("bash", {"command": "ls"})
    )
    assert not outcome.allowed and "every bash command needs approval" in outcome.reason


def test_the_cli_without_a_sandbox_denies_every_command_and_says_how_to_enable_it(
    tmp_path: Path,
) -> None:
    out, bodies = run_cli(tmp_path, ["ls"], "--bwrap", str(tmp_path / "no-such-bwrap"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("#1 ✗ bash(command='ls') → ERROR: permission_denied")
    assert "No sandbox for bash" in out.stderr
    told = bodies[1]["messages"][-1]["content"]
    assert "pip install 'looplet[sandbox]'" in told and "no terminal" in told


def test_the_replay_without_a_sandbox_runs_the_packaged_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    missing = str(tmp_path / "no-such-bwrap")
    out = subprocess.run(
        [*CLI, "--workspace", str(tmp_path / "ws"), "--bwrap", missing],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "the packaged run's commands are replayed unsandboxed" in out.stderr
    assert "    all tests passed" in out.stdout.splitlines()


def test_opting_out_keeps_the_rules(tmp_path: Path) -> None:
    engine = coding_agent.build_permissions(sandbox=False)
    assert engine.evaluate(ToolCall("bash", {"command": "python -m pytest -q"})).allowed
    denied = engine.evaluate(ToolCall("bash", {"command": "rm -rf build"}))
    assert not denied.allowed and "may delete" in denied.reason


def test_the_cli_refuses_sandbox_options_without_a_sandbox(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        coding_agent.main(["--no-sandbox", "--allow-network"])
    assert "--no-sandbox has none" in capsys.readouterr().err


def test_a_sandbox_needs_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    sandbox = BwrapSandbox()
    assert not sandbox.available() and "needs Linux" in sandbox.why_unavailable()


def test_sandbox_must_be_a_bool_or_a_sandbox() -> None:
    with pytest.raises(TypeError, match="sandbox= takes True, False or"):
        coding_agent.build_tools(".", sandbox="yes")  # type: ignore[arg-type]


@needs_sandbox
def test_the_root_folder_cannot_be_the_workspace() -> None:
    from looplet.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="whole file system writable"):
        SANDBOX.wrap(["true"], "/")
