"""FHIR MedicationRequest / MedicationStatement -> GetMedicationHistory 2.2 `medicationMedicalRecord`.

Both resource types describe one läkemedelsordination. Each is first read into a `_Prescription`
(the parts where the two differ); one builder then renders the record. The input profile is
mappings/GetMedicationHistory.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

from fhir.resources.R4B.identifier import Identifier

from adapter.mapping import codes, profile, rivta_xml, timefmt
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Map, Professional, Record
from adapter.rivta.contracts import GET_MEDICATION_HISTORY as CONTRACT

(CATEGORY,) = CONTRACT.ei_categorizations
LOCAL_ID_ROOT = "1.2.752.129.2.1.2.1"  # national OID for local ids: extension = "<system HSA-id>:<id>"
NPL_ID = "1.2.752.129.2.1.5.1"
NPL_PACK_ID = "1.2.752.129.2.1.5.2"
ATC = "1.2.752.129.2.2.3.1.1"  # the TKB gives varunummer (merchandise) the same OID
OTHER_REASON = "46021000052104"  # SNOMED CT "Annan ordinationsorsak": its text goes to otherReason
UCUM = "http://unitsofmeasure.org"
ACTIVE, INACTIVE = "Active", "Inactive"
INSERTION, DISCONTINUATION = "I", "U"
MAX_OCCASION_DAYS = 28

_UUID = re.compile(
    r"^(?:urn:uuid:)?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
_REF_TYPE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")
_REF_ID = re.compile(r"([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_REQUEST_STATUS = {
    "active": ACTIVE,
    "on-hold": ACTIVE,
    "completed": INACTIVE,
    "stopped": INACTIVE,
    "cancelled": INACTIVE,
}
_STATEMENT_STATUS = {
    "active": ACTIVE,
    "intended": ACTIVE,
    "on-hold": ACTIVE,
    "completed": INACTIVE,
    "stopped": INACTIVE,
    "not-taken": INACTIVE,
}
_ORDER_INTENTS = {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
_GIVEN = {"completed", "in-progress", "stopped"}  # administrations that took place (TKB: no planned ones)
_PROFESSIONALS = {"Practitioner", "PractitionerRole"}
_DAYS_PER = {"d": 1, "wk": 7}
_WHEN = {
    "MORN": "morgon",
    "NOON": "mitt på dagen",
    "AFT": "eftermiddag",
    "EVE": "kväll",
    "NIGHT": "natt",
    "HS": "till natten",
    "WAKE": "vid uppvaknande",
    "CM": "till frukost",
    "CD": "till lunch",
    "CV": "till middag",
    "ACM": "före frukost",
    "ACD": "före lunch",
    "ACV": "före middag",
    "PCM": "efter frukost",
    "PCD": "efter lunch",
    "PCV": "efter middag",
}
_UNIT_NAMES = {
    "s": "sekund",
    "min": "minut",
    "h": "timme",
    "d": "dygn",
    "wk": "vecka",
    "mo": "månad",
    "a": "år",
}


@dataclass
class _Prescription:
    """What a MedicationRequest or MedicationStatement says, named after the RIVTA parts."""

    res: Any
    status_table: dict[str, str]
    recorder: Any  # Reference to the registering professional, or None
    recorded: Any  # header authorTime
    recorded_field: str
    prescriber: tuple[Any, Any] | None  # (Reference or None, decision time) or None
    prescriber_field: str
    self_medication: bool
    start: Any
    end: Any
    dosages: list[Any]
    concept: Any  # medicationCodeableConcept
    reference: Any  # medicationReference
    encounter: Any
    preceding: Any  # Reference | Identifier | None
    end_reason: Any  # CodeableConcept | None
    request: Any = None  # the MedicationRequest, for the förskrivning (dispenseRequest)
    prescriber_scope: Any = None  # the resource whose `contained` a "#" prescriber reference points into
    prescriber_missing: str | None = None  # why no prescriber was found, when the rejection can say more


@dataclass(frozen=True)
class _Drug:
    """One DrugChoiceType alternative (TKB Övriga regler 1.4: exactly one)."""

    kind: str  # the RIVTA element: unstructuredDrugInformation | merchandise | drugArticle | drug | generics
    text: str | None = None
    article: tuple[str, str, str] | None = None  # varunummer or NPL-pack-id (code, OID, display)
    npl: tuple[str, str, str] | None = None
    atc: tuple[str, str, str] | None = None
    pack: tuple[str, str, str] | None = None  # NPL-pack-id known next to a product: used for the förskrivning
    form: str | None = None
    strength: tuple[str, str] | None = None  # (value, unit)


class _Unattributed:
    """Stands in for the record when resolving a body professional: TKB Övriga regler 1.9 forbids care
    unit and care giver there, so the record's Provenance must not lend them."""

    id = None

    def get_resource_type(self) -> str:
        return "-"


_UNATTRIBUTED = _Unattributed()


