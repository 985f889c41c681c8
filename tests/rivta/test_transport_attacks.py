"""A hostile producer against the RIVTA client's transport (adapter/rivta/transport.py, aiohttp under httpx): what
it sends is counted on the server's side (tests/rivta/servers.py), over real HTTP(S) on loopback."""

from __future__ import annotations

import asyncio
import ssl
import zlib

from adapter.rivta import client as rivta
from tests.rivta.servers import HUGE, Connection, answer
from tests.rivta.test_client import ACTION, CAP, GOOD, PNR, call, fails, platform, request_envelope

# what the client may read past the cap: one read and what the two socket buffers held (as the plain cap's test)
SLACK = 32 * 1024 * 1024


def _endless_after(prefix: bytes, filler: bytes, encoding: str):
    """HTTP 200 with `Content-Encoding: encoding`, chunked: `prefix`, then `filler` until the client hangs up."""
    def handler(conn: Connection) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Encoding: %s\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" % encoding.encode())
        conn.send(b"%x\r\n%s\r\n" % (len(prefix), prefix))
        sent = 0
        while sent < HUGE and not conn.stop.is_set():
            conn.send(b"%x\r\n%s\r\n" % (len(filler), filler))
            sent += len(filler)
        conn.send(b"0\r\n\r\n")

    return handler


def test_a_gzip_answer_followed_by_endless_bytes_is_cut_at_the_cap(server) -> None:
    """A small gzip member, then bytes past its end for ever: zlib keeps them (unused_data) and inflates none, so
    a cap on inflated bytes alone never trips; the client read (and held) whatever the producer sent until the
    deadline."""
    c = zlib.compressobj(wbits=31)
    gz = c.compress(GOOD) + c.flush()
    srv = server(_endless_after(gz, b"\0" * 65536, "gzip"))
    exc = fails(srv.url, rivta.TooLarge, max_bytes=CAP, timeout=5)
    assert exc.reason == f"larger than {CAP} bytes"
    assert srv.finished.wait(5), "the server is still sending: the client did not hang up"
    assert srv.connections[0].sent < CAP + SLACK, srv.connections[0].sent


def test_a_deflate_stream_of_empty_blocks_is_cut_at_the_cap(server) -> None:
    """A zlib stream of empty stored blocks (5 bytes each, inflating to nothing) never ends and never grows the
    answer: the bytes read from the network are capped as well."""
    empty = b"\x00\x00\x00\xff\xff" * (65535 // 5)
    srv = server(_endless_after(b"\x78\x9c", empty, "deflate"))
    exc = fails(srv.url, rivta.TooLarge, max_bytes=CAP, timeout=5)
    assert exc.reason == f"larger than {CAP} bytes"
    assert srv.finished.wait(5), "the server is still sending: the client did not hang up"
    assert srv.connections[0].sent < CAP + SLACK, srv.connections[0].sent


def test_endless_headers_are_refused_unread(server) -> None:
    """Header lines for ever, before any body: the parser's limits refuse them, nowhere near the cap."""
    def headers_forever(conn: Connection) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n")
        n = 0
        while n < HUGE and not conn.stop.is_set():
            conn.send(b"X-Filler-%d: %s\r\n" % (n, b"a" * 8000))
            n += 1

    srv = server(headers_forever)
    exc = fails(srv.url, rivta.Unreachable, max_bytes=CAP, timeout=5)
    assert exc.status is None
    assert srv.finished.wait(5)
    # aiohttp refuses at its header limits (about 1 MB of these lines); what the server pushed past that sat in the
    # two socket buffers (4 MB was too tight under load in CI: 5.7 MB)
    assert srv.connections[0].sent < SLACK, srv.connections[0].sent


def test_a_redirect_is_not_followed(server) -> None:
    """A producer answers 307 to another server: the envelope (a patient's personnummer) is not sent there."""
    elsewhere = server(lambda conn: answer(conn, 200, GOOD))
    srv = server(lambda conn: answer(conn, 307, b"", extra=f"Location: {elsewhere.url}\r\n"))
    reply_or_error = None
    try:
        reply_or_error = call(srv.url)
    except rivta.RivtaCallError as exc:
        reply_or_error = exc
    assert isinstance(reply_or_error, rivta.RivtaCallError)
    assert elsewhere.connections == []


def test_a_producer_certificate_for_another_name_is_refused(server, pki) -> None:
    """A certificate from the trusted CA that does not name the host asked for (here: a client's function
    certificate, which names no host) fails the handshake: hostname checking is on under aiohttp too."""
    other = pki.client("platform")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(other.cert), str(other.key))
    srv = server(lambda conn: answer(conn, 200, GOOD), tls)
    exc = fails(srv.url, rivta.Unreachable, verify=platform(pki))
    assert exc.status is None and srv.connections == []


def test_a_connection_to_one_producer_is_not_used_for_another_with_the_same_address(server, server_tls, pki) -> None:
    """Two clients with different certificates calling the same producer: each presents its own certificate (no
    connection or TLS session crosses from one client's pool to the other's)."""
    srv = server(lambda conn: answer(conn, 200, GOOD), server_tls)
    other = pki.client(next(name for name in pki.clients if name != "platform"))

    async def go() -> None:
        async with rivta.new_client(platform(pki), timeout=5) as first, \
                rivta.new_client(rivta.client_context(str(other.cert), str(other.key), str(pki.ca_bundle)),
                                 timeout=5) as second:
            await rivta.call(first, srv.url, request_envelope(), soap_action=ACTION)
            await rivta.call(second, srv.url, request_envelope(), soap_action=ACTION)

    asyncio.run(go())
    assert len(srv.client_subjects) == 2 and srv.client_subjects[0] != srv.client_subjects[1]


def test_a_malformed_answer_head_quoting_a_personnummer_stays_out_of_the_error(server) -> None:
    """The HTTP parser's error quotes the bytes it choked on: a producer's malformed header line (or status line)
    holding a patient's personnummer must not reach the error's message, reason or detail (they are logged)."""
    for head in (f"HTTP/1.1 200 OK\r\nX-Patient {PNR}\r\nContent-Length: 0\r\n\r\n",
                 f"HTTP/1.1 2{PNR} OK\r\nContent-Length: 0\r\n\r\n",
                 f"HTTP/1.1 200 OK\r\nContent-Length: {PNR}x\r\n\r\n",
                 f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<a/>x\r\nzz{PNR}\r\n\r\n",
                 f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;{PNR}\r\n<a/>x\r\n\r\n"):
        srv = server(lambda conn, head=head: conn.send(head.encode()))
        exc = fails(srv.url, rivta.RivtaCallError)
        assert PNR not in getattr(exc, "detail", "") and PNR not in getattr(exc, "reason", ""), (head, vars(exc))


def test_endless_informational_answers_end_within_the_deadline(server) -> None:
    """'100 Continue' for ever, never a final answer: the exchange ends by its deadline, having read little."""
    import time

    def continue_forever(conn: Connection) -> None:
        while not conn.stop.is_set():
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000)

    srv = server(continue_forever)
    started = time.monotonic()
    fails(srv.url, rivta.RivtaCallError, max_bytes=CAP, timeout=1)
    assert time.monotonic() - started < 5
    assert srv.finished.wait(5)
