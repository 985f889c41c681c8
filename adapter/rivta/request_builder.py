"""Building contract requests (used by the consumer, the contract suite and the tests)."""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from adapter.rivta.contracts import HSA_ROOT, REGISTRY_NS, SOAP_NS, Contract, IdForm


def build_request(
    contract: Contract,
    logical_address: str | None,
    patient_id: str,
    patient_type: str = "1.2.752.129.2.1.3.1",
    *,
    period: tuple[str | None, str | None] | None = None,
    care_units: Sequence[str] = (),
    care_givers: Sequence[str] = (),
    source_system: str | None = None,
    care_contacts: Sequence[str] = (),
    prescription_chain: tuple[str, str | None] | None = None,
    prescription_status: str | None = None,
    has_more_reference: str | None = None,
    encoding: str = "UTF-8",
) -> bytes:
    """A request in the contract's own form (IITypes or strings for ids, its element names); filters the
    contract does not have are left out."""
    r, c = contract.responder_ns, contract.core_ns
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "itr": REGISTRY_NS, "r": r, "c": c})
    header = etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    if logical_address is not None:
        etree.SubElement(header, f"{{{REGISTRY_NS}}}LogicalAddress").text = logical_address
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    req = etree.SubElement(body, f"{{{r}}}{contract.name}")

    def add(parent: etree._Element, ns: str, name: str, text: str | None) -> None:
        if text is not None:
            etree.SubElement(parent, f"{{{ns}}}{name}").text = text

    ii = contract.id_form is IdForm.II

    def hsa(name: str, value: str | None) -> None:
        if value is None:
            return
        if ii:
            el = etree.SubElement(req, f"{{{r}}}{name}")
            add(el, c, "root", HSA_ROOT)
            add(el, c, "extension", value)
        else:
            add(req, r, name, value)

    for unit in care_units:
        hsa(contract.care_unit_element, unit)
    if contract.has_care_giver_filter:
        for giver in care_givers:
            hsa(contract.care_giver_element, giver)
    pid = etree.SubElement(req, f"{{{r}}}patientId")
    if ii:
        add(pid, c, "root", patient_type)
        add(pid, c, "extension", patient_id)
    else:
        add(pid, c, "id", patient_id)
        add(pid, c, "type", patient_type)
    if period is not None:
        p = etree.SubElement(req, f"{{{r}}}{contract.period_element}")
        add(p, c, "start", period[0])
        add(p, c, "end", period[1])
    hsa(contract.source_system_element, source_system)
    if contract.has_care_contact_filter:
        for contact in care_contacts:
            add(req, r, "careContactId", contact)
    if contract.has_prescription_filters:
        if prescription_chain is not None:
            chain = etree.SubElement(req, f"{{{r}}}prescriptionChainId")
            add(chain, c, "root", prescription_chain[0])
            add(chain, c, "extension", prescription_chain[1])
        add(req, r, "prescriptionStatus", prescription_status)
    if contract.has_more:
        add(req, r, "hasMoreReference", has_more_reference)
    return etree.tostring(env, xml_declaration=True, encoding=encoding)
