"""One declarative description per service contract: the registry.

The producer, the consumer, the engagement-index sender, the FHIR intake and the contract suite all read
these descriptions; adding a contract version means adding one entry to CONTRACTS plus the modules its
`module` slug names:

- adapter/mapping/fhir_to_rivta/<module>.py  MAPS: which FHIR resources publish records of the contract
- adapter/mapping/rivta_to_fhir/<module>.py  convert (record -> FHIR), summary (for people: the
                                             record's whole text and its date; views shorten it) and,
                                             optionally, rules (what the schema cannot say)
- adapter/demo/<module>.py                   resources (demo data), optional

A contract is keyed by name and major version (`Contract.key`, e.g. "GetCareDocumentation:3"), as the
platform keys it by its responder namespace: two versions of one contract are served side by side.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import ModuleType

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
REGISTRY_NS = "urn:riv:itintegration:registry:1"

HEALTHCOND_CORE = "urn:riv:clinicalprocess:healthcond:description:2"
ACTOUTCOME_CORE = "urn:riv:clinicalprocess:activityprescription:actoutcome:2"
LOGISTICS_CORE = "urn:riv:clinicalprocess:logistics:logistics:3"
HEALTHCOND_CORE_3 = "urn:riv:clinicalprocess:healthcond:description:3"
HSA_ROOT = "1.2.752.129.2.1.4.1"  # IIType root of HSA-ids (care units, care givers, source systems, people)


class DateRule(StrEnum):
    """How a request's date period selects records (TKB field rules)."""

    ANY_TIME_WITHIN = "any-time-within"  # any of the listed record times lies in [start, end]
    OVERLAP = "overlap"  # the record's [start, end?] interval overlaps [start?, end?]


class HeaderModel(StrEnum):
    """Which record header a contract's records carry."""

    PATIENT_SUMMARY = "patient-summary"  # <x>Header: documentId, sourceSystemHSAId, patientId (id, type), ...
    JOL = "jol"  # header: accessControlHeader, sourceSystemId, record, author, signature (IITypes)


class IdForm(StrEnum):
    """How a request writes patients, care units, care givers and source systems."""

    STRING = "string"  # patientId (id, type) and HSA-ids as text
    II = "ii"  # IITypes: patientId (root = type OID, extension = id), HSA-ids as root HSA_ROOT + extension


class ResultModel(StrEnum):
    """What a response's `result` holds."""

    LOG_ID = "log-id"  # resultCode, errorCode (INVALID_REQUEST), logId, message
    TEXT = "text"  # resultCode and resultText only (a logical error is ERROR + resultText)


@dataclass(frozen=True)
class RecordPaths:
    """Where a record's identity and access-control facts live: XPaths relative to the record element,
    prefix `c:` = the contract's core namespace; the first non-empty match counts."""

    document_id: tuple[str, ...]
    source_system: tuple[str, ...]
    patient_id: tuple[str, ...]
    patient_type: tuple[str, ...]
    care_unit: tuple[str, ...]
    care_giver: tuple[str, ...]
    author_time: tuple[str, ...]
    unit_name: tuple[str, ...]
    approved_for_patient: tuple[str, ...]
    author_name: tuple[str, ...]
    author_role: tuple[str, ...]  # the role's display name, else its original text


@functools.cache  # `Contract.paths` is read for every record of every answer
def _patient_summary_paths(header: str, source_system: str) -> RecordPaths:
    h, prof = f"c:{header}", f"c:{header}/c:accountableHealthcareProfessional"
    return RecordPaths(
        document_id=(f"{h}/c:documentId",),
        source_system=(f"{h}/c:{source_system}",),
        patient_id=(f"{h}/c:patientId/c:id",),
        patient_type=(f"{h}/c:patientId/c:type",),
        care_unit=(f"{prof}/c:healthcareProfessionalCareUnitHSAId",),
        care_giver=(f"{prof}/c:healthcareProfessionalCareGiverHSAId",),
        author_time=(f"{prof}/c:authorTime",),
        unit_name=(f"{prof}/c:healthcareProfessionalOrgUnit/c:orgUnitName",),
        approved_for_patient=(f"{h}/c:approvedForPatient",),
        author_name=(f"{prof}/c:healthcareProfessionalName",),
        author_role=(f"{prof}/c:healthcareProfessionalRoleCode/c:displayName",
                     f"{prof}/c:healthcareProfessionalRoleCode/c:originalText"),
    )


