"""The one RIVTA BP 2.1 SOAP client: the consumer's fan-out, the PDL services, the engagement-index sender and
the contract suite all call other services through it.

* `exchange` POSTs an envelope (SOAPAction, Content-Type, the platform's `x-skltp-correlation-id`, extra headers;
  the caller's httpx.AsyncClient, made by `new_client`, carries mTLS, see `client_context`, and its default
  timeouts) and streams the answer, stopping at a byte cap: a declared Content-Length over the cap is refused
  before the body is read, and a body is never read past the cap (compressed answers are inflated in bounded
  steps). It returns the raw exchange (bytes, status, timing) with the transport error, if any, recorded in it:
  the suite reports exchanges as they were.
* `read_answer` parses an answer with the hardened parser (adapter/rivta/xml.py) and returns the Body's
  element, or raises `Fault` (faultcode, faultstring, a RIVTA VPnnn/EInnn code, a log id), `NotSoap` or
  `HttpStatus`. RIVTA answers with HTTP 200, and faults with 500; any other status is the HTTP layer failing.
* `call` is both: the Body's element of a usable answer, or a `RivtaCallError`.

Every `RivtaCallError` message (`reason`, `str()`) is fixed wording plus status codes, byte counts, QName-shaped
fault codes and exception class names: never a value from the request or the answer, so it is safe to log and
show. The other side's free text (`Fault.faultstring`) is kept apart, and only there. What counts as a usable
answer for a contract (which response element, its schema, its result code) is the caller's business.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from lxml import etree

from adapter import correlation
from adapter.rivta import xml
from adapter.rivta.contracts import REGISTRY_NS, SOAP_NS
from adapter.rivta.transport import AiohttpTransport

CONTENT_TYPE = "text/xml; charset=utf-8"
DEFAULT_MAX_BYTES = xml.DEFAULT_MAX_BYTES
DEFAULT_MAX_DEPTH = xml.DEFAULT_MAX_DEPTH
ANSWER_STATUS, FAULT_STATUS = 200, 500

_QNAME = re.compile(r"^[A-Za-z_][\w.-]{0,40}(:[A-Za-z_][\w.-]{0,40})?$")
_RIVTA_CODE = re.compile(r"\b((?:VP|EI)[0-9]{3})\b")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


# --- one exception tree -----------------------------------------------------------------------------------------
class RivtaCallError(Exception):
    """A call that gave no usable SOAP answer. `reason` (also `str()`) is safe to log and to show."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status  # the HTTP status, when an answer began

    def __str__(self) -> str:
        return self.reason


class Unreachable(RivtaCallError):
    """No HTTP answer: connection refused, TLS handshake refused, the connection dropped."""

    def __init__(self, cause: str, detail: str = "", status: int | None = None, why: str = "") -> None:
        super().__init__(f"connection failed ({cause})", status)
        self.cause = cause  # the transport exception's class name, e.g. ConnectError
        self.detail = detail  # "<class>: <the OS's or TLS library's words>", for operators (never answer text)
        self.why = why or cause  # the same in plain words (`connection_problem`), for people


class Timeout(RivtaCallError):
    """No (complete) answer in time: an httpx timeout, or the caller's deadline for the whole exchange."""

    def __init__(self, cause: str, status: int | None = None) -> None:
        super().__init__(f"timed out ({cause})", status)
        self.cause = cause  # e.g. ReadTimeout, or "no complete answer within 27 s"


class TooLarge(RivtaCallError):
    """The answer is larger than the cap; reading stopped there."""

    def __init__(self, limit: int, status: int | None) -> None:
        super().__init__(f"larger than {limit} bytes", status)
        self.limit = limit


