"""Secret redaction: the one set of rules for what looplet must never write, and how.

Every artefact goes through here: cassettes (:mod:`looplet.cassettes.scrub`), provenance
records and checkpoints, and the pytest plugin's reports and terminal text. Three things are
secrets:

- the credentials in use: the API keys of the SDK clients looplet's backends wrap
  (:func:`remember_credential`) and the values of environment variables named like a
  credential (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``...), see :func:`credential_values`;
- strings shaped like a credential wherever they appear (provider API keys, ``Bearer``
  tokens);
- in structured records, the values of secret key names (``api_key``, ``accessToken``...).

:func:`redact_text` and :func:`redact` replace the first two with :data:`REDACTED`;
:class:`Redactor` adds the third and learns the secrets of a whole
:class:`~looplet._run_files.RecordedRun`, replacing them everywhere, cut-short copies
included. Recording a run lives in :mod:`looplet.provenance`, the JSON form itself in
:mod:`looplet._run_files`, and the replay (which redacts its own run the same way before
comparing) in :mod:`looplet._replay`.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # imported when used: backends import this module, _run_files imports them
    from looplet._run_files import RecordedCall, RecordedRun

__all__ = [
    "REDACTED",
    "Redactor",
    "TextRedactor",
    "credential_in",
    "credential_values",
    "credentials_generation",
    "is_secret_name",
    "redact",
    "redact_text",
    "remember_credential",
]

#: What a secret is replaced with (the marker cassettes use too).
REDACTED = "<redacted>"

_T = TypeVar("_T")

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
# The schemes an Authorization-like header puts before its credential.
_SCHEMES = ("bearer ", "basic ", "token ")
# Values shorter than this are redacted where their key names them, but not searched for
# elsewhere: too likely to occur by chance.
_MIN_SECRET = 6
# Credentials in use (a client's key, an environment variable) shorter than this are not
# searched for: "test", "dummy", "sk-test" are placeholders, and common words.
_MIN_CREDENTIAL = 8
# An environment variable holds a credential when its name ends like one of these.
_CREDENTIAL_ENV = re.compile(
    r"(?:^|_)(?:API_?KEY|ACCESS_KEY|SECRET_KEY|PRIVATE_KEY|TOKEN|SECRET|PASSWORD)$"
)
# How much of a long secret the cut-short pattern follows.
_MAX_CUT = 96

_credentials: set[str] = set()
_credentials_lock = threading.Lock()
# Bumped whenever a credential is remembered, so a cached TextRedactor knows it is stale.
_generation = 0
# Every match of the patterns below starts with one of these (a secret starts with its own
# first _MIN_SECRET characters): text holding none of them, and no "bearer", is clean.
_SHAPE_MARKERS = ("sk-", "ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "AKIA", "xox", "AIza")


def remember_credential(value: object) -> None:
    """Redact ``value`` (a client's API key, say) from everything this process writes.

    Backends call it with their client's key; values that are not strings, or shorter than
    8 characters (placeholders such as ``"test"``), are ignored.
    """
    global _generation
    if isinstance(value, str) and len(value.strip()) >= _MIN_CREDENTIAL:
        with _credentials_lock:
            if value.strip() not in _credentials:
                _credentials.add(value.strip())
                _generation += 1


def credentials_generation() -> int:
    """A number that changes whenever :func:`remember_credential` learns a new credential."""
    return _generation


def credential_values(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The credentials in use: those remembered, and the values of the environment variables
    (``environ``, default ``os.environ``) named ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``,
    ``*_PASSWORD``, ``*_ACCESS_KEY``, ``*_SECRET_KEY`` or ``*_PRIVATE_KEY``, at least 8
    characters long."""
    env = os.environ if environ is None else environ
    values = (env.get(name, "") for name in list(env) if _names_credential(name))
    found = {value.strip() for value in values if len(value.strip()) >= _MIN_CREDENTIAL}
    with _credentials_lock:
        return frozenset(found | _credentials)


@functools.lru_cache(maxsize=4096)
def _names_credential(name: str) -> bool:
    # Cached: every report and progress line reads the environment, whose names rarely change.
    return _CREDENTIAL_ENV.search(name.upper()) is not None


def is_secret_name(name: str, extra_words: Iterable[str] = ()) -> bool:
    """Whether values named ``name`` (a key, a header) are secrets, by its words.

    ``extra_words`` are more words that make a name secret (lower case).
    """
    words = [w.lower() for w in _WORDS.findall(name)]
    if not _SECRET_WORDS.isdisjoint(words) or "".join(words) in _JOINED_SECRET_KEYS:
        return True
    return any(word in words for word in extra_words)


def credential_in(value: str | bytes) -> str | None:
    """The credential a header value carries (``Bearer sk-...`` gives ``sk-...``), or
    ``None`` when it is too short to look for elsewhere."""
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    for scheme in _SCHEMES:
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    text = text.strip()
    return text if len(text) >= _MIN_SECRET else None


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the credentials in use, ``secrets`` and key-shaped strings replaced."""
    return TextRedactor(secrets)(text)


def redact(value: _T, secrets: Iterable[str] = ()) -> _T:
    """``value`` with every string in it redacted like :func:`redact_text`.

    Strings and bytes, and the strings inside dicts, lists and tuples (keys are kept) are
    redacted; other values are returned as they are. The rules are read once per call.
    """
    return TextRedactor(secrets).data(value)


class TextRedactor:
    """Redacts text with ``secrets`` and the credentials in use when it was made (read once,
    for the many strings of one document)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = {s for s in secrets if s and s != REDACTED} | credential_values()
        self._pattern = _pattern(frozenset(known))
        self._markers = tuple({v[:_MIN_SECRET] for v in known} | set(_SHAPE_MARKERS))

    def __call__(self, text: str) -> str:
        # Substring tests first: most text (every replayed request) holds no secret, and
        # they cost a fraction of the patterns' scan.
        if not any(marker in text for marker in self._markers) and "bearer" not in text.lower():
            return text
        return self._pattern.sub(REDACTED, _BEARER.sub(_bearer_redacted, text))

    def raw(self, data: bytes) -> bytes:
        """``data`` redacted as UTF-8 text, its other bytes kept as they were."""
        text = data.decode("utf-8", "surrogateescape")
        clean = self(text)
        return data if clean == text else clean.encode("utf-8", "surrogateescape")

    def data(self, value: _T) -> _T:
        """``value`` with its strings redacted: see :func:`redact`."""
        return self._walk(value)  # type: ignore[no-any-return]

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, bytes):
            return self.raw(value)
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._walk(v) for v in value)
        return value


