"""The PDL access log: who read which patient's information from which care giver and unit, when, and on
what basis (own care giver, consent, emergency access).

Entries are appended with the hash of the previous entry (SHA-256 over the previous hash and the entry's
canonical JSON), so `verify` finds an altered, inserted or deleted entry. Each entry is also queued, in the
same transaction, for the national log service (StoreLog). Removing entries from the end of the chain
cannot be seen from the chain alone; the copy at the national log service is the outside witness.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

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


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def append(engine: Engine, entries: list[AccessEntry]) -> list[int]:
    """Append entries and queue them for the national log service, in one transaction. Writers are serialised
    (SQLite BEGIN IMMEDIATE, a PostgreSQL advisory lock), so replicas writing at once keep one chain."""
    with write_transaction(engine) as conn:
        xact_lock(conn, "access-log-chain")
        return _append(conn, entries)


def _append(conn: Connection, entries: list[AccessEntry]) -> list[int]:
    last = conn.execute(select(access_log.c.seq, access_log.c.hash).order_by(access_log.c.seq.desc()).limit(1)).first()
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
    now = datetime.now(UTC)
    written = []
    for entry in entries:
        seq += 1
        body = canonical(entry)
        digest = chain_hash(prev, body)
        conn.execute(access_log.insert().values(seq=seq, logged_at=now, entry=body.decode(), prev_hash=prev,
                                                hash=digest))
        conn.execute(log_outbox.insert().values(seq=seq, attempts=0, next_attempt_at=now))
        written.append(seq)
        prev = digest
    return written


@dataclass
class Verification:
    entries: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: Engine) -> Verification:
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    with engine.connect() as conn:
        for row in conn.execute(select(access_log).order_by(access_log.c.seq)):
            count += 1
            if row.seq != expected_seq:
                problems.append(f"entries {expected_seq}..{row.seq - 1} are missing")
            if row.prev_hash != prev:
                problems.append(f"entry {row.seq}: does not follow the entry before it (inserted or re-ordered)")
            if chain_hash(row.prev_hash, row.entry.encode()) != row.hash:
                problems.append(f"entry {row.seq}: content altered")
            prev, expected_seq = row.hash, row.seq + 1
    return Verification(count, problems)


def entries(engine: Engine, patient_id: str | None = None) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(access_log.c.entry).order_by(access_log.c.seq)).scalars()
        out = [orjson.loads(r) for r in rows]
    return [e for e in out if patient_id is None or e["patient_id"] == patient_id]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(access_log)).scalar_one()
