"""How the UI may listen: HTTPS with a server certificate (no client certificate asked) and sign-in through the
provider; without a provider only the demo mode on loopback."""

from __future__ import annotations

import contextlib
import ssl
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from adapter.consumer.overview import Assignment, ConsumerConfig, NationalServices
from adapter.consumer.staff_settings import DemoUser
from adapter.store.engine import open_store
from adapter.ui import create_ui_app
from adapter.ui.serve import listen_refusal, uvicorn_config
from tests.conftest import free_port
from tests.oidc.provider import sign_in
from tests.ui.conftest import UiServer

CERT, KEY = Path("c.pem"), Path("k.pem")


@pytest.mark.parametrize(("host", "cert", "key", "provider", "demo", "refused"), [
    ("127.0.0.1", None, None, False, True, None),  # the demo mode
    ("::1", None, None, False, True, None),
    ("localhost", None, None, False, True, None),
    ("127.0.0.1", CERT, KEY, True, False, None),
    ("0.0.0.0", CERT, KEY, True, False, None),
    ("10.1.2.3", CERT, KEY, True, True, None),  # a provider wins over the demo user
    ("0.0.0.0", None, None, True, False, "plain HTTP is refused on anything but loopback"),
    ("10.1.2.3", None, None, False, True, "plain HTTP is refused on anything but loopback"),
    ("0.0.0.0", CERT, KEY, False, True, "the demo mode without sign-in is for loopback only"),
    ("127.0.0.1", None, None, True, False, "sign-in through the provider needs HTTPS"),
    ("127.0.0.1", CERT, KEY, False, False, "no [staff_login]"),
    ("127.0.0.1", CERT, None, True, False, "--tls-cert and --tls-key go together"),
])
def test_off_loopback_only_with_tls_and_a_provider(host, cert, key, provider, demo, refused):
    answer = listen_refusal(host, cert, key, provider=provider, demo=demo)
    assert (answer is None) if refused is None else answer.startswith(refused)


def demo_config(pki) -> ConsumerConfig:
    """The staff page in demo mode on loopback, every national service down (nothing listens there)."""
    dead, platform = f"https://127.0.0.1:{free_port()}", pki.client("platform")
    return ConsumerConfig(sources=(), services=NationalServices(dead, dead, dead), client_cert=platform.cert,
                          client_key=platform.key, ca=pki.ca_bundle, service_timeout=1,
                          assignments=(Assignment("Akuten", "SE2321000016-AKUT", "SE2321000016-RG01"),),
                          demo_user=DemoUser("SE2321000016-DEMO", "Demo Användare"))


def test_a_server_without_provider_or_demo_user_is_refused():
    dead = "https://127.0.0.1:1"
    config = ConsumerConfig(sources=(), services=NationalServices(dead, dead, dead), client_cert=Path("c"),
                            client_key=Path("k"), ca=Path("ca"))
    with pytest.raises(ValueError, match="no \\[staff_login\\]"):
        uvicorn_config(create_ui_app(config, open_store("sqlite://")), tls_cert=CERT, tls_key=KEY)
    with pytest.raises(ValueError, match="loopback only"):
        demo = replace(config, demo_user=DemoUser("SE2321000016-DEMO", "Demo"))
        uvicorn_config(create_ui_app(demo, open_store("sqlite://")), host="0.0.0.0", tls_cert=CERT, tls_key=KEY)


def test_the_demo_mode_on_loopback_signs_in_the_demo_user_and_says_so(pki, tmp_path):
    config = demo_config(pki)
    with UiServer(create_ui_app(config, open_store(f"sqlite:///{tmp_path}/ui.db"))) as srv, \
            httpx.Client(base_url=srv.url, trust_env=False, timeout=10) as client:
        assert client.get("/api/session").status_code == 401
        # labelled before anyone signs in too (a clinician's first look saw only "Du är inte inloggad")
        assert '<p id="demo-banner" class="notice notice-failed">' in client.get("/").text
        client.get("/login", follow_redirects=True)
        session = client.get("/api/session").json()
        assert session["demo"] is True and session["hsa_id"] == "SE2321000016-DEMO"
        assert [a["care_unit"] for a in session["assignments"]] == ["SE2321000016-AKUT"]
        assert client.get("/api/assignments").status_code == 403  # still needs the CSRF token
        assert client.get("/api/assignments", headers={"X-CSRF-Token": session["csrf_token"]}).status_code == 200
        assert "Demoläge utan inloggning" in client.get("/").text


