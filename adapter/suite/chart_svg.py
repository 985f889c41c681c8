"""A load case's response times over the run, as inline SVG for the HTML report: built with lxml (so the markup is
well-formed and every text escaped), no script, no style sheet, no external resource.

The calls are grouped into time buckets by when they were sent (a fixed width chosen so that a run has at most
`MAX_BUCKETS`); per bucket the chart draws the median and the slowest answer, marks buckets with failed calls, and
draws the run's overall 50th, 95th and 99th percentiles as labelled horizontal lines. The threads running are a
grey step line against the right-hand axis.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from lxml import etree

from adapter.suite.results import LoadRun

SVG_NS = "http://www.w3.org/2000/svg"
MAX_BUCKETS = 100
_WIDTHS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
PERCENTILES = (50, 95, 99)

# Geometry of the drawing (user units; the SVG scales to its box, 800 units wide shows 1:1 at 1280 px).
WIDTH, HEIGHT = 800, 330
LEFT, RIGHT, TOP, BOTTOM = 64, 56, 40, 52
MEDIAN, SLOWEST, THREADS, FAILED, GRID = "#1f5fa8", "#9cc3ea", "#8a8a8a", "#b00020", "#e3e3e3"
PERCENTILE_COLOURS = {50: "#17692b", 95: "#b36b00", 99: "#b00020"}


@dataclass(frozen=True)
class Bucket:
    index: int  # the bucket's number from the start of the load: it begins at index × width seconds
    calls: int
    median: float  # seconds
    slowest: float
    failed: int


def bucket_seconds(elapsed: float) -> float:
    """The bucket width: the smallest of a few round widths that gives at most MAX_BUCKETS buckets."""
    for width in _WIDTHS:
        if math.ceil(max(elapsed, 1e-9) / width) <= MAX_BUCKETS:
            return width
    return _WIDTHS[-1]


def buckets(run: LoadRun, width: float) -> list[Bucket]:
    """The buckets holding at least one call, in time order (a bucket without calls is a gap in the lines)."""
    grouped: dict[int, list[int]] = {}
    for i, sent in enumerate(run.started):
        grouped.setdefault(int(sent // width), []).append(i)
    return [Bucket(index, len(calls), statistics.median(run.seconds[i] for i in calls),
                   max(run.seconds[i] for i in calls), sum(run.failed[i] for i in calls))
            for index, calls in sorted(grouped.items())]


def nice_ticks(top: float, most: int = 6) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 × 10^k) up to at least `top`, at most `most` + 1 ticks."""
    top = top if top > 0 else 1.0
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def _fmt_tick(value: float) -> str:
    return f"{value:g}"


