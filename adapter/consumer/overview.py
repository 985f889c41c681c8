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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
from lxml import etree
from pydantic import AfterValidator, Field
from sqlalchemy.engine import Engine

from adapter import correlation, metrics
from adapter.consumer.fetch import (
    NATIONAL_AGGREGATING,
    FaultMemory,
    FetchSettings,
    Outcome,
    Source,
    SourceBatch,
    SourceResult,
    client_context,
    fetch_by_source,
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
from adapter.mapping.context import HSA_ID_PATTERN
from adapter.rivta import client as rivta
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


class Names:
    """Names for HSA-ids, for people: the `[names]` table of the consumer's file (a local stand-in for the HSA
    catalogue: care givers, care units, source systems), then the configured sources by their logical address.
    Unknown HSA-ids have no name; views then show the HSA-id alone."""

    def __init__(self, table: Mapping[str, str] | None = None, sources: tuple[Source, ...] = ()) -> None:
        self._names = {s.logical_address.upper(): s.name for s in sources}
        self._names.update({k.upper(): v for k, v in (table or {}).items()})

    def of(self, hsa_id: str | None) -> str | None:
        return self._names.get(hsa_id.upper()) if hsa_id else None

    def with_id(self, hsa_id: str) -> str:
        """"Exempelby kommun (SE2120001231-VG01)", or the HSA-id alone."""
        name = self.of(hsa_id)
        return f"{name} ({hsa_id})" if name else hsa_id


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
    name_table: Mapping[str, str] = field(default_factory=dict)  # [names]: HSA-id = name

    @property
    def names(self) -> Names:
        return Names(self.name_table, self.sources)

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
    aggregating: bool | None = None  # default: the national aggregating address is, any other is a source system


class _AssignmentTable(Model):
    name: Text
    care_unit: Text
    care_giver: Text
    purpose: Text = "Vård och behandling"


def _hsa_id_key(value: str) -> str:
    if not HSA_ID_PATTERN.match(value):
        raise ValueError("must be an HSA-id")
    return value


class _ConsumerFile(Model):
    client: _ClientTable
    services: _ServicesTable
    source: list[_SourceTable]
    assignment: list[_AssignmentTable] = []
    staff_login: StaffLoginTable | None = None
    session: SessionTable = SessionTable()
    emergency: EmergencyTable = EmergencyTable()
    demo_user: DemoUserTable | None = None
    names: dict[Annotated[str, AfterValidator(_hsa_id_key)], Text] = {}


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
        sources=tuple(Source(s.name, s.url, s.logical_address, s.aggregating if s.aggregating is not None
                             else s.logical_address.strip() == NATIONAL_AGGREGATING) for s in data.source),
        services=NationalServices(**services.model_dump()),
        client_cert=p(client.cert), client_key=p(client.key), ca=p(client.ca),
        crls=tuple(p(c) for c in client.crls),
        fetch=FetchSettings(per_source_timeout=client.timeout, deadline=client.deadline),
        service_timeout=client.service_timeout,
        assignments=tuple(Assignment(a.name, a.care_unit, a.care_giver, a.purpose) for a in data.assignment),
        staff_login=staff_login, session=data.session.build(), emergency=data.emergency.build(),
        demo_user=data.demo_user.build() if data.demo_user else None, name_table=dict(data.names),
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
    author_name: str | None = None
    author_role: str | None = None


@dataclass
class Overview:
    """A patient's overview as far as it has come: `pending` sources have not answered yet (the overview is
    `complete` when none is left or the deadline passed). Every record in `records` was decided by PDL and its
    access logged before it was put there."""

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
    pending: list[Source] = field(default_factory=list)
    complete: bool = False
    # records shown per source and information type (contract key); the sources table says no more than that
    shown_from: dict[tuple[Source, str], int] = field(default_factory=dict)
    # where information exists that only the patient's consent (or emergency access) would show: per source and
    # information type. Only for this reason: blocked information must not be told by kind (PDL), and information
    # whose block status is unknown might be blocked.
    consent_hidden: set[tuple[Source, str]] = field(default_factory=set)
    service_notices: list[str] = field(default_factory=list)
    names: Names | None = None

    @property
    def emergency(self) -> bool:
        return any(d.basis is Basis.EMERGENCY for d in self.decisions)

    @property
    def block_status_unknown(self) -> bool:
        return any(d.hidden is Hidden.BLOCK_STATUS_UNKNOWN for d in self.decisions)

    def needs_consent(self, contract_key: str) -> bool:
        return any(key == contract_key for _, key in self.consent_hidden)


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
        "author_name": first_text(rec, contract, paths.author_name),
        "author_role": first_text(rec, contract, paths.author_role),
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
    return rivta.new_client(verify, timeout=config.service_timeout, limits=limits)


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
                         origin: AccessOrigin | None = None, only_document: str | None = None) -> Overview:
    """The whole overview, once every source answered or the deadline passed (see `overview_stream`)."""
    last = None
    async for snapshot in overview_stream(config, engine, user, patient_id, patient_type,
                                          emergency_reason=emergency_reason, faults=faults, client=client,
                                          origin=origin, only_document=only_document):
        last = snapshot
    assert last is not None and last.complete
    return last


