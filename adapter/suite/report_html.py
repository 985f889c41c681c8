"""One self-contained HTML file (no scripts, no external resources): every case with its requests, an
excerpt of each answer and the reason of any failure. Everything from the producer is escaped."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

from lxml import etree

from adapter.rivta import xml
from adapter.suite.chart_svg import PERCENTILES, load_chart
from adapter.suite.exchange import MAX_ANSWER_BYTES, MAX_DEPTH, Exchange, decode
from adapter.suite.results import CaseResult, LoadRun, Status, SuiteResult

EXCERPT = 3000  # characters of each request and answer shown
SHOWN = 4  # exchanges shown in full per case (plus every one a failure names)

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:80rem}
h1{font-size:1.5rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;
vertical-align:top}th{background:#f3f3f3}
.passed{color:#17692b}.failed{color:#b00020;font-weight:bold}.skipped{color:#8a6d00}
details{border:1px solid #ddd;border-radius:4px;margin:.3rem 0;padding:.3rem .6rem}
details.failed-case{border-color:#b00020}summary{cursor:pointer}
pre{background:#f7f7f7;padding:.5rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:.8rem}
.meta td:first-child{font-weight:bold}.dim{color:#666}
.summary td:nth-child(2){overflow-wrap:anywhere}.summary{max-width:100%}
.meta td{overflow-wrap:anywhere}
.not-valid{background:#fff4d6;color:#6b4500;border:2px solid #b36b00;border-radius:4px;padding:.1rem .5rem;
font-size:1rem;vertical-align:middle}
.warning{background:#fff4d6;border-left:6px solid #b36b00;padding:.5rem .8rem}
.load{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start;margin:.5rem 0}
.load table{flex:0 0 auto}.load td:nth-child(2){text-align:right;white-space:nowrap}
.load figure{flex:1 1 36rem;margin:0;min-width:0;max-width:52rem}
.load figcaption{font-size:.85rem;color:#555}
"""


def _pretty(data: bytes, content_type: str = "") -> str:
    """The message indented for reading (re-parsed with the hardened parser), its XML declaration kept."""
    text = decode(data, content_type)
    try:
        root = xml.parse(data, max_bytes=MAX_ANSWER_BYTES, max_depth=MAX_DEPTH)
    except xml.UnsafeXml:
        return text
    etree.indent(root, space="  ")
    prolog = re.match(r"\ufeff?(<\?xml[^>]*\?>)", text)
    return (prolog.group(1) + "\n" if prolog else "") + etree.tostring(root, encoding="unicode")


def _excerpt(text: str) -> str:
    if len(text) <= EXCERPT:
        return escape(text)
    return escape(text[:EXCERPT]) + f'\n<span class="dim">… {len(text) - EXCERPT} more characters</span>'


def _exchange(ex: Exchange) -> str:
    outcome = ex.error or f"HTTP {ex.status}, {ex.content_type or 'no Content-Type'}"
    headers = "\n".join(f"{k}: {v}" for k, v in ex.headers.items())
    answer = _excerpt(_pretty(ex.answer, ex.content_type)) if ex.answer else '<span class="dim">(none)</span>'
    return (f"<h4>{escape(ex.label)} <span class=\"dim\">— {escape(outcome)}, {ex.seconds * 1000:.0f} ms</span></h4>"
            f"<p class=\"dim\">POST {escape(ex.url)}</p>"
            f"<details><summary>request</summary><pre>{escape(headers)}\n\n{_excerpt(_pretty(ex.request))}</pre>"
            f"</details><details open><summary>answer (excerpt)</summary><pre>{answer}</pre></details>")


def _breakable(url: str) -> str:
    """A long address escaped, with line-break opportunities after its slashes (a table cell may wrap it)."""
    return escape(url).replace("/", "/<wbr>")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


def _figures(run: LoadRun) -> list[tuple[str, str]]:
    failed = sum(run.failed)
    elapsed = max(run.elapsed, 0.001)
    return [("load run", run.plan), ("calls", f"{run.calls}"), ("calls per second", f"{run.calls / elapsed:.1f}"),
            ("threads at most", f"{max((n for _, n in run.threads), default=0)}"),
            ("average", _ms(sum(run.seconds) / run.calls)),
            *((f"p{p}" + (" (median)" if p == 50 else ""), _ms(run.percentile(p))) for p in PERCENTILES),
            ("slowest", _ms(max(run.seconds))), ("failed calls", f"{failed}")]


def _load(case: CaseResult) -> str:
    """The load case's figures beside the chart of its response times over the run."""
    assert case.load is not None
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in _figures(case.load))
    chart = load_chart(case.load, f"{case.contract.title} {case.name}: response times over the run")
    return (f"<div class=\"load\"><table class=\"figures\"><tr><th colspan=\"2\">figures</th></tr>{rows}</table>"
            f"<figure>{chart}<figcaption>Response times of the {case.load.calls} calls by when they were sent: "
            "median and slowest per time bucket, the whole run's percentiles as dashed lines, threads running "
            "against the right-hand axis.</figcaption></figure></div>")


