"""Checks for the project's own schemas of the national PDL services in contracts/.

The consumer side enforces PDL through four national interactions: CheckConsent 2.0 and
RegisterExtendedConsent 2.0 (consent), CheckBlocks 4.0 (blocks) and StoreLog 2.0 (the
access log, domain informationsecurity:auditing:log, which replaces ehr:log 1.0). Their
schemas and WSDLs in contracts/ are written by this project and must define exactly the
same XML vocabularies as the national definitions in the reference pack
(../shared/reference/rivta), which are only read here, never copied.

The checks mirror test_contract_schemas.py (and reuse its helpers):

1. layout: each service folder holds exactly its Responder XSD and its WSDL;
2. equivalence with the national definitions, three ways:
   a. sample documents (tests/contracts/samples/<Service>_<version>/) get the same verdict
      from the official and from our Responder schema, matching the file name prefix;
   b. component-by-component comparison of the two schema sets;
   c. comparison of the WSDL definitions;
3. the valid samples together use every element declaration of the request and response.

Compilation, reference resolution, unique file names and "nothing copied" are covered for
every file under contracts/ by test_contract_schemas.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.contracts.test_contract_schemas import (
    CONTRACTS_DIR,
    REGISTRY_NS,
    RIVTA_DIR,
    SAMPLES_DIR,
    SOAP11_NS,
    compare_components,
    expected_verdict,
    load_schema,
    needs_reference,
    required_slots,
    schema_components,
    used_slots,
    verdict,
    wsdl_summary,
)

# (service, version, folder of the official copy under rivta/)
SERVICES = [
    ("CheckConsent", "2.0", "informationsecurity-authorization-consent/2.0"),
    ("RegisterExtendedConsent", "2.0", "informationsecurity-authorization-consent/2.0"),
    ("CheckBlocks", "4.0", "informationsecurity-authorization-blocking/4.0"),
    ("StoreLog", "2.0", "informationsecurity-auditing-log/2.0"),
]
SERVICE_IDS = [f"{name}_{version}" for name, version, _ in SERVICES]
PARAMS = [pytest.param(name, version, pack, id=f"{name}_{version}") for name, version, pack in SERVICES]


def our_responder(name: str, version: str) -> Path:
    return CONTRACTS_DIR / name / version / f"{name}Responder_{version}.xsd"


def our_wsdl(name: str, version: str) -> Path:
    return CONTRACTS_DIR / name / version / f"{name}Interaction_{version}_RIVTABP21.wsdl"


def official_responder(name: str, version: str, pack: str) -> Path:
    return RIVTA_DIR / pack / "interactions" / f"{name}Interaction" / f"{name}Responder_{version}.xsd"


def official_wsdl(name: str, version: str, pack: str) -> Path:
    return RIVTA_DIR / pack / "interactions" / f"{name}Interaction" / f"{name}Interaction_{version}_RIVTABP21.wsdl"


# ---------------------------------------------------------------------------------------
# 1. layout
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "version", "pack"), PARAMS)
def test_service_layout(name: str, version: str, pack: str) -> None:
    folder = CONTRACTS_DIR / name / version
    assert sorted(p.name for p in folder.iterdir()) == sorted([our_responder(name, version).name,
                                                               our_wsdl(name, version).name])


def test_ehr_log_is_not_used() -> None:
    """StoreLog is the informationsecurity:auditing:log 2.0 interaction; ehr:log 1.0 is superseded."""
    for path in [*CONTRACTS_DIR.rglob("*.xsd"), *CONTRACTS_DIR.rglob("*.wsdl")]:
        root = etree.parse(str(path)).getroot()
        namespaces = {root.get("targetNamespace") or "", *(ns for el in root.iter() for ns in el.nsmap.values())}
        assert not [ns for ns in namespaces if ns.startswith("urn:riv:ehr:log")], path


# ---------------------------------------------------------------------------------------
# 2a. samples: same verdict as the official schema
# ---------------------------------------------------------------------------------------
def sample_cases() -> list:
    cases = []
    for name, version, pack in SERVICES:
        for sample in sorted((SAMPLES_DIR / f"{name}_{version}").glob("*.xml")):
            cases.append(pytest.param(name, version, pack, sample, id=f"{name}_{version}/{sample.stem}"))
    return cases


@needs_reference
@pytest.mark.parametrize(("name", "version", "pack", "sample"), sample_cases())
def test_sample_same_verdict_as_official(name: str, version: str, pack: str, sample: Path) -> None:
    doc = etree.parse(str(sample))
    ours, our_errors = verdict(our_responder(name, version), doc)
    official, official_errors = verdict(official_responder(name, version, pack), doc)
    assert ours == official, f"verdicts differ: ours={ours} ({our_errors}) official={official} ({official_errors})"
    assert ours == expected_verdict(sample), f"sample is mislabelled: {our_errors or 'valid'}"


@pytest.mark.parametrize(("name", "version", "pack"), PARAMS)
def test_sample_set_complete(name: str, version: str, pack: str) -> None:
    stems = {p.stem for p in (SAMPLES_DIR / f"{name}_{version}").glob("*.xml")}
    for required in ("valid_request_minimal", "valid_request_rich", "valid_response_minimal", "valid_response_rich"):
        assert required in stems
    for kind in ("request", "response"):
        assert len([s for s in stems if s.startswith(f"invalid_{kind}_")]) >= 5, kind
    for marker in ("wrong_order", "missing", "bad_", "namespace", "unknown_element_own_namespace"):
        assert any(s.startswith("invalid_") and marker in s for s in stems), marker


# ---------------------------------------------------------------------------------------
# 2b. schema sets, component by component
# ---------------------------------------------------------------------------------------
@needs_reference
@pytest.mark.parametrize(("name", "version", "pack"), PARAMS)
def test_schema_set_equivalent_to_official(name: str, version: str, pack: str) -> None:
    official = schema_components(official_responder(name, version, pack))
    ours = schema_components(our_responder(name, version))
    problems = compare_components(official, ours)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# 2c. WSDLs
# ---------------------------------------------------------------------------------------
@needs_reference
@pytest.mark.parametrize(("name", "version", "pack"), PARAMS)
def test_wsdl_equivalent_to_official(name: str, version: str, pack: str) -> None:
    official = wsdl_summary(official_wsdl(name, version, pack))
    ours = wsdl_summary(our_wsdl(name, version))
    for key in official:
        assert ours[key] == official[key], f"{key} differs:\n official: {official[key]}\n ours:     {ours[key]}"


@pytest.mark.parametrize(("name", "version", "pack"), PARAMS)
def test_wsdl_is_rivtabp21_soap11_document_literal(name: str, version: str, pack: str) -> None:
    summary = wsdl_summary(our_wsdl(name, version))
    soap = f"{{{SOAP11_NS}}}"
    ((_, soap_binding, operations),) = summary["bindings"].values()
    assert soap_binding == (
        (f"{soap}binding", (("style", "document"), ("transport", "http://schemas.xmlsoap.org/soap/http"))),
    )
    ((op_elements, inp, out),) = operations.values()
    major = version.split(".")[0]
    action = dict(op_elements[0][1])["soapAction"]
    assert action.endswith(f"{name}Responder:{major}:{name}") and action.startswith("urn:riv:informationsecurity:")
    assert (
        f"{soap}header",
        (("message", (summary["targetNamespace"], f"{name}Request")), ("part", "LogicalAddress"), ("use", "literal")),
    ) in inp
    assert out == ((f"{soap}body", (("use", "literal"),)),)
    request_parts = dict((p[0], p[1]) for p in summary["messages"][f"{name}Request"])
    assert request_parts["LogicalAddress"] == (REGISTRY_NS, "LogicalAddress")


# ---------------------------------------------------------------------------------------
# 3. the valid samples exercise every element declaration of the messages
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "version", "pack"), PARAMS)
def test_valid_samples_cover_every_element(name: str, version: str, pack: str) -> None:
    components = schema_components(our_responder(name, version))
    responder_ns = etree.parse(str(our_responder(name, version))).getroot().get("targetNamespace")
    required = required_slots(components, [(responder_ns, name), (responder_ns, f"{name}Response")])
    used: set[tuple] = set()
    for sample in (SAMPLES_DIR / f"{name}_{version}").glob("valid_*.xml"):
        doc = etree.parse(str(sample))
        assert load_schema(str(our_responder(name, version))).validate(doc), sample.name
        used |= used_slots(components, doc.getroot())
    missing = sorted(required - used, key=str)
    assert not missing, "element declarations never used by a valid sample:\n" + "\n".join(map(str, missing))
