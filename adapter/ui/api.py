"""The REST API behind the staff page: overview (JSON or FHIR), consent registration, assignments, audit.

Each overview is built by `build_overview`, which applies PDL and logs the access before anything is
returned; if the access cannot be logged, nothing is shown (500).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from adapter.consumer.overview import (
    ConsumerConfig,
    Names,
    Overview,
    overview_stream,
    patient_type_of,
    register_unit_consent,
)
from adapter.consumer.pdl import access_log
from adapter.consumer.pdl.decide import Hidden, UserContext
from adapter.consumer.pdl.soap_call import PdlServiceError, ServiceRefused
from adapter.consumer.staff_settings import reason_problem
from adapter.consumer.summary import empty_text, newest_first, source_rows, tab_notices
from adapter.consumer.view import to_bundle
from adapter.rivta import ids
from adapter.rivta.contracts import INFORMATION_TYPES
from adapter.ui.errors import ApiError
from adapter.ui.guard import Caller, caller
from adapter.ui.models import (
    AuditVerification,
    ConsentRegistered,
    ConsentRequest,
    ErrorAnswer,
    InformationTab,
    Notice,
    NoticeKind,
    OverviewAnswer,
    OverviewRequest,
    RecordSummary,
    SourceStatus,
    StaffAssignment,
    TabNotice,
)

FHIR_JSON = "application/fhir+json"
NDJSON = "application/x-ndjson"
log = logging.getLogger("adapter.ui")
router = APIRouter(prefix="/api")

_INVALID = {422: {"model": ErrorAnswer, "description": "A field was not accepted (named, never repeated)"}}
_SERVICE = {503: {"model": ErrorAnswer, "description": "A national service could not be reached"}}
_INTERNAL = {500: {"model": ErrorAnswer, "description": "Internal error; nothing is shown (with a log id)"}}
_AUTH = {401: {"model": ErrorAnswer, "description": "Not signed in, the session ended, or the bearer token was "
                                                    "not accepted"},
         403: {"model": ErrorAnswer, "description": "Missing or wrong CSRF token, or not one of the user's own "
                                                    "assignments"}}
_LIMIT = {429: {"model": ErrorAnswer, "description": "Too many emergency accesses by this user in the last hour"}}


def _config(request: Request) -> ConsumerConfig:
    return request.app.state.config


def _user(who: Caller, care_unit: str) -> UserContext:
    a = who.own_assignment(care_unit)
    return UserContext(who.user.hsa_id, a.care_unit, a.care_giver, purpose=a.purpose, name=who.user.name)


def _overview_stream(request: Request, body: OverviewRequest, who: Caller) -> AsyncIterator[Overview]:
    """The overview as it grows (`overview_stream`), after the request's checks: the user's own assignment, the
    emergency reason and the hourly emergency limit."""
    user = _user(who, body.care_unit)
    reason = body.emergency_reason
    if reason is not None:
        problem = reason_problem(reason, _config(request).emergency)
        if problem:
            raise ApiError(422, problem, "emergency_reason")
        if not request.app.state.emergency_limit.take(user.employee_hsa_id):
            raise ApiError(429, "för många nödåtkomster den senaste timmen: kontakta din chef eller "
                                "informationssäkerhetsansvarig")
    return overview_stream(_config(request), request.app.state.engine, user, body.patient,
                           patient_type_of(body.patient), emergency_reason=reason,
                           faults=request.app.state.faults, client=request.app.state.client,
                           origin=who.origin(who.own_assignment(body.care_unit)))


async def _overview(request: Request, body: OverviewRequest, who: Caller) -> Overview:
    last = None
    try:
        async for last in _overview_stream(request, body, who):  # noqa: B007 (the last one is the whole overview)
            pass
    except PdlServiceError as exc:
        raise ApiError(503, f"{exc.service} kunde inte nås ({exc.reason})") from None
    assert last is not None and last.complete
    return last


@router.get("/assignments", tags=["staff"], summary="The signed-in user's own assignments (medarbetaruppdrag)",
            response_model=list[StaffAssignment], responses={**_AUTH})
async def assignments(who: Caller = Depends(caller)) -> list[StaffAssignment]:
    return [StaffAssignment(name=a.name, care_unit=a.care_unit, care_giver=a.care_giver, purpose=a.purpose)
            for a in who.user.assignments]


@router.post("/overview", tags=["overview"], response_model=OverviewAnswer,
             summary="A patient's overview from every source, PDL applied, the access logged",
             responses={**_AUTH, **_INVALID, **_LIMIT, **_SERVICE, **_INTERNAL})
async def overview(request: Request, body: OverviewRequest, who: Caller = Depends(caller)) -> OverviewAnswer:
    return to_out(await _overview(request, body, who), _config(request).names)


@router.post("/overview/stream", tags=["overview"], response_class=StreamingResponse,
             summary="The same overview as it arrives: one JSON line per step (NDJSON), each a whole OverviewAnswer",
             description="The first line has every source pending; a line follows each time a source has answered "
                         "(all its information types) and PDL decided and logged what of it is shown; the last line "
                         "is `complete` (every source answered, failed, or the deadline passed). A source that does "
                         "not answer holds only itself. A failure after the first line ends the stream with an "
                         "ErrorAnswer line; nothing more is shown.",
             responses={200: {"description": "Newline-delimited JSON: OverviewAnswer lines, possibly one ErrorAnswer "
                                             "last", "content": {NDJSON: {"schema": {
                                                 "$ref": "#/components/schemas/OverviewAnswer"}}}},
                        **_AUTH, **_INVALID, **_LIMIT, **_INTERNAL})
async def overview_stream_lines(request: Request, body: OverviewRequest,
                                who: Caller = Depends(caller)) -> StreamingResponse:
    stream = _overview_stream(request, body, who)
    names = _config(request).names

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for ov in stream:
                yield to_out(ov, names).model_dump_json().encode() + b"\n"
        except Exception as exc:  # the answer is under way: say so in the stream, without the exception's text
            log_id = ids.uuid4()
            log.error("overview stream ended by an internal error, log id %s (%s)", log_id, type(exc).__name__)
            log.debug("internal error, log id %s", log_id, exc_info=True)
            yield ErrorAnswer(detail=f"Internt fel: ingen mer information visas (logg-id {log_id}).",
                              errors=[]).model_dump_json().encode() + b"\n"
        finally:
            await stream.aclose()

    return StreamingResponse(lines(), media_type=NDJSON, headers={"X-Accel-Buffering": "no"})


@router.post("/overview/fhir", tags=["overview"], response_class=Response,
             summary="The same overview as a FHIR R4 collection Bundle (EHDS-TK)",
             responses={200: {"description": "A FHIR R4 Bundle; emergency access is marked BTG in meta.security",
                              "content": {FHIR_JSON: {"schema": {"type": "object"}}}},
                        **_AUTH, **_INVALID, **_LIMIT, **_SERVICE, **_INTERNAL})
async def overview_fhir(request: Request, body: OverviewRequest, who: Caller = Depends(caller)) -> Response:
    ov = await _overview(request, body, who)
    return Response(to_bundle(ov).model_dump_json(), media_type=FHIR_JSON)


@router.post("/consent", tags=["consent"], response_model=ConsentRegistered,
             summary="Register the patient's consent for the care unit of the chosen assignment",
             responses={**_AUTH, **_INVALID, **_SERVICE,
                        502: {"model": ErrorAnswer, "description": "The consent service refused the registration"},
                        **_INTERNAL})
async def consent(request: Request, body: ConsentRequest, who: Caller = Depends(caller)) -> ConsentRegistered:
    user = _user(who, body.care_unit)
    try:
        assertion_id = await register_unit_consent(_config(request), user, body.patient,
                                                   patient_type_of(body.patient), client=request.app.state.client)
    except ServiceRefused as exc:
        raise ApiError(502, f"samtyckestjänsten registrerade inte samtycket ({exc.reason})") from None
    except PdlServiceError as exc:
        raise ApiError(503, f"samtyckestjänsten kunde inte nås ({exc.reason})") from None
    return ConsentRegistered(assertion_id=assertion_id, care_unit=user.care_unit_hsa_id,
                             care_giver=user.care_giver_hsa_id)


@router.get("/audit/verify", tags=["audit"], response_model=AuditVerification,
            summary="Check the access log's hash chain (altered, inserted or missing entries)", responses={**_AUTH})
async def audit_verify(request: Request, _who: Caller = Depends(caller)) -> AuditVerification:
    result = access_log.verify(request.app.state.engine)
    return AuditVerification(entries=result.entries, ok=result.ok, problems=result.problems)


def to_out(ov: Overview, names: Names | None = None) -> OverviewAnswer:
    names = names or Names()
    pending = [s.name for s in ov.pending]
    tabs = [InformationTab(contract=c.key, title=c.label, records=_newest_first(ov, c.key, names),
                           notices=[TabNotice(kind=k, text=t) for k, t in tab_notices(ov, c, names)],
                           empty_text=empty_text(ov, c, names))
            for c in INFORMATION_TYPES]
    sources = [SourceStatus(**row) for row in source_rows(ov)]
    return OverviewAnswer(
        complete=ov.complete,
        pending_sources=pending,
        emergency=ov.emergency,
        consent_needed=any(d.hidden is Hidden.NO_CONSENT for d in ov.decisions),
        blocked_care_givers=ov.blocked_care_givers,
        notices=[Notice(kind=notice_kind(n), text=n) for n in ov.notices],
        tabs=tabs, sources=sources)


def _newest_first(ov: Overview, contract: str, names: Names) -> list[RecordSummary]:
    return [RecordSummary(**line) for line in newest_first(ov.records[contract], names)]


def notice_kind(text: str) -> NoticeKind:
    """The kind of one of `overview`'s notices, from its fixed wording."""
    if "spärrad information" in text:
        return "blocked"
    if "samtycke eller vid nödåtkomst" in text:
        return "consent"
    if text.startswith("Nödåtkomst:"):
        return "emergency"
    if "kunde inte hämtas" in text:
        return "failed"
    if "kunde inte nås" in text or "kunde inte registreras" in text:
        return "service"
    return "info"
