"""One declarative description per service contract.

The producer, the consumer, the engagement-index sender and the contract suite all read
these descriptions; adding a contract version means adding one entry here plus its mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
REGISTRY_NS = "urn:riv:itintegration:registry:1"

HEALTHCOND_CORE = "urn:riv:clinicalprocess:healthcond:description:2"
ACTOUTCOME_CORE = "urn:riv:clinicalprocess:activityprescription:actoutcome:2"
LOGISTICS_CORE = "urn:riv:clinicalprocess:logistics:logistics:3"


class DateRule(StrEnum):
    """How a request's date period selects records (TKB field rules)."""

    ANY_TIME_WITHIN = "any-time-within"  # any of the listed record times lies in [start, end]
    OVERLAP = "overlap"  # the record's [start, end?] interval overlaps [start?, end?]


@dataclass(frozen=True)
class Interaction:
    """A RIVTA BP 2.1 service interaction: names, namespaces, URL path and schema files all follow from the
    interaction's name, version and service domain (the national naming rules)."""

    name: str  # e.g. "GetDiagnosis", "CheckConsent"
    version: str  # e.g. "2.0"
    domain: str  # e.g. "clinicalprocess:healthcond:description"
    core_ns: str

    @property
    def major(self) -> str:
        return self.version.split(".")[0]

    @property
    def responder_ns(self) -> str:
        return f"urn:riv:{self.domain}:{self.name}Responder:{self.major}"

    @property
    def soap_action(self) -> str:
        return f"{self.responder_ns}:{self.name}"

    @property
    def url_path(self) -> str:
        """The platform's URL pattern, e.g. /clinicalprocess/healthcond/description/GetDiagnosis/2/rivtabp21."""
        return "/" + self.domain.replace(":", "/") + f"/{self.name}/{self.major}/rivtabp21"

    @property
    def request_tag(self) -> str:
        return f"{{{self.responder_ns}}}{self.name}"

    @property
    def response_element(self) -> str:
        return f"{self.name}Response"

    @property
    def response_tag(self) -> str:
        return f"{{{self.responder_ns}}}{self.response_element}"

    @property
    def folder(self) -> Path:
        return CONTRACTS_DIR / self.name / self.version

    @property
    def responder_xsd(self) -> Path:
        return self.folder / f"{self.name}Responder_{self.version}.xsd"

    @property
    def wsdl(self) -> Path:
        return self.folder / f"{self.name}Interaction_{self.version}_RIVTABP21.wsdl"


@dataclass(frozen=True)
class Contract(Interaction):
    """An NPÖ read contract the producer serves: its record element and the request-filter semantics."""

    record_element: str = ""  # repeated element in the response, e.g. "diagnosis"
    header_element: str = ""  # e.g. "diagnosisHeader"
    body_element: str = ""
    # request element names (GetCareDocumentation 2 spells some with a lower-case "id")
    period_element: str = "datePeriod"
    care_unit_element: str = "careUnitHSAId"
    source_system_element: str = "sourceSystemHSAId"
    date_rule: DateRule = DateRule.ANY_TIME_WITHIN
    # names of the record times that the date filter looks at (ANY_TIME_WITHIN)
    filter_times: tuple[str, ...] = ()
    # engagement index
    ei_service_domain: str = ""
    ei_categorizations: tuple[str, ...] = ()
    has_care_giver_filter: bool = False  # GetMedicationHistory only
    has_prescription_filters: bool = False  # GetMedicationHistory only
    soap_action_override: str = ""
    # element names that must never appear in a record of this contract (TKB 0..0, schematron)
    forbidden: tuple[str, ...] = ("nullified", "nullifiedReason")
    # GetCareDocumentation 2.1 takes `result` (and its children) from the 2.1 extension namespace
    result_ns_override: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}:{self.major}"

    @property
    def soap_action(self) -> str:
        return self.soap_action_override or super().soap_action

    @property
    def result_ns(self) -> tuple[str, str]:
        """Namespaces of the `result` element and of its children."""
        if self.result_ns_override:
            return self.result_ns_override, self.result_ns_override
        return self.responder_ns, self.core_ns


