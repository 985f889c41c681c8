"""The suite against the project's own producer over mutual TLS, as a tester runs it: all five contracts
green, with JUnit XML and the HTML report written."""

from __future__ import annotations

import typer
from lxml import etree
from typer.testing import CliRunner

from adapter.rivta.contracts import CONTRACTS
from adapter.suite.cli import contract_test
from tests.suite.conftest import DEMO_DECLARATION

app = typer.Typer()
app.command("contract-test")(contract_test)


@app.callback()
def main() -> None:
    """npo-adapter, as adapter/cli.py registers the command."""


def tls_args(pki) -> list[str]:
    platform = pki.client("platform")
    return ["--cert", str(platform.cert), "--key", str(platform.key), "--ca", str(pki.ca_bundle)]


def test_all_five_contracts_pass_against_our_producer_over_mtls(tls_producer, pki, tmp_path):
    junit, html = tmp_path / "suite.xml", tmp_path / "suite.html"
    result = CliRunner().invoke(app, ["contract-test", "--contract", "all", "--endpoint", tls_producer.url,
                                      "--data", str(DEMO_DECLARATION), *tls_args(pki), "--quick",
                                      "--load-seconds", "1", "--junit", str(junit), "--html", str(html)])
    print(result.output)
    assert result.exit_code == 0, result.output
    report = etree.parse(str(junit)).getroot()
    assert report.get("failures") == "0"
    suites = {s.get("name"): s for s in report.iter("testsuite")}
    assert set(suites) == {c.title for c in CONTRACTS}  # every contract of the registry
    for name, suite in suites.items():
        cases = {tc.get("name").split(" ")[0]: tc for tc in suite.iter("testcase")}
        for number in ("1.1.1", "1.2.1", "1.7", "1.8", "2.1", "3.1", "4.2", "6.1.1", "6.2.1", "7.1", "7.3"):
            assert number in cases, (name, number)
            assert cases[number].find("skipped") is None, (name, number)
        assert int(suite.get("tests")) - int(suite.get("skipped")) >= 30, name
    page = html.read_text(encoding="utf-8")
    assert "NPÖ contract suite report: <span class=\"passed\">PASSED</span>" in page
    # a quick run passes, but says in every report that it is no evidence for the self-declaration
    assert '<span class="not-valid">QUICK RUN: not valid for the self-declaration</span>' in page
    assert "5 threads for 30 minutes" not in page and "5 threads for 1 s, endurance" in page
    assert "QUICK RUN: not valid for the self-declaration" in result.output
    assert all(s.find("properties/property[@name='quick']").get("value") == "true" for s in suites.values())
    assert "<b>1.2.1</b>" in page and "GetCareDocumentation 2.1" in page
    assert "&lt;r:GetDiagnosis&gt;" in page  # requests are shown, escaped
    assert not any(tag in page for tag in ("<script", "<link", " src=", "@import"))  # self-contained
