"""A stand-in for the national engagement index (EI), for tests and development only.

It serves Update 1.0 at the platform's path, refuses requests the way the national EI does, stores what it
accepts (an in-memory index keyed by the unique key; deleteFlag removes), logs every call it receives, and
can be told to fail or be slow for a while. It holds personnummer in clear: never point real data at it.

Checks, in the national EI's order (skltp/ei EngagementValidator; DOMAIN.md §2):
  EI001 the request does not follow the Update schema (the project's copy, contracts/EngagementIndexUpdate);
        with `deployed_resident_pattern` also the deployed EI's stricter personnummer pattern
  EI003 the LogicalAddress header is not the configured owner (or an alias)
  EI000 more than 1000 transactions
  per transaction: EI002 same unique key as an earlier one; EI004 white space around a value;
        EI005/EI006 logicalAddress/sourceSystem is a reserved (platform) HSA-id; EI004 empty value,
        over the length limit, impossible timestamp
  and, stricter than the national EI (which overwrites them / leaves them to the certification mock):
        EI004 creationTime, updateTime or owner sent by the producer; logicalAddress differs from sourceSystem.
Error style (ErrorStyle): the deployed national EI answers every validation error with a SOAP fault whose
text starts with the code (FAULT, the default). The TKB (pR1) and Inera's UpdateMock answer
ResultCode ERROR with the reason in `comment` instead (RESULT). A producer must cope with both.

Admin API (JSON, the same style as the other stand-ins in adapter/stubs): GET/POST /_stub/mode
{"mode": "ok"|"slow"|"fault"|"down"|"close", "delay": s, "calls": n, "seconds": s}. `delay` holds every
answer back (slow without one: 30 s); slow then applies the call even if the caller gave up waiting, as a
real index would. fault: SOAP fault EI000, nothing applied; down: HTTP 503, nothing applied; close: applies
the call, then drops the connection mid-answer. `calls`/`seconds` limit how long the mode lasts (then back
to ok). GET /_stub/engagements, GET /_stub/calls, POST /_stub/reset, GET /health; the WSDL at `?wsdl`.

Run alone: `python -m adapter.stubs.engagement_index --port 8081 --plain-http` or with --tls-cert/--tls-key/
--client-ca/--crl (mTLS, like the producer). --state FILE keeps the index and the call log over restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from lxml import etree
from pydantic import BaseModel, Field

from adapter import logs
from adapter.ei.messages import (
    DEPLOYED_RESIDENT_PATTERN,
    EI_CORE_NS,
    FIELDS,
    INDEX_SET_FIELDS,
    MAX_LENGTHS,
    MAX_TRANSACTIONS,
    UPDATE_RESPONDER_NS,
    UPDATE_WSDL,
    URL_PATH,
    Engagement,
    EngagementTransaction,
    is_timestamp,
    redact,
    update_schema,
)
from adapter.gateway import identity, server
from adapter.gateway.pki import CLIENT_SPECS
from adapter.gateway.tls import TlsContexts, TlsFiles
from adapter.mapping.timefmt import timestamp
from adapter.rivta import soap
from adapter.rivta.contracts import SOAP_NS
from adapter.rivta.wsdl import ContractDocuments
from adapter.rivta.wsdl import describe as describe_documents
from adapter.stubs.endpoint import DroppedConnection, read_capped
from adapter.stubs.endpoint import pause as pause_unless_gone

log = logging.getLogger("adapter.stubs.engagement_index")

DEFAULT_OWNER = "5565594230"  # Inera's HSA-id as the national address (official Update test data)
PLATFORM_HSA_ID = CLIENT_SPECS["platform"].hsa_id  # the dev PKI's national platform
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # 1000 engagements are about 1 MB
DEFAULT_SLOW_DELAY = 30.0
PRODUCER_ELEMENTS = tuple(element for _, element in FIELDS)
KEY_FIELDS = tuple(element for element in PRODUCER_ELEMENTS if element != "mostRecentContent")


class ErrorStyle(StrEnum):
    FAULT = "fault"  # the deployed national EI: SOAP fault "EI00x: ..." (HTTP 500)
    RESULT = "result"  # TKB pR1 / Inera's UpdateMock: ResultCode ERROR, comment "EI00x: ..."


class Mode(StrEnum):
    OK = "ok"
    SLOW = "slow"
    FAULT = "fault"
    DOWN = "down"
    CLOSE = "close"


class ModeRequest(BaseModel):
    mode: Mode
    delay: float = Field(0.0, ge=0, le=600)
    calls: int | None = Field(None, ge=1)  # the next n Update calls only
    seconds: float | None = Field(None, gt=0)  # for this long only


class Refusal(Exception):
    def __init__(self, code: str | None, message: str, *, client: bool = True) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code
        self.client = client


@dataclass
class _Behaviour:
    mode: Mode = Mode.OK
    delay: float = 0.0
    calls_left: int | None = None
    until: float | None = None  # time.monotonic()

    def public(self) -> dict[str, Any]:
        left = None if self.until is None else max(0.0, round(self.until - time.monotonic(), 3))
        return {"mode": self.mode.value, "delay": self.delay, "calls": self.calls_left, "seconds": left}


@dataclass(frozen=True)
class _Transaction:
    delete_flag: bool
    fields: dict[str, str]  # element name -> text, as received

    def public(self) -> dict[str, Any]:
        return {"deleteFlag": self.delete_flag, "engagement": self.fields}


@dataclass
class _Call:
    caller: str | None  # HSA-id of the client certificate (mTLS only)
    soap_action: str | None
    mode: Mode
    received: datetime | None = None
    logical_address: str | None = None
    transactions: list[_Transaction] = field(default_factory=list)

    def public(self, outcome: str | None) -> dict[str, Any]:
        """outcome: OK, the EI code of a refusal, SOAP (not a usable SOAP request) or None (not processed)."""
        at = (self.received or datetime.now(UTC)).isoformat()
        return {"at": at, "caller": self.caller, "soapAction": self.soap_action,
                "logicalAddress": self.logical_address, "mode": self.mode.value, "outcome": outcome,
                "transactions": [t.public() for t in self.transactions]}


class EngagementIndexStub:
    """State and rules of the stand-in; `create_app` puts HTTP in front of it. Thread-safe: tests read and
    steer it from their own thread while uvicorn serves from another."""

    def __init__(self, owner: str = DEFAULT_OWNER, *, aliases: Sequence[str] = (),
                 reserved_hsa_ids: Sequence[str] = (PLATFORM_HSA_ID,), error_style: ErrorStyle = ErrorStyle.FAULT,
                 deployed_resident_pattern: bool = True, state_file: Path | None = None) -> None:
        self.owner = owner
        self.addresses = {owner, *aliases}
        self.reserved = {owner, *aliases, *reserved_hsa_ids}
        self.error_style = ErrorStyle(error_style)
        self.deployed_resident_pattern = deployed_resident_pattern
        self.state_file = state_file
        self._lock = threading.Lock()
        self._behaviour = _Behaviour()
        self._index: dict[tuple[str, ...], dict[str, str]] = {}
        self._calls: list[dict[str, Any]] = []
        if state_file is not None and state_file.exists():
            self._load(state_file)

    # -- what tests read ---------------------------------------------------------------------------------------
    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every Update call received, oldest first: at, caller, logicalAddress, mode, outcome, transactions."""
        with self._lock:
            return json.loads(json.dumps(self._calls))

    @property
    def engagements(self) -> list[dict[str, str]]:
        """The stored posts (fields as elements, plus creationTime, updateTime and owner), in key order."""
        with self._lock:
            return [dict(self._index[k]) for k in sorted(self._index)]

    def stored(self) -> list[Engagement]:
        return [Engagement.from_fields(post) for post in self.engagements]

    def accepted_calls(self) -> list[list[EngagementTransaction]]:
        """The transactions of every call answered OK, in the order they arrived."""
        return [[EngagementTransaction(Engagement.from_fields(t["engagement"]), t["deleteFlag"])
                 for t in call["transactions"]] for call in self.calls if call["outcome"] == "OK"]

    def reset(self) -> None:
        with self._lock:
            self._index.clear()
            self._calls.clear()
            self._behaviour = _Behaviour()
            self._save()

    # -- failure modes -----------------------------------------------------------------------------------------
    def set_mode(self, mode: Mode | str, delay: float = 0.0, calls: int | None = None,
                 seconds: float | None = None) -> dict[str, Any]:
        with self._lock:
            until = time.monotonic() + seconds if seconds is not None else None
            self._behaviour = _Behaviour(Mode(mode), delay, calls, until)
            return self._behaviour.public()

    def mode(self) -> dict[str, Any]:
        with self._lock:
            self._expire()
            return self._behaviour.public()

    def take_mode(self) -> tuple[Mode, float]:
        """The mode for the call now arriving; counts it against a limited mode."""
        with self._lock:
            self._expire()
            b = self._behaviour
            if b.calls_left is not None:
                b.calls_left -= 1
                if b.calls_left <= 0:
                    self._behaviour = _Behaviour()
            return b.mode, b.delay

    def _expire(self) -> None:
        if self._behaviour.until is not None and time.monotonic() >= self._behaviour.until:
            self._behaviour = _Behaviour()

    # -- one Update call ---------------------------------------------------------------------------------------
    def handle(self, data: bytes, *, caller: str | None = None, soap_action: str | None = None,
               mode: Mode = Mode.OK, received: datetime | None = None) -> tuple[int, bytes]:
        """Validate, apply and log one Update request; returns (HTTP status, SOAP answer)."""
        call = _Call(caller, soap_action, mode, received)
        try:
            request = soap.read_request(data, max_bytes=MAX_REQUEST_BYTES, max_depth=64)
            call.logical_address = request.logical_address
            call.transactions = _transactions(request.body)
            self._validate(request.body, call.logical_address, call.transactions)
        except soap.SoapError as exc:
            self._log_call(call, "SOAP")
            return self._refuse(Refusal(None, f"invalid request: {exc}"))
        except Refusal as refusal:
            self._log_call(call, refusal.code or "SOAP")
            return self._refuse(refusal)
        with self._lock:  # applied and logged as one step, so the log order is the order of application
            self._apply(call.transactions)
            self._record(call, "OK")
        return 200, _answer("OK")

    def _refuse(self, refusal: Refusal) -> tuple[int, bytes]:
        text = str(refusal)
        log.info("Update refused: %s", text)
        if refusal.code is not None and self.error_style is ErrorStyle.RESULT:
            return 200, _answer("ERROR", text)
        return 500, soap.fault(text, client=refusal.client)

    def _validate(self, body: etree._Element, logical_address: str | None,
                  transactions: list[_Transaction]) -> None:
        if body.tag != f"{{{UPDATE_RESPONDER_NS}}}Update":
            raise Refusal(None, f"invalid request: expected Update in namespace {UPDATE_RESPONDER_NS}")
        schema = update_schema()
        if not schema.validate(body):
            where = schema.error_log[0].path if len(schema.error_log) else "?"
            raise Refusal("EI001", f"The payload does not follow the Update schema (at {where})")
        if self.deployed_resident_pattern:
            for i, t in enumerate(transactions, 1):
                if not DEPLOYED_RESIDENT_PATTERN.fullmatch(t.fields["registeredResidentIdentification"]):
                    raise Refusal("EI001", f"registeredResidentIdentification of EngagementTransaction {i} does "
                                           "not follow the deployed pattern (twelve digits; p, t or f allowed "
                                           "in position 9)")
        if not logical_address:
            raise Refusal("EI003", f"Invalid routing. Logical address is missing but the owner is {self.owner}")
        if logical_address not in self.addresses:
            raise Refusal("EI003", f"Invalid routing. Logical address is {redact(logical_address, 64)} but the "
                                   f"owner is {self.owner}")
        if len(transactions) > MAX_TRANSACTIONS:
            raise Refusal("EI000", f"The request holds {len(transactions)} engagements; at most "
                                   f"{MAX_TRANSACTIONS} are allowed per request", client=False)
        seen: dict[tuple[str, ...], int] = {}
        for i, t in enumerate(transactions, 1):
            first = seen.setdefault(_key(t.fields), i)
            if first != i:
                raise Refusal("EI002", f"EngagementTransaction {first} and {i} have the same unique key. "
                                       "Duplicates are not allowed.")
            self._validate_engagement(i, t.fields)

    def _validate_engagement(self, i: int, f: dict[str, str]) -> None:
        where = f"in EngagementTransaction {i}"
        for element, value in f.items():
            if value and value != value.strip():
                raise Refusal("EI004", f"field {element} {where} starts or ends with white space")
        if f["logicalAddress"] in self.reserved:
            raise Refusal("EI005", f"The logicalAddress {where} is reserved and not allowed: {f['logicalAddress']}")
        if f["sourceSystem"] in self.reserved:
            raise Refusal("EI006", f"The sourceSystem {where} is reserved and not allowed: {f['sourceSystem']}")
        for element in KEY_FIELDS:
            if not f.get(element):
                raise Refusal("EI004", f"mandatory field {element} {where} is missing or empty")
        for element, value in f.items():
            if element in MAX_LENGTHS and len(value) > MAX_LENGTHS[element]:
                raise Refusal("EI004", f"field {element} {where} is longer than {MAX_LENGTHS[element]} characters")
        for element in ("mostRecentContent", *INDEX_SET_FIELDS[:2]):
            if element in f and not is_timestamp(f[element]):
                raise Refusal("EI004", f"field {element} {where} is not a valid timestamp YYYYMMDDhhmmss")
        for element in INDEX_SET_FIELDS:
            if element in f:
                raise Refusal("EI004", f"field {element} {where} is set by the index and must not be sent")
        if f["logicalAddress"] != f["sourceSystem"]:
            raise Refusal("EI004", f"logicalAddress {where} must equal sourceSystem")

    def _apply(self, transactions: list[_Transaction]) -> None:
        now = timestamp(datetime.now(UTC))
        for t in transactions:
            key = _key(t.fields)
            if t.delete_flag:
                self._index.pop(key, None)
                continue
            stored = self._index.get(key)
            incoming = {e: t.fields[e] for e in PRODUCER_ELEMENTS if e in t.fields}
            if stored is None:
                self._index[key] = {**incoming, "creationTime": now, "owner": self.owner}
            elif {e: v for e, v in stored.items() if e not in INDEX_SET_FIELDS} != incoming:
                # pR4: replace; pR5: an identical post is left alone (updateTime unchanged)
                self._index[key] = {**incoming, "creationTime": stored["creationTime"], "updateTime": now,
                                    "owner": self.owner}

    def _log_call(self, call: _Call, outcome: str | None) -> None:
        with self._lock:
            self._record(call, outcome)

    def _record(self, call: _Call, outcome: str | None) -> None:
        self._calls.append(call.public(outcome))
        self._save()

    def log_unprocessed(self, data: bytes, *, caller: str | None = None, soap_action: str | None = None,
                        mode: Mode, received: datetime | None = None) -> None:
        """Log a call that a failure mode answered without processing it (what arrived, best effort)."""
        call = _Call(caller, soap_action, mode, received)
        try:
            request = soap.read_request(data, max_bytes=MAX_REQUEST_BYTES, max_depth=64)
            call.logical_address, call.transactions = request.logical_address, _transactions(request.body)
        except soap.SoapError:
            pass
        self._log_call(call, None)

    # -- persistence -------------------------------------------------------------------------------------------
    def _save(self) -> None:
        if self.state_file is None:
            return
        state = {"engagements": [self._index[k] for k in sorted(self._index)], "calls": self._calls}
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.state_file)

    def _load(self, path: Path) -> None:
        state = json.loads(path.read_text(encoding="utf-8"))
        self._index = {_key(post): post for post in state.get("engagements", [])}
        self._calls = list(state.get("calls", []))


