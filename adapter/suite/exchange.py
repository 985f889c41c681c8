"""One call to the producer under test and what came back, read as untrusted XML.

`Caller.post` sends a request through the one RIVTA client (adapter/rivta/client.py: streamed, capped, timed)
and records the exchange; `read` parses the answer with the hardened
parser and finds the fault, the response element, `result` and the records; `problems` checks an answer
against the contract schema and the certification rules (adapter.rivta.rules).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx
from lxml import etree

from adapter.rivta import client as rivta
from adapter.rivta import rules, wsdl, xml
from adapter.rivta.contracts import SOAP_NS, Contract, ResultModel
from adapter.suite.declaration import Patient

CONSUMER_HEADER = "x-rivta-original-serviceconsumer-hsaid"
MAX_ANSWER_BYTES = 50 * 1024 * 1024  # the platform's example receive limit (VP config: 50 MB)
MAX_DEPTH = 64
# Owned by their own cases (3.1 VG_VE, 3.2 AuthorTime), so a missing care-giver id fails 3.1, not every case.
OWNED_RULES = {rules.Rule.CARE_UNIT_AND_GIVER, rules.Rule.AUTHOR_TIME}

_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_PROLOG = re.compile(r"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']""")


@dataclass
class Exchange:
    label: str  # what was asked, in the words of the report
    url: str
    request: bytes
    headers: dict[str, str]
    status: int | None = None
    content_type: str = ""
    answer: bytes = b""
    seconds: float = 0.0
    error: str = ""  # transport failure (no HTTP answer)
    cut: str = ""  # why an answer that began was not read (larger than the cap, say)


@dataclass
class Answer:
    exchange: Exchange
    root: etree._Element | None = None
    fault: str | None = None  # the faultstring when the answer is a SOAP fault
    response: etree._Element | None = None  # the <Contract>Response element
    records: list[etree._Element] = field(default_factory=list)
    result_code: str | None = None
    error_code: str | None = None
    result_message: str | None = None
    has_more: tuple[str, str] | None = None  # (logicalAddress, reference) of a partial answer
    unreadable: str = ""  # why the answer could not be read at all

    @property
    def usable(self) -> bool:
        return self.response is not None


class Caller:
    """Posts SOAP requests for one contract to one service address."""

    def __init__(self, client: httpx.AsyncClient, url: str, contract: Contract, consumer: str | None,
                 timeout: float) -> None:
        self.client, self.url, self.contract = client, url, contract
        self.consumer, self.timeout = consumer, timeout

    async def post(self, label: str, body: bytes, *, content_type: str = "text/xml; charset=UTF-8",
                   consumer: str | None = None, timeout: float | None = None) -> Exchange:
        limit = timeout or self.timeout
        extra = {CONSUMER_HEADER: consumer} if consumer else None
        sent = await rivta.exchange(self.client, self.url, body, soap_action=self.contract.soap_action,
                                    content_type=content_type, headers=extra, timeout=limit, deadline=limit,
                                    max_bytes=MAX_ANSWER_BYTES)
        ex = Exchange(label, self.url, body, sent.headers, sent.status, sent.content_type, sent.answer, sent.seconds)
        if isinstance(sent.error, rivta.Timeout):
            ex.error = f"no answer within {limit:g} s"
        elif isinstance(sent.error, rivta.Unreachable):
            ex.error = f"could not call the producer ({sent.error.detail or sent.error.cause})"
        elif sent.error is not None:  # an answer began but was not read whole (too large, undecodable)
            too_large = isinstance(sent.error, rivta.TooLarge)
            ex.cut = f"answer {sent.error.reason}" if too_large else sent.error.reason
        return ex


