"""The overview as FHIR R4: a collection Bundle following EHDS-TK, one resource (plus its Provenance) per
shown record, an OperationOutcome carrying the notices and the per-source status, and, for emergency access,
the Bundle marked "break the glass" (v3-ActReason BTG)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome

from adapter.consumer.fetch import Outcome
from adapter.consumer.overview import Overview
from adapter.mapping.rivta_to_fhir import collection_bundle, to_fhir

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def to_bundle(ov: Overview) -> Any:
    resources: list[Any] = []
    for recs in ov.records.values():
        for r in recs:
            resources.extend(to_fhir(r.contract, r.element))
    issues = [{"severity": "warning", "code": "suppressed" if "spärr" in n.lower() else "informational",
               "diagnostics": n} for n in ov.notices]
    for s in ov.sources:
        if s.outcome is Outcome.FAILED:
            issues.append({"severity": "error", "code": "transient",
                           "diagnostics": f"{s.source.name}, {s.contract.name}: {s.reason}"})
    if issues:
        resources.append(OperationOutcome.model_validate({"resourceType": "OperationOutcome", "id": "overview-notices",
                                                          "issue": issues}))
    bundle = collection_bundle(resources)
    if ov.emergency:
        bundle.meta = {"security": [{"system": ACT_REASON, "code": "BTG", "display": "break the glass"}]}
        bundle = type(bundle).model_validate(bundle.model_dump())
    return bundle
