"""What keeps the access log honest against someone with write access to the database: a key and checkpoints
kept outside it.

* The chain is keyed: each entry's hash is HMAC-SHA256 under a key in a file (`NPO_AUDIT_KEY_FILE`, default
  var/audit.key; created 0600 when missing, for development). Without the key a rewritten chain cannot be
  recomputed.
* After every append a checkpoint (store, sequence number, hash, time; MAC'd with the same key) is appended to a
  file outside the database (`NPO_AUDIT_CHECKPOINTS`, default var/audit-checkpoints.jsonl, opened append-only).
  Cutting entries off the end leaves checkpoints pointing past the end, or at entries whose hash differs.

Keep both files on storage the database's administrators cannot write (and the checkpoints file also
forwarded, e.g. to syslog, for an outside copy). Each replica keeps its own checkpoints of the entries it wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy.engine import Engine

from adapter.config import Settings

log = logging.getLogger("adapter.consumer.pdl")


@dataclass(frozen=True)
class Seal:
    key: bytes = field(repr=False)
    checkpoints: Path

    def chain_hash(self, prev_hash: str, body: bytes) -> str:
        return hmac.new(self.key, prev_hash.encode() + b"\n" + body, hashlib.sha256).hexdigest()

    def _mac(self, point: dict) -> str:
        signed = {k: point[k] for k in ("store", "seq", "hash", "at")}
        return hmac.new(self.key, orjson.dumps(signed, option=orjson.OPT_SORT_KEYS), hashlib.sha256).hexdigest()

    def checkpoint(self, store: str, seq: int, digest: str) -> None:
        point = {"store": store, "seq": seq, "hash": digest, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        line = orjson.dumps({**point, "mac": self._mac(point)}) + b"\n"
        self.checkpoints.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.checkpoints, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_checkpoints(self, store: str) -> tuple[list[tuple[int, str]], list[str]]:
        """This store's checkpoints (seq, hash), and the problems found (forged or unreadable lines)."""
        if not self.checkpoints.exists():
            return [], []
        points, problems = [], []
        for n, raw in enumerate(self.checkpoints.read_bytes().splitlines(), start=1):
            try:
                point = orjson.loads(raw)
                if point["store"] != store:
                    continue
                if not hmac.compare_digest(point["mac"], self._mac(point)):
                    problems.append(f"checkpoint line {n}: its MAC is wrong (forged or written with another key)")
                    continue
                points.append((int(point["seq"]), str(point["hash"])))
            except (ValueError, KeyError, TypeError):
                problems.append(f"checkpoint line {n}: unreadable")
        return points, problems


def store_id(engine: Engine) -> str:
    """Which store a checkpoint belongs to: its URL (without password), hashed."""
    return hashlib.sha256(engine.url.render_as_string(hide_password=True).encode()).hexdigest()[:16]


def _key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return _key(path)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        log.warning("access log: created a new chain key at %s (development); keep it outside the database", path)
    key = bytes.fromhex(path.read_text(encoding="utf-8").strip())
    if len(key) < 32:
        raise ValueError(f"the access-log key at {path} is shorter than 32 bytes")
    return key


def seal_from_settings(settings: Settings | None = None) -> Seal:
    s = settings or Settings()
    return Seal(_key(Path(s.audit_key_file)), Path(s.audit_checkpoints))
