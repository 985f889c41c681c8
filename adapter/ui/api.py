"""The REST API behind the staff page: overview (JSON or FHIR), consent registration, assignments, audit.

Each overview is built by `build_overview`, which applies PDL and logs the access before anything is
returned; if the access cannot be logged, nothing is shown (500).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from adapter.consumer.fetch import Outcome
from adapter.consumer.overview import (
    ConsumerConfig,
    Overview,
    build_overview,
    patient_type_of,
    register_unit_consent,
)
from adapter.consumer.pdl import access_log
from adapter.consumer.pdl.decide import Hidden, UserContext
from adapter.consumer.pdl.soap_call import PdlServiceError, ServiceRefused
from adapter.consumer.staff_settings import reason_problem
from adapter.consumer.summary import newest_first
from adapter.consumer.view import to_bundle
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
)

FHIR_JSON = "application/fhir+json"
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


async def _overview(request: Request, body: OverviewRequest, who: Caller) -> Overview:
    user = _user(who, body.care_unit)
    reason = body.emergency_reason
    if reason is not None:
        problem = reason_problem(reason, _config(request).emergency)
        if problem:
            raise ApiError(422, problem, "emergency_reason")
        if not request.app.state.emergency_limit.take(user.employee_hsa_id):
            raise ApiError(429, "för många nödåtkomster den senaste timmen: kontakta din chef eller "
                                "informationssäkerhetsansvarig")
    try:
        return await build_overview(_config(request), request.app.state.engine, user, body.patient,
                                    patient_type_of(body.patient), emergency_reason=reason,
                                    faults=request.app.state.faults, client=request.app.state.client,
                                    origin=who.origin(who.own_assignment(body.care_unit)))
    except PdlServiceError as exc:
        raise ApiError(503, f"{exc.service} kunde inte nås ({exc.reason})") from None


@router.get("/assignments", tags=["staff"], summary="The signed-in user's own assignments (medarbetaruppdrag)",
            response_model=list[StaffAssignment], responses={**_AUTH})
async def assignments(who: Caller = Depends(caller)) -> list[StaffAssignment]:
    return [StaffAssignment(name=a.name, care_unit=a.care_unit, care_giver=a.care_giver, purpose=a.purpose)
            for a in who.user.assignments]


@router.post("/overview", tags=["overview"], response_model=OverviewAnswer,
             summary="A patient's overview from every source, PDL applied, the access logged",
             responses={**_AUTH, **_INVALID, **_LIMIT, **_SERVICE, **_INTERNAL})
async def overview(request: Request, body: OverviewRequest, who: Caller = Depends(caller)) -> OverviewAnswer:
    return to_out(await _overview(request, body, who))


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


def to_out(ov: Overview) -> OverviewAnswer:
    tabs = [InformationTab(contract=c.key, title=c.label, records=_newest_first(ov, c.key))
            for c in INFORMATION_TYPES]
    sources = [SourceStatus(source=r.source.name, contract=r.contract.key,
                               information_type=r.contract.label, status=r.outcome.value,
                               reason=r.reason if r.outcome is Outcome.FAILED else "")
               for r in ov.sources]
    return OverviewAnswer(
        emergency=ov.emergency,
        consent_needed=any(d.hidden is Hidden.NO_CONSENT for d in ov.decisions),
        blocked_care_givers=ov.blocked_care_givers,
        notices=[Notice(kind=notice_kind(n), text=n) for n in ov.notices],
        tabs=tabs, sources=sources)


def _newest_first(ov: Overview, contract: str) -> list[RecordSummary]:
    return [RecordSummary(**line) for line in newest_first(ov.records[contract])]


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