# -- entry points -------------------------------------------------------------------------------
def map_medication_request(req: Any, ctx: Context) -> list[Record]:
    if req.status == "draft" or req.intent not in _ORDER_INTENTS or req.doNotPerform:
        return []  # a draft, proposal or plan is not a decided ordination
    requester_kind = _kind(req.requester, req, ctx)
    prescriber = req.requester if requester_kind in _PROFESSIONALS else None
    recorder = req.recorder if _kind(req.recorder, req, ctx) in _PROFESSIONALS else prescriber
    start, end = _bounds(req.dosageInstruction or [])
    return _records(
        _Prescription(
            res=req,
            status_table=_REQUEST_STATUS,
            recorder=recorder,
            recorded=_last_updated(req) or req.authoredOn,
            recorded_field="authoredOn",
            prescriber=(prescriber, req.authoredOn) if prescriber is not None else None,
            prescriber_field="requester",
            self_medication=_self_medication(req, default=requester_kind == "Patient"),
            start=start,
            end=end,
            dosages=list(req.dosageInstruction or []),
            concept=req.medicationCodeableConcept,
            reference=req.medicationReference,
            encounter=req.encounter,
            preceding=req.priorPrescription or _link(req, profile.PRECEDING_PRESCRIPTION),
            end_reason=req.statusReason,
            request=req,
        ),
        ctx,
    )


def map_medication_statement(st: Any, ctx: Context) -> list[Record]:
    source = st.informationSource if _kind(st.informationSource, st, ctx) in _PROFESSIONALS else None
    period = st.effectivePeriod
    based = _based_on_prescriber(st, ctx)
    return _records(
        _Prescription(
            res=st,
            status_table=_STATEMENT_STATUS,
            recorder=source,
            recorded=st.dateAsserted or _last_updated(st),
            recorded_field="dateAsserted",
            prescriber=based.prescriber,
            prescriber_field=based.field,
            self_medication=_self_medication(st, default=based.self_medication),
            start=period.start if period else st.effectiveDateTime,
            end=period.end if period else None,
            dosages=list(st.dosage or []),
            concept=st.medicationCodeableConcept,
            reference=st.medicationReference,
            encounter=st.context,
            preceding=_link(st, profile.PRECEDING_PRESCRIPTION),
            end_reason=(st.statusReason or [None])[0],
            prescriber_scope=based.scope,
            prescriber_missing=based.missing,
        ),
        ctx,
    )


@dataclass(frozen=True)
class _BasedOn:
    """Where a MedicationStatement's prescriber comes from: the extension, else basedOn -> MedicationRequest."""

    prescriber: tuple[Any, Any] | None
    field: str
    scope: Any = None
    self_medication: bool = False  # default for the statement when it has no self-medication extension
    missing: str | None = None


def _based_on_prescriber(st: Any, ctx: Context) -> _BasedOn:
    """The prescriber extension wins. Without it, the first `basedOn` MedicationRequest that is a decided
    ordination gives the prescriber (`requester`) and its time (`authoredOn`), as the request itself would
    (EHDS-TK MED-005). A basedOn that cannot be resolved gives nothing: the statement is then treated as
    one without prescriber information (rejected unless self-medication), and the rejection says why."""
    ext = _actor_extension(st, profile.PRESCRIBER)
    if ext is not None:
        return _BasedOn(ext, "extension(prescriber)")
    refs = [r for r in st.basedOn or [] if _kind(r, st, ctx) == "MedicationRequest"]
    if not refs:
        return _BasedOn(None, "extension(prescriber)")
    resolved = [(r, req) for r in refs if (req := _target(r, st, ctx)) is not None]
    if not resolved:
        return _BasedOn(
            None,
            "basedOn",
            missing="basedOn names a MedicationRequest that could not be resolved (contained, in this input "
            "or stored); send it, or give the prescriber extension (a prescriber is required unless "
            "self-medication is true, TKB Övriga regler 1.8)",
        )
    decided = [(r, req) for r, req in resolved if _decided(req)]
    if not decided:
        return _BasedOn(
            None,
            "basedOn",
            missing="the MedicationRequest in basedOn is no decided ordination (draft, entered-in-error, "
            "doNotPerform or not an order), so it names no prescriber (TKB Övriga regler 1.8)",
        )
    ref, req = decided[0]
    scope = st if (ref.reference or "").startswith("#") else req  # contained refs resolve in the container
    kind = _kind(req.requester, scope, ctx)
    self_medication = _self_medication(req, default=kind == "Patient")
    if kind not in _PROFESSIONALS:
        return _BasedOn(None, "basedOn.requester", scope, self_medication)
    if req.authoredOn is None:
        raise MappingError(
            "basedOn.authoredOn", "the MedicationRequest in basedOn has no authoredOn (the prescription time)"
        )
    return _BasedOn((req.requester, req.authoredOn), "basedOn.requester", scope, self_medication)


def _decided(req: Any) -> bool:
    """A MedicationRequest that is a decided ordination (what map_medication_request publishes)."""
    return (
        req.get_resource_type() == "MedicationRequest"
        and req.status not in ("draft", "entered-in-error")
        and req.intent in _ORDER_INTENTS
        and not req.doNotPerform
    )


