"""How staff sign in and what emergency access requires: the `[staff_login]`, `[session]`, `[emergency]` and
`[demo_user]` tables of the consumer's TOML configuration (see config/consumer.dev.toml for every key)."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field

from adapter.tomlfile import HttpUrl, Model, Text


class ClaimNames(Model):
    """Where the provider puts the employee's identity and assignments (ID token or userinfo): the
    `[staff_login.claims]` table as it is, and what sign-in reads."""

    hsa_id: Text = "hsa_id"
    name: Text = "name"
    assignments: Text = "medarbetaruppdrag"
    assignment_name: Text = "name"
    care_unit: Text = "care_unit"
    care_giver: Text = "care_giver"
    purpose: Text = "purpose"


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
    claims: ClaimNames = field(default_factory=ClaimNames)
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


# -- the tables in the consumer's TOML file ----------------------------------------------------------------------

class StaffLoginTable(Model):
    issuer: HttpUrl
    client_id: Text
    client_secret_file: Text | None = None
    client_secret_env: Text = "NPO_OIDC_CLIENT_SECRET"
    public_url: HttpUrl
    scopes: Text = "openid profile"
    api_audience: Text | None = None
    ca: Text | None = None
    allowed_hosts: list[Text] = []
    claims: ClaimNames = ClaimNames()
    leeway_seconds: int = Field(30, ge=0)

    def build(self, base: Path, secret: str) -> StaffLogin:
        return StaffLogin(
            issuer=self.issuer.rstrip("/"), client_id=self.client_id, client_secret=secret,
            public_url=self.public_url, scopes=self.scopes, api_audience=self.api_audience,
            ca=(base / self.ca) if self.ca else None, allowed_hosts=tuple(self.allowed_hosts),
            claims=self.claims, leeway_seconds=self.leeway_seconds)

    def secret(self, base: Path) -> str:
        """The client secret: from client_secret_file (OSError when unreadable) or the environment variable."""
        if self.client_secret_file is not None:
            return (base / self.client_secret_file).read_text(encoding="utf-8").strip()
        return os.environ.get(self.client_secret_env, "")


class SessionTable(Model):
    idle_minutes: float = Field(30, gt=0)
    lifetime_hours: float = Field(12, gt=0)

    def build(self) -> SessionPolicy:
        return SessionPolicy(idle_seconds=self.idle_minutes * 60, lifetime_seconds=self.lifetime_hours * 3600)


class EmergencyTable(Model):
    min_reason_length: int = Field(15, ge=0)
    hours: float = Field(4, gt=0)
    per_user_per_hour: int = Field(10, ge=0)

    def build(self) -> EmergencyPolicy:
        return EmergencyPolicy(min_reason_length=self.min_reason_length, duration_seconds=self.hours * 3600,
                               per_user_per_hour=self.per_user_per_hour)


class DemoUserTable(Model):
    hsa_id: Text
    name: Text

    def build(self) -> DemoUser:
        return DemoUser(self.hsa_id, self.name)


def reason_problem(reason: str | None, policy: EmergencyPolicy) -> str | None:
    """Why an emergency reason is not accepted, or None."""
    text = reason or ""
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in text):
        return "skälet för nödåtkomst får inte innehålla styrtecken"
    # what counts is what a reader sees: letters, digits, punctuation (not spaces or invisible format characters)
    if sum(1 for ch in text if unicodedata.category(ch)[0] not in "CZ") < policy.min_reason_length:
        return f"skälet för nödåtkomst ska beskriva situationen (minst {policy.min_reason_length} tecken)"
    return None
