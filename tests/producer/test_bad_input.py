"""Hostile and broken requests: every one gets a SOAP fault (HTTP 500 or 413) with a log id that is
also in the server log, no personal data, no stack trace, and the server keeps serving."""

from __future__ import annotations

import logging
import re
import socket
import time

import httpx
import pytest

from adapter.ingest import ingest
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.rivta.contracts import SOAP_NS
from adapter.rivta.request_builder import build_request
from tests.samples import PNR, SOURCE, bundle, call, condition, document_ids, support_bundle

LOG_ID = re.compile(r"log id ([0-9a-f-]{36})")


@pytest.fixture
def srv(store, server_for, tmp_path):
    import orjson

    (tmp_path / "d.json").write_bytes(orjson.dumps(bundle(*[e["resource"] for e in support_bundle()["entry"]],
                                                          condition("c1", identifier="d1"))))
    assert not ingest(store, [tmp_path / "d.json"]).rejected
    return server_for(store, max_request_bytes=64 * 1024)


def good() -> bytes:
    return build_request(GD, SOURCE, PNR)


def raw_post(srv, body: bytes, path: str = GD.url_path, **headers) -> httpx.Response:
    return httpx.post(srv.url + path, content=body, timeout=20,
                      headers={"Content-Type": "text/xml; charset=utf-8", **headers})


def assert_fault(resp: httpx.Response, caplog, status: int = 500) -> str:
    assert resp.status_code == status
    text = resp.text
    assert "<soap:Fault>" in text
    assert SOAP_NS in text
    assert PNR not in text and "Traceback" not in text and "File \"" not in text
    m = LOG_ID.search(text)
    assert m, text
    assert any(m.group(1) in r.getMessage() for r in caplog.records), "log id not in the server log"
    for r in caplog.records:
        assert PNR not in r.getMessage()
    return text


XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&xxe;</soapenv:Body>
</soapenv:Envelope>"""

XXE_NET = XXE_FILE.replace(b"file:///etc/passwd", b"http://127.0.0.1:9/x")

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&lol4;</soapenv:Body>
</soapenv:Envelope>"""


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("malformed", b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><oops>"),
        ("not xml", b"personnummer=191212121212"),
        ("empty", b""),
        ("xxe file", XXE_FILE),
        ("xxe network", XXE_NET),
        ("billion laughs", LAUGHS),
        ("deep nesting", b"<a>" * 5000 + b"</a>" * 5000),
        ("soap 1.2 envelope", good().replace(SOAP_NS.encode(), b"http://www.w3.org/2003/05/soap-envelope")),
        ("wrong namespace", good().replace(GD.responder_ns.encode(), b"urn:riv:wrong:GetDiagnosisResponder:2")),
        ("wrong operation", build_request(GD, SOURCE, PNR).replace(b"r:GetDiagnosis>", b"r:GetAlerts>")),
        ("schema-invalid", good().replace(b"<c:type>", b"<c:typo>").replace(b"</c:type>", b"</c:typo>")),
        ("schema-invalid date", build_request(GD, SOURCE, PNR, period=("2024-01-01", "20240102"))),
        # the schema error's path named the caller's elements as they came: an element name can carry personal data
        ("element named with the personnummer", good().replace(b"<c:type>", f"<c:p{PNR}>".encode())
         .replace(b"</c:type>", f"</c:p{PNR}>".encode())),
        ("prefix named with it", good().replace(b"<c:type>", f"<p{PNR}:type xmlns:p{PNR}='urn:x'>".encode())
         .replace(b"</c:type>", f"</p{PNR}:type>".encode())),
        ("element in a namespace named with it", good().replace(b"<c:type>", f"<x:pnr xmlns:x='urn:{PNR}'>".encode())
         .replace(b"</c:type>", b"</x:pnr>")),
        ("missing LogicalAddress", build_request(GD, None, PNR)),
        ("two body elements", good().replace(b"</soapenv:Body>", b"<x/></soapenv:Body>")),
    ],
)
def test_bad_request_gets_fault_without_personal_data(srv, caplog, name, body):
    caplog.set_level(logging.INFO)
    assert_fault(raw_post(srv, body), caplog)


def test_xxe_does_not_leak_local_files(srv, caplog):
    caplog.set_level(logging.INFO)
    text = assert_fault(raw_post(srv, XXE_FILE), caplog)
    assert "root:" not in text


def test_oversized_body_is_refused(srv, caplog):
    caplog.set_level(logging.INFO)
    huge = good().replace(b"<c:id>", b"<!--" + b"x" * 100_000 + b"--><c:id>")
    assert_fault(raw_post(srv, huge), caplog, status=413)


