"""A chart per benchmark, drawn from its results JSON: bench/results/<name>.json -> bench/results/<name>.png.

    python -m bench.charts                 # every bench/results/*.json
    python -m bench.charts intake fanout   # some of them (names or paths)

Each benchmark's `Report.finish()` calls `draw()` after writing its JSON, so `make bench` leaves the two side by
side; this command redraws them from JSON already there (no benchmark is run again). The measured figures are
drawn against the same-run baseline and the targets, with every target's outcome written under the chart.
matplotlib with the Agg backend (no display); the PNGs carry no date or version metadata, so the same JSON
draws the same file.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import FigureBase  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE, MEASURED, OTHER, TARGET = "#9aa5b1", "#1f5fa8", "#e08a00", "#b00020"
DPI = 100

Doc = dict[str, Any]


def _bars(ax: Axes, groups: list[str], series: dict[str, list[float]], colours: list[str], unit: str,
          fmt: str = "{:,.0f}") -> None:
    """Grouped bars, each labelled with its value."""
    n = len(series)
    width = 0.8 / n
    for i, ((label, values), colour) in enumerate(zip(series.items(), colours, strict=False)):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, values, width * 0.95, label=label, color=colour)
        ax.bar_label(bars, [fmt.format(v).replace(",", " ") for v in values], fontsize=8, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(unit)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e6e6e6")
    ax.set_axisbelow(True)
    ax.margins(y=0.15)
    if len(groups) == 1:
        ax.set_xlim(-1.0, 1.0)


def _legend(ax: Axes, below: float = 0.1) -> None:
    """The legend under the axes (`below` the axes' height under them, past the tick labels): it hides no bar."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -below), ncols=2, frameon=False)


def _short(contract: str) -> str:
    """GetMedicationHistory_2 -> "Medication\nHistory 2": a tick label that does not run into its neighbour."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "\n", contract.removeprefix("Get")).replace("_", " ")


def _target_line(ax: Axes, value: float, label: str) -> None:
    ax.axhline(value, color=TARGET, linestyle="--", linewidth=1.2, label=label)


def _producer_throughput(doc: Doc, fig: FigureBase) -> None:
    f = doc["figures"]
    conns = [c for c in ("c10", "c200") if f"producer_{c}" in f]
    groups = [f"{c[1:]} connections" for c in conns]
    many = [c for c in conns if f"workers_{c}" in f] == conns  # the N-worker runs (issue 15) are in the results
    workers = f[f"workers_{conns[0]}"]["workers"] if many else 0
    ax1, ax2 = fig.subplots(1, 2)
    rps = {"baseline (same server, fixed answer)": [f[f"baseline_{c}"]["rps"] for c in conns],
           "producer, 1 worker": [f[f"producer_{c}"]["rps"] for c in conns]}
    if many:
        rps[f"producer, {workers} workers"] = [f[f"workers_{c}"]["rps"] for c in conns]
    _bars(ax1, groups, rps, [BASELINE, MEASURED, OTHER][:len(rps)], "requests/s")
    for i, c in enumerate(conns):
        ax1.hlines(0.35 * f[f"baseline_{c}"]["rps"], i - 0.4, i + 0.4, color=TARGET, linestyle="--",
                   label="target: 1 worker ≥ 35 % of the baseline" if i == 0 else "_nolegend_")
    ax1.set_title("Throughput against the baseline")
    _legend(ax1)
    series = {}
    for who, key in (("baseline", "baseline"), ("1 worker", "producer")) + ((f"{workers} workers", "workers"),) * many:
        for p in ("p50", "p99"):
            series[f"{who} {p}"] = [f[f"{key}_{c}"][f"{p}_ms"] for c in conns]
    _bars(ax2, groups, series, [BASELINE, "#5f6b77", MEASURED, "#0b3566", OTHER, "#7a4b00"][:len(series)], "ms",
          "{:,.1f}")
    _target_line(ax2, 100, f"target: p99 ≤ 100 ms (200 connections, {workers or 1} workers)")
    ax2.set_title("Latency percentiles")
    _legend(ax2)


def _large_answers(doc: Doc, fig: FigureBase) -> None:
    f = doc["figures"]
    ax1, ax2 = fig.subplots(1, 2)
    biggest = max(v["records"] for v in f.values())
    keys = [k for k, v in f.items() if v["records"] == biggest]
    names = [_short(k.rsplit("_", 1)[0]) for k in keys]
    _bars(ax1, names, {"producer render": [f[k]["render_s"] * 1000 for k in keys],
                       "lxml serialising the tree": [f[k]["lxml_s"] * 1000 for k in keys],
                       "zeep": [f[k]["zeep_s"] * 1000 for k in keys]}, [MEASURED, BASELINE, OTHER], "ms (log)",
          "{:,.0f}")
    ax1.set_yscale("log")
    ax1.set_ylim(top=max(f[k]["zeep_s"] for k in keys) * 1000 * 3)
    ax1.set_title(f"Rendering {biggest:,} records against the baselines".replace(",", " "))
    _legend(ax1, 0.13)
    ax1.tick_params(axis="x", labelsize=8)
    sizes = sorted({v["records"] for v in f.values()})
    contracts = list(dict.fromkeys(k.rsplit("_", 1)[0] for k in f))
    _bars(ax2, [_short(c) for c in contracts],
          {f"{s:,} records".replace(",", " "): [f.get(f"{c}_{s}", {}).get("mb_per_s", 0.0) for c in contracts]
           for s in sizes}, [BASELINE, MEASURED, OTHER], "MB/s to the last byte over mTLS")
    _target_line(ax2, 50, "target: ≤ 0.02 s per MB (50 MB/s)")
    ax2.set_title("Answer throughput")
    _legend(ax2, 0.13)
    ax2.tick_params(axis="x", labelsize=8)


def _ingest_rate(doc: Doc, fig: FigureBase) -> None:
    f = doc["figures"]
    ax = fig.subplots(1, 1)
    base = f["validation_alone"]["per_cpu_s"]
    engines = [e for e in ("sqlite", "postgresql") if e in f]
    label = {"sqlite": "into SQLite", "postgresql": "into PostgreSQL (its server backend's CPU counted)"}
    _bars(ax, [f"{label[e]}: ratio {f[e]['ratio_per_cpu_s']}" for e in engines],
          {"baseline: fhir.resources validation alone": [base] * len(engines),
           "ingest end to end": [f[e]["per_cpu_s"] for e in engines]}, [BASELINE, MEASURED],
          "resources per CPU-second")
    for i in range(len(engines)):
        ax.hlines(0.5 * base, i - 0.05, i + 0.4, color=TARGET, linestyle="--",
                  label="target: 50 % of the baseline" if i == 0 else "_nolegend_")
    ax.set_title(f"Ingest of {f['municipality']['resources']:,} resources against validation alone"
                 .replace(",", " "))
    _legend(ax)


def _fanout(doc: Doc, fig: FigureBase) -> None:
    f = doc["figures"]
    ax = fig.subplots(1, 1)
    kinds = [k for k in ("kept_client", "fresh_client") if k in f]
    alone = [f[k]["slowest_alone_median_s"] * 1000 for k in kinds]
    _bars(ax, [k.replace("_", " ") for k in kinds],
          {"baseline: slowest producer alone": alone,
           "fan-out to all producers": [f[k]["fan_out_median_s"] * 1000 for k in kinds]},
          [BASELINE, MEASURED], "ms (median wall time)")
    for i, a in enumerate(alone):
        ax.hlines(a + 50, i - 0.05, i + 0.4, color=TARGET, linestyle="--",
                  label="target: ≤ 50 ms over the slowest alone" if i == 0 else "_nolegend_")
    s = f.get("set_up", {})
    ax.set_title(f"Fan-out: {s.get('producers', '?')} producers × {s.get('contracts', '?')} contracts")
    _legend(ax)


def _intake(doc: Doc, fig: FigureBase) -> None:
    f = doc["figures"]
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    _bars(ax1, ["throughput"], {"FHIR writes": [f["writes"]["per_s"]],
                                "SOAP reads alongside": [f["concurrent_reads"]["rps"]]},
          [MEASURED, BASELINE], "per second")
    ax1.set_title("Writes and reads at once")
    _legend(ax1)
    groups = ["write (PUT to 2xx)", "visible in the next read", "reads alongside"]
    _bars(ax2, groups, {"p50": [f["writes"]["p50_ms"], f["visible"]["p50_ms"], f["concurrent_reads"]["p50_ms"]],
                        "p99": [f["writes"]["p99_ms"], f["visible"]["p99_ms"], f["concurrent_reads"]["p99_ms"]]},
          [BASELINE, MEASURED], "ms", "{:,.0f}")
    _target_line(ax2, 100, "target: write p99 ≤ 100 ms")
    ax2.set_title("Latency percentiles")
    _legend(ax2)


def _soak(doc: Doc, fig: FigureBase) -> None:
    f = doc["figures"]
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    _bars(ax1, ["calls"], {"per second": [f["calls"]["per_s"]]}, [MEASURED], "calls/s", "{:,.1f}")
    ax1.set_title(f"{f['profile']['peak_threads']} threads at most, {f['profile']['seconds']:g} s")
    _bars(ax2, ["response time"], {p: [f["calls"][f"{p}_ms"]] for p in ("p50", "p99", "max")},
          [BASELINE, MEASURED, OTHER], "ms", "{:,.0f}")
    ax2.set_title("Latency percentiles")
    _legend(ax2)


def _targets_only(doc: Doc, fig: FigureBase) -> None:
    """A benchmark without a chart of its own: each target's measured figure as a share of its limit."""
    ax = fig.subplots(1, 1)
    targets = doc.get("targets", [])
    shares = [t["measured"] / t["limit"] if t["limit"] else float(t["measured"]) for t in targets]
    ax.barh(range(len(targets)), shares, color=[MEASURED if t["met"] else TARGET for t in targets])
    ax.set_yticks(range(len(targets)), [t["what"] for t in targets], fontsize=8)
    ax.axvline(1, color="#333", linestyle="--")
    ax.set_xlabel("measured / target limit")


DRAWERS: dict[str, Callable[[Doc, FigureBase], None]] = {
    "producer_throughput": _producer_throughput, "large_answers": _large_answers, "ingest_rate": _ingest_rate,
    "fanout": _fanout, "intake": _intake,
}


def _drawer(name: str) -> Callable[[Doc, FigureBase], None]:
    return DRAWERS.get(name) or (_soak if name.startswith("soak_") else _targets_only)


def _footer(doc: Doc) -> str:
    lines = []
    for t in doc.get("targets", []):
        mark = "met" if t["met"] else "MISSED"
        lines.append(f"[{mark}] {t['what']}: {t['measured']:g} (target {t['direction']} {t['limit']:g})")
    return "\n".join(lines)


def draw(source: Path, target: Path | None = None) -> Path:
    """Draw the chart of one results JSON; returns the PNG's path (beside the JSON unless `target`)."""
    doc: Doc = json.loads(source.read_text(encoding="utf-8"))
    name = doc.get("benchmark", source.stem)
    target = target or source.with_suffix(".png")
    footer = _footer(doc)
    lines = footer.count("\n") + 1 if footer else 0
    fig = plt.figure(figsize=(11, 5.0 + 0.17 * lines), dpi=DPI, layout="constrained")
    try:
        machine = doc.get("machine", {})
        fig.suptitle(f"{name}  —  scale {doc.get('scale', '?')}, {machine.get('cpus', '?')} cores, "
                     f"Python {machine.get('python', '?')}, {doc.get('seconds', '?')} s", fontsize=11)
        if lines:
            chart, under = fig.subfigures(2, 1, height_ratios=[4.3, 0.3 + 0.17 * lines])  # type: ignore[misc]
            _drawer(name)(doc, chart)
            under.text(0.01, 0.95, footer, va="top", ha="left", fontsize=8, family="monospace")
        else:
            _drawer(name)(doc, fig)
        fig.savefig(target, format="png", metadata={"Software": None}, bbox_inches="tight")
    finally:
        plt.close(fig)
    return target


def main(argv: list[str]) -> int:
    sources = [Path(a) if a.endswith(".json") else RESULTS / f"{a}.json" for a in argv] or sorted(
        RESULTS.glob("*.json"))
    if not sources:
        print(f"no results in {RESULTS}", file=sys.stderr)
        return 1
    for source in sources:
        print(f"{draw(source)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
