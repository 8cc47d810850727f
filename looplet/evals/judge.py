"""LLM judges: score a run (or any text) against a rubric with one model call.

:class:`Judge` asks the model for ``{"score": 0..1, "reason": "..."}`` and returns an
:class:`~looplet.evals.result.EvalResult`. A reply that is not such an object is an error
(:class:`JudgeError`, showing the raw reply), never a silent pass. Under pytest the
``looplet_judge`` fixture builds one on the test's cassette-backed backend, so judged evals
replay offline like the agent they judge: the request holds nothing that changes from run to
run (a trajectory's steps are shown without their durations).

:data:`RUBRICS` holds rubric templates (correctness, helpfulness, groundedness);
:func:`rubric` fills one in. A judge's result composes with the deterministic scorers of
:mod:`looplet.scorers` (``weighted_mean``, ``all_of``).
"""

from __future__ import annotations

import json
import string
import types
from collections.abc import Mapping
from typing import Any

from looplet._trajectory_diff import step_text
from looplet.backends.base import LLMRequest, LLMResponse
from looplet.errors import ConfigurationError, LoopletError
from looplet.evals.result import EvalResult
from looplet.messages import Message
from looplet.types import Trajectory

__all__ = ["JUDGE_SYSTEM_PROMPT", "RUBRICS", "Judge", "JudgeError", "rubric"]

JUDGE_SYSTEM_PROMPT = (
    "You are a strict grader. Read the rubric, then the subject, and decide how well the "
    "subject meets the rubric. Reply with one JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one sentence>"}.'
)


RUBRICS: Mapping[str, str] = types.MappingProxyType(
    {
        "correctness": (
            "The subject's final answer is correct: it agrees with the reference answer below on "
            "every fact that matters. Wording, order, formatting and extra politeness do not "
            "count; a missing, wrong or contradicting fact does. Score 1 when it fully agrees, "
            "0.5 when it is partly right or incomplete, 0 when it is wrong or gives no answer.\n"
            "REFERENCE ANSWER:\n{reference}"
        ),
        "helpfulness": (
            "The subject does what the task below asked, fully and directly: it answers the "
            "question or does the work, without needless steps, padding, or asking for what the "
            "task already says. Score 1 when it does the whole task, 0.5 when it does part of "
            "it, 0 when it does not, or refuses without a good reason.\nTASK:\n{task}"
        ),
        "groundedness": (
            "Every factual claim in the subject's final answer is supported by the sources "
            "below; a claim they do not support, or contradict, counts against it, however "
            "plausible. Saying that the sources do not tell is grounded. Score 1 when every "
            "claim is supported, 0.5 when most are, 0 when a key claim is not.\n"
            "SOURCES:\n{sources}"
        ),
    }
)
"""Rubric templates by name; each ``{placeholder}`` is filled in by :func:`rubric`.

* ``correctness``: the answer agrees with ``{reference}``, the expected answer;
* ``helpfulness``: the subject does ``{task}``, fully and directly;
* ``groundedness``: every claim is backed by ``{sources}`` (e.g. the tool results).
"""


def rubric(name: str, /, **fields: object) -> str:
    """The rubric template :data:`RUBRICS[name] <RUBRICS>` with its placeholders filled in.

    Example::

        verdict = looplet_judge(rubric("correctness", reference="26.22 mi"), traj)

    Raises:
        ConfigurationError: an unknown rubric name, a placeholder without a value, or a
            value for a placeholder the rubric does not have.
    """
    template = RUBRICS.get(name)
    if template is None:
        raise ConfigurationError(
            f"no rubric named {name!r}; the rubrics are {', '.join(map(repr, RUBRICS))}"
        )
    wanted = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    missing, unknown = sorted(wanted - set(fields)), sorted(set(fields) - wanted)
    if missing or unknown:
        problems = [f"needs {', '.join(f'{f}=...' for f in missing)}"] if missing else []
        problems += [f"has no placeholder {', '.join(map(repr, unknown))}"] if unknown else []
        raise ConfigurationError(f"rubric({name!r}) {' and '.join(problems)}")
    return template.format_map({key: str(value) for key, value in fields.items()})


class JudgeError(LoopletError):
    """The judge's reply could not be read as a score; ``.reply`` holds it verbatim."""

    def __init__(self, problem: str, reply: str) -> None:
        shown = reply if len(reply) <= 500 else reply[:497] + "..."
        super().__init__(f"the judge's reply {problem}. The reply was:\n{shown}")
        self.reply = reply


class Judge:
    """Scores a subject against a rubric with one model call.

    Example::

        judge = Judge(llm)
        result = judge("The agent greeted exactly the people named in the task.", traj)
        assert result.passed()

    Args:
        llm: a backend with ``complete`` (sync) and/or ``acomplete`` (async).
        max_tokens: the reply's token limit.
        temperature: sampling temperature (0 for repeatable grades).
    """

    def __init__(self, llm: Any, *, max_tokens: int = 400, temperature: float = 0.0) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.temperature = temperature

    def request(self, rubric: str, subject: Any) -> LLMRequest:
        """The model request that grades ``subject`` against ``rubric``."""
        text = f"RUBRIC:\n{rubric}\n\nSUBJECT:\n{_describe(subject)}"
        messages = [Message.system(JUDGE_SYSTEM_PROMPT), Message.user(text)]
        return LLMRequest(messages, (), self.max_tokens, self.temperature)

    def __call__(self, rubric: str, subject: Any, *, name: str = "judge") -> EvalResult:
        """Grade ``subject``; returns an EvalResult with the score and the judge's reason.

        Raises:
            JudgeError: the reply is not a JSON object with a score in [0, 1].
            LLMError: the model call failed.
        """
        return read_verdict(self.llm.complete(self.request(rubric, subject)), name)

    async def ajudge(self, rubric: str, subject: Any, *, name: str = "judge") -> EvalResult:
        """The async form of calling the judge (awaits ``acomplete``)."""
        return read_verdict(await self.llm.acomplete(self.request(rubric, subject)), name)


def read_verdict(reply: LLMResponse, name: str = "judge") -> EvalResult:
    """The EvalResult in a judge's reply; :class:`JudgeError` if there is none."""
    text = reply.text.strip()
    start = text.find("{")
    if start < 0:
        raise JudgeError("has no JSON object", text)
    try:
        verdict, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError as exc:
        raise JudgeError(f"is not valid JSON ({exc})", text) from None
    if not isinstance(verdict, dict) or "score" not in verdict:
        raise JudgeError('has no "score"', text)
    score = verdict["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise JudgeError(f"gives the score {score!r}, not a number in [0, 1]", text)
    reason = str(verdict.get("reason", ""))
    return EvalResult(
        float(score), label="judge", explanation=reason, details={"judge_reply": text}, name=name
    )


def _describe(subject: Any) -> str:
    if isinstance(subject, Trajectory):
        lines = [f"task: {subject.task}"]
        lines += [step_text(step) for step in subject.steps]  # no durations: replayable
        lines.append(f"stopped: {subject.stop_reason} {subject.stop_detail}".rstrip())
        if subject.final_text:
            lines.append(f"final answer: {subject.final_text}")
        return "\n".join(lines)
    if isinstance(subject, str):
        return subject
    return json.dumps(subject, default=str, ensure_ascii=False, indent=1)
