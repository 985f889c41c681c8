"""A patient's overview for one member of staff: fetch from every source, apply PDL, log the access.

consumer → PDL → view: `fetch` gets the records, the national consent and blocking services and
`pdl.decide` say what may be shown, `pdl.access_log` records what was shown and why, and the view (FHIR
Bundle, CLI table, web page) shows the result with a status per source and the notices PDL requires.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from lxml import etree
from pydantic import Field
from sqlalchemy.engine import Engine

from adapter import correlation, metrics
from adapter.consumer.fetch import (
    FaultMemory,
    FetchSettings,
    Outcome,
    Source,
    SourceResult,
    client_context,
    fetch_all,
    merge,
)
from adapter.consumer.pdl import access_log, blocks, consent
from adapter.consumer.pdl.actor import AccessingActor
from adapter.consumer.pdl.decide import (
    Basis,
    Decision,
    Group,
    Hidden,
    UserContext,
    decide,
    is_own_care_giver,
    is_own_unit,
)
from adapter.consumer.pdl.services import (
    CHECK_BLOCKS,
    CHECK_CONSENT,
    NATIONAL_HSA_ID,
    REGISTER_EXTENDED_CONSENT,
    NationalService,
    service_url,
)
from adapter.consumer.pdl.soap_call import PdlServiceError
from adapter.consumer.staff_settings import (
    DemoUser,
    DemoUserTable,
    EmergencyPolicy,
    EmergencyTable,
    SessionPolicy,
    SessionTable,
    StaffLogin,
    StaffLoginTable,
)
from adapter.mapping import codes, timefmt
from adapter.rivta.contracts import INFORMATION_TYPES, Contract
from adapter.rivta.rules import first_text
from adapter.tomlfile import HttpUrl, Model, Text, TomlFileError, fail, read, validate

log = logging.getLogger("adapter.consumer")


@dataclass(frozen=True)
class NationalServices:
    """Base URLs (the platform's path pattern is appended per interaction) and logical addresses."""

    consent_url: str
    blocking_url: str
    log_url: str
    consent_address: str = NATIONAL_HSA_ID
    blocking_address: str = NATIONAL_HSA_ID

    def url(self, service: NationalService) -> str:
        base = {"consent": self.consent_url, "blocking": self.blocking_url, "log": self.log_url}
        kind = ("consent" if "consent" in service.domain else "blocking" if "blocking" in service.domain
                else "log")
        return service_url(base[kind], service)


@dataclass(frozen=True)
class Assignment:
    """A medarbetaruppdrag staff may choose: a care unit and its care giver."""

    name: str
    care_unit: str
    care_giver: str
    purpose: str = "Vård och behandling"


@dataclass(frozen=True)
class AccessOrigin:
    """How the user reached the overview, for the access log: the sign-in, the session and the address."""

    authenticated_by: str  # oidc-session | oidc-bearer | demo-without-login | cli
    session_id: str | None = None
    client_address: str | None = None
    assignment_name: str | None = None


@dataclass(frozen=True)
class ConsumerConfig:
    sources: tuple[Source, ...]
    services: NationalServices
    client_cert: Path
    client_key: Path
    ca: Path
    fetch: FetchSettings = FetchSettings()
    service_timeout: float = 5.0
    assignments: tuple[Assignment, ...] = ()  # for the CLI and the demo user; signed-in staff bring their own
    crls: tuple[Path, ...] = ()  # for the servers' certificates: one CRL for every CA in their chains
    staff_login: StaffLogin | None = None
    session: SessionPolicy = SessionPolicy()
    emergency: EmergencyPolicy = EmergencyPolicy()
    demo_user: DemoUser | None = None

    def tls_context(self) -> ssl.SSLContext:
        return client_context(str(self.client_cert), str(self.client_key), str(self.ca), self.crls)

    def assignment(self, care_unit: str) -> Assignment:
        for a in self.assignments:
            if a.care_unit.upper() == care_unit.upper():
                return a
        raise KeyError(f"no assignment for care unit {care_unit} in the configuration")


class ConsumerConfigError(TomlFileError):
    """The consumer's TOML file cannot be used; the message names the file, the key path and the problem."""


class _ClientTable(Model):
    cert: Text
    key: Text
    ca: Text
    crls: list[Text] = []
    timeout: float = Field(27, gt=0)
    deadline: float = Field(20, gt=0)
    service_timeout: float = Field(5, gt=0)


class _ServicesTable(Model):
    consent_url: HttpUrl
    blocking_url: HttpUrl
    log_url: HttpUrl
    consent_address: Text = NATIONAL_HSA_ID
    blocking_address: Text = NATIONAL_HSA_ID


class _SourceTable(Model):
    name: Text
    url: HttpUrl
    logical_address: Text


class _AssignmentTable(Model):
    name: Text
    care_unit: Text
    care_giver: Text
    purpose: Text = "Vård och behandling"


class _ConsumerFile(Model):
    client: _ClientTable
    services: _ServicesTable
    source: list[_SourceTable]
    assignment: list[_AssignmentTable] = []
    staff_login: StaffLoginTable | None = None
    session: SessionTable = SessionTable()
    emergency: EmergencyTable = EmergencyTable()
    demo_user: DemoUserTable | None = None


def load_config(path: Path, *, check_files: bool = False) -> ConsumerConfig:
    """The consumer's TOML configuration (see config/consumer.dev.toml); relative paths are taken from
    the file's folder's parent (the repository root for files in config/). `ConsumerConfigError` names the file,
    the key and the problem; with `check_files`, also a certificate, key, CA or CRL file that is not there."""
    data = validate(_ConsumerFile, read(path, ConsumerConfigError), path, ConsumerConfigError)
    base = path.resolve().parent.parent

    def p(value: str) -> Path:
        return (base / value) if not Path(value).is_absolute() else Path(value)

    client, services = data.client, data.services
    staff_login = None
    if data.staff_login is not None:
        try:
            secret = data.staff_login.secret(base)
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(ConsumerConfigError, path, ("staff_login", "client_secret_file"),
                       f"cannot read {p(data.staff_login.client_secret_file or '')}: "
                       f"{exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}") from None
        staff_login = data.staff_login.build(base, secret)
    config = ConsumerConfig(
        sources=tuple(Source(s.name, s.url, s.logical_address) for s in data.source),
        services=NationalServices(**services.model_dump()),
        client_cert=p(client.cert), client_key=p(client.key), ca=p(client.ca),
        crls=tuple(p(c) for c in client.crls),
        fetch=FetchSettings(per_source_timeout=client.timeout, deadline=client.deadline),
        service_timeout=client.service_timeout,
        assignments=tuple(Assignment(a.name, a.care_unit, a.care_giver, a.purpose) for a in data.assignment),
        staff_login=staff_login, session=data.session.build(), emergency=data.emergency.build(),
        demo_user=data.demo_user.build() if data.demo_user else None,
    )
    if check_files:
        files: list[tuple[tuple[str | int, ...], Path | None]] = [
            (("client", "cert"), config.client_cert), (("client", "key"), config.client_key),
            (("client", "ca"), config.ca), *((("client", "crls", i), c) for i, c in enumerate(config.crls)),
            (("staff_login", "ca"), staff_login.ca if staff_login else None)]
        for key, file in files:
            if file is not None and not file.is_file():
                raise fail(ConsumerConfigError, path, key, f"no such file {file}"
                           + (" (dev: `npo-adapter certs init`)" if key[0] == "client" else ""))
        _check_tls_files(path, config, staff_login)
    return config


def _check_tls_files(path: Path, config: ConsumerConfig, staff_login: StaffLogin | None) -> None:
    """Each certificate, key, CA and CRL file loads as what its key says, or the error names the key and the file
    (ssl's own errors name neither)."""
    def refuse(key: tuple[str | int, ...], file: Path, what: str, exc: Exception) -> ConsumerConfigError:
        why = exc.strerror if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) else \
            getattr(exc, "reason", None) or type(exc).__name__
        return fail(ConsumerConfigError, path, key, f"{file} is not {what} ({why})")

    cas = [(("client", "ca"), config.ca), *([(("staff_login", "ca"), staff_login.ca)] if staff_login and
                                            staff_login.ca else [])]
    for key, file in [*cas, *((("client", "crls", i), c) for i, c in enumerate(config.crls))]:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(file))
        except (OSError, ValueError) as exc:
            raise refuse(key, file, "a readable PEM file of CA certificates" if key[-1] == "ca" else
                         "a readable PEM CRL", exc) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(str(config.client_cert), str(config.client_key))
    except (OSError, ValueError) as exc:
        raise refuse(("client", "cert"), config.client_cert, f"a readable PEM certificate matching client.key "
                     f"{config.client_key}", exc) from None


