"""Calling a national PDL service: build the RIVTA BP 2.1 envelope, POST it with the caller's httpx client,
and accept only a well-formed, schema-valid answer.

Everything that keeps the service from giving a usable answer - no connection, a timeout, an HTTP error, a
SOAP fault, an answer that is not the contract's - raises `ServiceUnavailable`; a valid answer whose result
code says the request was not carried out raises `ServiceRefused`. Messages name the service and the reason
only: never a patient id, a name or text from the answer. Callers must fail closed on either.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

import httpx
from lxml import etree

from adapter.consumer.pdl.services import NationalService, schema
from adapter.mapping.timefmt import SWEDEN
from adapter.rivta import xml
from adapter.rivta.contracts import REGISTRY_NS, SOAP_NS

log = logging.getLogger("adapter.consumer.pdl")

CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_ANSWER_BYTES = 2_000_000
SUCCESS_CODES = frozenset({"OK", "INFO"})


class PdlServiceError(Exception):
    """A national PDL service gave no usable answer; access cannot be established from it."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(service, reason)
        self.service = service
        self.reason = reason  # fixed wording plus codes and counts: safe to log and to show

    def __str__(self) -> str:
        return f"{self.service}: {self.reason}"


class ServiceUnavailable(PdlServiceError):
    """No answer, a SOAP fault, or an answer that does not follow the contract."""


class ServiceRefused(PdlServiceError):
    """A valid answer whose result code is neither OK nor INFO (the request was not carried out)."""

    def __init__(self, service: str, result_code: str) -> None:
        super().__init__(service, f"result code {result_code}")
        self.result_code = result_code


def sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        el.text = text
    return el


def xml_datetime(value: datetime) -> str:
    """xs:dateTime with an explicit offset; a naive value is Swedish local time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=SWEDEN)
    return value.isoformat(timespec="seconds")


def envelope(logical_address: str, body: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "itr": REGISTRY_NS})
    header = etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    etree.SubElement(header, f"{{{REGISTRY_NS}}}LogicalAddress").text = logical_address
    etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def check_request(service: NationalService, body: etree._Element) -> None:
    """Refuse to send a request our own schema rejects (a value too long, say): that is the caller's error."""
    s = schema(service)
    if not s.validate(body):
        raise ValueError(f"{service.name} request does not follow the schema (at {_error_path(s)})")


async def call(client: httpx.AsyncClient, url: str, service: NationalService, logical_address: str,
               body: etree._Element) -> etree._Element:
    """POST one request; return the answer element (the child of soap:Body), schema-valid."""
    if not logical_address:
        raise ValueError("a logical address is required")
    check_request(service, body)
    headers = {"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{service.soap_action}"'}
    try:
        async with client.stream("POST", url, content=envelope(logical_address, body), headers=headers) as resp:
            status = resp.status_code
            data = await _read_capped(resp, service)
    except httpx.TimeoutException as exc:
        raise _unavailable(service, f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise _unavailable(service, f"connection failed ({type(exc).__name__})") from exc
    return _answer(service, status, data)


def result_code(result: etree._Element | None, ns: str) -> str:
    code = result.findtext(f"{{{ns}}}resultCode") if result is not None else None
    return (code or "").strip()


def require_success(service: NationalService, code: str, result: etree._Element | None, ns: str) -> None:
    if code not in SUCCESS_CODES:
        # resultText is the service's free text and may name the patient: debug level only
        log.debug("%s result %s: %s", service.name, code, result.findtext(f"{{{ns}}}resultText") if result is not None
                  else None)
        log.warning("%s refused the request: result code %s", service.name, code)
        raise ServiceRefused(service.name, code)


def invalid_answer(service: NationalService, reason: str) -> ServiceUnavailable:
    return _unavailable(service, f"invalid answer ({reason})")


async def _read_capped(resp: httpx.Response, service: NationalService) -> bytes:
    chunks, size = [], 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise invalid_answer(service, f"larger than {MAX_ANSWER_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(service: NationalService, status: int, data: bytes) -> etree._Element:
    if status not in (200, 500):
        raise _unavailable(service, f"HTTP {status}")
    try:
        root = xml.parse(data, max_bytes=MAX_ANSWER_BYTES)
    except xml.UnsafeXml as exc:
        raise (invalid_answer(service, str(exc)) if status == 200 else _unavailable(service, f"HTTP {status}")) \
            from None
    body = root.find(f"{{{SOAP_NS}}}Body") if root.tag == f"{{{SOAP_NS}}}Envelope" else None
    children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if len(children) != 1:
        raise invalid_answer(service, "not a SOAP envelope with one body element") if status == 200 \
            else _unavailable(service, f"HTTP {status}")
    answer = children[0]
    if answer.tag == f"{{{SOAP_NS}}}Fault":
        # faultstring is free text from the other side: debug level only
        log.debug("%s fault string: %s", service.name, answer.findtext("faultstring"))
        raise _unavailable(service, f"SOAP fault {_safe_code(answer.findtext('faultcode'))} (HTTP {status})")
    if status != 200:
        raise _unavailable(service, f"HTTP {status}")
    if answer.tag != service.response_tag:
        raise invalid_answer(service, f"expected {service.name}Response in namespace {service.responder_ns}")
    s = schema(service)
    if not s.validate(answer):
        raise invalid_answer(service, f"does not follow the {service.name} schema at {_error_path(s)}")
    return answer


_QNAME = re.compile(r"^[A-Za-z_][\w.-]{0,40}(:[A-Za-z_][\w.-]{0,40})?$")


def _safe_code(code: str | None) -> str:
    code = (code or "").strip()
    return code if _QNAME.match(code) else "(not shown)"


def _error_path(s: etree.XMLSchema) -> str:
    # the path names elements only; lxml's message would quote the offending value
    err = s.error_log.last_error
    return err.path if err is not None and err.path else "?"


def _unavailable(service: NationalService, reason: str) -> ServiceUnavailable:
    log.warning("%s unavailable: %s", service.name, reason)
    return ServiceUnavailable(service.name, reason)