class HttpStatus(RivtaCallError):
    """An HTTP status other than 200 (an answer) or 500 with a SOAP fault."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}", status)


class NotSoap(RivtaCallError):
    """HTTP 200, but not a well-formed, safe SOAP 1.1 envelope with one element in its Body."""

    def __init__(self, why: str, status: int | None) -> None:
        super().__init__(why, status)


class Fault(RivtaCallError):
    """A SOAP fault. `code` is the faultcode when it is QName-shaped (else None: it is not shown); `rivta_code` the
    VPnnn/EInnn code in the fault (the platform's and the engagement index's errors); `log_id` a UUID in the
    faultstring. `faultstring` is the other side's free text and may name a patient: never log it above debug
    level, never put it in a message without redacting it."""

    def __init__(self, status: int | None, faultcode: str | None, faultstring: str) -> None:
        raw_code = (faultcode or "").strip()
        self.code = raw_code if _QNAME.match(raw_code) else None
        found = _RIVTA_CODE.search(faultstring) or _RIVTA_CODE.search(raw_code)
        self.rivta_code = found.group(1) if found else None
        log_id = _UUID.search(faultstring)
        self.log_id = log_id.group(0) if log_id else None
        self.faultstring = faultstring
        super().__init__(f"SOAP fault {self.code or '(not shown)'} (HTTP {status})", status)


# --- the request ------------------------------------------------------------------------------------------------
def envelope(logical_address: str, body: etree._Element) -> bytes:
    """A SOAP 1.1 envelope with the RIVTA LogicalAddress header around one Body element."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "itr": REGISTRY_NS})
    header = etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    etree.SubElement(header, f"{{{REGISTRY_NS}}}LogicalAddress").text = logical_address
    etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def client_context(cert: str, key: str, ca: str | None, crls: Sequence[str | Path] = ()) -> ssl.SSLContext:
    """mTLS to producers and national services: present `cert`/`key` (the function certificate), trust `ca` (else
    the system's CAs); with `crls` (one for every CA in the chain) a revoked server certificate, or a CRL past its
    nextUpdate, fails the handshake."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    for crl in crls:
        ctx.load_verify_locations(cafile=str(crl))
    if crls:
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    return ctx


def new_client(verify: ssl.SSLContext | bool = True, *, timeout: float | httpx.Timeout = 5.0,
               limits: httpx.Limits = httpx.Limits()) -> httpx.AsyncClient:
    """The HTTP client for `exchange` and `call`: mTLS as `verify` says (`client_context`), no proxy or certificate
    settings taken from the environment, a connection pool per producer or service (`limits` apply to each:
    adapter/rivta/transport.py says why), and no cookies: a producer's Set-Cookie would otherwise ride along on the
    consumer's later calls to it (other patients, other staff)."""
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(transport=AiohttpTransport(verify=verify, limits=limits), trust_env=False, timeout=timeout,
                             cookies=no_cookies)


# --- the exchange -----------------------------------------------------------------------------------------------
@dataclass
class Exchange:
    """One POST and what came back, as it was."""

    url: str
    request: bytes
    headers: dict[str, str]  # as sent
    status: int | None = None
    content_type: str = ""
    answer: bytes = b""  # the body (inflated when it came compressed); empty after an error
    seconds: float = 0.0  # from sending to the end of the answer (or the error)
    received: int = 0  # bytes read from the network for the body
    error: RivtaCallError | None = None  # Unreachable, Timeout or TooLarge: no complete answer


async def exchange(client: httpx.AsyncClient, url: str, request: bytes, *, soap_action: str | None,
                   content_type: str = CONTENT_TYPE, headers: Mapping[str, str] | None = None,
                   timeout: float | None = None, deadline: float | None = None,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> Exchange:
    """POST `request` and read the answer up to `max_bytes`. `timeout` is httpx's per-operation timeout (connect,
    each read; default: the client's), `deadline` a limit on the whole exchange. Never raises a transport error:
    it is recorded in `Exchange.error`. The platform's correlation id goes with every call: the one of the
    overview or request in hand (adapter/correlation.py), else a new one, unless `headers` name one.

    Without `deadline`, the whole exchange is bounded by twice the longest per-operation timeout (`timeout`, else
    the client's): those bound each read, and a server that trickles a byte now and then would otherwise hold the
    caller (an overview waiting for the blocking service, the engagement-index sender) for as long as it likes.
    Twice, so that a server that says nothing is still reported by the per-read timeout."""
    if deadline is None:
        deadline = _client_deadline(client, timeout)
    sent = {"Content-Type": content_type, "Accept-Encoding": "identity"}
    if soap_action is not None:
        sent["SOAPAction"] = f'"{soap_action}"'
    sent.update(headers or {})
    if not any(name.lower() == correlation.HEADER for name in sent):
        sent[correlation.HEADER] = correlation.current() or correlation.new()
    ex = Exchange(url, request, sent)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline):
            await _transfer(client, ex, timeout, max_bytes)
    except TimeoutError:  # the deadline (httpx's own timeouts arrive as RivtaCallError)
        ex.error, ex.answer = Timeout(f"no complete answer within {deadline:g} s", ex.status), b""
    except RivtaCallError as exc:
        ex.error, ex.answer = exc, b""
    ex.seconds = time.perf_counter() - started
    return ex


