"""Several adapter replicas on one PostgreSQL: consistent answers during concurrent ingest, engagements sent
once and in order, one access-log chain, and recovery when the database restarts under load."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import orjson
import pytest
from lxml import etree
from sqlalchemy import func, select

from adapter.demo.generate import generate
from adapter.demo.world import PNR_SYSTEM, default_world
from adapter.rivta.contracts import CONTRACTS
from adapter.rivta.rules import first_text
from adapter.store import migrate
from adapter.store.engine import open_store
from adapter.store.tables import ei_outbox, records
from tests.conftest import free_port
from tests.samples import PNR, call, official_schema, result
from tests.samples import records as answer_records
from tests.stores import require

REPO = Path(__file__).resolve().parents[2]
WORLD = default_world()
CLI = [sys.executable, "-m", "adapter.cli"]


@pytest.fixture
def pg_url(store_urls):
    require("postgresql")
    return store_urls.url("postgresql")


def run_cli(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def patient_type(p) -> str:
    return "1.2.752.129.2.1.3.1" if p.system == PNR_SYSTEM else "1.2.752.129.2.1.3.3"


def test_db_upgrade_and_a_replica_refusing_an_out_of_date_schema(pg_url):
    before = run_cli("db", "current", "--store", pg_url)
    assert before.returncode == 1 and "schema at nothing" in before.stderr
    refused = run_cli("serve", "--plain-http", "--port", str(free_port()), "--store", pg_url,
                      env={"NPO_AUTO_MIGRATE": "false"})
    assert refused.returncode == 2 and "npo-adapter db upgrade" in refused.stderr
    res = run_cli("db", "upgrade", "--store", pg_url)
    assert res.returncode == 0 and f"schema at {migrate.head()}" in res.stderr
    assert run_cli("db", "current", "--store", pg_url).returncode == 0


def test_two_replicas_concurrent_ingest_and_traffic(pg_url, tmp_path):
    demo = tmp_path / "demo"
    generate(demo)
    assert run_cli("db", "upgrade", "--store", pg_url).returncode == 0
    ei_port = free_port()
    ei = start([sys.executable, "-m", "adapter.stubs.engagement_index", "--port", str(ei_port), "--plain-http"])
    ei_base = f"http://127.0.0.1:{ei_port}"
    env = {"NPO_EI_URL": ei_base + "/itintegration/engagementindex/Update/1/rivtabp21", "NPO_EI_MIN_INTERVAL": "0.2",
           "NPO_EI_PER_KEY_INTERVAL": "2", "NPO_AUTO_MIGRATE": "false"}
    ports = [free_port(), free_port()]
    replicas = [start([*CLI, "serve", "--plain-http", "--port", str(p), "--store", pg_url, "--log-level", "warning"],
                      env) for p in ports]
    problems: list[str] = []
    try:
        wait_http(ei_base + "/health", ei)
        for p, proc in zip(ports, replicas, strict=True):
            wait_http(f"http://127.0.0.1:{p}/health", proc)
        ingest = start([*CLI, "ingest", str(demo), "--store", pg_url], env)  # while the replicas serve
        stop = threading.Event()

        def traffic(port: int) -> None:
            n = 0
            while not stop.is_set():
                patient = WORLD.patients[n % len(WORLD.patients)]
                contract = CONTRACTS[n % len(CONTRACTS)]
                n += 1
                status, root, _ = call(f"http://127.0.0.1:{port}", contract, patient=patient.number,
                                       patient_type=patient_type(patient))
                if status != 200 or result(root, contract)["resultCode"] != "OK":
                    problems.append(f"replica {port}: HTTP {status}")
                    continue
                if not official_schema(contract).validate(root[-1][0]):
                    problems.append(f"replica {port}: invalid {contract.name} answer")
                for rec in answer_records(root, contract):
                    pid = first_text(rec, contract, contract.paths.patient_id)  # per the contract's header model
                    if pid != patient.number:
                        problems.append(f"replica {port}: another patient's record")

        threads = [threading.Thread(target=traffic, args=(p,)) for p in ports for _ in range(2)]
        for t in threads:
            t.start()
        assert ingest.wait(timeout=180) == 0, ingest.stderr.read().decode()[-2000:]
        # a second ingest of the same data while traffic goes on: nothing changes for readers but ids
        assert run_cli("ingest", str(demo), "--store", pg_url, env=env).returncode == 0
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert problems == []

        # both replicas now give identical answers
        for contract in CONTRACTS:
            answers = set()
            for p in ports:
                _, root, _ = call(f"http://127.0.0.1:{p}", contract, patient=PNR)
                answers.add(tuple(etree.tostring(r, method="c14n", exclusive=True)
                                  for r in answer_records(root, contract)))
            assert len(answers) == 1

        engine = open_store(pg_url, upgrade=False)
        deadline = time.monotonic() + 90
        while True:
            with engine.connect() as conn:
                pending = conn.execute(select(func.count()).where(ei_outbox.c.state == "pending")).scalar()
            if pending == 0:
                break
            assert time.monotonic() < deadline, f"{pending} engagement changes never sent"
            time.sleep(0.5)
        calls = httpx.get(ei_base + "/_stub/calls").json()
    finally:
        for proc in [*replicas, ei]:
            proc.terminate()
            proc.wait(timeout=20)

    sent: dict[tuple, list[str]] = defaultdict(list)
    for c in calls:
        keys = [tuple(sorted(t["engagement"].items())) for t in c["transactions"]]
        assert len(keys) == len(set(keys)), "an engagement twice in one call"
        if c["outcome"] != "OK":
            continue
        for t in c["transactions"]:
            e = t["engagement"]
            key = (e["registeredResidentIdentification"], e["categorization"], e["dataController"])
            sent[key].append(e["mostRecentContent"])
    with engine.connect() as conn:
        expected = {(r.patient_id, r.category) for r in conn.execute(
            select(records.c.patient_id, records.c.category).distinct())}
    assert {(k[0], k[1]) for k in sent} == expected
    for key, contents in sent.items():  # in order, and never the same change twice
        assert contents == sorted(contents) and len(contents) == len(set(contents)), key


ACCESS_WRITER = """
import sys
from adapter.consumer.pdl.access_log import AccessEntry, append
from adapter.store import migrate
from adapter.store.engine import open_store
engine = open_store(sys.argv[1], upgrade=False)
for i in range(int(sys.argv[3])):
    append(engine, [AccessEntry("SE2321000016-L00" + sys.argv[2], "SE2321000016-AKUT", "SE2321000016-RG01",
                                "191212121212", "SE2120001231-VG01", "SE2120001231-HT01")])