@functools.cache
def _jol_paths(header: str) -> RecordPaths:
    h, acl = f"c:{header}", f"c:{header}/c:accessControlHeader"
    return RecordPaths(
        # TKB: record.id carries the earlier major versions' documentId as root, without extension
        document_id=(f"{h}/c:record/c:id/c:root",),
        source_system=(f"{h}/c:sourceSystemId/c:extension",),
        patient_id=(f"{acl}/c:patientId/c:extension",),
        patient_type=(f"{acl}/c:patientId/c:root",),
        care_unit=(f"{acl}/c:accountableCareUnit/c:extension",),
        care_giver=(f"{acl}/c:accountableHealthcareProvider/c:extension",),
        # author is 0..1: the record's own time stands in
        author_time=(f"{h}/c:author/c:timestamp", f"{h}/c:record/c:timestamp"),
        unit_name=(f"{h}/c:author/c:orgUnit/c:orgUnitName",),
        approved_for_patient=(f"{acl}/c:approvedForPatient",),
        author_name=(f"{h}/c:author/c:name",),
        author_role=(f"{h}/c:author/c:byRole/c:displayName", f"{h}/c:author/c:byRole/c:originalText"),
    )


@dataclass(frozen=True)
class ContentCase:
    """A contract's own content case of the certification suite (family 5): the declared patients' answers hold
    at least one record matching `xpath` (prefix c: = the contract's core namespace)."""

    number: str  # the official TF number, e.g. "5.3"
    title: str
    description: str
    xpath: str
    what: str  # what the record shows, e.g. "a dose given", for the case's message