def _client_deadline(client: httpx.AsyncClient, timeout: float | None) -> float | None:
    t = client.timeout
    limits = [timeout] if timeout is not None else [v for v in (t.connect, t.read, t.write, t.pool) if v is not None]
    return 2 * max(limits) if limits else None


async def _transfer(client: httpx.AsyncClient, ex: Exchange, timeout: float | None, max_bytes: int) -> None:
    try:
        async with client.stream("POST", ex.url, content=ex.request, headers=ex.headers,
                                 timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout) as resp:
            ex.status = resp.status_code
            ex.content_type = resp.headers.get("content-type", "")
            try:
                ex.answer = await _read_capped(resp, max_bytes)
            finally:
                ex.received = resp.num_bytes_downloaded
            # leaving the block unread closes the connection: what was not read is never read
    except httpx.TimeoutException as exc:
        raise Timeout(type(exc).__name__, ex.status) from exc
    except (httpx.HTTPError, ssl.SSLError, ConnectionError) as exc:
        # a TLS 1.3 alert after the handshake (no or a refused client certificate) reaches here as a bare
        # ssl.SSLError from the first read: httpx does not wrap it
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise Unreachable(type(exc).__name__, detail, ex.status, connection_problem(exc)) from exc


async def _read_capped(resp: httpx.Response, max_bytes: int) -> bytes:
    status = resp.status_code
    declared = resp.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(max_bytes, status)
    inflate = _inflater(resp.headers.get("content-encoding", ""), status)
    chunks: list[bytes] = []
    size = received = 0
    async for raw in resp.aiter_raw():
        # the bytes read are capped too: past a compressed stream's end zlib inflates nothing (and keeps what
        # came, unused_data), and empty deflate blocks inflate to nothing, for as long as the producer sends
        received += len(raw)
        if received > max_bytes:
            raise TooLarge(max_bytes, status)
        chunk = inflate(raw, max_bytes - size + 1) if inflate else raw
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(max_bytes, status)
        chunks.append(chunk)
    return b"".join(chunks)


