"""`npo-adapter serve` as a user runs it: one process, mTLS by default, SIGHUP reloads CRLs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adapter.gateway.pki import issue_crl, load_pki
from tests.conftest import free_port
from tests.gateway.conftest import client
from tests.gateway.test_embedded_mtls import REFUSED, ask, ids

CLI = [sys.executable, "-m", "adapter.cli"]


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 15) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture
def served(engine, pki, tmp_path):
    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))
    port = free_port()
    store_url = str(engine.url)
    proc = subprocess.Popen(
        [*CLI, "serve", "--store", store_url, "--port", str(port), "--log-level", "warning",
         "--tls-cert", str(copy.server_cert), "--tls-key", str(copy.server_key), "--client-ca", str(copy.ca_bundle),
         "--crl", str(copy.crl_root), "--crl", str(copy.crl_function)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_port(port, proc)
        yield proc, f"https://127.0.0.1:{port}", copy
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_is_mtls_and_sighup_reloads_crls(served):
    proc, url, pki = served
    with client(pki, "platform") as c:
        assert ids(ask(c, url)) == {"d-home", "d-housing"}
    with client(pki, None) as c, pytest.raises(REFUSED):
        ask(c, url)

    issue_crl(pki, next_update=datetime.now(UTC) - timedelta(minutes=5), which="function")
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    with client(pki, "platform") as c, pytest.raises(REFUSED):
        ask(c, url)  # stale CRL after reload: fail closed, no restart

    issue_crl(pki, next_update=datetime.now(UTC) + timedelta(days=7), which="function")
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    with client(pki, "platform") as c:
        assert ids(ask(c, url)) == {"d-home", "d-housing"}
    assert proc.poll() is None


def test_plain_http_is_refused_off_loopback(tmp_path):
    res = subprocess.run([*CLI, "serve", "--plain-http", "--host", "0.0.0.0", "--store", f"sqlite:///{tmp_path}/s.db"],
                         capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 2
    assert "loopback" in res.stdout + res.stderr


def test_plain_http_on_loopback_serves_without_tls(engine):
    port = free_port()
    proc = subprocess.Popen([*CLI, "serve", "--plain-http", "--port", str(port), "--store", str(engine.url),
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        wait_for_port(port, proc)
        with httpx.Client(trust_env=False, timeout=10) as c:
            assert ids(ask(c, f"http://127.0.0.1:{port}")) == {"d-home", "d-housing"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
