"""Cross-process locks on the embedded store: one holder at a time across processes and threads, and nothing
left beside the database (an earlier version left a `*.lock` file per engagement-index group)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from adapter.store.engine import open_store
from adapter.store.locks import try_lock, wait_turn
from tests.conftest import free_port
from tests.ei.conftest import serve_stub
from tests.ei.test_set_aside import journal

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys
from adapter.store.engine import open_store
from adapter.store.locks import try_lock, wait_turn
with try_lock(open_store(sys.argv[1]), sys.argv[2]) as mine:
    print("held" if mine else "busy", flush=True)
    sys.stdin.read()
"""


def test_try_lock_is_exclusive_across_processes_and_threads_and_leaves_no_file(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    engine = open_store(url)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, "group-a"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with try_lock(engine, "group-a") as mine:
            assert not mine  # held by the other process
        with try_lock(engine, "group-b") as mine:
            assert mine  # another name is free
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    with try_lock(engine, "group-a") as mine:
        assert mine  # released when its holder ended
        seen: list[bool] = []

        def other_thread() -> None:
            with try_lock(engine, "group-a") as theirs:
                seen.append(theirs)

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert seen == [False]
    engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".lock") == []


TURN_TAKER = """
import sys
from adapter.store.engine import open_store
from adapter.store.locks import wait_turn
with open_store(sys.argv[1]).connect() as conn, wait_turn(conn, sys.argv[2]):
    print("my turn", flush=True)
    sys.stdin.read()
print("done", flush=True)
"""


def test_wait_turn_waits_for_the_other_process_and_goes_on_when_it_lets_go(tmp_path):
    """The intake's writers in several `serve` workers take turns on this lock before SQLite's own."""
    url = f"sqlite:///{tmp_path}/store.db"
    engine = open_store(url)
    with engine.connect() as conn, wait_turn(conn, "fhir-intake"):
        waiter = subprocess.Popen([sys.executable, "-c", TURN_TAKER, url, "fhir-intake"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, cwd=REPO)
        try:
            assert waiter.stdout is not None
            readable, _, _ = select.select([waiter.stdout], [], [], 1.0)
            assert not readable and waiter.poll() is None  # still waiting for its turn
        except BaseException:
            waiter.kill()
            raise
    assert waiter.stdout is not None and waiter.stdout.readline().strip() == "my turn"  # once this one let go
    with try_lock(engine, "fhir-intake") as mine:
        assert not mine  # now the other process holds it
    assert waiter.stdin is not None
    waiter.stdin.close()
    assert waiter.wait(timeout=30) == 0
    with try_lock(engine, "fhir-intake") as mine:
        assert mine
    engine.dispose()


WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0.2, isolation_level=None)
try:
    conn.execute("BEGIN IMMEDIATE")
    print("got in")
except sqlite3.OperationalError as exc:
    print(exc)
"""


def test_taking_a_lock_keeps_sqlites_own_locks(tmp_path):
    """Our descriptor of the database file is opened while this process holds SQLite's write lock, and locks
    are taken and released on it: another process still cannot write (closing a descriptor would drop every
    POSIX lock this process holds on the file, SQLite's too)."""
    import sqlite3

    db = tmp_path / "store.db"
    engine = open_store(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()  # try_lock needs no connection on SQLite
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=DELETE")  # the rollback journal's locks are on the database file itself
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO t VALUES (1)")
    try:
        for name in ("a", "b", "a"):
            with try_lock(engine, name) as mine:
                assert mine
        other = subprocess.run([sys.executable, "-c", WRITER, str(db)], capture_output=True, text=True, timeout=30)
        assert "locked" in other.stdout, other.stdout + other.stderr
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        engine.dispose()


def test_no_lock_files_after_ingest_serve_and_ei_sync(tmp_path):
    var = tmp_path / "var"
    store = f"sqlite:///{var}/npo-adapter.db"
    files = journal(tmp_path)
    env = {**os.environ, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "adapter.cli"]
    done = subprocess.run([*cli, "ingest", "--store", store, *map(str, files)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    with serve_stub() as ei:
        ei.stub.deployed_resident_pattern = False
        env |= {"NPO_EI_URL": ei.url, "NPO_EI_MIN_INTERVAL": "0"}
        port = free_port()
        serve = subprocess.Popen([*cli, "serve", "--plain-http", "--port", str(port), "--store", store,
                                  "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + 60
            while len(ei.stub.stored()) < 2:  # the sender inside serve delivered both engagements
                assert serve.poll() is None and time.monotonic() < deadline, "serve sent nothing"
                time.sleep(0.2)
            with httpx.Client(trust_env=False) as c:
                assert c.get(f"http://127.0.0.1:{port}/clinicalprocess/healthcond/description/GetDiagnosis/2/"
                             "rivtabp21?wsdl").status_code == 200
        finally:
            serve.terminate()
            serve.wait(timeout=30)
        synced = subprocess.run([*cli, "ei-sync", "--store", store], capture_output=True, text=True, cwd=REPO,
                                env=env, timeout=120)
        assert synced.returncode == 0, synced.stderr
    assert {p.name for p in var.iterdir()} <= {"npo-adapter.db", "npo-adapter.db-wal", "npo-adapter.db-shm"}
    assert list(tmp_path.rglob("*.lock")) == []
