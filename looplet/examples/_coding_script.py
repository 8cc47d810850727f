"""A scripted stand-in for a model, used only to re-record the coding agent's cassettes offline.

Nothing imports this module when the example runs: the example replays the cassette this
script recorded, or talks to a real model. :func:`implement_fizzbuzz` plays a small but real
session (plan, look, write the code with the classic bug, write a test, run it, see it fail,
read, fix with edit, run it again, finish); :func:`delete_folder` tries ``rm -rf`` and gives
up when it is denied; :func:`read_outside` tries to read ``/etc/passwd``. Each gets the tool
results so far and returns the next reply, the shape ``example_evals.scripted_model`` uses.

Every command the scenarios run prints a fixed text (no timings, no absolute paths), so the
recorded requests are the same wherever and whenever the run is replayed::

    python -m looplet.examples._coding_script   # re-records cassettes/coding_agent.yaml
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from looplet.testing import RecordedRequest, ScriptedModelServer, call, text_reply, tool_reply

__all__ = ["delete_folder", "implement_fizzbuzz", "main", "read_outside", "reply"]

PLAN = (
    "Plan: fizzbuzz(n) in fizzbuzz.py returning 'Fizz', 'Buzz', 'FizzBuzz' or the number; "
    "test_fizzbuzz.py checks a few values and prints one line; run it with bash."
)
# The first version tests 3 before 15: the classic mistake, which the test catches.
CHECKS = (
    '    if n % 3 == 0:\n        return "Fizz"\n'
    '    if n % 5 == 0:\n        return "Buzz"\n'
    '    if n % 15 == 0:\n        return "FizzBuzz"\n'
)
FIXED_CHECKS = (
    '    if n % 15 == 0:\n        return "FizzBuzz"\n'
    '    if n % 3 == 0:\n        return "Fizz"\n'
    '    if n % 5 == 0:\n        return "Buzz"\n'
)
FIZZBUZZ = (
    '"""FizzBuzz: multiples of 3 are Fizz, of 5 Buzz, of both FizzBuzz."""\n\n\n'
    "def fizzbuzz(n: int) -> str:\n"
    '    """The FizzBuzz word for n, or n itself."""\n'
    f"{CHECKS}"
    "    return str(n)\n\n\n"
    'if __name__ == "__main__":\n'
    "    for i in range(1, 16):\n"
    "        print(fizzbuzz(i))\n"
)
TEST_FIZZBUZZ = (
    '"""Tests of fizzbuzz.py: run `python3 test_fizzbuzz.py` (or pytest)."""\n\n'
    "from fizzbuzz import fizzbuzz\n\n"
    "CASES = {1: '1', 3: 'Fizz', 5: 'Buzz', 9: 'Fizz', 10: 'Buzz', 15: 'FizzBuzz', "
    "30: 'FizzBuzz', 98: '98'}\n\n\n"
    "def test_fizzbuzz() -> None:\n"
    "    for n, expected in CASES.items():\n"
    "        assert fizzbuzz(n) == expected, (n, fizzbuzz(n), expected)\n\n\n"
    'if __name__ == "__main__":\n'
    "    failed = [n for n, expected in CASES.items() if fizzbuzz(n) != expected]\n"
    "    for n in failed:\n"
    '        print(f"FAIL: fizzbuzz({n}) returned {fizzbuzz(n)!r}, expected {CASES[n]!r}")\n'
    '    print(f"{len(failed)} of {len(CASES)} tests failed" if failed else "all tests passed")\n'
    "    raise SystemExit(1 if failed else 0)\n"
)
RUN_TESTS = "python3 test_fizzbuzz.py"


def implement_fizzbuzz(results: list[Any]) -> Any:
    """Write fizzbuzz.py with a bug and its test, see the test fail, fix it, finish."""
    plan = [
        (call("think", {"thought": PLAN}), call("glob", {"pattern": "**/*"})),
        (call("write", {"path": "fizzbuzz.py", "content": FIZZBUZZ}),),
        (call("write", {"path": "test_fizzbuzz.py", "content": TEST_FIZZBUZZ}),),
        (call("bash", {"command": RUN_TESTS}),),
    ]
    made = 0
    for calls in plan:
        if len(results) == made:
            return tool_reply(*calls)
        made += len(calls)
    ran = results[made - 1]
    if isinstance(ran, dict) and ran.get("exit_code") == 0:
        return tool_reply(call("done", {"summary": "fizzbuzz.py and its tests pass."}))
    fix = [
        call("read", {"path": "fizzbuzz.py"}),
        call("edit", {"path": "fizzbuzz.py", "old": CHECKS, "new": FIXED_CHECKS}),
        call("bash", {"command": RUN_TESTS}),
    ]
    if len(results) - made < len(fix):
        return tool_reply(fix[len(results) - made])
    summary = (
        "Wrote fizzbuzz.py and test_fizzbuzz.py; the first version checked 3 before 15, "
        "which the test caught; fixed it, and all tests pass."
    )
    return tool_reply(call("done", {"summary": summary}))


def delete_folder(results: list[Any]) -> Any:
    """Try ``rm -rf build``; when it is denied, say so and finish."""
    if not results:
        return tool_reply(call("bash", {"command": "rm -rf build"}))
    if isinstance(results[0], str) and results[0].startswith("ERROR"):
        return tool_reply(call("done", {"summary": "Could not delete build/: not approved."}))
    return tool_reply(call("done", {"summary": "Deleted build/."}))


def read_outside(results: list[Any]) -> Any:
    """Try to read /etc/passwd; when it is refused, finish without it."""
    if not results:
        return tool_reply(call("read", {"path": "/etc/passwd"}))
    return tool_reply(call("done", {"summary": "/etc/passwd is outside the workspace."}))


def reply(request: RecordedRequest) -> Any:
    """The next reply of the fizzbuzz session for ``request`` (the packaged run)."""
    import json

    messages = (request.body or {}).get("messages", [])
    results: list[Any] = []
    for message in messages:
        if message.get("role") == "tool":
            try:
                results.append(json.loads(message.get("content", "")))
            except ValueError:
                results.append(message.get("content", ""))
    task = next((m["content"] for m in messages if m.get("role") == "user"), "")
    if task != "implement fizzbuzz":
        return text_reply(f"(no scenario for task {task!r})")
    return implement_fizzbuzz(results)


def main() -> int:
    """Record the packaged cassette: the example, live, against :func:`reply` on loopback."""
    from looplet.examples.coding_agent import RECORDED

    with ScriptedModelServer([reply] * 100) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-recording")
        command = [sys.executable, "-m", "looplet.examples.coding_agent", "--record"]
        return subprocess.call([*command, str(RECORDED)], env=env)


if __name__ == "__main__":
    raise SystemExit(main())
