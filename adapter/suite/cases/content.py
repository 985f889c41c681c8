"""Families 3–5: sammanhållen journalföring fields, approvedForPatient, and each contract's own content.

Content cases look through the unfiltered answers of every declared patient (or of the patient the
declaration names for the case) for a record showing what the official test case asks for.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from adapter.rivta import rules, xml
from adapter.rivta.contracts import ContentCase, Contract
from adapter.suite.cases.base import Case, CaseContext

Predicate = Callable[[etree._Element, Contract], bool]


def _xpath(expr: str) -> Predicate:
    def test(rec: etree._Element, contract: Contract) -> bool:
        return bool(rec.xpath(f"boolean({expr})", namespaces={"c": contract.core_ns}))

    return test


def _exists(number: str, title: str, description: str, predicate: Predicate | str, what: str,
            contracts: tuple[str, ...]) -> Case:
    test = _xpath(predicate) if isinstance(predicate, str) else predicate

    async def run(ctx: CaseContext) -> None:
        recs = await ctx.records_of_known_patients()
        found = sum(1 for r in recs if test(r, ctx.contract))
        if recs and not found:
            ctx.fail(f"no record of the declared patients ({len(recs)} records) has {what}")
        elif found:
            ctx.note(f"{found} of {len(recs)} records")

    return Case(number, title, description, run, contracts)


def declared(case: ContentCase) -> Case:
    """A content case a contract's description declares (`Contract.suite_cases`)."""
    return _exists(case.number, case.title, case.description, case.xpath, case.what, ())


def _by_design(number: str, title: str, description: str, reason: str, contracts: tuple[str, ...]) -> Case:
    async def run(ctx: CaseContext) -> None:
        ctx.skip(reason)

    return Case(number, title, description, run, contracts)


# -- family 3 and 4, every contract ----------------------------------------------------------------------------
def _every(rule: rules.Rule, what: str):
    async def run(ctx: CaseContext) -> None:
        found: list[str] = []
        records = 0
        for n, (patient, answer) in enumerate(await ctx.known_answers(), start=1):
            if answer.response is None:
                continue
            records += len(answer.records)
            problems = [p for p in rules.find_problems(answer.response, ctx.contract) if p.rule is rule]
            found.extend(f"patient {n} ({patient.kind}), {p}" for p in problems)
        if not records:
            ctx.fail("the declared patients have no records: the case has nothing to look at")
        if found:
            ctx.fail(f"{len(found)} × {what} missing: records without it are not shown in sammanhållen journalföring")
            ctx.failures.extend(found[:20])
        else:
            ctx.note(f"{records} records")

    return run


SJF = (
    Case("3.1", "VG_VE", "Alla poster har vårdenhetens och vårdgivarens HSA-id / every record names care unit and "
         "care giver (Regel 1, PDL)", _every(rules.Rule.CARE_UNIT_AND_GIVER, "care-unit or care-giver HSA-id")),
    Case("3.2", "AuthorTime", "Alla poster har authorTime / every record carries its registration time",
         _every(rules.Rule.AUTHOR_TIME, "authorTime")),
    _exists("4.1", "ApprovedForPatient_true", "En post som får delas till patienten / a record approved for the "
            "patient", ".//c:approvedForPatient[normalize-space(.)='true']", "approvedForPatient true", ()),
    _exists("4.2", "ApprovedForPatient_false", "En post som inte får delas till patienten / a record not approved "
            "for the patient", ".//c:approvedForPatient[normalize-space(.)='false']", "approvedForPatient false", ()),
)

# -- family 5 -------------------------------------------------------------------------------------------------------
GD, GFS, GCD = ("GetDiagnosis:2",), ("GetFunctionalStatus:2",), ("GetCareDocumentation:2",)
GMH, GCP = ("GetMedicationHistory:2",), ("GetCarePlans:2",)
_LOCKED = ("TKB 2.1.18 removed locked-without-signature (HSLF-FS 2016:40 no longer allows locking unsigned notes); "
           "nothing in the answer can show it")


def _signed(contracts: tuple[str, ...]) -> tuple[Case, Case]:
    return (
        _exists("5.1", "signed", "En signerad post / a signed record (legalAuthenticator)",
                ".//c:legalAuthenticator/c:signatureTime", "a legalAuthenticator", contracts),
        _exists("5.2", "unsigned", "En osignerad post / an unsigned record (no legalAuthenticator)",
                "not(.//c:legalAuthenticator)", "no legalAuthenticator", contracts),
    )