@dataclass(frozen=True)
class Interaction:
    """A RIVTA BP 2.1 service interaction: names, namespaces, URL path and schema files all follow from the
    interaction's name, version and service domain (the national naming rules)."""

    name: str  # e.g. "GetDiagnosis", "CheckConsent"
    version: str  # e.g. "2.0"
    domain: str  # e.g. "clinicalprocess:healthcond:description"
    core_ns: str

    @functools.cached_property
    def major(self) -> str:
        return self.version.split(".")[0]

    @functools.cached_property
    def responder_ns(self) -> str:
        return f"urn:riv:{self.domain}:{self.name}Responder:{self.major}"

    @functools.cached_property
    def soap_action(self) -> str:
        return f"{self.responder_ns}:{self.name}"

    @functools.cached_property
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
    # the request's period may leave out start or end (actoutcome DatePeriodType; logistics and healthcond: both 1..1)
    period_open_ends: bool = False
    # names of the record times that the date filter looks at (ANY_TIME_WITHIN)
    filter_times: tuple[str, ...] = ()
    # where those times are in a record (XPaths, prefix c:); empty: every element named like one of them
    filter_time_paths: tuple[str, ...] = ()
    # engagement index
    ei_service_domain: str = ""
    ei_categorizations: tuple[str, ...] = ()
    has_care_giver_filter: bool = False  # GetMedicationHistory, GetCareDocumentation 3
    has_care_contact_filter: bool = True  # request careContactId (GetCareDocumentation 3 has none)
    has_prescription_filters: bool = False  # GetMedicationHistory only
    soap_action_override: str = ""
    # the record header's spelling of its source system (GetCareDocumentation 2.1: "sourceSystemHSAid")
    header_source_system_element: str = "sourceSystemHSAId"
    # element names that must never appear in a record of this contract (TKB 0..0, schematron)
    forbidden: tuple[str, ...] = ("nullified", "nullifiedReason")
    # GetCareDocumentation 2.1 takes `result` (and its children) from the 2.1 extension namespace
    result_ns_override: str = ""
    module: str = ""  # the slug naming the contract's code (see the module docstring)
    label: str = ""  # the information type's tab on the staff page and in `overview`
    block_kind: str | None = None  # the kind of information a CheckBlocks block may leave out ("lak", "upp")
    suite_cases: tuple[ContentCase, ...] = ()
    suite_note: str = ""  # shown in the suite report, e.g. where the contract's cases come from
    # -- what varies between the patient-summary contracts and the JoL-header contract (GetCareDocumentation 3)
    header_model: HeaderModel = HeaderModel.PATIENT_SUMMARY  # where record facts live: see `paths`
    id_form: IdForm = IdForm.STRING  # how a request writes patients and HSA-ids
    care_giver_element: str = "careGiverHSAId"  # the request's care-giver filter (with has_care_giver_filter)
    result_model: ResultModel = ResultModel.LOG_ID
    # TKB partial answers: the response may hold hasMore (logicalAddress, reference), the request hasMoreReference
    has_more: bool = False

    @functools.cached_property
    def key(self) -> str:
        return f"{self.name}:{self.major}"

    @property
    def title(self) -> str:
        """How people read the contract: "GetCareDocumentation 3.0"."""
        return f"{self.name} {self.version}"

    def code(self, part: str) -> ModuleType | None:
        """The contract's module in `part` ("mapping.fhir_to_rivta", "mapping.rivta_to_fhir", "demo"), by the
        naming convention above; None when the contract has none there."""
        name = f"adapter.{part}.{self.module}"
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                return None
            raise

    @functools.cached_property
    def soap_action(self) -> str:
        return self.soap_action_override or super().soap_action

    @property
    def result_ns(self) -> tuple[str, str]:
        """Namespaces of the `result` element and of its children."""
        if self.result_ns_override:
            return self.result_ns_override, self.result_ns_override
        return self.responder_ns, self.core_ns

    @property
    def paths(self) -> RecordPaths:
        if self.header_model is HeaderModel.JOL:
            return _jol_paths(self.header_element)
        return _patient_summary_paths(self.header_element, self.header_source_system_element)


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
    module="diagnosis",
    label="Diagnoser",
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
    module="functional_status",
    label="Funktionstillstånd & ADL",
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
    header_source_system_element="sourceSystemHSAid",
    result_ns_override="urn:riv:clinicalprocess:healthcond:description:2.1",
    filter_times=("documentTime", "authorTime", "signatureTime", "dissentingOpinionTime"),
    forbidden=("nullified", "nullifiedReason", "clinicalDocumentTypeCode"),
    ei_service_domain=f"riv:{_HC}",
    ei_categorizations=("voo",),
    module="care_documentation",
    label="Anteckningar",
)

