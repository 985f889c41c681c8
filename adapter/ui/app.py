"""The staff web page and its REST API (`npo-adapter ui`).

Staff sign in through the hospital's OpenID Connect provider (`signin`, `oidc`); the employee's HSA-id and
assignments come from the provider, never from a request. Every API call needs the session and its CSRF token,
or a bearer access token from the same provider (`guard`); only the configured Host names are answered. The app
applies PDL through `build_overview` and logs every access with the user, assignment, session and address.
While it runs, queued access-log entries are sent to the national log service.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine
from starlette.middleware.trustedhost import TrustedHostMiddleware

from adapter import logs
from adapter.consumer.fetch import FaultMemory
from adapter.consumer.overview import ConsumerConfig, new_client
from adapter.health import Readiness
from adapter.ops import consumer_health, health_endpoints
from adapter.ui import api, signin
from adapter.ui.errors import ApiError, BodyLimit, InternalErrors, SecurityHeaders, api_error, invalid_request
from adapter.ui.guard import EmergencyLimit
from adapter.ui.log_flush import LogFlusher
from adapter.ui.oidc import Provider
from adapter.ui.page import page
from adapter.ui.sessions import SessionStore

TITLE = "NPÖ adapter: staff overview API"
API_VERSION = "1.0.0"
DESCRIPTION = """\
The REST API behind the staff page of the NPÖ consumer: a patient's overview from every configured source
with PDL (sammanhållen journalföring) applied, consent registration, the assignments staff can choose from,
and a check of the access log.

Every overview is logged (who, which patient, whose information, on what basis) before it is returned, and
queued for the national log service.

Staff sign in through the hospital's OpenID Connect provider (`/login`); the employee's HSA-id and assignments
come from the provider. Every call needs the session cookie and the session's CSRF token in `X-CSRF-Token`
(from `GET /api/session`), or `Authorization: Bearer` with an access token (JWT) from the same provider for
this API's audience. The body only chooses among the user's own assignments. Errors name the field or the
service, never the values sent or personal data."""
TAGS = [
    {"name": "overview",
     "description": "A patient's overview: every kind of information the adapter reads, notices, source status"},
    {"name": "consent", "description": "The patient's consent for the care unit (national consent service)"},
    {"name": "staff", "description": "The signed-in user, their assignments, signing out"},
    {"name": "audit", "description": "The local PDL access log"},
]


def create_ui_app(config: ConsumerConfig, engine: Engine, *, log_flush_interval: float = 30.0,
                  readiness: Readiness | None = None) -> FastAPI:
    """The app; `log_flush_interval`: seconds between rounds of sending the access-log queue (StoreLog);
    `readiness`: what /health/ready checks (default: the store and the consumer's CRLs)."""
    flusher = LogFlusher(config, engine, log_flush_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        flusher.start()
        app_.state.client = new_client(config)  # kept open: no TLS handshakes per overview
        try:
            yield
        finally:
            await app_.state.client.aclose()
            await flusher.stop()

    # Swagger UI and ReDoc load scripts from a CDN: not on the hospital network. The document is at /openapi.json.
    app = FastAPI(title=TITLE, version=API_VERSION, description=DESCRIPTION, openapi_tags=TAGS,
                  docs_url=None, redoc_url=None, lifespan=lifespan,
                  generate_unique_id_function=lambda route: route.name)  # operationId: the function's name
    app.state.config = config
    app.state.engine = engine
    app.state.client = None  # set while the app runs (lifespan); per-request clients otherwise
    app.state.faults = FaultMemory()  # no repeat of a faulted call for 5 minutes, across requests
    app.state.log_flusher = flusher
    app.state.provider = Provider(config.staff_login) if config.staff_login else None
    app.state.sessions = SessionStore(config.session)
    app.state.pending = signin.PendingSignIns()
    app.state.emergency_limit = EmergencyLimit(config.emergency.per_user_per_hour)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ApiError, api_error)
    app.add_middleware(BodyLimit)  # before the routes, whose framework reads a body whole before any sign-in check
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts(config)))
    app.add_middleware(InternalErrors)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(logs.RequestContext)  # outermost: a correlation id for each request and its overview
    if readiness is None:
        readiness = consumer_health(engine, config)[1]
    for path, endpoint in health_endpoints(readiness):
        app.add_route(path, endpoint, methods=["GET"], include_in_schema=False)  # type: ignore[arg-type]
    app.include_router(signin.router)
    app.include_router(api.router)

    @app.get("/", include_in_schema=False)
    async def staff_page() -> HTMLResponse:
        p = page(demo=config.staff_login is None)
        return HTMLResponse(p.html, headers={"Content-Security-Policy": p.csp})

    return app


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(config: ConsumerConfig) -> tuple[str, ...]:
    """The Host names answered: the configured ones (default: the public URL's host); loopback in demo mode."""
    return config.staff_login.hosts if config.staff_login else LOOPBACK_NAMES
