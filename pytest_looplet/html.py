"""The HTML report (``--looplet-html PATH``): one self-contained file, made from the typed
report (:class:`~looplet.evals.report_model.Report`) the JSON file is written from.

The page has the run's figures, a table of evals (failures first, then flaky evals) and, per
eval, an expandable ``<details>`` view of every repetition: its message, reason, metrics,
and the timeline of its steps (:mod:`pytest_looplet.html_timeline`). CSS and the small
script (filter, expand/collapse, failures only) are inline; the page loads nothing from the
network, so it can be attached to a CI run and opened offline. Every value from the run is
HTML-escaped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from looplet.evals.report_model import (
    EvalEntry,
    Figures,
    Report,
    ReportItem,
    ReportRun,
    Totals,
)
from pytest_looplet.html_timeline import TIMELINE_CSS, fold, timeline
from pytest_looplet.matrix import html_table

__all__ = ["render", "write_html"]

_RANK = {"FAIL": 0, "ERROR": 0, "XPASS": 1, "PASS": 2, "XFAIL": 3, "SKIP": 3}
_BAD = ("FAIL", "ERROR")

_CSS = """
:root{--bg:#fff;--fg:#1d2330;--mute:#667085;--line:#e4e7ec;--card:#f8f9fb;--pass:#12805c;
--fail:#c4320a;--skip:#8a6d00;--code:#f2f4f7}
@media (prefers-color-scheme:dark){:root{--bg:#14161b;--fg:#e6e8ec;--mute:#98a2b3;
--line:#2c313c;--card:#1b1e25;--code:#232732;--pass:#47cd89;--fail:#f97066;--skip:#fdb022}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
header,main{max-width:1200px;margin:0 auto;padding:16px 24px}h1{font-size:22px;margin:0 0 4px}
.meta{color:var(--mute);margin:0 0 8px}.totals span{margin-right:12px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:var(--code);padding:8px 10px;border-radius:6px;white-space:pre-wrap;
word-break:break-word;margin:6px 0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;
border-bottom:1px solid var(--line);vertical-align:top}th{color:var(--mute);font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;min-width:52px;text-align:center;border-radius:4px;padding:0 6px;
font-weight:700;font-size:12px;color:#fff;background:var(--mute)}
.PASS .badge,.badge.PASS,.XPASS .badge{background:var(--pass)}
.FAIL .badge,.badge.FAIL,.ERROR .badge,.badge.ERROR{background:var(--fail)}
.SKIP .badge,.badge.SKIP,.XFAIL .badge,.badge.XFAIL{background:var(--skip)}
.flaky{color:var(--skip);font-weight:600;margin-left:6px}
.toolbar{display:flex;gap:8px;align-items:center;margin:12px 0}
.toolbar input[type=search]{flex:1;padding:6px 8px;border:1px solid var(--line);
border-radius:6px;background:var(--bg);color:var(--fg)}
button{padding:5px 10px;border:1px solid var(--line);border-radius:6px;background:var(--card);
color:var(--fg);cursor:pointer}
details{border:1px solid var(--line);border-radius:8px;background:var(--card);margin:8px 0}
details>summary{cursor:pointer;padding:8px 10px}details[open]>summary{
border-bottom:1px solid var(--line)}details .body{padding:8px 12px}
details details{background:var(--bg)}.fig{color:var(--mute)}
tr.err td{color:var(--fail)}dl{display:grid;grid-template-columns:max-content 1fr;
gap:2px 12px;margin:6px 0}dt{color:var(--mute)}dd{margin:0}a{color:inherit}
.hidden{display:none}
"""

_JS = """
(function(){
  var q=document.getElementById('filter'),bad=document.getElementById('only-failed');
  function apply(){
    var text=q.value.toLowerCase();
    document.querySelectorAll('[data-eval]').forEach(function(el){
      var name=el.getAttribute('data-eval').toLowerCase();
      var hide=(text&&name.indexOf(text)<0)||(bad.checked&&el.getAttribute('data-bad')!=='1');
      el.classList.toggle('hidden',hide);
    });
  }
  q.addEventListener('input',apply);bad.addEventListener('change',apply);
  document.querySelectorAll('button[data-open]').forEach(function(b){
    b.addEventListener('click',function(){
      var open=b.getAttribute('data-open')==='1';
      document.querySelectorAll('section details:not(.fold)').forEach(function(d){d.open=open;});
    });
  });
})();
"""


def write_html(path: str | Path, report: Report | Mapping[str, Any]) -> Path:
    """Write the HTML page of ``report`` (a :class:`~looplet.evals.report.Report`, or its
    JSON document) to ``path``, creating missing folders; credentials and key-shaped strings
    in it are shown as ``<redacted>`` (:mod:`looplet._redact`)."""
    from looplet._redact import redact

    doc = report.to_json() if isinstance(report, Report) else dict(report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(Report.from_json(redact(doc))), encoding="utf-8")
    return path


def render(report: Report | Mapping[str, Any]) -> str:
    """The HTML page of a report (:mod:`looplet.evals.report`), or of its JSON document."""
    if not isinstance(report, Report):
        report = Report.from_json(report)
    evals = sorted(report.evals, key=_order)
    bad = sum(e.verdict in _BAD for e in evals)
    title = f"looplet evals: {bad} failing of {len(evals)}" if bad else "looplet evals: all pass"
    anchors = {e.eval: f"e{i}" for i, e in enumerate(evals, 1)}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}{TIMELINE_CSS}</style></head><body>",
        _header(report.run, report.totals),
        "<main>",
        '<div class="toolbar"><input type="search" id="filter" placeholder="filter evals">'
        '<label><input type="checkbox" id="only-failed"> failures only</label>'
        '<button data-open="1">expand all</button>'
        '<button data-open="0">collapse all</button></div>',
        _table(evals, anchors),
        html_table(report),  # the model matrix's comparison, when one ran
        "<section>",
        *(_eval_details(e, anchors[e.eval]) for e in evals),
        "</section></main>",
        f"<script>{_JS}</script></body></html>",
    ]
    return "\n".join(parts)


def _order(e: EvalEntry) -> tuple[int, bool, str]:
    # Failures first, those that always fail before the flaky ones; among the others, the
    # flaky ones first.
    bad = e.verdict in _BAD
    return _RANK.get(e.verdict, 4), e.flaky == bad, e.eval


def _header(run: ReportRun, totals: Totals) -> str:
    meta = [
        f"looplet {run.looplet_version or '?'}",
        f"Python {run.python or '?'}",
        f"pytest {run.pytest_version or '?'}",
        f"started {run.started or '?'}",
        f"{_num(run.duration_s, '.1f')} s",
    ]
    if run.workers:
        meta.append(f"{run.workers} xdist workers")
    if run.merged_from:
        meta.append(f"merged from {len(run.merged_from)} reports")
    counts = [
        f'<span><span class="badge {v}">{n}</span> {v.lower()}</span>'
        for v, n in totals.verdicts.items()
    ]
    figures = [
        f"{totals.flaky} flaky",
        f"mean score {_num(totals.mean_score)}",
        f"{_num(totals.steps, 'd')} steps",
        f"{_num(totals.tokens, ',d')} tokens",
    ]
    if totals.cost_usd is not None:
        figures.append(f"${totals.cost_usd:.4f}")
    rows = "".join(
        f"<tr><th>{escape(f.name)}</th><td class='mono'>{escape(str(getattr(run.options, f.name)))}"
        "</td></tr>"
        for f in dataclasses.fields(run.options)
    )
    return (
        f"<header><h1>looplet evals</h1><p class='meta'>{escape(' · '.join(meta))}</p>"
        f"<p class='totals'>{''.join(counts)}<span>{escape(' · '.join(figures))}</span></p>"
        f"<details><summary>options</summary><div class='body'><table>{rows}</table></div>"
        "</details></header>"
    )


def _table(evals: list[EvalEntry], anchors: Mapping[str, str]) -> str:
    # Runs, pass rate, its interval and pass@k say nothing of evals that ran once: shown
    # only when some eval was repeated.
    repeated = any(e.repetitions > 1 for e in evals)
    names = ["result", "eval"]
    names += ["runs", "pass rate", "95% CI"] if repeated else []
    names += ["score"]
    names += ["pass@k", "pass^k"] if repeated else []
    names += ["steps", "tokens", "cost", "time"]
    head = "".join(
        f"<th>{name}</th>" if name in ("result", "eval") else f"<th class='n'>{escape(name)}</th>"
        for name in names
    )
    rows = []
    for e in evals:
        ci = e.pass_rate_ci
        flaky = "<span class='flaky'>flaky</span>" if e.flaky else ""
        k_note = f" <span class='fig'>k={e.k}</span>" if e.k else ""
        link = f"<a href='#{anchors[e.eval]}'><code>{escape(e.eval)}</code></a>"
        cells = {
            "result": f"<td><span class='badge'>{escape(e.verdict)}</span></td>",
            "eval": f"<td>{link}{flaky}</td>",
            "runs": f"<td class='n'>{e.passes}/{e.runs}</td>",
            "pass rate": f"<td class='n'>{_num(e.pass_rate)}</td>",
            "95% CI": f"<td class='n'>{'-' if not ci else f'{ci[0]:.2f}–{ci[1]:.2f}'}</td>",
            "score": f"<td class='n'>{_num(e.mean_score)}</td>",
            "pass@k": f"<td class='n'>{_num(e.pass_at_k)}{k_note}</td>",
            "pass^k": f"<td class='n'>{_num(e.pass_hat_k)}</td>",
            "steps": f"<td class='n'>{_num(e.steps, 'd')}</td>",
            "tokens": f"<td class='n'>{_num(e.tokens, ',d')}</td>",
            "cost": f"<td class='n'>{_cost(e.cost_usd)}</td>",
            "time": f"<td class='n'>{_num(e.duration_s, '.2f')} s</td>",
        }  # fmt: skip
        rows.append(f"<tr {_attrs(e)}>{''.join(cells[name] for name in names)}</tr>")
    return (
        f"<table class='evals'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _attrs(e: EvalEntry) -> str:
    bad = "1" if e.verdict in _BAD or e.flaky else "0"
    return f"class='{escape(e.verdict)}' data-eval='{escape(e.eval)}' data-bad='{bad}'"


def _eval_details(e: EvalEntry, anchor: str) -> str:
    items = e.items
    opened = " open" if e.verdict in _BAD else ""
    summary = f"{e.passes}/{e.runs} runs passed" if len(items) > 1 else ""
    runs = "".join(_item_details(item, len(items) > 1) for item in items)
    return (
        f"<details id='{anchor}' {_attrs(e)}{opened}><summary><span class='badge'>"
        f"{escape(e.verdict)}</span> <code>{escape(e.eval)}</code> "
        f"<span class='fig'>{escape(summary)}</span></summary><div class='body'>{runs}</div>"
        "</details>"
    )


def _case_facts(case: Mapping[str, Any] | None) -> dict[str, Any]:
    """A dataset case's name, file and metadata, as facts of its run."""
    if case is None:
        return {}
    metadata = case.get("metadata")
    return {
        "case": f"{case.get('name')} ({case.get('dataset')})",
        **{f"case {k}": v for k, v in sorted((metadata or {}).items())},
    }


# The figures a run's block shows in its own way; any other figure is listed by its name.
_SHOWN = {"score", "threshold", "metrics", "error", "reason", "step_count", "tokens",
          "stop_reason", "cost_usd", "budget_exceeded", "trajectory", "case",
          "divergence"}  # fmt: skip


def _item_details(item: ReportItem, repeated: bool) -> str:
    traj = item.trajectory or {}
    usage = traj.get("usage") or {}
    figures = [
        f"score {_num(item.score)}",
        f"{_num(item.step_count, 'd')} steps",
        f"{_num(item.tokens, ',d')} tokens",
    ]
    if item.cost_usd is not None:
        figures.append(_cost(item.cost_usd))
    figures.append(f"{_num(item.duration_s, '.2f')} s")
    name = f"run {item.repetition}/{item.repetitions}" if repeated else "run"
    facts = {
        "reason": item.reason,
        "node id": item.nodeid,
        "threshold": item.threshold,
        "stop reason": item.stop_reason or traj.get("stop_reason"),
        "stop detail": traj.get("stop_detail"),
        "model": traj.get("model"),
        "model calls": traj.get("llm_calls"),
        "usage": f"{usage.get('input_tokens')} in, {usage.get('output_tokens')} out"
        if usage
        else None,
        "error": item.error,
        "over budget": ", ".join(item.budget_exceeded) or None,
        **{f"metric {k}": v for k, v in sorted(item.metrics.items())},
        **_case_facts(item.case),
        **{
            f.name.replace("_", " "): getattr(item, f.name)
            for f in dataclasses.fields(Figures)
            if f.name not in _SHOWN and getattr(item, f.name) not in (None, [], {})
        },
    }
    dl = "".join(
        f"<dt>{escape(k)}</dt><dd class='mono'>{escape(str(v))}</dd>"
        for k, v in facts.items()
        if v not in (None, "")
    )
    message = f"<pre>{escape(item.message)}</pre>" if item.message else ""
    if item.message and item.divergence:  # the diff stands beside its step: fold the message
        message = f"<div class='mono'>{fold(item.message)}</div>"
    final = (
        f"<p class='fig'>final text</p><pre>{escape(traj['final_text'])}</pre>"
        if traj.get("final_text")
        else ""
    )
    # A lone run opens with its eval: one click shows the timeline.
    opened = " open" if item.verdict in _BAD or not repeated else ""
    return (
        f"<details class='{escape(item.verdict)}'{opened}><summary>"
        f"<span class='badge'>{escape(item.verdict)}</span> {escape(name)} "
        f"<span class='fig'>{escape(' · '.join(figures))}</span></summary><div class='body'>"
        f"{message}<dl>{dl}</dl>{timeline(traj, item.divergence)}{final}</div></details>"
    )


def _num(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return escape(str(value))


def _cost(value: Any) -> str:
    return "-" if value is None else f"${value:.4f}"