# -- the record ---------------------------------------------------------------------------------
def _records(p: _Prescription, ctx: Context) -> list[Record]:
    res = p.res
    kind = _type_of_prescription(res)
    status = _status(p, kind)
    source = ctx.source_system(res)
    header = _header(p, ctx, source)
    prescriber = _prescriber(p, ctx)
    start, end = timefmt.timestamp(p.start), timefmt.timestamp(p.end)
    if kind == INSERTION and start is None:
        start = header.author.time  # TKB: startOfTreatment defaults to the registration time for insättning
    drug = _drug_of(res, p.concept, p.reference, ctx)
    chain = _chain_id(res, source)

    root, b = rivta_xml.record_root(CONTRACT)
    rivta_xml.header(b, root, CONTRACT, header)
    mp = b.node(b.node(root, CONTRACT.body_element), "medicationPrescription")
    b.ii(mp, "prescriptionId", *_prescription_id(res, ctx))
    b.text(mp, "typeOfPrescription", kind)
    b.text(mp, "prescriptionStatus", status)
    b.text(mp, "prescriptionNote", _notes(res.note))
    _reasons(b, mp, res.reasonCode)
    b.text(mp, "evaluationTime", _ext_time(res, profile.EVALUATION_TIME))
    b.text(mp, "treatmentPurpose", _purpose(res.reasonCode))
    _chain_links(b, mp, p, chain, ctx, source)
    if prescriber:
        rivta_xml.professional(b, mp, "prescriber", prescriber)
    evaluator = _actor_extension(res, profile.EVALUATOR)
    if evaluator:
        rivta_xml.professional(b, mp, "evaluator", _actor(*evaluator, res, ctx, "extension(evaluator)"))
    b.text(mp, "startOfFirstTreatment", _ext_time(res, profile.START_OF_FIRST_TREATMENT))
    b.text(mp, "startOfTreatment", start)
    b.text(mp, "endOfTreatment", end)
    _cv(b, mp, "endOfTreatmentReason", p.end_reason)
    b.text(mp, "selfMedication", p.self_medication)
    dosages = p.dosages if kind == INSERTION else []  # TKB: no dosage for utsättning
    drug_el = _render_drug(b, mp, drug, route=next((d.route for d in p.dosages if d.route), None))
    for dosage in dosages:
        _dosage(b, drug_el, dosage)
    if p.request is not None and kind == INSERTION:  # TKB: no förskrivning for utsättning
        _dispensation(b, mp, p.request, drug, prescriber, dosages, ctx, source)
    _administrations(b, mp, res, ctx, source, header.document_id)

    # TKB datePeriod: from the prescription decision, else startOfTreatment, else the registration
    period_start = (prescriber.time if prescriber else None) or start or header.author.time
    return [
        Record(
            contract=CONTRACT.key,
            header=header,
            fragment=rivta_xml.serialise(root),
            times={"authorTime": header.author.time, "startOfTreatment": start, "endOfTreatment": end},
            period=(period_start[:8], end[:8] if end else None),
            category=CATEGORY,
            chain_id=_chain_key(chain),
            status=status,
        )
    ]


def _header(p: _Prescription, ctx: Context, source: str) -> Header:
    res = p.res
    signed = profile.extension(res, profile.SIGNATURE_TIME)
    return Header(
        document_id=ctx.document_id(res),
        source_system=source,
        patient=ctx.patient(res.subject),
        author=ctx.professional(p.recorder, p.recorded, res, p.recorded_field),
        approved_for_patient=ctx.approved_for_patient(res),
        signer=ctx.signer(p.recorder, signed.valueDateTime if signed else None),
        care_contact=ctx.care_contact(p.encounter),
    )


def _prescriber(p: _Prescription, ctx: Context) -> Professional | None:
    scope = p.prescriber_scope if p.prescriber_scope is not None else p.res
    prescriber = _actor(*p.prescriber, scope, ctx, p.prescriber_field) if p.prescriber else None
    if prescriber is None and not p.self_medication:
        raise MappingError(
            p.prescriber_field,
            p.prescriber_missing
            or "a prescriber is required unless the extension self-medication is true (TKB Övriga regler 1.8)",
        )
    return prescriber


def _chain_links(
    b: rivta_xml.Builder, mp: Any, p: _Prescription, chain: Any, ctx: Context, source: str
) -> None:
    if chain:
        b.ii(mp, "prescriptionChainId", *chain)
    for name, link in (
        ("precedingPrescriptionId", p.preceding),
        ("succeedingPrescriptionId", _link(p.res, profile.SUCCEEDING_PRESCRIPTION)),
    ):
        ident = _linked_id(link, p.res, ctx, source, name)
        if ident:
            b.ii(mp, name, *ident)


def _chain_key(chain: tuple[str, str | None] | None) -> str | None:
    """Record.chain_id: "root" or "root:extension", as the producer builds it from the request."""
    if chain is None:
        return None
    root, extension = chain
    return f"{root}:{extension}" if extension else root


def _type_of_prescription(res: Any) -> str:
    cats = res.category if isinstance(res.category, list) else [res.category] if res.category else []
    for concept in cats:
        for coding in concept.coding or []:
            if coding.system == profile.TYPE_OF_PRESCRIPTION and coding.code:
                if coding.code not in (INSERTION, DISCONTINUATION):
                    raise MappingError("category", "unknown type of prescription code (expected I or U)")
                return cast(str, coding.code)
    return INSERTION


def _status(p: _Prescription, kind: str) -> str:
    if _link(p.res, profile.SUCCEEDING_PRESCRIPTION) is not None:
        return INACTIVE  # TKB: only the last prescription of a chain is active
    if kind == DISCONTINUATION:
        # The utsättning is the chain's last word: active whatever FHIR says about the stop order itself,
        # unless the stop order was cancelled.
        return INACTIVE if p.res.status == "cancelled" else ACTIVE
    if p.res.status not in p.status_table:
        raise MappingError("status", "this status cannot be mapped to Active or Inactive")
    return p.status_table[p.res.status]


