"""The PDL access log: who read which patient's information from which care giver and unit, when, and on
what basis (own care giver, consent, emergency access).

Entries are appended with the hash of the previous entry (HMAC-SHA256, keyed, over the previous hash and the
entry's canonical JSON), so `verify` finds an altered, inserted or deleted entry, and someone who can write the
database but not read the key cannot recompute the chain. After each append a signed checkpoint goes to a file
outside the database, so cutting entries off the end is found too (`audit_seal`). Each entry is also queued, in
the same transaction, for the national log service (StoreLog), the outside witness of the content.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from adapter.consumer.pdl.audit_seal import Seal, seal_from_settings, store_id
from adapter.store.locks import write_transaction, xact_lock
from adapter.store.tables import access_log, log_outbox

GENESIS = "0" * 64


@dataclass(frozen=True)
class AccessEntry:
    """The fields of the national log contract's Log, plus the access basis."""

    user_id: str  # employee HSA-id
    care_unit_id: str  # the user's assignment: care unit ...
    care_provider_id: str  # ... and care giver
    patient_id: str
    information_care_provider_id: str  # whose information was accessed
    information_care_unit_id: str
    activity: str = "Läsa"
    purpose: str = "Vård och behandling"
    basis: str = "own"  # own | consent | emergency
    emergency_reason: str | None = None
    resource_types: tuple[str, ...] = ()  # contracts read, e.g. ("GetDiagnosis", ...)
    assignment_id: str | None = None
    user_name: str | None = None
    assignment_name: str | None = None
    # how the user was authenticated and reached us: oidc-session | oidc-bearer | demo-without-login | cli
    authenticated_by: str | None = None
    session_id: str | None = None  # the staff page's session, or the bearer token's jti
    client_address: str | None = None
    system_id: str = "npo-adapter"
    system_name: str = "NPÖ adapter"
    log_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def canonical(entry: AccessEntry) -> bytes:
    return orjson.dumps(asdict(entry), option=orjson.OPT_SORT_KEYS)


def append(engine: Engine, entries: list[AccessEntry], seal: Seal | None = None) -> list[int]:
    """Append entries and queue them for the national log service, in one transaction, then checkpoint the new
    end outside the database. Writers are serialised (SQLite BEGIN IMMEDIATE, a PostgreSQL advisory lock), so
    replicas writing at once keep one chain."""
    seal = seal or seal_from_settings()
    with write_transaction(engine) as conn:
        xact_lock(conn, "access-log-chain")
        written, last_hash = _append(conn, entries, seal)
    if written:
        seal.checkpoint(store_id(engine), written[-1], last_hash)
    return written


def _append(conn: Connection, entries: list[AccessEntry], seal: Seal) -> tuple[list[int], str]:
    last = conn.execute(select(access_log.c.seq, access_log.c.hash).order_by(access_log.c.seq.desc()).limit(1)).first()
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
    now = datetime.now(UTC)
    written = []
    for entry in entries:
        seq += 1
        body = canonical(entry)
        digest = seal.chain_hash(prev, body)
        conn.execute(access_log.insert().values(seq=seq, logged_at=now, entry=body.decode(), prev_hash=prev,
                                                hash=digest))
        conn.execute(log_outbox.insert().values(seq=seq, attempts=0, next_attempt_at=now))
        written.append(seq)
        prev = digest
    return written, prev


@dataclass
class Verification:
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: Engine, seal: Seal | None = None) -> Verification:
    """The chain under the key, and every checkpoint outside the database against the entries."""
    seal = seal or seal_from_settings()
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    hashes: dict[int, str] = {}
    with engine.connect() as conn:
        for row in conn.execute(select(access_log).order_by(access_log.c.seq)):
            count += 1
            if row.seq != expected_seq:
                problems.append(f"entries {expected_seq}..{row.seq - 1} are missing")
            if row.prev_hash != prev:
                problems.append(f"entry {row.seq}: does not follow the entry before it (inserted or re-ordered)")
            if seal.chain_hash(row.prev_hash, row.entry.encode()) != row.hash:
                problems.append(f"entry {row.seq}: content altered, or the chain was recomputed without the key")
            hashes[row.seq] = row.hash
            prev, expected_seq = row.hash, row.seq + 1
    points, point_problems = seal.read_checkpoints(store_id(engine))
    problems += point_problems
    last = expected_seq - 1
    beyond = max((seq for seq, _ in points if seq > last), default=None)
    if beyond is not None:
        problems.append(f"a checkpoint outside the database names entry {beyond}, but the log ends at {last}: "
                        "entries were cut off the end")
    problems += [f"entry {seq}: differs from its checkpoint outside the database"
                 for seq, digest in points if seq <= last and hashes.get(seq) != digest]
    return Verification(count, problems)


def entries(engine: Engine, patient_id: str | None = None) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(access_log.c.entry).order_by(access_log.c.seq)).scalars()
        out = [orjson.loads(r) for r in rows]
    return [e for e in out if patient_id is None or e["patient_id"] == patient_id]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(access_log)).scalar_one()
