"""`serve --uds`: the socket admits only its owner (and a configured group), and behind the proxy the adapter
verifies the forwarded certificate itself.

The attack from the security review: as user `nobody`, connect to the socket and send a forged
X-Client-Cert (an expired self-signed certificate naming the platform's HSA-id) with X-Client-Verify
SUCCESS. uvicorn made the socket 0666 and the adapter trusted the header: HTTP 200 with diagnoses.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.rivta.request_builder import build_request
from tests.gateway.conftest import AUTHORISATIONS, CLI, REPO
from tests.samples import PNR, SOURCE

NOBODY, NOGROUP = 65534, 65534
PLATFORM = "SE165565594230-1000"
SYSTEM_PYTHON = "/usr/bin/python3"  # the test's own interpreter may sit where nobody cannot reach it

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
                                reason="needs root to act as another local user")

# Run as `nobody`: connect to the socket, send the request from stdin, print the answer or EACCES.
AS_NOBODY = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.stdout.write("EACCES")
    raise SystemExit
s.sendall(sys.stdin.buffer.read())
out = b""
while chunk := s.recv(65536):
    out += chunk
sys.stdout.write(out.decode("utf-8", "replace"))
"""


def forged_certificate(*, expired: bool = True) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"), x509.NameAttribute(NameOID.COMMON_NAME, "ntjp"),
                      x509.NameAttribute(NameOID.SERIAL_NUMBER, PLATFORM)])
    now = datetime.now(UTC)
    start, end = (now - timedelta(days=60), now - timedelta(days=1)) if expired else (now, now + timedelta(days=30))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def http_request(cert_pem: str | None) -> bytes:
    body = build_request(GD, SOURCE, PNR)
    headers = f"POST {GD.url_path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n"
    if cert_pem is not None:
        headers += f"X-Client-Cert: {quote(cert_pem)}\r\nX-Client-Verify: SUCCESS\r\n"
    headers += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return headers.encode() + body


def as_nobody(socket_path: Path, cert_pem: str | None) -> str:
    res = subprocess.run([SYSTEM_PYTHON, "-c", AS_NOBODY, str(socket_path)], input=http_request(cert_pem),
                         capture_output=True, timeout=30, user=NOBODY, group=NOGROUP, extra_groups=[])
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode()


def as_owner(socket_path: Path, cert_pem: str | None) -> httpx.Response:
    body = http_request(cert_pem)
    head, payload = body.split(b"\r\n\r\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), trust_env=False, timeout=10) as c:
        return c.post("http://localhost" + GD.url_path, content=payload, headers=headers)


@pytest.fixture
def open_folder():
    """A folder every local user may enter (pytest's own tmp folders are root-only, which would hide a wide
    socket and make the test pass for the wrong reason)."""
    folder = Path(tempfile.mkdtemp(prefix="npo-sock-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def start(engine, socket_path: Path, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([*CLI, "serve", "--store", str(engine.url), "--uds", str(socket_path),
                             "--log-level", "warning", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, (proc.stdout.read() + proc.stderr.read()).decode()
        if socket_path.exists():
            try:
                as_owner(socket_path, None)
                return proc
            except httpx.TransportError:
                pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def proxy_args(pki) -> list[str]:
    return ["--behind-proxy", "--client-ca", str(pki.ca_bundle), "--crl", str(pki.crl_root),
            "--crl", str(pki.crl_function), "--authorisations", str(AUTHORISATIONS)]


def test_behind_proxy_socket_refuses_other_users_and_forged_certificates(engine, pki, open_folder):
    sock = open_folder / "adapter.sock"
    proc = start(engine, sock, *proxy_args(pki))
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert sock.stat().st_uid == os.geteuid()
        assert as_nobody(sock, forged_certificate()) == "EACCES"

        # The owner (nginx's place) with the platform's genuine certificate is served ...
        platform_pem = pki.client("platform").cert.read_text()
        assert as_owner(sock, platform_pem).status_code == 200

        # ... and if the socket is ever opened up by mistake, a forged certificate still gets nothing.
        sock.chmod(0o666)
        for forged in (forged_certificate(), forged_certificate(expired=False),
                       pki.client("revoked").cert.read_text(), pki.client("expired").cert.read_text()):
            answer = as_nobody(sock, forged)
            assert answer.startswith("HTTP/1.1 500"), answer[:200]
            assert "VP002" in answer and "not accepted" in answer and PNR not in answer
        assert as_nobody(sock, platform_pem).startswith("HTTP/1.1 200")  # the control: nobody got through
    finally:
        stop(proc)


def test_socket_group_admits_that_group_only(engine, pki, open_folder):
    sock = open_folder / "adapter.sock"
    proc = start(engine, sock, *proxy_args(pki), "--socket-group", "nogroup")
    try:
        st = sock.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == NOGROUP
        assert as_nobody(sock, pki.client("platform").cert.read_text()).startswith("HTTP/1.1 200")
        assert "VP002" in as_nobody(sock, forged_certificate())
    finally:
        stop(proc)


def test_plain_http_on_a_socket_serves_its_owner_only(engine, open_folder):
    sock = open_folder / "adapter.sock"
    proc = start(engine, sock, "--plain-http")
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert as_nobody(sock, None) == "EACCES"
        assert as_owner(sock, None).status_code == 200
    finally:
        stop(proc)


def test_a_stale_socket_is_replaced_and_another_file_is_not(engine, pki, open_folder):
    from adapter.gateway.server import bind_unix_socket

    sock = open_folder / "adapter.sock"
    bind_unix_socket(sock).close()  # left behind by an earlier run
    bind_unix_socket(sock).close()
    assert stat.S_ISSOCK(sock.lstat().st_mode)
    other = open_folder / "file"
    other.write_text("x")
    with pytest.raises(ValueError, match="not a socket"):
        bind_unix_socket(other)
    assert other.read_text() == "x"
    assert sorted(p.name for p in open_folder.iterdir()) == ["adapter.sock", "file"]  # no staging folder left
