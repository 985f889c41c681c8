"""FHIR CarePlan -> GetCarePlans 2.0 `carePlan` record.

The plan's own text (description, goals, activities, notes, status) is rendered into one UTF-8
text/html document that travels embedded in carePlanBody/content; attachments given with the
project extension `care-plan-content` follow as further content items (mappings/GetCarePlans.md).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlparse

from adapter.mapping import codes, profile, rivta_xml, timefmt
from adapter.mapping.context import HSA_ID_PATTERN, Context
from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Map, Professional, Record, Signer
from adapter.rivta.contracts import GET_CARE_PLANS

(CATEGORY,) = GET_CARE_PLANS.ei_categorizations
# typeOfCarePlanEnum -> heading (Socialstyrelsen's terms), also the title fallback
PLAN_TYPES = {
    "SIP": "Samordnad individuell plan",
    "SPLPTLRV": "Samordnad plan enligt LPT och LRV",
    "SPU": "Samordnad plan vid utskrivning",
    "VP": "Vårdplan",
    "HP": "Habiliteringsplan",
    "RP": "Rehabiliteringsplan",
    "GP": "Genomförandeplan",
    "SVP": "Standardiserad vårdplan",
}
GENERIC_TITLE = "Vård- och omsorgsplan"
# The media types the TKB admits for this contract (all are in the XSD's MediaTypeEnum too).
MEDIA_TYPES = frozenset(
    {"text/plain", "text/html", "image/png", "image/jpeg", "image/tiff", "application/pdf"}
)
MAX_EMBEDDED_BYTES = 100 * 1024  # TKB R1: an embedded attachment is at most 100 KB
RENDERED_MEDIA_TYPE = "text/html"
PUBLISHED_INTENTS = frozenset({"plan", "order"})
CONTENT_FIELD = "extension(care-plan-content)"
ContentItem = tuple[str, str | None, str | None]  # (mediaType, value as base64, reference URL)

_PLAN_STATUS = {"active": "Aktiv", "on-hold": "Vilande", "revoked": "Avbruten", "completed": "Avslutad",
                "unknown": "Okänd"}
_ACTIVITY_STATUS = {"not-started": "ej påbörjad", "scheduled": "planerad", "in-progress": "pågår",
                    "on-hold": "vilande", "completed": "utförd", "cancelled": "inställd",
                    "stopped": "avbruten", "unknown": "okänd"}
_GOAL_STATUS = {"proposed": "föreslaget", "planned": "planerat", "accepted": "accepterat", "active": "aktivt",
                "on-hold": "vilande", "completed": "avslutat", "cancelled": "avbrutet", "rejected": "avvisat"}


def map_care_plan(plan: Any, ctx: Context) -> list[Record]:
    # Only an established plan is published: drafts and proposals are not yet part of the record.
    if plan.status == "draft" or plan.intent not in PUBLISHED_INTENTS:
        return []
    document_time = _document_time(plan)
    author = ctx.professional(plan.author, _author_time(plan), plan, "created")
    _require_org_unit(author)
    plan_type = _plan_type(plan)
    title = _title(plan, plan_type)
    header = Header(
        document_id=ctx.document_id(plan),
        source_system=ctx.source_system(plan),
        patient=ctx.patient(plan.subject),
        author=author,
        approved_for_patient=ctx.approved_for_patient(plan),
        document_title=title,
        document_time=document_time,
        signer=_signer(plan, ctx),
        care_contact=ctx.care_contact(plan.encounter),
    )

    root, b = rivta_xml.record_root(GET_CARE_PLANS)
    rivta_xml.header(b, root, GET_CARE_PLANS, header)
    body = b.node(root, "carePlanBody")
    for media_type, value, reference in _contents(plan, ctx, title, plan_type):
        content = b.node(body, "content")
        b.text(content, "mediaType", media_type)
        b.text(content, "value", value)
        b.text(content, "reference", reference)
    for hsa_id in _participating_units(plan, ctx):
        b.ii(body, "participatingCareUnitHSAId", codes.HSA_ID, hsa_id)
    b.text(body, "typeOfCarePlanEnum", plan_type)

    return [
        Record(
            contract=GET_CARE_PLANS.key,
            header=header,
            fragment=rivta_xml.serialise(root),
            times={"documentTime": document_time},
            category=CATEGORY,
        )
    ]


# -- header -------------------------------------------------------------------------------------
def _document_time(plan: Any) -> str:
    """When the plan was established: `created`, else the start of its period (drives the date filter)."""
    value = plan.created or (plan.period.start if plan.period else None)
    if value is None:
        raise MappingError("created", "no time the plan was established (created or period.start)")
    return cast(str, timefmt.timestamp(value))


def _author_time(plan: Any) -> Any:
    """When the plan was registered: `created`, else meta.lastUpdated, else period.start."""
    last_updated = plan.meta.lastUpdated if plan.meta else None
    return plan.created or last_updated or (plan.period.start if plan.period else None)


def _require_org_unit(author: Professional) -> None:
    # TKB GetCarePlans Regel 4: NPÖ needs healthcareProfessionalOrgUnit with HSA-id and name.
    unit = author.org_unit
    if unit is None or not unit.hsa_id or not unit.name or not unit.name.strip():
        raise MappingError(
            "author", "no organisation unit with HSA-id and name (author PractitionerRole.organization), "
            "required by Regel 4"
        )


def _signer(plan: Any, ctx: Context) -> Signer | None:
    ext = profile.extension(plan, profile.SIGNATURE_TIME)
    if ext is None:
        return None
    if ext.valueDateTime is None:
        raise MappingError("extension(signature-time)", "needs valueDateTime")
    return ctx.signer(plan.author, ext.valueDateTime)


def _plan_type(plan: Any) -> str | None:
    for concept in plan.category or []:
        for coding in concept.coding or []:
            if coding.system == profile.CARE_PLAN_TYPE and coding.code:
                if coding.code not in PLAN_TYPES:
                    raise MappingError("category", "unknown care plan type code (TypeOfCarePlan)")
                return cast("str | None", coding.code)
    return None


def _title(plan: Any, plan_type: str | None) -> str:
    # documentTitle is 1..1 in the TKB (0..1 in the XSD): always give one.
    if plan.title and plan.title.strip():
        return cast(str, plan.title.strip())
    return PLAN_TYPES.get(plan_type or "", GENERIC_TITLE)


# -- body: content ------------------------------------------------------------------------------
def _contents(plan: Any, ctx: Context, title: str, plan_type: str | None) -> Iterator[ContentItem]:
    """(mediaType, value, reference) of every content item: the rendered plan first."""
    rendered = render_html(plan, ctx, title, plan_type).encode("utf-8")
    if len(rendered) > MAX_EMBEDDED_BYTES:
        raise MappingError("description", "the plan's text exceeds the 100 KB limit of embedded content (R1)")
    yield RENDERED_MEDIA_TYPE, _b64(rendered), None
    for ext in profile.extensions(plan, profile.CARE_PLAN_CONTENT):
        yield _attachment(ext.valueAttachment)


def _attachment(att: Any) -> ContentItem:
    if att is None:
        raise MappingError(CONTENT_FIELD, "needs valueAttachment")
    media_type = (att.contentType or "").split(";", 1)[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise MappingError(f"{CONTENT_FIELD}.contentType",
                           "media type not allowed (text/plain, text/html, image/png, image/jpeg, "
                           "image/tiff, application/pdf)")
    if att.data and len(att.data) <= MAX_EMBEDDED_BYTES:
        return media_type, _b64(att.data), None
    if att.url:
        parsed = urlparse(att.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or any(c.isspace() for c in att.url):
            raise MappingError(f"{CONTENT_FIELD}.url", "must be an absolute http(s) URL")
        return media_type, None, att.url
    if att.data:
        raise MappingError(f"{CONTENT_FIELD}.data", "embedded content over 100 KB (R1); give a url instead")
    raise MappingError(CONTENT_FIELD, "needs data or url")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def render_html(plan: Any, ctx: Context, title: str, plan_type: str | None) -> str:
    """The plan as a small self-describing HTML document (charset declared inside, all text escaped)."""
    facts = []
    if plan_type:
        facts.append(("Typ av plan", f"{PLAN_TYPES[plan_type]} ({plan_type})"))
    facts.append(("Status", _PLAN_STATUS.get(plan.status, plan.status)))
    period = _period_text(plan.period)
    if period:
        facts.append(("Giltighetstid", period))
    addresses = [r.display for r in plan.addresses or [] if r.display]
    if addresses:
        facts.append(("Gäller", "; ".join(addresses)))

    parts = [
        '<!DOCTYPE html>\n<html lang="sv"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title></head><body>",
        f"<h1>{_esc(title)}</h1>",
        "".join(f"<p>{_esc(label)}: {_esc(value)}</p>" for label, value in facts),
    ]
    if plan.description and plan.description.strip():
        parts.append(f"<h2>Beskrivning</h2><p>{_esc(plan.description)}</p>")
    _section(parts, "Mål", [_goal_text(ref, plan, ctx) for ref in plan.goal or []])
    _section(parts, "Insatser och aktiviteter", [_activity_text(a, plan, ctx) for a in plan.activity or []])
    _section(parts, "Anteckningar", [n.text for n in plan.note or []])
    parts.append("</body></html>\n")
    return "".join(parts)


def _section(parts: list[str], heading: str, items: list[str | None]) -> None:
    kept = [i for i in items if i and i.strip()]
    if kept:
        parts.append(f"<h2>{_esc(heading)}</h2><ul>")
        parts.extend(f"<li>{_esc(i)}</li>" for i in kept)
        parts.append("</ul>")


def _esc(text: str) -> str:
    return html.escape(text.strip(), quote=True).replace("\r\n", "\n").replace("\n", "<br>")


def _goal_text(ref: Any, plan: Any, ctx: Context) -> str | None:
    goal = _resolve(ref, plan, ctx)
    if goal is None or goal.get_resource_type() != "Goal":
        return cast("str | None", ref.display)  # a goal outside this input is only known by its display text
    if goal.lifecycleStatus == "entered-in-error":
        return None
    due = next((t.dueDate for t in goal.target or [] if t.dueDate), None)
    details = [
        _labelled("status", _GOAL_STATUS.get(goal.lifecycleStatus, goal.lifecycleStatus)),
        _labelled("måluppfyllelse", _concept_text(goal.achievementStatus)),
        _labelled("måldatum", timefmt.to_local(due).date().isoformat() if due else None),
    ]
    text = _concept_text(goal.description) or ""
    return _join(text, details, [n.text for n in goal.note or []])


def _activity_text(activity: Any, plan: Any, ctx: Context) -> str | None:
    detail = activity.detail
    progress = [n.text for n in activity.progress or []]
    outcomes = [_concept_text(c) for c in activity.outcomeCodeableConcept or []]
    if detail is None:
        what = activity.reference.display if activity.reference else ""
        return _join(what or "", [_labelled("resultat", "; ".join(o for o in outcomes if o))], progress)
    if detail.status == "entered-in-error":
        return None
    what = _concept_text(detail.code)
    if detail.description:
        what = f"{what}: {detail.description}" if what else detail.description
    if detail.doNotPerform:
        what = f"Ska inte utföras: {what}"
    performers = ", ".join(p for p in (_display(r, plan, ctx) for r in detail.performer or []) if p)
    details = [
        _labelled("status", _ACTIVITY_STATUS.get(detail.status, detail.status)),
        _labelled("när", _schedule_text(detail)),
        _labelled("utförare", performers),
        _labelled("resultat", "; ".join(o for o in outcomes if o)),
    ]
    return _join(what or "", details, progress)


def _labelled(label: str, value: str | None) -> str | None:
    return f"{label}: {value}" if value and value.strip() else None


def _join(text: str, details: list[str | None], notes: list[str | None]) -> str | None:
    given = [d for d in details if d]
    if given:
        text = f"{text} ({'; '.join(given)})" if text else "; ".join(given)
    extra = [n.strip() for n in notes if n and n.strip()]
    if extra:
        text = "\n".join([text, *extra]) if text else "\n".join(extra)
    return text or None


def _schedule_text(detail: Any) -> str | None:
    if detail.scheduledString:
        return cast("str | None", detail.scheduledString)
    if detail.scheduledPeriod is not None:
        return _period_text(detail.scheduledPeriod)
    if detail.scheduledTiming is not None and detail.scheduledTiming.code is not None:
        return _concept_text(detail.scheduledTiming.code)
    return None


def _period_text(period: Any) -> str | None:
    if period is None:
        return None
    start = timefmt.to_local(period.start).date().isoformat() if period.start else None
    end = timefmt.to_local(period.end).date().isoformat() if period.end else None
    if start and end:
        return f"{start} – {end}"
    if start:
        return f"från {start}"
    return f"till {end}" if end else None


def _concept_text(concept: Any) -> str | None:
    if concept is None:
        return None
    if concept.text:
        return cast("str | None", concept.text)
    return next((c.display or c.code for c in concept.coding or [] if c.display or c.code), None)


def _display(ref: Any, plan: Any, ctx: Context) -> str | None:
    if ref.display:
        return cast("str | None", ref.display)
    target = _resolve(ref, plan, ctx)
    if target is not None and target.get_resource_type() in ("Organization", "CareTeam"):
        return cast("str | None", target.name)
    return None


# -- body: participating care units ---------------------------------------------------------------
def _participating_units(plan: Any, ctx: Context) -> list[str]:
    """HSA-ids of the care units taking part: CarePlan.contributor and the organisations of its careTeam."""
    found: list[str] = []
    for ref in [*(plan.contributor or []), *(plan.careTeam or [])]:
        for hsa_id in _unit_hsa_ids(ref, plan, ctx, depth=0):
            if hsa_id not in found:
                found.append(hsa_id)
    return found


def _unit_hsa_ids(ref: Any, plan: Any, ctx: Context, depth: int) -> Iterator[str]:
    if ref is None or depth > 2:
        return
    if ref.identifier is not None and codes.is_hsa_system(ref.identifier.system) and ref.identifier.value:
        yield _checked_hsa(ref.identifier.value)
        return
    target = _resolve(ref, plan, ctx)
    if target is None:
        return
    rtype = target.get_resource_type()
    if rtype == "Organization":
        for ident in target.identifier or []:
            if codes.is_hsa_system(ident.system) and ident.value:
                yield _checked_hsa(ident.value)
                return
    elif rtype == "PractitionerRole":
        yield from _unit_hsa_ids(target.organization, plan, ctx, depth + 1)
    elif rtype == "CareTeam":
        for participant in target.participant or []:
            yield from _unit_hsa_ids(participant.member, plan, ctx, depth + 1)
            yield from _unit_hsa_ids(participant.onBehalfOf, plan, ctx, depth + 1)
        for org in target.managingOrganization or []:
            yield from _unit_hsa_ids(org, plan, ctx, depth + 1)


def _checked_hsa(value: str) -> str:
    if not HSA_ID_PATTERN.match(value):
        raise MappingError("contributor", "not a valid HSA-id")
    return value


def _resolve(ref: Any, plan: Any, ctx: Context) -> Any | None:
    """A reference target: a contained resource (`#id`) or one the context knows."""
    if ref is None or not ref.reference:
        return None
    if ref.reference.startswith("#"):
        return next((c for c in plan.contained or [] if c.id == ref.reference[1:]), None)
    return ctx.resolve(ref)


MAPS = (Map("CarePlan", map_care_plan),)
