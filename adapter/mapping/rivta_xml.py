"""Building record fragments with lxml, keeping the rules the national schematron checks:
no empty elements, CV rules (code => codeSystem + displayName; originalText alone)."""

from __future__ import annotations

from lxml import etree

from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Professional, Signer
from adapter.rivta.contracts import HSA_ROOT, Contract, HeaderModel

_Element = etree._Element
_SubElement = etree.SubElement
# namespace -> name -> "{namespace}name": a record is built of a few dozen names, thousands of times in an ingest
# (text() and node() are called some 60 times a record: the lookups are kept to one dict get each)
_TAGS: dict[str, dict[str, str]] = {}


class Builder:
    """Adds children in one namespace; skips None and blank text so no empty element is written."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self._tags = _TAGS.setdefault(ns, {})

    def _tag(self, name: str) -> str:
        tag = self._tags.get(name)
        if tag is None:
            tag = self._tags[name] = f"{{{self.ns}}}{name}"
        return tag

    def root(self, name: str, nsmap: dict[str | None, str]) -> _Element:
        return etree.Element(self._tag(name), nsmap=nsmap)

    def node(self, parent: _Element, name: str) -> _Element:
        return _SubElement(parent, self._tags.get(name) or self._tag(name))

    def text(self, parent: _Element, name: str, value: str | bool | int | float | None) -> _Element | None:
        if value is None:
            return None
        if value.__class__ is not str:
            value = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if not value or value.isspace():  # (what strip() would leave empty)
            return None
        el = _SubElement(parent, self._tags.get(name) or self._tag(name))
        el.text = value
        return el

    def cv(
        self,
        parent: _Element,
        name: str,
        code: str | None = None,
        code_system: str | None = None,
        display_name: str | None = None,
        original_text: str | None = None,
        field: str = "code",
    ) -> _Element | None:
        """A CVType: either a full code (code, codeSystem OID, displayName) or originalText alone."""
        if code and code_system and display_name:
            el = self.node(parent, name)
            self.text(el, "code", code)
            self.text(el, "codeSystem", code_system)
            self.text(el, "displayName", display_name)
            return el
        if code and not (code_system and display_name):
            if original_text or display_name:
                original_text = original_text or display_name
            else:
                raise MappingError(field, "a code needs a known code system and a display text")
        if original_text and original_text.strip():
            el = self.node(parent, name)
            self.text(el, "originalText", original_text)
            return el
        return None

    def ii(self, parent: _Element, name: str, root: str, extension: str | None = None) -> _Element:
        el = self.node(parent, name)
        self.text(el, "root", root)
        self.text(el, "extension", extension)
        return el


def professional(b: Builder, parent: _Element, name: str, p: Professional) -> _Element:
    el = b.node(parent, name)
    b.text(el, "authorTime", p.time)
    b.text(el, "healthcareProfessionalHSAId", p.hsa_id)
    b.text(el, "healthcareProfessionalName", p.name)
    if p.role_code:
        b.cv(el, "healthcareProfessionalRoleCode", *p.role_code)
    elif p.role_text:
        b.cv(el, "healthcareProfessionalRoleCode", original_text=p.role_text)
    if p.org_unit:
        unit = b.node(el, "healthcareProfessionalOrgUnit")
        b.text(unit, "orgUnitHSAId", p.org_unit.hsa_id)
        b.text(unit, "orgUnitName", p.org_unit.name)
    b.text(el, "healthcareProfessionalCareUnitHSAId", p.care_unit)
    b.text(el, "healthcareProfessionalCareGiverHSAId", p.care_giver)
    return el


def signer(b: Builder, parent: _Element, s: Signer | None) -> None:
    if s is None:
        return
    el = b.node(parent, "legalAuthenticator")
    b.text(el, "signatureTime", s.time)
    b.text(el, "legalAuthenticatorHSAId", s.hsa_id)
    b.text(el, "legalAuthenticatorName", s.name)


def record_root(contract: Contract) -> tuple[_Element, Builder]:
    """The record element (responder namespace) and a builder for its core-namespace content."""
    outer = Builder(contract.responder_ns)
    root = outer.root(contract.record_element, {None: contract.responder_ns, "c": contract.core_ns})
    return root, Builder(contract.core_ns)


def header(b: Builder, parent: _Element, contract: Contract, h: Header) -> _Element:
    """The record header in the contract's header model."""
    if contract.header_model is HeaderModel.JOL:
        return jol_header(b, parent, contract, h)
    el = b.node(parent, contract.header_element)
    b.text(el, "documentId", h.document_id)
    b.text(el, contract.header_source_system_element, h.source_system)
    b.text(el, "documentTitle", h.document_title)
    b.text(el, "documentTime", h.document_time)
    pid = b.node(el, "patientId")
    b.text(pid, "id", h.patient.id)
    b.text(pid, "type", h.patient.type)
    professional(b, el, "accountableHealthcareProfessional", h.author)
    signer(b, el, h.signer)
    b.text(el, "approvedForPatient", h.approved_for_patient)
    b.text(el, "careContactId", h.care_contact)
    return el


def jol_header(b: Builder, parent: _Element, contract: Contract, h: Header) -> _Element:
    """The JoL header (field rules 2.2): the access-control part, then source system, record, author, signature.

    record.id is the note's documentId as root alone (TKB: as in the earlier major versions, so that a consumer
    of several versions can drop duplicates); record.timestamp and blockComparisonTime are the documentation
    time (documentTime, else the author's time)."""
    el = b.node(parent, contract.header_element)
    time = h.document_time or h.author.time
    acl = b.node(el, "accessControlHeader")
    if h.author.care_giver:
        b.ii(acl, "accountableHealthcareProvider", HSA_ROOT, h.author.care_giver)
    if h.author.care_unit:
        b.ii(acl, "accountableCareUnit", HSA_ROOT, h.author.care_unit)
    b.ii(acl, "patientId", h.patient.type, h.patient.id)
    b.text(acl, "blockComparisonTime", time)
    b.text(acl, "approvedForPatient", h.approved_for_patient)
    b.ii(el, "sourceSystemId", HSA_ROOT, h.source_system)
    record = b.node(el, "record")
    b.ii(record, "id", h.document_id)
    b.text(record, "timestamp", time)
    p = h.author
    author = b.node(el, "author")
    if p.hsa_id:
        b.ii(author, "id", HSA_ROOT, p.hsa_id)
    b.text(author, "name", p.name)
    b.text(author, "timestamp", p.time)
    if p.role_code:
        b.cv(author, "byRole", *p.role_code)
    elif p.role_text:
        b.cv(author, "byRole", original_text=p.role_text)
    if p.org_unit:
        unit = b.node(author, "orgUnit")
        b.text(unit, "orgUnitHSAId", p.org_unit.hsa_id)
        b.text(unit, "orgUnitName", p.org_unit.name)
    if h.signer is not None:
        signature = b.node(el, "signature")
        if h.signer.hsa_id:
            b.ii(signature, "id", HSA_ROOT, h.signer.hsa_id)
        b.text(signature, "name", h.signer.name)
        b.text(signature, "timestamp", h.signer.time)
    return el


def serialise(root: _Element) -> bytes:
    return etree.tostring(root, encoding="utf-8", xml_declaration=False)
