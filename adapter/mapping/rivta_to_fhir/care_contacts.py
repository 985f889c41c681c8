"""GetCareContacts 3.0 `careContact` record -> Encounter (mappings/GetCareContacts.md), and the contract's own
TKB rules that its schema cannot say.

EHDS-TK names an Encounter profile for care contacts but its mapping is not in the material (its open issues
CC-001 to CC-003 name the gaps), so the Encounter is the inverse of the input profile: careContactCode -> type (and
class), careContactStatus -> status, careContactTimePeriod -> period, careContactReason -> reasonCode.text,
careContactOrgUnit -> serviceProvider, the accountable professional -> participant (primary performer).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from adapter.mapping.fhir_to_rivta.care_contacts import (
    CONTACT_TYPE,
    CONTACT_TYPES,
    FHIR_STATUS,
    SNOMED_SE,
    STATUS_CODES,
)
from adapter.mapping.rivta_to_fhir.common import (
    DATA_ABSENT,
    EHDS_TK,
    HSA_SYSTEM,
    Json,
    Node,
    Output,
    concept,
    read_header,
)
from adapter.rivta.contracts import GET_CARE_CONTACTS as CONTRACT
from adapter.rivta.contracts import Contract

# EHDS-TK names IneraEHDSEncounter for GetCareContacts (its mapping overview); the profile's definition and its
# mapping page are not in the material this project works from.
PROFILES = [EHDS_TK + "inera-ehds-encounter"]
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# KV Vårdkontakttyp -> Encounter.class (v3-ActCode)
TYPE_TO_CLASS = {"1": ("AMB", "ambulatory"), "2": ("VR", "virtual"), "3": ("IMP", "inpatient encounter"),
                 "4": ("SS", "short stay")}
# careContactStatus -> Encounter.status: the inverse of the input profile, plus the three codes FHIR R4 has no
# status of its own for (avbruten: it began and ended; makulerad: entered in error; väntelista: not yet booked).
SNOMED_TO_STATUS = {code: status for status, code in FHIR_STATUS.items() if status not in ("arrived", "triaged")}
SNOMED_TO_STATUS.update({"53661000052105": "finished", "53691000052102": "entered-in-error",
                         "53701000052102": "planned"})


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    header = read_header(record, CONTRACT)
    body = record.required(CONTRACT.body_element)
    out = Output(CONTRACT, header)
    period = body.child("careContactTimePeriod")
    code = body.child("careContactCode")
    contact_type = (code.text("code") or "").strip() if code is not None else ""
    reason = body.text("careContactReason")

    encounter = {
        "resourceType": "Encounter",
        "id": out.id,
        "meta": out.meta(PROFILES),
        "identifier": [out.identifier()],
        "status": _status(body.child("careContactStatus")),
        "class": _class(contact_type),
        "type": [concept(code, text_fallback=False)],
        "subject": out.subject(),
        "participant": _participants(out, header.author),
        "period": {"start": period.time("start"), "end": period.time("end")} if period is not None else None,
        "reasonCode": [{"text": reason.strip()}] if reason else None,
        "serviceProvider": _unit(body.child("careContactOrgUnit")),
    }
    return out.finish(encounter)


def _status(node: Node | None) -> str:
    code = (node.text("code") or "").strip() if node is not None else ""
    return SNOMED_TO_STATUS.get(code, "unknown")


def _class(contact_type: str) -> Json:
    if contact_type in TYPE_TO_CLASS:
        code, display = TYPE_TO_CLASS[contact_type]
        return {"system": ACT_CODE, "code": code, "display": display}
    # Encounter.class is 1..1; "Annan" or no code says nothing about the setting.
    return {"extension": [{"url": DATA_ABSENT, "valueCode": "unknown"}]}


def _participants(out: Output, author: Any) -> list[Json] | None:
    ref = out.role_ref(author)
    if ref is None:
        return None
    return [{"type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": "PPRF", "display": "primary performer"}]}],
             "individual": ref}]


def _unit(node: Node | None) -> Json | None:
    if node is None:
        return None
    hsa_id = (node.text("orgUnitHSAId") or "").strip()
    name = node.text("orgUnitName")
    if not hsa_id and not name:
        return None
    return {"type": "Organization", "identifier": {"system": HSA_SYSTEM, "value": hsa_id} if hsa_id else None,
            "display": name}


# -- the date filter's view of a record (the contract suite's oracle) -------------------------------------------
def period(el: etree._Element, contract: Contract) -> tuple[str | None, str | None]:
    """The days the TKB's datePeriod rule sees, read from the record: from the earliest to the latest of
    authorTime, careContactTimePeriod.start and .end; open towards the future without an end, towards the past
    without a start (as fhir_to_rivta/care_contacts.py stores it for the query)."""
    ns = {"c": contract.core_ns}
    times = [t.strip()[:8] for t in el.xpath(
        "c:careContactHeader/c:accountableHealthcareProfessional/c:authorTime/text() | "
        "c:careContactBody/c:careContactTimePeriod/c:start/text() | "
        "c:careContactBody/c:careContactTimePeriod/c:end/text()", namespaces=ns) if t.strip()]
    has = {etree.QName(e).localname for e in el.iterfind("c:careContactBody/c:careContactTimePeriod/*", ns)}
    if not times:
        return None, None
    if not has:  # no contact time: authorTime alone forms the interval
        return min(times), max(times)
    return (min(times) if "start" in has else None, max(times) if "end" in has else None)


# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    kind = first(f"{body}/c:careContactCode/c:displayName", f"{body}/c:careContactCode/c:originalText") or "Vårdkontakt"
    reason = first(f"{body}/c:careContactReason")
    unit = first(f"{body}/c:careContactOrgUnit/c:orgUnitName")
    status = first(f"{body}/c:careContactStatus/c:displayName", f"{body}/c:careContactStatus/c:originalText")
    text = kind + (f": {reason}" if reason else "") + (f", {unit}" if unit else "") + (f" ({status})" if status else "")
    return text, first(f"{body}/c:careContactTimePeriod/c:start", f"{body}/c:careContactTimePeriod/c:end")


# -- the contract's own rules (TKB GetCareContacts 3.0, field rules and Övriga regler) -----------------------
def rules(el: etree._Element, contract: Contract) -> list[str]:
    ns = {"c": contract.core_ns}
    out = []
    h = el.find(f"c:{contract.header_element}", ns)
    body = el.find(f"c:{contract.body_element}", ns)
    prof_unit = h.find("c:accountableHealthcareProfessional/c:healthcareProfessionalOrgUnit", ns) if h is not None \
        else None
    if not _unit_complete(prof_unit, ns):
        out.append("healthcareProfessionalOrgUnit with orgUnitHSAId and orgUnitName missing (Regel 4)")
    if body is None:
        return out
    if not _unit_complete(body.find("c:careContactOrgUnit", ns), ns):
        out.append("careContactOrgUnit with orgUnitHSAId and orgUnitName missing (Regel 5)")
    period = body.find("c:careContactTimePeriod", ns)
    if period is not None and period.find("c:start", ns) is None and period.find("c:end", ns) is None:
        out.append("careContactTimePeriod needs start or end")
    out.extend(_coded(body.find("c:careContactCode", ns), ns, "careContactCode", CONTACT_TYPE, set(CONTACT_TYPES)))
    out.extend(_coded(body.find("c:careContactStatus", ns), ns, "careContactStatus", SNOMED_SE, set(STATUS_CODES)))
    info = body.find("c:additionalPatientInformation", ns)
    if info is not None:
        gender = info.find("c:gender", ns)
        if gender is not None:
            if gender.find("c:originalText", ns) is not None:
                out.append("gender: originalText must not be given")
            if gender.find("c:code", ns) is None:
                out.append("gender: code, codeSystem and displayName are required")
        born = info.find("c:dateOfBirth", ns)
        if born is not None:
            fmt = (born.findtext("c:format", namespaces=ns) or "").strip()
            value = (born.findtext("c:value", namespaces=ns) or "").strip()
            if len(fmt) != len(value):
                out.append("dateOfBirth: value does not follow its format")
    return out


def _unit_complete(unit: etree._Element | None, ns: dict[str, str]) -> bool:
    return unit is not None and all((unit.findtext(f"c:{name}", namespaces=ns) or "").strip()
                                    for name in ("orgUnitHSAId", "orgUnitName"))


def _coded(cv: etree._Element | None, ns: dict[str, str], name: str, system: str, known: set[str]) -> list[str]:
    if cv is None or cv.find("c:code", ns) is None:
        return []
    out = []
    if (cv.findtext("c:codeSystem", namespaces=ns) or "").strip() != system:
        out.append(f"{name}: codeSystem is not the one the TKB names")
    elif (cv.findtext("c:code", namespaces=ns) or "").strip() not in known:
        out.append(f"{name}: code not in the code system's value set")
    return out