_HC = "clinicalprocess:healthcond:description"

GET_DIAGNOSIS = Contract(
    name="GetDiagnosis",
    version="2.0",
    domain=_HC,
    core_ns=HEALTHCOND_CORE,
    record_element="diagnosis",
    header_element="diagnosisHeader",
    body_element="diagnosisBody",
    period_element="timePeriod",
    filter_times=("authorTime", "signatureTime", "diagnosisTime"),
    forbidden=("nullified", "nullifiedReason", "documentTitle", "documentTime"),
    ei_service_domain=f"riv:{_HC}",
    ei_categorizations=("dia",),
)

GET_FUNCTIONAL_STATUS = Contract(
    name="GetFunctionalStatus",
    version="2.0",
    domain=_HC,
    core_ns=HEALTHCOND_CORE,
    record_element="functionalStatusAssessment",
    header_element="functionalStatusAssessmentHeader",
    body_element="functionalStatusAssessmentBody",
    filter_times=("documentTime",),
    forbidden=("nullified", "nullifiedReason", "documentTitle", "codeSystemName", "codeSystemVersion"),
    ei_service_domain=f"riv:{_HC}",
    ei_categorizations=("pad-pad", "fun-fun"),
)

GET_CARE_DOCUMENTATION = Contract(
    name="GetCareDocumentation",
    version="2.1",
    domain=_HC,
    core_ns=HEALTHCOND_CORE,
    record_element="careDocumentation",
    header_element="careDocumentationHeader",
    body_element="careDocumentationBody",
    period_element="timePeriod",
    care_unit_element="careUnitHSAid",
    source_system_element="sourceSystemHSAid",
    result_ns_override="urn:riv:clinicalprocess:healthcond:description:2.1",
    filter_times=("documentTime", "authorTime", "signatureTime", "dissentingOpinionTime"),
    forbidden=("nullified", "nullifiedReason", "clinicalDocumentTypeCode"),
    ei_service_domain=f"riv:{_HC}",
    ei_categorizations=("voo",),
)

_AA = "clinicalprocess:activityprescription:actoutcome"

GET_MEDICATION_HISTORY = Contract(
    name="GetMedicationHistory",
    version="2.2",
    domain=_AA,
    core_ns=ACTOUTCOME_CORE,
    record_element="medicationMedicalRecord",
    header_element="medicationMedicalRecordHeader",
    body_element="medicationMedicalRecordBody",
    date_rule=DateRule.OVERLAP,
    forbidden=("nullified", "nullifiedReason", "documentTime", "relation"),
    ei_service_domain=f"riv:{_AA}",
    ei_categorizations=("caa-gmh",),
    has_care_giver_filter=True,
    has_prescription_filters=True,
)

GET_CARE_PLANS = Contract(
    name="GetCarePlans",
    version="2.0",
    domain="clinicalprocess:logistics:logistics",
    # The national WSDL's soapAction omits the second "logistics".
    soap_action_override="urn:riv:clinicalprocess:logistics:GetCarePlansResponder:2:GetCarePlans",
    core_ns=LOGISTICS_CORE,
    record_element="carePlan",
    header_element="carePlanHeader",
    body_element="carePlanBody",
    filter_times=("documentTime",),
    ei_service_domain="riv:clinicalprocess:logistics:logistics",
    ei_categorizations=("cll-cp",),
)

CONTRACTS: tuple[Contract, ...] = (
    GET_DIAGNOSIS,
    GET_MEDICATION_HISTORY,
    GET_CARE_PLANS,
    GET_FUNCTIONAL_STATUS,
    GET_CARE_DOCUMENTATION,
)

BY_NAME: dict[str, Contract] = {c.name: c for c in CONTRACTS}
BY_PATH: dict[str, Contract] = {c.url_path: c for c in CONTRACTS}