GET_CARE_DOCUMENTATION_3 = Contract(
    name="GetCareDocumentation",
    version="3.0",
    domain=_HC,
    core_ns=HEALTHCOND_CORE_3,
    record_element="careDocumentation",
    header_element="header",
    body_element="body",
    period_element="datePeriod",
    care_unit_element="careUnit",
    source_system_element="sourceSystemId",
    header_model=HeaderModel.JOL,
    id_form=IdForm.II,
    has_care_giver_filter=True,
    care_giver_element="healthcareProvider",
    has_care_contact_filter=False,
    result_model=ResultModel.TEXT,
    has_more=True,
    # TKB 3.0.5 datePeriod: record.timestamp, author.timestamp, signature.timestamp, dissentingOpinion.authorTime
    filter_times=("recordTime", "authorTime", "signatureTime", "dissentingOpinionTime"),
    filter_time_paths=("c:header/c:record/c:timestamp", "c:header/c:author/c:timestamp",
                       "c:header/c:signature/c:timestamp", "c:body/c:dissentingOpinion/c:authorTime"),
    forbidden=(),
    ei_service_domain=f"riv:{_HC}",
    ei_categorizations=("voo",),
    module="care_documentation_v3",
    label="Anteckningar",
    # the official suite (TK-testsvit GetCareDocumentation 3.0), family 5; 5.15 DocBook-extended is manual and
    # 5.18 Delsvar belongs to every contract with hasMore (adapter/suite/cases/paging.py)
    suite_cases=(
        ContentCase("5.1", "signed", "En signerad post / a signed record (signature)",
                    "c:header/c:signature/c:timestamp", "a signature"),
        ContentCase("5.2", "unsigned", "En osignerad post / an unsigned record (no signature)",
                    "not(c:header/c:signature)", "no signature"),
        ContentCase("5.4", "DissentingOpinion", "Avvikande åsikt / a dissenting opinion",
                    "c:body/c:dissentingOpinion/c:opinion", "a dissenting opinion"),
        *(ContentCase(number, f"ClinicalDocumentNoteCode_{title}", f"Anteckningstyp {code} ({title})",
                      f"c:body/c:clinicalDocumentNoteCode[normalize-space(c:code)='{code}']",
                      f"clinicalDocumentNoteCode {code}")
          for number, code, title in (
              ("5.5", "utr", "Utredning"), ("5.6", "atb", "Behandling"), ("5.7", "sam", "Sammanfattning"),
              ("5.8", "sao", "Samordning"), ("5.9", "ins", "Inskrivning"), ("5.10", "slu", "Slutanteckning"),
              ("5.11", "auf", "AnteckningUtanFysisktMöte"), ("5.12", "sva", "Slutenvårdsanteckning"),
              ("5.13", "bes", "Besöksanteckning"))),
        ContentCase("5.14", "ClinicalDocumentNoteText-DocBook", "Anteckningstext som DocBook / a DocBook note text",
                    "c:body/c:clinicalDocumentNoteText[starts-with(normalize-space(.), '<') and "
                    "(contains(., '<article') or contains(., '<section') or contains(., '<para'))]",
                    "a clinicalDocumentNoteText in DocBook"),
        ContentCase("5.16", "MultimediaEntryValue", "Inbäddad fil / an embedded file",
                    "c:body/c:multimediaEntry/c:value", "multimediaEntry.value"),
        ContentCase("5.17", "MultimediaEntryReference", "Länkad fil / a linked file",
                    "c:body/c:multimediaEntry/c:reference", "multimediaEntry.reference"),
    ),
)