@dataclass
class ShownRecord:
    contract: Contract
    element: etree._Element
    group: Group
    basis: Basis
    document_id: str
    source_system: str
    author_time: str | None
    unit_name: str | None


@dataclass
class Overview:
    patient_id: str
    patient_type: str
    user: UserContext
    emergency_reason: str | None
    records: dict[str, list[ShownRecord]]
    sources: list[SourceResult]
    decisions: list[Decision]
    notices: list[str] = field(default_factory=list)
    blocked_care_givers: list[str] = field(default_factory=list)
    log_seqs: list[int] = field(default_factory=list)

    @property
    def emergency(self) -> bool:
        return any(d.basis is Basis.EMERGENCY for d in self.decisions)


def _header(contract: Contract, rec: etree._Element) -> dict[str, str | None]:
    """The header facts the overview needs, wherever the contract's header model keeps them."""
    paths = contract.paths
    return {
        "document_id": first_text(rec, contract, paths.document_id),
        "source_system": first_text(rec, contract, paths.source_system),
        "care_giver": first_text(rec, contract, paths.care_giver),
        "care_unit": first_text(rec, contract, paths.care_unit),
        "author_time": first_text(rec, contract, paths.author_time),
        "unit_name": first_text(rec, contract, paths.unit_name),
    }