def _self_medication(res: Any, default: bool) -> bool:
    ext = profile.extension(res, profile.SELF_MEDICATION)
    if ext is not None and ext.valueBoolean is not None:
        return cast(bool, ext.valueBoolean)
    return default


def _last_updated(res: Any) -> Any:
    return res.meta.lastUpdated if res.meta else None


def _ext_time(res: Any, url: str) -> str | None:
    ext = profile.extension(res, url)
    return timefmt.timestamp(ext.valueDateTime) if ext is not None else None


def _bounds(dosages: list[Any]) -> tuple[datetime | None, datetime | None]:
    """A request's treatment period from its dosages' timing.repeat.boundsPeriod; open if any dosage is."""
    starts, ends, open_ended = [], [], not dosages
    for d in dosages:
        rep = d.timing.repeat if d.timing else None
        bounds = rep.boundsPeriod if rep else None
        if bounds is None:
            open_ended = True
            continue
        if bounds.start:
            starts.append(timefmt.to_local(bounds.start))
        if bounds.end:
            ends.append(timefmt.to_local(bounds.end))
        else:
            open_ended = True
    return (min(starts) if starts else None), (None if open_ended or not ends else max(ends))


def _notes(notes: Any) -> str | None:
    texts = [n.text for n in notes or [] if n.text and n.text.strip()]
    return "\n\n".join(texts) or None


# -- references and identifiers -------------------------------------------------------------------
def _contained(res: Any, reference: str) -> Any | None:
    return next((c for c in res.contained or [] if c.id == reference[1:]), None)


def _target(ref: Any, res: Any, ctx: Context) -> Any | None:
    reference = ref.reference or ""
    if reference.startswith("#"):
        return _contained(res, reference)
    return ctx.resolve(ref)


def _kind(ref: Any, res: Any, ctx: Context) -> str | None:
    """The resource type a reference points to, from its type, its target, its URL or its identifier."""
    if ref is None:
        return None
    if ref.type:
        return cast("str | None", ref.type)
    target = _target(ref, res, ctx)
    if target is not None:
        return cast("str | None", target.get_resource_type())
    m = _REF_TYPE.search(ref.reference or "")
    if m:
        return m.group(1)
    ident = ref.identifier
    if ident is not None:
        if codes.is_hsa_system(ident.system):
            return "Practitioner"
        if codes.oid_for(ident.system) in (codes.PERSONNUMMER, codes.SAMORDNINGSNUMMER):
            return "Patient"
    return None


def _ii(system: str | None, value: str | None, source: str, field: str) -> tuple[str, str | None]:
    """An IIType: a UUID stands alone as root; an OID system is the root; else the national local-id OID
    with extension "<source-system HSA-id>:<id>"."""
    if not value or not value.strip():
        raise MappingError(field, "identifier without value")
    m = _UUID.match(value)
    if m:
        return m.group(1), None
    oid = system[8:] if system and system.startswith("urn:oid:") else None
    if oid and codes.OID_PATTERN.match(oid) and oid != LOCAL_ID_ROOT:
        return oid, value
    prefix = f"{source}:"
    return LOCAL_ID_ROOT, value if value.startswith(prefix) else prefix + value


def _prescription_id(res: Any, ctx: Context) -> tuple[str, str | None]:
    """The prescription id is the document id (TKB: prescriptionId corresponds to documentId)."""
    source = ctx.source_system(res)
    for ident in res.identifier or []:
        if ident.value:
            return _ii(ident.system, ident.value, source, "identifier")
    return _ii(None, res.id, source, "id")


def _link(res: Any, url: str) -> Any | None:
    ext = profile.extension(res, url)
    if ext is None:
        return None
    return ext.valueReference or ext.valueIdentifier


def _linked_id(link: Any, res: Any, ctx: Context, source: str, field: str) -> tuple[str, str | None] | None:
    """The prescriptionId of another link of the chain: the reference's identifier, else the target's own
    prescription id, else the referenced id read as a local id."""
    if link is None:
        return None
    if isinstance(link, Identifier):
        return _ii(link.system, link.value, source, field)
    if link.identifier is not None and link.identifier.value:
        return _ii(link.identifier.system, link.identifier.value, source, field)
    target = _target(link, res, ctx)
    if target is not None and target.get_resource_type() in ("MedicationRequest", "MedicationStatement"):
        return _prescription_id(target, ctx)
    m = _REF_ID.search(link.reference or "")
    if not m:
        raise MappingError(field, "reference without identifier or id")
    return _ii(None, m.group(1), source, field)


def _chain_id(res: Any, source: str) -> tuple[str, str | None] | None:
    ext = profile.extension(res, profile.PRESCRIPTION_CHAIN_ID)
    if ext is None:
        return None
    if ext.valueIdentifier is None:
        raise MappingError("extension(prescription-chain-id)", "needs a valueIdentifier")
    return _ii(
        ext.valueIdentifier.system, ext.valueIdentifier.value, source, "extension(prescription-chain-id)"
    )


# -- professionals in the body ------------------------------------------------------------------------
def _actor_extension(res: Any, url: str) -> tuple[Any, Any] | None:
    """(practitioner reference, time) of a complex prescriber/evaluator extension."""
    ext = profile.extension(res, url)
    if ext is None:
        return None
    who = profile.extension(ext, "practitioner")
    when = profile.extension(ext, "time")
    return (who.valueReference if who else None), (when.valueDateTime if when else None)


