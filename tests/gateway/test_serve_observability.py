"""`npo-adapter serve --metrics-port … --log-format json` as an operator runs it: one process, real mTLS, real
HTTP scrapes, the log read from its standard error."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import httpx
import orjson
from lxml import etree

from adapter.gateway.pki import load_pki
from tests.conftest import free_port
from tests.gateway.conftest import AUTHORISATIONS, CLI, REPO, client, wait_for_port
from tests.gateway.test_embedded_mtls import ask, ids
from tests.samples import PNR, result
from tests.scrape import scrape, value

CORRELATION = "x-skltp-correlation-id"


def test_serve_with_metrics_port_and_json_logs(engine, pki, tmp_path):
    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))
    port, metrics_port = free_port(), free_port()
    stderr = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [*CLI, "serve", "--store", str(engine.url.render_as_string(hide_password=False)), "--port", str(port),
         "--metrics-port", str(metrics_port), "--log-format", "json", "--log-level", "info",
         "--tls-cert", str(copy.server_cert), "--tls-key", str(copy.server_key), "--client-ca", str(copy.ca_bundle),
         "--crl", str(copy.crl_root), "--crl", str(copy.crl_function), "--authorisations", str(AUTHORISATIONS)],
        stdout=subprocess.PIPE, stderr=stderr, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for_port(port, proc)
        wait_for_port(metrics_port, proc)
        ops_url, url = f"http://127.0.0.1:{metrics_port}", f"https://127.0.0.1:{port}"
        before = scrape(ops_url)
        sent = str(uuid.uuid4())
        with client(copy, "platform") as c:
            answered = ask(c, url, {CORRELATION: sent})
            assert ids(answered) == {"d-home", "d-housing"}
            assert answered.headers[CORRELATION] == sent  # echoed
            made = ask(c, url).headers[CORRELATION]  # none sent: one is made, and echoed
            assert made != sent and str(uuid.UUID(made)) == made
        after = scrape(ops_url)
        assert value(after, "npo_producer_requests_total", contract="GetDiagnosis:2", outcome="OK") \
            - value(before, "npo_producer_requests_total", contract="GetDiagnosis:2", outcome="OK") == 2
        assert value(after, "npo_certificate_expiry_days", role="server") > 300
        ready = httpx.get(ops_url + "/health/ready", trust_env=False)
        assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "schema": "ok", "crls": "ok"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        stderr.close()

    lines = (tmp_path / "stderr.log").read_bytes().decode().splitlines()
    events = [orjson.loads(line) for line in lines if line.strip()]  # every line is one JSON object
    assert events and all(set(e) >= {"time", "level", "logger", "event", "log_id", "contract", "consumer",
                                     "correlation_id"} for e in events)
    [answer] = [e for e in events if e["logger"] == "adapter.producer" and e["correlation_id"] == sent]
    assert answer["level"] == "info" and answer["event"].startswith("GetDiagnosis OK ")
    assert answer["contract"] == "GetDiagnosis:2" and answer["consumer"] == copy.client("platform").hsa_id
    assert answer["log_id"] == result(etree.fromstring(answered.content), _gd())["logId"]  # the log id, read back
    assert answer["time"].endswith("Z")
    assert [e for e in events if e["correlation_id"] == made and e["logger"] == "adapter.producer"]
    assert any(e["logger"].startswith("uvicorn") for e in events)  # uvicorn's own lines are JSON too
    assert PNR not in "\n".join(lines)


def _gd():
    from adapter.rivta.contracts import GET_DIAGNOSIS

    return GET_DIAGNOSIS
