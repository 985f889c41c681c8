"""`serve --workers N`: N worker processes answer on one listening socket, under a supervisor.

The supervisor is uvicorn's own `Multiprocess` (it spawns the workers with the socket the parent bound, restarts a
worker that dies, stops them all on SIGINT/SIGTERM, and stops when a worker fails while starting instead of
restarting it forever), with two changes. SIGHUP is forwarded to every worker, which reloads its certificates and
CRLs in place as a single `serve` process does (uvicorn would replace every worker instead, closing the callers'
connections, and a reload that fails would not keep the previous material with a logged reason). Workers that keep
dying after they started stop the supervisor too (uvicorn would replace them every half second, forever).

A worker is a fresh (spawned) interpreter: TLS contexts, the verifier, the store engine and the app cannot cross a
process boundary, so each builds its own from a `ProducerSpec` when uvicorn loads its config. The supervisor keeps
what must exist once: the metrics listener (counters and histograms of every worker through prometheus_client's
multiprocess mode, in a private folder it creates and removes), the engagement-index sender and the paging key.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from adapter.config import Settings
from adapter.gateway.identity import CertSource
from adapter.gateway.server import on_sighup, server_options, settle
from adapter.gateway.tls import TlsContexts, TlsFiles
from adapter.gateway.verify import ReloadableVerifier

log = logging.getLogger("adapter.gateway")
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when a worker imports it


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Gateway:
    """How a serving process checks callers: the embedded server's TLS contexts, or behind nginx the verifier of
    the forwarded certificate (neither with plain HTTP); `reload` re-reads their files (SIGHUP)."""

    tls: TlsContexts | None = None
    verifier: ReloadableVerifier | None = None

    @property
    def reload(self) -> Callable[[], None] | None:
        return self.tls.reload if self.tls else self.verifier.reload if self.verifier else None


@dataclass(frozen=True)
class ProducerSpec:
    """What a serving process builds its producer from; picklable, so that each worker builds its own."""

    settings: Settings
    source: CertSource
    authorisations: Path
    tls: TlsFiles | None = None  # embedded mTLS: all four; behind nginx: client_ca and crls
    log_level: str = "info"
    log_format: str = "text"

    def gateway(self) -> Gateway:
        """OSError or ValueError when the TLS material cannot be used."""
        if self.source is CertSource.TLS:
            assert self.tls is not None
            return Gateway(tls=TlsContexts(self.tls))
        if self.source is CertSource.PROXY:
            assert self.tls is not None
            return Gateway(verifier=ReloadableVerifier(self.tls.client_ca, self.tls.crls))
        return Gateway()

    def app(self, engine: Any, gateway: Gateway) -> Any:
        from adapter import ops
        from adapter.gateway import authorisation
        from adapter.producer.app import Access, create_app

        rules = authorisation.load(self.authorisations)
        _probe, readiness, _certificates = ops.producer_health(engine, self.settings, gateway.tls, gateway.verifier)
        return create_app(engine, self.settings, Access(self.source, rules, gateway.verifier), readiness)


class WorkerConfig(uvicorn.Config):
    """uvicorn's config of one worker: pickled into the worker, which builds its producer when uvicorn loads it."""

    def __init__(self, spec: ProducerSpec, workers: int) -> None:
        self.spec = spec
        super().__init__("adapter.gateway.workers:WorkerConfig", workers=workers,
                         **server_options(spec.log_level.lower()))

    def configure_logging(self) -> None:
        super().configure_logging()
        from adapter import logs

        logs.setup(self.spec.log_level, self.spec.log_format)

    def load(self) -> None:
        from adapter.store.engine import create_store_engine

        try:
            gateway = self.spec.gateway()
            self.app = self.spec.app(create_store_engine(self.spec.settings.store_url), gateway)
        except Exception as exc:  # the supervisor then stops instead of restarting a worker that cannot start
            log.error("worker %d could not start: %s: %s", os.getpid(), type(exc).__name__, exc)
            sys.exit(STARTUP_FAILURE)
        if gateway.tls is not None:
            self.http = gateway.tls.protocol_class
        super().load()
        if gateway.tls is not None:
            self.ssl = gateway.tls.listening
        on_sighup(gateway.reload)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # held since the spawn (_hup_held): now safe
        settle()


class Supervisor(Multiprocess):
    """uvicorn's Multiprocess, with SIGHUP forwarded to every worker (and `reload`ing the supervisor's own copy of
    the material, which its metrics and readiness report), a dead worker logged as a warning with its exit code,
    and workers that keep dying stopping the supervisor instead of being restarted every half second forever."""

    MAX_DEATHS, WITHIN = 6, 60.0  # more deaths than this within so many seconds: a crash loop

    def __init__(self, config: WorkerConfig, sockets: list[socket.socket],
                 reload: Callable[[], None] | None = None) -> None:
        super().__init__(config, sockets)
        self.reload = reload
        self.deaths: collections.deque[float] = collections.deque()
        self.crash_loop = False

    def init_processes(self) -> None:
        with _hup_held():
            super().init_processes()

    def handle_ttin(self) -> None:
        with _hup_held():
            super().handle_ttin()

    def keep_subprocess_alive(self) -> None:
        before = list(self.processes)
        with _hup_held():
            super().keep_subprocess_alive()
        now = time.monotonic()
        for old, new in zip(before, self.processes, strict=True):
            if old is not new:
                log.warning("worker %s ended (exit code %s): replaced by worker %s", old.pid, old.exitcode, new.pid)
                self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - self.WITHIN:
            self.deaths.popleft()
        if len(self.deaths) > self.MAX_DEATHS and not self.should_exit.is_set():
            log.error("%d workers ended within %g s: stopping (a crash loop; see the reasons above)",
                      len(self.deaths), self.WITHIN)
            self.crash_loop = True
            self.should_exit.set()

    def handle_hup(self) -> None:
        if self.reload is None:
            log.info("SIGHUP: passed on to every worker (plain HTTP: no certificates or CRLs to reload)")
        else:
            log.info("SIGHUP: reloading certificates and CRLs in every worker")
            try:
                self.reload()
            except Exception as exc:
                log.error("TLS reload failed in the supervisor, keeping the previous material: %s", exc)
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)

    @property
    def failed(self) -> bool:
        """A worker failed while starting, or workers kept dying."""
        return self.crash_loop or any(process.exitcode == STARTUP_FAILURE for process in self.processes)


@contextlib.contextmanager
def _hup_held() -> Iterator[None]:
    """SIGHUP held back in the thread that spawns workers: a worker inherits the mask, and SIGHUP's default action
    (ending the process) could otherwise reach it, forwarded by `handle_hup`, before its own handler is in place. The
    worker takes up what is pending once it is (WorkerConfig.load); the supervisor once this ends."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextlib.contextmanager
def metrics_folder() -> Iterator[Path]:
    """A private folder for the workers' metrics (prometheus_client multiprocess mode), removed afterwards; set in
    the environment the workers are spawned with."""
    folder = Path(tempfile.mkdtemp(prefix="npo-adapter-metrics-"))
    previous = os.environ.get(METRICS_DIR_ENV)
    os.environ[METRICS_DIR_ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(METRICS_DIR_ENV, None)
        else:
            os.environ[METRICS_DIR_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


def supervise(spec: ProducerSpec, workers: int, sock: socket.socket,
              reload: Callable[[], None] | None = None) -> bool:
    """Run `workers` workers on `sock` until SIGINT or SIGTERM; False when a worker could not start or workers
    kept dying."""
    supervisor = Supervisor(WorkerConfig(spec, workers), [sock], reload)
    supervisor.run()
    return not supervisor.failed