def _transactions(body: etree._Element) -> list[_Transaction]:
    """The transactions as received (before validation: missing elements are simply absent)."""
    found = []
    for tx in body.findall(f"{{{UPDATE_RESPONDER_NS}}}engagementTransaction"):
        flag = (tx.findtext(f"{{{EI_CORE_NS}}}deleteFlag") or "").strip()
        engagement = tx.find(f"{{{EI_CORE_NS}}}engagement")
        fields: dict[str, str] = {}
        if engagement is not None:
            for element in (*PRODUCER_ELEMENTS, *INDEX_SET_FIELDS):
                text = engagement.findtext(f"{{{EI_CORE_NS}}}{element}")
                if text is not None:
                    fields[element] = text
        found.append(_Transaction(flag in ("true", "1"), fields))
    return found


def _key(fields: dict[str, str]) -> tuple[str, ...]:
    return tuple(fields.get(element, "") for element in KEY_FIELDS)


def _answer(code: str, comment: str | None = None) -> bytes:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    response = etree.SubElement(body, f"{{{UPDATE_RESPONDER_NS}}}UpdateResponse", nsmap={None: UPDATE_RESPONDER_NS})
    etree.SubElement(response, f"{{{UPDATE_RESPONDER_NS}}}ResultCode").text = code
    if comment is not None:
        etree.SubElement(response, f"{{{UPDATE_RESPONDER_NS}}}comment").text = comment
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


