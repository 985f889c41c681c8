"""The access log against someone with write access to the database: the attacks of the review (delete entries
and recompute the chain, cut entries off the end) are found by `verify` and by `npo-adapter audit verify`."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from sqlalchemy import delete, select, text, update
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import Settings
from adapter.consumer.pdl import access_log
from adapter.consumer.pdl.audit_seal import Seal, seal_from_settings
from adapter.store.tables import access_log as log_table
from adapter.store.tables import log_outbox


@pytest.fixture
def seal(tmp_path) -> Seal:
    return seal_from_settings(Settings(audit_key_file=str(tmp_path / "keys" / "audit.key"),
                                       audit_checkpoints=str(tmp_path / "sealed" / "checkpoints.jsonl")))


def entry(n: int, basis: str = "own") -> access_log.AccessEntry:
    return access_log.AccessEntry(user_id="SE2321000016-L001", care_unit_id="SE2321000016-AKUT",
                                  care_provider_id="SE2321000016-RG01", patient_id="191212121212",
                                  information_care_provider_id="SE2120001231-VG01",
                                  information_care_unit_id=f"SE2120001231-U{n:03d}", basis=basis,
                                  emergency_reason="Medvetslös patient" if basis == "emergency" else None)


def with_write_access(store):
    """The attacker owns the database: the append-only triggers go first."""
    conn = store.connect()
    trans = conn.begin()
    if store.dialect.name == "sqlite":
        conn.execute(text("DROP TRIGGER access_log_no_update"))
        conn.execute(text("DROP TRIGGER access_log_no_delete"))
    else:
        conn.execute(text("DROP TRIGGER access_log_append_only ON access_log"))
    return _Owned(conn, trans)


class _Owned:
    def __init__(self, conn, trans) -> None:
        self.conn, self.trans = conn, trans

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc) -> None:
        self.trans.commit()
        self.conn.close()


def six_entries(store, seal: Seal) -> None:
    for n in range(6):
        access_log.append(store, [entry(n, "emergency" if n in (2, 3) else "own")], seal)


def test_the_key_is_created_owner_only_and_the_chain_is_intact(new_store, seal):
    store = new_store()
    six_entries(store, seal)
    key_file = seal.checkpoints.parent.parent / "keys" / "audit.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(seal.checkpoints).st_mode) == 0o600
    result = access_log.verify(store, seal)
    assert result.ok and result.entries == 6, result.problems


def test_deleting_entries_and_recomputing_the_chain_with_sha256_is_found(new_store, seal):
    store = new_store()
    six_entries(store, seal)
    with with_write_access(store) as conn:  # the attack: drop the two emergency entries, renumber and rehash as before
        conn.execute(delete(log_outbox))
        conn.execute(delete(log_table).where(log_table.c.seq.in_([3, 4])))
        rows = conn.execute(select(log_table.c.seq, log_table.c.entry, log_table.c.logged_at)
                            .order_by(log_table.c.seq)).all()
        conn.execute(delete(log_table))
        prev = access_log.GENESIS
        for new_seq, row in enumerate(rows, start=1):
            digest = hashlib.sha256(prev.encode() + b"\n" + row.entry.encode()).hexdigest()
            conn.execute(log_table.insert().values(seq=new_seq, logged_at=row.logged_at, entry=row.entry,
                                                   prev_hash=prev, hash=digest))
            prev = digest
    result = access_log.verify(store, seal)
    assert not result.ok and result.entries == 4
    assert any("recomputed without the key" in p for p in result.problems)
    assert any("cut off the end" in p for p in result.problems)  # 4 entries, checkpoints up to 6


def test_cutting_entries_off_the_end_is_found(new_store, seal):
    store = new_store()
    six_entries(store, seal)
    with with_write_access(store) as conn:
        conn.execute(delete(log_outbox).where(log_outbox.c.seq > 4))
        conn.execute(delete(log_table).where(log_table.c.seq > 4))
    result = access_log.verify(store, seal)
    assert not result.ok and result.entries == 4
    assert result.problems == ["a checkpoint outside the database names entry 6, but the log ends at 4: entries "
                               "were cut off the end"]


def test_cutting_and_appending_new_entries_in_their_place_is_found(new_store, seal):
    """The end is cut and the chain continued (with the key, by the adapter itself): the checkpoints of the
    removed entries no longer match the entries that now carry their numbers."""
    store = new_store()
    six_entries(store, seal)
    with with_write_access(store) as conn:
        conn.execute(delete(log_outbox).where(log_outbox.c.seq > 4))
        conn.execute(delete(log_table).where(log_table.c.seq > 4))
    access_log.append(store, [entry(90), entry(91)], seal)
    result = access_log.verify(store, seal)
    assert not result.ok
    assert any("entry 6: differs from its checkpoint" in p for p in result.problems)


def test_a_forged_checkpoint_or_another_key_is_found(new_store, seal, tmp_path):
    store = new_store()
    six_entries(store, seal)
    with open(seal.checkpoints, "ab") as f:
        f.write(b'{"store":"x","seq":1,"hash":"00","at":"2024-01-01T00:00:00+00:00","mac":"00"}\n')
    other = seal_from_settings(Settings(audit_key_file=str(tmp_path / "other.key"),
                                        audit_checkpoints=str(seal.checkpoints)))
    result = access_log.verify(store, other)
    assert not result.ok and any("recomputed without the key" in p for p in result.problems)
    with with_write_access(store) as conn:  # an altered entry, its hash left alone
        conn.execute(update(log_table).where(log_table.c.seq == 2).values(entry='{"user_id":"x"}'))
    assert any("entry 2: content altered" in p for p in access_log.verify(store, seal).problems)


def test_audit_verify_command_fails_after_truncation(tmp_path, monkeypatch):
    monkeypatch.setenv("NPO_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    monkeypatch.setenv("NPO_AUDIT_CHECKPOINTS", str(tmp_path / "checkpoints.jsonl"))
    url = f"sqlite:///{tmp_path}/cli.db"
    from adapter.store.engine import open_store

    store = open_store(url)
    for n in range(3):
        access_log.append(store, [entry(n)])
    ok = CliRunner().invoke(app, ["audit", "verify", "--store", url])
    assert ok.exit_code == 0 and "intact" in ok.output
    with with_write_access(store) as conn:
        conn.execute(delete(log_outbox).where(log_outbox.c.seq == 3))
        conn.execute(delete(log_table).where(log_table.c.seq == 3))
    cut = CliRunner().invoke(app, ["audit", "verify", "--store", url])
    assert cut.exit_code == 1 and "BROKEN" in cut.output and "cut off the end" in " ".join(cut.output.split())
