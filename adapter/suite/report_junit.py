"""JUnit XML: one <testsuite> per contract, one <testcase> per case, for CI servers and attachments."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from adapter.suite.results import Status, SuiteResult

_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))  # not allowed in XML 1.0


def _clean(text: str) -> str:
    return text.translate(_CONTROL)


def to_xml(result: SuiteResult) -> bytes:
    root = etree.Element("testsuites", name="npo-adapter contract-test")
    total = result.counts()
    root.set("tests", str(len(result.cases)))
    root.set("failures", str(total[Status.FAILED]))
    root.set("skipped", str(total[Status.SKIPPED]))
    root.set("errors", "0")
    root.set("time", f"{sum(c.seconds for c in result.cases):.3f}")
    for contract in result.contracts:
        cases = [c for c in result.cases if c.contract == contract]
        counts = result.counts(contract.key)
        suite = etree.SubElement(root, "testsuite", name=contract.title,
                                 tests=str(len(cases)), failures=str(counts[Status.FAILED]),
                                 skipped=str(counts[Status.SKIPPED]), errors="0",
                                 time=f"{sum(c.seconds for c in cases):.3f}",
                                 timestamp=result.contract_started.get(contract.key, result.started)
                                 .isoformat(timespec="seconds"))
        props = etree.SubElement(suite, "properties")
        etree.SubElement(props, "property", name="endpoint", value=_clean(result.endpoints.get(contract.key, "")))
        etree.SubElement(props, "property", name="declaration", value=_clean(", ".join(result.declaration)))
        etree.SubElement(props, "property", name="quick", value="true" if result.quick else "false")
        validity = (f"NOT VALID ({result.declaration_mark}): " + "; ".join(result.not_for_declaration)
                    if result.not_for_declaration else "valid")
        etree.SubElement(props, "property", name="self-declaration", value=_clean(validity))
        for case in cases:
            tc = etree.SubElement(suite, "testcase", classname=f"{contract.name}.family{case.number.split('.')[0]}",
                                  name=_clean(case.name), time=f"{case.seconds:.3f}")
            if case.status is Status.FAILED:
                failure = etree.SubElement(tc, "failure", message=_clean(case.reasons[0]), type="ContractViolation")
                failure.text = _clean("\n".join(case.reasons))
            elif case.status is Status.SKIPPED:
                etree.SubElement(tc, "skipped", message=_clean("; ".join(case.reasons)))
            if case.notes:
                etree.SubElement(tc, "system-out").text = _clean("\n".join(case.notes))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def write(result: SuiteResult, path: Path) -> None:
    path.write_bytes(to_xml(result))
