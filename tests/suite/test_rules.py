"""The rule checks the suite relies on (adapter/rivta/rules.py): findings tagged with the rule they break,
and the contract rules added for the suite (GetMedicationHistory Övriga regler, GetCarePlans R1/documentTitle,
embedded attachments of at most 100 KB). Answers come from the real producer over HTTP."""

from __future__ import annotations

import base64
import copy

import pytest
from lxml import etree

from adapter.rivta import rules
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION, GET_CARE_PLANS, GET_DIAGNOSIS, GET_MEDICATION_HISTORY
from tests.conftest import RunningServer, free_port
from tests.samples import PNR, call
from tests.suite.conftest import producer_app


@pytest.fixture(scope="module")
def answers(demo_engine) -> dict[str, etree._Element]:
    out = {}
    with RunningServer(producer_app(demo_engine), free_port()) as srv:
        for contract in (GET_DIAGNOSIS, GET_MEDICATION_HISTORY, GET_CARE_PLANS, GET_CARE_DOCUMENTATION):
            status, root, _ = call(srv.url, contract, patient=PNR)
            assert status == 200
            assert rules.check_answer(root, contract) == []
            out[contract.name] = root
    return out


def fresh(answers, contract) -> tuple[etree._Element, dict[str, str]]:
    return copy.deepcopy(answers[contract.name]), {"c": contract.core_ns}


def test_findings_carry_their_rule_and_check_answer_keeps_its_messages(answers):
    root, ns = fresh(answers, GET_DIAGNOSIS)
    giver = root.find(".//c:healthcareProfessionalCareGiverHSAId", ns)
    giver.getparent().remove(giver)
    root.find(".//c:healthcareProfessionalName", ns).text = ""
    dup = root.find(f".//{{{GET_DIAGNOSIS.responder_ns}}}diagnosis")
    dup.addnext(copy.deepcopy(dup))
    found = {(p.rule, str(p)) for p in rules.find_problems(root, GET_DIAGNOSIS)}
    assert found == {
        (rules.Rule.CARE_UNIT_AND_GIVER, "diagnosis[0]: healthcareProfessionalCareGiverHSAId missing"),
        (rules.Rule.CARE_UNIT_AND_GIVER, "diagnosis[1]: healthcareProfessionalCareGiverHSAId missing"),
        (rules.Rule.EMPTY, "diagnosis[0]: empty element healthcareProfessionalName"),
        (rules.Rule.EMPTY, "diagnosis[1]: empty element healthcareProfessionalName"),
        (rules.Rule.UNIQUE_DOCUMENT_ID, "documentId used by 2 records"),
    }
    assert sorted(rules.check_answer(root, GET_DIAGNOSIS)) == sorted(m for _, m in found)


def _first(root: etree._Element, path: str, ns: dict) -> etree._Element:
    el = root.find(path, ns)
    assert el is not None, path
    return el


def test_medication_history_rules(answers):
    root, ns = fresh(answers, GET_MEDICATION_HISTORY)
    mp = root.xpath(".//c:medicationPrescription[c:prescriber][c:drug/c:drug/c:nplId]", namespaces=ns)[0]
    mp.find("c:selfMedication", ns).text = "false"
    mp.remove(mp.find("c:prescriber", ns))
    choice = mp.find("c:drug", ns)
    extra = etree.SubElement(choice, f"{{{ns['c']}}}generics")
    etree.SubElement(extra, f"{{{ns['c']}}}form").text = "Tablett"
    npl = choice.find("c:drug/c:nplId", ns)
    etree.SubElement(npl, f"{{{ns['c']}}}originalText").text = "fritext"
    messages = [p.message for p in rules.find_problems(root, GET_MEDICATION_HISTORY)
                if p.rule is rules.Rule.CONTRACT]
    assert "prescriber missing while selfMedication is false (1.8)" in messages
    assert any(m.startswith("drug holds not exactly one of") for m in messages)
    assert any(m.endswith("must hold exactly code, codeSystem and displayName (1.6)") for m in messages)


def test_care_plan_rules_title_media_type_and_size(answers):
    root, ns = fresh(answers, GET_CARE_PLANS)
    title = _first(root, ".//c:documentTitle", ns)
    title.getparent().remove(title)
    content = _first(root, ".//c:content", ns)
    content.find("c:mediaType", ns).text = "image/gif"
    content.find("c:value", ns).text = base64.b64encode(b"\0" * (100 * 1024 + 1)).decode()
    messages = {p.message for p in rules.find_problems(root, GET_CARE_PLANS)}
    assert {"documentTitle missing (TKB 1..1)", "content[0]: mediaType not one of the six the TKB allows",
            "content[0]: value larger than 100 KB (R1)"} <= messages


def test_care_documentation_attachment_size(answers):
    root, ns = fresh(answers, GET_CARE_DOCUMENTATION)
    value = _first(root, ".//c:multimediaEntry/c:value", ns)
    value.text = base64.b64encode(b"\0" * (100 * 1024)).decode()
    assert rules.check_answer(root, GET_CARE_DOCUMENTATION) == []  # exactly 100 KB is allowed
    value.text = base64.b64encode(b"\0" * (100 * 1024 + 1)).decode()
    assert [p.message for p in rules.find_problems(root, GET_CARE_DOCUMENTATION)] == [
        "multimediaEntry value larger than 100 KB (Regel 2)"]
