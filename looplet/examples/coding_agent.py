"""A coding agent: bash, read, write, edit, glob, grep, think and done, kept in one folder.

The agent is :func:`looplet.presets.coding_agent_preset` (its tools, permissions and settings);
this module adds the command line, the terminal's y/N approval and the offline replay.

Without an API key it replays a run recorded in the package, offline, into a new temporary
folder: the tools really run, so the folder ends up with ``fizzbuzz.py`` and its tests, and
the tests really ran. With a key it runs live against any OpenAI-compatible endpoint::

    python -m looplet.examples.coding_agent                         # replay "implement fizzbuzz"
    OPENAI_API_KEY=... python -m looplet.examples.coding_agent "add a --help flag to cli.py" \\
        --workspace ~/src/project
    python -m looplet.examples.coding_agent --trace runs/fizzbuzz   # also write provenance
    OPENAI_API_KEY=... python -m looplet.examples.coding_agent "..." --record run.yaml

Every path the tools take is confined to the workspace folder (``--workspace``, or a new
temporary one), and ``bash`` runs there with a timeout, in a bubblewrap sandbox
(:mod:`looplet.sandbox`): the rest of the file system read-only, a private ``/tmp``, no other
process visible, no network (``--allow-network`` to allow it), none of your environment.
Commands that delete, move or overwrite files, rewrite git history, run inline code or another
command, use shell syntax (chains, pipes, redirections, expansions) or name a path outside the
folder need your approval (:func:`command_concerns`): the agent asks on the terminal (y/N) and,
with no terminal to ask on, is denied. Where no sandbox can start, **every** bash command needs
approval, and the message says how to enable the sandbox (``pip install 'looplet[sandbox]'``);
``--no-sandbox`` runs bash unsandboxed, knowingly, the rules still asking. Everything else the
tools do is allowed; any other tool is denied.

Replaying needs ``pip install 'looplet[cassettes,openai]'`` (or ``looplet[pytest]``); where no
sandbox can start, the packaged run's own commands are replayed unsandboxed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from looplet import BaseToolRegistry, LoopConfig, ToolCall
from looplet._coding_rules import command_concerns
from looplet._coding_tools import CodingWorkspace, sandbox_of
from looplet.permissions import AskHandler, PermissionDecision, PermissionEngine, PermissionRule
from looplet.presets import CODING_SYSTEM_PROMPT, coding_agent_preset, coding_permissions
from looplet.sandbox import BwrapSandbox

__all__ = [
    "DEFAULT_TASK",
    "RECORDED",
    "SYSTEM_PROMPT",
    "BwrapSandbox",
    "CodingWorkspace",
    "ask_on_terminal",
    "build_config",
    "build_permissions",
    "build_tools",
    "command_concerns",
    "main",
    "run",
]

#: The run shipped with the package, recorded through the real openai SDK.
RECORDED = Path(__file__).resolve().parent / "cassettes" / "coding_agent.yaml"
#: The task of the recorded run.
DEFAULT_TASK = "implement fizzbuzz"
#: The coding preset's system prompt (:data:`looplet.presets.CODING_SYSTEM_PROMPT`).
SYSTEM_PROMPT = CODING_SYSTEM_PROMPT


def build_tools(
    workspace: str | os.PathLike[str] | None = None, *, sandbox: BwrapSandbox | bool = True
) -> BaseToolRegistry:
    """The coding tools, confined to ``workspace`` (``None``: ``LoopConfig.workspace_root``).

    Args:
        workspace: the folder.
        sandbox: where bash runs (see :class:`CodingWorkspace`): ``True`` a default
            :class:`~looplet.sandbox.BwrapSandbox`, ``False`` none, knowingly.
    """
    return CodingWorkspace(workspace, sandbox=sandbox).registry()


def build_permissions(
    ask_handler: AskHandler | None = None, *, sandbox: BwrapSandbox | bool = True
) -> PermissionEngine:
    """Ask before bash commands the rules cannot vouch for; allow the rest of the tools.

    A bash command is asked about when :func:`command_concerns` finds a reason: it deletes
    or overwrites, runs inline code or another command, uses shell syntax, names a path
    outside the workspace. When ``sandbox`` cannot start here, every bash command is asked
    about, the reason saying why and how to enable it.

    Args:
        ask_handler: decides the asked calls (:func:`ask_on_terminal` in the CLI); without
            one they are denied, with the reason.
        sandbox: the one bash runs in (give the tools the same); ``False``: none, knowingly,
            and only the rules apply.
    """
    return coding_permissions(ask_handler, sandbox=sandbox)


def build_config(
    workspace: str | os.PathLike[str] | None = None, *, max_steps: int = 20
) -> LoopConfig:
    """The agent's loop settings; ``workspace`` becomes ``LoopConfig.workspace_root``."""
    return LoopConfig(
        max_steps=max_steps,
        system_prompt=SYSTEM_PROMPT,
        temperature=0.0,
        workspace_root=str(workspace) if workspace is not None else None,
    )


