"""FHIR URLs of the input profile (mappings/README.md explains each one).

Where EHDS-TK names a code system we use its URL; where EHDS-TK has no mapping the project
defines an extension under EXT.
"""

from typing import Any

EXT = "https://fhir.npo-adapter.org/StructureDefinition/"

# EHDS-TK code systems
DIAGNOSIS_TYPE = "https://fhir.inera.se/clinicalprocess-healthcond-description/CodeSystem/diagnosistype-cs"
KV_DIAGNOSTYP = "https://terminologitjansten.inera.se/inera-kodverksforvaltning/kodverk/kv_diagnostyp"
ASSESSMENT_CATEGORY = "https://fhir.inera.se/clinicalprocess-healthcond-description/CodeSystem/assessmentcategory-cs"
NOTE_CODE = "urn:oid:1.2.752.129.2.2.2.11"

# HL7 standard extensions
CONDITION_ASSERTED_DATE = "http://hl7.org/fhir/StructureDefinition/condition-assertedDate"

# Project extensions (no EHDS-TK mapping exists)
CHRONIC_DIAGNOSIS = EXT + "chronic-diagnosis"  # valueBoolean on Condition (EHDS-TK DIAG-001)
RELATED_DIAGNOSIS = EXT + "related-diagnosis"  # valueReference(Condition) | valueIdentifier (DIAG-002)
SIGNATURE_TIME = EXT + "signature-time"  # valueDateTime, for resources without a standard element

# --- GetCarePlans (mappings/GetCarePlans.md) ---
# EHDS-TK code system of typeOfCarePlanEnum, used in CarePlan.category
CARE_PLAN_TYPE = "https://fhir.inera.se/CodeSystem/typeofcareplan-cs"
# valueAttachment on CarePlan: one extra carePlanBody/content item (EHDS-TK CP-001, no mapping)
CARE_PLAN_CONTENT = EXT + "care-plan-content"

# --- GetFunctionalStatus (mappings/GetFunctionalStatus.md) ---
# Project code system for the five personal ADL activities of TKB Regel 2 (no national OID exists);
# codes: personlig-hygien, pa-avkladning, forflyttning, toalettbesok, fodointag
PADL_ACTIVITY = "https://fhir.npo-adapter.org/CodeSystem/padl-activity"
# HL7 extension on Observation.performer; v3-ParticipationType#LA marks the legal authenticator
PERFORMER_FUNCTION = "http://hl7.org/fhir/StructureDefinition/event-performerFunction"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

# --- GetCareDocumentation (mappings/GetCareDocumentation.md) ---
# Complex extension named by EHDS-TK (mapping-getcaredocumentation.md) on DocumentReference/Composition:
# sub-extensions opinionId (valueIdentifier), authorTime (valueDateTime), opinion (valueString),
# personId (valueIdentifier), personName (valueString). The note's signature time on DocumentReference
# uses SIGNATURE_TIME above; its note type uses NOTE_CODE.
DISSENTING_OPINION = "https://fhir.inera.se/StructureDefinition/dissenting-opinion"

# --- GetMedicationHistory (mappings/GetMedicationHistory.md) ---
# EHDS-TK code system of TypeOfPrescriptionEnum (I/U), used in MedicationRequest/MedicationStatement.category
TYPE_OF_PRESCRIPTION = "https://fhir.inera.se/CodeSystem/typeofprescription"
# valueBoolean; the URL EHDS-TK names for selfMedication (DES-008)
SELF_MEDICATION = "https://fhir.inera.se/StructureDefinition/self-medication"
# Project extensions (EHDS-TK names extensions for these but defines no URL)
PRESCRIPTION_CHAIN_ID = EXT + "prescription-chain-id"  # valueIdentifier
PRECEDING_PRESCRIPTION = EXT + "preceding-prescription"  # valueReference | valueIdentifier
SUCCEEDING_PRESCRIPTION = EXT + "succeeding-prescription"  # valueReference | valueIdentifier
PRESCRIBER = EXT + "prescriber"  # complex: practitioner (valueReference), time (valueDateTime)
EVALUATOR = EXT + "evaluator"  # complex: practitioner (valueReference), time (valueDateTime)
EVALUATION_TIME = EXT + "evaluation-time"  # valueDateTime: next planned evaluation
START_OF_FIRST_TREATMENT = EXT + "start-of-first-treatment"  # valueDateTime
# Project code system for varunummer (handelsvara); the TKB gives it the ATC OID 1.2.752.129.2.2.3.1.1
VARUNUMMER = "https://fhir.npo-adapter.org/CodeSystem/varunummer"


def extensions(resource: Any, url: str) -> list[Any]:
    return [e for e in (resource.extension or []) if e.url == url]


def extension(resource: Any, url: str) -> Any | None:
    found = extensions(resource, url)
    return found[0] if found else None