def _padl(activity: str, *names: str) -> Predicate:
    wanted = {n.casefold() for n in (activity, *names)}

    def test(rec: etree._Element, contract: Contract) -> bool:
        ns = {"c": contract.core_ns}
        for kind in rec.iterfind(".//c:padl/c:typeOfAssessment", ns):
            shown = {(kind.findtext(f"c:{n}", namespaces=ns) or "").strip().casefold()
                     for n in ("displayName", "originalText", "code")}
            if shown & wanted:
                return True
        return False

    return test


def _docbook(rec: etree._Element, contract: Contract) -> bool:
    ns = {"c": contract.core_ns}
    for note in rec.iterfind(".//c:clinicalDocumentNoteText", ns):
        text = (note.text or "").strip()
        if not text.startswith("<"):
            continue
        try:
            root = xml.parse(text.encode("utf-8"), max_bytes=1_000_000, max_depth=32)
        except xml.UnsafeXml:
            continue
        if etree.QName(root).localname in ("article", "section", "para"):
            return True
    return False


_NOTE_CODES = (("5.5", "utr", "Utredning"), ("5.6", "atb", "Behandling"), ("5.7", "sam", "Sammanfattning"),
               ("5.8", "sao", "Samordning"), ("5.9", "ins", "Inskrivning"), ("5.10", "slu", "Slutanteckning"),
               ("5.11", "auf", "AnteckningUtanFysisktMöte"), ("5.12", "sva", "Slutenvårdsanteckning"),
               ("5.13", "bes", "Besöksanteckning"))
_MEDIA = ("text/plain", "text/html", "image/png", "image/jpeg", "image/tiff", "application/pdf")
_PLAN_TYPES = (("SIP", "Samordnad individuell plan"), ("SPLPTLRV", "Samordnad plan enligt LPT eller LRV"),
               ("SPU", "Samordnad plan vid utskrivning"), ("VP", "Vårdplan"), ("HP", "Habiliteringsplan"),
               ("RP", "Rehabiliteringsplan"), ("GP", "Genomförandeplan"), ("SVP", "Standardiserad vårdplan"))

_MP = ".//c:medicationPrescription"


