"""The timeline of one run in the HTML report (:mod:`pytest_looplet.html`): its steps in order,
read from the item's ``trajectory`` (``docs/reports.md``).

Each model turn opens with the text the model wrote and what the model call cost (its tokens
and time, when the run recorded them), then each tool call it made: the tool, its arguments
and its result or error, the permission decision about it, the tool's time. A last turn that
made no call (a final text, a failed call) closes the timeline with its cost. Values
longer than :data:`FOLD_CHARS` (or of several lines) are folded in a ``<details>``: the page
needs no script to read. A failed step is marked red, a denied one amber; for a run that
failed ``assert_trajectory`` the step where it first differs is outlined and the step diff
(expected vs actual) stands beside it. Every value from the run is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

__all__ = ["FOLD_CHARS", "TIMELINE_CSS", "fold", "timeline"]

FOLD_CHARS = 120
"""A value longer than this (or of more than one line) is folded to its first line."""

TIMELINE_CSS = """
ol.tl{list-style:none;margin:8px 0;padding:0 0 0 14px;border-left:2px solid var(--line)}
ol.tl>li{position:relative;margin:6px 0}ol.tl>li::before{content:"";position:absolute;
left:-20px;top:11px;width:10px;height:10px;border-radius:50%;background:var(--line)}
.st{display:grid;grid-template-columns:minmax(0,1fr);gap:10px;align-items:start}
.st.diverged{grid-template-columns:minmax(0,1fr) minmax(0,1.4fr)}
@media (max-width:860px){.st.diverged{grid-template-columns:minmax(0,1fr)}}
.card{border:1px solid var(--line);border-left:4px solid var(--pass);border-radius:6px;
background:var(--bg);padding:5px 10px}
.st.err .card{border-left-color:var(--fail)}.st.deny .card{border-left-color:var(--skip)}
ol.tl>li.st.ok::before{background:var(--pass)}ol.tl>li.st.err::before{background:var(--fail)}ol.tl>li.st.deny::before{background:var(--skip)}
.st.diverged .card{outline:2px solid var(--fail);outline-offset:1px}
.hd{display:flex;flex-wrap:wrap;gap:8px;align-items:baseline}.hd .num{color:var(--mute);
font-variant-numeric:tabular-nums}.hd .ms{margin-left:auto;color:var(--mute);
font-variant-numeric:tabular-nums}.tag{font-size:11.5px;border-radius:4px;padding:0 5px;
border:1px solid var(--line);color:var(--mute)}.tag.bad{color:#fff;background:var(--fail);
border-color:var(--fail)}.tag.deny{color:#1d2330;background:var(--skip);border-color:var(--skip)}
.kv{display:grid;grid-template-columns:52px minmax(0,1fr);gap:8px;margin:3px 0}
.kv .k{color:var(--mute);font-size:12px}.kv.error .v,.kv.error summary{color:var(--fail)}
.v{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,SFMono-Regular,Menlo,
Consolas,monospace;font-size:12.5px}
details.fold{border:none;background:none;margin:0}details.fold>summary{padding:0;
border:none!important}details.fold pre{max-height:420px;overflow:auto}
.say{background:var(--code);border-radius:6px;padding:6px 10px;white-space:pre-wrap;
word-break:break-word}.say .who,.diff .who{display:block;font-size:11.5px;color:var(--mute);
font-weight:600;text-transform:uppercase;letter-spacing:.04em}
ol.tl>li.say-item::before{background:var(--mute)}
.diff{border:1px solid var(--fail);border-radius:6px;padding:5px 10px;background:var(--bg)}
.diff pre{margin:4px 0;overflow-x:auto;white-space:pre;word-break:normal}
li.end{color:var(--mute)}.say .v{font:inherit}
.say .cost{font-weight:400;text-transform:none;letter-spacing:0;font-variant-numeric:
tabular-nums;margin-left:2px}
"""


def timeline(traj: Mapping[str, Any], divergence: Mapping[str, Any] | None = None) -> str:
    """The timeline of a run's trajectory (its report form), with ``divergence`` (the item's
    :attr:`~looplet.evals.report_model.Figures.divergence`) beside the step it names."""
    steps = traj.get("steps") or []
    diff = divergence.get("diff") if divergence else None
    at = divergence.get("step") if divergence else None
    if not steps and not diff and not isinstance(traj.get("final_turn"), Mapping):
        return "<p class='fig'>no steps recorded</p>" if traj else ""
    parts = []
    omitted = traj.get("steps_omitted") or 0
    placed = False
    said, turn = "", None  # the model's text in the reply the step came from
    for i, step in enumerate(steps):
        n = step.get("n")
        if omitted and i and _int(n) - _int(steps[i - 1].get("n")) > 1:
            parts.append(f"<li class='end'>… {omitted} steps omitted …</li>")
        if step.get("turn") != turn or step.get("turn") is None:
            said, turn = str(step.get("text") or ""), step.get("turn")
        cost = _cost(step)
        if step.get("text") or cost:
            parts.append(_say(fold(str(step["text"]), 600) if step.get("text") else "", cost))
        here = diff is not None and at is not None and at == n
        parts.append(_step(step, diff if here else None, said))
        placed = placed or here
    if diff is not None and not placed:
        where = "after the last step" if at is not None else "the run as a whole"
        if at is not None and steps and _int(at) <= _int(steps[-1].get("n")):
            where = f"at step {at} (not shown)"
        parts.append(f"<li class='st diverged'>{_diff(diff, where)}</li>")
    last = traj.get("final_turn")
    if isinstance(last, Mapping):  # the turn that made no call: its text is the final text
        note = "<span class='fig'>the final text, below</span>" if traj.get("final_text") else ""
        parts.append(_say(note, _cost(last)))
    parts.append(_end(traj))
    return f"<ol class='tl'>{''.join(parts)}</ol>"


def _say(body: str, cost: str) -> str:
    """A model turn's item: ``cost`` (its tokens and time) beside "model", then ``body``."""
    head = f"model <span class='cost'>{escape(cost)}</span>" if cost else "model"
    return f"<li class='say-item'><div class='say'><span class='who'>{head}</span>{body}</div></li>"


