"""`npo-adapter serve --workers 2` as an operator runs it: one socket, two worker processes under a supervisor, real
mTLS. Which worker answers is the kernel's choice; a test makes one answer by stopping the other (SIGSTOP) for a
moment, so that "every worker" is checked worker by worker."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from adapter.gateway.pki import load_pki, revoke
from adapter.ingest import ingest
from tests.conftest import free_port
from tests.gateway.conftest import AUTHORISATIONS, CLI, REPO, client, wait_for_port
from tests.gateway.test_embedded_mtls import REFUSED, ask, ids
from tests.scrape import scrape, value

EXPECTED = {"d-home", "d-housing"}


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _workers(pid: int) -> set[int]:
    """The supervisor's worker processes (uvicorn spawns them with multiprocessing; its resource tracker is not one)."""
    workers = set()
    for child in _children(pid):
        with contextlib.suppress(FileNotFoundError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.add(child)
    return workers


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # a zombie no longer runs
    except FileNotFoundError:
        return True


def _until(check, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("not within the time")


@contextlib.contextmanager
def only(worker: int, workers: set[int]) -> Iterator[None]:
    """Only `worker` accepts connections meanwhile (the others are stopped, briefly: the supervisor's health check
    would replace a worker silent for 5 s)."""
    stopped = workers - {worker}
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def test_two_workers_restart_reload_and_stop_together(engine, pki, tmp_path):
    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))
    port, metrics_port = free_port(), free_port()
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    stderr = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [*CLI, "serve", "--workers", "2", "--store", str(engine.url.render_as_string(hide_password=False)),
         "--port", str(port), "--metrics-port", str(metrics_port), "--log-level", "info",
         "--tls-cert", str(copy.server_cert), "--tls-key", str(copy.server_key), "--client-ca", str(copy.ca_bundle),
         "--crl", str(copy.crl_root), "--crl", str(copy.crl_function), "--authorisations", str(AUTHORISATIONS)],
        stdout=subprocess.PIPE, stderr=stderr, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(private_tmp)})
    url, ops_url = f"https://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    answered = 0

    def served_by(worker: int, workers: set[int], name: str = "platform") -> None:
        nonlocal answered
        with only(worker, workers), client(copy, name) as c:  # a new client: a new connection
            assert ids(ask(c, url)) == EXPECTED
        answered += 1

    try:
        wait_for_port(port, proc)
        wait_for_port(metrics_port, proc)
        workers = _until(lambda: w if len(w := _workers(proc.pid)) == 2 else None)
        everyone = set(workers)
        for worker in workers:
            served_by(worker, workers)
            served_by(worker, workers, "consumer2")

        # SIGHUP to the supervisor: every worker reloads the CRLs, and refuses the newly revoked certificate
        revoke(copy, "consumer2")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        for worker in workers:
            with only(worker, workers), client(copy, "consumer2") as c, pytest.raises(REFUSED):
                ask(c, url)
            served_by(worker, workers)

        # a worker killed outright is replaced; the other answers meanwhile, and the new one reads the current CRLs
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        while (now := _workers(proc.pid)) == workers or len(now) < 2:
            with client(copy, "platform") as c:
                assert ids(ask(c, url)) == EXPECTED
            answered += 1
        assert killed not in now
        workers = now
        everyone |= workers
        for worker in workers:
            served_by(worker, workers)
            with only(worker, workers), client(copy, "consumer2") as c, pytest.raises(REFUSED):
                ask(c, url)

        # the supervisor's /metrics counts every worker's answers, the killed one's too
        assert value(scrape(ops_url), "npo_producer_requests_total", contract="GetDiagnosis:2",
                     outcome="OK") == answered
        everyone |= _children(proc.pid)
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        stderr.close()
    assert code == 0
    # no worker outlives the supervisor (nor, a moment later, multiprocessing's resource tracker)
    _until(lambda: all(_gone(pid) for pid in everyone), 10)
    assert not list(private_tmp.iterdir())  # the workers' metrics folder is removed
    log = (tmp_path / "stderr.log").read_text()
    assert "(callers authenticated by mutual TLS) with 2 worker processes" in log
    assert f"metrics and health on {ops_url}/metrics" in log
    assert "Uvicorn running on http://" not in log  # the metrics listener's, read as if the service were plain HTTP
    assert f"WARNING adapter.gateway worker {killed} ended (exit code -9): replaced by" in log


