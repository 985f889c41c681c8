"""Sign-in and sign-out routes: /login, /auth/callback, /auth/logout, and GET /api/session (who is signed in,
their assignments and the session's CSRF token).

The session cookie is HttpOnly, Secure, SameSite=Strict and named __Host-. A short-lived, SameSite=Lax cookie
ties the provider's answer to the browser that started the sign-in (Strict would not come back with the
provider's redirect), and the state it names holds the nonce and PKCE verifier server-side.
"""

from __future__ import annotations

import logging
import secrets
import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from adapter.ui.errors import ApiError
from adapter.ui.guard import session_of
from adapter.ui.models import ErrorAnswer, SessionAnswer, SignedOut, StaffAssignment
from adapter.ui.oidc import SignInFailed
from adapter.ui.sessions import COOKIE, CSRF_HEADER, DEMO_COOKIE, Session
from adapter.ui.staff import StaffUser

log = logging.getLogger("adapter.ui")
router = APIRouter()
LOGIN_COOKIE = "__Host-npo-login"
LOGIN_SECONDS = 600


class PendingSignIns:
    """Sign-ins under way: authlib's state data (state, nonce, PKCE verifier) per browser, for 10 minutes."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[float, dict]] = {}

    def new(self) -> tuple[str, dict]:
        now = time.monotonic()
        for key, (started, _) in list(self._pending.items()):
            if now - started > LOGIN_SECONDS:
                del self._pending[key]
        key, data = secrets.token_urlsafe(24), {}
        self._pending[key] = (now, data)
        return key, data

    def take(self, key: str | None) -> dict | None:
        started, data = self._pending.pop(key or "", (0.0, None))
        return data if data is not None and time.monotonic() - started <= LOGIN_SECONDS else None


def _failure_page(status: int, text: str) -> HTMLResponse:
    html = ("<!doctype html><html lang='sv'><head><meta charset='utf-8'><title>Inloggningen misslyckades</title>"
            f"</head><body><h1>Inloggningen misslyckades</h1><p>{text}</p><p><a href='/login'>Försök igen</a></p>"
            "</body></html>")
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": "default-src 'none'"})


def _start_session(request: Request, response: Response, user: StaffUser, id_token: str | None,
                   demo: bool) -> Session:
    session = request.app.state.sessions.create(user, id_token=id_token, demo=demo)
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE if secure else DEMO_COOKIE, session.id, httponly=True, secure=secure,
                        samesite="strict", path="/")
    log.info("staff signed in (session %s, %s)", session.log_id, "demo" if demo else "provider")
    return session


@router.get("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    provider = request.app.state.provider
    if provider is None:  # demo mode without a provider, loopback only (checked when serving)
        demo = request.app.state.config.demo_user
        user = StaffUser(demo.hsa_id, demo.name, request.app.state.config.assignments)
        response = RedirectResponse("/", status_code=303)
        _start_session(request, response, user, None, demo=True)
        return response
    key, data = request.app.state.pending.new()
    request.scope["session"] = data
    try:
        response = await provider.redirect_to_sign_in(request)
    except Exception as exc:
        log.warning("sign-in could not start: the provider is unreachable or misconfigured (%s)", type(exc).__name__)
        return _failure_page(503, "Inloggningstjänsten kunde inte nås.")
    response.set_cookie(LOGIN_COOKIE, key, max_age=LOGIN_SECONDS, httponly=True, secure=True, samesite="lax",
                        path="/")
    return response


@router.get("/auth/callback", include_in_schema=False)
async def callback(request: Request) -> Response:
    provider = request.app.state.provider
    data = request.app.state.pending.take(request.cookies.get(LOGIN_COOKIE)) if provider else None
    if data is None:
        return _failure_page(400, "Inloggningen har gått ut eller startades inte här.")
    request.scope["session"] = data
    try:
        user, id_token = await provider.finish_sign_in(request)
    except SignInFailed as exc:
        log.warning("sign-in refused: %s", exc)
        return _failure_page(403, "Inloggningen godtogs inte (ingen behörighet till NPÖ).")
    except Exception as exc:
        log.warning("sign-in failed (%s)", type(exc).__name__)
        return _failure_page(502, "Inloggningstjänsten svarade inte som väntat.")
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    _start_session(request, response, user, id_token, demo=False)
    return response


@router.post("/auth/logout", tags=["staff"], response_model=SignedOut, summary="Sign out (here and at the provider)",
             responses={403: {"model": ErrorAnswer, "description": "Missing or wrong CSRF token"}})
async def logout(request: Request) -> JSONResponse:
    """Ends the session; `redirect` is the provider's end-session address, where the browser goes next."""
    session = session_of(request)
    if session is None:
        raise ApiError(401, "inte inloggad")
    if not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "CSRF-token saknas eller stämmer inte")
    request.app.state.sessions.end(session.id)
    provider = request.app.state.provider
    redirect = None
    if provider is not None:
        try:
            redirect = await provider.logout_url(session.id_token)
        except Exception as exc:
            log.warning("logout at the provider could not be prepared (%s)", type(exc).__name__)
    response = JSONResponse(SignedOut(redirect=redirect).model_dump())
    for name, secure in ((COOKIE, True), (DEMO_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="strict")
    log.info("staff signed out (session %s)", session.log_id)
    return response


@router.get("/api/session", tags=["staff"], response_model=SessionAnswer,
            summary="Who is signed in, their assignments and the session's CSRF token",
            responses={401: {"model": ErrorAnswer, "description": "Not signed in, or the session has ended"}})
async def current_session(request: Request) -> SessionAnswer:
    session = session_of(request)
    if session is None:
        raise ApiError(401, "inte inloggad (eller sessionen har gått ut): logga in igen")
    u = session.user
    return SessionAnswer(hsa_id=u.hsa_id, name=u.name, csrf_token=session.csrf, demo=session.demo,
                         assignments=[StaffAssignment(name=a.name, care_unit=a.care_unit, care_giver=a.care_giver,
                                                      purpose=a.purpose) for a in u.assignments])