async def overview_stream(config: ConsumerConfig, engine: Engine, user: UserContext, patient_id: str,
                          patient_type: str = codes.PERSONNUMMER, *, emergency_reason: str | None = None,
                          faults: FaultMemory | None = None, client: httpx.AsyncClient | None = None,
                          origin: AccessOrigin | None = None,
                          only_document: str | None = None) -> AsyncIterator[Overview]:
    """The overview as it grows: first with every source pending, then again each time a source has answered
    (all its contracts, see `fetch_by_source`) and its records were decided by PDL and logged, last `complete`.
    The same object is yielded each time; read it before asking for the next.

    PDL per source as it arrives: its records are grouped by care giver, unit (and kind), consent is asked once
    (when the first other care giver's information arrives; emergency access is registered then), the blocking
    service is asked about the groups of this source with the period of their records, and the access log gets
    one entry per information owner for the information types shown from it for the first time, before they are
    shown. A failure to log ends the stream with the exception: nothing of that source is shown.

    `emergency_reason`: emergency access, registered with the consent service for the configured duration
    (`config.emergency`); callers check the reason against the policy first (`staff_settings.reason_problem`).
    `only_document`: only the record(s) with this document id are decided, shown and logged (`overview --record`).

    One correlation id for the whole overview (the request's, on the staff page, else a new one): it goes with
    every call to the producers and the national services (adapter/rivta/client.py) and is in the log line.
    """
    emergency_reason = (emergency_reason or "").strip() or None
    timer = metrics.Timer()
    correlation_id = correlation.current() or correlation.new()
    state = _Progress(config, engine, user, patient_id, patient_type, emergency_reason, origin)
    state.only_document = only_document
    ov = state.overview
    async with _client(config, client) as client:
        _explain(ov)
        yield ov
        batches = fetch_by_source(client, list(config.sources), patient_id, patient_type, config.fetch, faults)
        try:
            while True:
                # the scope never spans a yield: the fetches (started by the first step) and PDL calls carry it
                with correlation.scope(correlation_id):
                    try:
                        batch = await anext(batches)
                    except StopAsyncIteration:
                        break
                    await state.add(client, batch)
                ov.pending = [s for s in ov.pending if s != batch.source]
                _explain(ov)
                if ov.pending:
                    yield ov
        finally:
            await batches.aclose()
    state.finish()
    ov.complete = True
    _explain(ov)
    failed = sum(1 for r in ov.sources if r.outcome is Outcome.FAILED)
    log.info("overview: %d calls to %d sources, %d failed, %d access-log entries (correlation id %s)",
             len(ov.sources), len(config.sources), failed, len(ov.log_seqs), correlation_id)
    metrics.OVERVIEW_SECONDS.observe(timer.seconds)
    yield ov


