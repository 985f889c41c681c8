"""The suite catches faults: the real producer behind a wrapper that injects one fault at a time
(tests/suite/breakers.py). For each, the case that owns the rule fails, with a reason that names the
fault, and cases that have nothing to do with it still pass."""

from __future__ import annotations

import pytest
import typer
from lxml import etree
from typer.testing import CliRunner

from adapter.suite import report_html, runner
from adapter.suite.chart_svg import load_chart
from adapter.suite.cli import contract_test
from adapter.suite.results import Status
from tests.suite.conftest import DEMO_DECLARATION

# fault -> (cases that must fail, a word their reasons must hold, cases that must still pass)
EXPECTED = {
    "empty-element": ({"1.1.2"}, "empty element healthcareProfessionalName", {"1.1.1", "1.2.1", "1.3", "3.1"}),
    "ignores-period": ({"1.2.1", "1.2.2", "1.2.3"}, ("unexpected documentId", "where an empty answer was expected"),
                       {"1.1.1", "1.3", "1.8", "3.1"}),
    "no-care-giver": ({"3.1"}, "healthcareProfessionalCareGiverHSAId missing", {"1.1.1", "1.2.1", "3.2", "4.1"}),
    "personal-data-in-fault": ({"1.7"}, "personal data", {"1.1.1", "1.8", "1.13", "2.1"}),
    "wrong-namespace": ({"1.1.1", "1.2.1"}, "schema", {"1.7", "1.8", "1.13", "1.14"}),
    "unknown-patient-fault": ({"1.8"}, "SOAP fault", {"1.1.1", "1.7", "1.9", "3.1"}),
    "source-system-not-checked": ({"1.13"}, "expected ERROR/INVALID_REQUEST", {"1.1.1", "1.4", "1.14"}),
    "duplicate-document-ids": ({"1.1.1"}, "documentId used by 2 records", {"1.7", "1.8", "1.13"}),
}


def run_against(srv, demo_declaration, **options):
    result = runner.run(demo_declaration, "GetDiagnosis", runner.RunOptions(endpoint=srv.url, **options))
    return {c.number: c for c in result.cases}, result


@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_the_owning_case_fails_and_unrelated_cases_pass(broken_producer, demo_declaration, fault):
    failing, reason, passing = EXPECTED[fault]
    cases, _ = run_against(broken_producer(fault), demo_declaration, skip=("6",))
    for number in failing:
        assert cases[number].status is Status.FAILED, (number, cases[number].reasons)
        words = (reason,) if isinstance(reason, str) else reason
        assert any(w in r for r in cases[number].reasons for w in words), (number, cases[number].reasons)
    for number in passing:
        assert cases[number].status is Status.PASSED, (number, cases[number].reasons)


def test_answers_mixed_up_under_concurrency_fail_the_load_case(broken_producer, demo_declaration):
    cases, _ = run_against(broken_producer("mixed-up"), demo_declaration, only=("1.1.1", "1.2.1", "1.8", "6.1.1"),
                           load_seconds=1.0, quick=True)
    assert [cases[n].status for n in ("1.1.1", "1.2.1", "1.8")] == [Status.PASSED] * 3  # one call at a time
    load = cases["6.1.1"]
    assert load.status is Status.FAILED, load.notes
    assert any("were not the patient's own answer" in r for r in load.reasons), load.reasons
    assert any(ex.label == "under load: an answer holding another patient's records" for ex in load.exchanges)
    # the chart marks the buckets whose calls failed, as many as the run counted
    assert load.load is not None and any(load.load.failed)
    svg = etree.fromstring(load_chart(load.load, "6.1.1"))
    width = float(svg.get("data-bucket-seconds", "nan"))
    failing = {int(t // width) for t, bad in zip(load.load.started, load.load.failed, strict=True) if bad}
    assert len(svg.findall("{http://www.w3.org/2000/svg}circle[@class='failed']")) == len(failing)


def test_the_reports_name_the_failure_and_the_exit_status_is_non_zero(broken_producer, tmp_path):
    srv = broken_producer("personal-data-in-fault")
    junit, html = tmp_path / "r.xml", tmp_path / "r.html"
    app = typer.Typer()
    app.command("contract-test")(contract_test)
    app.callback()(lambda: None)
    result = CliRunner().invoke(app, ["contract-test", "--contract", "GetDiagnosis", "--endpoint", srv.url,
                                      "--data", str(DEMO_DECLARATION), "--case", "1.1", "--case", "1.7",
                                      "--junit", str(junit), "--html", str(html)])
    assert result.exit_code == 1, result.output
    assert "FAIL GetDiagnosis 2.0 1.7 SoapFault" in result.output
    failures = etree.parse(str(junit)).getroot().findall(".//testcase/failure")
    assert [f.getparent().get("name") for f in failures] == ["1.7 SoapFault"]
    page = html.read_text(encoding="utf-8")
    assert "the SOAP fault carries personal data" in page and "(patient 191212121212)" in page


def test_answers_are_escaped_in_the_html_report(broken_producer, demo_declaration):
    _, result = run_against(broken_producer("wrong-namespace"), demo_declaration, only=("1.1.1",))
    page = report_html.to_html(result)
    assert "<c:diagnosisHeader>" not in page and "&lt;c:diagnosisHeader&gt;" in page
