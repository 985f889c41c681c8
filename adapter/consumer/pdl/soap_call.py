"""Calling a national PDL service: build the RIVTA BP 2.1 envelope, POST it with the caller's httpx client
through the one RIVTA client (adapter/rivta/client.py), and accept only a well-formed, schema-valid answer.

Everything that keeps the service from giving a usable answer - no connection, a timeout, an HTTP error, a
SOAP fault, an answer that is not the contract's - raises `ServiceUnavailable`; a valid answer whose result
code says the request was not carried out raises `ServiceRefused`. Messages name the service and the reason
only: never a patient id, a name or text from the answer. Callers must fail closed on either.
"""

from __future__ import annotations

import logging
from datetime import datetime

import httpx
from lxml import etree

from adapter import metrics
from adapter.consumer.pdl.services import NationalService, schema
from adapter.mapping.timefmt import SWEDEN
from adapter.rivta import client as rivta
from adapter.rivta.client import envelope

log = logging.getLogger("adapter.consumer.pdl")

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
    try:
        reply = await rivta.call(client, url, envelope(logical_address, body), soap_action=service.soap_action,
                                 max_bytes=MAX_ANSWER_BYTES)
    except rivta.Fault as fault:
        # faultstring is free text from the other side: debug level only
        log.debug("%s fault string: %s", service.name, fault.faultstring)
        raise _unavailable(service, fault.reason) from None
    except (rivta.NotSoap, rivta.TooLarge) as exc:
        raise invalid_answer(service, exc.reason) from None
    except rivta.RivtaCallError as exc:  # Unreachable, Timeout, HttpStatus: the wording is the client's
        raise _unavailable(service, exc.reason) from exc
    answer = _answer(service, reply.answer)
    metrics.NATIONAL_CALLS.labels(service.name, "answered").inc()
    return answer


def result_code(result: etree._Element | None, ns: str) -> str:
    code = result.findtext(f"{{{ns}}}resultCode") if result is not None else None
    return (code or "").strip()


def require_success(service: NationalService, code: str, result: etree._Element | None, ns: str) -> None:
    if code not in SUCCESS_CODES:
        # resultText is the service's free text and may name the patient: debug level only
        log.debug("%s result %s: %s", service.name, code, result.findtext(f"{{{ns}}}resultText") if result is not None
                  else None)
        log.warning("%s refused the request: result code %s", service.name, code)
        metrics.NATIONAL_CALLS.labels(service.name, "refused").inc()
        raise ServiceRefused(service.name, code)


def invalid_answer(service: NationalService, reason: str) -> ServiceUnavailable:
    return _unavailable(service, f"invalid answer ({reason})")


def _answer(service: NationalService, answer: etree._Element) -> etree._Element:
    if answer.tag != service.response_tag:
        raise invalid_answer(service, f"expected {service.name}Response in namespace {service.responder_ns}")
    s = schema(service)
    if not s.validate(answer):
        raise invalid_answer(service, f"does not follow the {service.name} schema at {_error_path(s)}")
    return answer


def _error_path(s: etree.XMLSchema) -> str:
    # the path names elements only; lxml's message would quote the offending value
    err = s.error_log.last_error
    return err.path if err is not None and err.path else "?"


def _unavailable(service: NationalService, reason: str) -> ServiceUnavailable:
    log.warning("%s unavailable: %s", service.name, reason)
    metrics.NATIONAL_CALLS.labels(service.name, "unavailable").inc()
    return ServiceUnavailable(service.name, reason)