GET_ALERT_INFORMATION = Contract(
    name="GetAlertInformation",
    version="2.0",
    domain=_HC,
    core_ns=HEALTHCOND_CORE,
    record_element="alertInformation",
    header_element="alertInformationHeader",
    body_element="alertInformationBody",
    period_element="timePeriod",
    # TKB: the validity interval (validityTimePeriod.start to obsoleteTime or validityTimePeriod.end) overlaps
    date_rule=DateRule.OVERLAP,
    forbidden=("nullified", "nullifiedReason", "documentTitle", "documentTime"),
    ei_service_domain=f"riv:{_HC}",
    ei_categorizations=("upp",),
    module="alert_information",
    label="Uppmärksamhetsinformation",
    block_kind="upp",
    suite_cases=(
        ContentCase("5.1", "signed", "En signerad post / a signed record (legalAuthenticator)",
                    ".//c:legalAuthenticator/c:signatureTime", "a legalAuthenticator"),
        ContentCase("5.2", "unsigned", "En osignerad post / an unsigned record (no legalAuthenticator)",
                    "not(.//c:legalAuthenticator)", "no legalAuthenticator"),
        *(ContentCase(number, title, description, xpath, what) for number, title, description, xpath, what in (
            ("5.4", "Hypersensitivity", "Överkänslighet / a hypersensitivity", ".//c:hypersensitivity",
             "hypersensitivity"),
            ("5.5", "TypeOfHypersensitivity", "Typ av överkänslighet / the kind of hypersensitivity",
             ".//c:hypersensitivity/c:typeOfHypersensitivity", "typeOfHypersensitivity"),
            ("5.6", "DegreeOfSeverity_Livshotande", "Allvarlighetsgrad livshotande / life-threatening",
             ".//c:degreeOfSeverity[c:originalText='Livshotande' or c:displayName='Livshotande']",
             "degreeOfSeverity Livshotande"),
            ("5.7", "DegreeOfSeverity_Skadande", "Allvarlighetsgrad skadande / harmful (V-TIM: Skadlig)",
             ".//c:degreeOfSeverity[c:originalText='Skadande' or c:displayName='Skadande' or "
             "c:originalText='Skadlig' or c:displayName='Skadlig']", "degreeOfSeverity Skadande"),
            ("5.8", "DegreeOfSeverity_Besvärande", "Allvarlighetsgrad besvärande / discomforting",
             ".//c:degreeOfSeverity[c:originalText='Besvärande' or c:displayName='Besvärande']",
             "degreeOfSeverity Besvärande"),
            ("5.9", "DegreeOfCertainty_Misstänkt", "Visshetsgrad misstänkt / suspected",
             ".//c:degreeOfCertainty[c:originalText='Misstänkt' or c:displayName='Misstänkt']",
             "degreeOfCertainty Misstänkt"),
            ("5.10", "DegreeOfCertainty_Trolig", "Visshetsgrad trolig / probable",
             ".//c:degreeOfCertainty[c:originalText='Trolig' or c:displayName='Trolig']",
             "degreeOfCertainty Trolig"),
            ("5.11", "DegreeOfCertainty_Konstaterad", "Visshetsgrad konstaterad / confirmed",
             ".//c:degreeOfCertainty[c:originalText='Konstaterad' or c:displayName='Konstaterad']",
             "degreeOfCertainty Konstaterad"),
            ("5.12", "ATCSubstance", "Substans enligt ATC / an ATC-coded substance",
             ".//c:pharmaceuticalHypersensitivity/c:atcSubstance/c:code", "atcSubstance"),
            ("5.13", "NonATCSubstance", "Substans utanför ATC / a substance outside ATC",
             ".//c:pharmaceuticalHypersensitivity/c:nonATCSubstance", "nonATCSubstance"),
            ("5.14", "HypersensitivityAgent", "Agens för överkänsligheten / the hypersensitivity agent",
             ".//c:otherHypersensitivity/c:hypersensitivityAgent", "hypersensitivityAgent"),
            ("5.15", "SeriousDisease", "Allvarlig sjukdom / a serious disease", ".//c:seriousDisease",
             "seriousDisease"),
            ("5.16", "Treatment", "Behandling / a treatment", ".//c:treatment", "treatment"),
            ("5.17", "CommunicableDisease", "Smittsam sjukdom / a communicable disease", ".//c:communicableDisease",
             "communicableDisease"),
            ("5.18", "RestrictionOfCare", "Vårdbegränsning / a restriction of care", ".//c:restrictionOfCare",
             "restrictionOfCare"),
            ("5.19", "UnstructuredAlertInformation", "Tidigare utfärdad varning / an earlier unstructured alert",
             ".//c:unstructuredAlertInformation", "unstructuredAlertInformation"),
            ("5.20", "PharmaceuticalHyperSensitivity", "Läkemedelsöverkänslighet / a drug hypersensitivity",
             ".//c:pharmaceuticalHypersensitivity", "pharmaceuticalHypersensitivity"),
            ("5.21", "OtherHyperSensitivity", "Annan överkänslighet / another hypersensitivity",
             ".//c:otherHypersensitivity", "otherHypersensitivity"),
            # family 8: the suite's checks that the test data vary the validity interval
            ("8.1", "Validity start_end", "Giltighet med start och slut / validity start and end, no earlier "
             "obsoleteTime", ".//c:validityTimePeriod[c:start and c:end] and (not(.//c:obsoleteTime) or "
             "number(.//c:obsoleteTime) >= number(.//c:validityTimePeriod/c:end))", "validity start and end"),
            ("8.2", "Validity start and Obsolete", "Giltighetsstart och inaktualitet / validity start and "
             "obsoleteTime, no earlier end", ".//c:validityTimePeriod/c:start and .//c:obsoleteTime and "
             "(not(.//c:validityTimePeriod/c:end) or number(.//c:validityTimePeriod/c:end) >= "
             "number(.//c:obsoleteTime))", "validity start and obsoleteTime"),
            ("8.3", "Validity start only", "Endast giltighetsstart / validity start only",
             ".//c:validityTimePeriod/c:start and not(.//c:validityTimePeriod/c:end) and not(.//c:obsoleteTime)",
             "validity start only"),
        )),
    ),
    suite_note="5.3 (locked) does not apply: TKB 2.1.18 removed locking without signature. Family 8 checks the "
    "test data's validity intervals. The certification suite also accepts the KV Allvarlighetsgrad and KV "
    "Visshetsgrad codes; the adapter writes their text.",
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
    period_open_ends=True,
    forbidden=("nullified", "nullifiedReason", "documentTime", "relation"),
    ei_service_domain=f"riv:{_AA}",
    ei_categorizations=("caa-gmh",),
    has_care_giver_filter=True,
    has_prescription_filters=True,
    module="medication_history",
    label="Läkemedel",
    block_kind="lak",
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
    suite_note="No official test suite exists for GetCarePlans: its cases are derived from TKB "
    "clinicalprocess:logistics:logistics 3.0.13 and the families the other contracts share.",
    module="care_plans",
    label="Vårdplan",
)