@dataclass(frozen=True)
class _UpdateInteraction:
    wsdl: Path = UPDATE_WSDL  # all ContractDocuments reads


def create_app(stub: EngagementIndexStub | None = None) -> FastAPI:
    """The stand-in as an ASGI app; the stub is at `app.state.stub`."""
    stub = stub or EngagementIndexStub()
    app = FastAPI(title="Engagement index stand-in", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stub = stub
    docs = ContractDocuments(_UpdateInteraction())  # type: ignore[arg-type]

    @app.get(URL_PATH, include_in_schema=False)
    async def describe(request: Request) -> Response:
        return describe_documents(docs, request)

    @app.post(URL_PATH, include_in_schema=False)
    async def update(request: Request) -> Response:
        data = await read_capped(request, MAX_REQUEST_BYTES)
        if data is None:
            return Response(soap.fault(f"request larger than {MAX_REQUEST_BYTES} bytes"), status_code=413,
                            media_type=soap.CONTENT_TYPE)
        seen = {"caller": identity.caller_hsa_id(request, identity.CertSource.TLS),
                "soap_action": request.headers.get("soapaction"), "received": datetime.now(UTC)}
        mode, delay = stub.take_mode()
        pause = delay or (DEFAULT_SLOW_DELAY if mode is Mode.SLOW else 0.0)
        if pause:
            await pause_unless_gone(request, pause)
        if mode is Mode.DOWN:
            stub.log_unprocessed(data, mode=mode, **seen)
            return Response("service unavailable (stand-in mode down)", status_code=503, media_type="text/plain")
        if mode is Mode.FAULT:
            stub.log_unprocessed(data, mode=mode, **seen)
            return Response(soap.fault("EI000: A technical error has occurred (stand-in mode fault)", client=False),
                            status_code=500, media_type=soap.CONTENT_TYPE)
        status, answer = await asyncio.to_thread(stub.handle, data, mode=mode, **seen)
        if mode is Mode.CLOSE:
            return DroppedConnection()
        return Response(answer, status_code=status, media_type=soap.CONTENT_TYPE)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "service": "engagement index Update 1.0 (stand-in)"}

    @app.get("/_stub/mode")
    def get_mode() -> dict[str, Any]:
        return stub.mode()

    @app.post("/_stub/mode")
    def set_mode(body: ModeRequest) -> dict[str, Any]:
        return stub.set_mode(body.mode, body.delay, body.calls, body.seconds)

    @app.get("/_stub/engagements")
    def engagements() -> list[dict[str, str]]:
        return stub.engagements

    @app.get("/_stub/calls")
    def calls() -> list[dict[str, Any]]:
        return stub.calls

    @app.post("/_stub/reset")
    def reset() -> dict[str, str]:
        stub.reset()
        return {"status": "reset"}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m adapter.stubs.engagement_index",
                                     description="Engagement index stand-in (tests and development only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--owner", default=DEFAULT_OWNER, help="the EI's own logical address (EI003)")
    parser.add_argument("--alias", action="append", default=[], help="another accepted logical address")
    parser.add_argument("--reserved", action="append", default=None,
                        help=f"HSA-id refused as logicalAddress/sourceSystem (EI005/EI006); default {PLATFORM_HSA_ID}")
    parser.add_argument("--error-style", choices=[s.value for s in ErrorStyle], default=ErrorStyle.FAULT.value)
    parser.add_argument("--official-resident-pattern", action="store_true",
                        help="accept national reserve identities (TKB 1.0.9) instead of the deployed pattern")
    parser.add_argument("--state", type=Path, help="JSON file that keeps the index and the call log")
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--client-ca", type=Path)
    parser.add_argument("--crl", type=Path, action="append", default=[])
    parser.add_argument("--plain-http", action="store_true", help="no TLS (loopback only)")
    parser.add_argument("--log-level", default="info", choices=logs.LEVELS, type=str.lower)
    args = parser.parse_args(argv)

    logs.setup(args.log_level)
    tls = None
    if args.plain_http:
        if not server.is_loopback(args.host):
            parser.error("plain HTTP is refused on anything but loopback")
    elif args.tls_cert and args.tls_key and args.client_ca and args.crl:
        tls = TlsContexts(TlsFiles(args.tls_cert, args.tls_key, args.client_ca, tuple(args.crl)))
    else:
        parser.error("give --tls-cert, --tls-key, --client-ca and --crl, or --plain-http")
    stub = EngagementIndexStub(args.owner, aliases=args.alias,
                               reserved_hsa_ids=args.reserved if args.reserved is not None else (PLATFORM_HSA_ID,),
                               error_style=ErrorStyle(args.error_style),
                               deployed_resident_pattern=not args.official_resident_pattern, state_file=args.state)
    config = server.uvicorn_config(create_app(stub), host=args.host, port=args.port, tls=tls,
                                   log_level=args.log_level.lower())
    log.info("engagement index stand-in on %s://%s:%d%s (owner %s)", "https" if tls else "http", args.host,
             args.port, URL_PATH, args.owner)
    server.run(config, tls.reload if tls else None)


if __name__ == "__main__":
    main()
