"""Who is asking: the employee and the care provider and care unit of the assignment they logged in with."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from adapter.consumer.pdl.soap_call import sub


@dataclass(frozen=True)
class AccessingActor:
    employee_hsa_id: str
    care_provider_hsa_id: str
    care_unit_hsa_id: str


def add_accessing_actor(parent: etree._Element, responder_ns: str, core_ns: str, actor: AccessingActor) -> None:
    el = sub(parent, responder_ns, "accessingActor")
    sub(el, core_ns, "employeeId", actor.employee_hsa_id)
    sub(el, core_ns, "careProviderId", actor.care_provider_hsa_id)
    sub(el, core_ns, "careUnitId", actor.care_unit_hsa_id)


def add_patient_id(parent: etree._Element, ns: str, core_ns: str, patient_id: str, patient_type: str,
                   name: str = "patientId") -> None:
    el = sub(parent, ns, name)
    sub(el, core_ns, "root", patient_type)
    sub(el, core_ns, "extension", patient_id)
