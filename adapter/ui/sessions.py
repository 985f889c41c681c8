"""Server-side sessions of signed-in staff, kept in memory: the cookie holds only a random id.

A session ends after `idle_seconds` without a request, after `lifetime_seconds` in all, or at logout. Each has
its own CSRF token, which every API call must send in `X-CSRF-Token`. Sessions live in this process: with
several replicas, route each browser to one replica (sticky sessions) or staff sign in again.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from adapter.consumer.staff_settings import SessionPolicy
from adapter.ui.staff import StaffUser

COOKIE = "__Host-npo-session"  # __Host-: only with Secure, Path=/ and no Domain
DEMO_COOKIE = "npo-session"  # the demo mode on plain HTTP (loopback) cannot set a Secure cookie
CSRF_HEADER = "X-CSRF-Token"


@dataclass
class Session:
    id: str
    user: StaffUser
    csrf: str
    created: float
    last_seen: float
    id_token: str | None = field(default=None, repr=False)  # the logout hint for the provider
    demo: bool = False
    # what the access log records: the cookie's id is a credential and never leaves this process
    log_id: str = field(default_factory=lambda: "s-" + secrets.token_hex(8))

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class SessionStore:
    def __init__(self, policy: SessionPolicy, clock=time.monotonic) -> None:
        self.policy, self.clock = policy, clock
        self._sessions: dict[str, Session] = {}

    def create(self, user: StaffUser, *, id_token: str | None = None, demo: bool = False) -> Session:
        self._sweep()
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now, id_token, demo)
        self._sessions[s.id] = s
        return s

    def get(self, session_id: str | None) -> Session | None:
        """The live session (its idle clock restarted), or None when unknown, idle too long or too old."""
        s = self._sessions.get(session_id or "")
        if s is None:
            return None
        now = self.clock()
        if now - s.last_seen > self.policy.idle_seconds or now - s.created > self.policy.lifetime_seconds:
            self._sessions.pop(s.id, None)
            return None
        s.last_seen = now
        return s

    def end(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def _sweep(self) -> None:
        now = self.clock()
        for sid, s in list(self._sessions.items()):
            if now - s.last_seen > self.policy.idle_seconds or now - s.created > self.policy.lifetime_seconds:
                del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)