class _Progress:
    """What one overview has decided, shown and logged so far."""

    def __init__(self, config: ConsumerConfig, engine: Engine, user: UserContext, patient_id: str,
                 patient_type: str, emergency_reason: str | None, origin: AccessOrigin | None) -> None:
        self.config, self.engine, self.user, self.origin = config, engine, user, origin
        self.patient_id, self.patient_type, self.emergency_reason = patient_id, patient_type, emergency_reason
        self.actor = AccessingActor(user.employee_hsa_id, user.care_giver_hsa_id, user.care_unit_hsa_id)
        self.overview = Overview(patient_id, patient_type, user, emergency_reason,
                                 {c.key: [] for c in INFORMATION_TYPES}, [], [], pending=list(config.sources),
                                 names=config.names)
        self.seen: set[tuple[str, str, str]] = set()  # contract key, document id, source system
        self.consent: bool | None = None  # asked once, when the first other care giver's information arrives
        self.logged: set[tuple[str, str, str]] = set()  # care giver, unit, contract key
        self.only_document: str | None = None

    async def add(self, client: httpx.AsyncClient, batch: SourceBatch) -> None:
        ov, user = self.overview, self.user
        ov.sources.extend(batch.results)
        # Records without care giver and care unit cannot be checked for blocks: never shown (TKB Regel 1).
        by_group: dict[Group, list[tuple[Contract, etree._Element, dict]]] = defaultdict(list)
        for result in batch.results:
            contract = result.contract
            for rec in result.records:
                h = _header(contract, rec)
                key = (contract.key, h["document_id"] or "", h["source_system"] or "")
                if key in self.seen:  # the same record from another source
                    continue
                self.seen.add(key)
                if self.only_document is not None and h["document_id"] != self.only_document:
                    continue
                if h["care_giver"] and h["care_unit"]:
                    by_group[Group(h["care_giver"], h["care_unit"], contract.block_kind)].append((contract, rec, h))
        if not by_group:
            return
        groups = list(by_group)
        if self.consent is None and any(not is_own_care_giver(user, g) for g in groups):
            self.consent = await self._consent(client)
        block_status = await _check_blocks(client, self.config, self.actor, self.patient_id, self.patient_type,
                                           user, by_group, ov.service_notices)
        decisions = decide(user, groups, consent=bool(self.consent), emergency_reason=self.emergency_reason,
                           blocks=block_status)
        shown: list[ShownRecord] = []
        for d in decisions:
            if d.shown:
                shown.extend(ShownRecord(contract, rec, d.group, d.basis, h["document_id"], h["source_system"],
                                         h["author_time"], h["unit_name"], h["author_name"], h["author_role"])
                             for contract, rec, h in by_group[d.group])
            elif d.hidden is Hidden.NO_CONSENT:
                ov.consent_hidden.update((batch.source, contract.key) for contract, _, _ in by_group[d.group])
        ov.log_seqs.extend(self._log(shown))  # before anything is shown; an exception ends the overview
        ov.decisions.extend(decisions)
        for r in shown:
            ov.records[r.contract.key].append(r)
            ov.shown_from[(batch.source, r.contract.key)] = ov.shown_from.get((batch.source, r.contract.key), 0) + 1
        for recs in ov.records.values():
            recs.sort(key=lambda r: r.author_time or "", reverse=True)

    async def _consent(self, client: httpx.AsyncClient) -> bool:
        config, notices = self.config, self.overview.service_notices
        if self.emergency_reason:
            try:
                await consent.register_consent(client, config.services.url(REGISTER_EXTENDED_CONSENT),
                                               config.services.consent_address, self.actor, self.patient_id,
                                               emergency=True, reason=self.emergency_reason,
                                               valid_until=datetime.now(UTC) + timedelta(
                                                   seconds=config.emergency.duration_seconds),
                                               for_employee_only=True, patient_type=self.patient_type)
            except PdlServiceError as exc:
                notices.append(f"Nödåtkomsten kunde inte registreras i samtyckestjänsten ({exc.reason}); "
                               "den loggas lokalt.")
        try:
            decision = await consent.check_consent(client, config.services.url(CHECK_CONSENT),
                                                   config.services.consent_address, self.actor, self.patient_id,
                                                   self.patient_type)
        except PdlServiceError as exc:
            notices.append(f"Samtyckestjänsten kunde inte nås ({exc.reason}): samtycke kan inte bekräftas.")
            return False
        return decision.has_consent and not decision.emergency

    def _log(self, shown: list[ShownRecord]) -> list[int]:
        """One entry per information owner (care giver and unit) for the information types shown from it that
        were not shown (and logged) before in this overview."""
        new: dict[Group, set[str]] = defaultdict(set)
        basis: dict[Group, Basis] = {}
        for r in shown:
            owner = Group(r.group.care_giver, r.group.care_unit)
            if (owner.care_giver, owner.care_unit, r.contract.key) not in self.logged:
                new[owner].add(r.contract.key)
                basis[owner] = r.basis
        if not new:
            return []
        seqs = _log_access(self.engine, self.overview, self.origin, {g: (basis[g], kinds) for g, kinds in new.items()})
        self.logged.update((g.care_giver, g.care_unit, k) for g, kinds in new.items() for k in kinds)
        return seqs

    def finish(self) -> None:
        """An overview that showed nothing is an access too: logged against the user's own unit."""
        if not self.logged:
            own = Group(self.user.care_giver_hsa_id, self.user.care_unit_hsa_id)
            self.overview.log_seqs.extend(_log_access(self.engine, self.overview, self.origin,
                                                      {own: (Basis.OWN, set())}))


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
        text = (f"Spärrtjänsten kunde inte nås ({exc.reason}): information utanför din egen vårdenhet "
                "visas inte.")
        if not any(n.startswith("Spärrtjänsten kunde inte nås") for n in notices):
            notices.append(text)
        return None
    return {g: row.status.value for g, row in zip(order, rows, strict=True)}


