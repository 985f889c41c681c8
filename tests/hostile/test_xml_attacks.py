"""XML and HTTP attacks not covered in tests/producer/test_bad_input.py: quadratic blow-up, huge attributes,
attribute and namespace floods, a slowloris body, and many slow bodies at once while good callers are served.
Each is refused with a SOAP Fault within a bound."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.rivta.contracts import SOAP_NS
from tests.hostile.conftest import leaks
from tests.hostile.strategies import good_request

BOUND = 2.0  # seconds for a refusal of a complete request
SLOW_BOUND = 2.0 + 1.5  # the producer fixture's max_request_seconds, plus slack


def post(url: str, body: bytes) -> tuple[httpx.Response, float]:
    t = time.monotonic()
    resp = httpx.post(url + GD.url_path, content=body, timeout=30, trust_env=False,
                      headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{GD.soap_action}"'})
    return resp, time.monotonic() - t


def assert_refused(resp: httpx.Response, elapsed: float, status: int = 500, bound: float = BOUND) -> None:
    assert resp.status_code == status, resp.text[:300]
    assert "<soap:Fault>" in resp.text and SOAP_NS in resp.text
    assert not leaks(resp.text)
    assert elapsed < bound, f"refused after {elapsed:.2f} s"


def envelope(inner: bytes = b"", attrs: bytes = b"") -> bytes:
    return (b'<soapenv:Envelope xmlns:soapenv="' + SOAP_NS.encode() + b'"' + attrs + b"><soapenv:Body>" + inner
            + b"</soapenv:Body></soapenv:Envelope>")


def quadratic_blowup() -> bytes:
    entity = b"a" * 20_000
    return (b'<?xml version="1.0"?><!DOCTYPE kaboom [<!ENTITY a "' + entity + b'">]>'
            + envelope(b"<x>" + b"&a;" * 10_000 + b"</x>"))


ATTACKS = {
    "quadratic blow-up": quadratic_blowup(),
    "quadratic blow-up without DOCTYPE keyword casing": quadratic_blowup().replace(b"<!DOCTYPE", b"<!doctype"),
    "huge attribute value": envelope(attrs=b' a="' + b"x" * 60_000 + b'"'),
    "attribute flood": envelope(b"<x " + b" ".join(b'a%d="1"' % i for i in range(5_000)) + b"/>"),
    "namespace flood": envelope(b"<x " + b" ".join(b'xmlns:p%d="urn:p%d"' % (i, i) for i in range(2_500)) + b"/>"),
    "huge element name": envelope(b"<" + b"n" * 50_000 + b"/>"),
    "long text node of character references": envelope(b"<x>" + b"&#x41;" * 10_000 + b"</x>"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_refused_quickly(producer, name):
    resp, elapsed = post(producer.url, ATTACKS[name])
    assert_refused(resp, elapsed)


def test_huge_attribute_over_the_cap_is_refused_by_size(producer):
    resp, elapsed = post(producer.url, envelope(attrs=b' a="' + b"x" * 200_000 + b'"'))
    assert_refused(resp, elapsed, status=413)


def _slow_body(host: str, port: int, results: list, pause: float = 0.2, declared: int = 4000) -> None:
    """Headers at once, then one byte of body every `pause` seconds; records (status line, seconds)."""
    t = time.monotonic()
    sock = socket.create_connection((host, port), timeout=30)
    try:
        sock.sendall(b"POST " + GD.url_path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                     b"Content-Length: " + str(declared).encode() + b"\r\n\r\n")
        sock.setblocking(False)
        answer = b""
        for _ in range(declared):
            try:
                sock.send(b"<")
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if b"</soap:Envelope>" in answer:
                    break
            except BlockingIOError:
                pass
            time.sleep(pause)
        results.append((answer, time.monotonic() - t))
    finally:
        sock.close()


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_slowloris_body_is_cut_off_within_the_bound(producer):
    results: list = []
    _slow_body(*_host_port(producer.url), results)
    answer, elapsed = results[0]
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"<soap:Fault>" in answer and b"log id" in answer
    assert elapsed < SLOW_BOUND, f"cut off after {elapsed:.2f} s"


def test_many_slow_bodies_while_good_callers_are_served(producer):
    host, port = _host_port(producer.url)
    results: list = []
    slow = [threading.Thread(target=_slow_body, args=(host, port, results), daemon=True) for _ in range(60)]
    for t in slow:
        t.start()
    time.sleep(0.3)  # every slow caller is connected and trickling
    good = []
    with httpx.Client(timeout=10, trust_env=False) as client:
        for _ in range(20):
            t = time.monotonic()
            resp = client.post(producer.url + GD.url_path, content=good_request(GD),
                               headers={"Content-Type": "text/xml; charset=utf-8"})
            good.append((resp.status_code, b"diagnosis>" in resp.content, time.monotonic() - t))
    for t in slow:
        t.join(timeout=SLOW_BOUND + 10)
    assert all(status == 200 and found for status, found, _ in good), good
    assert max(seconds for *_, seconds in good) < 1.0, good
    assert len(results) == len(slow)
    assert all(answer.startswith(b"HTTP/1.1 408") for answer, _ in results)
    assert max(seconds for _, seconds in results) < SLOW_BOUND + 1.0
