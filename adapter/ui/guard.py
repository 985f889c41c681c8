"""Who is calling the API: a signed-in session (cookie plus the session's CSRF token in every call) or a machine
client's bearer access token from the same provider. Nothing in a request body says who the user is."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass

from fastapi import Request

from adapter.consumer.overview import AccessOrigin, Assignment
from adapter.ui.errors import ApiError
from adapter.ui.oidc import TokenRefused
from adapter.ui.sessions import COOKIE, CSRF_HEADER, DEMO_COOKIE, Session
from adapter.ui.staff import StaffUser


@dataclass(frozen=True)
class Caller:
    user: StaffUser
    authenticated_by: str  # oidc-session | oidc-bearer | demo-without-login
    session_log_id: str | None
    client_address: str | None

    def origin(self, assignment: Assignment) -> AccessOrigin:
        return AccessOrigin(self.authenticated_by, self.session_log_id, self.client_address, assignment.name)

    def own_assignment(self, care_unit: str) -> Assignment:
        """Staff choose only among their own assignments."""
        assignment = self.user.assignment(care_unit)
        if assignment is None:
            raise ApiError(403, "vårdenheten hör inte till något av dina medarbetaruppdrag", "care_unit")
        return assignment


def session_of(request: Request) -> Session | None:
    sessions = request.app.state.sessions
    return sessions.get(request.cookies.get(COOKIE) or request.cookies.get(DEMO_COOKIE))


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def caller(request: Request) -> Caller:
    """The dependency every API operation but GET /api/session has."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        provider = request.app.state.provider
        if provider is None:
            raise ApiError(401, "bärartoken tas inte emot utan inloggningstjänst")
        try:
            user, jti = await provider.staff_from_bearer(auth[7:].strip())
        except TokenRefused:
            raise ApiError(401, "ogiltig eller utgången åtkomsttoken") from None
        return Caller(user, "oidc-bearer", f"t-{jti}" if jti else None, _address(request))
    session = session_of(request)
    if session is None:
        raise ApiError(401, "inte inloggad (eller sessionen har gått ut): logga in igen")
    if not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "CSRF-token saknas eller stämmer inte")
    return Caller(session.user, "demo-without-login" if session.demo else "oidc-session", session.log_id,
                  _address(request))


class EmergencyLimit:
    """At most `per_hour` emergency overviews per employee in any hour, in this process."""

    def __init__(self, per_hour: int, clock=time.monotonic) -> None:
        self.per_hour, self.clock = per_hour, clock
        self._seen: dict[str, deque[float]] = defaultdict(deque)

    def take(self, hsa_id: str) -> bool:
        now = self.clock()
        seen = self._seen[hsa_id.upper()]
        while seen and now - seen[0] > 3600:
            seen.popleft()
        if len(seen) >= self.per_hour:
            return False
        seen.append(now)
        return True