_GVH_ADM = ".//c:vaccinationMedicalRecordBody/c:administrationRecord"
_GVH_REG = ".//c:vaccinationMedicalRecordBody/c:registrationRecord"

GET_VACCINATION_HISTORY = Contract(
    name="GetVaccinationHistory",
    version="2.0",
    domain=_AA,
    core_ns=ACTOUTCOME_CORE,
    record_element="vaccinationMedicalRecord",
    header_element="vaccinationMedicalRecordHeader",
    body_element="vaccinationMedicalRecordBody",
    # the request spells these with a lower-case "id"; timePeriod is a DatePeriodType (start and end 0..1)
    period_element="timePeriod",
    care_unit_element="careUnitHSAid",
    source_system_element="sourceSystemHSAid",
    # TKB 7.1.4: documentTime, authorTime, signatureTime or registrationRecord.date within the period
    filter_times=("documentTime", "authorTime", "signatureTime", "date"),
    # TKB: nullified is 1..1 here (nullifiedReason only with nullified true, rules() checks both); no record
    # element is 0..0 (gender's originalText is, also checked by rules())
    forbidden=(),
    ei_service_domain=f"riv:{_AA}",
    ei_categorizations=("caa-gvh",),
    module="vaccination_history",
    label="Vaccinationer",
    suite_cases=(
        ContentCase("5.1", "signed", "En signerad post / a signed record (legalAuthenticator)",
                    ".//c:legalAuthenticator/c:signatureTime", "a legalAuthenticator"),
        ContentCase("5.2", "unsigned", "En osignerad post / an unsigned record (no legalAuthenticator)",
                    "not(.//c:legalAuthenticator)", "no legalAuthenticator"),
        ContentCase("5.4", "IsDoseComplete_true", "Full dos uppnådd / a complete dose (isDoseComplete true)",
                    f"{_GVH_ADM}/c:isDoseComplete[normalize-space(.)='true' or normalize-space(.)='1']",
                    "isDoseComplete true"),
        ContentCase("5.5", "IsDoseComplete_false", "Delvaccination / an incomplete dose (isDoseComplete false)",
                    f"{_GVH_ADM}/c:isDoseComplete[normalize-space(.)='false' or normalize-space(.)='0']",
                    "isDoseComplete false"),
        ContentCase("5.6", "VaccinationUnstructuredNote", "Ostrukturerad vaccinationsinformation / an "
                    "unstructured note", f"{_GVH_REG}/c:vaccinationUnstructuredNote",
                    "vaccinationUnstructuredNote"),
        ContentCase("5.7", "vaccineName", "Vaccinets produktnamn / the vaccine's product name",
                    f"{_GVH_ADM}/c:vaccineName", "vaccineName"),
        ContentCase("5.8", "patientAdverseEffect", "Reaktion hos patienten / an adverse effect",
                    f"{_GVH_REG}/c:patientAdverseEffect | {_GVH_ADM}/c:patientAdverseEffect",
                    "patientAdverseEffect"),
        ContentCase("5.9", "vaccineTargetDisease", "Sjukdom som vaccinet skyddar mot / a target disease",
                    f"{_GVH_ADM}/c:vaccineTargetDisease", "vaccineTargetDisease"),
        ContentCase("5.11", "IsNullified_false", "Ej makulerad post / a record not nullified (nullified false)",
                    ".//c:vaccinationMedicalRecordHeader/c:nullified[normalize-space(.)='false' or "
                    "normalize-space(.)='0']", "nullified false"),
        ContentCase("5.12", "Performer", "Vem som vaccinerat / who administered the vaccination",
                    f"{_GVH_ADM}/c:performer", "performer"),
        ContentCase("5.13", "riskCategory", "Riskgrupp / a risk category", f"{_GVH_REG}/c:riskCategory",
                    "riskCategory"),
    ),
    suite_note="5.10 IsNullified_true is not run: a FHIR Immunization marked entered-in-error withdraws its "
    "record, so a record with nullified true is never served.",
)

