"""A deterministic stand-in for a model, used only to (re)record the example cassettes offline.

The committed cassettes in ``cassettes/`` were recorded through the real ``openai`` SDK from
looplet's loopback server answering with :func:`reply`: for each request it finds the task
(the first user message) and the tool results so far, and plays the scenario written for that
task below (or, for the evals of chats, memory and approvals, in ``scripted_sessions.py``).
To record against a real provider instead, see the README ("Re-recording").

    python -m example_evals.scripted_model      # re-record every example cassette offline
    python -m example_evals.scripted_model eval_matrix.py   # only that file's
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from example_evals.scripted_sessions import CHATS
from looplet.examples._coding_script import delete_folder, implement_fizzbuzz, read_outside
from looplet.testing import RecordedRequest, ScriptedModelServer, call, text_reply, tool_reply

#: A scenario gets the results of the tool calls so far (decoded JSON, or the error text)
#: and returns the next reply: a tool call, or text to finish without one.
Scenario = Callable[[list[Any]], Any]


def _greet_then_done(*names: str) -> Scenario:
    def play(results: list[Any]) -> Any:
        if len(results) < len(names):
            return tool_reply(call("greet", {"name": names[len(results)]}))
        return tool_reply(call("done", {"answer": f"Greeted {', '.join(names)}."}))

    return play


def _blocked(results: list[Any]) -> Any:
    if not results:
        return tool_reply(call("greet", {"name": "Mallory"}))
    return tool_reply(call("done", {"answer": "Mallory is on the block list; not greeted."}))


def _miles_plus_feet(results: list[Any]) -> Any:
    if not results:  # both conversions in one turn: they are concurrent-safe
        return tool_reply(
            call("convert", {"value": 3, "from_unit": "mi", "to_unit": "m"}),
            call("convert", {"value": 500, "from_unit": "ft", "to_unit": "m"}),
        )
    if len(results) == 2:
        return tool_reply(call("add", {"a": results[0]["value"], "b": results[1]["value"]}))
    return tool_reply(call("done", {"answer": f"{results[2]:.2f} m"}))


def _km_to_miles(results: list[Any]) -> Any:
    if not results:
        return tool_reply(call("convert", {"value": 42.195, "from_unit": "km", "to_unit": "mi"}))
    return tool_reply(call("done", {"answer": f"{results[0]['value']:.2f} mi"}))


def _furlongs(results: list[Any]) -> Any:
    if not results:
        return tool_reply(call("convert", {"value": 1, "from_unit": "furlong", "to_unit": "m"}))
    return text_reply("I cannot convert furlongs: the convert tool does not know that unit.")


def _fix_typo(results: list[Any]) -> Any:
    plan = [
        call("list_files"),
        call("read_file", {"path": "notes.txt"}),
    ]
    if len(results) < len(plan):
        return tool_reply(plan[len(results)])
    if len(results) == len(plan):
        fixed = str(results[1]).replace("recieve", "receive")
        return tool_reply(call("write_file", {"path": "notes.txt", "content": fixed}))
    return tool_reply(call("done", {"summary": "Fixed the spelling of 'receive' in notes.txt."}))


def _delete_tmp(results: list[Any]) -> Any:
    if not results:
        return tool_reply(call("list_files"))
    if len(results) == 1:
        return tool_reply(call("delete_file", {"path": "tmp.txt"}))
    return tool_reply(
        call("done", {"summary": "Could not delete tmp.txt: deleting is not allowed."})
    )


SCENARIOS: dict[str, Scenario] = {
    "goal: Greet Alice, then finish.": _greet_then_done("Alice"),
    "goal: Greet Alice and Bob, then finish.": _greet_then_done("Alice", "Bob"),
    "goal: Greet Bob, then finish.": _greet_then_done("Bob"),
    "goal: Greet Mallory.": _blocked,
    "How many metres are 3 miles plus 500 feet?": _miles_plus_feet,
    "How many miles is a marathon (42.195 km)?": _km_to_miles,
    "How many metres is a furlong?": _furlongs,
    "Fix the spelling mistakes in notes.txt.": _fix_typo,
    "Delete tmp.txt, it is not needed.": _delete_tmp,
    "implement fizzbuzz": implement_fizzbuzz,
    "Delete the build/ folder: it is stale.": delete_folder,
    "Show me /etc/passwd.": read_outside,
}


def _judge(prompt: str) -> Any:
    """A stand-in judge for the "correctness" rubric: full marks when the subject holds the
    reference answer, none otherwise."""
    rubric, _, subject = prompt.partition("\n\nSUBJECT:\n")
    reference = rubric.rpartition("REFERENCE ANSWER:\n")[2].strip()
    right = bool(reference) and reference in subject
    reason = f"the answer {'gives' if right else 'does not give'} {reference!r}"
    return text_reply(json.dumps({"score": 1.0 if right else 0.0, "reason": reason}))


_CONVERT = re.compile(r"Convert (\S+) (\S+) to (\S+)\.")


def _convert_as_asked(task: str) -> Scenario | None:
    """For eval_conversions.py's tasks ("Convert 1 ft to cm."): convert, then answer, or
    say the unit is unknown when the tool refused it."""
    asked = _CONVERT.fullmatch(task)
    if asked is None:
        return None
    value, from_unit, to_unit = asked.groups()

    def play(results: list[Any]) -> Any:
        if not results:
            args = {"value": float(value), "from_unit": from_unit, "to_unit": to_unit}
            return tool_reply(call("convert", args))
        if isinstance(results[0], dict) and "value" in results[0]:
            return tool_reply(call("done", {"answer": f"{results[0]['value']:.2f} {to_unit}"}))
        return text_reply(f"I cannot convert {from_unit}: the convert tool does not know it.")

    return play


def reply(request: RecordedRequest) -> Any:
    """The next reply for ``request``, from the scenario of its task (or as a judge).

    Reads OpenAI's Chat Completions and Anthropic's Messages alike (eval_matrix.py runs on
    both): the task is the first user message's text, the results are the ``tool`` messages
    (OpenAI) or the ``tool_result`` blocks of user messages (Anthropic).
    """
    body = request.body or {}
    messages = body.get("messages", [])
    task = next((_text(m["content"]) for m in messages if m.get("role") == "user"), "")
    if task.startswith("RUBRIC:"):  # looplet.evals.judge.Judge's request
        return _judge(task)
    if task in CHATS:  # scenarios that read the whole request (chats, memory, approvals)
        return CHATS[task](messages)
    scenario = SCENARIOS.get(task) or _convert_as_asked(task)
    if scenario is None:
        return text_reply(f"(no scenario for task {task!r})")
    results = [_decode(m.get("content", "")) for m in messages if m.get("role") == "tool"]
    results += [
        _decode(_text(block.get("content", "")))
        for m in messages
        if m.get("role") == "user" and isinstance(m.get("content"), list)
        for block in m["content"]
        if block.get("type") == "tool_result"
    ]
    return scenario(results)


def _text(content: Any) -> str:
    """A message's text: a string as it is, Anthropic's content blocks' text joined."""
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if block.get("type") == "text")
    return str(content)


def _decode(content: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content


def main(argv: list[str] | None = None) -> int:
    """Serve :func:`reply` on loopback and re-record the example cassettes through it: every
    one, or those of the eval files or node ids given (``... scripted_model eval_matrix.py``).
    """
    here = Path(__file__).resolve().parent
    targets = [str(here / arg) for arg in (sys.argv[1:] if argv is None else argv)]
    with ScriptedModelServer([reply] * 10_000) as server:
        env = dict(
            os.environ,
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY="sk-recording",
            ANTHROPIC_BASE_URL=server.url,  # the Anthropic SDK adds /v1/messages itself
            ANTHROPIC_API_KEY="sk-recording",
        )
        return subprocess.call(
            [
                sys.executable,
                "-m",
                "pytest",
                "--looplet-evals",
                *(targets or [str(here)]),
                "--looplet-record-mode=all",
                "-p",
                "no:cacheprovider",
                "-q",
            ],
            env=env,
        )


if __name__ == "__main__":
    raise SystemExit(main())