def _actor(ref: Any, time: Any, res: Any, ctx: Context, field: str) -> Professional:
    """A prescriber, evaluator, förskrivare or administering professional: who and their org unit, never a
    care unit or care giver (TKB Övriga regler 1.9). The reference may point into `contained`."""
    with ctx.mapping(res):  # `#id` resolves into res's container
        found = ctx.professional(ref, time, _UNATTRIBUTED, field)
    return replace(found, care_unit=None, care_giver=None)


# -- codes ------------------------------------------------------------------------------------------
def _coded(concept: Any) -> tuple[str, str, str] | None:
    """The first coding with a known system as (code, OID, display); display falls back to the code as the
    TKB allows."""
    for coding in getattr(concept, "coding", None) or []:
        oid = codes.oid_for(coding.system)
        if oid and coding.code:
            return coding.code, oid, coding.display or coding.code
    return None


def _cv(b: rivta_xml.Builder, parent: Any, name: str, concept: Any) -> None:
    """A free CVType: a coding with a known system and a display, else the text as originalText."""
    if concept is None:
        return
    for coding in concept.coding or []:
        oid = codes.oid_for(coding.system)
        if oid and coding.code and coding.display:
            b.cv(parent, name, coding.code, oid, coding.display)
            return
    text = concept.text or next(
        (c.display or c.code for c in concept.coding or [] if c.display or c.code), None
    )
    if text:
        b.cv(parent, name, original_text=text)


def _reasons(b: rivta_xml.Builder, mp: Any, reasons: Any) -> None:
    """Coded reasons (NKOO/SNOMED CT): the first is the principal reason, the others additional ones."""
    coded = [(cv, concept) for concept in reasons or [] if (cv := _coded(concept))]
    for i, (cv, concept) in enumerate(coded):
        el = b.node(mp, "principalPrescriptionReason" if i == 0 else "additionalPrescriptionReason")
        b.cv(el, "reason", *cv, field="reasonCode")
        if cv[0] == OTHER_REASON:
            b.text(el, "otherReason", concept.text)


def _purpose(reasons: Any) -> str | None:
    """Reasons given only as text are the treatment purpose ("Mot högt blodtryck")."""
    texts = [c.text for c in reasons or [] if not _coded(c) and c.text and c.text.strip()]
    return "; ".join(texts) or None


def _text_of(concept: Any) -> str | None:
    if concept is None:
        return None
    return concept.text or next((c.display for c in concept.coding or [] if c.display), None)


# -- the drug -------------------------------------------------------------------------------------------
def _drug_of(res: Any, concept: Any, reference: Any, ctx: Context) -> _Drug:
    drug = _drug_choice(*_medication(res, concept, reference, ctx, "medication[x]"))
    if drug is None:
        raise MappingError(
            "medication[x]",
            "no drug: needs an NPL-id, ATC, NPL-pack-id or varunummer coding, "
            "a Medication with ingredients, or a text",
        )
    return drug


def _medication(res: Any, concept: Any, reference: Any, ctx: Context, field: str) -> tuple[Any, Any]:
    """(code concept, Medication or None) from medicationCodeableConcept or a (contained) Medication."""
    if concept is not None:
        return concept, None
    if reference is None:
        return None, None
    target = _target(reference, res, ctx)
    if target is not None and target.get_resource_type() == "Medication":
        return target.code, target
    if reference.display:
        return SimpleNamespace(coding=[], text=reference.display), None
    raise MappingError(field, "the referenced Medication is not available")


def _drug_choice(concept: Any, med: Any) -> _Drug | None:
    """Product (NPL-id/ATC) > article (NPL-pack-id) > merchandise (varunummer) > generics > free text."""
    text = getattr(concept, "text", None)
    found: dict[str, tuple[str, str, str]] = {}
    for c in getattr(concept, "coding", None) or []:
        if not c.code:
            continue
        if c.system == profile.VARUNUMMER:
            found.setdefault("varunummer", (c.code, ATC, c.display or c.code))
            continue
        oid = codes.oid_for(c.system)
        if oid == NPL_ID:
            found.setdefault("npl", (c.code, NPL_ID, c.display or text or c.code))
        elif oid == NPL_PACK_ID:
            found.setdefault("pack", (c.code, NPL_PACK_ID, c.display or text or c.code))
        elif oid == ATC:
            found.setdefault("atc", (c.code, ATC, c.display or c.code))
    form = _text_of(med.form) if med is not None else None
    ingredient = (med.ingredient or [None])[0] if med is not None else None
    strength = _strength(ingredient.strength) if ingredient is not None else None
    if "npl" in found or "atc" in found:
        return _Drug(
            "drug",
            npl=found.get("npl"),
            atc=found.get("atc"),
            pack=found.get("pack"),
            form=form,
            strength=strength,
        )
    if "pack" in found:
        return _Drug("drugArticle", article=found["pack"])
    if "varunummer" in found:
        return _Drug("merchandise", article=found["varunummer"])
    if ingredient is not None:
        substance = _text_of(ingredient.itemCodeableConcept)
        if substance or strength:
            return _Drug("generics", text=substance, form=form, strength=strength)
    free = text or next((c.display for c in getattr(concept, "coding", None) or [] if c.display), None)
    if free and free.strip():
        return _Drug("unstructuredDrugInformation", text=free)
    return None