def test_a_has_more_reference_from_one_worker_continues_on_the_other(store, tmp_path):
    """Without NPO_PAGING_KEY each process would make its own key: the supervisor makes one for all its workers."""
    from tests.producer.test_paging import _note, page
    from tests.samples import bundle, support_bundle

    (tmp_path / "support.json").write_bytes(orjson.dumps(support_bundle()))
    (tmp_path / "data.json").write_bytes(orjson.dumps(bundle(*(_note(n) for n in range(1, 8)))))
    assert not ingest(store, [tmp_path / "support.json", tmp_path / "data.json"]).rejected
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NPO_PAGING_KEY"}
    proc = subprocess.Popen([*CLI, "serve", "--plain-http", "--workers", "2", "--port", str(port), "--store",
                             store.url.render_as_string(hide_password=False), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            env={**env, "NPO_MAX_RECORDS_PER_ANSWER": "3"})
    srv = SimpleNamespace(url=f"http://127.0.0.1:{port}")
    try:
        wait_for_port(port, proc)
        first, second = sorted(_until(lambda: w if len(w := _workers(proc.pid)) == 2 else None))
        workers = {first, second}
        with only(first, workers):
            ids, more, _ = page(srv)
        assert ids == ["note-7", "note-6", "note-5"] and more is not None
        with only(second, workers):
            ids, more, _ = page(srv, logical_address=more[0], has_more_reference=more[1])
        assert ids == ["note-4", "note-3", "note-2"] and more is not None
        with only(first, workers):
            assert page(srv, logical_address=more[0], has_more_reference=more[1])[0] == ["note-1"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path):
    """Not restarted forever: the supervisor stops the others and reports it (the authorisations file went away
    between the command's check and the workers' start)."""
    code = ("import sys; from pathlib import Path; from adapter.config import Settings; "
            "from adapter.gateway import server, workers; from adapter.gateway.identity import CertSource; "
            "spec = workers.ProducerSpec(Settings(store_url=sys.argv[1]), CertSource.NONE, Path(sys.argv[2])); "
            "sys.exit(0 if workers.supervise(spec, 2, server.bind_tcp('127.0.0.1', 0)) else 1)")
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code, f"sqlite:///{tmp_path}/s.db", str(tmp_path / "gone.toml")],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 1, res.stderr
    assert "could not start: AuthorisationError" in res.stderr
    assert time.monotonic() - started < 60


def test_workers_that_keep_dying_stop_the_supervisor(tmp_path):
    """A worker that dies after it started was replaced every half second, forever, logged at INFO: a broken
    deployment looked alive. Each death is a warning with its exit code, and more than MAX_DEATHS within WITHIN
    seconds stop the supervisor (exit 1), so the service manager sees it."""
    code = ("import sys; from pathlib import Path; from adapter import logs; from adapter.config import Settings; "
            "from adapter.gateway import server, workers; from adapter.gateway.identity import CertSource; "
            "logs.setup('info'); workers.Supervisor.MAX_DEATHS = 2; "
            "spec = workers.ProducerSpec(Settings(store_url=sys.argv[1]), CertSource.NONE, Path(sys.argv[2])); "
            "sys.exit(0 if workers.supervise(spec, 2, server.bind_tcp('127.0.0.1', 0)) else 1)")
    proc = subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{tmp_path}/s.db", str(AUTHORISATIONS)],
                            stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    try:
        killed: set[int] = set()

        def new_workers() -> set[int] | str | None:
            if proc.poll() is not None:
                return "stopped"
            return w if len(w := _workers(proc.pid) - killed) == 2 else None

        while len(killed) < 10 and (workers := _until(new_workers)) != "stopped":
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
    log = proc.stderr.read() if proc.stderr else ""
    assert log.count("WARNING adapter.gateway worker") >= 3 and "exit code -9" in log
    assert "workers ended within 60 s: stopping (a crash loop" in log
    _until(lambda: all(_gone(pid) for pid in killed), 10)


def test_a_sighup_while_a_worker_starts_does_not_end_it(tmp_path):
    """A worker started after another died got the supervisor's forwarded SIGHUP before its handler was in place, and
    SIGHUP's default action ended it: a reload during a restart cost a worker (a death; seven within a minute stop
    the supervisor). Workers now hold SIGHUP back until their handler is in place. Plain HTTP, where a SIGHUP has
    nothing to reload: it is said and ignored, not the end of every worker."""
    code = ("import sys; from pathlib import Path; from adapter import logs; from adapter.config import Settings; "
            "from adapter.gateway import server, workers; from adapter.gateway.identity import CertSource; "
            "logs.setup('info'); "
            "spec = workers.ProducerSpec(Settings(store_url=sys.argv[1]), CertSource.NONE, Path(sys.argv[2])); "
            "sys.exit(0 if workers.supervise(spec, 2, server.bind_tcp('127.0.0.1', 0)) else 1)")
    log_file = tmp_path / "supervisor.log"
    with log_file.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{tmp_path}/s.db", str(AUTHORISATIONS)],
                                stderr=err, text=True, cwd=REPO)
    def serving() -> int:  # workers that have started serving (uvicorn logs it once it has loaded the app)
        return log_file.read_text().count("Started server process")

    try:
        first = _until(lambda: w if len(w := _workers(proc.pid)) == 2 and serving() == 2 else None)
        proc.send_signal(signal.SIGHUP)  # both serving: nothing to reload, ignored
        time.sleep(1)
        assert _workers(proc.pid) == first
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        until = time.monotonic() + 5  # the replacement starts meanwhile (an interpreter, imports, the app)
        while time.monotonic() < until:
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.02)
        time.sleep(1.5)
        assert proc.poll() is None
        now = _workers(proc.pid)
        assert len(now) == 2 and first - {victim} <= now, (first, now)
        assert _until(lambda: serving() == 3, 20)  # and the replacement serves
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
    log = log_file.read_text()
    assert log.count("WARNING adapter.gateway worker") == 1, log[-3000:]  # the one killed
    assert "SIGHUP: no certificates or CRLs to reload (plain HTTP)" in log  # each worker's
    assert "SIGHUP: passed on to every worker (plain HTTP: no certificates or CRLs to reload)" in log
    assert "reloading certificates" not in log


def test_workers_must_be_at_least_one(tmp_path):
    res = subprocess.run([*CLI, "serve", "--plain-http", "--workers", "0", "--port", str(free_port()),
                          "--store", f"sqlite:///{tmp_path}/s.db"], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    assert res.returncode == 2 and "--workers" in res.stdout + res.stderr