"""


def test_the_access_log_stays_one_chain_with_replicas_writing_at_once(pg_url):
    from adapter.consumer.pdl.access_log import verify

    engine = open_store(pg_url)
    writers = [start([sys.executable, "-c", ACCESS_WRITER, pg_url, str(n), "25"]) for n in range(4)]
    for w in writers:
        assert w.wait(timeout=120) == 0, w.stderr.read().decode()[-2000:]
    result_ = verify(engine)
    assert result_.ok and result_.entries == 100, result_.problems


PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def test_postgres_restart_under_load_recovers_without_lost_data(pg_url, tmp_path, caplog):
    if not Path("/usr/bin/pg_ctlcluster").exists():
        pytest.fail("pg_ctlcluster not found: this machine kind runs PostgreSQL from Debian's packages")
    demo = tmp_path / "demo"
    generate(demo)
    engine = open_store(pg_url)
    assert run_cli("ingest", str(demo), "--store", pg_url).returncode == 0
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(records)).scalar()
    engine.dispose()
    port = free_port()
    replica = start([*CLI, "serve", "--plain-http", "--port", str(port), "--store", pg_url, "--log-level", "warning"])
    url = f"http://127.0.0.1:{port}"
    outcomes: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                status, root, raw = call(url, CONTRACTS[0], patient=PNR)
            except httpx.HTTPError:
                outcomes.append(-1)
                continue
            if status == 500:
                assert b"Fault" in raw and PNR.encode() not in raw
            outcomes.append(status)
            time.sleep(0.02)

    extra = tmp_path / "extra.json"
    try:
        wait_http(url + "/health", replica)
        t = threading.Thread(target=load)
        t.start()
        time.sleep(1)
        subprocess.run([*PG_CTL, "stop", "-m", "fast"], check=True, timeout=60)
        time.sleep(2)
        # ingest during the outage: fails as a whole, nothing half-written
        from tests.samples import bundle, condition
        extra.write_bytes(orjson.dumps(bundle(condition("c-outage", identifier="d-outage"))))
        assert run_cli("ingest", str(extra), "--store", pg_url, env={"NPO_AUTO_MIGRATE": "false"},
                       timeout=120).returncode != 0
        subprocess.run([*PG_CTL, "start"], check=True, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not outcomes or outcomes[-1] != 200):
            time.sleep(0.2)
        time.sleep(1)
        stop.set()
        t.join(timeout=30)
    finally:
        stop.set()
        subprocess.run([*PG_CTL, "start"], timeout=60)  # whatever happened, leave PostgreSQL running
        replica.terminate()
        replica.wait(timeout=20)
    assert 500 in outcomes, "the outage was never seen"
    assert outcomes[-1] == 200, "the replica did not recover by itself"
    assert run_cli("ingest", str(demo), str(extra), "--store", pg_url).returncode == 0
    engine = open_store(pg_url)
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(records)).scalar()
    assert after == before + 1
