"""The metrics listener (`serve --metrics-port`, `ui --metrics-port`): `/metrics` for Prometheus and
`/health/live`, `/health/ready` for probes, over plain HTTP on its own port, loopback unless told otherwise.

It runs its own uvicorn server in its own thread and event loop, so a slow scrape never holds up an answer to the
platform, and the contracts' port keeps its mutual TLS: a probe that has no client certificate (a Kubernetes or
systemd probe, a plain load-balancer check) uses this listener. Nothing here names a patient or a caller.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapter import metrics
from adapter.gateway.protocol import HeadCappedProtocol
from adapter.health import Readiness, StoreProbe
from adapter.metrics import Exposition

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def health_endpoints(readiness: Readiness) -> list[tuple[str, object]]:
    """(path, endpoint) for /health/live and /health/ready; the endpoints are sync (Starlette runs them in its
    thread pool, so the store check never blocks the event loop)."""

    def live(_request: Request) -> Response:
        return JSONResponse({"status": "live"}, headers={"cache-control": "no-store"})

    def ready(_request: Request) -> Response:
        ok, checks = readiness.check()
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503, headers={"cache-control": "no-store"})

    return [("/health/live", live), ("/health/ready", ready)]


def ops_app(exposition: Exposition, readiness: Readiness) -> Starlette:
    def metrics(_request: Request) -> Response:
        return Response(exposition.render(), media_type=PROMETHEUS_TYPE)

    routes = [Route("/metrics", metrics, methods=["GET"])]
    routes += [Route(path, endpoint, methods=["GET"]) for path, endpoint in health_endpoints(readiness)]  # type: ignore[arg-type]
    return Starlette(routes=routes)


class _QuietServer(uvicorn.Server):
    """uvicorn's server without its "Uvicorn running on http://… (Press CTRL+C to quit)" line: next to the mTLS
    service it read as if the service itself were plain HTTP. The command says where metrics are served."""

    def _log_started_message(self, listeners: Any) -> None:
        pass


class OpsListener:
    """The metrics listener, running in a daemon thread until `stop`."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        # log_config and log_level None: uvicorn's lines go through adapter/logs.py, and the levels `serve` set for
        # uvicorn's loggers (process-wide) are left alone
        config = uvicorn.Config(app, host=host, port=port, log_config=None, log_level=None, access_log=False,
                                lifespan="off", server_header=False, http=HeadCappedProtocol)
        self.server = _QuietServer(config)
        self.thread = threading.Thread(target=self._run, name="metrics-listener", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # e.g. the port is taken: reported by start()
            self.error = exc

    def start(self, seconds: float = 10) -> OpsListener:
        self.thread.start()
        deadline = time.monotonic() + seconds
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the metrics listener did not start on {self.url}"
                              + (f" ({type(self.error).__name__}: {self.error})" if self.error else
                                 " (is the port taken?)"))
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start(host: str, port: int, readiness: Readiness, *collectors: Collector,
          recorded: Collector = metrics.REGISTRY) -> OpsListener:
    """Start the metrics listener on host:port with `/metrics` (the process's metrics, or `recorded`, and
    `collectors`) and the health endpoints; OSError when it cannot listen."""
    return OpsListener(ops_app(Exposition(*collectors, recorded=recorded), readiness), host, port).start()


def producer_health(engine: Any, settings: Any, tls: Any = None, verifier: Any = None
                    ) -> tuple[StoreProbe, Readiness, Callable[[], metrics.CertFacts]]:
    """`serve`'s store probe, readiness checks and certificate facts: the CRLs in use (the embedded server's
    `TlsContexts`, or the `ReloadableVerifier` behind nginx; both follow SIGHUP reloads), the server certificate
    (embedded mode; behind nginx it is nginx's) and the function certificate the engagement-index sender calls with
    (when NPO_EI_URL is set)."""

    def crls() -> list[tuple[str, datetime | None]]:
        current = tls.verifier if tls is not None else verifier
        return metrics.crl_facts(current.crls()) if current is not None else []

    def certificates() -> metrics.CertFacts:
        certs = [("server", tls.server_not_after)] if tls is not None else []
        if settings.ei_url:
            certs.append(("ei_client", metrics.certificate_not_after(Path(settings.ei_cert))))
        return metrics.CertFacts(certs, crls())

    probe = StoreProbe(engine)
    return probe, Readiness(probe, crls if (tls is not None or verifier is not None) else None), certificates


def consumer_health(engine: Any, config: Any, tls_cert: Path | None = None
                    ) -> tuple[StoreProbe, Readiness, Callable[[], metrics.CertFacts]]:
    """`ui`'s: the page's server certificate, the function certificate it calls producers and national services
    with, and the CRLs it checks their certificates against (read from the files at each check)."""

    def crls() -> list[tuple[str, datetime | None]]:
        return metrics.crl_file_facts(config.crls)

    def certificates() -> metrics.CertFacts:
        certs = [("client", metrics.certificate_not_after(config.client_cert))]
        if tls_cert is not None:
            certs.append(("server", metrics.certificate_not_after(tls_cert)))
        return metrics.CertFacts(certs, crls())

    probe = StoreProbe(engine)
    return probe, Readiness(probe, crls if config.crls else None), certificates