def _inflater(encoding: str, status: int) -> Callable[[bytes, int], bytes] | None:
    """A bounded inflater for a gzip or deflate answer (identity is asked for; a server may compress anyway)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise NotSoap("answer in an unsupported content encoding", status)
    d = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected

    def inflate(data: bytes, limit: int) -> bytes:
        try:
            return d.decompress(data, limit)  # at most `limit` bytes: past the cap is never inflated
        except zlib.error:
            raise NotSoap(f"answer not decodable as {encoding}", status) from None

    return inflate


# --- a connection that failed, in plain words -------------------------------------------------------------------
# What a server's TLS alert says about the client's certificate (OpenSSL's reason names; fixed wording only).
_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "it requires a client certificate",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the handshake failed (it may require a client certificate, or share no "
                                     "TLS version or cipher with us)",
    "TLSV1_ALERT_UNKNOWN_CA": "it does not trust the CA that issued the client certificate (unknown CA)",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "the client certificate is revoked",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the client certificate has expired (or is not yet valid)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "it found the client certificate bad",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the client certificate is not for this use (client authentication)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "it could not accept the client certificate (certificate unknown)",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": "no cipher strong enough for it",
    "TLSV1_ALERT_DECRYPT_ERROR": "the client certificate's signature did not verify (wrong key?)",
}
SILENT_CLOSE = "the server closed the connection during or right after the TLS handshake without saying why"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def connection_problem(exc: BaseException) -> str:
    """Why a connection gave no answer, in plain words safe to show (OpenSSL's and the OS's fixed wording, never
    anything the other side sent): refused, unknown host, an untrusted server certificate, a TLS alert naming what
    the server refused about our certificate, or a close without a word (servers often refuse a client certificate
    so, asyncio's among them)."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"the server's certificate is not trusted ({e.verify_message or e.reason})"
        if isinstance(e, ssl.SSLError) and e.reason in _ALERTS:
            return f"the server refused the TLS connection: {_ALERTS[e.reason]}"
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused: nothing listens at that address and port"
        if isinstance(e, socket.gaierror):
            return "the host name is not known"
        if isinstance(e, ssl.SSLError):
            return f"TLS failed ({e.reason or type(e).__name__})" if not isinstance(e, ssl.SSLEOFError) \
                else SILENT_CLOSE
    if any(isinstance(e, (ConnectionResetError, BrokenPipeError, httpx.ReadError, httpx.WriteError,
                          httpx.RemoteProtocolError)) for e in chain):
        return "the server closed the connection without an answer (over TLS: it may have refused our certificate)"
    if any(isinstance(e, OSError) and e.strerror for e in chain):
        return next(str(e.strerror) for e in chain if isinstance(e, OSError) and e.strerror)
    return type(exc).__name__


async def check_connection(url: str, verify: ssl.SSLContext | bool = True, timeout: float = 10.0,
                           settle: float = 0.5) -> str | None:
    """None when a connection to `url`'s host and port is accepted, else why not (`connection_problem`'s words).
    Over https it completes the TLS handshake and then listens for `settle` seconds without sending anything: a
    server that refuses the client certificate (TLS 1.3 does so after the handshake) says so with an alert, or just
    closes the connection, which is then told apart from a server waiting for a request."""
    parts = httpx.URL(url)
    host, port = parts.host, parts.port or (443 if parts.scheme == "https" else 80)
    context: ssl.SSLContext | None = None
    if parts.scheme == "https":
        context = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
        if verify is False:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    def probe() -> str | None:
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            return connection_problem(exc)
        try:
            if context is None:
                return None
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.settimeout(settle)
                try:
                    if tls.recv(1) == b"":
                        return SILENT_CLOSE
                except TimeoutError:
                    return None  # waiting for our request: accepted
                return None  # it spoke first (unusual, but not a refusal)
        except OSError as exc:
            return SILENT_CLOSE if isinstance(exc, (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)) \
                else connection_problem(exc)
        finally:
            raw.close()

    return await asyncio.to_thread(probe)


# --- the answer -------------------------------------------------------------------------------------------------
def fault_of(element: etree._Element, status: int | None) -> Fault | None:
    """The Fault for a soap:Fault element (its faultcode and faultstring, unqualified as SOAP 1.1 says, or
    qualified as some stacks write them), else None."""
    if element.tag != f"{{{SOAP_NS}}}Fault":
        return None
    return Fault(status, _child_text(element, "faultcode"), _child_text(element, "faultstring") or "")


def read_answer(status: int, data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
                max_depth: int = DEFAULT_MAX_DEPTH) -> etree._Element:
    """The element in the Body of a RIVTA answer; raises HttpStatus, NotSoap or Fault."""
    if status not in (ANSWER_STATUS, FAULT_STATUS):
        raise HttpStatus(status)
    try:
        root = xml.parse(data, max_bytes=max_bytes, max_depth=max_depth)
    except xml.UnsafeXml as exc:
        raise (NotSoap(str(exc), status) if status == ANSWER_STATUS else HttpStatus(status)) from None
    body = root.find(f"{{{SOAP_NS}}}Body") if root.tag == f"{{{SOAP_NS}}}Envelope" else None
    children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if len(children) != 1:
        raise NotSoap("not a SOAP envelope with one body element", status) if status == ANSWER_STATUS \
            else HttpStatus(status)
    fault = fault_of(children[0], status)
    if fault is not None:
        raise fault
    if status != ANSWER_STATUS:
        raise HttpStatus(status)
    return children[0]


@dataclass(frozen=True)
class Reply:
    answer: etree._Element  # the element in the Body
    exchange: Exchange


async def call(client: httpx.AsyncClient, url: str, request: bytes, *, soap_action: str | None,
               content_type: str = CONTENT_TYPE, headers: Mapping[str, str] | None = None,
               timeout: float | None = None, deadline: float | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
               max_depth: int = DEFAULT_MAX_DEPTH) -> Reply:
    """`exchange` then `read_answer`: the Body's element of a usable answer, or a RivtaCallError."""
    ex = await exchange(client, url, request, soap_action=soap_action, content_type=content_type, headers=headers,
                        timeout=timeout, deadline=deadline, max_bytes=max_bytes)
    if ex.error is not None:
        raise ex.error
    assert ex.status is not None
    return Reply(read_answer(ex.status, ex.answer, max_bytes=max_bytes, max_depth=max_depth), ex)


def _child_text(element: etree._Element, name: str) -> str | None:
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return child.text
    return None
