"""Consent (samtycke) and emergency access (nödåtkomst) through the national consent service
(informationsecurity:authorization:consent 2.0): CheckConsent and RegisterExtendedConsent.

Logical address: CheckConsent goes to the HSA-id of the accessing actor's care provider,
RegisterExtendedConsent to the care provider the assertion is for (contract WSDLs).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx
from lxml import etree

from adapter.consumer.pdl.actor import AccessingActor, add_accessing_actor, add_patient_id
from adapter.consumer.pdl.services import CHECK_CONSENT, CONSENT_NS, PERSONNUMMER, REGISTER_EXTENDED_CONSENT
from adapter.consumer.pdl.soap_call import call, require_success, result_code, sub, xml_datetime

AssertionType = Literal["Consent", "Emergency"]
NATIONAL_LEVEL = "NationalLevel"  # the only scope the contract has


@dataclass(frozen=True)
class ConsentDecision:
    has_consent: bool
    assertion_type: AssertionType | None  # why access is allowed; None without consent
    result_code: str  # OK or INFO

    @property
    def emergency(self) -> bool:
        return self.has_consent and self.assertion_type == "Emergency"


async def check_consent(client: httpx.AsyncClient, url: str, logical_address: str, actor: AccessingActor,
                        patient_id: str, patient_type: str = PERSONNUMMER) -> ConsentDecision:
    """Is there a valid consent or emergency assertion for this actor (care unit or employee) and patient?"""
    svc = CHECK_CONSENT
    req = etree.Element(svc.request_tag, nsmap={"r": svc.responder_ns, "c": CONSENT_NS})
    add_accessing_actor(req, svc.responder_ns, CONSENT_NS, actor)
    add_patient_id(req, svc.responder_ns, CONSENT_NS, patient_id, patient_type)
    answer = await call(client, url, svc, logical_address, req)
    check = answer.find(f"{{{svc.responder_ns}}}checkResult")
    result = check.find(f"{{{CONSENT_NS}}}result")
    code = result_code(result, CONSENT_NS)
    require_success(svc, code, result, CONSENT_NS)
    has_consent = check.findtext(f"{{{CONSENT_NS}}}hasConsent").strip() in ("true", "1")
    kind = check.findtext(f"{{{CONSENT_NS}}}assertionType")
    return ConsentDecision(has_consent, kind.strip() if has_consent and kind else None, code)  # type: ignore[arg-type]


async def register_consent(client: httpx.AsyncClient, url: str, logical_address: str, actor: AccessingActor,
                           patient_id: str, *, emergency: bool, reason: str | None, valid_until: datetime | None,
                           for_employee_only: bool = False, patient_type: str = PERSONNUMMER,
                           valid_from: datetime | None = None, assertion_id: str | None = None) -> str:
    """Register the patient's consent (or, with `emergency`, an emergency assertion) for the actor's care unit -
    or for the actor alone with `for_employee_only` - and return the assertion id.

    The actor both requested and registered the assertion. Without `valid_from` it starts at registration;
    without `valid_until` it lasts until cancelled."""
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ValueError("valid_until must be after valid_from")
    svc = REGISTER_EXTENDED_CONSENT
    r, c = svc.responder_ns, CONSENT_NS
    assertion_id = assertion_id or str(uuid.uuid4())
    req = etree.Element(svc.request_tag, nsmap={"r": r, "c": c})
    sub(req, r, "assertionId", assertion_id)
    sub(req, r, "assertionType", "Emergency" if emergency else "Consent")
    sub(req, r, "scope", NATIONAL_LEVEL)
    add_patient_id(req, r, c, patient_id, patient_type)
    sub(req, r, "careProviderId", actor.care_provider_hsa_id)
    sub(req, r, "careUnitId", actor.care_unit_hsa_id)
    if for_employee_only:
        sub(req, r, "employeeId", actor.employee_hsa_id)
    if valid_from is not None:
        sub(req, r, "startDate", xml_datetime(valid_from))
    if valid_until is not None:
        sub(req, r, "endDate", xml_datetime(valid_until))
    now = xml_datetime(datetime.now(UTC))
    action = sub(req, r, "registrationAction")
    sub(action, c, "requestDate", now)
    sub(sub(action, c, "requestedBy"), c, "employeeId", actor.employee_hsa_id)
    sub(action, c, "registrationDate", now)
    sub(sub(action, c, "registeredBy"), c, "employeeId", actor.employee_hsa_id)
    if reason:
        sub(action, c, "reasonText", reason)
    answer = await call(client, url, svc, logical_address, req)
    result = answer.find(f"{{{r}}}result")
    require_success(svc, result_code(result, c), result, c)
    return assertion_id
