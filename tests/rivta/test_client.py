"""The one RIVTA SOAP client over real HTTP(S) on loopback, against a server that writes raw bytes and counts
what it managed to send (tests/rivta/servers.py): "the client stops at the cap" is measured, not assumed."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import zlib

import httpx
import pytest
from lxml import etree

from adapter.rivta import client as rivta
from adapter.rivta.contracts import REGISTRY_NS, SOAP_NS
from tests.rivta.servers import HUGE, Connection, answer, soap, stream_forever

PNR = "191212121212"
LOG_ID = "0b6a3c55-6f0e-4b43-9c1e-6b3c0e0f5a11"
ACTION = "urn:riv:clinicalprocess:healthcond:description:GetDiagnosisResponder:2:GetDiagnosis"
ANSWER_NS = "urn:example:answer"
CAP = 1_000_000


GOOD = soap(f'<a:AnswerResponse xmlns:a="{ANSWER_NS}"><a:value>1</a:value></a:AnswerResponse>')


def request_envelope() -> bytes:
    body = etree.Element(f"{{{ANSWER_NS}}}Answer")
    etree.SubElement(body, f"{{{ANSWER_NS}}}patient").text = PNR
    return rivta.envelope("SE2120001231-SYS1", body)


def call(url: str, *, verify: ssl.SSLContext | bool = False, timeout: float = 5, **kwargs) -> rivta.Reply:
    async def go() -> rivta.Reply:
        async with rivta.new_client(verify, timeout=timeout) as client:
            return await rivta.call(client, url, request_envelope(), soap_action=ACTION, **kwargs)

    return asyncio.run(go())


def fails(url: str, kind: type[rivta.RivtaCallError], **kwargs) -> rivta.RivtaCallError:
    with pytest.raises(kind) as info:
        call(url, **kwargs)
    exc = info.value
    assert PNR not in str(exc) and PNR not in repr(exc) and all(PNR not in str(a) for a in exc.args)
    return exc


def platform(pki) -> ssl.SSLContext:
    c = pki.client("platform")
    return rivta.client_context(str(c.cert), str(c.key), str(pki.ca_bundle))


# --- the request and a good answer ------------------------------------------------------------------------------
def test_posts_the_envelope_with_soap_action_and_logical_address_over_mtls(server, server_tls, pki) -> None:
    srv = server(lambda conn: answer(conn, 200, GOOD), server_tls)
    reply = call(srv.url, verify=platform(pki), headers={"x-rivta-original-serviceconsumer-hsaid": "SE1-C"})
    assert reply.answer.tag == f"{{{ANSWER_NS}}}AnswerResponse"
    assert reply.answer.findtext(f"{{{ANSWER_NS}}}value") == "1"
    ex = reply.exchange
    assert (ex.status, ex.answer, ex.content_type, ex.error) == (200, GOOD, "text/xml; charset=utf-8", None)
    assert ex.seconds > 0 and ex.received == len(GOOD) and ex.request == request_envelope()
    (conn,) = srv.connections
    req = conn.request
    assert req.head.startswith("POST /service HTTP/1.1")
    assert req.header("SOAPAction") == f'"{ACTION}"'
    assert req.header("Content-Type") == "text/xml; charset=utf-8"
    assert req.header("Accept-Encoding") == "identity"
    assert req.header("x-rivta-original-serviceconsumer-hsaid") == "SE1-C"
    sent = etree.fromstring(req.body)
    assert sent.findtext(f"{{{SOAP_NS}}}Header/{{{REGISTRY_NS}}}LogicalAddress") == "SE2120001231-SYS1"
    assert sent.find(f"{{{SOAP_NS}}}Body/{{{ANSWER_NS}}}Answer") is not None
    assert "serialNumber" in srv.client_subjects[0]  # the platform's function certificate was presented


def test_without_a_client_certificate_the_server_refuses_and_the_call_is_unreachable(server, server_tls,
                                                                                   pki) -> None:
    srv = server(lambda conn: answer(conn, 200, GOOD), server_tls)
    exc = fails(srv.url, rivta.Unreachable, verify=ssl.create_default_context(cafile=str(pki.ca_bundle)))
    assert exc.reason.startswith("connection failed (") and exc.status is None and srv.connections == []


def test_nobody_listening_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exc = fails(f"http://127.0.0.1:{port}/service", rivta.Unreachable)
    assert exc.reason == "connection failed (ConnectError)" and "ConnectError: " in exc.detail


# --- the cap ----------------------------------------------------------------------------------------------------
def test_a_huge_streamed_answer_is_cut_at_the_cap_and_not_read_further(server, server_tls, pki) -> None:
    srv = server(stream_forever, server_tls)
    started = time.monotonic()
    exc = fails(srv.url, rivta.TooLarge, verify=platform(pki), max_bytes=CAP)
    assert exc.reason == f"larger than {CAP} bytes" and exc.status == 200
    assert srv.finished.wait(5), "the server is still sending: the client did not hang up"
    assert srv.ended_by_peer
    (conn,) = srv.connections
    # What the server got onto the network: the cap, one read, and what the two socket buffers held; nowhere
    # near the 1 GiB it meant to send.
    assert conn.sent < CAP + 32 * 1024 * 1024, conn.sent
    assert time.monotonic() - started < 5


def test_the_exchange_records_how_much_was_read(server) -> None:
    srv = server(stream_forever)

    async def go() -> rivta.Exchange:
        async with rivta.new_client(timeout=5) as client:
            return await rivta.exchange(client, srv.url, request_envelope(), soap_action=ACTION, max_bytes=CAP)

    ex = asyncio.run(go())
    assert isinstance(ex.error, rivta.TooLarge) and ex.status == 200 and ex.answer == b""
    assert CAP < ex.received <= CAP + 2 * 65536 + 64  # the read that crossed the cap, and no more
    assert srv.finished.wait(5) and srv.connections[0].sent < CAP + 32 * 1024 * 1024


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_read(server) -> None:
    def declare_huge(conn: Connection) -> None:
        conn.send(f"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {HUGE}\r\n\r\n".encode())
        while not conn.stop.is_set():
            conn.send(b" " * 65536)

    srv = server(declare_huge)

    async def go() -> rivta.Exchange:
        async with rivta.new_client(timeout=5) as client:
            return await rivta.exchange(client, srv.url, request_envelope(), soap_action=ACTION, max_bytes=CAP)

    ex = asyncio.run(go())
    assert isinstance(ex.error, rivta.TooLarge) and ex.received == 0
    assert srv.finished.wait(5)


def test_a_compressed_answer_is_inflated_within_the_cap_and_a_bomb_is_not(server) -> None:
    small = zlib.compressobj(wbits=31)
    gz = small.compress(GOOD) + small.flush()
    srv = server(lambda conn: answer(conn, 200, gz, extra="Content-Encoding: gzip\r\n"))
    assert call(srv.url).exchange.answer == GOOD

    bomb = zlib.compressobj(9, wbits=31)
    parts = [bomb.compress(soap("")[:-30])] + [bomb.compress(b" " * (1 << 20)) for _ in range(200)] + [bomb.flush()]
    packed = b"".join(parts)  # 200 MB of white space in a few hundred kB
    srv = server(lambda conn: answer(conn, 200, packed, extra="Content-Encoding: gzip\r\n"))
    exc = fails(srv.url, rivta.TooLarge, max_bytes=CAP)
    assert exc.reason == f"larger than {CAP} bytes"

    srv = server(lambda conn: answer(conn, 200, b"\x28\xb5\x2f\xfd", extra="Content-Encoding: zstd\r\n"))
    assert fails(srv.url, rivta.NotSoap).reason == "answer in an unsupported content encoding"


# --- faults -----------------------------------------------------------------------------------------------------
def test_a_vp_fault_gives_its_code_and_log_id_and_keeps_the_text_out_of_the_message(server) -> None:
    text = f"VP007 Authorization missing for serviceconsumer SE1 (patient {PNR}), log id {LOG_ID}"
    srv = server(lambda conn: answer(conn, 500, soap(
        f"<s:Fault><faultcode>s:Client</faultcode><faultstring>{text}</faultstring></s:Fault>")))
    exc = fails(srv.url, rivta.Fault)
    assert isinstance(exc, rivta.Fault)
    assert exc.reason == "SOAP fault s:Client (HTTP 500)" and exc.status == 500
    assert (exc.code, exc.rivta_code, exc.log_id) == ("s:Client", "VP007", LOG_ID)
    assert exc.faultstring == text  # kept for the caller, apart from the message


@pytest.mark.parametrize(("status", "inner", "reason", "code"), [
    (500, f"<s:Fault><faultcode>{PNR} x</faultcode><faultstring>EI002 duplicates</faultstring></s:Fault>",
     "SOAP fault (not shown) (HTTP 500)", "EI002"),
    (200, "<s:Fault><s:faultcode>s:Server</s:faultcode><s:faultstring>VP009</s:faultstring></s:Fault>",
     "SOAP fault s:Server (HTTP 200)", "VP009"),
    (500, "<s:Fault/>", "SOAP fault (not shown) (HTTP 500)", None),
], ids=["odd-code", "qualified-on-200", "empty"])
def test_fault_variants(server, status: int, inner: str, reason: str, code: str | None) -> None:
    srv = server(lambda conn: answer(conn, status, soap(inner)))
    exc = fails(srv.url, rivta.Fault)
    assert exc.reason == reason and isinstance(exc, rivta.Fault) and exc.rivta_code == code


# --- answers that are not SOAP, HTTP errors ---------------------------------------------------------------------
@pytest.mark.parametrize(("status", "body", "kind", "reason"), [
    (200, f"<html><body>{PNR}</body></html>".encode(), rivta.NotSoap, "not a SOAP envelope with one body element"),
    (200, f"not xml {PNR}".encode(), rivta.NotSoap, "malformed XML: line 1, column 1"),
    (200, f'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;{PNR}</x>'.encode(), rivta.NotSoap,
     "document type declarations are not allowed"),
    (200, soap("<a/><b/>"), rivta.NotSoap, "not a SOAP envelope with one body element"),
    (200, b"<x>" * 100 + b"</x>" * 100, rivta.NotSoap, "document nested deeper than 64 levels"),
    (500, f"Internal error for {PNR}".encode(), rivta.HttpStatus, "HTTP 500"),
    (500, GOOD, rivta.HttpStatus, "HTTP 500"),
    (404, soap("<s:Fault><faultcode>s:Client</faultcode><faultstring>x</faultstring></s:Fault>"), rivta.HttpStatus,
     "HTTP 404"),
    (302, b"", rivta.HttpStatus, "HTTP 302"),
], ids=["html", "not-xml", "doctype", "two-elements", "deep", "500-text", "500-answer", "404-fault", "redirect"])
def test_answers_that_are_not_a_soap_answer(server, status: int, body: bytes, kind: type[rivta.RivtaCallError],
                                            reason: str) -> None:
    srv = server(lambda conn: answer(conn, status, body))
    exc = fails(srv.url, kind)
    assert exc.reason == reason and exc.status == status


# --- time -------------------------------------------------------------------------------------------------------
def test_no_answer_times_out_within_the_timeout(server) -> None:
    srv = server(lambda conn: conn.stop.wait(10))
    started = time.monotonic()
    exc = fails(srv.url, rivta.Timeout, timeout=0.4)
    assert exc.reason == "timed out (ReadTimeout)" and time.monotonic() - started < 2


def test_a_trickling_answer_is_cut_by_the_deadline(server) -> None:
    def trickle(conn: Connection) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
        while not conn.stop.is_set():
            conn.send(b"1\r\n \r\n")
            time.sleep(0.05)

    srv = server(trickle)
    started = time.monotonic()
    exc = fails(srv.url, rivta.Timeout, timeout=1, deadline=0.5)  # each read is in time, the whole is not
    assert exc.reason == "timed out (no complete answer within 0.5 s)" and exc.status == 200
    assert time.monotonic() - started < 2


# --- connections ------------------------------------------------------------------------------------------------
async def keep_alive_server(tls: ssl.SSLContext) -> tuple[asyncio.Server, str, list[asyncio.StreamWriter]]:
    """An HTTPS server that keeps connections open between requests and answers each after 50 ms (so calls at
    once need connections at once); the list holds every connection it accepted."""
    accepted: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(GOOD), GOOD))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    return srv, f"https://127.0.0.1:{srv.sockets[0].getsockname()[1]}/service", accepted


def test_a_kept_client_keeps_a_pool_per_producer_each_within_the_limits(server_tls, pki) -> None:
    """Six calls at once to each of two producers, twice, with at most three connections: three connections to
    each producer (the limit is per producer), opened in the first round and used again in the second."""
    async def go() -> list[int]:
        servers = [await keep_alive_server(server_tls) for _ in range(2)]
        try:
            async with rivta.new_client(platform(pki), timeout=5, limits=httpx.Limits(max_connections=3)) as client:
                for _ in range(2):
                    replies = await asyncio.gather(*(rivta.call(client, url, request_envelope(), soap_action=ACTION)
                                                     for _, url, _ in servers for _ in range(6)))
                    assert all(r.answer.tag == f"{{{ANSWER_NS}}}AnswerResponse" for r in replies)
            return [len(accepted) for _, _, accepted in servers]
        finally:
            for srv, _, _ in servers:
                srv.close()

    assert asyncio.run(go()) == [3, 3]


@pytest.mark.parametrize("depth", [3, 63, 64, 65, 200])
def test_an_answer_nested_deeper_than_the_limit_is_refused_and_one_at_the_limit_is_not(depth: int) -> None:
    """Depth counts elements from the Envelope (level 1, the answer element is level 3); the text at the deepest
    level adds none."""
    nested = "<x>" * (depth - 3) + "text" + "</x>" * (depth - 3)
    data = soap(f'<a:AnswerResponse xmlns:a="{ANSWER_NS}">{nested}</a:AnswerResponse>')
    if depth > 64:
        with pytest.raises(rivta.NotSoap, match="nested deeper than 64 levels"):
            rivta.read_answer(200, data, max_depth=64)
    else:
        assert rivta.read_answer(200, data, max_depth=64).tag == f"{{{ANSWER_NS}}}AnswerResponse"


def test_a_producer_cannot_set_cookies_that_later_calls_carry(server) -> None:
    """A producer's Set-Cookie is not kept: a cookie would follow the consumer's later calls to it (another patient's
    overview, another member of staff), a channel between calls that RIVTA has no use for."""
    srv = server(lambda conn: answer(conn, 200, GOOD, extra="Set-Cookie: tracker=abc; Path=/\r\n"))

    async def go() -> None:
        async with rivta.new_client(False, timeout=5) as client:
            for _ in range(2):
                await rivta.call(client, srv.url, request_envelope(), soap_action=ACTION)
            assert not client.cookies

    asyncio.run(go())
    assert [c.request.header("Cookie") for c in srv.connections] == [None, None]