def _gmh_cases() -> list[Case]:
    out = [
        *_signed(GMH),
        _exists("5.4", "typeOfPrescription_Utsättning", "Ordinationstyp utsättning / a stop of treatment",
                f"{_MP}/c:typeOfPrescription[.='U']", "typeOfPrescription U", GMH),
        _exists("5.5", "typeOfPrescription_Insättning", "Ordinationstyp insättning / a start or change",
                f"{_MP}/c:typeOfPrescription[.='I']", "typeOfPrescription I", GMH),
        _exists("5.6", "prescriptionStatus_Active", "Ordinationsstatus Active / an active prescription",
                f"{_MP}/c:prescriptionStatus[.='Active']", "prescriptionStatus Active", GMH),
        _exists("5.7", "prescriptionStatus_Inactive", "Ordinationsstatus Inactive / an inactive prescription",
                f"{_MP}/c:prescriptionStatus[.='Inactive']", "prescriptionStatus Inactive", GMH),
        _exists("5.8", "treatmentPurpose", "Behandlingsändamål / treatment purpose", f"{_MP}/c:treatmentPurpose",
                "treatmentPurpose", GMH),
        _exists("5.9", "prescriptionChains", "Ordinationskedja / a chain with preceding or succeeding link",
                f"{_MP}/c:prescriptionChainId and ({_MP}/c:precedingPrescriptionId or "
                f"{_MP}/c:succeedingPrescriptionId)", "a prescription chain with links", GMH),
        _exists("5.10", "prescriber_Name", "Ordinatörens namn / the prescriber's name",
                f"{_MP}/c:prescriber/c:healthcareProfessionalName", "prescriber.healthcareProfessionalName", GMH),
        _exists("5.11", "prescriber_orgUnitName", "Ordinatörens organisation / the prescriber's org unit",
                f"{_MP}/c:prescriber/c:healthcareProfessionalOrgUnit/c:orgUnitName",
                "prescriber.healthcareProfessionalOrgUnit.orgUnitName", GMH),
        _exists("5.12", "evaluator_Name", "Utvärderarens namn / the evaluator's name",
                f"{_MP}/c:evaluator/c:healthcareProfessionalName", "evaluator.healthcareProfessionalName", GMH),
        _exists("5.13", "evaluator_orgUnitName", "Utvärderarens organisation / the evaluator's org unit",
                f"{_MP}/c:evaluator/c:healthcareProfessionalOrgUnit/c:orgUnitName",
                "evaluator.healthcareProfessionalOrgUnit.orgUnitName", GMH),
        _exists("5.14", "selfMedication_false", "Ej egenmedicinering / not self-medication",
                f"{_MP}/c:selfMedication[.='false']", "selfMedication false", GMH),
        _exists("5.15", "selfMedication_true", "Egenmedicinering / self-medication",
                f"{_MP}/c:selfMedication[.='true']", "selfMedication true", GMH),
        _by_design("5.16", "referredInformation_originalText", "Refererad information / referred information",
                   "relation must not be used in sammanhållen journalföring (AB-2.3); the rule checks refuse it",
                   GMH),
    ]
    drug, auth, admin = f"{_MP}/c:drug", f"{_MP}/c:dispensationAuthorization/c:drug", f"{_MP}/c:administration"
    paths = (
        ("5.17", "drug_unstructuredDrugInformation", f"{drug}/c:unstructuredDrugInformation"),
        ("5.18", "drug_merchandise", f"{drug}/c:merchandise"),
        ("5.19", "drug_drugArticle", f"{drug}/c:drugArticle"),
        ("5.20", "drug_routeOfAdministration", f"{drug}/c:drug/c:routeOfAdministration"),
        ("5.21", "drug_pharmaceuticalForm", f"{drug}/c:drug/c:pharmaceuticalForm"),
        ("5.22", "drug_strength", f"{drug}/c:drug/c:strength"),
        ("5.23", "drug_strengthUnit", f"{drug}/c:drug/c:strengthUnit"),
        ("5.24", "generics_strength", f"{drug}/c:generics/c:strength"),
        ("5.25", "generics_form", f"{drug}/c:generics/c:form"),
        ("5.26", "drug_dosage", f"{drug}/c:dosage"),
        ("5.27", "dispAuth_unstructuredDrugInformation", f"{auth}/c:unstructuredDrugInformation"),
        ("5.28", "dispAuth_merchandise", f"{auth}/c:merchandise"),
        ("5.29", "dispAuth_drugArticle", f"{auth}/c:drugArticle"),
        ("5.30", "dispAuth_drug", f"{auth}/c:drug"),
        ("5.31", "dispAuth_generics", f"{auth}/c:generics"),
        ("5.32", "admin_routeOfAdministration", f"{admin}/c:routeOfAdministration"),
        ("5.33", "admin_unstructuredDrugInformation", f"{admin}/c:drug/c:unstructuredDrugInformation"),
        ("5.34", "admin_merchandise", f"{admin}/c:drug/c:merchandise"),
        ("5.35", "admin_drugArticle", f"{admin}/c:drug/c:drugArticle"),
        ("5.36", "admin_drug", f"{admin}/c:drug/c:drug"),
        ("5.37", "admin_generics", f"{admin}/c:drug/c:generics"),
        ("5.38", "admin_dosage", f"{admin}/c:drug/c:dosage"),
    )
    for number, title, path in paths:
        element = path.removeprefix(".//c:").replace("/c:", ".")
        out.append(_exists(number, title, f"Post med {element} / a record with {element}", path, element, GMH))
    return out


