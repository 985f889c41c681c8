"""The hospital's OpenID Connect provider, through authlib: sign-in with the authorization code flow and PKCE
(S256), the ID token checked (signature against the provider's JWKS, issuer, audience, expiry, nonce), the
employee's claims from the ID token and userinfo; and bearer access tokens (RFC 9068 JWTs) checked for
machine clients of the API.
"""

from __future__ import annotations

import logging
import ssl
import warnings

from authlib.deprecate import AuthlibDeprecationWarning
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request
from starlette.responses import RedirectResponse

from adapter.consumer.staff_settings import StaffLogin
from adapter.ui.staff import NotStaff, StaffUser, staff_from_claims

with warnings.catch_warnings():  # authlib prefers httpx2 and says so; its httpx support is what this project uses
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError

log = logging.getLogger("adapter.ui")
SIGNING_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "RS384", "RS512", "PS384", "PS512", "EdDSA"]


# The error codes of the authorization and token endpoints (RFC 6749 4.1.2.1, 5.2; OpenID Connect Core 3.1.2.6), and
# authlib's own: what the provider may say about a sign-in. Anything else is not repeated.
OAUTH_ERRORS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable", "invalid_client", "invalid_grant", "unsupported_grant_type",
    "interaction_required", "login_required", "account_selection_required", "consent_required",
    "invalid_request_uri", "invalid_request_object", "request_not_supported", "request_uri_not_supported",
    "registration_not_supported", "mismatching_state", "missing_token", "missing_request_token",
    "missing_token_request"})


class SignInFailed(Exception):
    """The sign-in did not produce an employee; the message names the reason, never claim values."""


class TokenRefused(Exception):
    pass


class Provider:
    def __init__(self, settings: StaffLogin) -> None:
        self.settings = settings
        verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=str(settings.ca)) if settings.ca
                                         else True)
        oauth = OAuth()
        self.client = oauth.register(
            name="hospital", client_id=settings.client_id, client_secret=settings.client_secret,
            server_metadata_url=settings.issuer + "/.well-known/openid-configuration",
            client_kwargs={"scope": settings.scopes, "code_challenge_method": "S256", "verify": verify,
                           "trust_env": False, "timeout": 10})

    async def metadata(self) -> dict:
        meta = await self.client.load_server_metadata()
        if meta.get("issuer", "").rstrip("/") != self.settings.issuer:  # a provider answering for another
            raise SignInFailed("the provider's metadata names another issuer")
        return meta

    async def redirect_to_sign_in(self, request: Request) -> RedirectResponse:
        """`request.scope["session"]` must be the caller's store for this sign-in's state, nonce and verifier."""
        await self.metadata()
        return await self.client.authorize_redirect(request, self.settings.redirect_uri)

    async def finish_sign_in(self, request: Request) -> tuple[StaffUser, str | None]:
        """The employee and the ID token (kept as the logout hint)."""
        await self.metadata()
        try:
            token = await self.client.authorize_access_token(request)
            claims = dict(token.get("userinfo") or {})  # the validated ID token's claims
            if not claims.get("sub"):
                raise SignInFailed("no ID token")
            userinfo = await self.client.userinfo(token=token)
        except OAuthError as exc:  # `error` may come from the callback's query: anyone's words, never logged
            code = exc.error if exc.error in OAUTH_ERRORS else "an unregistered error code"
            raise SignInFailed(f"the provider refused: {code}") from None
        except JoseError as exc:
            raise SignInFailed(f"the ID token was not accepted ({type(exc).__name__})") from None
        if userinfo.get("sub") != claims["sub"]:
            raise SignInFailed("userinfo is about another subject than the ID token")
        try:
            return staff_from_claims({**userinfo, **claims}, self.settings.claims), token.get("id_token")
        except NotStaff as exc:
            raise SignInFailed(str(exc)) from None

    async def logout_url(self, id_token: str | None) -> str | None:
        meta = await self.metadata()
        if not meta.get("end_session_endpoint"):
            return None
        result = await self.client.create_logout_url(post_logout_redirect_uri=self.settings.public_url.rstrip("/")
                                                     + "/", id_token_hint=id_token,
                                                     client_id=self.settings.client_id)
        return result["url"]

    async def staff_from_bearer(self, raw: str) -> tuple[StaffUser, str | None]:
        """A machine client's access token: a JWT (typ at+jwt) signed by the provider, for the API's audience,
        not expired. Returns the employee it speaks for and the token's jti."""
        audience = self.settings.api_audience
        if not audience:
            raise TokenRefused("bearer tokens are not accepted (no api_audience configured)")
        try:
            await self.metadata()
            try:
                token = jwt.decode(raw, KeySet.import_key_set(await self.client.fetch_jwk_set()),
                                   algorithms=SIGNING_ALGORITHMS)
            except InvalidKeyIdError:  # the provider may have rotated its keys
                token = jwt.decode(raw, KeySet.import_key_set(await self.client.fetch_jwk_set(force=True)),
                                   algorithms=SIGNING_ALGORITHMS)
            if str(token.header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
                raise TokenRefused("not an access token (typ is not at+jwt)")
            jwt.JWTClaimsRegistry(leeway=self.settings.leeway_seconds,
                                  iss={"essential": True, "value": self.settings.issuer},
                                  aud={"essential": True, "value": audience},
                                  exp={"essential": True}).validate(token.claims)
        except (JoseError, ValueError, TypeError, KeyError) as exc:  # malformed tokens included
            raise TokenRefused(type(exc).__name__) from None
        try:
            return staff_from_claims(token.claims, self.settings.claims), token.claims.get("jti")
        except NotStaff as exc:
            raise TokenRefused(str(exc)) from None