def _strength(ratio: Any) -> tuple[str, str] | None:
    """Ingredient strength as (value, unit); a measured denominator makes the unit "mg/ml"."""
    num = ratio.numerator if ratio is not None else None
    if num is None or num.value is None:
        return None
    unit = _unit(num)
    den = ratio.denominator
    den_unit = _unit(den) if den is not None else "1"
    if den_unit != "1" and not den_unit.startswith("{"):
        count = "" if den.value in (None, 1) else f"{_num(den.value)} "
        unit = f"{unit}/{count}{den_unit}"
    return _num(num.value), unit


def _render_drug(b: rivta_xml.Builder, parent: Any, drug: _Drug, route: Any = None) -> Any:
    el = b.node(parent, "drug")
    choice = b.node(el, drug.kind)
    if drug.kind == "unstructuredDrugInformation":
        b.text(choice, "unstructuredInformation", drug.text)
    elif drug.kind == "merchandise":
        assert drug.article is not None  # merchandise and drugArticle are only made with their article
        b.cv(choice, "articleNumber", *drug.article)
    elif drug.kind == "drugArticle":
        assert drug.article is not None
        b.cv(choice, "nplPackId", *drug.article)
    elif drug.kind == "drug":
        if drug.npl:
            b.cv(choice, "nplId", *drug.npl)
        if drug.atc:
            b.cv(choice, "atcCode", *drug.atc)
        _cv(b, choice, "routeOfAdministration", route)
        b.text(choice, "pharmaceuticalForm", drug.form)
        if drug.strength:
            b.text(choice, "strength", drug.strength[0])
            b.text(choice, "strengthUnit", drug.strength[1])
    else:
        b.text(choice, "substance", drug.text)
        if drug.strength:
            _pq(b, choice, "strength", *drug.strength)
        b.text(choice, "form", drug.form)
    return el


# -- dosage ---------------------------------------------------------------------------------------------
def _num(value: Any) -> str:
    """An xs:double without exponent: 2, 0.5, 12.5."""
    return format(Decimal(str(value)).normalize(), "f")


def _unit(q: Any) -> str:
    """A quantity's unit: the UCUM code when the quantity is UCUM-coded, else its unit text."""
    if q.system == UCUM and q.code:
        return cast(str, q.code)
    return q.unit or q.code or "1"


def _pq(b: rivta_xml.Builder, parent: Any, name: str, value: Any, unit: str) -> None:
    el = b.node(parent, name)
    b.text(el, "value", _num(value))
    b.text(el, "unit", unit)


def _pq_interval(b: rivta_xml.Builder, parent: Any, name: str, dose: tuple[Any, Any, str]) -> None:
    el = b.node(parent, name)
    low, high, unit = dose
    b.text(el, "low", _num(low) if low is not None else None)
    b.text(el, "high", _num(high) if high is not None else None)
    b.text(el, "unit", unit)


def _dose(d: Any) -> tuple[tuple[Any, Any, str], str | None] | None:
    """((low, high, UCUM unit), unit text) of a Dosage's first dose."""
    for dr in d.doseAndRate or []:
        q = dr.doseQuantity
        if q is not None and q.value is not None:
            return (q.value, q.value, _unit(q)), q.unit
        r = dr.doseRange
        low = r.low.value if r is not None and r.low is not None else None
        high = r.high.value if r is not None and r.high is not None else None
        if low is not None or high is not None:
            bound = r.low if low is not None else r.high
            return (low, high, _unit(bound)), bound.unit
    return None


def _dosage(b: rivta_xml.Builder, drug_el: Any, d: Any) -> None:
    el = b.node(drug_el, "dosage")
    rep = d.timing.repeat if d.timing else None
    length = _length_of_treatment(rep)
    if length:
        lot = b.node(el, "lengthOfTreatment")
        _pq_interval(b, lot, "treatmentInterval", length)
        b.text(lot, "isMaximumTreatmentTime", False)
    dose = _dose(d)
    b.text(el, "dosageInstruction", _instruction(d, dose))
    if dose and dose[1]:
        b.cv(el, "unitDose", original_text=dose[1])
    b.text(el, "shortNotation", d.patientInstruction)
    as_needed = bool(d.asNeededBoolean) or d.asNeededCodeableConcept is not None
    if not as_needed:
        if not _schedule(b, b.node(el, "setDosage"), d, dose, as_needed=False):
            raise MappingError("dosage", "a scheduled dosage needs a dose with timing, or a text")
    _maximum(b, el, d.maxDosePerPeriod)
    if as_needed:
        cond = b.node(el, "conditionalDosage")
        b.text(cond, "conditionDescription", _condition(d))
        _schedule(b, cond, d, dose, as_needed=True)


def _length_of_treatment(rep: Any) -> tuple[Any, Any, str] | None:
    if rep is None:
        return None
    if rep.boundsDuration is not None and rep.boundsDuration.value is not None:
        q = rep.boundsDuration
        return q.value, q.value, _unit(q)
    r = rep.boundsRange
    if r is not None and r.low is not None and r.low.value is not None:
        return r.low.value, (r.high.value if r.high else None), _unit(r.low)
    return None


