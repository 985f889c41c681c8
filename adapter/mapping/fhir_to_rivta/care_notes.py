"""A FHIR care note (DocumentReference or Composition), read once for every GetCareDocumentation version.

Reading the FHIR resource (which elements give the note's identity, people, times, code, title,
content and dissenting opinions, and which inputs are refused) is the input profile of
mappings/GetCareDocumentation.md; fhir_to_rivta/care_documentation.py (2.1) and
fhir_to_rivta/care_documentation_v3.py (3.0) only render the `Note` read here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from lxml import etree

from adapter.mapping import codes, profile, timefmt
from adapter.mapping.context import NOPATIENT_CODE, NOPATIENT_SYSTEM, PATIENT_ID_PATTERN, Context
from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Signer

NOTE_CODE_OID = "1.2.752.129.2.2.2.11"  # KV Anteckningstyp
# KV Anteckningstyp: code -> display name
NOTE_CODE_NAMES = {
    "utr": "Utredning",
    "atb": "Åtgärd/Behandling",
    "sam": "Sammanfattning",
    "sao": "Samordning",
    "ins": "Inskrivning",
    "slu": "Slutanteckning",
    "auf": "Anteckning utan fysiskt möte",
    "sva": "Slutenvårdsanteckning",
    "bes": "Besöksanteckning",
}
NOTE_CODES = frozenset(NOTE_CODE_NAMES)
# MediaTypeEnum of the 2.1 schema (healthcond description enums); 3.0 takes any media type as text, the
# input profile publishes these in both
MEDIA_TYPES = frozenset({
    "application/dicom", "application/msword", "application/pdf", "audio/basic", "audio/k32adpcm",
    "audio/mpeg", "image/g3fax", "image/gif", "image/jpeg", "image/png", "image/tiff", "model/vrml",
    "multipart/x-hl7-cda-level1", "text/html", "text/plain", "text/rtf", "text/sgml", "text/x-hl7-ft",
    "text/xml", "video/mpeg", "video/x-avi",
})
MAX_EMBEDDED = 100 * 1024  # TKB "binära bilagor": embedded attachments at most 100 KB
_DISSENT = "extension(dissenting-opinion)"
_PERSON_TYPES = frozenset({"PractitionerRole", "Practitioner"})
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XHTML = "{http://www.w3.org/1999/xhtml}"
_BLOCKS = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "table", "thead", "tbody", "tfoot",
    "tr", "caption", "pre", "blockquote", "dl", "dt", "dd", "hr",
})


@dataclass(frozen=True)
class Content:
    """Exactly one of: text, or a media type with value (embedded bytes) xor reference (a URL)."""

    text: str | None = None
    media_type: str | None = None
    value: bytes | None = None
    reference: str | None = None


@dataclass(frozen=True)
class Opinion:
    """A dissenting opinion (input profile extension dissenting-opinion)."""

    opinion_id: tuple[str, str | None] | None  # (root, extension)
    author_time: str  # YYYYMMDDhhmmss
    opinion: str
    person_id: tuple[str, str]  # (id, type OID)
    person_name: str


@dataclass(frozen=True)
class Note:
    """Everything a GetCareDocumentation record says, read from one FHIR resource."""

    header: Header  # document_time = the note's date (also the author's time)
    note_code: str  # KV Anteckningstyp code
    title: str | None
    content: Content
    opinions: tuple[Opinion, ...]


# -- entry points ------------------------------------------------------------------------------------
def read_document_reference(doc: Any, ctx: Context) -> Note:
    if doc.status != "current":
        # superseded: the replacing DocumentReference carries the note; entered-in-error is withdrawn
        # by dispatch before mapping. Neither may be (re)published.
        raise MappingError("status", "only current notes are published")
    if doc.docStatus == "entered-in-error":
        raise MappingError("docStatus", "entered-in-error notes are withdrawn with status entered-in-error")
    time = _required_time(doc.date, "date")
    signer = _document_reference_signer(doc, ctx)
    if doc.docStatus == "preliminary" and signer is not None:
        raise MappingError("docStatus", "a preliminary note cannot carry a signature")
    encounter = doc.context.encounter[0] if doc.context and doc.context.encounter else None
    title = doc.description or next(
        (c.attachment.title for c in doc.content or [] if c.attachment and c.attachment.title), None)
    return _note(
        res=doc,
        ctx=ctx,
        document_id=_document_reference_id(doc, ctx),
        author_ref=_accountable(doc.author, ctx),
        time=time,
        signer=signer,
        encounter=encounter,
        note_code=_note_code(doc.type, "type"),
        title=title,
        content=_attachment_content(doc.content),
        approved=_approved(doc, ctx),
    )


def read_composition(comp: Any, ctx: Context) -> Note:
    if comp.status == "entered-in-error":
        raise MappingError("status", "entered-in-error notes are withdrawn, not published")
    time = _required_time(comp.date, "date")
    signer = _composition_signer(comp, ctx)
    if comp.status == "preliminary" and signer is not None:
        raise MappingError("status", "a preliminary note cannot carry a legal attester")
    text = _sections_text(comp.section)
    if not text:
        raise MappingError("section.text", "no narrative text to publish")
    return _note(
        res=comp,
        ctx=ctx,
        document_id=_composition_id(comp),
        author_ref=_accountable(comp.author, ctx),
        time=time,
        signer=signer,
        encounter=comp.encounter,
        note_code=_note_code(comp.type, "type"),
        title=comp.title,
        content=Content(text=text),
        approved=_approved(comp, ctx),
    )


# -- the note ------------------------------------------------------------------------------------------
def _note(*, res: Any, ctx: Context, document_id: str, author_ref: Any, time: Any, signer: Signer | None,
          encounter: Any, note_code: str, title: str | None, content: Content, approved: bool) -> Note:
    # authorTime is the note's registration time, the same FHIR element as documentTime (see the doc).
    author = ctx.professional(author_ref, time, res, "date")
    header = Header(
        document_id=document_id,
        source_system=ctx.source_system(res),
        patient=ctx.patient(res.subject),
        author=author,
        approved_for_patient=approved,
        document_time=timefmt.timestamp(time),
        signer=signer,
        care_contact=ctx.care_contact(encounter),
    )
    return Note(
        header=header,
        note_code=note_code,
        title=clean(title) if title else None,
        content=content,
        opinions=tuple(_dissenting_opinion(ext) for ext in profile.extensions(res, profile.DISSENTING_OPINION)),
    )


def _required_time(value: Any, field: str) -> Any:
    if value is None:
        raise MappingError(field, "missing (it gives documentTime and authorTime)")
    return value


# -- identifiers, people, flags ----------------------------------------------------------------------
def _document_reference_id(doc: Any, ctx: Context) -> str:
    if doc.masterIdentifier is not None and doc.masterIdentifier.value:
        return cast(str, doc.masterIdentifier.value)
    return ctx.document_id(doc)


def _composition_id(comp: Any) -> str:
    if comp.identifier is not None and comp.identifier.value:
        return cast(str, comp.identifier.value)
    if comp.id:
        return cast(str, comp.id)
    raise MappingError("identifier", "no document id (identifier.value or id)")


def _accountable(authors: Any, ctx: Context) -> Any:
    """The first author that is a person (PractitionerRole or Practitioner)."""
    if not authors:
        raise MappingError("author", "no author (the accountable professional)")
    for ref in authors:
        if _is_person(ref, ctx):
            return ref
    raise MappingError("author", "no PractitionerRole or Practitioner author")


def _is_person(ref: Any, ctx: Context) -> bool:
    target = ctx.resolve(ref)
    if target is not None:
        return target.get_resource_type() in _PERSON_TYPES
    if ref.reference:
        return bool(_PERSON_TYPES.intersection(ref.reference.split("/")))
    return ref.type in _PERSON_TYPES or ref.identifier is not None  # a logical reference (HSA-id)


def _approved(res: Any, ctx: Context) -> bool:
    if not ctx.approved_for_patient(res):
        return False
    for label in getattr(res, "securityLabel", None) or []:
        for coding in label.coding or []:
            if coding.system == NOPATIENT_SYSTEM and coding.code == NOPATIENT_CODE:
                return False
    return True


def _document_reference_signer(doc: Any, ctx: Context) -> Signer | None:
    ext = profile.extension(doc, profile.SIGNATURE_TIME)
    time = ext.valueDateTime if ext is not None else None
    if doc.authenticator is None and time is None:
        return None
    if doc.authenticator is None:
        raise MappingError("authenticator", "a signature time needs the authenticator")
    if time is None:
        raise MappingError("extension(signature-time)", "an authenticator needs a signature time")
    return ctx.signer(doc.authenticator, time)


def _composition_signer(comp: Any, ctx: Context) -> Signer | None:
    for attester in comp.attester or []:
        if attester.mode != "legal":
            continue
        if attester.time is None:
            raise MappingError("attester.time", "a legal attester needs the signature time")
        if attester.party is None:
            raise MappingError("attester.party", "a legal attester needs the signer")
        return ctx.signer(attester.party, attester.time)
    return None


def _note_code(concept: Any, field: str) -> str:
    for coding in (concept.coding or []) if concept is not None else []:
        if codes.oid_for(coding.system) == NOTE_CODE_OID:
            if coding.code not in NOTE_CODES:
                raise MappingError(f"{field}.coding", "not a KV Anteckningstyp code")
            return cast(str, coding.code)
    raise MappingError(field, f"no KV Anteckningstyp code ({profile.NOTE_CODE})")


# -- note content ---------------------------------------------------------------------------------------
def _attachment_content(contents: Any) -> Content:
    """Plain text from the first inline text/plain attachment, else the first attachment the schema's
    MediaTypeEnum allows, as multimediaEntry."""
    attachments = [c.attachment for c in contents or [] if c.attachment is not None]
    for att in attachments:
        mime, params = _media_type(att.contentType)
        if mime == "text/plain" and att.data is not None:
            return Content(text=_plain_text(att.data, params.get("charset", "utf-8")))
    for att in attachments:
        mime, _ = _media_type(att.contentType)
        if mime in MEDIA_TYPES:
            return _multimedia(att, mime)
    if not attachments:
        raise MappingError("content.attachment", "missing")
    raise MappingError("content.attachment.contentType", "no text/plain or contract media type")


def _media_type(content_type: str | None) -> tuple[str | None, dict[str, str]]:
    if not content_type:
        return None, {}
    mime, *rest = content_type.split(";")
    params = {}
    for part in rest:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return mime.strip().lower(), params


def _plain_text(data: bytes, charset: str) -> str:
    try:
        text = data.decode("utf-8-sig" if charset.lower() in ("utf-8", "utf8") else charset)
    except (LookupError, UnicodeDecodeError):
        raise MappingError("content.attachment.data", "text is not in the declared charset") from None
    text = clean(text)
    if not text:
        raise MappingError("content.attachment.data", "empty note text")
    return text


def _multimedia(att: Any, mime: str) -> Content:
    if att.data is not None and len(att.data) <= MAX_EMBEDDED:
        if not att.data:
            raise MappingError("content.attachment.data", "empty attachment")
        return Content(media_type=mime, value=att.data)
    if att.url:
        # larger than the 100 KB embedding limit (or not inline): sent as a link
        return Content(media_type=mime, reference=att.url)
    if att.data is not None:
        raise MappingError("content.attachment.data", "embedded attachment exceeds 100 KB and has no url")
    raise MappingError("content.attachment", "neither data nor url")


def clean(text: str) -> str:
    """Normalised line ends, no characters XML 1.0 forbids, no trailing blanks."""
    text = _XML_UNSAFE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n").strip()


def _sections_text(sections: Any) -> str:
    parts: list[str] = []
    for sec in sections or []:
        lines = []
        if sec.title:
            lines.append(clean(sec.title))
        if sec.text is not None and sec.text.div and sec.text.status != "empty":
            body = _narrative_text(sec.text.div, "section.text.div")
            if body:
                lines.append(body)
        nested = _sections_text(sec.section)
        if nested:
            lines.append("\n" + nested)  # sub-sections as paragraphs of their own
        if len(lines) > (1 if sec.title else 0):
            parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _narrative_text(div: str, field: str) -> str:
    """An XHTML narrative as plain text: block elements on lines of their own, list items with "- "."""
    try:
        root = etree.fromstring(div.encode("utf-8"))
    except etree.XMLSyntaxError:
        raise MappingError(field, "narrative is not well-formed XHTML") from None
    out: list[str] = []
    _walk(root, out)
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in "".join(out).split("\n"))
    return clean("\n".join(line for line in lines if line))


def _walk(el: Any, out: list[str]) -> None:
    if not isinstance(el.tag, str):  # comments, processing instructions
        return
    tag = el.tag.removeprefix(_XHTML)
    if tag in ("script", "style"):
        return
    block = tag in _BLOCKS
    if tag == "br" or block:
        out.append("\n")
    if tag == "li":
        out.append("- ")
    if tag in ("td", "th") and el.getprevious() is not None:
        out.append(" | ")
    if tag == "img" and el.get("alt"):
        out.append(f"[{el.get('alt')}]")
    if el.text:
        out.append(_inline(el.text, tag))
    for child in el:
        _walk(child, out)
        if child.tail:
            out.append(_inline(child.tail, tag))
    if block:
        out.append("\n")


def _inline(text: str, tag: str) -> str:
    return text if tag == "pre" else re.sub(r"\s+", " ", text)


# -- dissenting opinions -------------------------------------------------------------------------------
def _dissenting_opinion(ext: Any) -> Opinion:
    parts = {sub.url: sub for sub in ext.extension or []}

    def value(name: str, attr: str) -> Any:
        sub = parts.get(name)
        found = getattr(sub, attr, None) if sub is not None else None
        if isinstance(found, str):
            found = clean(found) or None
        if found is None:
            raise MappingError(f"{_DISSENT}.{name}", f"missing ({attr})")
        return found

    opinion_id = parts.get("opinionId")
    return Opinion(
        opinion_id=_opinion_id(opinion_id.valueIdentifier) if opinion_id is not None else None,
        author_time=timefmt.timestamp(value("authorTime", "valueDateTime")),
        opinion=value("opinion", "valueString"),
        person_id=_person_id(value("personId", "valueIdentifier")),
        person_name=value("personName", "valueString"),
    )


def _opinion_id(ident: Any) -> tuple[str, str | None] | None:
    if ident is None or not ident.value:
        raise MappingError(f"{_DISSENT}.opinionId", "missing (valueIdentifier.value)")
    if ident.system:
        return codes.oid_for(ident.system) or ident.system, ident.value
    return ident.value, None  # a globally unique id (e.g. a UUID) stands alone as root


def _person_id(ident: Any) -> tuple[str, str]:
    oid = codes.oid_for(ident.system)
    if not oid or not ident.value:
        raise MappingError(f"{_DISSENT}.personId", "needs a person-id system (OID) and a value")
    value = ident.value.replace("-", "").replace("+", "")
    if not PATIENT_ID_PATTERN.match(value):
        raise MappingError(f"{_DISSENT}.personId.value", "person id must be 12 characters without separator")
    return value, oid
