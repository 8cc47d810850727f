"""Secret redaction: what a recorded run must not write to disk, and how it is replaced.

Here live :data:`REDACTED`, the patterns that recognise a secret by its key name (``api_key``,
``accessToken``...) or by its shape (provider API keys, bearer tokens), and :class:`Redactor`,
which learns the secrets of a whole :class:`~looplet._run_files.RecordedRun` and replaces them
everywhere, cut-short copies included. It works on the JSON form only: recording a run lives in
:mod:`looplet.provenance`, the JSON form itself in :mod:`looplet._run_files`, and the replay
(which redacts its own run the same way before comparing) in :mod:`looplet._replay`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from looplet._run_files import RecordedCall, RecordedRun
from looplet.types import ToolCall

__all__ = ["REDACTED", "Redactor"]

#: What a secret is replaced with (the marker cassettes use too).
REDACTED = "<redacted>"


# A key is secret when one of its words (split on _ - . and camelCase) is one of these, so
# api_key, x-api-key, apiKey, access_token, client_secret are caught without a list.
# "tokens" is not "token": max_tokens and input_tokens stay.
_SECRET_WORDS = frozenset(
    {"apikey", "auth", "authorization", "cookie", "credential", "credentials", "key"}
    | {"passphrase", "passwd", "password", "secret", "signature", "token"}
)
_JOINED_SECRET_KEYS = frozenset(
    {"accesskey", "accesstoken", "authtoken", "clientsecret", "privatekey", "refreshtoken"}
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Strings that are credentials wherever they appear: OpenAI/Anthropic keys (sk-..., with a
# digit so that prose like "sk-learn-compatible" stays), GitHub, AWS, Slack, Google keys.
_KEY_PATTERN = re.compile(
    r"\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{16,}"
    r"|\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
)
_BEARER = re.compile(r"(?i:\bbearer\s+)((?=\S*\d)[A-Za-z0-9._~+/=-]{8,})")
# Values shorter than this are redacted where their key names them, but not searched for
# elsewhere: too likely to occur by chance.
_MIN_SECRET = 6
# How much of a long secret the cut-short pattern follows.
_MAX_CUT = 96


class Redactor:
    """Finds secrets in a record (by key name and by shape), then replaces them everywhere."""

    def __init__(self, secrets: Iterable[str] = (), secret_keys: Iterable[str] = ()) -> None:
        self._values = {s for s in secrets if s}
        self._keys = frozenset(k.lower() for k in secret_keys)
        self._pattern: re.Pattern[str] | None = None

    def is_secret_key(self, name: str) -> bool:
        """Whether the values of ``name`` are secrets."""
        if name.lower() in self._keys:
            return True
        words = [w.lower() for w in _WORDS.findall(name)]
        return not _SECRET_WORDS.isdisjoint(words) or "".join(words) in _JOINED_SECRET_KEYS

    def run(self, run: RecordedRun) -> RecordedRun:
        """A copy of ``run`` with every secret replaced."""
        docs = [run.task, run.config, run.steps, run.trajectory]
        docs += [(c.request, c.response, c.error) for c in run.calls]
        self.learn(docs)
        return RecordedRun(
            task=self.scrub(run.task),
            config=self.scrub(run.config),
            calls=[self._call(c) for c in run.calls],
            steps=self.scrub(run.steps),
            trajectory=self.scrub(run.trajectory),
            path=run.path,
        )

    def _call(self, call: RecordedCall) -> RecordedCall:
        return RecordedCall(
            call.index,
            call.step,
            self.scrub(call.request),
            self.scrub(call.response),
            self.scrub(call.error),
            call.duration_ms,
            call.started_at,
            call.provider,
        )

    def learn(self, value: Any) -> None:
        """Remember the secrets in ``value``, to be replaced wherever else they appear."""
        self._learn(value)
        self._pattern = None

    def _learn(self, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and self.is_secret_key(str(key)):
                    if len(item) >= _MIN_SECRET and item != REDACTED:
                        self._values.add(item)
                else:
                    self._learn(item)
        elif isinstance(value, list | tuple):
            for item in value:
                self._learn(item)
        elif isinstance(value, str):
            self._values.update(m.group(1) for m in _BEARER.finditer(value))
            self._values.update(m.group(0) for m in _KEY_PATTERN.finditer(value))

    def scrub(self, value: Any) -> Any:
        """``value`` with secret-keyed strings and every known or key-shaped secret replaced."""
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict):
            clean = {
                k: REDACTED if isinstance(v, str) and self.is_secret_key(str(k)) else self.scrub(v)
                for k, v in value.items()
            }
            if "tool_call" in value and "tool_result" in value:
                _resummarize(value, clean)
            return clean
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        return value

    def _text(self, text: str) -> str:
        if self._pattern is None:
            # Longest first, so a secret that contains another is replaced whole; then the
            # same secrets cut short by a display limit.
            known = sorted(self._values, key=len, reverse=True)
            parts = [re.escape(v) for v in known] + [_cut_short(v) for v in known]
            self._pattern = re.compile("|".join([*parts, _KEY_PATTERN.pattern]))
        return self._pattern.sub(REDACTED, _BEARER.sub(_bearer_redacted, text))


def _cut_short(secret: str) -> str:
    """A pattern for ``secret`` cut after at least ``_MIN_SECRET`` characters, then ``...``,
    ``…``, the note ``render_tool_result`` adds, or the end of the text (``stop_detail``)."""
    optional = ""
    for char in reversed(secret[_MIN_SECRET:_MAX_CUT]):
        optional = f"(?:{re.escape(char)}{optional})?"
    return re.escape(secret[:_MIN_SECRET]) + optional + r"(?=\.\.\.|…|\n\[\.\.\. |\Z)"


def _resummarize(step: Mapping[str, Any], clean: dict[str, Any]) -> None:
    """Rebuild a step's ``args_summary`` from its redacted arguments.

    The summary cuts each value at 40 characters, so a redacted value no longer lines up
    with the cut: the recorded and the replayed summaries would differ for nothing.
    """
    call, result = step["tool_call"], step["tool_result"]
    try:
        if result.get("args_summary") == _summary(call):
            clean["tool_result"]["args_summary"] = _summary(clean["tool_call"])
    except (AttributeError, KeyError, TypeError):  # not a Step.to_dict() after all
        pass


def _summary(call: Mapping[str, Any]) -> str:
    return ToolCall(
        call["tool"],
        dict(call.get("args") or {}),
        raw_arguments=call.get("raw_arguments"),
        parse_error=call.get("parse_error"),
    ).args_summary()


def _bearer_redacted(match: re.Match[str]) -> str:
    start = match.start(1) - match.start(0)
    return match.group(0)[:start] + REDACTED
