"""How the UI may listen: HTTPS with a server certificate (no client certificate asked), plain HTTP on loopback."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import pytest

from adapter.consumer.overview import ConsumerConfig, NationalServices
from adapter.store.engine import open_store
from adapter.ui import create_ui_app
from adapter.ui.serve import listen_refusal, uvicorn_config
from tests.conftest import free_port
from tests.ui.conftest import UiServer


@pytest.mark.parametrize(("host", "cert", "key", "refused"), [
    ("127.0.0.1", None, None, None),
    ("::1", None, None, None),
    ("localhost", None, None, None),
    ("0.0.0.0", None, None, "plain HTTP is refused on anything but loopback"),
    ("10.1.2.3", None, None, "plain HTTP is refused on anything but loopback"),
    ("0.0.0.0", Path("c.pem"), Path("k.pem"), None),
    ("127.0.0.1", Path("c.pem"), None, "--tls-cert and --tls-key go together"),
])
def test_plain_http_only_on_loopback(host, cert, key, refused):
    answer = listen_refusal(host, cert, key)
    assert (answer is None) if refused is None else answer.startswith(refused)
    if refused:
        with pytest.raises(ValueError):
            uvicorn_config(None, host=host, tls_cert=cert, tls_key=key)


def test_https_without_client_certificate_and_the_sender_stops_on_shutdown(pki, tmp_path):
    platform = pki.client("platform")
    dead = f"https://127.0.0.1:{free_port()}"
    config = ConsumerConfig(sources=(), services=NationalServices(dead, dead, dead), client_cert=platform.cert,
                            client_key=platform.key, ca=pki.ca_bundle, service_timeout=1)
    app = create_ui_app(config, open_store(f"sqlite:///{tmp_path}/ui.db"), log_flush_interval=0.1)
    with UiServer(app, tls_cert=pki.server_cert, tls_key=pki.server_key) as srv:
        assert srv.url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(pki.ca_bundle))
        with httpx.Client(verify=trust, trust_env=False, timeout=10) as client:  # no client certificate
            assert client.get(srv.url + "/").status_code == 200
            assert client.get(srv.url + "/api/audit/verify").json() == {"entries": 0, "ok": True, "problems": []}
        deadline = time.monotonic() + 5
        while app.state.log_flusher.rounds < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.log_flusher.running and app.state.log_flusher.rounds >= 2  # periodic
    assert not app.state.log_flusher.running