def ask_on_terminal(call: ToolCall, rule: PermissionRule) -> tuple[PermissionDecision, str]:
    """The CLI's ask handler: a y/N question on the terminal; no terminal means no."""
    command = call.args.get("command", call.args)
    if not sys.stdin.isatty():
        return PermissionDecision.DENY, f"{rule.reason}; there is no terminal to ask for approval"
    sys.stderr.write(f"\nThe agent wants to run {command!r}\n  ({rule.reason}). Allow? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return PermissionDecision.ALLOW, "approved on the terminal"
    return PermissionDecision.DENY, f"{rule.reason}; the user said no"


def run(
    llm: Any,
    task: str,
    workspace: Path,
    *,
    trace: Path | None = None,
    ask_handler: AskHandler | None = ask_on_terminal,
    sandbox: BwrapSandbox | bool = True,
) -> int:
    """Run the coding agent on ``task`` in ``workspace``, printing each step.

    ``sandbox`` is where bash runs (see :func:`build_permissions`); when it cannot start,
    a note on stderr says why, and every bash command is asked about.

    Returns:
        0 when the agent called done, else 1.
    """
    chosen = sandbox_of(sandbox)
    if chosen is None:
        print("bash runs unsandboxed: commands can do whatever you can.", file=sys.stderr)
    elif not chosen.available():
        print(
            f"No sandbox for bash: {chosen.why_unavailable()}.\nEvery bash command will be "
            "asked about.",
            file=sys.stderr,
        )
    # The coding preset refuses to build with a sandbox that cannot start: this example then
    # runs bash unsandboxed, as the preset's sandbox=False, with the stricter permissions
    # that ask about every command (which the note above announced).
    usable = chosen if chosen is not None and chosen.available() else False
    preset = coding_agent_preset(workspace, sandbox=usable, ask_handler=ask_handler, max_steps=20)
    if chosen is not None and usable is False:
        preset.permissions = build_permissions(ask_handler, sandbox=chosen)
    hooks: list[object] = []
    if trace is not None:
        from looplet.provenance import ProvenanceSink

        sink = ProvenanceSink(trace)
        llm = sink.wrap_llm(llm)
        hooks.append(sink.trajectory_hook())
    loop = preset.loop(llm, task, hooks=hooks)
    for step in loop:
        print(step.pretty())
        if step.tool_call.tool == "bash" and isinstance(step.tool_result.data, dict):
            print(_indented(step.tool_result.data), flush=True)
    trajectory = loop.trajectory
    reason = trajectory.stop_reason.value if trajectory.stop_reason else "running"
    print(
        f"stop: {reason} · {len(trajectory.steps)} steps · {trajectory.llm_calls} model calls "
        f"· {trajectory.usage.total_tokens} tokens"
    )
    done = [s for s in trajectory.steps if s.tool_call.tool == "done" and s.ok]
    if done:
        print(f"summary: {done[-1].tool_call.args.get('summary', '')}")
    print(f"workspace: {workspace}")
    if trace is not None:
        print(f"provenance: {trace} (summarise it: python -m looplet show {trace})")
    return 0 if reason == "done" else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Replay the packaged run without a key; run live (and maybe record) with one."""
    parser = argparse.ArgumentParser(
        prog="python -m looplet.examples.coding_agent",
        description="A coding agent confined to one folder. Without OPENAI_API_KEY it replays "
        f"the packaged run of {DEFAULT_TASK!r}.",
    )
    parser.add_argument("task", nargs="?", default=DEFAULT_TASK, help="what to do")
    parser.add_argument(
        "--workspace", metavar="DIR", type=Path, help="the folder to work in (default: a new temp)"
    )
    parser.add_argument("--trace", metavar="DIR", type=Path, help="write provenance to DIR")
    parser.add_argument("--record", metavar="PATH", help="record the live run to a cassette")
    parser.add_argument(
        "--allow-network", action="store_true", help="let bash commands use the network"
    )
    parser.add_argument(
        "--bwrap", metavar="PATH", help="the bubblewrap binary (default: looplet[sandbox]'s)"
    )
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run bash unsandboxed, knowingly: commands can do whatever you can",
    )
    args = parser.parse_args(argv)
    if args.no_sandbox and (args.bwrap or args.allow_network):
        parser.error("--bwrap and --allow-network set up the sandbox; --no-sandbox has none")
    sandbox: BwrapSandbox | bool = (
        False if args.no_sandbox else BwrapSandbox(bwrap=args.bwrap, network=args.allow_network)
    )
    live = bool(os.environ.get("OPENAI_API_KEY"))
    if not live and args.record:
        parser.error("--record needs a live run: set OPENAI_API_KEY (and OPENAI_BASE_URL)")
    if not live and args.task != DEFAULT_TASK:
        parser.error(
            f"without OPENAI_API_KEY only the recorded task {DEFAULT_TASK!r} can be replayed; "
            "set OPENAI_API_KEY (and OPENAI_BASE_URL / OPENAI_MODEL) to run other tasks"
        )
    if not live and args.workspace is not None and _has_files(args.workspace):
        parser.error(
            f"--workspace {str(args.workspace)!r} is not empty, and the recorded run started in "
            "an empty folder; replay into an empty one (or leave --workspace out)"
        )
    if args.trace is not None and _has_files(args.trace):
        parser.error(f"--trace {str(args.trace)!r} is not empty; give a new folder")
    try:
        import openai

        from looplet.backends import OpenAIBackend
        from looplet.cassettes import recorded_base_url, use_cassette
    except ImportError as exc:
        print(
            f"coding_agent needs the openai SDK and vcrpy ({exc}). Install them with:\n"
            "  pip install 'looplet[openai,cassettes]'",
            file=sys.stderr,
        )
        return 2
    workspace = _workspace(args.workspace)
    if live:
        model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        recording = use_cassette(args.record, "all") if args.record else _no_cassette()
        with recording, openai.OpenAI() as client:
            llm = OpenAIBackend(client, model=model)
            code = run(llm, args.task, workspace, trace=args.trace, sandbox=sandbox)
        if args.record:
            print(f"recorded to {args.record} (API keys and auth headers are not written)")
        return code
    if isinstance(sandbox, BwrapSandbox) and not sandbox.available():
        # The replayed commands are the packaged run's, not a live model's.
        print(
            f"No sandbox for bash ({sandbox.why_unavailable()}); the packaged run's commands "
            "are replayed unsandboxed.",
            file=sys.stderr,
        )
        sandbox = False
    print(
        f"No OPENAI_API_KEY set: replaying the run recorded in {RECORDED.name} (offline) in "
        f"{workspace}. The model's replies are replayed; the tools really run.\n"
        "Set OPENAI_API_KEY (and OPENAI_BASE_URL / OPENAI_MODEL for another provider) to run "
        "it live.\n",
        file=sys.stderr,
    )
    with (
        use_cassette(RECORDED, "none"),
        openai.OpenAI(api_key="looplet-replay", base_url=recorded_base_url(RECORDED)) as client,
    ):
        llm = OpenAIBackend(client, model="gpt-4o-mini")
        return run(llm, args.task, workspace, trace=args.trace, sandbox=sandbox)


def _indented(result: dict[str, Any], limit: int = 12) -> str:
    """A bash result under its step: the exit code, then the output's last lines."""
    lines = str(result.get("output", "")).rstrip().splitlines()[-limit:]
    return "\n".join(f"    {line}" for line in [f"exit code {result.get('exit_code')}", *lines])


def _has_files(folder: Path) -> bool:
    return folder.exists() and (not folder.is_dir() or any(folder.iterdir()))


def _workspace(chosen: Path | None) -> Path:
    if chosen is None:
        return Path(tempfile.mkdtemp(prefix="looplet-coding-")).resolve()
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen.resolve()


@contextlib.contextmanager
def _no_cassette() -> Iterator[None]:
    yield


if __name__ == "__main__":
    raise SystemExit(main())