GET_CARE_CONTACTS = Contract(
    name="GetCareContacts",
    version="3.0",
    domain="clinicalprocess:logistics:logistics",
    # Unlike GetCarePlans, the national soapAction keeps both "logistics" (the default form).
    core_ns=LOGISTICS_CORE,
    record_element="careContact",
    header_element="careContactHeader",
    body_element="careContactBody",
    # TKB: the interval formed by authorTime and careContactTimePeriod start/end overlaps the request's datePeriod;
    # a contact without end is open towards the future, one without start towards the past.
    date_rule=DateRule.OVERLAP,
    # TKB 0..0 (the XSD allows them)
    forbidden=("documentTitle", "documentTime", "legalAuthenticator", "nullified", "nullifiedReason",
               "careContactId"),
    ei_service_domain="riv:clinicalprocess:logistics:logistics",
    ei_categorizations=("vko",),
    has_care_giver_filter=True,
    module="care_contacts",
    label="Vårdkontakter",
    suite_cases=(
        ContentCase("5.1", "careContactCode", "Kodad vårdkontakttyp (KV Vårdkontakttyp) / a coded contact type",
                    ".//c:careContactCode[c:codeSystem='1.2.752.129.2.2.2.25']/c:code",
                    "careContactCode in KV Vårdkontakttyp"),
        ContentCase("5.2", "careContactCode_Besok", "Besök / a visit",
                    ".//c:careContactCode[c:code='1']", "careContactCode 1 (Besök)"),
        ContentCase("5.3", "careContactCode_Telefon", "Telefonkontakt / a phone contact",
                    ".//c:careContactCode[c:code='2']", "careContactCode 2 (Telefon)"),
        ContentCase("5.4", "careContactReason", "Orsak till vårdkontakten / the reason for the contact",
                    ".//c:careContactBody/c:careContactReason", "careContactReason"),
        ContentCase("5.5", "careContactOrgUnit", "Utförande enhet med HSA-id och namn (Regel 5) / the unit of the "
                    "contact", ".//c:careContactOrgUnit[c:orgUnitHSAId and c:orgUnitName]",
                    "careContactOrgUnit with orgUnitHSAId and orgUnitName"),
        ContentCase("5.6", "healthcareProfessionalOrgUnit", "Ansvarig personals enhet (Regel 4) / the accountable "
                    "professional's unit", ".//c:healthcareProfessionalOrgUnit[c:orgUnitHSAId and c:orgUnitName]",
                    "healthcareProfessionalOrgUnit with orgUnitHSAId and orgUnitName"),
        ContentCase("5.7", "careContactTimePeriod", "Tidsintervall med start och slut / start and end of the "
                    "contact", ".//c:careContactTimePeriod[c:start and c:end]", "careContactTimePeriod start and end"),
        ContentCase("5.8", "careContactStatus_avslutad", "Avslutad vårdkontakt / a finished contact",
                    ".//c:careContactStatus[c:code='53671000052101']", "careContactStatus avslutad"),
        ContentCase("5.9", "careContactStatus_tidbokad", "Tidbokad vårdkontakt / a booked contact",
                    ".//c:careContactStatus[c:code='53631000052103']", "careContactStatus tidbokad"),
        ContentCase("5.10", "careContactStatus_installd", "Inställd vårdkontakt / a cancelled contact",
                    ".//c:careContactStatus[c:code='53641000052109']", "careContactStatus inställd"),
    ),
    suite_note="No official test suite exists for GetCareContacts 3.0: its cases are derived from TKB "
    "clinicalprocess:logistics:logistics 3.0.13 (field rules, Regel 4 and 5, the datePeriod rule, the careGiverHSAId "
    "filter) and the families the other contracts share; the numbers are the project's, not Inera's.",
)

