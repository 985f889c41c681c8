"""The production profile: Debian's nginx terminates mTLS and forwards the verified certificate to the
adapter over a Unix socket. The same certificate matrix as the embedded server, through real nginx."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from lxml import etree

from adapter.config import Settings
from adapter.gateway import authorisation
from adapter.gateway.identity import CertSource
from adapter.gateway.nginx import render
from adapter.gateway.server import bind_unix_socket
from adapter.gateway.verify import ReloadableVerifier
from adapter.producer.app import Access, create_app
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from tests.conftest import free_port
from tests.gateway.conftest import AUTHORISATIONS, HIDDEN_FROM, client
from tests.gateway.test_embedded_mtls import ask, ids
from tests.samples import fault_string

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(
    not os.path.exists(NGINX) and os.environ.get("CI") != "true",
    reason="nginx not installed (CI installs nginx-light; this test then fails instead of skipping)",
)

MAIN_CONF = """
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/npo-adapter.conf;
}}
"""


class ProxiedAdapter:
    """The adapter on a Unix socket (--behind-proxy) plus nginx in front of it on a loopback port."""

    def __init__(self, engine, pki, prefix: Path) -> None:
        self.prefix = prefix
        self.socket = prefix / "adapter.sock"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        app = create_app(engine, Settings(store_url="sqlite://"),
                         Access(CertSource.PROXY, authorisation.load(AUTHORISATIONS),
                                ReloadableVerifier(pki.ca_bundle, (pki.crl_root, pki.crl_function))))
        self.server = uvicorn.Server(uvicorn.Config(app, uds=str(self.socket), log_level="warning",
                                                    access_log=False, lifespan="off"))
        sock = bind_unix_socket(self.socket)  # 0600: nginx runs as root here
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        (prefix / "npo-adapter.conf").write_text(render(
            listen=f"127.0.0.1:{self.port}", socket=self.socket, server_cert=pki.server_cert,
            server_key=pki.server_key, client_ca=pki.ca_bundle, crls=pki.crls))
        (prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=prefix))
        self.nginx: subprocess.Popen | None = None

    def __enter__(self) -> ProxiedAdapter:
        self.thread.start()
        check = subprocess.run([NGINX, "-t", "-c", str(self.prefix / "nginx.conf"), "-p", str(self.prefix)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.nginx = subprocess.Popen([NGINX, "-c", str(self.prefix / "nginx.conf"), "-p", str(self.prefix),
                                       "-g", "daemon off;"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self.server.started:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "nginx or the adapter did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        if self.nginx is not None:
            self.nginx.terminate()
            self.nginx.wait(timeout=10)
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def proxied(engine, pki, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("nginx")
    with ProxiedAdapter(engine, pki, prefix) as p:
        yield p


@pytest.mark.parametrize("name", ["platform", "consumer2"])
def test_authorised_callers_are_served_through_nginx(proxied, pki, name):
    with client(pki, name) as c:
        assert ids(ask(c, proxied.url)) == {"d-home", "d-housing"}


@pytest.mark.parametrize("name", [None, "foreign", "revoked", "expired", "noclientauth"])
def test_bad_certificates_never_reach_the_adapter(proxied, pki, name, caplog):
    caplog.set_level(logging.INFO, logger="adapter")
    with client(pki, name) as c:
        try:
            resp = ask(c, proxied.url)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
            resp = None  # refused in the handshake
    if resp is not None:  # nginx verifies after the handshake and answers 400 itself
        assert resp.status_code == 400
        assert "nginx" in resp.text.lower()
    assert not [r for r in caplog.records if r.name.startswith("adapter.producer")]


def test_unknown_consumer_gets_vp007_through_nginx(proxied, pki):
    with client(pki, "unknown") as c:
        resp = ask(c, proxied.url)
    assert resp.status_code == 500
    assert fault_string(etree.fromstring(resp.content)).startswith("VP007")


def test_forged_certificate_header_is_overwritten_by_nginx(proxied, pki):
    from urllib.parse import quote

    platform_pem = pki.client("platform").cert.read_text()
    forged = {"X-Client-Cert": quote(platform_pem), "X-Client-Verify": "SUCCESS",
              "x-vp-sender-id": "SE165565594230-1000"}
    with client(pki, "unknown") as c:
        resp = ask(c, proxied.url, forged)
    assert resp.status_code == 500 and "VP007" in resp.text
    assert pki.client("unknown").hsa_id in resp.text


def test_original_consumer_filtering_through_nginx(proxied, pki):
    with client(pki, "platform") as c:
        assert ids(ask(c, proxied.url, {"x-rivta-original-serviceconsumer-hsaid": HIDDEN_FROM})) == {"d-home"}


def test_handshake_storm_through_nginx(proxied, pki):
    bad = ssl.create_default_context(cafile=str(pki.ca_bundle))

    def failing(_: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", proxied.port), timeout=10) as raw, \
                    bad.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"POST " + GD.url_path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                return b" 400 " in tls.recv(64)
        except (ssl.SSLError, OSError):
            return True

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        storm = pool.map(failing, range(300))
        with client(pki, "platform") as c:
            for _ in range(10):
                assert ids(ask(c, proxied.url)) == {"d-home", "d-housing"}
        assert all(storm)