def patient_type_of(patient_id: str) -> str:
    """Personnummer or samordningsnummer (day of birth + 60)."""
    return codes.SAMORDNINGSNUMMER if len(patient_id) == 12 and int(patient_id[6:8]) > 60 else codes.PERSONNUMMER


async def register_unit_consent(config: ConsumerConfig, user: UserContext, patient_id: str,
                                patient_type: str | None = None, client: httpx.AsyncClient | None = None) -> str:
    """Register the patient's consent for the user's care unit with the national consent service."""
    actor = AccessingActor(user.employee_hsa_id, user.care_giver_hsa_id, user.care_unit_hsa_id)
    async with _client(config, client) as client:
        return await consent.register_consent(client, config.services.url(REGISTER_EXTENDED_CONSENT),
                                              config.services.consent_address, actor, patient_id, emergency=False,
                                              reason=None, valid_until=None,
                                              patient_type=patient_type or patient_type_of(patient_id))


def new_client(config: ConsumerConfig) -> httpx.AsyncClient:
    """The consumer's mTLS client. A long-running consumer (the staff page) keeps one, so connections to
    producers and national services stay open between overviews instead of a TLS handshake per call."""
    verify = config.tls_context()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=60)
    return httpx.AsyncClient(verify=verify, trust_env=False, timeout=config.service_timeout, limits=limits)


@contextlib.asynccontextmanager
async def _client(config: ConsumerConfig, client: httpx.AsyncClient | None):
    if client is not None:
        yield client
        return
    async with new_client(config) as fresh:
        yield fresh