def read(ex: Exchange, contract: Contract) -> Answer:
    answer = Answer(ex)
    if ex.error:
        answer.unreadable = ex.error
        return answer
    if ex.cut:
        answer.unreadable = f"HTTP {ex.status}, not readable as XML ({ex.cut})"
        return answer
    try:
        root = xml.parse(ex.answer, max_bytes=MAX_ANSWER_BYTES, max_depth=MAX_DEPTH)
    except xml.UnsafeXml as exc:
        hint = " (is the service address right?)" if ex.status == 404 else ""
        answer.unreadable = f"HTTP {ex.status}{hint}, not readable as XML ({exc})"
        return answer
    answer.root = root
    body = root.find(f"{{{SOAP_NS}}}Body") if root.tag == f"{{{SOAP_NS}}}Envelope" else None
    if body is None:
        answer.unreadable = f"HTTP {ex.status}, not a SOAP 1.1 envelope (root {_qname(root)})"
        return answer
    fault = body.find(f"{{{SOAP_NS}}}Fault")
    if fault is not None:
        found = rivta.fault_of(fault, ex.status)
        answer.fault = (found.faultstring if found else "").strip() or "(no faultstring)"
        return answer
    children = [c for c in body if isinstance(c.tag, str)]
    expected = f"{{{contract.responder_ns}}}{contract.response_element}"
    response = next((c for c in children if c.tag == expected), None)
    if response is None:
        found = _qname(children[0]) if children else "nothing"
        answer.unreadable = f"HTTP {ex.status}, the SOAP Body holds {found} instead of {contract.response_element} " \
                            f"in {contract.responder_ns}"
        return answer
    answer.response = response
    answer.records = response.findall(f"{{{contract.responder_ns}}}{contract.record_element}")
    outer, inner = contract.result_ns
    result = response.find(f"{{{outer}}}result")
    if result is not None:
        answer.result_code = (result.findtext(f"{{{inner}}}resultCode") or "").strip() or None
        if contract.result_model is ResultModel.TEXT:  # resultCode + resultText: no errorCode to read
            answer.result_message = result.findtext(f"{{{inner}}}resultText")
        else:
            answer.error_code = (result.findtext(f"{{{inner}}}errorCode") or "").strip() or None
            answer.result_message = result.findtext(f"{{{inner}}}message")
    if contract.has_more:
        r = contract.responder_ns
        more = response.find(f"{{{r}}}hasMore")
        if more is not None:
            answer.has_more = ((more.findtext(f"{{{r}}}logicalAddress") or "").strip(),
                               (more.findtext(f"{{{r}}}reference") or "").strip())
    return answer


def problems(answer: Answer, contract: Contract, patient: Patient | None) -> list[str]:
    """Everything wrong with an answer that should be a usable contract answer for `patient`."""
    ex = answer.exchange
    if answer.unreadable:
        return [answer.unreadable]
    if answer.fault is not None:
        return [f"SOAP fault (HTTP {ex.status}) instead of an answer: {_short(answer.fault)}"]
    out = []
    if ex.status != 200:
        out.append(f"HTTP status {ex.status} for an answer (expected 200)")
    schema = wsdl.request_schema(contract)
    if not schema.validate(answer.response):
        errors = [f"line {e.line}: {e.message}" for e in list(schema.error_log)[:3]]
        out.append(f"not valid against the {contract.title} schema: " + "; ".join(errors))
    if answer.result_code is None:
        out.append("result missing: the TKB makes it 1..1")
    out.extend(str(p) for p in rules.find_problems(answer.response, contract) if p.rule not in OWNED_RULES)
    if patient is not None:
        for i, rec in enumerate(answer.records):
            if rules.first_text(rec, contract, contract.paths.patient_id) != patient.id:
                out.append(f"{contract.record_element}[{i}] is about another patient than the one asked for")
    return out


def charset_of(content_type: str) -> str | None:
    m = _CHARSET.search(content_type or "")
    return m.group(1) if m else None


def prolog_encoding(data: bytes) -> tuple[str | None, str | None]:
    """(the encoding named in the XML declaration, the encoding a byte-order mark shows)."""
    bom = None
    if data.startswith(b"\xef\xbb\xbf"):
        bom, head = "UTF-8", data[3:200].decode("utf-8", "replace")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        bom = "UTF-16"
        head = data[2:400].decode("utf-16-le" if data.startswith(b"\xff\xfe") else "utf-16-be", "replace")
    elif data.startswith(b"<\x00"):
        bom, head = "UTF-16", data[:400].decode("utf-16-le", "replace")
    elif data.startswith(b"\x00<"):
        bom, head = "UTF-16", data[:400].decode("utf-16-be", "replace")
    else:
        head = data[:200].decode("latin-1")
    m = _PROLOG.match(head.lstrip("\ufeff"))
    return (m.group(1) if m else None), bom


def decode(data: bytes, content_type: str = "") -> str:
    """A message as text, in the encoding its byte-order mark, prolog or Content-Type names (else UTF-8)."""
    declared, bom = prolog_encoding(data)
    encoding = "utf-16" if bom == "UTF-16" else (bom or declared or charset_of(content_type) or "utf-8")
    try:
        return data.decode(encoding, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _qname(el: etree._Element) -> str:
    q = etree.QName(el)
    return f"{q.localname} ({q.namespace})" if q.namespace else q.localname


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " …"