def _schedule(b: rivta_xml.Builder, parent: Any, d: Any, dose: Any, as_needed: bool) -> bool:
    """One of frequency/period/occasion/single/unstructured dosage; False when nothing could be said."""
    rep = d.timing.repeat if d.timing else None
    events = (d.timing.event or []) if d.timing else []
    if dose is not None:
        if rep is not None and (rep.timeOfDay or rep.when) and _occasion(b, parent, rep, dose[0]):
            return True
        if rep is not None and rep.frequency and not (rep.timeOfDay or rep.when):
            _frequency(b, parent, rep, dose[0])
            return True
        if (rep is not None and rep.count == 1 and not rep.frequency) or (len(events) == 1 and rep is None):
            _single(b, parent, dose[0], events[0] if events else None)
            return True
        if as_needed and rep is None and not events:
            _single(
                b, parent, dose[0], None
            )  # "1 tablett vid behov": one intake each time the condition holds
            return True
    if d.text and d.text.strip():
        b.text(b.node(parent, "unstructuredDosageInformation"), "text", d.text)
        return True
    return False


def _frequency(b: rivta_xml.Builder, parent: Any, rep: Any, dose: Any) -> None:
    period = Decimal(str(1 if rep.period is None else rep.period))
    unit = rep.periodUnit or "d"
    if period <= 0:
        raise MappingError("dosage.timing.repeat.period", "must be positive")
    if rep.frequency == 1 and period != 1:  # "var 6:e timme"
        el = b.node(parent, "periodDosage")
        _pq_interval(b, el, "dose", dose)
        _pq(b, el, "period", period, unit)
        return
    el = b.node(parent, "frequencyDosage")
    _pq_interval(b, el, "dose", dose)
    _pq(b, el, "frequency", round(Decimal(rep.frequency) / period, 4), f"/{unit}")


def _occasion(b: rivta_xml.Builder, parent: Any, rep: Any, dose: Any) -> bool:
    """Fixed times of day ("kl 08 och 20") as an occasion dosage over a period of 1..28 days."""
    unit = rep.periodUnit or "d"
    if unit not in _DAYS_PER:
        return False
    days = Decimal(str(1 if rep.period is None else rep.period)) * _DAYS_PER[unit]
    if not 0 < days <= MAX_OCCASION_DAYS:
        return False
    el = b.node(parent, "occasionDosage")
    _pq(b, el, "period", days, "d")
    moments = [t.strftime("%H:%M") if hasattr(t, "strftime") else str(t)[:5] for t in rep.timeOfDay or []]
    moments += [_WHEN.get(w, w) for w in rep.when or []]
    for moment in moments:
        adm = b.node(el, "administration")
        _pq_interval(b, adm, "dose", dose)
        b.text(adm, "time", moment)
        b.text(adm, "dayOfPeriod", 1)
    return True


def _single(b: rivta_xml.Builder, parent: Any, dose: Any, time: Any) -> None:
    el = b.node(parent, "singleDose")
    _pq_interval(b, el, "dose", dose)
    b.text(el, "time", timefmt.timestamp(time))


def _maximum(b: rivta_xml.Builder, parent: Any, ratio: Any) -> None:
    """maxDosePerPeriod ("högst 3 tabletter per dygn") as a period dosage of the maximum amount."""
    if ratio is None or ratio.numerator is None or ratio.denominator is None:
        return
    num, den = ratio.numerator, ratio.denominator
    if num.value is None or den.value is None:
        return
    el = b.node(b.node(parent, "maximumDosage"), "periodDosage")
    _pq_interval(b, el, "dose", (None, num.value, _unit(num)))
    _pq(b, el, "period", den.value, _unit(den))


def _condition(d: Any) -> str:
    text = _text_of(d.asNeededCodeableConcept)
    if not text:
        text = next((_text_of(c) for c in d.additionalInstruction or [] if _text_of(c)), None)
    return text or "vid behov"


def _instruction(d: Any, dose: Any) -> str | None:
    """Dosage.text; else a plain description built from the structure (TKB: dosageInstruction 1..1)."""
    if d.text and d.text.strip():
        return cast("str | None", d.text)
    rep = d.timing.repeat if d.timing else None
    parts = []
    if d.asNeededBoolean or d.asNeededCodeableConcept is not None:
        parts.append(_condition(d) + ":")
    if dose:
        (low, high, unit), label = dose
        amount = _num(low) if low is not None else ""
        if high is not None and high != low:
            amount = f"{amount}-{_num(high)}" if amount else f"högst {_num(high)}"
        parts.append(f"{amount} {label or unit}")
    if rep is not None and rep.timeOfDay:
        parts.append("kl. " + ", ".join(t.strftime("%H:%M") for t in rep.timeOfDay))
    elif rep is not None and rep.when:
        parts.append(", ".join(_WHEN.get(w, w) for w in rep.when))
    elif rep is not None and rep.frequency:
        unit = _UNIT_NAMES.get(rep.periodUnit or "d", rep.periodUnit or "")
        per = "" if (rep.period or 1) == 1 else f"{_num(rep.period)} "
        parts.append(f"{rep.frequency} gång{'er' if rep.frequency > 1 else ''} per {per}{unit}")
    return " ".join(parts) or None