CONTRACTS: tuple[Contract, ...] = (  # in the order NPÖ shows the information types
    GET_DIAGNOSIS,
    GET_MEDICATION_HISTORY,
    GET_CARE_PLANS,
    GET_FUNCTIONAL_STATUS,
    GET_CARE_DOCUMENTATION,
    GET_CARE_DOCUMENTATION_3,
    GET_VACCINATION_HISTORY,
    GET_CARE_CONTACTS,
    GET_ALERT_INFORMATION,
)

BY_KEY: dict[str, Contract] = {c.key: c for c in CONTRACTS}
BY_PATH: dict[str, Contract] = {c.url_path: c for c in CONTRACTS}
BY_NAMESPACE: dict[str, Contract] = {c.responder_ns: c for c in CONTRACTS}


def _newest_of_each_name() -> tuple[Contract, ...]:
    newest: dict[str, Contract] = {}
    for c in CONTRACTS:
        held = newest.get(c.name)
        if held is None or int(c.major) > int(held.major):
            newest[c.name] = c
    return tuple(c for c in CONTRACTS if newest[c.name] is c)


# What a consumer asks each producer for: one version of each contract (the newest served), in tab order.
INFORMATION_TYPES: tuple[Contract, ...] = _newest_of_each_name()


def lookup(text: str) -> Contract:
    """A contract as people and files name it: its key ("GetCareDocumentation:3"), its name and version
    ("GetCareDocumentation 3.0", as the official suites' <id>), or its bare name when one version is served.
    Raises ValueError naming the choices."""
    text = text.strip()
    if text in BY_KEY:
        return BY_KEY[text]
    name, _, version = text.partition(" ")
    if version:
        found = BY_KEY.get(f"{name}:{version.strip().split('.')[0]}")
        if found is not None:
            return found
    versions = [c for c in CONTRACTS if c.name == name]
    if len(versions) == 1 and not version:
        return versions[0]
    if versions:
        raise ValueError(f"{text!r}: say which version ({', '.join(c.key for c in versions)})")
    raise ValueError(f"unknown contract {text!r} (known: {', '.join(BY_KEY)})")
