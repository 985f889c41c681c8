"""Running the stand-ins together, one port each: over mutual TLS with the dev PKI, or plain HTTP on
loopback only (as the producer's `serve`).

    consent   /informationsecurity/authorization/consent/CheckConsent/2/rivtabp21
              /informationsecurity/authorization/consent/RegisterExtendedConsent/2/rivtabp21
    blocking  /informationsecurity/authorization/blocking/CheckBlocks/4/rivtabp21
    log       /informationsecurity/auditing/log/StoreLog/2/rivtabp21
    ei        /itintegration/engagementindex/Update/1/rivtabp21
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from adapter.consumer.pdl.services import NationalService, service_url
from adapter.gateway import server
from adapter.gateway.pki import load_pki
from adapter.gateway.tls import TlsContexts, TlsFiles
from adapter.stubs.blocking import create_blocking_app
from adapter.stubs.consent import create_consent_app
from adapter.stubs.engagement_index import EngagementIndexStub
from adapter.stubs.engagement_index import create_app as create_ei_app
from adapter.stubs.log import create_log_app
from adapter.stubs.seed import Seed, load_seed

log = logging.getLogger("adapter.stubs")

DEV_SEED = Path(__file__).resolve().with_name("seed.dev.toml")
DEFAULT_PORTS: dict[str, int] = {"consent": 8601, "blocking": 8602, "log": 8603, "ei": 8604}
FACTORIES: dict[str, Callable[[Seed], FastAPI]] = {
    "consent": create_consent_app,
    "blocking": create_blocking_app,
    "log": create_log_app,
    "ei": lambda _seed: create_ei_app(EngagementIndexStub()),
}


class _Server(uvicorn.Server):
    """Leaves signals to StubServers: three servers each capturing SIGINT would take turns, not stop together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StubServers:
    """The stand-ins named in `ports` ("consent", "blocking", "log"), sharing one seed and one TLS setup."""

    def __init__(self, seed: Seed | Path, host: str = "127.0.0.1", ports: dict[str, int] | None = None,
                 tls: TlsContexts | None = None, log_level: str = "warning") -> None:
        ports = DEFAULT_PORTS if ports is None else ports
        unknown = sorted(set(ports) - set(FACTORIES))
        if unknown:
            raise ValueError(f"unknown stand-in(s): {', '.join(unknown)} (known: {', '.join(FACTORIES)})")
        if tls is None and not server.is_loopback(host):
            raise ValueError("plain HTTP is refused on anything but loopback")
        seed = load_seed(seed) if isinstance(seed, Path) else seed
        self.host, self.ports, self.tls = host, dict(ports), tls
        self.apps: dict[str, FastAPI] = {name: FACTORIES[name](seed) for name in ports}
        self.servers: dict[str, uvicorn.Server] = {
            name: _Server(server.uvicorn_config(app, host=host, port=ports[name], tls=tls, log_level=log_level))
            for name, app in self.apps.items()
        }

    def url(self, name: str, service: NationalService | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"{'https' if self.tls else 'http'}://{host}:{self.ports[name]}"
        return service_url(base, service) if service else base

    @property
    def started(self) -> bool:
        return all(s.started for s in self.servers.values())

    async def serve(self) -> None:
        await asyncio.gather(*(s.serve() for s in self.servers.values()))

    def stop(self) -> None:
        for s in self.servers.values():
            s.should_exit = True


def tls_from_dev_pki(directory: Path) -> TlsContexts:
    """Mutual TLS with the dev PKI (`npo-adapter certs init`): its server certificate, CA bundle and CRLs."""
    pki = load_pki(directory)
    return TlsContexts(TlsFiles(pki.server_cert, pki.server_key, pki.ca_bundle, (pki.crl_root, pki.crl_function)))


def serve_stubs(seed: Path, host: str, ports: dict[str, int], tls: TlsContexts | None) -> None:
    """Serve the stand-ins until SIGINT/SIGTERM; SIGHUP reloads the TLS certificates and CRLs."""
    # uvicorn's own lines at warning: four servers in one process said each start and stop four times over, after
    # the stand-ins' own lines below had said where each one listens
    stubs = StubServers(seed, host, ports, tls, log_level="warning")
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda _signum, _frame: stubs.stop())
        if tls is not None:
            signal.signal(signal.SIGHUP, lambda _signum, _frame: _reload(tls))
    for name in stubs.apps:
        log.info("%s stand-in on %s", name, stubs.url(name))
    asyncio.run(stubs.serve())


def _reload(tls: TlsContexts) -> None:
    try:
        tls.reload()
    except Exception as exc:  # keep serving with the old material; say why
        log.error("TLS reload failed, keeping the previous certificates and CRLs: %s", exc)