def test_https_without_client_certificate_and_the_sender_stops_on_shutdown(pki, tmp_path, oidc):
    platform = pki.client("platform")
    dead = f"https://127.0.0.1:{free_port()}"
    port = free_port()
    config = ConsumerConfig(sources=(), services=NationalServices(dead, dead, dead), client_cert=platform.cert,
                            client_key=platform.key, ca=pki.ca_bundle, service_timeout=1,
                            staff_login=oidc.login_settings(f"https://127.0.0.1:{port}"))
    app = create_ui_app(config, open_store(f"sqlite:///{tmp_path}/ui.db"), log_flush_interval=0.1)
    with UiServer(app, port, tls_cert=pki.server_cert, tls_key=pki.server_key) as srv:
        assert srv.url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(pki.ca_bundle))
        with httpx.Client(verify=trust, trust_env=False, timeout=10) as client:  # no client certificate
            assert client.get(srv.url + "/").status_code == 200
            assert client.get(srv.url + "/api/audit/verify").status_code == 401  # not signed in
            sign_in(client, srv.url, "anna")
            assert client.get(srv.url + "/api/audit/verify").json() == {"entries": 0, "ok": True, "problems": []}
        deadline = time.monotonic() + 5
        while app.state.log_flusher.rounds < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.log_flusher.running and app.state.log_flusher.rounds >= 2  # periodic
    assert not app.state.log_flusher.running


def test_endless_header_lines_from_anyone_are_cut_off(pki, tmp_path, caplog):
    """Before any sign-in: a client sends header lines for ever. The staff page's server stops reading at its cap
    on a request's head and closes the connection (uvicorn's own protocol kept every line until the memory ran
    out), and the page is still served."""
    import logging
    import socket

    caplog.set_level(logging.WARNING)
    config = demo_config(pki)
    with UiServer(create_ui_app(config, open_store(f"sqlite:///{tmp_path}/ui.db"))) as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        sent = 0
        with socket.create_connection((host, int(port))) as s, pytest.raises(OSError):
            s.settimeout(10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for i in range(40_000):  # 320 MB, if the server kept reading
                s.sendall(b"X-Filler-%d: %s\r\n" % (i, b"a" * 8000))
                sent += 8000
            s.recv(1)
        assert sent < 16 * 1024 * 1024, sent
        assert any("line and headers exceed" in r.getMessage() for r in caplog.records)
        with httpx.Client(base_url=srv.url, trust_env=False, timeout=10) as client:
            assert client.get("/").status_code == 200


def test_a_connection_that_never_finishes_its_request_head_is_closed(pki, tmp_path, monkeypatch):
    """Slowloris before any sign-in: a byte of a request's head now and then kept the connection for ever; now it
    is closed at the head's deadline (here 1 s)."""
    import socket

    from adapter.gateway import protocol

    monkeypatch.setattr(protocol, "HEAD_SECONDS", 1.0)
    config = demo_config(pki)
    with UiServer(create_ui_app(config, open_store(f"sqlite:///{tmp_path}/ui.db"))) as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X: y\r\n" * 1000
        closed = False
        with socket.create_connection((host, int(port))) as s:
            s.settimeout(0.2)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not closed:
                try:
                    s.sendall(head[:1])
                    head = head[1:]
                    closed = s.recv(1) == b""
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
        assert closed
        with httpx.Client(base_url=srv.url, trust_env=False, timeout=10) as client:
            assert client.get("/").status_code == 200


def test_a_huge_or_trickled_body_before_sign_in_is_refused_unread(pki, tmp_path, monkeypatch):
    """Anyone who reaches the staff page POSTs to the API without signing in: the framework read a body whole before
    the sign-in check, so 300 MB sent were 300 MB held (and a body trickled a byte at a time held its connection for
    ever). Now a body is capped and has a deadline; a signed-in user's requests still work."""
    import socket

    config = demo_config(pki)
    with UiServer(create_ui_app(config, open_store(f"sqlite:///{tmp_path}/ui.db"))) as srv:
        host, port = srv.url.removeprefix("http://").split(":")

        def post_forever(declared: bool) -> tuple[int, bytes]:
            sent = 0
            with socket.create_connection((host, int(port))) as s:
                length = b"Content-Length: %d\r\n" % (300 << 20) if declared else b"Transfer-Encoding: chunked\r\n"
                s.sendall(b"POST /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          + length + b"\r\n")
                s.settimeout(0.001)
                chunk = b"a" * 65536 if declared else b"10000\r\n" + b"a" * 65536 + b"\r\n"
                try:
                    while sent < 300 << 20:
                        s.sendall(chunk)
                        sent += 65536
                        with contextlib.suppress(TimeoutError):
                            if answer := s.recv(100):
                                return sent, answer
                except OSError:
                    pass
                s.settimeout(5)
                return sent, s.recv(100)

        for declared in (True, False):
            sent, answer = post_forever(declared)
            assert answer.startswith(b"HTTP/1.1 413"), answer
            assert sent < 32 << 20, sent

        started = time.monotonic()
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{")
            s.settimeout(20)
            assert s.recv(100).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 15

        with httpx.Client(base_url=srv.url, trust_env=False, timeout=10) as client:
            client.get("/login", follow_redirects=True)
            session = client.get("/api/session").json()
            r = client.post("/api/overview", json={"patient_id": "191212121212"},
                            headers={"X-CSRF-Token": session["csrf_token"]})
            assert r.status_code in (400, 422), r.text  # read and answered by the route (no assignment chosen)