CONTENT = (
    # GetDiagnosis 2.0
    *_signed(GD),
    _by_design("5.3", "locked", "Låst post / a locked record", _LOCKED, GD + GFS),
    _exists("5.4", "DiagnosisCode", "Post med diagnoskod / a coded diagnosis", ".//c:diagnosisCode/c:code",
            "diagnosisCode.code", GD),
    _exists("5.5", "ChronicDiagnosis_true", "Kronisk diagnos / a chronic diagnosis",
            ".//c:chronicDiagnosis[.='true']", "chronicDiagnosis true", GD),
    _exists("5.6", "ChronicDiagnosis_false", "Ej kronisk diagnos / a diagnosis that is not chronic",
            ".//c:chronicDiagnosis[.='false']", "chronicDiagnosis false", GD),
    _exists("5.7", "RelatedDiagnosis", "Relaterad diagnos / a related diagnosis",
            ".//c:relatedDiagnosis/c:documentId", "relatedDiagnosis", GD),
    _exists("5.8", "TypeOfDiagnosis_Huvuddiagnos", "Huvuddiagnos / a main diagnosis",
            ".//c:typeOfDiagnosis[.='Huvuddiagnos']", "typeOfDiagnosis Huvuddiagnos", GD),
    _exists("5.9", "TypeOfDiagnosis_Bidiagnos", "Bidiagnos / a secondary diagnosis",
            ".//c:typeOfDiagnosis[.='Bidiagnos']", "typeOfDiagnosis Bidiagnos", GD),
    # GetFunctionalStatus 2.0
    *_signed(GFS),
    _exists("5.4", "comment", "Kommentar till PADL-bedömningen / a PADL comment",
            ".//c:functionalStatusAssessmentBody/c:comment", "comment", GFS),
    _exists("5.5", "padl-typeOfAssessment-personlighygien", "PADL personlig hygien / personal hygiene",
            _padl("personlig hygien"), "a PADL assessment of personlig hygien", GFS),
    _exists("5.6", "padl-typeOfAssessment-pa-avkladning", "PADL på/avklädning / dressing",
            _padl("på/avklädning", "på- och avklädning", "av- och påklädning"), "a PADL assessment of på/avklädning",
            GFS),
    _exists("5.7", "padl-typeOfAssessment-forflyttning", "PADL förflyttning / moving", _padl("förflyttning"),
            "a PADL assessment of förflyttning", GFS),
    _exists("5.8", "padl-typeOfAssessment-toalettbesok", "PADL toalettbesök / toileting", _padl("toalettbesök"),
            "a PADL assessment of toalettbesök", GFS),
    _exists("5.9", "padl-typeOfAssessment-fodointag", "PADL födointag / eating", _padl("födointag"),
            "a PADL assessment of födointag", GFS),
    _exists("5.10", "padl-assessment", "Textuell PADL-bedömning / a PADL assessment text",
            ".//c:padl/c:assessment", "padl.assessment", GFS),
    _exists("5.11", "disability-disabilityAssessment-code", "ICF-kod för funktionsnedsättning / an ICF code",
            ".//c:disability/c:disabilityAssessment/c:code", "disability.disabilityAssessment.code", GFS),
    _exists("5.12", "disability-disabilityAssessment-displayName", "ICF i klartext / the ICF display name",
            ".//c:disability/c:disabilityAssessment/c:displayName", "disability.disabilityAssessment.displayName",
            GFS),
    _exists("5.13", "disability-comment", "Kommentar till funktionsnedsättning / a disability comment",
            ".//c:disability/c:comment", "disability.comment", GFS),
    # GetCareDocumentation 2.1 (numbered after the 3.0 suite)
    *_signed(GCD),
    _exists("5.4", "DissentingOpinion", "Avvikande åsikt / a dissenting opinion",
            ".//c:dissentintOpinion/c:opinion or .//c:dissentingOpinion/c:opinion", "a dissenting opinion", GCD),
    *(_exists(n, f"ClinicalDocumentNoteCode_{title}", f"Anteckningstyp {code} ({title})",
              f".//c:clinicalDocumentNoteCode[.='{code}']", f"clinicalDocumentNoteCode {code}", GCD)
      for n, code, title in _NOTE_CODES),
    _exists("5.14", "ClinicalDocumentNoteText-DocBook", "Anteckningstext som DocBook / a DocBook note text",
            _docbook, "a clinicalDocumentNoteText in DocBook", GCD),
    _exists("5.16", "MultimediaEntryValue", "Inbäddad fil / an embedded file", ".//c:multimediaEntry/c:value",
            "multimediaEntry.value", GCD),
    _exists("5.17", "MultimediaEntryReference", "Länkad fil / a linked file", ".//c:multimediaEntry/c:reference",
            "multimediaEntry.reference", GCD),
    # GetMedicationHistory 2.2
    *_gmh_cases(),
    # GetCarePlans 2.0: no official suite; cases derived from the TKB (logistics:logistics 3.0.13)
    *_signed(GCP),
    _exists("5.3", "participatingCareUnit", "Deltagande enhet / a participating care unit",
            ".//c:participatingCareUnitHSAId", "participatingCareUnitHSAId", GCP),
    _exists("5.4", "content_value", "Innehåll inbäddat / embedded content", ".//c:content/c:value",
            "content.value", GCP),
    _exists("5.5", "content_reference", "Innehåll som länk / linked content", ".//c:content/c:reference",
            "content.reference", GCP),
    *(_exists(f"5.{6 + i}", f"content_{media}", f"Innehåll av typen {media} / content as {media}",
              f".//c:content/c:mediaType[.='{media}']", f"content of mediaType {media}", GCP)
      for i, media in enumerate(_MEDIA)),
    *(_exists(f"5.{12 + i}", f"typeOfCarePlan_{code}", f"{swedish} / care plan type {code}",
              f".//c:typeOfCarePlanEnum[.='{code}']", f"typeOfCarePlanEnum {code}", GCP)
      for i, (code, swedish) in enumerate(_PLAN_TYPES)),
)
