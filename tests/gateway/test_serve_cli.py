"""`npo-adapter serve` as a user runs it: one process, mTLS by default, SIGHUP reloads CRLs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adapter.gateway.pki import issue_crl
from tests.conftest import free_port
from tests.gateway.conftest import AUTHORISATIONS, CLI, client, wait_for_port
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


@pytest.fixture
def dev_checkout(tmp_path, pki):
    """A working directory with a development PKI in certs/dev and the dev authorisations, as a checkout has."""
    import shutil

    shutil.copytree(pki.dir, tmp_path / "certs" / "dev")
    (tmp_path / "config").mkdir()
    shutil.copy(AUTHORISATIONS, tmp_path / "config" / "authorisations.dev.toml")
    return tmp_path


@pytest.mark.parametrize(("args", "missing"), [
    (["--tls-cert", "{pki}/server.pem", "--tls-key", "{pki}/server.key"], "--client-ca, --crl, --authorisations"),
    (["--tls-cert", "{pki}/server.pem", "--tls-key", "{pki}/server.key", "--client-ca", "{pki}/ca-bundle.pem",
      "--crl", "{pki}/crls.pem"], "--authorisations"),
    (["--authorisations", "{auth}"], "--tls-cert, --tls-key, --client-ca, --crl"),
    (["--uds", "{tmp}/s", "--behind-proxy", "--authorisations", "{auth}"], "--client-ca, --crl"),
])
def test_own_certificates_never_mix_with_the_development_pki(dev_checkout, pki, args, missing):
    """The review: `serve --tls-cert X --tls-key Y` silently trusted certs/dev's CAs, CRLs and authorisations."""
    argv = [a.format(pki=pki.dir, auth=AUTHORISATIONS, tmp=dev_checkout) for a in args]
    res = subprocess.run([*CLI, "serve", "--store", f"sqlite:///{dev_checkout}/s.db", "--port", str(free_port()),
                          *argv], capture_output=True, text=True, timeout=60, cwd=dev_checkout)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode == 2, out
    assert f"{missing} must be given too" in out


def test_development_defaults_are_announced(dev_checkout, engine):
    port = free_port()
    proc = subprocess.Popen([*CLI, "serve", "--store", str(engine.url), "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=dev_checkout,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for_port(port, proc)
    finally:
        proc.terminate()
        out, err = (b.decode() for b in proc.communicate(timeout=10))
    assert proc.returncode is not None, err
    said = " ".join((out + err).split())
    assert "DEVELOPMENT: trusting the development PKI in certs/dev" in said, said
