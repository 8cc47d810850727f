"""A loopback model server that answers from a script: the public API and the CLI.

Start it in a test, point the real ``openai`` SDK (or any OpenAI-compatible client) at
``server.base_url``, or the real ``anthropic`` SDK at ``server.url``, and assert on what the
client did and on ``server.requests``::

    from looplet.testing import ScriptedModelServer, call, text_reply, tool_reply

    script = [tool_reply(call("greet", {"name": "Alice"})), text_reply("Done.")]
    with ScriptedModelServer(script, api_key="test-key") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key")
        ...
        assert server.requests[0].body["model"] == "gpt-4o-mini"

It speaks ``POST /v1/chat/completions`` (plain, and ``"stream": true`` as server-sent events
with the arguments of each tool call split over several chunks) and ``GET /v1/models``,
returns OpenAI-style error bodies, and rejects a conversation the real API would reject (a
``tool`` message that answers no pending call, an assistant's calls left unanswered) with 400.
It also speaks Anthropic's ``POST /v1/messages`` from the same script: ``message`` objects
with ``text``/``tool_use`` blocks, the named events of a stream, Anthropic-style errors, and
the Messages API's 400s (roles that do not alternate, a ``tool_use`` without its
``tool_result``, a missing ``max_tokens``, a ``system`` message). The standard library only;
nothing here is imported by ``import looplet``.

From a shell (the script file holds a JSON array in the form described in
:mod:`looplet.testing._script`, e.g. ``[{"text": "Hello!"}]``)::

    python -m looplet.testing.server --script replies.json [--port 8123] [--api-key K]
                                     [--api anthropic]

prints the base URL as its first line (``--api anthropic``: the root, for
``ANTHROPIC_BASE_URL``; by default the OpenAI one, ending in ``/v1``) and serves until SIGINT
or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from looplet.errors import ConfigurationError
from looplet.testing._script import (
    RecordedRequest,
    ScriptItem,
    call,
    cut_stream,
    error_reply,
    script_from_json,
    slow_reply,
    text_reply,
    tool_reply,
)
from looplet.testing._server import ScriptedModelServer

__all__ = [
    "RecordedRequest",
    "ScriptItem",
    "ScriptedModelServer",
    "call",
    "cut_stream",
    "error_reply",
    "load_script",
    "main",
    "slow_reply",
    "text_reply",
    "tool_reply",
]


def load_script(path: str) -> list[ScriptItem]:
    """Read a script file: a JSON array of items in the JSON form.

    Raises:
        ConfigurationError: the file cannot be read, is not JSON, or holds a malformed item;
            the message names the file and the item.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the script file {path!r}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"the script file {path!r} is not valid JSON: {exc}") from exc
    return script_from_json(data, source=path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server from the command line until SIGINT/SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m looplet.testing.server",
        description="Serve a scripted OpenAI-compatible (and Anthropic Messages) API on the "
        "loopback interface. Prints the base URL as the first line of output: for OpenAI "
        "clients (ending in /v1) or, with --api anthropic, for Anthropic ones (the root).",
    )
    parser.add_argument(
        "--script",
        required=True,
        metavar="FILE.json",
        help='a JSON array of replies, e.g. [{"text": "hi"}, {"tool_calls": [{"name": '
        '"greet", "arguments": {"name": "Alice"}}]}, {"error": {"status": 429, '
        '"message": "slow down"}}, {"delay": 2, "then": {"text": "late"}}, {"cut_after": 3, '
        '"then": {"text": "cut short"}, "ending": "cut"}] (ending: cut, error or no_finish)',
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (or 'x-api-key: KEY' on /v1/messages; "
        "default: no check)",
    )
    parser.add_argument(
        "--api",
        choices=("openai", "anthropic"),
        default="openai",
        help="which client's base URL to print: openai (ending in /v1) or anthropic (the "
        "root, which the SDK extends with /v1/messages); both APIs are served either way "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        script = load_script(args.script)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    server = ScriptedModelServer(script, api_key=args.api_key, host=args.host, port=args.port)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        print(server.url if args.api == "anthropic" else server.base_url, flush=True)
        # A timed wait, so that the signal handler runs promptly on every platform.
        while not stop.wait(0.1):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    print(
        f"stopped after {len(server.requests)} requests ({server.served} of {len(script)} "
        "script items used)",
        file=sys.stderr,
    )
    return 0


def __getattr__(name: str) -> Any:
    # The name this class had while it spoke only OpenAI's API, kept for code that used it.
    if name == "ScriptedOpenAIServer":
        from looplet._exports import deprecated_alias

        return deprecated_alias(__name__, name, "looplet.testing.ScriptedModelServer")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
