"""SOAP 1.1 envelopes for RIVTA BP 2.1: reading requests, writing answers and faults."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from adapter.rivta import ids, xml
from adapter.rivta.contracts import BY_KEY, REGISTRY_NS, SOAP_NS, Contract, ResultModel

CONTENT_TYPE = "text/xml; charset=utf-8"
_XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'


class SoapError(ValueError):
    """The request is not a usable SOAP message; the message is safe to send back."""

    def __init__(self, message: str, client_fault: bool = True) -> None:
        super().__init__(message)
        self.client_fault = client_fault


@dataclass(frozen=True)
class SoapRequest:
    logical_address: str | None
    body: etree._Element  # the single child of soap:Body


_HEADER, _BODY = f"{{{SOAP_NS}}}Header", f"{{{SOAP_NS}}}Body"
_LOGICAL_ADDRESS = f"{{{REGISTRY_NS}}}LogicalAddress"


def read_request(data: bytes, *, max_bytes: int, max_depth: int) -> SoapRequest:
    try:
        root = xml.parse(data, max_bytes=max_bytes, max_depth=max_depth)
    except xml.UnsafeXml as exc:
        raise SoapError(str(exc)) from None
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise SoapError("not a SOAP 1.1 envelope")
    # lxml's iterchildren(tag) matches in C (find() goes through ElementPath in Python); the request is the hot path
    header = next(root.iterchildren(_HEADER), None)
    body = next(root.iterchildren(_BODY), None)
    if body is None:
        raise SoapError("SOAP Body missing")
    children = list(body.iterchildren(etree.Element))
    if len(children) != 1:
        raise SoapError("SOAP Body must hold exactly one element")
    address = None
    if header is not None:
        el = next(header.iterchildren(_LOGICAL_ADDRESS), None)
        if el is not None and el.text and el.text.strip():
            address = el.text.strip()
    return SoapRequest(address, children[0])


def new_log_id() -> str:
    return ids.uuid4()


def fault(message: str, *, client: bool = True) -> bytes:
    """A SOAP 1.1 Fault. `message` must hold no personal data; it should carry the log id."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    f = etree.SubElement(body, f"{{{SOAP_NS}}}Fault")
    etree.SubElement(f, "faultcode").text = "soap:Client" if client else "soap:Server"
    etree.SubElement(f, "faultstring").text = message
    return _XML_DECL + etree.tostring(env, encoding="utf-8")


def result_element(contract: Contract, code: str, log_id: str, message: str | None = None,
                   error_code: str | None = None) -> bytes:
    if message is None and error_code is None:  # every OK answer: the element serialised once, the log id put in
        before, after = _plain_result(contract.key, code)
        return before + log_id.encode() + after if after is not None else before
    return _result_element(contract, code, log_id, message, error_code)


_LOG_ID_SLOT = "00000000-0000-4000-8000-000000000000"


@functools.cache
def _plain_result(key: str, code: str) -> tuple[bytes, bytes | None]:
    """`result` with `code` and no message, split where the log id goes (no split: the contract's result has none)."""
    whole = _result_element(BY_KEY[key], code, _LOG_ID_SLOT)
    before, slot, after = whole.partition(_LOG_ID_SLOT.encode())
    return (before, after) if slot else (whole, None)


def _result_element(contract: Contract, code: str, log_id: str, message: str | None = None,
                    error_code: str | None = None) -> bytes:
    outer_ns, inner_ns = contract.result_ns
    el = etree.Element(f"{{{outer_ns}}}result", nsmap={None: outer_ns})
    etree.SubElement(el, f"{{{inner_ns}}}resultCode").text = code
    if contract.result_model is ResultModel.TEXT:
        # resultCode and resultText only: a logical error says what it is (and its log id) in the text;
        # OK without a message has no resultText (TKB "Inget att rapportera").
        if message:
            text = f"{error_code}: {message}" if error_code else message
            etree.SubElement(el, f"{{{inner_ns}}}resultText").text = f"{text} (log id {log_id})"
        return etree.tostring(el, encoding="utf-8")
    if error_code:
        etree.SubElement(el, f"{{{inner_ns}}}errorCode").text = error_code
    etree.SubElement(el, f"{{{inner_ns}}}logId").text = log_id
    if message:
        etree.SubElement(el, f"{{{inner_ns}}}message").text = message
    return etree.tostring(el, encoding="utf-8")


def has_more_element(contract: Contract, logical_address: str, reference: str) -> bytes:
    """`hasMore`: where to ask for the rest (the producer's logical address) and the reference to give."""
    ns = contract.responder_ns
    el = etree.Element(f"{{{ns}}}hasMore", nsmap={None: ns})
    etree.SubElement(el, f"{{{ns}}}logicalAddress").text = logical_address
    etree.SubElement(el, f"{{{ns}}}reference").text = reference
    return etree.tostring(el, encoding="utf-8")


def response_parts(contract: Contract, fragments: Iterable[bytes], result: bytes,
                   has_more: bytes | None = None) -> Iterable[bytes]:
    """The answer envelope as a sequence of byte chunks around the pre-rendered record fragments."""
    yield (
        _XML_DECL
        + f'<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Header/><soap:Body>'.encode()
        + f'<r:{contract.response_element} xmlns:r="{contract.responder_ns}">'.encode()
    )
    yield from fragments
    if has_more is not None:
        yield has_more
    yield result
    yield f"</r:{contract.response_element}></soap:Body></soap:Envelope>".encode()