# -- förskrivning and administrations ---------------------------------------------------------------
def _dispensation(
    b: rivta_xml.Builder,
    mp: Any,
    req: Any,
    drug: _Drug,
    prescriber: Professional | None,
    dosages: list[Any],
    ctx: Context,
    source: str,
) -> None:
    """MedicationRequest.dispenseRequest -> dispensationAuthorization; groupIdentifier is its id."""
    dr = req.dispenseRequest
    if dr is None:
        return
    group = req.groupIdentifier
    if group is None or not group.value:
        raise MappingError(
            "groupIdentifier", "a dispenseRequest needs the förskrivning id in groupIdentifier"
        )
    if prescriber is None:
        raise MappingError("requester", "a dispenseRequest needs a prescribing professional")
    signatura = next(filter(None, (_instruction(d, _dose(d)) for d in dosages)), None)
    if not signatura:
        raise MappingError(
            "dosageInstruction.text", "a dispenseRequest needs a dosage text (prescriptionSignatura)"
        )
    el = b.node(mp, "dispensationAuthorization")
    b.ii(el, "dispensationAuthorizationId", *_ii(group.system, group.value, source, "groupIdentifier"))
    b.text(el, "validUntil", timefmt.day(dr.validityPeriod.end) if dr.validityPeriod else None)
    pharmacy = _pharmacy(dr.performer, req, ctx)
    if pharmacy:
        b.ii(el, "receivingPharmacy", *pharmacy)
    if dr.dispenseInterval is not None and dr.dispenseInterval.value is not None:
        _pq(b, el, "minimumDispensationInterval", dr.dispenseInterval.value, _unit(dr.dispenseInterval))
    q = dr.quantity
    if q is not None and q.value is not None and (q.unit or q.code):  # TKB: both or neither
        b.text(el, "totalAmount", _num(q.value))
        b.text(el, "packageUnit", q.unit or q.code)
    rivta_xml.professional(b, el, "dispensationAuthorizer", prescriber)
    b.text(el, "prescriptionSignatura", signatura)
    if req.substitution is not None and req.substitution.allowedBoolean is False:
        b.text(el, "nonReplaceable", "Prescriber")
    dispensed = _dispensed(drug)
    if dispensed:
        _render_drug(b, el, dispensed)


def _dispensed(drug: _Drug) -> _Drug | None:
    """The förskrivna article: the NPL-pack-id when known; a product only with its NPL-id (1..1 there)."""
    if drug.kind != "drug":
        return drug
    if drug.pack:
        return _Drug("drugArticle", article=drug.pack)
    return replace(drug, pack=None) if drug.npl else None


def _pharmacy(ref: Any, res: Any, ctx: Context) -> tuple[str, str] | None:
    if ref is None:
        return None
    idents = [ref.identifier] if ref.identifier else []
    target = _target(ref, res, ctx)
    if target is not None:
        idents += list(getattr(target, "identifier", None) or [])
    for ident in idents:
        oid = codes.oid_for(ident.system)
        if oid and ident.value:  # TKB Övriga regler 1.5: extension required
            return oid, ident.value
    return None


def _administrations(
    b: rivta_xml.Builder, mp: Any, res: Any, ctx: Context, source: str, document_id: str
) -> None:
    """Contained MedicationAdministration resources that took place -> administration."""
    for adm in res.contained or []:
        if adm.get_resource_type() != "MedicationAdministration" or adm.status not in _GIVEN:
            continue
        field = "contained(MedicationAdministration)"
        el = b.node(mp, "administration")
        if any(i.value for i in adm.identifier or []):
            ident = next(i for i in adm.identifier if i.value)
            b.ii(el, "administrationId", *_ii(ident.system, ident.value, source, field + ".identifier"))
        elif adm.id:
            b.ii(el, "administrationId", LOCAL_ID_ROOT, f"{source}:{document_id}#{adm.id}")
        else:
            raise MappingError(field + ".id", "an administration needs an id or identifier")
        period = adm.effectivePeriod
        start = adm.effectiveDateTime or (period.start if period else None)
        end = adm.effectiveDateTime or (period.end if period else None)
        if start is None and end is None:
            raise MappingError(field + ".effective[x]", "an administration needs its time")
        when = b.node(el, "administrationTime")
        b.text(when, "start", timefmt.timestamp(start))
        b.text(when, "end", timefmt.timestamp(end))
        b.text(el, "administrationComment", _notes(adm.note))
        _cv(b, el, "routeOfAdministration", adm.dosage.route if adm.dosage else None)
        performer = adm.performer[0].actor if adm.performer else None
        signature = profile.extension(adm, profile.SIGNATURE_TIME)
        signed = signature.valueDateTime if signature is not None else (end or start)
        rivta_xml.professional(
            b,
            el,
            "administeringHealthcareProfessional",
            _actor(performer, signed, res, ctx, field + ".performer"),
        )
        concept, med = _medication(
            res, adm.medicationCodeableConcept, adm.medicationReference, ctx, field + ".medication[x]"
        )
        drug = _drug_choice(concept, med)
        if drug is not None:
            drug_el = _render_drug(b, el, drug)
            _given_dose(b, drug_el, adm.dosage, start)


def _given_dose(b: rivta_xml.Builder, drug_el: Any, dosage: Any, time: Any) -> None:
    """The given dose as a single dose (administration dosage carries no instruction, TKB 1.11)."""
    q = dosage.dose if dosage is not None else None
    if q is None or q.value is None:
        return
    el = b.node(drug_el, "dosage")
    if q.unit:
        b.cv(el, "unitDose", original_text=q.unit)
    _single(b, b.node(el, "setDosage"), (q.value, q.value, _unit(q)), time)


MAPS = (Map("MedicationStatement", map_medication_statement), Map("MedicationRequest", map_medication_request))