async def build_overview(config: ConsumerConfig, engine: Engine, user: UserContext, patient_id: str,
                         patient_type: str = codes.PERSONNUMMER, *, emergency_reason: str | None = None,
                         faults: FaultMemory | None = None, client: httpx.AsyncClient | None = None,
                         origin: AccessOrigin | None = None) -> Overview:
    """`emergency_reason`: emergency access, registered with the consent service for the configured duration
    (`config.emergency`); callers check the reason against the policy first (`staff_settings.reason_problem`).

    One correlation id for the whole overview (the request's, on the staff page, else a new one): it goes with
    every call to the producers and the national services (adapter/rivta/client.py) and is in the log line."""
    timer = metrics.Timer()
    with correlation.scope(correlation.current()) as correlation_id:
        overview = await _build_overview(config, engine, user, patient_id, patient_type,
                                         emergency_reason=emergency_reason, faults=faults, client=client,
                                         origin=origin)
        failed = sum(1 for r in overview.sources if r.outcome is Outcome.FAILED)
        log.info("overview: %d calls to %d sources, %d failed, %d access-log entries (correlation id %s)",
                 len(overview.sources), len(config.sources), failed, len(overview.log_seqs), correlation_id)
    metrics.OVERVIEW_SECONDS.observe(timer.seconds)
    return overview


async def _build_overview(config: ConsumerConfig, engine: Engine, user: UserContext, patient_id: str,
                          patient_type: str, *, emergency_reason: str | None, faults: FaultMemory | None,
                          client: httpx.AsyncClient | None, origin: AccessOrigin | None) -> Overview:
    emergency_reason = (emergency_reason or "").strip() or None
    actor = AccessingActor(user.employee_hsa_id, user.care_giver_hsa_id, user.care_unit_hsa_id)
    notices: list[str] = []
    async with _client(config, client) as client:
        results = await fetch_all(client, list(config.sources), patient_id, patient_type, config.fetch, faults)
        merged = merge(results)

        # Records without care giver and care unit cannot be checked for blocks: never shown (TKB Regel 1).
        by_group: dict[Group, list[tuple[Contract, etree._Element, dict]]] = defaultdict(list)
        for contract in INFORMATION_TYPES:  # one version of each contract: the newest served
            for rec in merged[contract.key]:
                h = _header(contract, rec)
                if h["care_giver"] and h["care_unit"]:
                    by_group[Group(h["care_giver"], h["care_unit"], contract.block_kind)].append((contract, rec, h))
        groups = list(by_group)
        others = [g for g in groups if not is_own_care_giver(user, g)]

        has_consent = False
        if others:
            if emergency_reason:
                try:
                    await consent.register_consent(client, config.services.url(REGISTER_EXTENDED_CONSENT),
                                                   config.services.consent_address, actor, patient_id,
                                                   emergency=True, reason=emergency_reason,
                                                   valid_until=datetime.now(UTC) + timedelta(
                                                       seconds=config.emergency.duration_seconds),
                                                   for_employee_only=True, patient_type=patient_type)
                except PdlServiceError as exc:
                    notices.append(f"Nödåtkomsten kunde inte registreras i samtyckestjänsten ({exc.reason}); "
                                   "den loggas lokalt.")
            try:
                decision = await consent.check_consent(client, config.services.url(CHECK_CONSENT),
                                                       config.services.consent_address, actor, patient_id,
                                                       patient_type)
                has_consent = decision.has_consent and not decision.emergency
            except PdlServiceError as exc:
                notices.append(f"Samtyckestjänsten kunde inte nås ({exc.reason}): samtycke kan inte bekräftas.")

        block_status = await _check_blocks(client, config, actor, patient_id, patient_type, user, by_group, notices)

    decisions = decide(user, groups, consent=has_consent, emergency_reason=emergency_reason, blocks=block_status)
    overview = Overview(patient_id, patient_type, user, emergency_reason,
                        {c.key: [] for c in INFORMATION_TYPES}, results, decisions, notices)
    for d in decisions:
        if d.shown:
            for contract, rec, h in by_group[d.group]:
                overview.records[contract.key].append(ShownRecord(
                    contract, rec, d.group, d.basis, h["document_id"], h["source_system"], h["author_time"],
                    h["unit_name"]))
    for recs in overview.records.values():
        recs.sort(key=lambda r: r.author_time or "", reverse=True)
    _explain(overview)
    overview.log_seqs = _log_access(engine, overview, origin)
    return overview


