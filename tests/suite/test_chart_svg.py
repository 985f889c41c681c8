"""The load chart drawn from a made-up run: failed calls marked in their bucket, text escaped, buckets chosen
so that a half-hour endurance run stays a small drawing."""

from __future__ import annotations

from lxml import etree

from adapter.suite.chart_svg import MAX_BUCKETS, SVG_NS, bucket_seconds, buckets, load_chart, nice_ticks
from adapter.suite.results import LoadRun

S = f"{{{SVG_NS}}}"


def _run(calls: int, elapsed: float, failing: set[int] = frozenset()) -> LoadRun:  # type: ignore[assignment]
    run = LoadRun("5 threads for 30 min", elapsed=elapsed, threads=[(0.0, 5), (elapsed, 0)])
    for i in range(calls):
        run.started.append(elapsed * i / calls)
        run.seconds.append(0.02 + (i % 7) * 0.01)
        run.failed.append(i in failing)
    return run


def test_failed_calls_are_marked_in_their_bucket_and_text_is_escaped():
    run = _run(200, 2.0, failing={10, 11, 150})
    svg = etree.fromstring(load_chart(run, "GetDiagnosis 2.0 <6.1.2> & co"))
    assert svg.findtext(f"{S}title") == "GetDiagnosis 2.0 <6.1.2> & co"
    width = float(svg.get("data-bucket-seconds", "nan"))
    failed_buckets = {int(run.started[i] // width) for i in (10, 11, 150)}
    dots = svg.findall(f"{S}circle[@class='failed']")
    assert len(dots) == len(failed_buckets) == 2
    assert sorted(d.findtext(f"{S}title", "") for d in dots)[0].startswith("1 of ")
    median = svg.find(f"{S}polyline[@class='median']")
    assert median is not None and len(median.get("points", "").split()) == len(buckets(run, width))


def test_a_half_hour_run_has_at_most_max_buckets():
    run = _run(20_000, 1800.0)
    width = bucket_seconds(run.elapsed)
    assert width == 30 and len(buckets(run, width)) <= MAX_BUCKETS
    markup = load_chart(run, "endurance")
    assert len(markup) < 40_000  # a drawing of buckets, not of 20 000 calls
    assert load_chart(LoadRun("no calls"), "none") == ""


def test_ticks_are_round_and_cover_the_top():
    assert nice_ticks(818) == [0, 200, 400, 600, 800, 1000]
    assert nice_ticks(1.1, most=8) == [0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]
    assert nice_ticks(5, most=5) == [0, 1, 2, 3, 4, 5]
