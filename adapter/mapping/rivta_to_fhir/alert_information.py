"""GetAlertInformation 2.0 `alertInformation` record -> AllergyIntolerance (hypersensitivity) or Flag (the other
five kinds), in the input profile's form (mappings/GetAlertInformation.md), so that it maps back to the same record.

`rules` holds the TKB rules a schema cannot say (messages name elements, never values).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from adapter.mapping import codes, profile
from adapter.mapping.fhir_to_rivta import alert_information as ai
from adapter.mapping.rivta_to_fhir.common import EU_EPS, Json, Node, Output, concept, extension, read_header
from adapter.rivta.contracts import GET_ALERT_INFORMATION as CONTRACT
from adapter.rivta.contracts import Contract

ALLERGY_PROFILE = EU_EPS + "allergyIntolerance-eu-eps"  # HL7 Sweden has no AllergyIntolerance profile
SE_FLAG = ai.SE_ALERT + "StructureDefinition/SEAlertInformationFlag"
# kind -> HL7 Sweden category code (main group) for Flag.category
KIND_CATEGORY = {ai.SERIOUS_DISEASE: ("A1", "Other medical condition"), ai.TREATMENT: ("A2", "Treatment"),
                 ai.COMMUNICABLE_DISEASE: ("B2", "Presence of infectious disease"),
                 ai.HYPERSENSITIVITY: ("C1", "Hypersensitivity condition"),
                 ai.RESTRICTION_OF_CARE: ("D2", "Decision that can lead to special care routine"),
                 ai.UNSTRUCTURED: ("E1", "Historically recorded medical alert information")}
SEVERITY_CODE = {v: k for k, v in ai.SE_CRITICALITY_LEVEL.items()}
SEVERITY_TEXT = {ai.LIFE_THREATENING.casefold(): ai.LIFE_THREATENING, ai.HARMFUL.casefold(): ai.HARMFUL,
                 "skadlig": ai.HARMFUL, ai.DISCOMFORTING.casefold(): ai.DISCOMFORTING}
# Regel 2: the KV Informationstyp codes NPÖ takes, and the KV Uppmärksamhetstyp values (matched to the body)
INFORMATIONSTYP_CODES = frozenset({
    "upp-ube", "upp-ube-beh", "upp-ube-lbe", "upp-ube-kod", "upp-uas", "upp-uas-sjd", "upp-vbe", "upp-vbe-vbe",
    "upp-arb", "upp-arb-smf", "upp-arb-smf-vag", "upp-arb-smf-sjd", "upp-est", "upp-est-rub", "upp-est-inh"})
TYPE_KIND = {v.casefold(): k for k, v in ai.ALERT_TYPE.items()}


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    header = read_header(record, CONTRACT)
    body = record.required(CONTRACT.body_element)
    out = Output(CONTRACT, header)
    kinds = [k for k in ai.KINDS if body.child(k) is not None]
    kind = kinds[0] if kinds else ai.UNSTRUCTURED

    period = body.required("validityTimePeriod")
    start, end = period.time("start"), period.time("end")
    common: list[Json | None] = [
        extension(ai.ALERT_VERIFIED_TIME, valueDateTime=body.time("verifiedTime")),
        _obsolete(body),
        *(_related(r) for r in body.children("relatedAlertInformation")),
    ]
    if header.signer is not None and header.signer.time:
        common.append(extension(profile.SIGNATURE_TIME, valueDateTime=header.signer.time))
    if kind == ai.HYPERSENSITIVITY:
        main = _allergy(out, body, body.required(kind), start, common)
    else:
        main = _flag(out, body, kind, start, end, common)
    return out.finish(main)


def _allergy(out: Output, body: Node, hs: Node, start: str | None, common: list[Json | None]) -> Json:
    header = out.header
    drug = hs.child("pharmaceuticalHypersensitivity")
    other = hs.child("otherHypersensitivity")
    codings: list[Json] = []
    text = None
    if drug is not None:
        atc = concept(drug.child("atcSubstance"))
        codings += (atc or {}).get("coding") or []
        text = drug.text("nonATCSubstance")
        for product in drug.children("pharmaceuticalProductId"):
            codings += (concept(product) or {}).get("coding") or []
    if other is not None:
        codings += (concept(other.child("hypersensitivityAgentCode")) or {}).get("coding") or []
        text = other.text("hypersensitivityAgent") or text
    severity = _severity(hs.child("degreeOfSeverity"))
    obsolete = body.child("obsoleteTime") is not None
    return {
        "resourceType": "AllergyIntolerance",
        "id": out.id,
        "meta": out.meta([ALLERGY_PROFILE]),
        "extension": [*common, severity[1]],
        "identifier": [out.identifier()],
        "clinicalStatus": {"coding": [{"system": ai.ALLERGY_CLINICAL,
                                       "code": "inactive" if obsolete else "active"}]},
        "verificationStatus": _verification(hs.child("degreeOfCertainty")),
        "category": ["medication"] if drug is not None else _category(hs.child("typeOfHypersensitivity")),
        "criticality": severity[0],
        "code": {"coding": codings or None, "text": text},
        "patient": out.subject(),
        "encounter": out.encounter(),
        # the validity start: the input profile takes it from the onset (ascertainedDate is its day)
        "onsetDateTime": start,
        "recordedDate": header.author.time,
        "recorder": out.role_ref(header.author),
        "asserter": out.role_ref(header.signer),
        "note": [{"text": body.text("alertInformationComment")}],
    }


def _flag(out: Output, body: Node, kind: str, start: str | None, end: str | None, common: list[Json | None]) -> Json:
    header = out.header
    part = body.required(kind)
    code: Json | None = None
    extra: list[Json | None] = [extension(ai.ALERT_COMMENT, valueString=body.text("alertInformationComment"))]
    if kind == ai.SERIOUS_DISEASE:
        code = concept(part.child("disease"), text_fallback=True)
    elif kind == ai.TREATMENT:
        codings = [*((concept(part.child("treatmentCode")) or {}).get("coding") or []),
                   *(c for t in part.children("pharmaceuticalTreatment") for c in (concept(t) or {}).get("coding")
                     or [])]
        code = {"coding": codings or None, "text": part.text("treatmentDescription")}
    elif kind == ai.COMMUNICABLE_DISEASE:
        code = concept(part.child("communicableDiseaseCode"), text_fallback=True)
        route = concept(part.child("routeOfTransmission"))
        extra.append(extension(ai.ROUTE_OF_TRANSMISSION, valueCodeableConcept=route) if route else None)
    elif kind == ai.RESTRICTION_OF_CARE:
        code = {"text": part.text("restrictionOfCareComment")}
    else:
        heading = part.text("unstructuredAlertInformationHeading")
        extra.append(extension(ai.SE_ALERT_LABEL, valueCodeableConcept={"text": heading}) if heading else None)
        code = {"text": part.text("unstructuredAlertInformationContent")}
    category = KIND_CATEGORY[kind]
    return {
        "resourceType": "Flag",
        "id": out.id,
        "meta": out.meta([SE_FLAG]),
        "extension": [*common, *extra],
        "identifier": [out.identifier()],
        "status": "inactive" if body.child("obsoleteTime") is not None else "active",
        "category": [{"coding": [{"system": ai.SE_CATEGORY, "code": category[0], "display": category[1]}]},
                     {"coding": [_alert_type(body.required("typeOfAlertInformation"))]}],
        "code": code or {"text": ai.ALERT_TYPE[kind]},
        "subject": out.subject(),
        "encounter": out.encounter(),
        "period": {"start": start, "end": end},
        "author": out.role_ref(header.author),
    }


def _alert_type(node: Node) -> Json:
    code, system, display = node.text("code"), node.text("codeSystem"), node.text("displayName")
    if code:
        return {"system": codes.uri_for(system.strip()) if system else None, "code": code.strip(), "display": display}
    return {"display": node.text("originalText")}


def _severity(node: Node | None) -> tuple[str | None, Json | None]:
    """(criticality, the HL7 Sweden criticality-level extension) for a degreeOfSeverity."""
    if node is None:
        return None, None
    if node.text("code") and (node.text("codeSystem") or "").strip() == ai.KV_ALLVARLIGHETSGRAD:
        value = concept(node)
        shown = (node.text("displayName") or "").strip().casefold()
    else:
        value = None
        shown = (node.text("originalText") or node.text("displayName") or "").strip().casefold()
    level = SEVERITY_TEXT.get(shown)
    if value is None and level is not None:
        value = {"coding": [{"system": ai.SE_CRITICALITY_CS, "code": SEVERITY_CODE[level], "display": level}]}
    criticality = {ai.LIFE_THREATENING: "high", ai.HARMFUL: "low", ai.DISCOMFORTING: "low"}.get(level or "")
    return criticality, extension(ai.SE_CRITICALITY, valueCodeableConcept=value) if value else None


def _verification(node: Node | None) -> Json | None:
    if node is None:
        return None
    national = concept(node) if node.text("code") else None
    shown = (node.text("originalText") or node.text("displayName") or "").strip()
    code = "confirmed" if shown.casefold() == ai.CONFIRMED.casefold() else "unconfirmed"
    codings = [{"system": ai.ALLERGY_VERIFICATION, "code": code}]
    if national is not None:
        codings += national.get("coding") or []
    return {"coding": codings, "text": shown or None}


def _category(node: Node | None) -> list[str] | None:
    shown = (node.text("originalText") or node.text("displayName") or "") if node is not None else ""
    for fhir_code, text in ai.HYPERSENSITIVITY_TYPE.items():
        if shown.strip().casefold() == text.casefold():
            return [fhir_code]
    return None


def _obsolete(body: Node) -> Json | None:
    parts = [extension("time", valueDateTime=body.time("obsoleteTime")),
             extension("comment", valueString=body.text("obsoleteComment"))]
    kept = [p for p in parts if p]
    return {"url": ai.ALERT_OBSOLETE, "extension": kept} if kept else None


def _related(node: Node) -> Json:
    parts = [extension("relationship", valueCodeableConcept=concept(node.child("typeOfAlertInformationRelationship"))),
             extension("comment", valueString=node.text("relationComment"))]
    parts += [extension("document", valueIdentifier={"value": d.value}) for d in node.children("documentId")]
    return {"url": ai.RELATED_ALERT, "extension": [p for p in parts if p]}



def period(rec: etree._Element, contract: Contract) -> tuple[str | None, str | None]:
    """The days the TKB's timePeriod rule sees: the validity, from validityTimePeriod.start to the earlier of its
    end and obsoleteTime (open when neither)."""
    ns = {"c": contract.core_ns}
    body = f"c:{contract.body_element}"

    def day(path: str) -> str | None:
        text = rec.findtext(path, namespaces=ns)
        return text.strip()[:8] if text and text.strip() else None

    ends = [d for p in (f"{body}/c:validityTimePeriod/c:end", f"{body}/c:obsoleteTime") if (d := day(p))]
    return day(f"{body}/c:validityTimePeriod/c:start"), min(ends) if ends else None

# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    what = first(
        f"{body}/c:hypersensitivity/c:pharmaceuticalHypersensitivity/c:atcSubstance/c:displayName",
        f"{body}/c:hypersensitivity/c:pharmaceuticalHypersensitivity/c:nonATCSubstance",
        f"{body}/c:hypersensitivity/c:otherHypersensitivity/c:hypersensitivityAgent",
        f"{body}/c:hypersensitivity/c:otherHypersensitivity/c:hypersensitivityAgentCode/c:displayName",
        f"{body}/c:seriousDisease/c:disease/c:displayName", f"{body}/c:seriousDisease/c:disease/c:originalText",
        f"{body}/c:treatment/c:treatmentDescription",
        f"{body}/c:communicableDisease/c:communicableDiseaseCode/c:displayName",
        f"{body}/c:communicableDisease/c:communicableDiseaseCode/c:originalText",
        f"{body}/c:restrictionOfCare/c:restrictionOfCareComment",
        f"{body}/c:unstructuredAlertInformation/c:unstructuredAlertInformationHeading")
    kind = first(f"{body}/c:typeOfAlertInformation/c:displayName", f"{body}/c:typeOfAlertInformation/c:originalText",
                 f"{body}/c:typeOfAlertInformation/c:code")
    severity = first(f"{body}/c:hypersensitivity/c:degreeOfSeverity/c:displayName",
                     f"{body}/c:hypersensitivity/c:degreeOfSeverity/c:originalText")
    obsolete = " (inaktuell)" if first(f"{body}/c:obsoleteTime") else ""
    text = " - ".join(p for p in (kind, what) if p) or "Uppmärksamhetsinformation"
    return f"{text}{f' ({severity.lower()})' if severity else ''}{obsolete}", \
        first(f"{body}/c:validityTimePeriod/c:start")


# -- the TKB rules a schema cannot say ---------------------------------------------------------------------------
def rules(rec: etree._Element, contract: Contract) -> list[str]:
    ns = {"c": contract.core_ns}
    body = rec.find(f"c:{contract.body_element}", ns)
    if body is None:
        return []
    out = []
    present = [k for k in ai.KINDS if body.find(f"c:{k}", ns) is not None]
    if len(present) != 1:
        out.append("alertInformationBody holds not exactly one of hypersensitivity, seriousDisease, treatment, "
                   "communicableDisease, restrictionOfCare and unstructuredAlertInformation")
    if not (body.findtext("c:validityTimePeriod/c:start", namespaces=ns) or "").strip():
        out.append("validityTimePeriod/start missing (TKB 1..1)")
    kind = _type_kind(body.find("c:typeOfAlertInformation", ns), ns)
    if kind is None:
        out.append("typeOfAlertInformation is neither a KV Informationstyp upp code nor a KV Uppmärksamhetstyp "
                   "value (Regel 2)")
    elif kind != "informationstyp" and len(present) == 1 and present[0] != kind:
        out.append(f"typeOfAlertInformation does not match {present[0]}")
    for drug in body.iterfind("c:hypersensitivity/c:pharmaceuticalHypersensitivity", ns):
        atc = drug.find("c:atcSubstance", ns)
        non_atc = drug.find("c:nonATCSubstance", ns) is not None
        if atc is None and not (non_atc and drug.find("c:nonATCSubstanceComment", ns) is not None):
            out.append("pharmaceuticalHypersensitivity needs atcSubstance, or nonATCSubstance with "
                       "nonATCSubstanceComment")
        if atc is not None:
            parts = {etree.QName(c).localname for c in atc if isinstance(c.tag, str)}
            if parts != {"code", "codeSystem", "displayName"} or (
                    atc.findtext("c:codeSystem", namespaces=ns) or "").strip() != ai.ATC:
                out.append("atcSubstance must hold exactly code, codeSystem (ATC) and displayName")
            elif len((atc.findtext("c:code", namespaces=ns) or "").strip()) < 3:
                out.append("atcSubstance code below the third ATC level")
        severity = body.find("c:hypersensitivity/c:degreeOfSeverity", ns)
        if atc is None and severity is not None and SEVERITY_TEXT.get(_shown(severity, ns)) in (
                ai.LIFE_THREATENING, ai.HARMFUL):
            out.append("atcSubstance missing for a life-threatening or harmful drug hypersensitivity")
    return out


def _shown(el: etree._Element, ns: dict[str, str]) -> str:
    for name in ("originalText", "displayName"):
        value = (el.findtext(f"c:{name}", namespaces=ns) or "").strip()
        if value:
            return value.casefold()
    return ""


def _type_kind(el: etree._Element | None, ns: dict[str, str]) -> str | None:
    """The kind a typeOfAlertInformation names: a KV Uppmärksamhetstyp value gives its body element;
    a KV Informationstyp upp code gives "informationstyp" (not matched to the body); else None."""
    if el is None:
        return None
    code = (el.findtext("c:code", namespaces=ns) or "").strip()
    if code in INFORMATIONSTYP_CODES:
        return "informationstyp"
    for name in ("code", "displayName", "originalText"):
        value = (el.findtext(f"c:{name}", namespaces=ns) or "").strip().casefold()
        if value in TYPE_KIND:
            return TYPE_KIND[value]
    return None
