"""The project's own engagement index Update 1.0 schemas against the national definition.

contracts/EngagementIndexUpdate/1.0/ and contracts/core_components/itintegration_engagementindex_core_v1.xsd
are written by this project; the national release (itintegration:engagementindex 1.0.9) is read from the
reference pack only. Same three-way check as test_contract_schemas.py: sample verdicts, a component-by-
component comparison of the schema sets, a WSDL comparison; plus coverage of every element declaration
by the valid samples. The generic checks of that module (every XSD compiles, references resolve, file
names are unique, no copied file) already run over these files too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.contracts.test_contract_schemas import (
    CONTRACTS_DIR,
    REGISTRY_NS,
    SAMPLES_DIR,
    SOAP11_NS,
    compare_components,
    expected_verdict,
    load_schema,
    required_slots,
    schema_components,
    used_slots,
    verdict,
    wsdl_summary,
)
from tests.samples import REFERENCE

FOLDER = CONTRACTS_DIR / "EngagementIndexUpdate" / "1.0"
OUR_RESPONDER = FOLDER / "EngagementIndexUpdateResponder_1.0.xsd"
OUR_WSDL = FOLDER / "EngagementIndexUpdateInteraction_1.0_RIVTABP21.wsdl"
OUR_CORE = CONTRACTS_DIR / "core_components" / "itintegration_engagementindex_core_v1.xsd"

OFFICIAL_DIR = REFERENCE / "rivta" / "itintegration-engagementindex" / "1.0"
OFFICIAL_RESPONDER = OFFICIAL_DIR / "interactions" / "UpdateInteraction" / "UpdateResponder_1.0.xsd"
OFFICIAL_WSDL = OFFICIAL_DIR / "interactions" / "UpdateInteraction" / "UpdateInteraction_1.0_RIVTABP21.wsdl"

RESPONDER_NS = "urn:riv:itintegration:engagementindex:UpdateResponder:1"
CORE_NS = "urn:riv:itintegration:engagementindex:1"
SAMPLES = SAMPLES_DIR / "EngagementIndexUpdate"


def samples() -> list:
    return [pytest.param(p, id=p.stem) for p in sorted(SAMPLES.glob("*.xml"))]


def test_reference_pack_present() -> None:
    for path in (OFFICIAL_RESPONDER, OFFICIAL_WSDL):
        assert path.is_file(), f"reference file missing: {path}"


def test_layout() -> None:
    assert sorted(p.name for p in FOLDER.iterdir()) == sorted([OUR_RESPONDER.name, OUR_WSDL.name])
    assert OUR_CORE.is_file()


@pytest.mark.parametrize("sample", samples())
def test_sample_same_verdict_as_official(sample: Path) -> None:
    doc = etree.parse(str(sample))
    ours, our_errors = verdict(OUR_RESPONDER, doc)
    official, official_errors = verdict(OFFICIAL_RESPONDER, doc)
    assert ours == official, f"verdicts differ: ours={ours} ({our_errors}) official={official} ({official_errors})"
    assert ours == expected_verdict(sample), f"sample is mislabelled: {our_errors or 'valid'}"


def test_sample_set_complete() -> None:
    stems = {p.stem for p in SAMPLES.glob("*.xml")}
    for required in ("valid_request_minimal", "valid_request_rich", "valid_response_minimal", "valid_response_rich"):
        assert required in stems
    for kind in ("request", "response"):
        assert len([s for s in stems if s.startswith(f"invalid_{kind}_")]) >= 5, kind
    for marker in ("wrong_order", "missing", "bad_", "namespace", "unknown_element_own_namespace"):
        assert any(s.startswith("invalid_") and marker in s for s in stems), marker
    # the resident-identity pattern is where national copies differ: both sides of it are sampled
    assert {"valid_request_resident_reserve_identity", "invalid_request_bad_resident_lowercase"} <= stems


def test_schema_set_equivalent_to_official() -> None:
    official = schema_components(OFFICIAL_RESPONDER)
    ours = schema_components(OUR_RESPONDER)
    assert {key[1] for key in ours} == {RESPONDER_NS, CORE_NS}, "the schema set must reach exactly these namespaces"
    problems = compare_components(official, ours)
    assert not problems, "\n".join(problems)


def test_resident_pattern_is_the_official_one() -> None:
    ours = schema_components(OUR_RESPONDER)[("simpleType", CORE_NS, "RegisteredResidentIdentificationType")]
    assert ours[3] == (("pattern", "[0-9]{8}[0-9A-Zptf]{4}"),)


def test_wsdl_equivalent_to_official() -> None:
    official = wsdl_summary(OFFICIAL_WSDL)
    ours = wsdl_summary(OUR_WSDL)
    for key in official:
        assert ours[key] == official[key], f"{key} differs:\n official: {official[key]}\n ours:     {ours[key]}"


def test_wsdl_is_rivtabp21_soap11_document_literal() -> None:
    summary = wsdl_summary(OUR_WSDL)
    soap = f"{{{SOAP11_NS}}}"
    ((_, soap_binding, operations),) = summary["bindings"].values()
    assert soap_binding == (
        (f"{soap}binding", (("style", "document"), ("transport", "http://schemas.xmlsoap.org/soap/http"))),
    )
    ((op_elements, inp, out),) = operations.values()
    assert dict(op_elements[0][1])["soapAction"] == f"{RESPONDER_NS}:Update"
    assert (
        f"{soap}header",
        (("message", (summary["targetNamespace"], "UpdateRequest")), ("part", "LogicalAddress"), ("use", "literal")),
    ) in inp
    assert out == ((f"{soap}body", (("use", "literal"),)),)
    request_parts = dict((p[0], p[1]) for p in summary["messages"]["UpdateRequest"])
    assert request_parts == {"LogicalAddress": (REGISTRY_NS, "LogicalAddress"), "parameters": (RESPONDER_NS, "Update")}


def test_valid_samples_cover_every_element() -> None:
    components = schema_components(OUR_RESPONDER)
    required = required_slots(components, [(RESPONDER_NS, "Update"), (RESPONDER_NS, "UpdateResponse")])
    used: set[tuple] = set()
    for sample in SAMPLES.glob("valid_*.xml"):
        doc = etree.parse(str(sample))
        assert load_schema(str(OUR_RESPONDER)).validate(doc), sample.name
        used |= used_slots(components, doc.getroot())
    missing = sorted(required - used, key=str)
    assert not missing, "element declarations never used by a valid sample:\n" + "\n".join(map(str, missing))
