"""How staff sign in and what emergency access requires: the `[staff_login]`, `[session]`, `[emergency]` and
`[demo_user]` tables of the consumer's TOML configuration (see config/consumer.dev.toml for every key)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ClaimNames:
    """Where the provider puts the employee's identity and assignments (ID token or userinfo)."""

    hsa_id: str = "hsa_id"
    name: str = "name"
    assignments: str = "medarbetaruppdrag"
    assignment_name: str = "name"
    care_unit: str = "care_unit"
    care_giver: str = "care_giver"
    purpose: str = "purpose"


@dataclass(frozen=True)
class StaffLogin:
    """The hospital's OpenID Connect provider: staff sign in with the authorization code flow and PKCE."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    public_url: str  # where staff reach the page; the redirect URI is public_url + /auth/callback
    scopes: str = "openid profile"
    api_audience: str | None = None  # bearer access tokens for machine clients must name it (None: no bearer)
    ca: Path | None = None  # the provider's CA bundle (default: the system's)
    allowed_hosts: tuple[str, ...] = ()  # Host headers accepted (default: public_url's host)
    claims: ClaimNames = ClaimNames()
    leeway_seconds: int = 30  # clock skew allowed when checking a bearer token's expiry

    @property
    def redirect_uri(self) -> str:
        return self.public_url.rstrip("/") + "/auth/callback"

    @property
    def hosts(self) -> tuple[str, ...]:
        return self.allowed_hosts or (urlsplit(self.public_url).hostname or "",)


@dataclass(frozen=True)
class SessionPolicy:
    idle_seconds: float = 30 * 60
    lifetime_seconds: float = 12 * 3600


@dataclass(frozen=True)
class EmergencyPolicy:
    min_reason_length: int = 15  # characters, after trimming: "x" is not a reason
    duration_seconds: float = 4 * 3600  # the emergency assertion registered with the consent service ends then
    per_user_per_hour: int = 10  # emergency overviews one employee may open in an hour (staff page and API)


@dataclass(frozen=True)
class DemoUser:
    """Local demos without a provider (loopback only): everyone is this user, with the configured assignments."""

    hsa_id: str
    name: str


def _secret(data: dict, base: Path) -> str:
    if "client_secret_file" in data:
        return (base / data["client_secret_file"]).read_text(encoding="utf-8").strip()
    env = data.get("client_secret_env", "NPO_OIDC_CLIENT_SECRET")
    return os.environ.get(env, "")


def load_staff_login(data: dict | None, base: Path) -> StaffLogin | None:
    if not data:
        return None
    return StaffLogin(
        issuer=data["issuer"].rstrip("/"), client_id=data["client_id"], client_secret=_secret(data, base),
        public_url=data["public_url"], scopes=data.get("scopes", "openid profile"),
        api_audience=data.get("api_audience"), ca=(base / data["ca"]) if data.get("ca") else None,
        allowed_hosts=tuple(data.get("allowed_hosts", ())), claims=ClaimNames(**data.get("claims", {})),
        leeway_seconds=int(data.get("leeway_seconds", 30)))


def load_session(data: dict | None) -> SessionPolicy:
    data = data or {}
    return SessionPolicy(idle_seconds=float(data.get("idle_minutes", 30)) * 60,
                         lifetime_seconds=float(data.get("lifetime_hours", 12)) * 3600)


def load_emergency(data: dict | None) -> EmergencyPolicy:
    data = data or {}
    return EmergencyPolicy(min_reason_length=int(data.get("min_reason_length", 15)),
                           duration_seconds=float(data.get("hours", 4)) * 3600,
                           per_user_per_hour=int(data.get("per_user_per_hour", 10)))


def load_demo_user(data: dict | None) -> DemoUser | None:
    return DemoUser(data["hsa_id"], data["name"]) if data else None


def reason_problem(reason: str | None, policy: EmergencyPolicy) -> str | None:
    """Why an emergency reason is not accepted, or None."""
    text = (reason or "").strip()
    if len(text) < policy.min_reason_length:
        return f"skälet för nödåtkomst ska beskriva situationen (minst {policy.min_reason_length} tecken)"
    return None