def _explain(overview: Overview) -> None:
    names = overview.names or Names()
    overview.notices = list(overview.service_notices)
    # Blocked information is told when the overview is complete, never as a source arrives: the moment it first
    # appeared would tell which source (which journal system, so perhaps which kind of care) holds it.
    blocked = sorted({d.group.care_giver for d in overview.decisions if d.hidden is Hidden.BLOCKED}) \
        if overview.complete else []
    overview.blocked_care_givers = blocked
    for giver in blocked:
        overview.notices.append(f"Det finns spärrad information hos vårdgivare {names.with_id(giver)}.")
    waiting = sorted({d.group.care_giver for d in overview.decisions if d.hidden is Hidden.NO_CONSENT})
    if waiting:
        overview.notices.append(f"Information från {len(waiting)} annan/andra vårdgivare visas först efter "
                                "patientens samtycke eller vid nödåtkomst.")
    if overview.emergency:
        overview.notices.append("Nödåtkomst: åtkomsten är markerad i loggen med angivet skäl.")
    failed = [r for r in overview.sources if r.outcome is Outcome.FAILED]
    if failed:
        failed_names = sorted({r.source.name for r in failed})
        overview.notices.append(f"Information kunde inte hämtas från: {', '.join(failed_names)}.")


def _log_access(engine: Engine, overview: Overview, origin: AccessOrigin | None,
                shown: dict[Group, tuple[Basis, set[str]]]) -> list[int]:
    """One entry per information owner (care giver and unit, no kind), with the information types read."""
    user = overview.user
    entries = [access_log.AccessEntry(
        user_id=user.employee_hsa_id, care_unit_id=user.care_unit_hsa_id, care_provider_id=user.care_giver_hsa_id,
        patient_id=overview.patient_id, information_care_provider_id=g.care_giver, information_care_unit_id=g.care_unit,
        purpose=user.purpose, basis=basis.value,
        emergency_reason=overview.emergency_reason if basis is Basis.EMERGENCY else None,
        resource_types=tuple(sorted(kinds)), user_name=user.name,
        assignment_name=origin.assignment_name if origin else None,
        authenticated_by=origin.authenticated_by if origin else None,
        session_id=origin.session_id if origin else None, client_address=origin.client_address if origin else None,
    ) for g, (basis, kinds) in shown.items()]
    return access_log.append(engine, entries)