def _cost(turn: Mapping[str, Any]) -> str:
    """``150 tokens (120 in, 30 out) · 840 ms``: a turn's ``usage`` and ``llm_ms`` (a step
    row carries them on its turn's first step), each left out when none was recorded (no
    tokens reported, a failed call)."""
    usage, ms = turn.get("usage"), _ms(turn.get("llm_ms"))
    bits = []
    if isinstance(usage, Mapping) and _int(usage.get("total_tokens")) > 0:
        bits.append(_tokens(usage))
    return " · ".join([*bits, ms] if ms else bits)


def _tokens(usage: Mapping[str, Any]) -> str:
    return (
        f"{_int(usage.get('total_tokens')):,} tokens ({_int(usage.get('input_tokens')):,} in, "
        f"{_int(usage.get('output_tokens')):,} out)"
    )


def _step(step: Mapping[str, Any], diff: str | None, said: str) -> str:
    ok = step.get("ok", True)
    permission = step.get("permission") or {}
    denied = permission.get("decision") == "deny"
    classes = ["st", "ok" if ok else "err"]
    classes += ["deny"] if denied else []
    classes += ["diverged"] if diff is not None else []
    tags = []
    if permission:
        by = f" by {permission.get('by')}" if permission.get("by") else ""
        asked = " (asked)" if permission.get("asked") else ""
        word = "denied" if denied else "allowed"
        title = escape(str(permission.get("reason") or ""), quote=True)
        tags.append(
            f"<span class='tag{' deny' if denied else ''}' title='{title}'>"
            f"{escape(word + by + asked)}</span>"
        )
    if not ok and step.get("error_kind") and not denied:
        tags.append(f"<span class='tag bad'>{escape(str(step['error_kind']))}</span>")
    rows = [_row("args", step.get("args"))]
    if ok:
        rows.append(_row("result", step.get("result")))
    else:
        rows.append(_row("error", step.get("error"), " error"))
    reason = str(permission.get("reason") or "")
    if denied and reason and reason not in str(step.get("error")):
        rows.append(_row("why", reason))
    reasoning = str(step.get("reasoning") or "")
    if reasoning and not said.startswith(reasoning.removesuffix("…")):  # not shown above
        rows.append(_row("note", reasoning))
    card = (
        f"<div class='card'><div class='hd'><span class='num'>#{escape(str(step.get('n')))}</span>"
        f"<span>{'✓' if ok else '✗'}</span><code class='tool'>{escape(str(step.get('tool')))}"
        f"</code>{''.join(tags)}<span class='ms' title='the tool&#x27;s time'>"
        f"{_ms(step.get('ms'))}</span></div>"
        f"{''.join(rows)}</div>"
    )
    side = _diff(diff, "this step differs") if diff is not None else ""
    n = escape(str(step.get("n")))
    return f"<li class='{' '.join(classes)}' data-step='{n}'>{card}{side}</li>"


def _row(name: str, value: object, kind: str = "") -> str:
    text = "" if value is None else str(value)
    return (
        f"<div class='kv{kind}'><span class='k'>{name}</span>"
        f"{fold(text) if text else '<span class=fig>-</span>'}</div>"
    )


def fold(text: str, limit: int = FOLD_CHARS) -> str:
    """``text`` (escaped) as it is when short, else a ``<details>`` folded to its first line
    and its length."""
    if len(text) <= limit and "\n" not in text:
        return f"<span class='v'>{escape(text)}</span>"
    first = text.split("\n", 1)[0]
    head = first[:90] + ("…" if len(first) > 90 or len(first) < len(text) else "")
    return (
        f"<details class='fold'><summary><span class='v'>{escape(head)}</span> "
        f"<span class='fig'>({len(text):,} chars)</span></summary>"
        f"<pre>{escape(text)}</pre></details>"
    )


def _diff(diff: str, where: str) -> str:
    return (
        f"<div class='diff'><span class='who'>expected vs actual · {escape(where)}</span>"
        f"<pre>{escape(diff)}</pre></div>"
    )


def _end(traj: Mapping[str, Any]) -> str:
    usage = traj.get("usage") or {}
    bits = []
    if traj.get("stop_reason"):
        bits.append(f"stopped: {traj['stop_reason']}")
    if usage:
        bits.append(_tokens(usage))
    if traj.get("llm_calls") is not None:
        model_ms = _ms(traj.get("llm_ms"))
        bits.append(f"{traj['llm_calls']} model calls" + (f" ({model_ms})" if model_ms else ""))
    if elapsed := _ms(traj.get("elapsed_ms")):
        bits.append(elapsed)
    return f"<li class='end'>{escape(' · '.join(bits))}</li>" if bits else ""


def _ms(value: object) -> str:
    """A time as people read it: ``1.53 s``, ``812 ms``, ``2.5 ms``, ``<0.1 ms``; "" for none
    (a call that never ran, or a time not recorded, is 0)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return ""
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value < 0.1:
        return "<0.1 ms"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