async def _check_blocks(client, config, actor, patient_id, patient_type, user, by_group, notices):
    entities, order = [], []
    for g, items in by_group.items():
        if is_own_unit(user, g):
            continue
        times = sorted(t for _, _, h in items if (t := h["author_time"]))
        start = timefmt.from_timestamp(times[0]).replace(tzinfo=None) if times else datetime(1900, 1, 1)
        end = timefmt.from_timestamp(times[-1]).replace(tzinfo=None) if times else datetime.now()
        entities.append(blocks.InformationEntity(g.care_giver, g.care_unit, start, end, g.information_type))
        order.append(g)
    if not entities:
        return {}
    try:
        rows = await blocks.check_blocks(client, config.services.url(CHECK_BLOCKS), config.services.blocking_address,
                                         actor, patient_id, entities, patient_type)
    except PdlServiceError as exc:
        notices.append(f"Spärrtjänsten kunde inte nås ({exc.reason}): information utanför din egen vårdenhet "
                       "visas inte.")
        return None
    return {g: row.status.value for g, row in zip(order, rows, strict=True)}


def _explain(overview: Overview) -> None:
    blocked = sorted({d.group.care_giver for d in overview.decisions if d.hidden is Hidden.BLOCKED})
    overview.blocked_care_givers = blocked
    for giver in blocked:
        overview.notices.append(f"Det finns spärrad information hos vårdgivare {giver}.")
    waiting = sorted({d.group.care_giver for d in overview.decisions if d.hidden is Hidden.NO_CONSENT})
    if waiting:
        overview.notices.append(f"Information från {len(waiting)} annan/andra vårdgivare visas först efter "
                                "patientens samtycke eller vid nödåtkomst.")
    if overview.emergency:
        overview.notices.append("Nödåtkomst: åtkomsten är markerad i loggen med angivet skäl.")
    failed = [r for r in overview.sources if r.outcome is Outcome.FAILED]
    if failed:
        names = sorted({r.source.name for r in failed})
        overview.notices.append(f"Information kunde inte hämtas från: {', '.join(names)}.")


def _log_access(engine: Engine, overview: Overview, origin: AccessOrigin | None) -> list[int]:
    user = overview.user
    shown: dict[Group, set[str]] = defaultdict(set)
    basis: dict[Group, Basis] = {}
    for recs in overview.records.values():
        for r in recs:
            shown[r.group].add(r.contract.key)
            basis[r.group] = r.basis
    owners = list(shown) or [Group(user.care_giver_hsa_id, user.care_unit_hsa_id)]
    # one entry per information owner (care giver and unit), whatever the kinds of information read
    merged: dict[Group, set[str]] = defaultdict(set)
    for g in owners:
        merged[Group(g.care_giver, g.care_unit)] |= shown.get(g, set())
    basis = {Group(g.care_giver, g.care_unit): b for g, b in basis.items()}
    shown, owners = merged, list(merged)
    entries = [access_log.AccessEntry(
        user_id=user.employee_hsa_id, care_unit_id=user.care_unit_hsa_id, care_provider_id=user.care_giver_hsa_id,
        patient_id=overview.patient_id, information_care_provider_id=g.care_giver, information_care_unit_id=g.care_unit,
        purpose=user.purpose, basis=basis.get(g, Basis.OWN).value,
        emergency_reason=overview.emergency_reason if basis.get(g) is Basis.EMERGENCY else None,
        resource_types=tuple(sorted(shown.get(g, ()))), user_name=user.name,
        assignment_name=origin.assignment_name if origin else None,
        authenticated_by=origin.authenticated_by if origin else None,
        session_id=origin.session_id if origin else None, client_address=origin.client_address if origin else None,
    ) for g in owners]
    return access_log.append(engine, entries)
