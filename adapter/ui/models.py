"""The REST API's request and answer bodies (described in openapi/ui.json).

Validation messages are Swedish, for the staff page that shows them, and name the field but never repeat
what was sent: a mistyped personnummer is still personal data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapter.mapping.context import HSA_ID_PATTERN

EMERGENCY_REASON_MAX = 500


def check_patient_id(value: str) -> str:
    """Personnummer or samordningsnummer, 12 digits: a possible date (day + 60 for samordningsnummer) and the
    check digit, so a typing error does not open (and log) another person's overview."""
    if not (len(value) == 12 and value.isascii() and value.isdigit()):
        raise ValueError("ska vara 12 siffror utan bindestreck (ÅÅÅÅMMDDNNNN)")
    month, day = int(value[4:6]), int(value[6:8])
    if not (1 <= month <= 12 and (1 <= day <= 31 or 61 <= day <= 91)):
        raise ValueError("innehåller inget möjligt födelsedatum")
    if not _luhn_ok(value[2:]):
        raise ValueError("kontrollsiffran stämmer inte")
    return value


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


class _Who(BaseModel):
    """The user is whoever signed in (session or bearer token); the body only chooses among their assignments."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    care_unit: str = Field(description="The care unit (HSA-id) of the chosen assignment: one of the signed-in "
                                       "user's own (GET /api/session).", examples=["SE2321000016-AKUT"])
    patient: str = Field(description="Personnummer or samordningsnummer: 12 digits without separator, with a "
                                     "valid date and check digit.", examples=["191212121212"])

    @field_validator("care_unit")
    @classmethod
    def _hsa_id(cls, value: str) -> str:
        if not HSA_ID_PATTERN.match(value):
            raise ValueError("ska vara ett HSA-id")
        return value

    @field_validator("patient")
    @classmethod
    def _patient(cls, value: str) -> str:
        return check_patient_id(value)


class OverviewRequest(_Who):
    emergency_reason: str | None = Field(
        None, max_length=EMERGENCY_REASON_MAX,
        description="Emergency access (nödåtkomst): the reason, logged with the access and registered with the "
                    "consent service for a limited time; it must describe the situation (a configured minimum "
                    "length). Absent: no emergency access.",
        examples=["Medvetslös patient, akut läkemedelsgenomgång"])


class ConsentRequest(_Who):
    pass


class StaffAssignment(BaseModel):
    """A medarbetaruppdrag of the signed-in user: a care unit, its care giver and the purpose."""

    name: str
    care_unit: str = Field(description="HSA-id of the care unit")
    care_giver: str = Field(description="HSA-id of the care giver")
    purpose: str = Field(description="The assignment's purpose, e.g. Vård och behandling")


class SessionAnswer(BaseModel):
    """The signed-in user, from the hospital's OpenID provider (or the loopback demo user)."""

    hsa_id: str = Field(description="The employee's HSA-id, from the provider")
    name: str | None
    assignments: list[StaffAssignment] = Field(description="The user's own assignments, the only ones they may "
                                                           "choose")
    csrf_token: str = Field(description="Send it as X-CSRF-Token in every other call of this session")
    demo: bool = Field(description="Demo mode without sign-in (loopback only)")


class SignedOut(BaseModel):
    redirect: str | None = Field(description="The provider's end-session address to send the browser to")


class Attachment(BaseModel):
    """A record's multimedia (a note's multimediaEntry, a care plan's content item)."""

    kind: Literal["image", "text", "file", "link", "reference", "unreadable"] = Field(
        description="image: PNG, JPEG or GIF in `data`, to show; text: text/plain, decoded into `text`; file: any "
                    "other embedded type in `data`, to download, never to open in the page; link: an https "
                    "reference in `url`; reference: any other reference, to show as text only; unreadable: "
                    "embedded data that is not base64")
    media_type: str = Field(description="As the record gives it, e.g. application/pdf")
    name: str = Field(description="A file name for a download: the document id, the entry's number, an extension")
    data: str = Field(description="Base64 (image and file), else empty")
    text: str = Field(description="The decoded text (text), else empty")
    url: str = Field(description="The reference (link and reference), else empty")