def _case(case: CaseResult) -> str:
    status = case.status.value
    parts = [f"<details class=\"{'failed-case' if case.status is Status.FAILED else ''}\""
             f"{' open' if case.status is Status.FAILED else ''}>",
             f"<summary><span class=\"{status}\">{status.upper()}</span> <b>{escape(case.number)}</b> "
             f"{escape(case.title)} <span class=\"dim\">{case.seconds:.2f} s</span></summary>",
             f"<p>{escape(case.description)}</p>"]
    if case.reasons:
        label = "Why it failed" if case.status is Status.FAILED else "Why it was skipped"
        parts.append(f"<p><b>{label}</b></p><ul>" + "".join(f"<li>{escape(r)}</li>" for r in case.reasons) + "</ul>")
    if case.load is not None and case.load.calls:
        parts.append(_load(case))
    if case.notes:
        parts.append("<p><b>Notes</b></p><ul>" + "".join(f"<li>{escape(n)}</li>" for n in case.notes) + "</ul>")
    named = [ex for ex in case.exchanges if any(r.startswith(f"{ex.label}:") for r in case.reasons)]
    shown: list[Exchange] = []
    for ex in case.exchanges[:SHOWN] + named[:10]:
        if all(ex is not s for s in shown):
            shown.append(ex)
    parts.extend(_exchange(ex) for ex in shown)
    rest = [ex for ex in case.exchanges if all(ex is not s for s in shown)]
    if rest:
        rows = "".join(f"<tr><td>{escape(ex.label)}</td><td>{escape(ex.error or f'HTTP {ex.status}')}</td>"
                       f"<td>{ex.seconds * 1000:.0f} ms</td></tr>" for ex in rest)
        parts.append(f"<details><summary>{len(rest)} further calls</summary><table><tr><th>asked</th><th>outcome"
                     f"</th><th>time</th></tr>{rows}</table></details>")
    parts.append("</details>")
    return "".join(parts)


def to_html(result: SuiteResult) -> str:
    finished = result.finished.isoformat(timespec="seconds") if result.finished else "(not finished)"
    meta = [("started", result.started.isoformat(timespec="seconds")), ("finished", finished),
            ("declaration", ", ".join(result.declaration)), *result.options.items()]
    total = result.counts()
    verdict = "FAILED" if total[Status.FAILED] else "PASSED"
    mark = result.declaration_mark
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
           f"<title>NPÖ contract suite report: {verdict}{' (' + escape(mark) + ')' if mark else ''}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>NPÖ contract suite report: <span class=\"{verdict.lower()}\">{verdict}</span>"
           + (f" <span class=\"not-valid\">{escape(mark)}</span>" if mark else "") + "</h1>"]
    if mark:
        out.append("<div class=\"warning\"><p><b>This run is not valid for the self-declaration.</b> "
                   + ("It was a quick run (--quick): " if result.quick else "")
                   + "the non-functional cases (family 6) ran a lighter load than the official suite's. Run the "
                   "suite without --quick and --load-seconds for the self-declaration.</p><ul>"
                   + "".join(f"<li>{escape(s)}</li>" for s in result.not_for_declaration) + "</ul></div>")
    out += ["<table class=\"meta\">" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>"
                                                 for k, v in meta) + "</table>",
            "<h2>Summary</h2><table class=\"summary\"><tr><th>contract</th><th>service address</th><th>passed</th>"
            "<th>failed</th><th>skipped</th></tr>"]
    for contract in result.contracts:
        c = result.counts(contract.key)
        out.append(f"<tr><td><a href=\"#{contract.name}-{contract.major}\">{escape(contract.title)}</a></td>"
                   f"<td>{_breakable(result.endpoints.get(contract.key, ''))}</td><td class=\"passed\">"
                   f"{c[Status.PASSED]}</td><td class=\"failed\">{c[Status.FAILED]}</td>"
                   f"<td class=\"skipped\">{c[Status.SKIPPED]}</td></tr>")
    out.append(f"<tr><th>all</th><th></th><th>{total[Status.PASSED]}</th><th>{total[Status.FAILED]}</th>"
               f"<th>{total[Status.SKIPPED]}</th></tr></table>")
    for contract in result.contracts:
        out.append(f"<h2 id=\"{contract.name}-{contract.major}\">{escape(contract.title)}</h2>")
        if contract.suite_note:
            out.append(f"<p class=\"dim\">{escape(contract.suite_note)}</p>")
        out.extend(_case(c) for c in result.cases if c.contract == contract)
    out.append("<p class=\"dim\">Written by npo-adapter contract-test. Cases are numbered after Inera's "
               "test suites (TF numbers); where a contract has no official suite its cases are derived from its "
               "TKB (said under the contract).</p></body></html>")
    return "".join(out)


def write(result: SuiteResult, path: Path) -> None:
    path.write_text(to_html(result), encoding="utf-8")
