"""Metrics and health of the producer, over real mTLS and real HTTP: Prometheus scrapes the metrics listener after
real SOAP traffic and finds the counters moved; /health/ready goes 503 when a CRL is stale or the store is
unreachable; no label carries personal data or a caller's identity."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from lxml import etree

from adapter import metrics, ops
from adapter.config import Settings
from adapter.gateway import authorisation
from adapter.gateway.identity import CertSource
from adapter.gateway.pki import issue_crl, load_pki
from adapter.gateway.tls import TlsContexts
from adapter.metrics import StateCollector
from adapter.producer.app import Access, create_app
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.rivta.request_builder import build_request
from adapter.store.engine import create_store_engine, open_store
from tests.gateway.conftest import AUTHORISATIONS, TlsServer, client, tls_files
from tests.gateway.test_embedded_mtls import REFUSED, ask
from tests.samples import PNR, SOURCE, fault_string, result
from tests.scrape import label_values, listener, scrape, value
from tests.stores import PG_BASE, require

CONTRACT = GD.key  # "GetDiagnosis:2": the label value


def producer(engine, tls: TlsContexts, settings: Settings | None = None):
    """The producer as `serve` builds it: its readiness, and the state collector for the metrics listener."""
    settings = settings or Settings(store_url="sqlite://")
    probe, readiness, certificates = ops.producer_health(engine, settings, tls)
    app = create_app(engine, settings, Access(CertSource.TLS, authorisation.load(AUTHORISATIONS)), readiness)
    return app, readiness, StateCollector(probe, certificates)


def soap(c: httpx.Client, url: str, body: bytes) -> httpx.Response:
    return c.post(url + GD.url_path, content=body, headers={"Content-Type": "text/xml; charset=utf-8"})


def test_counters_move_after_real_soap_traffic_and_labels_hold_no_personal_data(engine, pki):
    tls = TlsContexts(tls_files(pki))
    app, readiness, state = producer(engine, tls)
    with TlsServer(engine, tls, app) as gateway, listener(readiness, state) as ops_url:
        before = scrape(ops_url)
        with client(pki, "platform") as c:
            assert ask(c, gateway.url).status_code == 200  # OK
            assert ask(c, gateway.url).status_code == 200
            invalid = soap(c, gateway.url, build_request(GD, SOURCE, "19121212-1212"))  # INVALID_REQUEST
            assert result(etree.fromstring(invalid.content), GD)["errorCode"] == "INVALID_REQUEST"
            assert soap(c, gateway.url, b"<not-soap/>").status_code == 500  # schema
            too_large = soap(c, gateway.url, b"<a>" + b" " * (300 * 1024) + b"</a>")
            assert too_large.status_code == 413  # size
        with client(pki, "unknown") as c:
            assert fault_string(etree.fromstring(ask(c, gateway.url).content)).startswith("VP007")
        after = scrape(ops_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("npo_producer_requests_total", contract=CONTRACT, outcome="OK") == 2
    assert moved("npo_producer_requests_total", contract=CONTRACT, outcome="INVALID_REQUEST") == 1
    assert moved("npo_producer_requests_total", contract=CONTRACT, outcome="schema") == 1
    assert moved("npo_producer_requests_total", contract=CONTRACT, outcome="size") == 1
    assert moved("npo_producer_requests_total", contract=CONTRACT, outcome="VP007") == 1
    assert moved("npo_producer_request_seconds_count", contract=CONTRACT, outcome="OK") == 2
    assert moved("npo_producer_request_seconds_bucket", contract=CONTRACT, outcome="OK", le="+Inf") == 2
    assert moved("npo_store_query_seconds_count", contract=CONTRACT) == 2  # only answers query the store
    # computed at scrape time
    assert value(after, "npo_store_up") == 1 and value(after, "npo_store_schema_current") == 1
    assert value(after, "npo_ei_outbox_rows", state="pending") > 0  # the ingest queued engagements
    assert value(after, "npo_ei_outbox_oldest_pending_age_seconds") > 0
    assert value(after, "npo_storelog_queue_depth") == 0
    assert 300 < value(after, "npo_certificate_expiry_days", role="server") < 4000
    issuers = {s for s in label_values(after) if s.startswith("CN=")}
    assert len(issuers) == 2  # the root CA's CRL and the function CA's
    for issuer in issuers:
        assert 0 < value(after, "npo_crl_next_update_days", issuer=issuer) <= 31
    # never a patient, a caller or a logical address in a label
    labels = label_values(after)
    assert PNR not in after and SOURCE not in labels
    assert not labels & {pki.client(n).hsa_id for n in ("platform", "unknown")}


def test_health_on_the_serving_port_needs_a_client_certificate_the_metrics_listener_none(engine, pki):
    """The contracts' port keeps its mTLS handshake for every path: a load balancer checks it with a certificate of
    its own (any the CA issued; it needs no authorisation for a contract). An orchestrator's probe, which has no
    certificate, uses the metrics listener."""
    tls = TlsContexts(tls_files(pki))
    app, readiness, state = producer(engine, tls)
    with TlsServer(engine, tls, app) as gateway, listener(readiness, state) as ops_url:
        with client(pki, None) as c, pytest.raises(REFUSED):
            c.get(gateway.url + "/health/ready")
        with client(pki, "unknown") as c:  # authorised for no contract
            assert c.get(gateway.url + "/health/live").json() == {"status": "live"}
            ready = c.get(gateway.url + "/health/ready")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "checks": {"store": "ok", "schema": "ok", "crls": "ok"}}
        assert httpx.get(ops_url + "/health/live", trust_env=False).status_code == 200
        assert httpx.get(ops_url + "/health/ready", trust_env=False).json()["status"] == "ready"


def test_ready_goes_503_when_a_crl_is_past_its_next_update(engine, pki, tmp_path):
    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))
    tls = TlsContexts(tls_files(copy))
    app, readiness, state = producer(engine, tls)
    with TlsServer(engine, tls, app), listener(readiness, state) as ops_url:
        assert httpx.get(ops_url + "/health/ready", trust_env=False).status_code == 200
        issue_crl(copy, next_update=datetime.now(UTC) - timedelta(hours=1), which="function")
        tls.reload()  # what SIGHUP does
        ready = httpx.get(ops_url + "/health/ready", trust_env=False)
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["store"] == "ok" and checks["crls"].startswith("past nextUpdate: ")
        assert "Function" in checks["crls"] or "function" in checks["crls"].lower()
        assert httpx.get(ops_url + "/health/live", trust_env=False).status_code == 200
        text = scrape(ops_url)
        days = sorted(value(text, "npo_crl_next_update_days", issuer=i) for i in label_values(text)
                      if i.startswith("CN="))
        assert days[0] < 0 < days[1]  # the stale one, and the root's still fresh


class Relay:
    """A TCP relay to PostgreSQL that the test can take down (connections refused and cut) or make hang (accepts,
    never answers), as a database host that fails or a network that drops packets."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.port = self.listening.getsockname()[1]
        self.mode = "relay"
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listening.accept()
            except OSError:
                return
            self.open.append(conn)
            if self.mode != "relay":
                continue  # hang: accepted, never answered
            upstream = socket.create_connection(self.target)
            self.open.append(upstream)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Every connection dropped; new ones accepted but never answered (hang) or refused (down)."""
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.open.clear()

    def down(self) -> None:
        self.mode = "down"
        try:
            self.listening.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone would not
        except OSError:
            pass
        self.listening.close()
        self.cut()

    def hang(self) -> None:
        self.mode = "hang"
        self.cut()

    def url(self) -> tuple[str, str]:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        base = PG_BASE.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")
        return f"{base}?options=-csearch_path%3D{schema}", schema


@pytest.fixture
def relayed_store():
    require("postgresql")
    import sqlalchemy as sa

    relay = Relay(("127.0.0.1", 5432))
    url, schema = relay.url()
    with sa.create_engine(PG_BASE).begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = open_store(url)
    yield relay, engine
    engine.dispose()
    relay.cut()
    with sa.create_engine(PG_BASE).begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


@pytest.mark.parametrize("failure", ["down", "hang"])
def test_ready_goes_503_and_answers_fault_when_the_store_is_unreachable(relayed_store, pki, failure):
    relay, engine = relayed_store
    tls = TlsContexts(tls_files(pki))
    app, readiness, state = producer(engine, tls)
    with TlsServer(engine, tls, app) as gateway, listener(readiness, state) as ops_url:
        assert httpx.get(ops_url + "/health/ready", trust_env=False).status_code == 200
        assert value(scrape(ops_url), "npo_store_up") == 1
        getattr(relay, failure)()

        started = time.monotonic()
        ready = httpx.get(ops_url + "/health/ready", trust_env=False, timeout=30)
        assert ready.status_code == 503
        assert time.monotonic() - started < 4  # the probe's timeout (2 s), not the driver's connect timeout
        checks = ready.json()["checks"]
        assert checks["store"] == ("unavailable (OperationalError)" if failure == "down" else "no answer within 2 s")
        assert checks["crls"] == "ok"
        text = scrape(ops_url)  # the scrape answers too, within the timeout, and says the store is down
        assert value(text, "npo_store_up") == 0

        if failure == "down":  # a call meanwhile is a fault, counted as store_down
            before = value(text, "npo_producer_requests_total", contract=CONTRACT, outcome="store_down")
            with client(pki, "platform") as c:
                resp = ask(c, gateway.url)
            assert resp.status_code == 500 and "store is unavailable" in fault_string(etree.fromstring(resp.content))
            after = scrape(ops_url)
            assert value(after, "npo_producer_requests_total", contract=CONTRACT, outcome="store_down") == before + 1


def test_a_store_that_never_was_reachable_is_not_ready(pki):
    engine = create_store_engine(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test")
    ready, checks = ops.producer_health(engine, Settings(), TlsContexts(tls_files(pki)))[1].check()
    assert not ready and checks["store"] == "unavailable (OperationalError)"
    assert checks["schema"] == "unknown (no store)"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_metrics_listener_refuses_a_taken_port(pki):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        readiness = ops.producer_health(create_store_engine("sqlite://"), Settings())[1]
        with pytest.raises(OSError, match="did not start"):
            ops.start("127.0.0.1", port, readiness)


def test_producer_outcomes_are_a_fixed_set():
    assert set(metrics.PRODUCER_OUTCOMES) == {"OK", "INVALID_REQUEST", "VP002", "VP007", "schema", "size", "timeout",
                                              "disconnected", "store_down", "internal"}
