"""Prometheus metrics (prometheus_client), served on the metrics listener (adapter/ops.py), never on the contracts'
port.

Counters and histograms are recorded where things happen (the producer, the FHIR endpoint, ingest, the consumer's
fan-out, the national PDL services); what needs the database or the certificate files (the outboxes, the schema,
days until a certificate or a CRL runs out) is computed when Prometheus scrapes, by `StateCollector`, with a short
timeout, never per request.

Label values are bounded and never personal: contract keys from the registry ("GetDiagnosis:2"), fixed outcome
words, HTTP status codes, configured source names, national service names, CA names. Never a patient, a caller's
HSA-id, a logical address or a resource id.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest, write_to_textfile
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger("adapter.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Producer outcomes: the answer's result code, or the kind of SOAP fault.
OK, INVALID_REQUEST = "OK", "INVALID_REQUEST"
VP002, VP007 = "VP002", "VP007"  # no or a refused certificate identity; not authorised for contract and address
SCHEMA = "schema"  # not a SOAP request for this contract, no LogicalAddress, or not valid against its schema
SIZE, TIMEOUT = "size", "timeout"  # body over the limit; body not received in time
DISCONNECTED = "disconnected"  # the caller hung up before its body was complete
STORE_DOWN, INTERNAL = "store_down", "internal"
PRODUCER_OUTCOMES = (OK, INVALID_REQUEST, VP002, VP007, SCHEMA, SIZE, TIMEOUT, DISCONNECTED, STORE_DOWN, INTERNAL)

# Consumer outcomes per source and contract.
DATA, NONE = "data", "none"
C_TIMEOUT, UNREACHABLE, FAULT, ERROR_RESULT = "timeout", "unreachable", "fault", "error_result"
INVALID_ANSWER, NOT_ASKED, DEADLINE = "invalid_answer", "not_asked", "deadline"
CONSUMER_OUTCOMES = (DATA, NONE, C_TIMEOUT, UNREACHABLE, FAULT, ERROR_RESULT, INVALID_ANSWER, NOT_ASKED, DEADLINE)

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

PRODUCER_REQUESTS = Counter("npo_producer_requests", "SOAP calls answered, per contract and outcome",
                            ["contract", "outcome"], registry=REGISTRY)
PRODUCER_SECONDS = Histogram("npo_producer_request_seconds", "Time to answer a SOAP call (until the answer is "
                             "ready to send), per contract and outcome", ["contract", "outcome"], buckets=_FAST,
                             registry=REGISTRY)
STORE_QUERY_SECONDS = Histogram("npo_store_query_seconds", "Time of the store query behind an answer, per "
                                "contract", ["contract"], buckets=_FAST, registry=REGISTRY)
FHIR_REQUESTS = Counter("npo_fhir_requests", "FHIR endpoint writes, per interaction and HTTP status",
                        ["interaction", "status"], registry=REGISTRY)
FHIR_SECONDS = Histogram("npo_fhir_request_seconds", "Time of a FHIR endpoint write, per interaction",
                         ["interaction"], buckets=_SLOW, registry=REGISTRY)
INTAKE_ENTRIES = Counter("npo_intake_entries", "Resources taken by the intake, per channel (fhir, ingest), "
                         "interaction, outcome and FHIR status", ["channel", "interaction", "outcome", "status"],
                         registry=REGISTRY)
CONSUMER_CALLS = Counter("npo_consumer_calls", "The consumer's calls to producers, per source, contract and "
                         "outcome", ["source", "contract", "outcome"], registry=REGISTRY)
CONSUMER_SECONDS = Histogram("npo_consumer_call_seconds", "Time of the consumer's call to a producer, per source, "
                             "contract and outcome", ["source", "contract", "outcome"], buckets=_SLOW,
                             registry=REGISTRY)
OVERVIEW_SECONDS = Histogram("npo_consumer_overview_seconds", "Time to build a patient's overview (fan-out, PDL, "
                             "access log)", buckets=_SLOW, registry=REGISTRY)
NATIONAL_CALLS = Counter("npo_national_service_calls", "Calls to the national PDL services (consent, blocking, "
                         "StoreLog), per service and outcome (answered: a valid answer; refused: its result code "
                         "said no; unavailable: no usable answer)", ["service", "outcome"], registry=REGISTRY)


def observe_producer(contract: str, outcome: str, seconds: float) -> None:
    requests, latency = _producer_series(contract, outcome)
    requests.inc()
    latency.observe(seconds)


@functools.cache  # bounded: contract keys x PRODUCER_OUTCOMES; looking the series up cost more than counting
def _producer_series(contract: str, outcome: str) -> tuple[Any, Any]:
    return PRODUCER_REQUESTS.labels(contract, outcome), PRODUCER_SECONDS.labels(contract, outcome)


def count_intake(channel: str, interaction: str, results: Iterable[Any]) -> None:
    """One count per entry (`adapter.intake.results.Result`: its outcome word and status)."""
    for r in results:
        INTAKE_ENTRIES.labels(channel, interaction, r.outcome, str(r.status)).inc()


def observe_consumer(source: str, contract: str, outcome: str, seconds: float) -> None:
    CONSUMER_CALLS.labels(source, contract, outcome).inc()
    CONSUMER_SECONDS.labels(source, contract, outcome).observe(seconds)


class Timer:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


# --- computed at scrape time --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CertFacts:
    """What `StateCollector` reports about certificates: expiry per role (server, client) and each CRL's
    nextUpdate (by its issuer's name)."""

    certificates: Sequence[tuple[str, datetime]] = ()
    crls: Sequence[tuple[str, datetime | None]] = ()


def certificate_not_after(path: Path) -> datetime:
    """notAfter of the first certificate in a PEM file (the leaf of a chain)."""
    return x509.load_pem_x509_certificates(Path(path).read_bytes())[0].not_valid_after_utc


def crl_facts(crls: Iterable[x509.CertificateRevocationList]) -> list[tuple[str, datetime | None]]:
    """(issuer, nextUpdate) of the newest CRL of each issuer."""
    newest: dict[x509.Name, x509.CertificateRevocationList] = {}
    for crl in crls:
        if crl.issuer not in newest or crl.last_update_utc > newest[crl.issuer].last_update_utc:
            newest[crl.issuer] = crl
    return [(crl.issuer.rfc4514_string(), crl.next_update_utc) for crl in newest.values()]


def crl_file_facts(paths: Iterable[Path]) -> list[tuple[str, datetime | None]]:
    """`crl_facts` of PEM CRL files, read now."""
    from adapter.gateway.verify import load_crls

    return crl_facts(crl for path in paths for crl in load_crls(Path(path)))


def _days(until: datetime, now: datetime) -> float:
    return round((until - now).total_seconds() / 86400, 4)


class StateCollector(Collector):
    """Gauges read when Prometheus scrapes: the store (reachable, schema current, engagement-index outbox,
    StoreLog queue; through `adapter.health.StoreProbe`, with its timeout) and certificate expiry (`certs`)."""

    def __init__(self, probe: Any = None, certs: Callable[[], CertFacts] | None = None) -> None:
        self.probe = probe  # adapter.health.StoreProbe, or None (nothing of the store)
        self.certs = certs

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        if self.probe is not None:
            yield from self._store(now)
        if self.certs is not None:
            yield from self._certificates(now)

    def _store(self, now: datetime) -> Iterator[Metric]:
        from adapter.health import ProbeFailed

        up = GaugeMetricFamily("npo_store_up", "1 when the store answered the scrape's queries in time")
        try:
            state = self.probe.state(now)
        except ProbeFailed as exc:
            log.warning("metrics: the store did not answer (%s)", exc.reason)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("npo_store_schema_current", "1 when the store's schema is at this version's head",
                                value=1 if state.schema_current else 0)
        rows = GaugeMetricFamily("npo_ei_outbox_rows", "Engagement-index outbox rows per state (pending, sent, "
                                 "failed)", labels=["state"])
        for name in sorted({"pending", "sent", "failed", *state.ei_rows}):  # the usual three, and any other
            rows.add_metric([name], state.ei_rows.get(name, 0))
        yield rows
        yield GaugeMetricFamily("npo_ei_outbox_oldest_pending_age_seconds", "Age of the oldest engagement change "
                                "not yet sent to the engagement index (0 when none waits)",
                                value=state.ei_oldest_pending_seconds)
        yield GaugeMetricFamily("npo_storelog_queue_depth", "Access-log entries waiting for the national log "
                                "service (StoreLog)", value=state.log_queue)
        yield GaugeMetricFamily("npo_storelog_oldest_age_seconds", "Age of the oldest access-log entry waiting for "
                                "the national log service (0 when none waits)", value=state.log_oldest_seconds)

    def _certificates(self, now: datetime) -> Iterator[Metric]:
        assert self.certs is not None
        try:
            facts = self.certs()
        except (OSError, ValueError) as exc:
            log.warning("metrics: certificate files not readable (%s)", type(exc).__name__)
            return
        expiry = GaugeMetricFamily("npo_certificate_expiry_days", "Days until a certificate in use expires "
                                   "(server: the listener's; client: the function certificate it calls with)",
                                   labels=["role"])
        for role, not_after in facts.certificates:
            expiry.add_metric([role], _days(not_after, now))
        yield expiry
        crl = GaugeMetricFamily("npo_crl_next_update_days", "Days until a CRL in use passes its nextUpdate "
                                "(negative: stale, its CA's certificates are refused)", labels=["issuer"])
        for issuer, next_update in facts.crls:
            crl.add_metric([issuer], _days(next_update, now) if next_update else float("-inf"))
        yield crl


class Exposition:
    """The process's metrics (or `recorded`: the workers' of `serve --workers N`) plus one listener's scrape-time
    collectors, as one registry for `generate_latest`."""

    def __init__(self, *extra: Collector, recorded: Collector = REGISTRY) -> None:
        self.extra = extra
        self.recorded = recorded

    def collect(self) -> Iterator[Metric]:
        yield from self.recorded.collect()
        for collector in self.extra:
            yield from collector.collect()

    def render(self) -> bytes:
        return generate_latest(self)  # type: ignore[arg-type]  # any object with collect()


def workers_metrics(folder: Path) -> Collector:
    """The counters and histograms of every worker process, live or gone, that recorded them in `folder`
    (prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR was `folder` when they started)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return registry


def write_textfile(path: Path) -> None:
    """The counters so far, in node_exporter's textfile format (for one-off commands such as ingest)."""
    write_to_textfile(str(path), REGISTRY)