def test_oversized_chunked_body_without_content_length_is_refused(srv, caplog):
    caplog.set_level(logging.INFO)

    def chunks():
        for _ in range(200):
            yield b"<x>" + b"y" * 1000 + b"</x>"

    resp = httpx.post(srv.url + GD.url_path, content=chunks(), timeout=20)
    assert_fault(resp, caplog, status=413)


def test_slow_body_does_not_block_other_callers(srv):
    # A caller that sends headers and then trickles nothing must not stop others being served.
    host, port = srv.url.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)))
    try:
        slow.sendall(b"POST " + GD.url_path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n<soap")
        started = time.monotonic()
        status, root, _ = call(srv.url, GD)
        assert status == 200 and document_ids(root, GD) == ["d1"]
        assert time.monotonic() - started < 5
    finally:
        slow.close()


def test_utf16_request_is_understood(srv):
    body = build_request(GD, SOURCE, PNR, encoding="UTF-16")
    resp = raw_post(srv, body, **{"Content-Type": "text/xml; charset=utf-16"})
    assert resp.status_code == 200
    assert b"d1" in resp.content
    assert resp.headers["content-type"].lower().startswith("text/xml; charset=utf-8")
    assert resp.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_answer_encoding_consistent_and_special_characters_escaped(store, server_for, tmp_path):
    import orjson

    from tests.samples import official_schema

    text = "Fall <&> yrsel, åäö ÅÄÖ"
    (tmp_path / "d.json").write_bytes(orjson.dumps(bundle(
        *[e["resource"] for e in support_bundle()["entry"]], condition("c1", code=None, text=text))))
    assert not ingest(store, [tmp_path / "d.json"]).rejected
    srv = server_for(store)
    status, root, raw = call(srv.url, GD)
    assert status == 200
    assert official_schema(GD).validate(root[-1][0])
    assert "Fall &lt;&amp;&gt; yrsel, åäö ÅÄÖ".encode() in raw
    assert root.xpath("//*[local-name()='originalText']/text()") == [text]


def test_wsdl_and_xsds_resolve_relative_to_the_service(srv):
    from lxml import etree

    resp = httpx.get(srv.url + GD.url_path + "?wsdl", timeout=10)
    assert resp.status_code == 200
    wsdl = etree.fromstring(resp.content)
    locations = wsdl.xpath("//@schemaLocation")
    assert locations and all(loc.startswith("?xsd=") for loc in locations)
    address = wsdl.xpath("//*[local-name()='address']/@location")
    assert address == [srv.url + GD.url_path]
    seen, todo = set(), list(locations)
    while todo:
        loc = todo.pop()
        if loc in seen:
            continue
        seen.add(loc)
        xsd = httpx.get(srv.url + GD.url_path + loc, timeout=10)
        assert xsd.status_code == 200, loc
        todo.extend(etree.fromstring(xsd.content).xpath("//@schemaLocation"))
    assert httpx.get(srv.url + GD.url_path + "?xsd=../../etc/passwd", timeout=10).status_code == 404


def test_a_schema_fault_names_the_contracts_elements_and_nothing_of_the_callers(srv, caplog):
    caplog.set_level(logging.INFO)
    date = assert_fault(raw_post(srv, build_request(GD, SOURCE, PNR, period=("2024-01-01", "20240102"))), caplog)
    assert "schema (at /GetDiagnosis/timePeriod/start)" in date
    typo = assert_fault(raw_post(srv, good().replace(b"<c:type>", b"<c:typo>").replace(b"</c:type>", b"</c:typo>")),
                        caplog)
    assert "schema (at /GetDiagnosis/patientId/?)" in typo and "typo" not in typo


def test_a_caller_that_hangs_up_mid_body_is_no_internal_error(srv, caplog):
    """A caller that sends part of its body and hangs up, again and again: no 'internal error' at error level
    (an operator's alert) and no internal-error count; the server keeps serving."""
    from adapter import metrics

    caplog.set_level(logging.INFO)

    def internal() -> float:
        return metrics.PRODUCER_REQUESTS.labels(GD.key, metrics.INTERNAL)._value.get()

    before = internal()
    host, port = srv.url.removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST " + GD.url_path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n<soap")
            time.sleep(0.05)
    status, root, _ = call(srv.url, GD)
    assert status == 200 and document_ids(root, GD) == ["d1"]
    time.sleep(0.2)
    assert internal() == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
