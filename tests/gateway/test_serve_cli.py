"""`npo-adapter serve` as a user runs it: one process, mTLS by default, SIGHUP reloads CRLs."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adapter.gateway.pki import issue_crl
from tests.conftest import free_port
from tests.gateway.conftest import CLI, client, wait_for_port
from tests.gateway.test_embedded_mtls import REFUSED, ask, ids


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