@functools.lru_cache(maxsize=64)
def _pattern(known: frozenset[str]) -> re.Pattern[str]:
    # Longest first, so a secret that contains another is replaced whole; then the same
    # secrets cut short by a display limit; then the shapes.
    ordered = sorted(known, key=lambda v: (-len(v), v))
    parts = [re.escape(v) for v in ordered] + [_cut_short(v) for v in ordered]
    return re.compile("|".join([*parts, _KEY_PATTERN.pattern]))


class Redactor:
    """Finds secrets in a record (by key name and by shape), then replaces them everywhere."""

    def __init__(self, secrets: Iterable[str] = (), secret_keys: Iterable[str] = ()) -> None:
        self._values = {s for s in secrets if s}
        self._keys = frozenset(k.lower() for k in secret_keys)
        self._texts: TextRedactor | None = None

    def is_secret_key(self, name: str) -> bool:
        """Whether the values of ``name`` are secrets."""
        return name.lower() in self._keys or is_secret_name(name)

    def run(self, run: RecordedRun) -> RecordedRun:
        """A copy of ``run`` with every secret replaced."""
        from looplet._run_files import RecordedRun

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
        from looplet._run_files import RecordedCall

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
        self._texts = None

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
        if self._texts is None:  # the credentials in use are read here, once per record
            self._texts = TextRedactor(self._values)
        return self._texts(text)


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
    from looplet.types import ToolCall

    return ToolCall(
        call["tool"],
        dict(call.get("args") or {}),
        raw_arguments=call.get("raw_arguments"),
        parse_error=call.get("parse_error"),
    ).args_summary()


def _bearer_redacted(match: re.Match[str]) -> str:
    start = match.start(1) - match.start(0)
    return match.group(0)[:start] + REDACTED