def load_chart(run: LoadRun, title: str) -> str:
    """The chart as an <svg> element (markup), or "" when the run made no call."""
    if not run.calls:
        return ""
    elapsed = max(run.elapsed, max(run.started), 1e-3)
    width = bucket_seconds(elapsed)
    found = buckets(run, width)
    overall = {p: run.percentile(p) for p in PERCENTILES}
    y_ticks = nice_ticks(max(max(b.slowest for b in found), overall[99]) * 1000)
    x_ticks = nice_ticks(elapsed, most=8)
    most_threads = max((n for _, n in run.threads), default=0) or 1
    t_ticks = nice_ticks(most_threads, most=5)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(seconds: float) -> float:
        return round(LEFT + plot_w * seconds / x_ticks[-1], 1)

    def y(seconds: float) -> float:
        return round(TOP + plot_h * (1 - seconds * 1000 / y_ticks[-1]), 1)

    def y_threads(n: float) -> float:
        return round(TOP + plot_h * (1 - n / t_ticks[-1]), 1)

    svg = etree.Element(f"{{{SVG_NS}}}svg", nsmap={None: SVG_NS}, viewBox=f"0 0 {WIDTH} {HEIGHT}",
                        width="100%", role="img", attrib={"class": "load-chart",
                                                          "data-bucket-seconds": f"{width:g}",
                                                          "font-family": "system-ui, sans-serif", "font-size": "12"})
    # Style as presentation attributes only: the report's own style sheet stays the one <style>.
    svg.set("preserveAspectRatio", "xMidYMid meet")

    def add(parent: etree._Element, tag: str, text: str | None = None, **attrs: str | float) -> etree._Element:
        names = {k: "class" if k == "cls" else k.replace("_", "-") for k in attrs}
        el = etree.SubElement(parent, f"{{{SVG_NS}}}{tag}", {names[k]: str(v) for k, v in attrs.items()})
        if text is not None:
            el.text = text
        return el

    add(svg, "title", title)
    add(svg, "desc", f"{run.calls} calls, {run.plan}; median and slowest response time per {width:g} s, "
        f"overall p50 {_fmt_ms(overall[50])}, p95 {_fmt_ms(overall[95])}, p99 {_fmt_ms(overall[99])}")
    add(svg, "rect", x=LEFT, y=TOP, width=plot_w, height=plot_h, fill="#fcfcfc", stroke="#bbb")

    axes = add(svg, "g", fill="#333")
    for tick in y_ticks:
        add(axes, "line", x1=LEFT, x2=LEFT + plot_w, y1=y(tick / 1000), y2=y(tick / 1000), stroke=GRID)
        add(axes, "text", _fmt_tick(tick), x=LEFT - 6, y=y(tick / 1000) + 4, text_anchor="end")
    for tick in x_ticks:
        add(axes, "line", x1=x(tick), x2=x(tick), y1=TOP + plot_h, y2=TOP + plot_h + 5, stroke="#888")
        add(axes, "text", _fmt_tick(tick), x=x(tick), y=TOP + plot_h + 18, text_anchor="middle")
    for tick in t_ticks:
        add(axes, "text", _fmt_tick(tick), x=LEFT + plot_w + 6, y=y_threads(tick) + 4, fill=THREADS)
    add(axes, "text", "response time (ms)", transform=f"translate(16 {TOP + plot_h / 2}) rotate(-90)",
        text_anchor="middle")
    add(axes, "text", "threads", transform=f"translate({WIDTH - 10} {TOP + plot_h / 2}) rotate(90)",
        text_anchor="middle", fill=THREADS)
    add(axes, "text", "seconds since the load began (calls by the time they were sent)", x=LEFT + plot_w / 2,
        y=HEIGHT - 12, text_anchor="middle")

    steps: list[str] = []
    for (t, n), (t_next, _) in zip(run.threads, run.threads[1:], strict=False):
        steps += [f"{x(t)},{y_threads(n)}", f"{x(t_next)},{y_threads(n)}"]
    if steps:
        add(svg, "polyline", points=" ".join(steps), fill="none", stroke=THREADS, stroke_width=1.5,
            stroke_dasharray="2 2", cls="threads")

    def centre(b: Bucket) -> float:
        return x(min((b.index + 0.5) * width, x_ticks[-1]))

    add(svg, "polyline", points=" ".join(f"{centre(b)},{y(b.slowest)}" for b in found), fill="none",
        stroke=SLOWEST, stroke_width=1.5, cls="slowest")
    add(svg, "polyline", points=" ".join(f"{centre(b)},{y(b.median)}" for b in found), fill="none",
        stroke=MEDIAN, stroke_width=2, stroke_linejoin="round", cls="median")
    for b in found:
        if b.failed:
            dot = add(svg, "circle", cx=centre(b), cy=y(b.median), r=4, fill=FAILED, cls="failed")
            when = f"{b.index * width:g}–{(b.index + 1) * width:g} s"
            add(dot, "title", f"{b.failed} of {b.calls} calls failed at {when}")

    label_y = TOP + plot_h + 100.0  # labels of close percentiles are pushed apart, highest percentile on top
    for p in PERCENTILES:
        line_y = y(overall[p])
        label_y = min(line_y - 3, label_y - 13)
        colour = PERCENTILE_COLOURS[p]
        add(svg, "line", x1=LEFT, x2=LEFT + plot_w, y1=line_y, y2=line_y, stroke=colour, stroke_dasharray="6 4",
            stroke_width=1, cls=f"p{p}")
        add(svg, "text", f"p{p} {_fmt_ms(overall[p])}", x=LEFT + plot_w - 4, y=max(label_y, TOP + 11),
            text_anchor="end", fill=colour, font_weight="bold")

    legend = add(svg, "g", cls="legend")
    entries = [(MEDIAN, "", f"median per {width:g} s"), (SLOWEST, "", f"slowest per {width:g} s"),
               (THREADS, "2 2", "threads"), (PERCENTILE_COLOURS[95], "6 4", "whole-run percentiles")]
    pos = float(LEFT)
    for colour, dash, label in entries:
        add(legend, "line", x1=pos, x2=pos + 22, y1=TOP - 16, y2=TOP - 16, stroke=colour, stroke_width=2,
            **({"stroke_dasharray": dash} if dash else {}))
        add(legend, "text", label, x=pos + 27, y=TOP - 12, fill="#333")
        pos += 40 + 6.5 * len(label)
    if any(b.failed for b in found):
        add(legend, "circle", cx=pos + 4, cy=TOP - 16, r=4, fill=FAILED)
        add(legend, "text", "failed calls", x=pos + 13, y=TOP - 12, fill="#333")
    return etree.tostring(svg, encoding="unicode")
