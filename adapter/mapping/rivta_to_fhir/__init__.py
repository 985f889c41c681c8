"""RIVTA records -> FHIR R4 (fhir.resources R4B), following Inera's EHDS-TK mapping guide.

The consumer side reads producers' answers with these: one record element of a contract's response
becomes its main resource, that resource's Provenance and the PractitionerRoles it refers to. The
output profile is mappings/fhir-output.md.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from adapter.mapping.rivta_to_fhir.common import RecordError, collection_bundle
from adapter.rivta.contracts import Contract

__all__ = ["RecordError", "collection_bundle", "to_fhir"]


def to_fhir(contract: Contract, record: etree._Element) -> list[Any]:
    """One RIVTA record element (e.g. a {responder ns}diagnosis element of a GetDiagnosisResponse)
    -> R4B model instances: the main resource (Condition / MedicationStatement / CarePlan /
    Condition (functional) / DocumentReference / ...), its Provenance, then the PractitionerRoles it refers to.

    Ids are uuid5 of contract, source system and documentId, so the same record always gives the same
    resources. Raises RecordError (naming the element, never its value) for a record that cannot be read.
    """
    expected = etree.QName(contract.responder_ns, contract.record_element)
    if record.tag != expected.text:
        raise RecordError(contract.record_element, f"expected a {contract.name} record element")
    module = contract.code("mapping.rivta_to_fhir")
    if module is None:
        raise RecordError(contract.record_element, "no FHIR mapping for this contract")
    result: list[Any] = module.convert(record)
    return result
