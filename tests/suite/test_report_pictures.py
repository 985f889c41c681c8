"""The reports of a short real run (family 6, one second per case, every contract) against the demo producer
over mTLS: each load case's response times as an inline SVG chart beside its figures, a quick run marked as no
evidence for the self-declaration in every report, the summary table within 1280 px in a real browser, and
each JUnit testsuite stamped with when its own contract's cases started."""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from rich.console import Console

from adapter.rivta.contracts import CONTRACTS
from adapter.suite import report_console, report_html, report_junit, runner
from adapter.suite.chart_svg import SVG_NS, bucket_seconds
from adapter.suite.cli import tls_context
from adapter.suite.results import SuiteResult
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, _missing

SVG = re.compile(r"<svg\b.*?</svg>", re.S)
LOAD_SECONDS = 1.0


@dataclass
class Run:
    result: SuiteResult
    html: Path
    junit: Path
    console: str


@pytest.fixture(scope="module")
def short_run(tls_producer, pki, demo_declaration, tmp_path_factory) -> Run:
    platform = pki.client("platform")
    verify: ssl.SSLContext = tls_context(platform.cert, platform.key, pki.ca_bundle)
    options = runner.RunOptions(endpoint=tls_producer.url, verify=verify, quick=True, load_seconds=LOAD_SECONDS,
                                only=("6.1",))
    result = runner.run(demo_declaration, "all", options)
    folder = tmp_path_factory.mktemp("pictures")
    report_html.write(result, folder / "suite.html")
    report_junit.write(result, folder / "suite.xml")
    console = Console(record=True, width=200)
    report_console.summary(console, result)
    return Run(result, folder / "suite.html", folder / "suite.xml", console.export_text())


# One store is enough: the reports are drawn from what the run saw, whichever store served it.
pytestmark = pytest.mark.parametrize("demo_engine", ["sqlite"], indirect=True)


def test_each_load_case_has_a_well_formed_svg_with_a_point_per_bucket(short_run):
    page = short_run.html.read_text(encoding="utf-8")
    charts = [etree.fromstring(m.group(0)) for m in SVG.finditer(page)]
    load_cases = [c for c in short_run.result.cases if c.number.startswith("6.")]
    assert len(load_cases) == 2 * len(CONTRACTS) and all(c.load is not None and c.load.calls > 10 for c in load_cases)
    assert len(charts) == len(load_cases)
    for case, svg in zip(load_cases, charts, strict=True):
        assert case.load is not None
        assert svg.tag == f"{{{SVG_NS}}}svg"
        assert case.contract.title in svg.findtext(f"{{{SVG_NS}}}title", "")
        width = float(svg.get("data-bucket-seconds", "nan"))
        assert width == bucket_seconds(case.load.elapsed)
        expected = {int(t // width) for t in case.load.started}  # the buckets the calls were sent in
        assert len(case.load.started) == case.load.calls == len(case.load.seconds)
        median = svg.find(f"{{{SVG_NS}}}polyline[@class='median']")
        assert median is not None
        points = median.get("points", "").split()
        assert len(points) == len(expected) >= 5, (len(points), len(expected))
        xs = [float(p.split(",")[0]) for p in points]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)  # one point per bucket, in time order
        for p in (50, 95, 99):  # the percentiles are marked
            assert svg.find(f"{{{SVG_NS}}}line[@class='p{p}']") is not None
            assert any(t.startswith(f"p{p} ") for t in svg.itertext())
        texts = set(svg.itertext())
        assert "response time (ms)" in texts and any(t.startswith("seconds since the load began") for t in texts)
    assert not any(tag in page for tag in ("<script", "<link", " src=", "@import"))  # still self-contained
    # the figures stand beside the chart
    assert page.count('<div class="load"><table class="figures">') == len(load_cases)


def test_a_quick_run_is_marked_not_valid_for_the_self_declaration(short_run):
    page = short_run.html.read_text(encoding="utf-8")
    assert 'PASSED</span> <span class="not-valid">QUICK RUN: not valid for the self-declaration</span>' in page
    assert "6.1.2: 5 threads for 1 s instead of 5 threads for 30 min" in page
    # 6.1.2 describes the load actually run, not the official half hour
    (endurance,) = {c.description for c in short_run.result.cases if c.number == "6.1.2"}
    assert endurance.startswith("5 threads for 1 s, endurance")
    assert "shortened: the official case runs 5 threads for 30 min" in endurance
    assert "5 trådar i 30 min / 5 threads for 30 minutes" not in page
    suites = etree.parse(str(short_run.junit)).getroot().findall("testsuite")
    for suite in suites:
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["quick"] == "true"
        assert props["self-declaration"].startswith("NOT VALID (QUICK RUN: not valid for the self-declaration): "
                                                    "6.1.1: 10 threads for 1 s instead of 10 threads for 180 s")
    assert "QUICK RUN: not valid for the self-declaration" in short_run.console


def test_junit_suites_carry_when_their_own_contract_started(short_run):
    suites = etree.parse(str(short_run.junit)).getroot().findall("testsuite")
    stamps = [s.get("timestamp") for s in suites]
    # each contract ran ≥ 2 s after the one before
    assert len(suites) == len(CONTRACTS) and len(set(stamps)) == len(CONTRACTS), stamps
    assert stamps == sorted(stamps)
    started = short_run.result.contract_started
    assert stamps == [started[c.key].isoformat(timespec="seconds") for c in short_run.result.contracts]


@pytest.fixture(scope="module")
def page_browser():
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        yield chromium
        chromium.close()


def test_the_report_fits_1280_px_in_a_real_browser(short_run, page_browser, tmp_path):
    page = page_browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(short_run.html.as_uri())
        summary = page.locator("table.summary")
        box = summary.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280, box
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        page.locator("details:has(div.load)").first.evaluate("d => d.open = true")
        chart = page.locator("svg.load-chart").first
        chart_box = chart.bounding_box()
        assert chart_box is not None and 600 <= chart_box["width"] and chart_box["x"] + chart_box["width"] <= 1280
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        page.screenshot(path=str(tmp_path / "report-1280.png"), full_page=True)
        if os.environ.get("NPO_KEEP_SCREENSHOTS"):
            page.screenshot(path=os.environ["NPO_KEEP_SCREENSHOTS"], full_page=False)
    finally:
        page.close()