class RecordSummary(BaseModel):
    """One shown record, for people: a line for the table and the whole record for when it is opened."""

    date: str = Field(description="YYYY-MM-DD, empty when the record has no date")
    time: str = Field(description="HH:MM of the same moment, empty when only a date is known")
    text: str = Field(description="The record in one line, at most 160 characters")
    full_text: str = Field(description="The whole text (line breaks kept); plain text, never markup")
    attachments: list[Attachment]
    author: str = Field(description="Who documented it (healthcareProfessionalName), empty when not given")
    profession: str = Field(description="The author's profession (healthcareProfessionalRoleCode), or empty")
    author_time: str = Field(description="When it was documented: YYYY-MM-DD HH:MM (or the date alone)")
    unit: str = Field(description="The care unit's name (its HSA-id when neither the record nor [names] has one)")
    care_unit: str = Field(description="HSA-id of the care unit the record belongs to")
    care_giver: str = Field(description="HSA-id of the care giver the record belongs to")
    care_giver_name: str = Field(description="The care giver's name from [names], or empty")
    source: str = Field(description="HSA-id of the source system")
    source_name: str = Field(description="The source system's name ([names], or the [[source]] with that "
                                         "logical address), or empty")
    basis: str = Field(description="Access basis: egen vårdgivare, samtycke or nödåtkomst")
    document_id: str


TabNoticeKind = Literal["consent", "blocked", "block-status-unknown", "failed", "pending"]


class TabNotice(BaseModel):
    """Why a tab may not show everything. Only `consent` is about this kind of information: blocked information
    and information whose block status is unknown are told in the same words in every tab (PDL: the user may
    learn that blocked information exists at a care giver, never its kind)."""

    kind: TabNoticeKind
    text: str


class InformationTab(BaseModel):
    """One kind of information (informationsmängd) with its records, newest first."""

    contract: str = Field(description="The RIVTA contract's name and major version, e.g. GetDiagnosis:2")
    title: str = Field(description="The tab's Swedish name, e.g. Diagnoser")
    records: list[RecordSummary]
    notices: list[TabNotice] = Field(description="What exists but is not shown, and why; sources that failed or "
                                                 "have not answered yet")
    empty_text: str = Field(description="What the tab says when it shows no record")


NoticeKind = Literal["blocked", "consent", "emergency", "failed", "service", "info"]


class Notice(BaseModel):
    """A text PDL requires the user to see."""

    kind: NoticeKind = Field(description="blocked: blocked information exists (the care giver is named, nothing "
                                         "more); consent: other care givers' information needs consent or "
                                         "emergency access; emergency: this access is emergency access; failed: "
                                         "sources that could not be read; service: a national service could not "
                                         "be reached")
    text: str


class SourceStatus(BaseModel):
    """What one source gave for one kind of information, in terms of what is shown: a source whose information
    is all blocked reads exactly like one that had none."""

    source: str = Field(description="The source's name from the configuration")
    address: str = Field(description="The source's logical address (HSA-id)")
    contract: str = Field(description="The RIVTA contract's name and major version, e.g. GetDiagnosis:2")
    information_type: str
    status: Literal["pending", "answered", "failed"] = Field(
        description="pending: no answer yet; answered: it answered (see shown); failed: see reason")
    shown: int = Field(description="Records shown from this source in this tab")
    consent_needed: bool = Field(description="It holds information of this kind that the patient's consent or "
                                             "emergency access would show")
    reason: str = Field(description="Why the source failed (no personal data); empty otherwise")
    text: str = Field(description="The status for people, e.g. \"3 visas\", \"inget att visa\", \"väntar på "
                                  "svar\"")


class OverviewAnswer(BaseModel):
    complete: bool = Field(description="Every source answered, failed or passed the deadline: nothing more comes")
    pending_sources: list[str] = Field(description="Sources (names) that have not answered yet")
    emergency: bool = Field(description="The overview was opened with emergency access")
    consent_needed: bool = Field(description="Other care givers' information is hidden until the patient "
                                             "consents (POST /api/consent) or emergency access is used")
    blocked_care_givers: list[str] = Field(description="Care givers (HSA-id) holding blocked information")
    notices: list[Notice]
    tabs: list[InformationTab] = Field(description="One per information type the adapter reads, always all of "
                                           "them, in NPÖ's order")
    sources: list[SourceStatus]


class ConsentRegistered(BaseModel):
    assertion_id: str = Field(description="The consent's id at the national consent service")
    care_unit: str
    care_giver: str


class AuditVerification(BaseModel):
    entries: int = Field(description="Entries in the local access log")
    ok: bool = Field(description="The hash chain is intact")
    problems: list[str] = Field(description="Altered, inserted or missing entries (by sequence number)")


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorAnswer(BaseModel):
    detail: str = Field(description="What went wrong, in Swedish, without personal data")
    errors: list[FieldProblem] = Field(default_factory=list, description="The fields that were not accepted")
